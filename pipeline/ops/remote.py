"""Check that the project's DVC remote is configured and reachable before pushing or pulling.

    python -m pipeline.ops.remote            # the default remote
    python -m pipeline.ops.remote -r shared  # a named one

DVC itself reports a missing or unreachable remote late and indirectly (``dvc repro --pull`` only warns about
missing cache files and then recomputes everything). This says in one sentence what is wrong and how to fix it,
and exits non-zero, so a script can stop before hours of recomputation.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.common.errors import PipelineError


class RemoteError(PipelineError, RuntimeError):
    """The DVC remote is not configured, does not exist, or cannot be reached."""


def check_remote(project: str | Path = ".", name: str | None = None) -> str:
    """Return a one-line description of the reachable remote ``name`` (default: the project's default remote).

    Raises RemoteError with one sentence when none is configured, the name is unknown, or its location
    cannot be listed (missing directory, wrong bucket, bad credentials, network down).
    """
    from dvc.exceptions import NotDvcRepoError
    from dvc.repo import Repo

    try:
        repo = Repo(str(project))
    except NotDvcRepoError as err:
        raise RemoteError(f"{project} is not a DVC project (run from the repository root)") from err
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
        url = remotes[chosen].get("url", "?")
        try:
            remote = repo.cloud.get_remote(chosen)
            exists = remote.fs.exists(remote.path)
        except Exception as err:  # any backend failure (auth, DNS, missing plugin) is "unreachable" to the user
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise RemoteError(f"DVC remote '{chosen}' ({url}) is unreachable: {first_line}") from err
        if not exists:
            raise RemoteError(
                f"DVC remote '{chosen}' ({url}) does not exist or is not reachable from here "
                "(wrong path or bucket, not mounted, or nothing pushed to it yet)"
            )
        return f"DVC remote '{chosen}' ({url}) is reachable"


def main(argv: list[str] | None = None) -> int:
    """CLI: print one line; exit 0 when the remote is reachable, 1 otherwise."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-r", "--remote", default=None, help="remote name (default: the project's default)")
    parser.add_argument("--project", default=".", help="project root")
    args = parser.parse_args(argv)
    try:
        print(check_remote(args.project, args.remote))
    except RemoteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
