"""A scorer's reads in the consumer groups: new entries, its own pending ones, entries of consumers that
died; acks after the commit, PostgreSQL's refusals of an entry counted, the dead-letter stream for
entries that cannot be scored, and trimming below what every group has acknowledged."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from eventstore.barrier import entry_tuple
from eventstore.keys import EVENT_FIELD, GROUP, Keys
from eventstore.redis_stream import personal
from eventstore.redis_stream.client import Redis, text, translated
from eventstore.redis_stream.scripts import PARK

Entry = tuple[int, str, bytes]  # (stream number, entry id, raw entry)
REJECTIONS_KEPT_MS = 24 * 3600 * 1000  # a stream's refusal counts go a day after the last one


class Consumer:
    """One consumer of the groups (a scorer, by its name). Every method takes the stream numbers it works on."""

    def __init__(self, client: Redis, keys: Keys, name: str) -> None:
        self._r = client
        self.keys = keys
        self.name = name
        self._by_name = {s.stream: s.number for s in keys.slots}
        self._turn = 0  # a cluster reads streams one by one: start each round one further

    def _stream(self, number: int) -> str:
        return self.keys.slot(number).stream

    @translated
    async def ensure_groups(self) -> None:
        for number in self.keys.numbers:
            try:
                await self._r.xgroup_create(self._stream(number), GROUP, id="0", mkstream=True)
            except ResponseError as e:
                if "BUSYGROUP" not in str(e):
                    raise

    @translated
    async def read(self, numbers: list[int], count: int, block_ms: int | None) -> list[Entry]:
        """New entries of the streams `numbers`: one blocking call on one server; on a cluster (the
        streams live on several masters) one call per stream, and a short pause when all are empty."""
        if not numbers:
            if block_ms:
                await asyncio.sleep(block_ms / 1000)
            return []
        if not isinstance(self._r, RedisCluster):
            return await self._read_group(numbers, count, block_ms, ">")
        self._turn += 1
        for i in range(len(numbers)):
            number = numbers[(self._turn + i) % len(numbers)]
            reply = await self._r.xreadgroup(GROUP, self.name, {self._stream(number): ">"}, count=count)
            if entries := self._entries(reply):
                return entries
        if block_ms:
            await asyncio.sleep(min(block_ms, 100) / 1000)
        return []

    async def personal_copies(self, participant_ids: list[str]) -> personal.Copies:
        """Registrations' personal copies, which reach PostgreSQL from here, never through the event record
        (eventstore.redis_stream.personal; DESIGN §10)."""
        return await personal.personal_copies(self._r, self.keys, participant_ids)

    @translated
    async def claim_idle(self, numbers: list[int], min_idle_ms: int, count: int) -> list[Entry]:
        """Entries delivered to consumers that died before acking (XAUTOCLAIM)."""
        out: list[Entry] = []
        for number in numbers:
            reply: Any = await self._r.xautoclaim(self._stream(number), GROUP, self.name, min_idle_ms, "0-0",
                                                  count=count)
            out += [(number, e, raw) for e, raw in _entries(reply[1])]  # reply[2]: ids deleted meanwhile
        return out

    @translated
    async def own_pending(self, numbers: list[int], count: int) -> list[Entry]:
        """Entries this consumer read but did not ack (a restart under the same name)."""
        if not numbers:  # no lease yet: XREADGROUP without a stream is a syntax error
            return []
        if not isinstance(self._r, RedisCluster):
            return await self._read_group(numbers, count, None, "0")
        out: list[Entry] = []
        for number in numbers:  # one call per stream: they live on several masters
            reply: Any = await self._r.xreadgroup(GROUP, self.name, {self._stream(number): "0"}, count=count)
            out += self._entries(reply)
        return out

    async def _read_group(self, numbers: list[int], count: int, block_ms: int | None, start: str) -> list[Entry]:
        """One XREADGROUP over the streams `numbers` of one server, from `start` (">" new, "0" own pending).

        The command is named in bytes: redis-py then skips its reply callback, which turns every entry's
        field list into a dict (11 % of a scorer's time); the reply is read here as the server sent it,
        {stream: [[id, [field, value, …]], …]} (RESP3, redis-py's default) or [[stream, entries], …]."""
        assert isinstance(self._r, aioredis.Redis)  # a cluster reads stream by stream (its masters differ)
        args: list[Any] = [b"XREADGROUP", "GROUP", GROUP, self.name, "COUNT", count]
        if block_ms is not None:
            args += ["BLOCK", block_ms]
        streams = [self._stream(n) for n in numbers]
        reply: Any = await self._r.execute_command(  # type: ignore[no-untyped-call]
            *args, "STREAMS", *streams, *[start] * len(streams))
        out: list[Entry] = []
        for name, entries in (reply.items() if isinstance(reply, dict) else reply or ()):
            number = self._by_name[name.decode()]
            for entry_id, fields in entries:
                if fields is None:  # deleted while pending: nothing to score (as _entries skips it)
                    continue
                # An entry without our field (written by something else) decodes as poison, not a crash.
                raw = fields[1] if fields[0] == EVENT_FIELD else \
                    dict(zip(fields[::2], fields[1::2], strict=True)).get(EVENT_FIELD, b"")
                out.append((number, entry_id.decode(), raw))
        return out

    def _entries(self, reply: Any) -> list[Entry]:
        if not reply:
            return []
        if isinstance(reply, dict):  # RESP3 answers a map
            reply = list(reply.items())
        return [(self._by_name[text(name)], e, raw) for name, entries in reply for e, raw in _entries(entries)]

    @translated
    async def ack(self, entries: Iterable[Entry]) -> None:
        by_stream: dict[int, list[str]] = {}
        for number, entry_id, _ in entries:
            by_stream.setdefault(number, []).append(entry_id)
        for number, ids in by_stream.items():
            await self._r.xack(self._stream(number), GROUP, *ids)

    @translated
    async def dead_letter(self, entry: Entry, error: str) -> bool:
        """Park an entry that cannot be scored for its own fault, acknowledging it in the same step so it
        stops blocking the group (park.lua). Safe to run twice: only an entry still pending is parked, so
        a second run, or a second scorer that held the same entry, parks nothing. True when it parked."""
        number, entry_id, raw = entry
        slot = self.keys.slot(number)
        parked = await self._r.eval(PARK.source, 3, slot.stream, slot.dead_letters, slot.rejections,
                                    GROUP, entry_id, raw, error[:2000])
        return bool(parked)

    @translated
    async def reject(self, entries: list[Entry], now_ms: int, spacing_ms: int) -> dict[tuple[int, str], int]:
        """Count one more refusal of each entry by PostgreSQL, at most one per `spacing_ms` (a retry loop
        is not a verdict); returns how many each has now. Only refusals are counted: a redelivery, an
        outage or a scorer coming and going never is. The counts expire on their own."""
        out: dict[tuple[int, str], int] = {}
        for number in dict.fromkeys(n for n, _, _ in entries):
            key = self.keys.slot(number).rejections
            ids = [entry_id for n, entry_id, _ in entries if n == number]
            stored = await self._r.hmget(key, ids)
            update: dict[Any, Any] = {}
            for entry_id, value in zip(ids, stored, strict=True):
                count, _, last = text(value).partition(":") if value else ("0", "", "0")
                if now_ms - int(last or 0) >= spacing_ms or not value:
                    count, last = str(int(count) + 1), str(now_ms)
                    update[entry_id] = f"{count}:{last}"
                out[(number, entry_id)] = int(count)
            if update:
                async with self._r.pipeline(transaction=False) as pipe:  # one slot: the stream's
                    pipe.hset(key, mapping=update)
                    pipe.pexpire(key, REJECTIONS_KEPT_MS)
                    await pipe.execute()
        return out

    @translated
    async def trim_acknowledged(self, number: int, *, approximate: bool = True) -> str | None:
        """Trim stream `number` below the oldest entry its group still needs (never XDEL); returns the MINID
        used, or None when nothing can go. Acked means committed (the ack follows the commit), not yet in the
        WAL archive: the scorer trims through `acknowledged_floor` and `trim_below` (DESIGN §10)."""
        minid = await self.acknowledged_floor(number)
        if minid is not None:
            await self.trim_below(number, minid, approximate=approximate)
        return minid

    @translated
    async def acknowledged_floor(self, number: int) -> str | None:
        """The oldest entry of stream `number` some group still needs: every entry below it is acknowledged
        by every group. None when there is no stream or group yet."""
        stream = self._stream(number)
        try:
            groups = await self._r.xinfo_groups(stream)
        except ResponseError:  # no stream yet
            return None
        if not groups:
            return None
        needs = []
        for group in groups:
            name = text(group["name"])
            need = _next_id(text(group["last-delivered-id"]))
            # Acknowledged meanwhile (another scorer between the two calls): nothing pending below the last
            # delivered id read above, which is then a floor on the safe side.
            if int(group["pending"]) and (oldest := await self._r.xpending_range(stream, name, "-", "+", 1)):
                need = min(need, entry_tuple(text(oldest[0]["message_id"])))
            needs.append(need)
        floor = min(needs)
        return f"{floor[0]}-{floor[1]}"

    @translated
    async def trim_below(self, number: int, minid: str, *, approximate: bool = True) -> None:
        """XTRIM MINID: entries of stream `number` below `minid` go (never XDEL)."""
        # LIMIT 0: an approximate trim otherwise removes at most 100 macro nodes' worth of entries per call
        # (10,000), fewer than a busy half minute appends — the stream would grow without bound (found
        # by `make soak`). Whole nodes go, so the call stays cheap.
        await self._r.xtrim(self._stream(number), minid=minid, approximate=approximate,
                            limit=0 if approximate else None)


def _entries(raw: list[Any]) -> list[tuple[str, bytes]]:
    # An entry without our field (written by something else) decodes as poison, not a crash.
    return [(text(entry_id), fields.get(EVENT_FIELD, b"")) for entry_id, fields in raw if fields is not None]


def _next_id(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_tuple(entry_id)
    return ms, seq + 1
