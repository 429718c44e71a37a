"""The `Notifier` protocol: one small interface that every destination kind implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from rarewatch.models import Alert


class Notifier(Protocol):
    """Sends one alert to one destination.

    `send` returns on success and raises `DeliveryError(retryable=...)` on failure. It never retries and
    never records anything: the outbox decides what happens next.
    """

    name: str

    async def send(self, alert: Alert) -> None: ...

    async def close(self) -> None: ...


@runtime_checkable
class ThreadingNotifier(Protocol):
    """A notifier that can thread later reports of a story under its first message (Slack's Web API).

    `send_threaded` returns a receipt (e.g. the message `ts`) that the outbox stores with the delivery;
    for an `update` alert it gets the story's first alert and that first message's receipt back.
    """

    name: str

    async def send(self, alert: Alert) -> None: ...

    async def send_threaded(
        self, alert: Alert, *, first: Alert | None = None, reply_to: str | None = None
    ) -> str | None: ...

    async def close(self) -> None: ...


@runtime_checkable
class BatchNotifier(Protocol):
    """A notifier that can send several alerts at once, all or none (the jsonl destination: their lines
    appended with one write and one fsync).

    `send_many` returns when every alert was sent, and raises `DeliveryError` when the batch was not: then
    none of it was (a partial write is undone), and the outbox sends the alerts one at a time instead, so
    a failure is still each delivery's own attempt.
    """

    name: str

    async def send(self, alert: Alert) -> None: ...

    async def send_many(self, alerts: Sequence[Alert]) -> None: ...

    async def close(self) -> None: ...
