"""A real Prometheus Alertmanager for tests: the `alertmanager` fixture starts one per test session.

Import the fixture into a test module (`from tests.alertmanager import alertmanager`). It runs the
Debian package's binary (`apt-get install prometheus-alertmanager`) on a free 127.0.0.1 port, with a
minimal configuration (one receiver that notifies nobody), storage in a temporary folder and
clustering off. Without the binary the tests are skipped, except under CI, where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port

IN_CI = os.environ.get("CI", "").lower() == "true"
INSTALL_HINT = "apt-get install prometheus-alertmanager"
START_TIMEOUT = 20.0

# Routes every alert to a receiver without integrations: stored and shown by the API, sent nowhere.
CONFIG = """\
route:
  receiver: "null"
receivers:
  - name: "null"
"""


def find_binary() -> str | None:
    """The Alertmanager binary: Debian's name, then upstream's, then Debian's usual path."""
    for name in ("prometheus-alertmanager", "alertmanager"):
        found = shutil.which(name)
        if found:
            return found
    default = Path("/usr/bin/prometheus-alertmanager")
    return str(default) if default.exists() else None


class AlertmanagerServer:
    """One Alertmanager process; `url` is its base URL."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.log = workdir / "alertmanager.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        config = self.workdir / "alertmanager.yml"
        config.write_text(CONFIG, encoding="utf-8")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.path={self.workdir / 'data'}",
                    "--cluster.listen-address=",  # empty: no gossip port, no peers
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready(time.monotonic() + START_TIMEOUT)

    def _wait_ready(self, deadline: float) -> None:
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"alertmanager exited ({self.proc.returncode}): {self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"alertmanager was not ready within {START_TIMEOUT:g}s: {self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture(scope="session")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerServer]:
    """A running Alertmanager for the session; tests keep apart by using their own label values."""
    binary = find_binary()
    if binary is None:
        message = f"prometheus-alertmanager not installed ({INSTALL_HINT})"
        if IN_CI:
            pytest.fail(f"{message}; .ci/run must install it")
        pytest.skip(message)
    server = AlertmanagerServer(binary, tmp_path_factory.mktemp("alertmanager"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
