"""The re-pinning extractor reads TensorRT-LLM-shaped sources into the recorded format.

The sources below are written for this test in the shapes TensorRT-LLM uses (argparse
groups, PluginConfig fields with `cli_plugin_args`, click decorators with
ChoiceWithAlias); the extracted entries must equal what tests/data/trtllm/1.2.0rc2 records
for the same flags, so a re-pin produces files the parser helper reads.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

from tests.unit.engines.trtllm_argdefs import DATA
from tests.unit.engines.trtllm_extract import (
    argparse_arguments,
    click_definitions,
    plugin_arguments,
)

ARGPARSE = textwrap.dedent(
    """
    def parse_arguments():
        parser = argparse.ArgumentParser()
        parser.add_argument('--tp_size', type=int, default=1, help='N-way')
        parser.add_argument('--weight_only_precision', const='int8', type=str, nargs='?',
                            default='int8', choices=['int8', 'int4'])
        parser.add_argument("--smoothquant", "-sq", type=float, default=None, help="alpha")
        group = parser.add_argument_group("Logits arguments")
        group.add_argument('--log_level', type=str, default='info', choices=severity_map.keys())
        group.add_argument('--kv_cache_type', default=argparse.SUPPRESS, type=enum_type(KV))
        return parser
    """
)
PLUGINS = textwrap.dedent(
    """
    DefaultPluginDtype = Literal["auto", "float16", "float32", "bfloat16", "int32", None]

    class PluginConfig(BaseModel):
        dtype: str = Field(default="float16", description="base")
        gpt_attention_plugin: Optional[DefaultPluginDtype] = Field(default="auto", description="x")
        gemm_plugin: Optional[Literal["auto", "float16", "float32", "bfloat16", "int32", "fp8",
                                      "nvfp4", None]] = Field(default=None, description="x")
        context_fmha: bool = Field(default=True, description="x")
        tokens_per_block: int = Field(default=32, description="x")
        hidden_feature: bool = Field(default=False, description="not on the command line")

    cli_plugin_args = ["gpt_attention_plugin", "gemm_plugin", "context_fmha", "tokens_per_block"]
    """
)
CLICK = textwrap.dedent(
    """
    @click.command("serve")
    @click.argument("model", type=str)
    @click.option("--backend", type=ChoiceWithAlias(["pytorch", "tensorrt", "_autodeploy"],
                  {"trt": "tensorrt"}), default="pytorch", help="x")
    @click.option("--tensor_parallel_size", "--tp_size", type=int, default=1, help="x")
    @click.option("--config", "--extra_llm_api_options", "extra_llm_api_options", type=str,
                  default=None)
    @click.option("--trust_remote_code", is_flag=True, default=False)
    @click.option("--tool_parser", type=click.Choice(ToolParserFactory.parsers.keys()))
    def serve(model, backend, tensor_parallel_size, extra_llm_api_options, trust_remote_code,
              tool_parser):
        pass
    """
)


def recorded(name: str, flag: str) -> dict[str, Any]:
    data = json.loads((DATA / "1.2.0rc2" / f"{name}.json").read_text())
    return next(a for a in data["arguments"] if a["flags"][0] == flag)


def by_flag(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["flags"][0]: e for e in entries}


def test_argparse_calls_become_recorded_entries() -> None:
    found = by_flag(argparse_arguments(ARGPARSE, "parse_arguments"))
    for flag in ("--tp_size", "--weight_only_precision", "--smoothquant"):
        assert found[flag] == recorded("convert_checkpoint", flag), flag
    assert found["--log_level"]["dynamic_choices"] == "severity_map.keys()"
    assert found["--kv_cache_type"]["type_expr"] == "enum_type(KV)"  # for a person to resolve


def test_plugin_fields_replay_add_plugin_argument() -> None:
    found = by_flag(plugin_arguments(PLUGINS))
    assert set(found) == {
        "--gpt_attention_plugin",
        "--gemm_plugin",
        "--context_fmha",
        "--tokens_per_block",
    }
    for flag in found:
        assert (
            found[flag]["choices" if "choices" in found[flag] else "type"]
            == recorded("trtllm_build", flag)["choices" if "choices" in found[flag] else "type"]
        ), flag
    assert found["--context_fmha"]["default"] == "enable"


def test_click_decorators_become_options() -> None:
    data = click_definitions(CLICK, "serve")
    assert data["positional"] == [{"name": "model", "type": "str"}]
    found = by_flag(data["arguments"])
    for flag in ("--backend", "--tensor_parallel_size", "--config", "--trust_remote_code"):
        assert found[flag] == recorded("trtllm_serve", flag), flag
    assert found["--tool_parser"]["dynamic_choices"] == "ToolParserFactory.parsers.keys()"
