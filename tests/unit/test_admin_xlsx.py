"""The streaming workbook: openpyxl (and so Excel) reads it back; text stays text, numbers stay numbers, a
sheet past Excel's row limit goes on in a new one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from openpyxl import load_workbook

from admin import xlsx
from admin.xlsx import Workbook, row_xml, stream_rows


def test_cells_read_back_as_written(tmp_path: Path) -> None:
    out = tmp_path / "x.xlsx"
    book = Workbook(out)
    book.table("Thông tin: [mục]/*?", ["Mục", "Giá trị", "Số"], [
        ["=SUM(A1:A2)", "+84 912", 5], ["@cmd", " khoảng trắng ", 1.5], ["Nguyễn Thị Ánh & <Bảo>", None, 0],
        ["ctrl\x01char", True, -3]])
    book.table("Thông tin: [mục]/*?", ["a"], [["b"]])  # the same name again: made unique
    book.close()
    loaded = load_workbook(out)
    assert loaded.sheetnames[0] == "Thông tin mục" and len(set(loaded.sheetnames)) == 2
    rows = list(loaded.worksheets[0].values)
    assert rows[0] == ("Mục", "Giá trị", "Số")
    assert rows[1] == ("=SUM(A1:A2)", "+84 912", 5)  # never a formula (DESIGN §6)
    assert loaded.worksheets[0]["A2"].data_type == "s"
    assert rows[2] == ("@cmd", " khoảng trắng ", 1.5)
    assert rows[3] == ("Nguyễn Thị Ánh & <Bảo>", None, 0)
    assert rows[4] == ("ctrlchar", "có", -3)
    assert loaded.worksheets[0]["A1"].font.b  # the header is bold


def test_a_stream_of_rows_splits_at_the_row_limit(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(xlsx, "MAX_ROWS", 5)  # 4 rows and the header a sheet

    async def chunks() -> AsyncIterator[tuple[bytes, int]]:
        for start in range(0, 10, 2):
            yield "".join(row_xml([n, f"người {n}"]) for n in range(start, start + 2)).encode(), 2

    out = tmp_path / "big.xlsx"
    book = Workbook(out)
    assert asyncio.run(stream_rows(book, "Xếp hạng", ["Hạng", "Tên"], chunks(), flush_bytes=10)) == 10
    book.table("Sau", ["x"], [[1]])
    book.close()
    loaded = load_workbook(out)
    assert loaded.sheetnames == ["Xếp hạng", "Xếp hạng (2)", "Xếp hạng (3)", "Sau"]
    ranks = [r[0] for name in loaded.sheetnames[:3] for r in list(loaded[name].values)[1:]]
    assert ranks == list(range(10))


def test_shared_strings_read_back_as_text(tmp_path: Path) -> None:
    out = tmp_path / "shared.xlsx"
    book = Workbook(out)
    unit, formula = book.shared("Sở Nội vụ & <Ban> "), book.shared("=HYPERLINK(\"x\")")
    assert book.shared("Sở Nội vụ & <Ban> ") == unit  # stored once
    sheet = book.sheet("Xếp hạng", ["Đơn vị", "Hạng", "Ghi chú"])
    for rank in (1, 2):
        sheet.raw(f"<row>{unit}<c><v>{rank}</v></c>{formula}</row>".encode(), 1)
    book.close()
    rows = list(load_workbook(out).worksheets[0].values)
    assert rows[1:] == [("Sở Nội vụ & <Ban> ", 1, '=HYPERLINK("x")'),
                        ("Sở Nội vụ & <Ban> ", 2, '=HYPERLINK("x")')]  # text, never a formula (DESIGN §6)
    assert load_workbook(out).worksheets[0]["C2"].data_type == "s"


def test_sheets_are_deflated_by_isal(tmp_path: Path) -> None:
    """The big sheets' compressor is ISA-L's (4x zlib's speed): a Python that changed zipfile's writer would
    silently fall back to zlib and the desk's export past its 10 s."""
    book = Workbook(tmp_path / "isal.xlsx")
    sheet = book.sheet("Xếp hạng", ["Hạng"])
    assert type(sheet.stream._compressor).__module__.startswith("isal")  # type: ignore[attr-defined]
    book.close()
