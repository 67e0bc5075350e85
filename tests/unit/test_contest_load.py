"""Loading contest folders: the presets load, and every mistake names its file, line and field."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contest.load import ContestError, load_contest
from tests.paths import CONTESTS, TEST_CONTEST


def test_presets_load() -> None:
    nghean = load_contest(CONTESTS / "nghean-2022")
    assert len(nghean.periods) == 4 and len(nghean.questions) == 400
    assert nghean.first_start().isoformat() == "2022-08-22T08:00:00+07:00"
    assert nghean.periods[-1].end_ms - nghean.periods[0].start_ms == 28 * 86400 * 1000
    assert [p.count for p in nghean.groups[0].prizes] == [1, 2, 3, 10]
    assert all(h > 0 for h in nghean.prize_unit_headcounts().values())
    haiphong = load_contest(CONTESTS / "haiphong-2023")
    assert len(haiphong.periods) == 4 and haiphong.unit_prizes.min_participation_rate == 0.5
    assert haiphong.periods[-1].end_ms - haiphong.periods[-1].start_ms == 5 * 86400 * 1000  # ends 17/11
    quangnam = load_contest(CONTESTS / "quangnam-2023")
    assert len(quangnam.periods) == 11 and [g.code for g in quangnam.groups] == ["cbccvc"]
    quangbinh = load_contest(CONTESTS / "quangbinh-2021-r2")
    assert len(quangbinh.periods) == 1 and quangbinh.rules.attempts_per_period == 30
    for preset in (haiphong, quangnam, quangbinh):
        assert len(preset.questions) == 400 and all(h > 0 for h in preset.prize_unit_headcounts().values())
    demo = load_contest(CONTESTS / "demo", anchor=datetime(2030, 1, 1, tzinfo=UTC))
    assert len(demo.periods) == 3 and demo.periods[1].start_ms == demo.periods[0].end_ms


def test_relative_schedule_needs_an_anchor() -> None:
    with pytest.raises(ContestError, match="schedule"):
        load_contest(CONTESTS / "demo")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "c"
    shutil.copytree(TEST_CONTEST, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(("file", "old", "new", "message"), [
    ("units.csv", "B,Sở B,,so_nganh,5", "B,Sở B,,so_nganh,0", r"units.csv:4: headcount: a prize unit"),
    ("units.csv", "B,Sở B,,so_nganh,5", "B,Sở B,,so_nganh,five", r"units.csv:4: headcount"),
    ("units.csv", "C1,Xã C1,C,xa,0", "C1,Xã C1,Z,xa,0", r"units.csv:6: parent_code: unknown parent 'Z'"),
    ("units.csv", "A,Sở A,,so_nganh,4", "A,Sở A,A1,so_nganh,4", r"units.csv:2: parent_code: .*cycle"),
    ("units.csv", "B,Sở B,,so_nganh,5", "A,Sở B,,so_nganh,5", r"units.csv:4: code: duplicate unit 'A'"),
    ("units.csv", "code,name", "kode,name", r"units.csv:1: header"),
    ("questions.csv", "Q1,,Câu hỏi 1,a,b,c,d,B", "Q1,,Câu hỏi 1,a,b,c,d,E", r"questions.csv:2: answer"),
    ("questions.csv", "N11,nhan_dan", "N11,nobody", r"questions.csv:12: group: unknown group 'nobody'"),
    ("questions.csv", "Q2,,Câu hỏi 2", "Q1,,Câu hỏi 2", r"questions.csv:3: id: duplicate question"),
    ("excluded.csv", "001099999999", "12345", r"excluded.csv:2: id_number"),
    ("contest.toml", 'attempt_selection = "best"', 'attempt_selection = "worst"', r"contest.toml: \[contest\]"),
    ("contest.toml", "questions_per_attempt = 5", "questions_per_attempt = 50",
     r"questions.csv: group: group 'cbccvc' has 10 questions"),
    ("contest.toml", "end = 2030-01-14T08:00:00+07:00", "end = 2030-01-15T08:00:00+07:00",
     r"contest.toml: periods\[2\]: .*overlap"),
    ("contest.toml", 'slug = "test"', 'slug = "a b"', r"contest.toml: slug"),
    ("contest.toml", "[[groups]]", "[[groups]\n", r"contest.toml"),
])
def test_errors_name_file_line_field(folder: Path, file: str, old: str, new: str, message: str) -> None:
    edit(folder / file, old, new)
    with pytest.raises(ContestError, match=message):
        load_contest(folder)


def test_missing_file_is_named(folder: Path) -> None:
    (folder / "units.csv").unlink()
    with pytest.raises(ContestError, match=r"units\.csv: file not found"):
        load_contest(folder)
