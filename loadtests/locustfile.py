"""The Monday 08:00 peak as an open model: arrivals at a rate computed from the contest's parameters
(loadtests/shape.py), whatever the answers' speed, so a slow server cannot lower the offered load.

One user per locust worker process; each offers its share of the rate as Poisson arrivals, every
arrival a greenlet of its own: a submission journey, an abandoned attempt, a registration, or a results
read (a standing, a leaderboard page). Journeys follow the quiz page (ingest/static/quiz.js) as a browser
runs it, with a browser's cache per participant: the page and GET /v1/contest revalidated with
If-None-Match (a 304 once seen), the hashed assets fetched once and never again; /thi asks
GET /v1/attempts/current, the start carries an Idempotency-Key, some attempts are resumed (a reload, or
another device), and a submission is sent again on a network error, 408, 429 or 5xx with the page's backoff
(capped at 5 s). Deliberate refusals (429, 503) are counted apart under the request type REFUSED. Run by
loadtests/run.py, which sets CCHC_LOAD_*, hands each worker its share of pre-registered participants and
judges the SLOs from the CSV stats.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import re
import time
from collections import deque
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, LoadTestShape, constant, task
from locust.contrib.fasthttp import FastHttpSession
from locust.exception import StopUser
from locust.runners import WorkerRunner

from loadtests.shape import ContestLoad, Stage, peak_run, rate_at
from ops.simulate import spelled

RESULTS = os.environ.get("CCHC_LOAD_RESULTS", "http://127.0.0.1:8081")
RATE = float(os.environ.get("CCHC_LOAD_RATE", "463"))  # submissions/s held
RAMP_S = float(os.environ.get("CCHC_LOAD_RAMP_S", "20"))
HOLD_S = float(os.environ.get("CCHC_LOAD_HOLD_S", "60"))
WORKERS = int(os.environ.get("CCHC_LOAD_WORKERS", "2"))
POOL = os.environ.get("CCHC_LOAD_POOL", "")
RUN = int(os.environ.get("CCHC_LOAD_RUN", "0"))  # which run of the stack this is (newcomers' identities)
GROUP = os.environ.get("CCHC_LOAD_GROUP", "cbccvc")
UNIT = os.environ.get("CCHC_LOAD_UNIT", "")
THINK_S = (1.0, 3.0)  # a short think: the attempt-start rate follows the submission rate at once
VIA_HOME = 0.30  # journeys that come through the landing page (its HTML and GET /v1/contest) before /thi
RELOADS = 0.10  # journeys whose page is reloaded mid-attempt (the attempt resumes from the device)
OTHER_DEVICE = 0.05  # journeys resumed on another device (GET /v1/attempts/current)
SUBMIT_TRIES = 12  # the page sends again until answered; at 5 s apart this is a minute
RETRYABLE = {0, 408, 429, 500, 502, 503, 504}  # 0: no answer (a network error)
ASSET = re.compile(rb'(?:href|src)="(/static/[^"]+)"')
# After the hold, no new arrivals for a few seconds: the journeys in flight (thinking) finish and count.
STAGES: list[Stage] = [*peak_run(RATE, ramp_s=RAMP_S, hold_s=HOLD_S), Stage(RAMP_S + HOLD_S, RAMP_S + HOLD_S + 5, 0.0)]
LOAD = ContestLoad(standings_per_submission=float(os.environ.get("CCHC_LOAD_STANDINGS", "1.0")),
                   leaderboards_per_submission=float(os.environ.get("CCHC_LOAD_LEADERBOARDS", "0.5")))
REFUSALS = (429, 503)
HIGHEST = sum(LOAD.mix(max(stage.rate for stage in STAGES) / WORKERS).arrivals().values())  # per worker, at the top


class Arrivals(FastHttpUser):
    concurrency = 2000  # connections this user's greenlets may hold at once (an open model needs many)
    connection_timeout = 10.0
    network_timeout = 10.0
    wait_time = constant(0)

    def on_start(self) -> None:
        runner = self.environment.runner
        self.index = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        self.rng = random.Random()
        self.people: deque[dict[str, Any]] = deque()
        if POOL:
            lines = Path(POOL).read_text().splitlines()
            self.people.extend(json.loads(line) for line in lines[self.index::WORKERS])
        self.newcomers = itertools.count()
        self.caches: dict[str, dict[str, str]] = {}  # participant → its browser's ETags (path → ETag)
        self.consent: dict[str, Any] | None = None
        # Participants registered earlier in the week on their phone: its cache already holds the page, the
        # contest summary and the assets (fetched here once, as any of them did then).
        self.warm: dict[str, str] = {}
        for path in ("/", "/thi"):
            self._view(self.warm, path, contest=True)
        # The results app is another host: a session of its own, with as many connections as the ingest one
        # (one shared pool would queue the reads behind a handful of connections, on the generator's side).
        self.results = FastHttpSession(RESULTS, self.environment.events.request, self, concurrency=self.concurrency,
                                       network_timeout=self.network_timeout,
                                       connection_timeout=self.connection_timeout)
        self.t0 = self.next_at = time.monotonic()

    @task
    def arrive(self) -> None:
        """The next arrival of a Poisson process whose rate follows the stages: candidates come at the
        highest rate and each is kept with probability rate(t) / highest (thinning, Lewis & Shedler)."""
        # Arrival times are absolute: a generator that falls behind (a busy CPU) catches up at once,
        # so the offered count does not shrink with its scheduling delays.
        self.next_at += self.rng.expovariate(HIGHEST)
        gevent.sleep(max(0.0, self.next_at - time.monotonic()))
        rate = rate_at(STAGES, self.next_at - self.t0)
        if rate is None:
            raise StopUser
        arrivals = LOAD.mix(rate / WORKERS).arrivals()
        total = sum(arrivals.values())
        if self.rng.random() * HIGHEST >= total:
            return
        kind = self.rng.choices(list(arrivals), weights=list(arrivals.values()))[0]
        gevent.spawn(getattr(self, f"_{kind}"))

    # -- journeys ---------------------------------------------------------------------------------

    def _person(self) -> dict[str, Any] | None:
        if not self.people:
            return None
        person = self.people.popleft()
        self.people.append(person)  # round robin: each person's attempts spread over the run
        return person

    def _post(self, path: str, body: Any, name: str, ok: int, headers: dict[str, str] | None = None) -> Any:
        """POST and judge: `ok` is success, 429/503 a deliberate refusal (counted apart), else a failure."""
        with self.client.post(path, json=body, name=name, headers=headers or {}, catch_response=True) as r:
            if r.status_code == ok:
                return r.json()
            if r.status_code in REFUSALS:
                r.success()
                self._refused(name, r.status_code)
                return None
            r.failure(f"{r.status_code} {r.text[:120]}")
            return None

    def _get(self, path: str, name: str) -> None:
        """GET from the results app: 429/503 are refusals (counted apart), any other non-200 a failure."""
        with self.results.get(path, name=name, catch_response=True) as r:
            if r.status_code in REFUSALS:
                r.success()
                self._refused(name, r.status_code)
            elif r.status_code != 200:
                r.failure(f"{r.status_code}")

    def _refused(self, name: str, status: int) -> None:
        self.environment.events.request.fire(request_type="REFUSED", name=f"{name} {status}", response_time=0,
                                             response_length=0, exception=None, context={})

    # -- a browser's cache -----------------------------------------------------------------------------

    def _cached_get(self, cache: dict[str, str], path: str, name: str) -> Any:
        """GET as a browser with a cache: If-None-Match once it holds the ETag; 200 or 304 is success."""
        headers = {"Accept-Encoding": "gzip"}
        if path in cache:
            headers["If-None-Match"] = cache[path]
        with self.client.get(path, name=name, headers=headers, catch_response=True) as r:
            if r.status_code in (200, 304):
                if r.status_code == 200 and r.headers.get("ETag"):
                    cache[path] = r.headers["ETag"]
                return r
            if r.status_code in REFUSALS:
                r.success()
                self._refused(name, r.status_code)
            else:
                r.failure(f"{r.status_code}")
            return None

    def _view(self, cache: dict[str, str], path: str, *, contest: bool) -> None:
        """A view of the quiz page: the HTML (revalidated), its assets the first time only (their names carry
        their hash: cached for a year), and GET /v1/contest, which the script asks on every view but /thi."""
        first = path not in cache
        page = self._cached_get(cache, path, "page")
        if page is not None and first and page.status_code == 200:
            for asset in ASSET.findall(page.content or b""):
                if asset.decode() not in cache:
                    self._cached_get(cache, asset.decode(), "asset")
        summary = self._cached_get(cache, "/v1/contest", "contest") if contest else None
        if self.consent is None and summary is not None and summary.status_code == 200:
            privacy = json.loads(summary.content)["privacy"]
            self.consent = {"consent": {"version": privacy["version"]}} if privacy else {}

    def _browser(self, person: dict[str, Any]) -> dict[str, str]:
        cache = self.caches.get(person["participant_id"])
        if cache is None:
            cache = self.caches[person["participant_id"]] = dict(self.warm)
        return cache

    # -- journeys -------------------------------------------------------------------------------------

    def _start(self) -> Any:
        """Open /thi (nothing open on the device: it asks the server), then Bắt đầu làm bài."""
        person = self._person()
        if person is None:
            return None
        auth = {"Authorization": f"Bearer {person['access_key']}"}
        cache = self._browser(person)
        if self.rng.random() < VIA_HOME:
            self._view(cache, "/", contest=True)
        self._view(cache, "/thi", contest=False)
        self._current(auth)
        key = base64.urlsafe_b64encode(os.urandom(18)).decode()
        attempt = self._post("/v1/attempts", {"participant_id": person["participant_id"]}, "start attempt", 201,
                             {**auth, "Idempotency-Key": key})
        if attempt is not None:
            attempt["_auth"], attempt["_cache"] = auth, cache
        return attempt

    def _current(self, auth: dict[str, str]) -> None:
        """GET /v1/attempts/current: 404 (none open) is the usual answer, and a success."""
        with self.client.get("/v1/attempts/current", name="current attempt", headers=auth, catch_response=True) as r:
            if r.status_code in (200, 404):
                r.success()
            elif r.status_code in REFUSALS:
                r.success()
                self._refused("current attempt", r.status_code)
            else:
                r.failure(f"{r.status_code}")

    def _submit(self) -> None:
        attempt = self._start()
        if attempt is None:
            return
        gevent.sleep(self.rng.uniform(*THINK_S))
        chance = self.rng.random()
        if chance < RELOADS:  # a reload: the page again, the attempt from the device
            self._view(attempt["_cache"], "/thi", contest=False)
        elif chance < RELOADS + OTHER_DEVICE:  # another device: a fresh cache, the attempt from the server
            self._view({}, "/thi", contest=False)
            self._current(attempt["_auth"])
        answers = {q["id"]: self.rng.choice("ABCD") for q in attempt["questions"]}
        body = {"token": attempt["token"], "answers": answers, "prediction": self.rng.randint(0, 100_000)}
        for n in range(1, SUBMIT_TRIES + 1):  # the page's rule: again after a transient failure, backing off
            with self.client.post("/v1/submissions", json=body, name="submit", catch_response=True) as r:
                if r.status_code in (200, 202):
                    return
                if r.status_code not in RETRYABLE or n == SUBMIT_TRIES:
                    r.failure(f"{r.status_code} {r.text[:120] if r.text else ''}")
                    return
                r.success()
                self._refused("submit", r.status_code)
                retry_after = float(r.headers.get("Retry-After") or 0) if r.headers else 0.0
            gevent.sleep(min(5.0, max(retry_after, 0.5 * 2 ** (n - 1))) * self.rng.uniform(0.8, 1.2))

    def _abandon(self) -> None:
        self._start()

    def _register(self) -> None:
        """The registration page, then its form: consent and an Idempotency-Key, as the page sends them."""
        n = next(self.newcomers)
        cache: dict[str, str] = {}
        self._view(cache, "/dang-ky", contest=True)
        # unique across the runs of one `make loadtest` (RUN) and its workers (index)
        body = {"full_name": f"Người Đến Sau {spelled(n)}", "id_number": f"9{RUN % 10}{self.index % 10}{n:09d}",
                "phone": f"08{RUN % 10}{self.index % 10}{n:06d}", "birth_date": "1990-05-17", "group": GROUP,
                "unit_code": UNIT or None, **(self.consent or {})}
        key = base64.urlsafe_b64encode(os.urandom(18)).decode()
        created = self._post("/v1/participants", body, "register", 201, {"Idempotency-Key": key})
        if created is not None:
            self.caches[created["participant_id"]] = cache
            self.people.append(created)

    def _standing(self) -> None:
        person = self._person()
        if person is not None:
            self._get(f"/v1/periods/1/participants/{person['participant_id']}", "standing")

    def _leaderboard(self) -> None:
        self._get(f"/v1/periods/1/leaderboard?group={GROUP}&limit=50", "leaderboard")


class OpenModel(LoadTestShape):
    """One user per worker for as long as the stages last; the statistics restart when the hold begins,
    so the gate judges the hold alone."""

    reset_done = False

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        if rate_at(STAGES, t) is None:
            return None
        if not self.reset_done and t >= RAMP_S:
            self.runner.stats.reset_all()
            self.reset_done = True
        return WORKERS, float(WORKERS)
