"""The Monday 08:00 peak as an open model: arrivals at a rate computed from the contest's parameters
(loadtests/shape.py), whatever the answers' speed, so a slow server cannot lower the offered load.

Locust runs the test: the stages (OpenModel below), one user per worker process, the statistics, the reports
and, through loadtests/run.py, the SLO gate. Each user's requests are made by its journeys
(loadtests/journeys.py: a browser on the quiz page, with its cache, its resumes and its retry rule) in a
process of their own on one asyncio loop with a lean HTTP client, and every request comes back here as a line
for locust's statistics. Why: on the two cores the stack under test shares with its generator, locust's gevent
client cost ~310 µs of CPU a request, ~90 % of a core at the design peak (BENCHMARKS.md, "the generator").

Run by loadtests/run.py, which sets CCHC_LOAD_*, hands each worker its share of pre-registered participants and
judges the SLOs from the CSV stats.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import time
from pathlib import Path

from gevent import subprocess
from locust import LoadTestShape, User, constant, task
from locust.exception import StopUser
from locust.runners import WorkerRunner

from loadtests.journeys import run_stages
from loadtests.shape import rate_at

HERE = Path(__file__).resolve().parent
WORKERS = int(os.environ.get("CCHC_LOAD_WORKERS", "2"))
STAGES = run_stages(float(os.environ.get("CCHC_LOAD_RATE", "463")), float(os.environ.get("CCHC_LOAD_RAMP_S", "20")),
                    float(os.environ.get("CCHC_LOAD_HOLD_S", "60")))


class Arrivals(User):
    """One worker's share of the arrivals: its journeys' process, its requests relayed to locust's statistics."""

    wait_time = constant(0)

    def on_start(self) -> None:
        runner = self.environment.runner
        self.index = index = runner.worker_index if isinstance(runner, WorkerRunner) else 0
        env = {**os.environ, "CCHC_LOAD_HOST": self.host or "", "CCHC_LOAD_INDEX": str(index),
               "CCHC_LOAD_START": str(time.time()),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")]))}
        self.journeys = subprocess.Popen([sys.executable, "-m", "loadtests.journeys"], env=env,
                                         stdout=subprocess.PIPE, cwd=HERE.parent)

    @task
    def relay(self) -> None:
        """The journeys' report, line by line, until they are done."""
        self._relay()
        raise StopUser

    def _relay(self) -> None:
        """Each line of the journeys' report as locust's request event, to the end of their output."""
        fire = self.environment.events.request.fire
        assert self.journeys.stdout is not None
        for line in self.journeys.stdout:
            kind, name, ms, length, failure = line.decode().rstrip("\n").split("\t")
            fire(request_type=kind, name=name, response_time=float(ms), response_length=int(length),
                 exception=Exception(failure) if failure else None, context={})

    def on_stop(self) -> None:
        """The stages are over: the journeys write what they have not yet and stop; their last lines count too."""
        if self.journeys.poll() is None:
            self.journeys.terminate()  # they flush their report and exit (loadtests/journeys.py)
        with contextlib.suppress(ValueError, OSError):  # the output already read to its end
            self._relay()
        try:
            code = self.journeys.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.journeys.kill()
            code = self.journeys.wait()
        # 0, or SIGTERM's own end (a second SIGTERM, from locust stopping its process group, lands after
        # the report was flushed and the loop's handler gone); anything else is the journeys failing
        if code not in (0, -signal.SIGTERM):
            logging.error("the journeys of worker %s exited with %s: their requests stopped early", self.index, code)


class OpenModel(LoadTestShape):
    """One user per worker for as long as the stages last; the statistics restart when the hold begins,
    so the gate judges the hold alone."""

    reset_done = False

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        if rate_at(STAGES, t) is None:
            return None
        if not self.reset_done and t >= STAGES[0].end_s:
            self.runner.stats.reset_all()
            self.reset_done = True
        return WORKERS, float(WORKERS)
