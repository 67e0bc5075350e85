"""Wiring: build each process's clients and components from one Settings object."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from wsgiref.simple_server import WSGIServer

import structlog
from aiohttp import web
from prometheus_client import start_http_server

from admin import app as desk_app
from admin import routes as desk_routes
from admin.erasure import Erasures
from admin.service import Committee
from admin.sessions import Sessions
from contest.load import load_contest
from contest.model import Contest
from eventstore import postgres
from eventstore.erasure_log import ErasureLog
from eventstore.errors import StoreError, StoreUnavailable
from eventstore.keys import Keys
from eventstore.pii import PiiVault
from eventstore.redis_stream import client as redis_client
from eventstore.redis_stream.client import DURABILITY_SAID, check_layout, clock_references, durability_mode
from eventstore.redis_stream.consumer import Consumer
from eventstore.redis_stream.desk import DeskStore
from eventstore.redis_stream.inspection import Streams
from eventstore.redis_stream.leases import Leases
from eventstore.redis_stream.personal import AofRewriter
from eventstore.redis_stream.writer import StreamWriter
from ingest import app as ingest_app
from ingest.tokens import TokenSigner
from ops.monitor import Monitor
from ops.restore import rewind_after_restore
from projections.apply import Projector
from projections.close import Closer
from projections.live_queries import LiveQueries
from projections.rank_cache import RankCache
from projections.results_queries import ResultsQueries
from projections.visibility import RESULTS_MEMO_S, ReadPaths
from results import api as results_api
from results import app as results_app
from runtime import metrics, serve
from runtime.clock import Clock, SyncedClock, SystemClock, keep_in_step
from runtime.cpu import lower_own_priority
from runtime.routes import add_routes, common_routes
from runtime.settings import Settings
from runtime.web import APP_NAME, api_middleware
from scorer.worker import Scorer

log = structlog.get_logger()


def contest_of(settings: Settings) -> Contest:
    """The contest; in a rehearsal (`cchc up --rehearsal`) its calendar starts at the stack's anchor time."""
    anchor = settings.contest_anchor or datetime.now(UTC)
    contest = load_contest(settings.contest_dir, anchor=anchor)
    return contest.rehearse(int(anchor.timestamp() * 1000)) if settings.rehearsal else contest


def keys_of(contest: Contest, settings: Settings) -> Keys:
    return Keys(contest.slug, settings.partitions)


@dataclass
class Clients:
    redis: redis_client.Redis
    pool: postgres.Pool
    keys: Keys  # the contest's keys (its partitions), the layout checked against Redis by open_clients
    replica: bool = False  # the pool reads a PostgreSQL replica (CCHC_DATABASE_READ_URL)

    async def redis_ready(self) -> None:
        await redis_client.ping(self.redis)

    async def ready(self) -> float | None:
        """Both servers reachable; with a read replica, its staleness (also a gauge)."""
        await self.redis_ready()
        await postgres.ping(self.pool)
        if not self.replica:
            return None
        staleness = await postgres.replica_staleness(self.pool)
        metrics.REPLICA_STALENESS.set(staleness or 0.0)
        return staleness

    async def close(self) -> None:
        await self.redis.aclose()
        await self.pool.close()


READ_STATEMENT_TIMEOUT_MS = 5000  # the results API: a read slower than this is cut off (503), not queued behind
MONITOR_STATEMENT_TIMEOUT_MS = 120_000  # the monitor's counts: background work, never a person waiting


def _database_url(settings: Settings, *, reader: bool) -> str:
    """The primary's URL, or with `reader` CCHC_DATABASE_READ_URL when set (a streaming replica)."""
    _, database_url = settings.require_servers()
    return settings.database_read_url if reader and settings.database_read_url else database_url


async def open_clients(settings: Settings, contest: Contest, *, pool_size: int = 8,
                       statement_timeout_ms: int | None = None, autocommit: bool = False,
                       reader: bool = False, committee: bool = False) -> Clients:
    """Redis (its cluster client when the URL names a cluster node) and a pool on the primary, or with
    `reader` on CCHC_DATABASE_READ_URL when set; the contest's partition layout checked against Redis.
    `committee`: the desk's and the committee's commands' sessions (postgres.COMMITTEE_SETTINGS)."""
    redis_url, database_url = settings.require_servers()
    url = _database_url(settings, reader=reader)
    pool = postgres.open_pool(url, max_size=pool_size, statement_timeout_ms=statement_timeout_ms,
                              autocommit=autocommit, committee=committee,
                              nice=settings.committee_nice if committee else 0)
    await pool.open(wait=False)
    redis = await redis_client.open_client(redis_url)
    clients = Clients(redis, pool, keys_of(contest, settings), replica=url != database_url)
    try:
        await check_layout(redis, clients.keys)
    except redis_client.LayoutMismatch:
        await clients.close()
        raise
    except StoreUnavailable:
        pass  # Redis down: the process starts and reports it (/readyz), as before
    return clients


async def build_ingest(contest: Contest, clients: Clients, settings: Settings, clock: Clock) -> ingest_app.Ingest:
    """Ingest's own parts: Redis only (its /readyz does not depend on PostgreSQL)."""
    durability = await durability_mode(clients.redis)
    log.info("ingest_durability", durability=durability, means=DURABILITY_SAID[durability],
             partitions=clients.keys.partitions, cluster=redis_client.is_cluster(clients.redis))
    writer = StreamWriter(clients.redis, clients.keys, durability=durability)
    return ingest_app.Ingest(contest=contest, writer=writer, signer=TokenSigner(*settings.token_secrets()),
                             vault=PiiVault(settings.pii_key_bytes()), clock=clock, ready=clients.redis_ready,
                             address_limit=settings.address_limit, trusted_proxies=settings.trusted_proxies,
                             erasure_log=ErasureLog(settings.backups), aof=AofRewriter(clients.redis),
                             results_url=settings.public_results_url())


@asynccontextmanager
async def store_clock(clients: Clients) -> AsyncIterator[SyncedClock]:
    """This process's clock in the store's time (DESIGN §3 "one clock"): read once before it is used, then
    every second while the context lasts."""
    clock = SyncedClock()

    async def references() -> dict[str, Callable[[], Awaitable[int]]]:
        return await clock_references(clients.redis)

    with contextlib.suppress(StoreUnavailable):  # down now: the readings go stale, check() refuses until back
        for name, ask in (await references()).items():
            for _ in range(3):  # the best of three: one slow reading on a busy start does not refuse for a second
                await clock.measure(name, ask)
    task = asyncio.create_task(keep_in_step(clock, references), name="clock")
    try:
        yield clock
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def build_committee(contest: Contest, clients: Clients, writer: StreamWriter, clock: Clock,
                    settings: Settings, *, aof: AofRewriter | None = None) -> Committee:
    # A close answers once the results API serves it: on the replica it reads, if any (guarantee 9).
    closer = Closer(contest, clients.pool, Streams(clients.redis, clients.keys), clock,
                    read_paths=ReadPaths(clients.pool, replica_url=settings.database_read_url))
    vault = PiiVault(settings.pii_key_bytes()) if settings.pii_key else None  # the CLI's closes need none
    erasures = Erasures(contest, writer, clients.pool, clock, log=ErasureLog(settings.backups), aof=aof)
    return Committee(contest, writer, closer, clock, vault=vault, desk=DeskStore(clients.redis, clients.keys),
                     retention_s=max(1, settings.retention_days * 86_400), erasures=erasures)


async def build_ingest_app(contest: Contest, clients: Clients, settings: Settings, clock: Clock) -> web.Application:
    """The ingest app (in-process: tests, benchmarks); it serves no /v1/admin/ route (the desk does)."""
    ingest = await build_ingest(contest, clients, settings, clock)
    return ingest_app.build_app(ingest, body_timeout_s=settings.body_timeout_s, fast_path=settings.fast_path,
                                allowed_origins=settings.allowed_origins)


async def build_desk(contest: Contest, clients: Clients, settings: Settings, clock: Clock) -> desk_routes.Door:
    """The committee's service behind the desk's doors: its JSON routes and its pages."""
    writer = StreamWriter(clients.redis, clients.keys, durability=await durability_mode(clients.redis))
    committee = build_committee(contest, clients, writer, clock, settings, aof=AofRewriter(clients.redis))
    sessions = Sessions(DeskStore(clients.redis, clients.keys), settings.admin_token_names(),
                        PiiVault(settings.pii_key_bytes()), clock, settings.trusted_proxies,
                        secure=not settings.desk_insecure)
    return desk_routes.Door(committee, sessions, settings.data_dir / "desk", clients.ready)


def build_desk_app(door: desk_routes.Door, settings: Settings) -> web.Application:
    return desk_app.build_app(door, body_timeout_s=settings.body_timeout_s)


def build_results(contest: Contest, clients: Clients, clock: Clock, *, rank_cache_s: float | None = 5.0
                  ) -> results_api.Results:
    """`rank_cache_s`: how stale live ranks and totals may be (None: counted in the database each time)."""
    live = LiveQueries(clients.pool)
    ranks = None if rank_cache_s is None else RankCache(contest, live, clock, max_age_s=rank_cache_s)
    return results_api.Results(contest, live, ResultsQueries(clients.pool), clock, clients.ready, ranks,
                               fresh_s=0.0 if rank_cache_s is None else RESULTS_MEMO_S)


def build_scorer(contest: Contest, clients: Clients, name: str, clock: Clock, *, wait_for_archive: bool = True
                 ) -> Scorer:
    return Scorer(consumer=Consumer(clients.redis, clients.keys, name), leases=Leases(clients.redis, clients.keys, name),
                  pool=clients.pool, projector=Projector(contest), clock=clock, wait_for_archive=wait_for_archive)


def build_monitor(contest: Contest, clients: Clients, clock: Clock, pool: postgres.Pool | None = None) -> Monitor:
    """`pool`: the one its reads go through (default: the clients')."""
    pool = pool or clients.pool
    return Monitor(contest, Streams(clients.redis, clients.keys), LiveQueries(pool), ResultsQueries(pool), clock)


def open_monitor_pool(settings: Settings) -> postgres.Pool:
    """The results process's monitor's connection: its counts of the periods' entries take seconds of the
    database at 1 M (every minute while a period is open, and at once when one closes: beside the close), so
    they yield the CPU as the committee's work does (CCHC_COMMITTEE_NICE) and are not cut off at the public
    reads' limit. On the replica when there is one, as the results' reads."""
    return postgres.open_pool(_database_url(settings, reader=True), max_size=1, name="cchc-monitor",
                              statement_timeout_ms=MONITOR_STATEMENT_TIMEOUT_MS, autocommit=True,
                              nice=settings.committee_nice)


# -- one process each ---------------------------------------------------------------------------

def _preflight(settings: Settings, *, ingest: bool = False, desk: bool = False) -> Contest:
    """Refuse to start, with a clear message, without servers, a valid contest, or (ingest and the desk
    only: no other process holds a secret) the secrets."""
    if ingest:
        settings.require_ingest_secrets()
    if desk:
        settings.require_desk_secrets()
    settings.require_servers()
    return contest_of(settings)


def serve_metrics(settings: Settings, port: int | None) -> WSGIServer | None:
    """This process's /metrics on a port of its own (several processes may share an API port), bound to
    CCHC_METRICS_HOST (loopback unless set): never on the public port, whose clients must not read the
    live counts (DESIGN §3). prometheus_client's own thread: a scrape answers even while the loop is busy."""
    if not port:
        return None
    server, _ = start_http_server(port, addr=settings.metrics_host)
    return server


def serve_ingest(settings: Settings, metrics_port: int | None = None) -> None:
    contest = _preflight(settings, ingest=True)
    serve_metrics(settings, metrics_port)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        # No migration here: the write side starts and takes entries with PostgreSQL down; `cchc up` /
        # `cchc migrate` create the schema. It opens no pool: the committee's work is the desk's.
        clients = await open_clients(settings, contest, pool_size=1)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(clients.close)
            clock = await stack.enter_async_context(store_clock(clients))
            # e.g. Redis without AOF: refuses to start, leaving no pool connecting behind
            app[ingest_app.INGEST] = await build_ingest(contest, clients, settings, clock)
            yield

    app = ingest_app.build_app(None, extra_ctx=[lifecycle], body_timeout_s=settings.body_timeout_s,
                               fast_path=settings.fast_path, allowed_origins=settings.allowed_origins)
    serve.run(app, settings.host, settings.ingest_port, header_timeout_s=settings.body_timeout_s,
              event_loop=settings.event_loop)


def serve_desk(settings: Settings, metrics_port: int | None = None) -> None:
    """The committee's desk (DESIGN §6b): its JSON routes and pages; closes and exports run here, in a
    process of its own, with its own clock in the store's time (a close waits on it)."""
    contest = _preflight(settings, desk=True)
    if settings.committee_nice > 0:  # its own Python, every thread, yields with its backends (runtime.cpu)
        lower_own_priority(settings.committee_nice)
    serve_metrics(settings, metrics_port)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        # An export takes four connections at once (three slices of the ranking, the flags): two beside a page.
        clients = await open_clients(settings, contest, pool_size=10, committee=True)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(clients.close)
            clock = await stack.enter_async_context(store_clock(clients))
            app[desk_routes.DOOR] = door = await build_desk(contest, clients, settings, clock)
            yield
            for job in door.committee.jobs.values():  # a close still running is abandoned (rolled back)
                if job.task is not None:
                    job.task.cancel()

    app = desk_app.build_app(None, extra_ctx=[lifecycle], body_timeout_s=settings.body_timeout_s)
    serve.run(app, settings.host, settings.desk_port, header_timeout_s=settings.body_timeout_s,
              event_loop=settings.event_loop)


def serve_results(settings: Settings, metrics_port: int | None = None) -> None:
    contest = _preflight(settings)
    serve_metrics(settings, metrics_port)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        clients = await open_clients(settings, contest, statement_timeout_ms=READ_STATEMENT_TIMEOUT_MS,
                                     autocommit=True, reader=True)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(clients.close)
            if not settings.database_read_url:  # a replica is read-only: `cchc migrate` runs on the primary
                await postgres.migrate(clients.pool, [p.number for p in contest.periods])
            app[results_api.RESULTS] = build_results(contest, clients, SystemClock())
            background = open_monitor_pool(settings)
            await background.open(wait=False)
            stack.push_async_callback(background.close)
            monitor = build_monitor(contest, clients, SystemClock(), background)
            stack.push_async_callback(monitor.stop, monitor.start(settings.monitor_interval_s))
            yield

    app = results_app.build_app(None, extra_ctx=[lifecycle])
    serve.run(app, settings.host, settings.results_port, header_timeout_s=settings.body_timeout_s,
              event_loop=settings.event_loop)


def run_scorer(settings: Settings, name: str, *, metrics_port: int | None = None) -> None:
    """One scorer until SIGTERM/SIGINT (its lifecycle is the Scorer's own). With `metrics_port`, it
    serves /healthz, /readyz and /metrics there like every process."""
    contest = _preflight(settings)

    async def main() -> None:
        clients = await open_clients(settings, contest, pool_size=4)  # three batches in flight, the health check
        runner = await _serve_health(settings, metrics_port, clients) if metrics_port else None
        try:
            with contextlib.suppress(StoreError):  # after a restore: the groups rewound first (`cchc up` did it)
                await rewind_after_restore(clients.redis, clients.pool, clients.keys)
            await build_scorer(contest, clients, name, SystemClock(), wait_for_archive=settings.archive_check).serve()
        finally:
            if runner is not None:
                await runner.cleanup()
            await clients.close()

    asyncio.run(main())


async def _serve_health(settings: Settings, port: int, clients: Clients) -> web.AppRunner:
    """/healthz, /readyz (Redis and PostgreSQL reachable) and /metrics for a process without an API, on its
    metrics port (CCHC_METRICS_HOST)."""
    app = web.Application(middlewares=[api_middleware()])
    app[APP_NAME] = "scorer"

    async def ready(_: web.Request) -> float | None:
        return await clients.ready()

    add_routes(app, common_routes("cchc-scoring scorer", ready, metrics_port=True))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.metrics_host, port).start()
    return runner


def check_scorers(settings: Settings, name: str | None) -> int:
    """`cchc scorer --check`: 0 when the named scorer (or, without a name, any) beats now."""
    contest = _preflight(settings)

    async def main() -> int:
        redis_url, _ = settings.require_servers()
        client = await redis_client.open_client(redis_url)
        try:
            beats = await Streams(client, keys_of(contest, settings)).heartbeats()
        finally:
            await client.aclose()
        now = SystemClock().now_ms()
        for consumer, ms in sorted(beats.items()):
            print(f"{consumer}: last beat {(now - ms) / 1000:.1f} s ago")
        alive = name in beats if name else bool(beats)
        if not alive:
            print(f"no heartbeat from {name or 'any scorer'}")
        return 0 if alive else 1

    return asyncio.run(main())
