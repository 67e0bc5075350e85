"""cchc export: the committee's Excel and CSV, personal data only when asked and only for winners."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from openpyxl import load_workbook

from admin.export import export
from eventstore.pii import PiiVault
from projections.close import NotClosed
from projections.live_queries import LiveQueries
from projections.results_queries import ResultsQueries
from tests.harness import SETTINGS, System


async def test_xlsx_has_winners_units_ranking_and_personal_data_only_on_request(system: System,
                                                                               tmp_path: Path) -> None:
    s = system
    people = [await s.register(unit_code="A", id_number=f"0380{n:08d}99"[:12]) for n in range(5)]
    for n, pid in enumerate(people):
        await s.entry(pid, 5 - n % 3, prediction=n)
    await s.close(1)
    store = LiveQueries(s.clients.pool), ResultsQueries(s.clients.pool)
    plain = tmp_path / "plain.xlsx"
    assert await export(*store, s.contest, 1, plain, fmt="xlsx") == 5
    book = load_workbook(plain, read_only=True)
    assert book.sheetnames == ["Giải cá nhân", "Giải tập thể", "Xếp hạng", "Đơn vị", "Cờ cần xem", "Thông tin"]
    winners = list(book["Giải cá nhân"].values)
    assert winners[0][-1] == "attempt_id" and len(winners) == 1 + 4  # 4 cbccvc prizes in the test contest
    ranking = list(book["Xếp hạng"].values)
    assert [r[1] for r in ranking[1:]] == [1, 2, 3, 4, 5] and ranking[1][2] == "Giải Nhất"
    everything = " ".join(str(v) for sheet in book for row in sheet.values for v in row)
    assert "038000000" not in everything  # no plain CCCD without --personal-data
    key = SETTINGS.pii_key_bytes()
    with_pii = tmp_path / "winners.xlsx"
    await export(*store, s.contest, 1, with_pii, fmt="xlsx", vault=PiiVault(key))
    rows = list(load_workbook(with_pii, read_only=True)["Giải cá nhân"].values)
    assert rows[0][-3:] == ("id_number", "phone", "birth_date")
    assert all(len(str(r[-3])) == 12 and str(r[-2]).startswith("0") for r in rows[1:])
    ranking_text = " ".join(str(v) for row in load_workbook(with_pii, read_only=True)["Xếp hạng"].values for v in row)
    assert "***" in ranking_text  # the full ranking keeps only the masked phone


async def test_csv_and_unclosed_periods(system: System, tmp_path: Path) -> None:
    s = system
    store = LiveQueries(s.clients.pool), ResultsQueries(s.clients.pool)
    with pytest.raises(NotClosed):
        await export(*store, s.contest, 1, tmp_path / "x.csv", fmt="csv")
    await s.entry(await s.register(), 5)
    await s.entry(await s.register(group="nhan_dan", unit_code=None), 4)
    await s.close(1)
    out = tmp_path / "p1.csv"
    assert await export(*store, s.contest, 1, out, fmt="csv") == 2
    with out.open(encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["group"] for r in rows} == {"cbccvc", "nhan_dan"} and all(r["prize"] == "Giải Nhất" for r in rows)


async def test_names_never_become_formulas(system: System, tmp_path: Path) -> None:
    """Names are checked at registration; the export does not rely on it: text stays text."""
    s = system
    pid = await s.register()
    await s.entry(pid, 5)
    await s.drain()
    formula = '=HYPERLINK("http://evil.example","Giải Nhất")'
    async with s.clients.pool.connection() as conn:  # as if a name had slipped in some other way
        await conn.execute("UPDATE participants SET display_name = %s", (formula,))
    await s.close(1)
    store = LiveQueries(s.clients.pool), ResultsQueries(s.clients.pool)
    await export(*store, s.contest, 1, tmp_path / "p1.xlsx", fmt="xlsx")
    book = load_workbook(tmp_path / "p1.xlsx")
    cells = [c for sheet in book for row in sheet.iter_rows() for c in row if c.value == formula]
    assert len(cells) == 2 and all(c.data_type == "s" for c in cells)  # the winner and the ranking row
    await export(*store, s.contest, 1, tmp_path / "p1.csv", fmt="csv")
    with (tmp_path / "p1.csv").open(encoding="utf-8-sig") as fh:
        row = next(csv.DictReader(fh))
    assert row["display_name"] == "'" + formula
