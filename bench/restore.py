"""Restore of a database holding 5 M entries to the latest point (DESIGN §9, §10), timed phase by phase.

The Nghệ An 2022 contest; a week generated as `cchc simulate` generates it (ops/simulate.py `week`: people
registering, starting up to three attempts each, submitting towards the cut-off) until 5 M submissions, archived
into the event table as a scorer archives a first delivery (eventstore.postgres.archive: COPY), the projections
built by replay (the scorers' own code path) and week 1 closed. Then the WAL archiver starts and `cchc backup`
takes a base backup, a recompute and more entries land on top of it (WAL the restore must replay), PostgreSQL is
killed (kill -9) and its data directory removed, and `cchc restore --to latest` is timed: the base backup
verified and copied, the WAL replayed, the event table counted and every projection rebuilt by replay, every
published digest recomputed.

    .venv/bin/python -m bench.restore [--entries 5000000] [--participants 2200000]

Loopback only; its own embedded PostgreSQL in a temporary directory (about 20 GB at 5 M entries, removed after).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from contest.load import load_contest
from contest.model import Contest
from eventstore.barrier import Barrier
from eventstore.events import AnyEvent, ParticipantRegistered, ResultsPublished, SubmissionReceived, encode_many
from eventstore.keys import CONTEST_STREAM
from eventstore.postgres import Pool, archive, insert_event, migrate, open_pool, transaction
from ops.embedded import EmbeddedPostgres
from ops.simulate import week
from projections import results_queries
from projections.apply import Projector
from projections.close import publish
from projections.replay import replay
from runtime.settings import REPO_CONTESTS, Settings, load_or_create_state

CONTEST = REPO_CONTESTS / "nghean-2022"
BATCH = 20_000


def cchc(data_dir: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCHC_")}
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], cwd=REPO_CONTESTS.parent, capture_output=True,
                          text=True, env={**env, "CCHC_DATA_DIR": str(data_dir), "CCHC_DATABASE_URL": url,
                                          "CCHC_CONTEST": str(CONTEST)})


class Ids:
    """Stream ids as Valkey would give them, one stream per kind of entry (P = 1: the contest's and partition 0)."""

    def __init__(self, start_ms: int) -> None:
        self.ms = {CONTEST_STREAM: start_ms, 0: start_ms}
        self.seq = {CONTEST_STREAM: 0, 0: 0}

    def next(self, number: int) -> str:
        self.seq[number] += 1
        if self.seq[number] == 1000:
            self.ms[number], self.seq[number] = self.ms[number] + 1, 0
        return f"{self.ms[number]}-{self.seq[number]}"

    def barrier(self) -> str:
        return Barrier({n: f"{self.ms[n]}-{self.seq[n]}" for n in self.ms}).text()


async def fill(pool: Pool, contest: Contest, ids: Ids, participants: int, entries: int, *, seed: int = 7,
               project: bool = False) -> int:
    """Archive a generated week until `entries` submissions (as a scorer archives: COPY into the event table,
    and with `project` the projections in the same transaction); returns the submissions written."""
    period = contest.periods[0]
    projector = Projector(contest)
    batch: list[tuple[int, str, bytes, list[AnyEvent]]] = []
    submitted = 0

    async def flush() -> None:
        async with transaction(pool) as conn:
            fresh = await archive(conn, batch, first_delivery=True)
            if project:
                await projector.apply(conn, fresh)
        batch.clear()

    for events in week(contest, period, participants, entries * 115 // 100, seed=seed):  # stops at `entries`
        number = CONTEST_STREAM if isinstance(events[0], ParticipantRegistered) else 0
        batch.append((number, ids.next(number), encode_many(events), events))
        if isinstance(events[0], SubmissionReceived):
            submitted += 1
            if submitted >= entries:
                break
        if len(batch) == BATCH:
            await flush()
    if batch:
        await flush()
    return submitted


async def close(pool: Pool, contest: Contest, ids: Ids, revision: int) -> str:
    """A close (revision 1) or a recompute at the stream's end, with its marker, as projections/close.py writes."""
    barrier = ids.barrier()
    async with transaction(pool) as conn:
        digest, names = await publish(conn, contest, contest.periods[0], revision, barrier)
        key = Barrier.parse(barrier).marker_key(await results_queries.published_count(conn))
        await insert_event(conn, key, ResultsPublished(period=1, revision=revision, barrier=barrier,
                                                       results_digest=digest, by="bench", names=names))
    return digest


async def count(pool: Pool) -> tuple[int, int, str]:
    async with pool.connection() as conn:
        row = await (await conn.execute("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM entries),"
                                        " pg_size_pretty(pg_database_size(current_database()))")).fetchone()
    assert row is not None
    return row[0], row[1], row[2]


async def run(entries: int, participants: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="cchc-bench-restore-"))
    settings = Settings(contest_dir=CONTEST, data_dir=workdir / "data")
    settings.data_dir.mkdir(parents=True)
    _, _, passwords = load_or_create_state(settings, anchor_now=datetime.now(UTC).replace(microsecond=0))
    postgres = EmbeddedPostgres(settings.data_dir / "postgres", password=passwords.postgres)
    archiver: subprocess.Popen[bytes] | None = None
    restored = False  # then the restore has stopped the server it started
    contest = load_contest(CONTEST)
    try:
        url = postgres.start()
        pool = open_pool(url, max_size=6)
        await pool.open()
        await migrate(pool, [p.number for p in contest.periods])
        ids = Ids(contest.periods[0].start_ms)
        started = time.perf_counter()
        written = await fill(pool, contest, ids, participants, entries)
        print(f"archived {written:,} entries ({await count(pool)}) in {time.perf_counter() - started:.0f} s", flush=True)
        started = time.perf_counter()
        report = await replay(contest, pool)
        print(f"projections built by replay: {report.events + report.skipped:,} events in {report.seconds:.0f} s",
              flush=True)
        started = time.perf_counter()
        async with pool.connection() as conn:  # what autovacuum does over a week that filled gradually
            await conn.set_autocommit(True)
            await conn.execute("VACUUM ANALYZE")
            await conn.set_autocommit(False)
        print(f"VACUUM ANALYZE in {time.perf_counter() - started:.0f} s", flush=True)
        started = time.perf_counter()
        first = await close(pool, contest, ids, 1)
        print(f"week 1 closed in {time.perf_counter() - started:.0f} s: revision 1 {first}", flush=True)
        archiver = subprocess.Popen([sys.executable, "-m", "ops.cli", "wal-archiver"], cwd=REPO_CONTESTS.parent,
                                    env={**{k: v for k, v in os.environ.items() if not k.startswith("CCHC_")},
                                         "CCHC_DATA_DIR": str(settings.data_dir), "CCHC_DATABASE_URL": url},
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.perf_counter()
        done = cchc(settings.data_dir, url, "backup")
        assert done.returncode == 0, done.stderr
        print(f"cchc backup ({time.perf_counter() - started:.0f} s): {done.stdout.strip()}", flush=True)
        started = time.perf_counter()
        second = await close(pool, contest, ids, 2)
        more = await fill(pool, contest, ids, participants // 50, entries // 50, seed=8, project=True)
        events, rows, size = await count(pool)
        print(f"after the base backup: revision 2 {second} and {more:,} more entries projected"
              f" ({time.perf_counter() - started:.0f} s); {events:,} events, {rows:,} entries, database {size}",
              flush=True)
        await asyncio.sleep(2)  # the archiver is milliseconds behind; a lost disk need not wait for it
        await pool.close()
        pid = postgres.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        time.sleep(1)
        shutil.rmtree(settings.data_dir / "postgres")
        archiver.terminate()
        archiver.wait()
        wal = sum(f.stat().st_size for f in (settings.backups / "wal").iterdir() if f.is_file())
        print(f"kill -9 PostgreSQL, data directory removed; WAL archive {wal / 2**30:.1f} GB", flush=True)
        started = time.perf_counter()
        restored = True
        done = cchc(settings.data_dir, url, "restore", "--to", "latest")
        took = time.perf_counter() - started
        print(done.stdout.rstrip(), done.stderr.rstrip()[-2000:], sep="\n", flush=True)
        held = int(done.stdout.split("the event table holds ")[1].split()[0].replace(",", "")) \
            if "the event table holds " in done.stdout else -1
        ok = done.returncode == 0 and held == events and first in done.stdout and second in done.stdout
        print(f"restore of {events:,} events ({written + more:,} entries) to the latest point: {took:.0f} s"
              f" (target ≤ 600 s) — {'OK: every event back, both digests recomputed' if ok else 'FAILED'}")
    finally:
        if archiver is not None and archiver.poll() is None:
            archiver.terminate()
        if not restored:
            postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=5_000_000)
    parser.add_argument("--participants", type=int, default=2_200_000, help="at most (the week stops at --entries)")
    args = parser.parse_args(argv)
    asyncio.run(run(args.entries, args.participants))
    return 0


if __name__ == "__main__":
    sys.exit(main())
