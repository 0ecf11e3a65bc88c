"""A team shares through a DVC S3 remote on a real object store: SeaweedFS's S3 gateway on 127.0.0.1.

One store per module (``pipeline.ops.s3store.SeaweedStore``, the same helper as ``python -m pipeline.ops.s3store``),
with a bucket, a **writer** (read, write, list) and a **reader** (read, list) whose keys are generated at start.
Member A (the writer) pushes git to a bare repository and the tiny run's cache and run-cache to the bucket; member B
(the reader) clones, runs ``dvc repro --pull`` with a ``python`` that fails if any stage runs, and cannot push.
Then the faults: wrong keys, a dead endpoint, an unknown URL scheme, an upload killed half-way, the store stopped
(gracefully, and with SIGKILL) between push and pull; and the generated secrets must appear in no tracked file,
index or git object, only in ``.dvc/config.local``.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.ops.remote import RemoteError, check_remote
from pipeline.ops.s3store import SeaweedStore
from pipeline.testing.project import (
    clone_workspace,
    lock_outs,
    ran_stages,
    run_dvc,
    run_git,
    session_base,
    shared_tiny_run,
    tool_env,
)
from pipeline.testing.remote import remote_objects, secret_hits, set_keys, use_s3_remote

pytestmark = pytest.mark.xdist_group("s3")  # one store for the module, on one test worker

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store():
    with SeaweedStore() as started:
        yield started


@pytest.fixture(scope="module")
def team(store, tmp_path_factory):
    """Member A's workspace (the tiny run) pushed as the writer: git to a bare ``origin``, cache and run-cache to
    the bucket. Returns ``(a, origin, seconds the push took)``."""
    tiny = shared_tiny_run(session_base(tmp_path_factory))
    root = tmp_path_factory.mktemp("team")
    origin = root / "origin.git"
    run_git(root, "init", "-q", "--bare", "-b", "main", str(origin))
    a = clone_workspace(tiny, root / "member-a")
    use_s3_remote(a, store, store.writer)
    run_git(a, "add", ".dvc/config")
    run_git(a, "commit", "-q", "-m", "the team's S3 remote")
    run_git(a, "remote", "add", "origin", str(origin))
    run_git(a, "push", "-q", "origin", "main")
    started = time.monotonic()
    run_dvc(a, "push", "--run-cache", check=True)
    return a, origin, time.monotonic() - started


def _failing_python(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An env whose ``python`` (what every stage's cmd calls) logs its arguments and fails."""
    shim_dir = tmp_path / "shim"
    shim_dir.mkdir()
    log = tmp_path / "stage-commands.log"
    shim = shim_dir / "python"
    shim.write_text(f'#!/bin/sh\necho "$*" >> "{log}"\nexit 97\n', encoding="utf-8")
    shim.chmod(0o755)
    return {"PATH": f"{shim_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}, log


@pytest.mark.slow
def test_a_reader_pulls_everything_without_recomputing_and_cannot_push(store, team, tmp_path):
    a, origin, push_s = team
    assert check_remote(a, push=True).endswith("is reachable and accepts pushes")
    objects = remote_objects(store)  # every object's bytes hash to its name
    cache_files = [p for p in (a / ".dvc" / "cache" / "files").rglob("*") if p.is_file()]
    assert len([k for k in objects if "/files/md5/" in k]) == len(cache_files)
    assert any("/runs/" in k for k in objects), "the run-cache was not pushed"

    b = tmp_path / "member-b"
    run_git(tmp_path, "clone", "-q", str(origin), str(b))
    set_keys(b, store.reader.access_key, store.reader.secret_key)
    assert check_remote(b).endswith("is reachable")
    env, log = _failing_python(tmp_path)
    started = time.monotonic()
    proc = run_dvc(b, "repro", "--pull", env=env)  # the whole DAG: every stage's outputs come from the bucket
    pull_s = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert ran_stages(proc.stdout) == set() and not log.exists()
    status = run_dvc(b, "status", "--json", check=True)
    assert json.loads(status.stdout or "{}") == {}
    assert lock_outs(b) == lock_outs(a)
    assert (b / "data" / "shards").is_dir() and (b / "reports").is_dir()
    print(f"push {push_s:.1f} s ({len(cache_files)} files), repro --pull of the DAG {pull_s:.1f} s")

    # the reader's push is refused by the store, and the remote check says so in one sentence
    (b / "notes.txt").write_text("B's notes\n", encoding="utf-8")
    run_dvc(b, "add", "notes.txt", check=True)
    refused = run_dvc(b, "push", "notes.txt")
    assert refused.returncode != 0 and "AccessDenied" in refused.stdout + refused.stderr
    with pytest.raises(RemoteError, match=r"^DVC remote 'shared' \(s3://speech2face/speech2face at "
                                          r"http://127\.0\.0\.1:\d+\) refuses these credentials \(S3 AccessDenied\) "
                                          r"to a push: they are a read-only member's"):
        check_remote(b, push=True)
    assert remote_objects(store) == objects  # nothing of B's arrived


@pytest.mark.slow
def test_the_generated_keys_are_only_in_config_local(store, team):
    a, origin, _ = team
    secrets = [store.writer.access_key, store.writer.secret_key, store.reader.access_key, store.reader.secret_key]
    local = (a / ".dvc" / "config.local").read_text(encoding="utf-8")
    assert store.writer.secret_key in local  # where they belong (and proof that the search below can find them)
    assert run_git(a, "check-ignore", "-q", ".dvc/config.local", check=False).returncode == 0
    assert secret_hits(a, secrets) == []
    assert secret_hits(origin, secrets) == []  # what the team's git server received
    # a mistake the search must catch: the keys committed in .dvc/config
    mistake = clone_workspace(a, a.parent / "mistake")
    with (mistake / ".dvc" / "config").open("a", encoding="utf-8") as fh:
        fh.write(f"    secret_access_key = {store.writer.secret_key}\n")
    run_git(mistake, "add", ".dvc/config")
    found = f": {store.writer.secret_key[:4]}..."
    assert secret_hits(mistake, secrets) == [f"tracked file .dvc/config{found}", f"the index{found}",
                                             f"the git objects{found}"]  # `git add` stored the blob


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_wrong_keys_a_dead_endpoint_and_a_bad_url_are_one_sentence_each(store, tmp_path):
    project = tmp_path / "p"
    project.mkdir()
    run_git(project, "init", "-q")
    run_dvc(project, "init", "-q", check=True)
    use_s3_remote(project, store, store.writer, prefix="fresh")
    assert check_remote(project, push=True) == ("DVC remote 'shared' (s3://speech2face/fresh) is reachable "
                                                "(nothing pushed to it yet) and accepts pushes")

    set_keys(project, store.writer.access_key, "not-the-secret")
    with pytest.raises(RemoteError, match=r"rejects the secret key \(S3 SignatureDoesNotMatch\): fix "
                                          r"secret_access_key in \.dvc/config\.local"):
        check_remote(project)
    set_keys(project, "S2FNOSUCHKEY", store.writer.secret_key)
    with pytest.raises(RemoteError, match=r"does not know the access key id \(S3 InvalidAccessKeyId\)"):
        check_remote(project)
    # a bucket that does not exist: SeaweedFS scopes each identity's rights to its bucket, so it answers AccessDenied
    # (not NoSuchBucket, whose sentence tests/pipeline/ops/test_remote.py checks) to the reader and the writer alike
    for identity in (store.reader, store.writer):
        use_s3_remote(project, store, identity, prefix="x", bucket="no-such-bucket")
        for push in (False, True):
            with pytest.raises(RemoteError, match=r"\(s3://no-such-bucket/x at .*\) refuses these credentials "
                                                  r"\(S3 AccessDenied\): .* or the bucket does not exist"):
                check_remote(project, push=push)

    # nothing listens at the endpoint: one sentence within the bounded wait (dvc itself: the restart test below)
    dead = f"http://127.0.0.1:{_closed_port()}"
    use_s3_remote(project, store, store.writer, endpoint=dead, connect_timeout=2, read_timeout=2)
    started = time.monotonic()
    with pytest.raises(RemoteError, match=rf"at {dead}\) does not answer \(gave up after 4 s: "
                                          r"EndpointConnectionError\); check the endpoint URL"):
        check_remote(project)
    assert time.monotonic() - started < 10

    # a URL scheme DVC does not know: the check's one line on stderr, no traceback
    config = project / ".dvc" / "config"
    config.write_text(config.read_text().replace("s3://speech2face/speech2face", "s4://speech2face/x"))
    cli = subprocess.run([sys.executable, "-m", "pipeline.ops.remote", "--project", str(project)], cwd=REPO,
                         capture_output=True, text=True, env=tool_env(), check=False)
    assert cli.returncode == 1 and cli.stderr.count("\n") == 1, cli.stderr
    assert cli.stderr.startswith(f"error: the DVC config of {project} is invalid: Unsupported URL type s4://")


@pytest.mark.slow
def test_an_upload_killed_half_way_then_pushed_again_leaves_the_remote_complete(store, team, tmp_path):
    a, _, _ = team
    project = clone_workspace(a, tmp_path / "killed")
    use_s3_remote(project, store, store.writer, prefix="killed")
    total = len([p for p in (project / ".dvc" / "cache" / "files").rglob("*") if p.is_file()])
    push = subprocess.Popen([str(Path(sys.executable).with_name("dvc")), "push", "-j", "1"], cwd=project, env=tool_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # The push runs in 20-ms slices between SIGCONT and SIGSTOP, so that it is caught half way however fast the
        # machine uploads: on a quiet one all 212 objects once landed between two 50-ms polls of a free-running push
        deadline = time.monotonic() + 120
        while len(store.client().list_objects_v2(Bucket=store.bucket, Prefix="killed/").get("Contents", [])) < 20:
            assert push.poll() is None, "the push ended before it could be killed"
            assert time.monotonic() < deadline
            os.killpg(push.pid, signal.SIGCONT)
            time.sleep(0.02)
            os.killpg(push.pid, signal.SIGSTOP)
        os.killpg(push.pid, signal.SIGKILL)
    finally:
        if push.poll() is None:
            os.killpg(push.pid, signal.SIGKILL)
        push.wait()
    uploaded = remote_objects(store, "killed")  # what arrived is whole: every object's bytes hash to its name
    assert 20 <= len(uploaded) < total, (len(uploaded), total)
    run_dvc(project, "push", check=True)
    assert "Cache and remote 'shared' are in sync." in run_dvc(project, "status", "-c", check=True).stdout
    assert len([k for k in remote_objects(store, "killed") if "/files/md5/" in k]) == total


@pytest.mark.slow
def test_a_store_restarted_between_push_and_pull_loses_nothing(store, team, tmp_path):
    a, _, _ = team
    before = remote_objects(store)
    for kill in (True, False):  # SIGKILL right after the push, then a graceful stop (SeaweedFS takes 15 s)
        started = time.monotonic()
        store.stop(kill=kill)
        if kill:  # while it is down: dvc and the check fail in one line each within a bounded wait
            proc = run_dvc(a, "status", "-c", env={"AWS_MAX_ATTEMPTS": "1"})
            assert proc.returncode != 0 and "Could not connect to the endpoint URL" in proc.stderr
            with pytest.raises(RemoteError, match=r"does not answer \(gave up after 10 s: EndpointConnectionError"):
                check_remote(a)
            assert time.monotonic() - started < 30
        store.start()
        print(f"{'SIGKILL' if kill else 'graceful stop'} and restart: {time.monotonic() - started:.1f} s")
        assert remote_objects(store) == before  # every object back, with the bytes its name says
    proc = run_dvc(a, "status", "-c", check=True)
    assert "Cache and remote 'shared' are in sync." in proc.stdout
    # and the pull: a copy of A with an empty cache gets every cache file back from the restarted store
    pulled = clone_workspace(a, tmp_path / "pulled")
    shutil.rmtree(pulled / ".dvc" / "cache")
    run_dvc(pulled, "pull", check=True)
    assert _cache_files(pulled) == _cache_files(a)


def _cache_files(project: Path) -> dict[str, bytes]:
    files = project / ".dvc" / "cache" / "files"
    return {str(p.relative_to(files)): p.read_bytes() for p in sorted(files.rglob("*")) if p.is_file()}
