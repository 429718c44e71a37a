"""The storage layout: every SQLite table and Redis key name, and how values are encoded.

This is the only module that names tables or keys; `sqlite.py` and `redis.py` build their statements and
commands from it, so a rename or a new index is one edit here plus (for SQLite) one new migration.

Timestamps are stored as integer microseconds since the Unix epoch (UTC) in both backends: exact (no float
rounding), ordered, and small enough (< 2**53) to be an exact Redis sorted-set score.
"""

from __future__ import annotations

import hashlib
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


def ttl_ms(ttl: timedelta, what: str = "claim ttl") -> int:
    """A TTL in whole milliseconds (at least 1), rejecting a TTL that would never hold anything."""
    ms = ttl // timedelta(milliseconds=1)
    if ms <= 0:
        raise ValueError(f"{what} must be positive, got {ttl}")
    return ms


def window_bucket(window: timedelta, now: datetime) -> tuple[int, int]:
    """The fixed counting window containing `now`: its number, floor(now.timestamp() / window) (computed
    in integer microseconds, so exact), and its end (us). Windows of at least a millisecond only. A counter
    is (key, window number): use one key with one window length."""
    ttl_ms(window, "counter window")
    width = window // _MICRO
    bucket = to_us(now) // width
    return bucket, (bucket + 1) * width


# --- SQLite -----------------------------------------------------------------------------------------------

CLAIMS = "claims"  # key -> expires (us), owner (alert id or NULL); held while expires > now
ALERTS = "alerts"  # alert history: id -> created (us), Alert.to_dict() JSON
DELIVERIES = "deliveries"  # the outbox: one row per (alert_id, destination)
SOURCES = "source_state"  # source name -> SourceState.to_dict() JSON
COUNTERS = "counters"  # (key, window number) -> count, expires (us): fixed-window counters
UNROUTED = "unrouted"  # alerts no route took: id -> created (us), Alert.to_dict() JSON (newest kept)
SEEN_ITEMS = "seen_items"  # items as fetched, matched or not: id -> fetched (us), SeenItem.to_dict() JSON
SILENCES = "silences"  # id -> ends (us), Silence.to_dict() JSON
VOTES = "votes"  # readers' feedback: (alert_id, who) -> at (us), Vote.to_dict() JSON; one vote per voter
META = "store_meta"  # name -> value: the store's own records (`MARKER_NAME`: the identity marker, JSON)
MARKER_NAME = "marker"

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
    # v3: claim owners (existing claims: NULL, unknown), delivery receipts and the digest flag (existing
    # deliveries: not held for a digest), fixed-window counters, and a partial index (delivered rows only)
    # for the storm guard's "delivered to this destination since" count; `status` is in it, constant as it
    # is, only so that the index covers that query (SQLite would otherwise read each row to check it).
    (
        f"ALTER TABLE {CLAIMS} ADD COLUMN owner TEXT",
        f"ALTER TABLE {DELIVERIES} ADD COLUMN receipt TEXT",
        f"ALTER TABLE {DELIVERIES} ADD COLUMN digest INTEGER NOT NULL DEFAULT 0",
        f"""CREATE TABLE {COUNTERS} (
            key TEXT NOT NULL,
            bucket INTEGER NOT NULL,
            count INTEGER NOT NULL,
            expires INTEGER NOT NULL,
            PRIMARY KEY (key, bucket)
        ) WITHOUT ROWID""",
        f"CREATE INDEX {DELIVERIES}_delivered ON {DELIVERIES} (destination, delivered_at, status)"
        " WHERE status = 'delivered'",
    ),
    # v4: the store's identity marker (`StoreMarker` JSON under `MARKER_NAME`), written on first start.
    (f"CREATE TABLE {META} (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",),
    # v5: alerts no route took, kept so they can be seen and sent later (`rarewatch alerts resend`).
    (
        f"CREATE TABLE {UNROUTED} (id TEXT PRIMARY KEY, created INTEGER NOT NULL, data TEXT NOT NULL)",
        f"CREATE INDEX {UNROUTED}_created ON {UNROUTED} (created)",
    ),
    # v6: the items the sources listed, matched or not, kept `store_items.keep` (for `rarewatch backtest`).
    (
        f"CREATE TABLE {SEEN_ITEMS} (id TEXT PRIMARY KEY, fetched INTEGER NOT NULL, data TEXT NOT NULL)",
        f"CREATE INDEX {SEEN_ITEMS}_fetched ON {SEEN_ITEMS} (fetched)",
    ),
    # v7: silences (`rarewatch silence add|list|expire`).
    (f"CREATE TABLE {SILENCES} (id TEXT PRIMARY KEY, ends INTEGER NOT NULL, data TEXT NOT NULL)",),
    # v8: readers' votes on alerts (Slack buttons, `POST /api/v1/alerts/{id}/feedback`), one per voter and
    # alert, read by time for `rarewatch feedback export`.
    (
        f"""CREATE TABLE {VOTES} (
            alert_id TEXT NOT NULL,
            who TEXT NOT NULL,
            at INTEGER NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (alert_id, who)
        ) WITHOUT ROWID""",
        f"CREATE INDEX {VOTES}_at ON {VOTES} (at)",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


# How long a silence that ended stays listed (`silence list --all`) before the store forgets it.
SILENCE_KEEP = timedelta(days=30)

# Votes are kept this long after they were cast, and never more than the newest `VOTE_LIMIT` (a week of
# readers' votes is a test set; a year of them is plenty).
VOTE_KEEP = timedelta(days=365)
VOTE_LIMIT = 100_000

# How many unrouted alerts are kept (the newest), and in Redis for how long after the last one was recorded.
UNROUTED_LIMIT = 10_000
UNROUTED_TTL = timedelta(days=30)

# --- Redis ------------------------------------------------------------------------------------------------

# v2 (from v1): claim values carry an owner, delivery hashes `receipt`/`digest`, new `delivered:` and
# `counter:` keys. A v1 store is upgraded in place on open() (v1 claim values read as "no owner"; the
# delivered index is filled from the delivered records); rarewatch builds that only know v1 then refuse
# it, so an old process cannot send held digest deliveries one by one or leave the delivered index stale.
# v3 (from v2): dedup keys live in bucketed hashes (`dedup:`, see `RedisKeys`), no longer one `claim:<key>`
# string each. On upgrade, open() records until when the v2 `claim:` keys may live (their longest TTL);
# until then every look-up reads them too, so a story seen before the upgrade is not alerted again. A v2
# rarewatch refuses a v3 prefix on open(), but one still running would not see the bucketed claims: stop
# every old process before starting a new one.
REDIS_LAYOUT_VERSION = 3
DELIVERED_INDEX_SPAN = timedelta(hours=24)  # `delivered:<dest>` keeps this much history (storm guard)
_SEP = "\x1f"  # ASCII unit separator: cannot appear in a destination name or an alert id in practice
_SEQ_WIDTH = 16  # digits of the zero-padded sequence number that starts an outbox member


def cluster_prefix(prefix: str) -> str:
    """The key prefix on Redis Cluster: `prefix` made a hash tag, so every key of one store maps to one hash
    slot (`rarewatch:` becomes `{rarewatch}:`). The claim script touches the claim keys of a story, the
    alert, its delivery records, the outbox indexes and the identity marker in one atomic step, and a link
    or near-duplicate claim is shared by stories from any source, so no finer tag keeps those keys together:
    one store lives on one shard (another prefix, another shard). A prefix that already holds a tag (`{…}`)
    is kept as given. On one server (not a cluster) keys carry no tag and keep their names."""
    start = prefix.find("{")
    if start >= 0 and prefix.find("}", start + 1) > start + 1:
        return prefix
    if prefix.endswith(":") and len(prefix) > 1:
        return "{" + prefix[:-1] + "}:"
    return "{" + prefix + "}"


# The bucketed dedup keys (layout v3). A key claimed (or remembered) for `ttl` from Redis time t expires at
# E = t + ttl; it lives in the bucket of width W = ttl // DEDUP_BUCKETS (ms) that contains E, and that
# bucket's hashes expire at the bucket's end: so a key's memory is freed less than W after E, with no
# sweeper, while the key itself is held exactly until E (the scripts compare E with Redis time). A look-up
# reads one shard in each bucket that can hold a live key: DEDUP_BUCKETS + 1 at most. Fewer buckets
# would mean fewer reads per key and more memory held past expiry (up to 1/DEDUP_BUCKETS of the window).
# Each bucket is split into shards by linear hashing on the key's digest, a shard being split as soon as
# an insert takes it past DEDUP_SHARD_LIMIT fields: shards stay below Redis's default
# `hash-max-listpack-entries` (128) and so stay compact listpacks, whatever the rate of new stories.
DEDUP_BUCKETS = 4
DEDUP_SHARD_LIMIT = 96
DEDUP_DIGEST_BYTES = 16


def dedup_width_ms(ttl_ms: int) -> int:
    """The bucket width (ms) of keys held for `ttl_ms`: a look-up reads at most DEDUP_BUCKETS + 1 buckets
    of that width, and a key's memory outlives its expiry by less than one width."""
    return max(1, ttl_ms // DEDUP_BUCKETS)


def dedup_field(key: str) -> bytes:
    """The hash field of a logical key: the first 16 bytes of its SHA-256 (raw bytes, not hex). Two keys
    share a field only by a 128-bit collision (as `link_key` already hashes links to 128 bits)."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()[:DEDUP_DIGEST_BYTES]


def member_suffix(destination: str) -> str:
    """How every outbox member of `destination` ends (members are `<seq>␟<alert id>␟<destination>`)."""
    return f"{_SEP}{destination}"


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Key names under one prefix.

    - `dedup`                hash, the dedup registry, read whole by every look-up: `<W>` -> the latest
                             expiry (ms, Redis time) of any key in the buckets of width W; `<W>:<n>` ->
                             `<l>:<p>`, the linear-hashing state (level, split pointer) of bucket n of
                             width W (the keys expiring in [n*W, (n+1)*W) ms), present while it holds
                             keys; `legacy` -> until when layout-2 `claim:` keys may live (set by the
                             upgrade). Ended entries are dropped by the next write; the key expires with
                             the latest of them
    - `dedup:<W>:<n>:<i>`    hash: shard i of bucket n of width W, `dedup_field(key)` -> `<E - n*W>` (ms)
                             and, for an owned key, `=<owner>`; PEXPIREAT (n+1)*W
    - `claim:<key>`          (layout 2, read only until the upgrade's `legacy` time) string with PX ttl: a
                             dedup claim or remembered key (value: `claim_value`)
    - `counter:<n>:<key>`    integer with PX ttl: count in fixed window number n (`count_in_window`)
    - `alert:<id>`           string: Alert.to_dict() JSON
    - `alerts`               zset id -> created (us): the history, capped
    - `alert_refs`           hash id -> number of delivery records of that alert (keeps trimmed alerts alive)
    - `delivery:<id>␟<dest>` hash: one outbox record (fields: see `redis_scripts.CLAIM`, `TRANSITION`)
    - `outbox:all`           zset member -> created (us): every delivery
    - `outbox:<status>`      zset member -> created (us): deliveries of one status
    - `outbox:due`           zset member -> next_attempt (us): pending deliveries only
    - `delivered:<dest>`     zset alert id -> delivered_at (us): delivered records of one destination;
                             each `mark_delivered` drops those older than its `now` - DELIVERED_INDEX_SPAN
    - `seq`                  counter: insertion order, so equal timestamps keep a stable order
    - `source:<name>`        string: SourceState.to_dict() JSON
    - `version`              the layout version, checked on open()
    - `marker`               string: the store's identity marker (`StoreMarker` JSON), checked every poll
    - `unrouted`             zset alert id -> created (us): alerts no route took, newest `UNROUTED_LIMIT`
                             kept, the key expiring `UNROUTED_TTL` after the last one was recorded
    - `unrouted:<id>`        string with PX ttl (`UNROUTED_TTL`): that alert's Alert.to_dict() JSON
    - `seen_items`           zset item id -> fetched (us): the items the sources listed (`record_items`),
                             trimmed to `ItemRetention.keep` and `.max`, the key expiring `keep` after the
                             last record
    - `seen_item:<id>`       string with PX ttl (`keep`): that item's SeenItem.to_dict() JSON
    - `silences`             hash silence id -> Silence.to_dict() JSON (ended ones dropped `SILENCE_KEEP`
                             after their end, when a silence is added)
    - `votes`                hash `<alert id>␟<who>` -> Vote.to_dict() JSON: one vote per voter and alert
    - `votes_at`             zset `<alert id>␟<who>` -> at (us): the votes by time, trimmed to `VOTE_KEEP`
                             and `VOTE_LIMIT`; both keys expire `VOTE_KEEP` after the last vote
    - `lease:<kind>:<name>`  string with PX ttl: the token of the replica holding a lease (`store.leases`):
                             `lease:source:<name>` polls one source, `lease:destination:<name>` drains one
                             destination's outbox
    - `lease-holder:destination:<name>`  string with PX ttl (`HOLDER_RECORD`): the token of the replica that
                             held that destination's lease last, so that a takeover is told from a free lease
    - `replicas`             zset token -> expiry (ms, Redis time), PX ttl: the live replicas (`store.leases`)

    An outbox member is `<seq, 16 digits>␟<alert id>␟<destination>`: equal scores sort by member, so by
    insertion order, and `member[17:]` is the record's hash-key suffix.
    """

    prefix: str = "rarewatch:"

    def claim(self, key: str) -> str:
        """A layout-2 claim key (read, never written, after the upgrade to layout 3)."""
        return f"{self.claim_prefix}{key}"

    @property
    def claim_prefix(self) -> str:
        return f"{self.prefix}claim:"

    @property
    def dedup(self) -> str:
        return f"{self.prefix}dedup"

    @property
    def dedup_prefix(self) -> str:
        """What every bucket and shard name starts with (`dedup:<W>:<n>`, `dedup:<W>:<n>:<i>`)."""
        return f"{self.prefix}dedup:"

    def dedup_shard(self, width_ms: int, number: int, shard: int) -> str:
        """Shard `shard` of bucket `number` of width `width_ms`."""
        return f"{self.dedup_prefix}{width_ms}:{number}:{shard}"

    def counter(self, key: str, bucket: int) -> str:
        return f"{self.prefix}counter:{bucket}:{key}"

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
    def delivered_prefix(self) -> str:
        return f"{self.prefix}delivered:"

    def delivered(self, destination: str) -> str:
        return f"{self.delivered_prefix}{destination}"

    @property
    def seq(self) -> str:
        return f"{self.prefix}seq"

    def source(self, name: str) -> str:
        return f"{self.prefix}source:{name}"

    @property
    def version(self) -> str:
        return f"{self.prefix}version"

    @property
    def marker(self) -> str:
        return f"{self.prefix}marker"

    @property
    def unrouted(self) -> str:
        return f"{self.prefix}unrouted"

    def unrouted_alert(self, alert_id: str) -> str:
        return f"{self.prefix}unrouted:{alert_id}"

    # --- seen items (`record_items`, `rarewatch backtest`) ---------------------------------------------

    @property
    def seen_items(self) -> str:
        return f"{self.prefix}seen_items"

    def seen_item(self, item_id: str) -> str:
        return f"{self.prefix}seen_item:{item_id}"

    @property
    def silences(self) -> str:
        return f"{self.prefix}silences"

    # --- votes (`record_vote`, `rarewatch feedback export`) --------------------------------------------

    @property
    def votes(self) -> str:
        return f"{self.prefix}votes"

    @property
    def votes_at(self) -> str:
        return f"{self.prefix}votes_at"

    @staticmethod
    def vote_field(alert_id: str, who: str) -> str:
        """The field (and index member) of one voter's vote on one alert."""
        return f"{alert_id}{_SEP}{who}"

    # --- replicas (leases): see `store.leases` ---------------------------------------------------------

    def lease(self, kind: str, name: str) -> str:
        """The lease on one source or destination (`kind`: `source` or `destination`)."""
        return f"{self.prefix}lease:{kind}:{name}"

    def lease_holder(self, kind: str, name: str) -> str:
        """Who held a destination's lease last (a replica's token), kept past the lease itself so that a
        replica taking it over knows it was not free (`store.leases`, takeover grace)."""
        return f"{self.prefix}lease-holder:{kind}:{name}"

    @property
    def replicas(self) -> str:
        return f"{self.prefix}replicas"


# A claim key's value: "=" then the owner, or "1" for no owner (the only value layout v1 wrote, so its
# claims read as ownerless).
_OWNED, _UNOWNED = "=", "1"


def claim_value(owner: str | None) -> str:
    """The value stored under a claim key for `owner`."""
    return _UNOWNED if owner is None else _OWNED + owner


def claim_owner(value: str) -> str | None:
    """The owner a claim key's value names (None: claimed without an alert, or by layout v1)."""
    return value[len(_OWNED) :] if value.startswith(_OWNED) else None


# Lua needs the separator and member layout too; these are passed in as arguments, never spelt in a script.
MEMBER_SEPARATOR = _SEP
MEMBER_SEQ_WIDTH = _SEQ_WIDTH


# --- logical keys -----------------------------------------------------------------------------------------
# The keys the pipeline claims, remembers and counts under, for either backend (the backend adds its own
# physical prefix, e.g. Redis `claim:`/`counter:`). Minted here only: the pipeline, the story index and the
# policies import these functions.

ITEM_PREFIX = "item:"  # a story's stable id: seen once within the dedup window
LINK_PREFIX = "link:"  # a canonical link (hashed): the same article from another source is the same story
SIMILAR_PREFIX = "sim:"  # an LSH band of a title's MinHash signature, owned by the alert it was indexed for
THROTTLE_PREFIX = "throttle:"  # counter: alerts of one rule in its throttle window
UPDATES_PREFIX = "updates:"  # counter: updates of one story within the dedup window
BACKFILL_PREFIX = "backfill:"  # an item marked seen without an alert, alerted by `once --backfill`: once
RESEND_PREFIX = "resend:"  # an unrouted alert sent later (`alerts resend`): claimed once


def item_key(item_id: str) -> str:
    """The claim key of an item's stable id."""
    return f"{ITEM_PREFIX}{item_id}"


def link_key(canonical_link: str) -> str:
    """The claim key of a canonical link (hashed: links can be long and hold any character)."""
    return LINK_PREFIX + hashlib.sha256(canonical_link.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def similar_key(band: int, digest: str) -> str:
    """The near-duplicate index key of one LSH band of a title signature."""
    return f"{SIMILAR_PREFIX}{band}:{digest}"


def throttle_key(rule_id: str) -> str:
    """The counter of one rule's alerts (its `throttle`)."""
    return f"{THROTTLE_PREFIX}{rule_id}"


def updates_key(story: str) -> str:
    """The counter of one story's updates (the per-story update cap)."""
    return f"{UPDATES_PREFIX}{story}"


OPS_PREFIX = "ops:"  # an operational alert (source health): raised once


def ops_key(alert_id: str) -> str:
    """The claim key of one operational alert (a source-health problem or its recovery)."""
    return f"{OPS_PREFIX}{alert_id}"


def resend_key(alert_id: str) -> str:
    """The claim key that lets an unrouted alert be sent later exactly once."""
    return f"{RESEND_PREFIX}{alert_id}"


def backfill_key(item_id: str) -> str:
    """The claim key that lets `once --backfill` alert on an item marked seen without an alert, once."""
    return f"{BACKFILL_PREFIX}{item_id}"
