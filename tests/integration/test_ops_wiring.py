"""The wiring: the write side stands on Redis alone; the committee's routes are the desk's, not ingest's."""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from contest.model import Contest
from eventstore.keys import Keys
from eventstore.postgres import Pool, open_pool
from ops.wiring import Clients, build_desk, build_desk_app, build_ingest_app, open_monitor_pool
from runtime.clock import ManualClock
from runtime.cpu import is_local_backend, server_of
from tests.conftest import Servers
from tests.harness import HOUR, SETTINGS, admin


async def test_ingest_takes_entries_while_postgresql_is_down(redis: aioredis.Redis, contest: Contest) -> None:
    dead = open_pool("postgresql://nobody@127.0.0.1:1/nothing")  # never opened: every use fails at once
    clock = ManualClock(contest.periods[0].start_ms + int(HOUR * 1000))
    clients = Clients(redis, dead, Keys(contest.slug))
    app = await build_ingest_app(contest, clients, SETTINGS, clock)
    desk_app = build_desk_app(await build_desk(contest, clients, SETTINGS, clock), SETTINGS)
    async with TestClient(TestServer(app)) as ingest, TestClient(TestServer(desk_app)) as desk:
        assert (await ingest.get("/readyz")).status == 200
        person = {"full_name": "Trần Thị Bình", "id_number": "038090001234", "phone": "0912345678",
                  "birth_date": "1990-05-17", "group": "cbccvc", "unit_code": "A"}
        registered = await ingest.post("/v1/participants", json=person)
        assert registered.status == 201
        credentials = await registered.json()
        attempt = await ingest.post("/v1/attempts", json={"participant_id": credentials["participant_id"]},
                                    headers={"Authorization": f"Bearer {credentials['access_key']}"})
        assert attempt.status == 201
        clock.ms = contest.periods[0].end_ms + 60_000
        for path in ("/v1/admin/periods/1/close", "/v1/admin/disqualifications", "/v1/admin/answer-key"):
            answer = await ingest.post(path, headers=admin())  # DESIGN §6: no close on the loop that times entries
            assert answer.status == 404, path
        assert (await ingest.get("/v1/admin/periods/1/flags", headers=admin())).status == 404
        closing = await desk.post("/v1/admin/periods/1/close", headers=admin())
        assert closing.status == 503 and (await closing.json())["error"]["code"] == "unavailable"


def test_metrics_are_served_on_the_metrics_port_bound_to_loopback() -> None:
    """DESIGN §3: /metrics (the live counts) only on a process's --metrics-port, on 127.0.0.1 unless
    CCHC_METRICS_HOST says otherwise; the public ports answer 404 (test_projections_results_api)."""
    import dataclasses
    import urllib.request

    from ops.embedded import free_port
    from ops.wiring import serve_metrics

    assert SETTINGS.metrics_host == "127.0.0.1"
    assert serve_metrics(SETTINGS, None) is None
    port = free_port()
    server = serve_metrics(dataclasses.replace(SETTINGS, host="0.0.0.0"), port)  # the public host is not used
    assert server is not None
    try:
        assert server.server_address[0] == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            assert answer.status == 200 and b"cchc_http_requests_total" in answer.read()
    finally:
        server.shutdown()
        server.server_close()


async def test_the_committees_sessions_sort_in_memory_and_yield_the_cpu_when_asked(servers: Servers) -> None:
    """The committee's sessions sort and group a period in memory, not in temporary files on the disk ingest's
    fsyncs wait on, hand their bulk writes to the disk as they go, and with CCHC_COMMITTEE_NICE their backends run
    at a lower CPU priority; the others keep the server's defaults."""
    for committee, expected in ((False, ["4MB", "64MB", "8MB", "0", "5s"]),
                                (True, ["64MB", "256MB", "256MB", "256kB", "5s"])):
        pool = open_pool(servers[1], max_size=1, committee=committee, statement_timeout_ms=5000,
                         nice=10 if committee else 0)  # as open_clients passes CCHC_COMMITTEE_NICE=10
        shown, nice, group_nice = await _session_of(pool, ("work_mem", "maintenance_work_mem", "temp_buffers",
                                                           "backend_flush_after", "statement_timeout"))
        assert shown == expected
        # the committee's backends yield the CPU to the write path (this host's server; runtime.cpu)
        if nice is not None:  # a server on another host keeps its own priorities
            assert nice == (10 if committee else 0)
            assert group_nice in ((None, "10") if committee else (None, "0"))


async def test_the_monitors_counts_yield_the_cpu_as_the_committees_work_does(servers: Servers) -> None:
    """The results process's monitor counts every open period's entries (seconds at 1 M, and beside a close when a
    period's status changes): on a connection of its own at the committee's niceness, with a limit of its own."""
    pool = open_monitor_pool(replace(SETTINGS, redis_url=servers[0], database_url=servers[1], committee_nice=10))
    shown, nice, _ = await _session_of(pool, ("statement_timeout",))
    assert shown == ["2min"]  # not the public reads' 5 s
    if nice is not None:  # this host's server
        assert nice == 10


async def _session_of(pool: Pool, settings: tuple[str, ...]) -> tuple[list[str], int | None, str | None]:
    """The pool's session (opened, then closed): the settings it shows, its backend's niceness and its session's
    under autogroup (None: not a backend of this host, or no autogroup), read while the session is open (a closed
    pool's backend is gone a moment later: reading it after the close failed once with no such process)."""
    await pool.open()
    try:
        async with pool.connection() as conn:
            shown = [(await (await conn.execute(f"SHOW {name}")).fetchone() or ("",))[0] for name in settings]
            backend = conn.info.backend_pid
            if not is_local_backend(conn.info.host, backend, conn.info.user, conn.info.dbname):
                return shown, None, None
            autogroup = Path(f"/proc/{backend}/autogroup")
            group_nice = autogroup.read_text().split()[-1] if autogroup.exists() else None
            return shown, os.getpriority(os.PRIO_PROCESS, backend), group_nice
    finally:
        await pool.close()


async def test_a_yielding_committee_sessions_parallel_workers_yield_too(servers: Servers) -> None:
    """A parallel query of a lowered backend forks its helpers from the server at the server's priority, each in
    a session of its own: they are lowered as they appear (runtime.cpu.lower_parallel_workers)."""
    pool = open_pool(servers[1], max_size=1, committee=True, nice=10)
    await pool.open()
    try:
        async with pool.connection() as conn:
            backend = conn.info.backend_pid
            if not is_local_backend(conn.info.host, backend, conn.info.user, conn.info.dbname):
                pytest.skip("the server runs on another host")
            await conn.execute("SET debug_parallel_query = on")  # the whole plan in a worker, whatever its size
            query = asyncio.create_task(conn.execute("SELECT count(*) FROM generate_series(1, 100000000)"))
            seen: list[int] = []
            try:
                for _ in range(100):
                    await asyncio.sleep(0.05)
                    seen = [pid for pid in _server_children(backend)
                            if f"parallel worker for PID {backend}".encode() in _title(pid)
                            and os.getpriority(os.PRIO_PROCESS, pid) == 10 and _session_nice(pid) in (None, "10")]
                    if seen:
                        break
            finally:
                conn.cancel()
                with contextlib.suppress(psycopg.errors.QueryCanceled):
                    await query
                await conn.rollback()
    finally:
        await pool.close()
    assert seen, "no parallel worker of the lowered backend ran at its niceness"


def _server_children(backend: int) -> list[int]:
    server = server_of(backend)
    assert server is not None
    children = Path(f"/proc/{server}/task/{server}/children")
    if not children.exists():
        pytest.skip("this kernel does not list a process's children (CONFIG_PROC_CHILDREN)")
    return [int(pid) for pid in children.read_text().split()]


def _session_nice(pid: int) -> str | None:
    """The niceness of `pid`'s session under Linux's autogroup (`/autogroup-12 nice 10`); None without it."""
    try:
        return Path(f"/proc/{pid}/autogroup").read_text().split()[-1]
    except OSError:
        return None


def _title(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
