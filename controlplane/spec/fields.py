"""Field types of the topology spec: integers that refuse YAML booleans, ports, durations."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticCustomError

__all__ = [
    "NAME_PATTERN",
    "Duration",
    "NonNegativeInt",
    "Port",
    "PositiveInt",
    "StrictModel",
    "drop_if",
    "parse_duration",
]

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"  # a DNS-1123 label: k8s and Ray agree


def _no_bool(value: Any) -> Any:
    # YAML `true` would otherwise pass as the number 1 (pydantic's lax int mode).
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


# Constraints come before the validator so the JSON schema gets `minimum` (pydantic order).
PositiveInt = Annotated[int, Field(ge=1), BeforeValidator(_no_bool)]
NonNegativeInt = Annotated[int, Field(ge=0), BeforeValidator(_no_bool)]
Port = Annotated[int, Field(ge=1, le=65535), BeforeValidator(_no_bool)]


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}


def parse_duration(value: Any) -> Any:
    """Seconds from a number or a string such as `2s`, `50ms`, `1.5m`; other input unchanged."""
    if isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|m)?\s*", value)
        if match is None:
            raise PydanticCustomError(
                "duration",
                "expected a duration such as 2s, 50ms or 1.5m, got `{value}`",
                {"value": value},
            )
        return float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
    return value


Duration = Annotated[float, Field(gt=0), BeforeValidator(parse_duration)]


class StrictModel(BaseModel):
    """The base of every spec section: unknown keys are errors, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False)


def drop_if(data: Any, key: str, empty: Any) -> Any:
    """`data` without `key` when it holds `empty`: a field added later serialises (and so
    plans, digests and renders) as before it existed while unset."""
    if isinstance(data, dict) and data.get(key, 0) == empty:
        data.pop(key)
    return data
