"""No-op DVC latency (docs/design.md, Budgets): ``dvc status`` under 1 s and ``dvc repro`` with nothing to do under 2 s.

    python bench/bench_dvc.py                   # the current dir, if its DAG is fully run (else says so, exit 0)
    python bench/bench_dvc.py /tmp/demo1        # a project dir whose `dvc repro` has finished
    python bench/bench_dvc.py --tiny            # build + run a tiny project in a temp dir (~1-2 min), then time it
    python bench/bench_dvc.py --breakdown DIR   # where a no-op status spends its time, and how that grows per stage
    python bench/bench_dvc.py --growth-only     # only the synthetic per-stage growth (no project needed, ~1.5 min)

Times the real ``dvc`` CLI as a user runs it (process start-up included; ``dvc --version`` is printed as the
start-up floor), median of ``--repeats`` runs each. Only measures: when ``dvc status`` reports any changed stage
the project is not fully run and nothing is timed (a "no-op" repro would run stages); a repro that runs a stage
anyway is reported and stops the benchmark.

After the timings (unless ``--no-breakdown``; one extra run) and in ``--breakdown`` mode (``--repeats`` runs) it
runs no-op ``dvc status`` in-process, each run in a fresh interpreter, and splits its time into buckets, each
instant charged to the first of these with a call on the stack: (d) imports (start-up: module loading, also DVC's
lazy imports later on), (a) params re-reads (``ParamsDependency.read_params``/``read_param_file`` loading
``params.yaml``, plus the one read of it for ``${}`` interpolation of dvc.yaml), (b) YAML parsing (ruamel
``parse_yaml`` and DVC's ``strictyaml.load``, schema validation included, of dvc.yaml and dvc.lock), (c)
hashing/stat of deps and outs (``Output.workspace_status``/``get_hash``/``exists`` and dvc_data's build, hash and
state DB), (e) the rest (stage/graph building, git, CLI). The buckets come from timing wrappers put around those
functions (and importlib's ``_find_and_load``): cheap, so the seconds match a real run. Wall seconds are the
fastest run's; CPU seconds (each bucket's minimum over the runs) are shown beside them because other load on a
small machine stretches wall time far more than CPU time. ``--breakdown`` adds a cProfile run of the same command
as a cross-check (its times are inflated by the profiler; its cumulative times overlap). Then the project's own
cost drivers: stages, dvc.lock lines, deps/outs/params entries in dvc.lock and params.yaml size.

``--breakdown`` (and ``--growth-only``) also builds synthetic DVC projects (git + dvc init in temp dirs; a chain of
``echo`` stages, each with one small input file, the previous stage's output, three of its six params in a shared
params.yaml and one output) of ``--sizes`` stages, runs them once (``dvc repro``), times the no-op ``dvc status``
CLI and its buckets over ``--repeats`` runs, and fits the CPU cost per added stage (least squares and step by
step, ms per stage). This part needs only ``dvc``, not the project package, so it runs while ``pipeline/`` is
being restructured (~1.5-2 min on 2 busy cores). Prints numbers and ratios only; no pass/fail.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["DVC_NO_ANALYTICS"] = "1"

BUDGETS = {"status": 1.0, "repro": 2.0}  # seconds, docs/design.md, Budgets
#: breakdown buckets in report order; each instant goes to the first of PRIORITY on the stack, else "rest"
BUCKETS = ("params", "yaml", "hash", "import", "rest")
PRIORITY = ("import", "params", "yaml", "hash")
LABELS = {
    "params": "(a) params re-reads",
    "yaml": "(b) YAML parse dvc.yaml/.lock",
    "hash": "(c) hash/stat deps+outs",
    "import": "(d) imports/start-up",
    "rest": "(e) rest",
}
GROWTH_SIZES = (5, 10, 20, 40)


# --- the project package's helpers, or stand-ins when it cannot be imported (it may be mid-restructure) ---------

_HELPERS: dict = {}


def _project_helpers() -> dict:
    """``make_tiny_project``, ``ran_stages``, ``run_dvc``, ``stage_names``: the project's, else plain stand-ins."""
    if _HELPERS:
        return _HELPERS
    try:
        from pipeline.testing.project import make_tiny_project, ran_stages, run_dvc, stage_names
        _HELPERS.update(make_tiny_project=make_tiny_project, ran_stages=ran_stages, run_dvc=run_dvc,
                        stage_names=stage_names, error=None)
    except Exception as exc:  # noqa: BLE001 - anything the package raises on import: fall back, say why for --tiny
        _HELPERS.update(make_tiny_project=None, ran_stages=_ran_stages, run_dvc=_run_dvc, stage_names=_stage_names,
                        error=f"{type(exc).__name__}: {exc}")
    return _HELPERS


def _dvc_command() -> list[str]:
    exe = Path(sys.executable).parent / "dvc"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "dvc"]


def _tool_env() -> dict[str, str]:
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    for key, value in (("GIT_AUTHOR_NAME", "bench"), ("GIT_AUTHOR_EMAIL", "bench@speech2face.invalid"),
                       ("GIT_COMMITTER_NAME", "bench"), ("GIT_COMMITTER_EMAIL", "bench@speech2face.invalid")):
        env.setdefault(key, value)
    return env


def _run_dvc(cwd, *args: str, check: bool = False, timeout: float | None = 900) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*_dvc_command(), *args], cwd=cwd, env=_tool_env(), capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed ({proc.returncode}) in {cwd}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _ran_stages(dvc_output: str) -> set[str]:
    import re
    return set(re.findall(r"^Running stage '([^']+)':", dvc_output, flags=re.M))


def _stage_names(project) -> list[str]:
    proc = _run_dvc(project, "stage", "list", "--name-only", check=True)
    return sorted(line.strip() for line in proc.stdout.splitlines() if line.strip())


def run_dvc(project, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return _project_helpers()["run_dvc"](project, *args, check=check)


# --- the budget timings (unchanged behaviour) ----------------------------------------------------------------------


def timed(project: Path, *args: str) -> tuple[float, str]:
    """Wall seconds of one ``dvc *args`` in ``project`` and its stdout; raises if it fails."""
    seconds, _, stdout = timed_cpu(project, *args)
    return seconds, stdout


def timed_cpu(project: Path, *args: str) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the dvc process, stdout) of one ``dvc *args`` in ``project``."""
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = run_dvc(project, *args)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed in {project}:\n{proc.stdout}\n{proc.stderr}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return seconds, cpu, proc.stdout


def changed(project: Path) -> dict:
    """``dvc status --json`` of the project (empty when every stage is up to date)."""
    return json.loads(run_dvc(project, "status", "--json", check=True).stdout or "{}")


def fully_run(project: Path) -> bool:
    """True when ``project`` has dvc.yaml + dvc.lock and every stage is up to date; else says why (and is False)."""
    if not (project / "dvc.yaml").is_file() or not (project / "dvc.lock").is_file():
        print(f"{project}: no dvc.yaml + dvc.lock (never run): nothing to time; use a finished project or --tiny")
        return False
    pending = changed(project)
    if pending:
        names = ", ".join(sorted(pending)[:4]) + (", ..." if len(pending) > 4 else "")
        print(f"{project}: {len(pending)} stage(s) not up to date ({names}): a repro would run them, so nothing "
              "is timed; use a finished project or --tiny")
        return False
    return True


def bench(project: Path, repeats: int, then=None) -> int:
    """The budget table; ``then(project, {"status": median s, "repro": median s})`` runs after it when timed."""
    if not fully_run(project):
        return 0
    helpers = _project_helpers()
    n_stages = len(helpers["stage_names"](project))
    floor = statistics.median(timed(project, "--version")[0] for _ in range(repeats))
    print(f"{project}: {n_stages} stages, all up to date; median of {repeats} runs, dvc start-up floor {floor:.2f} s")
    medians: dict[str, float] = {}
    for command in ("status", "repro"):
        times = []
        for _ in range(repeats):
            seconds, out = timed(project, command)
            ran = helpers["ran_stages"](out)
            if ran:
                print(f"  dvc {command} ran stage(s) {', '.join(sorted(ran))}: not a no-op, stopping")
                return 1
            times.append(seconds)
        median, budget = statistics.median(times), BUDGETS[command]
        medians[command] = median
        verdict = "meets" if median < budget else "MISSES"
        print(f"  dvc {command:6s} median {median:5.2f} s (min {min(times):.2f}, max {max(times):.2f}) | "
              f"budget {budget:.0f} s | {median / budget:.0%} of budget ({verdict})")
    if then is not None:
        then(project, medians)
    return 0


# --- in-process breakdown (runs in a fresh child interpreter, so that imports are counted as a user pays them) ---


class _Accountant:
    """Charges wall time to buckets: at every entry/exit of a wrapped function the time since the last event goes to
    the first bucket of PRIORITY with a wrapped call on the (main thread's) stack, else to "rest"."""

    def __init__(self) -> None:
        import threading
        self.main = threading.get_ident()
        self.get_ident = threading.get_ident
        self.depth = dict.fromkeys(PRIORITY, 0)
        self.seconds = dict.fromkeys(BUCKETS, 0.0)
        self.cpu = dict.fromkeys(BUCKETS, 0.0)  # CPU seconds of this process: robust to other load on the machine
        self.overhead = 0.0
        self.params_parse_cpu = 0.0
        self.calls = 0
        self.counts: dict[str, int] = {}
        self.parses: dict[str, int] = {}
        self.last, self.last_cpu = time.perf_counter(), time.process_time()

    def charge(self) -> None:
        now, now_cpu = time.perf_counter(), time.process_time()
        for bucket in PRIORITY:
            if self.depth[bucket]:
                break
        else:
            bucket = "rest"
        self.seconds[bucket] += now - self.last
        self.cpu[bucket] += now_cpu - self.last_cpu
        if bucket == "params" and self.depth["yaml"]:  # the YAML parse inside a params read, CPU seconds
            self.params_parse_cpu += now_cpu - self.last_cpu
        self.last, self.last_cpu = now, now_cpu

    def wrap(self, fn, bucket: str, count: str | None = None, path_at: int | None = None):
        import functools
        acct = self

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if acct.get_ident() != acct.main:
                return fn(*args, **kwargs)
            acct.charge()
            acct.depth[bucket] += 1
            acct.calls += 1
            if count:
                acct.counts[count] = acct.counts.get(count, 0) + 1
            if path_at is not None:
                path = args[path_at] if len(args) > path_at else kwargs.get("path")
                name = os.path.basename(str(path))
                acct.parses[name] = acct.parses.get(name, 0) + 1
            try:
                return fn(*args, **kwargs)
            finally:
                acct.charge()
                acct.depth[bucket] -= 1

        wrapper.__bench_original__ = fn
        return wrapper


#: (module, "function" or "Class.method" or "Class.property", bucket, counter name, index of a path argument)
_TARGETS = (
    ("dvc.dependency.param", "read_param_file", "params", "read_param_file", None),
    ("dvc.dependency.param", "ParamsDependency.read_params", "params", "ParamsDependency.read_params", None),
    ("dvc.dependency.param", "ParamsDependency.workspace_status", "params", None, None),
    ("dvc.parsing.context", "Context.load_from", "params", "Context.load_from (interpolation)", None),
    ("dvc.utils.serialize._yaml", "parse_yaml", "yaml", "parse_yaml", 1),
    ("dvc.utils.strictyaml", "load", "yaml", "strictyaml.load", None),
    ("dvc.output", "Output.workspace_status", "hash", None, None),
    ("dvc.output", "Output.status", "hash", None, None),
    ("dvc.output", "Output.changed", "hash", None, None),
    ("dvc.output", "Output.get_hash", "hash", "Output.get_hash", None),
    ("dvc.output", "Output._build", "hash", None, None),
    ("dvc.output", "Output.changed_checksum", "hash", None, None),
    ("dvc.output", "Output.changed_cache", "hash", None, None),
    ("dvc.output", "Output.changed_meta", "hash", None, None),
    ("dvc.output", "Output.exists", "hash", None, None),
    ("dvc.output", "Output.get_meta", "hash", None, None),
    ("dvc.dependency.base", "Dependency.workspace_status", "hash", None, None),
    ("dvc_data.hashfile.build", "build", "hash", None, None),
    ("dvc_data.hashfile.hash", "hash_file", "hash", "hash_file", None),
    ("dvc_data.hashfile.state", "State.__init__", "hash", None, None),
    ("dvc_data.hashfile.state", "State.get", "hash", "State.get", None),
    ("dvc_data.hashfile.state", "State.get_many", "hash", None, None),
    ("dvc_data.hashfile.state", "State.save", "hash", "State.save", None),
    ("dvc_data.hashfile.state", "State.save_many", "hash", None, None),
    ("dvc_data.hashfile.state", "State.save_link", "hash", None, None),
)


def _patch(acct: _Accountant) -> list[str]:
    """Put timing wrappers around _TARGETS (and every module-level alias of a patched function); returns misses."""
    import importlib
    missed = []
    for module_name, attr, bucket, count, path_at in _TARGETS:
        try:
            module = importlib.import_module(module_name)
            if "." in attr:
                cls_name, meth = attr.split(".")
                cls = getattr(module, cls_name)
                orig = cls.__dict__[meth]
                if isinstance(orig, property):
                    setattr(cls, meth, property(acct.wrap(orig.fget, bucket, count, path_at), orig.fset, orig.fdel))
                elif isinstance(orig, (classmethod, staticmethod)):
                    setattr(cls, meth, type(orig)(acct.wrap(orig.__func__, bucket, count, path_at)))
                else:
                    setattr(cls, meth, acct.wrap(orig, bucket, count, path_at))
                continue
            orig = getattr(module, attr)
            wrapped = acct.wrap(orig, bucket, count, path_at)
            for other in list(sys.modules.values()):  # `from m import f` copies made before the patch
                if getattr(other, "__name__", "").split(".")[0] in ("dvc", "dvc_data"):
                    for key, value in list(vars(other).items()):
                        if value is orig:
                            setattr(other, key, wrapped)
        except Exception as exc:  # noqa: BLE001 - another DVC version: report, time the rest
            missed.append(f"{module_name}.{attr} ({type(exc).__name__})")
    return missed


def _cprofile_summary(prof, total: float) -> dict:
    import pstats
    stats = pstats.Stats(prof).stats  # (file, line, func) -> (cc, ncalls, tottime, cumtime, callers)
    roots = {
        "params": [("dvc/dependency/param.py", "read_param_file"), ("dvc/dependency/param.py", "workspace_status"),
                   ("dvc/parsing/context.py", "load_from")],
        "yaml": [("dvc/utils/serialize/_yaml.py", "parse_yaml"), ("dvc/utils/strictyaml.py", "load")],
        "hash": [("dvc/output.py", "workspace_status"), ("dvc_data/hashfile/build.py", "build"),
                 ("dvc_data/hashfile/hash.py", "hash_file"), ("dvc_data/hashfile/state.py", "get")],
        "import": [("<frozen importlib._bootstrap>", "_find_and_load")],
    }
    out = {"total": total, "roots": [], "top": []}
    for bucket, wanted in roots.items():
        for suffix, func in wanted:
            hits = [(k, v) for k, v in stats.items() if k[2] == func and k[0].replace(os.sep, "/").endswith(suffix)]
            if hits:
                (key, (_, ncalls, _, cumtime, _)) = max(hits, key=lambda kv: kv[1][3])
                out["roots"].append([bucket, f"{suffix.split('/')[-1]}:{func}", ncalls, cumtime])
    for key, (_, ncalls, tottime, cumtime, _) in sorted(stats.items(), key=lambda kv: -kv[1][2])[:12]:
        path = key[0].replace(os.sep, "/")
        short = "/".join(path.split("site-packages/")[-1].split("/")[-3:])
        out["top"].append([f"{short}:{key[1]}:{key[2]}", ncalls, tottime, cumtime])
    return out


def _child(project: str, out_json: str, cprofile: bool) -> int:
    """In a fresh interpreter: one in-process ``dvc status -q`` in ``project``; writes the breakdown to out_json."""
    if cprofile:
        import cProfile
        prof = cProfile.Profile()
        start = time.perf_counter()
        prof.enable()
        from dvc.cli import main as dvc_main
        os.chdir(project)
        ret = dvc_main(["status", "-q"])
        prof.disable()
        result = {"ret": ret, "cprofile": _cprofile_summary(prof, time.perf_counter() - start)}
    else:
        import importlib
        acct = _Accountant()
        start = time.perf_counter()
        # Module loads: CPython's import statement and importlib.import_module both call _find_and_load of the
        # frozen importlib when a module is not loaded yet (import_module also when it is, cheaply); wrapping it,
        # not builtins.__import__, keeps DVC's many function-level `import` statements of loaded modules unwrapped.
        bootstrap = sys.modules.get("_frozen_importlib") or importlib._bootstrap
        real_find_and_load = bootstrap._find_and_load
        bootstrap._find_and_load = acct.wrap(real_find_and_load, "import")
        from dvc.cli import main as dvc_main
        acct.charge()
        rest_before, rest_cpu_before = acct.seconds["rest"], acct.cpu["rest"]
        missed = _patch(acct)  # its imports are charged to "import" (status would import those modules anyway)
        acct.charge()
        acct.overhead = acct.seconds["rest"] - rest_before  # the patching itself is not dvc's time
        acct.seconds["rest"], acct.cpu["rest"] = rest_before, rest_cpu_before
        os.chdir(project)
        try:
            ret = dvc_main(["status", "-q"])
        finally:
            acct.charge()
            bootstrap._find_and_load = real_find_and_load
        wall = time.perf_counter() - start
        probe = _Accountant()  # what one wrapped call costs: the timing error the wrappers add
        noop = probe.wrap(lambda: None, "hash")
        t0 = time.perf_counter()
        for _ in range(20000):
            noop()
        per_call = (time.perf_counter() - t0) / 20000
        from ruamel.yaml import YAML
        import dvc
        backend = "C (ruamel.yaml.clib)" if "clib" in YAML(typ="safe").Parser.__module__ else "pure Python"
        result = {"ret": ret, "wall": wall, "seconds": acct.seconds, "cpu": acct.cpu, "counts": acct.counts,
                  "params_parse_cpu": acct.params_parse_cpu,
                  "parses": acct.parses,
                  "missed": missed, "patching": acct.overhead, "wrapper_calls": acct.calls,
                  "wrapper_cost": acct.calls * per_call, "yaml_backend": backend, "dvc": dvc.__version__}
    Path(out_json).write_text(json.dumps(result), encoding="utf-8")
    return 0


def profile_status(project: Path, cprofile: bool = False, runs: int = 1) -> dict:
    """Run ``_child`` ``runs`` times, each in a fresh interpreter (this one's, so the same dvc); the result of the
    fastest run (the least disturbed by other load on the machine), with every run's total in "totals"."""
    results = [_profile_once(project, cprofile) for _ in range(max(runs, 1))]
    if cprofile:
        return results[-1]
    totals = [sum(r["seconds"].values()) for r in results]
    result = results[totals.index(min(totals))]
    result["runs"], result["totals"] = len(results), totals
    result["cpu_min"] = {b: min(r["cpu"][b] for r in results) for b in BUCKETS}  # per bucket, over the runs
    result["params_parse_cpu"] = min(r["params_parse_cpu"] for r in results)
    return result


def _profile_once(project: Path, cprofile: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-dvc-prof-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_child", str(project), str(out)]
        proc = subprocess.run(cmd + (["--_cprofile"] if cprofile else []), env=_tool_env(), capture_output=True,
                              text=True, timeout=900)
        if proc.returncode != 0 or not out.is_file():
            raise RuntimeError(f"in-process dvc status failed in {project}:\n{proc.stdout}\n{proc.stderr[-3000:]}")
        result = json.loads(out.read_text(encoding="utf-8"))
    if result.get("ret"):
        raise RuntimeError(f"in-process dvc status in {project} returned {result['ret']} (not a clean no-op)")
    return result


def cli_status(project: Path, repeats: int) -> tuple[float, float, float]:
    """(median wall, min wall, min CPU) seconds of the real ``dvc status -q`` CLI over ``repeats`` runs."""
    runs = [timed_cpu(project, "status", "-q")[:2] for _ in range(repeats)]
    return statistics.median(w for w, _ in runs), min(w for w, _ in runs), min(c for _, c in runs)


def params_reads(result: dict) -> int:
    """Parses of params files by DVC's params dependency (interpolation read excluded)."""
    return result["counts"].get("read_param_file", 0)


def _load_note() -> str:
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return ""
    return f"; load average {one:.1f} (1 min) / {five:.1f} (5 min) on {os.cpu_count()} CPUs"


def print_breakdown(project: Path, repeats: int, with_cprofile: bool, runs: int | None = None,
                    cli: float | None = None) -> dict:
    """Buckets of ``runs`` (default ``repeats``) in-process runs beside the CLI median (measured unless given)."""
    result = profile_status(project, runs=runs or repeats)
    secs, total = result["seconds"], sum(result["seconds"].values())
    cpu, total_cpu = result["cpu_min"], sum(result["cpu_min"].values())
    cli_note = ""
    if cli is None:
        cli, cli_min, cli_cpu = cli_status(project, repeats)
        cli_note = f", min {cli_min:.2f} s, CPU {cli_cpu:.2f} s"
    reads = params_reads(result)
    interp = result["counts"].get("Context.load_from (interpolation)", 0)
    runs = ", ".join(f"{t:.2f}" for t in result["totals"])
    print(f"  no-op dvc status breakdown, in-process: {total:.2f} s wall (the fastest of {result['runs']} run(s), "
          f"each in a fresh interpreter: {runs} s), {total_cpu:.2f} s CPU; real CLI median {cli:.2f} s{cli_note}")
    print(f"    (dvc {result['dvc']}, ruamel safe parser {result['yaml_backend']}; the timing wrappers: "
          f"{result['wrapper_calls']} calls, ~{result['wrapper_cost'] * 1000:.0f} ms of the total{_load_note()})")
    print(f"    {'bucket':31s} {'wall':>6s} {'share':>6s} {'CPU':>6s} {'share':>6s}  (wall: the fastest run; CPU: "
          "each bucket's minimum over the runs)")
    for bucket in BUCKETS:
        note = ""
        if bucket == "params":
            per = cpu["params"] / reads * 1000 if reads else 0.0
            parse = result["params_parse_cpu"]
            note = (f"  {reads} params-file reads by params deps ({per:.0f} ms CPU each)"
                    + (f", +{interp} for ${{}} interpolation" if interp else "")
                    + f"; of the CPU {parse:.2f} s YAML parse, {cpu['params'] - parse:.2f} s DVC's key look-ups "
                    "(dpath) and comparison")
        elif bucket == "yaml":
            parses = ", ".join(f"{name} {n}" for name, n in sorted(result["parses"].items()))
            note = f"  ruamel parses by file: {parses}"
        elif bucket == "hash":
            c = result["counts"]
            note = (f"  Output.get_hash {c.get('Output.get_hash', 0)}, hash_file {c.get('hash_file', 0)}, "
                    f"state get {c.get('State.get', 0)} / save {c.get('State.save', 0)}")
        print(f"    {LABELS[bucket]:31s} {secs[bucket]:5.2f}s {secs[bucket] / total:6.0%} {cpu[bucket]:5.2f}s "
              f"{cpu[bucket] / total_cpu:6.0%}{note}")
    if result["missed"]:
        print(f"    (not wrapped in this DVC version, so counted under rest: {', '.join(result['missed'])})")
    if with_cprofile:
        prof = profile_status(project, cprofile=True)["cprofile"]
        print(f"  cProfile cross-check ({prof['total']:.2f} s under the profiler; cumulative times, overlapping):")
        for bucket, name, ncalls, cumtime in prof["roots"]:
            print(f"    {bucket:6s} {name:40s} {ncalls:6d} calls {cumtime:6.2f} s {cumtime / prof['total']:5.0%}")
        print("  cProfile top functions by own time:")
        for name, ncalls, tottime, cumtime in prof["top"]:
            print(f"    {name[-60:]:60s} {ncalls:7d} calls own {tottime:5.2f} s cum {cumtime:5.2f} s")
    result["cli"], result["total"], result["total_cpu"] = cli, total, total_cpu
    return result


# --- the project's own cost drivers ------------------------------------------------------------------------------


def _load_yaml(path: Path):
    text = path.read_text(encoding="utf-8")
    try:
        import yaml
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except ImportError:
        from ruamel.yaml import YAML
        return YAML(typ="safe").load(text) or {}


def _leaves(node) -> int:
    if isinstance(node, dict):
        return sum(_leaves(v) for v in node.values())
    return 1


def cost_drivers(project: Path) -> dict:
    lock = _load_yaml(project / "dvc.lock").get("stages", {}) or {}
    spec = _load_yaml(project / "dvc.yaml").get("stages", {}) or {}
    deps = [dep for stage in lock.values() for dep in stage.get("deps", []) or []]
    params_file = project / "params.yaml"
    drivers = {
        "stages": len(lock),
        "dvc.yaml stage entries": len(spec),
        "foreach/matrix entries": sum(1 for st in spec.values()
                                      if isinstance(st, dict) and ("foreach" in st or "matrix" in st)),
        "dvc.lock lines": len((project / "dvc.lock").read_text(encoding="utf-8").splitlines()),
        "dvc.yaml lines": len((project / "dvc.yaml").read_text(encoding="utf-8").splitlines()),
        "lock deps": len(deps),
        "lock dir deps": sum(1 for dep in deps if "nfiles" in dep or str(dep.get("md5", "")).endswith(".dir")),
        "lock .py deps": sum(1 for dep in deps if str(dep.get("path", "")).endswith(".py")),
        "lock outs": sum(len(st.get("outs", []) or []) for st in lock.values()),
        "lock params": sum(len(keys or {}) for st in lock.values() for keys in (st.get("params", {}) or {}).values()),
        "stages with params": sum(1 for st in lock.values() if st.get("params")),
        "params files": sorted({f for st in lock.values() for f in (st.get("params", {}) or {})}),
    }
    if params_file.is_file():
        text = params_file.read_text(encoding="utf-8")
        drivers.update({"params.yaml bytes": len(text.encode()), "params.yaml lines": len(text.splitlines()),
                        "params.yaml leaf keys": _leaves(_load_yaml(params_file))})
    return drivers


def print_cost_drivers(project: Path) -> dict:
    d = cost_drivers(project)
    n = max(d["stages"], 1)
    lock_lines, deps = d["dvc.lock lines"], d["lock deps"]
    print(f"  cost drivers: {d['stages']} stages ({d['dvc.yaml stage entries']} dvc.yaml entries, "
          f"{d['foreach/matrix entries']} foreach/matrix); dvc.yaml {d['dvc.yaml lines']} lines")
    print(f"    dvc.lock {lock_lines} lines ({lock_lines / n:.0f}/stage): {deps} dep entries ({deps / n:.1f}/stage; "
          f"{d['lock .py deps']} .py files, {d['lock dir deps']} directories), {d['lock outs']} outs")
    print(f"    {d['lock params']} params entries ({d['lock params'] / n:.1f}/stage) in {d['stages with params']} "
          f"stages, from {', '.join(d['params files']) or 'no params file'}")
    if "params.yaml bytes" in d:
        print(f"    params.yaml {d['params.yaml bytes']:,} bytes, {d['params.yaml lines']} lines, "
              f"{d['params.yaml leaf keys']} leaf keys (parsed whole on every read)")
    return d


# --- synthetic per-stage growth (pure dvc + temp dirs, independent of the project package) --------------------


def make_synthetic(root: Path, n: int) -> Path:
    """A git + DVC project with a chain of ``n`` echo stages, each: 1 input file, the previous output, 3 of 6 params
    of its own section of a shared params.yaml, 1 output."""
    import subprocess as sp
    root.mkdir(parents=True)
    sp.run(["git", "init", "-q"], cwd=root, check=True, env=_tool_env())
    _run_dvc(root, "init", "-q", check=True)
    (root / "in").mkdir()
    params, stages = [], []
    for i in range(n):
        params.append(f"s{i}:\n  seed: {i}\n  lr: 0.001\n  epochs: 3\n  width: 0.5\n  batch_size: 8\n"
                      f"  name: stage{i}\n")
        (root / "in" / f"s{i}.txt").write_text(f"input of s{i}\n" * 4, encoding="utf-8")
        deps = [f"in/s{i}.txt"] + ([f"s{i - 1}.out"] if i else [])
        stages.append(f"  s{i}:\n    cmd: echo s{i} > s{i}.out\n    deps:\n"
                      + "".join(f"      - {d}\n" for d in deps)
                      + f"    params:\n      - s{i}.seed\n      - s{i}.lr\n      - s{i}.epochs\n"
                      + f"    outs:\n      - s{i}.out\n")
    (root / "params.yaml").write_text("".join(params), encoding="utf-8")
    (root / "dvc.yaml").write_text("stages:\n" + "".join(stages), encoding="utf-8")
    return root


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (slope, intercept)."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return slope, my - slope * mx


def growth(sizes: list[int], repeats: int, project: dict | None = None) -> dict:
    """The synthetic growth table and its per-stage fits; ``project`` (from ``breakdown``) is set beside it."""
    print(f"per-stage growth, synthetic chains of echo stages ({repeats} run(s) per size{_load_note()}):")
    print("  CLI: real `dvc status -q`, wall min/median and CPU min; buckets: CPU seconds of in-process runs, each "
          "bucket's min; slopes fitted to CPU seconds (other load on the machine stretches wall time, hardly CPU)")
    rows = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-dvc-growth-") as tmp:
        for n in sizes:
            root = make_synthetic(Path(tmp) / f"n{n}", n)
            t0 = time.perf_counter()
            _run_dvc(root, "repro", "-q", check=True)
            repro_s = time.perf_counter() - t0
            pending = json.loads(_run_dvc(root, "status", "--json", check=True).stdout or "{}")
            if pending:
                print(f"  N={n}: still {len(pending)} changed stage(s) after repro; skipped")
                continue
            cli, cli_min, cli_cpu = cli_status(root, repeats)
            result = profile_status(root, runs=repeats)
            reads = params_reads(result)
            cpu = result["cpu_min"]
            rows.append({"n": n, "cli_cpu": cli_cpu, "cli_min": cli_min, "cli_med": cli, **cpu,
                         "total": sum(cpu.values()), "total-params": sum(cpu.values()) - cpu["params"],
                         "reads": reads, "repro": repro_s,
                         "ms_per_read": cpu["params"] / reads * 1000 if reads else 0.0,
                         "params_kb": (root / "params.yaml").stat().st_size / 1024,
                         "lock_lines": len((root / "dvc.lock").read_text(encoding="utf-8").splitlines())})
    if not rows:
        return {}
    print(f"  {'N':>3s} {'repro':>5s} {'lock':>4s} {'prmKB':>5s} {'reads':>5s} {'ms/rd':>5s} | {'CLI wall':>11s} "
          f"{'CPU':>5s} | {'in-proc':>7s} " + " ".join(f"{b:>6s}" for b in BUCKETS))
    for r in rows:
        print(f"  {r['n']:3d} {r['repro']:5.1f} {r['lock_lines']:4d} {r['params_kb']:5.1f} {r['reads']:5d} "
              f"{r['ms_per_read']:5.1f} | {r['cli_min']:5.2f}/{r['cli_med']:5.2f} {r['cli_cpu']:5.2f} | "
              f"{r['total']:7.2f} " + " ".join(f"{r[b]:6.2f}" for b in BUCKETS))
    ns = [r["n"] for r in rows]
    if len(rows) < 2:
        print("  (one size only: no slope to fit)")
        return {"rows": rows}
    cols = ["cli_cpu", "total", "total-params", *BUCKETS]
    fits = {c: _fit(ns, [r[c] for r in rows]) for c in cols}
    print(f"  least-squares slope over N={ns[0]}..{ns[-1]}, CPU ms per added stage: "
          + ", ".join(f"{c.replace('cli_cpu', 'CLI')} {fits[c][0] * 1000:.1f}" for c in cols)
          + f"; params reads {_fit(ns, [r['reads'] for r in rows])[0]:.2f} per stage")
    print(f"  intercepts (CPU s at N=0): CLI {fits['cli_cpu'][1]:.2f}, in-process {fits['total'][1]:.2f}, "
          f"import {fits['import'][1]:.2f}")
    steps = []
    for a, b in zip(rows, rows[1:]):
        dn = b["n"] - a["n"]
        steps.append(f"{a['n']}->{b['n']}: total {(b['total'] - a['total']) / dn * 1000:.0f}, params "
                     f"{(b['params'] - a['params']) / dn * 1000:.0f}, all else "
                     f"{(b['total-params'] - a['total-params']) / dn * 1000:.0f}")
    print("  marginal CPU ms per added stage (params.yaml grows with the stages, so params re-reads grow as "
          "stages x file size): " + "; ".join(steps))
    total_slope = fits["total"][0]
    if total_slope > 0:
        print("  share of the least-squares slope: " + ", ".join(
            f"{b} {fits[b][0] / total_slope:.0%}" for b in BUCKETS))
    per_kb, per_read0 = _fit([r["params_kb"] for r in rows], [r["ms_per_read"] for r in rows])
    print(f"  one params-file read (a whole-file YAML parse per params dependency): {per_read0:.1f} ms + {per_kb:.1f} "
          "ms CPU per KB of these synthetic params.yaml files (key: value lines, no comments)")
    if project and project.get("reads"):
        at_n = fits["total-params"][1] + fits["total-params"][0] * project["stages"]
        print(f"  the project: {project['reads']} reads x {project['params_cpu'] / project['reads'] * 1000:.0f} ms "
              f"of a {project['params_kb']:.1f} KB params.yaml = {project['params_cpu']:.2f} s CPU; all else "
              f"{project['total_cpu'] - project['params_cpu']:.2f} s CPU vs ~{at_n:.2f} s for as many synthetic "
              "stages (the difference: its larger dvc.lock, more deps per stage)")
    print(f"  (growth part took {time.perf_counter() - began:.0f} s)")
    return {"rows": rows, "fits": fits}


# --- entry point ---------------------------------------------------------------------------------------------------


def breakdown(project: Path, repeats: int, sizes: list[int], with_growth: bool) -> int:
    summary = None
    if fully_run(project):
        d = print_cost_drivers(project)
        result = print_breakdown(project, repeats, with_cprofile=True)
        summary = {"stages": d["stages"], "params_kb": d.get("params.yaml bytes", 0) / 1024,
                   "reads": params_reads(result), "params_cpu": result["cpu_min"]["params"],
                   "total_cpu": result["total_cpu"]}
    else:
        print("  (project breakdown skipped; the synthetic growth part below does not need it)")
    if with_growth:
        growth(sizes, repeats, summary)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("project", nargs="?", default=".", help="a fully run project dir (default: current dir)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="build and run a tiny project in a temp dir first")
    parser.add_argument("--breakdown", action="store_true",
                        help="time buckets of a no-op status (+ cProfile), cost drivers, and the per-stage growth")
    parser.add_argument("--growth-only", action="store_true", help="only the synthetic per-stage growth")
    parser.add_argument("--no-breakdown", action="store_true", help="budget timings only (the old behaviour)")
    parser.add_argument("--sizes", default=",".join(map(str, GROWTH_SIZES)),
                        help="synthetic stage counts for the growth part ('' skips it)")
    parser.add_argument("--_child", nargs=2, metavar=("PROJECT", "OUT_JSON"), help=argparse.SUPPRESS)
    parser.add_argument("--_cprofile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._child:
        return _child(*args._child, cprofile=args._cprofile)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.growth_only:
        growth(sizes, args.repeats)
        return 0

    def run(project: Path) -> int:
        if args.breakdown:
            return breakdown(project, args.repeats, sizes, with_growth=bool(sizes))
        if args.no_breakdown:
            return bench(project, args.repeats)
        def then(p: Path, medians: dict) -> None:  # one more in-process status: cheap next to the timings
            print_cost_drivers(p)
            print_breakdown(p, args.repeats, with_cprofile=False, runs=1, cli=medians["status"])

        return bench(project, args.repeats, then=then)

    if not args.tiny:
        return run(Path(args.project).resolve())
    make_tiny_project = _project_helpers()["make_tiny_project"]
    if make_tiny_project is None:
        print(f"--tiny needs pipeline.testing.project, which does not import now ({_project_helpers()['error']}); "
              "use --growth-only or a finished project dir")
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-dvc-") as tmp:
        project = make_tiny_project(Path(tmp) / "tiny")
        start = time.perf_counter()
        run_dvc(project, "repro", check=True)
        print(f"tiny project: full dvc repro {time.perf_counter() - start:.1f} s")
        return run(project)


if __name__ == "__main__":
    sys.exit(main())
