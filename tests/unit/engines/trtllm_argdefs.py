"""TensorRT-LLM's command-line parsers, rebuilt without importing tensorrt_llm.

tensorrt_llm's parsers need CUDA (and the TensorRT bindings) to import, so they cannot run
here. tests/data/trtllm/<version>/*.json record their argument definitions, transcribed
from the upstream source at the commit each file names (`source.commit`), read through the
code search index of NVIDIA/TensorRT-LLM (a full clone is 2.5 GB, over the mirror limit of
this machine, and PyPI offers no tensorrt-llm wheel here). Upstream code is not copied into
this repository; only the definitions (flags, types, choices, nargs, actions) are. To re-pin
from a checkout or container of another version, `trtllm_extract.py` reads the same
definitions out of the source files with `ast` (tested on sources of the same shape).

From them, `argparse_parser` builds a real `argparse.ArgumentParser` (convert_checkpoint.py,
quantize.py, trtllm-build) and `click_command` a real `click.Command` (trtllm-serve), so
unknown flags, bad choices and wrong types fail the way the tools fail. A flag whose choices
upstream computes at run time (`dynamic_choices`, e.g. the logger's severity names) is
refused when used: its values cannot be checked here, so glmctl must not emit it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import click

DATA = Path(__file__).resolve().parents[2] / "data" / "trtllm"
TYPES: dict[str, Any] = {"str": str, "int": int, "float": float}


class ParseError(ValueError):
    """A command the tool's parser refuses."""


class _StrictParser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse would print usage and exit(2)
        raise ParseError(message)


def definitions(version: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / version / f"{name}.json").read_text())
    return data


def _refuse_dynamic(flag: str) -> Any:
    def check(value: str) -> str:
        raise argparse.ArgumentTypeError(f"{flag}: choices are computed at run time upstream")

    return check


def argparse_parser(version: str, name: str) -> argparse.ArgumentParser:
    """The tool's parser, from its recorded `add_argument` calls."""
    parser = _StrictParser(prog=name, add_help=False)
    for arg in definitions(version, name)["arguments"]:
        kwargs: dict[str, Any] = {}
        if "action" in arg:
            kwargs["action"] = arg["action"]
        if "type" in arg:
            kwargs["type"] = TYPES[arg["type"]]
        for key in ("choices", "nargs", "const", "default", "dest"):
            if key in arg:
                kwargs[key] = arg[key]
        if "dynamic_choices" in arg:  # (argparse would also run `type` on a str default)
            kwargs["type"] = _refuse_dynamic(arg["flags"][0])
            kwargs.pop("default", None)
        parser.add_argument(*arg["flags"], **kwargs)
    return parser


def parse_argparse(version: str, name: str, argv: list[str]) -> argparse.Namespace:
    """Parse `argv` (without the program) as the tool would; raises ParseError."""
    try:
        return argparse_parser(version, name).parse_args(argv)
    except argparse.ArgumentError as exc:
        raise ParseError(str(exc)) from exc


class _ChoiceWithAlias(click.Choice):
    """serve.py's ChoiceWithAlias: an alias is replaced before the choice check."""

    def __init__(self, choices: list[str], aliases: dict[str, str]) -> None:
        super().__init__(choices)
        self.aliases = aliases

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return super().convert(self.aliases.get(value, value), param, ctx)


def _click_type(opt: dict[str, Any]) -> Any:
    if "dynamic_choices" in opt:
        return click.Choice([])  # nothing passes: see the module docstring
    if "choices" in opt:
        return _ChoiceWithAlias(opt["choices"], opt.get("aliases", {}))
    if opt.get("type") == "path_exists":
        return click.Path(exists=True)
    return TYPES[opt.get("type", "str")]


def click_command(version: str, name: str) -> click.Command:
    """The tool's click command, from its recorded decorators."""
    data = definitions(version, name)
    params: list[click.Parameter] = [
        click.Argument([p["name"]], type=TYPES[p["type"]]) for p in data["positional"]
    ]
    for opt in data["options"] if "options" in data else data["arguments"]:
        decls = list(opt["flags"]) + ([opt["dest"]] if "dest" in opt else [])
        if opt.get("is_flag"):
            params.append(click.Option(decls, is_flag=True))
            continue
        multiple = opt.get("multiple", False)
        params.append(click.Option(decls, type=_click_type(opt), multiple=multiple))
    return click.Command(name, params=params, callback=lambda **kwargs: kwargs)


def parse_click(version: str, name: str, argv: list[str]) -> dict[str, Any]:
    """Parse `argv` (without the program) as the click command would; raises ParseError."""
    command = click_command(version, name)
    try:
        ctx = command.make_context(name, list(argv))
    except click.ClickException as exc:
        raise ParseError(exc.format_message()) from exc
    return dict(ctx.params)
