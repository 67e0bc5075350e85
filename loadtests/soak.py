"""`make soak`: what the system does over a long run — steady load at half the measured capacity, the
scorer working throughout and a period closed in the middle, every process's memory sampled.

    .venv/bin/python -m loadtests.soak [--minutes 20] [--rate 230]

Samples every 10 s (written to loadtests/reports/soak.csv): resident memory of every process of the stack
(ingest, results, scorer, Valkey), Valkey's used memory, the stream's length and PostgreSQL's database size.
Fails when a process's memory keeps growing after the close (its peak in the last quarter above its peak
in the third by more than max(20 MB, 10 %); Valkey's memory is the data itself and is reported), when the
stream is not trimmed (its length keeps growing), when the close in the middle fails, or when the scorer's
lag does not return to zero within a minute after the load stops. The memory slopes (MB/h) are printed.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import redis

from eventstore.keys import Keys
from loadtests.chaos import wait_drained
from loadtests.run import REPORTS, locust, pool_file
from loadtests.shape import ContestLoad
from ops.embedded import EmbeddedValkey
from ops.presets import Running, throwaway_stack

SAMPLE_EVERY_S = 10.0
ATTEMPTS = 30


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def slope_per_hour(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs (seconds), per hour."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 3600


def close_in_the_middle(run: Running, end_ms: int, outcome: dict[str, str]) -> None:
    """POST the admin close once period 1 has ended (retrying while it says 503 not_drained)."""
    time.sleep(max(0.0, end_ms / 1000 - time.time()) + 4)
    started = time.monotonic()
    request = urllib.request.Request(f"{run.desk_url}/v1/admin/periods/1/close", method="POST",
                                     headers={"Authorization": f"Bearer {run.settings.admin_token}"})
    for _ in range(60):
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                body = json.load(answer)
                outcome["close"] = (f"period 1 closed during the load in {time.monotonic() - started:.1f} s,"
                                    f" revision {body['revision']}")
                return
        except urllib.error.HTTPError as e:
            if e.code != 503:
                outcome["failed"] = f"close answered {e.code}: {e.read()[:200]!r}"
                return
            time.sleep(float(e.headers.get("Retry-After", "1")))
    outcome["failed"] = "close never drained"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=None,
                        help="submissions/s (default: half the design peak, which is this box's measured capacity)")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    load = ContestLoad()
    rate = args.rate or load.peak_submissions_per_s / 2
    seconds = args.minutes * 60
    REPORTS.mkdir(exist_ok=True)
    print(f"soak: {args.minutes:g} minutes at {rate:,.0f} submissions/s (with their attempt starts, registrations and"
          f" reads: {load.mix(rate).total:,.0f} requests/s), a close in the middle", flush=True)
    people = int(rate * seconds / 2 * (1 + load.abandoned_per_submission) / (ATTEMPTS * 0.8)) + 100
    with throwaway_stack("soak", scorers=1, attempts_per_period=ATTEMPTS, periods=2,
                         period_seconds=int(seconds / 2) + 30) as run:
        print(run.stack.ready_line(), flush=True)
        pool = pool_file(run, people)
        keys = Keys(run.contest.slug, run.settings.partitions)
        r = redis.Redis.from_url(run.settings.redis_url or "")
        processes = {name: proc.pid for name, proc in run.stack.children.items()}
        if isinstance(run.stack.valkey, EmbeddedValkey) and run.stack.valkey.proc is not None:
            processes["valkey"] = run.stack.valkey.proc.pid
        command, env = locust(run, load, rate, label="soak", ramp_s=10, hold_s=seconds, processes=args.processes,
                              pool=pool)
        outcome: dict[str, str] = {}
        closer = threading.Thread(target=close_in_the_middle, args=(run, run.contest.periods[0].end_ms, outcome),
                                  daemon=True)
        samples: list[dict[str, float]] = []
        started = time.monotonic()
        with (REPORTS / "soak.log").open("w") as log:
            generator = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            closer.start()
            while generator.poll() is None:
                row = {"t": time.monotonic() - started, **{f"{n}_rss_mb": rss_mb(pid) for n, pid in processes.items()},
                       "valkey_used_mb": int(r.info("memory")["used_memory"]) / 2**20,
                       "stream_length": float(sum(r.xlen(slot.stream) for slot in keys.slots)),
                       "postgres_mb": _pg_size_mb(run)}
                samples.append(row)
                time.sleep(SAMPLE_EVERY_S)
        closer.join(timeout=120)
        lag_back = _lag_returns(run)
        with (REPORTS / "soak.csv").open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(samples[0]))
            writer.writeheader()
            writer.writerows(samples)
    return _verdict(samples, processes, outcome, lag_back, rate, args.minutes)


def _pg_size_mb(run: Running) -> float:
    from psycopg import connect

    with connect(run.settings.database_url or "", autocommit=True) as conn:
        row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        return (row[0] if row else 0) / 2**20


def _lag_returns(run: Running, within_s: float = 60.0) -> float | None:
    """Seconds until the consumer groups have nothing undelivered or unacknowledged (None: not in time)."""
    started = time.monotonic()
    if wait_drained(run.settings, run.contest.slug, timeout=within_s):
        return time.monotonic() - started
    return None


def _verdict(samples: list[dict[str, float]], processes: dict[str, int], outcome: dict[str, str],
             lag_back: float | None, rate: float, minutes: float) -> int:
    """Memory and the stream are judged after the close in the middle (a close is a step up, once: the
    committee's computation in the ingest process): the last quarter against the third."""
    end = samples[-1]["t"]
    second_half = [s for s in samples if s["t"] >= end / 2]
    third = [s for s in samples if end / 2 <= s["t"] < end * 3 / 4] or second_half
    fourth = [s for s in samples if s["t"] >= end * 3 / 4] or second_half
    xs = [s["t"] for s in second_half]
    failed: list[str] = []
    slopes = []
    for name in processes:
        column = f"{name}_rss_mb"
        ys = [s[column] for s in second_half]
        slopes.append(f"{name} {slope_per_hour(xs, ys):+.0f} MB/h ({ys[0]:.0f}→{ys[-1]:.0f} MB)")
        before, after = max(s[column] for s in third), max(s[column] for s in fourth)
        if name != "valkey" and after - before > max(20.0, 0.10 * before):  # Valkey holds the data: reported
            failed.append(f"{name} grew from {before:.0f} to {after:.0f} MB in the last quarter")
    stream = [s["stream_length"] for s in second_half]
    third_mean = sum(s["stream_length"] for s in third) / len(third)
    fourth_mean = sum(s["stream_length"] for s in fourth) / len(fourth)
    if fourth_mean > 1.2 * third_mean + 5_000:
        failed.append(f"the stream kept growing (mean {third_mean:.0f} → {fourth_mean:.0f} entries): not trimmed")
    if "failed" in outcome or "close" not in outcome:
        failed.append(outcome.get("failed", "the close in the middle did not finish"))
    if lag_back is None:
        failed.append("the scorer's lag did not return to zero within 60 s after the load")
    valkey = [s["valkey_used_mb"] for s in second_half]
    pg = [s["postgres_mb"] for s in second_half]
    print(f"memory slopes over the second half: {'; '.join(slopes)}")
    print(f"valkey used memory {valkey[0]:.0f}→{valkey[-1]:.0f} MB ({slope_per_hour(xs, valkey):+.0f} MB/h: receipts"
          f" and counters, kept for the retention), stream length {stream[0]:.0f}→{stream[-1]:.0f} (max"
          f" {max(stream):.0f}), postgres {pg[0]:.0f}→{pg[-1]:.0f} MB ({slope_per_hour(xs, pg):+.0f} MB/h: the event"
          " table and entries)")
    back = "NOT" if lag_back is None else f"in {lag_back:.0f} s"
    print(f"{outcome.get('close', 'no close')}; lag back to zero {back} after the load")
    print(f"soak: {minutes:g} minutes at {rate:,.0f} submissions/s -> "
          f"{'pass' if not failed else 'fail (' + '; '.join(failed) + ')'}; samples in {REPORTS / 'soak.csv'}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
