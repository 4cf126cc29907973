"""Command-line input validated by pydantic is worded by spec/messages.py, as spec files
are: field path, what it means, the nearest valid choice; no pydantic wording."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from controlplane.errors import UserError
from controlplane.loadtest.verdict import parse_slo
from controlplane.spec.messages import validation_messages
from controlplane.spec.models import SloSpec, TopologySpec

PYDANTIC_WORDS = ("Input should be", "validation error", "type=", "For further information")


def test_messages_for_another_root_model_describe_its_fields() -> None:
    with pytest.raises(ValidationError) as caught:
        SloSpec.model_validate({"availability": 2, "itl_p99": "soon"})
    messages = validation_messages(caught.value, SloSpec)
    assert len(messages) == 2
    text = " ".join(messages)
    assert "`availability`" in text and "less than 1" in text
    description = SloSpec.model_fields["availability"].description or ""
    assert description and description.rstrip(".") in text
    assert not any(word in text for word in PYDANTIC_WORDS)


def test_a_typo_in_a_choice_gets_the_nearest_one() -> None:
    doc = {"model": "glm-4.5", "gpus": {"type": "H200", "count": 8}, "engine": {"kind": "vlm"}}
    with pytest.raises(ValidationError) as caught:
        TopologySpec.model_validate(doc)
    (message,) = validation_messages(caught.value)
    assert "`engine.kind: vlm`" in message and "did you mean `vllm`?" in message


@pytest.mark.parametrize("text", ["availability=2", "ttft_p99=soon"])
def test_slo_flag_errors_use_the_formatter(text: str) -> None:
    with pytest.raises(UserError) as caught:
        parse_slo(text)
    shown = str(caught.value)
    assert f"`{text.split('=')[0]}`" in shown and "To fix:" in shown
    assert not any(word in shown for word in PYDANTIC_WORDS)


def test_capacity_flag_errors_use_the_formatter() -> None:
    from controlplane.cli.capacity_cmd import _topology_from_flags

    doc = {"model": "glm-4.5", "precision": "fp9", "gpus": {"type": "H200", "count": 8}}
    with pytest.raises(UserError) as caught:
        _topology_from_flags(doc, None, True, None)
    shown = str(caught.value)
    assert "`precision: fp9`" in shown and "did you mean `fp8`?" in shown
    assert not any(word in shown for word in PYDANTIC_WORDS)
