"""The Redis/Valkey store: one-round-trip Lua writes for ingest, consumer-group reads for scorers,
on one server or a Valkey Cluster (the same code: keys of one participant share a slot).

The only module that imports redis-py; every driver error leaves it as StoreUnavailable."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import math
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AskError, NoScriptError, RedisError, ResponseError

from eventstore.barrier import Barrier, entry_tuple
from eventstore.errors import StoreUnavailable
from eventstore.keys import EVENT_FIELD, GROUP, Keys, Slot

# How acks become durable: the server fsyncs every write itself; we wait for its fsync (WAITAOF 1 0);
# or we wait for its fsync and one replica's (WAITAOF 1 1: survives the master's death).
Durability = Literal["fsync_always", "waitaof", "waitaof_replica"]
Redis = aioredis.Redis | RedisCluster
Entry = tuple[int, str, bytes]  # (stream number, entry id, raw entry)
P = ParamSpec("P")
R = TypeVar("R")
SOCKET_TIMEOUT_S = 3.0


def connect(url: str, *, max_connections: int = 256) -> aioredis.Redis:
    """A client with bounded timeouts, so an outage becomes a 503 at once, never a request hanging;
    one immediate retry on a broken connection heals the pool after a Redis restart. (A write whose
    reply was lost may so run twice: a submission then answers with its original receipt.)"""
    return aioredis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=1.0,
                             retry_on_timeout=False, retry=Retry(NoBackoff(), 1), max_connections=max_connections)


async def open_client(url: str, *, max_connections: int = 256) -> Redis:
    """The client for `url`: redis-py's cluster client when the server there is a cluster node
    (`cluster_enabled:1`), else the plain one. A server that cannot be reached yet gets the plain
    client (it reports the outage as every other call does)."""
    plain = connect(url, max_connections=max_connections)
    try:
        info = await plain.info("cluster")
    except RedisError:
        return plain
    if not int(info.get("cluster_enabled", 0)):
        return plain
    await plain.aclose()
    cluster = RedisCluster.from_url(url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=1.0,
                                    max_connections=max_connections, require_full_coverage=True)
    try:
        await cluster.initialize()
    except RedisError as e:
        await cluster.aclose()
        raise StoreUnavailable(f"redis cluster at {url}: {e}") from e
    return cluster


def is_cluster(client: Redis) -> bool:
    return isinstance(client, RedisCluster)


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


def _lua(name: str) -> str:
    return resources.files("eventstore").joinpath("lua").joinpath(f"{name}.lua").read_text()


def _script(name: str) -> str:
    """A script's `one(A)` (eventstore/lua/NAME.lua) followed by the batch loop (batch.lua)."""
    return _lua(name) + _lua("batch")


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


def _recover_outcome(reply: list[Any]) -> RecoverOutcome | str:
    """The participant's id when the first step found it, else the refusal."""
    if reply[0] in (b"found", b"reissued"):
        return str(reply[1].decode())
    if reply[1] == b"rate_limited":
        return RecoveryRefused("rate_limited", max(1, int(reply[2])))
    return RecoveryRefused("invalid_credentials", 0)


def _rate_outcome(reply: list[Any]) -> RateOutcome:
    return Allowed() if reply[0] == b"allowed" else Limited(max(1, int(reply[1])))


def submit_outcome(reply: list[bytes]) -> SubmitOutcome:
    """The submission script's reply, read."""
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


Call = tuple[Script, tuple[str, ...], list[Any], "asyncio.Future[Any]"]
Groups = dict[tuple[Script, tuple[str, ...]], list[tuple[list[Any], "asyncio.Future[Any]"]]]


class Batcher:
    """Shares Redis round trips between concurrent requests: calls queue up, one writer task sends
    everything queued as ONE pipeline per server, with ONE script call per script and key set, plus
    the commands that make the replies durable (synced_commands), while the next batch gathers: the
    batch size follows the load and an idle system still answers at once. On a cluster each master
    has its own queue and writer: a shard that is slow (failing over, waiting for its replica)
    holds up only the requests it owns."""

    def __init__(self, client: Redis, *, durability: Durability, fsync_timeout_ms: int,
                 max_batch: int = 512) -> None:
        self._r = client
        self._cluster = client if isinstance(client, RedisCluster) else None  # isinstance on it is slow
        self._durability = durability
        self._fsync_timeout_ms = fsync_timeout_ms
        self._max_batch = max_batch
        self._queues: dict[str, list[Call]] = {}  # per lane: a cluster master's name, "" on one server
        self._writers: dict[str, asyncio.Task[None]] = {}
        self._stale_slots = False  # a cluster's slot map to refresh before the next batch
        self.batches = 0  # for the benchmarks: calls / batches = mean batch size
        self.calls = 0

    def call(self, script: Script, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """The script's reply for these keys and args, once its batch is written (and durable): a
        future to await (not a coroutine: one frame less to resume per request)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        lane = self._lane(keys[0])
        self._queues.setdefault(lane, []).append((script, tuple(keys), args, future))
        if lane not in self._writers:
            self._writers[lane] = asyncio.create_task(self._write(lane))
        return future

    def _lane(self, key: str) -> str:
        if self._cluster is None:
            return ""
        try:
            node = self._cluster.get_node_from_key(key)
        except RedisError:
            return "?"  # slot not covered now: its batch fails cleanly in _send_cluster
        return node.name if node is not None else "?"

    async def _write(self, lane: str) -> None:
        try:
            while queue := self._queues.get(lane):
                batch, self._queues[lane] = queue[:self._max_batch], queue[self._max_batch:]
                self.batches += 1
                self.calls += len(batch)
                try:
                    if self._cluster is not None:
                        await self._send_cluster(self._cluster, batch)
                    else:
                        await self._send(batch, self._pipeline)
                except Exception as e:  # a bug, not an outage: fail these requests, never leave them hanging
                    _fail(batch, e)
        finally:
            # No await between the empty-queue check and this line: a call arriving later
            # always finds no writer for its lane and starts one.
            del self._writers[lane]

    async def _send_cluster(self, cluster: RedisCluster, batch: list[Call]) -> None:
        """One pipeline per master (a lane's calls may span two after a slot moved), concurrently; a
        master's WAITAOF covers only its own writes."""
        if self._stale_slots:
            self._stale_slots = False
            try:
                await cluster.nodes_manager.initialize()
            except RedisError as e:
                self._stale_slots = True
                _fail(batch, StoreUnavailable(f"redis cluster: {e}"))
                return
        by_node: dict[str, tuple[ClusterNode, list[Call]]] = {}
        for call in batch:
            try:
                node = cluster.get_node_from_key(call[1][0])
            except RedisError as e:
                _fail([call], StoreUnavailable(f"redis cluster: {e}"))
                continue
            assert node is not None  # a primary always (replica=False)
            by_node.setdefault(node.name, (node, []))[1].append(call)
        await asyncio.gather(*(self._send(calls, functools.partial(self._node_pipeline, node))
                               for node, calls in by_node.values()))

    async def _send(self, batch: list[Call], pipeline: Callable[[Groups], Awaitable[list[Any]]]) -> None:
        groups: Groups = {}
        for script, keys, args, future in batch:
            groups.setdefault((script, keys), []).append((args, future))
        try:
            replies = await pipeline(groups)
            if any(isinstance(r, NoScriptError) for r in replies):  # Redis restarted: its script cache is empty
                await pipeline({(script, keys): [] for script, keys in groups})  # loads them (below)
                replies = await pipeline(groups)  # NOSCRIPT means nothing ran: safe to send again
            if any(isinstance(r, AskError) for r in replies):  # MOVED/ASK: a slot moved (a failover)
                self._stale_slots = True
        except StoreUnavailable as e:
            self._stale_slots = True
            _fail(batch, e)
            return
        if self._durability != "fsync_always":
            synced = replies.pop()
            if self._durability == "waitaof_replica":
                replies.pop()  # the WAIT that hurried the replica's ack (see _commands)
            replicas = 1 if self._durability == "waitaof_replica" else 0
            if isinstance(synced, Exception) or int(synced[0]) < 1 or int(synced[1]) < replicas:
                # Written but not known to be on disk (or on a replica's): acknowledge nothing. A
                # client retry of a submission gets the original receipt (idempotent).
                where = "a replica" if replicas and not isinstance(synced, Exception) and int(synced[0]) else "redis"
                _fail(batch, StoreUnavailable(f"{where} did not confirm the fsync in time"))
                return
        for items, reply in zip(groups.values(), replies, strict=True):
            if isinstance(reply, Exception):
                _fail(items, StoreUnavailable(f"redis script failed: {reply}"))
                continue
            for (_, future), answer in zip(items, reply, strict=True):
                if not future.done():  # else the request went away meanwhile
                    future.set_result(answer)

    def _commands(self, groups: Groups) -> list[tuple[Any, ...]]:
        """The batch's commands: SCRIPT LOAD for a group without items, else one EVALSHA per group."""
        commands: list[tuple[Any, ...]] = []
        for (script, key_names), items in groups.items():
            if not items:
                commands.append(("SCRIPT", "LOAD", script.source))
                continue
            argv: list[Any] = [len(items)]
            for args, _ in items:
                argv += [len(args), *args]
            commands.append(("EVALSHA", script.sha, len(key_names), *key_names, *argv))
        if self._durability != "fsync_always" and all(items for items in groups.values()):
            commands += synced_commands(self._durability, self._fsync_timeout_ms)
        return commands

    @translated
    async def _pipeline(self, groups: Groups) -> list[Any]:
        """The batch's commands in one write on one pooled connection, their replies read in order.
        The RESP is written here (resp()): redis-py's generic pipeline cost ~7 % of ingest's CPU
        (observability hooks, an encoder call per argument). Retried as the client's own commands
        are (its Retry: see connect()), the connection dropped before each retry."""
        assert isinstance(self._r, aioredis.Redis)
        commands = self._commands(groups)
        packed = resp(commands)
        pool = self._r.connection_pool
        conn = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            replies: list[Any] = await conn.retry.call_with_retry(lambda: _exchange(conn, packed, len(commands)),
                                                                  lambda _: conn.disconnect())
            return replies
        except BaseException:  # the last failure, or a cancel mid-reply: the connection is out of step
            await conn.disconnect()
            raise
        finally:
            await pool.release(conn)

    @translated
    async def _node_pipeline(self, node: ClusterNode, groups: Groups) -> list[Any]:
        """The batch's commands to one master on ONE connection (the cluster client's own pipeline
        would route the key-less WAITAOF to any node: it must follow the writes it waits for)."""
        commands = [PipelineCommand(i, *command) for i, command in enumerate(self._commands(groups))]
        await node.execute_pipeline(commands)
        return [c.result for c in commands]


async def _exchange(conn: aioredis.Connection, packed: bytes, replies: int) -> list[Any]:
    """Send `packed` and read its `replies`; a command's error reply stands in its place."""
    await conn.send_packed_command(packed, check_health=False)
    answers: list[Any] = []
    for _ in range(replies):
        try:
            answers.append(await conn.read_response())
        except ResponseError as e:
            answers.append(e)
    return answers


def resp(commands: list[tuple[Any, ...]]) -> bytes:
    """`commands` as RESP arrays of bulk strings (what any Redis client sends): bytes as they are,
    str in UTF-8, numbers in decimal."""
    parts: list[bytes] = []
    append = parts.append
    for command in commands:
        append(b"*%d\r\n" % len(command))
        for arg in command:
            data = arg if isinstance(arg, bytes) else (arg if isinstance(arg, str) else str(arg)).encode()
            append(b"$%d\r\n" % len(data))
            append(data)
            append(b"\r\n")
    return b"".join(parts)


def _fail(batch: Iterable[tuple[Any, ...]], error: Exception) -> None:
    """Fail every call of `batch` (tuples ending with the call's future) not answered yet."""
    for *_, future in batch:
        if not future.done():
            future.set_exception(error)


def synced_commands(durability: Durability, timeout_ms: int) -> list[tuple[Any, ...]]:
    """What follows a batch's writes on their connection so that its reply means durable: WAITAOF 1 0
    (this server's fsync), or with a replica WAITAOF 1 1 preceded by WAIT 1.

    Why the WAIT (measured: BENCHMARKS.md): a replica reports how far its AOF is fsynced only in its
    acks, and the ack WAITAOF asks for is answered before the replica's fsync of the same writes, so
    WAITAOF 1 1 alone waits for the replica's next once-a-second ack (~1 s a batch). The WAIT's ack
    round lets the replica (appendfsync always) fsync first; WAITAOF's own round then finds it done
    (~0.6 ms). Nothing is weakened: the reply still counts the replica's fsync."""
    if durability == "fsync_always":
        return []
    if durability == "waitaof":
        return [("WAITAOF", 1, 0, timeout_ms)]
    return [("WAIT", 1, timeout_ms), ("WAITAOF", 1, 1, timeout_ms)]


SCRIPTS = {name: Script(_script(name)) for name in
           ("register_keys", "register", "forget_keys", "start_attempt", "submit", "recover", "reissue", "rate",
            "append")}
LEASES = Script(_lua("renew_lease"))
RECOVERIES_PER_HOUR = 5  # per CCCD (DESIGN §6)


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
        outcome = _register_outcome(await self.batcher.call(
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
        return _start_outcome(await self.batcher.call(
            SCRIPTS["start_attempt"], [p.participants, p.access, p.disqualified, p.attempts(period), p.stream], args))

    async def reissue_access_key(self, id_hash: str, phone_hash: str, birth_hash: str, access_hash: str,
                                 event: bytes) -> RecoverOutcome:
        """CCCD and phone find the participant (contest slot, every try counted); its birth date then
        decides in its partition, where the new key hash and the event go."""
        k = self.keys
        found = _recover_outcome(await self.batcher.call(
            SCRIPTS["recover"], [k.id_hashes, k.phone_hashes, k.recoveries(id_hash)],
            [id_hash, phone_hash, RECOVERIES_PER_HOUR]))
        if not isinstance(found, str):
            return found
        p = k.of(found)
        done = _recover_outcome(await self.batcher.call(
            SCRIPTS["reissue"], [p.births, p.access, p.stream], [found, birth_hash, access_hash, event]))
        return KeyReissued(done) if isinstance(done, str) else done

    async def count_request(self, address_hash: str, now_ms: int, limit: int) -> RateOutcome:
        """One request of a client address against its per-minute limit."""
        return _rate_outcome(await self.batcher.call(
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
                last[number] = _text(await self.batcher.call(SCRIPTS["append"], [stream],
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
        return None if info is None else _text(info)


class LayoutMismatch(StoreUnavailable):
    """The contest's keys were written with another number of partitions."""


@translated
async def check_layout(client: Redis, keys: Keys) -> None:
    """Record the number of partitions on first use; refuse a process started with another (it would
    look for participants in the wrong partitions and leave streams unread)."""
    await client.set(keys.layout, keys.partitions, nx=True)
    recorded = int(await client.get(keys.layout) or keys.partitions)
    if recorded != keys.partitions:
        raise LayoutMismatch(f"contest {keys.slug!r} runs with {recorded} partitions, not {keys.partitions}:"
                             f" set CCHC_PARTITIONS={recorded} (the number cannot change during a contest)")


async def _each_server(client: Redis, action: Callable[[Any], Awaitable[R]], *, replicas: bool = False) -> list[R]:
    """`action` on every master of a cluster (and every replica with `replicas`), or on the one server."""
    if not isinstance(client, RedisCluster):
        return [await action({})]
    nodes = client.get_nodes() if replicas else client.get_primaries()
    return [await action({"target_nodes": node}) for node in nodes]


@translated
async def durability_mode(client: Redis) -> Durability:
    """How acks become durable: `appendfsync always`, else WAITAOF per write (needs AOF on), and with
    a replica behind every master, WAITAOF 1 1 (DESIGN §4: an ack then survives the master's death).
    Refuses a server that could lose what it acknowledged: without the AOF, or evicting keys under
    memory pressure (maxmemory-policy must be noeviction: a full server refuses writes, it drops nothing)."""

    async def config(target: dict[str, Any]) -> dict[str, Any]:
        conf: dict[Any, Any] = {**await client.config_get("append*", **target),
                                **await client.config_get("maxmemory-policy", **target)}
        if isinstance(client, RedisCluster) and conf and isinstance(next(iter(conf.values())), dict):
            conf = next(iter(conf.values()))  # the cluster client answers {node: config}
        return {_text(k): _text(v) for k, v in conf.items()}

    async def replicas(target: dict[str, Any]) -> int:
        info = await client.info("replication", **target)
        return int(info.get("connected_slaves", 0))

    for conf in await _each_server(client, config, replicas=True):  # a replica promoted must be as safe
        if conf.get("appendonly") != "yes":
            raise StoreUnavailable("redis must run with appendonly yes (and preferably appendfsync "
                                   "always): without the AOF an acknowledged entry can be lost")
        if conf.get("maxmemory-policy") != "noeviction":
            raise StoreUnavailable(f"redis must run with maxmemory-policy noeviction, not {conf.get('maxmemory-policy')}:"
                                   " an evicting server silently drops receipts, attempt counts and stream entries")
    if min(await _each_server(client, replicas)) >= 1:
        return "waitaof_replica"
    masters = await _each_server(client, config)
    return "fsync_always" if all(c.get("appendfsync") == "always" for c in masters) else "waitaof"


DURABILITY_SAID = {
    "fsync_always": "acks after the server's own fsync (appendfsync always); a lost server disk loses them",
    "waitaof": "acks after WAITAOF 1 0 (the server's fsync); a lost server disk loses them",
    "waitaof_replica": "acks after WAITAOF 1 1 (the master's fsync and one replica's): a master's death loses none",
}


@translated
async def watch_fsync_stalls(client: Redis, threshold_ms: int) -> None:
    """Ask every server to record events slower than `threshold_ms` (its latency monitor) and forget
    the ones before (for benchmarks: the disk's fsync stalls explain a tail latency)."""
    async def one(target: dict[str, Any]) -> None:
        await client.config_set("latency-monitor-threshold", threshold_ms, **target)
        await client.execute_command("LATENCY", "RESET", **target)
    await _each_server(client, one)


@translated
async def slowest_fsync_ms(client: Redis) -> int:
    """The slowest AOF fsync any server recorded since watch_fsync_stalls (0: none over the threshold)."""
    async def one(target: dict[str, Any]) -> int:
        latest = await client.execute_command("LATENCY", "LATEST", **target)
        return max((int(e[3]) for e in latest if _text(e[0]).startswith("aof-fsync")), default=0)
    return max(await _each_server(client, one))


@dataclass(frozen=True)
class Memory:
    used_bytes: int
    max_bytes: int  # 0: no limit set


@translated
async def memory(client: Redis) -> Memory:
    """The server's memory use against its limit; on a cluster, the fullest master's."""

    async def one(target: dict[str, Any]) -> Memory:
        info = await client.info("memory", **target)
        return Memory(int(info.get("used_memory", 0)), int(info.get("maxmemory", 0)))

    return max(await _each_server(client, one), key=lambda m: m.used_bytes / m.max_bytes if m.max_bytes else 0)


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


class StreamReader:
    """A scorer's view of the streams: read new or reclaimed entries for one consumer, ack them,
    hold leases on the streams it reads. Every method takes the stream numbers it works on."""

    def __init__(self, client: Redis, keys: Keys, consumer: str) -> None:
        self._r = client
        self.keys = keys
        self.consumer = consumer
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
            reply = await self._r.xreadgroup(GROUP, self.consumer, {self._stream(number): ">"}, count=count)
            if entries := self._entries(reply):
                return entries
        if block_ms:
            await asyncio.sleep(min(block_ms, 100) / 1000)
        return []

    @translated
    async def claim_idle(self, numbers: list[int], min_idle_ms: int, count: int) -> list[Entry]:
        """Entries delivered to consumers that died before acking (XAUTOCLAIM)."""
        out: list[Entry] = []
        for number in numbers:
            reply: Any = await self._r.xautoclaim(self._stream(number), GROUP, self.consumer, min_idle_ms, "0-0",
                                                  count=count)
            out += [(number, e, raw) for e, raw in _entries(reply[1])]  # reply[2]: ids deleted meanwhile
        return out

    @translated
    async def own_pending(self, numbers: list[int], count: int) -> list[Entry]:
        """Entries this consumer read but did not ack (a restart under the same name)."""
        if not isinstance(self._r, RedisCluster):
            return await self._read_group(numbers, count, None, "0")
        out: list[Entry] = []
        for number in numbers:  # one call per stream: they live on several masters
            reply: Any = await self._r.xreadgroup(GROUP, self.consumer, {self._stream(number): "0"}, count=count)
            out += self._entries(reply)
        return out

    async def _read_group(self, numbers: list[int], count: int, block_ms: int | None, start: str) -> list[Entry]:
        """One XREADGROUP over the streams `numbers` of one server, from `start` (">" new, "0" own pending).

        The command is named in bytes: redis-py then skips its reply callback, which turns every entry's
        field list into a dict (11 % of a scorer's time); the reply is read here as the server sent it,
        {stream: [[id, [field, value, …]], …]} (RESP3, redis-py's default) or [[stream, entries], …]."""
        assert isinstance(self._r, aioredis.Redis)  # a cluster reads stream by stream (its masters differ)
        args: list[Any] = [b"XREADGROUP", "GROUP", GROUP, self.consumer, "COUNT", count]
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
        return [(self._by_name[_text(name)], e, raw) for name, entries in reply for e, raw in _entries(entries)]

    @translated
    async def ack(self, entries: Iterable[Entry]) -> None:
        by_stream: dict[int, list[str]] = {}
        for number, entry_id, _ in entries:
            by_stream.setdefault(number, []).append(entry_id)
        for number, ids in by_stream.items():
            await self._r.xack(self._stream(number), GROUP, *ids)

    @translated
    async def deliveries(self, number: int, ids: list[str]) -> dict[str, int]:
        """How often each of `ids` (pending entries of stream `number`) has been delivered."""
        rows = await self._r.xpending_range(self._stream(number), GROUP, min(ids, key=entry_tuple),
                                            max(ids, key=entry_tuple), len(ids) * 2)
        return {_text(r["message_id"]): int(r["times_delivered"]) for r in rows}

    @translated
    async def dead_letter(self, entry: Entry, error: str) -> None:
        """Park an entry that cannot be scored, then ack it so it stops blocking the group."""
        number, entry_id, raw = entry
        await self._r.xadd(self.keys.slot(number).dead_letters, {"entry_id": entry_id, "raw": raw,
                                                                  "error": error[:2000]})
        await self.ack([entry])

    @translated
    async def dead_lettered(self) -> list[tuple[int, str, dict[str, bytes]]]:
        """Every parked entry: (stream number, dead-letter id, {entry_id, raw, error})."""
        out = []
        for slot in self.keys.slots:
            rows: Any = await self._r.xrange(slot.dead_letters)
            out += [(slot.number, _text(i), {_text(k): v for k, v in fields.items()}) for i, fields in rows]
        return out

    @translated
    async def requeue_dead_letter(self, number: int, dead_id: str, raw: bytes) -> str:
        """Append a parked entry to its stream again (a new id), then drop it from the parking."""
        slot = self.keys.slot(number)
        new_id = _text(await self._r.xadd(slot.stream, {EVENT_FIELD: raw}))
        await self._r.xdel(slot.dead_letters, dead_id)
        return new_id

    # -- liveness and leases -----------------------------------------------------------------------

    @translated
    async def beat(self, now_ms: int, keep_ms: int) -> None:
        """This scorer is alive; beats older than `keep_ms` (scorers long gone) are dropped."""
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.zadd(self.keys.heartbeats, {self.consumer: now_ms})
            pipe.zremrangebyscore(self.keys.heartbeats, "-inf", f"({now_ms - keep_ms}")
            await pipe.execute()

    @translated
    async def heartbeats(self) -> dict[str, int]:
        """consumer → last beat (ms) of every scorer that beat recently."""
        rows: Any = await self._r.zrange(self.keys.heartbeats, 0, -1, withscores=True)
        return {_text(name): int(score) for name, score in rows}

    @translated
    async def stop_beating(self) -> None:
        await self._r.zrem(self.keys.heartbeats, self.consumer)

    async def hold_leases(self, alive: int, ttl_ms: int) -> list[int]:
        """Renew this scorer's leases, take free ones and give back extras, so that each of the `alive`
        scorers holds its fair share of the streams; returns the streams it holds now."""
        return await self._leases(math.ceil(len(self.keys.numbers) / max(1, alive)), ttl_ms)

    async def release_leases(self) -> None:
        """Give back every lease this scorer holds (a graceful stop: others take over at once)."""
        await self._leases(0, 1)

    @translated
    async def _leases(self, fair: int, ttl_ms: int) -> list[int]:
        # EVAL with the source: a short script every few seconds; routed by its keys (the contest's slot).
        held = await self._r.eval(LEASES.source, len(self.keys.numbers),
                                  *[self.keys.lease(n) for n in self.keys.numbers], self.consumer, ttl_ms, fair)
        return [n for n, h in zip(self.keys.numbers, held, strict=True) if int(h)]

    @translated
    async def lease_owners(self) -> dict[int, str]:
        owners = await self._r.mget([self.keys.lease(n) for n in self.keys.numbers])
        return {n: _text(o) for n, o in zip(self.keys.numbers, owners, strict=True) if o is not None}

    # -- trimming, barriers, progress --------------------------------------------------------------

    @translated
    async def trim_acknowledged(self, number: int, *, approximate: bool = True) -> str | None:
        """Trim stream `number` below the oldest entry its group still needs (never XDEL).

        Acked means archived (the ack follows the commit), so only entries every group has
        acknowledged go; returns the MINID used, or None when nothing can go."""
        stream = self._stream(number)
        try:
            groups = await self._r.xinfo_groups(stream)
        except ResponseError:  # no stream yet
            return None
        if not groups:
            return None
        needs = []
        for group in groups:
            name = _text(group["name"])
            need = _next_id(_text(group["last-delivered-id"]))
            if int(group["pending"]):
                oldest = await self._r.xpending_range(stream, name, "-", "+", 1)
                need = min(need, entry_tuple(_text(oldest[0]["message_id"])))
            needs.append(need)
        floor = min(needs)
        minid = f"{floor[0]}-{floor[1]}"
        # LIMIT 0: an approximate trim otherwise removes at most 100 macro nodes' worth of entries per call
        # (10,000), fewer than a busy half minute appends — the stream would grow without bound (found
        # by `make soak`). Whole nodes go, so the call stays cheap.
        await self._r.xtrim(stream, minid=minid, approximate=approximate, limit=0 if approximate else None)
        return minid

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
            ids[number] = _text(info["last-generated-id"])
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
        group = next((g for g in groups if _text(g["name"]) == GROUP), None)
        if group is None:
            return last == "0-0"
        if entry_tuple(_text(group["last-delivered-id"])) < entry_tuple(last):
            return False
        return not await self._r.xpending_range(stream, GROUP, "-", last, 1)

    async def memory(self) -> Memory:
        """The server's memory use against its limit (the monitor's gauges, the memory alert)."""
        return await memory(self._r)

    @translated
    async def progress(self) -> StreamProgress:
        """Every stream's length, dead letters, lease and group progress (the monitor, `cchc status`)."""
        owners = await self.lease_owners()
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
        group = next((g for g in groups if _text(g["name"]) == GROUP), None)
        if group is None:
            return GroupProgress(slot.number, length, 0, None, length, dead, lease)
        after_delivered = "(" + _text(group["last-delivered-id"])
        pending = int(group["pending"])
        oldest: list[int] = []
        if pending:
            first = await r.xpending_range(stream, GROUP, "-", "+", 1)
            oldest.append(entry_tuple(_text(first[0]["message_id"]))[0])
        undelivered = await r.xrange(stream, min=after_delivered, count=1)
        if undelivered:
            oldest.append(entry_tuple(_text(undelivered[0][0]))[0])
        lag = group.get("lag")
        if lag is None:  # Redis cannot tell after a trim or a deletion: count what is left (bounded)
            lag = len(await r.xrange(stream, min=after_delivered, count=100_000) or [])
        return GroupProgress(slot.number, int(lag), pending, min(oldest) if oldest else None, length, dead, lease)


def _entries(raw: list[Any]) -> list[tuple[str, bytes]]:
    # An entry without our field (written by something else) decodes as poison, not a crash.
    return [(_text(entry_id), fields.get(EVENT_FIELD, b"")) for entry_id, fields in raw if fields is not None]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _next_id(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_tuple(entry_id)
    return ms, seq + 1
