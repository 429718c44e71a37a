"""The pipeline's policies: small pure units that each take plain facts and return a decision.

`Pipeline` gathers the facts (store look-ups, counters) and carries out the decisions; the policies own
the rules of the decision and are tested on their own, with injected clocks and random sources:

- `backoff.next_source_state`: a source's state after a poll (backoff with jitter, Retry-After).
- `admission.admit`: a matching item becomes a new story, an update, a recorded-only alert or nothing;
  `admission.known_story`: which known story it reports again (same canonical link or near-duplicate).
- `throttle.unthrottled`: the matches whose rule is within its `throttle`.
- `updates.over_update_cap`: whether a story has had its share of updates.
- `digest.delivery_plan`: which destinations get an alert now and which hold it for a digest.
- `retention.forget_before`: which finished outbox records (delivered, dead) the store forgets.
"""
