"""Key layout: a participant's keys share its partition's slot; identities live in the contest's."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from eventstore.keys import CONTEST_STREAM, Keys


@given(st.text(min_size=1, max_size=40), st.integers(1, 64))
def test_every_key_of_a_participant_shares_its_streams_slot(participant_id: str, partitions: int) -> None:
    keys = Keys("demo", partitions)
    slot = keys.of(participant_id)
    assert 0 <= slot.number < partitions
    names = [slot.participants, slot.access, slot.births, slot.disqualified, slot.attempts(3), slot.receipts,
             slot.dead_letters, slot.rejections]
    assert {key_slot(n.encode()) for n in names} == {key_slot(slot.stream.encode())}


def test_the_partition_of_a_participant_is_a_stable_hash() -> None:
    """CRC-32 of the id (zlib's, as in every language): every process routes a participant alike."""
    assert [Keys("demo", 4).partition_of(p) for p in ("a", "0190f3a0-0000-7000-8000-000000000000")] == [3, 2]
    assert Keys("demo", 1).partition_of("anything") == 0


def test_identities_registrations_and_leases_share_the_contest_slot() -> None:
    keys = Keys("demo", 6)
    contest = key_slot(keys.contest.stream.encode())
    assert keys.contest.number == CONTEST_STREAM and keys.numbers == [CONTEST_STREAM, 0, 1, 2, 3, 4, 5]
    for name in (keys.id_hashes, keys.phone_hashes, keys.recoveries("h"), keys.heartbeats, keys.lease(3), keys.layout):
        assert key_slot(name.encode()) == contest
    assert len({key_slot(s.stream.encode()) for s in keys.slots}) == 7  # each stream its own slot here


def test_rate_counters_spread_over_slots_of_their_own() -> None:
    keys = Keys("demo")
    slots = {key_slot(f"{keys.rate_prefix(f'address-{n}')}:1".encode()) for n in range(50)}
    assert len(slots) > 40 and key_slot(keys.contest.stream.encode()) not in slots


@pytest.mark.parametrize("partitions", [0, 1025])
def test_a_partition_count_out_of_range_is_refused(partitions: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 1024"):
        Keys("demo", partitions)
