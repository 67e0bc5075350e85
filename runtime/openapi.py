"""The OpenAPI 3.1 document of an app, generated from its route table and the msgspec types in it."""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    from runtime.routes import Route

ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {
    "type": "object", "required": ["code", "message"],
    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}


def _error(status: int, content_type: str) -> dict[str, Any]:
    """An error answer: the JSON error shape, or for a page a page saying what happened."""
    body = ({"text/html": {"schema": {"type": "string"}}} if content_type == "text/html"
            else {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}})
    response: dict[str, Any] = {"description": HTTPStatus(status).phrase, "content": body}
    if status in (429, 503):
        response["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "string"}}}
    return response


def openapi_document(title: str, routes: Sequence[Route]) -> dict[str, Any]:
    types = list(dict.fromkeys(t for r in routes for t in (r.request, r.response) if t is not None))
    refs, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    ref_of = dict(zip(types, refs, strict=True))
    components["Error"] = ERROR_SCHEMA
    paths: dict[str, Any] = {}
    for r in routes:
        success: dict[str, Any] = {"description": r.summary}
        if r.response is not None:
            success["content"] = {r.content_type: {"schema": ref_of[r.response]}}
        elif r.content_type != "application/json":
            success["content"] = {r.content_type: {"schema": {"type": "string"}}}
        else:
            success["content"] = {"application/json": {"schema": {"type": "object"}}}
        refused = r.errors_as or r.content_type
        op: dict[str, Any] = {"summary": r.summary, "operationId": r.handler.__name__,
                              "responses": {**{str(c): success for c in (r.status, *r.also)},
                                            **{str(c): _error(c, refused) for c in r.error_statuses()}}}
        if r.params:
            op["parameters"] = [{"name": p.name, "in": p.where, "required": p.where == "path",
                                 "description": p.description, "schema": p.schema} for p in r.params]
        if r.request is not None:
            op["requestBody"] = {"required": r.body_required, "content": {"application/json": {"schema": ref_of[r.request]}}}
        if r.bearer:
            op["security"] = [{"bearer": []}]
        paths.setdefault(r.path, {})[r.method] = op
    return {"openapi": "3.1.0", "info": {"title": title, "version": "1"}, "paths": paths,
            "components": {"schemas": components,
                           "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}}}
