"""`make restore-drill`: guarantee 10 rehearsed (DESIGN §10). Under load, week 1 is closed and recomputed (two
published revisions); in week 2 the WAL archiver stalls for a few seconds (so the newest commits are only in
PostgreSQL's data directory and, untrimmed, in the stream), then the data directory is destroyed (kill -9 of
the server, then `rm -rf`) while entries keep arriving. The documented restore runs — stop the stack, `cchc
restore --to latest`, start the stack — and every acknowledged receipt must be counted exactly once and every
published digest be the same. Then a second restore, into a scratch directory, to a time between the close and
the recompute: it must hold revision 1 alone, with its digest. Prints the recovery point and the measured
recovery times; exit 1 on any failure. Loopback only, its own stack in a temporary directory (about 3 minutes).

    .venv/bin/python -m loadtests.restore_drill [--clients 16] [--week-seconds 60] [--stall-archiver 5]
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
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console

from loadtests.chaos import Ledger, client, reconcile, wait_drained
from ops.embedded import free_port
from ops.presets import one_long_period
from ops.stack import Stack
from ops.wiring import contest_of
from runtime.settings import REPO_CONTESTS, Settings

console = Console(soft_wrap=True)
ROOT = REPO_CONTESTS.parent


def cchc(data_dir: Path, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCHC_")}
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**env, "CCHC_DATA_DIR": str(data_dir)})


class Drill:
    def __init__(self, workdir: Path, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = workdir
        contest_dir = one_long_period(workdir / "contest", slug="drill", count=2, seconds=args.week_seconds)
        self.settings = Settings(contest_dir=contest_dir, data_dir=workdir / "data", ingest_port=free_port(),
                                 results_port=free_port(), log_level="warning", address_limit=0)
        self.stack = Stack(self.settings, scorers=2)
        self.running = self.settings
        self.ledger = Ledger()
        self.failures: list[str] = []
        self.digests: dict[int, str] = {}
        self.times: dict[str, float] = {}
        self.between: datetime | None = None

    @property
    def base(self) -> str:
        return f"http://{self.settings.host}:{self.settings.ingest_port}"

    @property
    def desk(self) -> str:  # the committee's routes (DESIGN §6b)
        return f"http://{self.settings.host}:{self.settings.desk_port}"

    @property
    def results(self) -> str:
        return f"http://{self.settings.host}:{self.settings.results_port}"

    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.running.admin_token}"}

    async def run(self) -> None:
        self.running = await asyncio.to_thread(self.stack.start)
        contest = contest_of(self.running)
        key = {q.id: q.answer for q in contest.questions.values()}
        await self.first_base_backup()
        week = self.args.week_seconds
        until = time.monotonic() + 2 * week - 8  # the load ends before week 2 does
        load = [asyncio.create_task(client(n, self.base, self.ledger, until, key)) for n in range(self.args.clients)]
        started = contest.periods[0].start_ms / 1000
        await asyncio.sleep(max(0.0, started + week + 4 - time.time()))  # week 1 over, its settle margin passed
        await self.close_and_recompute()
        await asyncio.sleep(6)
        await self.disaster()
        await asyncio.sleep(5)  # entries keep arriving: ingest acknowledges them into Valkey
        await self.documented_restore()
        await asyncio.gather(*load)
        console.print(f"load done: {self.ledger.requests} requests; refusals {dict(self.ledger.refused)}")
        await self.reconcile()
        await asyncio.to_thread(self.stack.stop)
        await asyncio.to_thread(self.restore_before_recompute)

    async def first_base_backup(self) -> None:
        deadline = time.monotonic() + 120
        while not any("taken" in line for line in self.stack.backup_tick()):
            if time.monotonic() > deadline or (self.stack.backup_job is None and self.stack.backup_schedule is None):
                raise RuntimeError("no base backup within 120 s")
            await asyncio.sleep(0.2)
        console.print("base backup taken (cchc up takes one at once, then daily)")

    async def post(self, http: aiohttp.ClientSession, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        async with http.post(f"{self.desk}{path}", json=body, headers=self.admin()) as answer:
            return answer.status, await answer.json()

    async def close_and_recompute(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            for _ in range(60):
                status, closed = await self.post(http, "/v1/admin/periods/1/close", {"reason": "drill"})
                if status == 200:
                    break
                await asyncio.sleep(1)
            else:
                raise RuntimeError(f"week 1 did not close: {status} {closed}")
            self.digests[closed["revision"]] = closed["results_digest"]
            await asyncio.sleep(1.5)
            self.between = datetime.now(UTC)  # revision 1 published, revision 2 not yet
            await asyncio.sleep(1.5)
            async with http.get(f"{self.results}/v1/periods/1/prizes") as answer:
                prizes = await answer.json()
            winner = prizes["individual"][0]["participant_id"]
            status, _ = await self.post(http, "/v1/admin/disqualifications",
                                        {"participant_id": winner, "reason": "drill: a cheater found after the close"})
            assert status == 202, status
            status, again = await self.post(http, "/v1/admin/periods/1/recompute", {"reason": "drill"})
            assert status == 200, again
            self.digests[again["revision"]] = again["results_digest"]
        console.print(f"week 1 closed: revision 1 {self.digests[1]}; recomputed after a disqualification:"
                      f" revision 2 {self.digests[2]}")

    async def disaster(self) -> None:
        stalled = archiver_pid(self.settings.data_dir)
        os.kill(stalled, signal.SIGSTOP)  # the archive falls behind: the newest commits only on the lost disk
        await asyncio.sleep(self.args.stall_archiver)
        assert self.stack.postgres is not None
        pid = self.stack.postgres.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        self.times["disaster"] = time.monotonic()
        await asyncio.sleep(0.5)
        shutil.rmtree(self.settings.data_dir / "postgres")
        os.kill(stalled, signal.SIGCONT)
        console.print(f"[red]{time.strftime('%H:%M:%S')} kill -9 PostgreSQL, its data directory removed[/]"
                      f" (the WAL archiver had stalled for {self.args.stall_archiver:.0f} s)")

    async def documented_restore(self) -> None:
        self.times["stop"] = time.monotonic()
        await asyncio.to_thread(self.stack.stop)
        self.times["restore"] = time.monotonic()
        done = await asyncio.to_thread(cchc, self.settings.data_dir, "restore", "--to", "latest")
        self.times["restored"] = time.monotonic()
        print(done.stdout.rstrip(), flush=True)
        if done.returncode != 0:
            self.failures.append(f"cchc restore --to latest exited {done.returncode}: {done.stderr.strip()}")
            raise RuntimeError(self.failures[-1])
        if "DIGEST MISMATCH" in done.stdout:
            self.failures.append("the restore's replay found a digest mismatch")
        self.stack = Stack(self.settings, scorers=2)
        self.running = await asyncio.to_thread(self.stack.start)
        self.times["up"] = time.monotonic()
        rewound = self.stack.reconciled or []
        self.times["missing"] = sum(r.missing for r in rewound)
        console.print(f"stack up again; the restored database lacked {self.times['missing']:.0f} acknowledged"
                      " entries (committed after the archive's last position): the scorers archive them again from"
                      " the stream")
        drained = await asyncio.to_thread(wait_drained, self.running, "drill", 180)
        self.times["caught_up"] = time.monotonic()
        if not drained:
            self.failures.append("the scorers did not catch up within 180 s of the restart")

    async def reconcile(self) -> None:
        for name in self.stack.supervise():
            console.print(f"restarted {name}, which had exited")
        if not await asyncio.to_thread(wait_drained, self.running, "drill", 180):
            self.failures.append("the scorers did not catch up within 180 s after the load")
            return
        table, ok = reconcile(self.running, self.ledger)
        console.print(table)
        if not ok:
            self.failures.append("acknowledged entries lost or counted twice")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            for revision, digest in self.digests.items():
                async with http.get(f"{self.results}/v1/periods/1/prizes?revision={revision}") as answer:
                    served = (await answer.json()).get("results_digest")
                same = served == digest
                console.print(f"week 1 revision {revision}: published {digest}, served after the restore {served}"
                              f" {'[green]same[/]' if same else '[red]DIFFERENT[/]'}")
                if not same:
                    self.failures.append(f"revision {revision}'s digest changed")
        replayed = await asyncio.to_thread(cchc, self.settings.data_dir, "replay")
        console.print(replayed.stdout.strip().splitlines()[-1] if replayed.stdout.strip() else replayed.stderr)
        if replayed.returncode != 0:
            self.failures.append("cchc replay after the restore found a mismatch")

    def restore_before_recompute(self) -> None:
        assert self.between is not None
        scratch = self.workdir / "scratch"
        started = time.monotonic()
        done = cchc(self.settings.data_dir, "restore", "--to", self.between.isoformat(), "--into", str(scratch))
        print(done.stdout.rstrip() or done.stderr, flush=True)
        console.print(f"restore to {self.between.isoformat(timespec='milliseconds')} into {scratch}:"
                      f" {time.monotonic() - started:.1f} s")
        expected = f"period 1 revision 1: {self.digests[1]}  same digest"
        if done.returncode != 0 or expected not in done.stdout or "period 1 revision 2" in done.stdout:
            self.failures.append("the restore to a time before the recompute does not show revision 1 alone with"
                                 " its digest")

    def report(self) -> None:
        t = self.times
        if {"disaster", "stop", "restore", "restored", "up", "caught_up"} <= set(t):
            console.print(f"recovery point: {len(self.ledger.submissions)} acknowledged submissions and"
                          f" {len(self.ledger.participants)} registrations, 0 lost (the restored database lacked"
                          f" {t['missing']:.0f} entries; the stream still held them)")
            console.print(f"recovery time: stack stopped {t['restore'] - t['stop']:.1f} s, `cchc restore` "
                          f"{t['restored'] - t['restore']:.1f} s, stack started {t['up'] - t['restored']:.1f} s,"
                          f" scorers caught up {t['caught_up'] - t['up']:.1f} s later; from the kill to ingest"
                          f" answering again {t['up'] - t['disaster']:.1f} s (of which {t['stop'] - t['disaster']:.1f}"
                          " s of noticing, in this drill)")


def archiver_pid(data_dir: Path) -> int:
    out = subprocess.run(["pgrep", "-f", f"pg_receivewal .*{data_dir}/backups/wal"], capture_output=True, text=True)
    return int(out.stdout.split()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent simulated front-ends")
    parser.add_argument("--week-seconds", type=int, default=60, help="the length of each of the two weeks")
    parser.add_argument("--stall-archiver", type=float, default=5.0,
                        help="seconds the WAL archiver is paused before the disk dies (0: it keeps up)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="cchc-restore-drill-"))
    drill = Drill(workdir, args)
    try:
        asyncio.run(drill.run())
    except Exception as e:  # the failure is the drill's result: say it, then clean up
        traceback.print_exc()
        drill.failures.append(f"{type(e).__name__}: {e}")
    finally:
        drill.stack.stop()
        if drill.failures and (workdir / "data" / "logs").is_dir():  # the processes' own account, kept
            kept = Path(tempfile.mkdtemp(prefix="cchc-restore-drill-logs-"))
            shutil.copytree(workdir / "data" / "logs", kept, dirs_exist_ok=True)
            drill.failures.append(f"the processes' logs are kept in {kept}")
        shutil.rmtree(workdir, ignore_errors=True)
    drill.report()
    console.print(f"drill took {time.monotonic() - started:.0f} s")
    for failure in drill.failures:
        console.print(f"[red]FAILED: {failure}[/]")
    if not drill.failures:
        console.print("[green]restore drill passed: 0 lost, 0 doubled, every digest the same; the older revision"
                      " shown by a restore to a time[/]")
    return 1 if drill.failures else 0


if __name__ == "__main__":
    sys.exit(main())
