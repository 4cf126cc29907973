"""A new topology from a few answers (`glmctl init`): the best layout that fits, explained.

`scaffold(answers)` is pure: it resolves the answers into a one-GPU base topology, runs the
capacity search over the GPU counts that divide `answers.gpus`, takes the best candidate
(fewest GPUs, fewest nodes, no pipeline, most headroom: `Candidate.sort_key`) and fills the
GPUs with replicas of it. When no layout holds the asked context, it lowers the context to
the longest one that fits (in steps of 1024 tokens) and says so. The YAML it returns carries
a comment on every value saying why it was chosen, and it is checked the way `glmctl
validate` and `glmctl capacity` check a file before it is returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError

from controlplane.capacity.layout import Layout, layout_of
from controlplane.capacity.report import capacity_report
from controlplane.capacity.search import Candidate, search
from controlplane.catalog.gpus import GIB
from controlplane.errors import UserError
from controlplane.spec import Topology, TopologySpec, parse_spec, resolve
from controlplane.spec.messages import validation_messages
from controlplane.spec.models import EngineSpec

DEFAULT_CONTEXT = 32768  # the model card's standard context
CONTEXT_STEP = 1024
MIN_CONTEXT = 4096  # below this a lowered context is no longer a useful deployment
DEFAULT_ENGINE = EngineSpec().kind.value  # a spec that names no engine gets this one


def offered_models() -> list[str]:
    """The catalog's chat models a new deployment is offered, one name per family line
    (`glm-4.7` rather than also `glm-4.7-fp8`: the precision question picks the checkpoint),
    the GLM generations newest first; base and test-only checkpoints are left out."""
    from controlplane.catalog import MODELS

    catalog_names = {m.name for m in MODELS}
    moe = [m for m in reversed(MODELS) if m.arch.is_moe]  # the GLM generations, newest first
    small = [m for m in MODELS if not m.arch.is_moe]
    names: list[str] = []
    for entry in moe + small:
        if not entry.chat or entry.name.endswith("-tiny"):
            continue
        name = entry.family if entry.family in catalog_names else entry.name
        if name not in names:
            names.append(name)
    return names


@dataclass(frozen=True)
class Answers:
    """What `glmctl init` asks. `gpus`: GPUs available for the deployment (all replicas)."""

    model: str
    gpu: str
    gpus: int
    precision: str | None = None
    context: int = DEFAULT_CONTEXT
    batch: int = 8
    engine: str = DEFAULT_ENGINE
    name: str | None = None
    model_config: Any = None  # a local ModelEntry (from a config.json) instead of `model`


@dataclass(frozen=True)
class Scaffold:
    name: str
    topology: Topology
    replicas: int
    text: str


def _base(answers: Answers, context: int) -> Topology:
    doc: dict[str, Any] = {
        "name": answers.name or "new-topology",
        "gpus": {"type": answers.gpu, "count": 1},
        "context_length": context,
        "max_num_seqs": answers.batch,
        "engine": {"kind": answers.engine},
    }
    if answers.model_config is not None:
        doc["model_config"] = answers.model
    else:
        doc["model"] = answers.model
    if answers.precision:
        doc["precision"] = answers.precision.lower()
    try:
        spec = TopologySpec.model_validate(doc)
    except ValidationError as exc:  # the one formatter: each problem with its field
        raise UserError(
            f"the answers do not make a topology: {' '.join(validation_messages(exc))}",
            fix="check the model (`glmctl models`), GPU type (`glmctl gpus`) and numbers.",
        ) from None
    return resolve(spec, answers.model_config, origin="glmctl init")


def _best(base: Layout, gpus: int) -> Candidate | None:
    """The best layout whose replicas fill `gpus` exactly (a GPU count that divides it)."""
    found = search(base, [n for n in range(1, gpus + 1) if gpus % n == 0])
    return found[0] if found else None


def _longest_context(answers: Answers, low: int, high: int) -> int | None:
    """The longest context in [low, high) (multiples of CONTEXT_STEP) where a layout fits."""
    low, high = low // CONTEXT_STEP, high // CONTEXT_STEP
    if _best(layout_of(_base(answers, low * CONTEXT_STEP)), answers.gpus) is None:
        return None
    while high - low > 1:  # invariant: low fits, high does not
        middle = (low + high) // 2
        fits = _best(layout_of(_base(answers, middle * CONTEXT_STEP)), answers.gpus)
        low, high = (middle, high) if fits else (low, middle)
    return low * CONTEXT_STEP


def _choose(answers: Answers) -> tuple[Topology, Candidate, str]:
    """The base topology and best candidate; a note when the context had to be lowered."""
    if answers.gpus < 1 or answers.batch < 1 or answers.context < 1:
        raise UserError("GPUs, sequences and context must each be at least 1.",
                        fix="answer with positive numbers.")  # fmt: skip
    topo = _base(answers, answers.context)
    best = _best(layout_of(topo), answers.gpus)
    if best is not None:
        return topo, best, ""
    context = _longest_context(answers, MIN_CONTEXT, answers.context)
    if context is None:
        raise UserError(
            f"no layout of up to {answers.gpus} x {topo.gpu.name} holds {answers.batch}"
            f" sequences of {topo.model.display_name} {topo.precision.value}, even at"
            f" {MIN_CONTEXT} tokens.",
            fix="use more GPUs, a larger GPU type, precision fp8, or fewer sequences"
            " (`glmctl capacity --model ... --search` lists what fits).",
        )
    topo = _base(answers, context)
    best = _best(layout_of(topo), answers.gpus)
    assert best is not None
    note = (
        f"context_length was {answers.context}: no layout of up to {answers.gpus} x"
        f" {topo.gpu.name} holds {answers.batch} sequences that long; {context} is the longest"
        f" (in steps of {CONTEXT_STEP}) that fits."
    )
    return topo, best, note


def scaffold(answers: Answers) -> Scaffold:
    """The topology file for the best layout that fits the answers (pure)."""
    topo, best, context_note = _choose(answers)
    lay = best.layout
    replicas = answers.gpus // lay.gpus
    name = answers.name or _default_name(topo, lay, replicas)
    text = render(topo, best, replicas, name, answers, context_note)
    checked = resolve(parse_spec(text, origin=f"{name}.yaml"), answers.model_config, f"{name}.yaml")
    report = capacity_report(checked)
    if not report.fits:  # the search and the report share one memory model: a bug if so
        raise AssertionError(f"init chose a layout the capacity check refuses: {report.verdict}")
    return Scaffold(name, checked, replicas, text)


def _default_name(topo: Topology, lay: Layout, replicas: int) -> str:
    model = re.sub(r"[^a-z0-9]+", "-", topo.model.name.lower()).strip("-")
    # glm-4.5 -> glm45, glm-4.7-flash -> glm47-flash, glm-4.5v -> glm45v (as topologies/);
    # glm-4-9b-chat keeps its name.
    model = re.sub(r"glm-4-(\d)(?=v|-|$)", r"glm4\1", model)
    if not model.endswith(topo.precision.value):
        model = f"{model}-{topo.precision.value}"
    return f"{model}-{topo.gpu.name.lower()}x{lay.gpus * replicas}"


def _comment(text: str) -> str:
    words, lines, line = text.split(), [], "#"
    for word in words:
        if len(line) + len(word) + 1 > 92:
            lines.append(line)
            line = "#"
        line += f" {word}"
    return "\n".join([*lines, line])


def render(
    topo: Topology, best: Candidate, replicas: int, name: str, answers: Answers, context_note: str
) -> str:
    """The YAML text, one comment per choice (pure)."""
    head = _comment(
        f"{name}: {topo.model.display_name} {topo.precision.value} on {answers.gpus} x"
        f" {topo.gpu.name}, written by `glmctl init` from the capacity search."
    )
    body = [head]
    for key, value, why in _fields(topo, best, replicas, name, answers, context_note):
        body.append(_comment(why))
        body.append(yaml.safe_dump({key: value}, sort_keys=False).rstrip())
    return "\n".join(body) + "\n"


def _fields(
    topo: Topology, best: Candidate, replicas: int, name: str, answers: Answers, context_note: str
) -> list[tuple[str, Any, str]]:
    """(key, value, why) of every top-level value of the file, in order (pure)."""
    lay, mem = best.layout, best.memory
    headroom = best.headroom_bytes / GIB
    fields: list[tuple[str, Any, str]] = [
        ("name", name, "the deployment's name (glmctl status, delete, scale use it)."),
        (
            *(
                ("model_config", answers.model)
                if answers.model_config is not None
                else ("model", topo.model.name)
            ),
            f"{topo.model.display_name}: {topo.model.arch.num_layers} layers,"
            f" {topo.model.arch.total_params() / 1e9:.0f}B parameters"
            f" ({topo.model.arch.active_params() / 1e9:.0f}B active).",
        ),
        (
            "precision",
            topo.precision.value,
            "as asked."
            if answers.precision
            else f"the checkpoint's own format ({topo.model.weight_format.value}).",
        ),
        (
            "gpus",
            {"type": topo.gpu.name, "count": lay.gpus},
            f"GPUs per replica: {lay.gpus} is the fewest of {topo.gpu.name} that hold the"
            f" weights and {answers.batch} x {topo.context_length} tokens of KV cache"
            f" ({headroom:.1f} GiB spare per GPU); {answers.gpus} GPU(s) make {replicas}"
            " replica(s).",
        ),
        (
            "parallelism",
            _parallelism(lay),
            f"TP {lay.tp} PP {lay.pp} EP {lay.ep} DP {lay.dp}: the capacity search's best"
            " split of this GPU count (fewest nodes, no pipeline unless needed, most headroom).",
        ),
        ("context_length", topo.context_length, context_note or "tokens per sequence, as asked."),
        (
            "max_num_seqs",
            answers.batch,
            f"concurrent sequences; the KV cache holds {mem.kv_tokens} tokens per replica.",
        ),
    ]
    if answers.engine != DEFAULT_ENGINE:
        fields.append(("engine", {"kind": answers.engine}, "the engine asked for."))
    if replicas > 1:
        fields.append(("replicas", {"min": replicas}, f"{replicas} replicas fill the {answers.gpus}"
                       f" GPU(s) given ({lay.gpus} each)."))  # fmt: skip
    return fields


def _parallelism(lay: Layout) -> dict[str, Any]:
    split: dict[str, Any] = {"tensor": lay.tp}
    if lay.pp > 1:
        split["pipeline"] = lay.pp
    if lay.ep > 1:
        split["expert"] = lay.ep
    if lay.dp > 1:
        split["data"] = lay.dp
        split["dp_attention"] = lay.dp_attention
    return split
