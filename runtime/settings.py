"""One typed settings object per process, from flags and CCHC_* environment variables."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from dataclasses import dataclass, replace
from datetime import datetime
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from runtime.files import narrow_to_owner, private_file

REPO_CONTESTS = Path(__file__).resolve().parent.parent / "contests"
DEFAULT_CONTEST = REPO_CONTESTS / "demo"
SECRET_NAMES = ("CCHC_SECRET", "CCHC_SECRET_PREVIOUS", "CCHC_ADMIN_TOKEN", "CCHC_ADMIN_TOKENS", "CCHC_PII_KEY")
# The secrets each process uses (DESIGN §6: each gets only those): ingest signs tokens and hashes and seals
# identities; the desk checks organisers' tokens, looks identities up by their hash and reissues access keys.
SECRETS_OF = {"ingest": ("CCHC_SECRET", "CCHC_SECRET_PREVIOUS", "CCHC_PII_KEY"),
              "desk": ("CCHC_ADMIN_TOKEN", "CCHC_ADMIN_TOKENS", "CCHC_PII_KEY")}
MIN_SECRET_LENGTH = 32
MAX_PARTITIONS = 1024  # CCHC_PARTITIONS at most (eventstore.keys checks the same bound)
STACK_ENV = "stack.env"  # written by a running `cchc up`: its URLs, ports and secrets


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    contest_dir: Path = DEFAULT_CONTEST
    contest_anchor: datetime | None = None  # resolves a relative [schedule] (demo contests)
    redis_url: str | None = None
    database_url: str | None = None
    database_read_url: str | None = None  # the results API reads here (a streaming replica) when set
    partitions: int = 1  # the stream in P partitions (DESIGN §4); fixed for a contest's life
    secret: str | None = None  # signs attempt tokens
    secret_previous: str | None = None  # still verifies tokens signed before a rotation
    admin_token: str | None = None  # one organiser's token, named "admin"
    admin_tokens: str | None = None  # "name:token,…": a token per organiser, whose name their events record
    pii_key: str | None = None  # base64 of 32 bytes: identity/access-key hashes and sealing
    data_dir: Path = Path(".cchc")
    backup_dir: Path | None = None  # CCHC_BACKUP_DIR: backups and the erasure log (default DATA_DIR/backups)
    host: str = "127.0.0.1"
    metrics_host: str = "127.0.0.1"  # where each process's --metrics-port listens: never a public address
    ingest_port: int = 8080
    results_port: int = 8081
    desk_port: int = 8082
    desk_insecure: bool = False  # CCHC_DESK_INSECURE=1: the desk's cookie without Secure (plain HTTP on loopback)
    log_level: str = "info"
    monitor_interval_s: float = 10.0  # how often the results process refreshes the system gauges
    body_timeout_s: float = 10.0  # a request's body (and a connection's next headers) must arrive within this
    retention_days: int = 30  # a closed contest's receipts and attempt counters expire this long after
    address_limit: int = 600  # requests a minute per client address on registration, attempts, recovery (0 = off)
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()  # whose X-Forwarded-For is believed
    event_loop: str = "uvloop"  # the HTTP servers' event loop: uvloop (measured: BENCHMARKS.md) or asyncio
    fast_path: bool = True  # submissions answered from the connection (runtime/fastpath.py); off: all via aiohttp
    allowed_origins: tuple[str, ...] = ()  # CCHC_ALLOWED_ORIGINS: other origins whose pages may call the ingest API
    results_url: str | None = None  # CCHC_RESULTS_URL: the results page's public address (default the results app's)
    rehearsal: bool = False  # CCHC_REHEARSAL: the contest as a rehearsal (thi thử), its calendar starting at the anchor
    backup_retention_days: int = 35  # base backups kept this long (the newest always), WAL back to the oldest kept
    archive_check: bool = True  # trim the stream only below what the WAL archive holds (off: what is acknowledged)
    committee_nice: int = 10  # CCHC_COMMITTEE_NICE: the committee's work's niceness on this host (runtime/cpu.py)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from CCHC_* variables; what they leave unset comes from a running `cchc up`'s
        DATA_DIR/stack.env, so `cchc status` or `cchc close 1` just work beside it."""
        env = dict(os.environ if env is None else env)
        env = {**read_env_file(Path(env.get("CCHC_DATA_DIR", ".cchc")) / STACK_ENV), **env}
        anchor = env.get("CCHC_CONTEST_ANCHOR")
        settings = cls(
            contest_dir=Path(env.get("CCHC_CONTEST", str(DEFAULT_CONTEST))),
            contest_anchor=_parse_anchor(anchor) if anchor else None,
            redis_url=env.get("CCHC_REDIS_URL") or None,
            database_url=env.get("CCHC_DATABASE_URL") or None,
            database_read_url=env.get("CCHC_DATABASE_READ_URL") or None,
            partitions=_partitions(env.get("CCHC_PARTITIONS", "1")),
            secret=env.get("CCHC_SECRET") or None,
            secret_previous=env.get("CCHC_SECRET_PREVIOUS") or None,
            admin_token=env.get("CCHC_ADMIN_TOKEN") or None,
            admin_tokens=env.get("CCHC_ADMIN_TOKENS") or None,
            pii_key=env.get("CCHC_PII_KEY") or None,
            data_dir=Path(env.get("CCHC_DATA_DIR", ".cchc")),
            backup_dir=Path(env["CCHC_BACKUP_DIR"]) if env.get("CCHC_BACKUP_DIR") else None,
            host=env.get("CCHC_HOST", "127.0.0.1"),
            metrics_host=env.get("CCHC_METRICS_HOST", "127.0.0.1"),
            ingest_port=int(env.get("CCHC_INGEST_PORT", "8080")),
            results_port=int(env.get("CCHC_RESULTS_PORT", "8081")),
            desk_port=int(env.get("CCHC_DESK_PORT", "8082")),
            desk_insecure=_flag(env.get("CCHC_DESK_INSECURE", "0"), "CCHC_DESK_INSECURE"),
            log_level=env.get("CCHC_LOG_LEVEL", "info"),
            monitor_interval_s=_positive(env.get("CCHC_MONITOR_INTERVAL", "10"), "CCHC_MONITOR_INTERVAL"),
            body_timeout_s=_positive(env.get("CCHC_BODY_TIMEOUT", "10"), "CCHC_BODY_TIMEOUT"),
            address_limit=_count(env.get("CCHC_ADDRESS_LIMIT", "600"), "CCHC_ADDRESS_LIMIT"),
            retention_days=_count(env.get("CCHC_RETENTION_DAYS", "30"), "CCHC_RETENTION_DAYS"),
            trusted_proxies=_networks(env.get("CCHC_TRUSTED_PROXIES", "")),
            event_loop=_event_loop(env.get("CCHC_EVENT_LOOP", cls.event_loop)),
            fast_path=_on_off(env.get("CCHC_FAST_PATH", "on"), "CCHC_FAST_PATH"),
            allowed_origins=_origins(env.get("CCHC_ALLOWED_ORIGINS", "")),
            results_url=_public_url(env.get("CCHC_RESULTS_URL", "")),
            rehearsal=_on_off(env.get("CCHC_REHEARSAL", "off"), "CCHC_REHEARSAL"),
            backup_retention_days=_count(env.get("CCHC_BACKUP_RETENTION_DAYS", "35"), "CCHC_BACKUP_RETENTION_DAYS"),
            archive_check=_on_off(env.get("CCHC_ARCHIVE_CHECK", "on"), "CCHC_ARCHIVE_CHECK"),
            committee_nice=_nice(env.get("CCHC_COMMITTEE_NICE", str(cls.committee_nice)), "CCHC_COMMITTEE_NICE"),
        )
        return replace(settings, **{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]

    @property
    def backups(self) -> Path:
        """Where backups and the erasure log live (DESIGN §10): CCHC_BACKUP_DIR, else DATA_DIR/backups."""
        return self.backup_dir or self.data_dir / "backups"

    def public_results_url(self) -> str:
        """Where participants find the results page: CCHC_RESULTS_URL, else the results app on this host (on
        loopback when it listens on every address: set CCHC_RESULTS_URL to its public address)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return self.results_url or f"http://{host}:{self.results_port}"

    def require_servers(self) -> tuple[str, str]:
        if not self.redis_url or not self.database_url:
            raise SettingsError("CCHC_REDIS_URL and CCHC_DATABASE_URL must be set (or use `cchc up`, "
                                "which starts embedded servers)")
        return self.redis_url, self.database_url

    def token_secrets(self) -> tuple[bytes, ...]:
        """CCHC_SECRET (signs), then CCHC_SECRET_PREVIOUS if set (only verifies)."""
        current = _secret("CCHC_SECRET", self.secret)
        previous = _secret("CCHC_SECRET_PREVIOUS", self.secret_previous) if self.secret_previous else None
        return (current.encode(),) if previous is None else (current.encode(), previous.encode())

    def pii_key_bytes(self) -> bytes:
        raw = _secret("CCHC_PII_KEY", self.pii_key)
        try:
            pii = base64.b64decode(raw, validate=True)
        except binascii.Error as e:
            raise SettingsError("CCHC_PII_KEY must be base64 of 32 random bytes") from e
        if len(pii) != 32:
            raise SettingsError("CCHC_PII_KEY must be base64 of 32 random bytes")
        return pii

    def admin_token_names(self) -> dict[str, str]:
        """token → organiser's name, from CCHC_ADMIN_TOKENS (`name:token,…`) and CCHC_ADMIN_TOKEN ("admin")."""
        named: dict[str, str] = {}
        for item in (self.admin_tokens or "").split(","):
            if item.strip():
                name, sep, token = item.strip().partition(":")
                if not sep or not name:
                    raise SettingsError("CCHC_ADMIN_TOKENS must be name:token pairs separated by commas")
                named[_secret(f"CCHC_ADMIN_TOKENS ({name})", token)] = name
        if self.admin_token:
            named[_secret("CCHC_ADMIN_TOKEN", self.admin_token)] = "admin"
        if not named:
            raise SettingsError("CCHC_ADMIN_TOKEN or CCHC_ADMIN_TOKENS not set: " + _WHERE_SECRETS)
        return named

    def require_ingest_secrets(self) -> None:
        """Ingest signs tokens, hashes and seals identities."""
        self.token_secrets()
        self.pii_key_bytes()

    def require_desk_secrets(self) -> None:
        """The desk checks organisers' tokens and looks identities up by their keyed hash."""
        self.pii_key_bytes()
        self.admin_token_names()

    def env(self) -> dict[str, str]:
        """These settings as CCHC_* variables (what `cchc up` hands its child processes)."""
        values = {"CCHC_CONTEST": str(self.contest_dir), "CCHC_REDIS_URL": self.redis_url,
                  "CCHC_DATABASE_URL": self.database_url, "CCHC_DATABASE_READ_URL": self.database_read_url,
                  "CCHC_PARTITIONS": str(self.partitions), "CCHC_SECRET": self.secret,
                  "CCHC_SECRET_PREVIOUS": self.secret_previous, "CCHC_ADMIN_TOKENS": self.admin_tokens,
                  "CCHC_ADMIN_TOKEN": self.admin_token, "CCHC_PII_KEY": self.pii_key,
                  "CCHC_DATA_DIR": str(self.data_dir), "CCHC_LOG_LEVEL": self.log_level,
                  "CCHC_BACKUP_DIR": str(self.backup_dir) if self.backup_dir else None,
                  "CCHC_MONITOR_INTERVAL": str(self.monitor_interval_s), "CCHC_HOST": self.host,
                  "CCHC_METRICS_HOST": self.metrics_host,
                  "CCHC_BODY_TIMEOUT": str(self.body_timeout_s), "CCHC_ADDRESS_LIMIT": str(self.address_limit),
                  "CCHC_RETENTION_DAYS": str(self.retention_days), "CCHC_EVENT_LOOP": self.event_loop,
                  "CCHC_FAST_PATH": "on" if self.fast_path else "off",
                  "CCHC_BACKUP_RETENTION_DAYS": str(self.backup_retention_days),
                  "CCHC_ARCHIVE_CHECK": "on" if self.archive_check else "off",
                  "CCHC_COMMITTEE_NICE": str(self.committee_nice),
                  "CCHC_TRUSTED_PROXIES": ",".join(str(n) for n in self.trusted_proxies),
                  "CCHC_INGEST_PORT": str(self.ingest_port), "CCHC_RESULTS_PORT": str(self.results_port),
                  "CCHC_ALLOWED_ORIGINS": ",".join(self.allowed_origins), "CCHC_RESULTS_URL": self.results_url,
                  "CCHC_REHEARSAL": "on" if self.rehearsal else None,
                  "CCHC_DESK_PORT": str(self.desk_port), "CCHC_DESK_INSECURE": "1" if self.desk_insecure else None,
                  "CCHC_CONTEST_ANCHOR": self.contest_anchor.isoformat() if self.contest_anchor else None}
        return {k: v for k, v in values.items() if v}


EVENT_LOOPS = ("uvloop", "asyncio")


def _event_loop(raw: str) -> str:
    if raw not in EVENT_LOOPS:
        raise SettingsError(f"CCHC_EVENT_LOOP must be one of {', '.join(EVENT_LOOPS)}, not {raw!r}")
    return raw


def _flag(raw: str, name: str) -> bool:
    if raw not in ("0", "1"):
        raise SettingsError(f"{name} must be 1 or 0, not {raw!r}")
    return raw == "1"


def _on_off(raw: str, name: str) -> bool:
    if raw not in ("on", "off"):
        raise SettingsError(f"{name} must be on or off, not {raw!r}")
    return raw == "on"


def _partitions(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError as e:
        raise SettingsError(f"CCHC_PARTITIONS must be a whole number, not {raw!r}") from e
    if not 1 <= value <= MAX_PARTITIONS:
        raise SettingsError(f"CCHC_PARTITIONS must be between 1 and {MAX_PARTITIONS}, not {value}")
    return value


def _positive(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError as e:
        raise SettingsError(f"{name} must be a number of seconds, not {raw!r}") from e
    if value <= 0:
        raise SettingsError(f"{name} must be positive")
    return value


_WHERE_SECRETS = ("`cchc up` generates them into its data directory (secrets.env); set them in the environment "
                  "for a single process")


def _secret(name: str, value: str | None) -> str:
    if not value:
        raise SettingsError(f"{name} not set: {_WHERE_SECRETS}")
    if len(value) < MIN_SECRET_LENGTH:
        raise SettingsError(f"{name} is {len(value)} characters: a secret needs at least {MIN_SECRET_LENGTH}")
    return value


def without_secrets(env: dict[str, str], keep: tuple[str, ...] = ()) -> dict[str, str]:
    """`env` without any CCHC secret but those in `keep`: what a process is handed (SECRETS_OF)."""
    return {k: v for k, v in env.items() if k not in SECRET_NAMES or k in keep}


def redact(url: str | None) -> str:
    """A server URL fit to print: its password replaced by ***."""
    if not url:
        return ""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _count(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError as e:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from e
    if value < 0:
        raise SettingsError(f"{name} must not be negative (0 turns it off)")
    return value


def _nice(raw: str, name: str) -> int:
    """A niceness to lower a process to: 0 (off) to 19, Linux's lowest priority."""
    value = _count(raw, name)
    if value > 19:
        raise SettingsError(f"{name} must be 0 to 19 (a niceness; 0 turns it off)")
    return value


def _origins(raw: str) -> tuple[str, ...]:
    """CCHC_ALLOWED_ORIGINS: `scheme://host[:port]` each, as a browser sends its Origin header."""
    origins = []
    for part in (p.strip().rstrip("/") for p in raw.split(",")):
        if not part:
            continue
        parts = urlsplit(part)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
            raise SettingsError(f"CCHC_ALLOWED_ORIGINS: {part!r} is not an origin (scheme://host[:port])")
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    return tuple(origins)


def _public_url(raw: str) -> str | None:
    raw = raw.strip().rstrip("/")
    if not raw:
        return None
    if urlsplit(raw).scheme not in ("http", "https"):
        raise SettingsError(f"CCHC_RESULTS_URL must be an http(s) address, not {raw!r}")
    return raw


def _networks(raw: str) -> tuple[IPv4Network | IPv6Network, ...]:
    try:
        return tuple(ip_network(part.strip()) for part in raw.split(",") if part.strip())
    except ValueError as e:
        raise SettingsError(f"CCHC_TRUSTED_PROXIES must be a comma-separated list of CIDRs: {e}") from e


def _parse_anchor(raw: str) -> datetime:
    try:
        anchor = datetime.fromisoformat(raw)
    except ValueError as e:
        raise SettingsError(f"CCHC_CONTEST_ANCHOR is not an ISO time: {raw!r}") from e
    if anchor.tzinfo is None:
        raise SettingsError("CCHC_CONTEST_ANCHOR needs an offset")
    return anchor


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines (what `cchc up` writes); {} when there is no such file."""
    if not path.exists():
        return {}
    pairs = (line.partition("=") for line in path.read_text().splitlines())
    return {k.strip(): v.strip() for k, _, v in pairs if k.strip()}


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """KEY=value lines in a file only its owner may read, from its creation on (it holds secrets)."""
    with private_file(path) as file:
        file.write("".join(f"{k}={v}\n" for k, v in values.items()))


def generate_secrets() -> dict[str, str]:
    """Every secret `cchc up` keeps in secrets.env: the processes' three, and the passwords of its embedded
    Valkey and PostgreSQL (the servers start with them; the URLs handed to the processes carry them)."""
    return {"CCHC_SECRET": secrets.token_urlsafe(32), "CCHC_ADMIN_TOKEN": secrets.token_urlsafe(24),
            "CCHC_PII_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
            "CCHC_VALKEY_PASSWORD": secrets.token_urlsafe(24), "CCHC_POSTGRES_PASSWORD": secrets.token_urlsafe(24)}


@dataclass(frozen=True)
class StorePasswords:
    """The embedded servers' passwords, from secrets.env (never a setting of any process: the URLs carry them)."""

    valkey: str
    postgres: str


def load_or_create_state(settings: Settings, *, anchor_now: datetime) -> tuple[Settings, Path, StorePasswords]:
    """Fill unset secrets (and the contest anchor) from `data_dir/secrets.env`, creating it once; a file from
    an older version gains what it lacks (the store passwords) and keeps the rest."""
    path = settings.data_dir / "secrets.env"
    narrow_to_owner(path)
    stored = read_env_file(path)
    fresh = {**generate_secrets(), "CCHC_CONTEST_ANCHOR": anchor_now.isoformat()}
    merged = {k: stored.get(k) or fresh[k] for k in fresh}
    if merged != stored:
        write_env_file(path, merged)
    return replace(
        settings, secret=settings.secret or merged["CCHC_SECRET"],
        admin_token=settings.admin_token or merged["CCHC_ADMIN_TOKEN"],
        pii_key=settings.pii_key or merged["CCHC_PII_KEY"],
        contest_anchor=settings.contest_anchor or _parse_anchor(merged["CCHC_CONTEST_ANCHOR"])), path, \
        StorePasswords(merged["CCHC_VALKEY_PASSWORD"], merged["CCHC_POSTGRES_PASSWORD"])
