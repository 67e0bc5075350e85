"""The ingest ceiling of DESIGN §9: a bare aiohttp app that only decodes the same body and answers 202.

    python -m bench.baseline_app PORT [uvloop|asyncio]   (the event loop: the same as ingest's)"""

from __future__ import annotations

import sys

import msgspec
from aiohttp import web

from ingest.schemas import Submission
from runtime.serve import new_event_loop

_decoder = msgspec.json.Decoder(Submission)


async def submit(request: web.Request) -> web.Response:
    _decoder.decode(await request.read())
    return web.Response(body=b'{"ok":true}', status=202, content_type="application/json")


if __name__ == "__main__":
    app = web.Application()
    app.router.add_post("/v1/submissions", submit)
    loop = new_event_loop(sys.argv[2])
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None, loop=loop)
