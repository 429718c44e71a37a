"""Readers' feedback on alerts: what a Slack button click means, and how votes become a labelled test set.

No I/O of its own: `slack_interactions` and `api_feedback` record votes, `commands.feedback` exports them
through `export`.

Export mapping (`rarewatch feedback export`), one JSON line per alert in the `eval` format
(`tests/data/labelled.jsonl`: id, title, summary, lang, labels, also):

- each voter counts once per alert (the store keeps a voter's last vote);
- the majority decides: more "relevant" votes -> `labels` are the alert's rule categories (the categories
  it was raised with, so `eval` checks the rules still raise them); more "not relevant" -> `labels: []`
  (a negative: `eval` shows which rules fire on it);
- a tie is skipped, and counted; so are alerts the store no longer holds, and operational (`ops`)
  alerts, which no rule raised;
- `also` is always empty: a reader judged the alert, not which extra categories would be acceptable;
- `id` is the alert id, `origin` is left out, and `note` says how the votes went.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rarewatch.categories import RULE_CATEGORIES
from rarewatch.delivery.slack_blocks import FEEDBACK_NOT_RELEVANT, FEEDBACK_RELEVANT
from rarewatch.models import Alert, Vote, VoteKind
from rarewatch.store import Store

ACTIONS: Mapping[str, VoteKind] = {
    FEEDBACK_RELEVANT: VoteKind.RELEVANT,
    FEEDBACK_NOT_RELEVANT: VoteKind.NOT_RELEVANT,
}
"""The feedback buttons' action ids and the vote each casts."""

WHO_MAX = 200  # characters of a voter's identity or name kept


@dataclass(frozen=True, slots=True)
class SlackClick:
    """A click on a feedback button: on which alert, which vote, by whom (Slack user id and name)."""

    alert_id: str
    vote: VoteKind
    user_id: str
    user_name: str

    @property
    def who(self) -> str:
        """The voter's identity in the store: one vote per Slack user and alert."""
        return f"slack:{self.user_id}"


async def find_alert(store: Store, alert_id: str) -> Alert | None:
    """An alert of the history, or an unrouted one: a vote may come for either."""
    return await store.get_alert(alert_id) or await store.get_unrouted(alert_id)


class PayloadError(ValueError):
    """An interaction payload that is not what Slack sends (a 400)."""


def parse_click(payload: Any) -> SlackClick | None:
    """The feedback click in a Slack interaction payload (the JSON of its `payload` form field), or None
    when it is another interaction (another app's button, a shortcut): those are acknowledged and ignored.
    Raises `PayloadError` for a payload without Slack's shape."""
    if not isinstance(payload, dict):
        raise PayloadError("the payload is not a JSON object")
    if payload.get("type") != "block_actions":
        return None
    user, actions = payload.get("user"), payload.get("actions")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not isinstance(actions, list):
        raise PayloadError("a block_actions payload needs user.id and actions")
    for action in actions:
        if not isinstance(action, dict) or action.get("action_id") not in ACTIONS:
            continue
        alert_id = action.get("value")
        if not isinstance(alert_id, str) or not alert_id:
            raise PayloadError("a feedback button without its alert id")
        name = user.get("username") or user.get("name") or ""
        return SlackClick(alert_id, ACTIONS[action["action_id"]], user["id"][:WHO_MAX], str(name)[:WHO_MAX])
    return None


# --------------------------------------------------------------------------- export


@dataclass
class ExportStats:
    """What an export wrote and what it skipped, and why."""

    votes: int = 0
    relevant: int = 0  # alerts written with labels
    not_relevant: int = 0  # alerts written as negatives
    ties: int = 0
    forgotten: int = 0  # alerts the store no longer holds
    operational: int = 0  # alerts no rule raised
    skipped_ids: list[str] = field(default_factory=list)

    @property
    def written(self) -> int:
        return self.relevant + self.not_relevant


def tally(votes: Iterable[Vote]) -> dict[str, Counter[VoteKind]]:
    """Per alert (in the order of their first vote), how many voters said each thing."""
    counts: dict[str, Counter[VoteKind]] = {}
    for vote in votes:
        counts.setdefault(vote.alert_id, Counter())[vote.vote] += 1
    return counts


def verdict(counts: Counter[VoteKind]) -> VoteKind | None:
    """The majority's vote, None on a tie."""
    relevant, not_relevant = counts[VoteKind.RELEVANT], counts[VoteKind.NOT_RELEVANT]
    if relevant == not_relevant:
        return None
    return VoteKind.RELEVANT if relevant > not_relevant else VoteKind.NOT_RELEVANT


def labelled_record(alert: Alert, vote: VoteKind, counts: Counter[VoteKind]) -> dict[str, Any] | None:
    """One `eval` line for `alert` as the voters judged it; None for an alert no rule raised."""
    categories = [c for c in alert.categories if c in RULE_CATEGORIES]
    if not categories or not alert.item.title.strip():
        return None
    labels = categories if vote is VoteKind.RELEVANT else []
    note = (
        f"reader feedback: {counts[VoteKind.RELEVANT]} relevant, {counts[VoteKind.NOT_RELEVANT]} not "
        f"relevant; alerted as {', '.join(categories)} by {', '.join(_rules(alert))}"
    )
    record: dict[str, Any] = {
        "id": alert.id,
        "title": alert.item.title,
        "summary": alert.item.summary,
        "lang": alert.item.lang or None,
        "labels": labels,
        "also": [],
        "note": note,
    }
    return record


def export(votes: Sequence[Vote], alerts: Mapping[str, Alert]) -> tuple[list[dict[str, Any]], ExportStats]:
    """The `eval` records of the alerts voted on (`alerts`: those the store still holds) and the stats."""
    stats = ExportStats(votes=len(votes))
    records: list[dict[str, Any]] = []
    for alert_id, counts in tally(votes).items():
        decided = verdict(counts)
        alert = alerts.get(alert_id)
        if decided is None:
            stats.ties += 1
        elif alert is None:
            stats.forgotten += 1
        elif (record := labelled_record(alert, decided, counts)) is None:
            stats.operational += 1
        else:
            records.append(record)
            if decided is VoteKind.RELEVANT:
                stats.relevant += 1
            else:
                stats.not_relevant += 1
            continue
        stats.skipped_ids.append(alert_id)
    return records, stats


def jsonl(records: Iterable[Mapping[str, Any]]) -> str:
    """Records as JSON Lines, UTF-8 as it is (the labelled set's convention)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _rules(alert: Alert) -> list[str]:
    return list(dict.fromkeys(m.rule for m in alert.matches))
