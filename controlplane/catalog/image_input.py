"""Images in OpenAI chat requests (`image_url` content parts) and the language tokens each
becomes under a GLM-4V processor (`vision.VisionEncoder.image_tokens`).

Pure and cheap enough for the router's request path: an inline image (`data:image/...;
base64,...`) is sized from its header (PNG IHDR, GIF logical screen, JPEG SOF marker, only
the first bytes are decoded); an image given by URL is not fetched and counts as the
largest image the processor emits, so a limit can only over-count it, never under-count.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterator
from typing import Any

from controlplane.catalog.vision import VisionEncoder

HEADER_BASE64_CHARS = 128 * 1024  # decode at most this much of a data URL to find the size
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def image_parts(payload: dict[str, Any]) -> Iterator[Any]:
    """Every `image_url` content part of a chat request's messages, as sent."""
    messages = payload.get("messages")
    if not isinstance(messages, list):
        return
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    yield part


def image_url(part: dict[str, Any]) -> str | None:
    """The URL of an image part (`{"image_url": {"url": ...}}`, or the older bare string)."""
    value = part.get("image_url")
    if isinstance(value, dict):
        value = value.get("url")
    return value if isinstance(value, str) and value else None


def part_problem(part: dict[str, Any]) -> str | None:
    """Why an `image_url` part is malformed (a message that says what to send), or None."""
    url = image_url(part)
    if url is None:
        return "an `image_url` part needs `image_url: {url: ...}` with a non-empty URL"
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        if not head.startswith("data:image/") or not head.endswith(";base64") or not data:
            return "an inline image must be `data:image/<type>;base64,<data>`"
    elif not url.startswith(("http://", "https://", "file://")):
        return "an image URL must be http(s)://, file:// or a data:image/...;base64 URL"
    return None


def image_size(url: str) -> tuple[int, int] | None:
    """(height, width) of an inline PNG, GIF or JPEG image from its header; None otherwise."""
    if not url.startswith("data:image/"):
        return None
    data = url.partition(",")[2][:HEADER_BASE64_CHARS]
    data = data[: len(data) - len(data) % 4]
    try:
        raw = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None
    if raw.startswith(b"\x89PNG\r\n\x1a\n") and len(raw) >= 24:
        width, height = struct.unpack(">II", raw[16:24])
        return height, width
    if raw[:6] in (b"GIF87a", b"GIF89a") and len(raw) >= 10:
        width, height = struct.unpack("<HH", raw[6:10])
        return height, width
    if raw.startswith(b"\xff\xd8"):
        return _jpeg_size(raw)
    return None


def _jpeg_size(raw: bytes) -> tuple[int, int] | None:
    """Walk the JPEG markers to the first start-of-frame, which holds height and width."""
    i = 2
    while i + 9 < len(raw):
        if raw[i] != 0xFF:
            return None
        marker = raw[i + 1]
        length = struct.unpack(">H", raw[i + 2 : i + 4])[0]
        if marker in _JPEG_SOF:
            height, width = struct.unpack(">HH", raw[i + 5 : i + 9])
            return (height, width) if height and width else None
        i += 2 + length
    return None


def part_tokens(part: dict[str, Any], encoder: VisionEncoder) -> int:
    """Language tokens one image part becomes: from its size when inline, else the most."""
    url = image_url(part)
    size = image_size(url) if url else None
    if size is None:
        return encoder.max_image_tokens
    return encoder.image_tokens(*size)


def payload_image_tokens(payload: dict[str, Any], encoder: VisionEncoder) -> int:
    """Image tokens of every `image_url` part of a chat request."""
    return sum(part_tokens(part, encoder) for part in image_parts(payload))


def image_words(payload: dict[str, Any], encoder: VisionEncoder) -> list[str]:
    """Stand-in tokens for a request's images (the simulator's prompt): one word per image
    token, the word derived from the image's URL so equal images share cached prefixes."""
    words: list[str] = []
    for part in image_parts(payload):
        digest = hashlib.blake2b((image_url(part) or "").encode(), digest_size=4).hexdigest()
        words += [f"<|image:{digest}|>"] * part_tokens(part, encoder)
    return words
