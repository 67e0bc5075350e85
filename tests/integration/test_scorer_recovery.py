"""Recovery: poison entries, dead consumers, heartbeats, trimming, and Valkey/PostgreSQL outages."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Any

import pytest

from eventstore.events import ParticipantRegistered, encode_many
from eventstore.keys import CONTEST_STREAM, EVENT_FIELD, GROUP
from eventstore.postgres import open_pool
from ops.wiring import Clients, build_scorer
from tests.harness import System
from tests.paths import ROOT


async def dead_letters(s: System) -> list[dict[bytes, bytes]]:
    """Every stream's parked entries."""
    return [fields for slot in s.keys.slots for _, fields in await s.clients.redis.xrange(slot.dead_letters)]


async def test_undecodable_entries_go_to_the_dead_letter_stream(system: System) -> None:
    s = system
    stream = s.keys.contest.stream
    await s.entry(await s.register(), 5)
    await s.clients.redis.xadd(stream, {EVENT_FIELD: b"\xc1 not msgpack"})
    await s.clients.redis.xadd(stream, {"other": b"field"})
    await s.entry(await s.register(), 4)
    await s.drain()
    assert await s.count("entries") == 2
    parked = await dead_letters(s)
    assert len(parked) == 2 and all(b"cannot decode" in p[b"error"] for p in parked)
    assert (await s.clients.redis.xpending(stream, GROUP))["pending"] == 0


async def test_an_entry_that_fails_to_project_is_isolated(system: System) -> None:
    s = system
    pid = await s.register()
    bad = ParticipantRegistered(participant_id="x", group="cbccvc", unit_code="A", display_name="a\x00b",
                                phone_masked="0", id_hash="h", phone_hash="p", pii=b"", registered_ms=0)
    await s.clients.redis.xadd(s.keys.contest.stream, {EVENT_FIELD: encode_many([bad])})
    await s.entry(pid, 5)
    await s.drain()
    assert await s.count("entries") == 1 and await s.count("participants") == 1
    parked = await dead_letters(s)
    assert len(parked) == 1 and b"cannot project" in parked[0][b"error"]


async def test_a_batch_where_everything_fails_is_not_dead_lettered(system: System,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken deploy or database must not empty the stream into the dead-letter stream."""
    import psycopg

    from eventstore.errors import StoreUnavailable

    s = system
    await s.entry(await s.register(), 5)

    async def broken(*_: Any) -> None:
        raise psycopg.errors.UndefinedColumn("column does not exist")

    monkeypatch.setattr(s.scorers[0].projector, "apply", broken)
    with pytest.raises(StoreUnavailable):
        await s.drain()
    scorer = s.scorers[0]
    scorer.streams, scorer.max_rejections, scorer._behind = s.keys.numbers, 1, True
    await s.entry(await s.register(), 4)  # new entries beside the refused ones: all fail alike
    with pytest.raises(StoreUnavailable):
        await scorer._next_batch()
    assert await dead_letters(s) == []
    assert not any([await s.clients.redis.exists(slot.rejections) for slot in s.keys.slots])  # nothing counted
    monkeypatch.undo()
    await s.drain()
    assert await s.count("entries") == 2


async def test_a_reclaimed_entry_is_projected_however_often_it_was_delivered(system: System) -> None:
    """Deliveries say nothing of an entry: a scorer retrying through an outage delivers its entries again
    and again. The heir projects them (it once parked them past 10 deliveries)."""
    s = system
    await s.register()
    dying = build_scorer(s.contest, s.clients, "dying", s.clock)
    await dying.consumer.ensure_groups()
    assert await dying.consumer.read(s.keys.numbers, 10, None)  # delivered once, never acked
    for _ in range(12):  # retried during an outage: every retry is one more delivery
        assert await dying.consumer.own_pending(s.keys.numbers, 10)
    heir = build_scorer(s.contest, s.clients, "heir", s.clock)
    heir.claim_idle_ms, heir.streams = 0, s.keys.numbers
    assert await heir._reclaim() == 1
    assert await dead_letters(s) == [] and await s.count("participants") == 1


def _failing_on(scorer: Any, attempt_id: str, error: Exception) -> Any:
    """The scorer's projector, failing on the submission of one attempt (a bug, or a value PostgreSQL refuses)."""
    apply = scorer.projector.apply

    async def buggy(conn: Any, events: Any) -> None:
        if any(type(e).__name__ == "SubmissionReceived" and e.attempt_id == attempt_id for _, e in events):
            raise error
        await apply(conn, events)

    return buggy


async def test_an_entry_refused_alone_is_parked_once_another_projects_beside_it(
        system: System, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused alone, an entry proves nothing (a broken deploy refuses everything): it stays pending. The
    retry takes the next new entries beside it; they project, it does not: parked, and the close names it."""
    import psycopg

    from scorer.worker import Refused

    s = system
    victim, other = await s.register(), await s.register()
    attempt = await s.start(victim)
    await s.drain()
    scorer = s.scorers[0]
    scorer.streams = s.keys.numbers
    monkeypatch.setattr(scorer.projector, "apply", _failing_on(scorer, attempt["attempt_id"],
                                                               psycopg.errors.DataError("a value it refuses")))
    await s.submit(attempt, 4)
    with pytest.raises(Refused):
        await s.drain()  # first delivery, alone in its batch
    scorer._behind = True  # as after any failed step
    with pytest.raises(Refused):
        await scorer._next_batch()  # retried, still with nothing new beside it: one refusal counted
    assert await dead_letters(s) == []
    await s.entry(other, 5)
    await scorer._next_batch()  # now with the new entries: they project, it is refused again
    parked = await dead_letters(s)
    assert len(parked) == 1 and b"cannot project" in parked[0][b"error"]
    assert await s.count("entries") == 1 and not await s.clients.redis.exists(s.keys.of(victim).rejections)
    closed = await s.close(1)
    assert closed["dead_letters"] == 1  # the close names what it does not count
    assert (await s.ok("/v1/periods/1/prizes"))["actual"] == 1


async def test_an_entry_refused_with_nothing_beside_it_is_parked_after_max_rejections(
        system: System, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    from scorer.worker import Refused

    s = system
    victim = await s.register()
    attempt = await s.start(victim)
    await s.drain()
    scorer = s.scorers[0]
    scorer.streams, scorer.max_rejections, scorer.rejection_spacing_ms = s.keys.numbers, 3, 0
    monkeypatch.setattr(scorer.projector, "apply", _failing_on(scorer, attempt["attempt_id"],
                                                               psycopg.errors.DataError("a value it refuses")))
    await s.submit(attempt, 4)
    with pytest.raises(Refused):
        await s.drain()
    scorer._behind = True
    for refusals in (1, 2):
        with pytest.raises(Refused):
            await scorer._next_batch()
        stored = await s.clients.redis.hvals(s.keys.of(victim).rejections)
        assert [v.split(b":")[0] for v in stored] == [str(refusals).encode()]
    assert await scorer._next_batch() == 0  # the third: parked
    parked = await dead_letters(s)
    assert len(parked) == 1 and b"refused 3 times" in parked[0][b"error"]
    assert await scorer._next_batch() == 0 and not scorer._behind  # nothing of it blocks the stream now


async def test_an_entry_a_bug_fails_on_is_parked_not_fatal(system: System, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception of ours on one entry is refused like PostgreSQL's refusals: isolated and parked while
    the others project, instead of stopping the scorer on every try."""
    s = system
    victim, other = await s.register(), await s.register()
    attempt = await s.start(victim)
    await s.drain()
    monkeypatch.setattr(s.scorers[0].projector, "apply",
                        _failing_on(s.scorers[0], attempt["attempt_id"], KeyError("a bug")))
    await s.submit(attempt, 4)
    await s.entry(other, 5)
    await s.drain()
    parked = await dead_letters(s)
    assert len(parked) == 1 and b"KeyError" in parked[0][b"error"]
    assert await s.count("entries") == 1


async def test_parking_and_requeueing_twice_do_each_once(system: System) -> None:
    """A park or a requeue run again (a retry after a lost reply, two scorers holding the same entry, two
    operators) changes nothing more: one dead letter, one copy back on the stream."""
    s = system
    await s.register()
    consumer = s.scorers[0].consumer
    await consumer.ensure_groups()
    [entry] = await consumer.read(s.keys.numbers, 10, None)
    assert await consumer.dead_letter(entry, "cannot decode: test") is True
    assert await consumer.dead_letter(entry, "cannot decode: test") is False
    [(number, dead_id, _)] = await s.streams.dead_lettered()
    assert await s.streams.requeue_dead_letter(number, dead_id)
    assert await s.streams.requeue_dead_letter(number, dead_id) is None
    assert await s.stream_length() == 2 and await dead_letters(s) == []  # the parked original and one copy
    await s.drain()
    assert await s.count("participants") == 1


async def test_heartbeat_and_check(system: System, servers: Any) -> None:
    s = system
    scorer = s.scorers[0]
    scorer.block_ms = 50
    stop = asyncio.Event()
    task = asyncio.create_task(scorer.run(stop))
    await s.entry(await s.register(), 5)
    for _ in range(100):
        if await s.count("entries"):
            break
        await asyncio.sleep(0.05)
    assert scorer.name in await s.streams.heartbeats()
    assert sorted(scorer.streams) == s.keys.numbers  # alone: it holds every stream's lease
    env = _env(servers)
    check = [sys.executable, "-m", "ops.cli", "scorer", "--check", "--name"]
    assert (await asyncio.to_thread(subprocess.run, [*check, scorer.name], env=env, cwd=ROOT,
                                    capture_output=True)).returncode == 0
    assert subprocess.run([*check, "nobody"], env=env, cwd=ROOT, capture_output=True).returncode == 1
    stop.set()
    await asyncio.wait_for(task, 5)
    # A graceful stop gives its leases back and stops beating: the others take over at once.
    assert await s.streams.lease_owners() == {} and scorer.name not in await s.streams.heartbeats()


async def test_trim_only_what_every_group_acknowledged(system: System) -> None:
    s = system
    stream = s.keys.contest.stream  # where registrations go
    for _ in range(4):
        await s.register()
    await s.drain()  # 4 entries archived and acked
    await s.register()
    await s.register()
    pending = build_scorer(s.contest, s.clients, "slow", s.clock)
    taken = await pending.consumer.read([CONTEST_STREAM], 1, None)  # the 5th is delivered, not acked
    await s.clients.redis.xgroup_create(stream, "audit", id="0")  # a second group has read nothing
    assert await s.scorers[0].consumer.trim_acknowledged(CONTEST_STREAM, approximate=False) == "0-1"
    assert await s.clients.redis.xlen(stream) == 6
    await s.clients.redis.xgroup_destroy(stream, "audit")
    await s.scorers[0].consumer.trim_acknowledged(CONTEST_STREAM, approximate=False)
    remaining = [i.decode() for i, _ in await s.clients.redis.xrange(stream)]
    assert remaining[0] == taken[0][1] and len(remaining) == 2  # the pending one and the unread one stay
    assert await s.count("participants") == 4


async def test_valkey_outage_answers_503_and_recovers(system: System, servers: Any) -> None:
    if servers.valkey is None:
        pytest.skip("needs the embedded Valkey")
    s = system
    pid = await s.register()
    servers.valkey.stop()
    try:
        status, body = await s.attempt(pid)
        assert status == 503 and body["error"]["code"] == "unavailable"
        answer = await s.ingest.post("/v1/participants", json=s.person())
        assert answer.status == 503 and answer.headers["Retry-After"]
        assert (await s.ingest.get("/readyz")).status == 503
    finally:
        servers.valkey.start()
    await s.entry(pid, 5)  # recovered by itself, nothing acknowledged before was lost
    assert (await s.ingest.get("/readyz")).status == 200
    await s.drain()
    assert await s.count("participants") == 1 and await s.count("entries") == 1


async def test_postgres_outage_scorers_back_off_and_resume(system: System, servers: Any) -> None:
    if servers.postgres is None:
        pytest.skip("needs the embedded PostgreSQL")
    s = system
    scorer = s.scorers[0]
    scorer.block_ms = 50
    stop = asyncio.Event()
    servers.postgres.stop()
    try:
        task = asyncio.create_task(scorer.run(stop))
        pid = await s.register()  # ingest needs only Valkey
        await s.entry(pid, 5)
        assert (await s.results.get("/readyz")).status == 503
        assert (await s.results.get("/v1/periods/1/leaderboard")).status == 503
        await asyncio.sleep(0.5)
    finally:
        servers.postgres.start()
    for _ in range(200):
        if await _entries_or_zero(s) == 1:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert await s.count("entries") == 1 and await s.count("participants") == 1
    assert (await s.results.get("/readyz")).status == 200


async def _entries_or_zero(s: System) -> int:
    try:
        return await s.count("entries")
    except Exception:
        return 0


def _env(servers: Any, **extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("CCHC_")},
            "CCHC_REDIS_URL": servers.redis_url, "CCHC_DATABASE_URL": servers.database_url,
            "CCHC_CONTEST": str(ROOT / "tests" / "data" / "contest"), "CCHC_SECRET": "s" * 32, "CCHC_ADMIN_TOKEN": "a" * 32,
            "CCHC_PII_KEY": "eHh4" * 10 + "eHg=", "CCHC_DATA_DIR": str(ROOT / ".cchc-tests"), **extra}


async def test_ingest_refuses_to_start_on_a_redis_without_aof(system: System, servers: Any) -> None:
    from ops.embedded import free_port

    await system.clients.redis.config_set("appendonly", "no")
    try:
        done = subprocess.run([sys.executable, "-m", "ops.cli", "ingest", "--port", str(free_port())],
                              env=_env(servers), cwd=ROOT, capture_output=True, text=True, timeout=60)
    finally:
        await system.clients.redis.config_set("appendonly", "yes")
        while (await system.clients.redis.info("persistence"))["aof_rewrite_in_progress"]:
            await asyncio.sleep(0.05)
    assert done.returncode == 2 and "appendonly yes" in done.stderr


async def test_a_scorer_process_stops_cleanly_on_sigterm(system: System, servers: Any) -> None:
    import signal

    from ops.embedded import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "scorer", "--name", "sigterm", "--metrics-port",
                             str(port)], env=_env(servers), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        reader = system.streams
        for _ in range(200):
            if "sigterm" in await reader.heartbeats():
                break
            await asyncio.sleep(0.05)
        import aiohttp

        async with aiohttp.ClientSession() as http:  # every process answers /healthz, /readyz, /metrics
            for path, expected in (("/healthz", 200), ("/readyz", 200), ("/metrics", 200)):
                async with http.get(f"http://127.0.0.1:{port}{path}") as r:
                    assert r.status == expected, path
                    if path == "/metrics":
                        assert "cchc_scorer" in await r.text()
        await system.entry(await system.register(), 5)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    await system.drain()  # whatever it had not acked, another scorer finishes
    assert await system.count("entries") == 1


async def test_chaos_reconciliation_fails_on_a_lost_ack(system: System, servers: Any) -> None:
    from loadtests.chaos import Ledger, reconcile
    from runtime.settings import Settings

    s = system
    receipt = await s.entry(await s.register(), 5)
    await s.drain()
    ledger = Ledger(submissions={receipt["attempt_id"]: receipt["submission_id"]})
    assert reconcile(Settings(database_url=servers.database_url), ledger)[1] is True
    ledger.submissions["never-stored"] = "x"
    assert reconcile(Settings(database_url=servers.database_url), ledger)[1] is False


async def test_parked_entries_can_be_requeued_after_a_fix(system: System, monkeypatch: pytest.MonkeyPatch) -> None:
    """An acknowledged entry that a bug kept out of the projections counts once it is requeued."""
    import psycopg

    s = system
    good = await s.register()
    await s.entry(good, 5)
    victim = await s.register()
    receipt = await s.entry(victim, 4)
    apply = s.scorers[0].projector.apply

    async def buggy(conn: Any, events: Any) -> None:
        if any(type(e).__name__ == "SubmissionReceived" and e.attempt_id == receipt["attempt_id"]
               for _, e in events):
            raise psycopg.errors.DataError("a bug in projecting this entry")
        await apply(conn, events)

    monkeypatch.setattr(s.scorers[0].projector, "apply", buggy)
    await s.drain()
    assert await s.count("entries") == 1 and len(await dead_letters(s)) == 1
    monkeypatch.undo()  # the fix is deployed
    reader = s.streams
    for number, dead_id, _ in await reader.dead_lettered():
        assert await reader.requeue_dead_letter(number, dead_id)
    await s.drain()
    assert await s.count("entries") == 2 and await dead_letters(s) == []
    view = await s.ok(f"/v1/periods/1/participants/{victim}")
    assert view["best"]["attempt_id"] == receipt["attempt_id"]


async def test_an_approximate_trim_keeps_up_with_a_busy_stream(system: System) -> None:
    """More than 10,000 acknowledged entries since the last trim (half a minute at the peak): the
    approximate trim removes them all but a node's worth, not only its default limit of 10,000."""
    s = system
    stream = s.keys.contest.stream
    reader = s.scorers[0].consumer
    await reader.ensure_groups()
    async with s.clients.redis.pipeline(transaction=False) as pipe:
        for n in range(25_000):
            pipe.xadd(stream, {"e": b"x" * 40, "n": n})
        await pipe.execute()
    while batch := await reader.read([CONTEST_STREAM], 5_000, None):
        await reader.ack(batch)
    await reader.trim_acknowledged(CONTEST_STREAM)  # approximate, as the scorer calls it
    assert await s.clients.redis.xlen(stream) < 1_000


async def _until(predicate: Any, timeout: float = 20.0, what: str = "") -> None:
    """Poll `predicate` (async) until true, or fail naming `what`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_a_postgres_outage_parks_nothing_however_many_scorers_come_and_go(system: System,
                                                                               servers: Any) -> None:
    """Guarantee 8, reproduced as found: PostgreSQL down longer than the reclaim threshold while entries
    are acknowledged; the scorer retries its own pending entries all along (each retry is a delivery);
    a second scorer is started (the runbook's advice for a backlog) and takes over a stream with
    them. Nothing may be parked: once PostgreSQL is back, the close counts every acknowledged entry."""
    if servers.postgres is None:
        pytest.skip("needs the embedded PostgreSQL")
    s = system
    pool = open_pool(servers.database_url, max_size=4)  # the scorers' own: a short wait for a connection
    await pool.open()
    pool.timeout = 0.3  # so that the retries come fast and the deliveries pile up within seconds
    try:
        await _outage_with_a_second_scorer(s, servers, Clients(s.clients.redis, pool, s.keys))
    finally:
        await pool.close()


async def _outage_with_a_second_scorer(s: System, servers: Any, clients: Clients) -> None:
    first = s.scorers[0] = build_scorer(s.contest, clients, "first", s.clock)
    second = build_scorer(s.contest, clients, "second", s.clock)
    for scorer in (first, second):  # every threshold small: reclaim after 0.2 s, leases of 0.3 s
        scorer.block_ms, scorer.claim_idle_ms, scorer.beat_every_s = 50, 200, 0.1
        scorer.backoff_s = 0.05
    stops = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(first.run(stops[0]))]
    early = await s.register()
    await s.entry(early, 5)
    await _until(lambda: _entries_or_zero(s), what="the first entry projected")
    partition = s.keys.of(early).stream
    receipts = []
    servers.postgres.stop()
    try:
        receipts.append(await s.entry(early, 4))  # acknowledged while PostgreSQL is down

        async def redelivered_often() -> bool:
            rows = await s.clients.redis.xpending_range(partition, GROUP, "-", "+", 10)
            return bool(rows) and min(int(r["times_delivered"]) for r in rows) > 10  # past the old limit

        await _until(redelivered_often, what="the first scorer retrying its own pending entries")
        for _ in range(3):  # more acknowledged entries, from new participants too
            receipts.append(await s.entry(await s.register(), 3))
        tasks.append(asyncio.create_task(second.run(stops[1])))  # a second scorer joins during the outage

        async def shared() -> bool:
            return len(set((await s.streams.lease_owners()).values())) == 2

        await _until(shared, what="the streams shared by both scorers")
        await asyncio.sleep(1.0)  # past the reclaim threshold: the second scorer claims what the first held
    finally:
        servers.postgres.start()

    async def caught_up() -> bool:
        try:
            return (await s.streams.progress()).caught_up and await s.count("entries") > 0
        except Exception:  # PostgreSQL still coming back
            return False

    await _until(caught_up, timeout=30, what="both scorers catching up after the outage")
    for stop in stops:
        stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert await dead_letters(s) == []
    closed = await s.close(1)
    prizes = await s.ok("/v1/periods/1/prizes")
    assert prizes["actual"] == 1 + len(receipts)  # every acknowledged entry counted (target: entries)
    assert closed["dead_letters"] == 0
