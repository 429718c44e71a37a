"""Which replica should poll a source: rendezvous (highest random weight) hashing over the live replicas.

Every replica computes the same answer from the same member list without talking to the others, sources
spread evenly, and when a replica joins or leaves only the sources it gains or held move. Pure: the
member list comes from `store.leases`, and the lease decides when replicas' views briefly disagree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(member: str, name: str) -> int:
    """The rendezvous weight of `member` for `name` (stable across processes and Python versions)."""
    digest = hashlib.blake2b(f"{member}\x1f{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def preferred(name: str, members: Iterable[str]) -> str:
    """The member that should do `name`: the one with the highest weight (ties: the greater token)."""
    candidates = list(members)
    if not candidates:
        raise ValueError("preferred() needs at least one member")
    return max(candidates, key=lambda member: (weight(member, name), member))
