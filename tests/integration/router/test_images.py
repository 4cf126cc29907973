"""Images in chat requests: the openai client sends an `image_url` message through the
router to a simulated GLM-4.5V replica and gets an answer; the router passes the parts on
unchanged, counts image tokens toward its prompt limit, and the engine's prompt-token
metric counts them too."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import openai
import pytest

from controlplane.catalog.shapes_next import GLM4V_TOWER
from controlplane.local.redis_server import LocalRedis
from controlplane.router.limits import RequestLimits
from controlplane.spec import Topology, load_topology
from tests.integration.router.conftest import Cluster

pytestmark = pytest.mark.integration
Factory = Callable[[LocalRedis, Topology], Cluster]
REPO = Path(__file__).resolve().parents[3]
VISION = REPO / "topologies" / "glm45v-bf16-h100x4-vllm.yaml"
PROMPT_LIMIT = 2000  # tokens: one 640 x 480 image fits, an unsized image URL does not


def png_data_url(width: int, height: int) -> str:
    """A PNG's signature and IHDR chunk: enough for any reader of its size."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + chunk).decode()


def image_message(url: str, text: str = "what is in this picture") -> list[dict]:
    return [{"role": "user", "content": [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": url}},
    ]}]  # fmt: skip


def prompt_tokens_total(engine_url: str) -> float:
    text = httpx.get(engine_url + "/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("vllm:prompt_tokens_total")
    )


@pytest.fixture
def vision_cluster(shared_redis: LocalRedis, cluster_factory: Factory) -> Cluster:
    cluster = cluster_factory(shared_redis, load_topology(VISION))
    cluster.engine("vision-0", namespace="images")
    limits = RequestLimits(max_prompt_tokens=PROMPT_LIMIT)
    cluster.router("round_robin", namespace="images", limits=limits)
    return cluster


def test_openai_client_sends_an_image_and_limits_and_metrics_count_it(
    vision_cluster: Cluster,
) -> None:
    cluster = vision_cluster
    (engine,) = cluster.engines.values()
    client = openai.OpenAI(base_url=cluster.routers[0].url + "/v1", api_key="unused")
    text_only = client.chat.completions.create(
        model=cluster.model, messages=[{"role": "user", "content": "what is in this picture"}],
        max_tokens=4,
    )  # fmt: skip
    before = prompt_tokens_total(engine.url)
    reply = client.chat.completions.create(
        model=cluster.model, messages=image_message(png_data_url(640, 480)), max_tokens=4
    )
    assert reply.choices[0].finish_reason in {"stop", "length"}
    assert reply.usage is not None and text_only.usage is not None
    # 640 x 480 -> 644 x 476 pixels, 46 x 34 patches, 391 tokens + begin/end markers
    image_tokens = GLM4V_TOWER.image_tokens(480, 640)
    assert image_tokens == 393
    assert reply.usage.prompt_tokens == text_only.usage.prompt_tokens + image_tokens
    assert prompt_tokens_total(engine.url) - before == reply.usage.prompt_tokens

    # An image by URL is not fetched by the router: it counts as the processor's largest
    # image (7398 tokens), over the 2000-token limit.
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model=cluster.model, messages=image_message("https://example.invalid/cat.png"),
            max_tokens=4,
        )  # fmt: skip
    assert "over the limit of 2000" in str(refused.value)
    with pytest.raises(openai.BadRequestError) as malformed:
        client.chat.completions.create(
            model=cluster.model, messages=image_message("data:text/plain;base64,aGk="),
            max_tokens=4,
        )  # fmt: skip
    assert "data:image/" in str(malformed.value)
