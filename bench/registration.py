"""What a participant's own data key costs a registration (DESIGN §10, issue 24), each figure beside its
same-run baseline:

1. ingest's CPU work of sealing one registration: one key for everyone (CCHC_PII_KEY sealing the personal
   data and the profile, as before data keys) against a data key of the participant's own (drawn, wrapped,
   sealing the data with the name and the profile, the personal copy encoded);
2. registrations end to end through one ingest process (HTTP, Valkey with fsync always): its CPU time per
   registration, so (1)'s difference reads as a share of the whole;
3. the scorer projecting registrations: events v2 (a personal copy read from Valkey and kept in the keyring)
   against events v1 (the same registrations with their plain fields in the event), the same number of each.

    .venv/bin/python -m bench.registration [--registrations 4000] [--connections 32]

Starts and stops its own stack (one ingest, no scorer: the bench drives one in its own process).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from statistics import median

import aiohttp
import msgspec

from contest.identity import mask_phone
from eventstore.events import ParticipantRegistered, encode_many
from eventstore.ids import uuid7
from eventstore.pii import PersonalCopy, PersonalData, PiiVault, Profile, new_access_key
from eventstore.redis_stream.client import durability_mode
from eventstore.redis_stream.writer import StreamWriter
from ops.presets import Running, throwaway_stack
from ops.wiring import build_scorer, open_clients
from runtime.clock import SystemClock

NAME = "Nguyễn Thị Minh Khai"


def single_key(vault: PiiVault, n: int) -> None:
    """A registration's sealing as before data keys: everything under CCHC_PII_KEY."""
    pid, now = uuid7(1_800_000_000_000 + n), 1_800_000_000_000
    id_number, phone = f"0380{n:08d}", f"09{n:08d}"
    vault.hash("id", id_number), vault.hash("phone", phone), vault.hash("birth", "1990-05-17")
    vault.seal(PersonalData(id_number, phone, "1990-05-17"))
    vault.seal_profile(Profile(NAME, "1990-05-17", mask_phone(phone), now))
    key = new_access_key(pid)
    vault.access_hash(key), vault.seal_key(key)


def own_key(vault: PiiVault, n: int) -> None:
    """The same registration under a data key of its own, as ingest seals it now."""
    pid, now = uuid7(1_800_000_000_000 + n), 1_800_000_000_000
    id_number, phone = f"0380{n:08d}", f"09{n:08d}"
    id_hash, phone_hash = vault.hash("id", id_number), vault.hash("phone", phone)
    vault.hash("birth", "1990-05-17")
    data_key, wrapped = vault.new_data_key(pid)
    data_key.seal(PersonalData(id_number, phone, "1990-05-17", NAME))
    data_key.seal_profile(Profile(NAME, "1990-05-17", mask_phone(phone), now))
    msgspec.msgpack.encode(PersonalCopy(wrapped, NAME, mask_phone(phone), id_hash, phone_hash, "a" * 32))
    key = new_access_key(pid)
    vault.access_hash(key), vault.seal_key(key)


def sealing(rounds: int = 7, count: int = 20_000) -> tuple[float, float]:
    """µs per registration (median of `rounds`, the two ways alternating), one key and a key of its own."""
    vault = PiiVault(os.urandom(32))
    times: dict[str, list[float]] = {"single": [], "own": []}
    for _ in range(rounds):
        for name, work in (("single", single_key), ("own", own_key)):
            started = time.perf_counter()
            for n in range(count):
                work(vault, n)
            times[name].append((time.perf_counter() - started) / count * 1e6)
    return median(times["single"]), median(times["own"])


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115 - read at once
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def register_many(run: Running, count: int, connections: int) -> tuple[float, float]:
    """`count` registrations over `connections` connections: registrations/s and ingest's CPU µs each."""
    ingest_pid = run.stack.children["ingest"].pid
    todo = iter(range(count))

    async def worker(http: aiohttp.ClientSession) -> None:
        for n in todo:
            body = {"full_name": NAME, "id_number": f"0380{n:08d}", "phone": f"09{n:08d}",
                    "birth_date": "1990-05-17", "group": "nhan_dan"}
            async with http.post(f"{run.ingest_url}/v1/participants", json=body) as answer:
                assert answer.status == 201, await answer.text()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as http:
        cpu, started = cpu_seconds(ingest_pid), time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(connections)))
        elapsed, used = time.perf_counter() - started, cpu_seconds(ingest_pid) - cpu
    return count / elapsed, used / count * 1e6


async def projecting(run: Running, count: int, rounds: int = 3) -> tuple[float, float]:
    """Registrations projected a second, median of `rounds` alternating: events v1 (plain fields, as before data
    keys and as `cchc simulate` writes them) against v2 (nothing plain; a personal copy each in Valkey, which
    the scorer reads and keeps in the keyring), `count` of each, appended straight into the contest's stream
    after the HTTP part's registrations are projected (they warm the scorer up)."""
    clients = await open_clients(run.settings, run.contest, pool_size=4)
    vault = PiiVault(os.urandom(32))
    try:
        scorer = build_scorer(run.contest, clients, "bench-registration", SystemClock())
        await scorer.drain()
        writer = StreamWriter(clients.redis, clients.keys, durability=await durability_mode(clients.redis))
        rates: dict[int, list[float]] = {1: [], 2: []}
        serial = 0
        for _ in range(rounds):
            for version in (1, 2):
                events, copies = [], {}
                for _ in range(count):
                    serial += 1
                    pid = uuid7(1_900_000_000_000 + serial)
                    if version == 1:
                        event = ParticipantRegistered(
                            participant_id=pid, group="nhan_dan", unit_code=None, display_name=NAME,
                            phone_masked="0900***000", id_hash=f"{serial:064x}", phone_hash=f"{serial + 10**12:064x}",
                            pii=vault.seal(PersonalData(f"{serial:012d}", "0900000000", "1990-05-17")),
                            registered_ms=1_900_000_000_000, address_hash="a" * 32)
                    else:
                        key, wrapped = vault.new_data_key(pid)
                        event = ParticipantRegistered(
                            v=2, participant_id=pid, group="nhan_dan", unit_code=None, registered_ms=1_900_000_000_000,
                            pii=key.seal(PersonalData(f"{serial:012d}", "0900000000", "1990-05-17", NAME)))
                        copies[pid] = msgspec.msgpack.encode(PersonalCopy(
                            wrapped, NAME, "0900***000", f"{serial:064x}", f"{serial + 10**12:064x}", "a" * 32))
                    events.append(encode_many([event]))
                for pid, copy in copies.items():  # as ingest writes it, in the participant's partition
                    await clients.redis.hset(clients.keys.of(pid).personal, pid, copy)
                await writer.append_to({-1: events})
                started = time.perf_counter()
                projected = await scorer.drain()
                rates[version].append(count / (time.perf_counter() - started))
                assert projected == count, (version, projected)
        return median(rates[1]), median(rates[2])
    finally:
        await clients.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registrations", type=int, default=4000)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    single, own = sealing()
    print(f"sealing one registration (ingest's CPU, median of 7 × 20,000):  one key {single:6.1f} µs   "
          f"a key of its own {own:6.1f} µs   (+{own - single:.1f} µs)")
    with throwaway_stack("registration", scorers=0) as run:
        rate, cpu_us = asyncio.run(register_many(run, args.registrations, args.connections))
        print(f"registrations end to end, 1 ingest process, {args.connections} connections: {rate:,.0f} /s, "
              f"ingest CPU {cpu_us:,.0f} µs each: the data key is {(own - single) / cpu_us:.1%} of it")
        v1, v2 = asyncio.run(projecting(run, args.registrations))
        print(f"scorer projecting {args.registrations:,} registrations (median of 3, alternating): events v1 (plain,"
              f" the baseline) {v1:,.0f} /s   v2 (personal copy from Valkey, keyring) {v2:,.0f} /s   ({v2 / v1 - 1:+.0%})")


if __name__ == "__main__":
    main()
