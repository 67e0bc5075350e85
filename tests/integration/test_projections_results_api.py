"""The results API: periods, leaderboard paging, a participant's view, live units, common routes."""

from __future__ import annotations

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
    status, _ = await s.post("/v1/admin/disqualifications", {"participant_id": gone, "reason": "x"},
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
