"""No-op DVC latency (docs/design.md, Budgets): ``dvc status`` under 1 s and ``dvc repro`` with nothing to do under 2 s.

    python bench/bench_dvc.py                   # the current dir, if its DAG is fully run (else says so, exit 0)
    python bench/bench_dvc.py /tmp/demo1        # a project dir whose `dvc repro` has finished
    python bench/bench_dvc.py --tiny            # build + run a tiny project in a temp dir (~1-2 min), then time it

Times the real ``dvc`` CLI as a user runs it (process start-up included; ``dvc --version`` is printed as the
start-up floor), median of ``--repeats`` runs each. Only measures: when ``dvc status`` reports any changed stage
the project is not fully run and nothing is timed (a "no-op" repro would run stages); a repro that runs a stage
anyway is reported and stops the benchmark.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["DVC_NO_ANALYTICS"] = "1"

from pipeline.testing.project import make_tiny_project, ran_stages, run_dvc, stage_names  # noqa: E402

BUDGETS = {"status": 1.0, "repro": 2.0}  # seconds, docs/design.md, Budgets


def timed(project: Path, *args: str) -> tuple[float, str]:
    """Wall seconds of one ``dvc *args`` in ``project`` and its stdout; raises if it fails."""
    start = time.perf_counter()
    proc = run_dvc(project, *args)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed in {project}:\n{proc.stdout}\n{proc.stderr}")
    return seconds, proc.stdout


def changed(project: Path) -> dict:
    """``dvc status --json`` of the project (empty when every stage is up to date)."""
    return json.loads(run_dvc(project, "status", "--json", check=True).stdout or "{}")


def bench(project: Path, repeats: int) -> int:
    if not (project / "dvc.yaml").is_file() or not (project / "dvc.lock").is_file():
        print(f"{project}: no dvc.yaml + dvc.lock (never run): nothing to time; use a finished project or --tiny")
        return 0
    pending = changed(project)
    if pending:
        names = ", ".join(sorted(pending)[:4]) + (", ..." if len(pending) > 4 else "")
        print(f"{project}: {len(pending)} stage(s) not up to date ({names}): a repro would run them, so nothing "
              "is timed; use a finished project or --tiny")
        return 0
    n_stages = len(stage_names(project))
    floor = statistics.median(timed(project, "--version")[0] for _ in range(repeats))
    print(f"{project}: {n_stages} stages, all up to date; median of {repeats} runs, dvc start-up floor {floor:.2f} s")
    for command in ("status", "repro"):
        times = []
        for _ in range(repeats):
            seconds, out = timed(project, command)
            ran = ran_stages(out)
            if ran:
                print(f"  dvc {command} ran stage(s) {', '.join(sorted(ran))}: not a no-op, stopping")
                return 1
            times.append(seconds)
        median, budget = statistics.median(times), BUDGETS[command]
        verdict = "meets" if median < budget else "MISSES"
        print(f"  dvc {command:6s} median {median:5.2f} s (min {min(times):.2f}, max {max(times):.2f}) | "
              f"budget {budget:.0f} s | {median / budget:.0%} of budget ({verdict})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", nargs="?", default=".", help="a fully run project dir (default: current dir)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="build and run a tiny project in a temp dir first")
    args = parser.parse_args()
    if not args.tiny:
        return bench(Path(args.project).resolve(), args.repeats)
    with tempfile.TemporaryDirectory(prefix="bench-dvc-") as tmp:
        project = make_tiny_project(Path(tmp) / "tiny")
        start = time.perf_counter()
        run_dvc(project, "repro", check=True)
        print(f"tiny project: full dvc repro {time.perf_counter() - start:.1f} s")
        return bench(project, args.repeats)


if __name__ == "__main__":
    sys.exit(main())
