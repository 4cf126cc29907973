"""Image parts in chat requests: validation, the router's token estimate, the simulator."""

from __future__ import annotations

import base64
import struct

import orjson
import pytest

from controlplane.catalog.image_input import image_size
from controlplane.catalog.shapes_next import GLM4V_TOWER
from controlplane.engines.sim.requests import ApiError, Limits, parse_request
from controlplane.router.limits import estimate_prompt_tokens
from controlplane.router.validation import RequestProblem, validate
from tests.integration.router.test_images import image_message, png_data_url

SERVED = {"m": ["e"]}


def _jpeg_data_url(height: int, width: int) -> str:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8" + app0 + sof).decode()


def test_sizes_are_read_from_png_and_jpeg_headers() -> None:
    assert image_size(png_data_url(640, 480)) == (480, 640)
    assert image_size(_jpeg_data_url(1080, 1920)) == (1080, 1920)
    assert image_size("https://example.invalid/a.png") is None


@pytest.mark.parametrize(
    ("part", "says"),
    [
        ({"type": "image_url"}, "non-empty URL"),
        ({"type": "image_url", "image_url": {"url": "ftp://x/a.png"}}, "http(s)://"),
        ({"type": "image_url", "image_url": {"url": "data:image/png,abc"}}, ";base64"),
    ],
)
def test_malformed_image_parts_are_400_with_what_to_send(part: dict, says: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": [part]}]}
    with pytest.raises(RequestProblem) as problem:
        validate(orjson.dumps(body), "chat", SERVED)
    assert problem.value.status == 400 and says in problem.value.message


def test_a_valid_image_message_passes_unchanged() -> None:
    body = {"model": "m", "messages": image_message(png_data_url(64, 64))}
    assert validate(orjson.dumps(body), "chat", SERVED) == body


def test_router_estimate_counts_image_tokens() -> None:
    text = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    inline = {"model": "m", "messages": image_message(png_data_url(640, 480), "hi")}
    remote = {"model": "m", "messages": image_message("https://example.invalid/a.png", "hi")}
    base = estimate_prompt_tokens(text)
    assert estimate_prompt_tokens(inline) == base + GLM4V_TOWER.image_tokens(480, 640)
    assert estimate_prompt_tokens(remote) == base + GLM4V_TOWER.max_image_tokens


def test_simulator_prefills_image_tokens_and_refuses_them_on_a_text_model() -> None:
    body = {"model": "m", "messages": image_message(png_data_url(640, 480), "hi")}
    vision = Limits("m", 65536, 0, vision=GLM4V_TOWER)
    request = parse_request(body, True, vision, 0)
    text = parse_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                         True, vision, 0)  # fmt: skip
    assert request.prompt_tokens == text.prompt_tokens + 393
    with pytest.raises(ApiError) as refused:
        parse_request(body, True, Limits("m", 65536, 0), 0)
    assert refused.value.status == 400 and "not a multimodal model" in str(refused.value)
