"""Contest-week traffic on the hot path, the way the front-ends and the results page behave.

Front-end users register, start an attempt, think, submit, and go on until their attempts run
out; results readers poll the leaderboard and their own standing. The shape ramps to a Monday
08:00 cut-off peak and falls away; an SLO gate sets the exit code (fail ratio, submission p99).
Run by `make loadtest` (loadtests/run.py starts the stack and sets CCHC_LOAD_* for this file).
"""

from __future__ import annotations

import itertools
import os
import random
import uuid
from typing import ClassVar

from locust import FastHttpUser, LoadTestShape, between, events, task
from locust.runners import WorkerRunner

from ops.simulate import spelled

RESULTS = os.environ.get("CCHC_LOAD_RESULTS", "http://127.0.0.1:8081")
SLO_FAIL_RATIO = float(os.environ.get("CCHC_LOAD_SLO_FAIL_RATIO", "0.01"))
SLO_SUBMIT_P99_MS = float(os.environ.get("CCHC_LOAD_SLO_SUBMIT_P99_MS", "250"))
PEAK_USERS = int(os.environ.get("CCHC_LOAD_PEAK_USERS", "120"))
_people = itertools.count()
_salt = uuid.uuid4().int % 1000  # distinct identities in each worker process


class Participant(FastHttpUser):
    """A quiz front-end: one person at a time, 20 questions, a few seconds of thinking."""

    weight = 4
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        self.pid: str | None = None
        self.key = ""
        self.rng = random.Random()

    def register(self) -> None:
        n = _salt * 100_000 + next(_people)  # unique within a worker; workers rarely meet (409 is fine)
        body = {"full_name": f"Người Thử Tải {spelled(n)}", "id_number": f"{n % 10**12:012d}",
                "phone": f"09{n % 10**8:08d}", "birth_date": "1990-05-17", "group": "nhan_dan"}
        with self.client.post("/v1/participants", json=body, name="register", catch_response=True) as r:
            if r.status_code == 201:
                credentials = r.json()
                self.pid, self.key = credentials["participant_id"], credentials["access_key"]
            elif r.status_code == 409:  # an identity already taken by another worker: not a failure
                r.success()

    @task
    def take_an_attempt(self) -> None:
        if self.pid is None:
            self.register()
            return
        with self.client.post("/v1/attempts", json={"participant_id": self.pid}, name="start attempt",
                              headers={"Authorization": f"Bearer {self.key}"}, catch_response=True) as r:
            if r.status_code == 409:  # attempts used up: the next person sits down
                r.success()
                self.pid = None
                return
            if r.status_code != 201:
                return
            attempt = r.json()
        self.wait()  # thinking
        answers = {q["id"]: self.rng.choice("ABCD") for q in attempt["questions"]}
        self.client.post("/v1/submissions", json={"token": attempt["token"], "answers": answers,
                                                  "prediction": self.rng.randint(0, 100_000)}, name="submit")


class ResultsReader(FastHttpUser):
    """The public results page: the leaderboard and someone's standing."""

    weight = 1
    wait_time = between(1, 3)

    @task(3)
    def leaderboard(self) -> None:
        self.client.get(f"{RESULTS}/v1/periods/1/leaderboard?group=nhan_dan&limit=100", name="leaderboard")

    @task(1)
    def periods(self) -> None:
        self.client.get(f"{RESULTS}/v1/periods", name="periods")


class CutOffPeak(LoadTestShape):
    """(seconds from start, users): a working day, the last hours before Monday 08:00, after."""

    stages: ClassVar[list[tuple[int, float]]] = [(15, 0.2), (30, 0.5), (60, 1.0), (75, 0.3), (90, 0.1)]

    def tick(self) -> tuple[int, float] | None:
        run_time = self.get_run_time()
        for until, share in self.stages:
            if run_time < until:
                return max(1, int(PEAK_USERS * share)), max(5.0, PEAK_USERS / 5)
        return None


@events.quitting.add_listener
def slo_gate(environment, **_kwargs) -> None:  # type: ignore[no-untyped-def]
    """Fail the run (exit code 1) when the fail ratio or the submission p99 breaks the SLO."""
    if isinstance(environment.runner, WorkerRunner):
        return
    total = environment.stats.total
    submit = environment.stats.get("submit", "POST")
    p99 = submit.get_response_time_percentile(0.99) if submit.num_requests else 0
    verdict = []
    if total.fail_ratio > SLO_FAIL_RATIO:
        verdict.append(f"fail ratio {total.fail_ratio:.2%} > {SLO_FAIL_RATIO:.2%}")
    if p99 > SLO_SUBMIT_P99_MS:
        verdict.append(f"submission p99 {p99:.0f} ms > {SLO_SUBMIT_P99_MS:.0f} ms")
    if not submit.num_requests:
        verdict.append("no submission was made")
    print(f"SLO gate: {total.num_requests} requests, fail ratio {total.fail_ratio:.2%}, submissions "
          f"{submit.num_requests}, submission p99 {p99:.0f} ms -> {'FAIL: ' + '; '.join(verdict) if verdict else 'pass'}")
    environment.process_exit_code = 1 if verdict else 0
