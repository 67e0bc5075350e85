"""Personal data and secrets at rest: keyed hashes (identity, access keys, client addresses) and
AES-GCM sealing of the plain values for the committee, all keyed from CCHC_PII_KEY."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ACCESS_KEY_BYTES = 24  # 192 random bits, URL-safe base64 (DESIGN §3: at least 128)


class PersonalData(msgspec.Struct, frozen=True):
    id_number: str
    phone: str
    birth_date: str


class Profile(msgspec.Struct, frozen=True, array_like=True):
    """A registration as the participant sees it (GET /v1/participants/me), kept sealed by ingest."""

    full_name: str
    birth_date: str
    phone_masked: str
    registered_ms: int
    consent_version: str = ""
    consent_ms: int = 0


def new_access_key(participant_id: str) -> str:
    """`<participant_id>.<secret>`: an access key names its participant (DESIGN §6), so a route that takes
    only the key finds the participant's partition; the secret is what the keyed hash proves."""
    return f"{participant_id}.{secrets.token_urlsafe(ACCESS_KEY_BYTES)}"


def participant_of(access_key: str) -> str | None:
    """The participant an access key names, or None when it names none."""
    participant_id, dot, secret = access_key.partition(".")
    return participant_id if dot and participant_id and secret and len(participant_id) <= 64 else None


class PiiVault:
    """Keyed hashes and sealing from one 32-byte key, each use with a key of its own derived from it,
    so rotating the token secret changes no identity, and no hash serves two purposes."""

    def __init__(self, pii_key: bytes) -> None:
        if len(pii_key) != 32:
            raise ValueError("CCHC_PII_KEY must be 32 bytes (base64)")
        self._identity = hmac.new(pii_key, b"cchc identity hash v1", hashlib.sha256).digest()
        self._access = hmac.new(pii_key, b"cchc access key hash v1", hashlib.sha256).digest()
        self._address = hmac.new(pii_key, b"cchc client address hash v1", hashlib.sha256).digest()
        self._aead = AESGCM(pii_key)

    def hash(self, kind: str, value: str) -> str:
        """An identity value (`id`, `phone`, `birth`) as a keyed hash: uniqueness without the value."""
        return hmac.new(self._identity, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def access_hash(self, access_key: str) -> str:
        return hmac.new(self._access, access_key.encode(), hashlib.sha256).hexdigest()

    def address_hash(self, address: str) -> str:
        return hmac.new(self._address, address.encode(), hashlib.sha256).hexdigest()[:32]

    def seal(self, data: PersonalData) -> bytes:
        return self._seal(msgspec.msgpack.encode(data), b"cchc-pii")

    def open(self, sealed: bytes) -> PersonalData:
        return msgspec.msgpack.decode(self._open(sealed, b"cchc-pii"), type=PersonalData)

    def seal_profile(self, profile: Profile) -> bytes:
        return self._seal(msgspec.msgpack.encode(profile), b"cchc-profile")

    def open_profile(self, sealed: bytes) -> Profile:
        return msgspec.msgpack.decode(self._open(sealed, b"cchc-profile"), type=Profile)

    def seal_key(self, access_key: str) -> bytes:
        """An access key kept in a write's record (a retry's answer), sealed: never plain at rest."""
        return self._seal(access_key.encode(), b"cchc-access-key")

    def open_key(self, sealed: bytes) -> str:
        return self._open(sealed, b"cchc-access-key").decode()

    def _seal(self, plain: bytes, purpose: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plain, purpose)

    def _open(self, sealed: bytes, purpose: bytes) -> bytes:
        return self._aead.decrypt(sealed[:12], sealed[12:], purpose)
