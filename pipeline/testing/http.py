"""A loopback HTTP server for offline tests: serves a directory with real Range support.

``http.server`` ignores ``Range`` headers; ffmpeg and yt-dlp then cannot seek, and a section download can end as
an empty file with exit code 0. This server answers ``206 Partial Content`` with ``Content-Range`` and
``Accept-Ranges: bytes``, and has switches for failure modes the download stage must record:

- ``/missing/<name>``: always ``404 Not Found``; ``/forbidden/<name>``: always ``403 Forbidden``;
- ``/truncated/<name>``: announces the full ``Content-Length`` but closes the connection after a third of it;
- ``/slow/<name>``: waits ``slow_seconds`` before answering;
- ``/norange/<name>``: ignores ``Range`` like ``http.server`` does (always ``200`` with the whole file);
- ``/blocked/<name>``: always ``429 Too Many Requests``, as a site that is refusing this machine; and
  ``block_first=N`` answers the first N requests of any path that way (a block that lifts), and a file name in
  ``blocked_names`` is answered that way until it is taken out of the set;
- a file name in ``failing_names``: ``503 Service Unavailable`` (a server error that may go away).

Use as a context manager (``with RangeHTTPServer(root) as server: server.url("a.mp4")``); it binds
127.0.0.1 on a free port and serves from a daemon thread.
"""
from __future__ import annotations

import mimetypes
import re
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")
_CHUNK = 64 * 1024


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature from the base class
        """Stay quiet: test output should not fill with access logs."""

    def do_HEAD(self) -> None:  # noqa: N802 - http.server naming
        self._serve(send_body=False)

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self._serve(send_body=True)

    def _serve(self, send_body: bool) -> None:
        owner = self.server.owner
        path = unquote(urlsplit(self.path).path).lstrip("/")
        mode, _, name = path.partition("/")
        if mode not in ("missing", "forbidden", "truncated", "slow", "norange", "blocked"):
            mode, name = "plain", path
        with owner.lock:
            owner.requests.append((self.command, "/" + path, self.headers.get("Range")))
            blocked = mode == "blocked" or owner.block_first > 0 or name in owner.blocked_names
            owner.block_first = max(owner.block_first - 1, 0)
            failing = name in owner.failing_names
        if blocked:
            return self._error(HTTPStatus.TOO_MANY_REQUESTS)
        if failing:
            return self._error(HTTPStatus.SERVICE_UNAVAILABLE)
        if mode == "missing":
            return self._error(HTTPStatus.NOT_FOUND)
        if mode == "forbidden":
            return self._error(HTTPStatus.FORBIDDEN)
        if mode == "slow":
            time.sleep(owner.slow_seconds)
        file = (owner.root / name).resolve()
        if owner.root not in file.parents or not file.is_file():
            return self._error(HTTPStatus.NOT_FOUND)
        size = file.stat().st_size
        start, end = 0, size - 1
        status = HTTPStatus.OK
        header = self.headers.get("Range") if mode != "norange" else None
        if header:
            match = _RANGE.match(header.strip())
            if not match or (not match.group(1) and not match.group(2)):
                return self._error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, size)
            if match.group(1):
                start = int(match.group(1))
                end = min(int(match.group(2)), size - 1) if match.group(2) else size - 1
            else:  # suffix range: the last N bytes
                start = max(size - int(match.group(2)), 0)
            if start >= size or start > end:
                return self._error(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, size)
            status = HTTPStatus.PARTIAL_CONTENT
        length = end - start + 1
        self.send_response(status)
        self.send_header("Content-Type", mimetypes.guess_type(file.name)[0] or "application/octet-stream")
        if mode != "norange":
            self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(length))
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        if mode == "truncated":
            self.send_header("Connection", "close")
        self.end_headers()
        if not send_body:
            return
        to_send = length // 3 if mode == "truncated" else length
        try:
            with file.open("rb") as fh:
                fh.seek(start)
                while to_send > 0:
                    chunk = fh.read(min(_CHUNK, to_send))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    to_send -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (seeking ffmpeg does this): nothing to report
        if mode == "truncated":
            self.close_connection = True

    def _error(self, status: HTTPStatus, size: int | None = None) -> None:
        body = f"{status.value} {status.phrase}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if size is not None:
            self.send_header("Content-Range", f"bytes */{size}")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "RangeHTTPServer"

    def handle_error(self, request, client_address) -> None:
        """Clients that hang up mid-response (seeking ffmpeg, a truncated test) are normal here: stay quiet."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


class RangeHTTPServer:
    """Serve ``root`` on 127.0.0.1 (free port) with Range support and failure switches (see module doc)."""

    def __init__(self, root: str | Path, slow_seconds: float = 5.0, block_first: int = 0):
        self.root = Path(root).resolve()
        self.slow_seconds = slow_seconds
        self.block_first = int(block_first)
        self.blocked_names: set[str] = set()
        self.failing_names: set[str] = set()
        self.requests: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` of the running server."""
        if self._server is None:
            raise RuntimeError("server not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, name: str, mode: str = "") -> str:
        """URL of file ``name``; ``mode`` is "" or one of missing, forbidden, truncated, slow, norange, blocked."""
        return f"{self.base_url}/{mode + '/' if mode else ''}{name}"

    def start(self) -> "RangeHTTPServer":
        """Bind and start serving from a daemon thread."""
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="range-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "RangeHTTPServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
