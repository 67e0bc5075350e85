"""The local stack: embedded servers (unless URLs are set) plus ingest, scorers, results and the committee's
desk as processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path

from eventstore.postgres import archive_state, migrate, open_pool
from ops.backup import BackupDir, Schedule
from ops.embedded import (
    EmbeddedPostgres,
    EmbeddedPostgresReplica,
    EmbeddedValkey,
    EmbeddedValkeyCluster,
    die_with_parent,
    free_port,
)
from ops.restore import Rewound, reconcile
from runtime.settings import (
    SECRETS_OF,
    STACK_ENV,
    Settings,
    load_or_create_state,
    redact,
    without_secrets,
    write_env_file,
)


class StackError(RuntimeError):
    """The stack could not start; the message says which part and where its log is."""


FORGET_EVERY_S = 3600.0  # `cchc forget --expired` (DESIGN §10: the retention erasure, scheduled by `cchc up`)


class Stack:
    def __init__(self, settings: Settings, *, scorers: int = 2, ingests: int = 1, cluster: int = 0,
                 read_replica: bool = False, secure_desk: bool = False) -> None:
        self.settings = settings
        self.secure_desk = secure_desk  # the desk's cookie Secure even on loopback (browsers trust http://localhost)
        self.scorers = scorers
        self.ingests = ingests
        self.cluster = cluster  # N > 0: an N-master Valkey Cluster (one replica each) instead of one Valkey
        self.read_replica = read_replica  # the results API on a streaming replica of the embedded PostgreSQL
        self.replica: EmbeddedPostgresReplica | None = None
        self.valkey: EmbeddedValkey | EmbeddedValkeyCluster | None = None
        self.postgres: EmbeddedPostgres | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.commands: dict[str, tuple[str, ...]] = {}
        self.metrics_ports: dict[str, int] = {}
        self.secrets_path: Path | None = None
        self.log_dir = settings.data_dir / "logs"
        self.jobs: dict[str, subprocess.Popen[bytes]] = {}  # scheduled one-shot commands (never restarted)
        self.next_forget = 0.0  # monotonic time of the next `cchc forget --expired`
        self.backup_schedule: Schedule | None = None  # base backups of the embedded PostgreSQL (ops/backup.py)
        self.backup_job: subprocess.Popen[bytes] | None = None
        self.reconciled: list[Rewound] | None = None  # what a restore left to archive again (ops/restore.py)

    def start(self) -> Settings:
        """Start everything; returns the settings the children run with (URLs and secrets filled)."""
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # The secrets first: the embedded servers start with their passwords (any local user could
        # connect otherwise), and the URLs the processes are handed carry them.
        s, self.secrets_path, passwords = load_or_create_state(s, anchor_now=datetime.now(UTC).replace(microsecond=0))
        if not s.redis_url:
            self.valkey = EmbeddedValkeyCluster(s.data_dir / f"valkey-cluster-{self.cluster}", self.cluster,
                                                password=passwords.valkey) \
                if self.cluster else EmbeddedValkey(s.data_dir / "valkey", password=passwords.valkey)
            self.valkey.start()
            s = replace(s, redis_url=self.valkey.url)
        if not s.database_url:
            self.postgres = EmbeddedPostgres(s.data_dir / "postgres", password=passwords.postgres)
            s = replace(s, database_url=self.postgres.start())
        if _loopback(s.host) and not self.secure_desk:  # plain HTTP on this machine only: no HTTPS to ask for
            s = replace(s, desk_insecure=True)
        self.settings = s
        asyncio.run(migrate_schema(s))
        if self.read_replica and self.postgres is not None and not s.database_read_url:
            self.replica = EmbeddedPostgresReplica(self.postgres, s.data_dir / "postgres-replica")
            s = self.settings = replace(s, database_read_url=self.replica.start(s.database_url or ""))
        if self.postgres is not None:  # its WAL streamed into the archive from now on, a base backup daily
            self._spawn("wal-archiver", "wal-archiver", metrics=False)
            self.backup_schedule = Schedule(BackupDir(s.backups), asyncio.run(server_timeline(s)))
        self.reconciled = asyncio.run(reconcile(s))  # after a restore: before any process reads the database
        for n in range(1, self.ingests + 1):  # several share the port (SO_REUSEPORT)
            self._spawn("ingest" if self.ingests == 1 else f"ingest-{n}", "ingest", "--port", str(s.ingest_port))
        self._spawn("results", "results", "--port", str(s.results_port))
        self._spawn("desk", "desk", "--port", str(s.desk_port))
        for n in range(1, self.scorers + 1):
            self._spawn(f"scorer-{n}", "scorer", "--name", f"scorer-{n}")
        self._write_targets()
        write_env_file(self.stack_env, self.settings.env())
        self._wait_ready(f"http://{s.host}:{s.ingest_port}/readyz", "ingest")
        self._wait_ready(f"http://{s.host}:{s.results_port}/readyz", "results")
        self._wait_ready(f"http://{s.host}:{s.desk_port}/readyz", "desk")
        return s

    def _spawn(self, name: str, *args: str, metrics: bool = True) -> None:
        if metrics and name not in self.metrics_ports:
            self.metrics_ports[name] = free_port()
            args = (*args, "--metrics-port", str(self.metrics_ports[name]))
        self.commands[name] = args
        # Each process only the secrets it uses: ingest and the desk theirs, the scorers and results none.
        env = without_secrets({**os.environ, **self.settings.env()}, SECRETS_OF.get(args[0], ()))
        with (self.log_dir / f"{name}.log").open("ab") as log:  # the child keeps its own descriptor
            # A session of its own: Linux shares the CPU between sessions (autogroup) as systemd shares it between
            # services, so a desk busy with a close takes its share, not ingest's (BENCHMARKS.md, issue 23).
            self.children[name] = subprocess.Popen([sys.executable, "-m", "ops.cli", *args], env=env,
                                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                   preexec_fn=die_with_parent, start_new_session=True)

    def _wait_ready(self, url: str, name: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_children()
            try:
                with urllib.request.urlopen(url, timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise StackError(f"{name} not ready after {timeout:.0f} s; see {self.log_dir / name}.log")

    @property
    def stack_env(self) -> Path:
        return self.settings.data_dir / STACK_ENV

    @property
    def targets_path(self) -> Path:
        return self.settings.data_dir / "prometheus-targets.json"

    def _write_targets(self) -> None:
        """Every process's metrics endpoint, for Prometheus's file_sd (ops/prometheus.yml)."""
        groups = [{"targets": [f"{self.settings.metrics_host}:{port}"],
                   "labels": {"job": f"cchc-{name.split('-')[0]}", "process": name}}
                  for name, port in self.metrics_ports.items()]
        self.targets_path.write_text(json.dumps(groups, indent=2))

    def kill(self, name: str) -> None:
        """kill -9 one child (chaos tests)."""
        self.children[name].kill()
        self.children[name].wait()

    def respawn(self, name: str) -> None:
        self._spawn(name, *self.commands[name])

    def supervise(self) -> list[str]:
        """Restart every child that exited; returns their names (`cchc up` logs them)."""
        dead = [name for name, proc in self.children.items() if proc.poll() is not None]
        for name in dead:
            self.respawn(name)
        return dead

    def run_scheduled(self, now: float) -> None:
        """`cchc forget --expired` at start and every hour, one at a time (it needs no secret): once every
        period is closed it releases erased participants' identity claims, and `retention_days` after the last
        close it erases everyone's personal data. Its output goes to logs/forget.log."""
        running = self.jobs.get("forget")
        if now < self.next_forget or (running is not None and running.poll() is None):
            return
        self.next_forget = now + FORGET_EVERY_S
        with (self.log_dir / "forget.log").open("ab") as log:
            self.jobs["forget"] = subprocess.Popen(
                [sys.executable, "-m", "ops.cli", "forget", "--expired", "--by", "cchc up (retention)"],
                env=without_secrets({**os.environ, **self.settings.env()}), stdin=subprocess.DEVNULL, stdout=log,
                stderr=log, preexec_fn=die_with_parent)

    def backup_tick(self, now: float | None = None) -> list[str]:
        """Take the base backup that is due (`cchc backup` in a process of its own, logged to logs/backup.log);
        returns what to tell the operator."""
        if self.backup_schedule is None:
            return []
        now = time.time() if now is None else now
        if self.backup_job is not None:
            code = self.backup_job.poll()
            if code is None:
                return []
            self.backup_job = None
            self.backup_schedule.done(now, ok=code == 0)
            return ["cchc: base backup taken" if code == 0 else
                    f"cchc: base backup FAILED ({code}); see {self.log_dir / 'backup.log'} (tried again in 15 min)"]
        if not self.backup_schedule.due(now):
            return []
        env = without_secrets({**os.environ, **self.settings.env()})
        with (self.log_dir / "backup.log").open("ab") as log:
            self.backup_job = subprocess.Popen([sys.executable, "-m", "ops.cli", "backup"], env=env,
                                               stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                               preexec_fn=die_with_parent)
        return [f"cchc: base backup started into {self.backup_schedule.backups.base}"]

    def check_children(self) -> None:
        for name, proc in self.children.items():
            if proc.poll() is not None:
                raise StackError(f"{name} exited with {proc.returncode}; see {self.log_dir / name}.log")

    def stop(self, timeout: float = 15.0) -> None:
        # The WAL archiver last, after PostgreSQL: it receives the WAL up to the shutdown.
        archiver = self.children.pop("wal-archiver", None)
        if self.backup_job is not None and self.backup_job.poll() is None:
            self.backup_job.terminate()  # an interrupted base backup is removed by the next one
        for proc in [*self.children.values(), *self.jobs.values()]:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in [*self.children.values(), *self.jobs.values()]:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.children.clear()
        self.jobs.clear()
        self.stack_env.unlink(missing_ok=True)
        if self.replica is not None:
            self.replica.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if archiver is not None:
            archiver.terminate()
            try:
                archiver.wait(5)
            except subprocess.TimeoutExpired:
                archiver.kill()
                archiver.wait()
        if self.backup_job is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.backup_job.wait(10)
        if self.valkey is not None:
            self.valkey.stop()

    def ready_line(self) -> str:
        s = self.settings
        return (f"cchc ready: ingest http://{s.host}:{s.ingest_port} (the quiz page: /)"
                f"  results http://{s.host}:{s.results_port}{'  REHEARSAL (thi thử)' if s.rehearsal else ''}"
                f"  desk http://{s.host}:{s.desk_port}/"
                f"  scorers {self.scorers}  partitions {s.partitions}"
                f"  redis {redact(s.redis_url)}{f' (cluster of {self.cluster} masters + replicas)' if self.cluster else ''}"
                f"  postgres {redact(s.database_url)}"
                + (f" (results read {redact(s.database_read_url)})" if s.database_read_url else "") +
                f"  secrets {self.secrets_path}  logs {self.log_dir}/  metrics targets {self.targets_path}"
                + (f"  backups {s.backups} (WAL streamed, a base backup daily)" if self.backup_schedule else ""))


async def server_timeline(settings: Settings) -> int:
    """The PostgreSQL server's current timeline (a restore starts a new one)."""
    _, database_url = settings.require_servers()
    pool = open_pool(database_url, max_size=1)
    await pool.open()
    try:
        return (await archive_state(pool)).timeline
    finally:
        await pool.close()


def _loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


async def migrate_schema(settings: Settings) -> None:
    """The schema, with the event table's and the entries' partitions for the contest's periods."""
    from ops.wiring import contest_of

    _, database_url = settings.require_servers()
    periods = [p.number for p in contest_of(settings).periods]
    pool = open_pool(database_url, max_size=1)
    await pool.open()
    try:
        await migrate(pool, periods)
    finally:
        await pool.close()
