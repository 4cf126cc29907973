"""Turn pydantic validation errors into `Problem`s a person can act on.

Pydantic knows the key path and the kind of error; this module adds what the field means
(its description), an example of a valid value, and the nearest valid name for typos. No
pydantic wording ("Input should be ...") reaches the user.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel, ValidationError

from controlplane.spec.models import TopologySpec

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, before it is placed in a file."""

    path: Path_
    message: str
    fix: str
    on_key: bool = False  # point at the key's line (unknown keys) rather than the value's
    missing: bool = False  # a required field is absent
    renamed_to: str | None = None  # an unknown key that is a typo of this field


def without_masked(problems: list[Problem]) -> list[Problem]:
    """Drop "`type` is missing" when the spec has the typo `tpye`: one mistake, one message."""
    typos = {(p.path[:-1], p.renamed_to) for p in problems if p.renamed_to}
    kept = [p for p in problems if not (p.missing and (p.path[:-1], p.path[-1]) in typos)]
    # `api_key` ({env|secret} or `none`) reports one error per alternative: keep the first.
    out, keys = [], set()
    for problem in kept:
        if problem.path[-1:] == ("api_key",):
            if problem.path in keys:
                continue
            keys.add(problem.path)
        out.append(problem)
    return out


def dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path) or "(top level)"


def suggest(word: str, choices: Sequence[str]) -> str | None:
    """The closest of `choices` to a mistyped `word`, or None."""
    matches = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not matches:  # prefix matches catch abbreviations such as `tens` -> tensor
        matches = [c for c in choices if c.startswith(word) or word.startswith(c)][:1]
    return matches[0] if matches else None


# Names other tools use for our fields (vLLM / SGLang flags, common shorthands).
SYNONYMS = {
    "tp": "tensor",
    "tp_size": "tensor",
    "tensor_parallel": "tensor",
    "tensor_parallel_size": "tensor",
    "pp": "pipeline",
    "pp_size": "pipeline",
    "pipeline_parallel_size": "pipeline",
    "ep": "expert",
    "ep_size": "expert",
    "dp": "data",
    "dp_size": "data",
    "gpu": "gpus",
    "max_model_len": "context_length",
    "context": "context_length",
    "max_context": "context_length",
    "quantization": "precision",
    "dtype": "precision",
    "mem_fraction_static": "mem_fraction",
    "gpu_memory_utilization": "mem_fraction",
}


def model_at(
    path: Sequence[str | int], root: type[BaseModel] = TopologySpec
) -> type[BaseModel] | None:
    """The pydantic model a key path from `root` leads to (for listing valid keys)."""
    model: type[BaseModel] = root
    for part in path:
        if isinstance(part, int):  # an item of a list: the list's own model
            continue
        field = field_info(model, str(part))
        if field is None:
            return None
        annotation = field.annotation
        candidates = getattr(annotation, "__args__", (annotation,))
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return None
        model = nested[0]
    return model


def field_info(model: type[BaseModel], name: str) -> Any:
    for field_name, field in model.model_fields.items():
        if name in (field_name, field.alias):
            return field
    return None


def field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _misplaced(key: str) -> str | None:
    """`tensor` written at the top level belongs under `parallelism`: find where."""
    for name in field_names(TopologySpec):
        nested = model_at((name,))
        if nested is not None and key in field_names(nested):
            return f"{name}.{key}"
    return None


def unknown_key(loc: Path_, value: Any = "...", root: type[BaseModel] = TopologySpec) -> Problem:
    parent = model_at(loc[:-1], root)
    valid = field_names(parent) if parent else []
    key = str(loc[-1])
    synonym = SYNONYMS.get(key.lower().replace("-", "_"))
    # A synonym of a nested field (`tensor_parallel` -> parallelism.tensor) says where to
    # move the key before a fuzzy match at this level renames it to something unrelated.
    moved = _misplaced(synonym or key) if len(loc) == 1 and root is TopologySpec else None
    guess = synonym if synonym in valid else None
    if guess is None and moved is None:
        guess = suggest(key.lower(), valid)
    where = f" in `{dotted(loc[:-1])}`" if len(loc) > 1 else ""
    if guess:
        return Problem(
            loc,
            f"unknown field `{key}`{where}; did you mean `{guess}`?",
            f"rename it to `{guess}`. Valid fields here: {', '.join(valid)}.",
            on_key=True,
            renamed_to=guess,
        )
    if moved:
        section, _, name = moved.partition(".")
        return Problem(
            loc,
            f"unknown field `{key}` at the top level; it belongs under `{section}`"
            + (f" as `{name}`." if name != key else "."),
            f"move it: `{section}: {{{name}: {flow(value)}}}`.",
            on_key=True,
        )
    fix = "remove it." + (f" Valid fields here: {', '.join(valid)}." if valid else "")
    return Problem(loc, f"unknown field `{key}`{where}.", fix, on_key=True)


def missing_field(loc: Path_, root: type[BaseModel] = TopologySpec) -> Problem:
    where = f" under `{dotted(loc[:-1])}`" if len(loc) > 1 else ""
    key = str(loc[-1])
    example = _example(loc, root)
    value = flow(example) if example is not None else "..."
    return Problem(
        loc,
        f"required field `{key}`{where} is missing ({describe(loc, root)}).",
        f"add `{key}: {value}`{where}.",
        on_key=True,
        missing=True,
    )


def model_source(kind: str) -> Problem:
    if kind == "model_source_both":
        return Problem(
            ("model_config",),
            "both `model` and `model_config` are given; a topology serves exactly one model.",
            "keep `model` for a catalog checkpoint (`glmctl models`) or `model_config` for a"
            " local config.json, and delete the other line.",
            on_key=True,
        )
    return Problem(
        ("model",),
        "no model given: the spec names neither `model` nor `model_config`.",
        "add `model: glm-4.5` (any name from `glmctl models`) or"
        " `model_config: path/to/config.json`.",
        on_key=True,
        missing=True,
    )


def bad_choice(loc: Path_, err: dict[str, Any], root: type[BaseModel] = TopologySpec) -> Problem:
    name = dotted(loc)
    expected = err.get("ctx", {}).get("expected", "")
    choices = [c.strip(" '\"") for c in expected.replace(" or ", ",").split(",") if c.strip()]
    given = err.get("input")
    guess = suggest(str(given).lower(), choices)
    hint = f"; did you mean `{guess}`?" if guess else "."
    fix = f"write `{loc[-1]}: {guess}`" if guess else f"set `{name}` to one of these"
    return Problem(
        loc,
        f"`{name}: {flow(given)}` is not one of {', '.join(choices)}{hint}",
        f"{fix} ({describe(loc, root)}).",
    )


def bad_type(loc: Path_, err: dict[str, Any], root: type[BaseModel] = TopologySpec) -> Problem:
    name = dotted(loc)
    kind = str(err["type"])
    expected = _TYPE_WORDS.get(kind.split("_")[0], "value of another kind")
    if kind == "int_from_float":
        expected = _TYPE_WORDS["int"]
    given = err.get("input")
    example = _example(loc, root)
    if kind == "string_type" and not isinstance(given, dict | list):
        fix = f'quote it: `{loc[-1]}: "{given}"`.'
    elif example is not None:
        fix = f"write it like `{loc[-1]}: {flow(example)}`."
    else:
        fix = f"write `{name}` as {expected}."
    return Problem(
        loc,
        f"`{name}` must be {expected}, got {_show(given)}; it means: {describe(loc, root)}.",
        fix,
    )


_BOUNDS = {
    "greater_than_equal": "at least",
    "greater_than": "more than",
    "less_than": "less than",
    "less_than_equal": "at most",
}


def out_of_range(loc: Path_, err: dict[str, Any], root: type[BaseModel] = TopologySpec) -> Problem:
    name = dotted(loc)
    bound = _BOUNDS[str(err["type"])]
    limit = next(iter(err.get("ctx", {}).values()), "")
    return Problem(
        loc,
        f"`{name}` is {_show(err.get('input'))} but must be {bound} {limit};"
        f" it means: {describe(loc, root)}.",
        f"set `{name}` to a value {bound} {limit}.",
    )


def bad_name(loc: Path_, err: dict[str, Any]) -> Problem:
    return Problem(
        loc,
        f"name `{err.get('input')}` is not a valid deployment name.",
        "use lowercase letters, digits and `-`, at most 63 characters, starting and ending"
        " with a letter or digit (it becomes a Kubernetes and Ray Serve name).",
    )


def pydantic_problem(
    err: Any, data: dict[str, Any] | None = None, root: type[BaseModel] = TopologySpec
) -> Problem:
    """One pydantic error (an item of `ValidationError.errors()` of `root`) as a Problem."""
    loc: Path_ = tuple(p for p in err["loc"] if not str(p).startswith("function-"))
    kind = str(err["type"])
    if kind == "extra_forbidden":
        return unknown_key(loc, err.get("input", "..."), root)
    if kind == "missing":
        return missing_field(loc, root)
    if kind.startswith("model_source_"):
        return model_source(kind)
    if "api_key" in loc or kind == "external_url":
        return external_problem(loc, kind, str(err.get("msg", "")))
    if kind in ("enum", "literal_error"):
        return bad_choice(loc, err, root)
    if kind == "string_pattern_mismatch" and loc == ("name",):
        return bad_name(loc, err)
    if kind.endswith(("_type", "_parsing")) or kind == "int_from_float":
        return bad_type(loc, err, root)
    if kind in _BOUNDS:
        return out_of_range(loc, err, root)
    return _fallback(loc, err, root)


def external_problem(loc: Path_, kind: str, message: str) -> Problem:
    """An `external` endpoint's bad `api_key` or `base_url`. The input is never shown:
    an `api_key` written as a string may be the key itself."""
    name = dotted(loc)
    if kind == "external_url":
        return Problem(
            loc,
            f"`{name}` cannot be used: {message}.",
            f"write `{loc[-1]}: https://host[:port]/path`, the base URL the OpenAI paths"
            " (/chat/completions, /models) go under, e.g. http://127.0.0.1:9997/v1.",
        )
    key_loc = loc[: loc.index("api_key") + 1] if "api_key" in loc else loc
    where = dotted(key_loc)
    if kind == "api_key_literal":
        what = "is a string: a key written into the spec would end up in plans and files"
    elif kind == "missing":
        what = "is missing: the router needs to know where the endpoint's key is"
    elif kind in ("string_pattern_mismatch", "string_type", "dict_type", "model_type"):
        what = (
            "is not a reference: `env` takes a variable name (letters, digits, `_`) and"
            " `secret` a `name/key` (the value is not shown: it may be the key itself)"
        )
    else:
        what = "must name exactly one of `env` (a variable name) or `secret` (`name/key`)"
    return Problem(
        key_loc,
        f"`{where}` {what}.",
        "write `api_key: {env: ZHIPU_API_KEY}` (a variable of the router's environment) or"
        " `api_key: {secret: zhipu/api-key}` (a Kubernetes Secret `name/key`), or"
        " `api_key: none` for a server that takes no key.",
        on_key=kind in ("api_key_literal", "missing"),
        missing=kind == "missing",
    )


def _fallback(loc: Path_, err: dict[str, Any], root: type[BaseModel] = TopologySpec) -> Problem:
    message = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    message = message.replace("Input should be", "it should be").rstrip(".")
    if not loc:
        return Problem(loc, f"{message}.", "compare with `glmctl schema` or a shipped topology.")
    name = dotted(loc)
    return Problem(
        loc,
        f"`{name}` is {_show(err.get('input'))}: {message}; it means: {describe(loc, root)}.",
        f"correct `{name}`; `glmctl schema` lists what each field accepts.",
    )


_TYPE_WORDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "string": "a string",
    "dict": "a mapping",
    "model": "a mapping",
    "list": "a list",
    "enum": "one of the listed choices",
}


def flow(value: Any) -> str:
    """A value as YAML flow text: {type: H200, count: 4}."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value)


def _example(loc: Path_, root: type[BaseModel] = TopologySpec) -> Any:
    if not loc:
        return None
    parent = model_at(loc[:-1], root)
    field = field_info(parent, str(loc[-1])) if parent else None
    examples = getattr(field, "examples", None) if field is not None else None
    return examples[0] if examples else None


def describe(loc: Path_, root: type[BaseModel] = TopologySpec) -> str:
    """The field's own description, so a message says what the field means."""
    if not loc:
        return "see `glmctl schema`"
    parent = model_at(loc[:-1], root)
    field = field_info(parent, str(loc[-1])) if parent else None
    text = field.description if field is not None and field.description else None
    return text.rstrip(".") if text else "see `glmctl schema`"


def validation_messages(exc: ValidationError, root: type[BaseModel] = TopologySpec) -> list[str]:
    """What is wrong, one sentence per error of `exc` (raised validating `root`), worded as a
    spec file's errors are: for input that is not a file (command-line flags), whose
    caller adds the fix that fits where the input came from."""
    problems = without_masked([pydantic_problem(err, root=root) for err in exc.errors()])
    return [problem.message for problem in problems]
