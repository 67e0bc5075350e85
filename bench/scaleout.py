"""Scale-out (DESIGN §9): scorer processes 1 → 2 on a stream in 4 partitions, and ingest on a 3-master
Valkey Cluster against one Valkey, each next to its same-run baseline.

    .venv/bin/python -m bench.scaleout [scorers|ingest] [--participants 20000] [--runs 3] [--seconds 10]

scorers: a simulated week is appended to the partitions, then 1 or 2 `cchc scorer` processes (the leases
seeded so that two split the streams from the start) archive and project it into an empty database;
events/s from the first archived event to the last. ingest: bench.ingest's wrk run (64 connections,
durable acks) on one Valkey and on the cluster (acks after WAITAOF 1 1), and the bare ceiling.
Loopback only; every server is its own and stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import redis

from bench.ingest import measure
from contest.load import load_contest
from eventstore.keys import Keys
from eventstore.postgres import migrate, open_pool
from eventstore.redis_stream.client import open_client
from eventstore.redis_stream.writer import StreamWriter
from ops.embedded import EmbeddedPostgres, EmbeddedValkey, die_with_parent
from ops.presets import throwaway_stack
from ops.simulate import by_stream, week
from runtime.settings import REPO_CONTESTS, Settings

PARTITIONS = 4


async def fill(url: str, keys: Keys, events: list[list]) -> None:  # type: ignore[type-arg]
    client = await open_client(url)
    writer = StreamWriter(client, keys, durability="fsync_always")
    for start in range(0, len(events), 5000):
        await writer.append_to(by_stream(keys, events[start:start + 5000]))
    await client.aclose()


async def empty_database(admin_url: str, name: str, periods: list[int]) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    pool = open_pool(url, max_size=1)
    await pool.open()
    await migrate(pool, periods)
    await pool.close()
    return url


def score_with(processes: int, settings: Settings, keys: Keys, total: int) -> float:
    """Start `processes` scorers on the filled streams; events/s from the first archived to the last."""
    r = redis.Redis.from_url(settings.redis_url or "")
    names = [f"scorer-{n + 1}" for n in range(processes)]
    for i, number in enumerate(keys.numbers):  # leases split from the start, as they settle after a beat
        r.set(keys.lease(number), names[i % processes], px=60_000)
    r.close()
    env = {**os.environ, **settings.env(), "CCHC_LOG_LEVEL": "warning"}
    children = [subprocess.Popen([sys.executable, "-m", "ops.cli", "scorer", "--name", name], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
                for name in names]
    try:
        first: tuple[float, int] | None = None
        deadline = time.monotonic() + 600
        with psycopg.connect(settings.database_url or "", autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute("SELECT count(*) FROM events").fetchone()
                archived = row[0] if row else 0
                now = time.monotonic()
                if archived and first is None:
                    first = (now, archived)
                if archived >= total and first is not None:
                    return (archived - first[1]) / max(now - first[0], 1e-3)
                time.sleep(0.05)
        raise RuntimeError(f"the scorers archived {archived} of {total} events in 10 minutes")
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(30)


def scorers(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="cchc-bench-scaleout-"))
    valkey, postgres = EmbeddedValkey(workdir / "valkey"), EmbeddedPostgres(workdir / "postgres")
    try:
        valkey.start()
        admin_url = postgres.start()
        anchor = datetime.now(UTC)
        contest = load_contest(REPO_CONTESTS / "demo", anchor=anchor)
        keys = Keys(contest.slug, PARTITIONS)
        events = list(week(contest, contest.periods[0], args.participants, args.participants * 2))
        total = sum(len(e) for e in events)
        settings = Settings(contest_dir=REPO_CONTESTS / "demo", contest_anchor=anchor, redis_url=valkey.url,
                            partitions=PARTITIONS, data_dir=workdir / "data")
        rates: dict[int, list[float]] = {1: [], 2: []}
        for run in range(args.runs):
            for processes in (1, 2):  # alternated: a noisy minute hits both
                redis.Redis.from_url(valkey.url).flushall()
                asyncio.run(fill(valkey.url, keys, events))
                url = asyncio.run(empty_database(admin_url, f"scaleout_{run}_{processes}",
                                                 [p.number for p in contest.periods]))
                rates[processes].append(score_with(processes, replace(settings, database_url=url), keys, total))
                print(f"  run {run + 1}: {processes} scorer(s) {rates[processes][-1]:,.0f} events/s", flush=True)
        print(f"scorers on {PARTITIONS} partitions, {total:,} events ({args.participants:,} participants), "
              f"{args.runs} runs each, median (range):")
        for processes, got in rates.items():
            print(f"  {processes} scorer process(es): {statistics.median(got):>8,.0f} events/s "
                  f"({min(got):,.0f}–{max(got):,.0f})")
        print(f"  2 / 1 = {statistics.median(rates[2]) / statistics.median(rates[1]):.2f}×")
    finally:
        postgres.stop()
        valkey.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def ingest(args: argparse.Namespace) -> None:
    print("ingest on one Valkey (one partition), then on a 3-master Valkey Cluster with a replica each"
          " (6 partitions), each beside the bare ceiling of the same run:", flush=True)
    for label, cluster, partitions in (("one Valkey", 0, 1), ("3-master cluster", 3, 6)):
        with throwaway_stack(f"bench-{'cluster' if cluster else 'single'}", scorers=0, partitions=partitions,
                             cluster=cluster) as run:
            print(f"— {label}:", flush=True)
            measure(run, args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", choices=("scorers", "ingest", "both"), default="both")
    parser.add_argument("--participants", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args(argv)
    args.processes = 1
    if args.what in ("scorers", "both"):
        scorers(args)
    if args.what in ("ingest", "both"):
        if shutil.which("wrk") is None:
            print("wrk is not installed (apt-get install wrk; `make bench` does it)", file=sys.stderr)
            return 2
        ingest(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
