"""A TCP proxy in front of a real Redis/Valkey that delays or loses its replies: the network faults a
store client meets (DESIGN §5.7), for tests that must see a write run once however its reply fares."""

from __future__ import annotations

import asyncio


class FaultyProxy:
    """Forwards every request at once; each reply waits `delay_s` first. A reply is lost instead (its
    connection closed after the request ran) while `lose_replies` is above 0 (it counts down), or when its
    request carries one of the byte strings in `lose_reply_to` (each used once: e.g. a script's SHA1)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.delay_s = 0.0
        self.lose_replies = 0
        self.lose_reply_to: set[bytes] = set()
        self.lost = 0  # replies lost so far
        self._server: asyncio.Server | None = None
        self._pumps: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _connection(self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter) -> None:
        try:
            server_in, server_out = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_out.close()
            return
        doomed = asyncio.Event()  # this connection's next reply is to be lost
        for pump in (self._requests(client_in, server_out, doomed),
                     self._replies(server_in, client_out, server_out, doomed)):
            task = asyncio.create_task(pump)
            self._pumps.add(task)
            task.add_done_callback(self._pumps.discard)

    async def _requests(self, client_in: asyncio.StreamReader, server_out: asyncio.StreamWriter,
                        doomed: asyncio.Event) -> None:
        try:
            while data := await client_in.read(65536):
                if marker := next((m for m in self.lose_reply_to if m in data), None):
                    self.lose_reply_to.discard(marker)
                    doomed.set()
                server_out.write(data)
                await server_out.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            server_out.close()

    async def _replies(self, server_in: asyncio.StreamReader, client_out: asyncio.StreamWriter,
                       server_out: asyncio.StreamWriter, doomed: asyncio.Event) -> None:
        try:
            while data := await server_in.read(65536):
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if self.lose_replies > 0 or doomed.is_set():  # the request ran; its reply never arrives
                    self.lose_replies = max(0, self.lose_replies - 1)
                    self.lost += 1
                    break
                client_out.write(data)
                await client_out.drain()
        except (OSError, ConnectionError):
            pass
        finally:
            client_out.close()
            server_out.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pumps):
            task.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
