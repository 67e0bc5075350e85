"""Answers kept in memory, ready to send: a body with its gzip form and ETags, answered 200 or 304.

The quiz page and its assets, and GET /v1/contest, change only when a period changes status: built once
per change, they cost a dictionary look-up a request, not a template, a JSON encoder or a compressor (the
ingest process that serves them also times the submissions: DESIGN §9)."""

from __future__ import annotations

import gzip
import hashlib

from aiohttp import web


class Cached:
    """A body as it goes out: plain and gzipped, each with a strong ETag of its own."""

    __slots__ = ("body", "etag", "etag_gzip", "gzipped")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.gzipped = gzip.compress(body, 9, mtime=0)
        digest = hashlib.sha256(body).hexdigest()[:24]
        self.etag = f'"{digest}"'
        self.etag_gzip = f'"{digest}-gz"'

    @property
    def digest(self) -> str:
        return self.etag.strip('"')


def matches(header: str, etag: str) -> bool:
    """If-None-Match (weak comparison, RFC 9110 §13.1.2)."""
    return any(tag.strip().removeprefix("W/") in (etag, "*") for tag in header.split(","))


def answer(request: web.Request, cached: Cached, content_type: str, cache_control: str,
           headers: dict[str, str] | None = None) -> web.Response:
    """`cached` as the request asks it: gzipped when accepted, 304 when the client holds this version."""
    gz = "gzip" in request.headers.get("Accept-Encoding", "")
    etag = cached.etag_gzip if gz else cached.etag
    out = {**(headers or {}), "Cache-Control": cache_control, "ETag": etag, "Vary": "Accept-Encoding"}
    if matches(request.headers.get("If-None-Match", ""), etag):
        return web.Response(status=304, headers=out)
    if gz:
        out["Content-Encoding"] = "gzip"
    out["Content-Type"] = content_type
    return web.Response(body=cached.gzipped if gz else cached.body, headers=out)
