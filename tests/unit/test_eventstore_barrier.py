"""A barrier: every stream's last id; what it covers, where its marker goes, how it reads back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from eventstore.barrier import MARKER_STREAM, Barrier, entry_tuple

ids = st.tuples(st.integers(0, 2**45), st.integers(0, 50)).map(lambda t: f"{t[0]}-{t[1]}")
barriers = st.dictionaries(st.integers(-1, 8), ids, min_size=1).map(Barrier)


@given(barriers)
def test_a_barrier_reads_back_as_written(barrier: Barrier) -> None:
    assert Barrier.parse(barrier.text()) == barrier


def test_a_barrier_from_before_partitions_is_stream_zero() -> None:
    assert Barrier.parse("1700000000000-3") == Barrier({0: "1700000000000-3"})


@given(barriers, st.integers(-1, 8), ids, st.integers(0, 3))
def test_the_marker_sorts_after_every_event_the_barrier_covers(barrier: Barrier, stream: int, entry: str,
                                                                 idx: int) -> None:
    key = (*entry_tuple(entry), stream, idx)
    if barrier.covers(key):
        assert key < barrier.marker_key(0)
    assert barrier.marker_key(0)[2] == MARKER_STREAM


def test_covers_is_per_stream() -> None:
    barrier = Barrier({-1: "100-0", 0: "50-2"})
    assert barrier.covers((100, 0, -1, 7)) and not barrier.covers((100, 1, -1, 0))
    assert barrier.covers((50, 2, 0, 0)) and not barrier.covers((60, 0, 0, 0))
    assert not barrier.covers((1, 0, 1, 0))  # a stream the barrier does not name: nothing of it
