"""The results digest: sha256 of the canonical JSON of /prizes without the digest itself."""

from __future__ import annotations

import hashlib

from contest.digest import canonical_json, results_digest


def test_digest_is_sha256_of_canonical_json_without_itself() -> None:
    doc = {"period": 1, "unit": [{"unit_score": 0.1 + 0.2}], "individual": [], "name": "Giải Nhất"}
    expected = hashlib.sha256('{"individual":[],"name":"Giải Nhất","period":1,"unit":[{"unit_score":0.30000000000000004}]}'
                              .encode()).hexdigest()
    assert results_digest(doc) == expected
    assert results_digest({**doc, "results_digest": "whatever"}) == expected
    assert canonical_json({"b": 1, "a": 2}) == b'{"a":2,"b":1}'
