"""Ingest's writes: each one Lua call on one slot, in a batch shared with concurrent requests."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eventstore.keys import Keys, record_key
from eventstore.redis_stream.batching import Batcher
from eventstore.redis_stream.client import Durability, Redis, text, translated
from eventstore.redis_stream.scripts import (
    RECOVERIES_PER_HOUR,
    SCRIPTS,
    ErasedParticipant,
    EraseOutcome,
    KeyReset,
    Moved,
    NoSuchParticipant,
    RateOutcome,
    RecoverOutcome,
    Registered,
    RegisterOutcome,
    StartOutcome,
    erase_outcome,
    found_outcome,
    move_outcome,
    rate_outcome,
    register_outcome,
    reissue_outcome,
    reset_outcome,
    start_outcome,
)

REQUEST_RECORD_S = 300  # how long a write keeps its reply under our own request id: past any resend of its batch
IDEMPOTENCY_RECORD_S = 24 * 3600  # a client's Idempotency-Key (DESIGN §6)


@dataclass(frozen=True, slots=True)
class WriteId:
    """The record under which a write keeps its reply (DESIGN §5.7, eventstore/lua/prelude.lua): our own
    request id, kept long enough for any resend of its batch, or a client's Idempotency-Key bound to its
    route and credential, kept 24 h with the digest of the body it answered (another body: KeyReused)."""

    id: str
    ttl_s: int
    digest: str = ""
    keeps_refusals: bool = True  # our own id: a resend answers as the first run did; a client's key: a retry
    # after a refusal is a new try

    @classmethod
    def fresh(cls) -> WriteId:
        return cls(secrets.token_hex(16), REQUEST_RECORD_S)

    @classmethod
    def idempotency(cls, key: str, *, route: str, credential: str, body: bytes) -> WriteId:
        scope = hashlib.sha256(f"{route}\n{credential}\n{key}".encode()).hexdigest()[:40]
        return cls(scope, IDEMPOTENCY_RECORD_S, hashlib.sha256(body).hexdigest()[:40], keeps_refusals=False)

    def args(self, prefix: str) -> list[Any]:
        """The record's four arguments to a script whose keys share `prefix` (the record's key shares its
        hash tag, so it lives in the script's slot)."""
        return [record_key(prefix, self.id), self.ttl_s, self.digest, "1" if self.keeps_refusals else "0"]


class StreamWriter:
    """Ingest's writes: each is one Lua call on one slot, sent in a batch shared with concurrent
    requests; a participant's writes go to its partition's slot. Every write that changes something
    beyond its own retry carries a WriteId, so running it twice answers the first run's reply."""

    def __init__(self, client: Redis, keys: Keys, *, durability: Durability, fsync_timeout_ms: int = 2000) -> None:
        self._r = self.client = client
        self.keys = keys
        self.durability = durability
        self.batcher = Batcher(client, durability=durability, fsync_timeout_ms=fsync_timeout_ms)

    def reference_of(self, participant_id: str) -> str:
        """The server whose clock stamps the participant's writes (its partition's master)."""
        return self.batcher.lane(self.keys.of(participant_id).stream)

    async def register(self, write: WriteId, id_hash: str, phone_hash: str, participant_id: str, info: str,
                       access_hash: str, sealed_key: bytes, birth_hash: str, profile: bytes, personal: bytes,
                       event: bytes) -> RegisterOutcome:
        """The participant's partition keys first (with its personal copy: eventstore.pii.PersonalCopy), then
        its identities and its event in the contest's slot (DESIGN §4: a crash between the two leaves
        unreachable keys, never a half-claimed identity). A kept answer names the participant of the write's
        first run: this run's keys are dropped."""
        k, p = self.keys, self.keys.of(participant_id)
        mine = [p.participants, p.access, p.births, p.profiles, p.personal]
        await self.batcher.call(SCRIPTS["register_keys"], mine,
                                [participant_id, info, access_hash, birth_hash, profile, personal])
        outcome = register_outcome(await self.batcher.call(
            SCRIPTS["register"], [k.id_hashes, k.phone_hashes, k.contest.stream],
            [*write.args(k.contest.prefix), id_hash, phone_hash, participant_id, event, sealed_key]))
        if not isinstance(outcome, Registered) or outcome.participant_id != participant_id:
            await self.batcher.call(SCRIPTS["forget_keys"], mine, [participant_id])
        return outcome

    async def start_attempt(self, write: WriteId, participant_id: str, access_hash: str, period: int, limit: int,
                            attempt_id: str, land_by_ms: int, open_s: int,
                            events_by_group: dict[str, bytes]) -> StartOutcome:
        """`land_by_ms`: the store time after which the start is refused (its stamp plus the settle margin);
        `open_s`: how long the attempt stays the participant's current one (its time limit and grace)."""
        p = self.keys.of(participant_id)
        args: list[Any] = [*write.args(p.prefix), participant_id, access_hash, limit, land_by_ms, attempt_id,
                           p.current(participant_id), open_s]
        for group, event in events_by_group.items():
            args += [group, event]
        return start_outcome(await self.batcher.call(
            SCRIPTS["start_attempt"], [p.participants, p.access, p.disqualified, p.attempts(period), p.stream], args))

    async def reissue_access_key(self, write: WriteId, id_hash: str, phone_hash: str, birth_hash: str,
                                 new_key: Callable[[str], tuple[str, bytes, bytes]]) -> RecoverOutcome:
        """CCCD and phone find the participant (contest slot, every try counted); its birth date then
        decides in its partition, where the new key hash and the event go. `new_key(participant_id)` gives
        the new access key's hash, the key sealed (an access key names its participant) and the event."""
        k = self.keys
        found = found_outcome(await self.batcher.call(
            SCRIPTS["recover"], [k.id_hashes, k.phone_hashes, k.recoveries(id_hash)],
            [*write.args(k.contest.prefix), id_hash, phone_hash, RECOVERIES_PER_HOUR]))
        if not isinstance(found, str):
            return found
        p = k.of(found)
        access_hash, sealed_key, event = new_key(found)
        return reissue_outcome(await self.batcher.call(
            SCRIPTS["reissue"], [p.births, p.access, p.stream],
            [*write.args(p.prefix), found, birth_hash, access_hash, event, sealed_key]))

    async def erase(self, write: WriteId, participant_ids: list[str], event: bytes, at_ms: int, *,
                    access_hash: str = "", strict: bool = True) -> EraseOutcome:
        """Erase the participants' personal data (DESIGN §10: eventstore/lua/erase.lua) and append `event`
        (a ParticipantErased naming them) to their partition's stream, durable on return. Every id must
        belong to one partition. `access_hash`: the participant's own request (its key must match); `strict`:
        refuse one participant this partition does not know."""
        p = self.keys.of(participant_ids[0])
        return erase_outcome(await self.batcher.call(
            SCRIPTS["erase"], [p.participants, p.access, p.births, p.profiles, p.personal, p.erased, p.stream],
            [*write.args(p.prefix), access_hash, at_ms, event, "1" if strict else "0", *participant_ids]))

    async def count_request(self, address_hash: str, now_ms: int, limit: int) -> RateOutcome:
        """One request of a client address against its per-minute limit."""
        prefix = self.keys.rate_prefix(address_hash)
        return rate_outcome(await self.batcher.call(
            SCRIPTS["rate"], [f"{prefix}:{now_ms // 60_000}"], [*WriteId.fresh().args(prefix), limit]))

    def submit_soon(self, participant_id: str, attempt_id: str, refusal: str, receipt: bytes,
                    event: bytes, land_by_ms: int) -> asyncio.Future[Any]:
        """The submission script queued for the next batch; its reply (submit_outcome reads it) as a
        future, not a coroutine: the fast path answers from the future's callback (runtime/fastpath.py).
        No write record: the receipt, unique to this request, is the submission's own (submit.lua)."""
        p = self.keys.of(participant_id)
        return self.batcher.call(SCRIPTS["submit"], [p.receipts, p.stream],
                                 [attempt_id, refusal, receipt, event, land_by_ms])

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
                write = WriteId.fresh().args(self.keys.slot(number).prefix)
                last[number] = text(await self.batcher.call(SCRIPTS["append"], [stream],
                                                            [*write, *events[start:start + chunk]]))
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

    async def move(self, participant_id: str, unit_code: str, event: bytes) -> Moved | NoSuchParticipant:
        """The committee's unit move: the unit the participant's attempts carry from now on, and its event,
        in one script on the participant's slot."""
        p = self.keys.of(participant_id)
        return move_outcome(await self.batcher.call(SCRIPTS["move"], [p.participants, p.stream],
                                                    [*WriteId.fresh().args(p.prefix), participant_id, unit_code, event]))

    async def reset_access_key(self, participant_id: str, access_hash: str, event: bytes,
                               sealed_key: bytes) -> KeyReset | NoSuchParticipant | ErasedParticipant:
        """The committee's hotline: a new access key for the participant (the old one stops working) and its
        event, in one script on the participant's slot."""
        p = self.keys.of(participant_id)
        return reset_outcome(await self.batcher.call(
            SCRIPTS["reset_key"], [p.participants, p.access, p.erased, p.stream],
            [*WriteId.fresh().args(p.prefix), participant_id, access_hash, event, sealed_key]))

    @translated
    async def record_closed(self, period: int) -> None:
        """The period is closed: GET /v1/contest says so from now on (ingest reads no database)."""
        await self._r.sadd(self.keys.closed, period)

    @translated
    async def closed_periods(self) -> frozenset[int]:
        return frozenset(int(n) for n in await self._r.smembers(self.keys.closed))

    @translated
    async def disqualify(self, participant_id: str) -> None:
        await self._r.sadd(self.keys.of(participant_id).disqualified, participant_id)

    @translated
    async def participant_info(self, participant_id: str) -> str | None:
        info = await self._r.hget(self.keys.of(participant_id).participants, participant_id)
        return None if info is None else text(info)

