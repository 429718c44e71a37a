"""Serving the HTTP API: aiohttp's runner, plus the header-read timeout aiohttp does not have.

aiohttp waits as long as a client likes for a request's headers, so a client that sends a byte every few
seconds (slowloris) holds a connection open for good. `HeaderDeadline` wraps each connection's
protocol and closes the connection when a request's headers are not complete `header_timeout` after it
began (after connecting, or after the first byte of a later request on a kept-alive connection), as Go's
`http.Server.ReadHeaderTimeout`. A request body is skipped by its Content-Length; after a chunked body
the connection is left to aiohttp's keep-alive timeout.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import signal
import socket
from collections.abc import Callable

from aiohttp import web

log = logging.getLogger(__name__)

KEEPALIVE_TIMEOUT = 75.0  # seconds an idle kept-alive connection stays open (nginx's default)
SHUTDOWN_TIMEOUT = 30.0  # seconds running requests get to finish on SIGTERM
_ENDS = (b"\r\n\r\n", b"\n\n")  # the blank line that ends a header block (bare LF read leniently)


class _State(enum.Enum):
    HEADERS = "headers"  # reading a request's headers: the deadline runs
    BODY = "body"  # skipping a body of known length
    IDLE = "idle"  # between requests: aiohttp's keep-alive timeout applies
    PASSTHROUGH = "passthrough"  # a chunked body or an upgrade: no more deadlines on this connection


class HeaderDeadline(asyncio.Protocol):
    """A connection's protocol: `inner` (aiohttp's request handler) does the work, this adds the deadline."""

    def __init__(self, inner: asyncio.Protocol, timeout: float) -> None:
        self._inner = inner
        self._timeout = timeout
        self._transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._state = _State.IDLE
        self._head = b""  # the header bytes of the current request so far
        self._body_left = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        self._inner.connection_made(transport)
        self._start_headers()

    def data_received(self, data: bytes) -> None:
        self._watch(data)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def _watch(self, data: bytes) -> None:
        while data and self._state is not _State.PASSTHROUGH:
            if self._state is _State.IDLE:
                self._start_headers()
            if self._state is _State.HEADERS:
                data = self._read_headers(data)
            elif self._state is _State.BODY:
                taken = min(self._body_left, len(data))
                self._body_left -= taken
                data = data[taken:]
                if self._body_left == 0:
                    self._state = _State.IDLE

    def _read_headers(self, data: bytes) -> bytes:
        """Consume header bytes; at the blank line, stop the clock and return what follows it."""
        seen = len(self._head)
        self._head += data  # bounded: aiohttp refuses (400) a header block past its limits
        ends = [(i, len(end)) for end in _ENDS if (i := self._head.find(end, max(0, seen - 3))) != -1]
        if not ends:
            return b""
        at, size = min(ends)
        head, rest = self._head[:at], self._head[at + size :]
        self._cancel()
        self._head = b""
        length, chunked = _body_of(head)
        if chunked:
            self._state = _State.PASSTHROUGH
        elif length:
            self._state, self._body_left = _State.BODY, length
        else:
            self._state = _State.IDLE
        return rest

    def _start_headers(self) -> None:
        self._state = _State.HEADERS
        self._cancel()
        self._timer = asyncio.get_running_loop().call_later(self._timeout, self._expire)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        log.debug("closing a connection that sent no complete request headers in %gs", self._timeout)
        if self._transport is not None:
            self._transport.close()


def _body_of(head: bytes) -> tuple[int, bool]:
    """(Content-Length, whether the body is chunked or the connection upgraded) from a header block."""
    length = 0
    for line in head.split(b"\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length" and value.strip().isdigit():
            length = int(value.strip())
        elif name in (b"transfer-encoding", b"upgrade"):
            return 0, True
    return length, False


async def serve(
    app: web.Application,
    sock: socket.socket,
    *,
    header_timeout: float,
    on_started: Callable[[str], None] = log.info,
) -> None:
    """Serve `app` on the listening socket `sock` (bound by the caller, so that a port in use is reported
    before anything starts) until SIGTERM or SIGINT, then shut down gracefully (cleanup contexts run)."""
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        keepalive_timeout=KEEPALIVE_TIMEOUT,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
    )
    await runner.setup()
    try:
        loop = asyncio.get_running_loop()
        server = runner.server
        assert server is not None  # set by setup()
        listener = await loop.create_server(lambda: HeaderDeadline(server(), header_timeout), sock=sock)
        bound = listener.sockets[0].getsockname()
        on_started(f"serving the HTTP API on http://{bound[0]}:{bound[1]}")
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            listener.close()  # no new connections; cleanup() below lets running requests finish
    finally:
        await runner.cleanup()
