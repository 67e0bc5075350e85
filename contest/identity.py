"""Registration rules on identity fields: formats, normalisation, masking, minimum age."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime

# Whole-value formats: fullmatch only ("012345678901\n" is not a CCCD), ASCII digits only.
CCCD_RE = re.compile(r"[0-9]{12}")
PHONE_RE = re.compile(r"0[0-9]{9}")
BIRTH_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_SEPARATORS = re.compile(r"[\s.\-()]")  # what people type between digit groups
NAME_PUNCTUATION = frozenset(" .-'")
# Century and sex digit (the 4th) of a CCCD: 0/1 born in the 1900s, 2/3 in the 2000s (Circular 07/2016).
CENTURY_OF_DIGIT = {"0": 1900, "1": 1900, "2": 2000, "3": 2000}
PROVINCE_CODES = range(1, 97)  # 001–096
# What every answer, page and export made after an erasure shows in place of the participant's name
# (DESIGN §10); the published prize lists keep the names they were published with.
ERASED_NAME = "Người dự thi đã xoá dữ liệu"


class IdentityError(ValueError):
    """A registration field breaks a rule; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _digits(raw: str) -> str:
    """NFKC (fullwidth digits become ASCII) without the separators people type between groups."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))


def normalize_phone(raw: str) -> str:
    """`+84 912.345.678`, `+84 (0) 912 345 678` → `0912345678`; raises IdentityError when it is
    no Vietnamese number."""
    compact = _digits(raw)
    national = None
    if compact.startswith("+84"):
        national = compact[3:]
    elif compact.startswith("84") and len(compact) in (11, 12):
        national = compact[2:]
    if national is not None:  # `+84 (0) 9…` carries the trunk 0 as well
        compact = "0" + national.removeprefix("0")
    if not PHONE_RE.fullmatch(compact):
        raise IdentityError("phone", "phone must be 10 digits starting with 0 (or +84…)")
    return compact


def mask_phone(phone: str) -> str:
    """`0912345678` → `0912***678`."""
    return f"{phone[:4]}***{phone[-3:]}"


def normalize_id_number(raw: str) -> str:
    """The CCCD as 12 ASCII digits (spaces, dots and dashes between groups dropped), or IdentityError."""
    compact = _digits(raw)
    if not CCCD_RE.fullmatch(compact):
        raise IdentityError("id_number", "id_number (CCCD) must be exactly 12 digits")
    return compact


def check_id_structure(id_number: str, birth: date) -> None:
    """`id_check = "structure"`: a province code 001–096, then the century digit and the last two
    digits of the birth year must match `birth`."""
    if int(id_number[:3]) not in PROVINCE_CODES:
        raise IdentityError("id_number", "id_number: the first three digits are no province code (001–096)")
    century = CENTURY_OF_DIGIT.get(id_number[3])
    if century is None or century + int(id_number[4:6]) != birth.year:
        raise IdentityError("id_number", "id_number: its century and year digits do not match birth_date")


def check_full_name(raw: str) -> str:
    """Letters of any script, combining marks, spaces and . - ' only; 2–100 characters after trimming."""
    name = " ".join(unicodedata.normalize("NFC", raw).split())
    if not 2 <= len(name) <= 100:
        raise IdentityError("full_name", "full_name must be 2 to 100 characters after trimming")
    if not all(c in NAME_PUNCTUATION or unicodedata.category(c)[0] in "LM" for c in name):
        raise IdentityError("full_name", "full_name may hold letters, marks, spaces and . - ' only")
    return name


def parse_birth_date(raw: str) -> date:
    if not BIRTH_RE.fullmatch(raw):
        raise IdentityError("birth_date", "birth_date must be YYYY-MM-DD")
    try:
        return date.fromisoformat(raw)
    except ValueError as e:
        raise IdentityError("birth_date", f"birth_date is not a real date: {e}") from e


def age_on(birth: date, moment: datetime) -> int:
    """Completed years at `moment` (in its own timezone)."""
    day = moment.date()
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def check_age(birth: date, first_start: datetime, min_age: int) -> None:
    if birth > first_start.date():
        raise IdentityError("birth_date", "birth_date is in the future")
    if age_on(birth, first_start) < min_age:
        raise IdentityError(
            "birth_date", f"participants must be at least {min_age} at the first period's start"
        )

