"""/openapi.json of every app (ingest, results, the desk): generated from the route tables, loadable by
schemathesis, every route, path parameter and response declared, and the live answers conforming to it."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
import schemathesis
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.harness import System

CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance)


def _client(system: System, app: str) -> TestClient:  # type: ignore[type-arg]
    return {"ingest": system.ingest, "results": system.results, "desk": system.desk}[app]


async def _document(client: TestClient) -> dict[str, Any]:  # type: ignore[type-arg]
    answer = await client.get("/openapi.json")
    assert answer.status == 200
    return dict(await answer.json())


@pytest.mark.parametrize("app", ["ingest", "results", "desk"])
async def test_every_route_parameter_and_response_is_declared(system: System, app: str) -> None:
    client = _client(system, app)
    doc = await _document(client)
    schema = schemathesis.openapi.from_dict(doc)
    assert all(result.ok() is not None for result in schema.get_all_operations())  # .ok() raises on a schema error
    registered = {(r.method.lower(), r.resource.canonical) for r in client.app.router.routes()
                  if r.method != "HEAD" and r.resource is not None}
    assert registered == {(m, p) for p, methods in doc["paths"].items() for m in methods}
    for path, methods in doc["paths"].items():
        for op in methods.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), path
            assert any(code[0] in "23" for code in op["responses"]), path  # an answer, or a redirect to one
            if path.startswith("/v1/"):
                assert "503" in op["responses"], path  # overload or a server down
            if "requestBody" in op:
                assert {"400", "413", "422"} <= set(op["responses"]), path


@pytest.mark.parametrize("app", ["ingest", "results", "desk"])
async def test_live_answers_conform_to_the_document(system: System, app: str) -> None:
    """schemathesis-generated requests (valid and not) get only declared statuses and bodies."""
    s = system
    person = await s.register()
    await s.entry(person, 3)
    await s.drain()
    client = _client(s, app)
    schema = schemathesis.openapi.from_dict(await _document(client))
    base = str(client.make_url("")).rstrip("/")

    def in_period_one(case: Any) -> Any:
        """Random period numbers only ever find 404: reach the handlers behind them."""
        if case.path_parameters and "n" in case.path_parameters:
            case.path_parameters["n"] = 1
        return case

    def fuzz(operation: Any) -> None:
        @settings(max_examples=15, deadline=None, phases=[Phase.generate], database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy().map(in_period_one))
        def check(case: Any) -> None:
            case.call_and_validate(base_url=base, checks=CHECKS)

        check()

    for result in schema.get_all_operations():
        await asyncio.to_thread(fuzz, result.ok())
