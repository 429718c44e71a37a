"""Rendezvous placement of sources on replicas: every replica computes the same owner, sources spread, and a
replica leaving moves only its own sources."""

from __future__ import annotations

from collections import Counter

import pytest

from rarewatch.policies.placement import preferred

NAMES = [f"feed-{n}" for n in range(300)]
MEMBERS = ["host-a:1:aa", "host-b:2:bb", "host-c:3:cc"]


def test_every_replica_agrees_whatever_order_it_lists_the_members_in() -> None:
    for name in NAMES:
        assert preferred(name, MEMBERS) == preferred(name, reversed(MEMBERS))


def test_sources_spread_over_the_replicas() -> None:
    counts = Counter(preferred(name, MEMBERS) for name in NAMES)
    assert set(counts) == set(MEMBERS)
    assert min(counts.values()) >= 70, counts  # an even share is 100 each


def test_a_replica_leaving_moves_only_the_sources_it_had() -> None:
    before = {name: preferred(name, MEMBERS) for name in NAMES}
    after = {name: preferred(name, MEMBERS[:2]) for name in NAMES}
    moved = {name for name in NAMES if before[name] != after[name]}
    assert moved == {name for name in NAMES if before[name] == MEMBERS[2]}


def test_no_member_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one member"):
        preferred("feed-1", [])
