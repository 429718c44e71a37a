"""`backtest.replay`: the comparison of a new pack's matches with the rules recorded per item."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from rarewatch.backtest import Change, replay
from rarewatch.models import Alert, Item, SeenItem
from rarewatch.ruleset import load_ruleset
from tests.support import TEST_RULES

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def seen(n: int, title: str, rules: tuple[str, ...]) -> SeenItem:
    item = Item(f"i{n}", "wire", title, f"https://x.org/{n}", "", "", T0, "en")
    return SeenItem(item, T0 + timedelta(minutes=n), "old", rules)


def test_replay_sorts_adds_removes_and_changes(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(TEST_RULES, encoding="utf-8")
    ruleset = load_ruleset([tmp_path / "r.yaml"])
    items = [
        seen(1, "Rare earth magnet shortage", ()),  # fires test-shortage now: ADD
        seen(2, "Town fair opens", ("test-licensing",)),  # fires nothing now: REMOVE
        seen(3, "Rare earth export licence and shortage", ("test-licensing",)),  # + shortage: CHANGE
        seen(4, "Rare earth export licence rules", ("test-licensing",)),  # unchanged
    ]
    sent = Alert("i2", items[1].item, tuple(ruleset.match(items[3].item)), T0, silenced_by="s-1")
    report = replay(items, ruleset, {"i2": sent})
    assert [(c.change, c.seen.item.id) for c in report.changes] == [
        (Change.ADD, "i1"),
        (Change.REMOVE, "i2"),
        (Change.CHANGE, "i3"),
    ]
    assert (report.items, report.unchanged, report.judged_by) == (4, 1, (("old", 4),))
    [removed] = report.of(Change.REMOVE)[0].rules
    assert (removed.rule, removed.added, removed.terms) == (
        "test-licensing",
        False,
        ("rare earth", "export licence"),
    )
    [added] = report.of(Change.CHANGE)[0].rules
    assert (added.rule, added.added, added.category) == ("test-shortage", True, "supply-disruption")
    assert report.to_dict()["remove"][0]["alerted"] is True
    assert report.to_dict()["remove"][0]["silenced_by"] == "s-1"
    assert report.to_dict()["add"][0]["silenced_by"] is None
