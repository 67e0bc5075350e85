"""The Committee service's desk actions against real servers (DESIGN §3 "Corrections", §6b, §10): a unit move
counts from the periods not yet closed, a closed one keeps the old unit until recomputed, the final counts each
period in that period's unit, and a replay gives the same digests; a reissued key; look-ups by CCCD or phone and
personal-data exports recorded without the values; what a key correction would change, before it is made."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import load_workbook

from admin.service import ReasonNeeded, SameUnit, UnknownParticipant, UnknownUnit
from eventstore.events import CommitteeRead, decode
from projections.replay import replay
from tests.harness import System, admin


async def units_of(s: System, period: int) -> dict[str, tuple[int, int]]:
    body = await s.ok(f"/v1/periods/{period}/units")
    return {u["unit_code"]: (u["participants"], u["entries"]) for u in body["entries"]}


async def participants_in(s: System, period: int | None) -> dict[str, int]:
    """unit → participants in `/v1/participation` (of one period, or the whole contest), the units with any."""
    body = await s.ok("/v1/participation" + ("" if period is None else f"?period={period}"))
    return {u["unit_code"]: u["participants"] for u in body["units"] if u["participants"]}


async def move(s: System, pid: str, unit: str) -> None:
    status, body = await s.admin_post("/v1/admin/unit-moves", {"participant_id": pid, "unit_code": unit,
                                                                "reason": "đăng ký nhầm đơn vị"}, headers=admin())
    assert status == 202 and body["unit_code"] == unit, body


async def test_a_move_counts_in_open_periods_and_in_closed_ones_only_when_recomputed(system: System) -> None:
    s = system
    mover, other = await s.register(unit_code="A1"), await s.register(unit_code="B")
    await s.entry(mover, 5, prediction=3)
    await s.entry(other, 2, prediction=3)
    await s.drain()
    assert (await units_of(s, 1))["A"] == (1, 1)  # A1 rolls up into the prize unit A
    await move(s, mover, "B")
    await s.drain()
    assert await units_of(s, 1) == {**(await units_of(s, 1)), "A": (0, 0), "B": (2, 2)}  # entries made before move too
    board = await s.ok("/v1/periods/1/leaderboard")
    assert [e["unit_code"] for e in board["entries"]] == ["B", "B"]
    closed = await s.close(1)
    prizes = await s.ok("/v1/periods/1/prizes")
    assert prizes["unit"][0]["unit_code"] == "B"
    # a move after the close: period 1 keeps B, the open period 2 counts the new unit
    s.clock.ms = s.contest.periods[1].start_ms + 1000
    await move(s, mover, "C1")
    await s.entry(mover, 4, prediction=1)
    await s.drain()
    assert (await s.ok("/v1/periods/1/prizes"))["results_digest"] == closed["results_digest"]
    assert (await units_of(s, 2))["C"] == (1, 1)
    assert [e["unit_code"] for e in (await s.ok("/v1/periods/1/leaderboard"))["entries"]] == ["B", "B"]
    # participation too: period 1 in its close's unit, period 2 in the unit of now, the whole contest in both
    assert await participants_in(s, 1) == {"B": 2}
    assert await participants_in(s, 2) == {"C": 1, "C1": 1}
    assert await participants_in(s, None) == {"B": 2, "C": 1, "C1": 1}
    # period 1 recomputed: the mover now counts in C there too (their unit at the new barrier)
    status, again = await s.admin_post("/v1/admin/periods/1/recompute", {"reason": "đổi đơn vị"}, headers=admin())
    assert status == 200 and again["revision"] == 2 and again["results_digest"] != closed["results_digest"]
    units = {u["unit_code"]: u["participants"] for u in (await s.ok("/v1/periods/1/units"))["entries"]}
    assert units["C"] == 1 and units["B"] == 1
    status, changes = await s.get_admin("/v1/admin/periods/1/changes")
    assert status == 200 and (changes["before"], changes["after"]) == (1, 2)


async def test_the_final_counts_each_period_in_that_periods_unit_and_replays(system: System) -> None:
    s = system
    mover = await s.register(unit_code="A")
    await s.entry(mover, 5)
    await s.close(1)
    s.clock.ms = s.contest.periods[1].start_ms + 1000
    await move(s, mover, "B")
    await s.entry(mover, 5)
    await s.close(2)
    final = {u["unit_code"]: (u["participants"], u["entries"]) for u in (await s.ok("/v1/final"))["ranking"]}
    assert final["A"] == (1, 1) and final["B"] == (1, 1)  # week 1 in A (its close), week 2 in B
    digests = [(await s.ok(f"/v1/periods/{n}/prizes"))["results_digest"] for n in (1, 2)]
    report = await replay(s.contest, s.clients.pool, batch_size=2)
    assert report.mismatches == [] and report.results == 2
    assert [(await s.ok(f"/v1/periods/{n}/prizes"))["results_digest"] for n in (1, 2)] == digests
    assert {u["unit_code"]: (u["participants"], u["entries"]) for u in (await s.ok("/v1/final"))["ranking"]} == final


async def test_move_refusals(system: System) -> None:
    s = system
    pid = await s.register(unit_code="A")
    with pytest.raises(UnknownUnit):
        await s.committee.move(pid, "Z9", by="lan", reason="x")
    with pytest.raises(SameUnit):
        await s.committee.move(pid, "A", by="lan", reason="x")
    with pytest.raises(UnknownParticipant):
        await s.committee.move("nobody", "B", by="lan", reason="x")
    with pytest.raises(ReasonNeeded):
        await s.committee.move(pid, "B", by="lan", reason="  ")
    status, body = await s.admin_post("/v1/admin/unit-moves", {"participant_id": pid, "unit_code": "A",
                                                                "reason": "x"}, headers=admin())
    assert (status, body["error"]["code"]) == (409, "same_unit")
    assert await s.stream_length() == 1  # only the registration
    # new attempts carry the new unit (ingest's own record of the participant)
    await s.committee.move(pid, "B", by="lan", reason="đăng ký nhầm")
    attempt = await s.start(pid)
    await s.submit(attempt, 3)
    await s.drain()
    async with s.clients.pool.connection() as conn:
        row = await (await conn.execute("SELECT unit_code FROM entries WHERE participant_id = %s", (pid,))).fetchone()
    assert row == ("B",)


async def test_a_reissued_key_replaces_the_old_one(system: System) -> None:
    s = system
    pid = await s.register()
    old = s.access_keys[pid]
    status, body = await s.admin_post("/v1/admin/access-keys", {"participant_id": pid, "reason": "mất mã, đã xác minh"},
                                      headers=admin())
    assert status == 201 and body["access_key"].startswith(f"{pid}.") and body["access_key"] != old
    assert (await s.attempt(pid))[0] == 401  # the old key stopped working
    s.access_keys[pid] = body["access_key"]
    assert (await s.attempt(pid))[0] == 201
    status, body = await s.admin_post("/v1/admin/access-keys", {"participant_id": "nobody", "reason": "x"},
                                      headers=admin())
    assert (status, body["error"]["code"]) == (404, "unknown_participant")


async def test_look_ups_by_cccd_or_phone_are_posts_recorded_without_the_value(system: System) -> None:
    s = system
    body = s.person()
    pid = await s.register(**{k: body[k] for k in ("id_number", "phone", "full_name")})
    for query, kind in ((body["id_number"], "id_number"), (f"+84 {body['phone'][1:]}", "phone"), (pid, "participant_id")):
        status, found = await s.admin_post("/v1/admin/lookups", {"query": query, "reason": "gọi đường dây nóng"},
                                           headers=admin())
        assert status == 200 and found == {"participant_id": pid, "found_by": kind}
    status, refused = await s.admin_post("/v1/admin/lookups", {"query": body["id_number"]}, headers=admin())
    assert (status, refused["error"]["code"]) == (422, "invalid")  # a CCCD look-up says why
    status, refused = await s.admin_post("/v1/admin/lookups", {"query": "038099999999", "reason": "x"},
                                         headers=admin())
    assert (status, refused["error"]["code"]) == (404, "unknown_participant")
    await s.drain()
    async with s.clients.pool.connection() as conn:
        cur = await conn.execute("SELECT body FROM events WHERE kind = 'committee_read'")
        reads = [decode(bytes(row[0])) for row in await cur.fetchall()]
    assert [(r.what, r.subject) for r in reads if isinstance(r, CommitteeRead)] == [
        ("lookup_id_number", pid), ("lookup_phone", pid), ("lookup_id_number", "")]
    async with s.clients.pool.connection() as conn:
        cur = await conn.execute("SELECT string_agg(encode(body, 'escape'), ' ') FROM events WHERE kind = 'committee_read'")
        raw = ((await cur.fetchone()) or [""])[0].encode()
    assert body["id_number"].encode() not in raw and body["phone"][1:].encode() not in raw
    status, audit = await s.get_admin("/v1/admin/audit")
    assert status == 200 and [e["detail"] for e in audit["events"]][:3] == ["lookup_id_number", "lookup_phone",
                                                                            "lookup_id_number"][::-1]


async def test_the_participant_file_says_why_an_attempt_did_not_count(system: System) -> None:
    s = system
    pid = await s.register()
    await s.entry(pid, 2)
    await s.entry(pid, 4)
    await s.start(pid)  # started, never submitted
    await s.drain()
    status, file = await s.get_admin(f"/v1/admin/participants/{pid}")
    assert status == 200 and file["registration"]["phone_masked"].count("*") == 3
    lines = [(a["counted"], a["why_not"], a["score"]) for a in file["attempts"]]
    assert lines == [(False, "not_best", 10), (True, None, 20), (False, "not_submitted", None)]
    await s.committee.disqualify(pid, "thi hộ", by="lan")
    await s.drain()
    status, file = await s.get_admin(f"/v1/admin/participants/{pid}")
    assert {a["why_not"] for a in file["attempts"] if a["submission_id"]} == {"disqualified"}
    assert (await s.get_admin("/v1/admin/participants/nobody"))[0] == 404


async def test_a_correction_shows_its_impact_before_it_is_made(system: System) -> None:
    s = system
    people = [await s.register() for _ in range(3)]
    attempts = [await s.start(pid) for pid in people]
    question = attempts[0]["questions"][0]["id"]
    key = s.key[question]
    new = "ABCD"[("ABCD".index(key) + 1) % 4]
    sheets = [{question: key}, {question: new}, {question: new}]
    for attempt, answers in zip(attempts, sheets, strict=True):
        if any(q["id"] == question for q in attempt["questions"]):
            status, _ = await s.post("/v1/submissions", {"token": attempt["token"], "answers": answers, "prediction": 1})
            assert status == 202
    await s.committee.disqualify(people[2], "x", by="lan")
    await s.drain()
    drew = [any(q["id"] == question for q in a["questions"]) for a in attempts]
    status, impact = await s.get_admin(f"/v1/admin/answer-key/impact?question_id={question}&answer={new}")
    assert status == 200 and impact["key"] == key
    week = impact["periods"][0]
    assert (week["gain"], week["lose"], week["disqualified_gain"]) == (int(drew[1]), int(drew[0]), int(drew[2]))
    assert impact["periods"][1] == {"period": 2, "gain": 0, "lose": 0, "disqualified_gain": 0, "disqualified_lose": 0}
    assert await s.stream_length() == 3 + 3 + sum(drew) + 1  # nothing written by the preview
    assert (await s.get_admin("/v1/admin/answer-key/impact?question_id=nope&answer=A"))[0] == 404


async def test_a_personal_data_export_is_recorded_with_its_reason(system: System, tmp_path: Path) -> None:
    s = system
    people = [await s.register() for _ in range(3)]
    for n, pid in enumerate(people):
        await s.entry(pid, 5 - n)
    await s.close(1)
    out = tmp_path / "w.xlsx"
    with pytest.raises(ReasonNeeded):
        await s.committee.export_period(1, out, fmt="xlsx", by="lan", personal_reason=" ")
    assert not out.exists()
    rows = await s.committee.export_period(1, out, fmt="xlsx", by="lan", personal_reason="hồ sơ trao giải")
    assert rows == 3
    book = load_workbook(out, read_only=True)
    winners = list(book["Giải cá nhân"].values)
    book.close()  # a read-only workbook holds its file open
    assert winners[0][-3:] == ("Số CCCD", "Điện thoại", "Ngày sinh")
    answer = await s.desk.post("/v1/admin/exports", json={"period": "1", "format": "xlsx", "public": True},
                               headers=admin())
    assert answer.status == 200 and answer.headers["Content-Disposition"].endswith('.xlsx"')
    (tmp_path / "p.xlsx").write_bytes(await answer.read())
    book = load_workbook(tmp_path / "p.xlsx", read_only=True)
    assert "Cờ cần xem" not in book.sheetnames
    book.close()
    await s.drain()
    _, audit = await s.get_admin("/v1/admin/audit")
    reads = [e for e in audit["events"] if e["what"] == "committee_read"]
    assert [(e["by"], e["reason"], e["subject"], e["detail"]) for e in reads] == [
        ("lan", "hồ sơ trao giải", "1", "personal_data_export")]


async def test_every_committee_route_needs_a_caller(system: System) -> None:
    s = system
    for path in ("/v1/admin/overview", "/v1/admin/audit", "/v1/admin/participation", "/v1/admin/periods/1/revisions",
                 "/v1/admin/periods/1/flag-cases", "/v1/admin/participants/x", "/v1/admin/participation/A/reminders"):
        assert (await s.desk.get(path)).status == 401, path
        assert (await s.desk.get(path, headers=admin())).status in (200, 404), path
    for path in ("/v1/admin/unit-moves", "/v1/admin/access-keys", "/v1/admin/lookups", "/v1/admin/exports"):
        assert (await s.desk.post(path, json={})).status == 401, path
    status, overview = await s.get_admin("/v1/admin/overview")
    assert status == 200 and [p["status"] for p in overview["periods"]] == ["open", "upcoming"]
    status, body = await s.get_admin("/v1/admin/periods/1/changes")
    assert (status, body["error"]["code"]) == (409, "not_closed")
