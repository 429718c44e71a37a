"""Source backoff, on its own: injected clock (`now`) and random source."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from rarewatch.errors import SourceError
from rarewatch.models import FetchResult, SourceState
from rarewatch.policies.backoff import JITTER, MAX_SOURCE_BACKOFF, next_source_state

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
INTERVAL = timedelta(minutes=15)


class Fixed(random.Random):
    """A random source whose `uniform` always returns one value (the jitter, exactly)."""

    def __init__(self, value: float = 0.0) -> None:
        super().__init__(0)
        self.value = value

    def uniform(self, a: float, b: float) -> float:
        assert a <= self.value <= b
        return self.value


def failed(times: int, error: Exception | None = None, rng: random.Random | None = None) -> SourceState:
    state = SourceState(initialized=True)
    for _ in range(times):
        state = next_source_state(state, error or SourceError("HTTP 500"), INTERVAL, NOW, rng or Fixed())
    return state


def test_the_first_failure_is_recorded_and_retried_at_the_next_scheduled_poll() -> None:
    state = failed(1)
    assert state.consecutive_failures == 1
    assert state.last_error == "HTTP 500"
    assert state.last_attempt == NOW
    assert state.not_before is None


@pytest.mark.parametrize(("failures", "delay"), [(2, 2 * INTERVAL), (3, 4 * INTERVAL), (4, 8 * INTERVAL)])
def test_later_failures_back_off_exponentially(failures: int, delay: timedelta) -> None:
    state = failed(failures)
    assert state.consecutive_failures == failures
    assert state.not_before == NOW + delay


def test_the_backoff_is_capped() -> None:
    assert failed(30).not_before == NOW + MAX_SOURCE_BACKOFF


@pytest.mark.parametrize("failures", [63, 64, 200, 100_000])
def test_a_source_failing_for_weeks_stays_at_the_cap(failures: int) -> None:
    # interval * 2**63 overflows timedelta: a feed dead long enough used to raise OverflowError on every
    # poll instead of being retried at the capped delay
    state = SourceState(initialized=True, consecutive_failures=failures - 1)
    after = next_source_state(state, SourceError("HTTP 503"), INTERVAL, NOW, Fixed())
    assert after.consecutive_failures == failures
    assert after.not_before == NOW + MAX_SOURCE_BACKOFF


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(14, timedelta(seconds=2**13)), (15, timedelta(seconds=2**14)), (16, MAX_SOURCE_BACKOFF)],
)
def test_a_short_interval_doubles_until_the_cap(failures: int, delay: timedelta) -> None:
    # a one-second interval: 2**13 s (2.3 h) and 2**14 s (4.6 h) are under the 6 h cap, 2**15 s is over it
    state = SourceState(initialized=True, consecutive_failures=failures - 1)
    after = next_source_state(state, SourceError("HTTP 503"), timedelta(seconds=1), NOW, Fixed())
    assert after.not_before == NOW + delay


@pytest.mark.parametrize("jitter", [-JITTER, JITTER])
def test_the_backoff_is_jittered_within_ten_percent(jitter: float) -> None:
    state = failed(2, rng=Fixed(jitter))
    assert state.not_before == NOW + 2 * INTERVAL * (1 + jitter)


def test_a_seeded_random_source_gives_the_same_delays() -> None:
    assert failed(3, rng=random.Random(7)).not_before == failed(3, rng=random.Random(7)).not_before
    delay = failed(3, rng=random.Random(7)).not_before
    assert delay is not None and NOW + 4 * INTERVAL * 0.9 <= delay <= NOW + 4 * INTERVAL * 1.1


def test_a_longer_retry_after_wins_even_on_the_first_failure() -> None:
    state = failed(1, SourceError("HTTP 429", retry_after=3600))
    assert state.not_before == NOW + timedelta(hours=1)


def test_a_shorter_retry_after_does_not_shorten_the_backoff() -> None:
    state = failed(3, SourceError("HTTP 503", retry_after=1))
    assert state.not_before == NOW + 4 * INTERVAL


def test_any_exception_is_a_failure_named_by_its_type() -> None:
    state = failed(2, UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))
    assert state.consecutive_failures == 2
    assert state.last_error is not None and state.last_error.startswith("UnicodeEncodeError: ")
    assert state.not_before == NOW + 2 * INTERVAL


def test_a_success_clears_the_failure_and_keeps_new_validators() -> None:
    state = failed(3)
    ok = next_source_state(state, None, INTERVAL, NOW, Fixed(), result=FetchResult((), etag='"v2"'))
    assert ok.consecutive_failures == 0
    assert ok.last_error is None and ok.not_before is None
    assert ok.last_success == NOW and ok.initialized
    assert ok.etag == '"v2"'


def test_a_not_modified_success_keeps_the_old_validators() -> None:
    state = SourceState(etag='"v1"', last_modified="Tue, 01 Dec 2026 00:00:00 GMT")
    ok = next_source_state(state, None, INTERVAL, NOW, Fixed(), result=FetchResult((), not_modified=True))
    assert ok.etag == '"v1"' and ok.last_modified == "Tue, 01 Dec 2026 00:00:00 GMT"


def test_a_failure_keeps_the_validators_of_the_last_complete_read() -> None:
    state = SourceState(etag='"v1"', last_modified="Tue, 01 Dec 2026 00:00:00 GMT", initialized=True)
    error = SourceError("page 2: HTTP 500")
    partial = FetchResult((), etag='"v2"', last_modified="Wed, 02 Dec 2026 00:00:00 GMT", error=error)
    after = next_source_state(state, error, INTERVAL, NOW, Fixed(), result=partial)
    assert after.etag == '"v1"' and after.last_modified == "Tue, 01 Dec 2026 00:00:00 GMT"
    assert after.consecutive_failures == 1 and after.last_error == "page 2: HTTP 500"
