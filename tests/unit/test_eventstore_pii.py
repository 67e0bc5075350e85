"""Personal data: keyed hashes for uniqueness, AES-GCM sealing for the committee."""

from __future__ import annotations

import hashlib

import pytest

from eventstore.pii import PersonalData, PiiVault


def test_pii_is_hashed_with_a_key_and_sealed() -> None:
    vault = PiiVault(b"k" * 32)
    assert vault.hash("id", "038090001234") != hashlib.sha256(b"038090001234").hexdigest()
    assert vault.hash("id", "038090001234") != PiiVault(b"z" * 32).hash("id", "038090001234")
    assert vault.hash("id", "038090001234") == PiiVault(b"k" * 32).hash("id", "038090001234")
    assert len({vault.hash("id", "x"), vault.access_hash("id:x"), vault.address_hash("id:x")}) == 3
    sealed = vault.seal(PersonalData("038090001234", "0912345678", "1990-01-01"))
    assert b"038090001234" not in sealed and b"0912345678" not in sealed
    assert vault.open(sealed).phone == "0912345678"
    with pytest.raises(ValueError):
        PiiVault(b"short")
