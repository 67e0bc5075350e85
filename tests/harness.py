"""A whole system in one event loop: the real ingest and results apps over HTTP, a drainable scorer."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import BaseRunner
from psycopg_pool import AsyncConnectionPool

from admin.service import Committee
from contest.model import Contest
from eventstore.keys import Keys
from eventstore.redis_stream.inspection import Streams
from ops.simulate import spelled
from ops.wiring import Clients, build_desk, build_desk_app, build_ingest_app, build_results, build_scorer
from results import app as results_app
from runtime.clock import ManualClock
from runtime.serve import Runner
from runtime.settings import Settings

ADMIN = "test-admin-token-of-the-committee-0001"
# CCHC_TEST_PARTITIONS=4 runs every test on a stream in 4 partitions (`make test-partitions`).
PARTITIONS = int(os.environ.get("CCHC_TEST_PARTITIONS", "1"))
SETTINGS = Settings(secret="test-secret-that-signs-attempt-tokens", admin_token=ADMIN,
                    pii_key=base64.b64encode(b"k" * 32).decode(), partitions=PARTITIONS)
HOUR = 3600.0


class Served(TestServer):
    """aiohttp's TestServer on the servers' own runner (runtime/serve.py: header deadline, fast routes);
    `runner_options` go to it (aiohttp's TestServer drops its constructor's)."""

    def __init__(self, app: web.Application, **runner_options: Any) -> None:
        super().__init__(app)
        self.runner_options = runner_options

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return Runner(self.app, **kwargs, **self.runner_options)


Client = TestClient[web.Request, web.Application]  # the apps' clients, over real sockets
WATCHDOG_S = 100.0  # pytest-timeout fails a test at 120 s (pyproject.toml), showing only the threads' stacks


async def _told_before_the_timeout(after_s: float) -> None:
    """A test still running after `after_s`: what each task of the loop awaits, to stderr, shown with the failure
    (a hang in CI then says where it waits; the threads' stacks pytest-timeout prints show only the loop polling)."""
    await asyncio.sleep(after_s)
    print(f"still running after {after_s} s; the event loop's tasks, each with its chain of awaits:", file=sys.stderr)
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            print(f"- {task.get_name()}: {' -> '.join(_awaits(task.get_coro()))}", file=sys.stderr)


def _awaits(coro: Any) -> list[str]:
    """Where a suspended coroutine stands, down its awaits (Task.get_stack gives one frame for a suspended one)."""
    where = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_name} ({Path(frame.f_code.co_filename).name}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return where


class System:
    def __init__(self, contest: Contest, clock: ManualClock, ingest: Client, results: Client,
                 clients: Clients, committee: Committee, desk: Client) -> None:
        self.contest = contest
        self.clock = clock
        self.ingest = ingest
        self.results = results
        self.desk = desk  # the committee's desk: the admin JSON routes and the pages
        self.clients = clients
        self.committee = committee
        self.scorers = [build_scorer(contest, clients, "test-scorer", clock)]
        self._people = 0
        self.access_keys: dict[str, str] = {}  # participant_id → its access key, as a front-end keeps it
        self.key = {q.id: q.answer for q in contest.questions.values()}
        self.settings = SETTINGS  # as the system runs (its backup directory: a temporary one)

    @classmethod
    @asynccontextmanager
    async def running(cls, contest: Contest, redis: aioredis.Redis, pool: AsyncConnectionPool,
                      settings: Settings = SETTINGS) -> AsyncIterator[System]:
        watchdog = asyncio.create_task(_told_before_the_timeout(WATCHDOG_S))
        try:
            with tempfile.TemporaryDirectory(prefix="cchc-test-backups-") as backups:  # the erasure log goes there
                async with cls._running(contest, redis, pool, replace(settings, backup_dir=Path(backups))) as s:
                    yield s
        finally:
            watchdog.cancel()

    @classmethod
    @asynccontextmanager
    async def _running(cls, contest: Contest, redis: aioredis.Redis, pool: AsyncConnectionPool,
                       settings: Settings) -> AsyncIterator[System]:
        clock = ManualClock(contest.periods[0].start_ms + int(HOUR * 1000))
        clients = Clients(redis, pool, Keys(contest.slug, settings.partitions))
        app = await build_ingest_app(contest, clients, settings, clock)
        door = await build_desk(contest, clients, settings, clock)
        committee = door.committee
        committee.closer.settle_ms, committee.closer.drain_timeout_s = 1000, 2.0  # tests move the clock themselves
        res = build_results(contest, clients, clock, rank_cache_s=None)  # exact: tests read right after writes
        committee.closer.read_paths.memo_s = res.fresh_s  # nothing shared to wait out (guarantee 9)
        async with TestClient(Served(app)) as ingest, \
                TestClient(Served(results_app.build_app(res))) as results, \
                TestClient(TestServer(build_desk_app(door, settings))) as desk:
            system = cls(contest, clock, ingest, results, clients, committee, desk)
            system.settings = settings
            yield system

    # -- ingest ------------------------------------------------------------------------------

    def person(self, **fields: Any) -> dict[str, Any]:
        """A valid registration body, unique per call."""
        self._people += 1
        n = self._people
        body = {"full_name": f"Nguyễn Văn {spelled(n)}", "id_number": f"0380{n:08d}", "phone": f"09{n:08d}",
                "birth_date": "1990-05-17", "group": "cbccvc", "unit_code": "A"}
        body.update(fields)
        return body

    async def get_admin(self, path: str) -> tuple[int, Any]:
        """GET an admin route of the desk with the admin token."""
        answer = await self.desk.get(path, headers=admin())
        return answer.status, await answer.json()

    async def post(self, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
        """POST to ingest."""
        answer = await self.ingest.post(path, json=body, **kw)
        return answer.status, await answer.json()

    async def admin_post(self, path: str, body: Any, **kw: Any) -> tuple[int, Any]:
        """POST an admin route of the desk (pass `headers=admin()` for the admin token)."""
        answer = await self.desk.post(path, json=body, **kw)
        return answer.status, await answer.json()

    async def register(self, **fields: Any) -> str:
        status, body = await self.post("/v1/participants", self.person(**fields))
        assert status == 201, body
        self.access_keys[body["participant_id"]] = body["access_key"]
        return str(body["participant_id"])

    def auth(self, participant_id: str) -> dict[str, str]:
        """The header a front-end sends to start an attempt for this participant."""
        return {"Authorization": f"Bearer {self.access_keys.get(participant_id, 'none')}"}

    async def attempt(self, participant_id: str) -> tuple[int, Any]:
        """POST /v1/attempts with the participant's access key."""
        return await self.post("/v1/attempts", {"participant_id": participant_id}, headers=self.auth(participant_id))

    async def start(self, participant_id: str) -> dict[str, Any]:
        status, body = await self.attempt(participant_id)
        assert status == 201, body
        return dict(body)

    def answers(self, attempt: dict[str, Any], correct: int) -> dict[str, str]:
        """Answer the first `correct` questions right and the rest wrong."""
        out = {}
        for i, q in enumerate(attempt["questions"]):
            right = self.key[q["id"]]
            out[q["id"]] = right if i < correct else "ABCD"[("ABCD".index(right) + 1) % 4]
        return out

    async def submit(self, attempt: dict[str, Any], correct: int, prediction: int = 0,
                     after: float = 60.0) -> dict[str, Any]:
        """Submit `after` seconds past the attempt's start (the clock moves there if it is earlier)."""
        target = _ms(attempt["started_at"]) + int(after * 1000)
        self.clock.ms = max(self.clock.ms, target)
        status, body = await self.post("/v1/submissions", {"token": attempt["token"],
                                                           "answers": self.answers(attempt, correct),
                                                           "prediction": prediction})
        assert status == 202, body
        return dict(body)

    async def entry(self, participant_id: str, correct: int, prediction: int = 0, after: float = 60.0
                    ) -> dict[str, Any]:
        return await self.submit(await self.start(participant_id), correct, prediction, after)

    async def drain(self) -> int:
        return sum([await s.drain() for s in self.scorers])

    async def close(self, number: int) -> dict[str, Any]:
        period = self.contest.period(number)
        assert period is not None
        self.clock.ms = max(self.clock.ms, period.end_ms + 5000)
        await self.drain()
        status, body = await self.admin_post(f"/v1/admin/periods/{number}/close", None, headers=admin())
        assert status == 200, body
        return dict(body)

    # -- results -----------------------------------------------------------------------------

    async def get(self, path: str) -> tuple[int, Any]:
        answer = await self.results.get(path)
        return answer.status, await answer.json()

    async def ok(self, path: str) -> Any:
        status, body = await self.get(path)
        assert status == 200, body
        return body

    async def count(self, table: str) -> int:
        async with self.clients.pool.connection() as conn:
            cur = await conn.execute(f"SELECT count(*) FROM {table}")
            row = await cur.fetchone()
            assert row is not None
            return int(row[0])

    @property
    def keys(self) -> Keys:
        assert self.clients.keys is not None
        return self.clients.keys

    @property
    def streams(self) -> Streams:
        """The streams seen from outside the consumer groups (barriers, progress, heartbeats, dead letters)."""
        return Streams(self.clients.redis, self.keys)

    async def stream_length(self) -> int:
        """Entries in every stream (the partitions' and the contest's)."""
        return sum([int(await self.clients.redis.xlen(slot.stream)) for slot in self.keys.slots])


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso).timestamp() * 1000)


def rng(seed: int) -> random.Random:
    return random.Random(seed)
