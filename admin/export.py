"""`cchc export`: a closed period's results for the organising committee, as Excel or CSV.

xlsx: the individual prizes, the weekly unit prize, the full final ranking of every group and
the unit ranking, one sheet each. csv: the final ranking of every group with a prize column.
Winners' CCCD, phone and birth date are decrypted (CCHC_PII_KEY) only when asked for, and only
for the prize winners: the committee's winner list; every other row carries the masked phone.
"""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from admin.flags import period_flags
from contest.model import Contest
from contest.timefmt import iso_ms
from eventstore.pii import PiiVault
from projections.close import NotClosed
from projections.live_queries import LiveQueries
from projections.results_queries import ResultsQueries

RANKING_HEADER = ["group", "rank", "prize", "participant_id", "display_name", "phone_masked", "unit_code", "unit_name",
                  "score", "correct", "duration_s", "prediction", "prediction_error", "submitted_at", "attempt_id"]


async def ranking_rows(published: ResultsQueries, contest: Contest, period: int, revision: int,
                       prizes: dict[str, str]) -> AsyncIterator[list[Any]]:
    """The final ranking of every group, in rank order, streamed in pages."""
    for group in contest.groups:
        last = 0
        while rows := await published.leaderboard(period, revision, group.code, 10_000, last):
            for r in rows:
                unit = contest.units.get(r.unit_code) if r.unit_code else None
                yield [group.code, r.rank, prizes.get(r.participant_id, ""), r.participant_id, r.display_name,
                       r.phone_masked, r.unit_code or "", unit.name if unit else "", r.score, r.correct,
                       round(r.duration_ms / 1000, 3), r.prediction, r.prediction_error,
                       iso_ms(r.submitted_ms, contest.tz), r.attempt_id]
            last = rows[-1].rank or 0


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula


def csv_safe(row: Sequence[Any]) -> list[Any]:
    """A CSV row no spreadsheet turns into a formula: a text cell starting like one gets a leading `'`."""
    return [f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v for v in row]


def text_cells(sheet: Any, row: Sequence[Any]) -> list[Any]:
    """An xlsx row whose text cells are stored as text, never as formulas (openpyxl would make a
    string starting with `=` a formula); numbers stay numbers."""
    cells = []
    for value in row:
        if isinstance(value, str):
            cell = WriteOnlyCell(sheet, value=value)
            cell.data_type = "s"
            cells.append(cell)
        else:
            cells.append(value)
    return cells


class _Book:
    """A write-only workbook whose every sheet appends rows through text_cells()."""

    def __init__(self) -> None:
        self.book = Workbook(write_only=True)

    def sheet(self, title: str) -> Callable[[Sequence[Any]], None]:
        sheet = self.book.create_sheet(title)
        return lambda row: sheet.append(text_cells(sheet, row))


async def export(live: LiveQueries, published: ResultsQueries, contest: Contest, period: int, out: Path, *,
                 fmt: str, revision: int | None = None,
                 vault: PiiVault | None = None) -> int:
    """Write the export; returns the number of ranking rows. `vault` adds winners' personal data."""
    result = await published.result(period, revision)
    if result is None:
        raise NotClosed(f"period {period} has no results{f' revision {revision}' if revision else ''}: close it first")
    document = json.loads(result.prizes)
    prize_of = {p["participant_id"]: p["prize_name"] for p in document["individual"]}
    rows = ranking_rows(published, contest, period, result.revision, prize_of)
    if fmt == "csv":
        count = 0
        with out.open("w", encoding="utf-8-sig", newline="") as fh:  # BOM: Excel opens Vietnamese text right
            writer = csv.writer(fh)
            writer.writerow(RANKING_HEADER)
            async for row in rows:
                writer.writerow(csv_safe(row))
                count += 1
        return count
    book = _Book()
    winners = book.sheet("Giải cá nhân")
    personal = await _personal_data(live, vault, list(prize_of)) if vault else {}
    winners(["group", "prize", "rank", "participant_id", "display_name", "unit_code", "score", "duration_s",
                    "prediction", "prediction_error", "attempt_id"]
                   + (["id_number", "phone", "birth_date"] if vault else []))
    for p in document["individual"]:
        winners([p["group"], p["prize_name"], p["rank"], p["participant_id"], p["display_name"], p["unit_code"],
                        p["score"], p["duration_ms"] / 1000, p["prediction"], p["prediction_error"], p["attempt_id"]]
                       + (list(personal.get(p["participant_id"], ("", "", ""))) if vault else []))
    units = book.sheet("Giải tập thể")
    units(["prize", "rank", "unit_code", "unit_name", "unit_score"])
    for u in document["unit"]:
        units([u["prize"], u["rank"], u["unit_code"], u["unit_name"], u["unit_score"]])
    ranking = book.sheet("Xếp hạng")
    ranking(RANKING_HEADER)
    count = 0
    async for row in rows:
        ranking(row)
        count += 1
    unit_sheet = book.sheet("Đơn vị")
    unit_rows: Sequence[dict[str, Any]] = json.loads(result.units)
    if unit_rows:
        unit_sheet(list(unit_rows[0]))
        for u in unit_rows:
            unit_sheet(list(u.values()))
    flags = book.sheet("Cờ cần xem")  # what the committee reviews before publishing
    flags(["kind", "participant_id", "attempt_id", "detail"])
    for f in await period_flags(live, contest, period):
        flags([f.kind, f.participant_id, f.attempt_id or "", f.detail])
    about = book.sheet("Thông tin")
    lines: list[list[Any]] = [["contest", contest.title], ["period", period], ["revision", document["revision"]],
                  ["actual", document["actual"]], ["results_digest", result.results_digest],
                  ["personal data", "winners only, decrypted" if vault else "none (masked phone only)"]]
    for line in lines:
        about(line)
    book.book.save(out)
    return count


async def _personal_data(live: LiveQueries, vault: PiiVault, participant_ids: list[str]
                         ) -> dict[str, tuple[str, str, str]]:
    sealed = await live.sealed_personal_data(participant_ids)
    return {pid: (data.id_number, data.phone, data.birth_date) for pid, data in
            ((pid, vault.open(blob)) for pid, blob in sealed.items())}
