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
    check_id_structure,
    mask_phone,
    normalize_id_number,
    normalize_phone,
)

START = datetime(2022, 8, 22, 8, tzinfo=ZoneInfo("Asia/Ho_Chi_Minh"))


@pytest.mark.parametrize("raw", ["0912345678", "+84912345678", "+84 912 345 678", "0912.345.678", "84912345678",
                                 "091-234-5678", "+84 (0) 912 345 678", "840912345678", "０９１２３４５６７８"])
def test_phone_shapes_normalise(raw: str) -> None:
    assert normalize_phone(raw) == "0912345678"


@pytest.mark.parametrize("raw", ["912345678", "09123456789", "1912345678", "09123x5678", "", "0912345678\n0",
                                 "+84 (0) 0912345678"])
def test_bad_phones_are_refused(raw: str) -> None:
    with pytest.raises(IdentityError) as err:
        normalize_phone(raw)
    assert err.value.field == "phone"


def test_mask() -> None:
    assert mask_phone("0912345678") == "0912***678"


def test_cccd_is_twelve_digits() -> None:
    assert normalize_id_number("038090001234") == "038090001234"
    for bad in ("03809000123", "0380900012345", "03809000123a", "038090001234\n1", "٠٣٨٠٩٠٠٠١٢٣٤"):
        with pytest.raises(IdentityError):
            normalize_id_number(bad)


@pytest.mark.parametrize("raw", ["038090001234", "038090001234\n", " 038 090 001 234 ", "038.090.001.234",
                                 "０３８０９０００１２３４"])
def test_cccd_is_normalised_before_it_is_hashed_or_compared(raw: str) -> None:
    """A trailing newline or spaces never make a second account for the same person."""
    assert normalize_id_number(raw) == "038090001234"


def test_cccd_structure_matches_the_birth_date() -> None:
    check_id_structure("038090001234", date(1990, 5, 17))  # Thanh Hoá, a man born in 1990
    check_id_structure("001305001234", date(2005, 1, 1))  # Hà Nội, a woman born in 2005
    for bad, born in (("000090001234", date(1990, 1, 1)), ("097090001234", date(1990, 1, 1)),
                      ("038091001234", date(1990, 1, 1)), ("038290001234", date(1990, 1, 1)),
                      ("038590001234", date(1990, 1, 1))):
        with pytest.raises(IdentityError) as err:
            check_id_structure(bad, born)
        assert err.value.field == "id_number"


def test_names_are_trimmed_and_bounded() -> None:
    assert check_full_name("  Nguyễn   Văn  An ") == "Nguyễn Văn An"
    assert check_full_name("O'Neil Jean-Paul Jr.") == "O'Neil Jean-Paul Jr."
    assert check_full_name("Nguye\u0302\u0303n Văn An") == "Nguyễn Văn An"  # combining marks, composed
    for bad in (" A ", "x" * 101, '=HYPERLINK("http://x","y")', "+Nguyễn", "@Văn", "Nguyễn\tAn2", "Trần<script>"):
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
