"""Shared fixtures: a real redis-server, and the CI rule that a skip is a failure."""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from rarewatch.store.redis_client import RedisClient, close, connect

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Keep the tests' compiled rule packs (`rarewatch match`) out of the user's cache directory."""
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


def _ephemeral_floor() -> int:
    """The lowest port the kernel hands out for a bind to port 0 (Linux's default range starts at 32768)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports below the ephemeral range, taken in turn from a place that depends on the process (two test runs on
# one machine start apart).
_FLOOR = _ephemeral_floor()
_LOW = max(1024, _FLOOR - 12000)
_SPAN = _FLOOR - _LOW
_turn = itertools.count(os.getpid())


def free_port() -> int:
    """A port free on 127.0.0.1 for a process the test starts to bind later. Below the kernel's ephemeral
    range: a port the kernel picked for a bind to port 0 and released could be picked again for the next such
    bind (the test's own feed server or webhook receiver, started after this call), and the process started
    next would then find it taken."""
    for _ in range(_SPAN):
        port = _LOW + next(_turn) % _SPAN
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port on 127.0.0.1 from {_LOW} to {_LOW + _SPAN - 1}")


def _wait_for_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server did not listen on port {port}")


class RedisServer:
    """A throwaway redis-server on a free port; can be stopped and restarted on the same port. `persistent`:
    with an append-only file (`appendfsync everysec`, the documented advice) in `workdir`, so a restart
    (`shutdown_save` then `start`) keeps the data."""

    def __init__(
        self, binary: str, workdir: Path, *, persistent: bool = False, args: tuple[str, ...] = ()
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.persistent = persistent
        self.args = args  # more redis-server options, e.g. ("--replicaof", "127.0.0.1", "6379")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                *self._persistence(),
                *self.args,
            ],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, time.monotonic() + 10)

    def _persistence(self) -> list[str]:
        if not self.persistent:
            return ["--save", "", "--appendonly", "no"]
        return ["--dir", str(self.workdir), "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]

    def shutdown_save(self) -> None:
        """`SHUTDOWN SAVE`: the server writes its data out (and fsyncs the AOF), then exits."""
        assert self.proc is not None
        cli = shutil.which("redis-cli")
        assert cli is not None, "redis-cli comes with redis-server"
        subprocess.run([cli, "-p", str(self.port), "shutdown", "save"], capture_output=True, timeout=30)
        self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer | None]:
    """A redis-server started for this test session, or None when REDIS_URL names one to use."""
    if os.environ.get("REDIS_URL"):
        yield None
        return
    binary = shutil.which("redis-server")
    if binary is None:
        if IN_CI:
            pytest.fail("redis-server is not installed; .ci/run must install it")
        pytest.skip("redis-server is not installed (apt-get install redis-server, or set REDIS_URL)")
    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


class RedisClusterServers:
    """A throwaway three-master Redis Cluster on free loopback ports (client and bus ports both chosen
    free, so nothing is assumed about port + 10000), created with `redis-cli --cluster create`."""

    def __init__(self, binary: str, cli: str, workdir: Path, masters: int = 3) -> None:
        self.binary, self.cli, self.workdir = binary, cli, workdir
        self.ports = [free_port() for _ in range(masters)]
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> None:
        for port in self.ports:
            node_dir = self.workdir / str(port)
            node_dir.mkdir()
            options = {
                "port": port, "bind": "127.0.0.1", "cluster-enabled": "yes", "cluster-port": free_port(),
                "cluster-config-file": "nodes.conf", "cluster-node-timeout": 5000, "dir": node_dir,
                "save": "", "appendonly": "no",
            }  # fmt: skip
            args = [part for name, value in options.items() for part in (f"--{name}", str(value))]
            self.procs.append(
                subprocess.Popen(
                    [self.binary, *args], cwd=node_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
            )
        deadline = time.monotonic() + 20
        for port in self.ports:
            _wait_for_port(port, deadline)
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [self.cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        self._wait_until_ok(deadline + 10)

    def _wait_until_ok(self, deadline: float) -> None:
        """Every node must report `cluster_state:ok` (all 16384 slots served) before a client starts."""
        pending = list(self.ports)
        while pending and time.monotonic() < deadline:
            info = subprocess.run(
                [self.cli, "-p", str(pending[0]), "cluster", "info"],
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout
            if "cluster_state:ok" in info:
                pending.pop(0)
            else:
                time.sleep(0.1)
        if pending:
            raise RuntimeError(f"Redis Cluster on ports {self.ports} did not reach cluster_state:ok")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=10)
        self.procs = []


def _redis_binaries(url_variable: str) -> tuple[str, str]:
    """redis-server and redis-cli for a fixture that starts its own servers: a failure under CI (where
    .ci/run installs them), else a skip that names `url_variable` as the alternative."""
    binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if binary is None or cli is None:
        if IN_CI:
            pytest.fail("redis-server/redis-cli are not installed; .ci/run must install them")
        pytest.skip(f"redis-server is not installed (apt-get install redis-server, or set {url_variable})")
    return binary, cli


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The `redis+cluster://` URL of a three-master Redis Cluster started for this test session
    (REDIS_CLUSTER_URL instead, if set)."""
    if os.environ.get("REDIS_CLUSTER_URL"):
        yield os.environ["REDIS_CLUSTER_URL"]
        return
    binary, cli = _redis_binaries("REDIS_CLUSTER_URL")
    cluster = RedisClusterServers(binary, cli, tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.stop()


class RedisSentinel:
    """One redis-sentinel process (`redis-server <conf> --sentinel`: the Debian redis-server package is
    enough) monitoring a master as service `rwtest`, quorum 1."""

    SERVICE = "rwtest"

    def __init__(self, binary: str, cli: str, workdir: Path, master_port: int) -> None:
        self.binary, self.cli, self.workdir, self.master_port = binary, cli, workdir, master_port
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.SERVICE}"

    def start(self) -> None:
        conf = self.workdir / "sentinel.conf"  # sentinel rewrites its own file: it must be writable
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.workdir}\n"
            f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {self.SERVICE} 2000\n"
            f"sentinel failover-timeout {self.SERVICE} 10000\n",
            encoding="utf-8",
        )
        self.proc = subprocess.Popen(
            [self.binary, str(conf), "--sentinel"],
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        _wait_for_port(self.port, deadline)
        while time.monotonic() < deadline:  # until it names the master
            ask = [self.cli, "-p", str(self.port), "sentinel", "get-master-addr-by-name", self.SERVICE]
            if str(self.master_port) in subprocess.run(ask, capture_output=True, text=True, timeout=5).stdout:
                return
            time.sleep(0.1)
        raise RuntimeError(f"redis-sentinel on port {self.port} does not know its master")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture(scope="session")
def redis_sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The `redis+sentinel://` URL of one sentinel and the master it monitors, started for this session
    (REDIS_SENTINEL_URL instead, if set)."""
    if os.environ.get("REDIS_SENTINEL_URL"):
        yield os.environ["REDIS_SENTINEL_URL"]
        return
    binary, cli = _redis_binaries("REDIS_SENTINEL_URL")
    master = RedisServer(binary, tmp_path_factory.mktemp("redis-master"))
    sentinel = RedisSentinel(binary, cli, tmp_path_factory.mktemp("redis-sentinel"), master.port)
    master.start()
    try:
        sentinel.start()
        yield sentinel.url
    finally:
        sentinel.stop()
        master.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer | None) -> str:
    """The URL of a real Redis: REDIS_URL if set, else the session's own redis-server."""
    if redis_server is None:
        return os.environ["REDIS_URL"]
    return redis_server.url


@pytest.fixture(
    params=["redis_url", "redis_cluster_url", "redis_sentinel_url"],
    ids=["redis", "redis-cluster", "redis-sentinel"],
)
def redis_any_url(request: pytest.FixtureRequest) -> str:
    """Each Redis topology in turn: one redis-server, the test cluster, the sentinel's master."""
    return str(request.getfixturevalue(request.param))


@pytest.fixture
async def redis_any_client(redis_any_url: str) -> AsyncIterator[RedisClient]:
    """A plain client of `redis_any_url`, closed after the test."""
    client = connect(redis_any_url, connect_timeout=2.0, timeout=5.0)
    yield client
    await close(client)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session for the test, closed after it (the app shares one the same way)."""
    async with aiohttp.ClientSession() as s:
        yield s


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI a skipped test means something CI should have provided is missing: fail the run."""
    if not IN_CI:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter is not None else []
    if skipped and exitstatus == 0:
        reporter.write_line(f"CI=true: {len(skipped)} test(s) skipped; a skip counts as a failure here")
        session.exitstatus = 1
