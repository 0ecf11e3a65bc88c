"""The two-node tests' "hosts" (``pipeline.testing.netns``): where namespaces cannot be made the tests skip naming
what is missing (a failure under ``CI=true``); pairs made at the same time get their own names and subnets, their
addresses exist only inside the pair, and a pair is removed even when the code using it fails."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pipeline.testing import netns


def test_without_root_the_tests_skip_naming_it_and_ci_fails(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    reason = netns.netns_unavailable()
    assert reason == ("network namespaces need root (these tests run two hosts in two namespaces joined by a veth "
                      "pair)")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"^network namespaces need root"):
        netns.require_netns()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"^CI cannot run the two-node tests: network namespaces need root"):
        netns.require_netns()


def test_two_pairs_are_apart_reach_only_each_other_and_go_even_on_failure():
    netns.require_netns()
    with (pytest.raises(RuntimeError, match="the code using the pairs failed"), netns.two_nodes() as one,
          netns.two_nodes() as two):
        names = {one.a.ns, one.b.ns, two.a.ns, two.b.ns}
        assert len(names) == 4 and names <= set(netns.namespaces())
        assert one.index != two.index and len({one.a.address, one.b.address, two.a.address, two.b.address}) == 4
        host = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True, check=True).stdout
        assert not any(f" {node.address}/" in host for node in (one.a, one.b, two.a, two.b))  # not on the host
        server = (f"import socket; s = socket.create_server(('{one.a.address}', 29499)); print('up', flush=True); "
                  "s.accept()")
        listen = one.a.popen([sys.executable, "-c", server], stdout=subprocess.PIPE, text=True)
        assert listen.stdout.readline().strip() == "up"
        probe = "import socket, sys; socket.create_connection((sys.argv[1], 29499), timeout=2)"
        assert one.b.run([sys.executable, "-c", probe, one.a.address], capture_output=True).returncode == 0
        assert two.b.run([sys.executable, "-c", probe, one.a.address], capture_output=True).returncode != 0
        raise RuntimeError("the code using the pairs failed")
    assert not names & set(netns.namespaces())  # both pairs removed, and the listener with them
    assert listen.wait(timeout=10) is not None
    listen.stdout.close()
