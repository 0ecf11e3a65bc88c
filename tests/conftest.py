"""Shared fixtures: repository paths, the GRID clips, and an offline environment for every test."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
GRID_DIR = REPO / "tests" / "fixtures" / "grid"  # vendored, with their CC BY 4.0 attribution

os.environ.setdefault("DVC_NO_ANALYTICS", "1")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def grid_dir() -> Path:
    """The 11 real GRID clips vendored in ``tests/fixtures/grid``."""
    return GRID_DIR


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests save things a person may want to look at (contact sheets, grids)."""
    out = REPO / "test-artifacts"
    out.mkdir(exist_ok=True)
    return out


def pytest_collection_modifyitems(config, items):
    """The longest tests first, longest of all first; then the groups that must stay on one worker; then the rest
    in file order.

    ``make test`` runs two workers and hands out tests in this order (``--no-loadscope-reorder``): the longest
    processing time first, so that the thousands of short tests fill the end of the run on both workers. Started
    late, the paper smoke run (8-11 minutes on one core) was the run's tail while the other worker sat idle.
    ``@pytest.mark.longest(seconds)`` gives a test's measured duration in a ``make test`` run."""
    def rank(item) -> tuple[int, float]:
        longest = item.get_closest_marker("longest")
        if longest is not None:
            return 0, -float(longest.args[0])
        return (1 if item.get_closest_marker("xdist_group") is not None else 2), 0.0

    items.sort(key=rank)  # stable: file order within each rank
    _group_node_ids(config, items)


def _group_node_ids(config, items) -> None:
    """What ``--dist loadgroup`` needs and pytest-xdist 3.8 no longer does under pytest 9: the ``@group`` suffix on
    the node id of each ``xdist_group`` test, by which the controller hands a group to one worker.

    xdist sets ``item._nodeid``, but pytest 9 reads the node id from ``item._id``, so every group was silently
    split over both workers: the tiny DAG, the S3 store, the Ray cluster and the predict cases each set up their
    module's fixtures on both (tests/test_conftest.py checks that the suffix is there)."""
    if not getattr(config.option, "loadgroup", False):  # only in an xdist worker of a loadgroup run
        return
    from _pytest.nodeid import NodeId

    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        if names and "@" not in item.nodeid.rsplit("]", 1)[-1]:  # not already suffixed (a fixed xdist)
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(names)}")


# What the suite starts must end with it: SeaweedFS stores, Ray nodes, torchrun agents and network namespaces. Every
# process the suite starts inherits this marker in its environment, so the check finds only this run's leftovers
# (other runs on the same machine have their own), and a helper that forgot to stop something fails the run.
_MARKER = "S2F_TEST_RUN"
os.environ.setdefault(_MARKER, f"{os.getpid()}-{os.urandom(4).hex()}")
_SERVICES = ("weed", "raylet", "gcs_server", "ray::", "torch.distributed.run", "torchrun", "plasma_store")


def _leftovers() -> list[str]:
    marker = f"{_MARKER}={os.environ[_MARKER]}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes()
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if marker in environ.split(b"\0") and any(name in args for name in _SERVICES):
            found.append(f"pid {proc.name}: {args[:120]}")
    from pipeline.testing.netns import namespaces, run_tag

    found += [f"network namespace {ns}" for ns in namespaces() if ns.endswith((f"-{run_tag()}-a", f"-{run_tag()}-b"))]
    return found


def pytest_sessionfinish(session, exitstatus):
    """At the very end of the run (the controller, under xdist): fail it if any of its services or namespaces is
    still there, after a few seconds' grace for processes that are being killed."""
    import time

    if hasattr(session.config, "workerinput"):  # an xdist worker: the controller checks once all have ended
        return
    deadline = time.monotonic() + 10
    left = _leftovers()
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = _leftovers()
    if left:
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            "error: the test run left these behind:\n  " + "\n  ".join(left), red=True)
        session.exitstatus = 1
