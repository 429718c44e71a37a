"""The store from the command line: `store status|init`, a damaged SQLite file, and a store emptied between
two runs (the issue's zero-byte `state.db`)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.conftest import free_port
from tests.e2e.test_cli import rarewatch, story, write_config
from tests.support import feed_server, rss, webhook_receiver


def minimal_config(tmp_path: Path) -> Path:
    config = tmp_path / "rarewatch.yaml"
    config.write_text(
        "store: sqlite:///state.db\nsources: []\ndestinations: [{name: console, type: console}]\n",
        encoding="utf-8",
    )
    return config


def good_sqlite_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "good.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 200,)] * 500)
    conn.close()
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["random bytes", "truncated header", "truncated in the middle"])
@pytest.mark.parametrize("command", ["once", "run"])
async def test_a_damaged_sqlite_file_is_exit_2_naming_the_file(
    tmp_path: Path, damage: str, command: str
) -> None:
    config = minimal_config(tmp_path)
    good = good_sqlite_bytes(tmp_path)
    damaged = {
        "random bytes": bytes(range(256)) * 20,
        "truncated header": good[:50],
        "truncated in the middle": good[: len(good) // 2],
    }[damage]
    (tmp_path / "state.db").write_bytes(damaged)
    code, out, err = await rarewatch(command, "--config", str(config), limit=30)
    assert code == 2, (out, err)
    assert str(tmp_path / "state.db") in err
    assert "damaged" in err
    assert "Traceback" not in err + out


async def test_store_status_and_init(tmp_path: Path) -> None:
    config = minimal_config(tmp_path)
    code, out, err = await rarewatch("store", "status", "--config", str(config))
    assert code == 0, err
    assert "sqlite" in out and str(tmp_path / "state.db") in out
    assert "marker:  none" in out

    code, out, err = await rarewatch("store", "init", "--config", str(config))
    assert code == 2 and "--yes" in err  # nothing written without confirmation

    code, out, err = await rarewatch("store", "init", "--config", str(config), "--yes")
    assert code == 0, err
    [marker] = [line.split()[1] for line in out.splitlines() if line.startswith("marker:")]
    assert marker.startswith("init-")

    code, out, err = await rarewatch("store", "status", "--config", str(config))
    assert code == 0, err
    assert f"marker:  {marker}" in out and "created:" in out

    (tmp_path / "state.db").write_bytes(b"not a database, not at all" * 100)
    code, out, err = await rarewatch("store", "status", "--config", str(config))
    assert code == 2 and str(tmp_path / "state.db") in err and "Traceback" not in err


async def test_a_zero_byte_state_db_between_runs_re_sends_nothing(tmp_path: Path) -> None:
    titles = ["Rare earth export licence regime widened", "Magnet shortage halts production"]
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss([story(n, title) for n, title in enumerate(titles, start=1)])
        config = write_config(tmp_path, feeds.url("/wire.xml"), hook.url)
        code, _, err = await rarewatch("once", "--config", str(config))
        assert code == 0, err
        first = hook.delivered_ids()
        assert len(first) == 2

        (tmp_path / "state.db").write_bytes(b"")  # the store lost its memory while nothing ran
        code, _, err = await rarewatch("once", "--config", str(config))
        assert code == 0, err
        assert err.count("STORE LOST ITS MEMORY") == 1 and str(tmp_path / "state.db") in err
        new = [p for p in hook.payloads() if p["id"] not in first]
        assert [p["categories"] for p in new] == [["operational"]], "only the operational alert is new"

        code, _, err = await rarewatch("once", "--config", str(config))  # and the next run is quiet
        assert code == 0, err
        assert "STORE LOST ITS MEMORY" not in err
        assert len(hook.delivered_ids()) == 3


@pytest.mark.redis
async def test_store_status_and_init_on_redis(tmp_path: Path, redis_url: str) -> None:
    prefix = "rarewatch:"  # the default; the suite's tests using it flush the database first
    client = aioredis.from_url(redis_url)
    await client.flushdb()
    config = tmp_path / "rarewatch.yaml"
    config.write_text(
        f"store: {redis_url}\nsources: []\ndestinations: [{{name: console, type: console}}]\n",
        encoding="utf-8",
    )
    try:
        code, out, err = await rarewatch("store", "status", "--config", str(config))
        assert code == 0, err
        assert "redis" in out and "marker:  none" in out
        code, out, err = await rarewatch("store", "init", "--config", str(config), "--yes")
        assert code == 0, err
        [marker] = [line.split()[1] for line in out.splitlines() if line.startswith("marker:")]
        code, out, err = await rarewatch("store", "status", "--config", str(config))
        assert code == 0 and f"marker:  {marker}" in out, err
    finally:
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)
        await client.aclose()


async def test_an_unusable_redis_is_exit_2_without_its_password(tmp_path: Path) -> None:
    config = tmp_path / "rarewatch.yaml"
    config.write_text(
        f"store: 'redis://:s3cret@127.0.0.1:{free_port()}/0'\nsources: []\n"
        "destinations: [{name: console, type: console}]\n",
        encoding="utf-8",
    )
    for args in (["store", "status"], ["once"]):
        code, out, err = await rarewatch(*args, "--config", str(config))
        assert code == 2, (out, err)
        assert "unreachable" in err and "s3cret" not in out + err and "Traceback" not in err
