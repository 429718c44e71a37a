"""The `Notifier` protocol: one small interface that every destination kind implements."""

from __future__ import annotations

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
