"""Read a contest folder (contest.toml + CSVs) into a Contest, with errors naming file, line, field."""

from __future__ import annotations

import csv
import re
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from contest.identity import IdentityError, normalize_id_number
from contest.model import Contest, Group, Period, Privacy, PrizeSpec, Question, Rules, Unit, UnitPrizes, UnitTarget
from contest.schema import ContestFile, ContestTable, GroupTable, PrivacyTable, ScheduleTable
from contest.timefmt import to_ms
from contest.toml_lines import TomlLines

UNITS_HEADER = ["code", "name", "parent_code", "kind", "headcount"]
QUESTIONS_HEADER = ["id", "group", "text", "A", "B", "C", "D", "answer"]
EXCLUDED_HEADER = ["id_number", "reason"]
PRIZE_CODES = ("first", "second", "third", "consolation")  # the API's `prize` values (DESIGN §6)
DEFAULT_PRIZES = (
    PrizeSpec("first", "Giải Nhất", 1),
    PrizeSpec("second", "Giải Nhì", 2),
    PrizeSpec("third", "Giải Ba", 3),
    PrizeSpec("consolation", "Giải Khuyến khích", 10),
)


class ContestError(ValueError):
    """The contest folder is wrong somewhere; the message says file, line and field."""

    def __init__(self, file: str, message: str, *, line: int | None = None, field: str = "") -> None:
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")


def load_contest(folder: str | Path, *, anchor: datetime | None = None) -> Contest:
    """Load and validate a contest folder.

    `anchor` resolves a relative `[schedule]` (demo contests whose periods start near "now").
    """
    root = Path(folder)
    toml_path = root / "contest.toml"
    try:
        text = toml_path.read_text(encoding="utf-8")
        doc = tomllib.loads(text)
    except FileNotFoundError as e:
        raise ContestError(str(toml_path), "file not found") from e
    except UnicodeDecodeError as e:
        raise ContestError("contest.toml", "not UTF-8 text") from e
    except tomllib.TOMLDecodeError as e:
        raise ContestError("contest.toml", str(e)) from e
    toml = _Toml(TomlLines(text))
    spec = toml.convert(doc)
    head = spec.contest
    try:
        tz = ZoneInfo(head.timezone)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise toml.error(("contest", "timezone"), f"unknown timezone {head.timezone!r}") from e
    groups = _groups(toml, spec.groups)
    units, unit_lines = _units(root / "units.csv")
    bank_file, bank_rows = _bank(root)
    questions = _questions(bank_file, bank_rows, {g.code for g in groups})
    contest = Contest(
        slug=_slug(toml, head.slug),
        title=head.title,
        timezone=head.timezone,
        rules=_rules(toml, head),
        periods=_periods(toml, spec, tz, anchor),
        groups=groups,
        unit_prizes=_unit_prizes(toml, spec.unit_prizes, units),
        units=units,
        questions=questions,
        excluded=_excluded(root / "excluded.csv"),
        unit_targets=_unit_targets(toml, spec.unit_targets, units),
        privacy=_privacy(toml, spec.privacy, root),
    )
    _check_prize_headcounts(contest, unit_lines)
    _check_banks(contest, bank_file)
    return contest


_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_STEP = re.compile(r"\.([A-Za-z0-9_-]+)|\[(\d+)\]")
_FIELD = re.compile(r"(?:unknown|required) field `([^`]+)`")


class _Toml:
    """contest.toml's errors, each with the line and the key it is about."""

    def __init__(self, lines: TomlLines) -> None:
        self.lines = lines

    def error(self, path: tuple[str | int, ...], message: str) -> ContestError:
        field = "".join(f"[{p + 1}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
        return ContestError("contest.toml", message, line=self.lines.line(path), field=field)

    def convert(self, doc: dict[str, Any]) -> ContestFile:
        """The document as typed tables: an unknown key, a missing one or a wrong type is an error."""
        try:
            return msgspec.convert(doc, ContestFile, strict=True)
        except msgspec.ValidationError as e:
            m = _AT.match(str(e))
            message, at = (m.group("message"), m.group("path") or "") if m else (str(e), "")
            path: list[str | int] = [name or int(index) for name, index in _STEP.findall(at)]
            if named := _FIELD.search(message):  # the key itself is the subject: point at it
                path.append(named.group(1))
            message = message.replace(" | null`", "`")  # an optional key: None only means "not written"
            if message.startswith("Object contains unknown field"):
                message = "unknown key (a typo? every key of DESIGN §7 is listed in contest/schema.py)"
            elif message.startswith("Object missing required field"):
                message = "required key is missing"
            raise self.error(tuple(path), message) from e


def _slug(toml: _Toml, slug: str) -> str:
    if not slug or not slug.replace("-", "").isalnum() or not slug.isascii():
        raise toml.error(("contest", "slug"), "slug must be letters, digits and dashes")
    return slug


def _rules(toml: _Toml, head: ContestTable) -> Rules:
    for name in ("questions_per_attempt", "points_per_correct", "time_limit_seconds", "attempts_per_period"):
        if getattr(head, name) <= 0:
            raise toml.error(("contest", name), "must be positive")
    for name in ("grace_seconds", "min_age", "min_plausible_seconds", "freeze_minutes"):
        if getattr(head, name) < 0:
            raise toml.error(("contest", name), "must not be negative")
    if head.min_plausible_seconds >= head.time_limit_seconds:
        raise toml.error(("contest", "min_plausible_seconds"), "must be below time_limit_seconds")
    return head.rules()


def _privacy(toml: _Toml, table: PrivacyTable | None, root: Path) -> Privacy | None:
    """[privacy] with its notice's text read from the contest folder."""
    if table is None:
        return None
    for name in ("version", "controller", "notice"):
        if not getattr(table, name).strip():
            raise toml.error(("privacy", name), "must not be blank")
    if table.retention_days < 0:
        raise toml.error(("privacy", "retention_days"), "must not be negative")
    path = root / table.notice
    if Path(table.notice).is_absolute() or ".." in Path(table.notice).parts or not path.is_file():
        raise toml.error(("privacy", "notice"), f"no file {table.notice!r} in the contest folder")
    try:
        text = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as e:
        raise ContestError(table.notice, "not UTF-8 text") from e
    if not text:
        raise ContestError(table.notice, "the privacy notice is empty")
    return Privacy(table.version, table.controller, text, table.retention_days)


def _periods(toml: _Toml, spec: ContestFile, tz: ZoneInfo, anchor: datetime | None) -> tuple[Period, ...]:
    if spec.schedule is not None:
        if spec.periods:
            raise toml.error(("schedule",), "give either [schedule] or [[periods]], not both")
        return _relative_periods(toml, spec.schedule, anchor)
    if not spec.periods:
        raise toml.error(("periods",), "at least one [[periods]] table")
    periods = []
    for i, item in enumerate(spec.periods):
        start = item.start if item.start.tzinfo else item.start.replace(tzinfo=tz)
        end = item.end if item.end.tzinfo else item.end.replace(tzinfo=tz)
        periods.append(Period(i + 1, item.name or f"Tuần {i + 1}", to_ms(start), to_ms(end)))
        if not (item.name or "x").strip():
            raise toml.error(("periods", i, "name"), "must not be blank")
        if end <= start:
            raise toml.error(("periods", i, "end"), "end must be after start")
        if i and periods[-1].start_ms < periods[-2].end_ms:
            raise toml.error(("periods", i, "start"), "periods must be in order and must not overlap")
    return tuple(periods)


def _relative_periods(toml: _Toml, schedule: ScheduleTable, anchor: datetime | None) -> tuple[Period, ...]:
    if anchor is None:
        raise toml.error(("schedule",), "a relative [schedule] needs an anchor time "
                         "(CCHC_CONTEST_ANCHOR; `cchc up` sets it)")
    for name in ("count", "period_seconds"):
        if getattr(schedule, name) <= 0:
            raise toml.error(("schedule", name), "must be positive")
    if schedule.starts_in_seconds < 0:
        raise toml.error(("schedule", "starts_in_seconds"), "must not be negative")
    if schedule.last_period_seconds is not None and schedule.last_period_seconds <= 0:
        raise toml.error(("schedule", "last_period_seconds"), "must be positive")
    first = to_ms(anchor + timedelta(seconds=schedule.starts_in_seconds))
    length = schedule.period_seconds * 1000
    periods = [Period(n + 1, f"Tuần {n + 1}", first + n * length, first + (n + 1) * length)
               for n in range(schedule.count)]
    if schedule.last_period_seconds is not None:
        last = periods[-1]
        periods[-1] = Period(last.number, last.name, last.start_ms, last.start_ms + schedule.last_period_seconds * 1000)
    return tuple(periods)


def _groups(toml: _Toml, tables: list[GroupTable]) -> tuple[Group, ...]:
    if not tables:
        raise toml.error(("groups",), "at least one [[groups]] table")
    groups: list[Group] = []
    for i, item in enumerate(tables):
        if not item.code or not item.code.replace("_", "").isalnum() or not item.code.isascii():
            raise toml.error(("groups", i, "code"), "code must be ASCII letters, digits and underscores")
        if any(g.code == item.code for g in groups):
            raise toml.error(("groups", i, "code"), f"duplicate group code {item.code!r}")
        prizes = DEFAULT_PRIZES if item.prizes is None else tuple(item.prizes)
        for j, prize in enumerate(item.prizes or ()):
            if prize.code not in PRIZE_CODES:
                raise toml.error(("groups", i, "prizes", j, "code"), f"must be one of {', '.join(PRIZE_CODES)}")
            if prize.count < 0:
                raise toml.error(("groups", i, "prizes", j, "count"), "must not be negative")
            if any(p.code == prize.code for p in prizes[:j]):
                raise toml.error(("groups", i, "prizes", j, "code"), f"duplicate prize {prize.code!r}")
        counts = item.code == "cbccvc" if item.counts_for_units is None else item.counts_for_units
        groups.append(Group(item.code, item.name or item.code, counts, prizes))
    return tuple(groups)


def _unit_prizes(toml: _Toml, prizes: UnitPrizes, units: dict[str, Unit]) -> UnitPrizes:
    prize_units = sum(1 for u in units.values() if u.parent_code is None)
    for name in ("weekly_count", "final_count"):
        value = getattr(prizes, name)
        if value < 0:
            raise toml.error(("unit_prizes", name), "must not be negative")
        if value > prize_units:
            raise toml.error(("unit_prizes", name), f"{value} is more than the {prize_units} prize units "
                             "(units.csv rows without a parent)")
    for name in ("weight_participation", "weight_score"):
        if getattr(prizes, name) < 0:
            raise toml.error(("unit_prizes", name), "must not be negative")
    if prizes.weight_participation + prizes.weight_score <= 0:
        raise toml.error(("unit_prizes", "weight_score"), "the two weights must not both be 0")
    if not 0 <= prizes.min_participation_rate <= 1:
        raise toml.error(("unit_prizes", "min_participation_rate"), "must be between 0 and 1")
    return prizes


def _unit_targets(toml: _Toml, targets: list[UnitTarget], units: dict[str, Unit]) -> tuple[UnitTarget, ...]:
    kinds = {u.kind for u in units.values()}
    for i, target in enumerate(targets):
        if target.kind not in kinds:
            raise toml.error(("unit_targets", i, "kind"), f"no unit in units.csv has kind {target.kind!r}")
        if any(t.kind == target.kind for t in targets[:i]):
            raise toml.error(("unit_targets", i, "kind"), f"a second target for kind {target.kind!r}")
        if not 0 < target.rate <= 1:
            raise toml.error(("unit_targets", i, "rate"), "must be above 0 and at most 1")
    return tuple(targets)


Rows = list[tuple[int, dict[str, str]]]  # (line, the row by column)


def _rows(path: Path, header: list[str], *, required: bool = True) -> Rows:
    if not path.exists():
        if required:
            raise ContestError(path.name, "file not found")
        return []
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            found = next(reader, None)
            if found != header:
                raise ContestError(path.name, f"header must be {','.join(header)}", line=1)
            rows = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue  # a blank line
                if len(row) != len(header):
                    raise ContestError(path.name, f"{len(row)} columns, the header has {len(header)}",
                                       line=reader.line_num)
                rows.append((reader.line_num, {k: v.strip() for k, v in zip(header, row, strict=True)}))
            return rows
    except UnicodeDecodeError as e:
        raise ContestError(path.name, "not UTF-8 text") from e
    except csv.Error as e:
        raise ContestError(path.name, str(e)) from e


def _units(path: Path) -> tuple[dict[str, Unit], dict[str, int]]:
    """The unit tree and the line of each unit (prize units' headcounts are checked on the whole contest)."""
    units: dict[str, Unit] = {}
    lines: dict[str, int] = {}
    for line, row in _rows(path, UNITS_HEADER):
        code = row["code"]
        if not code or len(code) > 64 or not code.isprintable():
            raise ContestError(path.name, "code is required (at most 64 printable characters)", line=line,
                               field="code")
        if code in units:
            raise ContestError(path.name, f"duplicate unit {code!r}", line=line, field="code")
        if not re.fullmatch(r"[0-9]{1,9}", row["headcount"]):
            raise ContestError(path.name, "must be a whole number, 0 or more", line=line, field="headcount")
        units[code] = Unit(code, row["name"] or code, row["parent_code"] or None, row["kind"], int(row["headcount"]))
        lines[code] = line
    if not units:
        raise ContestError(path.name, "no units")
    for unit in units.values():
        if unit.parent_code is not None and unit.parent_code not in units:
            raise ContestError(path.name, f"unknown parent {unit.parent_code!r}",
                               line=lines[unit.code], field="parent_code")
    for unit in units.values():
        seen = {unit.code}
        parent = unit.parent_code
        while parent is not None:
            if parent in seen:
                raise ContestError(path.name, "the unit tree has a cycle",
                                   line=lines[unit.code], field="parent_code")
            seen.add(parent)
            parent = units[parent].parent_code
    return units, lines


def _check_prize_headcounts(contest: Contest, lines: dict[str, int]) -> None:
    """A prize unit's headcount is its own plus its descendants': that total must not be 0."""
    for code, total in contest.prize_unit_headcounts().items():
        if total == 0:
            raise ContestError("units.csv", f"prize unit {code!r} (no parent) has headcount 0 with its descendants",
                               line=lines[code], field="headcount")


def _bank(root: Path) -> tuple[str, Rows]:
    """The question bank's rows: `questions.csv`, or `questions.xlsx` as the committee writes banks in Excel
    (DESIGN §7: the same columns on the first sheet; both in one folder is an error)."""
    csv_path, xlsx_path = root / "questions.csv", root / "questions.xlsx"
    if csv_path.exists() and xlsx_path.exists():
        raise ContestError("questions.xlsx", "questions.csv is here too: keep one bank, the CSV or the workbook")
    if xlsx_path.exists():
        return xlsx_path.name, _sheet_rows(xlsx_path, QUESTIONS_HEADER)
    return csv_path.name, _rows(csv_path, QUESTIONS_HEADER)


def _cell(value: object) -> str:
    """A spreadsheet cell as the CSV would hold it: a whole number without `.0`, empty for nothing."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _sheet_rows(path: Path, header: list[str]) -> Rows:
    """The first sheet's rows, numbered as Excel numbers them (the header is row 1); blank rows skipped."""
    from zipfile import BadZipFile

    from openpyxl import load_workbook  # only for a bank written in Excel

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (BadZipFile, OSError, KeyError, ValueError) as e:
        raise ContestError(path.name, f"not an Excel workbook (.xlsx): {e}") from e
    try:
        sheet = book.worksheets[0]
        rows: Rows = []
        for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [_cell(v) for v in values]
            while cells and not cells[-1]:
                cells.pop()  # trailing empty cells Excel keeps for formatting
            if number == 1:
                if cells != header:
                    raise ContestError(path.name, f"the first sheet's first row must be {','.join(header)}", line=1)
                continue
            if not any(cells):
                continue
            if len(cells) > len(header):
                raise ContestError(path.name, f"{len(cells)} columns, the header has {len(header)}", line=number)
            cells += [""] * (len(header) - len(cells))
            rows.append((number, dict(zip(header, cells, strict=True))))
        return rows
    finally:
        book.close()


def _questions(file: str, rows: Rows, groups: set[str]) -> dict[str, Question]:
    questions: dict[str, Question] = {}
    for line, row in rows:
        qid = row["id"]
        if not qid or len(qid) > 64 or not qid.isprintable():
            raise ContestError(file, "id is required (at most 64 printable characters)", line=line, field="id")
        if qid in questions:
            raise ContestError(file, f"duplicate question {qid!r}", line=line, field="id")
        group = row["group"] or None
        if group is not None and group not in groups:
            raise ContestError(file, f"unknown group {group!r}", line=line, field="group")
        answer = row["answer"].upper()
        if not answer:
            raise ContestError(file, "missing: one of A, B, C, D", line=line, field="answer")
        if answer not in ("A", "B", "C", "D"):
            raise ContestError(file, "must be one of A, B, C, D", line=line, field="answer")
        for field in ("text", "A", "B", "C", "D"):
            if not row[field]:
                raise ContestError(file, "must not be empty", line=line, field=field)
        options = {k: row[k] for k in ("A", "B", "C", "D")}
        questions[qid] = Question(qid, group, row["text"], options, answer)  # type: ignore[arg-type]
    return questions


def _excluded(path: Path) -> frozenset[str]:
    ids = set()
    for line, row in _rows(path, EXCLUDED_HEADER, required=False):
        try:
            ids.add(normalize_id_number(row["id_number"]))  # compared as registration normalises
        except IdentityError as e:
            raise ContestError(path.name, "must be 12 digits", line=line, field="id_number") from e
    return frozenset(ids)


def _check_banks(contest: Contest, bank_file: str) -> None:
    need = contest.rules.questions_per_attempt
    for group in contest.groups:
        have = len(contest.bank(group.code))
        if have < need:
            raise ContestError(bank_file, f"group {group.code!r} has {have} questions, "
                               f"fewer than questions_per_attempt ({need})", field="group")
