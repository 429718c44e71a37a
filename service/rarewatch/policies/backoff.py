"""Source backoff: the state a source is left in after one poll.

A failed source is retried after interval * 2**(failures-1) (±10 % jitter), capped at
`MAX_SOURCE_BACKOFF` however many failures in a row; a longer Retry-After wins (`httputil` reads one as at
most 30 days). The first failure is retried at the next scheduled poll
(no delay) unless the source asked for one. A success clears the error and the delay and keeps the new
validators (ETag, Last-Modified).
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timedelta

from rarewatch.errors import SourceError
from rarewatch.models import FetchResult, SourceState

MAX_SOURCE_BACKOFF = timedelta(hours=6)
JITTER = 0.1  # a delay is scaled by a factor in [1 - JITTER, 1 + JITTER]


def backoff_delay(failures: int, interval: timedelta, rng: random.Random) -> timedelta:
    """The delay after `failures` failures in a row (≥ 1), jittered and capped."""
    return _capped_delay(failures, interval) * (1 + rng.uniform(-JITTER, JITTER))


def _capped_delay(failures: int, interval: timedelta) -> timedelta:
    """interval * 2**(failures-1), capped at `MAX_SOURCE_BACKOFF`. Doubling stops at the cap: the product
    itself overflows `timedelta` once a source has failed some 60 times in a row (weeks of a dead feed at
    the capped delay), and past the cap it changes nothing."""
    delay = interval
    for _ in range(failures - 1):
        if delay >= MAX_SOURCE_BACKOFF:
            break
        delay *= 2
    return min(delay, MAX_SOURCE_BACKOFF)


def describe(error: BaseException) -> str:
    """How a failure reads in the source's state: a `SourceError` says it itself; anything else (a bug, a
    parser crash) names its type so that it is recognisable in `/api/v1/sources` and `once`."""
    if isinstance(error, SourceError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def next_source_state(
    state: SourceState,
    error: BaseException | None,
    interval: timedelta,
    now: datetime,
    rng: random.Random,
    *,
    result: FetchResult | None = None,
) -> SourceState:
    """The state of a source after a poll at `now` that failed with `error` (None: it succeeded and
    fetched `result`)."""
    if error is None:
        return _succeeded(state, result, now)
    failures = state.consecutive_failures + 1
    retry_after = error.retry_after if isinstance(error, SourceError) else None
    delay = backoff_delay(failures, interval, rng)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=retry_after))
    not_before = now + delay if failures > 1 or retry_after is not None else None
    return replace(
        state,
        last_attempt=now,
        last_error=describe(error),
        consecutive_failures=failures,
        not_before=not_before,
    )


def _succeeded(state: SourceState, result: FetchResult | None, now: datetime) -> SourceState:
    etag = result.etag if result is not None else None
    last_modified = result.last_modified if result is not None else None
    return replace(
        state,
        etag=etag if etag is not None else state.etag,
        last_modified=last_modified if last_modified is not None else state.last_modified,
        last_attempt=now,
        last_success=now,
        last_error=None,
        consecutive_failures=0,
        not_before=None,
        initialized=True,
    )
