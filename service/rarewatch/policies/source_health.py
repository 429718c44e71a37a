"""Source health: when a source deserves one operational alert, and when one recovery message.

Pure: a source's health and the facts of one poll in, a decision out; the pipeline carries it out (an
alert of category `ops`, routed like any other and delivered through the outbox).

A source is *failing* once `failures` polls in a row failed. It is *silent* when its listing has not
changed for much longer than usual: `silence_factor` times the median gap between its recent changes, and
never less than `min_silence`; silence is judged only once `min_changes` changes were seen (a page that
never changes has no cadence to compare with). A listing "changes" when the set of item ids it yields
differs from the previous poll's (a 304 is no change): an HTML page whose selector suddenly yields
nothing changes once (to empty) and then stays silent; a feed that stopped updating stays silent.

A problem raises one alert and the health remembers it, so the polls that follow raise nothing until the
source is healthy again, which sends one recovery message — never one message per poll.
"""

from __future__ import annotations

import enum
import hashlib
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from rarewatch.categories import OPS
from rarewatch.durations import format_duration
from rarewatch.models import Alert, Item, Match, Problem, Severity, SourceHealth

KEEP_CHANGES = 10  # change times remembered per source: enough for a stable median gap
HEALTH_RULE = "rarewatch-source-health"
TITLE_PREFIX = "[rarewatch ops]"


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """The thresholds (config `source_health:`)."""

    failures: int = 3
    silence_factor: float = 10.0
    min_silence: timedelta = timedelta(hours=24)
    min_changes: int = 3


class Event(enum.StrEnum):
    RAISE = "raise"
    RECOVER = "recover"


@dataclass(frozen=True, slots=True)
class HealthDecision:
    """The health to store and, at most, one event: RAISE (`problem` opened) or RECOVER (it ended)."""

    health: SourceHealth
    event: Event | None = None
    problem: Problem | None = None
    reason: str = ""
    since: datetime | None = None  # when the problem was raised


def listing_fingerprint(item_ids: Iterable[str]) -> str:
    """A short digest of the set of item ids one poll listed (order and repeats do not matter)."""
    digest = hashlib.sha256("\n".join(sorted(set(item_ids))).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


def observe(health: SourceHealth, fingerprint: str | None, now: datetime) -> SourceHealth:
    """The health after a successful poll that listed `fingerprint` (None: not modified, a 304)."""
    if fingerprint is None or fingerprint == health.fingerprint:
        return health
    return replace(health, fingerprint=fingerprint, changes=(*health.changes, now)[-KEEP_CHANGES:])


def silence_limit(health: SourceHealth, policy: HealthPolicy) -> timedelta | None:
    """How long the listing may stay unchanged before the source counts as silent (None: too few changes
    seen to know its cadence)."""
    if len(health.changes) < max(policy.min_changes, 2):
        return None
    gaps = [b - a for a, b in zip(health.changes, health.changes[1:], strict=False)]
    usual = timedelta(seconds=statistics.median(g.total_seconds() for g in gaps))
    return max(policy.min_silence, usual * policy.silence_factor)


def assess(
    health: SourceHealth,
    *,
    failures: int,
    last_error: str | None,
    policy: HealthPolicy,
    now: datetime,
) -> HealthDecision:
    """Decide after a poll: raise once when a problem appears, recover once when none is left."""
    problem, reason = _problem(health, failures, last_error, policy, now)
    if health.raised is None:
        if problem is None:
            return HealthDecision(health)
        opened = replace(health, raised=problem, raised_at=now)
        return HealthDecision(opened, Event.RAISE, problem, reason, since=now)
    if problem is not None:
        return HealthDecision(health)  # still unhealthy: it was said once
    closed = replace(health, raised=None, raised_at=None)
    since = health.raised_at
    was = f" since {since:%Y-%m-%d %H:%M} UTC" if since else ""
    now_ok = "its polls succeed again" if health.raised is Problem.FAILING else "its listing changes again"
    reason = f"recovered: it was {health.raised.value}{was}; {now_ok}"
    return HealthDecision(closed, Event.RECOVER, health.raised, reason, since=since)


def _problem(
    health: SourceHealth, failures: int, last_error: str | None, policy: HealthPolicy, now: datetime
) -> tuple[Problem | None, str]:
    if failures >= policy.failures:
        return Problem.FAILING, f"{failures} polls in a row failed; last error: {last_error or 'unknown'}"
    limit = silence_limit(health, policy)
    if limit is None or not health.changes:
        return None, ""
    quiet = now - health.changes[-1]
    if quiet <= limit:
        return None, ""
    return Problem.SILENT, (
        f"its listing has not changed for {format_duration(quiet)} (silent after {format_duration(limit)}: "
        f"{policy.silence_factor:g} times its usual gap between changes, at least "
        f"{format_duration(policy.min_silence)})"
    )


def health_alert(source: str, decision: HealthDecision, now: datetime) -> Alert:
    """The operational alert for a RAISE or RECOVER decision, keyed by the source, the problem and when it
    was raised (so the same event is never claimed twice)."""
    if decision.event is None or decision.problem is None:
        raise ValueError("health_alert needs a decision with an event")
    since = decision.since or now
    ident = f"ops-{source}-{decision.problem.value}-{since:%Y%m%dT%H%M%S}-{decision.event.value}"
    if decision.event is Event.RAISE:
        title = f"{TITLE_PREFIX} source {source} is {decision.problem.value}"
    else:
        title = f"{TITLE_PREFIX} source {source} recovered"
    text = f"Source {source}: {decision.reason}."
    item = Item(id=ident, source=source, title=title, link="", summary=text, content="", published=now)
    match = Match(HEALTH_RULE, OPS, Severity.HIGH, (decision.problem.value,), text[:200])
    return Alert(id=ident, item=item, matches=(match,), created=now)


def is_recovery(alert: Alert) -> bool:
    """Whether an operational alert made by `health_alert` announces a recovery (not a problem)."""
    return alert.id.endswith(f"-{Event.RECOVER.value}")
