"""What anyone may read of the streams, without being a consumer: barriers and whether the scorers are
through one (the close), every stream's progress and the server's memory (the monitor, `cchc status`),
heartbeats, and the dead letters (the operator, who may also requeue one; the close, which names those of
its period)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from eventstore.barrier import Barrier, entry_tuple
from eventstore.events import AttemptStarted, SubmissionReceived, decode_many
from eventstore.keys import EVENT_FIELD, GROUP, Keys, Slot
from eventstore.redis_stream.client import Memory, Redis, memory, text, translated
from eventstore.redis_stream.leases import heartbeats, lease_owners
from eventstore.redis_stream.scripts import REQUEUE


@dataclass(frozen=True)
class GroupProgress:
    """How far the consumer group of one stream is: entries not yet delivered, delivered but
    unacked, and the stream time (ms) of the oldest entry not yet acknowledged (None when done)."""

    stream: int
    lag: int
    pending: int
    oldest_unprocessed_ms: int | None
    length: int = 0
    dead_letters: int = 0
    lease: str | None = None  # the scorer that reads it now


@dataclass(frozen=True)
class StreamProgress:
    streams: list[GroupProgress]

    @property
    def caught_up(self) -> bool:
        """Nothing undelivered and nothing unacknowledged in any stream."""
        return all(s.lag == 0 and s.pending == 0 for s in self.streams)


class Streams:
    """The contest's streams seen from outside the consumer groups."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        self._r = client
        self.keys = keys

    def _stream(self, number: int) -> str:
        return self.keys.slot(number).stream

    async def heartbeats(self) -> dict[str, int]:
        """consumer → last beat (ms) of every scorer that beat recently."""
        return await heartbeats(self._r, self.keys)

    async def lease_owners(self) -> dict[int, str]:
        """stream number → the scorer that holds its lease now."""
        return await lease_owners(self._r, self.keys)

    @translated
    async def barrier(self) -> Barrier:
        """Every stream's newest id: everything appended so far is at or below it."""
        ids = {}
        for number in self.keys.numbers:
            try:
                info = await self._r.xinfo_stream(self._stream(number))
            except ResponseError:
                ids[number] = "0-0"
                continue
            ids[number] = text(info["last-generated-id"])
        return Barrier(ids)

    @translated
    async def processed_through(self, barrier: Barrier) -> bool:
        """True when every entry up to `barrier` has been delivered and acknowledged, in every stream."""
        for number, last in barrier.ids.items():
            if not await self._stream_processed_through(self._stream(number), last):
                return False
        return True

    async def _stream_processed_through(self, stream: str, last: str) -> bool:
        try:
            groups = await self._r.xinfo_groups(stream)
        except ResponseError:  # no stream: nothing appended
            return last == "0-0"
        group = next((g for g in groups if text(g["name"]) == GROUP), None)
        if group is None:
            return last == "0-0"
        if entry_tuple(text(group["last-delivered-id"])) < entry_tuple(last):
            return False
        return not await self._r.xpending_range(stream, GROUP, "-", last, 1)

    async def memory(self) -> Memory:
        """The server's memory use against its limit (the monitor's gauges, the memory alert)."""
        return await memory(self._r)

    @translated
    async def progress(self) -> StreamProgress:
        """Every stream's length, dead letters, lease and group progress (the monitor, `cchc status`)."""
        owners = await lease_owners(self._r, self.keys)
        return StreamProgress([await self._stream_progress(slot, owners.get(slot.number)) for slot in self.keys.slots])

    async def _stream_progress(self, slot: Slot, lease: str | None) -> GroupProgress:
        """The oldest entry not yet acknowledged is the oldest pending one or the first undelivered
        one (the `lag` field alone is unreliable after trims)."""
        r, stream = self._r, slot.stream
        length, dead = await r.xlen(stream), await r.xlen(slot.dead_letters)
        try:
            groups = await r.xinfo_groups(stream)
        except ResponseError:  # no stream yet
            groups = []
        group = next((g for g in groups if text(g["name"]) == GROUP), None)
        if group is None:
            return GroupProgress(slot.number, length, 0, None, length, dead, lease)
        after_delivered = "(" + text(group["last-delivered-id"])
        pending = int(group["pending"])
        oldest: list[int] = []
        if pending and (first := await r.xpending_range(stream, GROUP, "-", "+", 1)):  # acked meanwhile: none
            oldest.append(entry_tuple(text(first[0]["message_id"]))[0])
        undelivered = await r.xrange(stream, min=after_delivered, count=1)
        if undelivered:
            oldest.append(entry_tuple(text(undelivered[0][0]))[0])
        lag = group.get("lag")
        if lag is None:  # Redis cannot tell after a trim or a deletion: count what is left (bounded)
            lag = len(await r.xrange(stream, min=after_delivered, count=100_000) or [])
        return GroupProgress(slot.number, int(lag), pending, min(oldest) if oldest else None, length, dead, lease)

    @translated
    async def dead_lettered(self) -> list[tuple[int, str, dict[str, bytes]]]:
        """Every parked entry: (stream number, dead-letter id, {entry_id, raw, error})."""
        out = []
        for slot in self.keys.slots:
            rows: Any = await self._r.xrange(slot.dead_letters)
            out += [(slot.number, text(i), {text(k): v for k, v in fields.items()}) for i, fields in rows]
        return out

    @translated
    async def requeue_dead_letter(self, number: int, dead_id: str) -> str | None:
        """Append a parked entry to its stream again (a new id) and drop it from the parking, in one step
        (requeue.lua); run twice, the second appends nothing. The new id, or None when not parked (any more)."""
        slot = self.keys.slot(number)
        new_id = await self._r.eval(REQUEUE.source, 2, slot.stream, slot.dead_letters, dead_id,
                                    EVENT_FIELD)
        return text(new_id) if new_id else None

    @translated
    async def parked_in_period(self, barrier: Barrier, period: int, since_ms: int) -> int:
        """Entries parked for their own fault that a result at `barrier` for `period` misses (the close
        names how many; they count as invalid): each parked entry at or below the barrier that carries an
        attempt start or a submission of the period, and each one nobody can decode that was appended
        from `since_ms` (the period's start) on — which period it belonged to cannot be known."""
        count = 0
        for slot in self.keys.slots:
            last = barrier.ids.get(slot.number)
            if last is None:
                continue
            rows: Any = await self._r.xrange(slot.dead_letters)
            for _, fields in rows:
                fields = {text(k): v for k, v in fields.items()}
                entry_id = text(fields.get("entry_id", b"0-0"))
                if entry_tuple(entry_id) > entry_tuple(last):
                    continue
                try:
                    events = decode_many(fields.get("raw", b""))
                except msgspec.DecodeError:
                    count += entry_tuple(entry_id)[0] >= since_ms
                    continue
                count += any(isinstance(e, AttemptStarted | SubmissionReceived) and e.period == period
                             for e in events)
        return count

    # -- after a restore of PostgreSQL (ops/restore.py) ----------------------------------------------------

    @translated
    async def last_delivered(self, number: int) -> str | None:
        """The consumer group's last delivered id on stream `number` (None: no stream or group yet)."""
        try:
            groups = await self._r.xinfo_groups(self._stream(number))
        except ResponseError:
            return None
        group = next((g for g in groups if text(g["name"]) == GROUP), None)
        return None if group is None else text(group["last-delivered-id"])

    @translated
    async def entry_ids(self, number: int, after: str | None, count: int) -> list[str]:
        """Up to `count` ids of stream `number` after `after` (from its first entry when None), in order."""
        rows: Any = await self._r.xrange(self._stream(number), min="-" if after is None else f"({after}",
                                         count=count)
        return [text(entry_id) for entry_id, _ in rows]

    @translated
    async def parked_ids(self, number: int) -> set[str]:
        """The stream ids of stream `number`'s entries now parked in its dead-letter stream."""
        rows: Any = await self._r.xrange(self.keys.slot(number).dead_letters)
        return {text(fields.get(b"entry_id", b"")) for _, fields in rows}

    @translated
    async def rewind(self, number: int, last_delivered: str) -> None:
        """Set the group's last delivered id on stream `number` back to `last_delivered`: every entry after it
        is delivered again (archiving it twice inserts nothing: the event table's key)."""
        await self._r.xgroup_setid(self._stream(number), GROUP, last_delivered)
