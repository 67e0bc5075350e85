"""The client: one server or a Valkey Cluster behind the same calls, driver errors translated, and the
server's own facts checked before a process relies on them (durability, memory, the partition layout)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from eventstore.errors import StoreUnavailable
from eventstore.keys import Keys

# How acks become durable: the server fsyncs every write itself; we wait for its fsync (WAITAOF 1 0);
# or we wait for its fsync and one replica's (WAITAOF 1 1: survives the master's death).
Durability = Literal["fsync_always", "waitaof", "waitaof_replica"]
Redis = aioredis.Redis | RedisCluster
P = ParamSpec("P")
R = TypeVar("R")
SOCKET_TIMEOUT_S = 3.0


def connect(url: str, *, max_connections: int = 256, socket_timeout_s: float = SOCKET_TIMEOUT_S) -> aioredis.Redis:
    """A client with bounded timeouts, so an outage becomes a 503 at once, never a request hanging;
    one immediate retry on a broken connection heals the pool after a Redis restart. (A write whose
    reply was lost so runs twice: every write answers its first run's reply — eventstore/lua/prelude.lua.)"""
    return aioredis.from_url(url, socket_timeout=socket_timeout_s, socket_connect_timeout=1.0,
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


class LayoutMismatch(StoreUnavailable):
    """The contest's keys were written with another number of partitions."""


@translated
async def clock_references(client: Redis) -> dict[str, Callable[[], Awaitable[int]]]:
    """The servers whose time a stamp is in (DESIGN §3 "One clock"), each with a call reading its `TIME` in
    ms: the one server (named ""), or each master of a cluster by its name (as Batcher names its lanes)."""
    if not isinstance(client, RedisCluster):
        return {"": translated(functools.partial(_time_ms, client, {}))}
    return {node.name: translated(functools.partial(_time_ms, client, {"target_nodes": node}))
            for node in client.get_primaries()}


async def _time_ms(client: Redis, target: dict[str, Any]) -> int:
    reply: Any = await client.execute_command("TIME", **target)
    seconds, micros = reply
    return int(seconds) * 1000 + int(micros) // 1000


@translated
async def check_layout(client: Redis, keys: Keys) -> None:
    """Record the number of partitions on first use; refuse a process started with another (it would
    look for participants in the wrong partitions and leave streams unread)."""
    await client.set(keys.layout, keys.partitions, nx=True)
    recorded = int(await client.get(keys.layout) or keys.partitions)
    if recorded != keys.partitions:
        raise LayoutMismatch(f"contest {keys.slug!r} runs with {recorded} partitions, not {keys.partitions}:"
                             f" set CCHC_PARTITIONS={recorded} (the number cannot change during a contest)")


async def each_server(client: Redis, action: Callable[[Any], Awaitable[R]], *, replicas: bool = False) -> list[R]:
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
        return {text(k): text(v) for k, v in conf.items()}

    async def replicas(target: dict[str, Any]) -> int:
        info = await client.info("replication", **target)
        return int(info.get("connected_slaves", 0))

    for conf in await each_server(client, config, replicas=True):  # a replica promoted must be as safe
        if conf.get("appendonly") != "yes":
            raise StoreUnavailable("redis must run with appendonly yes (and preferably appendfsync "
                                   "always): without the AOF an acknowledged entry can be lost")
        if conf.get("maxmemory-policy") != "noeviction":
            raise StoreUnavailable(f"redis must run with maxmemory-policy noeviction, not {conf.get('maxmemory-policy')}:"
                                   " an evicting server silently drops receipts, attempt counts and stream entries")
    if min(await each_server(client, replicas)) >= 1:
        return "waitaof_replica"
    masters = await each_server(client, config)
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
    await each_server(client, one)


@translated
async def latency_events(client: Redis) -> dict[str, list[int]]:
    """What every server's latency monitor recorded over its threshold since watch_fsync_stalls: each event's
    name (`aof-fsync-always`, `command`…) → the slowest of each second it happened in, ms (the last 160 s)."""
    async def one(target: dict[str, Any]) -> list[tuple[str, list[int]]]:
        names = [text(e[0]) for e in await client.execute_command("LATENCY", "LATEST", **target)]
        return [(name, [int(s[1]) for s in await client.execute_command("LATENCY", "HISTORY", name, **target)])
                for name in names]
    events: dict[str, list[int]] = {}
    for server in await each_server(client, one):
        for name, samples in server:
            events.setdefault(name, []).extend(samples)
    return events


async def slowest_fsync_ms(client: Redis) -> int:
    """The slowest AOF fsync any server recorded since watch_fsync_stalls (0: none over the threshold)."""
    events = await latency_events(client)
    return max((ms for name, samples in events.items() if name.startswith("aof-fsync") for ms in samples), default=0)


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

    return max(await each_server(client, one), key=lambda m: m.used_bytes / m.max_bytes if m.max_bytes else 0)




def text(value: Any) -> str:
    """A reply's bytes (or number) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)
