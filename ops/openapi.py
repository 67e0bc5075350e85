"""OpenAPI documents of both apps, generated from the msgspec types."""

from __future__ import annotations

from typing import Any

import msgspec

from ingest import schemas as ing
from projections import views as res

ERROR = {"description": "error", "content": {"application/json": {"schema": {
    "type": "object", "properties": {"error": {"type": "object", "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}}}}}}}}

# (method, path, request type, success status, response type, error statuses)
INGEST_ROUTES: list[tuple[str, str, Any, int, Any, list[int]]] = [
    ("post", "/v1/participants", ing.Registration, 201, ing.Registered, [400, 403, 409, 413, 422, 503]),
    ("post", "/v1/attempts", ing.AttemptRequest, 201, ing.AttemptStartedOut, [400, 403, 404, 409, 422, 503]),
    ("post", "/v1/submissions", ing.Submission, 202, ing.Receipt, [400, 401, 403, 410, 413, 422, 503]),
    ("post", "/v1/admin/periods/{n}/close", None, 200, ing.PeriodClosed, [401, 404, 409, 503]),
    ("post", "/v1/admin/periods/{n}/recompute", None, 200, ing.PeriodClosed, [401, 404, 409, 503]),
    ("post", "/v1/admin/disqualifications", ing.Disqualification, 202, None, [401, 404, 422]),
    ("post", "/v1/admin/answer-key", ing.AnswerKeyCorrection, 202, None, [401, 404, 422]),
]
RESULTS_ROUTES: list[tuple[str, str, Any, int, Any, list[int]]] = [
    ("get", "/v1/periods", None, 200, res.PeriodsOut, []),
    ("get", "/v1/periods/{n}/leaderboard", None, 200, res.LeaderboardOut, [404, 422]),
    ("get", "/v1/periods/{n}/participants/{id}", None, 200, res.ParticipantOut, [404]),
    ("get", "/v1/periods/{n}/units", None, 200, res.UnitsOut, [404]),
    ("get", "/v1/periods/{n}/prizes", None, 200, res.PrizesOut, [404, 409]),
    ("get", "/v1/final", None, 200, res.FinalOut, [409]),
]


def openapi_document(app: str) -> dict[str, Any]:
    routes = INGEST_ROUTES if app == "ingest" else RESULTS_ROUTES
    types = [t for r in routes for t in (r[2], r[4]) if t is not None]
    refs, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    ref_of = dict(zip(types, refs, strict=True))
    paths: dict[str, Any] = {}
    for method, path, request, status, response, errors in routes:
        op: dict[str, Any] = {"responses": {str(status): {"description": "success"}}}
        if response is not None:
            op["responses"][str(status)]["content"] = {"application/json": {"schema": ref_of[response]}}
        if request is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref_of[request]}}}
        for code in errors:
            op["responses"][str(code)] = ERROR
        paths.setdefault(path, {})[method] = op
    return {"openapi": "3.1.0", "info": {"title": f"cchc-scoring {app}", "version": "1"},
            "paths": paths, "components": {"schemas": components}}
