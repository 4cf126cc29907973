"""A simulator given `simulation.tokenizer` counts tokens as that tokenizer does, over HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest
import yaml

from controlplane.engines.sim import SimServer
from controlplane.engines.sim.tokens import render_chat
from controlplane.local.tiny_writer import write_tokenizer
from controlplane.spec import parse_spec, resolve
from tests.conftest import TOPOLOGIES

pytestmark = [pytest.mark.integration]
tokenizers = pytest.importorskip("tokenizers")


def test_usage_and_streamed_text_agree_with_the_tokenizer(tmp_path: Path) -> None:
    write_tokenizer(tmp_path, 1024)  # the tiny GLM-4.5 model's tokenizer
    path = tmp_path / "tokenizer.json"
    doc = yaml.safe_load((TOPOLOGIES / "glm45-fp8.yaml").read_text())
    doc["name"], doc["simulation"] = "glm45-fp8-tokenizer", {"tokenizer": str(path)}
    topo = resolve(parse_spec(yaml.safe_dump(doc)))
    reference = tokenizers.Tokenizer.from_file(str(path))
    messages = [{"role": "user", "content": "Plan capacity for 8 x H200, please: GLM-4.5?"}]
    prompt = reference.encode(render_chat(messages, None), add_special_tokens=False)
    body = {"model": topo.served_model_name, "messages": messages, "max_tokens": 64,
            "ignore_eos": True, "stream": True, "stream_options": {"include_usage": True},
            "chat_template_kwargs": {"enable_thinking": False}}  # fmt: skip
    with SimServer.start(topo, time_scale=50.0) as server:
        text, usage = "", {}
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body,
                          trust_env=False, timeout=30) as reply:  # fmt: skip
            for line in reply.iter_lines():
                if line.startswith("data: {"):
                    chunk = orjson.loads(line[6:])
                    usage = chunk.get("usage") or usage
                    for choice in chunk["choices"]:
                        text += choice["delta"].get("content") or ""
    assert usage["prompt_tokens"] == len(prompt.ids)
    assert usage["completion_tokens"] == 64
    # The output is single-token words; only the first has no space before it.
    assert len(reference.encode(" " + text, add_special_tokens=False).ids) == 64
