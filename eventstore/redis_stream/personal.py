"""Personal data in Redis beyond ingest's own writes (DESIGN §10): the personal copies a scorer takes into
PostgreSQL, the participants the retention erasure goes through, the identity claims released once nobody
needs them, and the AOF rewrite that drops from Valkey's files what an erasure deleted from its memory."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog
from redis.exceptions import ResponseError

from eventstore.keys import Keys
from eventstore.redis_stream.client import Redis, each_server, text, translated
from eventstore.redis_stream.scripts import RELEASE

log = structlog.get_logger()
SCAN_COUNT = 5000  # fields a HSCAN step asks for: a big hash is walked in steps that never block the server


@dataclass(frozen=True, slots=True)
class Copies:
    """Registrations' personal copies as Redis holds them now."""

    kept: dict[str, bytes]  # participant id → its PersonalCopy (msgpack)
    erased: dict[str, int]  # participant id → when it was erased (ms): it has no copy any more


@translated
async def personal_copies(client: Redis, keys: Keys, participant_ids: list[str]) -> Copies:
    """The participants' personal copies, and which of them were erased (neither for a registration from
    before data keys, or one of `cchc simulate`'s)."""
    by_slot: dict[int, list[str]] = {}
    for pid in participant_ids:
        by_slot.setdefault(keys.partition_of(pid), []).append(pid)
    kept: dict[str, bytes] = {}
    for number, pids in by_slot.items():
        for pid, copy in zip(pids, await client.hmget(keys.slot(number).personal, pids), strict=True):
            if copy is not None:
                kept[pid] = copy if isinstance(copy, bytes) else copy.encode()
    missing = [pid for pid in participant_ids if pid not in kept]
    return Copies(kept, await erased_among(client, keys, missing) if missing else {})


@translated
async def not_erased(client: Redis, keys: Keys, number: int) -> list[str]:
    """Every participant of partition `number` whose personal data is not erased yet."""
    slot = keys.slot(number)
    erased = {text(pid) for pid in await client.hkeys(slot.erased)}
    return [pid for pid in [text(p) async for p, _ in client.hscan_iter(slot.participants, count=SCAN_COUNT)]
            if pid not in erased]


@translated
async def erased_among(client: Redis, keys: Keys, participant_ids: list[str]) -> dict[str, int]:
    """participant id → when it was erased (ms), for those of `participant_ids` that were."""
    by_key: dict[str, list[str]] = {}
    for pid in participant_ids:
        by_key.setdefault(keys.of(pid).erased, []).append(pid)
    out: dict[str, int] = {}
    for key, pids in by_key.items():
        for pid, at in zip(pids, await client.hmget(key, pids), strict=True):
            if at is not None:
                out[pid] = int(at)
    return out


@translated
async def erasures(client: Redis, keys: Keys) -> dict[str, int]:
    """Every erasure Valkey recorded: participant id → when (ms)."""
    out: dict[str, int] = {}
    for number in range(keys.partitions):
        async for pid, at in client.hscan_iter(keys.slot(number).erased, count=SCAN_COUNT):
            out[text(pid)] = int(at)
    return out


@translated
async def release_identities(client: Redis, keys: Keys) -> int:
    """Drop the CCCD and phone claims (contest slot) that name an erased participant, so the identity can
    register again; returns how many went. DESIGN §10 keeps them until the contest's last close (one person,
    one account: an erased person cannot come back with fresh attempts); `cchc forget --expired` calls this
    once every period is closed. A claim taken meanwhile by a new registration is never dropped."""
    released = 0
    for which, key in ((1, keys.id_hashes), (2, keys.phone_hashes)):
        claims: list[tuple[str, str]] = []
        async for claim, pid in client.hscan_iter(key, count=SCAN_COUNT):
            claims.append((text(claim), text(pid)))
            if len(claims) >= SCAN_COUNT:
                released += await _release(client, keys, which, claims)
                claims = []
        released += await _release(client, keys, which, claims)
    return released


async def _release(client: Redis, keys: Keys, which: int, claims: list[tuple[str, str]]) -> int:
    erased = await erased_among(client, keys, [pid for _, pid in claims])
    args = [part for claim, pid in claims if pid in erased for part in (which, claim, pid)]
    if not args:
        return 0
    return int(await client.eval(RELEASE.source, 2, keys.id_hashes, keys.phone_hashes, *args))


class AofRewriter:
    """Rewrites every server's AOF (replicas' too: theirs hold the same writes) after an erasure, so the
    deleted personal copies leave Valkey's files as well as its memory (DESIGN §10: BGREWRITEAOF). A rewrite
    already running took its snapshot maybe before the erasure: then a new one is asked for once it ends.
    Requests coalesce: one rewrite after a burst of erasures covers them all."""

    def __init__(self, client: Redis, *, poll_s: float = 1.0) -> None:
        self.client = client
        self.poll_s = poll_s
        self._wanted = False
        self._task: asyncio.Task[None] | None = None

    def request(self) -> None:
        """Ask for a rewrite after what was written so far (returns at once; a task does the asking)."""
        self._wanted = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="aof rewrite")

    async def settled(self) -> None:
        """Wait until every rewrite asked for is started (tests, and one-shot commands before they exit)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._wanted:
            self._wanted = False
            try:
                await rewrite_aof(self.client, poll_s=self.poll_s)
            except Exception as e:  # the files keep the copies until Valkey's own next rewrite: said, not fatal
                log.warning("aof_rewrite_failed", error=str(e))
                return


@translated
async def rewrite_aof(client: Redis, *, poll_s: float = 1.0, timeout_s: float = 600.0) -> None:
    """BGREWRITEAOF on every server, started after this call: where one is already running (its snapshot
    may predate what was just deleted), again once it has ended."""

    async def one(target: dict[str, Any]) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                await client.bgrewriteaof(**target)
                return
            except ResponseError as e:
                if "in progress" not in str(e) or asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(poll_s)

    await each_server(client, one, replicas=True)


@translated
async def aof_rewritten(client: Redis) -> bool:
    """No AOF rewrite running or scheduled on any server (what rewrite_aof asked for has ended)."""

    async def one(target: dict[str, Any]) -> bool:
        info = await client.info("persistence", **target)
        return not int(info.get("aof_rewrite_in_progress", 0)) and not int(info.get("aof_rewrite_scheduled", 0))

    return all(await each_server(client, one, replicas=True))
