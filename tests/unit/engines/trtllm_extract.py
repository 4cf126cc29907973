"""Re-pin TensorRT-LLM: extract argument definitions from its source with `ast` (no import).

    python -m tests.unit.engines.trtllm_extract argparse SOURCE.py [--function NAME]
    python -m tests.unit.engines.trtllm_extract plugins plugin.py
    python -m tests.unit.engines.trtllm_extract click serve.py --function serve

prints the definitions in the format of tests/data/trtllm/<version>/*.json (the
`arguments` list; for click also `positional`), for a checkout or container of the version
to pin. What the source computes at run time cannot be read without importing it: a
non-literal `default` is left out, non-literal `choices` become `dynamic_choices` (the
expression), and a `type` other than str / int / float is kept as `type_expr` for a person
to resolve (trtllm_build.json's `--kv_cache_type` note shows how one was).
"""

from __future__ import annotations

import argparse
import ast
import json
from pathlib import Path
from typing import Any

SIMPLE_TYPES = ("str", "int", "float")


def _literal(node: ast.expr) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(node)
    except ValueError:
        return False, None


def _argparse_entry(call: ast.Call) -> dict[str, Any]:
    entry: dict[str, Any] = {"flags": [ast.literal_eval(a) for a in call.args]}
    for kw in call.keywords:
        if kw.arg in (None, "help"):
            continue
        known, value = _literal(kw.value)
        if kw.arg == "type":
            name = ast.unparse(kw.value)
            entry.update({"type": name} if name in SIMPLE_TYPES else {"type_expr": name})
        elif kw.arg == "choices":
            entry.update(
                {"choices": value} if known else {"dynamic_choices": ast.unparse(kw.value)}
            )
        elif known and value is not None:  # None is argparse's own default
            entry[kw.arg] = value
    return entry


def argparse_arguments(source: str, function: str | None = None) -> list[dict[str, Any]]:
    """Every `<parser or group>.add_argument(...)` call (inside `function` when given)."""
    tree = ast.parse(source)
    scope: ast.AST = tree
    if function is not None:
        scope = next(
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function
        )
    calls = [
        n
        for n in ast.walk(scope)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == "add_argument"
    ]
    calls.sort(key=lambda n: (n.lineno, n.col_offset))
    return [_argparse_entry(c) for c in calls]


def _module_literal_types(tree: ast.Module) -> dict[str, list[Any]]:
    """`Name = Literal[...]` aliases at module level (e.g. DefaultPluginDtype)."""
    out = {}
    for node in tree.body:
        value = node.value if isinstance(node, ast.Assign) else None
        if isinstance(value, ast.Subscript) and ast.unparse(value.value) == "Literal":
            assert isinstance(node, ast.Assign)
            out[ast.unparse(node.targets[0])] = _literal_args(value)
    return out


def _literal_args(node: ast.Subscript) -> list[Any]:
    inner = node.slice
    items = inner.elts if isinstance(inner, ast.Tuple) else [inner]
    return [ast.literal_eval(i) for i in items]


def _plugin_choices(annotation: ast.expr, aliases: dict[str, list[Any]]) -> list[Any] | None:
    """Choices of `Optional[Literal[...]]` / `Optional[Alias]` as add_plugin_argument
    builds them (None becomes "disable"); None for a bool or plain type."""
    if isinstance(annotation, ast.Subscript) and ast.unparse(annotation.value) == "Optional":
        inner = annotation.slice
        if isinstance(inner, ast.Name) and inner.id in aliases:
            options = [*aliases[inner.id], None]
        elif isinstance(inner, ast.Subscript) and ast.unparse(inner.value) == "Literal":
            options = [*_literal_args(inner), None]
        else:
            return None
        # Literal's None and Optional's both become "disable": once is enough to parse.
        return list(dict.fromkeys(o if o else "disable" for o in options))
    return None


def plugin_arguments(source: str) -> list[dict[str, Any]]:
    """plugin.py's `add_plugin_argument`, replayed over `PluginConfig`'s annotated fields."""
    tree = ast.parse(source)
    aliases = _module_literal_types(tree)
    cli = next(
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "cli_plugin_args"
    )
    config = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PluginConfig")
    out = []
    for field in config.body:
        if not isinstance(field, ast.AnnAssign) or ast.unparse(field.target) not in cli:
            continue
        name = ast.unparse(field.target)
        default = next(
            (
                ast.literal_eval(k.value)
                for k in getattr(field.value, "keywords", [])
                if k.arg == "default"
            ),
            None,
        )
        choices = _plugin_choices(field.annotation, aliases)
        entry: dict[str, Any] = {"flags": [f"--{name}"]}
        if choices is not None:
            fallback = default if name == "gemm_plugin" else default or "disable"
            entry.update(type="str", choices=choices)
            entry.update({"default": fallback} if fallback is not None else {})
        elif ast.unparse(field.annotation) == "bool":
            entry.update(type="str", default="enable" if default else "disable")
            entry["choices"] = ["enable", "disable"]
        else:
            entry.update(type=ast.unparse(field.annotation), default=default)
        out.append(entry)
    return out


def _click_option(call: ast.Call) -> dict[str, Any]:
    names = [ast.literal_eval(a) for a in call.args]
    entry: dict[str, Any] = {"flags": [n for n in names if n.startswith("-")]}
    dests = [n for n in names if not n.startswith("-")]
    if dests:
        entry["dest"] = dests[0]
    for kw in call.keywords:
        known, value = _literal(kw.value)
        if kw.arg == "type" and isinstance(kw.value, ast.Call):
            kind = ast.unparse(kw.value.func)
            first = kw.value.args[0] if kw.value.args else None
            ok, choices = _literal(first) if first is not None else (False, None)
            if kind in ("click.Choice", "ChoiceWithAlias"):
                entry.update(
                    {"choices": choices} if ok else {"dynamic_choices": ast.unparse(first)}
                )
                if kind == "ChoiceWithAlias" and len(kw.value.args) > 1:
                    entry["aliases"] = ast.literal_eval(kw.value.args[1])
            elif kind == "click.Path":
                entry["type"] = "path_exists"
        elif kw.arg == "type":
            entry["type"] = ast.unparse(kw.value)
        elif kw.arg in ("is_flag", "multiple", "default") and known and value is not None:
            entry[kw.arg] = value
    if entry.get("is_flag") and entry.get("default") is False:
        del entry["default"]  # click's own default for a flag
    return entry


def click_definitions(source: str, function: str) -> dict[str, Any]:
    """The `@click.argument` / `@click.option` decorators of `function`, top to bottom."""
    tree = ast.parse(source)
    func = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)
    positional, options = [], []
    for deco in func.decorator_list:
        if not isinstance(deco, ast.Call):
            continue
        kind = ast.unparse(deco.func)
        if kind == "click.argument":
            entry = _click_option(deco)
            positional.append({"name": ast.literal_eval(deco.args[0]), "type": entry.get("type")})
        elif kind == "click.option":
            options.append(_click_option(deco))
    return {"positional": positional, "arguments": options}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["argparse", "plugins", "click"])
    parser.add_argument("source", type=Path)
    parser.add_argument("--function")
    args = parser.parse_args(argv)
    text = args.source.read_text()
    if args.kind == "argparse":
        result: Any = argparse_arguments(text, args.function)
    elif args.kind == "plugins":
        result = plugin_arguments(text)
    else:
        result = click_definitions(text, args.function or "serve")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
