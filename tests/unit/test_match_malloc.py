"""`rarewatch match` asks glibc's malloc to keep freed memory (`commands.malloc`), and only glibc."""

from __future__ import annotations

import os

import pytest

from rarewatch.commands import malloc


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        return False


def test_glibc_takes_the_settings() -> None:
    assert malloc.keep_freed_memory() is _glibc()


def test_another_c_library_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(malloc.os, "confstr", lambda name: "musl 1.2")
    assert malloc.keep_freed_memory() is False

    def unknown(name: str) -> str:
        raise ValueError(name)

    monkeypatch.setattr(malloc.os, "confstr", unknown)
    assert malloc.keep_freed_memory() is False
