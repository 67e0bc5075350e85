"""The committee's spreadsheets, written as a stream: a minimal Office Open XML workbook (one zip of a
few XML parts) whose sheets are appended row by row and compressed as they come, so a million-row
ranking never sits in memory. Every text cell is a string, never a formula (DESIGN §6): inline, or from
the workbook's shared strings for the texts a ranking repeats on every row (its group, units and prizes:
a quarter less XML to format and compress); numbers are numbers, the header row is bold and stays in view.

Styles: 0 plain, 1 bold (the header), 2 a date-time with milliseconds (a time submitted).

Why not openpyxl: it builds a Python object per cell — 13 s per 100,000 ranking rows here, two minutes for
a period of 1 M participants — against a 10-second target for the desk's Excel export (DESIGN §9). The
ranking's rows come formatted from PostgreSQL (results_queries.ranking_sheet) and are only compressed
here, on a thread of their own while the next rows are read, by Intel ISA-L's deflate (the isal package):
the same format as zlib's, a million rows' 434 MB of XML in 0.7 s where zlib's fastest level takes 3 s.
"""

from __future__ import annotations

import asyncio
import zipfile
from collections.abc import AsyncIterable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import escape

from isal import isal_zlib

MAX_ROWS = 1_048_576  # a sheet's rows in Excel, the header's included
_INVALID = {c: None for c in range(32) if c not in (9, 10, 13)}  # control characters XML 1.0 cannot hold
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"


def text_xml(value: str) -> str:
    """A string as XML text (escaped, control characters dropped)."""
    return escape(value.translate(_INVALID))


def cell_xml(value: Any, style: int = 0) -> str:
    if value is None or value == "":
        return "<c/>"
    s = f' s="{style}"' if style else ""
    if isinstance(value, bool):
        return f'<c t="inlineStr"{s}><is><t>{"có" if value else "không"}</t></is></c>'
    if isinstance(value, int | float):
        return f"<c{s}><v>{value!r}</v></c>"
    text = text_xml(str(value))
    space = ' xml:space="preserve"' if text != text.strip() else ""
    return f'<c t="inlineStr"{s}><is><t{space}>{text}</t></is></c>'


def row_xml(values: Sequence[Any], style: int = 0) -> str:
    return "<row>" + "".join(cell_xml(v, style) for v in values) + "</row>"


def sheet_title(title: str) -> str:
    """A sheet name Excel accepts: at most 31 characters, none of []:*?/\\."""
    return "".join(c for c in title if c not in "[]:*?/\\")[:31] or "Sheet"


class Sheet:
    """One worksheet being written; rows go straight into the zip (compressed by the caller's thread)."""

    def __init__(self, stream: IO[bytes], widths: Sequence[float]) -> None:
        self.stream = stream
        self.rows = 0
        cols = "".join(f'<col min="{i}" max="{i}" width="{w}" customWidth="1"/>' for i, w in enumerate(widths, 1))
        stream.write((f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{_MAIN}">'
                      '<sheetViews><sheetView workbookViewId="0"><pane ySplit="1" topLeftCell="A2" activePane="bottomLeft"'
                      ' state="frozen"/></sheetView></sheetViews>'
                      + (f"<cols>{cols}</cols>" if cols else "") + "<sheetData>").encode())

    def header(self, values: Sequence[str]) -> None:
        self.stream.write(row_xml(values, style=1).encode())
        self.rows += 1

    def row(self, values: Sequence[Any]) -> None:
        self.stream.write(row_xml(values).encode())
        self.rows += 1

    def raw(self, xml_rows: bytes, count: int) -> None:
        """Rows already written as <row> elements (`count` of them)."""
        self.stream.write(xml_rows)
        self.rows += count

    def close(self) -> None:
        self.stream.write(b"</sheetData></worksheet>")
        self.stream.close()


class Workbook:
    """Sheets written one after the other into `out`; `close()` writes the parts that list them."""

    def __init__(self, out: Path | IO[bytes]) -> None:
        self.zip = zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1)
        self.titles: list[str] = []
        self.sheet_open: Sheet | None = None
        self.strings: dict[str, int] = {}  # the shared strings (xl/sharedStrings.xml), each text's index

    def shared(self, value: str) -> str:
        """A text cell from the shared strings (the text stored once, however many rows repeat it)."""
        index = self.strings.setdefault(value, len(self.strings))
        return f'<c t="s"><v>{index}</v></c>'

    def sheet(self, title: str, header: Sequence[str], widths: Sequence[float] = ()) -> Sheet:
        if self.sheet_open is not None:
            self.sheet_open.close()
        name = sheet_title(title)
        while name in self.titles:  # unique names: a long ranking goes on over several sheets
            name = sheet_title(f"{name[:27]} ({len(self.titles) + 1})")
        self.titles.append(name)
        stream = self.zip.open(f"xl/worksheets/sheet{len(self.titles)}.xml", "w", force_zip64=True)
        _fast_deflate(stream)
        self.sheet_open = Sheet(stream, widths or [max(10.0, min(40.0, len(h) * 1.2)) for h in header])
        self.sheet_open.header(header)
        return self.sheet_open

    def table(self, title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """A whole sheet from rows in memory (the small sheets); returns how many rows."""
        sheet = self.sheet(title, header)
        for row in rows:
            sheet.row(row)
        return sheet.rows - 1

    def close(self) -> None:
        if self.sheet_open is not None:
            self.sheet_open.close()
            self.sheet_open = None
        sheets = "".join(f'<sheet name="{text_xml(t)}" sheetId="{i}" r:id="rId{i}"/>' for i, t in enumerate(self.titles, 1))
        self.zip.writestr("xl/workbook.xml", f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                          f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><sheets>{sheets}</sheets></workbook>')
        rels = "".join(f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
                       for i in range(1, len(self.titles) + 1))
        styles_id = len(self.titles) + 1
        if self.strings:
            rels += f'<Relationship Id="rId{styles_id + 1}" Type="{_REL}/sharedStrings" Target="sharedStrings.xml"/>'
            items = "".join(f'<si><t xml:space="preserve">{text_xml(t)}</t></si>' for t in self.strings)
            self.zip.writestr("xl/sharedStrings.xml", f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                              f'<sst xmlns="{_MAIN}" uniqueCount="{len(self.strings)}">{items}</sst>')
        self.zip.writestr("xl/_rels/workbook.xml.rels", f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                          f'<Relationships xmlns="{_PKG_REL}">{rels}<Relationship Id="rId{styles_id}"'
                          f' Type="{_REL}/styles" Target="styles.xml"/></Relationships>')
        self.zip.writestr("xl/styles.xml", _STYLES)
        self.zip.writestr("_rels/.rels", f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                          f'<Relationships xmlns="{_PKG_REL}"><Relationship Id="rId1" Type="{_REL}/officeDocument"'
                          ' Target="xl/workbook.xml"/></Relationships>')
        overrides = "".join(f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
                            'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                            for i in range(1, len(self.titles) + 1))
        if self.strings:
            overrides += ('<Override PartName="/xl/sharedStrings.xml" ContentType="application/'
                          'vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>')
        self.zip.writestr("[Content_Types].xml", '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                          '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                          '<Default Extension="rels"'
                          ' ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                          '<Default Extension="xml" ContentType="application/xml"/>'
                          '<Override PartName="/xl/workbook.xml" ContentType="application/'
                          'vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
                          '<Override PartName="/xl/styles.xml" ContentType="application/'
                          f'vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>{overrides}</Types>')
        self.zip.close()


def _fast_deflate(stream: IO[bytes]) -> None:
    """The zip entry's deflate by ISA-L instead of zlib: zipfile has no hook for its compressor, so its writer's
    is replaced (an attribute of zipfile's writer since Python 3.5; left to zlib if it ever goes)."""
    if hasattr(stream, "_compressor"):
        stream._compressor = isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15)


_STYLES = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
           f'<styleSheet xmlns="{_MAIN}"><numFmts count="1"><numFmt numFmtId="164"'
           ' formatCode="yyyy-mm-dd hh:mm:ss.000"/></numFmts>'
           '<fonts count="2"><font><sz val="11"/><name val="Calibri"/></font>'
           '<font><b/><sz val="11"/><name val="Calibri"/></font></fonts>'
           '<fills count="2"><fill><patternFill patternType="none"/></fill><fill><patternFill patternType="gray125"/>'
           '</fill></fills><borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
           '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
           '<cellXfs count="3"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
           '<xf numFmtId="0" fontId="1" fillId="0" borderId="0" xfId="0" applyFont="1"/>'
           '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
           '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles></styleSheet>')


async def stream_rows(book: Workbook, title: str, header: Sequence[str], chunks: AsyncIterable[tuple[bytes, int]],
                      *, flush_bytes: int = 1 << 20) -> int:
    """Pre-rendered rows (chunks of <row> elements and how many each holds) into sheets of `title`, a new
    sheet past Excel's row limit; compressed on a thread of its own while the next chunks are read (zlib
    lets go of the GIL). Returns the rows written."""
    written = 0
    with ThreadPoolExecutor(1, thread_name_prefix="xlsx") as pool:
        loop = asyncio.get_running_loop()
        sheet = book.sheet(title, header)
        in_sheet = 1  # its rows, the header's included (sheet.rows lags: the thread counts as it writes)
        pending: asyncio.Future[None] | None = None
        buffer: list[bytes] = []
        size = count = 0

        async def flush() -> None:
            nonlocal pending, buffer, size, count
            if pending is not None:
                await pending
            data, n, target = b"".join(buffer), count, sheet
            pending = loop.run_in_executor(pool, target.raw, data, n)
            buffer, size, count = [], 0, 0

        async for data, n in chunks:
            if in_sheet + n > MAX_ROWS:  # the chunk would overflow: the rows go on in a new sheet
                await flush()
                assert pending is not None
                await pending
                pending = None
                sheet, in_sheet = book.sheet(title, header), 1
            in_sheet += n
            buffer.append(data)
            size += len(data)
            count += n
            written += n
            if size >= flush_bytes:
                await flush()
        await flush()
        if pending is not None:
            await pending
    return written
