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


def new_access_key() -> str:
    return secrets.token_urlsafe(ACCESS_KEY_BYTES)


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
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, msgspec.msgpack.encode(data), b"cchc-pii")

    def open(self, sealed: bytes) -> PersonalData:
        plain = self._aead.decrypt(sealed[:12], sealed[12:], b"cchc-pii")
        return msgspec.msgpack.decode(plain, type=PersonalData)
