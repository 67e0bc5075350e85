"""Backups as an operator runs them (DESIGN §10): `cchc up` streams the WAL and takes a base backup; the data
directory is lost while the archive lags; `cchc restore` rebuilds and checks it; the stack started again gets
every acknowledged entry back from the stream, each once, and an erasure made after the archive's last position
is applied again from the erasure log (their CCCD, phone and birth date neither in plain nor opened by CCHC_PII_KEY
in the restored database); `cchc restore --to … --into …` shows an older time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from contest.identity import ERASED_NAME
from eventstore.pii import PiiVault
from loadtests.chaos import wait_drained
from ops.backup import BackupDir
from ops.embedded import free_port
from ops.presets import one_long_period
from ops.stack import Stack
from runtime.settings import Settings
from tests.front_end import front_end
from tests.paths import ROOT
from tests.plain_data import absent, pg_dump, recover, secrets_of


def cchc(data_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCHC_")}
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**env, "CCHC_DATA_DIR": str(data_dir)})


def events(settings: Settings) -> tuple[int, int, int]:
    """Events, entries, and entries counted twice."""
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM entries), (SELECT count(*)"
                           " FROM (SELECT 1 FROM entries GROUP BY attempt_id HAVING count(*) > 1) d)").fetchone()
    assert row is not None
    return row


def display_name(settings: Settings, participant_id: str) -> str:
    assert settings.database_url
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT display_name FROM participants WHERE participant_id = %s",
                           (participant_id,)).fetchone()
    assert row is not None
    return str(row[0])


PERSON = {"full_name": "Trần Thị Bình", "id_number": "038090001234", "phone": "0912345678",
          "birth_date": "1990-01-01", "group": "nhan_dan"}


def archiver_pid(data_dir: Path) -> int:
    out = subprocess.run(["pgrep", "-f", f"pg_receivewal .*{data_dir}/backups/wal"], capture_output=True, text=True)
    return int(out.stdout.split()[0])


def test_a_lost_data_directory_is_restored_and_every_entry_counted_once(tmp_path: Path) -> None:
    settings = Settings(contest_dir=one_long_period(tmp_path / "contest", slug="backup"), data_dir=tmp_path / "data",
                        ingest_port=free_port(), results_port=free_port(), log_level="warning", address_limit=0)
    stack = Stack(settings, scorers=1)
    try:
        running = stack.start()
        deadline = time.monotonic() + 60
        while not any("taken" in line for line in stack.backup_tick()):  # the first base backup, at once
            assert time.monotonic() < deadline and stack.backup_job is not None
            time.sleep(0.2)
        done = cchc(settings.data_dir, "simulate", "--participants", "150", "--entries", "300")
        assert done.returncode == 0, done.stderr
        _, registered, _ = front_end(f"http://127.0.0.1:{running.ingest_port}/v1/participants", PERSON)
        erased = str(registered["participant_id"])  # archived: in the WAL the restore replays, sealed under their key
        assert wait_drained(running, "backup", timeout=60)
        assert running.database_url
        secrets, vault = secrets_of(PERSON), PiiVault(running.pii_key_bytes())
        _, blobs = pg_dump(running.database_url)
        assert secrets[0] in recover(blobs, [erased], vault)  # the search finds them while they are there
        before_lag = datetime.now(UTC)
        time.sleep(1.1)
        os.kill(archiver := archiver_pid(settings.data_dir), signal.SIGSTOP)  # the archive stops here
        done = cchc(settings.data_dir, "simulate", "--participants", "50", "--entries", "100")
        assert done.returncode == 0, done.stderr
        # an erasure the archive never gets: the restore applies it again
        done = cchc(settings.data_dir, "erase", erased, "--reason", "the participant asked")
        assert done.returncode == 0, done.stdout + done.stderr
        assert wait_drained(running, "backup", timeout=60)
        total, entries, doubled = events(running)
        assert stack.postgres is not None
        pid = stack.postgres.pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # the disk dies
        time.sleep(0.5)
        subprocess.run(["rm", "-rf", str(settings.data_dir / "postgres")], check=True)
        os.kill(archiver, signal.SIGCONT)
    finally:
        stack.stop()
    listed = cchc(settings.data_dir, "backups")
    assert "restorable: from" in listed.stdout and "base backup" in listed.stdout, listed.stdout + listed.stderr
    done = cchc(settings.data_dir, "restore", "--to", "latest")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "verified: base backup" in done.stdout and "checked: the event table holds" in done.stdout
    assert "1 logged, 1 participant(s)" in done.stdout, done.stdout  # the erasure log, applied again
    restored = int(done.stdout.split("the event table holds ")[1].split()[0].replace(",", ""))
    assert restored < total  # the archive lagged: the newest entries are only in the stream
    again = Stack(settings, scorers=1)
    try:
        running = again.start()
        assert again.reconciled and sum(r.missing for r in again.reconciled) > 0
        assert wait_drained(running, "backup", timeout=60)
        assert events(running) == (total, entries, doubled) and doubled == 0  # the erasure's event came back too
        assert display_name(running, erased) == ERASED_NAME
        # Crypto-shredding through the restore: nothing of theirs in plain, nor anything CCHC_PII_KEY opens.
        assert running.database_url
        text, blobs = pg_dump(running.database_url)
        absent(secrets, text, "the restored database")
        absent(secrets, recover(blobs, [erased], vault), "what CCHC_PII_KEY opens in the restored database")
    finally:
        again.stop()
    scratch = tmp_path / "scratch"
    done = cchc(settings.data_dir, "restore", "--to", before_lag.isoformat(), "--into", str(scratch))
    assert done.returncode == 0, done.stdout + done.stderr
    older = int(done.stdout.split("the event table holds ")[1].split()[0].replace(",", ""))
    assert 0 < older <= restored and (scratch / "postgres" / "PG_VERSION").exists()
    assert not (scratch / "postgres" / "recovery.signal").exists()
    assert list((settings.data_dir).glob("postgres.damaged-*")) == []  # it was removed, nothing to move aside
    assert BackupDir(settings.backups).backups()  # the restore left the backups as they were
