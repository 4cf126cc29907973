"""`external:` endpoints and `router.overflow` in a topology: defaults, and one clear
paragraph per mistake, none of which ever repeats what was written as `api_key`."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.errors import SpecError
from controlplane.spec import load_topology
from tests.unit.spec.test_broken_specs import Broken, check_paragraph

BASE = "model: glm-4.5-air\nprecision: fp8\ngpus: 1xH200\ncontext_length: 16384\nexternal:\n"
GOOD = "  - name: zhipu\n    base_url: https://open.bigmodel.cn/api/paas/v4\n    model: glm-4.5\n"
KEY = "    api_key: {env: ZHIPU_API_KEY}\n"
LITERAL = "sk-0123456789abcdef"  # what a user might paste as `api_key`

CASES = [
    Broken("external-scheme", BASE + GOOD.replace("https", "ftp") + KEY, 7,
           ("`external.0.base_url`", "http:// or https://")),
    Broken("external-credentials", BASE + GOOD.replace("https://", "https://u:pw@") + KEY, 7,
           ("carries credentials",)),
    Broken("external-query", BASE + GOOD.replace("/v4", "/v4?key=1") + KEY, 7,
           ("query or fragment",)),
    Broken("external-no-key", BASE + GOOD, 6, ("`api_key`", "{env: ZHIPU_API_KEY}")),
    Broken("external-literal-key", BASE + GOOD + f"    api_key: {LITERAL}\n", 9,
           ("`external.0.api_key` is a string", "api_key: none")),
    Broken("external-key-in-env", BASE + GOOD + f"    api_key: {{env: {LITERAL}}}\n", 9,
           ("is not a reference", "not shown")),
    Broken("external-both-refs", BASE + GOOD + "    api_key: {env: A, secret: a/b}\n", 9,
           ("exactly one of `env`",)),
    Broken("external-bad-secret", BASE + GOOD + "    api_key: {secret: justaname}\n", 9,
           ("is not a reference",)),
    Broken("overflow-unknown", BASE + GOOD + KEY + "router:\n  overflow: [zhipuu]\n", 11,
           ("`zhipuu`", "Did you mean `zhipu`?", "defined: `zhipu`")),
    Broken("overflow-no-external", "model: glm-4.5-air\nprecision: fp8\ngpus: 1xH200\n"
           "context_length: 16384\nrouter:\n  overflow: {to: [hosted]}\n", 6,
           ("`hosted`", "defined: none")),
    Broken("external-duplicate", BASE + GOOD + KEY + GOOD + KEY, 10,
           ("two external endpoints are called `zhipu`",)),
    Broken("overflow-above-queue", BASE + GOOD + KEY
           + "router:\n  max_queue_per_endpoint: 4\n  overflow: {to: [zhipu], saturated_at: 9}\n",
           12, ("saturated_at 9", "at most 4")),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_mistake_gets_one_paragraph_with_a_fix(case: Broken, tmp_path: Path) -> None:
    path = tmp_path / f"{case.id}.yaml"
    path.write_text(case.text)
    with pytest.raises(SpecError) as caught:
        load_topology(path)
    message = str(caught.value)
    check_paragraph(message, path, case)
    assert LITERAL not in message and "pw" not in message.replace("pw@", "")


def test_defaults_and_the_shorthand(tmp_path: Path) -> None:
    edge = "  - {name: edge, base_url: 'http://127.0.0.1:9997/v1/', model: glm-edge-4b-chat,"
    text = BASE + GOOD + KEY + edge + " api_key: none}\nrouter:\n  overflow: zhipu\n"
    path = tmp_path / "ok.yaml"
    path.write_text(text)
    spec = load_topology(path).spec
    zhipu, local = spec.external
    assert (zhipu.capacity, zhipu.health_path, zhipu.key_ref and zhipu.key_ref.env) == (
        32, "/models", "ZHIPU_API_KEY"
    )  # fmt: skip
    assert local.key_ref is None and local.base_url == "http://127.0.0.1:9997/v1"
    assert spec.router.overflow is not None
    assert spec.router.overflow.to == ["zhipu"]
    assert spec.router.overflow.saturated_at == spec.max_num_seqs  # full batch: saturated


def test_a_spec_without_external_serialises_as_before(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text("model: glm-4.5-air\nprecision: fp8\ngpus: 1xH200\n")
    data = load_topology(path).spec.model_dump(mode="json")
    assert "external" not in data and "overflow" not in data["router"]
