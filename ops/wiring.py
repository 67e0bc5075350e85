"""Wiring: build each process's clients and components from one Settings object."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import redis.asyncio as aioredis
import structlog
from aiohttp import web
from prometheus_client import start_http_server
from psycopg_pool import AsyncConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from contest.load import load_contest
from contest.model import Contest
from eventstore.errors import StoreUnavailable
from eventstore.keys import Keys
from eventstore.postgres import migrate, open_pool
from eventstore.redis_stream import StreamReader, StreamWriter, durability_mode
from ingest import app as ingest_app
from ingest.pii import PiiVault
from ingest.tokens import TokenSigner
from ops.clock import Clock, SystemClock
from ops.monitor import Monitor
from ops.settings import Settings
from ops.web import APP_NAME, add_common_routes, error_middleware
from projections import results_api
from projections.apply import Projector
from projections.close import Closer
from projections.rank_cache import RankCache
from projections.store import Store
from scorer.worker import Scorer

log = structlog.get_logger()


def contest_of(settings: Settings) -> Contest:
    return load_contest(settings.contest_dir, anchor=settings.contest_anchor or datetime.now(UTC))


def redis_client(url: str) -> aioredis.Redis:
    """Bounded timeouts, so an outage becomes a 503 at once, never a request hanging; one immediate
    retry on a broken connection heals the pool after a Redis restart. (A write whose reply was lost
    may so run twice: a submission then answers with its original receipt.)"""
    return aioredis.from_url(url, socket_timeout=3.0, socket_connect_timeout=1.0, retry_on_timeout=False,
                             retry=Retry(NoBackoff(), 1), max_connections=256)


@dataclass
class Clients:
    redis: aioredis.Redis
    pool: AsyncConnectionPool

    async def ready(self) -> None:
        try:
            await self.redis.ping()
        except Exception as e:
            raise StoreUnavailable(f"redis: {e}") from e
        await Store(self.pool).ping()

    async def close(self) -> None:
        await self.redis.aclose()
        await self.pool.close()


async def open_clients(settings: Settings, *, pool_size: int = 8) -> Clients:
    redis_url, database_url = settings.require_servers()
    pool = open_pool(database_url, max_size=pool_size)
    await pool.open(wait=False)
    return Clients(redis_client(redis_url), pool)


async def build_ingest(contest: Contest, clients: Clients, settings: Settings, clock: Clock) -> ingest_app.Ingest:
    secret, admin_token, pii_key = settings.require_secrets()
    keys = Keys(contest.slug)
    durability = await durability_mode(clients.redis)
    reader = StreamReader(clients.redis, keys, "closer")
    return ingest_app.Ingest(
        contest=contest, writer=StreamWriter(clients.redis, keys, durability=durability),
        signer=TokenSigner(secret), vault=PiiVault(secret, pii_key), clock=clock, admin_token=admin_token,
        closer=Closer(contest, Store(clients.pool), reader, clock), ready=clients.ready)


def build_results(contest: Contest, clients: Clients, clock: Clock, *, rank_cache_s: float | None = 5.0
                  ) -> results_api.Results:
    """`rank_cache_s`: how stale live ranks and totals may be (None: counted in the database each time)."""
    store = Store(clients.pool)
    ranks = None if rank_cache_s is None else RankCache(contest, store, max_age_s=rank_cache_s)
    return results_api.Results(contest, store, clock, clients.ready, ranks)


def build_scorer(contest: Contest, clients: Clients, name: str) -> Scorer:
    reader = StreamReader(clients.redis, Keys(contest.slug), name)
    return Scorer(reader=reader, pool=clients.pool, projector=Projector(contest))


# -- one process each ---------------------------------------------------------------------------

def _preflight(settings: Settings) -> Contest:
    """Refuse to start, with a clear message, without secrets, servers or a valid contest."""
    settings.require_secrets()
    settings.require_servers()
    return contest_of(settings)


def serve_metrics(settings: Settings, port: int | None) -> None:
    """This process's /metrics on a port of its own (several processes may share an API port)."""
    if port:
        start_http_server(port, addr=settings.host)


def serve_ingest(settings: Settings, metrics_port: int | None = None) -> None:
    contest = _preflight(settings)
    serve_metrics(settings, metrics_port)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        clients = await open_clients(settings)
        await migrate(clients.pool)
        app[ingest_app.INGEST] = await build_ingest(contest, clients, settings, SystemClock())
        yield
        await clients.close()

    app = ingest_app.build_app(None, extra_ctx=[lifecycle])
    web.run_app(app, host=settings.host, port=settings.ingest_port, print=None, access_log=None,
                reuse_port=True)


def serve_results(settings: Settings, metrics_port: int | None = None) -> None:
    contest = _preflight(settings)
    serve_metrics(settings, metrics_port)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        clients = await open_clients(settings)
        await migrate(clients.pool)
        app[results_api.RESULTS] = build_results(contest, clients, SystemClock())
        monitor = Monitor(contest, clients.redis, Store(clients.pool), SystemClock())
        task = monitor.start(settings.monitor_interval_s)
        yield
        await monitor.stop(task)
        await clients.close()

    app = results_api.build_app(None, extra_ctx=[lifecycle])
    web.run_app(app, host=settings.host, port=settings.results_port, print=None, access_log=None,
                reuse_port=True)


def run_scorer(settings: Settings, name: str, *, metrics_port: int | None = None, stop_grace_s: float = 10.0) -> None:
    """Run one scorer until SIGTERM/SIGINT: it finishes the batch in hand and exits; a batch still
    running `stop_grace_s` later is abandoned (rolled back, redelivered to another scorer).
    With `metrics_port`, it serves /healthz, /readyz and /metrics there like every process."""
    contest = _preflight(settings)

    async def main() -> None:
        clients = await open_clients(settings, pool_size=2)
        runner = await _serve_health(settings, metrics_port, clients) if metrics_port else None
        try:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            log.info("scorer_started", consumer=name)
            worker = asyncio.create_task(build_scorer(contest, clients, name).run(stop))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait([worker, stopping], return_when=asyncio.FIRST_COMPLETED)
            try:
                await asyncio.wait_for(worker, stop_grace_s)
            except TimeoutError:
                log.error("scorer_stop_timeout", consumer=name, grace_s=stop_grace_s)
            stopping.cancel()
        finally:
            if runner is not None:
                await runner.cleanup()
            await clients.close()

    asyncio.run(main())


async def _serve_health(settings: Settings, port: int, clients: Clients) -> web.AppRunner:
    """/healthz, /readyz (Redis and PostgreSQL reachable) and /metrics for a process without an API."""
    app = web.Application(middlewares=[error_middleware])
    app[APP_NAME] = "scorer"

    async def ready(_: web.Request) -> None:
        await clients.ready()

    add_common_routes(app, ready, {"openapi": "3.1.0", "info": {"title": "cchc-scoring scorer", "version": "1"},
                                   "paths": {}})
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, port).start()
    return runner


def check_scorers(settings: Settings, name: str | None) -> int:
    """`cchc scorer --check`: 0 when the named scorer (or, without a name, any) beats now."""
    contest = _preflight(settings)

    async def main() -> int:
        redis_url, _ = settings.require_servers()
        client = redis_client(redis_url)
        try:
            beats = await StreamReader(client, Keys(contest.slug), "check").heartbeats()
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

