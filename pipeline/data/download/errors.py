"""Error classes of the download stage (short codes in the attempts table) and their classification."""
from __future__ import annotations

import re

from pipeline.common.errors import PipelineError

#: every class an attempt can end with; ``ok`` is not an error
ERROR_CLASSES = ("unavailable", "network", "blocked", "truncated", "timeout", "corrupt", "missing_in_mirror",
                 "error")
#: only these are worth another attempt (the others will fail the same way again)
RETRYABLE = frozenset({"network", "timeout", "blocked"})


class DownloadConfigError(PipelineError, ValueError):
    """The stage's params or inputs are unusable (bad manifest, missing cookies file): stop with one sentence."""


class DownloadCountsError(PipelineError, RuntimeError):
    """Rows in differ from ok + rejected over the shards: the run stops before its metrics are written."""


class DownloadBlocked(RuntimeError):
    """The site is refusing this machine (bot check, sign-in wall, rate limit): stop the run, keep finished work."""


class AttemptError(Exception):
    """One attempt at one row failed; ``error_class`` is one of ERROR_CLASSES."""

    def __init__(self, error_class: str, message: str):
        super().__init__(message)
        self.error_class = error_class if error_class in ERROR_CLASSES else "error"

    @property
    def retryable(self) -> bool:
        return self.error_class in RETRYABLE


_POINTER_RE = re.compile(r" @ 0x[0-9a-fA-F]+")


# Lower-cased substrings of yt-dlp / ffmpeg messages, checked in this order (first match wins). YouTube's bot
# check, sign-in wall and rate limits come first: they say nothing about the video (``blocked``: retried, never a
# reason to reject the row, and enough of them in a row stop the run). An age gate is about the video.
_PATTERNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("unavailable", ("sign in to confirm your age",)),
    ("blocked", ("confirm you're not a bot", "confirm you’re not a bot", "http error 429", "too many requests",
                 "sign in to confirm", "please sign in", "rate-limited", "rate limited")),
    ("timeout", ("timed out", "timeout")),
    ("unavailable", ("http error 404", "http error 403", "http error 410", "http error 401", "not found",
                     "video unavailable", "this video is unavailable", "private video", "is private",
                     "has been removed", "no longer available", "is not available", "account associated",
                     "terminated", "copyright", "sign in to confirm your age", "members-only", "join this channel",
                     "unsupported url", "requested format is not available", "no video formats found")),
    ("network", ("http error 5", "connection", "network", "name resolution", "temporary failure",
                 "incompleteread", "incomplete read", "unable to download", "reset by peer", "broken pipe",
                 "ssl", "eof occurred", "ffmpeg exited with code", "did not get any data")),
)


def classify_message(message: str) -> str:
    """Map a yt-dlp/ffmpeg error message to an error class (``error`` when nothing matches)."""
    text = (message or "").lower()
    for error_class, needles in _PATTERNS:
        if any(needle in text for needle in needles):
            return error_class
    return "error"


def one_line(message: str, limit: int = 500) -> str:
    """Collapse a (possibly multi-line, ANSI-coloured) message to one line of at most ``limit`` characters.

    ffmpeg's context addresses (``[mov,mp4 @ 0x55d1c0a2b440]``) are dropped: the message goes into the attempts
    table, which must be the same bytes on every run.
    """
    text = " ".join(_POINTER_RE.sub("", str(message)).replace("\x1b[0;31m", "").replace("\x1b[0m", "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
