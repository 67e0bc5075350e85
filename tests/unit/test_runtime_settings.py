"""Settings: secrets at least 32 characters, named admin tokens, each process only what it uses,
server URLs printed without their passwords."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest

from runtime.settings import Settings, SettingsError, load_or_create_state, redact, without_secrets, write_env_file
from tests.filemodes import modes_seen, umask

KEY = base64.b64encode(b"k" * 32).decode()


def test_secrets_shorter_than_32_characters_are_refused() -> None:
    with pytest.raises(SettingsError, match="CCHC_SECRET is 8 characters"):
        Settings(secret="x" * 8).token_secrets()
    with pytest.raises(SettingsError, match="CCHC_SECRET_PREVIOUS"):
        Settings(secret="x" * 32, secret_previous="short").token_secrets()
    with pytest.raises(SettingsError, match="base64 of 32"):
        Settings(pii_key=base64.b64encode(b"k" * 31).decode() + "=" * 12).pii_key_bytes()
    assert Settings(secret="x" * 32, secret_previous="y" * 32).token_secrets() == (b"x" * 32, b"y" * 32)


def test_each_organiser_has_a_named_token() -> None:
    lan, minh = "l" * 32, "m" * 32
    settings = Settings.from_env({"CCHC_ADMIN_TOKENS": f"lan:{lan}, minh:{minh}", "CCHC_ADMIN_TOKEN": "a" * 32})
    assert settings.admin_token_names() == {lan: "lan", minh: "minh", "a" * 32: "admin"}
    for bad in ("lan", f":{lan}", "lan:short"):
        with pytest.raises(SettingsError, match="CCHC_ADMIN_TOKENS"):
            Settings(admin_tokens=bad).admin_token_names()
    with pytest.raises(SettingsError, match="not set"):
        Settings().admin_token_names()


def test_only_ingest_is_handed_secrets_and_urls_print_without_passwords() -> None:
    env = Settings(secret="s" * 32, admin_token="a" * 32, pii_key=KEY, redis_url="redis://r").env()
    assert {"CCHC_SECRET", "CCHC_ADMIN_TOKEN", "CCHC_PII_KEY"} <= set(env)
    assert set(without_secrets(env)) == set(env) - {"CCHC_SECRET", "CCHC_ADMIN_TOKEN", "CCHC_PII_KEY"}
    assert redact("postgresql://cchc:s3cret@db:5432/cchc") == "postgresql://cchc:***@db:5432/cchc"
    assert redact("redis://:p@ss@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redact("postgresql://postgres:@/postgres?host=/tmp") == "postgresql://postgres:***@/postgres?host=/tmp"
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_partitions_are_a_whole_number_within_bounds() -> None:
    assert Settings.from_env({"CCHC_PARTITIONS": "6"}).partitions == 6
    assert Settings.from_env({}).partitions == 1
    for bad in ("0", "1025", "four"):
        with pytest.raises(SettingsError, match="CCHC_PARTITIONS"):
            Settings.from_env({"CCHC_PARTITIONS": bad})


def test_the_event_loop_is_uvloop_unless_asyncio_is_asked_for() -> None:
    assert Settings.from_env({}).event_loop == "uvloop"
    assert Settings.from_env({"CCHC_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    assert Settings.from_env(Settings(event_loop="asyncio").env()).event_loop == "asyncio"
    with pytest.raises(SettingsError, match="CCHC_EVENT_LOOP"):
        Settings.from_env({"CCHC_EVENT_LOOP": "trio"})


def test_the_fast_path_is_on_unless_turned_off() -> None:
    assert Settings.from_env({}).fast_path
    assert not Settings.from_env({"CCHC_FAST_PATH": "off"}).fast_path
    assert not Settings.from_env(Settings(fast_path=False).env()).fast_path
    with pytest.raises(SettingsError, match="CCHC_FAST_PATH"):
        Settings.from_env({"CCHC_FAST_PATH": "no"})


def test_the_committees_work_yields_the_cpu_unless_told_otherwise() -> None:
    assert Settings.from_env({}).committee_nice == 10  # the committee's work yields to the write path by default
    assert Settings.from_env({"CCHC_COMMITTEE_NICE": "0"}).committee_nice == 0
    assert Settings.from_env({"CCHC_COMMITTEE_NICE": "10"}).committee_nice == 10
    assert Settings.from_env(Settings(committee_nice=5).env()).committee_nice == 5  # handed to the desk by `cchc up`
    with pytest.raises(SettingsError, match="CCHC_COMMITTEE_NICE"):
        Settings.from_env({"CCHC_COMMITTEE_NICE": "-5"})
    with pytest.raises(SettingsError, match="0 to 19"):
        Settings.from_env({"CCHC_COMMITTEE_NICE": "20"})


def test_the_metrics_ports_listen_on_loopback_unless_told_otherwise() -> None:
    assert Settings.from_env({}).metrics_host == "127.0.0.1"
    settings = Settings.from_env({"CCHC_METRICS_HOST": "10.0.0.5"})
    assert settings.metrics_host == "10.0.0.5" and settings.env()["CCHC_METRICS_HOST"] == "10.0.0.5"


def test_secrets_and_stack_env_are_created_for_their_owner_only(tmp_path: Path) -> None:
    """0600 from the first byte, whatever the umask: never readable by others for an instant."""
    with umask(0), modes_seen(tmp_path) as seen:
        _, path, passwords = load_or_create_state(Settings(data_dir=tmp_path), anchor_now=datetime.now(UTC))
        write_env_file(tmp_path / "stack.env", {"CCHC_REDIS_URL": "redis://:pw@127.0.0.1:1/0"})
        write_env_file(tmp_path / "stack.env", {"CCHC_REDIS_URL": "redis://:pw@127.0.0.1:2/0"})  # again, replaced
    assert path == tmp_path / "secrets.env"
    stored = (tmp_path / "secrets.env").read_text()
    assert f"CCHC_VALKEY_PASSWORD={passwords.valkey}\n" in stored
    assert f"CCHC_POSTGRES_PASSWORD={passwords.postgres}\n" in stored
    assert seen["secrets.env"] == seen["stack.env"] == {0o600}
    assert {mode for name, modes in seen.items() for mode in modes} == {0o600}  # temporary files too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secrets.env", "stack.env"]


def test_a_secrets_file_from_before_is_narrowed_to_its_owner(tmp_path: Path) -> None:
    old = tmp_path / "secrets.env"
    with umask(0):
        load_or_create_state(Settings(data_dir=tmp_path), anchor_now=datetime.now(UTC))
    old.chmod(0o644)  # as an older version, or a copy, may have left it
    kept = old.read_text()
    load_or_create_state(Settings(data_dir=tmp_path), anchor_now=datetime.now(UTC))
    assert old.stat().st_mode & 0o777 == 0o600 and old.read_text() == kept


def test_a_secrets_file_from_before_the_store_passwords_gains_them_and_keeps_the_rest(tmp_path: Path) -> None:
    before = {"CCHC_SECRET": "s" * 43, "CCHC_ADMIN_TOKEN": "a" * 32, "CCHC_PII_KEY": KEY,
              "CCHC_CONTEST_ANCHOR": "2030-01-07T08:00:00+07:00"}
    write_env_file(tmp_path / "secrets.env", before)
    settings, _, passwords = load_or_create_state(Settings(data_dir=tmp_path), anchor_now=datetime.now(UTC))
    assert (settings.secret, settings.admin_token, settings.pii_key) == ("s" * 43, "a" * 32, KEY)
    assert len(passwords.valkey) >= 32 and len(passwords.postgres) >= 32 and passwords.valkey != passwords.postgres
    again = load_or_create_state(Settings(data_dir=tmp_path), anchor_now=datetime.now(UTC))[2]
    assert again == passwords  # generated once, kept


def test_allowed_origins_results_url_and_rehearsal() -> None:
    s = Settings.from_env({"CCHC_ALLOWED_ORIGINS": " https://Thi.Example.gov.vn/ , http://localhost:3000",
                           "CCHC_RESULTS_URL": "https://ketqua.example.gov.vn/", "CCHC_REHEARSAL": "on"})
    assert s.allowed_origins == ("https://thi.example.gov.vn", "http://localhost:3000")
    assert s.public_results_url() == "https://ketqua.example.gov.vn" and s.rehearsal
    assert Settings.from_env(s.env()).allowed_origins == s.allowed_origins  # handed to the children as is
    assert Settings.from_env({"CCHC_HOST": "0.0.0.0"}).public_results_url() == "http://127.0.0.1:8081"
    for bad in ({"CCHC_ALLOWED_ORIGINS": "thi.example.gov.vn"}, {"CCHC_ALLOWED_ORIGINS": "https://a.vn/path"},
                {"CCHC_RESULTS_URL": "ketqua.example.gov.vn"}, {"CCHC_REHEARSAL": "yes"}):
        with pytest.raises(SettingsError):
            Settings.from_env(bad)
