"""`rarewatch alerts unrouted|resend`: the alerts no route took, and sending one of them later."""

from __future__ import annotations

from typing import TextIO

from rarewatch.models import DeliveryStatus
from rarewatch.runtime import open_runtime
from rarewatch.settings import Settings
from rarewatch.store.keys import resend_key

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


async def list_unrouted(settings: Settings, limit: int, out: TextIO) -> int:
    """Print the unrouted alerts, newest first: id, when, source, categories, title."""
    async with open_runtime(settings, stdout=out) as runtime:
        found = await runtime.store.unrouted(limit)
    for alert in found:
        print(
            f"{alert.id}  {alert.created.isoformat(timespec='seconds')}  {alert.item.source}  "
            f"{','.join(alert.categories)}  {alert.item.title[:100]}",
            file=out,
        )
    print(f"{len(found)} unrouted alerts", file=out)
    return EXIT_OK


async def resend(settings: Settings, alert_id: str, destination: str, out: TextIO, err: TextIO) -> int:
    """Send the unrouted alert `alert_id` to `destination` through the outbox, once.

    The delivery is created by a claim on the alert's resend key, so two resends (even concurrent ones,
    from two processes) create one delivery; the alert then leaves the unrouted list. One delivery pass
    follows; a delivery that fails stays in the outbox, retried by `run` (or `once`) as any other.
    Exit 0 when delivered, 1 when it is queued but not delivered yet or was resent before, 2 for an
    unknown destination or alert.
    """
    async with open_runtime(settings, stdout=out) as runtime:
        store = runtime.store
        if destination not in runtime.notifiers:
            known = ", ".join(sorted(runtime.notifiers)) or "none"
            print(f"rarewatch: no destination named {destination!r} (configured: {known})", file=err)
            return EXIT_USAGE
        alert = await store.get_unrouted(alert_id)
        if alert is None:
            if await store.get_delivery(alert_id, destination) is not None:
                print(f"rarewatch: alert {alert_id} was already sent to {destination}", file=err)
                return EXIT_FAILED
            print(f"rarewatch: no unrouted alert {alert_id!r} (see `rarewatch alerts unrouted`)", file=err)
            return EXIT_USAGE
        now = runtime.clock.now()
        claimed = await store.claim([resend_key(alert_id)], settings.dedup_window, now, alert, [destination])
        if not claimed:
            print(f"rarewatch: alert {alert_id} was already resent", file=err)
            return EXIT_FAILED
        await store.drop_unrouted(alert_id)
        await runtime.outbox.flush_destination(destination)
        delivery = await store.get_delivery(alert_id, destination)
    if delivery is not None and delivery.status is DeliveryStatus.DELIVERED:
        print(f"alert {alert_id} delivered to {destination}", file=out)
        return EXIT_OK
    status = delivery.status.value if delivery is not None else "missing"
    error = f": {delivery.last_error}" if delivery is not None and delivery.last_error else ""
    print(f"alert {alert_id} queued for {destination}, not delivered yet ({status}{error})", file=out)
    return EXIT_FAILED
