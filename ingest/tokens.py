"""Signed, stateless attempt tokens: what the server drew and when, HMAC-SHA256 over msgpack.

A token is `kid.payload.mac`: the key id names the secret that signed it, so a token signed before a
rotation (CCHC_SECRET_PREVIOUS) still verifies while new ones are signed with the new secret."""

from __future__ import annotations

import base64
import hashlib
import hmac

import msgspec


class AttemptClaims(msgspec.Struct, frozen=True, array_like=True):
    attempt_id: str
    participant_id: str
    group: str
    unit_code: str | None
    period: int
    started_ms: int
    question_ids: list[str]


class InvalidToken(ValueError):
    """Forged, truncated or otherwise unreadable token."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AttemptClaims)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _key(secret: bytes) -> tuple[str, bytes]:
    key = hmac.new(secret, b"cchc attempt token v1", hashlib.sha256).digest()
    return hashlib.sha256(key).hexdigest()[:8], key


def _digest(keyed: hmac.HMAC, payload: bytes) -> bytes:
    mac = keyed.copy()
    mac.update(payload)
    return mac.digest()


class TokenSigner:
    """Signs with the first secret; verifies with any of them (the current one and the previous)."""

    def __init__(self, *secrets: bytes) -> None:
        if not secrets:
            raise ValueError("a token signer needs a secret")
        keys = [_key(s) for s in secrets]
        self._kid = keys[0][0]
        # An HMAC keyed once per secret, copied per token: the key's set-up is not redone per request
        self._macs = {kid: hmac.new(key, digestmod=hashlib.sha256) for kid, key in keys}

    def sign(self, claims: AttemptClaims) -> str:
        payload = _encoder.encode(claims)
        mac = _digest(self._macs[self._kid], payload)
        return f"{self._kid}.{_b64(payload)}.{_b64(mac)}"

    def verify(self, token: str) -> AttemptClaims:
        kid, _, rest = token.partition(".")
        keyed = self._macs.get(kid)
        if keyed is None:
            raise InvalidToken("token was signed with a key this server does not know")
        try:
            body, _, sig = rest.partition(".")
            payload, mac = _unb64(body), _unb64(sig)
        except (ValueError, UnicodeError) as e:
            raise InvalidToken("token is not readable") from e
        expected = _digest(keyed, payload)
        if not hmac.compare_digest(mac, expected):
            raise InvalidToken("token signature does not match")
        try:
            return _decoder.decode(payload)
        except msgspec.DecodeError as e:
            raise InvalidToken("token payload is not readable") from e
