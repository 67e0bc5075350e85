"""The Redis/Valkey side: one-round-trip Lua writes for ingest, consumer-group reads for scorers."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError, ResponseError

from eventstore.errors import StoreUnavailable
from eventstore.keys import EVENT_FIELD, GROUP, Keys

Durability = Literal["fsync_always", "waitaof"]

# Each script handles a whole batch of requests in ONE call: ARGV = n, then per item its argument
# count and arguments; the reply is one answer per item, in order. The body below (`one(A)`) is
# the rule for a single request; batch() wraps it.
def batch(one: str) -> str:
    return f"""local function one(A)
{one}
end
local out, p = {{}}, 2
for i = 1, tonumber(ARGV[1]) do
  local k, A = tonumber(ARGV[p]), {{}}
  for j = 1, k do A[j] = ARGV[p + j] end
  out[i] = one(A)
  p = p + k + 1
end
return out"""


# A new participant: refuse a CCCD or phone hash already taken, else claim both and append.
REGISTER = batch("""
if redis.call('HEXISTS', KEYS[1], A[1]) == 1 then return {'err', 'id_number'} end
if redis.call('HEXISTS', KEYS[2], A[2]) == 1 then return {'err', 'phone'} end
redis.call('HSET', KEYS[1], A[1], A[3])
redis.call('HSET', KEYS[2], A[2], A[3])
redis.call('HSET', KEYS[3], A[3], A[4])
return {'ok', redis.call('XADD', KEYS[4], '*', 'e', A[5])}
""")

# A new attempt: the participant must exist, not be disqualified and be under the limit.
# A[3..] are (group, event) pairs: the caller drew questions for every group, the script
# appends the one for the participant's group, so this stays one round trip.
START_ATTEMPT = batch("""
local info = redis.call('HGET', KEYS[1], A[1])
if not info then return {'err', 'unknown_participant'} end
if redis.call('SISMEMBER', KEYS[2], A[1]) == 1 then return {'err', 'disqualified'} end
local used = tonumber(redis.call('HGET', KEYS[3], A[1]) or '0')
if used >= tonumber(A[2]) then return {'err', 'attempt_limit'} end
local group = string.sub(info, 1, string.find(info, '|', 1, true) - 1)
for i = 3, #A, 2 do
  if A[i] == group then
    redis.call('HINCRBY', KEYS[3], A[1], 1)
    return {'ok', info, redis.call('XADD', KEYS[4], '*', 'e', A[i + 1])}
  end
end
return {'err', 'unknown_group'}
""")

# A submission: the first one of an attempt wins; a repeat gets the original receipt whatever
# it says (checked before any time rule); otherwise a pre-computed refusal, or append. Items of
# one batch apply in order, so a repeat inside the same batch also gets the first's receipt.
SUBMIT = batch("""
local prior = redis.call('HGET', KEYS[1], A[1])
if prior then return {'dup', prior} end
if A[2] ~= '' then return {'err', A[2]} end
redis.call('HSET', KEYS[1], A[1], A[3])
redis.call('XADD', KEYS[2], '*', 'e', A[4])
return {'ok', A[3]}
""")


@dataclass(frozen=True)
class Script:
    """A Lua script called by its SHA1 (EVALSHA): redis-py's pipelined scripts would add a
    SCRIPT EXISTS round trip to every batch; we load the source only when Redis says NOSCRIPT."""

    source: str
    sha: str = field(init=False)

    def __post_init__(self) -> None:  # Redis names scripts by the SHA1 of their source
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


@dataclass(frozen=True)
class Outcome:
    """What a Lua write answered: status 'ok' | 'err' | 'dup' and its value(s)."""

    status: str
    values: tuple[str, ...]


class Batcher:
    """Shares Redis round trips between concurrent requests: calls queue up, one writer task sends
    everything queued as ONE pipeline, with ONE script call per script and key set (plus one
    WAITAOF when acks need it), while the next batch gathers: the batch size follows the load
    and an idle system still answers at once."""

    def __init__(self, client: aioredis.Redis, *, durability: Durability, fsync_timeout_ms: int,
                 max_batch: int = 512) -> None:
        self._r = client
        self._durability = durability
        self._fsync_timeout_ms = fsync_timeout_ms
        self._max_batch = max_batch
        self._queue: list[tuple[Any, list[str], list[Any], asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # for the benchmarks: calls / batches = mean batch size
        self.calls = 0

    async def call(self, script: Any, keys: list[str], args: list[Any]) -> Any:
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
                for script, _ in groups:
                    await self._r.script_load(script.source)
                replies = await self._pipeline(groups)  # NOSCRIPT means nothing ran: safe to send again
        except RedisError as e:
            _fail(batch, StoreUnavailable(f"redis: {e}"))
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


class StreamWriter:
    """Ingest's writes: each is one Lua call, sent in a batch shared with concurrent requests."""

    def __init__(self, client: aioredis.Redis, keys: Keys, *, durability: Durability,
                 fsync_timeout_ms: int = 2000) -> None:
        self._r = client
        self.keys = keys
        self.durability = durability
        self._fsync_timeout_ms = fsync_timeout_ms
        self.batcher = Batcher(client, durability=durability, fsync_timeout_ms=fsync_timeout_ms)
        self._register = Script(REGISTER)
        self._start = Script(START_ATTEMPT)
        self._submit = Script(SUBMIT)

    async def register(self, id_hash: str, phone_hash: str, participant_id: str, info: str,
                       event: bytes) -> Outcome:
        k = self.keys
        return await self._call(self._register, [k.id_hashes, k.phone_hashes, k.participants, k.stream],
                                [id_hash, phone_hash, participant_id, info, event])

    async def start_attempt(self, participant_id: str, period: int, limit: int,
                            events_by_group: dict[str, bytes]) -> Outcome:
        k = self.keys
        args: list[Any] = [participant_id, limit]
        for group, event in events_by_group.items():
            args += [group, event]
        return await self._call(self._start, [k.participants, k.disqualified, k.attempts(period), k.stream],
                                args)

    async def submit(self, attempt_id: str, refusal: str, receipt: bytes, event: bytes) -> Outcome:
        k = self.keys
        return await self._call(self._submit, [k.receipts, k.stream], [attempt_id, refusal, receipt, event])

    async def append(self, event: bytes) -> str:
        """Append one entry (admin events); durable on return."""
        try:
            async with self._r.pipeline(transaction=False) as pipe:
                pipe.xadd(self.keys.stream, {EVENT_FIELD: event})
                self._wait(pipe)
                replies = await pipe.execute()
        except RedisError as e:
            raise StoreUnavailable(f"redis: {e}") from e
        self._check_wait(replies)
        return _text(replies[0])

    async def disqualify(self, participant_id: str) -> None:
        try:
            await self._r.sadd(self.keys.disqualified, participant_id)
        except RedisError as e:
            raise StoreUnavailable(f"redis: {e}") from e

    async def participant_info(self, participant_id: str) -> str | None:
        try:
            info = await self._r.hget(self.keys.participants, participant_id)
        except RedisError as e:
            raise StoreUnavailable(f"redis: {e}") from e
        return None if info is None else _text(info)

    async def _call(self, script: Any, keys: list[str], args: list[Any]) -> Outcome:
        status, *values = await self.batcher.call(script, keys, args)
        return Outcome(_text(status), tuple(_text(v) for v in values))

    def _wait(self, pipe: Any) -> None:
        if self.durability == "waitaof":
            pipe.execute_command("WAITAOF", 1, 0, self._fsync_timeout_ms)

    def _check_wait(self, replies: list[Any]) -> None:
        if self.durability == "waitaof" and int(replies[-1][0]) < 1:
            # The write happened but is not known to be on disk: do not acknowledge it. The
            # client retries; a submission retry gets the original receipt (idempotent).
            raise StoreUnavailable("redis did not confirm the fsync in time")


async def durability_mode(client: aioredis.Redis) -> Durability:
    """How acks become durable: `appendfsync always`, else WAITAOF per write (needs AOF on)."""
    try:
        conf = await client.config_get("append*")
    except RedisError as e:
        raise StoreUnavailable(f"redis: {e}") from e
    if conf.get("appendonly") != "yes":
        raise StoreUnavailable("redis must run with appendonly yes (and preferably appendfsync "
                               "always): without the AOF an acknowledged entry can be lost")
    return "fsync_always" if conf.get("appendfsync") == "always" else "waitaof"


class StreamReader:
    """A scorer's view of the stream: read new or reclaimed entries for one consumer, ack them."""

    def __init__(self, client: aioredis.Redis, keys: Keys, consumer: str) -> None:
        self._r = client
        self.keys = keys
        self.consumer = consumer

    async def ensure_group(self) -> None:
        try:
            await self._r.xgroup_create(self.keys.stream, GROUP, id="0", mkstream=True)
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    async def read(self, count: int, block_ms: int | None) -> list[tuple[str, bytes]]:
        reply: Any = await self._r.xreadgroup(GROUP, self.consumer, {self.keys.stream: ">"},
                                         count=count, block=block_ms)
        return _entries(reply[0][1]) if reply else []

    async def claim_idle(self, min_idle_ms: int, count: int) -> list[tuple[str, bytes]]:
        """Entries delivered to consumers that died before acking (XAUTOCLAIM)."""
        reply: Any = await self._r.xautoclaim(
            self.keys.stream, GROUP, self.consumer, min_idle_ms, "0-0", count=count)
        return _entries(reply[1])  # reply[2] lists ids deleted meanwhile: nothing to process

    async def own_pending(self, count: int) -> list[tuple[str, bytes]]:
        """Entries this consumer read but did not ack (a restart under the same name)."""
        reply: Any = await self._r.xreadgroup(GROUP, self.consumer, {self.keys.stream: "0"}, count=count)
        return _entries(reply[0][1]) if reply else []

    async def ack(self, ids: list[str]) -> None:
        if ids:
            await self._r.xack(self.keys.stream, GROUP, *ids)

    async def deliveries(self, ids: list[str]) -> dict[str, int]:
        """How often each of `ids` (pending entries) has been delivered."""
        rows = await self._r.xpending_range(self.keys.stream, GROUP, min(ids, key=_id_tuple),
                                            max(ids, key=_id_tuple), len(ids) * 2)
        return {_text(r["message_id"]): int(r["times_delivered"]) for r in rows}

    async def dead_letter(self, entry_id: str, raw: bytes, error: str) -> None:
        """Park an entry that cannot be scored, then ack it so it stops blocking the group."""
        await self._r.xadd(self.keys.dead_letters, {"entry_id": entry_id, "raw": raw, "error": error[:2000]})
        await self.ack([entry_id])

    async def dead_lettered(self) -> list[tuple[str, dict[str, bytes]]]:
        """Every parked entry: (dead-letter id, {entry_id, raw, error})."""
        rows: Any = await self._r.xrange(self.keys.dead_letters)
        return [(_text(i), {_text(k): v for k, v in fields.items()}) for i, fields in rows]

    async def requeue_dead_letter(self, dead_id: str, raw: bytes) -> str:
        """Append a parked entry to the stream again (a new id), then drop it from the parking."""
        new_id = _text(await self._r.xadd(self.keys.stream, {EVENT_FIELD: raw}))
        await self._r.xdel(self.keys.dead_letters, dead_id)
        return new_id

    async def beat(self, now_ms: int, ttl_s: int) -> None:
        await self._r.set(self.keys.heartbeat(self.consumer), now_ms, ex=ttl_s)

    async def heartbeats(self) -> dict[str, int]:
        """consumer → last beat (ms) of every scorer beating now."""
        names = [_text(k) async for k in self._r.scan_iter(match=self.keys.heartbeat_pattern)]
        values = await self._r.mget(names) if names else []
        prefix = self.keys.heartbeat("")
        return {n[len(prefix):]: int(v) for n, v in zip(names, values, strict=True) if v is not None}

    async def trim_acknowledged(self, *, approximate: bool = True) -> str | None:
        """Trim the stream below the oldest entry some group still needs (never XDEL).

        Acked means archived (the ack follows the commit), so only entries every group has
        acknowledged go; returns the MINID used, or None when nothing can go."""
        groups = await self._r.xinfo_groups(self.keys.stream)
        if not groups:
            return None
        floor: tuple[int, int] | None = None
        for group in groups:
            name = _text(group["name"])
            need = _next_id(_text(group["last-delivered-id"]))
            if int(group["pending"]):
                oldest = await self._r.xpending_range(self.keys.stream, name, "-", "+", 1)
                need = min(need, _id_tuple(_text(oldest[0]["message_id"])))
            floor = need if floor is None else min(floor, need)
        assert floor is not None
        minid = f"{floor[0]}-{floor[1]}"
        await self._r.xtrim(self.keys.stream, minid=minid, approximate=approximate)
        return minid

    async def last_id(self) -> str:
        """The id of the newest entry (a barrier: everything appended so far is at or below it)."""
        try:
            info = await self._r.xinfo_stream(self.keys.stream)
        except ResponseError:
            return "0-0"
        return _text(info["last-generated-id"])

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
