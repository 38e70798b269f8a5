"""What the web server refuses before Gradio sees a request (an ASGI middleware).

- uploads: a cap on one request's whole body (Gradio's own limit is per file), and a refusal
  when the disk holding the uploads folder would fall below a free-space margin;
- logins: failed attempts are logged with the client's address (never the password) and, after
  a few in a minute from one address, further attempts get 429 until the minute has passed;
- downloads: files are sent as attachments with `X-Content-Type-Options: nosniff`, so a planted
  .html or .svg is saved, never rendered in the page's origin."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import urllib.parse
from collections import defaultdict, deque
from pathlib import Path

from .. import locale

log = logging.getLogger("workbench.security")

MB = 1024 * 1024
MAX_REQUEST_MB = 110  # one dataset file (100 MB) and the form around it
# uploads stop when the disk would keep less than this (an operator may set another margin)
MIN_FREE_MB = float(os.environ.get("WORKBENCH_MIN_FREE_MB", "1024"))
LOGIN_WINDOW_S = 60.0
LOGIN_FAILURES = 5  # failures per address and window before 429


class LoginLimiter:
    """Failed logins per client address in a sliding window."""

    def __init__(self, limit: int = LOGIN_FAILURES, window: float = LOGIN_WINDOW_S):
        self.limit, self.window = limit, window
        self._failures: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, address: str, now: float) -> deque:
        times = self._failures[address]
        while times and now - times[0] > self.window:
            times.popleft()
        return times

    def blocked(self, address: str, now: float | None = None) -> bool:
        with self._lock:
            return len(self._recent(address, now or time.monotonic())) >= self.limit

    def failed(self, address: str, now: float | None = None) -> None:
        with self._lock:
            self._recent(address, now or time.monotonic()).append(now or time.monotonic())
            if len(self._failures) > 10_000:  # never grows without bound under a spray of addresses
                self._failures.pop(next(iter(self._failures)))


LIMITER = LoginLimiter()  # one per process: every server of it counts the same addresses


class Guard:
    """ASGI middleware; Gradio's FastAPI app is built with it (launch's app_kwargs).

    roots: the folders files may be served from (the runs folder, the uploads folder)."""

    def __init__(self, app, uploads: Path, roots: list[Path] | None = None, limiter: LoginLimiter | None = None):
        self.app, self.uploads = app, Path(uploads)
        self.roots = [Path(os.path.realpath(r)) for r in (roots or [uploads])]
        self.limiter = limiter or LIMITER

    @property
    def max_bytes(self) -> int:
        return int(MAX_REQUEST_MB * MB)

    @property
    def min_free(self) -> int:
        return int(MIN_FREE_MB * MB)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, method = scope.get("path", ""), scope.get("method", "")
        if method == "POST" and path.rstrip("/").endswith("/upload"):
            return await self._upload(scope, receive, send)
        if method == "POST" and path.rstrip("/").endswith("/login"):
            return await self._login(scope, receive, send)
        if "/file=" in path:
            if not self._servable(path.split("/file=", 1)[1]):
                return await _reply(send, 403, "not a file of this workspace")
            return await self.app(scope, receive, _download_headers(send))
        return await self.app(scope, receive, send)

    # ---- uploads ---------------------------------------------------------------------
    async def _upload(self, scope, receive, send):
        length = _content_length(scope)
        if length is not None and length > self.max_bytes:
            return await _reply(
                send, 413, locale.t("upload.too_large", size=f"{length / MB:.0f}", limit=f"{self.max_bytes / MB:g}")
            )
        if self._free_bytes() - (length or 0) < self.min_free:
            log.warning("upload refused: free disk below %d MB", self.min_free // MB)
            return await _reply(send, 507, locale.t("upload.disk_full"))
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # a body longer than it said, or sent without a length
                    raise _TooLarge()
            return message

        try:
            return await self.app(scope, counted, send)
        except _TooLarge:
            return await _reply(
                send,
                413,
                locale.t("upload.too_large", size=f"> {self.max_bytes / MB:g}", limit=f"{self.max_bytes / MB:g}"),
            )

    def _servable(self, target: str) -> bool:
        """A local file asked for by path resolves (after symlinks) inside the workspace."""
        target = urllib.parse.unquote(target)
        if "://" in target:
            return False  # a URL: this server fetches nothing on a browser's behalf
        real = os.path.realpath(target if os.path.isabs(target) else os.path.join(os.getcwd(), target))
        return any(real == str(r) or real.startswith(str(r) + os.sep) for r in self.roots)

    def _free_bytes(self) -> int:
        folder = self.uploads
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return shutil.disk_usage(folder).free

    # ---- logins ----------------------------------------------------------------------
    async def _login(self, scope, receive, send):
        address = (scope.get("client") or ("unknown",))[0]
        if self.limiter.blocked(address):
            log.warning("login refused (rate limit) from %s", address)
            return await _reply(send, 429, locale.t("login.too_many"), {"retry-after": str(int(LOGIN_WINDOW_S))})
        status = {}

        async def watching(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watching)
        if status.get("code") == 400:
            self.limiter.failed(address)
            log.warning("failed login from %s", address)


class _TooLarge(Exception):
    pass


def _content_length(scope) -> int | None:
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _download_headers(send):
    async def wrapped(message):
        if message["type"] == "http.response.start":
            headers = [
                (k, v)
                for k, v in message.get("headers", [])
                if k.lower() not in (b"content-disposition", b"x-content-type-options")
            ]
            original = dict(message.get("headers", [])).get(b"content-disposition", b"")
            headers.append((b"content-disposition", _attachment(original)))
            headers.append((b"x-content-type-options", b"nosniff"))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def _attachment(original: bytes) -> bytes:
    """Gradio's disposition turned into an attachment, keeping the file name it gave."""
    text = original.decode("latin-1")
    _, _, params = text.partition(";")
    return ("attachment" + (";" + params if params.strip() else "")).encode("latin-1")


async def _reply(send, status: int, message: str, headers: dict | None = None) -> None:
    body = json.dumps({"error": message, "detail": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *[(k.encode(), v.encode()) for k, v in (headers or {}).items()],
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
