"""Personal data: keyed hashes for uniqueness, AES-GCM sealing for the committee."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.exceptions import InvalidTag

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


def test_each_participant_has_a_data_key_of_their_own_wrapped_for_them() -> None:
    vault = PiiVault(b"k" * 32)
    key, wrapped = vault.new_data_key("alice")
    data = PersonalData("038090001234", "0912345678", "1990-01-01", "Trần Thị Bích")
    sealed = key.seal(data)
    assert b"038090001234" not in sealed and "Trần".encode() not in sealed and len(wrapped) == 12 + 32 + 16
    assert vault.data_key(wrapped, "alice").open(sealed) == data
    assert vault.open_personal("alice", sealed, wrapped) == data
    with pytest.raises(InvalidTag):  # a wrapped key moved to another participant opens nothing
        vault.data_key(wrapped, "bob")
    with pytest.raises(InvalidTag):  # nor under another CCHC_PII_KEY
        PiiVault(b"z" * 32).data_key(wrapped, "alice")
    with pytest.raises(InvalidTag):  # nor is it the key of anything sealed under the vault's own key
        vault.open(sealed)
    other, _ = vault.new_data_key("alice")
    with pytest.raises(InvalidTag):  # a fresh key each time
        other.open(sealed)


def test_personal_data_from_before_data_keys_still_opens_and_erased_opens_nothing() -> None:
    vault = PiiVault(b"k" * 32)
    legacy = vault.seal(PersonalData("038090001234", "0912345678", "1990-01-01"))
    assert vault.open_personal("alice", legacy, None) == PersonalData("038090001234", "0912345678", "1990-01-01")
    assert vault.open_personal("alice", b"", None) is None  # an erased participant's projection holds nothing
