"""The namespace lab cleans up after itself: no namespace, link or process survives
`close()`, also when it was only partly built. Nothing here connects from the machine's
own namespace (its default route leads off the machine)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.multihost.lab import Lab, netns_supported

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture(autouse=True)
def _needs_netns() -> None:
    why = netns_supported()
    if why:
        pytest.skip(f"no network namespaces here: {why}")


def test_hosts_reach_each_other_only_on_the_bridge_and_close_ends_everything(
    tmp_path: Path,
) -> None:
    lab = Lab(tmp_path / "lab")
    try:
        lab.start_bridge()
        lab.add_host("a")
        lab.add_host("b")
        listen = "import socket; s = socket.create_server(('10.77.0.2', 7000)); s.accept()"
        server = subprocess.Popen(lab.command("b", [sys.executable, "-c", listen]))
        probe = "import socket, time\nfor _ in range(50):\n    try:\n"
        probe += "        socket.create_connection(('10.77.0.2', 7000), 1); break\n"
        probe += "    except OSError: time.sleep(0.1)\nelse: raise SystemExit(1)\n"
        assert lab.run("a", [sys.executable, "-c", probe]).returncode == 0
        # A host's only route is the bridge: nothing it sends can leave the lab.
        routes = lab.run("a", ["ip", "route"]).stdout.strip().splitlines()
        assert routes == ["10.77.0.0/24 dev eth0 proto kernel scope link src 10.77.0.1"]
        sleeper = subprocess.Popen(lab.command("a", ["sleep", "300"]))
        # `ip netns exec` enters the namespace after Popen returns: wait for it to get there.
        deadline = time.monotonic() + 10
        while not (pids := lab.pids(lab.hosts["a"].name)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pids, "the sleeper runs inside host a"
    finally:
        lab.close()
    server.wait(timeout=10)
    sleeper.wait(timeout=10)
    assert lab.leftovers() == []
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not (tmp_path / "lab").exists()


def test_close_after_a_partial_start(tmp_path: Path) -> None:
    lab = Lab(tmp_path / "lab")
    lab.start_bridge()
    lab.add_host("a")
    with pytest.raises(RuntimeError, match="exists"):
        lab._add_ns(lab.hosts["a"].name)  # a step that fails half-way through a build
    lab.close()
    lab.close()  # twice is fine
    assert lab.leftovers() == []
