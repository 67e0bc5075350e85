"""The Monday 08:00 peak's journeys as a browser on the quiz page makes them, on one asyncio loop: the requests
of one locust worker's share of the arrivals, each reported on stdout for locust's statistics.

Run by loadtests/locustfile.py (one per locust worker process), never by hand:

    CCHC_LOAD_* … python -m loadtests.journeys

Arrivals are an open model: Poisson, at the rate the stages give, whatever the answers' speed (thinning,
Lewis & Shedler; arrival times are absolute, so a generator that falls behind catches up at once). Each is a
task of its own: a submission journey, an abandoned attempt, a registration, or a results read (a standing, a
leaderboard page). Journeys follow the quiz page (ingest/static/quiz.js) with a browser's cache per
participant: the page and GET /v1/contest revalidated with If-None-Match (a 304 once seen), the hashed assets
fetched once and never again; /thi asks GET /v1/attempts/current, the start carries an Idempotency-Key, some
attempts are resumed (a reload, or another device), and a submission is sent again on a network error, 408,
429 or 5xx with the page's backoff (capped at 5 s). Deliberate refusals (429, 503) are reported apart under
the request type REFUSED.

Each request is one line on stdout, tab-separated: request type, name, response time (ms), response length,
and the failure ("" for a success); lines go out in blocks every 100 ms.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import random
import re
import signal
import sys
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from loadtests.lean_http import Answer, Http
from loadtests.shape import ContestLoad, Stage, peak_run, rate_at
from ops.simulate import spelled
from runtime import collector

THINK_S = (1.0, 3.0)  # a short think: the attempt-start rate follows the submission rate at once
VIA_HOME = 0.30  # journeys that come through the landing page (its HTML and GET /v1/contest) before /thi
RELOADS = 0.10  # journeys whose page is reloaded mid-attempt (the attempt resumes from the device)
OTHER_DEVICE = 0.05  # journeys resumed on another device (GET /v1/attempts/current)
SUBMIT_TRIES = 12  # the page sends again until answered; at 5 s apart this is a minute
RETRYABLE = {0, 408, 429, 500, 502, 503, 504}  # 0: no answer (a network error)
REFUSALS = (429, 503)
ASSET = re.compile(rb'(?:href|src)="(/static/[^"]+)"')
JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Settings:
    """What loadtests/run.py and the locustfile hand a worker's journeys (CCHC_LOAD_*)."""

    ingest: str
    results: str
    rate: float  # submissions/s held, over all workers
    ramp_s: float
    hold_s: float
    workers: int
    index: int  # this worker's share: every `workers`-th participant of the pool, from `index`
    pool: str
    run: int  # which run of the stack this is (newcomers' identities)
    group: str
    unit: str
    start: float  # the run's start, time.time(): the stages count from it
    load: ContestLoad = field(default_factory=ContestLoad)

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(env["CCHC_LOAD_HOST"], env.get("CCHC_LOAD_RESULTS", "http://127.0.0.1:8081"),
                   float(env.get("CCHC_LOAD_RATE", "463")), float(env.get("CCHC_LOAD_RAMP_S", "20")),
                   float(env.get("CCHC_LOAD_HOLD_S", "60")), int(env.get("CCHC_LOAD_WORKERS", "2")),
                   int(env.get("CCHC_LOAD_INDEX", "0")), env.get("CCHC_LOAD_POOL", ""),
                   int(env.get("CCHC_LOAD_RUN", "0")), env.get("CCHC_LOAD_GROUP", "cbccvc"),
                   env.get("CCHC_LOAD_UNIT", ""), float(env.get("CCHC_LOAD_START", str(time.time()))),
                   ContestLoad(standings_per_submission=float(env.get("CCHC_LOAD_STANDINGS", "1.0")),
                               leaderboards_per_submission=float(env.get("CCHC_LOAD_LEADERBOARDS", "0.5"))))

    @property
    def stages(self) -> list[Stage]:
        return run_stages(self.rate, self.ramp_s, self.hold_s)


def run_stages(rate: float, ramp_s: float, hold_s: float) -> list[Stage]:
    """The ramp and the hold, then a few seconds without arrivals: the journeys in flight finish and count."""
    end = ramp_s + hold_s
    return [*peak_run(rate, ramp_s=ramp_s, hold_s=hold_s), Stage(end, end + 5, 0.0)]


class Report:
    """Each request as a line for locust's statistics, written in blocks to `out` — a transport that never blocks
    the loop: were locust's worker slow to read, a full pipe would stop every journey (their timeouts all firing at
    once when it drains, then a burst of late arrivals)."""

    def __init__(self, out: asyncio.WriteTransport) -> None:
        self.out = out
        self.lines: list[str] = []

    def add(self, kind: str, name: str, ms: float, length: int, failure: str = "") -> None:
        self.lines.append(f"{kind}\t{name}\t{ms:.3f}\t{length}\t{failure.replace(chr(9), ' ').replace(chr(10), ' ')}\n")

    def flush(self) -> None:
        if self.lines:
            self.out.write("".join(self.lines).encode())
            self.lines.clear()

    async def drained(self, timeout_s: float = 10.0) -> None:
        """Everything written has left for the reader (or `timeout_s` passed)."""
        deadline = time.monotonic() + timeout_s
        while self.out.get_write_buffer_size() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)


class Journeys:
    def __init__(self, settings: Settings, report: Report) -> None:
        self.s = settings
        self.report = report
        self.ingest = Http(settings.ingest)
        self.results = Http(settings.results)
        self.rng = random.Random()
        self.people: deque[dict[str, Any]] = deque()
        if settings.pool:
            lines = Path(settings.pool).read_text().splitlines()
            self.people.extend(json.loads(line) for line in lines[settings.index::settings.workers])
        self.newcomers = itertools.count()
        self.caches: dict[str, dict[str, str]] = {}  # participant → its browser's ETags (path → ETag)
        self.consent: dict[str, Any] | None = None
        self.warm: dict[str, str] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    # -- requests, reported ---------------------------------------------------------------------------

    async def _call(self, http: Http, method: str, path: str, *, headers: dict[str, str] | None = None,
                    body: Any = None) -> tuple[Answer | None, float, str]:
        """The answer (None: no answer at all, and why), its time in ms; reported by the caller."""
        data = None if body is None else msgspec.json.encode(body)
        started = time.perf_counter()
        try:
            answer = await http.request(method, path, headers={**JSON, **(headers or {})} if data else headers,
                                        body=data)
        except Exception as e:  # HttpError, TimeoutError, and whatever else: a request is never lost unreported
            return None, (time.perf_counter() - started) * 1000, f"0 no answer: {str(e) or type(e).__name__}"
        return answer, (time.perf_counter() - started) * 1000, ""

    def _judged(self, method: str, name: str, answer: Answer | None, ms: float, ok: tuple[int, ...],
                why: str = "") -> bool:
        """Report `answer`: a status in `ok` is a success, 429/503 a deliberate refusal (a success, counted apart
        under REFUSED), anything else a failure, and no answer at all one too."""
        if answer is None:
            self.report.add(method, name, ms, 0, why)
            return False
        if answer.status in ok:
            self.report.add(method, name, ms, len(answer.body))
            return True
        if answer.status in REFUSALS:
            self.report.add(method, name, ms, len(answer.body))
            self.report.add("REFUSED", f"{name} {answer.status}", 0, 0)
            return False
        self.report.add(method, name, ms, len(answer.body), f"{answer.status} {answer.body[:120]!r}")
        return False

    async def _post(self, path: str, body: Any, name: str, ok: int, headers: dict[str, str] | None = None) -> Any:
        answer, ms, why = await self._call(self.ingest, "POST", path, headers=headers, body=body)
        if self._judged("POST", name, answer, ms, (ok,), why):
            assert answer is not None
            return msgspec.json.decode(answer.body)
        return None

    async def _get(self, path: str, name: str) -> None:
        """GET from the results app."""
        answer, ms, why = await self._call(self.results, "GET", path)
        self._judged("GET", name, answer, ms, (200,), why)

    # -- a browser's cache ----------------------------------------------------------------------------

    async def _cached_get(self, cache: dict[str, str], path: str, name: str) -> Answer | None:
        """GET as a browser with a cache: If-None-Match once it holds the ETag; 200 or 304 is success."""
        headers = {"Accept-Encoding": "gzip"}
        if path in cache:
            headers["If-None-Match"] = cache[path]
        answer, ms, why = await self._call(self.ingest, "GET", path, headers=headers)
        if not self._judged("GET", name, answer, ms, (200, 304), why):
            return None
        assert answer is not None
        if answer.status == 200 and answer.headers.get("ETag"):
            cache[path] = answer.headers["ETag"]
        return answer

    async def _view(self, cache: dict[str, str], path: str, *, contest: bool) -> None:
        """A view of the quiz page: the HTML (revalidated), its assets the first time only (their names carry
        their hash: cached for a year), and GET /v1/contest, which the script asks on every view but /thi."""
        first = path not in cache
        page = await self._cached_get(cache, path, "page")
        if page is not None and first and page.status == 200:
            for asset in ASSET.findall(_plain(page)):
                if asset.decode() not in cache:
                    await self._cached_get(cache, asset.decode(), "asset")
        summary = await self._cached_get(cache, "/v1/contest", "contest") if contest else None
        if self.consent is None and summary is not None and summary.status == 200:
            privacy = json.loads(_plain(summary))["privacy"]
            self.consent = {"consent": {"version": privacy["version"]}} if privacy else {}

    def _browser(self, person: dict[str, Any]) -> dict[str, str]:
        cache = self.caches.get(person["participant_id"])
        if cache is None:
            cache = self.caches[person["participant_id"]] = dict(self.warm)
        return cache

    # -- journeys -------------------------------------------------------------------------------------

    def _person(self) -> dict[str, Any] | None:
        if not self.people:
            return None
        person = self.people.popleft()
        self.people.append(person)  # round robin: each person's attempts spread over the run
        return person

    async def _start(self) -> Any:
        """Open /thi (nothing open on the device: it asks the server), then Bắt đầu làm bài."""
        person = self._person()
        if person is None:
            return None
        auth = {"Authorization": f"Bearer {person['access_key']}"}
        cache = self._browser(person)
        if self.rng.random() < VIA_HOME:
            await self._view(cache, "/", contest=True)
        await self._view(cache, "/thi", contest=False)
        await self._current(auth)
        key = base64.urlsafe_b64encode(os.urandom(18)).decode()
        attempt = await self._post("/v1/attempts", {"participant_id": person["participant_id"]}, "start attempt",
                                   201, {**auth, "Idempotency-Key": key})
        if attempt is not None:
            attempt["_auth"], attempt["_cache"] = auth, cache
        return attempt

    async def _current(self, auth: dict[str, str]) -> None:
        """GET /v1/attempts/current: 404 (none open) is the usual answer, and a success."""
        answer, ms, why = await self._call(self.ingest, "GET", "/v1/attempts/current", headers=auth)
        self._judged("GET", "current attempt", answer, ms, (200, 404), why)

    async def _submit(self) -> None:
        attempt = await self._start()
        if attempt is None:
            return
        await asyncio.sleep(self.rng.uniform(*THINK_S))
        chance = self.rng.random()
        if chance < RELOADS:  # a reload: the page again, the attempt from the device
            await self._view(attempt["_cache"], "/thi", contest=False)
        elif chance < RELOADS + OTHER_DEVICE:  # another device: a fresh cache, the attempt from the server
            await self._view({}, "/thi", contest=False)
            await self._current(attempt["_auth"])
        answers = {q["id"]: self.rng.choice("ABCD") for q in attempt["questions"]}
        body = {"token": attempt["token"], "answers": answers, "prediction": self.rng.randint(0, 100_000)}
        for n in range(1, SUBMIT_TRIES + 1):  # the page's rule: again after a transient failure, backing off
            answer, ms, why = await self._call(self.ingest, "POST", "/v1/submissions", body=body)
            status, length = (0, 0) if answer is None else (answer.status, len(answer.body))
            if status in (200, 202):
                self.report.add("POST", "submit", ms, length)
                return
            if status not in RETRYABLE or n == SUBMIT_TRIES:
                self.report.add("POST", "submit", ms, length, why or f"{status} {answer.body[:120]!r}" if answer else why)
                return
            self.report.add("POST", "submit", ms, length)  # sent again: a refusal, counted apart
            self.report.add("REFUSED", f"submit {status}", 0, 0)
            retry_after = 0.0
            if answer is not None:
                try:
                    retry_after = float(answer.headers.get("Retry-After") or 0)
                except ValueError:
                    retry_after = 0.0
            await asyncio.sleep(min(5.0, max(retry_after, 0.5 * 2 ** (n - 1))) * self.rng.uniform(0.8, 1.2))

    async def _abandon(self) -> None:
        await self._start()

    async def _register(self) -> None:
        """The registration page, then its form: consent and an Idempotency-Key, as the page sends them."""
        n = next(self.newcomers)
        cache: dict[str, str] = {}
        await self._view(cache, "/dang-ky", contest=True)
        run, index = self.s.run % 10, self.s.index % 10  # unique across runs of one stack and its workers
        body = {"full_name": f"Người Đến Sau {spelled(n)}", "id_number": f"9{run}{index}{n:09d}",
                "phone": f"08{run}{index}{n:06d}", "birth_date": "1990-05-17", "group": self.s.group,
                "unit_code": self.s.unit or None, **(self.consent or {})}
        key = base64.urlsafe_b64encode(os.urandom(18)).decode()
        created = await self._post("/v1/participants", body, "register", 201, {"Idempotency-Key": key})
        if created is not None:
            self.caches[created["participant_id"]] = cache
            self.people.append(created)

    async def _standing(self) -> None:
        person = self._person()
        if person is not None:
            await self._get(f"/v1/periods/1/participants/{person['participant_id']}", "standing")

    async def _leaderboard(self) -> None:
        await self._get(f"/v1/periods/1/leaderboard?group={self.s.group}&limit=50", "leaderboard")

    # -- arrivals -------------------------------------------------------------------------------------

    async def run(self) -> None:
        # Participants registered earlier in the week on their phone: its cache already holds the page, the
        # contest summary and the assets (fetched here once, as any of them did then).
        for path in ("/", "/thi"):
            await self._view(self.warm, path, contest=True)
        collector.settle()  # the people and their browsers' caches are here: the collector set as the servers'
        stages, load, workers = self.s.stages, self.s.load, self.s.workers
        top = max(stage.rate for stage in stages)
        shares = load.mix(top / workers).arrivals()
        highest = sum(shares.values())
        kinds = [getattr(self, f"_{kind}") for kind in shares]
        cumulative = list(itertools.accumulate(shares.values()))
        t0 = time.monotonic() - (time.time() - self.s.start)  # the run's start on this clock
        next_at = time.monotonic()
        while True:
            next_at += self.rng.expovariate(highest)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            rate = rate_at(stages, next_at - t0)
            if rate is None:
                break
            # The mix is the same at every rate (shape.Mix: each kind a fixed share of the submissions), so a
            # candidate is kept with probability rate / top and its kind drawn from the shares at the top.
            if self.rng.random() * top >= rate:
                continue
            kind = self.rng.choices(kinds, cum_weights=cumulative)[0]
            task = asyncio.ensure_future(kind())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        if self.tasks:  # the journeys in flight (bounded by their timeouts and the submit's retries)
            await asyncio.wait(self.tasks, timeout=90)
        self.ingest.close()
        self.results.close()


def _plain(answer: Answer) -> bytes:
    """A body as sent, gunzipped when it came compressed (the client asked for gzip)."""
    if answer.headers.get("Content-Encoding") == "gzip":
        return zlib.decompress(answer.body, 16 + zlib.MAX_WBITS)
    return answer.body


async def _main() -> None:
    out, _ = await asyncio.get_running_loop().connect_write_pipe(asyncio.Protocol, sys.stdout)
    report = Report(out)
    journeys = Journeys(Settings.from_env(), report)

    async def flush() -> None:
        while True:
            await asyncio.sleep(0.1)
            report.flush()

    flusher = asyncio.ensure_future(flush())
    try:
        await journeys.run()
    finally:
        flusher.cancel()
        report.flush()
        await asyncio.shield(report.drained())  # also when cancelled (SIGTERM): the last lines go out


if __name__ == "__main__":
    from runtime.serve import new_event_loop  # the servers' loop: uvloop (libuv), the leanest here

    loop = new_event_loop("uvloop")
    main = loop.create_task(_main())
    loop.add_signal_handler(signal.SIGTERM, main.cancel)  # locust's stop: the report flushed, then exit 0
    with contextlib.suppress(asyncio.CancelledError):
        loop.run_until_complete(main)
