"""The load generator's lean HTTP client against a real aiohttp server on loopback: what a browser's requests
need (keep-alive, ETag revalidation, gzip, a JSON POST), and the failures it must tell apart (no answer, a
kept connection the server closed, too slow)."""

from __future__ import annotations

import asyncio
import gzip
import os
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from loadtests.lean_http import Http, HttpError

PAGE = b"<html>" + b"x" * 100_000 + b"</html>"  # more than the parser's buffer (gzipped on the wire: much less)
NOISE = os.urandom(300_000)  # incompressible: 300 KB on the wire


async def page(request: web.Request) -> web.Response:
    if request.headers.get("If-None-Match") == '"v1"':
        return web.Response(status=304, headers={"ETag": '"v1"'})
    return web.Response(body=gzip.compress(PAGE), headers={"ETag": '"v1"', "Content-Encoding": "gzip"},
                        content_type="text/html")


async def echo(request: web.Request) -> web.Response:
    return web.json_response({"got": await request.json(), "key": request.headers.get("Idempotency-Key")},
                             status=201)


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.Response(text="late")


async def big(request: web.Request) -> web.StreamResponse:
    """An uncompressible body far beyond the parser's buffer, written in pieces with pauses between."""
    response = web.StreamResponse(headers={"Content-Length": str(len(NOISE))})
    await response.prepare(request)
    for at in range(0, len(NOISE), 50_000):
        await response.write(NOISE[at:at + 50_000])
        await asyncio.sleep(0.01)
    return response


async def cut(request: web.Request) -> web.StreamResponse:
    """A body promised longer than what comes before the connection closes."""
    response = web.StreamResponse(headers={"Content-Length": "1000"})
    await response.prepare(request)
    await response.write(b"x" * 100)
    await asyncio.sleep(0.05)
    assert request.transport is not None
    request.transport.close()
    return response


async def closing(request: web.Request) -> web.Response:
    return web.Response(text="bye", headers={"Connection": "close"})


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_post("/echo", echo)
    app.router.add_get("/slow", slow)
    app.router.add_get("/closing", closing)
    app.router.add_get("/big", big)
    app.router.add_get("/cut", cut)
    async with TestServer(app, host="127.0.0.1") as running:
        yield running


async def test_a_browsers_requests(server: TestServer) -> None:
    http = Http(str(server.make_url("")).rstrip("/"))
    first = await http.request("GET", "/", headers={"Accept-Encoding": "gzip"})
    assert first.status == 200 and gzip.decompress(first.body) == PAGE and first.headers["ETag"] == '"v1"'
    again = await http.request("GET", "/", headers={"If-None-Match": '"v1"'})
    assert again.status == 304 and again.body == b""
    posted = await http.request("POST", "/echo", headers={"Content-Type": "application/json", "Idempotency-Key": "k"},
                                body=b'{"a": 1}')
    assert posted.status == 201 and posted.body == b'{"got": {"a": 1}, "key": "k"}'
    assert len(http._idle) == 1  # one keep-alive connection served them all, one after the other
    http.close()


async def test_concurrent_requests_each_get_their_own_connection_up_to_the_cap(server: TestServer) -> None:
    http = Http(str(server.make_url("")).rstrip("/"))
    answers = await asyncio.gather(*(http.request("GET", "/", headers={"If-None-Match": '"v1"'}) for _ in range(20)))
    assert {a.status for a in answers} == {304} and len(http._idle) == 20
    http.close()
    capped = Http(str(server.make_url("")).rstrip("/"), connections=4)
    answers = await asyncio.gather(*(capped.request("GET", "/", headers={"If-None-Match": '"v1"'}) for _ in range(20)))
    assert {a.status for a in answers} == {304} and len(capped._idle) == 4  # the others waited their turn
    capped.close()


async def test_a_closed_connection_is_not_kept_and_a_stale_one_is_replaced(server: TestServer) -> None:
    http = Http(str(server.make_url("")).rstrip("/"))
    assert (await http.request("GET", "/closing")).body == b"bye"
    assert http._idle == []  # "Connection: close": not kept
    await http.request("GET", "/", headers={"If-None-Match": '"v1"'})
    http._idle[0].transport.close()  # type: ignore[union-attr]  # as a server's keep-alive timeout does
    http._idle[0].closed = False  # … before the client has noticed
    assert (await http.request("GET", "/", headers={"If-None-Match": '"v1"'})).status == 304
    http.close()


async def test_no_answer_and_too_slow_are_errors(server: TestServer) -> None:
    http = Http(str(server.make_url("")).rstrip("/"), timeout_s=0.5)
    with pytest.raises(TimeoutError):
        await http.request("GET", "/slow")
    await server.close()
    with pytest.raises(HttpError):
        await http.request("GET", "/")


async def test_a_body_in_pieces_beyond_the_buffer_and_one_cut_short(server: TestServer) -> None:
    http = Http(str(server.make_url("")).rstrip("/"), timeout_s=1)
    answer = await http.request("GET", "/big")
    assert answer.status == 200 and answer.body == NOISE
    with pytest.raises((HttpError, TimeoutError)):  # a failure, reported (by the journeys) as no answer
        await http.request("GET", "/cut")
    assert (await http.request("GET", "/big")).body == NOISE  # the pool is whole again
    http.close()
