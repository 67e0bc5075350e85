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
from tests.filemodes import modes_seen, umask
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
    book = load_workbook(plain)
    assert book.sheetnames == ["Giải cá nhân", "Giải tập thể", "Xếp hạng", "Đơn vị", "Cờ cần xem", "Thông tin"]
    winners = list(book["Giải cá nhân"].values)
    assert winners[0][-1] == "Mã lượt thi" and len(winners) == 1 + 4  # 4 cbccvc prizes in the test contest
    ranking = list(book["Xếp hạng"].values)
    assert [r[1] for r in ranking[1:]] == [1, 2, 3, 4, 5] and ranking[1][2] == "Giải Nhất"
    assert {r[0] for r in ranking[1:]} == {winners[1][0]} and ranking[5][2] is None  # the group; no prize: empty
    board = (await s.ok("/v1/periods/1/leaderboard"))["entries"]
    for row, entry in zip(ranking[1:], board, strict=True):  # formatted by the database as the API says it
        assert (row[3], row[4], row[6], row[7]) == (entry["participant_id"], entry["display_name"], entry["unit_code"],
                                                    entry["unit_name"])
        assert (row[8], row[9], row[10], row[11], row[12]) == (entry["score"], entry["correct"],
                                                               entry["duration_ms"] / 1000, entry["prediction"],
                                                               entry["prediction_error"])
        assert row[13].isoformat(timespec="milliseconds") == entry["submitted_at"][:23]  # a date-time, local
        assert row[14] == entry["attempt_id"] and row[5].count("*") == 3
    everything = " ".join(str(v) for sheet in book for row in sheet.values for v in row)
    assert "038000000" not in everything  # no plain CCCD without --personal-data
    key = SETTINGS.pii_key_bytes()
    with_pii = tmp_path / "winners.xlsx"
    await export(*store, s.contest, 1, with_pii, fmt="xlsx", vault=PiiVault(key))
    rows = list(load_workbook(with_pii)["Giải cá nhân"].values)
    assert rows[0][-3:] == ("Số CCCD", "Điện thoại", "Ngày sinh")
    assert all(len(str(r[-3])) == 12 and str(r[-2]).startswith("0") for r in rows[1:])
    ranking_text = " ".join(str(v) for row in load_workbook(with_pii)["Xếp hạng"].values for v in row)
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
    assert {r["Bảng"] for r in rows} == {"Cán bộ, công chức, viên chức", "Nhân dân"}
    assert all(r["Giải"] == "Giải Nhất" for r in rows)
    book = tmp_path / "p1.xlsx"  # the same rows, formatted by the database (a citizen has no unit: empty cells)
    assert await export(*store, s.contest, 1, book, fmt="xlsx") == 2
    sheet = list(load_workbook(book)["Xếp hạng"].values)[1:]
    assert [(r[0], r[2], r[6], r[7]) for r in sheet] == [
        (r["Bảng"], r["Giải"], r["Mã đơn vị"] or None, r["Đơn vị"] or None) for r in rows]


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
    assert row["Họ và tên"] == "'" + formula


async def test_the_public_copy_differs_only_in_personal_data(system: System, tmp_path: Path) -> None:
    s = system
    for n in range(3):
        await s.entry(await s.register(unit_code="A1"), 5 - n)
    await s.close(1)
    store = LiveQueries(s.clients.pool), ResultsQueries(s.clients.pool)
    await export(*store, s.contest, 1, tmp_path / "committee.xlsx", fmt="xlsx")
    await export(*store, s.contest, 1, tmp_path / "public.xlsx", fmt="xlsx", public=True)
    committee, public = (load_workbook(tmp_path / f) for f in ("committee.xlsx", "public.xlsx"))
    assert [n for n in committee.sheetnames if n != "Cờ cần xem"] == public.sheetnames
    for name in public.sheetnames:
        theirs, ours = list(committee[name].values), list(public[name].values)
        if name == "Xếp hạng":  # the same rows but for the (masked) phone column
            phone = theirs[0].index("Điện thoại (ẩn)")
            ours_back = [(*r[:phone], theirs[i][phone], *r[phone:]) for i, r in enumerate(ours)]
            assert ours_back == theirs and "***" not in " ".join(str(v) for r in ours for v in r)
        elif name != "Thông tin":
            assert ours == theirs, name
    with pytest.raises(ValueError):
        await export(*store, s.contest, 1, tmp_path / "x.xlsx", fmt="xlsx", public=True,
                     vault=PiiVault(SETTINGS.pii_key_bytes()))


async def test_final_and_participation_exports_match_the_api(system: System, tmp_path: Path) -> None:
    from admin.export import export_final, export_participation
    from contest.participation import participation

    s = system
    for unit, correct in (("A", 5), ("A1", 4), ("B", 2), ("C1", 3)):
        await s.entry(await s.register(unit_code=unit), correct)
    live, published = LiveQueries(s.clients.pool), ResultsQueries(s.clients.pool)
    groups = sorted(s.contest.counting_groups())
    with pytest.raises(NotClosed):
        await export_final(published, s.contest, [], tmp_path / "f.xlsx", fmt="xlsx")
    await s.close(1)
    await s.close(2)
    api = await s.ok("/v1/participation")
    rows = participation(s.contest, await live.participants_per_unit(None, groups))
    assert export_participation(s.contest, rows, None, tmp_path / "p.csv", fmt="csv") == len(s.contest.units)
    with (tmp_path / "p.csv").open(encoding="utf-8-sig") as fh:
        exported = list(csv.DictReader(fh))
    assert [r["Mã đơn vị"] for r in exported] == list(s.contest.units) == [u["unit_code"] for u in api["units"]]
    for mine, theirs in zip(exported, api["units"], strict=True):
        assert (int(mine["Số người (biên chế)"]), int(mine["Số người dự thi"]), float(mine["Tỷ lệ tham gia"]),
                mine["Dưới chỉ tiêu"] == "có", mine["Chỉ tiêu"] or None) == \
            (theirs["headcount"], theirs["participants"], theirs["participation_rate"], theirs["below_target"],
             None if theirs["target"] is None else str(theirs["target"]))
    assert await export_final(published, s.contest, rows, tmp_path / "f.xlsx", fmt="xlsx") == 3
    book = load_workbook(tmp_path / "f.xlsx")
    assert book.sheetnames == ["Giải tập thể chung cuộc", "Xếp hạng đơn vị", "Tham gia", "Thông tin"]
    final = await s.ok("/v1/final")
    ranking = list(book["Xếp hạng đơn vị"].values)[1:]
    assert [(r[1], r[2], r[4], r[5], r[6]) for r in ranking] == \
        [(u["rank"], u["unit_code"], u["unit_score"], u["participants"], u["entries"]) for u in final["ranking"]]
    assert [r[2] for r in list(book["Giải tập thể chung cuộc"].values)[1:]] == [u["unit_code"] for u in final["unit"]]
    sheet = list(book["Tham gia"].values)[1:]
    assert [(r[0], r[4], r[5]) for r in sheet] == [(u["unit_code"], u["headcount"], u["participants"])
                                                   for u in api["units"]]


async def test_a_personal_data_export_is_created_for_its_owner_only(system: System, tmp_path: Path) -> None:
    """The winners' CCCD and phone: 0600 from the first byte, whatever the umask, and a file that was there
    before with a wider mode is replaced, not reused."""
    s = system
    await s.entry(await s.register(), 5)
    await s.close(1)
    store = LiveQueries(s.clients.pool), ResultsQueries(s.clients.pool)
    vault = PiiVault(SETTINGS.pii_key_bytes())
    (tmp_path / "winners.csv").write_text("an older copy")
    (tmp_path / "winners.csv").chmod(0o644)
    with umask(0), modes_seen(tmp_path) as seen:
        await export(*store, s.contest, 1, tmp_path / "winners.xlsx", fmt="xlsx", vault=vault)
        await export(*store, s.contest, 1, tmp_path / "winners.csv", fmt="csv", vault=vault)
    assert seen.pop("winners.csv") == {0o644, 0o600}  # the older copy until it was replaced
    assert {mode for modes in seen.values() for mode in modes} == {0o600}
    assert (tmp_path / "winners.csv").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["winners.csv", "winners.xlsx"]
    book = load_workbook(tmp_path / "winners.xlsx")
    try:
        assert next(iter(book["Giải cá nhân"].values))[-3:] == ("Số CCCD", "Điện thoại", "Ngày sinh")
    finally:
        book.close()


async def test_the_ranking_sheet_comes_in_rank_order_whatever_its_slices(system: System) -> None:
    """Slices formatted side by side on connections of their own, each looked up in participant order: the rows
    still come in rank order, the same bytes as one slice gives."""
    s = system
    for n in range(7):
        await s.entry(await s.register(), n % 6)
    await s.close(1)
    published = ResultsQueries(s.clients.pool)
    revision = (await published.result(1)).revision  # type: ignore[union-attr]
    cells = {"group": "<c/>", "units": {}, "prizes": {}}

    async def sheet(slice_rows: int, workers: int) -> list[bytes]:
        return [data async for data, _ in published.ranking_sheet(1, revision, "cbccvc", cells, utc_offset_ms=0,
                                                                   phone=False, slice_rows=slice_rows, workers=workers)]

    whole = b"".join(await sheet(1000, 1))
    sliced = await sheet(2, 3)
    assert len(sliced) == 4 and b"".join(sliced) == whole
    ranks = [int(row.split(b"<c><v>", 1)[1].split(b"<", 1)[0]) for row in whole.split(b"<row>")[1:]]
    assert ranks == sorted(ranks) and len(ranks) == 7
