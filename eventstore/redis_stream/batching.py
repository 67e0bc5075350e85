"""Shared round trips: concurrent requests' script calls go out together, one pipeline per server,
followed by what makes their replies durable (Batcher); their read-only scripts the same way, with nothing
to wait for (Reads)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, PipelineCommand, RedisCluster
from redis.exceptions import AskError, NoScriptError, RedisError, ResponseError

from eventstore.errors import StoreUnavailable
from eventstore.redis_stream.client import Durability, Redis, translated
from eventstore.redis_stream.scripts import Script

Call = tuple[Script, tuple[str, ...], list[Any], "asyncio.Future[Any]"]
Groups = dict[tuple[Script, tuple[str, ...]], list[tuple[list[Any], "asyncio.Future[Any]"]]]
Pipeline = Callable[[Groups, bool], Awaitable[list[Any]]]  # (groups, with their scripts' source) → replies


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
        lane = self.lane(keys[0])
        self._queues.setdefault(lane, []).append((script, tuple(keys), args, future))
        if lane not in self._writers:
            self._writers[lane] = asyncio.create_task(self._write(lane))
        return future

    def lane(self, key: str) -> str:
        """The lane (a cluster master's name, "" on one server) that writes `key`: also the name of the
        server whose clock a write of that key is stamped in (runtime/clock.py)."""
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

    async def _send(self, batch: list[Call], pipeline: Pipeline) -> None:
        groups: Groups = {}
        for script, keys, args, future in batch:
            groups.setdefault((script, keys), []).append((args, future))
        try:
            replies = await self._durable(pipeline, groups, with_source=False)
            # NOSCRIPT (the server restarted, or its scripts were flushed) means that group did not run;
            # the groups that did run are answered, and only the others are sent again, with their source.
            missing = {g: items for (g, items), reply in zip(groups.items(), replies, strict=True)
                       if isinstance(reply, NoScriptError)}
            if missing:
                again = iter(await self._durable(pipeline, missing, with_source=True))
                replies = [next(again) if isinstance(r, NoScriptError) else r for r in replies]
            if any(isinstance(r, AskError) for r in replies):  # MOVED/ASK: a slot moved (a failover)
                self._stale_slots = True
        except StoreUnavailable as e:
            self._stale_slots = True
            _fail(batch, e)
            return
        for items, reply in zip(groups.values(), replies, strict=True):
            if isinstance(reply, Exception):
                _fail(items, StoreUnavailable(f"redis script failed: {reply}"))
                continue
            for (_, future), answer in zip(items, reply, strict=True):
                if not future.done():  # else the request went away meanwhile
                    future.set_result(answer)

    async def _durable(self, pipeline: Pipeline, groups: Groups, *, with_source: bool) -> list[Any]:
        """The groups' replies once the server says they are durable, else StoreUnavailable: written but
        not known to be on disk (or on a replica's), so nothing is acknowledged — a retry of the same write
        answers its kept reply (write records, prelude.lua)."""
        replies = await pipeline(groups, with_source)
        if self._durability == "fsync_always":
            return replies
        synced = replies.pop()
        if self._durability == "waitaof_replica":
            replies.pop()  # the WAIT that hurried the replica's ack (see synced_commands)
        replicas = 1 if self._durability == "waitaof_replica" else 0
        if isinstance(synced, Exception) or int(synced[0]) < 1 or int(synced[1]) < replicas:
            where = "a replica" if replicas and not isinstance(synced, Exception) and int(synced[0]) else "redis"
            raise StoreUnavailable(f"{where} did not confirm the fsync in time")
        return replies

    def _commands(self, groups: Groups, with_source: bool) -> list[tuple[Any, ...]]:
        """The batch's commands: one EVALSHA per group (EVAL with the source when the server lacks it),
        then the commands that make the replies durable."""
        commands: list[tuple[Any, ...]] = []
        for (script, key_names), items in groups.items():
            argv: list[Any] = [len(items)]
            for args, _ in items:
                argv += [len(args), *args]
            command = ("EVAL", script.source) if with_source else ("EVALSHA", script.sha)
            commands.append((*command, len(key_names), *key_names, *argv))
        return commands + synced_commands(self._durability, self._fsync_timeout_ms)

    @translated
    async def _pipeline(self, groups: Groups, with_source: bool) -> list[Any]:
        """The batch's commands in one write on one pooled connection, their replies read in order.
        The RESP is written here (resp()): redis-py's generic pipeline cost ~7 % of ingest's CPU
        (observability hooks, an encoder call per argument). Retried as the client's own commands
        are (its Retry: see connect()), the connection dropped before each retry: a batch whose reply was
        lost runs again, and every write in it answers its first run's reply (prelude.lua, submit.lua)."""
        assert isinstance(self._r, aioredis.Redis)
        return await pipelined(self._r, self._commands(groups, with_source))

    @translated
    async def _node_pipeline(self, node: ClusterNode, groups: Groups, with_source: bool) -> list[Any]:
        """The batch's commands to one master on ONE connection (the cluster client's own pipeline
        would route the key-less WAITAOF to any node: it must follow the writes it waits for)."""
        commands = [PipelineCommand(i, *command) for i, command in enumerate(self._commands(groups, with_source))]
        await node.execute_pipeline(commands)
        return [c.result for c in commands]


async def pipelined(client: aioredis.Redis, commands: list[tuple[Any, ...]]) -> list[Any]:
    """`commands` in one write on one pooled connection, their replies read in order (a command's error reply
    in its place), retried as the client's own commands are, the connection dropped before each retry."""
    packed = resp(commands)
    pool = client.connection_pool
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


class Reads:
    """Shares round trips between concurrent read-only scripts on one server: the reads queued while one
    pipeline is out go together in the next (EVALSHA each; EVAL with the source for those the server lacks).
    Each read alone cost a pooled connection's round trip through redis-py's generic command path: ~400 µs
    of ingest a GET /v1/attempts/current at 1,000/s (BENCHMARKS.md). A read run twice is harmless."""

    def __init__(self, client: aioredis.Redis, *, max_batch: int = 256) -> None:
        self._r = client
        self._max_batch = max_batch
        self._queue: list[tuple[Script, list[str], list[Any], asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None

    def call(self, script: Script, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        return future

    async def _write(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:self._max_batch], self._queue[self._max_batch:]
                try:
                    await self._send(batch)
                except RedisError as e:
                    _fail(batch, StoreUnavailable(f"redis: {e}"))
                except Exception as e:  # a bug, not an outage: fail these reads, never leave them hanging
                    _fail(batch, e)
        finally:
            self._writer = None  # no await since the empty-queue check: a later call starts a writer

    async def _send(self, batch: list[tuple[Script, list[str], list[Any], asyncio.Future[Any]]]) -> None:
        replies = await pipelined(self._r, [("EVALSHA", script.sha, len(keys), *keys, *args)
                                            for script, keys, args, _ in batch])
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # the server restarted, or its scripts were flushed: those again, with their source
            again = await pipelined(self._r, [("EVAL", batch[i][0].source, len(batch[i][1]), *batch[i][1],
                                               *batch[i][2]) for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        for (*_, future), reply in zip(batch, replies, strict=True):
            if future.done():  # the request went away meanwhile
                continue
            if isinstance(reply, Exception):
                future.set_exception(StoreUnavailable(f"redis script failed: {reply}"))
            else:
                future.set_result(reply)


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


