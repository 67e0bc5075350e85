"""Registration rules on identity fields: formats, normalisation, masking, minimum age."""

from __future__ import annotations

import re
from datetime import date, datetime

CCCD_RE = re.compile(r"^[0-9]{12}$")
PHONE_RE = re.compile(r"^0[0-9]{9}$")
BIRTH_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class IdentityError(ValueError):
    """A registration field breaks a rule; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def normalize_phone(raw: str) -> str:
    """`+84 912.345.678` → `0912345678`; raises IdentityError when it is no Vietnamese number."""
    compact = re.sub(r"[\s.\-()]", "", raw)
    if compact.startswith("+84"):
        compact = "0" + compact[3:]
    elif compact.startswith("84") and len(compact) == 11:
        compact = "0" + compact[2:]
    if not PHONE_RE.match(compact):
        raise IdentityError("phone", "phone must be 10 digits starting with 0 (or +84…)")
    return compact


def mask_phone(phone: str) -> str:
    """`0912345678` → `0912***678`."""
    return f"{phone[:4]}***{phone[-3:]}"


def check_id_number(raw: str) -> str:
    if not CCCD_RE.match(raw):
        raise IdentityError("id_number", "id_number (CCCD) must be exactly 12 digits")
    return raw


def check_full_name(raw: str) -> str:
    name = " ".join(raw.split())
    if not 2 <= len(name) <= 100:
        raise IdentityError("full_name", "full_name must be 2 to 100 characters after trimming")
    return name


def parse_birth_date(raw: str) -> date:
    if not BIRTH_RE.match(raw):
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
