"""What one request may cost: size, tokens, per-key rates and concurrency.

Pure part: `RequestLimits` (the deployment's limits, from the topology's `router.limits`),
`estimate_prompt_tokens` and `request_cost` (400 / 413 for a request over a limit, and the
tokens it may cost, prompt + `max_tokens`). Redis part: `KeyAdmission`, one EVALSHA per
request of a key with rpm / tpm / concurrency limits: two token buckets (requests per
minute, tokens per minute; capacity one minute's worth, refilled continuously) and a
sorted set of the key's requests in flight, each under a lease so that a router that dies
mid-request cannot leave a slot taken forever. Nothing is consumed unless all three pass.

Tokens are estimated at 4 bytes of prompt text per token (OpenAI's rule of thumb for
English BPE text, https://help.openai.com/en/articles/4936856), plus each image's tokens
under the GLM-4V processor (catalog/image_input.py: an inline image from its header size,
an image URL as the largest image the processor emits); the engine still enforces its
context length exactly. When Redis is down, per-key limits are not enforced (as the
router's other rate limits: serving beats refusing, see router/state.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from controlplane.catalog.image_input import payload_image_tokens
from controlplane.catalog.shapes_next import GLM4V_TOWER

BYTES_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """The deployment's limits (defaults match `RouterLimitsSpec` in spec/models.py)."""

    max_body_bytes: int = 4 * 1024 * 1024
    max_prompt_tokens: int | None = None
    max_tokens: int | None = None
    max_concurrent_per_key: int | None = None
    max_headers: int = 100
    max_header_bytes: int = 16 * 1024
    client_idle_timeout: float = 30.0
    client_total_timeout: float = 900.0
    max_response_bytes: int = 256 * 1024 * 1024

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RequestLimits:
        """From plain data (a plan's `router.limits`); unknown keys are ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True, slots=True)
class KeyLimits:
    """One API key's own limits (0 or None: no limit of that kind)."""

    rpm: int = 0
    tpm: int = 0
    max_concurrent: int | None = None
    max_tokens: int | None = None
    max_prompt_tokens: int | None = None


def _lowest(*values: int | None) -> int | None:
    given = [v for v in values if v]
    return min(given) if given else None


def estimate_prompt_tokens(payload: dict[str, Any]) -> int:
    # Imported here: RequestLimits is also read by `render --target k8s`, which runs without
    # the http extra (orjson).
    from controlplane.router.prefix import prompt_bytes

    text = math.ceil(len(prompt_bytes(payload)) / BYTES_PER_TOKEN)
    return text + payload_image_tokens(payload, GLM4V_TOWER)


def request_cost(
    payload: dict[str, Any], limits: RequestLimits, key: KeyLimits | None
) -> tuple[int, int | None]:
    """(tokens the request may cost, `max_tokens` to set when the request left it out);
    the prompt counts in the cost only when a prompt or tpm limit applies.

    Raises RequestProblem(400) for a prompt or `max_tokens` over the lower of the key's and
    the deployment's limit, or a request that could never fit the key's tokens per minute.
    """
    from controlplane.router.validation import RequestProblem  # orjson: the http extra

    key = key or KeyLimits()
    most_prompt = _lowest(limits.max_prompt_tokens, key.max_prompt_tokens)
    # The estimate walks the whole prompt: only when a limit needs it (0 stands in otherwise).
    needed = most_prompt is not None or key.tpm
    prompt = estimate_prompt_tokens(payload) if needed else 0
    if most_prompt is not None and prompt > most_prompt:
        raise RequestProblem(
            400,
            f"prompt of about {prompt} tokens is over the limit of {most_prompt};"
            " send a shorter prompt",
            "context_length_exceeded",
        )
    asked = payload.get("max_tokens", payload.get("max_completion_tokens"))
    if asked is not None and (not isinstance(asked, int) or isinstance(asked, bool) or asked < 1):
        raise RequestProblem(400, "`max_tokens` must be a positive integer")
    most_output = _lowest(limits.max_tokens, key.max_tokens)
    if asked is not None and most_output is not None and asked > most_output:
        raise RequestProblem(
            400, f"`max_tokens` {asked} is over the limit of {most_output}; ask for fewer"
        )
    inject = most_output if asked is None else None
    cost = prompt + (asked or most_output or 0)
    if key.tpm and cost > key.tpm:
        raise RequestProblem(
            400,
            f"this request may cost {cost} tokens, more than the key's {key.tpm} tokens per"
            " minute; lower `max_tokens` or shorten the prompt",
        )
    return cost, inject


# ARGV: bucket prefix, rpm, tpm, cost, max concurrent (0: none), request id, lease ms
# Returns {allowed (1/0), retry after ms, reason}.
ADMIT = """
local prefix = ARGV[1]
local rpm, tpm, cost = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local most, id, lease = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function level(key, per_min)
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or per_min
  local last = tonumber(state[2]) or now
  return math.min(per_min, tokens + (now - last) * per_min / 60000)
end
local checks = {{prefix .. ':rpm', rpm, 1}, {prefix .. ':tpm', tpm, cost}}
local levels = {}
for i, c in ipairs(checks) do
  if c[2] > 0 then
    levels[i] = level(c[1], c[2])
    if levels[i] < c[3] then
      return {0, math.ceil((c[3] - levels[i]) * 60000 / c[2]), i == 1 and 'rpm' or 'tpm'}
    end
  end
end
local flight = prefix .. ':inflight'
if most > 0 then
  redis.call('ZREMRANGEBYSCORE', flight, '-inf', now)
  if redis.call('ZCARD', flight) >= most then return {0, 1000, 'concurrency'} end
  redis.call('ZADD', flight, now + lease, id)
  redis.call('PEXPIRE', flight, lease)
end
for i, c in ipairs(checks) do
  if c[2] > 0 then
    redis.call('HSET', c[1], 'tokens', tostring(levels[i] - c[3]), 'ts', now)
    redis.call('PEXPIRE', c[1], 61000)
  end
end
return {1, 0, ''}
"""


class KeyAdmission:
    """Per-key limits in Redis (rpm, tpm, concurrency): one EVALSHA per limited request."""

    def __init__(self, client: Any, namespace: str, lease_s: float) -> None:
        self.client = client
        self.namespace = namespace
        self.lease_ms = int(lease_s * 1000) + 1000
        self._admit = client.register_script(ADMIT)

    def _prefix(self, key_hash: str) -> str:
        return f"{self.namespace}:kl:{key_hash[:32]}"

    async def admit(
        self, key_hash: str, limits: KeyLimits, cost: int, request_id: str
    ) -> tuple[bool, float, str]:
        """(allowed, seconds until a retry may pass, which limit: rpm | tpm | concurrency).

        Fails open (allowed) when Redis does not answer."""
        args = [self._prefix(key_hash), limits.rpm, limits.tpm, cost]
        args += [limits.max_concurrent or 0, request_id, self.lease_ms]
        try:
            allowed, retry_ms, reason = await self._admit(args=args)
        except Exception:  # Redis down or slow: serve, as the router's other limits do
            return True, 0.0, ""
        text = reason.decode() if isinstance(reason, bytes) else str(reason)
        return bool(int(allowed)), int(retry_ms) / 1000, text

    async def release(self, key_hash: str, request_id: str) -> None:
        """Free the request's concurrency slot (best effort: the lease frees it anyway)."""
        try:
            await self.client.zrem(f"{self._prefix(key_hash)}:inflight", request_id)
        except Exception:
            return
