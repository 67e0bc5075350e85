"""Requests as a front-end sends them to a running stack (the system tests' processes on real ports)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any


def front_end(url: str, body: object = None, key: str | None = None) -> tuple[int, Any, str]:
    """A request as a front-end sends it: again after a 503, as its Retry-After says (a process whose clock is
    not yet in step with the store's refuses starts and submissions for a moment, DESIGN §3)."""
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    for _ in range(10):
        request = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                raw = answer.read().decode()
                kind = answer.headers.get_content_type()
                return answer.status, json.loads(raw) if kind == "application/json" else {}, raw
        except urllib.error.HTTPError as e:
            with e:
                if e.code != 503:
                    raise
                time.sleep(float(e.headers.get("Retry-After") or 1))
    raise AssertionError(f"{url}: 503 ten times")
