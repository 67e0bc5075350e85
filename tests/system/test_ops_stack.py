"""The command line and the local stack as an operator runs them: real processes, real servers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from eventstore.errors import StoreUnavailable
from eventstore.redis_stream.client import durability_mode
from ops.embedded import free_port
from tests.front_end import front_end
from tests.paths import ROOT


def cchc(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ops.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**_clean_env(), **(env or {})})


def _clean_env() -> dict[str, str]:
    """No CCHC_* variables, and a data dir of its own (never a developer's running stack.env)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CCHC_")}
    return {**env, "CCHC_DATA_DIR": tempfile.mkdtemp(prefix="cchc-cli-")}


SERVERS = {"CCHC_REDIS_URL": "redis://127.0.0.1:1/0", "CCHC_DATABASE_URL": "postgresql:///nowhere",
           "CCHC_CONTEST": str(ROOT / "contests" / "nghean-2022")}
SECRETS = {"CCHC_SECRET": "s" * 32, "CCHC_ADMIN_TOKEN": "a" * 32, "CCHC_PII_KEY": "eHh4" * 10 + "eHg="}


def test_ingest_and_the_desk_refuse_to_start_without_their_secrets_or_with_short_ones() -> None:
    done = cchc("ingest", env=SERVERS)
    assert done.returncode == 2 and "CCHC_SECRET not set" in done.stderr
    done = cchc("ingest", env={**SERVERS, **SECRETS, "CCHC_PII_KEY": ""})
    assert done.returncode == 2 and "CCHC_PII_KEY not set" in done.stderr
    done = cchc("desk", env={**SERVERS, **SECRETS, "CCHC_ADMIN_TOKEN": "short"})
    assert done.returncode == 2 and "CCHC_ADMIN_TOKEN is 5 characters" in done.stderr and "short" not in \
        done.stderr.replace("CCHC_ADMIN_TOKEN is 5 characters", "")
    done = cchc("desk", env={**SERVERS, **SECRETS, "CCHC_ADMIN_TOKEN": "", "CCHC_ADMIN_TOKENS": "lan:" + "x" * 8})
    assert done.returncode == 2 and "CCHC_ADMIN_TOKENS (lan)" in done.stderr
    done = cchc("desk", env={**SERVERS, **SECRETS, "CCHC_PII_KEY": ""})
    assert done.returncode == 2 and "CCHC_PII_KEY not set" in done.stderr


@pytest.mark.parametrize("command", ["ingest", "results", "scorer", "desk"])
def test_processes_refuse_to_start_without_their_servers(command: str) -> None:
    done = cchc(command, env={**SECRETS, "CCHC_CONTEST": SERVERS["CCHC_CONTEST"]})
    assert done.returncode == 2 and "CCHC_REDIS_URL" in done.stderr


def test_a_broken_contest_folder_is_reported(tmp_path: Path) -> None:
    done = cchc("close", "1", env={"CCHC_CONTEST": str(tmp_path), "CCHC_REDIS_URL": "redis://x",
                                   "CCHC_DATABASE_URL": "postgresql:///x"})
    assert done.returncode == 2 and "contest.toml: file not found" in done.stderr


def _children_environ(data_dir: str) -> dict[str, bytes]:
    """role → environment of the `cchc up` children whose CCHC_DATA_DIR is `data_dir` (from /proc)."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            env = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"ops.cli" in cmdline and f"CCHC_DATA_DIR={data_dir}".encode() in env:
            role = cmdline[cmdline.index(b"ops.cli") + 1].decode()
            if role in ("ingest", "results", "scorer", "desk"):
                found[role] = env
    return found


def test_up_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    ingest_port, results_port, desk_port = free_port(), free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "up", "--data-dir", str(tmp_path), "--scorers", "1",
                             "--ingest-port", str(ingest_port), "--results-port", str(results_port),
                             "--desk-port", str(desk_port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_clean_env())
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:  # pytest-timeout bounds this loop
            seen.append(line)
            if line.startswith("cchc ready:"):
                break
        assert line.startswith("cchc ready:"), "".join(seen)
        assert f"http://127.0.0.1:{ingest_port}" in line and str(tmp_path / "secrets.env") in line
        assert f"desk http://127.0.0.1:{desk_port}/" in line
        with urllib.request.urlopen(f"http://127.0.0.1:{results_port}/v1/periods", timeout=5) as answer:
            periods = json.load(answer)["periods"]
        assert len(periods) == 3
        body = json.dumps({"full_name": "Trần Thị Bình", "id_number": "038090001234", "phone": "0912345678",
                           "birth_date": "1990-01-01", "group": "nhan_dan", "consent": {"version": "demo-2"}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{ingest_port}/v1/participants", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 201
        secrets = (tmp_path / "secrets.env").read_text()
        assert (tmp_path / "stack.env").exists() and (tmp_path / "prometheus-targets.json").exists()
        # /metrics on every process's metrics port (loopback), never on a public one (DESIGN §3)
        targets = [t for group in json.loads((tmp_path / "prometheus-targets.json").read_text()) for t in group["targets"]]
        assert len(targets) == 4 and all(t.startswith("127.0.0.1:") for t in targets)
        for target in targets:
            with urllib.request.urlopen(f"http://{target}/metrics", timeout=5) as answer:
                assert answer.status == 200 and b"cchc_" in answer.read()
        for port in (ingest_port, results_port, desk_port):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
            refused.value.close()
            assert refused.value.code == 404
        for path in ("/v1/admin/periods/1/close", "/v1/admin/disqualifications"):  # the desk's, not ingest's
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{ingest_port}{path}", data=b"{}"),
                                       timeout=5)
            refused.value.close()
            assert refused.value.code == 404
        with urllib.request.urlopen(f"http://127.0.0.1:{desk_port}/readyz", timeout=5) as answer:
            assert answer.status == 200
        if shutil.which("ss"):  # a burst of connections waits to be accepted instead of being dropped (serve.py)
            listening = subprocess.run(["ss", "-ltnH", f"sport = :{ingest_port}"], capture_output=True, text=True).stdout
            backlog = int(listening.split()[2])
            assert backlog == min(4096, int(Path("/proc/sys/net/core/somaxconn").read_text())), listening
        beside = {**_clean_env(), "CCHC_DATA_DIR": str(tmp_path)}  # nothing else: stack.env fills it in
        status = subprocess.run([sys.executable, "-m", "ops.cli", "status"], cwd=ROOT, env=beside,
                                capture_output=True, text=True, timeout=60)
        assert "postgres" in status.stdout and "Tuần 1" in status.stdout, status.stdout + status.stderr
        assert "DOWN" not in status.stdout
        assert "CCHC_SECRET=" in secrets and "CCHC_PII_KEY=" in secrets
        assert oct((tmp_path / "secrets.env").stat().st_mode & 0o777) == "0o600"
        _servers_ask_for_their_passwords(tmp_path, line)
        holders = {role: {name for name in ("CCHC_SECRET", "CCHC_PII_KEY", "CCHC_ADMIN_TOKEN")
                          if f"\0{name}=".encode() in b"\0" + env}
                   for role, env in _children_environ(str(tmp_path)).items()}
        assert holders == {"ingest": {"CCHC_SECRET", "CCHC_PII_KEY"}, "desk": {"CCHC_ADMIN_TOKEN", "CCHC_PII_KEY"},
                           "results": set(), "scorer": set()}  # each only the secrets it uses
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "cchc stopped" in out
        assert not (tmp_path / "stack.env").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # a restart keeps the secrets (and so every token already handed out)
    assert (tmp_path / "secrets.env").read_text() == secrets


def _servers_ask_for_their_passwords(data_dir: Path, ready_line: str) -> None:
    """The embedded Valkey and PostgreSQL of `cchc up` refuse a local client without the passwords
    secrets.env keeps; the URLs handed to the processes carry them; the line printed masks them."""
    import asyncio

    import psycopg
    from redis.exceptions import AuthenticationError

    from runtime.settings import read_env_file
    from tests.system.test_ops_embedded import without_password

    kept, handed = read_env_file(data_dir / "secrets.env"), read_env_file(data_dir / "stack.env")
    valkey_password, postgres_password = kept["CCHC_VALKEY_PASSWORD"], kept["CCHC_POSTGRES_PASSWORD"]
    assert f":{valkey_password}@" in handed["CCHC_REDIS_URL"]
    assert f":{postgres_password}@" in handed["CCHC_DATABASE_URL"]
    assert valkey_password not in ready_line and postgres_password not in ready_line and ":***@" in ready_line

    async def ping(url: str) -> object:
        client = aioredis.from_url(url)
        try:
            return await client.ping()
        finally:
            await client.aclose()

    assert asyncio.run(ping(handed["CCHC_REDIS_URL"]))
    with pytest.raises(AuthenticationError):
        asyncio.run(ping(without_password(handed["CCHC_REDIS_URL"])))
    with psycopg.connect(handed["CCHC_DATABASE_URL"], connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(without_password(handed["CCHC_DATABASE_URL"]), connect_timeout=5)


async def test_durability_mode_follows_the_server_config(redis: aioredis.Redis) -> None:
    assert await durability_mode(redis) == "fsync_always"
    await redis.config_set("appendfsync", "everysec")
    try:
        assert await durability_mode(redis) == "waitaof"
    finally:
        await redis.config_set("appendfsync", "always")
    await redis.config_set("appendonly", "no")
    try:
        with pytest.raises(StoreUnavailable, match="appendonly"):
            await durability_mode(redis)
    finally:
        await redis.config_set("appendonly", "yes")
        while (await redis.info("persistence"))["aof_rewrite_in_progress"]:
            time.sleep(0.05)


def test_migrate_checks_the_contest_first(tmp_path: Path) -> None:
    import shutil

    contest = tmp_path / "c"
    shutil.copytree(ROOT / "contests" / "haiphong-2023", contest)
    (contest / "units.csv").write_text((contest / "units.csv").read_text().replace(",so_nganh,", ",so_nganh,x", 1))
    done = cchc("migrate", env={"CCHC_CONTEST": str(contest), "CCHC_REDIS_URL": "redis://127.0.0.1:1/0",
                                "CCHC_DATABASE_URL": "postgresql:///nowhere"})
    assert done.returncode == 2 and "units.csv:2: headcount" in done.stderr


@pytest.mark.parametrize("preset", sorted(p.name for p in (ROOT / "contests").iterdir() if (p / "contest.toml").is_file()))
def test_every_preset_passes_contest_check(preset: str) -> None:
    done = cchc("contest", "check", str(ROOT / "contests" / preset))
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith(": OK") and "periods:" in done.stdout and "units:" in done.stdout


def test_contest_check_names_the_file_line_and_misspelt_key(tmp_path: Path) -> None:
    import shutil

    contest = tmp_path / "c"
    shutil.copytree(ROOT / "contests" / "quangnam-2023", contest)
    toml = contest / "contest.toml"
    lines = toml.read_text().splitlines()
    number = next(i for i, line in enumerate(lines, start=1) if line.startswith("once_per_unit"))
    toml.write_text("\n".join(line.replace("once_per_unit", "once_per_units") for line in lines))
    done = cchc("contest", "check", str(contest))
    assert done.returncode == 2
    assert f"contest.toml:{number}: unit_prizes.once_per_units: unknown key" in done.stderr


@pytest.mark.parametrize("preset", ["haiphong-2023", "nghean-2022", "quangbinh-2021-r2", "quangnam-2023"])
def test_every_seed_preset_runs_under_up_in_rehearsal(preset: str, tmp_path: Path) -> None:
    """`cchc up --contest PRESET --rehearsal` (DESIGN §8) serves each seed contest today: its periods shifted so
    the first is open now, its unit tree, "Thi thử" on every page, and one registration (with the consent of its
    privacy notice), attempt and submission."""
    from contest.load import load_contest

    contest = load_contest(ROOT / "contests" / preset)
    assert contest.privacy is not None  # every preset has its notice (a template)
    ingest_port, results_port, desk_port = free_port(), free_port(), free_port()
    proc = subprocess.Popen([sys.executable, "-m", "ops.cli", "up", "--contest", str(ROOT / "contests" / preset),
                             "--rehearsal", "--data-dir", str(tmp_path), "--scorers", "1", "--ingest-port",
                             str(ingest_port), "--results-port", str(results_port), "--desk-port", str(desk_port)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_clean_env())
    try:
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("cchc ready:"):
                break
        assert line.startswith("cchc ready:") and "REHEARSAL" in line, "".join(seen)
        base, ingest = f"http://127.0.0.1:{results_port}", f"http://127.0.0.1:{ingest_port}"
        _, periods, _ = front_end(f"{base}/v1/periods")
        assert [p["status"] for p in periods["periods"]][:1] == ["open"]
        assert len(periods["periods"]) == len(contest.periods)
        _, report, _ = front_end(f"{base}/v1/participation")
        units = report["units"]
        assert [u["unit_code"] for u in units] == list(contest.units)
        assert {u["kind"] for u in units if u["target"] is not None} == {t.kind for t in contest.unit_targets}
        _, summary, _ = front_end(f"{ingest}/v1/contest")
        assert summary["rehearsal"] is True and summary["slug"] == f"{contest.slug}-thi-thu"
        for page in (f"{ingest}/", f"{ingest}/dang-ky", f"{ingest}/thi", f"{base}/", f"{base}/periods/1",
                     f"http://127.0.0.1:{desk_port}/dang-nhap"):
            assert "Thi thử" in front_end(page)[2], page
        unit = next(u for u in contest.units.values() if u.parent_code is not None)
        born = contest.first_start().year - 30
        status, credentials, _ = front_end(f"{ingest}/v1/participants", {
            "full_name": "Trần Thị Bình", "id_number": f"038{1 if born < 2000 else 3}{born % 100:02d}001234",
            "phone": "0912345678", "birth_date": f"{born}-01-01", "group": contest.groups[0].code,
            "unit_code": unit.code, "consent": {"version": contest.privacy.version}})
        assert status == 201
        pid, key = str(credentials["participant_id"]), str(credentials["access_key"])
        status, attempt, _ = front_end(f"{ingest}/v1/attempts", {"participant_id": pid}, key)
        assert status == 201 and len(attempt["questions"]) == contest.rules.questions_per_attempt
        answers = {q["id"]: "A" for q in attempt["questions"]}
        status, receipt, _ = front_end(f"{ingest}/v1/submissions", {"token": attempt["token"], "answers": answers,
                                                               "prediction": 100})
        assert status == 202 and receipt["attempt_id"] == attempt["attempt_id"]
        assert (tmp_path / "rehearsal").exists()  # a data directory of its own, marked
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
