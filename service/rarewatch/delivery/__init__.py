"""Delivery: the `Notifier` protocol, one notifier per destination kind, the payload and the outbox.

Each destination kind's module owns its config model and `build(config, deps)`; `registry` maps the `type`
key to the kind.
"""

from rarewatch.delivery.base import Notifier
from rarewatch.delivery.console import ConsoleNotifier
from rarewatch.delivery.jsonl import JsonlNotifier
from rarewatch.delivery.outbox import FlushReport, Outbox
from rarewatch.delivery.payload import alert_payload, test_alert
from rarewatch.delivery.webhook import WebhookNotifier

__all__ = [
    "ConsoleNotifier",
    "FlushReport",
    "JsonlNotifier",
    "Notifier",
    "Outbox",
    "WebhookNotifier",
    "alert_payload",
    "test_alert",
]
