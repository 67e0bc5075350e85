"""`cchc export`, `cchc participation --out`, `cchc questions --out`: the committee's files, Excel or CSV.

A period (xlsx): individual prizes, the weekly unit prize, the final ranking of every group, the unit
ranking, the flags to review, and what the file is (revision, digest). `final`: the final unit prizes,
the whole-contest unit ranking and the participation report. Headers are Vietnamese. The committee's copy
and the public copy differ only in personal data: the public one has no phone column, no flags sheet (a
suspicion about a named person), and never the winners' CCCD, phone and birth date, which the committee's
copy holds only when asked for (decrypted with CCHC_PII_KEY) and only for the prize winners; that file is
created readable by its owner only (0600) from its first byte.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from admin.flags import period_flags
from admin.xlsx import Workbook, stream_rows
from contest.flags import Flag
from contest.model import Contest
from contest.participation import UnitParticipation
from contest.questions import QuestionStat
from contest.timefmt import iso_ms
from eventstore.pii import PiiVault
from projections.close import NotClosed
from projections.live_queries import LiveQueries
from projections.personal_queries import PersonalQueries
from projections.results_queries import ResultsQueries
from runtime.files import private_file

PHONE = "Điện thoại (ẩn)"  # the one personal column of the ranking: left out of the public copy
RANKING_HEADER = ["Bảng", "Hạng", "Giải", "Mã người dự thi", "Họ và tên", PHONE, "Mã đơn vị", "Đơn vị", "Điểm",
                  "Số câu đúng", "Thời gian (giây)", "Dự đoán", "Sai số dự đoán", "Thời điểm nộp", "Mã lượt thi"]
WINNERS_HEADER = ["Bảng", "Giải", "Hạng", "Mã người dự thi", "Họ và tên", "Mã đơn vị", "Điểm", "Thời gian (giây)",
                  "Dự đoán", "Sai số dự đoán", "Mã lượt thi"]
PERSONAL_HEADER = ["Số CCCD", "Điện thoại", "Ngày sinh"]
UNIT_PRIZE_HEADER = ["Giải", "Hạng", "Mã đơn vị", "Đơn vị", "Điểm đơn vị"]
UNITS_HEADER = ["Hạng", "Mã đơn vị", "Đơn vị", "Số người (biên chế)", "Số người dự thi", "Số bài thi",
                "Tỷ lệ tham gia", "Điểm trung bình / tối đa", "Điểm đơn vị"]
FINAL_HEADER = ["Giải", "Hạng", "Mã đơn vị", "Đơn vị", "Điểm đơn vị", "Số người dự thi", "Số bài thi"]
PARTICIPATION_HEADER = ["Mã đơn vị", "Đơn vị", "Mã đơn vị cấp trên", "Loại đơn vị", "Số người (biên chế)",
                        "Số người dự thi", "Tỷ lệ tham gia", "Chỉ tiêu", "Dưới chỉ tiêu"]
QUESTIONS_HEADER = ["Mã câu hỏi", "Bảng", "Đáp án", "Số lần ra đề", "Số lần đúng", "Tỷ lệ đúng",
                    "Nhóm điểm cao: số lần ra đề", "Nhóm điểm cao: số lần đúng", "Nhóm điểm cao: tỷ lệ đúng",
                    "Nhóm điểm cao chọn A", "B", "C", "D", "Bỏ trống", "Nghi đáp án sai", "Đáp án nhóm điểm cao chọn"]
FLAGS_HEADER = ["Loại cờ", "Mã người dự thi", "Mã lượt thi", "Chi tiết"]
REMINDERS_HEADER = ["Mã đơn vị", "Đơn vị", "Họ và tên", "Điện thoại (ẩn)", "Mã người dự thi"]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula
Row = list[Any]


def csv_safe(row: Sequence[Any]) -> list[Any]:
    """A CSV row no spreadsheet turns into a formula: a text cell starting like one gets a leading `'`."""
    return [f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v for v in row]


def _write_csv(out: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    count = 0
    with out.open("w", encoding="utf-8-sig", newline="") as fh:  # BOM: Excel opens Vietnamese text right
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow(csv_safe(row))
            count += 1
    return count


def _without(header: Sequence[str], row: Sequence[Any], column: str) -> Row:
    i = list(header).index(column)
    return [*row[:i], *row[i + 1:]]


# -- a closed period -----------------------------------------------------------------------------

async def ranking_rows(published: ResultsQueries, contest: Contest, period: int, revision: int,
                       prizes: dict[str, str]) -> AsyncIterator[Row]:
    """The final ranking of every group, in rank order, streamed in pages (RANKING_HEADER's columns)."""
    for group in contest.groups:
        last = 0
        while rows := await published.leaderboard(period, revision, group.code, 10_000, last):
            for r in rows:
                unit = contest.units.get(r.unit_code) if r.unit_code else None
                yield [group.name, r.rank, prizes.get(r.participant_id, ""), r.participant_id, r.display_name,
                       r.phone_masked, r.unit_code or "", unit.name if unit else "", r.score, r.correct,
                       round(r.duration_ms / 1000, 3), r.prediction, r.prediction_error,
                       iso_ms(r.submitted_ms, contest.tz), r.attempt_id]
            last = rows[-1].rank or 0


async def export(live: LiveQueries, published: ResultsQueries, contest: Contest, period: int, out: Path, *,
                 fmt: str, revision: int | None = None, vault: PiiVault | None = None, public: bool = False) -> int:
    """Write a closed period's file; returns the number of ranking rows. `vault` adds winners' personal
    data (the committee's copy only); `public` leaves out every personal column and the flags."""
    if public and vault is not None:
        raise ValueError("the public copy never carries personal data")
    result = await published.result(period, revision)
    if result is None:
        raise NotClosed(f"period {period} has no results{f' revision {revision}' if revision else ''}: close it first")
    document = json.loads(result.prizes)
    prize_of = {p["participant_id"]: p["prize_name"] for p in document["individual"]}
    ranking_header = [c for c in RANKING_HEADER if not (public and c == PHONE)]

    async def ranking() -> AsyncIterator[Row]:
        async for row in ranking_rows(published, contest, period, result.revision, prize_of):
            yield _without(RANKING_HEADER, row, PHONE) if public else row

    if fmt == "csv":
        count = 0
        with _opener(vault)(out, "w", encoding="utf-8-sig", newline="") as fh:  # streamed: it may rank a million
            writer = csv.writer(fh)
            writer.writerow(ranking_header)
            async for row in ranking():
                writer.writerow(csv_safe(row))
                count += 1
        return count
    with _opener(vault)(out, "wb") as fh:
        book = Workbook(fh)
        try:
            count = await _period_book(book, live, published, contest, period, result.revision, document, result,
                                       prize_of, ranking_header, vault, public)
        finally:
            book.close()
    return count


def _opener(vault: PiiVault | None) -> Callable[..., Any]:
    """With personal data, a file its owner only may read, from its creation on."""
    return private_file if vault is not None else _plain_file


@contextmanager
def _plain_file(path: Path, mode: str, **options: Any) -> Iterator[IO[Any]]:
    with path.open(mode, **options) as file:
        yield file


async def _period_book(book: Workbook, live: LiveQueries, published: ResultsQueries, contest: Contest, period: int,
                       revision: int, document: dict[str, Any], result: Any, prize_of: dict[str, str],
                       ranking_header: list[str], vault: PiiVault | None, public: bool) -> int:
    # The flags are read while the ranking streams (a second of the database's time at 1 M, on its own connection).
    flags = None if public else asyncio.create_task(period_flags(live, contest, period))
    try:
        return await _period_sheets(book, live, published, contest, period, revision, document, result, prize_of,
                                    ranking_header, vault, public, flags)
    finally:
        if flags is not None and not flags.done():  # the ranking failed first: its error is the one that leaves
            flags.cancel()
        if flags is not None:
            await asyncio.gather(flags, return_exceptions=True)  # its connection back in the pool first


async def _period_sheets(book: Workbook, live: LiveQueries, published: ResultsQueries, contest: Contest, period: int,
                         revision: int, document: dict[str, Any], result: Any, prize_of: dict[str, str],
                         ranking_header: list[str], vault: PiiVault | None, public: bool,
                         flags: asyncio.Task[list[Flag]] | None) -> int:
    personal = await _personal_data(live, vault, list(prize_of)) if vault else {}
    groups = {g.code: g.name for g in contest.groups}
    book.table("Giải cá nhân", WINNERS_HEADER + (PERSONAL_HEADER if vault else []), (
        [groups.get(p["group"], p["group"]), p["prize_name"], p["rank"], p["participant_id"], p["display_name"],
         p["unit_code"], p["score"], p["duration_ms"] / 1000, p["prediction"], p["prediction_error"], p["attempt_id"]]
        + (list(personal.get(p["participant_id"], ("", "", ""))) if vault else []) for p in document["individual"]))
    book.table("Giải tập thể", UNIT_PRIZE_HEADER, (["Giải tập thể tuần", u["rank"], u["unit_code"], u["unit_name"],
                                                   u["unit_score"]] for u in document["unit"]))
    units = {code: book.shared(code) + book.shared(u.name) for code, u in contest.units.items()}
    prizes = {pid: book.shared(name) for pid, name in prize_of.items()}

    end = contest.periods[period - 1].end_ms if 0 < period <= len(contest.periods) else 0
    offset = contest.tz.utcoffset(datetime.fromtimestamp(end / 1000))  # the contest's offset (Vietnam: no DST)
    offset_ms = int(offset.total_seconds() * 1000) if offset is not None else 0

    async def chunks() -> AsyncIterator[tuple[bytes, int]]:
        for group in contest.groups:
            async for chunk in published.ranking_sheet(period, revision, group.code,
                                                       {"group": book.shared(group.name), "units": units, "prizes": prizes},
                                                       utc_offset_ms=offset_ms, phone=not public):
                yield chunk

    count = await stream_rows(book, "Xếp hạng", ranking_header, chunks())
    book.table("Đơn vị", UNITS_HEADER, ([u["rank"], u["unit_code"], u["unit_name"], u["headcount"], u["participants"],
                                         u["entries"], u["participation_rate"], u["avg_score_ratio"], u["unit_score"]]
                                        for u in json.loads(result.units)))
    if flags is not None:  # what the committee reviews before publishing (not in the public copy)
        book.table("Cờ cần xem", FLAGS_HEADER, ([f.kind, f.participant_id, f.attempt_id or "", f.detail]
                                                for f in await flags))
    _about(book, contest, [["Tuần / đợt", period], ["Phiên bản (revision)", document["revision"]],
                           ["Giá trị thực của câu dự đoán", document["actual"]],
                           ["Mã kiểm tra (results_digest)", result.results_digest]], public, vault is not None)
    return count


def _about(book: Workbook, contest: Contest, lines: list[Row], public: bool, personal: bool) -> None:
    book.table("Thông tin", ["Mục", "Giá trị"], [
        ["Cuộc thi", contest.title], *lines,
        ["Bản", "công khai (không có dữ liệu cá nhân)" if public else "của Ban Tổ chức"],
        ["Dữ liệu cá nhân", "CCCD, điện thoại, ngày sinh của người đoạt giải (đã giải mã)" if personal
         else "không" if public else "chỉ số điện thoại đã ẩn"]])


ERASED_CELL = "(đã xoá theo yêu cầu)"  # a winner whose personal data was erased (DESIGN §10): nothing to open


async def _personal_data(live: LiveQueries, vault: PiiVault, participant_ids: list[str]
                         ) -> dict[str, tuple[str, str, str]]:
    """Each winner's CCCD, phone and birth date, opened with their data key (CCHC_PII_KEY unwraps it); an
    erased winner's cannot be opened by anyone any more."""
    out = {}
    for pid, sealed in (await PersonalQueries(live.pool).sealed(participant_ids)).items():
        data = None if sealed.erased else vault.open_personal(pid, sealed.pii, sealed.wrapped_key)
        out[pid] = (data.id_number, data.phone, data.birth_date) if data else (ERASED_CELL,) * 3
    return out


# -- the whole contest ---------------------------------------------------------------------------

def participation_rows(rows: Sequence[UnitParticipation]) -> list[Row]:
    """The participation report as the export writes it (PARTICIPATION_HEADER's columns)."""
    return [[u.unit_code, u.unit_name, u.parent_code or "", u.kind, u.headcount, u.participants,
             u.participation_rate, "" if u.target is None else u.target, "có" if u.below_target else "không"]
            for u in rows]


async def export_final(published: ResultsQueries, contest: Contest, participation: Sequence[UnitParticipation],
                       out: Path, *, fmt: str) -> int:
    """Write the final unit results (and the whole contest's participation); returns the ranking's rows.
    Nothing here is personal: the committee's and the public copy are the same file."""
    closed = await published.latest_revisions()
    document = await published.final_document()
    if len(closed) < len(contest.periods) or document is None:
        raise NotClosed("final results come when every period is closed")
    prize = {u["unit_code"]: "Giải tập thể chung cuộc" for u in document["unit"]}
    ranking = [[prize.get(u["unit_code"], ""), u["rank"], u["unit_code"], u["unit_name"], u["unit_score"],
                u["participants"], u["entries"]] for u in document["ranking"]]
    if fmt == "csv":
        return _write_csv(out, FINAL_HEADER, ranking)
    book = Workbook(out)
    book.table("Giải tập thể chung cuộc", FINAL_HEADER, (row for row in ranking if row[0]))
    book.table("Xếp hạng đơn vị", FINAL_HEADER, ranking)
    book.table("Tham gia", PARTICIPATION_HEADER, participation_rows(participation))
    _about(book, contest, [["Số tuần / đợt đã chốt", len(closed)]], True, False)
    book.close()
    return len(ranking)


def _single_table(contest: Contest, out: Path, fmt: str, title: str, header: Sequence[str], table: list[Row],
                  about: list[Row], public: bool) -> int:
    """A file of one table: a CSV, or a workbook with that sheet and what the file is."""
    if fmt == "csv":
        return _write_csv(out, header, table)
    book = Workbook(out)
    book.table(title, header, table)
    _about(book, contest, about, public, False)
    book.close()
    return len(table)


def export_participation(contest: Contest, rows: Sequence[UnitParticipation], period: int | None, out: Path, *,
                         fmt: str) -> int:
    """Write the participation report: every unit against its kind's target (as GET /v1/participation)."""
    return _single_table(contest, out, fmt, "Tham gia", PARTICIPATION_HEADER, participation_rows(rows),
                         [["Tuần / đợt", "cả cuộc thi" if period is None else period]], True)


def question_rows(stats: Sequence[QuestionStat]) -> list[Row]:
    def rate(value: float | None) -> Any:
        return "" if value is None else value

    return [[s.question_id, s.group or "", s.answer, s.drawn, s.right, rate(s.right_rate), s.top_drawn, s.top_right,
             rate(s.top_right_rate), *(s.top_choices.get(c, 0) for c in ("A", "B", "C", "D", "")),
             "có" if s.likely_wrong_key else "", s.suggested_answer or ""] for s in stats]


def export_questions(contest: Contest, stats: Sequence[QuestionStat], period: int | None, out: Path, *,
                     fmt: str) -> int:
    """Write the question statistics (the committee's: it shows the answer key)."""
    return _single_table(contest, out, fmt, "Thống kê câu hỏi", QUESTIONS_HEADER, question_rows(stats),
                         [["Tuần / đợt", "cả cuộc thi" if period is None else period],
                          ["Nhóm điểm cao", "27 % bài thi có điểm cao nhất"]], False)
