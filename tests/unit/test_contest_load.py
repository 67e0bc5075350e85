"""Loading contest folders: the presets load, and every mistake names its file, line and field."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from contest.identity import ERASED_NAME
from contest.load import ContestError, load_contest
from runtime.settings import Settings
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
    ("units.csv", "B,Sở B,,so_nganh,5", "B,Sở B,,so_nganh,0", r"units.csv:4: headcount: prize unit 'B'"),
    ("units.csv", "B,Sở B,,so_nganh,5", "B,Sở B,,so_nganh,five", r"units.csv:4: headcount"),
    ("units.csv", "B,Sở B,,so_nganh,5", "B,Sở B,,so_nganh,-5", r"units.csv:4: headcount"),
    ("units.csv", "B,Sở B,,so_nganh,5", "B,Sở B,,so_nganh,٥", r"units.csv:4: headcount"),
    ("units.csv", "B,Sở B,,so_nganh,5", "B,Sở B,,so_nganh,5,extra", r"units.csv:4: 6 columns"),
    ("units.csv", "C1,Xã C1,C,xa,0", "C1,Xã C1,Z,xa,0", r"units.csv:6: parent_code: unknown parent 'Z'"),
    ("units.csv", "A,Sở A,,so_nganh,4", "A,Sở A,A1,so_nganh,4", r"units.csv:2: parent_code: .*cycle"),
    ("units.csv", "B,Sở B,,so_nganh,5", "A,Sở B,,so_nganh,5", r"units.csv:4: code: duplicate unit 'A'"),
    ("units.csv", "code,name", "kode,name", r"units.csv:1: header"),
    ("questions.csv", "Q1,,Câu hỏi 1,a,b,c,d,B", "Q1,,Câu hỏi 1,a,b,c,d,E", r"questions.csv:2: answer"),
    ("questions.csv", "N11,nhan_dan", "N11,nobody", r"questions.csv:12: group: unknown group 'nobody'"),
    ("questions.csv", "Q2,,Câu hỏi 2", "Q1,,Câu hỏi 2", r"questions.csv:3: id: duplicate question"),
    ("excluded.csv", "001099999999", "12345", r"excluded.csv:2: id_number"),
    ("contest.toml", 'attempt_selection = "best"', 'attempt_selection = "worst"',
     r"contest.toml:11: contest.attempt_selection: Invalid enum value 'worst'"),
    # a misspelt key is an error naming its file, line and key, never a silent default
    ("contest.toml", "one_prize_per_person = false", "one_prize_per_persn = false",
     r"contest.toml:14: contest.one_prize_per_persn: unknown key"),
    ("contest.toml", "counts_for_units = false", 'counts_for_units = "false"',
     r"contest.toml:37: groups\[2\].counts_for_units: Expected `bool`, got `str`"),
    ("contest.toml", "final_count = 2", "final_cont = 2", r"contest.toml:43: unit_prizes.final_cont: unknown key"),
    ("contest.toml", "final_count = 2", "final_count = 4",
     r"contest.toml:43: unit_prizes.final_count: 4 is more than the 3 prize units"),
    ("contest.toml", "weekly_count = 1", "weekly_count = -1", r"contest.toml:41: unit_prizes.weekly_count: must not"),
    ("contest.toml", "[unit_prizes]", "[unit_prizes]\nweight_score = -0.3", r"unit_prizes.weight_score: must not"),
    ("contest.toml", "[unit_prizes]", "[unit_prizes]\nmin_participation_rate = 1.5", r"min_participation_rate"),
    ("contest.toml", "[unit_prizes]", "[unit_priszes]", r"contest.toml:40: unit_priszes: unknown key"),
    ("contest.toml", "count = 2}]", "count = -2}]", r"contest.toml:31: groups\[1\].prizes\[3\].count: must not"),
    ("contest.toml", 'code = "consolation"', 'code = "special"', r"groups\[1\].prizes\[3\].code: must be one of"),
    ("contest.toml", 'code = "consolation"', 'kode = "consolation"', r"contest.toml:31: groups\[1\].prizes\[3\].kode"),
    ("contest.toml", "questions_per_attempt = 5", "questions_per_attempt = 0",
     r"contest.toml:6: contest.questions_per_attempt: must be positive"),
    ("contest.toml", "questions_per_attempt = 5", "questions_per_attempt = 5.0",
     r"contest.toml:6: contest.questions_per_attempt: Expected `int`, got `float`"),
    ("contest.toml", "start = 2030-01-07T08:00:00+07:00", "start = 2030-01-07",
     r"contest.toml:19: periods\[1\].start: Expected `datetime`, got `date`"),
    ("contest.toml", 'name = "Tuần 1"', 'nam = "Tuần 1"', r"contest.toml:18: periods\[1\].nam: unknown key"),
    ("contest.toml", "[unit_prizes]", '[[unit_targets]]\nkind = "nowhere"\nrate = 0.5\n[unit_prizes]',
     r"contest.toml:41: unit_targets\[1\].kind: no unit in units.csv has kind 'nowhere'"),
    ("contest.toml", "[unit_prizes]", '[[unit_targets]]\nkind = "huyen"\nrate = 80\n[unit_prizes]',
     r"contest.toml:42: unit_targets\[1\].rate: must be above 0 and at most 1"),
    ("contest.toml", 'slug = "test"\n', "", r"contest.toml:2: contest.slug: required key is missing"),
    ("contest.toml", "questions_per_attempt = 5", "questions_per_attempt = 50",
     r"questions.csv: group: group 'cbccvc' has 10 questions"),
    ("contest.toml", "end = 2030-01-14T08:00:00+07:00", "end = 2030-01-15T08:00:00+07:00",
     r"contest.toml:24: periods\[2\].start: .*overlap"),
    ("contest.toml", 'slug = "test"', 'slug = "a b"', r"contest.toml:3: contest.slug: slug must be"),
    ("contest.toml", "[[groups]]", "[[groups]\n", r"contest.toml"),
])
def test_errors_name_file_line_field(folder: Path, file: str, old: str, new: str, message: str) -> None:
    edit(folder / file, old, new)
    with pytest.raises(ContestError, match=message):
        load_contest(folder)


def test_headcount_of_a_prize_unit_is_checked_after_aggregation(folder: Path) -> None:
    # C has 0 of its own but its commune counts: the tree's total is what a prize unit needs.
    edit(folder / "units.csv", "C,Huyện C,,huyen,10", "C,Huyện C,,huyen,0")
    edit(folder / "units.csv", "C1,Xã C1,C,xa,0", "C1,Xã C1,C,xa,7")
    assert load_contest(folder).prize_unit_headcounts()["C"] == 7


def test_missing_file_is_named(folder: Path) -> None:
    (folder / "units.csv").unlink()
    with pytest.raises(ContestError, match=r"units\.csv: file not found"):
        load_contest(folder)


def test_a_rehearsal_shifts_the_calendar_to_start_now() -> None:
    real = load_contest(CONTESTS / "nghean-2022")
    start = int(datetime(2030, 3, 4, 1, 2, 3, tzinfo=UTC).timestamp() * 1000)
    rehearsal = real.rehearse(start)
    assert rehearsal.rehearsal and rehearsal.slug == "nghean-2022-thi-thu" and rehearsal.periods[0].start_ms == start
    shift = start - real.periods[0].start_ms
    assert [(p.start_ms - shift, p.end_ms - shift) for p in rehearsal.periods] == [
        (p.start_ms, p.end_ms) for p in real.periods]  # durations and gaps kept
    assert rehearsal.rehearse(start).slug == rehearsal.slug  # no second suffix
    assert real.privacy is not None and real.privacy.notice.startswith("# Thông báo")


def test_a_schedule_may_make_its_last_period_longer() -> None:
    demo = load_contest(CONTESTS / "demo", anchor=datetime(2030, 1, 1, tzinfo=UTC))
    lengths = [p.end_ms - p.start_ms for p in demo.periods]
    assert lengths == [30_000, 30_000, 600_000]
def _as_xlsx(folder: Path, edit_rows: Any = None) -> Path:
    """The folder's questions.csv written as questions.xlsx (the first sheet; header on row 1), the CSV gone."""
    import csv

    from openpyxl import Workbook

    with (folder / "questions.csv").open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    if edit_rows is not None:
        edit_rows(rows)
    book = Workbook()
    sheet = book.active
    for row in rows:
        sheet.append([int(v) if v.isdigit() else v for v in row])  # a spreadsheet turns digits into numbers
    book.save(folder / "questions.xlsx")
    (folder / "questions.csv").unlink()
    return folder / "questions.xlsx"


def test_a_bank_in_excel_loads_as_its_csv(folder: Path) -> None:
    before = load_contest(folder).questions
    _as_xlsx(folder)
    assert load_contest(folder).questions == before


@pytest.mark.parametrize(("change", "message"), [
    (lambda rows: rows[2].__setitem__(7, ""), r"questions.xlsx:3: answer: missing"),
    (lambda rows: rows[3].__setitem__(7, "E"), r"questions.xlsx:4: answer: must be one of A, B, C, D"),
    (lambda rows: rows[4].__setitem__(0, rows[1][0]), r"questions.xlsx:5: id: duplicate question"),
    (lambda rows: rows[2].__setitem__(5, ""), r"questions.xlsx:3: C: must not be empty"),
    (lambda rows: rows[0].__setitem__(7, "dap_an"), r"questions.xlsx:1: the first sheet's first row must be"),
])
def test_a_bad_row_of_an_excel_bank_is_named(folder: Path, change: Any, message: str) -> None:
    _as_xlsx(folder, change)
    with pytest.raises(ContestError, match=message):
        load_contest(folder)


def test_a_bank_in_both_forms_is_refused(folder: Path) -> None:
    shutil.copy(folder / "questions.csv", folder / "keep.csv")
    _as_xlsx(folder)
    shutil.copy(folder / "keep.csv", folder / "questions.csv")
    with pytest.raises(ContestError, match=r"questions\.xlsx: questions\.csv is here too"):
        load_contest(folder)
    (folder / "questions.csv").unlink()
    (folder / "questions.xlsx").write_bytes(b"not a workbook")
    with pytest.raises(ContestError, match=r"questions\.xlsx: not an Excel workbook"):
        load_contest(folder)


@pytest.mark.parametrize("preset", sorted(p.name for p in CONTESTS.iterdir() if (p / "contest.toml").exists()))
def test_every_preset_has_a_template_notice_and_a_prediction_question(preset: str) -> None:
    """DESIGN §7 and §10: a notice in Vietnamese, marked as a template the organiser must review, saying what an
    erasure does and where plain copies of a name age out; and the tie-breaker's question as the page asks it."""
    contest = load_contest(CONTESTS / preset, anchor=datetime(2030, 1, 1, tzinfo=UTC))
    assert contest.privacy is not None and contest.privacy.version and contest.privacy.controller
    notice = contest.privacy.notice
    assert "BẢN MẪU" in notice and "Tôi đồng ý với thông báo xử lý dữ liệu cá nhân" in notice
    assert "## Khi dữ liệu của bạn bị xoá" in notice and ERASED_NAME in notice and "bản sao lưu" in notice
    assert f"mặc định {Settings().backup_retention_days} ngày" in notice  # the backups' retention, as shipped
    assert contest.rules.prediction_question.strip().endswith("?")
