"""The committee's desk at 1 M participants / 3 M entries (DESIGN §9): a period's page, the flags and the Excel
export each within 10 s, and the close run in the desk's own process, while ingest takes a paced load of
submissions beside each — whose p99 is measured alone (at the start and again at the end: how far it moves by
itself is the noise to read the rest against), then beside each piece of the desk's work.

    .venv/bin/python -m bench.desk [--participants 1000000] [--entries 3000000] [--rate 1000] [--seconds 20]
                                   [--split-cores] [--rounds N] [--committee-nice N]
                                   [--reuse DIR] [--control]

A whole local stack (`cchc up`'s: ingest, a scorer, results, the desk as processes; embedded Valkey and PostgreSQL
in a temporary directory, a few GB) on the Nghệ An 2022 contest with two periods: the first ended a minute ago and
holds the scale data, filled straight into the projection tables by COPY (the scorer's own rate is bench.scorer's),
with realistic flags (0.2 % of entries too fast, 0.5 % of participants registered from shared addresses, 0.1 %
copied answer sheets), then vacuumed as autovacuum leaves a week's entries; the second is open and takes wrk's
submissions, each run of wrk new ones. Each phase's line says what the machine did meanwhile: the disk's writes,
Valkey's slow fsyncs and commands, the CPU of the busiest processes. Needs wrk. Loopback only.

`--split-cores`: the write path (ingest, Valkey and wrk) on the first core, everything else (PostgreSQL, the
scorer, the results tier, the desk and this bench) on the others — the two sides of DESIGN §4 on hosts of their
own, as in production, on one box: what the desk's work costs ingest's p99 when the CPU is not what they share.
`--rounds N`: N - 1 more pairs of a baseline and a recompute beside the load after the first close (a recompute
is a close's work again: a new revision), for a spread rather than one figure a phase.

`--reuse DIR`: the filled stack is kept in DIR (13 GB at 1 M: the data and the WAL archive) and the next runs
start from a copy of it (a minute instead of four). `--control`: at the end, ingest's p99 beside one busy loop per
core, as many PostgreSQL queries, then a process writing to disk with fsync — what such neighbours cost it on this
machine (the data size does not matter to it: `--participants 20000 --entries 60000 --control`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import psutil
import psycopg

from bench.ingest import WrkResult, on_valkey, parse_wrk, wrk_command
from contest.model import Contest
from eventstore.ids import uuid7
from eventstore.postgres import open_pool
from eventstore.redis_stream.client import latency_events, watch_fsync_stalls
from ingest.tokens import AttemptClaims, TokenSigner
from ops.embedded import EmbeddedValkey, free_port
from ops.stack import Stack
from ops.wiring import contest_of
from projections.live_queries import SHEET_SQL
from runtime.settings import REPO_CONTESTS, Settings

MIN_PLAUSIBLE_S = 30
_answers = msgspec.msgpack.Encoder(order="deterministic")  # as the projector stores them


def make_contest(dest: Path) -> Path:
    """Nghệ An 2022 (400 questions, 20 an attempt, its unit tree) with week 1 ended a minute ago and week 2 open."""
    shutil.copytree(REPO_CONTESTS / "nghean-2022", dest)
    toml = dest / "contest.toml"
    text = toml.read_text()
    now = datetime.now().astimezone().replace(microsecond=0)
    edges = [now - timedelta(days=7), now - timedelta(seconds=60), now + timedelta(days=1)]
    weeks = "".join(f'[[periods]]\nname = "Tuần {n}"\nstart = {a.isoformat()}\nend = {b.isoformat()}\n\n'
                    for n, (a, b) in enumerate(pairwise(edges), start=1))
    first, last = text.index("[[periods]]"), text.index("[[groups]]")
    text = text[:first] + weeks + text[last:]
    text = re.sub(r"(?m)^min_plausible_seconds = \d+", f"min_plausible_seconds = {MIN_PLAUSIBLE_S}", text)
    toml.write_text(text)
    return dest


async def fill(url: str, contest: Contest, participants: int, entries: int, seed: int = 2022) -> None:
    """Participants, their entries (random draws and answers, scored), each one's counted entry, the attempt
    starts a close checks: straight into the tables by COPY."""
    rng = random.Random(seed)
    period = contest.periods[0]
    units = [u.code for u in contest.units.values()]
    bank = sorted(contest.questions)
    key: dict[str, str] = {q.id: q.answer for q in contest.questions.values()}
    pool = open_pool(url, max_size=2)
    await pool.open()
    crowd, address = 0, ""
    pids, groups, unit_of = [], [], []
    async with pool.connection() as conn:
        async with conn.cursor() as cur, cur.copy(
                "COPY participants (participant_id, group_code, unit_code, display_name, phone_masked, id_hash,"
                " phone_hash, pii, registered_ms, address_hash) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "text", "text", "text", "text", "text", "text", "bytea", "int8", "text"])
            for n in range(participants):
                pid = uuid7(period.start_ms + n)
                group = "nhan_dan" if n % 5 == 4 else "cbccvc"
                unit = rng.choice(units) if group == "cbccvc" else None
                if rng.random() < 0.005 / 6:  # an office behind one address: six registrations from it
                    crowd = 6
                address = f"shared{n}" if crowd == 6 else address if crowd else f"a{n}"
                crowd = max(0, crowd - 1)
                pids.append(pid)
                groups.append(group)
                unit_of.append(unit)
                await copy.write_row((pid, group, unit, f"Người dự thi {n}", "0912***678", f"{n:064x}",
                                      f"{n + 10**12:064x}", b"\0" * 60, period.start_ms, address))
        best: dict[int, tuple[tuple[int, int, int, str], tuple[Any, ...]]] = {}
        last_sheet: tuple[list[str], bytes, int] | None = None
        starts: list[tuple[int, int, str]] = []  # a close counts only attempts the server started
        columns = ("attempt_id, submission_id, participant_id, period, group_code, unit_code, score, correct, questions,"
                   " duration_ms, prediction, submitted_ms, question_ids, answers, ev_ms, ev_seq, ev_idx")
        await conn.execute(f"CREATE TEMP TABLE bench_entries AS SELECT {columns} FROM entries LIMIT 0")
        async with conn.cursor() as cur, cur.copy(f"COPY bench_entries ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["text", "text", "text", "int4", "text", "text", "int4", "int4", "int4", "int8", "int8",
                            "int8", "text[]", "bytea", "int8", "int8", "int4"])
            span = period.end_ms - period.start_ms
            for n in range(entries):
                p = n % participants
                skill = 0.4 + (p % 50) / 100
                if last_sheet is not None and rng.random() < 0.001:  # a copy of the last sheet, another person
                    questions, sheet, prediction = last_sheet
                else:
                    questions = rng.sample(bank, 20)
                    answers = {q: key[q] if rng.random() < skill else rng.choice("ABCD") for q in questions}
                    sheet = _answers.encode(answers)
                    prediction = rng.choice((1_000_000, 2_000_000, 2_500_000, 3_000_000)) if rng.random() < 0.5 \
                        else rng.randint(0, 5_000_000)
                    last_sheet = (questions, sheet, prediction)
                correct = _correct(sheet, key)
                submitted = period.end_ms - int(rng.expovariate(1 / 86_400_000)) % span
                duration = rng.randint(1_000, MIN_PLAUSIBLE_S * 1000) if rng.random() < 0.002 \
                    else rng.randint(60_000, 1_200_000)
                aid = uuid7(submitted)
                row = (aid, aid, pids[p], 1, groups[p], unit_of[p], correct * 5, correct, 20, duration, prediction,
                       submitted, questions, sheet, submitted, n, 0)
                await copy.write_row(row)
                starts.append((submitted - duration, n, aid))
                rank_key = (-correct, duration, submitted, aid)
                if p not in best or rank_key < best[p][0]:
                    best[p] = (rank_key, row)
        # entries.sheet as the projector computes it (the copies' flags read it through its index)
        await conn.execute(f"INSERT INTO entries ({columns}, sheet) SELECT {columns}, {SHEET_SQL} FROM bench_entries")
        await conn.execute("DROP TABLE bench_entries")
        async with conn.cursor() as cur, cur.copy(
                "COPY events (stream_ms, stream_seq, part, idx, period, kind, body, ref) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "int8", "int2", "int4", "int4", "text", "bytea", "text"])
            for ms, seq, aid in starts:
                await copy.write_row((ms, seq, 0, 0, 1, "attempt_started", b"", aid))
        async with conn.cursor() as cur, cur.copy(
                "COPY counted (period, participant_id, group_code, unit_code, attempt_id, score, correct, duration_ms,"
                " prediction, submitted_ms) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "text", "text", "text", "text", "int4", "int4", "int8", "int8", "int8"])
            for _, r in best.values():
                await copy.write_row((1, r[2], r[4], r[5], r[0], r[6], r[7], r[9], r[10], r[11]))
        await conn.commit()
        await conn.set_autocommit(True)
        for table in ("participants", "entries", "counted", "events"):
            await conn.execute(f"VACUUM ANALYZE {table}")
    await pool.close()


_decode = msgspec.msgpack.Decoder(dict[str, str])


def _correct(sheet: bytes, key: dict[str, str]) -> int:
    return sum(1 for q, a in _decode.decode(sheet).items() if key[q] == a)


def mint(path: Path, count: int, secret: str, contest: Contest, first: int = 0) -> None:
    """`count` submissions of the open week, each its own attempt of its own participant (`load{first}`…),
    signed as ingest signs them."""
    signer = TokenSigner(secret.encode())
    period = contest.periods[1]
    now = int(time.time() * 1000)
    questions = sorted(contest.questions)[:20]
    answers = {q: "ABCD"[i % 4] for i, q in enumerate(questions)}
    unit = next(iter(contest.units))
    with path.open("wb") as out:
        for n in range(first, first + count):
            claims = AttemptClaims(uuid7(now), f"load{n}", "cbccvc", unit, period.number, now, questions)
            out.write(msgspec.json.encode({"token": signer.sign(claims), "answers": answers, "prediction": n}) + b"\n")


class Load:
    """ingest under wrk paced at `rate`, each run on submissions of its own (wrk reads its file from the top:
    a run on the same file would send duplicates, which ingest answers without a write)."""

    def __init__(self, url: str, rate: float, secret: str, contest: Contest, workdir: Path,
                 cpus: set[int] | None = None) -> None:
        self.url, self.rate, self.secret, self.contest, self.workdir = url, rate, secret, contest, workdir
        self.cpus = cpus  # the cores wrk runs on (its threads inherit them); None: any
        self.sent = 0

    def start(self, seconds: float) -> subprocess.Popen[str]:
        count = int(self.rate * (seconds + 5))
        bodies = self.workdir / f"bodies-{self.sent}.jsonl"
        mint(bodies, count, self.secret, self.contest, self.sent)
        self.sent += count
        argv, env = wrk_command(self.url, bodies, seconds, 32, rate=self.rate)
        cpus = self.cpus
        pin = None if cpus is None else lambda: os.sched_setaffinity(0, cpus)
        return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, preexec_fn=pin)


class Desk:
    """The desk over HTTP as the committee uses it: a session for the pages, the Bearer token for the routes."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Desk:
        # A connection each request: one kept idle past the server's keep-alive (a wrk run in between) is gone.
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600),
                                          cookie_jar=aiohttp.CookieJar(unsafe=True),
                                          connector=aiohttp.TCPConnector(force_close=True))
        async with self.http.get(f"{self.url}/dang-nhap") as r:
            csrf = re.search(r'name="csrf" value="([^"]+)"', await r.text())
        assert csrf is not None
        async with self.http.post(f"{self.url}/dang-nhap", data={"csrf": csrf.group(1), "name": "admin",
                                                                  "token": self.token, "next": "/"},
                                  allow_redirects=False) as r:
            assert r.status == 303, await r.text()
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.http is not None
        await self.http.close()

    async def timed(self, method: str, path: str, **kw: Any) -> tuple[float, int]:
        """Seconds and bytes of one request answered 200, the body read to its end."""
        assert self.http is not None
        started = time.perf_counter()
        async with self.http.request(method, f"{self.url}{path}", **kw) as r:
            body = await r.read()
            assert r.status == 200, (method, path, r.status, body[:500])
            return time.perf_counter() - started, len(body)


class Machine:
    """What the machine did in a phase: the bytes written to the disk that holds the stack's data
    (/proc/diskstats: PostgreSQL's, its WAL archive's and Valkey's together), what Valkey's latency monitor saw
    slower than 5 ms (its AOF fsyncs: an ack waits for its fsync, so a stall of the disk is a submission's
    latency; a `command`: Valkey kept off the CPU mid-command), and the CPU seconds of the busiest processes."""

    THRESHOLD_MS = 5

    def __init__(self, redis_url: str, data_dir: Path) -> None:
        self.redis_url = redis_url
        device = os.stat(data_dir).st_dev
        self.device = (os.major(device), os.minor(device))
        self.written = 0
        self.cpu: dict[str, float] = {}

    def _sectors_written(self) -> int:
        for line in Path("/proc/diskstats").read_text().splitlines():
            fields = line.split()
            if (int(fields[0]), int(fields[1])) == self.device:
                return int(fields[9])
        return 0

    async def start(self) -> None:
        await on_valkey(self.redis_url, watch_fsync_stalls, self.THRESHOLD_MS)
        self.written = self._sectors_written()
        self.cpu = _cpu_seconds()

    async def report(self) -> str:
        """Since start(), for the phase's line."""
        events = await on_valkey(self.redis_url, latency_events)
        written_mb = (self._sectors_written() - self.written) * 512 / 1e6
        used = sorted(((t - self.cpu.get(c, 0), c) for c, t in _cpu_seconds().items()), reverse=True)[:5]
        valkey = ", ".join(f"{name} {len(ms)}× (≤ {max(ms)} ms)" for name, ms in sorted(events.items())) or "none"
        return (f"\n    disk {written_mb:,.0f} MB written; Valkey > {self.THRESHOLD_MS} ms: {valkey}"
                f"\n    CPU s: " + ", ".join(f"{name} {t:.1f}" for t, name in used))


def _cpu_seconds() -> dict[str, float]:
    """CPU seconds so far by process name (ours by tier: `python -m ops.cli ingest` is `ingest`)."""
    out: dict[str, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        if argv[1:3] == [b"-m", b"ops.cli"] and len(argv) > 3:
            name = argv[3].decode()
        elif argv[1:3] == [b"-m", b"bench.desk"]:
            name = "bench (minting)"
        elif name.startswith("kworker"):  # named by their work of the moment
            name = "the kernel's workers"
        fields = text[text.rindex(")") + 2:].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def split_cores(stack: Stack) -> set[int]:
    """The write path (ingest's processes, Valkey) on the first core, the rest of the stack (PostgreSQL's server
    with every process it runs now — the backends it forks later inherit its cores —, the scorer, results, the desk)
    and this bench on the others. Returns the write path's cores (wrk's too)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("--split-cores needs two cores")
    write_path, rest = {cores[0]}, set(cores[1:])
    assert isinstance(stack.valkey, EmbeddedValkey) and stack.valkey.proc is not None and stack.postgres is not None
    roots = {name: child.pid for name, child in stack.children.items()}  # the tiers, by the stack's names
    roots |= {"valkey-server": stack.valkey.proc.pid, "postgres": stack.postgres.pid() or 0}
    sides: dict[str, list[str]] = {}
    for name, pid in roots.items():
        cpus = write_path if name.startswith(("ingest", "valkey")) else rest
        root = psutil.Process(pid)
        for process in (root, *root.children(recursive=True)):
            with contextlib.suppress(psutil.NoSuchProcess):  # gone meanwhile
                for thread in process.threads():  # an affinity is a thread's
                    os.sched_setaffinity(thread.id, cpus)
                sides.setdefault(str(sorted(cpus)), []).append(name if process is root else process.name())
    os.sched_setaffinity(0, rest)  # this bench: the committee's browser
    print("; ".join(f"cores {cpus}: " + ", ".join(f"{name} ×{names.count(name)}" for name in sorted(set(names)))
                    for cpus, names in sides.items()) + "; wrk with the first, this bench with the others")
    return write_path


def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="cchc-bench-desk-"))
    saved: Path | None = args.reuse
    filled = saved is not None and (saved / "filled").exists()
    if filled:  # the saved stack, its period 1 not closed yet: copied with its owners and modes (PostgreSQL's)
        assert saved is not None
        subprocess.run(["cp", "-a", f"{saved}/.", str(workdir)], check=True)
        os.sync()  # the copy on disk before anything is measured
        print(f"the filled stack copied from {saved} (its period 1 ended when it was filled)")
    else:
        make_contest(workdir / "contest")
    valkey_dir = None
    if args.valkey_dir is not None:  # Valkey's files elsewhere: data/valkey a link to a directory of its own there
        valkey_dir = Path(tempfile.mkdtemp(prefix="cchc-bench-desk-valkey-", dir=args.valkey_dir))
        (workdir / "data").mkdir()  # a fresh stack (not with --reuse): nothing of Valkey's there yet
        (workdir / "data" / "valkey").symlink_to(valkey_dir, target_is_directory=True)

    def stack() -> Stack:
        return Stack(Settings(contest_dir=workdir / "contest", data_dir=workdir / "data", ingest_port=free_port(),
                              results_port=free_port(), desk_port=free_port(), log_level="warning", address_limit=0,
                              committee_nice=args.committee_nice),
                     scorers=1)

    running = stack()
    try:
        settings = running.start()  # on this thread, outside any event loop (it runs its own)
        if not filled:
            asyncio.run(fill_stack(args, settings))
            if saved is not None:  # kept for the next runs, as it is before any close
                running.stop()
                subprocess.run(["rm", "-rf", str(saved)], check=True)
                subprocess.run(["cp", "-a", str(workdir), str(saved)], check=True)
                (saved / "filled").touch()
                os.sync()
                running = stack()
                settings = running.start()
        write_path = split_cores(running) if args.split_cores else None
        asyncio.run(measure(args, settings, workdir, write_path))
    finally:
        running.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        if valkey_dir is not None:
            shutil.rmtree(valkey_dir, ignore_errors=True)


async def fill_stack(args: argparse.Namespace, running: Settings) -> None:
    started = time.perf_counter()
    await fill(running.database_url or "", contest_of(running), args.participants, args.entries)
    async with await psycopg.AsyncConnection.connect(running.database_url or "", autocommit=True) as conn:
        # As a week of entries stand at its close: vacuumed by autovacuum as they came (their visibility map set, their
        # rows' hint bits written) — not as a COPY leaves them, which the close's and the export's reads would first
        # write back (a GB of the disk, and autovacuum's pass over 3 M rows, beside the load).
        await conn.execute("VACUUM (ANALYZE) participants, entries")
        await conn.execute("CHECKPOINT")
    os.sync()
    print(f"filled {args.participants:,} participants and {args.entries:,} entries in"
          f" {time.perf_counter() - started:.0f} s")


async def measure(args: argparse.Namespace, running: Settings, workdir: Path, write_path: set[int] | None) -> None:
    contest = contest_of(running)
    ingest = Load(f"http://{running.host}:{running.ingest_port}", args.rate, running.secret or "", contest, workdir,
                  write_path)
    token = running.admin_token or ""
    bearer = {"Authorization": f"Bearer {token}"}
    machine = Machine(running.redis_url or "", running.data_dir)
    loads: dict[str, WrkResult] = {}

    async def beside(label: str, work: Awaitable[None]) -> None:
        """The desk's `work` with ingest under the paced load; the load's figures under `label`."""
        await machine.start()
        load = ingest.start(90)  # stopped when the work is done
        time.sleep(2)
        try:
            await work
        finally:
            load.send_signal(signal.SIGINT)  # wrk prints its summary on SIGINT
            loads[label] = parse_wrk(load.communicate(timeout=60)[0])
        print(loads[label].line(f"ingest {label}") + await machine.report())

    async with Desk(f"http://{running.host}:{running.desk_port}", token) as desk:
        async def show(method: str, path: str, target: str = "target ≤ 10 s", **kw: Any) -> None:
            seconds, size = await desk.timed(method, path, **kw)
            print(f"{method} {path:<38} {seconds:6.1f} s  ({size / 1e6:.1f} MB)   {target}")

        async def reads(*more: str) -> None:
            await show("GET", "/ky/1")
            await show("GET", "/v1/admin/periods/1/flags", headers=bearer)
            for path in more:
                await show("GET", path)

        async def alone(label: str) -> None:
            await machine.start()
            load = ingest.start(args.seconds)
            loads[label] = parse_wrk(load.communicate(timeout=args.seconds + 60)[0])
            print(loads[label].line(f"ingest {label}, {args.rate:,.0f} req/s offered") + await machine.report())

        await alone("alone")
        await beside("beside the open period's page and flags", reads())
        await beside("beside the close", show("POST", "/v1/admin/periods/1/close",
                                               "(in the desk's process) target ≤ 30 s", headers=bearer))
        for round_ in range(2, args.rounds + 1):
            await alone(f"alone, round {round_}")
            await beside(f"beside a recompute, round {round_}",
                         show("POST", "/v1/admin/periods/1/recompute", "(a close's work: a new revision)",
                              headers=bearer, json={"reason": f"bench round {round_}"}))
        await beside("beside the closed period's page, flags and Excel", reads("/xuat/ky-1.xlsx"))
        await beside("beside the committee's copy", show("POST", "/v1/admin/exports", "(with the flags sheet)",
                                                         headers=bearer, json={"period": "1", "format": "xlsx"}))
        await alone("alone again")  # the baseline twice: how far it moves by itself is the noise to read against
        if args.control:  # last: a disk writer's writes go on being flushed after it stops
            control(ingest, args, workdir, running.database_url or "")
        report(loads)


# A disk writer as heavy as a close's: 64 MB at a time, each made durable, until it is stopped.
WRITER = """import os, sys
block = os.urandom(64 << 20)
with open(sys.argv[1], "wb") as out:
    while True:
        out.write(block); out.flush(); os.fsync(out.fileno())
        if out.tell() > 4 << 30: out.seek(0)
"""


# A query of the committee's weight: PostgreSQL's CPU (in its own processes) for as long as it is let run.
PG_BUSY = """import sys, psycopg
psycopg.connect(sys.argv[1]).execute("SELECT count(*) FROM generate_series(1, 10000000000)")
"""


def control(ingest: Load, args: argparse.Namespace, workdir: Path, database_url: str) -> None:
    """Ingest's p99 beside CPU-bound neighbours (a busy loop per core; as many PostgreSQL queries), then beside a
    disk writer."""
    cores = os.cpu_count() or 1
    for label, neighbours in ((f"{cores} busy loops", [[sys.executable, "-c", "while True: pass"]] * cores),
                              (f"{cores} PostgreSQL queries", [[sys.executable, "-c", PG_BUSY, database_url]] * cores),
                              ("a disk writer (fsync)", [[sys.executable, "-c", WRITER, str(workdir / "io")]])):
        running = [subprocess.Popen(argv) for argv in neighbours]
        try:
            load = ingest.start(args.seconds)
            beside = parse_wrk(load.communicate(timeout=args.seconds + 60)[0])
        finally:
            for process in running:
                process.kill()
                process.wait()
            (workdir / "io").unlink(missing_ok=True)
        print(beside.line(f"ingest beside {label} (control)"))


def report(loads: dict[str, WrkResult]) -> None:
    """Each phase's p99 against the highest of the baselines (how far the load moves by itself), and the medians
    of the baselines and of the closes and recomputes."""
    alone = {label: r for label, r in loads.items() if label.startswith("alone")}
    high = max(r.p99_ms for r in alone.values())
    closes = [r.p99_ms for label, r in loads.items() if label == "beside the close" or "recompute" in label]
    print(f"submission p99 alone {', '.join(f'{r.p99_ms:.1f}' for r in alone.values())} ms; "
          + "; ".join(f"{label} {r.p99_ms:.1f} ms ({'within them' if r.p99_ms <= high else f'+{r.p99_ms - high:.1f}'})"
                      for label, r in loads.items() if label not in alone)
          + f"; non-2xx {sum(r.non_2xx for r in loads.values())}")
    print(f"median p99: alone {statistics.median(r.p99_ms for r in alone.values()):.1f} ms,"
          f" beside a close or recompute {statistics.median(closes):.1f} ms ({len(alone)} and {len(closes)} runs)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=3_000_000)
    parser.add_argument("--rate", type=float, default=1000.0, help="submissions a second offered beside the desk")
    parser.add_argument("--seconds", type=float, default=20.0, help="of ingest load alone (the baseline)")
    parser.add_argument("--control", action="store_true", help="ingest's p99 beside a busy loop per core, too")
    parser.add_argument("--split-cores", action="store_true",
                        help="the write path (ingest, Valkey, wrk) on the first core, the rest on the others")
    parser.add_argument("--committee-nice", type=int, default=Settings().committee_nice, metavar="N",
                        choices=range(20),
                        help="CCHC_COMMITTEE_NICE for the stack (the committee's work at that CPU priority)")
    parser.add_argument("--rounds", type=int, default=1, help="pairs of a baseline and a close or recompute beside the load")
    parser.add_argument("--valkey-dir", type=Path, metavar="DIR",
                        help="Valkey's files in DIR instead of beside PostgreSQL's (/dev/shm: a stand-in for the disk of"
                             " its own it has in production, to tell the disk's share of ingest's p99 from the CPU's)")
    parser.add_argument("--reuse", type=Path, metavar="DIR",
                        help="keep the filled stack in DIR (13 GB at 1 M) and start from a copy of it next time (the same"
                             " day: its period 1 ends when it is filled, its period 2 a day later)")
    args = parser.parse_args(argv)
    if args.valkey_dir is not None and args.reuse is not None:
        parser.error("--valkey-dir and --reuse: the saved stack keeps Valkey's files beside PostgreSQL's")
    run(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
