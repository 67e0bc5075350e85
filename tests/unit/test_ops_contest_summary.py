"""What `cchc contest check` warns about: a contest without a privacy notice, and retention_days = 0 (the
winners' personal-data export must be made before the first retention erasure)."""

from __future__ import annotations

import msgspec

from contest.load import load_contest
from contest.model import Privacy
from ops.contest_summary import warnings
from tests.paths import TEST_CONTEST


def test_a_contest_without_a_notice_or_keeping_nothing_is_warned_about() -> None:
    contest = load_contest(TEST_CONTEST)
    assert contest.privacy is None and "[privacy]" in warnings(contest)[0]
    kept = msgspec.structs.replace(contest, privacy=Privacy("2030-01-01", "Văn phòng UBND tỉnh", "Thông báo…", 90))
    assert warnings(kept) == []
    at_once = msgspec.structs.replace(kept, privacy=Privacy("2030-01-01", "Văn phòng UBND tỉnh", "Thông báo…", 0))
    [said] = warnings(at_once)
    assert "retention_days = 0" in said and "--personal-data" in said
