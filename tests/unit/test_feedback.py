"""Readers' feedback (`rarewatch.feedback`): what a Slack click means, and how votes become `eval` lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rarewatch.evaluation import load_labelled
from rarewatch.feedback import PayloadError, SlackClick, export, jsonl, parse_click, tally, verdict
from rarewatch.models import Alert, Item, Match, Severity, Vote, VoteKind

T0 = datetime(2026, 3, 1, tzinfo=UTC)
YES, NO = VoteKind.RELEVANT, VoteKind.NOT_RELEVANT


def make_alert(n: int, *categories: str, title: str = "") -> Alert:
    item = Item(
        f"i{n}",
        "wire",
        title or f"China curbs gallium exports {n}",
        f"https://n.example/{n}",
        f"summary {n}",
        "",
        T0,
        lang="en",
    )
    matches = tuple(Match(f"rule-{c}", c, Severity.HIGH, ("gallium",)) for c in categories)
    return Alert(f"alert-{n}", item, matches, T0)


def vote(n: int, who: str, kind: VoteKind) -> Vote:
    return Vote(f"alert-{n}", who, kind, T0 + timedelta(minutes=n))


def test_a_relevant_majority_keeps_the_alert_categories_as_labels() -> None:
    alert = make_alert(1, "export-licensing", "supply-disruption")
    records, stats = export([vote(1, "a", YES), vote(1, "b", YES), vote(1, "c", NO)], {"alert-1": alert})
    [record] = records
    assert record["labels"] == ["export-licensing", "supply-disruption"]
    assert record["also"] == []
    assert (record["id"], record["title"], record["summary"], record["lang"]) == (
        "alert-1",
        alert.item.title,
        "summary 1",
        "en",
    )
    assert "2 relevant, 1 not relevant" in record["note"]
    assert (stats.relevant, stats.not_relevant, stats.votes) == (1, 0, 3)


def test_a_not_relevant_majority_makes_a_negative() -> None:
    records, stats = export([vote(1, "a", NO)], {"alert-1": make_alert(1, "prosecution")})
    assert records[0]["labels"] == []
    assert "rule-prosecution" in records[0]["note"], "the note names the rules that raised it"
    assert (stats.relevant, stats.not_relevant) == (0, 1)


def test_ties_forgotten_and_operational_alerts_are_skipped_and_counted() -> None:
    alerts = {"alert-1": make_alert(1, "prosecution"), "alert-3": make_alert(3, "ops")}
    votes = [vote(1, "a", YES), vote(1, "b", NO), vote(2, "a", YES), vote(3, "a", YES)]
    records, stats = export(votes, alerts)
    assert records == []
    assert (stats.ties, stats.forgotten, stats.operational, stats.written) == (1, 1, 1, 0)
    assert stats.skipped_ids == ["alert-1", "alert-2", "alert-3"]


def test_only_rule_categories_become_labels() -> None:
    records, _ = export([vote(1, "a", YES)], {"alert-1": make_alert(1, "ops", "prosecution")})
    assert records[0]["labels"] == ["prosecution"]


def test_the_verdict_is_the_majority_and_none_on_a_tie() -> None:
    counts = tally([vote(1, "a", YES), vote(1, "b", NO), vote(2, "a", NO)])
    assert verdict(counts["alert-1"]) is None
    assert verdict(counts["alert-2"]) is NO


def test_the_export_is_a_valid_eval_set(tmp_path: Path) -> None:
    alerts = {
        "alert-1": make_alert(1, "export-licensing"),
        "alert-2": make_alert(2, "prosecution", title="稀土走私案"),
    }
    records, _ = export([vote(1, "a", YES), vote(2, "a", NO)], alerts)
    path = tmp_path / "votes.jsonl"
    path.write_text(jsonl(records), encoding="utf-8")
    assert "稀土走私案" in path.read_text(encoding="utf-8"), "UTF-8 as it is"
    items = load_labelled(path)
    assert [(i.id, sorted(i.labels)) for i in items] == [("alert-1", ["export-licensing"]), ("alert-2", [])]


# --- Slack clicks ---------------------------------------------------------------------------------------


def payload(action_id: str = "rarewatch_feedback_relevant", value: object = "alert-1") -> dict[str, object]:
    return {
        "type": "block_actions",
        "user": {"id": "U1", "username": "ana"},
        "actions": [{"action_id": "other", "value": "x"}, {"action_id": action_id, "value": value}],
    }


@pytest.mark.parametrize(
    ("action_id", "kind"),
    [("rarewatch_feedback_relevant", YES), ("rarewatch_feedback_not_relevant", NO)],
)
def test_a_click_on_our_buttons_is_a_vote_by_the_slack_user(action_id: str, kind: VoteKind) -> None:
    click = parse_click(payload(action_id))
    assert click == SlackClick("alert-1", kind, "U1", "ana")
    assert click is not None and click.who == "slack:U1"


def test_other_interactions_are_no_vote() -> None:
    assert parse_click(payload("someone_else")) is None
    assert parse_click({"type": "view_submission"}) is None


@pytest.mark.parametrize(
    "bad",
    [
        [],
        "x",
        {"type": "block_actions"},
        {"type": "block_actions", "user": {"id": 1}, "actions": []},
        payload(value=""),
        payload(value=7),
    ],
)
def test_a_payload_without_slacks_shape_is_an_error(bad: object) -> None:
    with pytest.raises(PayloadError):
        parse_click(json.loads(json.dumps(bad)))
