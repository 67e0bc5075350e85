"""GET /v1/admin/periods/{n}/flags: what the committee reviews before publishing, from real entries."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_network
from typing import Any

import msgspec

from tests.harness import SETTINGS, System, admin


async def test_flags_name_fast_shared_and_copied_entries(contest: Any, redis: Any, pool: Any) -> None:
    await redis.flushall()
    rules = msgspec.structs.replace(contest.rules, min_plausible_seconds=30)
    settings = replace(SETTINGS, trusted_proxies=(ip_network("127.0.0.0/8"),))
    async with System.running(msgspec.structs.replace(contest, rules=rules), redis, pool, settings) as s:
        async def person(address: str) -> str:
            status, body = await s.post("/v1/participants", s.person(), headers={"X-Forwarded-For": address})
            assert status == 201
            s.access_keys[body["participant_id"]] = body["access_key"]
            return str(body["participant_id"])

        crowd = [await person("203.0.113.7") for _ in range(5)]  # five from one address
        fast, honest, copier = await person("198.51.100.1"), await person("198.51.100.2"), await person("198.51.100.3")
        await s.entry(crowd[0], 3, after=120)
        await s.entry(fast, 5, after=12)
        original, copy = await s.start(honest), await s.start(copier)
        common = sorted({q["id"] for q in original["questions"]} & {q["id"] for q in copy["questions"]})
        for attempt in (original, copy):  # the same answers to the questions both drew, the same prediction
            status, _ = await s.post("/v1/submissions", {"token": attempt["token"],
                                                         "answers": {q: "B" for q in common}, "prediction": 77})
            assert status == 202
        await s.drain()
        status, body = await s.get_admin("/v1/admin/periods/1/flags")
        assert status == 200 and body["period"] == 1
        kinds = {(f["kind"], f["participant_id"]) for f in body["flags"]}
        assert ("too_fast", fast) in kinds and ("shared_address", crowd[0]) in kinds
        if common:  # two 5-question draws from the test bank share a question almost always
            assert {("copied_entry", honest), ("copied_entry", copier)} <= kinds
        assert not any(pid in (honest, fast) for kind, pid in kinds if kind == "shared_address")
        assert all(set(f) == {"kind", "participant_id", "attempt_id", "detail"} for f in body["flags"])
        assert (await s.desk.get("/v1/admin/periods/1/flags")).status == 401
        assert (await s.desk.get("/v1/admin/periods/9/flags", headers=admin())).status == 404


async def test_question_statistics_count_real_entries_and_flag_a_wrong_key(system: System, monkeypatch: Any,
                                                                          tmp_path: Any) -> None:
    """GET /v1/admin/questions: counts from the entries as projected; strong entries agreeing on another
    choice flag the question (the minimum of strong draws lowered to fit a small test)."""
    import contest.questions

    monkeypatch.setattr(contest.questions, "MIN_UPPER_DRAWS", 1)
    s = system
    strong = [await s.register() for _ in range(4)]
    first = await s.start(strong[0])
    q = first["questions"][0]["id"]
    wrong = "ABCD"[("ABCD".index(s.key[q]) + 1) % 4]
    drawn = right = 0

    async def submit(attempt: dict[str, Any], answers: dict[str, str]) -> None:
        nonlocal drawn, right
        status, _ = await s.post("/v1/submissions", {"token": attempt["token"], "answers": answers, "prediction": 1})
        assert status == 202
        drawn += q in answers
        right += answers.get(q) == s.key[q]

    for i, pid in enumerate(strong):  # 4 of 5 right: q (when drawn) answered with the same wrong choice
        attempt = first if i == 0 else await s.start(pid)
        answers = {x["id"]: s.key[x["id"]] for x in attempt["questions"]}
        answers[q if q in answers else attempt["questions"][0]["id"]] = wrong
        await submit(attempt, answers)
    for _ in range(8):  # weak entries: nothing right
        attempt = await s.start(await s.register())
        await submit(attempt, s.answers(attempt, 0))
    await s.drain()
    status, body = await s.get_admin("/v1/admin/questions?period=1")
    assert status == 200 and body["period"] == 1
    stats = {x["question_id"]: x for x in body["questions"]}
    assert len(stats) == len(s.contest.questions)
    assert (stats[q]["drawn"], stats[q]["right"]) == (drawn, right)
    assert stats[q]["likely_wrong_key"] and stats[q]["suggested_answer"] == wrong
    assert sum(x["drawn"] for x in stats.values()) == 12 * 5
    assert (await s.get_admin("/v1/admin/questions"))[1]["period"] is None
    import csv

    from admin.export import export_questions
    from admin.questions import question_report
    from projections.live_queries import LiveQueries

    stats = await question_report(LiveQueries(s.clients.pool), s.contest, 1)
    assert export_questions(s.contest, stats, 1, tmp_path / "q.csv", fmt="csv") == len(s.contest.questions)
    with (tmp_path / "q.csv").open(encoding="utf-8-sig") as fh:
        flagged = [r for r in csv.DictReader(fh) if r["Nghi đáp án sai"] == "có"]
    assert (q, wrong) in [(r["Mã câu hỏi"], r["Đáp án nhóm điểm cao chọn"]) for r in flagged]
    export_questions(s.contest, stats, 1, tmp_path / "q.xlsx", fmt="xlsx")
    assert (await s.get_admin("/v1/admin/questions?period=7"))[0] == 404
    assert (await s.get("/v1/admin/questions"))[0] in (404, 405)  # not on the public results app
    status, _ = await s.admin_post("/v1/admin/answer-key", {"question_id": q, "answer": wrong}, headers=admin())
    assert status == 202
    await s.drain()
    after = {x["question_id"]: x for x in (await s.get_admin("/v1/admin/questions?period=1"))[1]["questions"]}
    assert after[q]["answer"] == wrong and not after[q]["likely_wrong_key"]


async def test_the_database_flags_what_the_rules_flag(contest: Any, redis: Any, pool: Any) -> None:
    """projections.desk_queries computes the flags in SQL; contest.flags.review is the rule: the same flags from
    the same entries — copies in whatever order their answers were sent, shared addresses, too fast."""
    import random

    from contest.flags import review
    from projections.live_queries import LiveQueries

    await redis.flushall()
    rules = msgspec.structs.replace(contest.rules, min_plausible_seconds=40)
    settings = replace(SETTINGS, trusted_proxies=(ip_network("127.0.0.0/8"),))
    rng = random.Random(7)
    async with System.running(msgspec.structs.replace(contest, rules=rules), redis, pool, settings) as s:
        people = []
        for n in range(14):
            status, body = await s.post("/v1/participants", s.person(),
                                        headers={"X-Forwarded-For": f"203.0.113.{n % 2 if n < 12 else 50 + n}"})
            assert status == 201
            s.access_keys[body["participant_id"]] = body["access_key"]
            people.append(body["participant_id"])
        for pid in people:
            for _ in range(rng.randint(0, 2)):
                attempt = await s.start(pid)
                ids = [q["id"] for q in attempt["questions"]]
                answers = {q: "A" for q in sorted(ids)[:rng.randint(0, 3)]}  # often the same first questions
                order = list(answers.items())
                rng.shuffle(order)
                s.clock.ms += rng.choice([20_000, 60_000])
                status, _ = await s.post("/v1/submissions", {"token": attempt["token"], "answers": dict(order),
                                                             "prediction": rng.choice([1, 2])})
                assert status == 202
        copier, original = people[-1], people[-2]  # and one planted copy, its answers sent in another order
        while True:
            one, two = await s.start(original), await s.start(copier)
            common = sorted({q["id"] for q in one["questions"]} & {q["id"] for q in two["questions"]})
            if common:
                break
        for attempt, ids in ((one, common), (two, common[::-1])):
            status, _ = await s.post("/v1/submissions", {"token": attempt["token"], "prediction": 99,
                                                         "answers": {q: "D" for q in ids}})
            assert status == 202
        await s.drain()
        status, body = await s.get_admin("/v1/admin/periods/1/flags")
        live = LiveQueries(s.clients.pool)
        entries = await live.period_submissions(1)
        oracle = review(entries, await live.registrations_per_address(sorted({e.participant_id for e in entries})), 40)
        as_rows = sorted((f.kind, f.participant_id, f.attempt_id or "", f.detail) for f in oracle)
        assert sorted((f["kind"], f["participant_id"], f["attempt_id"] or "", f["detail"]) for f in body["flags"]) \
            == as_rows
        assert {k for k, *_ in as_rows} == {"too_fast", "shared_address", "copied_entry"}  # every kind exercised
        status, cases = await s.get_admin("/v1/admin/periods/1/flag-cases")
        assert status == 200 and all(c["entries"] for c in cases["cases"])
