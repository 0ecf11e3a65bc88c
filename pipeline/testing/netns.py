"""Two "hosts" for a test: two Linux network namespaces joined by one veth pair, made and removed by the test.

``two_nodes()`` creates namespaces ``s2f-<index>-<pid>-<run>-a`` and ``-b`` (``<pid>``: the creating process,
``<run>``: a tag of the test run, :func:`run_tag`), a veth pair
``s2f<index>a`` / ``s2f<index>b`` with one end in each, the addresses ``10.213.<x>.<y>`` of one /30 subnet that is
unique to this pair (``<index>`` is taken under a lock among the pairs that exist now), and ``lo`` up in both. Nothing
is bridged to any other network: the veth's two ends live only inside the two namespaces, so the addresses exist
nowhere else and traffic between them never leaves the pair. At exit, even on failure, every process still running
in either namespace is SIGKILLed (by id, from ``ip netns pids``) and both namespaces are deleted, which deletes the
veth pair. Pairs left behind by a process that died without cleaning up (its ``<pid>`` no longer runs) are removed
the next time a pair is made.

Needs root and iproute2's ``ip``: :func:`netns_unavailable` says in one sentence what is missing (tests skip with it,
and fail under ``CI=true``).
"""
from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

PREFIX = "s2f-"
_NAME = re.compile(rf"^{PREFIX}(\d+)-(\d+)-(\w+)-([ab])$")
_LOCK = Path("/tmp/s2f-netns.lock")
_SUBNETS = 16384  # /30 subnets of 10.213.0.0/16


def run_tag() -> str:
    """A short tag of the test run that makes a pair (from ``S2F_TEST_RUN``, which tests/conftest.py sets once per
    run), so that the run's end-of-run check can tell its own namespaces from another run's."""
    import hashlib

    return hashlib.sha1(os.environ.get("S2F_TEST_RUN", "none").encode()).hexdigest()[:8]


def netns_unavailable() -> str | None:
    """None when this process can make network namespaces, else one sentence saying what is missing."""
    if os.geteuid() != 0:
        return "network namespaces need root (these tests run two hosts in two namespaces joined by a veth pair)"
    if shutil.which("ip") is None:
        return "the 'ip' command (Debian's iproute2) is missing: `make test` installs it, or apt-get install iproute2"
    probe = f"{PREFIX}probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace here: {made.stderr.strip() or made.returncode}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def namespaces() -> list[str]:
    """Names of every namespace this helper made that exists now (``ip netns list``)."""
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(PREFIX)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _pids_in(ns: str) -> list[int]:
    out = _ip("netns", "pids", ns, check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def remove(ns: str) -> None:
    """SIGKILL every process in namespace ``ns`` (one by one, by id) and delete it (and so its veth end)."""
    for _ in range(50):
        pids = _pids_in(ns)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    _ip("netns", "del", ns, check=False)


def remove_stale() -> list[str]:
    """Remove the pairs whose creating process is gone; return their namespace names."""
    stale = []
    for ns in namespaces():
        match = _NAME.match(ns)
        if match and not _alive(int(match.group(2))):
            remove(ns)
            stale.append(ns)
    return stale


@dataclass(frozen=True)
class Node:
    """One end of the pair: its namespace, its veth interface and its address."""

    ns: str
    dev: str
    address: str

    def command(self, argv: Sequence[str]) -> list[str]:
        """``argv`` run inside this node's namespace (same filesystem, same users; its own network)."""
        return ["ip", "netns", "exec", self.ns, *argv]

    def popen(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        """Start ``argv`` in this namespace in a new process group (``os.killpg`` stops it and its children)."""
        kwargs.setdefault("start_new_session", True)
        return subprocess.Popen(self.command(argv), **kwargs)

    def run(self, argv: Sequence[str], check: bool = False, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(argv), check=check, **kwargs)

    def pids(self) -> list[int]:
        """Every process running in this namespace now."""
        return _pids_in(self.ns)

    def kill_all(self) -> None:
        """SIGKILL every process in this namespace (a machine that dies), one by one, by id; the namespace stays."""
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def link(self, up: bool) -> None:
        """Take this node's veth up or down (down: the other node can no longer reach it, nor it the other)."""
        _ip("-n", self.ns, "link", "set", self.dev, "up" if up else "down")


@dataclass(frozen=True)
class Pair:
    a: Node
    b: Node
    index: int


def _take_index() -> int:
    used = {int(m.group(1)) for m in map(_NAME.match, namespaces()) if m}
    start = (os.getpid() * 7) % _SUBNETS
    for step in range(_SUBNETS):
        index = (start + step) % _SUBNETS
        if index not in used:
            return index
    raise RuntimeError("no free subnet for a namespace pair")


#: TCP retransmissions before a connection to a silent peer fails, in both namespaces: 5 is about 6 s; the kernel's
#: default 15 is about 15 minutes, which a survivor of a node cut off the network can spend blocked in a send (a
#: torchrun agent or rank did, after gloo's own timeout had fired). Cluster nodes can set the same sysctl.
TCP_RETRIES2 = 5


@contextmanager
def two_nodes() -> Iterator[Pair]:
    """Make a namespace pair (see the module's doc), yield it, and remove it at exit, even on failure."""
    made: list[str] = []
    with open(_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            remove_stale()
            index = _take_index()
            base = 4 * index  # the /30's network address, within 10.213.0.0/16
            names = [f"{PREFIX}{index}-{os.getpid()}-{run_tag()}-{side}" for side in "ab"]
            devs = [f"s2f{index}{side}" for side in "ab"]
            addresses = [f"10.213.{(base + host) >> 8}.{(base + host) & 255}" for host in (1, 2)]
            for ns in names:
                _ip("netns", "add", ns)
                made.append(ns)
            # create the pair inside namespace a, then move one end: it never exists in the machine's own namespace
            _ip("-n", names[0], "link", "add", devs[0], "type", "veth", "peer", "name", devs[1], "netns", names[1])
            for ns, dev, address in zip(names, devs, addresses):
                _ip("-n", ns, "addr", "add", f"{address}/30", "dev", dev)
                _ip("-n", ns, "link", "set", dev, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
                subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv4.tcp_retries2={TCP_RETRIES2}"],
                               check=True, capture_output=True)
        except BaseException:
            for ns in made:
                remove(ns)
            raise
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    try:
        yield Pair(Node(names[0], devs[0], addresses[0]), Node(names[1], devs[1], addresses[1]), index)
    finally:
        for ns in made:
            remove(ns)


def require_netns() -> None:
    """For a test (or fixture) that needs two namespaces: skip it, saying what is missing, where they cannot be
    made; under ``CI=true`` that is a failure instead (CI runs as root with iproute2 installed by ``make test``)."""
    import pytest

    reason = netns_unavailable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI cannot run the two-node tests: {reason}")
    pytest.skip(reason)
