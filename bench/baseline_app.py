"""The ingest ceiling of DESIGN §9: a bare aiohttp app that only decodes the same body and answers 202;
with `protocol`, a bare asyncio protocol on aiohttp's C parser doing the same (what is left when the web
layer is gone: the ceiling of runtime/fastpath.py's kind of answer, printed beside the other).

    python -m bench.baseline_app PORT [uvloop|asyncio] [app|protocol]   (the event loop: the same as ingest's)"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.base_protocol import BaseProtocol
from aiohttp.http_parser import HttpRequestParser  # the C parser (aiohttp picks it when built)

from ingest.schemas import Submission
from runtime.serve import new_event_loop

_decoder = msgspec.json.Decoder(Submission)
_BODY = b'{"ok":true}'
_ANSWER = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n" + _BODY


async def submit(request: web.Request) -> web.Response:
    _decoder.decode(await request.read())
    return web.Response(body=_BODY, status=202, content_type="application/json")


class Bare(BaseProtocol):
    """Parse, decode the whole body, answer 202: no keep-alive timer, no error handling (a ceiling only)."""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.parser = HttpRequestParser(self, self._loop, 2**16)

    def data_received(self, data: bytes) -> None:
        messages, _, _ = self.parser.feed_data(data)
        for _, payload in messages:
            _decoder.decode(payload.read_nowait(-1))
            self.transport.write(_ANSWER)  # type: ignore[union-attr]


async def serve_bare(port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_server(lambda: Bare(loop), "127.0.0.1", port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    port, kind = int(sys.argv[1]), sys.argv[3] if len(sys.argv) > 3 else "app"
    loop = new_event_loop(sys.argv[2])
    if kind == "protocol":
        loop.run_until_complete(serve_bare(port))
    else:
        app = web.Application()
        app.router.add_post("/v1/submissions", submit)
        web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, loop=loop)
