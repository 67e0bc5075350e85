"""The backup directory's bookkeeping without a server: WAL names and positions, which base backup a restore
starts from, when `cchc up` takes the next one, what `--to` accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from eventstore.postgres import lsn, lsn_text, segment_end
from ops.backup import BackupDir, BackupError, BaseBackup, Schedule, base_for, parse_time
from ops.restore import set_aside_abandoned_wal

MB16 = 16 * 1024 * 1024


def backup(name: str, finished: datetime, timeline: int = 1) -> BaseBackup:
    return BaseBackup(name=name, started_at=finished - timedelta(seconds=5), finished_at=finished, timeline=timeline,
                      start_lsn="0/2000028", end_lsn="0/2000120", start_wal="000000010000000000000002", size_bytes=1)


def test_wal_positions_and_segment_ends() -> None:
    assert lsn("16/B374D848") == 0x16B374D848 and lsn_text(lsn("16/B374D848")) == "16/B374D848"
    assert segment_end("000000010000000000000003", MB16) == lsn("0/4000000")
    assert segment_end("0000000200000001000000FF", MB16) == lsn("2/0")  # the last segment of log 1
    assert segment_end("00000002.history", MB16) is None
    assert segment_end("000000010000000000000002.00000028.backup", MB16) is None


def test_the_archive_lists_segments_in_wal_order(tmp_path: Path) -> None:
    backups = BackupDir(tmp_path)
    backups.wal.mkdir(parents=True)
    for name in ("000000010000000000000003.partial", "000000010000000000000002", "00000002.history",
                 "000000020000000000000003", "000000020000000000000004.partial", "notes.txt"):
        (backups.wal / name).write_bytes(b"x")
    files = backups.wal_files()
    assert [w.name for w in files] == ["000000010000000000000002", "000000010000000000000003.partial",
                                       "000000020000000000000003", "000000020000000000000004.partial"]
    assert files[-1].partial and files[-1].segment_name == "000000020000000000000004" and files[-1].timeline == 2


def wal_archive(root: Path, names: list[str], history: str, timeline: int = 2) -> tuple[BackupDir, Path]:
    backups = BackupDir(root / "backups")
    backups.wal.mkdir(parents=True)
    for name in names:
        (backups.wal / name).write_bytes(b"x")
    (root / "pg_wal").mkdir()
    (root / "pg_wal" / f"{timeline:08X}.history").write_text(history)
    return backups, root


def test_a_restore_to_the_end_sets_no_wal_aside(tmp_path: Path) -> None:
    """The archive ends where the new timeline branches off (segment numbers past log 0 included)."""
    names = [f"0000000100000006{seg:08X}" for seg in range(0xC0, 0xD5)] + ["0000000100000006000000D5.partial"]
    backups, dest = wal_archive(tmp_path, names, "1\t6/D5E5D730\tno recovery target specified\n")
    assert set_aside_abandoned_wal(backups, dest, 2, "t", size=MB16) == []
    assert len(backups.wal_files()) == len(names)


def test_a_restore_to_a_time_sets_the_abandoned_future_aside(tmp_path: Path) -> None:
    names = [f"0000000100000006{seg:08X}" for seg in range(0xC0, 0xD5)] + ["0000000100000006000000D5.partial"]
    backups, dest = wal_archive(tmp_path, names, "1\t6/C8001000\tbefore 2022-08-29 07:55:00+07\n")
    said = set_aside_abandoned_wal(backups, dest, 2, "t", size=MB16)
    kept = [w.name for w in backups.wal_files()]
    assert kept == names[:8]  # up to C7; C8, where the new timeline branched, is complete: aside too
    assert said and (backups.wal / "abandoned-t" / names[-1]).exists()


def test_a_restore_starts_from_the_newest_base_backup_before_its_target(tmp_path: Path) -> None:
    t0 = datetime(2022, 8, 22, 1, 0, tzinfo=UTC)
    found = [backup("a", t0), backup("b", t0 + timedelta(days=1))]
    assert base_for(found, None).name == "b"
    assert base_for(found, t0 + timedelta(hours=23)).name == "a"
    with pytest.raises(BackupError):
        base_for(found, t0 - timedelta(seconds=1))
    backups = BackupDir(tmp_path)
    backups.base.mkdir(parents=True)
    for b in found:
        (backups.base / b.name).mkdir()
        (backups.base / f"{b.name}.json").write_bytes(msgspec.json.encode(b))
    (backups.base / "c.json").write_bytes(msgspec.json.encode(backup("c", t0)))  # its directory is gone
    assert [b.name for b in backups.backups()] == ["a", "b"]


def test_the_schedule_takes_one_at_once_on_a_new_timeline_then_daily(tmp_path: Path) -> None:
    backups = BackupDir(tmp_path)
    backups.base.mkdir(parents=True)
    taken = backup("a", datetime(2022, 8, 22, 1, 0, tzinfo=UTC))
    (backups.base / "a").mkdir()
    (backups.base / "a.json").write_bytes(msgspec.json.encode(taken))
    now = taken.finished_at.timestamp() + 3600
    assert Schedule(backups, timeline=2).due(now)  # none of the server's timeline (after a restore)
    daily = Schedule(backups, timeline=1)
    assert not daily.due(now) and daily.due(taken.finished_at.timestamp() + 24 * 3600)
    daily.done(now, ok=False)
    assert not daily.due(now + 60) and daily.due(now + 900)


def test_to_needs_an_iso_time_with_its_offset() -> None:
    assert parse_time("2022-08-29T07:55:00+07:00") == datetime(2022, 8, 29, 0, 55, tzinfo=UTC)
    with pytest.raises(BackupError, match="offset"):
        parse_time("2022-08-29T07:55:00")
    with pytest.raises(BackupError, match="ISO-8601"):
        parse_time("monday")
