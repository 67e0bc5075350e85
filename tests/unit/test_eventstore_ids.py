"""UUIDv7 ids: versioned, sorted in creation order, monotonic within a millisecond."""

from __future__ import annotations

from eventstore.ids import uuid7


def test_uuid7_sorts_in_creation_order_and_is_versioned() -> None:
    ids = [uuid7(ms) for ms in range(1_700_000_000_000, 1_700_000_000_050)]
    assert ids == sorted(ids)
    assert all(i[14] == "7" and len(i) == 36 for i in ids)


def test_uuid7_is_monotonic_within_one_millisecond() -> None:
    ids = [uuid7(1_800_000_000_000) for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == 5000
