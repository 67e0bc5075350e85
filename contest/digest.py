"""Canonical JSON and the results digest anyone can recompute from a /prizes answer."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(document: Any) -> bytes:
    """Keys sorted, no spaces, UTF-8, numbers as Python's json writes them."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def results_digest(document: dict[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of `document` without its `results_digest` field."""
    body = {k: v for k, v in document.items() if k != "results_digest"}
    return hashlib.sha256(canonical_json(body)).hexdigest()
