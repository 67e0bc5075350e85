"""`make loadtest`: the design peak of DESIGN §1 against a local stack, judged by SLO gates, then a
headroom step test; loopback only, bounded in time, HTML and CSV reports kept in loadtests/reports/.

    .venv/bin/python -m loadtests.run [--processes 2] [--hold 60] [--participants 1000000 --entries 5000000 …]

1. The peak is computed from the contest's parameters (loadtests/shape.py) and printed with its mix.
2. Participants are registered beforehand (a week's registrations are mostly done by Monday morning).
3. locust runs distributed (a master and --processes workers) as an open model: arrivals at the rate,
   whatever the answers' speed. The gate judges the hold: submission and attempt-start p99, failures,
   refusals, and freshness (202 → visible) from the scorers' own `cchc_scorer_freshness_seconds`.
4. Headroom: higher rates, step by step, until an SLO breaks; the highest rate that held is reported
   against the design peak. The exit code is the design peak's gate.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp

from loadtests.shape import ContestLoad
from loadtests.slo import Verdict, freshness_buckets, judge, p99_upper_bound, read_stats
from ops.presets import Running, throwaway_stack
from ops.simulate import spelled

HERE = Path(__file__).parent
REPORTS = HERE / "reports"
ATTEMPTS = 30  # per participant in the load contest's one period (Quảng Bình's rule): a smaller pool
_runs = itertools.count()  # each locust run of one stack registers newcomers of its own
STEPS = (1.1, 1.25, 1.5, 2.0, 3.0, 4.0)  # headroom: multiples of the design peak, until one breaks


async def register(ingest: str, count: int, unit: str, consent: dict[str, str] | None) -> list[dict[str, str]]:
    """`count` participants over HTTP, 64 at a time (with the privacy notice's consent); their ids and access keys."""
    people: list[dict[str, str]] = []
    queue = iter(range(count))

    async def worker(http: aiohttp.ClientSession) -> None:
        for n in queue:
            body = {"full_name": f"Người Thử Tải {spelled(n)}", "id_number": f"7{n:011d}", "phone": f"07{n:08d}",
                    "birth_date": "1990-05-17", "group": "cbccvc", "unit_code": unit, "consent": consent}
            async with http.post(f"{ingest}/v1/participants", json=body) as r:
                if r.status == 201:
                    answer = await r.json()
                    people.append({"participant_id": answer["participant_id"], "access_key": answer["access_key"]})

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
        await asyncio.gather(*(worker(http) for _ in range(64)))
    return people


def scrape_freshness(run: Running) -> dict[float, float]:
    texts = []
    for name, port in run.stack.metrics_ports.items():
        if name.startswith("scorer"):
            with urllib.request.urlopen(f"http://{run.settings.metrics_host}:{port}/metrics", timeout=5) as answer:
                texts.append(answer.read().decode())
    return freshness_buckets(texts)


def locust(run: Running, load: ContestLoad, rate: float, *, label: str, ramp_s: float, hold_s: float,
           processes: int, pool: Path) -> tuple[list[str], dict[str, str]]:
    """The command and environment of one headless, distributed locust run against `run`."""
    prefix = REPORTS / label
    env = {**os.environ, "CCHC_LOAD_RESULTS": run.results_url, "CCHC_LOAD_RATE": f"{rate:.3f}",
           "CCHC_LOAD_RAMP_S": str(ramp_s), "CCHC_LOAD_HOLD_S": str(hold_s), "CCHC_LOAD_WORKERS": str(processes),
           "CCHC_LOAD_POOL": str(pool), "CCHC_LOAD_UNIT": next(iter(run.contest.units)),
           "CCHC_LOAD_RUN": str(next(_runs)), "CCHC_LOAD_STANDINGS": str(load.standings_per_submission),
           "CCHC_LOAD_LEADERBOARDS": str(load.leaderboards_per_submission)}
    command = [sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless", "--host",
               run.ingest_url, "--processes", str(processes), "--html", f"{prefix}.html", "--csv", str(prefix),
               "--only-summary", "--loglevel", "WARNING"]
    return command, env


def run_stage(run: Running, load: ContestLoad, rate: float, *, label: str, ramp_s: float, hold_s: float,
              processes: int, pool: Path, refusals_allowed: bool) -> Verdict:
    """One locust run: ramp to `rate` submissions/s, hold, judge."""
    before = scrape_freshness(run)
    command, env = locust(run, load, rate, label=label, ramp_s=ramp_s, hold_s=hold_s, processes=processes,
                          pool=pool)
    with (REPORTS / f"{label}.log").open("w") as log:  # locust's own output, kept beside the reports
        subprocess.run(command, env=env, timeout=ramp_s + hold_s + 120, check=False, stdout=log,
                       stderr=subprocess.STDOUT)
    time.sleep(2)  # the last batches committed and counted
    fresh = p99_upper_bound(before, scrape_freshness(run))
    return judge(read_stats(REPORTS / f"{label}_stats.csv"), rate, hold_s, fresh, refusals_allowed=refusals_allowed)


def pool_file(run: Running, people: int) -> Path:
    """`people` participants registered over HTTP, their credentials one JSON line each."""
    started = time.monotonic()
    privacy = run.contest.privacy
    consent = {"version": privacy.version} if privacy else None
    credentials = asyncio.run(register(run.ingest_url, people, next(iter(run.contest.units)), consent))
    pool = run.workdir / "participants.jsonl"
    pool.write_text("\n".join(json.dumps(p) for p in credentials))
    print(f"registered {len(credentials):,} participants beforehand in {time.monotonic() - started:.0f} s",
          flush=True)
    return pool


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="locust worker processes")
    parser.add_argument("--scorers", type=int, default=1, help="scorer processes of the stack under test")
    parser.add_argument("--hold", type=float, default=60, help="seconds at the design peak (≥ 60)")
    parser.add_argument("--ramp", type=float, default=20)
    parser.add_argument("--step-hold", type=float, default=30, help="seconds at each headroom step")
    parser.add_argument("--no-headroom", action="store_true")
    parser.add_argument("--participants", type=int, default=ContestLoad.participants)
    parser.add_argument("--entries", type=int, default=ContestLoad.entries_per_week, help="entries a week")
    parser.add_argument("--last-hours-share", type=float, default=ContestLoad.last_hours_share)
    parser.add_argument("--last-hours", type=float, default=ContestLoad.last_hours)
    parser.add_argument("--peak-factor", type=float, default=ContestLoad.peak_factor)
    parser.add_argument("--standings", type=float, default=ContestLoad.standings_per_submission,
                        help="results-page standings read per submission")
    parser.add_argument("--leaderboards", type=float, default=ContestLoad.leaderboards_per_submission,
                        help="leaderboard pages read per submission")
    args = parser.parse_args(argv)
    load = ContestLoad(participants=args.participants, entries_per_week=args.entries,
                       last_hours_share=args.last_hours_share, last_hours=args.last_hours,
                       peak_factor=args.peak_factor, standings_per_submission=args.standings,
                       leaderboards_per_submission=args.leaderboards)
    peak = load.peak_submissions_per_s
    for line in load.describe():
        print(line, flush=True)
    REPORTS.mkdir(exist_ok=True)
    steps = () if args.no_headroom else STEPS
    # Every run's submissions with their attempts, spread so nobody reaches the limit.
    submissions = peak * (args.ramp / 2 + args.hold) + sum(peak * m * (10 + args.step_hold) for m in steps)
    people = int(submissions * (1 + load.abandoned_per_submission) / (ATTEMPTS * 0.8)) + 100
    with throwaway_stack("loadtest", scorers=args.scorers, attempts_per_period=ATTEMPTS, privacy=True) as run:
        print(run.stack.ready_line(), flush=True)
        pool = pool_file(run, people)
        design = run_stage(run, load, peak, label="design-peak", ramp_s=args.ramp, hold_s=args.hold,
                           processes=args.processes, pool=pool, refusals_allowed=False)
        print(design.line(), flush=True)
        held, broke = (peak if design.passed else 0.0), None
        for multiple in steps if design.passed else ():
            step = run_stage(run, load, peak * multiple, label=f"headroom-{multiple:g}x", ramp_s=10,
                             hold_s=args.step_hold, processes=args.processes, pool=pool, refusals_allowed=True)
            print(f"  step {multiple:g}×: {step.line()}", flush=True)
            if not step.passed:
                broke = step
                break
            held = peak * multiple
        if steps and not design.passed:
            print("headroom: not measured — the design peak itself failed its gate", flush=True)
        elif steps:
            limit = f"broke at {broke.rate:,.0f}/s: {'; '.join(broke.failed)}" if broke else "no step broke it"
            print(f"headroom: held {held:,.0f} submissions/s = {held / peak:.1f} × the design peak of {peak:,.0f}/s"
                  f" ({limit})", flush=True)
    print(f"reports: {REPORTS}/design-peak.html, headroom-*.html and their *_stats.csv")
    return 0 if design.passed else 1


if __name__ == "__main__":
    sys.exit(main())
