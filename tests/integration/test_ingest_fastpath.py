"""Submissions answered from the connection (runtime/fastpath.py) answer exactly as through aiohttp, in
order, with the same errors, ids and counts; what the fast path leaves goes through aiohttp."""

from __future__ import annotations

import asyncio
import gc
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from typing import Any
from unittest.mock import ANY

import pytest
from aiohttp.test_utils import TestClient

from eventstore.errors import StoreUnavailable
from ingest.app import INGEST, build_app
from runtime import metrics
from runtime.fastpath import FAST_ROUTES, FastRoute
from runtime.web import Call
from tests.harness import Served, System

Answer = tuple[int, dict[str, str], Any]


class Wire:
    """A raw HTTP/1.1 connection to the test ingest server: what is written is sent as one write."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, raw: bytes) -> None:
        self.writer.write(raw)
        await self.writer.drain()

    async def answer(self) -> Answer:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        body = await self.reader.readexactly(int(headers["content-length"]))
        return int(lines[0].split()[1]), headers, json.loads(body)


def post(path: str, body: Any, *extra: str, version: str = "1.1") -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = [f"POST {path} HTTP/{version}", "Host: x", "Content-Type: application/json", f"Content-Length: {len(raw)}",
            *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + raw


def get(path: str, *extra: str) -> bytes:
    return ("\r\n".join([f"GET {path} HTTP/1.1", "Host: x", *extra]) + "\r\n\r\n").encode()


def chunked(path: str, body: Any) -> bytes:
    raw = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            f"{len(raw):x}\r\n").encode() + raw + b"\r\n0\r\n\r\n"


VIA_AIOHTTP = "/v1/submissions?via=aiohttp"  # not the fast route's exact target: the same handler through aiohttp


@asynccontextmanager
async def wire(s: System) -> AsyncIterator[Wire]:
    url = s.ingest.make_url("/")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        yield Wire(reader, writer)
    finally:
        writer.close()


@pytest.fixture
def fast_calls(system: System) -> Iterator[list[bytes]]:
    """The submission bodies the fast path took (the route wrapped in place)."""
    with taken(system, "/v1/submissions") as calls:
        yield calls


@contextmanager
def taken(s: System, path: str) -> Iterator[list[bytes]]:
    """The bodies the fast route of `path` takes while inside."""
    routes = s.ingest.app[FAST_ROUTES]
    route = routes[path]
    assert isinstance(route, FastRoute)
    calls: list[bytes] = []

    def begin(call: Call) -> asyncio.Future[Any]:
        calls.append(call.body)
        return route.begin(call)

    routes[path] = replace(route, begin=begin)
    try:
        yield calls
    finally:
        routes[path] = route


async def through_aiohttp(s: System, body: Any) -> Answer:
    async with wire(s) as w:
        await w.send(post(VIA_AIOHTTP, body))
        return await w.answer()


async def _body(s: System, correct: int = 5) -> dict[str, Any]:
    attempt = await s.start(await s.register())
    return {"token": attempt["token"], "answers": s.answers(attempt, correct), "prediction": 7}


async def test_a_whole_submission_is_answered_fast_and_a_repeat_through_aiohttp_gets_its_receipt(
        system: System, fast_calls: list[bytes]) -> None:
    s = system
    body = await _body(s)
    async with wire(s) as w:
        await w.send(post("/v1/submissions", body, "X-Request-Id: my-id.1"))
        status, headers, receipt = await w.answer()
        assert (status, headers["content-type"], headers["x-request-id"]) == (202, "application/json", "my-id.1")
        assert len(fast_calls) == 1 and set(receipt) == {"submission_id", "attempt_id", "received_at", "duration_ms"}
        assert "date" in headers and "server" in headers
        await w.send(post(VIA_AIOHTTP, body))  # the same attempt, through aiohttp
        status, headers, again = await w.answer()
        assert (status, again) == (200, receipt) and len(fast_calls) == 1
        assert len(headers["x-request-id"]) == 32  # none given: one made
        await w.send(post("/v1/submissions", body))  # and fast again on the same connection
        assert (await w.answer())[:1] == (200,) and len(fast_calls) == 2
    await s.drain()
    assert await s.count("entries") == 1


BAD_BODIES: list[bytes | dict[str, Any]] = [
    b"", b"{", b"[1, 2]", b'{"token": "x"}', {"token": "nope", "answers": {}, "prediction": 1},
    {"token": "a.b.c", "answers": {}, "prediction": "one"}, b'{"token": "\\u0000", "answers": {}, "prediction": 1}',
    b"\xff\xfe{}",
]


@pytest.mark.parametrize("bad", BAD_BODIES)
async def test_bad_bodies_get_the_same_error_either_way(system: System, fast_calls: list[bytes],
                                                        bad: bytes | dict[str, Any]) -> None:
    s = system
    raw = bad if isinstance(bad, bytes) else json.dumps(bad).encode()
    async with wire(s) as w:
        await w.send(post("/v1/submissions", raw))
        fast = await w.answer()
        await w.send(post("/v1/submissions", raw, version="1.0"))  # HTTP/1.0: through aiohttp
        slow = await w.answer()
    assert fast[0] in (400, 401, 422) and len(fast_calls) == 1
    assert (fast[0], fast[2]) == (slow[0], slow[2])
    assert await s.stream_length() == 0


async def test_refusals_answer_as_through_aiohttp(system: System, fast_calls: list[bytes]) -> None:
    s = system
    body = await _body(s)
    s.clock.advance(3600 * 24 * 30)  # long past the attempt's time limit and the period
    async with wire(s) as w:
        await w.send(post("/v1/submissions", body))
        fast = await w.answer()
    status, _, slow = await through_aiohttp(s, body)
    assert fast[0] in (403, 410) and (fast[0], fast[2]) == (status, slow)
    assert len(fast_calls) == 1


async def test_pipelined_requests_are_answered_in_order(system: System, fast_calls: list[bytes]) -> None:
    """A fast answer still waiting for the store holds back the requests behind it (aiohttp answers those)."""
    s = system
    one, two = await _body(s, 3), await _body(s, 4)
    async with wire(s) as w:
        await w.send(post("/v1/submissions", one) + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                     + post("/v1/submissions", two) + post("/v1/submissions", b"{"))
        answers = [await w.answer() for _ in range(4)]
    assert [a[0] for a in answers] == [202, 200, 202, 400]
    assert answers[0][2]["attempt_id"] != answers[2][2]["attempt_id"]
    assert len(fast_calls) == 1  # the first; the rest queued behind it went through aiohttp
    await s.drain()
    assert await s.count("entries") == 2


async def test_what_the_fast_path_leaves_goes_through_aiohttp(system: System, fast_calls: list[bytes]) -> None:
    s = system
    body = await _body(s)
    async with wire(s) as w:
        head, _, rest = post("/v1/submissions", body).partition(b"\r\n\r\n")
        await w.send(head + b"\r\n\r\n")  # the body after the headers: aiohttp waits for it (and times it)
        await asyncio.sleep(0.1)
        await w.send(rest)
        assert (await w.answer())[0] == 202
        await w.send(post("/v1/submissions", b"{" + b" " * 70_000 + b"}"))  # over MAX_BODY
        status, headers, error = await w.answer()
        assert (status, error["error"]["code"], headers.get("connection")) == (413, "too_large", "close")
    async with wire(s) as w:
        await w.send(b"GET /v1/submissions HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, _ = await w.answer()
        assert status == 405 and headers["allow"] == "POST"
        await w.send(post("/v1/submissions", body, "Connection: close"))  # the same attempt: its receipt
        assert (await w.answer())[0] == 200
        assert await w.reader.read() == b""  # and the connection closed as asked
    assert fast_calls == []
    async with wire(s) as w:
        await w.send(chunked("/v1/submissions", body))  # chunked but whole: fast
        assert (await w.answer())[0] == 200 and len(fast_calls) == 1


async def test_the_store_unavailable_is_503_and_a_bug_is_500(system: System) -> None:
    s = system
    routes = s.ingest.app[FAST_ROUTES]
    route = routes["/v1/submissions"]
    body = await _body(s)

    def unavailable(call: Call) -> asyncio.Future[Any]:
        failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        failed.set_exception(StoreUnavailable("redis: connection refused"))
        return failed

    def broken(call: Call) -> asyncio.Future[Any]:
        raise RuntimeError("a bug")

    try:
        async with wire(s) as w:
            routes["/v1/submissions"] = replace(route, begin=unavailable)
            await w.send(post("/v1/submissions", body))
            status, headers, error = await w.answer()
            assert (status, error["error"]["code"], headers["retry-after"]) == (503, "unavailable", "2")
            routes["/v1/submissions"] = replace(route, begin=broken)
            await w.send(post("/v1/submissions", body))
            status, _, error = await w.answer()
            assert (status, error["error"]["code"]) == (500, "internal")
            routes["/v1/submissions"] = route
            await w.send(post("/v1/submissions", body))  # the connection still serves
            assert (await w.answer())[0] == 202
    finally:
        routes["/v1/submissions"] = route


async def test_a_client_gone_before_its_answer_loses_nothing(system: System) -> None:
    s = system
    ingest = s.ingest.app[INGEST]
    real = ingest.writer.submit_soon
    release = asyncio.Event()

    async def later(*args: Any) -> Any:
        await release.wait()
        return await real(*args)

    ingest.writer.submit_soon = lambda *args: asyncio.ensure_future(later(*args))  # type: ignore[method-assign]
    body = await _body(s)
    try:
        async with wire(s) as w:
            await w.send(post("/v1/submissions", body))
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.1)  # closed before its answer
        release.set()
        await asyncio.sleep(0.2)
    finally:
        ingest.writer.submit_soon = real  # type: ignore[method-assign]
    status, _, receipt = await through_aiohttp(s, body)
    assert status == 200 and receipt["submission_id"]  # it landed: the retry gets its receipt
    await s.drain()
    assert await s.count("entries") == 1


async def test_fast_answers_are_counted_per_route_and_status(system: System, fast_calls: list[bytes]) -> None:
    s = system
    counted = metrics.REQUESTS.labels("ingest", "/v1/submissions", "202")
    before = counted._value.get()
    async with wire(s) as w:
        for _ in range(3):
            await w.send(post("/v1/submissions", await _body(s)))
            assert (await w.answer())[0] == 202
    assert counted._value.get() == before + 3 and len(fast_calls) == 3


async def test_an_idle_connection_after_fast_answers_is_closed_after_the_keepalive_timeout(system: System) -> None:
    s = system
    body = await _body(s)
    async with TestClient(Served(build_app(s.ingest.app[INGEST]), keepalive_timeout=0.3)) as client:
        reader, writer = await asyncio.open_connection(client.host, client.port)
        w = Wire(reader, writer)
        await w.send(post("/v1/submissions", body))
        assert (await w.answer())[0] == 202
        assert await asyncio.wait_for(w.reader.read(), 3) == b""  # closed by the server once idle
        writer.close()


async def test_a_stopping_server_answers_the_fast_request_waiting_for_the_store(system: System) -> None:
    s = system
    ingest = s.ingest.app[INGEST]
    real = ingest.writer.submit_soon

    async def later(*args: Any) -> Any:
        await asyncio.sleep(0.3)
        return await real(*args)

    body = await _body(s)
    server = Served(build_app(ingest))
    await server.start_server()
    ingest.writer.submit_soon = lambda *args: asyncio.ensure_future(later(*args))  # type: ignore[method-assign]
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        w = Wire(reader, writer)
        await w.send(post("/v1/submissions", body))
        await asyncio.sleep(0.05)
        stopping = asyncio.create_task(server.close())  # SIGTERM's path: pre_shutdown, then shutdown
        assert (await w.answer())[0] == 202
        await stopping
        writer.close()
    finally:
        ingest.writer.submit_soon = real  # type: ignore[method-assign]


async def test_with_the_fast_path_off_submissions_go_through_aiohttp(system: System) -> None:
    s = system
    body = await _body(s)
    app = build_app(s.ingest.app[INGEST], fast_path=False)
    assert app[FAST_ROUTES] == {}
    async with TestClient(Served(app)) as client:
        reader, writer = await asyncio.open_connection(client.host, client.port)
        w = Wire(reader, writer)
        await w.send(post("/v1/submissions", body))
        assert (await w.answer())[0] == 202
        writer.close()


async def test_an_attempt_start_is_answered_fast_and_its_key_kept_either_way(system: System) -> None:
    """POST /v1/attempts from the connection: the same attempt as aiohttp's route answers for the same
    Idempotency-Key (the key's record is the one write, whichever way the request came)."""
    s = system
    pid = await s.register()
    auth, key = f"Authorization: Bearer {s.access_keys[pid]}", "Idempotency-Key: start-" + "k" * 16
    with taken(s, "/v1/attempts") as calls:
        async with wire(s) as w:
            await w.send(post("/v1/attempts", {"participant_id": pid}, auth, key, "X-Request-Id: start.1"))
            status, headers, attempt = await w.answer()
            assert (status, headers["x-request-id"], len(calls)) == (201, "start.1", 1)
            assert set(attempt) == {"attempt_id", "token", "period", "started_at", "deadline", "questions"}
            await w.send(post("/v1/attempts?via=aiohttp", {"participant_id": pid}, auth, key))
            assert await w.answer() == (201, ANY, attempt) and len(calls) == 1  # the kept answer, via aiohttp
            await w.send(post("/v1/attempts", {"participant_id": pid}, key))  # no access key: the one error shape
            status, _, error = await w.answer()
            assert (status, error["error"]["code"], len(calls)) == (401, "invalid_credentials", 2)
            await w.send(post("/v1/attempts", {"participant_id": pid}, auth, key, version="1.0"))
            assert (await w.answer())[2] == attempt and len(calls) == 2  # HTTP/1.0: aiohttp, the same
    answer = await s.ingest.get("/v1/participants/me", headers=s.auth(pid))
    assert (await answer.json())["periods"][0]["attempts_started"] == 1  # one start, asked three times


async def test_the_current_attempt_is_answered_fast_private_and_as_through_aiohttp(system: System) -> None:
    s = system
    pid = await s.register()
    auth = f"Authorization: Bearer {s.access_keys[pid]}"
    with taken(s, "/v1/attempts/current") as calls:
        async with wire(s) as w:
            await w.send(get("/v1/attempts/current", auth))
            status, headers, error = await w.answer()
            assert (status, error["error"]["code"], len(calls)) == (404, "no_open_attempt", 1)
            assert "cache-control" not in headers
            attempt = await s.start(pid)
            await w.send(get("/v1/attempts/current", auth))
            fast = await w.answer()
            await w.send(get("/v1/attempts/current?via=aiohttp", auth))  # a query string: aiohttp's route
            slow = await w.answer()
            assert len(calls) == 2
            for status, headers, body in (fast, slow):
                assert (status, headers["cache-control"], body) == (200, "no-store", attempt)
            await w.send(get("/v1/attempts/current", "Authorization: Bearer " + "x" * 30))
            status, _, error = await w.answer()
            assert (status, error["error"]["code"]) == (401, "invalid_credentials")
            await w.send(post("/v1/attempts/current", {}))  # another method: aiohttp's 405
            status, headers, _ = await w.answer()
            assert (status, headers["allow"]) == (405, "GET") and len(calls) == 3


async def test_error_answers_leave_no_garbage_behind(system: System) -> None:
    """An error answered from the connection is freed when written, as aiohttp's are: a reference cycle through
    its traceback would keep each request's body until the collector's next pass, which runtime/collector.py makes
    rare (a review measured 148 MiB for 2,000 malformed 60 KB submissions)."""
    s = system
    pid = await s.register()
    bad = {"token": "nope", "answers": {}, "prediction": 1}
    late = await _body(s)
    s.clock.advance(3600 * 24 * 30)  # past its deadline: refused by the store's reply (finish raises)
    async with wire(s) as w:
        for _ in range(3):  # warm: whatever is made once per process
            await w.send(post("/v1/submissions", bad))
            await w.answer()
        gc.collect()
        gc.disable()
        try:
            for _ in range(20):
                await w.send(post("/v1/submissions", bad))  # 401 from begin
                assert (await w.answer())[0] == 401
                await w.send(post("/v1/attempts", {"participant_id": pid}))  # 401 from the task
                assert (await w.answer())[0] == 401
                await w.send(get("/v1/attempts/current", f"Authorization: Bearer {s.access_keys[pid]}"))  # 404
                assert (await w.answer())[0] == 404
                await w.send(post("/v1/submissions", late))
                assert (await w.answer())[0] in (403, 410)
            left = gc.collect()
        finally:
            gc.enable()
    assert left < 80, f"{left} objects in reference cycles after 80 error answers"
