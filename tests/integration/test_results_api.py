"""The results API: periods, leaderboard paging, a participant's view, live units, common routes."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from ops.wiring import build_results
from results import app as results_app
from results.api import STANDING
from runtime.fastpath import FAST_ROUTES
from runtime.web import Call
from tests.harness import System, admin


async def test_periods_and_statuses(system: System) -> None:
    s = system
    s.clock.ms = s.contest.periods[0].start_ms - 1
    body = await s.ok("/v1/periods")
    assert [p["status"] for p in body["periods"]] == ["upcoming", "upcoming"]
    assert body["periods"][0] == {"number": 1, "name": "Tuần 1", "start": "2030-01-07T08:00:00.000+07:00",
                                  "end": "2030-01-14T08:00:00.000+07:00", "status": "upcoming"}
    s.clock.ms = s.contest.periods[0].end_ms
    assert [p["status"] for p in (await s.ok("/v1/periods"))["periods"]] == ["closing", "open"]


async def test_leaderboard_paging_and_fields(system: System) -> None:
    s = system
    people = [await s.register(unit_code="A1") for _ in range(7)]
    for i, pid in enumerate(people):
        await s.entry(pid, correct=5 - i % 5, after=10 + i)
    await s.drain()
    first = await s.ok("/v1/periods/1/leaderboard?limit=3")
    assert first["period"] == 1 and first["group"] == "cbccvc" and first["final"] is False and first["total"] == 7
    assert [e["rank"] for e in first["entries"]] == [1, 2, 3]
    row = first["entries"][0]
    assert set(row) == {"rank", "participant_id", "display_name", "unit_code", "unit_name", "score", "correct",
                        "duration_ms", "prediction", "prediction_error", "submitted_at", "attempt_id"}
    assert row["unit_name"] == "Phòng A1" and row["display_name"].startswith("Nguyễn Văn")
    assert row["duration_ms"] == 10_000
    page = await s.ok("/v1/periods/1/leaderboard?limit=3&offset=3")
    assert [e["rank"] for e in page["entries"]] == [4, 5, 6]
    everyone = await s.ok("/v1/periods/1/leaderboard?limit=500")
    scores = [(-e["score"], e["duration_ms"]) for e in everyone["entries"]]
    assert scores == sorted(scores)
    assert (await s.ok("/v1/periods/1/leaderboard?group=nhan_dan"))["total"] == 0
    assert len((await s.ok("/v1/periods/1/leaderboard?limit=100000"))["entries"]) == 7  # capped at 500, not refused


async def test_leaderboard_parameters_are_checked(system: System) -> None:
    s = system
    for query, code, status in (("limit=0", "invalid", 422), ("limit=x", "invalid", 422),
                                ("offset=-1", "invalid", 422), ("group=khach", "invalid", 422)):
        got, body = await s.get(f"/v1/periods/1/leaderboard?{query}")
        assert (got, body["error"]["code"]) == (status, code), query
    for path in ("/v1/periods/3/leaderboard", "/v1/periods/0/units", "/v1/periods/abc/prizes",
                 "/v1/periods/9/participants/x"):
        got, body = await s.get(path)
        assert (got, body["error"]["code"]) == (404, "unknown_period"), path


async def test_participant_view(system: System) -> None:
    s = system
    pid, other = await s.register(), await s.register()
    await s.entry(other, 5)
    await s.entry(pid, 2, prediction=9)
    await s.entry(pid, 4, prediction=8)
    await s.drain()
    view = await s.ok(f"/v1/periods/1/participants/{pid}")
    assert view["participant_id"] == pid and view["period"] == 1 and view["final"] is False
    assert view["rank"] == 2 and view["best"]["score"] == 20 and view["best"]["rank"] == 2
    assert [a["score"] for a in view["attempts"]] == [10, 20]
    assert set(view["attempts"][0]) == {"attempt_id", "score", "correct", "duration_ms", "prediction", "submitted_at"}
    empty = await s.ok(f"/v1/periods/2/participants/{pid}")
    assert empty["rank"] is None and empty["best"] is None and empty["attempts"] == []
    status, body = await s.get("/v1/periods/1/participants/nobody")
    assert status == 404 and body["error"]["code"] == "unknown_participant"


async def test_live_units(system: System) -> None:
    s = system
    await s.entry(await s.register(unit_code="A1"), 5)
    await s.entry(await s.register(unit_code="C1"), 5)
    await s.entry(await s.register(group="nhan_dan", unit_code="B"), 5)  # citizens do not count
    await s.drain()
    units = await s.ok("/v1/periods/1/units")
    assert units["final"] is False
    assert [u["unit_code"] for u in units["entries"]] == ["A", "C", "B"]
    a = units["entries"][0]
    assert set(a) == {"rank", "unit_code", "unit_name", "headcount", "participants", "entries",
                      "participation_rate", "avg_score_ratio", "unit_score"}
    assert (a["headcount"], a["participants"], a["entries"], a["avg_score_ratio"]) == (6, 1, 1, 1.0)
    assert units["entries"][2]["participants"] == 0


async def test_common_routes(system: System) -> None:
    s = system
    for client in (s.ingest, s.results):
        assert (await client.get("/healthz")).status == 200
        ready = await client.get("/readyz")
        assert ready.status == 200 and (await ready.json())["status"] == "ready"
        metrics = await client.get("/metrics")  # only on the metrics port (DESIGN §3): the live counts
        assert metrics.status == 404 and "cchc_" not in await metrics.text()
        spec = await (await client.get("/openapi.json")).json()
        assert "/metrics" not in spec["paths"]
        assert spec["openapi"].startswith("3.")
    ingest_spec = await (await s.ingest.get("/openapi.json")).json()
    schema = ingest_spec["components"]["schemas"]["Submission"]
    assert set(schema["properties"]) == {"token", "answers", "prediction"}
    results_spec = await (await s.results.get("/openapi.json")).json()
    assert "/v1/periods/{n}/leaderboard" in results_spec["paths"]


async def test_deep_live_pages_are_refused_and_slow_reads_cut_off(system: System) -> None:
    """An open period's OFFSET paging is capped (its cost grows with the offset); a read over the
    statement timeout is cancelled and becomes StoreUnavailable (503), it does not hold a connection."""
    import pytest

    from eventstore.errors import StoreUnavailable
    from eventstore.postgres import connection, open_pool

    s = system
    status, body = await s.get("/v1/periods/1/leaderboard?offset=10001")
    assert status == 422 and "offset" in body["error"]["message"]
    assert (await s.get("/v1/periods/1/leaderboard?offset=10000"))[0] == 200
    slow = open_pool(s.clients.pool.conninfo, max_size=1, statement_timeout_ms=50)
    await slow.open()
    try:
        with pytest.raises(StoreUnavailable):
            async with connection(slow) as conn:
                await conn.execute("SELECT pg_sleep(1)")
    finally:
        await slow.close()


async def test_an_empty_number_is_no_number(system: System) -> None:
    for query in ("limit=", "offset=", "limit=1&offset="):
        status, body = await system.get(f"/v1/periods/1/leaderboard?{query}")
        assert status == 422 and body["error"]["code"] == "invalid", query


async def test_participation_lists_every_unit_against_its_target(system: System) -> None:
    s = system
    a, a1, b, gone = [await s.register(unit_code=u) for u in ("A", "A1", "B", "B")]
    citizen = await s.register(group="nhan_dan", unit_code="C1")  # citizens do not count for units here
    for pid in (a, a1, b, gone, citizen):
        await s.entry(pid, 3)
    status, _ = await s.admin_post("/v1/admin/disqualifications", {"participant_id": gone, "reason": "x"},
                             headers=admin())  # before week 1's freeze: it shows at once
    assert status == 202
    s.clock.ms = s.contest.periods[1].start_ms + 60_000
    await s.entry(a, 3, after=10)
    await s.drain()
    overall = await s.ok("/v1/participation")
    assert overall["period"] is None
    rows = {u["unit_code"]: u for u in overall["units"]}
    assert list(rows) == ["A", "A1", "B", "C", "C1"]  # every unit of the tree, in its order
    assert rows["A"] == {"unit_code": "A", "unit_name": "Sở A", "parent_code": None, "kind": "so_nganh",
                         "headcount": 6, "participants": 2, "participation_rate": 2 / 6, "target": 0.4,
                         "below_target": True}
    assert rows["A1"]["participants"] == 1 and rows["A1"]["target"] is None and rows["A1"]["below_target"] is False
    assert rows["B"]["participants"] == 1 and rows["B"]["participation_rate"] == 0.2 and rows["B"]["below_target"]
    assert rows["C"]["participants"] == rows["C1"]["participants"] == 0 and rows["C1"]["headcount"] == 0
    week2 = {u["unit_code"]: u["participants"] for u in (await s.ok("/v1/participation?period=2"))["units"]}
    assert week2 == {"A": 1, "A1": 0, "B": 0, "C": 0, "C1": 0}
    for query, code in (("period=9", 404), ("period=x", 422), ("period=%D9%A1", 422), ("period=", 422)):
        status, body = await s.get(f"/v1/participation?{query}")
        assert status == code, (query, body)


FROZE = "2030-01-14T07:00:00.000+07:00"  # week 1 ends at 08:00; the test contest freezes the last 60 minutes


def without_frozen_at(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "frozen_at"}


async def test_a_frozen_period_answers_as_it_stood_when_the_freeze_began(system: System) -> None:
    """DESIGN §3: in a period's last `freeze_minutes` every public ranking and count — the leaderboard and its
    total, ranks, units, participation, the public participant view — stands as at the freeze's start until
    the close; entries, a disqualification, a unit move and an answer-key correction made meanwhile show at the
    close."""
    s = system
    week1 = s.contest.periods[0]
    freeze = s.contest.frozen_at(week1)
    assert freeze == week1.end_ms - 3_600_000
    a, b, d = [await s.register(unit_code=u) for u in ("A1", "B", "B")]
    late = await s.register(unit_code="C1")
    citizen = await s.register(group="nhan_dan")
    first_of_a = await s.start(a)
    await s.submit(first_of_a, 4, prediction=7)
    await s.entry(b, 2, prediction=5)
    await s.entry(d, 3)
    await s.entry(citizen, 1)
    await s.drain()
    people = (a, b, d, late, citizen)
    paths = ["/v1/periods/1/leaderboard", "/v1/periods/1/leaderboard?group=nhan_dan", "/v1/periods/1/units",
             "/v1/participation?period=1", "/v1/participation", *(f"/v1/periods/1/participants/{p}" for p in people)]

    async def read() -> dict[str, Any]:
        return {path: await s.ok(path) for path in paths}

    s.clock.ms = freeze - 1
    stood = await read()
    assert all(body["frozen_at"] is None for body in stood.values())
    assert stood["/v1/periods/1/leaderboard"]["total"] == 3
    s.clock.ms = freeze
    # During the freeze: a correction of the key that lowers a's counted score, a disqualification, a first
    # entry and a better one (answered with the corrected key).
    q = first_of_a["questions"][0]["id"]  # answered right by a
    wrong = "ABCD"[("ABCD".index(s.key[q]) + 1) % 4]
    status, _ = await s.admin_post("/v1/admin/answer-key", {"question_id": q, "answer": wrong, "reason": "x"},
                             headers=admin())
    assert status == 202
    s.key[q] = wrong
    status, _ = await s.admin_post("/v1/admin/disqualifications", {"participant_id": d, "reason": "x"}, headers=admin())
    assert status == 202
    status, _ = await s.admin_post("/v1/admin/unit-moves", {"participant_id": a, "unit_code": "C1", "reason": "x"},
                                   headers=admin())  # A's figures stay A's until the close
    assert status == 202
    await s.drain()  # the correction rescores what came before the freeze: the public's scores stay
    await s.entry(late, 5)
    await s.entry(b, 5, prediction=1)
    await s.drain()
    # Signed in, each sees their own new entry meanwhile (GET /v1/participants/me: ingest's, never frozen).
    for person, receipts in ((late, 1), (b, 2)):
        answer = await s.ingest.get("/v1/participants/me", headers=s.auth(person))
        assert answer.status == 200
        assert len((await answer.json())["periods"][0]["receipts"]) == receipts, person
    for now in (freeze + 600_000, week1.end_ms + 1000):  # frozen from its start until the close, past the end
        s.clock.ms = now
        frozen = await read()
        assert all(body["frozen_at"] == FROZE for body in frozen.values()), now
        assert {p: without_frozen_at(v) for p, v in frozen.items()} == \
            {p: without_frozen_at(v) for p, v in stood.items()}, now
    # Week 2 is not frozen; its answers say so.
    s.clock.ms = week1.end_ms + 1000
    assert (await s.ok("/v1/periods/2/leaderboard"))["frozen_at"] is None
    assert (await s.ok("/v1/participation?period=2"))["frozen_at"] is None
    # The close: exact and final, nothing frozen.
    await s.close(1)
    board = await s.ok("/v1/periods/1/leaderboard")
    assert board["final"] is True and board["frozen_at"] is None and board["total"] == 3  # d disqualified
    scores = {e["participant_id"]: e["score"] for e in board["entries"]}
    assert scores == {b: 25, late: 25, a: 15}  # the correction counts too
    units = await s.ok("/v1/periods/1/units")
    assert units["frozen_at"] is None and {u["unit_code"]: u["participants"] for u in units["entries"]} == \
        {"A": 0, "B": 1, "C": 2}  # a moved to C1 during the freeze
    joined = await s.ok("/v1/participation?period=1")
    assert joined["frozen_at"] is None
    assert {u["unit_code"]: u["participants"] for u in joined["units"]}["B"] == 1
    view = await s.ok(f"/v1/periods/1/participants/{b}")
    assert view["frozen_at"] is None and view["final"] is True and len(view["attempts"]) == 2
    assert (await s.ok(f"/v1/periods/1/participants/{a}"))["attempts"][0]["score"] == 15


async def test_frozen_views_in_detail(system: System) -> None:
    """A rank derived from the freeze's ranking, a participant view listing only what came before it, scored
    as then; and the OpenAPI document carries frozen_at on every frozen answer."""
    s = system
    week1 = s.contest.periods[0]
    freeze = s.contest.frozen_at(week1)
    assert freeze is not None
    a, b = await s.register(), await s.register()
    await s.entry(a, 3, after=30)
    await s.entry(b, 2, after=30)
    await s.drain()
    s.clock.ms = freeze + 1
    await s.entry(b, 5)  # would rank b first
    await s.drain()
    view = await s.ok(f"/v1/periods/1/participants/{b}")
    assert (view["rank"], view["best"]["score"], [x["score"] for x in view["attempts"]]) == (2, 10, [10])
    assert view["frozen_at"] == FROZE
    assert (await s.ok(f"/v1/periods/1/participants/{a}"))["rank"] == 1
    spec = await (await s.results.get("/openapi.json")).json()
    for schema in ("LeaderboardOut", "ParticipantOut", "UnitsOut", "ParticipationOut"):
        assert "frozen_at" in spec["components"]["schemas"][schema]["properties"], schema
        assert "frozen_at" in spec["components"]["schemas"][schema]["required"], schema


async def test_without_a_freeze_every_answer_is_live(variant: Any) -> None:
    async with variant(freeze_minutes=0) as s:
        pid = await s.register()
        s.clock.ms = s.contest.periods[0].end_ms - 120_000
        await s.entry(pid, 4)
        await s.drain()
        board = await s.ok("/v1/periods/1/leaderboard")
        assert board["total"] == 1 and board["frozen_at"] is None


async def test_numbers_of_any_length_are_refused_or_capped_never_a_server_error(system: System) -> None:
    """Python reads no more than 4,300 digits with int(): every number a client writes is read without it."""
    s = system
    huge = "9" * 4301
    for path, status, code in (
            (f"/v1/periods/{huge}/leaderboard", 404, "unknown_period"),
            (f"/v1/periods/{huge}/units", 404, "unknown_period"),
            (f"/v1/periods/{huge}/participants/x", 404, "unknown_period"),
            (f"/v1/periods/{huge}/prizes", 404, "unknown_period"),
            (f"/v1/participation?period={huge}", 404, "unknown_period"),
            (f"/v1/periods/1/leaderboard?offset={huge}", 422, "invalid"),  # an open period pages to 10,000
            (f"/v1/periods/1/prizes?revision={huge}", 409, "not_closed")):
        got, body = await s.get(path)
        assert (got, body["error"]["code"]) == (status, code), path[:60]
        assert len(body["error"]["message"]) < 200
    assert (await s.ok(f"/v1/periods/1/leaderboard?limit={huge}"))["entries"] == []  # capped at 500
    assert (await s.ok(f"/v1/periods/{'0' * 4301}1/leaderboard"))["period"] == 1
    got, body = await s.admin_post(f"/v1/admin/periods/{huge}/close", None, headers=admin())
    assert (got, body["error"]["code"]) == (404, "unknown_period")
    await s.close(1)
    got, body = await s.get(f"/v1/periods/1/prizes?revision={huge}")
    assert (got, body["error"]["code"]) == (404, "unknown_revision")
    assert (await s.ok(f"/v1/periods/1/leaderboard?offset={huge}"))["entries"] == []  # a closed one: any depth
    for path, status in ((f"/periods/{huge}", 404), (f"/periods/1?page={huge}", 422),
                         (f"/periods/{huge}/participants/x", 404), (f"/participation?period={huge}", 404)):
        answer = await s.results.get(path)
        assert answer.status == status and answer.headers["Content-Type"].startswith("text/html"), path[:60]


async def test_heavy_reads_are_shared_between_readers_arriving_together(system: System) -> None:
    """Units and participation are answered once for a crowd (Results.remembered), as the leaderboard is."""
    s = system
    await s.entry(await s.register(unit_code="A1"), 3)
    await s.drain()
    res = dataclasses.replace(build_results(s.contest, s.clients, s.clock), fresh_s=30)  # shared: a slow machine
    asked: dict[str, int] = {}
    for name in ("live_unit_aggregates", "participants_per_unit"):
        real = getattr(res.live, name)

        async def counting(*args: Any, _real: Any = real, _name: str = name) -> Any:
            asked[_name] = asked.get(_name, 0) + 1
            return await _real(*args)

        setattr(res.live, name, counting)
    async with TestClient(TestServer(results_app.build_app(res))) as results:
        for path in ("/v1/periods/1/units", "/v1/participation", "/v1/participation?period=1", "/participation",
                     "/periods/1"):
            answers = await asyncio.gather(*(results.get(path) for _ in range(8)))
            assert {a.status for a in answers} == {200}, path
    assert asked == {"live_unit_aggregates": 1, "participants_per_unit": 2}  # the whole contest, and week 1


async def test_a_standing_answered_from_the_connection_is_the_routes_answer(system: System) -> None:
    """The standing's fast route (runtime/fastpath.py) takes plain targets only; the rest go through aiohttp's
    route to the same view, and both answer alike, errors included."""
    s = system
    pid = await s.register()
    await s.entry(pid, 3)
    await s.drain()
    routes = s.results.app[FAST_ROUTES]
    route = routes[STANDING]
    taken: list[tuple[str, ...]] = []

    def begin(call: Call) -> asyncio.Future[Any]:
        taken.append(call.params)
        return route.begin(call)

    routes[STANDING] = dataclasses.replace(route, begin=begin)
    try:
        fast = await s.results.get(f"/v1/periods/1/participants/{pid}", headers={"X-Request-Id": "standing.1"})
        assert taken == [("1", pid)] and fast.headers["X-Request-Id"] == "standing.1"
        slow = await s.results.get(f"/v1/periods/01/participants/{pid}")  # a leading zero: aiohttp's route
        assert len(taken) == 1 and (fast.status, await fast.json()) == (slow.status, await slow.json()) == (
            200, await s.ok(f"/v1/periods/1/participants/{pid}?via=aiohttp"))
        for path, status, code in (("/v1/periods/9/participants/x", 404, "unknown_period"),
                                   ("/v1/periods/1/participants/nobody", 404, "unknown_participant")):
            for target in (path, path + "?via=aiohttp"):
                got, body = await s.get(target)
                assert (got, body["error"]["code"]) == (status, code), target
        assert len(taken) == 3
        head = await s.results.head(f"/v1/periods/1/participants/{pid}")
        assert head.status == 405 and len(taken) == 3  # HEAD: aiohttp answers it (the API has no HEAD)
        literal = await s.results.get("/v1/periods/{n}/participants/{id}")  # the template's own text: no route
        assert literal.status == 404 and len(taken) == 3
    finally:
        routes[STANDING] = route
