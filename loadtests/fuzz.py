"""`make fuzz`: schemathesis against both apps of a live stack — every phase, stateful included,
bounded in time — then a search of the data directory (Valkey's AOF, PostgreSQL's files) and the
logs for the plain CCCDs, phones and access keys of the people registered during the run.

Exit 0 only with 0 server errors, 0 schema violations and no personal data at rest or in logs."""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from ops.presets import Running, throwaway_stack
from ops.simulate import spelled

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "response_headers_conformance,negative_data_rejection,unsupported_method")
PHASES = "examples,coverage,fuzzing,stateful"
CONFIG = Path(__file__).with_name("schemathesis.toml")


async def post(http: aiohttp.ClientSession, url: str, body: Any, **kwargs: Any) -> tuple[int, Any]:
    """POST as a front-end does: a 503 (overload, a server down, the clock not read yet after a start on a busy
    machine) is tried again after its Retry-After, a few times."""
    for _ in range(10):
        async with http.post(url, json=body, **kwargs) as r:
            answer = await r.json()
            if r.status != 503:
                return r.status, answer
            await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
    return r.status, answer


async def front_end(run: Running, people: int) -> tuple[list[bytes], list[str]]:
    """Real participants (register with consent, start, submit); returns the secrets that must be nowhere at
    rest, and their access keys (the fuzzer's credentials on ingest: a participant's own routes answer 200)."""
    secrets: list[bytes] = []
    keys: list[str] = []
    privacy = run.contest.privacy
    consent = {"consent": {"version": privacy.version}} if privacy else {}
    async with aiohttp.ClientSession() as http:
        for n in range(1, people + 1):
            cccd, phone = f"0380{90_000_000 + n:08d}", f"09{70_000_000 + n:08d}"
            body = {"full_name": f"Người Thử Fuzz {spelled(n)}", "id_number": cccd, "phone": f"+84 {phone[1:]}",
                    "birth_date": "1990-04-01", "group": "nhan_dan", **consent}
            status, credentials = await post(http, f"{run.ingest_url}/v1/participants", body)
            assert status == 201, credentials
            status, attempt = await post(http, f"{run.ingest_url}/v1/attempts",
                                         {"participant_id": credentials["participant_id"]},
                                         headers={"Authorization": f"Bearer {credentials['access_key']}"})
            assert status == 201, attempt
            status, receipt = await post(http, f"{run.ingest_url}/v1/submissions",
                                         {"token": attempt["token"], "answers": {}, "prediction": n})
            assert status == 202, receipt
            secrets += [cccd.encode(), phone.encode(), phone[1:].encode(), credentials["access_key"].encode()]
            keys.append(credentials["access_key"])
    return secrets, keys


async def still_signed_in(run: Running, key: str) -> bool:
    """The fuzzer's participant was not erased by the fuzzing: its routes answered 200 all along."""
    async with aiohttp.ClientSession() as http, http.get(f"{run.ingest_url}/v1/participants/me",
                                                         headers={"Authorization": f"Bearer {key}"}) as r:
        return r.status == 200


ERASURE = "/v1/participants/me/erasure"  # fuzzed apart, with a participant of its own: it ends its caller's key


def schemathesis(url: str, credential: str, seconds: int, report: Path, *only: str) -> int:
    """One app fuzzed with `credential` as its Bearer token (the admin token on the desk and results, a
    participant's access key on ingest); `only`: more filters (--include-path …)."""
    command = [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(CONFIG), "run",
               f"{url}/openapi.json",
               "--phases", PHASES, "--checks", CHECKS, "--max-time", str(seconds), "--max-examples", "60",
               "--header", f"Authorization: Bearer {credential}", "--request-timeout", "15",
               "--report", "junit", "--report-junit-path", str(report), "--no-color", "--warnings", "off", *only]
    print("$", " ".join(c if "Bearer" not in c else "Authorization: Bearer ***" for c in command), flush=True)
    return subprocess.run(command, timeout=seconds * 3 + 120).returncode


def found_at_rest(root: Path, secrets: list[bytes]) -> list[str]:
    """Files under `root` (data directory: AOF, PostgreSQL's files, logs) holding any of `secrets`."""
    hits = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        hits += [f"{path}: {s.decode()[:4]}…" for s in secrets if s in data]
    return hits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=120, help="schemathesis budget per app (default 120)")
    parser.add_argument("--people", type=int, default=25)
    parser.add_argument("--reports", default="loadtests/reports", help="where the JUnit reports go")
    args = parser.parse_args()
    reports = Path(args.reports)
    reports.mkdir(parents=True, exist_ok=True)
    with throwaway_stack("fuzz", scorers=1, privacy=True) as run:  # with a notice: consent is fuzzed too
        admin = next(iter(run.settings.admin_token_names()))
        secrets, keys = asyncio.run(front_end(run, max(2, args.people)))
        runs = (("ingest", run.ingest_url, keys[-1], args.seconds, ("--exclude-path", ERASURE)),
                ("ingest-erasure", run.ingest_url, keys[-2], 30, ("--include-path", ERASURE)),
                ("results", run.results_url, admin, args.seconds, ()), ("desk", run.desk_url, admin, args.seconds, ()))
        failed = [name for name, url, credential, seconds, only in runs
                  if schemathesis(url, credential, seconds, reports / f"fuzz-{name}.xml", *only) != 0]
        if not asyncio.run(still_signed_in(run, keys[-1])):
            failed.append("ingest (its participant's key stopped working: its routes were not fuzzed signed in)")
        run.stack.stop()  # servers flushed and stopped: their files are complete
        leaks = found_at_rest(run.settings.data_dir, secrets)
    for line in leaks:
        print(f"PERSONAL DATA AT REST: {line}")
    verdict = "fail" if failed or leaks else "pass"
    print(f"fuzz: schemathesis {'failed on ' + ', '.join(failed) if failed else 'clean on every app'}; "
          f"{len(secrets) // 4} people's CCCD, phone and access key searched in {run.settings.data_dir.name}/: "
          f"{len(leaks)} found -> {verdict}")
    return 0 if verdict == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
