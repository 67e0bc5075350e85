"""Read a contest folder (contest.toml + CSVs) into a Contest, with errors naming file, line, field."""

from __future__ import annotations

import csv
import tomllib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from contest.identity import IdentityError, normalize_id_number
from contest.model import Contest, Group, Period, PrizeSpec, Question, Rules, Unit, UnitPrizes
from contest.timefmt import to_ms

UNITS_HEADER = ["code", "name", "parent_code", "kind", "headcount"]
QUESTIONS_HEADER = ["id", "group", "text", "A", "B", "C", "D", "answer"]
EXCLUDED_HEADER = ["id_number", "reason"]
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
        doc = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ContestError(str(toml_path), "file not found") from e
    except tomllib.TOMLDecodeError as e:
        raise ContestError("contest.toml", str(e)) from e
    head = _table(doc, "contest")
    timezone = str(head.get("timezone", "Asia/Ho_Chi_Minh"))
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ContestError("contest.toml", f"unknown timezone {timezone!r}", field="timezone") from e
    rules = _rules(head)
    groups = _groups(doc)
    units = _units(root / "units.csv")
    questions = _questions(root / "questions.csv", {g.code for g in groups})
    contest = Contest(
        slug=_slug(head),
        title=str(head.get("title", "")),
        timezone=timezone,
        rules=rules,
        periods=_periods(doc, tz, anchor),
        groups=groups,
        unit_prizes=_unit_prizes(doc),
        units=units,
        questions=questions,
        excluded=_excluded(root / "excluded.csv"),
    )
    _check_banks(contest)
    return contest


def _table(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name)
    if not isinstance(value, dict):
        raise ContestError("contest.toml", f"missing [{name}] table", field=name)
    return value


def _slug(head: dict[str, Any]) -> str:
    slug = head.get("slug")
    if not isinstance(slug, str) or not slug or not slug.replace("-", "").isalnum():
        raise ContestError("contest.toml", "slug must be letters, digits and dashes", field="slug")
    return slug


def _convert(file: str, field: str, value: Any, kind: Any) -> Any:
    try:
        return msgspec.convert(value, kind, strict=True)
    except msgspec.ValidationError as e:
        raise ContestError(file, str(e), field=field) from e


def _rules(head: dict[str, Any]) -> Rules:
    known = set(Rules.__struct_fields__)
    values = {k: v for k, v in head.items() if k in known}
    rules: Rules = _convert("contest.toml", "[contest]", values, Rules)
    for name in ("questions_per_attempt", "points_per_correct", "time_limit_seconds",
                 "attempts_per_period"):
        if getattr(rules, name) <= 0:
            raise ContestError("contest.toml", "must be positive", field=name)
    for name in ("grace_seconds", "min_age", "min_plausible_seconds"):
        if getattr(rules, name) < 0:
            raise ContestError("contest.toml", "must not be negative", field=name)
    return rules


def _periods(doc: dict[str, Any], tz: ZoneInfo, anchor: datetime | None) -> tuple[Period, ...]:
    if "schedule" in doc:
        return _relative_periods(doc["schedule"], anchor)
    raw = doc.get("periods")
    if not isinstance(raw, list) or not raw:
        raise ContestError("contest.toml", "at least one [[periods]] table", field="periods")
    periods = []
    for number, item in enumerate(raw, start=1):
        field = f"periods[{number}]"
        start, end = item.get("start"), item.get("end")
        if not isinstance(start, datetime) or not isinstance(end, datetime):
            raise ContestError("contest.toml", "start and end must be TOML datetimes", field=field)
        if start.tzinfo is None:
            start = start.replace(tzinfo=tz)
        if end.tzinfo is None:
            end = end.replace(tzinfo=tz)
        name = str(item.get("name", f"Tuần {number}"))
        periods.append(Period(number, name, to_ms(start), to_ms(end)))
    _check_periods(periods)
    return tuple(periods)


def _relative_periods(schedule: Any, anchor: datetime | None) -> tuple[Period, ...]:
    if anchor is None:
        raise ContestError("contest.toml", "a relative [schedule] needs an anchor time "
                           "(CCHC_CONTEST_ANCHOR; `cchc up` sets it)", field="schedule")
    count = _convert("contest.toml", "schedule.count", schedule.get("count"), int)
    length = _convert("contest.toml", "schedule.period_seconds", schedule.get("period_seconds"), int)
    lead = _convert("contest.toml", "schedule.starts_in_seconds",
                    schedule.get("starts_in_seconds", 0), int)
    if count <= 0 or length <= 0:
        raise ContestError("contest.toml", "count and period_seconds must be positive",
                           field="schedule")
    first = to_ms(anchor + timedelta(seconds=lead))
    periods = [Period(n + 1, f"Tuần {n + 1}", first + n * length * 1000,
                      first + (n + 1) * length * 1000) for n in range(count)]
    return tuple(periods)


def _check_periods(periods: list[Period]) -> None:
    for prev, cur in zip([None, *periods], periods, strict=False):
        if cur.end_ms <= cur.start_ms:
            raise ContestError("contest.toml", "end must be after start",
                               field=f"periods[{cur.number}]")
        if prev is not None and cur.start_ms < prev.end_ms:
            raise ContestError("contest.toml", "periods must be in order and must not overlap",
                               field=f"periods[{cur.number}]")


def _groups(doc: dict[str, Any]) -> tuple[Group, ...]:
    raw = doc.get("groups")
    if not isinstance(raw, list) or not raw:
        raise ContestError("contest.toml", "at least one [[groups]] table", field="groups")
    groups: list[Group] = []
    for i, item in enumerate(raw, start=1):
        field = f"groups[{i}]"
        code = item.get("code")
        if not isinstance(code, str) or not code:
            raise ContestError("contest.toml", "code is required", field=field)
        if any(g.code == code for g in groups):
            raise ContestError("contest.toml", f"duplicate group code {code!r}", field=field)
        prizes = tuple(_convert("contest.toml", f"{field}.prizes", p, PrizeSpec)
                       for p in item.get("prizes", [])) if "prizes" in item else DEFAULT_PRIZES
        if any(p.count < 0 for p in prizes):
            raise ContestError("contest.toml", "prize counts must not be negative", field=field)
        counts = item.get("counts_for_units", code == "cbccvc")
        groups.append(Group(code, str(item.get("name", code)), bool(counts), prizes))
    return tuple(groups)


def _unit_prizes(doc: dict[str, Any]) -> UnitPrizes:
    prizes: UnitPrizes = _convert("contest.toml", "[unit_prizes]", doc.get("unit_prizes", {}),
                                  UnitPrizes)
    if prizes.weekly_count < 0 or prizes.final_count < 0:
        raise ContestError("contest.toml", "prize counts must not be negative", field="unit_prizes")
    return prizes


def _rows(path: Path, header: list[str], *, required: bool = True) -> list[tuple[int, dict[str, str]]]:
    if not path.exists():
        if required:
            raise ContestError(path.name, "file not found")
        return []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames != header:
            raise ContestError(path.name, f"header must be {','.join(header)}", line=1)
        return [(reader.line_num, {k: (v or "").strip() for k, v in row.items()})
                for row in reader]


def _units(path: Path) -> dict[str, Unit]:
    units: dict[str, Unit] = {}
    for line, row in _rows(path, UNITS_HEADER):
        code = row["code"]
        if not code:
            raise ContestError(path.name, "code is required", line=line, field="code")
        if code in units:
            raise ContestError(path.name, f"duplicate unit {code!r}", line=line, field="code")
        try:
            headcount = int(row["headcount"])
        except ValueError as e:
            raise ContestError(path.name, "must be a whole number", line=line,
                               field="headcount") from e
        if headcount < 0:
            raise ContestError(path.name, "must not be negative", line=line, field="headcount")
        parent = row["parent_code"] or None
        if parent is None and headcount == 0:
            raise ContestError(path.name, "a prize unit (no parent) needs headcount > 0",
                               line=line, field="headcount")
        units[code] = Unit(code, row["name"] or code, parent, row["kind"], headcount)
    if not units:
        raise ContestError(path.name, "no units")
    lines = {code: line for code, (line, _) in zip(units, _rows(path, UNITS_HEADER), strict=True)}
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
    return units


def _questions(path: Path, groups: set[str]) -> dict[str, Question]:
    questions: dict[str, Question] = {}
    for line, row in _rows(path, QUESTIONS_HEADER):
        qid = row["id"]
        if not qid or len(qid) > 64 or not qid.isprintable():
            raise ContestError(path.name, "id is required (at most 64 printable characters)", line=line,
                               field="id")
        if qid in questions:
            raise ContestError(path.name, f"duplicate question {qid!r}", line=line, field="id")
        group = row["group"] or None
        if group is not None and group not in groups:
            raise ContestError(path.name, f"unknown group {group!r}", line=line, field="group")
        answer = row["answer"].upper()
        if answer not in ("A", "B", "C", "D"):
            raise ContestError(path.name, "must be one of A, B, C, D", line=line, field="answer")
        for field in ("text", "A", "B", "C", "D"):
            if not row[field]:
                raise ContestError(path.name, "must not be empty", line=line, field=field)
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


def _check_banks(contest: Contest) -> None:
    need = contest.rules.questions_per_attempt
    for group in contest.groups:
        have = len(contest.bank(group.code))
        if have < need:
            raise ContestError("questions.csv", f"group {group.code!r} has {have} questions, "
                               f"fewer than questions_per_attempt ({need})", field="group")
