"""The storage layout: every SQLite table and Redis key name, and how values are encoded.

This is the only module that names tables or keys; `sqlite.py` and `redis.py` build their statements and
commands from it, so a rename or a new index is one edit here plus (for SQLite) one new migration.

Timestamps are stored as integer microseconds since the Unix epoch (UTC) in both backends: exact (no float
rounding), ordered, and small enough (< 2**53) to be an exact Redis sorted-set score.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rarewatch.models import DeliveryStatus

# --- timestamps -------------------------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def to_us(when: datetime) -> int:
    """Microseconds since the epoch. A naive datetime is taken as UTC (rarewatch clocks are always UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // _MICRO


def from_us(us: int) -> datetime:
    """The UTC datetime `to_us` encoded."""
    return _EPOCH + timedelta(microseconds=us)


def ttl_ms(ttl: timedelta) -> int:
    """A claim TTL in whole milliseconds (at least 1), rejecting a TTL that would never hold a claim."""
    ms = ttl // timedelta(milliseconds=1)
    if ms <= 0:
        raise ValueError(f"claim ttl must be positive, got {ttl}")
    return ms


# --- SQLite -----------------------------------------------------------------------------------------------

CLAIMS = "claims"  # key -> expires (us); a claim holds while expires > now
ALERTS = "alerts"  # alert history: id -> created (us), Alert.to_dict() JSON
DELIVERIES = "deliveries"  # the outbox: one row per (alert_id, destination)
SOURCES = "source_state"  # source name -> SourceState.to_dict() JSON

# Forward migrations, applied in order on open() inside one BEGIN IMMEDIATE transaction; the schema version
# is `PRAGMA user_version`. Never edit a shipped entry: append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # v1: the tables.
    (
        f"CREATE TABLE {CLAIMS} (key TEXT PRIMARY KEY, expires INTEGER NOT NULL) WITHOUT ROWID",
        f"CREATE TABLE {ALERTS} (id TEXT PRIMARY KEY, created INTEGER NOT NULL, data TEXT NOT NULL)",
        f"""CREATE TABLE {DELIVERIES} (
            alert_id TEXT NOT NULL,
            destination TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            created INTEGER NOT NULL,
            next_attempt INTEGER NOT NULL,
            last_error TEXT,
            delivered_at INTEGER,
            UNIQUE (alert_id, destination)
        )""",
        f"CREATE TABLE {SOURCES} (source TEXT PRIMARY KEY, data TEXT NOT NULL)",
    ),
    # v2: indexes for the two frequent reads: due deliveries (partial: only pending rows, so delivered ones
    # cost nothing) and the newest alerts. Claims have none beyond their key: the lazy cleanup of expired
    # claims is a rare full scan, cheaper overall than an index updated on every claim.
    (
        f"CREATE INDEX {DELIVERIES}_due ON {DELIVERIES} (next_attempt, created) WHERE status = 'pending'",
        f"CREATE INDEX {ALERTS}_created ON {ALERTS} (created)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


# --- Redis ------------------------------------------------------------------------------------------------

REDIS_LAYOUT_VERSION = 1
_SEP = "\x1f"  # ASCII unit separator: cannot appear in a destination name or an alert id in practice
_SEQ_WIDTH = 16  # digits of the zero-padded sequence number that starts an outbox member


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Key names under one prefix.

    - `claim:<key>`          string "1" with PX ttl: a dedup claim
    - `alert:<id>`           string: Alert.to_dict() JSON
    - `alerts`               zset id -> created (us): the history, capped
    - `alert_refs`           hash id -> number of delivery records of that alert (keeps trimmed alerts alive)
    - `delivery:<id>␟<dest>` hash: one outbox record (fields: see `redis.py`)
    - `outbox:all`           zset member -> created (us): every delivery
    - `outbox:<status>`      zset member -> created (us): deliveries of one status
    - `outbox:due`           zset member -> next_attempt (us): pending deliveries only
    - `seq`                  counter: insertion order, so equal timestamps keep a stable order
    - `source:<name>`        string: SourceState.to_dict() JSON
    - `version`              the layout version, checked on open()

    An outbox member is `<seq, 16 digits>␟<alert id>␟<destination>`: equal scores sort by member, so by
    insertion order, and `member[17:]` is the record's hash-key suffix.
    """

    prefix: str = "rarewatch:"

    def claim(self, key: str) -> str:
        return f"{self.prefix}claim:{key}"

    def alert(self, alert_id: str) -> str:
        return f"{self.alert_prefix}{alert_id}"

    @property
    def alert_prefix(self) -> str:
        return f"{self.prefix}alert:"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}alerts"

    @property
    def alert_refs(self) -> str:
        return f"{self.prefix}alert_refs"

    @property
    def delivery_prefix(self) -> str:
        return f"{self.prefix}delivery:"

    def delivery(self, alert_id: str, destination: str) -> str:
        return f"{self.delivery_prefix}{alert_id}{_SEP}{destination}"

    def delivery_of_member(self, member: str) -> str:
        """The hash key of the outbox record an index member names."""
        return self.delivery_prefix + member[_SEQ_WIDTH + 1 :]

    @property
    def outbox_all(self) -> str:
        return f"{self.prefix}outbox:all"

    def outbox(self, status: DeliveryStatus) -> str:
        return f"{self.prefix}outbox:{status.value}"

    @property
    def outbox_due(self) -> str:
        return f"{self.prefix}outbox:due"

    @property
    def seq(self) -> str:
        return f"{self.prefix}seq"

    def source(self, name: str) -> str:
        return f"{self.prefix}source:{name}"

    @property
    def version(self) -> str:
        return f"{self.prefix}version"


# Lua needs the separator and member layout too; these are passed in as arguments, never spelt in a script.
MEMBER_SEPARATOR = _SEP
MEMBER_SEQ_WIDTH = _SEQ_WIDTH
