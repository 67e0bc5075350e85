"""Signed attempt tokens: a round trip, and every forgery refused."""

from __future__ import annotations

import base64

import pytest

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


def test_a_rotated_secret_still_verifies_tokens_signed_before() -> None:
    old, new = b"o" * 32, b"n" * 32
    before = TokenSigner(old).sign(CLAIMS)
    rotated = TokenSigner(new, old)  # CCHC_SECRET=new, CCHC_SECRET_PREVIOUS=old
    assert rotated.verify(before) == CLAIMS
    after = rotated.sign(CLAIMS)
    assert after.split(".")[0] != before.split(".")[0]  # another key id
    assert TokenSigner(new).verify(after) == CLAIMS
    with pytest.raises(InvalidToken, match="key"):
        TokenSigner(new).verify(before)  # once the previous secret is dropped
