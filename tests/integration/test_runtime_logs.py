"""Logs: a request id on every line of a request (echoed to the client), personal data masked."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from eventstore.errors import StoreUnavailable
from runtime.logs import mask_personal_data, mask_text
from runtime.web import api_middleware


def test_cccd_and_phones_are_masked_anywhere_in_a_line() -> None:
    assert mask_text("id 038090001234 registered") == "id *********234 registered"
    assert mask_text("phone 0912345678, +84912345678") == "phone 0912***678, 0912***678"
    assert mask_text("attempt 0190a1b2-... took 1234 ms") == "attempt 0190a1b2-... took 1234 ms"
    event = mask_personal_data(None, "info", {"event": "x", "body": '{"id_number": "038090001234"}', "n": 5})
    assert event == {"event": "x", "body": '{"id_number": "*********234"}', "n": 5}


async def test_every_line_of_a_request_carries_its_request_id() -> None:
    captured: list[dict[str, Any]] = []

    def keep(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        captured.append(dict(event))
        raise structlog.DropEvent

    async def handler(_: web.Request) -> web.Response:
        structlog.get_logger().info("working", phone="0912345678")
        raise StoreUnavailable("redis: down")

    structlog.configure(processors=[structlog.contextvars.merge_contextvars, mask_personal_data, keep])
    try:
        app = web.Application(middlewares=[api_middleware()])
        app.router.add_get("/x", handler)
        async with TestClient(TestServer(app)) as client:
            given = await client.get("/x", headers={"X-Request-Id": "abc-123"})
            fresh = await client.get("/x", headers={"X-Request-Id": "not valid!"})
    finally:
        structlog.reset_defaults()
    assert given.status == 503 and given.headers["X-Request-Id"] == "abc-123"
    assert fresh.headers["X-Request-Id"] != "not valid!" and len(fresh.headers["X-Request-Id"]) == 32
    mine = [e for e in captured if e.get("request_id") == "abc-123"]
    assert {"working", "store_unavailable"} <= {e["event"] for e in mine}
    assert all(e.get("phone", "0912***678") == "0912***678" for e in captured)
    assert all("request_id" in e for e in captured)
