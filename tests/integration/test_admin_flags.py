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
        assert (await s.ingest.get("/v1/admin/periods/1/flags")).status == 401
        assert (await s.ingest.get("/v1/admin/periods/9/flags", headers=admin())).status == 404
