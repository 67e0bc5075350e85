"""Ingest's writes: each one Lua call on one slot, in a batch shared with concurrent requests."""

from __future__ import annotations

import asyncio
from typing import Any

from eventstore.keys import Keys
from eventstore.redis_stream.batching import Batcher
from eventstore.redis_stream.client import Durability, Redis, text, translated
from eventstore.redis_stream.scripts import (
    RECOVERIES_PER_HOUR,
    SCRIPTS,
    IdentityTaken,
    KeyReissued,
    RateOutcome,
    RecoverOutcome,
    RegisterOutcome,
    StartOutcome,
    rate_outcome,
    recover_outcome,
    register_outcome,
    start_outcome,
)


class StreamWriter:
    """Ingest's writes: each is one Lua call on one slot, sent in a batch shared with concurrent
    requests; a participant's writes go to its partition's slot."""

    def __init__(self, client: Redis, keys: Keys, *, durability: Durability, fsync_timeout_ms: int = 2000) -> None:
        self._r = client
        self.keys = keys
        self.durability = durability
        self.batcher = Batcher(client, durability=durability, fsync_timeout_ms=fsync_timeout_ms)

    async def register(self, id_hash: str, phone_hash: str, participant_id: str, info: str, access_hash: str,
                       birth_hash: str, event: bytes) -> RegisterOutcome:
        """The participant's partition keys first, then its identities and its event in the contest's
        slot (DESIGN §4: a crash between the two leaves unreachable keys, never a half-claimed identity)."""
        k, p = self.keys, self.keys.of(participant_id)
        mine = [p.participants, p.access, p.births]
        await self.batcher.call(SCRIPTS["register_keys"], mine, [participant_id, info, access_hash, birth_hash])
        outcome = register_outcome(await self.batcher.call(
            SCRIPTS["register"], [k.id_hashes, k.phone_hashes, k.contest.stream],
            [id_hash, phone_hash, participant_id, event]))
        if isinstance(outcome, IdentityTaken):
            await self.batcher.call(SCRIPTS["forget_keys"], mine, [participant_id])
        return outcome

    async def start_attempt(self, participant_id: str, access_hash: str, period: int, limit: int,
                            events_by_group: dict[str, bytes]) -> StartOutcome:
        p = self.keys.of(participant_id)
        args: list[Any] = [participant_id, access_hash, limit]
        for group, event in events_by_group.items():
            args += [group, event]
        return start_outcome(await self.batcher.call(
            SCRIPTS["start_attempt"], [p.participants, p.access, p.disqualified, p.attempts(period), p.stream], args))

    async def reissue_access_key(self, id_hash: str, phone_hash: str, birth_hash: str, access_hash: str,
                                 event: bytes) -> RecoverOutcome:
        """CCCD and phone find the participant (contest slot, every try counted); its birth date then
        decides in its partition, where the new key hash and the event go."""
        k = self.keys
        found = recover_outcome(await self.batcher.call(
            SCRIPTS["recover"], [k.id_hashes, k.phone_hashes, k.recoveries(id_hash)],
            [id_hash, phone_hash, RECOVERIES_PER_HOUR]))
        if not isinstance(found, str):
            return found
        p = k.of(found)
        done = recover_outcome(await self.batcher.call(
            SCRIPTS["reissue"], [p.births, p.access, p.stream], [found, birth_hash, access_hash, event]))
        return KeyReissued(done) if isinstance(done, str) else done

    async def count_request(self, address_hash: str, now_ms: int, limit: int) -> RateOutcome:
        """One request of a client address against its per-minute limit."""
        return rate_outcome(await self.batcher.call(
            SCRIPTS["rate"], [self.keys.rate(address_hash, now_ms // 60_000)], [limit]))

    def submit_soon(self, participant_id: str, attempt_id: str, refusal: str, receipt: bytes,
                    event: bytes) -> asyncio.Future[Any]:
        """The submission script queued for the next batch; its reply (submit_outcome reads it) as a
        future, not a coroutine: the fast path answers from the future's callback (runtime/fastpath.py)."""
        p = self.keys.of(participant_id)
        return self.batcher.call(SCRIPTS["submit"], [p.receipts, p.stream], [attempt_id, refusal, receipt, event])

    async def append(self, *events: bytes, participant_id: str | None = None) -> str:
        """Append entries to the participant's partition (or, without one, to the contest's stream);
        durable on return; the last entry's id."""
        slot = self.keys.contest if participant_id is None else self.keys.of(participant_id)
        return (await self.append_to({slot.number: list(events)}))[slot.number]

    async def append_to(self, entries: dict[int, list[bytes]], *, chunk: int = 1000) -> dict[int, str]:
        """Append entries to several streams (bulk simulation, admin events); durable on return (the
        batch's fsync wait runs on the connection that wrote them); each stream's last id."""
        last: dict[int, str] = {}
        for number, events in entries.items():
            stream = self.keys.slot(number).stream
            for start in range(0, len(events), chunk):  # a script blocks its server: bounded pieces
                last[number] = text(await self.batcher.call(SCRIPTS["append"], [stream],
                                                             list(events[start:start + chunk])))
        return last

    @translated
    async def add_participants(self, infos: dict[str, str]) -> None:
        """participant_id → "group|unit" without the registration script (bulk simulation only)."""
        by_slot: dict[str, dict[str, str]] = {}
        for participant_id, info in infos.items():
            by_slot.setdefault(self.keys.of(participant_id).participants, {})[participant_id] = info
        for key, mapping in by_slot.items():
            await self._r.hset(key, mapping=mapping)  # type: ignore[arg-type]

    @translated
    async def expire_closed(self, period: int, *, contest_closed: bool, retention_s: int) -> None:
        """A closed period's attempt counters (and, once the whole contest is closed, the receipts)
        go `retention_s` after the close: kept while a late repeat may still ask, not forever."""
        async with self._r.pipeline(transaction=False) as pipe:  # a cluster's splits it per master
            for number in range(self.keys.partitions):
                slot = self.keys.slot(number)
                pipe.expire(slot.attempts(period), retention_s)
                if contest_closed:
                    pipe.expire(slot.receipts, retention_s)
            await pipe.execute()

    @translated
    async def disqualify(self, participant_id: str) -> None:
        await self._r.sadd(self.keys.of(participant_id).disqualified, participant_id)

    @translated
    async def participant_info(self, participant_id: str) -> str | None:
        info = await self._r.hget(self.keys.of(participant_id).participants, participant_id)
        return None if info is None else text(info)

