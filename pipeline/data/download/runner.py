"""Run the download stage: every planned shard not already complete is fetched, written and marked complete.

Shards are built in a work directory beside the output (``<out>.partial``, not a DVC output, so it survives
``dvc repro`` clearing ``data/raw`` after an interrupted run) and moved into the output at the end. A shard is
complete when its stats JSON exists (written last) and records the plan's fingerprint. Every row ends as exactly
one ``ok`` or ``rejected`` attempt, after any ``retry`` attempts.

Resume is per row (``RowLedger``): each row of a shard not yet written is kept in
``<work>/rows/<shard>.<fingerprint>/`` as soon as
it is fetched, so a rerun after a block, a kill or a crash fetches only the rows whose last attempt was retryable
(network, timeout, blocked), and never a clip twice. A written shard whose rows were rejected for a retryable
reason is reopened on the next run the same way. Blocked attempts are about this machine, not the row: they are
counted in the metrics (``attempts_across_runs``) and left out of ``data/raw``, so a run that was blocked and
resumed writes the same bytes as one that never was.

Shard files hold no timings (they must be byte-identical between runs, see ``writer``); the time spent per step
and per shard goes to the metrics JSON under ``timings``, for the shards fetched in this run.
"""
from __future__ import annotations

import json
import os
import shutil
import tarfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm import tqdm

from pipeline.common.faults import fault_setting
from pipeline.common.io import note_if_empty, read_json, write_json
from pipeline.data.download.errors import (
    RETRYABLE,
    AttemptError,
    DownloadBlocked,
    DownloadConfigError,
    DownloadCountsError,
    one_line,
)
from pipeline.data.download.plan import ShardPlan, plan_shards, read_manifest
from pipeline.data.download.sources import (
    CANCELLED,
    FetchResult,
    cancel_children,
    cut_local,
    fetch_ytdlp,
    find_in_mirror,
    source_url,
)
from pipeline.data.download.writer import read_attempts, write_attempts, write_clip_tar, write_stats
from pipeline.data.engine import EngineSettings, describe, kill_point, run_units
from pipeline.data.media import MediaError, ToolMissingError, probe

#: fault point (pipeline.common.faults), setting N: after N shards completed in this run, die (like a kill) before
#: the next shard's stats
CRASH_AFTER_SHARDS = "download.crash_after_shards"
SHARD_SUFFIXES = (".tar", ".parquet", ".stats.json")
#: the work directory's folder of per-row ledgers, one folder per shard not yet written
ROWS_DIR = "rows"
#: per-step timing keys of a shard (metrics only): steps summed over rows, so threads can exceed "seconds"
STEP_KEYS = ("fetch_seconds", "probe_seconds", "write_seconds")


@dataclass(frozen=True)
class DownloadSettings:
    """The ``download`` params section (see params.yaml for meanings)."""

    shard_size: int = 64
    concurrency: int = 2
    retries: int = 3
    backoff: float = 2.0
    sleep_interval_requests: float = 0.0
    cookies: str = ""
    min_height: int = 224
    timeout: float = 300.0
    mirror_dir: str = ""
    duration_tolerance: float = 0.25
    sleep_interval: float = 5.0
    max_sleep_interval: float = 10.0
    max_consecutive_blocked: int = 10
    extractor_args: tuple[str, ...] = ()

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "DownloadSettings":
        """Build from a params section; unknown keys are an error (a typo must not be silently ignored)."""
        unknown = sorted(set(params) - set(cls.__dataclass_fields__))
        if unknown:
            raise DownloadConfigError(f"unknown download param(s): {', '.join(unknown)}")
        values = dict(params)
        if "extractor_args" in values:
            raw = values["extractor_args"] or []
            values["extractor_args"] = tuple(str(a) for a in ([raw] if isinstance(raw, str) else raw))
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Raise DownloadConfigError for values the stage cannot work with."""
        if int(self.concurrency) < 1 or int(self.retries) < 0 or float(self.backoff) < 0:
            raise DownloadConfigError("download.concurrency must be >= 1, retries >= 0 and backoff >= 0")
        if float(self.timeout) <= 0:
            raise DownloadConfigError(f"download.timeout must be > 0 seconds, got {self.timeout}")
        if self.cookies:
            from pipeline.data.download.doctor import cookies_problem

            problem = cookies_problem(self.cookies)
            if problem:
                raise DownloadConfigError(f"download.cookies: {problem}")
        if not 0 <= float(self.sleep_interval) <= float(self.max_sleep_interval):
            raise DownloadConfigError("download.sleep_interval and max_sleep_interval must satisfy 0 <= "
                                      f"sleep_interval <= max_sleep_interval, got {self.sleep_interval} and "
                                      f"{self.max_sleep_interval}")
        if int(self.max_consecutive_blocked) < 0:
            raise DownloadConfigError("download.max_consecutive_blocked must be >= 0 (0 = never stop)")
        from pipeline.data.download.sources import parse_extractor_args

        parse_extractor_args(self.extractor_args)
        if self.mirror_dir and not Path(self.mirror_dir).is_dir():
            raise DownloadConfigError(f"download.mirror_dir {self.mirror_dir} is not a directory")

    def content(self) -> dict[str, Any]:
        """Settings that change what gets downloaded (part of each shard's fingerprint)."""
        return {"min_height": int(self.min_height), "mirror_dir": self.mirror_dir,
                "duration_tolerance": float(self.duration_tolerance)}


class BlockBreaker:
    """Counts blocked answers in a row across workers; at ``limit`` (0 = never) it trips and stops the run.

    A block says nothing about the video: after enough of them in a row, more requests only prolong the block.
    """

    def __init__(self, limit: int) -> None:
        self.limit, self.in_a_row, self.tripped = int(limit), 0, False
        self._lock = threading.Lock()

    def record(self, blocked: bool) -> None:
        with self._lock:
            if self.tripped:  # what follows a trip is the run being stopped, not an answer from the site
                return
            self.in_a_row = self.in_a_row + 1 if blocked else 0
            self.tripped = self.limit > 0 and self.in_a_row >= self.limit
        if self.tripped:
            cancel_children()


@dataclass
class RowOutcome:
    """What happened to one row: its attempts and, when ok, the clip file and its tar record."""

    key: str
    attempts: list[dict[str, Any]] = field(default_factory=list)
    clip: Path | None = None
    ext: str = ""
    record: dict[str, Any] | None = None
    fetch_s: float = 0.0   # yt-dlp / ffmpeg time over all attempts
    probe_s: float = 0.0   # ffprobe checks of what was fetched

    @property
    def settled(self) -> bool:
        """True when no rerun can change the row: its last attempt is ok, or a rejection that is not retryable."""
        if not self.attempts:
            return False
        last = self.attempts[-1]
        return last["status"] == "ok" or (last["status"] == "rejected" and last["error_class"] not in RETRYABLE)

    def shard_attempts(self) -> list[dict[str, Any]]:
        """The attempts that go into ``data/raw``: all but blocked ones, numbered 1.., only the last one final.

        A block says nothing about the row, so leaving blocks out makes a resumed shard byte-identical to one
        fetched without them; an earlier run's final rejection followed by a retry here becomes a ``retry``.
        """
        kept = [a for a in self.attempts if a["error_class"] != "blocked"]
        return [{**a, "attempt": i, "status": a["status"] if i == len(kept) else "retry"}
                for i, a in enumerate(kept, 1)]


class RowLedger:
    """The rows of one unwritten shard fetched so far, in ``<work>/rows/<shard>.<fingerprint>/``, kept across runs.

    A row leaves ``<key>.json`` (its attempts and, when ok, its tar record), written after its clip
    ``<key>.clip``, so that a kill never leaves a record without its clip. The folder goes when the shard is
    written.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self, key: str) -> RowOutcome | None:
        """The row's outcome so far, or None when it was never fetched (or its files are incomplete)."""
        path = self.directory / f"{key}.json"
        try:
            data = read_json(path)
        except (OSError, ValueError):
            return None
        outcome = RowOutcome(key, attempts=list(data["attempts"]), ext=data.get("ext", ""),
                             record=data.get("record"))
        if outcome.record is not None:
            outcome.clip = self.directory / f"{key}.clip"
            if not outcome.clip.is_file():
                return None
        return outcome

    def save(self, outcome: RowOutcome) -> None:
        """Keep ``outcome`` (moving its clip into the ledger); the JSON is written last."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if outcome.clip is not None and outcome.clip.parent != self.directory:
            clip = self.directory / f"{outcome.key}.clip"
            os.replace(outcome.clip, clip)
            outcome.clip = clip
        write_json(self.directory / f"{outcome.key}.json",
                   {"attempts": outcome.attempts, "ext": outcome.ext, "record": outcome.record})

    def clear(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


def _fetch_once(row: dict[str, Any], settings: DownloadSettings, work: Path) -> FetchResult:
    start, end = float(row["start"]), float(row["end"])
    if settings.mirror_dir and row["source_kind"] == "youtube":
        src = find_in_mirror(settings.mirror_dir, row["video_id"])
        if src is None:
            raise AttemptError("missing_in_mirror", f"no file named {row['video_id']}.<ext> in the mirror")
        return cut_local(src, start, end, work, settings.timeout)
    if row["source_kind"] == "file":
        return cut_local(row["source"], start, end, work, settings.timeout)
    if row["source_kind"] in ("youtube", "url"):
        return fetch_ytdlp(source_url(row), start, end, work, asdict(settings),
                           youtube=row["source_kind"] == "youtube")
    raise AttemptError("error", f"unknown source_kind {row['source_kind']!r}")


def _check(fetched: FetchResult, row: dict[str, Any], tolerance: float) -> tuple[int, Any]:
    """Probe what was fetched: empty/short → truncated, unreadable → corrupt. Returns (bytes, MediaInfo)."""
    size = fetched.path.stat().st_size if fetched.path.is_file() else 0
    if size == 0:
        raise AttemptError("truncated", "the download is an empty file")
    try:
        info = probe(fetched.path)
    except MediaError as exc:
        raise AttemptError("corrupt", one_line(str(exc).replace(str(fetched.path), fetched.path.name))) from None
    if not (info.has_audio or info.has_video):
        raise AttemptError("corrupt", "the download has neither an audio nor a video stream")
    requested = float(row["end"]) - float(row["start"])
    if info.duration < requested - tolerance:
        raise AttemptError("truncated", f"downloaded {info.duration:.2f} s of the {requested:.2f} s requested")
    return size, info


def fetch_row(row: dict[str, Any], settings: DownloadSettings, tmp_root: Path,
              breaker: BlockBreaker | None = None, previous: list[dict[str, Any]] | None = None) -> RowOutcome:
    """Fetch one row with retries (exponential backoff) on retryable errors; record every attempt.

    ``previous`` are the row's attempts in earlier runs: their numbering continues, and this run still gets
    ``retries`` + 1 attempts.
    """
    key = row["key"]
    outcome = RowOutcome(key, attempts=list(previous or []))
    attempts_allowed = int(settings.retries) + 1
    for tried in range(1, attempts_allowed + 1):
        attempt = len(outcome.attempts) + 1
        work = tmp_root / f"{key}.{attempt}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        record = {"key": key, "source": str(row["source"]), "attempt": attempt, "bytes": 0}
        began = time.monotonic()
        try:
            try:
                fetched = _fetch_once(row, settings, work)
            finally:
                outcome.fetch_s += time.monotonic() - began
            probe_began = time.monotonic()
            try:
                size, info = _check(fetched, row, float(settings.duration_tolerance))
            finally:
                outcome.probe_s += time.monotonic() - probe_began
        except ToolMissingError:  # a broken installation stops the run; it says nothing about the row
            raise
        except Exception as exc:  # noqa: BLE001 - one bad row must become a recorded rejection, not a crash
            error = exc if isinstance(exc, AttemptError) else AttemptError(
                "error", one_line(f"{type(exc).__name__}: {exc}"))
            if breaker is not None:
                breaker.record(error.error_class == "blocked")
            final = not error.retryable or tried == attempts_allowed
            # the work directory's path (relative or absolute) is machine-specific: keep it out of the data
            message = str(error).replace(str(tmp_root.resolve()), "<tmp>").replace(str(tmp_root), "<tmp>")
            outcome.attempts.append({**record, "status": "rejected" if final else "retry",
                                     "error_class": error.error_class, "error_message": message})
            shutil.rmtree(work, ignore_errors=True)
            if final:
                return outcome
            if CANCELLED.wait(float(settings.backoff) * 2 ** (tried - 1)):
                return outcome  # interrupted: this shard will not be written anyway
            continue
        if breaker is not None:
            breaker.record(False)
        outcome.attempts.append({**record, "status": "ok", "error_class": "", "error_message": "",
                                 "bytes": size})
        ext = fetched.path.suffix.lstrip(".").lower()
        outcome.ext = ext if ext.isalnum() and len(ext) <= 5 else "bin"
        outcome.clip = fetched.path
        outcome.record = {
            **row,
            "downloaded_duration": round(info.duration, 6),
            "download": {"method": fetched.method, "format_id": fetched.format_id, "bytes": size,
                         "width": info.width, "height": info.height, "has_video": info.has_video,
                         "has_audio": info.has_audio},  # + "attempts" when the shard is written
        }
        if fetched.formats_refused:
            outcome.record["download"]["formats_refused"] = list(fetched.formats_refused)
        return outcome
    return outcome  # unreachable: the loop always returns


def is_complete(directory: Path, plan: ShardPlan) -> bool:
    """A shard is complete when its stats JSON exists and records this plan's fingerprint."""
    stats_path = directory / f"{plan.name}.stats.json"
    if not stats_path.is_file():
        return False
    try:
        stats = read_json(stats_path)
    except (OSError, ValueError):
        return False
    return stats.get("fingerprint") == plan.fingerprint and all(
        (directory / f"{plan.name}{suffix}").is_file() for suffix in SHARD_SUFFIXES)


def ledger_dir(work_dir: Path, plan: ShardPlan) -> Path:
    """Where the rows of ``plan`` wait until the shard is written; named by the fingerprint, so a changed plan
    (other rows, other params) never reuses them."""
    return work_dir / ROWS_DIR / f"{plan.name}.{plan.fingerprint}"


def download_shard(plan: ShardPlan, settings: DownloadSettings, work_dir: Path, pool: ThreadPoolExecutor,
                   progress: Callable[[int], None] | None = None,
                   breaker: BlockBreaker | None = None) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Fetch the rows of ``plan`` not settled in its ledger; write its tar and attempts parquet.

    The caller writes the stats (the shard's completion marker) and then clears the ledger (``RowLedger``).
    ``progress(n)`` is told of every row done. Returns ``(stats, timings)``: the stats to write (deterministic)
    and, for the metrics only, this run's
    wall-clock ``seconds`` for the shard with the per-step ``fetch_seconds``, ``probe_seconds``,
    ``write_seconds``, and ``attempts_by_class``: every attempt at the shard's rows over all runs, blocks included.
    A shard with a row whose last answer was a block is not written (``stats`` None): a block is no reason to
    reject a row, and the next run fetches that row again. Raises DownloadBlocked when the breaker trips.
    """
    tmp_root = work_dir / f".tmp-{plan.name}"
    shutil.rmtree(tmp_root, ignore_errors=True)
    tmp_root.mkdir(parents=True)
    began = time.monotonic()
    ledger = RowLedger(ledger_dir(work_dir, plan))
    outcomes: dict[str, RowOutcome] = {}
    todo: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for row in plan.rows:
        kept = ledger.load(row["key"])
        if kept is not None and kept.settled:
            outcomes[row["key"]] = kept
        else:
            todo.append((row, kept.attempts if kept is not None else []))
    progress = progress or (lambda n: None)
    progress(len(plan.rows) - len(todo))

    def job(item: tuple[dict[str, Any], list[dict[str, Any]]]) -> RowOutcome:
        row, previous = item
        try:
            outcome = fetch_row(row, settings, tmp_root, breaker, previous)
            if not CANCELLED.is_set():  # an attempt cut short by a stop says nothing about the row
                ledger.save(outcome)
                kill_point()  # fault test: a worker killed with rows of the shard kept and others not yet
            return outcome
        finally:
            progress(1)

    outcomes.update((o.key, o) for o in pool.map(job, todo))
    ordered = [outcomes[row["key"]] for row in plan.rows]
    shutil.rmtree(tmp_root, ignore_errors=True)
    timings: dict[str, Any] = {"attempts_by_class": dict(sorted(Counter(
        a["error_class"] or "ok" for o in ordered for a in o.attempts).items()))}
    if breaker is not None and breaker.tripped:
        raise DownloadBlocked(f"{breaker.in_a_row} blocked answers in a row (download.max_consecutive_blocked "
                              f"{breaker.limit})")
    if any(o.attempts and o.attempts[-1]["error_class"] == "blocked" for o in ordered):
        return None, {"seconds": round(time.monotonic() - began, 3), **timings}
    clips, attempts = [], []
    for outcome in ordered:
        rows_attempts = outcome.shard_attempts()
        attempts.extend(rows_attempts)
        if outcome.clip is not None:
            record = {**outcome.record, "download": {**outcome.record["download"], "attempts": len(rows_attempts)}}
            clips.append((outcome.key, outcome.ext, outcome.clip, record))
    write_began = time.monotonic()
    tar_bytes = write_clip_tar(work_dir / f"{plan.name}.tar", clips)
    write_attempts(work_dir / f"{plan.name}.parquet", attempts)
    write_s = time.monotonic() - write_began
    finals = [a for a in attempts if a["status"] != "retry"]
    stats = {
        "shard": plan.name, "split": plan.split, "fingerprint": plan.fingerprint,
        "rows": len(plan.rows), "ok": sum(f["status"] == "ok" for f in finals),
        "rejected": sum(f["status"] == "rejected" for f in finals),
        "rejected_by_class": dict(sorted(Counter(f["error_class"] for f in finals
                                                 if f["status"] == "rejected").items())),
        "attempts": len(attempts), "retries": sum(a["status"] == "retry" for a in attempts),
        "clip_bytes": sum(f["bytes"] for f in finals), "tar_bytes": tar_bytes,
    }
    timings.update({
        "seconds": round(time.monotonic() - began, 3),
        # time per step, summed over rows (threads overlap, so these can exceed "seconds")
        "fetch_seconds": round(sum(o.fetch_s for o in ordered), 3),
        "probe_seconds": round(sum(o.probe_s for o in ordered), 3),
        "write_seconds": round(write_s, 3),
    })
    return stats, timings


def reopen_shard(directory: Path, plan: ShardPlan, work_dir: Path) -> bool:
    """Turn a written shard with rows rejected for a retryable reason back into a ledger; False when it has none.

    Its clips and attempts move into its ledger (``ledger_dir``) and its files are removed (stats first), so the
    run fetches only those rows again and rewrites the shard.
    """
    stats = read_json(directory / f"{plan.name}.stats.json")
    if not set(stats.get("rejected_by_class", {})) & RETRYABLE:
        return False
    ledger = RowLedger(ledger_dir(work_dir, plan))
    ledger.directory.mkdir(parents=True, exist_ok=True)
    by_key: dict[str, list[dict[str, Any]]] = {}
    for attempt in read_attempts(directory / f"{plan.name}.parquet"):
        by_key.setdefault(attempt["key"], []).append(attempt)
    with tarfile.open(directory / f"{plan.name}.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
        for key, attempts in by_key.items():
            outcome = RowOutcome(key, attempts=attempts)
            if f"{key}.json" in members:
                outcome.record = json.loads(tar.extractfile(members[f"{key}.json"]).read())
                outcome.record["download"].pop("attempts", None)
                media = next(n for n in members if n.startswith(f"{key}.") and n != f"{key}.json")
                outcome.ext = media[len(key) + 1:]
                outcome.clip = ledger.directory / f"{key}.clip"
                with tar.extractfile(members[media]) as src, outcome.clip.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
            ledger.save(outcome)
    for suffix in (".stats.json", ".tar", ".parquet"):
        (directory / f"{plan.name}{suffix}").unlink()
    return True


def _move_shard(name: str, src: Path, dst: Path) -> None:
    """Move a complete shard's files into ``dst``, stats last (so ``dst`` never shows a false completion)."""
    for suffix in SHARD_SUFFIXES:
        os.replace(src / f"{name}{suffix}", dst / f"{name}{suffix}")


@dataclass(frozen=True)
class ShardJob:
    """One download unit: a shard's plan and where to build it (picklable, for Ray tasks)."""

    plan: ShardPlan
    settings: DownloadSettings
    work_dir: str
    run_id: str


#: this process's block counter for the current run, and the local engine's per-row progress callback
_RUN_STATE: dict[str, Any] = {"run_id": None, "breaker": None, "progress": None}


def _breaker_for(job: ShardJob) -> BlockBreaker:
    """One BlockBreaker per process and run: with the local engine it counts blocks in a row across all shards,
    on Ray across the shards one worker process fetches."""
    if _RUN_STATE["run_id"] != job.run_id:
        _RUN_STATE.update(run_id=job.run_id, breaker=BlockBreaker(int(job.settings.max_consecutive_blocked)))
    return _RUN_STATE["breaker"]


def fetch_shard(job: ShardJob) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """A unit of the download stage (here or as a Ray task): fetch one shard's rows with ``concurrency``
    threads and write its tar and attempts parquet into the work folder; returns ``(stats, timings)``."""
    CANCELLED.clear()
    with ThreadPoolExecutor(max_workers=int(job.settings.concurrency)) as pool:
        try:
            return download_shard(job.plan, job.settings, Path(job.work_dir), pool, _RUN_STATE["progress"],
                                  _breaker_for(job))
        except BaseException:
            # Ctrl-C / SIGTERM / a block / a bug: stop children now, or the pool's shutdown would wait for them
            cancel_children()
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def run_download(manifest_dir: str | Path, out_dir: str | Path, settings: DownloadSettings,
                 work_dir: str | Path | None = None, metrics_path: str | Path | None = None,
                 progress: bool = True, engine: EngineSettings | None = None) -> dict[str, Any]:
    """Download every manifest row into raw shards under ``out_dir``; return (and optionally write) totals.

    Each shard not yet complete is one unit of ``engine`` (``pipeline.data.engine``: this process, or a Ray task);
    this process writes each shard's stats when its unit returns, and the metrics at the end.
    """
    import uuid

    engine = engine or EngineSettings()
    out_dir, began = Path(out_dir), time.monotonic()
    CANCELLED.clear()
    work_dir = Path(work_dir) if work_dir else out_dir.with_name(out_dir.name + ".partial")
    rows = read_manifest(manifest_dir)
    if not settings.mirror_dir:  # a mirror serves YouTube rows from local files: no YouTube request is made
        from pipeline.data.download.doctor import youtube_ready_or_raise

        youtube_ready_or_raise(sum(r["source_kind"] == "youtube" for split in rows.values() for r in split))
    plans = plan_shards(rows, settings.shard_size, settings.content())
    out_dir.mkdir(parents=True, exist_ok=True)
    work_dir.mkdir(parents=True, exist_ok=True)
    for stale in list(work_dir.glob(".*.tmp")) + list(work_dir.glob(".tmp-*")):  # leftovers of a killed run
        shutil.rmtree(stale, ignore_errors=True) if stale.is_dir() else stale.unlink(missing_ok=True)

    ledgers = {ledger_dir(work_dir, p).name for p in plans}
    for stale in (work_dir / ROWS_DIR).glob("*"):  # rows of an older plan must not be reused
        if stale.name not in ledgers:
            shutil.rmtree(stale, ignore_errors=True)
    reopened = 0
    for plan in plans:  # rows rejected for a retryable reason get another chance (the rest of the shard is kept)
        for directory in (out_dir, work_dir):
            if is_complete(directory, plan):
                reopened += reopen_shard(directory, plan, work_dir)
    todo = [p for p in plans if not is_complete(out_dir, p) and not is_complete(work_dir, p)]
    crash_after = int(fault_setting(CRASH_AFTER_SHARDS) or -1)
    rows_todo = sum(len(p.rows) for p in todo)
    shard_timings: dict[str, dict[str, float]] = {}
    held_back: list[str] = []
    run_id = uuid.uuid4().hex
    jobs = [ShardJob(plan, settings, str(work_dir.resolve()), run_id) for plan in todo]
    with tqdm(total=rows_todo, desc="download", unit="clip", disable=not progress, dynamic_ncols=True) as bar:
        local = engine.engine == "local"
        _RUN_STATE["progress"] = bar.update if local else None  # Ray: the bar moves when a shard is back
        try:
            # one local process: its download.concurrency threads are the parallelism, and the blocked-answer
            # count and the pacing must see every request
            for done, result in enumerate(run_units(fetch_shard, jobs, [p.name for p in todo], engine, "download",
                                                    must_see=[work_dir], local_limit=1)):
                plan = todo[result.index]
                stats, shard_timings[plan.name] = result.value
                if not local:
                    bar.update(len(plan.rows))
                    bar.set_postfix(shards=f"{done + 1}/{len(todo)}")
                if stats is None:
                    held_back.append(plan.name)
                    continue
                if done == crash_after:
                    os._exit(70)  # fault point: a kill between a shard's files and its completion marker
                write_stats(work_dir / f"{plan.name}.stats.json", stats)
                RowLedger(ledger_dir(work_dir, plan)).clear()
        except DownloadBlocked as exc:
            finished = sum(is_complete(out_dir, p) or is_complete(work_dir, p) for p in plans)
            raise DownloadBlocked(
                f"download stopped: {exc}, so the site is refusing this machine for now; {finished} of "
                f"{len(plans)} shards are complete and the fetched rows of the others are kept in {work_dir}, no "
                f"row was rejected for the block, and a rerun later (with download.cookies, extractor_args or "
                f"longer sleep_interval) fetches only the rest") from None
        finally:
            _RUN_STATE["progress"] = None

    if held_back:
        raise DownloadBlocked(
            f"download incomplete: {len(held_back)} shard(s) ({', '.join(held_back[:3])}"
            f"{', ...' if len(held_back) > 3 else ''}) have rows that stayed blocked after every retry, so they "
            f"were not written; the other {len(plans) - len(held_back)} shards are complete and kept in "
            f"{work_dir}, and a rerun later fetches only the rows still blocked")
    planned = {p.name for p in plans}
    for plan in plans:
        if not is_complete(out_dir, plan):
            _move_shard(plan.name, work_dir, out_dir)
    for path in sorted(out_dir.iterdir()):  # shards of an older plan (e.g. a shrunk manifest) must not linger
        stem = path.name.split(".", 1)[0]
        if path.is_file() and path.name.endswith(SHARD_SUFFIXES) and stem not in planned:
            path.unlink()
    if (work_dir / ROWS_DIR).is_dir() and not any((work_dir / ROWS_DIR).iterdir()):
        (work_dir / ROWS_DIR).rmdir()
    if not any(work_dir.iterdir()):
        work_dir.rmdir()

    totals = total_stats([read_json(out_dir / f"{p.name}.stats.json") for p in plans])
    totals["shards_reused"] = len(plans) - len(todo)
    totals["shards_reopened"] = reopened
    totals["attempts_across_runs"] = {
        "by_class": dict(sorted(sum((Counter(t["attempts_by_class"]) for t in shard_timings.values()),
                                    Counter()).items())),
        "shards": {name: t["attempts_by_class"] for name, t in sorted(shard_timings.items())},
    }
    totals["timings"] = summarize_timings(shard_timings, time.monotonic() - began)
    totals["timings"]["engine"] = describe(engine)
    note_if_empty(out_dir, "No raw shards: the manifest has no rows (an optional corpus that is not configured).")
    if metrics_path:
        write_json(metrics_path, totals)
    return totals


def total_stats(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over shard stats: rows in, ok, rejected (by class), attempts, per split; raises DownloadCountsError
    when rows in != ok + rejected."""
    by_class: Counter[str] = Counter()
    per_split: dict[str, Counter[str]] = {}
    for s in stats:
        by_class.update(s["rejected_by_class"])
        split = per_split.setdefault(s["split"], Counter())
        split.update({"rows_in": s["rows"], "ok": s["ok"], "rejected": s["rejected"]})
    totals = {
        "rows_in": sum(s["rows"] for s in stats), "ok": sum(s["ok"] for s in stats),
        "rejected": sum(s["rejected"] for s in stats), "rejected_by_class": dict(sorted(by_class.items())),
        "attempts": sum(s["attempts"] for s in stats), "retries": sum(s["retries"] for s in stats),
        "clip_bytes": sum(s["clip_bytes"] for s in stats), "shards": len(stats),
        "splits": {k: dict(sorted(v.items())) for k, v in sorted(per_split.items())},
    }
    if totals["rows_in"] != totals["ok"] + totals["rejected"]:
        raise DownloadCountsError(
            f"download counts do not add up: {totals['rows_in']} rows in but {totals['ok']} ok + "
            f"{totals['rejected']} rejected = {totals['ok'] + totals['rejected']} over {totals['shards']} shard "
            f"stats, so no metrics were written")
    return totals


def summarize_timings(shard_timings: dict[str, dict[str, float]], wall_seconds: float) -> dict[str, Any]:
    """The metrics' ``timings``: this run's wall clock, per-step totals and the per-shard breakdown.

    Only shards fetched in this run appear (a reused shard cost nothing now and its old timings were never
    part of the data); the per-step totals are summed over them.
    """
    return {
        "seconds": round(wall_seconds, 3),
        **{k: round(sum(t[k] for t in shard_timings.values()), 3) for k in STEP_KEYS},
        "shards": {name: {k: v for k, v in t.items() if k != "attempts_by_class"}
                   for name, t in sorted(shard_timings.items())},
    }


def summary_line(totals: dict[str, Any]) -> str:
    """One line for the terminal: rows in, ok, rejected by class."""
    by_class = ", ".join(f"{k} {v}" for k, v in totals["rejected_by_class"].items()) or "none"
    return (f"download: {totals['rows_in']} rows in, {totals['ok']} ok, {totals['rejected']} rejected "
            f"({by_class}); {totals['attempts']} attempts in {totals['shards']} shards "
            f"({totals['shards_reused']} reused, {totals['shards_reopened']} reopened for retryable rejections), "
            f"{totals['timings']['seconds']:.1f} s")
