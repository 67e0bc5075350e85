"""What the committee's desk keeps in Redis (DESIGN §6b): its sessions, the sliding window of failed
sign-ins per client address, and the hotline's reads of one participant — the identity claims (a CCCD's or
phone's keyed hash → the participant) and the attempts and receipts ingest holds for them.

Why Redis for the sessions: a TTL renewed at each request is the idle expiry, kept by the server itself;
several desk processes share them; a restart of the desk signs nobody out; and the window of failed
sign-ins is a sorted set trimmed by time. PostgreSQL would need a sweeper for both."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventstore.keys import Keys
from eventstore.redis_stream.client import Redis, text, translated
from eventstore.redis_stream.participants import ID_LENGTH


@dataclass(frozen=True, slots=True)
class Session:
    name: str  # the organiser's (their token's name): every event they cause records it
    csrf: str  # the token every change of theirs must carry


@dataclass(frozen=True, slots=True)
class HeldAttempt:
    attempt_id: str
    receipt: bytes | None  # its submission's receipt (JSON), if it was submitted and the receipt is kept


class DeskStore:
    def __init__(self, client: Redis, keys: Keys) -> None:
        self._r = client
        self.keys = keys

    # -- sessions ------------------------------------------------------------------------------

    @translated
    async def open_session(self, token_hash: str, session: Session, idle_s: int) -> None:
        key = self.keys.desk_session(token_hash)
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.hset(key, mapping={"name": session.name, "csrf": session.csrf})
            pipe.expire(key, idle_s)
            await pipe.execute()

    @translated
    async def session(self, token_hash: str, idle_s: int) -> Session | None:
        """The session, its idle expiry pushed back by `idle_s`; None when it expired or never was."""
        key = self.keys.desk_session(token_hash)
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.hgetall(key)
            pipe.expire(key, idle_s)
            fields, _ = await pipe.execute()
        values = {text(k): text(v) for k, v in fields.items()}
        if "name" not in values or "csrf" not in values:
            return None
        return Session(values["name"], values["csrf"])

    @translated
    async def end_session(self, token_hash: str) -> None:
        await self._r.delete(self.keys.desk_session(token_hash))

    # -- the sign-in limit: a sliding window per client address ----------------------------------

    @translated
    async def recent_failures(self, address_hash: str, now_ms: int, window_ms: int) -> list[int]:
        """The times (ms) of the failed sign-ins from this address within the window, oldest first."""
        key = self.keys.desk_failures(address_hash)
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", now_ms - window_ms)
            pipe.zrange(key, 0, -1, withscores=True)
            _, rows = await pipe.execute()
        return sorted(int(score) for _, score in rows)

    @translated
    async def failed(self, address_hash: str, now_ms: int, window_ms: int, nonce: str) -> None:
        key = self.keys.desk_failures(address_hash)
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.zadd(key, {f"{now_ms}:{nonce}": now_ms})
            pipe.pexpire(key, window_ms)
            await pipe.execute()

    # -- the hotline's reads -------------------------------------------------------------------------

    @translated
    async def participant_by(self, kind: str, value_hash: str) -> str | None:
        """The participant whose CCCD (`id`) or phone (`phone`) has this keyed hash: the identity claim
        registration made, also for a registration the scorers have not projected yet."""
        key = self.keys.id_hashes if kind == "id" else self.keys.phone_hashes
        found = await self._r.hget(key, value_hash)
        return None if found is None else text(found)

    @translated
    async def info(self, participant_id: str) -> str | None:
        """"group|unit" as ingest holds it (None: no such participant)."""
        found = await self._r.hget(self.keys.of(participant_id).participants, participant_id)
        return None if found is None else text(found)

    @translated
    async def attempts(self, participant_id: str, periods: list[int]) -> dict[int, list[HeldAttempt]]:
        """Per period, the attempts the participant started (oldest first) with their receipts: what ingest
        holds until the retention after the close expires it."""
        slot = self.keys.of(participant_id)
        async with self._r.pipeline(transaction=False) as pipe:
            for number in periods:
                pipe.hget(slot.attempts(number), participant_id)
            joined: list[Any] = await pipe.execute()
        started = {n: [text(ids)[i:i + ID_LENGTH] for i in range(0, len(text(ids)), ID_LENGTH)] if ids else []
                   for n, ids in zip(periods, joined, strict=True)}
        every = [a for ids in started.values() for a in ids]
        found: list[Any] = await self._r.hmget(slot.receipts, every) if every else []
        receipts: dict[str, bytes | None] = {a: None if r is None else bytes(r) for a, r in zip(every, found, strict=True)}
        return {n: [HeldAttempt(a, receipts.get(a)) for a in ids] for n, ids in started.items()}
