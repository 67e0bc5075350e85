"""What ingest reads back of one participant, once its access key is shown: what it holds about them
(GET /v1/participants/me) and their attempt still open (GET /v1/attempts/current). Reads, one script
call each on the participant's slot."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from eventstore.keys import Keys
from eventstore.redis_stream.batching import Reads
from eventstore.redis_stream.client import Redis, translated
from eventstore.redis_stream.scripts import READS, Script

ID_LENGTH = 36  # an attempt id (UUIDv7): the period's attempt ids are kept as one string of them
# On a cluster, reads in flight at once per process: each holds a pooled connection for its round trip, and the
# pool's 256 are shared with the writers; past this a read waits its turn instead of failing with "Too many
# connections" (seen under the quiz page's load: every visit to /thi asks GET /v1/attempts/current). On one
# server the reads share pipelined round trips instead (batching.Reads).
READS_IN_FLIGHT = 64
_turns: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None  # one per event loop
_reads: tuple[asyncio.AbstractEventLoop, aioredis.Redis, Reads] | None = None  # one server's, on this loop


@dataclass(frozen=True, slots=True)
class WrongKey:
    """The access key is not this participant's (or there is no such participant)."""


@dataclass(frozen=True, slots=True)
class PeriodHeld:
    attempt_ids: list[str]  # every attempt started, oldest first
    receipts: list[bytes]  # the receipts of those submitted


@dataclass(frozen=True, slots=True)
class Held:
    """What ingest holds about a participant: `info` ("group|unit"), the sealed profile, its personal copy
    (b"": registered before data keys) and per period the attempts started and the receipts."""

    info: str
    profile: bytes
    personal: bytes
    periods: dict[int, PeriodHeld]


@translated
async def _read(client: Redis, script: Script, keys: list[str], args: list[Any]) -> Any:
    """A read-only script: by its SHA1, with the source when the server lacks it (running a read twice is
    harmless); on one server, the reads in flight together share a round trip (batching.Reads)."""
    global _turns, _reads
    loop = asyncio.get_running_loop()
    if isinstance(client, aioredis.Redis):
        if _reads is None or _reads[0] is not loop or _reads[1] is not client:
            _reads = (loop, client, Reads(client))
        return await _reads[2].call(script, keys, args)
    if _turns is None or _turns[0] is not loop:  # a cluster: each read to its slot's master
        _turns = (loop, asyncio.Semaphore(READS_IN_FLIGHT))
    async with _turns[1]:
        try:
            return await client.evalsha(script.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(script.source, len(keys), *keys, *args)


async def held(client: Redis, keys: Keys, participant_id: str, access_hash: str,
               periods: list[int]) -> Held | WrongKey:
    p = keys.of(participant_id)
    reply = await _read(client, READS["read_participant"],
                        [p.participants, p.access, p.profiles, p.receipts, p.personal,
                         *(p.attempts(n) for n in periods)],
                        [participant_id, access_hash])
    if reply[0] != b"found":
        return WrongKey()
    out: dict[int, PeriodHeld] = {}
    at = 4
    for number in periods:
        ids = reply[at].decode()
        attempt_ids = [ids[i:i + ID_LENGTH] for i in range(0, len(ids), ID_LENGTH)]
        receipts = [r for r in reply[at + 1:at + 1 + len(attempt_ids)] if r]
        out[number] = PeriodHeld(attempt_ids, receipts)
        at += 1 + len(attempt_ids)
    return Held(reply[1].decode(), reply[2], bytes(reply[3]), out)


@dataclass(frozen=True, slots=True)
class Current:
    info: str  # "group|unit"
    event: bytes  # the attempt's AttemptStarted event


async def current_attempt(client: Redis, keys: Keys, participant_id: str, access_hash: str) -> Current | WrongKey | None:
    """The participant's latest attempt while its time lasts and it is not submitted, else None."""
    p = keys.of(participant_id)
    reply = await _read(client, READS["read_current"], [p.participants, p.access, p.receipts, p.current(participant_id)],
                        [participant_id, access_hash])
    if reply[0] == b"refused":
        return WrongKey()
    return Current(reply[1].decode(), bytes(reply[2])) if reply[0] == b"open" else None
