"""`rarewatch backtest` as an operator runs it: a real `rarewatch once` against a local feed server fills a
real SQLite store, then the changed rule pack is replayed on what it saw, through the real command line."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from tests.e2e.test_cli import rarewatch
from tests.e2e.test_unrouted_and_once import config, story
from tests.support import TEST_RULES, feed_server, rss, webhook_receiver

EVERYTHING = "routes:\n  - {to: [tickets]}"
LICENSING_TITLE = "Rare earth export licence regime widened"
SHORTAGE_TITLE = "Magnet shortage halts production at motor plant"
GERMANIUM_TITLE = "Ministry announces germanium and gallium export ban"

# The changed pack: licensing as before, the shortage rule gone, a new rule for germanium.
NEW_RULES = (
    TEST_RULES.split("---")[0]
    + """---
id: test-germanium
title: Germanium export ban (test)
category: trade-restrictions
severity: high
description: Test rule, written for the suite.
match:
  all:
    - any: ["germanium"]
    - any: ["export ban"]
"""
)


async def test_backtest_lists_the_alerts_a_changed_pack_would_add_and_remove(tmp_path: Path) -> None:
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss(
            [
                story(1, LICENSING_TITLE, timedelta(minutes=5)),
                story(2, SHORTAGE_TITLE, timedelta(minutes=6)),
                story(3, GERMANIUM_TITLE, timedelta(minutes=7)),
            ]
        )
        path = config(tmp_path, feeds.url("/wire.xml"), hook.url, EVERYTHING)
        code, _, err = await rarewatch("once", "--config", str(path))
        assert code == 0, err
        assert sorted(p["title"] for p in hook.payloads()) == [SHORTAGE_TITLE, LICENSING_TITLE]
    new_rules = tmp_path / "new"
    new_rules.mkdir()
    (new_rules / "pack.yaml").write_text(NEW_RULES, encoding="utf-8")

    code, out, err = await rarewatch("backtest", "--rules", str(new_rules), "--config", str(path), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["items"] == 3 and report["unchanged"] == 1 and report["change"] == []
    [added] = report["add"]
    assert (added["title"], added["alerted"]) == (GERMANIUM_TITLE, False)
    assert [(r["rule"], r["terms"]) for r in added["added"]] == [
        ("test-germanium", ["germanium", "export ban"])
    ]
    [removed] = report["remove"]
    assert (removed["title"], removed["alerted"], removed["rules_before"]) == (
        SHORTAGE_TITLE,
        True,
        ["test-shortage"],
    )
    [gone] = removed["removed"]
    assert gone["rule"] == "test-shortage" and gone["terms"], "the terms of the alert that was sent"

    code, out, err = await rarewatch("backtest", "--rules", str(new_rules), "--config", str(path))
    assert code == 0, err
    assert (
        "ADD" in out
        and GERMANIUM_TITLE in out
        and "+ test-germanium [trade-restrictions/high]: germanium" in out
    )
    assert (
        "REMOVE" in out and "alerted (alert)" in out and "- test-shortage [supply-disruption/medium]" in out
    )
    assert "1 alerts added, 1 removed, 0 with other rules, 1 unchanged" in out

    # The pack that judged them replays to no difference.
    same = str(tmp_path / "rules")
    code, out, err = await rarewatch("backtest", "--rules", same, "--config", str(path), "--since", "1h")
    assert code == 0, err
    assert "0 alerts added, 0 removed, 0 with other rules, 3 unchanged" in out


async def test_backtest_errors_are_clear_and_exit_2(tmp_path: Path) -> None:
    path = config(tmp_path, "http://127.0.0.1:9/feed.xml", "http://127.0.0.1:9/hook", EVERYTHING)
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: broken\ntitle: Broken\ncategory: not-a-category\n", encoding="utf-8")
    code, out, err = await rarewatch("backtest", "--rules", str(bad), "--config", str(path))
    assert code == 2 and out == ""
    assert f"{bad}:3" in err and "Traceback" not in err
    code, _, err = await rarewatch("backtest", "--rules", "rules/", "--config", str(path), "--since", "soon")
    assert code == 2 and "--since" in err and "Traceback" not in err
    code, _, err = await rarewatch("backtest", "--rules", str(tmp_path / "missing"), "--config", str(path))
    assert code == 2 and "missing" in err and "Traceback" not in err
