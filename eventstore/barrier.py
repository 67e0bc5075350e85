"""A result's barrier: the newest entry id of every stream when it was taken (DESIGN §4: a close's
barrier is the last id of every partition). A result counts exactly the events at or below it.

Event keys sort as (stream ms, stream seq, stream number, index in the entry): the order a replay
meets events in, one order across every stream."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EventKey = tuple[int, int, int, int]  # (stream ms, stream seq, stream number, index within the entry)
MARKER_STREAM = 32_767  # a results marker's stream number: after every event of its barrier's newest entry


def entry_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class Barrier:
    ids: dict[int, str]  # stream number → its newest entry id ("ms-seq"; "0-0": nothing appended)

    @classmethod
    def parse(cls, text: str) -> Barrier:
        """`-1:ms-seq 0:ms-seq …`; a bare `ms-seq` is a barrier from before partitions (stream 0)."""
        if ":" not in text:
            return cls({0: text})
        pairs = (item.split(":", 1) for item in text.split())
        return cls({int(number): entry_id for number, entry_id in pairs})

    def text(self) -> str:
        return " ".join(f"{number}:{self.ids[number]}" for number in sorted(self.ids))

    def covers(self, key: EventKey) -> bool:
        ms, seq, number, _ = key
        last = self.ids.get(number)
        return last is not None and (ms, seq) <= entry_tuple(last)

    def top(self) -> tuple[int, int]:
        """The newest entry of all: every event the barrier covers sorts at or before it."""
        return max(entry_tuple(i) for i in self.ids.values())

    def marker_key(self, index: int) -> EventKey:
        """Where a result computed at this barrier is recorded in the event table: after every event it
        covers (and `index` orders the results of one barrier)."""
        ms, seq = self.top()
        return ms, seq, MARKER_STREAM, index

    def sql_params(self) -> dict[str, Any]:
        """The arrays `SQL_WITHIN` reads: per stream number + 2 (numbers start at -1)."""
        size = max(self.ids, default=0) + 2
        ms, seq = [-1] * size, [-1] * size
        for number, entry_id in self.ids.items():
            ms[number + 1], seq[number + 1] = entry_tuple(entry_id)
        return {"b_ms": ms, "b_seq": seq}


def sql_within(alias: str, ms: str = "ev_ms", seq: str = "ev_seq", part: str = "ev_part") -> str:
    """SQL true when the event key in `alias`'s columns is covered by the barrier passed as
    `sql_params()` (NULL — not true — for a stream the barrier does not name)."""
    return (f"({alias}.{ms}, {alias}.{seq}) <= ((%(b_ms)s::bigint[])[{alias}.{part} + 2],"
            f" (%(b_seq)s::bigint[])[{alias}.{part} + 2])")
