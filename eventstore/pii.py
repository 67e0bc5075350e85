"""Personal data: keyed hashes for uniqueness, AES-GCM sealing of the plain values for the committee."""

from __future__ import annotations

import hashlib
import hmac
import os

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class PersonalData(msgspec.Struct, frozen=True):
    id_number: str
    phone: str
    birth_date: str


class PiiVault:
    """Hashes with a key derived from CCHC_SECRET; seals with CCHC_PII_KEY (32 bytes)."""

    def __init__(self, secret: bytes, pii_key: bytes) -> None:
        if len(pii_key) != 32:
            raise ValueError("CCHC_PII_KEY must be 32 bytes (base64)")
        self._hash_key = hmac.new(secret, b"cchc identity hash v1", hashlib.sha256).digest()
        self._aead = AESGCM(pii_key)

    def hash(self, kind: str, value: str) -> str:
        return hmac.new(self._hash_key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def seal(self, data: PersonalData) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, msgspec.msgpack.encode(data), b"cchc-pii")

    def open(self, sealed: bytes) -> PersonalData:
        plain = self._aead.decrypt(sealed[:12], sealed[12:], b"cchc-pii")
        return msgspec.msgpack.decode(plain, type=PersonalData)
