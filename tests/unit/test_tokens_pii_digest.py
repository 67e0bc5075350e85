"""Attempt tokens, personal-data sealing and the results digest."""

from __future__ import annotations

import base64
import hashlib

import pytest

from contest.digest import canonical_json, results_digest
from eventstore.ids import uuid7
from eventstore.pii import PersonalData, PiiVault
from ingest.tokens import AttemptClaims, InvalidToken, TokenSigner

CLAIMS = AttemptClaims("a1", "p1", "cbccvc", "A", 1, 1_000, ["Q1", "Q2"])


def test_token_round_trip() -> None:
    signer = TokenSigner(b"secret")
    assert signer.verify(signer.sign(CLAIMS)) == CLAIMS


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),
    lambda t: t.split(".")[0],
    lambda t: "x" + t,
    lambda _: "not a token",
    lambda _: "",
    lambda t: base64.urlsafe_b64encode(b"\x93junk").decode().rstrip("=") + "." + t.split(".")[1],
])
def test_forged_tokens_are_refused(mangle: object) -> None:
    signer = TokenSigner(b"secret")
    with pytest.raises(InvalidToken):
        signer.verify(mangle(signer.sign(CLAIMS)))  # type: ignore[operator]


def test_another_secret_refuses_the_token() -> None:
    with pytest.raises(InvalidToken):
        TokenSigner(b"other").verify(TokenSigner(b"secret").sign(CLAIMS))


def test_pii_is_hashed_with_a_key_and_sealed() -> None:
    vault = PiiVault(b"secret", b"k" * 32)
    assert vault.hash("id", "038090001234") != hashlib.sha256(b"038090001234").hexdigest()
    assert vault.hash("id", "038090001234") == PiiVault(b"secret", b"z" * 32).hash("id", "038090001234")
    sealed = vault.seal(PersonalData("038090001234", "0912345678", "1990-01-01"))
    assert b"038090001234" not in sealed and b"0912345678" not in sealed
    assert vault.open(sealed).phone == "0912345678"
    with pytest.raises(ValueError):
        PiiVault(b"secret", b"short")


def test_digest_is_sha256_of_canonical_json_without_itself() -> None:
    doc = {"period": 1, "unit": [{"unit_score": 0.1 + 0.2}], "individual": [], "name": "Giải Nhất"}
    expected = hashlib.sha256('{"individual":[],"name":"Giải Nhất","period":1,"unit":[{"unit_score":0.30000000000000004}]}'
                              .encode()).hexdigest()
    assert results_digest(doc) == expected
    assert results_digest({**doc, "results_digest": "whatever"}) == expected
    assert canonical_json({"b": 1, "a": 2}) == b'{"a":2,"b":1}'


def test_uuid7_sorts_in_creation_order_and_is_versioned() -> None:
    ids = [uuid7(ms) for ms in range(1_700_000_000_000, 1_700_000_000_050)]
    assert ids == sorted(ids)
    assert all(i[14] == "7" and len(i) == 36 for i in ids)


def test_uuid7_is_monotonic_within_one_millisecond() -> None:
    ids = [uuid7(1_800_000_000_000) for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == 5000
