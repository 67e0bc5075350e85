"""What changed between two revisions of a period's prize list: entered, left, moved — and nothing else."""

from __future__ import annotations

from typing import Any

from contest.revisions import Placing, prize_changes


def doc(*winners: tuple[str, str, str, int]) -> dict[str, Any]:
    names = {"first": "Giải Nhất", "second": "Giải Nhì", "consolation": "Giải Khuyến khích"}
    return {"individual": [{"group": g, "participant_id": p, "display_name": p.upper(), "prize": prize,
                            "prize_name": names[prize], "rank": rank} for g, p, prize, rank in winners]}


def test_entered_left_and_moved_one_line_each_in_group_order() -> None:
    before = doc(("cbccvc", "an", "first", 1), ("cbccvc", "binh", "second", 2), ("cbccvc", "chi", "consolation", 3),
                 ("nhan_dan", "dung", "first", 1))
    after = doc(("cbccvc", "binh", "first", 1), ("cbccvc", "chi", "consolation", 3), ("cbccvc", "em", "second", 2),
                ("nhan_dan", "dung", "first", 1))
    changes = prize_changes(before, after, ["nhan_dan", "cbccvc"])
    assert [(c.group, c.participant_id, c.change) for c in changes] == [
        ("cbccvc", "em", "entered"), ("cbccvc", "binh", "moved"), ("cbccvc", "an", "left")]
    entered, moved, left = changes
    assert entered.before is None and entered.after == Placing("second", "Giải Nhì", 2) and entered.display_name == "EM"
    assert moved.before == Placing("second", "Giải Nhì", 2) and moved.after == Placing("first", "Giải Nhất", 1)
    assert left.before == Placing("first", "Giải Nhất", 1) and left.after is None


def test_a_rank_change_within_the_same_prize_is_a_move_and_equal_lists_change_nothing() -> None:
    a = doc(("g", "x", "consolation", 4), ("g", "y", "consolation", 5))
    b = doc(("g", "x", "consolation", 5), ("g", "y", "consolation", 4))
    assert {c.change for c in prize_changes(a, b)} == {"moved"}
    assert prize_changes(a, a) == []
