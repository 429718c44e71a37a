"""The `Notifier` protocol: one small interface that every destination kind implements."""

from __future__ import annotations

from typing import Protocol

from rarewatch.models import Alert


class Notifier(Protocol):
    """Sends one alert to one destination.

    `send` returns on success and raises `DeliveryError(retryable=...)` on failure. It never retries and
    never records anything: the outbox decides what happens next.
    """

    name: str

    async def send(self, alert: Alert) -> None: ...

    async def close(self) -> None: ...
