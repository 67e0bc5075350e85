"""The Redis/Valkey store: one-round-trip Lua writes for ingest, consumer-group reads for scorers.

The only module that imports redis-py; every driver error leaves it as StoreUnavailable."""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError

from eventstore.errors import StoreUnavailable
from eventstore.keys import EVENT_FIELD, GROUP, Keys

Durability = Literal["fsync_always", "waitaof"]
Redis = aioredis.Redis
P = ParamSpec("P")
R = TypeVar("R")


def connect(url: str, *, max_connections: int = 256) -> Redis:
    """A client with bounded timeouts, so an outage becomes a 503 at once, never a request hanging;
    one immediate retry on a broken connection heals the pool after a Redis restart. (A write whose
    reply was lost may so run twice: a submission then answers with its original receipt.)"""
    return aioredis.from_url(url, socket_timeout=3.0, socket_connect_timeout=1.0, retry_on_timeout=False,
                             retry=Retry(NoBackoff(), 1), max_connections=max_connections)


def translated(action: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """The one place where redis-py's errors become ours."""

    @functools.wraps(action)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await action(*args, **kwargs)
        except RedisError as e:
            raise StoreUnavailable(f"redis: {e}") from e

    return call


@translated
async def ping(client: Redis) -> None:
    await client.ping()


def _script(name: str) -> str:
    """A script's `one(A)` (eventstore/lua/NAME.lua) followed by the batch loop (batch.lua)."""
    lua = resources.files("eventstore").joinpath("lua")
    return lua.joinpath(f"{name}.lua").read_text() + lua.joinpath("batch.lua").read_text()


# -- what the scripts answer, typed ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Registered:
    """Both identities claimed and the event appended."""


@dataclass(frozen=True, slots=True)
class IdentityTaken:
    field: Literal["id_number", "phone"]


@dataclass(frozen=True, slots=True)
class AttemptOpened:
    group: str
    unit_code: str | None


AttemptRefusal = Literal["unknown_participant", "invalid_credentials", "disqualified", "attempt_limit",
                         "unknown_group"]


@dataclass(frozen=True, slots=True)
class AttemptRefused:
    reason: AttemptRefusal


@dataclass(frozen=True, slots=True)
class SubmissionAccepted:
    receipt: bytes


@dataclass(frozen=True, slots=True)
class SubmissionRepeated:
    """The attempt was submitted before: its original receipt, nothing new recorded."""

    receipt: bytes


@dataclass(frozen=True, slots=True)
class SubmissionRefused:
    reason: str  # the refusal the caller computed (period_closed, deadline_passed, invalid)


@dataclass(frozen=True, slots=True)
class KeyReissued:
    participant_id: str


@dataclass(frozen=True, slots=True)
class RecoveryRefused:
    reason: Literal["rate_limited", "invalid_credentials"]
    retry_after_s: int


@dataclass(frozen=True, slots=True)
class Allowed:
    """Within the client address's limit for this minute."""


@dataclass(frozen=True, slots=True)
class Limited:
    retry_after_s: int


RegisterOutcome = Registered | IdentityTaken
StartOutcome = AttemptOpened | AttemptRefused
SubmitOutcome = SubmissionAccepted | SubmissionRepeated | SubmissionRefused
RecoverOutcome = KeyReissued | RecoveryRefused
RateOutcome = Allowed | Limited


def _register_outcome(reply: list[bytes]) -> RegisterOutcome:
    if reply[0] == b"registered":
        return Registered()
    return IdentityTaken("phone" if reply[1] == b"phone" else "id_number")


def _start_outcome(reply: list[bytes]) -> StartOutcome:
    if reply[0] == b"started":
        group, _, unit = reply[1].decode().partition("|")
        return AttemptOpened(group, unit or None)
    return AttemptRefused(reply[1].decode())  # type: ignore[arg-type]  # the script names only these


def _recover_outcome(reply: list[Any]) -> RecoverOutcome:
    if reply[0] == b"reissued":
        return KeyReissued(reply[1].decode())
    if reply[1] == b"rate_limited":
        return RecoveryRefused("rate_limited", max(1, int(reply[2])))
    return RecoveryRefused("invalid_credentials", 0)


def _rate_outcome(reply: list[Any]) -> RateOutcome:
    return Allowed() if reply[0] == b"allowed" else Limited(max(1, int(reply[1])))


def _submit_outcome(reply: list[bytes]) -> SubmitOutcome:
    kind, value = reply
    if kind == b"accepted":
        return SubmissionAccepted(value)
    if kind == b"repeated":
        return SubmissionRepeated(value)
    return SubmissionRefused(value.decode())


@dataclass(frozen=True)
class Script:
    """A Lua script called by its SHA1 (EVALSHA): redis-py's pipelined scripts would add a
    SCRIPT EXISTS round trip to every batch; we load the source only when Redis says NOSCRIPT."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:  # Redis names scripts by the SHA1 of their source
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


class Batcher:
    """Shares Redis round trips between concurrent requests: calls queue up, one writer task sends
    everything queued as ONE pipeline, with ONE script call per script and key set (plus one
    WAITAOF when acks need it), while the next batch gathers: the batch size follows the load
    and an idle system still answers at once."""

    def __init__(self, client: Redis, *, durability: Durability, fsync_timeout_ms: int,
                 max_batch: int = 512) -> None:
        self._r = client
        self._durability = durability
        self._fsync_timeout_ms = fsync_timeout_ms
        self._max_batch = max_batch
        self._queue: list[tuple[Any, list[str], list[Any], asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # for the benchmarks: calls / batches = mean batch size
        self.calls = 0

    async def call(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        return await future

    async def _write(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
                self.batches += 1
                self.calls += len(batch)
                try:
                    await self._send(batch)
                except Exception as e:  # a bug, not an outage: fail these requests, never leave them hanging
                    _fail(batch, e)
        finally:
            # No await between the empty-queue check and this line: a call arriving later
            # always finds no writer and starts one.
            self._writer = None

    async def _send(self, batch: list[tuple[Any, list[str], list[Any], asyncio.Future[Any]]]) -> None:
        groups: dict[tuple[Script, tuple[str, ...]], list[tuple[list[Any], asyncio.Future[Any]]]] = {}
        for script, keys, args, future in batch:
            groups.setdefault((script, tuple(keys)), []).append((args, future))
        try:
            replies = await self._pipeline(groups)
            if any(isinstance(r, NoScriptError) for r in replies):  # Redis restarted: its script cache is empty
                await self._load(list(groups))
                replies = await self._pipeline(groups)  # NOSCRIPT means nothing ran: safe to send again
        except StoreUnavailable as e:
            _fail(batch, e)
            return
        if self._durability == "waitaof":
            synced = replies.pop()
            if isinstance(synced, Exception) or int(synced[0]) < 1:
                # Written but not known to be on disk: acknowledge nothing. A client retry of a
                # submission gets the original receipt (idempotent).
                _fail(batch, StoreUnavailable("redis did not confirm the fsync in time"))
                return
        for items, reply in zip(groups.values(), replies, strict=True):
            if isinstance(reply, Exception):
                _fail([(None, [], [], f) for _, f in items], StoreUnavailable(f"redis script failed: {reply}"))
                continue
            for (_, future), answer in zip(items, reply, strict=True):
                if not future.done():  # else the request went away meanwhile
                    future.set_result(answer)

    @translated
    async def _load(self, keys: list[tuple[Script, tuple[str, ...]]]) -> None:
        for script, _ in keys:
            await self._r.script_load(script.source)

    @translated
    async def _pipeline(self, groups: dict[tuple[Script, tuple[str, ...]], list[tuple[list[Any], asyncio.Future[Any]]]]
                        ) -> list[Any]:
        async with self._r.pipeline(transaction=False) as pipe:
            for (script, key_names), items in groups.items():
                argv: list[Any] = [len(items)]
                for args, _ in items:
                    argv += [len(args), *args]
                pipe.execute_command("EVALSHA", script.sha, len(key_names), *key_names, *argv)
            if self._durability == "waitaof":
                pipe.execute_command("WAITAOF", 1, 0, self._fsync_timeout_ms)
            return list(await pipe.execute(raise_on_error=False))


def _fail(batch: list[tuple[Any, list[str], list[Any], asyncio.Future[Any]]], error: Exception) -> None:
    for *_, future in batch:
        if not future.done():
            future.set_exception(error)


SCRIPTS = {name: Script(_script(name)) for name in ("register", "start_attempt", "submit", "recover", "rate")}
RECOVERIES_PER_HOUR = 5  # per CCCD (DESIGN §6)


class StreamWriter:
    """Ingest's writes: each is one Lua call, sent in a batch shared with concurrent requests."""

    def __init__(self, client: Redis, keys: Keys, *, durability: Durability, fsync_timeout_ms: int = 2000) -> None:
        self._r = client
        self.keys = keys
        self.durability = durability
        self._fsync_timeout_ms = fsync_timeout_ms
        self.batcher = Batcher(client, durability=durability, fsync_timeout_ms=fsync_timeout_ms)

    async def register(self, id_hash: str, phone_hash: str, participant_id: str, info: str, access_hash: str,
                       birth_hash: str, event: bytes) -> RegisterOutcome:
        k = self.keys
        return _register_outcome(await self.batcher.call(
            SCRIPTS["register"], [k.id_hashes, k.phone_hashes, k.participants, k.access, k.births, k.stream],
            [id_hash, phone_hash, participant_id, info, access_hash, birth_hash, event]))

    async def start_attempt(self, participant_id: str, access_hash: str, period: int, limit: int,
                            events_by_group: dict[str, bytes]) -> StartOutcome:
        k = self.keys
        args: list[Any] = [participant_id, access_hash, limit]
        for group, event in events_by_group.items():
            args += [group, event]
        return _start_outcome(await self.batcher.call(
            SCRIPTS["start_attempt"], [k.participants, k.access, k.disqualified, k.attempts(period), k.stream], args))

    async def reissue_access_key(self, id_hash: str, phone_hash: str, birth_hash: str, access_hash: str,
                                 event: bytes) -> RecoverOutcome:
        k = self.keys
        return _recover_outcome(await self.batcher.call(
            SCRIPTS["recover"], [k.id_hashes, k.phone_hashes, k.births, k.access, k.recoveries(id_hash), k.stream],
            [id_hash, phone_hash, birth_hash, access_hash, RECOVERIES_PER_HOUR, event]))

    async def count_request(self, address_hash: str, now_ms: int, limit: int) -> RateOutcome:
        """One request of a client address against its per-minute limit."""
        return _rate_outcome(await self.batcher.call(
            SCRIPTS["rate"], [self.keys.rate(address_hash, now_ms // 60_000)], [limit]))

    async def submit(self, attempt_id: str, refusal: str, receipt: bytes, event: bytes) -> SubmitOutcome:
        k = self.keys
        return _submit_outcome(await self.batcher.call(
            SCRIPTS["submit"], [k.receipts, k.stream], [attempt_id, refusal, receipt, event]))

    @translated
    async def append(self, *events: bytes) -> str:
        """Append entries (admin events, bulk simulation); durable on return; the last entry's id."""
        async with self._r.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(self.keys.stream, {EVENT_FIELD: event})
            if self.durability == "waitaof":
                pipe.execute_command("WAITAOF", 1, 0, self._fsync_timeout_ms)
            replies = await pipe.execute()
        if self.durability == "waitaof" and int(replies[-1][0]) < 1:
            # The write happened but is not known to be on disk: do not acknowledge it. The
            # client retries; a submission retry gets the original receipt (idempotent).
            raise StoreUnavailable("redis did not confirm the fsync in time")
        return _text(replies[len(events) - 1])

    @translated
    async def add_participants(self, infos: dict[str, str]) -> None:
        """participant_id → "group|unit" without the registration script (bulk simulation only)."""
        if infos:
            await self._r.hset(self.keys.participants, mapping=infos)  # type: ignore[arg-type]

    @translated
    async def expire_closed(self, period: int, *, contest_closed: bool, retention_s: int) -> None:
        """A closed period's attempt counters (and, once the whole contest is closed, the receipts)
        go `retention_s` after the close: kept while a late repeat may still ask, not forever."""
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.expire(self.keys.attempts(period), retention_s)
            if contest_closed:
                pipe.expire(self.keys.receipts, retention_s)
            await pipe.execute()

    @translated
    async def disqualify(self, participant_id: str) -> None:
        await self._r.sadd(self.keys.disqualified, participant_id)

    @translated
    async def participant_info(self, participant_id: str) -> str | None:
        info = await self._r.hget(self.keys.participants, participant_id)
        return None if info is None else _text(info)


@translated
async def durability_mode(client: Redis) -> Durability:
    """How acks become durable: `appendfsync always`, else WAITAOF per write (needs AOF on). Refuses
    a server that could lose what it acknowledged: without the AOF, or evicting keys under memory
    pressure (maxmemory-policy must be noeviction: a full server refuses writes, it drops nothing)."""
    conf = {**await client.config_get("append*"), **await client.config_get("maxmemory-policy")}
    if conf.get("appendonly") not in ("yes", b"yes"):
        raise StoreUnavailable("redis must run with appendonly yes (and preferably appendfsync "
                               "always): without the AOF an acknowledged entry can be lost")
    if conf.get("maxmemory-policy") not in ("noeviction", b"noeviction"):
        raise StoreUnavailable(f"redis must run with maxmemory-policy noeviction, not {conf.get('maxmemory-policy')}:"
                               " an evicting server silently drops receipts, attempt counts and stream entries")
    return "fsync_always" if conf.get("appendfsync") in ("always", b"always") else "waitaof"


@dataclass(frozen=True)
class Memory:
    used_bytes: int
    max_bytes: int  # 0: no limit set


@translated
async def memory(client: Redis) -> Memory:
    info = await client.info("memory")
    return Memory(int(info.get("used_memory", 0)), int(info.get("maxmemory", 0)))


@dataclass(frozen=True)
class GroupProgress:
    """How far a consumer group is: entries not yet delivered, delivered but unacked, and the
    stream time (ms) of the oldest entry not yet acknowledged (None when it is all done)."""

    name: str
    lag: int
    pending: int
    oldest_unprocessed_ms: int | None


@dataclass(frozen=True)
class StreamProgress:
    length: int
    dead_letters: int
    groups: list[GroupProgress]


class StreamReader:
    """A scorer's view of the stream: read new or reclaimed entries for one consumer, ack them."""

    def __init__(self, client: Redis, keys: Keys, consumer: str) -> None:
        self._r = client
        self.keys = keys
        self.consumer = consumer

    @translated
    async def ensure_group(self) -> None:
        try:
            await self._r.xgroup_create(self.keys.stream, GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    @translated
    async def read(self, count: int, block_ms: int | None) -> list[tuple[str, bytes]]:
        reply: Any = await self._r.xreadgroup(GROUP, self.consumer, {self.keys.stream: ">"},
                                         count=count, block=block_ms)
        return _entries(reply[0][1]) if reply else []

    @translated
    async def claim_idle(self, min_idle_ms: int, count: int) -> list[tuple[str, bytes]]:
        """Entries delivered to consumers that died before acking (XAUTOCLAIM)."""
        reply: Any = await self._r.xautoclaim(
            self.keys.stream, GROUP, self.consumer, min_idle_ms, "0-0", count=count)
        return _entries(reply[1])  # reply[2] lists ids deleted meanwhile: nothing to process

    @translated
    async def own_pending(self, count: int) -> list[tuple[str, bytes]]:
        """Entries this consumer read but did not ack (a restart under the same name)."""
        reply: Any = await self._r.xreadgroup(GROUP, self.consumer, {self.keys.stream: "0"}, count=count)
        return _entries(reply[0][1]) if reply else []

    @translated
    async def ack(self, ids: list[str]) -> None:
        if ids:
            await self._r.xack(self.keys.stream, GROUP, *ids)

    @translated
    async def deliveries(self, ids: list[str]) -> dict[str, int]:
        """How often each of `ids` (pending entries) has been delivered."""
        rows = await self._r.xpending_range(self.keys.stream, GROUP, min(ids, key=_id_tuple),
                                            max(ids, key=_id_tuple), len(ids) * 2)
        return {_text(r["message_id"]): int(r["times_delivered"]) for r in rows}

    @translated
    async def dead_letter(self, entry_id: str, raw: bytes, error: str) -> None:
        """Park an entry that cannot be scored, then ack it so it stops blocking the group."""
        await self._r.xadd(self.keys.dead_letters, {"entry_id": entry_id, "raw": raw, "error": error[:2000]})
        await self.ack([entry_id])

    @translated
    async def dead_lettered(self) -> list[tuple[str, dict[str, bytes]]]:
        """Every parked entry: (dead-letter id, {entry_id, raw, error})."""
        rows: Any = await self._r.xrange(self.keys.dead_letters)
        return [(_text(i), {_text(k): v for k, v in fields.items()}) for i, fields in rows]

    @translated
    async def requeue_dead_letter(self, dead_id: str, raw: bytes) -> str:
        """Append a parked entry to the stream again (a new id), then drop it from the parking."""
        new_id = _text(await self._r.xadd(self.keys.stream, {EVENT_FIELD: raw}))
        await self._r.xdel(self.keys.dead_letters, dead_id)
        return new_id

    @translated
    async def beat(self, now_ms: int, ttl_s: int) -> None:
        await self._r.set(self.keys.heartbeat(self.consumer), now_ms, ex=ttl_s)

    @translated
    async def heartbeats(self) -> dict[str, int]:
        """consumer → last beat (ms) of every scorer beating now."""
        names = [_text(k) async for k in self._r.scan_iter(match=self.keys.heartbeat_pattern)]
        values = await self._r.mget(names) if names else []
        prefix = self.keys.heartbeat("")
        return {n[len(prefix):]: int(v) for n, v in zip(names, values, strict=True) if v is not None}

    @translated
    async def trim_acknowledged(self, *, approximate: bool = True) -> str | None:
        """Trim the stream below the oldest entry some group still needs (never XDEL).

        Acked means archived (the ack follows the commit), so only entries every group has
        acknowledged go; returns the MINID used, or None when nothing can go."""
        groups = await self._r.xinfo_groups(self.keys.stream)
        if not groups:
            return None
        needs = []
        for group in groups:
            name = _text(group["name"])
            need = _next_id(_text(group["last-delivered-id"]))
            if int(group["pending"]):
                oldest = await self._r.xpending_range(self.keys.stream, name, "-", "+", 1)
                need = min(need, _id_tuple(_text(oldest[0]["message_id"])))
            needs.append(need)
        floor = min(needs)
        minid = f"{floor[0]}-{floor[1]}"
        # LIMIT 0: an approximate trim otherwise removes at most 100 macro nodes' worth of entries per call
        # (10,000), fewer than a busy half minute appends — the stream would grow without bound (found
        # by `make soak`). Whole nodes go, so the call stays cheap.
        await self._r.xtrim(self.keys.stream, minid=minid, approximate=approximate,
                            limit=0 if approximate else None)
        return minid

    @translated
    async def last_id(self) -> str:
        """The id of the newest entry (a barrier: everything appended so far is at or below it)."""
        try:
            info = await self._r.xinfo_stream(self.keys.stream)
        except ResponseError:
            return "0-0"
        return _text(info["last-generated-id"])

    @translated
    async def processed_through(self, barrier: str) -> bool:
        """True when every entry up to `barrier` has been delivered and acknowledged."""
        groups = await self._r.xinfo_groups(self.keys.stream)
        group = next((g for g in groups if _text(g["name"]) == GROUP), None)
        if group is None:
            return barrier == "0-0"
        if _id_tuple(_text(group["last-delivered-id"])) < _id_tuple(barrier):
            return False
        pending = await self._r.xpending_range(self.keys.stream, GROUP, "-", barrier, 1)
        return not pending


    async def memory(self) -> Memory:
        """The server's memory use against its limit (the monitor's gauges, the memory alert)."""
        return await memory(self._r)

    @translated
    async def progress(self) -> StreamProgress:
        """Length, dead letters and every group's progress (for the monitor and `cchc status`)."""
        r, stream = self._r, self.keys.stream
        try:
            raw_groups = await r.xinfo_groups(stream)
        except ResponseError:  # no stream yet
            raw_groups = []
        groups = [await self._group_progress(g) for g in raw_groups]
        return StreamProgress(await r.xlen(stream), await r.xlen(self.keys.dead_letters), groups)

    async def _group_progress(self, group: dict[Any, Any]) -> GroupProgress:
        """The oldest entry not yet acknowledged is the oldest pending one or the first undelivered
        one (the `lag` field alone is unreliable after trims)."""
        r, stream, name = self._r, self.keys.stream, _text(group["name"])
        after_delivered = "(" + _text(group["last-delivered-id"])
        pending = int(group["pending"])
        oldest: list[int] = []
        if pending:
            first = await r.xpending_range(stream, name, "-", "+", 1)
            oldest.append(_id_tuple(_text(first[0]["message_id"]))[0])
        undelivered = await r.xrange(stream, min=after_delivered, count=1)
        if undelivered:
            oldest.append(_id_tuple(_text(undelivered[0][0]))[0])
        lag = group.get("lag")
        if lag is None:  # Redis cannot tell after a trim or a deletion: count what is left (bounded)
            lag = len(await r.xrange(stream, min=after_delivered, count=100_000) or [])
        return GroupProgress(name, int(lag), pending, min(oldest) if oldest else None)


def _entries(raw: list[Any]) -> list[tuple[str, bytes]]:
    # An entry without our field (written by something else) decodes as poison, not a crash.
    return [(_text(entry_id), fields.get(EVENT_FIELD, b"")) for entry_id, fields in raw if fields is not None]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _next_id(entry_id: str) -> tuple[int, int]:
    ms, seq = _id_tuple(entry_id)
    return ms, seq + 1


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)
