"""Identity rules: phone normalisation and masking, CCCD, names, minimum age."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from contest.identity import (
    IdentityError,
    age_on,
    check_age,
    check_full_name,
    check_id_number,
    mask_phone,
    normalize_phone,
)

START = datetime(2022, 8, 22, 8, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))


@pytest.mark.parametrize("raw", ["0912345678", "+84912345678", "+84 912 345 678", "0912.345.678", "84912345678",
                                 "091-234-5678"])
def test_phone_shapes_normalise(raw: str) -> None:
    assert normalize_phone(raw) == "0912345678"


@pytest.mark.parametrize("raw", ["912345678", "09123456789", "1912345678", "09123x5678", ""])
def test_bad_phones_are_refused(raw: str) -> None:
    with pytest.raises(IdentityError) as err:
        normalize_phone(raw)
    assert err.value.field == "phone"


def test_mask() -> None:
    assert mask_phone("0912345678") == "0912***678"


def test_cccd_is_twelve_digits() -> None:
    assert check_id_number("038090001234") == "038090001234"
    for bad in ("03809000123", "0380900012345", "03809000123a"):
        with pytest.raises(IdentityError):
            check_id_number(bad)


def test_names_are_trimmed_and_bounded() -> None:
    assert check_full_name("  Nguyễn   Văn  An ") == "Nguyễn Văn An"
    for bad in (" A ", "x" * 101):
        with pytest.raises(IdentityError):
            check_full_name(bad)


def test_age_is_counted_at_the_first_period_start() -> None:
    assert age_on(date(2007, 8, 22), START) == 15
    assert age_on(date(2007, 8, 23), START) == 14
    check_age(date(2007, 8, 22), START, 15)
    with pytest.raises(IdentityError, match="at least 15"):
        check_age(date(2007, 8, 23), START, 15)
    with pytest.raises(IdentityError, match="future"):
        check_age(date(2030, 1, 1), START, 0)
