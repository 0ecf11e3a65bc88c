"""One way to write a DVC stage's entry point (``stages/<name>.py``).

A stage file declares its command-line arguments and a ``body(args)`` that reads its ``params.yaml`` section,
calls the library and returns the one-line summary, and makes its ``main`` with :func:`stage_main`;
:func:`run_stage` does the rest the same way for every stage:

- ``--params`` (default ``params.yaml``) on every stage;
- the stage's own section, checked against the schema the stage declares (``pipeline.common.schema``) before
  anything runs or is written, and before a training stage relaunches itself under torchrun: the body reads it
  as ``args.section``, the values exactly as ``params.yaml`` has them;
- bad input (any :class:`pipeline.common.errors.PipelineError`, a model's config or weights error, a missing file) is
  printed as ``<stage>: error: <one sentence>`` on stderr with exit code 2, never a traceback;
- under torchrun every rank runs the body, and rank 0 alone prints the summary.

Download's "blocked by YouTube" stop is the one other exit code (3): a body returns it by raising
:class:`StageExit`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable, Sequence

from pipeline.common.errors import PipelineError
from pipeline.common.params import load_section
from pipeline.common.schema import Section, validate_section

#: the exit code of every bad-input error
ERROR_EXIT = 2


class StageExit(Exception):
    """Stop a stage with ``message`` on stderr (``<stage>: error: ...``) and a specific exit code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad input (one clear line for the user), not a bug (a traceback)."""
    errors: list[type[BaseException]] = [PipelineError, FileNotFoundError]
    # The model package's own errors, when the stage has loaded it; looked up, not imported, so that a stage that
    # does not use models (sample, manifest, preflight) neither loads torch nor depends on models/ in dvc.yaml.
    for module, name in (("models", "ModelConfigError"), ("models.vggface", "VGGFaceWeightsError")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


def run_stage(name: str, doc: str | None, add_arguments: Callable[[argparse.ArgumentParser], None],
              body: Callable[[argparse.Namespace], str | None], argv: Sequence[str] | None = None,
              prog: str | None = None, relaunch: Callable[[str, argparse.Namespace], str | None] | None = None,
              schema: type[Section] | None = None) -> int:
    """Parse ``argv`` (``add_arguments`` + ``--params``), run ``body(args)`` and print its summary line; return the
    exit code (0, or 2 with one sentence on stderr for bad input). ``prog``: the command's name in ``--help``
    (default ``python -m stages.<name>``). ``relaunch(name, args)``: a training stage's
    ``pipeline.training.distributed.relaunch_stage``, which reruns it as a whole under torchrun when its section's ``nproc``
    x ``nnodes`` > 1 and returns the launcher's summary (None: train in this process). ``schema``: the stage's
    section schema; its section is validated first and handed to the body as ``args.section``."""
    parser = argparse.ArgumentParser(prog=prog or f"python -m stages.{name}",
                                     description=(doc or name).strip().splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    args = parser.parse_args(None if argv is None else list(argv))
    args.command_line = list(sys.argv[1:] if argv is None else argv)  # to rerun the stage under torchrun
    try:
        if schema is not None:
            args.section = load_valid_section(schema, args.params)
        summary = relaunch(name, args) if relaunch is not None else None
        if summary is None:
            summary = body(args)
    except StageExit as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return exc.code
    except user_errors() as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return ERROR_EXIT
    if summary and os.environ.get("RANK", "0") == "0":  # under torchrun every rank runs the body; one summary line
        print(summary)
    return 0


def stage_main(name: str, doc: str | None, add_arguments: Callable[[argparse.ArgumentParser], None],
               body: Callable[[argparse.Namespace], str | None], prog: str | None = None,
               relaunch: Callable[[str, argparse.Namespace], str | None] | None = None,
               schema: type[Section] | None = None) -> Callable[[Sequence[str] | None], int]:
    """A stage module's ``main(argv=None) -> exit code``: :func:`run_stage` with this stage's parts."""
    def main(argv: Sequence[str] | None = None) -> int:
        return run_stage(name, doc, add_arguments, body, argv, prog, relaunch, schema)

    main.__doc__ = f"Run the {name} stage; returns the exit code."
    return main


def load_valid_section(schema: type[Section], params_file: str) -> dict:
    """The section ``schema`` validates, read from ``params_file`` (unknown and missing keys refused as
    ``load_section`` does) and checked against ``schema``; the values as the file has them."""
    values = load_section(schema.SECTION, params_file)
    validate_section(schema, values)
    return values


def elapsed(start: float) -> str:
    """Seconds since ``start`` as text, for the stages' summary lines."""
    return f"{time.perf_counter() - start:.1f}s"
