"""The load test's journeys (loadtests/journeys.py) against the real apps, briefly: every request the quiz page
makes — its views revalidated, /v1/contest, the current attempt, a start with its Idempotency-Key, the submission
with the page's retry rule — and the results reads, each reported for locust's statistics, none failing. What
`make loadtest` drives at the design peak, kept working between its runs."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from collections import Counter
from pathlib import Path

from loadtests.journeys import Journeys, Report, Settings
from runtime.tasks import not_cancelled
from tests.harness import System


class Lines:
    """What the report writes to (locust's pipe in a load test), kept here."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def get_write_buffer_size(self) -> int:
        return 0


async def test_the_journeys_make_the_quiz_pages_requests_and_none_fails(system: System, tmp_path: Path) -> None:
    s = system
    people = [await s.register() for _ in range(20)]  # 3 attempts each: room for every start the arrivals draw
    await s.drain()  # registered earlier in the week: the results app knows them
    pool = tmp_path / "participants.jsonl"
    pool.write_text("\n".join(json.dumps({"participant_id": p, "access_key": s.access_keys[p]}) for p in people))
    settings = Settings(str(s.ingest.make_url("")).rstrip("/"), str(s.results.make_url("")).rstrip("/"), rate=6.0,
                        ramp_s=0.0, hold_s=2.0, workers=1, index=0, pool=str(pool), run=0, group="cbccvc", unit="A",
                        start=time.time())
    lines = Lines()
    report = Report(lines)  # type: ignore[arg-type]  # a transport's write and buffer size are all it uses

    async def scoring() -> None:  # as a stack's scorer does: the harness's runs on demand (a newcomer's standing)
        while not_cancelled():  # also when the cancel is lost on its way, in a redis-py send (runtime.tasks)
            await s.drain()
            await asyncio.sleep(0.05)

    scorer = asyncio.ensure_future(scoring())
    thresholds = gc.get_threshold()
    try:
        await Journeys(settings, report).run()
    finally:
        gc.unfreeze()  # the journeys set the collector as a load generator's (runtime.collector): not the tests'
        gc.set_threshold(*thresholds)
        scorer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await scorer
    report.flush()
    rows = [line.split("\t") for line in lines.data.decode().splitlines()]
    assert rows and all(len(row) == 5 for row in rows)
    failed = [row for row in rows if row[4] and row[0] != "REFUSED"]
    assert not failed, failed[:5]
    made = Counter((row[0], row[1]) for row in rows)
    for request in (("GET", "page"), ("GET", "current attempt"), ("POST", "start attempt"), ("POST", "submit")):
        assert made[request] > 0, (request, made)
    assert made[("GET", "standing")] + made[("GET", "leaderboard")] > 0, made
