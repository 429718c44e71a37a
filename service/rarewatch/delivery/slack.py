"""The Slack destination: post each alert as a Block Kit message (see `slack_blocks`).

Two ways in, exactly one per destination:

- a bot token and a channel: the Web API's `chat.postMessage` (`AsyncWebClient`), link unfurling off;
- an incoming-webhook URL (`AsyncWebhookClient`), which posts to the channel it was created for.

slack-sdk's own retry handlers are switched off (`retry_handlers=[]`): the outbox owns retries, and a
retry hidden inside `send` would hold up deliveries to every other destination. For the same reason a
429 is not slept out here but reported with its Retry-After for the outbox to reschedule.

Slack allows about one message per second per channel, so `send` waits for the rest of `min_interval`
after the previous post to the same channel (time from the injected clock, waiting via the injected
`sleep`).

How failures are classified:

| Outcome                                                         | DeliveryError                    |
|-----------------------------------------------------------------|----------------------------------|
| HTTP 429 or `ratelimited`                                       | retryable, Retry-After seconds   |
| HTTP 5xx, `internal_error`, `fatal_error`, `service_unavailable`, `request_timeout` | retryable |
| timeout, connection error                                       | retryable                        |
| `token_revoked`, `account_inactive`; webhook 410 or `no_service` | not retryable, `disable=True`   |
| any other Slack error (`invalid_auth`, `channel_not_found`, …)  | not retryable                    |
| an answer that is not the Web API's JSON (wrong `api_url`)      | not retryable                    |

Error messages never contain the token or the webhook URL (its path is the credential).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
from pydantic import model_validator

from rarewatch.clock import Clock, SystemClock
from rarewatch.configtypes import EnvSecret
from rarewatch.delivery.base import Notifier
from rarewatch.delivery.config import DestinationConfigBase, NotifierDeps
from rarewatch.delivery.console import terminal_safe
from rarewatch.delivery.slack_blocks import Block, build_followup, build_message
from rarewatch.errors import DeliveryError
from rarewatch.httputil import parse_retry_after
from rarewatch.models import Alert, AlertKind

if TYPE_CHECKING:  # slack-sdk is imported on first use: a run without a Slack destination never loads it
    from slack_sdk.web.async_client import AsyncWebClient
    from slack_sdk.webhook.async_client import AsyncWebhookClient

DEFAULT_API_URL = "https://slack.com/api/"
# The logger handed to slack-sdk's clients. At debug they log every request with its URL (an incoming
# webhook's URL is its secret) and headers (a bot token): capped at INFO, so `log_level: debug` never
# prints them. Their warnings and errors still show.
SDK_LOG = logging.getLogger("rarewatch.delivery.slack.sdk")
SDK_LOG.setLevel(logging.INFO)
BODY_EXCERPT = 200

# Slack-side trouble that may clear up by itself.
RETRYABLE_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
# The token or workspace is gone for good: stop sending rather than dead-letter alert after alert.
DISABLE_ERRORS = frozenset({"token_revoked", "account_inactive"})
WEBHOOK_DISABLE_ERRORS = frozenset({"no_service"})

Sleep = Callable[[float], Awaitable[None]]


class SlackNotifier:
    """Posts alerts to one Slack channel through the Web API or an incoming webhook."""

    def __init__(
        self,
        name: str,
        *,
        channel: str | None = None,
        token: str | None = None,
        webhook_url: str | None = None,
        api_url: str | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Clock | None = None,
        min_interval: float = 1.0,
        sleep: Sleep = asyncio.sleep,
        timeout: float = 10.0,
        feedback_buttons: bool = False,
    ) -> None:
        """Raises ValueError unless given exactly one of (token and channel) or webhook_url. With
        `feedback_buttons`, each new alert's message ends with the "Relevant" / "Not relevant" buttons."""
        _check_credentials(channel, token, webhook_url)
        self.name = name
        self._channel = channel
        self._token = token
        self._webhook_url = webhook_url
        self._api_url = api_url or DEFAULT_API_URL
        self._session = session
        self._own_session: aiohttp.ClientSession | None = None
        self._clock: Clock = clock or SystemClock()
        self._min_interval = timedelta(seconds=min_interval)
        self._sleep = sleep
        self._timeout = timeout
        self._feedback = feedback_buttons
        self._last_post: dict[str, datetime] = {}
        self._web: AsyncWebClient | None = None
        self._hook: AsyncWebhookClient | None = None

    @property
    def _target(self) -> str:
        """What error messages call the destination: the channel, never the webhook URL."""
        return f"Slack channel {self._channel}" if self._channel else "Slack incoming webhook"

    async def send(self, alert: Alert) -> None:
        """Post `alert` once; return on success, else raise a classified DeliveryError."""
        await self.send_threaded(alert)

    async def send_threaded(
        self, alert: Alert, *, first: Alert | None = None, reply_to: str | None = None
    ) -> str | None:
        """Post `alert`; an `update` becomes a short "also reported by" reply in the first message's
        thread (Web API, `reply_to` = its ts) or, through an incoming webhook (no threads), a separate
        message linking the first report. Returns the posted message's ts (None for webhooks)."""
        if alert.kind is AlertKind.UPDATE:
            text, blocks = build_followup(alert, first.item.link if first else None)
        else:
            # A digest is no stored alert: nothing a vote could be recorded with.
            feedback = self._feedback and alert.kind is AlertKind.ALERT
            text, blocks = build_message(alert, feedback=feedback)
        # An incoming webhook always posts to the one channel it was created for.
        await self._wait_turn(self._channel or "webhook")
        try:
            async with asyncio.timeout(self._timeout):
                return await self._post(text, blocks, reply_to)
        # TimeoutError first: aiohttp's ServerTimeoutError is also a ClientError.
        except TimeoutError as exc:
            raise self._failure(f"timed out after {self._timeout:g}s") from exc
        except aiohttp.InvalidURL as exc:
            raise DeliveryError(f"{self._target}: invalid URL", retryable=False) from exc
        except aiohttp.ClientConnectorError as exc:
            raise self._failure(_connect_reason(exc)) from exc
        except aiohttp.ClientError as exc:
            # Only the type: some aiohttp errors quote the request URL, i.e. the webhook credential.
            raise self._failure(type(exc).__name__) from exc

    async def close(self) -> None:
        """Close the HTTP session this notifier created; a session passed in belongs to the caller."""
        if self._own_session is not None:
            await self._own_session.close()
            self._own_session = None
        self._web = self._hook = None

    async def _wait_turn(self, channel: str) -> None:
        """Wait until `min_interval` has passed since the last post to `channel`, and book this one."""
        now = self._clock.now()
        last = self._last_post.get(channel)
        slot = now if last is None else max(now, last + self._min_interval)
        # Book the slot before waiting, so that concurrent sends queue up behind each other.
        self._last_post[channel] = slot
        wait = (slot - now).total_seconds()
        if wait > 0:
            await self._sleep(wait)

    async def _post(self, text: str, blocks: list[Block], thread_ts: str | None) -> str | None:
        if self._webhook_url is not None:
            await self._post_webhook(text, blocks)
            return None
        return await self._post_api(text, blocks, thread_ts)

    async def _post_api(self, text: str, blocks: list[Block], thread_ts: str | None) -> str | None:
        assert self._channel is not None  # checked in __init__
        from slack_sdk.errors import SlackApiError, SlackRequestError

        try:
            resp = await self._web_client().chat_postMessage(
                channel=self._channel,
                text=text,
                blocks=blocks,
                unfurl_links=False,
                unfurl_media=False,
                thread_ts=thread_ts,
            )
        except SlackApiError as exc:
            raise self._api_error(exc.response) from exc
        except SlackRequestError as exc:  # the SDK refused to build the request: retrying cannot help
            raise DeliveryError(f"{self._target}: {exc}", retryable=False) from exc
        except AttributeError as exc:
            # slack-sdk 3.48 crashes this way validating a 200 text/plain answer: api_url is not Slack's.
            message = f"{self._target}: chat.postMessage: not a Slack Web API response (check api_url)"
            raise DeliveryError(message, retryable=False) from exc
        ts = resp.get("ts")
        return ts if isinstance(ts, str) else None

    async def _post_webhook(self, text: str, blocks: list[Block]) -> None:
        resp = await self._webhook_client().send(
            text=text, blocks=blocks, unfurl_links=False, unfurl_media=False
        )
        if 200 <= resp.status_code < 300:
            return
        raise self._webhook_error(resp.status_code, resp.body, resp.headers)

    def _api_error(self, response: Any) -> DeliveryError:
        """Classify a failed Web API call; `response` is usually an AsyncSlackResponse."""
        status = _status_of(response)
        data = getattr(response, "data", None)
        error = data.get("error") if isinstance(data, dict) else None
        message = f"{self._target}: chat.postMessage failed: {_describe(status, error)}"
        if status == 429 or error == "ratelimited":
            return self._rate_limited(message, getattr(response, "headers", {}))
        if error in DISABLE_ERRORS:
            return DeliveryError(message, retryable=False, disable=True)
        return DeliveryError(message, retryable=status >= 500 or error in RETRYABLE_ERRORS)

    def _webhook_error(self, status: int, body: str, headers: Mapping[str, Any]) -> DeliveryError:
        """Classify a failed incoming-webhook post; Slack answers with a short plain-text error code."""
        code = terminal_safe(body or "")[:BODY_EXCERPT]
        message = f"{self._target}: {_describe(status, code)}"
        if status == 429:
            return self._rate_limited(message, headers)
        if status == 410 or code in WEBHOOK_DISABLE_ERRORS:
            return DeliveryError(message, retryable=False, disable=True)
        return DeliveryError(message, retryable=status >= 500)

    def _rate_limited(self, message: str, headers: Mapping[str, Any]) -> DeliveryError:
        retry_after = parse_retry_after(headers.get("Retry-After"), self._clock.now())
        return DeliveryError(message, retryable=True, retry_after=retry_after)

    def _failure(self, reason: str) -> DeliveryError:
        return DeliveryError(f"{self._target}: {reason}", retryable=True)

    def _http_session(self) -> aiohttp.ClientSession:
        """The caller's session, or one of our own, created on first use (it needs a running loop)."""
        if self._session is not None:
            return self._session
        if self._own_session is None or self._own_session.closed:
            self._own_session = aiohttp.ClientSession()
        return self._own_session

    def _web_client(self) -> AsyncWebClient:
        if self._web is None:
            from slack_sdk.web.async_client import AsyncWebClient

            self._web = AsyncWebClient(
                token=self._token,
                base_url=self._api_url,
                session=self._http_session(),
                retry_handlers=[],  # the outbox owns retries
                logger=SDK_LOG,
            )
        return self._web

    def _webhook_client(self) -> AsyncWebhookClient:
        if self._hook is None:
            assert self._webhook_url is not None  # checked in __init__
            from slack_sdk.webhook.async_client import AsyncWebhookClient

            self._hook = AsyncWebhookClient(
                self._webhook_url, session=self._http_session(), retry_handlers=[], logger=SDK_LOG
            )
        return self._hook


def _check_credentials(channel: str | None, token: str | None, webhook_url: str | None) -> None:
    if webhook_url and (token or channel):
        raise ValueError("a slack destination takes token and channel, or webhook_url, not both")
    if not webhook_url and not (token and channel):
        raise ValueError("a slack destination needs either token and channel, or webhook_url")


def _status_of(response: Any) -> int:
    # On an unreadable body slack-sdk attaches the raw aiohttp response (`.status`), not its own.
    status = getattr(response, "status_code", None) or getattr(response, "status", None)
    return status if isinstance(status, int) else 0


def _describe(status: int, error: str | None) -> str:
    return f"{error} (HTTP {status})" if error else f"HTTP {status}"


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    if isinstance(exc.os_error, ConnectionRefusedError):
        return "connection refused"
    return f"cannot connect: {exc.os_error.strerror or type(exc.os_error).__name__}"


class SlackDestination(DestinationConfigBase):
    """A Slack channel: a bot token and a channel (Web API, threads possible) or an incoming webhook URL."""

    type: Literal["slack"]
    channel: str | None = None
    token: EnvSecret | None = None  # xoxb-...; "${SLACK_BOT_TOKEN}" reads the environment
    webhook_url: EnvSecret | None = None
    api_url: str | None = None  # non-default Slack API hosts (GovSlack, test servers)
    # The "Relevant" / "Not relevant" buttons under each new alert. A click goes to the Slack app's
    # interactivity URL, which `rarewatch run` serves at /slack/interactions once `slack.signing_secret`
    # is set; set false for a workspace whose app has no interactivity URL.
    feedback_buttons: bool = True

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackDestination:
        if self.webhook_url is None and (self.token is None or not self.channel):
            raise ValueError("a slack destination needs either token and channel, or webhook_url")
        if self.webhook_url is not None and self.token is not None:
            raise ValueError("a slack destination takes token and channel, or webhook_url, not both")
        return self


def build(config: SlackDestination, deps: NotifierDeps) -> Notifier:
    """The `SlackNotifier` of a configured `slack` destination."""
    return SlackNotifier(
        config.name,
        channel=config.channel,
        token=config.token.get_secret_value() if config.token else None,
        webhook_url=config.webhook_url.get_secret_value() if config.webhook_url else None,
        api_url=config.api_url,
        session=deps.session,
        clock=deps.clock,
        feedback_buttons=config.feedback_buttons,
    )
