"""Delivery: the `Notifier` protocol, one notifier per destination kind, the payload and the outbox."""

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
