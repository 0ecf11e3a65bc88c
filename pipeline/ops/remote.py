"""Check that the project's DVC remote is configured and reachable before pushing or pulling.

    python -m pipeline.ops.remote            # the default remote
    python -m pipeline.ops.remote -r shared  # a named one
    python -m pipeline.ops.remote --push     # and that these credentials may push to it (writes, then deletes,
                                             # one empty probe object)

DVC itself reports a missing or unreachable remote late and indirectly (``dvc repro --pull`` only warns about
missing cache files and then recomputes everything). This says in one sentence what is wrong and how to fix it,
and exits non-zero, so a script can stop before hours of recomputation. On an S3 remote (``dvc-s3``) each of S3's
answers gets its own sentence: AccessDenied (a read-only member's push, or a bucket these keys may not read),
SignatureDoesNotMatch / InvalidAccessKeyId (wrong keys), NoSuchBucket, and an endpoint that does not answer, which
the check gives up on within a bounded wait (``connect_timeout`` / ``read_timeout`` of the remote when set, else
``WAIT_S``; botocore tries each request at most ``ATTEMPTS`` times).
"""
from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import Any

from pipeline.common.errors import PipelineError


class RemoteError(PipelineError, RuntimeError):
    """The DVC remote is not configured, does not exist, or cannot be reached."""


#: seconds the check waits for an S3 endpoint to accept a connection (and 2x that for an answer), unless the remote
#: sets connect_timeout / read_timeout
WAIT_S = 5
#: botocore's tries per request during the check (its default, 5 with back-off, can take minutes for a dead endpoint)
ATTEMPTS = 2

_S3_SENTENCES = {
    "AccessDenied": "refuses these credentials (S3 AccessDenied){doing}: they are a read-only member's, or the bucket "
                    "does not exist or is not theirs to read; ask for a writer's keys or fix the URL",
    "SignatureDoesNotMatch": "rejects the secret key (S3 SignatureDoesNotMatch): fix secret_access_key in "
                             ".dvc/config.local (`dvc remote modify --local {name} secret_access_key ...`)",
    "InvalidAccessKeyId": "does not know the access key id (S3 InvalidAccessKeyId): fix access_key_id in "
                          ".dvc/config.local (`dvc remote modify --local {name} access_key_id ...`)",
    "NoSuchBucket": "has no bucket {bucket} (S3 NoSuchBucket): create it, or fix the remote's URL",
}


def _s3_code(err: BaseException) -> tuple[str | None, BaseException | None]:
    """S3's error code of a failure (walking the exception chain to botocore's ClientError), and the first
    connection-level error in the chain (the endpoint did not answer)."""
    code, connection = None, None
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        response = getattr(err, "response", None)
        if code is None and isinstance(response, dict):
            code = (response.get("Error") or {}).get("Code") or None
        name = type(err).__name__
        if connection is None and (name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError",
                                            "ConnectionClosedError") or isinstance(err, (ConnectionError,
                                                                                         TimeoutError))):
            connection = err
        err = err.__cause__ or err.__context__
    return code, connection


def _explain(err: BaseException, name: str, url: str, endpoint: str | None, waited: float, doing: str = "") -> str:
    """One sentence for a failure of remote ``name``."""
    code, connection = _s3_code(err)
    where = f"DVC remote '{name}' ({url}{f' at {endpoint}' if endpoint else ''})"
    if code in _S3_SENTENCES:
        bucket = url.split("://", 1)[-1].split("/", 1)[0]
        return f"{where} " + _S3_SENTENCES[code].format(name=name, bucket=bucket, doing=doing)
    if code == "403":  # a HEAD request's answer has no body, so no code: say what it can mean
        return f"{where} refuses these credentials (HTTP 403 Forbidden): wrong keys, or a bucket they may not read"
    if connection is not None:
        return (f"{where} does not answer (gave up after {waited:.0f} s: {type(connection).__name__}); check the "
                f"endpoint URL and that the store is up")
    text = str(err).strip()
    first_line = text.splitlines()[0] if text else type(err).__name__
    return f"{where} is unreachable: {code + ': ' if code else ''}{first_line}"


def _bound_waits(fs: Any, config: dict[str, Any]) -> float:
    """Make an S3 filesystem give up on a dead endpoint within a bounded time (before its first use); return
    the longest wait for one request."""
    args = getattr(fs, "fs_args", None)
    protocol = getattr(fs, "protocol", ())
    if not isinstance(args, dict) or "s3" not in ((protocol,) if isinstance(protocol, str) else tuple(protocol)):
        return 0.0
    kwargs = args.setdefault("config_kwargs", {})
    kwargs.setdefault("connect_timeout", int(config.get("connect_timeout", WAIT_S)))
    kwargs.setdefault("read_timeout", int(config.get("read_timeout", 2 * WAIT_S)))
    kwargs.setdefault("retries", {"max_attempts": ATTEMPTS, "mode": "standard"})
    return float(kwargs["connect_timeout"]) * ATTEMPTS


def check_remote(project: str | Path = ".", name: str | None = None, push: bool = False) -> str:
    """Return a one-line description of the reachable remote ``name`` (default: the project's default remote).

    Raises RemoteError with one sentence when none is configured, the name is unknown, the config is invalid, or
    its location cannot be listed (missing directory, wrong bucket, bad credentials, network down), and with
    ``push`` when these credentials may not write to it.
    """
    from dvc.config import ConfigError
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        repo = Repo(str(project))
    except NotDvcRepoError as err:
        raise RemoteError(f"{project} is not a DVC project (run from the repository root)") from err
    except ConfigError as err:  # e.g. a remote URL with a scheme DVC does not know
        detail = str(err).replace("config file error: ", "").split(" for dictionary value")[0]
        raise RemoteError(f"the DVC config of {project} is invalid: {detail} (remotes are s3://, gs://, "
                          f"azure://, ssh://, http(s)://, hdfs://, webdav(s):// or a local path)") from None
    with repo:
        remotes = dict(repo.config.get("remote", {}))
        chosen = name or repo.config.get("core", {}).get("remote")
        if not chosen:
            raise RemoteError(
                "no default DVC remote is configured: add one with `dvc remote add -d <name> <url>` "
                "(credentials go in .dvc/config.local via `dvc remote modify --local`)"
            )
        if chosen not in remotes:
            known = ", ".join(sorted(remotes)) or "none"
            raise RemoteError(f"DVC remote '{chosen}' is not configured (configured: {known})")
        config = remotes[chosen]
        url = config.get("url", "?")
        endpoint = config.get("endpointurl")
        waited = 0.0
        try:
            remote = repo.cloud.get_remote(chosen)
            fs, path = remote.fs, remote.path
            waited = _bound_waits(fs, config)
            if waited:  # S3: a listing, whose error answers carry S3's code (a HEAD request's have none)
                bucket = path.split("/", 1)[0]
                exists = bool(fs.ls(bucket, detail=False) is not None)  # the bucket itself, readable
                empty = not fs.exists(path)
            else:
                exists, empty = fs.exists(path), False
        except Exception as err:  # noqa: BLE001 - any backend failure (auth, DNS, missing plugin): one sentence
            raise RemoteError(_explain(err, chosen, url, endpoint, waited)) from None
        if not exists:
            raise RemoteError(
                f"DVC remote '{chosen}' ({url}) does not exist or is not reachable from here "
                "(wrong path or bucket, not mounted, or nothing pushed to it yet)"
            )
        if push:
            probe = f"{path.rstrip('/')}/.write-check-{secrets.token_hex(6)}"
            try:
                fs.pipe_file(probe, b"")
                fs.rm_file(probe)
            except Exception as err:  # noqa: BLE001 - a refused write, whatever the backend: one sentence
                raise RemoteError(_explain(err, chosen, url, endpoint, waited, " to a push")) from None
        state = " (nothing pushed to it yet)" if empty else ""
        return f"DVC remote '{chosen}' ({url}) is reachable{state}{' and accepts pushes' if push else ''}"


def main(argv: list[str] | None = None) -> int:
    """CLI: print one line; exit 0 when the remote is reachable, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--remote", default=None, help="remote name (default: the project's default)")
    parser.add_argument("--project", default=".", help="project root")
    parser.add_argument("--push", action="store_true", help="also check that these credentials may push")
    args = parser.parse_args(argv)
    try:
        print(check_remote(args.project, args.remote, push=args.push))
    except RemoteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
