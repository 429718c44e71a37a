"""The tuning endpoints on the whole `rarewatch run` application with a real SQLite store, served on
127.0.0.1: silences (`/api/v1/silences`), kept items (`/api/v1/items`) and `POST /api/v1/backtest`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from rarewatch.api_backtest import BACKTEST_MAX_BYTES
from rarewatch.app import build_web_app
from rarewatch.clock import FakeClock
from rarewatch.models import Item, SeenItem
from rarewatch.store import open_store
from rarewatch.store.sqlite import SQLiteStore
from tests.integration.api_support import (
    READ,
    READ_TOKEN,
    T0,
    WRITE,
    WRITE_TOKEN,
    alert,
    api_settings,
    call,
    fill,
    served,
)
from tests.support import TEST_RULES

NOW = T0 + timedelta(days=1)


def seen(n: int, title: str, rules: Sequence[str] = (), *, source: str = "wire") -> SeenItem:
    """Item `i{n}`, fetched n minutes after T0, that fired `rules` under pack `v1`."""
    when = T0 + timedelta(minutes=n)
    item = Item(f"i{n}", source, title, f"https://n.example/{n}", f"summary {n}", "", when)
    return SeenItem(item, when, "v1", tuple(rules))


async def keep(path: Path, items: Sequence[SeenItem]) -> None:
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.record_items(items, NOW)
    finally:
        await store.close()


def app_for(tmp_path: Path, **http: str) -> object:
    return build_web_app(api_settings(tmp_path, **http), clock=FakeClock(NOW))


# --- silences -------------------------------------------------------------------------------------------


async def test_a_silence_is_added_listed_and_expired(tmp_path: Path) -> None:
    app = build_web_app(
        api_settings(tmp_path, token=WRITE_TOKEN, read_token=READ_TOKEN), clock=FakeClock(NOW)
    )
    new = {
        "matchers": [
            {"name": "rule", "value": "test-shortage"},
            {"name": "category", "value": "supply-disruption"},
        ],
        "duration": "2h",
        "reason": "noisy while the plant is down",
        "author": "ops",
    }
    async with served(app) as base:
        status, made, _ = await call("POST", f"{base}/api/v1/silences", json=new, headers=WRITE)
        _, listed, _ = await call("GET", f"{base}/api/v1/silences", headers=READ)
        gone, expired, _ = await call("POST", f"{base}/api/v1/silences/{made['id']}/expire", headers=WRITE)
        _, after, _ = await call("GET", f"{base}/api/v1/silences", headers=READ)
        _, everything, _ = await call("GET", f"{base}/api/v1/silences?all=true", headers=READ)
    assert status == 201
    assert made["state"] == "active" and made["author"] == "ops"
    assert made["ends"] == (NOW + timedelta(hours=2)).isoformat()
    assert {(m["name"], m["value"]) for m in made["matchers"]} == {
        ("rule", "test-shortage"),
        ("category", "supply-disruption"),
    }
    assert [s["id"] for s in listed["silences"]] == [made["id"]]
    assert (gone, expired["state"], expired["ends"]) == (200, "expired", NOW.isoformat())
    assert after["silences"] == [], "an ended silence is listed only with all=true"
    assert [s["id"] for s in everything["silences"]] == [made["id"]]


async def test_a_matcher_naming_nothing_is_refused_with_a_did_you_mean(tmp_path: Path) -> None:
    async with served(app_for(tmp_path, token=WRITE_TOKEN)) as base:

        async def add(matchers: list[dict[str, str]], duration: str = "1d") -> tuple[int, str]:
            body = {"matchers": matchers, "duration": duration, "reason": "r", "author": "a"}
            status, answer, _ = await call("POST", f"{base}/api/v1/silences", json=body, headers=WRITE)
            return status, answer.get("error", "")

        typo = await add([{"name": "rule", "value": "test-licencing"}])
        source = await add([{"name": "source", "value": "wires"}])
        story = await add([{"name": "story", "value": "no-such-alert"}])
        bad_for = await add([{"name": "category", "value": "export-licensing"}], duration="soon")
        no_matchers = await add([])
        _, listed, _ = await call("GET", f"{base}/api/v1/silences")
    assert typo[0] == 400 and "matchers.rule: unknown rule 'test-licencing'" in typo[1]
    assert "did you mean 'test-licensing'?" in typo[1]
    assert source[0] == 400 and "did you mean 'wire'?" in source[1]
    assert story[0] == 400 and "neither an http(s) link nor the id of a recorded alert" in story[1]
    assert bad_for[0] == 400 and bad_for[1].startswith("duration:")
    assert no_matchers[0] == 400 and "matchers" in no_matchers[1]
    assert listed["silences"] == [], "nothing refused was stored"


async def test_silence_writes_are_guarded_like_reload(tmp_path: Path) -> None:
    body = {"matchers": [{"name": "category", "value": "export-licensing"}], "duration": "1h"}
    body |= {"reason": "r", "author": "a"}
    async with served(app_for(tmp_path, token=WRITE_TOKEN, read_token=READ_TOKEN)) as base:
        anonymous, _, _ = await call("POST", f"{base}/api/v1/silences", json=body)
        reader, _, _ = await call("POST", f"{base}/api/v1/silences", json=body, headers=READ)
        expire, _, _ = await call("POST", f"{base}/api/v1/silences/x/expire", headers=READ)
        cross = {**WRITE, "Origin": "https://evil.example"}
        cross_site, _, _ = await call("POST", f"{base}/api/v1/silences", json=body, headers=cross)
        listing, _, _ = await call("GET", f"{base}/api/v1/silences")
        unknown, missing, _ = await call("POST", f"{base}/api/v1/silences/nope/expire", headers=WRITE)
    async with served(app_for(tmp_path)) as base:
        disabled, _, _ = await call("POST", f"{base}/api/v1/silences", json=body)
    assert (anonymous, reader, expire, cross_site, listing) == (401, 401, 401, 403, 401)
    assert unknown == 404 and "no silence 'nope'" in missing["error"]
    assert disabled == 403


async def test_silences_and_items_on_either_store(tmp_path: Path, store_url: str) -> None:
    """The same API on SQLite and on a real redis-server."""
    kept = open_store(store_url)
    await kept.open()
    try:
        await kept.record_items(
            [seen(1, "Gallium smuggling case", ["test-licensing"]), seen(2, "Copper")], NOW
        )
    finally:
        await kept.close()
    app = build_web_app(api_settings(tmp_path, store=store_url, token=WRITE_TOKEN), clock=FakeClock(NOW))
    body = {"matchers": [{"name": "source", "value": "wire"}], "duration": "1d", "reason": "r", "author": "a"}
    async with served(app) as base:
        status, made, _ = await call("POST", f"{base}/api/v1/silences", json=body, headers=WRITE)
        _, listed, _ = await call("GET", f"{base}/api/v1/silences")
        _, expired, _ = await call("POST", f"{base}/api/v1/silences/{made['id']}/expire", headers=WRITE)
        _, unmatched, _ = await call("GET", f"{base}/api/v1/items?matched=false")
    assert status == 201 and [s["id"] for s in listed["silences"]] == [made["id"]]
    assert expired["state"] == "expired"
    assert [i["id"] for i in unmatched["items"]] == ["i2"]


# --- items ----------------------------------------------------------------------------------------------


async def test_items_list_the_unmatched_search_and_page(tmp_path: Path) -> None:
    await keep(
        tmp_path / "state.db",
        [
            seen(1, "Gallium smuggling case in court", ["test-licensing"]),
            seen(2, "Port strike delays copper"),
            seen(3, "Magnet maker hires", source="gazette"),
            seen(4, "GALLIUM prices rise"),
        ],
    )
    async with served(app_for(tmp_path)) as base:

        async def ids(query: str) -> tuple[list[str], str | None]:
            status, body, _ = await call("GET", f"{base}/api/v1/items?{query}")
            assert status == 200, body
            return [i["id"] for i in body["items"]], body["next_cursor"]

        everything, _ = await ids("")
        unmatched, _ = await ids("matched=false")
        matched, _ = await ids("matched=true")
        gallium, _ = await ids("q=gallium")
        unmatched_gallium, _ = await ids("matched=false&q=Gallium")
        from_gazette, _ = await ids("source=gazette")
        first, cursor = await ids("limit=2")
        second, end = await ids(f"limit=2&cursor={cursor}")
        bad, _, _ = await call("GET", f"{base}/api/v1/items?matched=maybe")
    assert everything == ["i4", "i3", "i2", "i1"]
    assert unmatched == ["i4", "i3", "i2"] and matched == ["i1"]
    assert gallium == ["i4", "i1"] and unmatched_gallium == ["i4"]
    assert from_gazette == ["i3"]
    assert (first, second, end) == (["i4", "i3"], ["i2", "i1"], None)
    assert bad == 400


async def test_items_need_the_read_token_when_one_is_set(tmp_path: Path) -> None:
    async with served(app_for(tmp_path, token=WRITE_TOKEN, read_token=READ_TOKEN)) as base:
        anonymous, _, _ = await call("GET", f"{base}/api/v1/items")
        reader, _, _ = await call("GET", f"{base}/api/v1/items", headers=READ)
    assert (anonymous, reader) == (401, 200)


# --- backtest -------------------------------------------------------------------------------------------

# The suite's pack with test-shortage gone and a rule on gallium added.
NEW_PACK = (
    TEST_RULES.split("---")[0]
    + """---
id: test-gallium
title: Gallium export curbs (test)
category: export-licensing
severity: high
description: Test rule, written for the suite.
match:
  all:
    - any: ["gallium"]
    - any: ["export curbs", "smuggling"]
"""
)


async def test_backtest_replaces_a_pack_file_and_reports_adds_and_removes_with_terms(tmp_path: Path) -> None:
    shortage = alert(5, category="supply-disruption", title="Rare earth magnet shortage")
    await fill(tmp_path / "state.db", [shortage])
    await keep(
        tmp_path / "state.db",
        [
            seen(1, "Gallium smuggling ring broken up"),
            # An alert's id is its item's id.
            SeenItem(replace(shortage.item, id=shortage.id), T0, "v1", ("rule-supply-disruption",)),
            seen(6, "Rare earth export licence regime", ["test-licensing"]),
        ],
    )
    async with served(app_for(tmp_path, token=WRITE_TOKEN, read_token=READ_TOKEN)) as base:
        status, report, _ = await call(
            "POST", f"{base}/api/v1/backtest", json={"rules": NEW_PACK, "file": "test.yaml"}, headers=READ
        )
        anonymous, _, _ = await call("POST", f"{base}/api/v1/backtest", json={"rules": NEW_PACK})
    assert status == 200, report
    assert (report["replaced"], report["items"], report["unchanged"]) == (True, 3, 1)
    assert [(c["id"], c["added"]) for c in report["add"]] == [
        (
            "i1",
            [
                {
                    "rule": "test-gallium",
                    "category": "export-licensing",
                    "severity": "high",
                    "terms": ["gallium", "smuggling"],
                }
            ],
        )
    ]
    [removed] = report["remove"]
    assert (removed["id"], removed["alerted"]) == ("alert-5", True)
    assert removed["removed"][0]["rule"] == "rule-supply-disruption"
    assert removed["removed"][0]["terms"] == ["rare earth"], "the recorded alert's terms"
    assert report["since"] == (NOW - timedelta(days=30)).isoformat()
    assert anonymous == 401


async def test_a_backtest_file_of_a_new_name_is_added_to_the_pack(tmp_path: Path) -> None:
    await keep(tmp_path / "state.db", [seen(1, "Gallium smuggling ring broken up")])
    extra = NEW_PACK.split("---")[1]
    yaml = {"Content-Type": "application/yaml"}
    async with served(app_for(tmp_path)) as base:
        status, report, _ = await call(
            "POST", f"{base}/api/v1/backtest?file=extra.yaml&since=2d", data=extra.encode(), headers=yaml
        )
    assert status == 200, report
    assert (report["file"], report["replaced"]) == ("extra.yaml", False)
    assert [c["id"] for c in report["add"]] == ["i1"]
    assert report["since"] == (NOW - timedelta(days=2)).isoformat()


async def test_bad_rules_are_a_400_naming_file_and_line(tmp_path: Path) -> None:
    head, gallium = NEW_PACK.split("id: test-gallium")
    broken = head + "id: test-gallium" + gallium.replace("severity: high", "severity: hihg")
    async with served(app_for(tmp_path)) as base:
        status, body, _ = await call(
            "POST", f"{base}/api/v1/backtest", json={"rules": broken, "file": "test.yaml"}
        )
        big = {"rules": "#" * (BACKTEST_MAX_BYTES + 10)}
        too_large, _, _ = await call("POST", f"{base}/api/v1/backtest", json=big)
        plain, _, _ = await call(
            "POST", f"{base}/api/v1/backtest", data=b"id: x", headers={"Content-Type": "text/plain"}
        )
        bad_since, since_body, _ = await call(
            "POST", f"{base}/api/v1/backtest", json={"rules": NEW_PACK, "since": "a while"}
        )
    line = NEW_PACK.splitlines().index("id: test-gallium") + 4  # its severity line
    assert status == 400
    assert (body["file"], body["line"], body["rule"]) == ("test.yaml", line, "test-gallium")
    assert body["error"].startswith(f"test.yaml:{line} [rule test-gallium]: severity")
    assert (too_large, plain, bad_since) == (413, 415, 400)
    assert since_body["error"].startswith("since:")
