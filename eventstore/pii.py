"""Personal data and secrets at rest: keyed hashes (identity, access keys, client addresses), and AES-GCM
sealing of the plain values under each participant's own data key, wrapped by CCHC_PII_KEY (DESIGN §10:
destroying a participant's wrapped key erases what was sealed under it, wherever the sealed copies are)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets

import msgspec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ACCESS_KEY_BYTES = 24  # 192 random bits, URL-safe base64 (DESIGN §3: at least 128)


class PersonalData(msgspec.Struct, frozen=True):
    """What a registration seals: the committee's winner export opens it. Sealed under the participant's data
    key since events v2, which add the full name (the event record holds no plain name)."""

    id_number: str
    phone: str
    birth_date: str
    full_name: str = ""


class PersonalCopy(msgspec.Struct, frozen=True, array_like=True):
    """What ingest keeps beside a participant's keys in Redis and a scorer copies into PostgreSQL (the
    keyring, `participant_personal`), never into the event record: the participant's data key wrapped by
    CCHC_PII_KEY, and the values the projections show or compare in plain. An erasure deletes or overwrites
    every copy of it, which no append-only record can do (DESIGN §10)."""

    wrapped_key: bytes
    display_name: str
    phone_masked: str
    id_hash: str
    phone_hash: str
    address_hash: str


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


DATA_KEY_BYTES = 32  # AES-256-GCM


def _seal(aead: AESGCM, plain: bytes, purpose: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + aead.encrypt(nonce, plain, purpose)


def _open(aead: AESGCM, sealed: bytes, purpose: bytes) -> bytes:
    return aead.decrypt(sealed[:12], sealed[12:], purpose)


class DataKey:
    """One participant's own data key (DESIGN §10): their personal data in the event record and their
    profile are sealed under it. It exists in plain only in memory; at rest it is kept wrapped by
    CCHC_PII_KEY, in Redis and in PostgreSQL's keyring, never in the event record, so deleting those
    copies (an erasure) leaves every sealed copy unreadable."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, data: PersonalData) -> bytes:
        return _seal(self._aead, msgspec.msgpack.encode(data), b"cchc-pii")

    def open(self, sealed: bytes) -> PersonalData:
        return msgspec.msgpack.decode(_open(self._aead, sealed, b"cchc-pii"), type=PersonalData)

    def seal_profile(self, profile: Profile) -> bytes:
        return _seal(self._aead, msgspec.msgpack.encode(profile), b"cchc-profile")

    def open_profile(self, sealed: bytes) -> Profile:
        return msgspec.msgpack.decode(_open(self._aead, sealed, b"cchc-profile"), type=Profile)


class PiiVault:
    """Keyed hashes, data-key wrapping and (before events v2) sealing from one 32-byte key, each use with a
    key of its own derived from it, so rotating the token secret changes no identity, and no hash serves two
    purposes."""

    def __init__(self, pii_key: bytes) -> None:
        if len(pii_key) != 32:
            raise ValueError("CCHC_PII_KEY must be 32 bytes (base64)")
        self._identity = hmac.new(pii_key, b"cchc identity hash v1", hashlib.sha256).digest()
        self._access = hmac.new(pii_key, b"cchc access key hash v1", hashlib.sha256).digest()
        self._address = hmac.new(pii_key, b"cchc client address hash v1", hashlib.sha256).digest()
        self._wrapping = AESGCM(hmac.new(pii_key, b"cchc data key wrapping v1", hashlib.sha256).digest())
        self._aead = AESGCM(pii_key)

    def new_data_key(self, participant_id: str) -> tuple[DataKey, bytes]:
        """A fresh data key for a new participant, and its copy wrapped for them (bound to their id: a
        wrapped key moved to another participant does not open)."""
        key = os.urandom(DATA_KEY_BYTES)
        return DataKey(key), _seal(self._wrapping, key, b"cchc-data-key:" + participant_id.encode())

    def data_key(self, wrapped: bytes, participant_id: str) -> DataKey:
        """The participant's data key from its wrapped copy (cryptography's InvalidTag if not theirs)."""
        return DataKey(_open(self._wrapping, wrapped, b"cchc-data-key:" + participant_id.encode()))

    def open_personal(self, participant_id: str, sealed: bytes, wrapped: bytes | None) -> PersonalData | None:
        """A registration's sealed personal data: under the participant's data key (its wrapped copy given),
        under CCHC_PII_KEY itself for a registration from before data keys (nothing wrapped, something
        sealed), or None when erased (no key any more, or nothing sealed)."""
        if wrapped:
            return self.data_key(wrapped, participant_id).open(sealed)
        return self.open(sealed) if sealed else None

    def hash(self, kind: str, value: str) -> str:
        """An identity value (`id`, `phone`, `birth`) as a keyed hash: uniqueness without the value."""
        return hmac.new(self._identity, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def access_hash(self, access_key: str) -> str:
        return hmac.new(self._access, access_key.encode(), hashlib.sha256).hexdigest()

    def address_hash(self, address: str) -> str:
        return hmac.new(self._address, address.encode(), hashlib.sha256).hexdigest()[:32]

    def seal(self, data: PersonalData) -> bytes:
        """Sealed under CCHC_PII_KEY itself: registrations from before data keys were; new ones never are."""
        return self._seal(msgspec.msgpack.encode(data), b"cchc-pii")

    def open(self, sealed: bytes) -> PersonalData:
        return msgspec.msgpack.decode(self._open(sealed, b"cchc-pii"), type=PersonalData)

    def seal_profile(self, profile: Profile) -> bytes:
        """Under CCHC_PII_KEY itself: profiles from before data keys (DataKey.seal_profile since)."""
        return self._seal(msgspec.msgpack.encode(profile), b"cchc-profile")

    def open_profile(self, sealed: bytes) -> Profile:
        return msgspec.msgpack.decode(self._open(sealed, b"cchc-profile"), type=Profile)

    def seal_key(self, access_key: str) -> bytes:
        """An access key kept in a write's record (a retry's answer), sealed: never plain at rest."""
        return self._seal(access_key.encode(), b"cchc-access-key")

    def open_key(self, sealed: bytes) -> str:
        return self._open(sealed, b"cchc-access-key").decode()

    def _seal(self, plain: bytes, purpose: bytes) -> bytes:
        return _seal(self._aead, plain, purpose)

    def _open(self, sealed: bytes, purpose: bytes) -> bytes:
        return _open(self._aead, sealed, purpose)
