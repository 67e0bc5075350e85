"""Serving an app until SIGTERM/SIGINT: a deadline on every request's headers (slowloris), the app's
fast routes answered from the connection (runtime/fastpath.py).

aiohttp closes a kept-alive connection whose next headers do not come within `keepalive_timeout`,
but not a fresh connection that trickles its first request's headers forever: Connection adds
that one deadline. Written here because aiohttp has no header-read timeout of its own. Runner is
aiohttp's AppRunner with these connections (the tests serve through it too)."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from aiohttp import web

from runtime import collector
from runtime.fastpath import FAST_ROUTES, FastGet, FastPath, FastRoute, patterned


class Connection(FastPath):
    """A connection closes when its first request's headers have not all arrived within the
    keep-alive timeout (later requests are held to it by aiohttp itself)."""

    __slots__ = ("_deadline",)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._deadline = self._loop.call_later(self.keepalive_timeout, self._no_request_yet)

    def _no_request_yet(self) -> None:
        if self._request_count == 0:
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._deadline.cancel()
        super().connection_lost(exc)


class Server(web.Server):
    """aiohttp's server whose connections are Connections."""

    def __init__(self, *args: Any, fast_routes: dict[str, FastRoute | FastGet] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast_routes = fast_routes
        self.fast_patterns = patterned(fast_routes or {})

    def __call__(self) -> Connection:
        return Connection(self, loop=self._loop, fast_routes=self.fast_routes, fast_patterns=self.fast_patterns,
                          **self._kwargs)


class Runner(web.AppRunner):
    """aiohttp's AppRunner serving through Server (its app's FAST_ROUTES answered from the connection)."""

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()  # the app started and frozen, as aiohttp does it
        return Server(made.request_handler, request_factory=made.request_factory,
                      handler_cancellation=made.handler_cancellation, loop=made._loop,
                      fast_routes=self.app.get(FAST_ROUTES), **made._kwargs)


# Connections waiting to be accepted (the kernel caps it at net.core.somaxconn). asyncio's default of 100
# overflowed when the Monday peak's phones connect in bursts while the loop is busy: the kernel drops the
# handshake, the phone tries again 1 s, 3 s, 7 s later — seconds on a request the server answers in
# milliseconds (found under `make loadtest`: TcpExtListenOverflows in `nstat`).
LISTEN_BACKLOG = 4096


async def serve(app: web.Application, host: str, port: int, *, header_timeout_s: float,
                reuse_port: bool = True) -> None:
    """Serve `app` on host:port until SIGTERM or SIGINT, then shut down as web.run_app does."""
    runner = Runner(app, access_log=None, keepalive_timeout=header_timeout_s)
    await runner.setup()
    collector.settle()
    loop = asyncio.get_running_loop()
    assert runner.server is not None
    listening = await loop.create_server(runner.server, host, port, reuse_port=reuse_port, backlog=LISTEN_BACKLOG)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        listening.close()
        await listening.wait_closed()
        await runner.cleanup()


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """"uvloop" (libuv's loop: the same requests in less CPU; BENCHMARKS.md) or "asyncio" (the standard one)."""
    if kind == "uvloop":
        import uvloop  # only when asked for

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(app: web.Application, host: str, port: int, *, header_timeout_s: float, event_loop: str) -> None:
    with asyncio.Runner(loop_factory=lambda: new_event_loop(event_loop)) as runner:
        runner.run(serve(app, host, port, header_timeout_s=header_timeout_s))
