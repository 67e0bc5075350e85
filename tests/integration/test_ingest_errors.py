"""Every ingest error code of DESIGN §6, each refusal writing nothing (stream and keys unchanged)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.harness import System, admin


async def snapshot(s: System) -> tuple[int, int]:
    """The stream and every key, but the counters of requests (counting a refused one is their point) and the
    write records that keep such a count from running twice (eventstore/lua/prelude.lua)."""
    keys = [k for k in await s.clients.redis.keys("*") if b":rate:" not in k and b":recover:" not in k
            and b":w:" not in k]
    return await s.stream_length(), len(keys)


async def refused(s: System, path: str, body: Any, status: int, code: str, *, raw: bytes | None = None,
                  headers: dict[str, str] | None = None) -> dict[str, Any]:
    before = await snapshot(s)
    app = s.desk if path.startswith("/v1/admin/") else s.ingest  # the committee's routes are the desk's
    if raw is not None:
        answer = await app.post(path, data=raw, headers=headers)
    else:
        answer = await app.post(path, json=body, headers=headers)
    payload = await answer.json()
    assert answer.status == status, payload
    assert answer.content_type == "application/json"
    assert payload["error"]["code"] == code and payload["error"]["message"]
    assert await snapshot(s) == before, "a refused request wrote something"
    return dict(payload["error"])


# -- registration --------------------------------------------------------------------------------

@pytest.mark.parametrize(("change", "field"), [
    ({"id_number": "12345"}, "id_number"),
    ({"id_number": "0380900012ab"}, "id_number"),
    ({"phone": "12345"}, "phone"),
    ({"birth_date": "17/05/1990"}, "birth_date"),
    ({"birth_date": "1990-02-30"}, "birth_date"),
    ({"birth_date": "2015-01-08"}, "birth_date"),
    ({"full_name": " X "}, "full_name"),
    ({"group": "khach"}, "group"),
    ({"unit_code": "ZZZ"}, "unit_code"),
    ({"unit_code": None}, "unit_code"),
    ({"phone": 912345678}, "phone"),
    ({"extra": 1}, "extra"),
    ({"full_name": "Nguyễn\u0000Văn"}, "NUL"),
])
async def test_registration_invalid_fields(system: System, change: dict[str, Any], field: str) -> None:
    error = await refused(system, "/v1/participants", system.person(**change), 422, "invalid")
    assert field in error["message"]


async def test_registration_missing_field_is_named(system: System) -> None:
    body = system.person()
    del body["phone"]
    assert "phone" in (await refused(system, "/v1/participants", body, 422, "invalid"))["message"]


async def test_registration_excluded_then_duplicates(system: System) -> None:
    await refused(system, "/v1/participants", system.person(id_number="001099999999"), 403, "excluded")
    first = system.person()
    await system.register(**first)
    await refused(system, "/v1/participants", system.person(id_number=first["id_number"]), 409,
                  "duplicate_identity")
    same_phone = "+84 " + first["phone"][1:3] + " " + first["phone"][3:]
    error = await refused(system, "/v1/participants", system.person(phone=same_phone), 409, "duplicate_identity")
    assert "phone" in error["message"]
    # excluded is checked before duplicates
    await refused(system, "/v1/participants", system.person(id_number="001099999999", phone=first["phone"]),
                  403, "excluded")


@pytest.mark.parametrize("spelling", ["{}\n", " {} ", "{}\r\n", "\t{}", "{} "])
async def test_an_id_number_spelt_otherwise_is_the_same_person(system: System, spelling: str) -> None:
    """Whole-value formats and normalisation: `"012345678901\\n"` opens no second account, and the
    excluded list cannot be slipped past with spaces."""
    first = system.person()
    await system.register(**first)
    await refused(system, "/v1/participants", system.person(id_number=spelling.format(first["id_number"])), 409,
                  "duplicate_identity")
    await refused(system, "/v1/participants", system.person(id_number=spelling.format("001099999999")), 403,
                  "excluded")


@pytest.mark.parametrize("name", ['=HYPERLINK("http://evil.example","Giải Nhất")', "+SUM(A1:A9)", "@cmd", "-1+1",
                                  "Nguyễn <b>An</b>", "Trần Văn 3"])
async def test_names_that_are_no_names_are_refused(system: System, name: str) -> None:
    error = await refused(system, "/v1/participants", system.person(full_name=name), 422, "invalid")
    assert "full_name" in error["message"]


async def test_citizens_need_no_unit_and_get_their_bank(system: System) -> None:
    citizen = await system.register(group="nhan_dan", unit_code=None)
    civil = await system.register()
    for _ in range(3):
        assert not any(q["id"].startswith("N") for q in (await system.start(civil))["questions"])
    seen = {q["id"] for _ in range(3) for q in (await system.start(citizen))["questions"]}
    assert seen <= {f"Q{n}" for n in range(1, 11)} | {"N11", "N12"}


@pytest.mark.parametrize(("raw", "status", "code"), [
    (b"{not json", 400, "malformed_json"),
    (b"", 400, "malformed_json"),
    (b"[1, 2]", 422, "invalid"),
    (b'"text"', 422, "invalid"),
    (b"{}", 422, "invalid"),
    (b"\xff\xfe", 400, "malformed_json"),
])
@pytest.mark.parametrize("path", ["/v1/participants", "/v1/attempts", "/v1/submissions"])
async def test_bodies_that_are_not_the_schema(system: System, path: str, raw: bytes, status: int, code: str) -> None:
    await refused(system, path, None, status, code, raw=raw, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("path", ["/v1/participants", "/v1/attempts", "/v1/submissions"])
async def test_huge_bodies(system: System, path: str) -> None:
    raw = json.dumps({"full_name": "x" * 70_000}).encode()
    await refused(system, path, None, 413, "too_large", raw=raw)


# -- attempts ------------------------------------------------------------------------------------

async def test_attempt_shape(system: System) -> None:
    attempt = await system.start(await system.register())
    assert set(attempt) == {"attempt_id", "token", "period", "started_at", "deadline", "questions"}
    assert attempt["period"] == 1 and len(attempt["questions"]) == 5
    assert set(attempt["questions"][0]) == {"id", "text", "options"}
    assert set(attempt["questions"][0]["options"]) == {"A", "B", "C", "D"}
    assert "answer" not in json.dumps(attempt["questions"])
    assert attempt["started_at"].endswith("+07:00") and attempt["started_at"][19] == "."
    from tests.harness import _ms
    assert _ms(attempt["deadline"]) - _ms(attempt["started_at"]) == 1200 * 1000


async def test_attempt_errors(system: System) -> None:
    s = system
    await refused(s, "/v1/attempts", {"participant_id": "nobody"}, 404, "unknown_participant", headers=s.auth("x"))
    await refused(s, "/v1/attempts", {"participant_id": "x" * 65}, 422, "invalid")
    pid = await s.register()
    for _ in range(3):
        await s.start(pid)
    await refused(s, "/v1/attempts", {"participant_id": pid}, 409, "attempt_limit", headers=s.auth(pid))
    s.clock.ms = s.contest.periods[1].start_ms  # a new period, a new allowance
    await s.start(pid)
    s.clock.ms = s.contest.periods[1].end_ms
    await refused(s, "/v1/attempts", {"participant_id": pid}, 403, "period_not_open", headers=s.auth(pid))
    s.clock.ms = s.contest.periods[0].start_ms - 1
    await refused(s, "/v1/attempts", {"participant_id": pid}, 403, "period_not_open", headers=s.auth(pid))


async def test_disqualified_cannot_start_but_an_earlier_attempt_is_accepted_and_never_counts(system: System) -> None:
    s = system
    pid = await s.register()
    attempt = await s.start(pid)
    status, _ = await s.admin_post("/v1/admin/disqualifications", {"participant_id": pid, "reason": "gian lận"},
                             headers=admin())
    assert status == 202
    await refused(s, "/v1/attempts", {"participant_id": pid}, 403, "disqualified", headers=s.auth(pid))
    await s.submit(attempt, correct=5)
    await s.drain()
    assert (await s.ok("/v1/periods/1/leaderboard"))["total"] == 0
    view = await s.ok(f"/v1/periods/1/participants/{pid}")
    assert view["rank"] is None and view["best"] is None and len(view["attempts"]) == 1


# -- submissions ---------------------------------------------------------------------------------

async def test_submission_errors_in_order(system: System) -> None:
    s = system
    pid = await s.register()
    attempt = await s.start(pid)
    good = {"token": attempt["token"], "answers": s.answers(attempt, 5), "prediction": 3}
    await refused(s, "/v1/submissions", {**good, "token": attempt["token"][:-3] + "AAA"}, 401, "invalid_token")
    await refused(s, "/v1/submissions", {**good, "prediction": -1}, 422, "invalid")
    await refused(s, "/v1/submissions", {**good, "answers": {"Q1": "E"}}, 422, "invalid")
    await refused(s, "/v1/submissions", {**good, "answers": {"N11": "A"}}, 422, "invalid")
    await refused(s, "/v1/submissions", {**good, "prediction": 1.5}, 422, "invalid")
    s.clock.ms = _started(attempt) + (1200 + 10) * 1000 + 1
    await refused(s, "/v1/submissions", good, 410, "deadline_passed")


async def test_deadline_plus_grace_is_inclusive(system: System) -> None:
    s = system
    attempt = await s.start(await s.register())
    await s.submit(attempt, 5, after=1200 + 10)


async def test_period_end_refuses_even_when_the_next_period_is_open(system: System) -> None:
    s = system
    pid = await s.register()
    s.clock.ms = s.contest.periods[0].end_ms - 60_000
    attempt = await s.start(pid)
    s.clock.ms = s.contest.periods[0].end_ms  # the next period begins this very millisecond
    body = {"token": attempt["token"], "answers": s.answers(attempt, 5), "prediction": 1}
    await refused(s, "/v1/submissions", body, 403, "period_closed")


async def test_the_same_attempt_again_gets_the_original_receipt(system: System) -> None:
    s = system
    attempt = await s.start(await s.register())
    receipt = await s.submit(attempt, 3, after=30)
    assert set(receipt) == {"submission_id", "attempt_id", "received_at", "duration_ms"}  # DESIGN §6
    assert receipt["duration_ms"] == 30_000  # the server measured it: received − started
    length = await s.stream_length()
    s.clock.ms = s.contest.periods[1].end_ms + 3_600_000  # long after the deadline and the period
    again = await s.ingest.post("/v1/submissions", json={"token": attempt["token"], "answers": {},
                                                         "prediction": 99})
    assert again.status == 200 and await again.json() == receipt
    assert await s.stream_length() == length
    await s.drain()
    assert await s.count("entries") == 1


# -- admin and generic ---------------------------------------------------------------------------

async def test_admin_needs_the_bearer_token(system: System) -> None:
    s = system
    for headers in (None, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        await refused(s, "/v1/admin/periods/1/close", None, 401, "unauthorized", headers=headers)
        await refused(s, "/v1/admin/disqualifications", {"participant_id": "x", "reason": "r"}, 401,
                      "unauthorized", headers=headers)
    await refused(s, "/v1/admin/periods/9/close", None, 404, "unknown_period", headers=admin())
    await refused(s, "/v1/admin/periods/x/close", None, 404, "unknown_period", headers=admin())
    await refused(s, "/v1/admin/periods/1/close", None, 409, "period_not_ended", headers=admin())
    await refused(s, "/v1/admin/disqualifications", {"participant_id": "nobody", "reason": "r"}, 404,
                  "unknown_participant", headers=admin())


async def test_unknown_routes_and_methods_answer_json(system: System) -> None:
    answer = await system.ingest.get("/v1/nothing")
    assert answer.status == 404 and (await answer.json())["error"]["code"] == "not_found"
    answer = await system.ingest.get("/v1/submissions")
    assert answer.status == 405 and (await answer.json())["error"]["code"] == "method_not_allowed"


def _started(attempt: dict[str, Any]) -> int:
    from tests.harness import _ms

    return _ms(attempt["started_at"])


async def test_odd_input_never_answers_5xx(system: System) -> None:
    """Non-ASCII digits in paths and queries, invalid UTF-8 in a body, a non-ASCII Authorization header."""
    s = system
    for path in ("/v1/periods/¹/prizes", "/v1/periods/١/leaderboard", "/v1/periods/1/leaderboard?limit=²",
                 "/v1/periods/1/leaderboard?offset=٣", "/v1/periods/1/prizes?revision=¹", "/v1/periods/%FF/units"):
        answer = await s.results.get(path)
        assert 400 <= answer.status < 500 and "error" in await answer.json(), path
    for path, body in (("/v1/participants", b'{"full_name": "\xff\xfe"}'), ("/v1/participants", b"\xff"),
                       ("/v1/submissions", b'{"token": "\xc3", "answers": {}, "prediction": 1}')):
        answer = await s.ingest.post(path, data=body, headers={"Content-Type": "application/json"})
        assert answer.status == 400 and (await answer.json())["error"]["code"] == "malformed_json", path
    odd = {"Authorization": "Bearer Trần-Văn-Ơn".encode().decode("latin-1")}
    answer = await s.desk.post("/v1/admin/periods/1/close", headers=odd)
    assert answer.status == 401
    assert await s.stream_length() == 0
