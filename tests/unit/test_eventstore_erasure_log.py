"""The erasure log beside the backups: whole lines, appended and fsynced, readable by its owner only; a torn
last line (a crash mid-write) is skipped, counted."""

from __future__ import annotations

import stat
from pathlib import Path

from eventstore.erasure_log import LOG_NAME, ErasureLog, LoggedErasure


def test_erasures_are_appended_and_read_back_since_a_time(tmp_path: Path) -> None:
    log = ErasureLog(tmp_path / "backups")
    assert log.read() == ([], 0)  # none yet: nothing to apply
    log.append(["p1"], 1000, "participant")
    log.append(["p2", "p3"], 2000, "cli:an")
    assert log.read() == ([LoggedErasure(["p1"], 1000, "participant"), LoggedErasure(["p2", "p3"], 2000, "cli:an")], 0)
    assert log.read(since_ms=1500) == ([LoggedErasure(["p2", "p3"], 2000, "cli:an")], 0)
    assert stat.S_IMODE((tmp_path / "backups" / LOG_NAME).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o700


def test_a_torn_last_line_is_skipped_and_counted(tmp_path: Path) -> None:
    log = ErasureLog(tmp_path)
    log.append(["p1"], 1000)
    with (tmp_path / LOG_NAME).open("ab") as fh:
        fh.write(b'{"participant_ids":["p2"],"erased')
    assert log.read() == ([LoggedErasure(["p1"], 1000)], 1)
