"""The webhook destination: POST the alert payload as signed JSON (Standard Webhooks).

The body is the v1 JSON payload (`payload.alert_payload`) unless a `body` renderer is given, e.g. a
`template.PayloadTemplate` for a ticketing system; the signature always covers the bytes actually sent.

Headers: `Content-Type` (`application/json` unless configured), `webhook-id` (the alert id: the same
for every retry and every destination, so receivers can deduplicate), `webhook-timestamp` (unix
seconds) and, when secrets are configured, `webhook-signature` (see `signing`). Configured extra
headers are added verbatim but cannot replace those four.

Redirects are not followed: a signed POST silently turning into a GET elsewhere is never what the
operator meant, so a 3xx is reported (with its Location) for the operator to fix the URL.

How responses and errors are classified (the outbox decides what happens next):

| Outcome                              | DeliveryError                                        |
|--------------------------------------|------------------------------------------------------|
| 2xx                                  | none: delivered                                      |
| 3xx                                  | not retryable ("redirect to … not followed")         |
| 410 Gone                             | not retryable, `disable=True`                        |
| 429, 502, 503, 504                   | retryable, `retry_after` from Retry-After            |
| other 5xx                            | retryable                                            |
| other 4xx                            | not retryable; the message quotes the body (200 ch.) |
| timeout, connection error            | retryable                                            |

Error messages name only the URL's origin (scheme, host, port): webhook URLs often carry a token in
their path (Slack, Discord), and errors end up in logs and the status API.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

import aiohttp
from multidict import CIMultiDict
from pydantic import AfterValidator, BeforeValidator, Field, SecretStr, model_validator

from rarewatch import __version__
from rarewatch.clock import Clock, SystemClock
from rarewatch.configtypes import EnvStr, PositiveDuration, from_env, http_url
from rarewatch.delivery.base import Notifier
from rarewatch.delivery.config import HttpDestinationConfig, NotifierDeps
from rarewatch.delivery.console import terminal_safe
from rarewatch.delivery.payload import alert_payload
from rarewatch.delivery.signing import secret_key, sign
from rarewatch.errors import ConfigError, DeliveryError
from rarewatch.httputil import parse_retry_after, redact_url, scrub
from rarewatch.models import Alert

BODY_EXCERPT = 200
_RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})


class WebhookNotifier:
    """POSTs signed alert payloads to one URL through the application's shared ClientSession."""

    def __init__(
        self,
        name: str,
        url: str,
        session: aiohttp.ClientSession,
        *,
        secrets: Sequence[str] = (),
        headers: Mapping[str, str] | None = None,
        timeout: float = 10,
        clock: Clock | None = None,
        body: Callable[[Alert], bytes] | None = None,
        content_type: str = "application/json",
    ) -> None:
        """Raises ValueError for a malformed `whsec_` secret, so configuration mistakes show at start-up.

        `body` renders the request body of an alert (default: the v1 JSON payload); it may raise a
        DeliveryError of its own (a template that cannot render), which `send` passes on unchanged.
        """
        self.name = name
        self.url = url
        self._session = session
        self._keys = tuple(secret_key(s) for s in secrets)
        self._extra_headers = dict(headers or {})
        self._timeout = timeout
        self._clock: Clock = clock or SystemClock()
        self._origin = redact_url(url, keep_path=False)  # a webhook's path is often its secret
        self._body = body or _v1_json
        self._content_type = content_type

    async def send(self, alert: Alert) -> None:
        """POST the alert once; return on 2xx, else raise a classified DeliveryError."""
        body = self._body(alert)
        try:
            async with self._session.post(
                self.url,
                data=body,
                headers=self._headers(alert.id, body),
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            ) as resp:
                await self._check(resp)
        # TimeoutError first: aiohttp's ServerTimeoutError is also a ClientConnectionError.
        except TimeoutError as exc:
            raise self._failure(f"timed out after {self._timeout:g}s") from exc
        except aiohttp.ClientConnectorError as exc:
            raise self._failure(_connect_reason(exc)) from exc
        except aiohttp.ServerDisconnectedError as exc:
            raise self._failure("the server closed the connection without a response") from exc
        except aiohttp.InvalidURL as exc:
            raise DeliveryError(f"invalid webhook URL for {self._origin}", retryable=False) from exc
        except aiohttp.ClientError as exc:
            reason = terminal_safe(scrub(str(exc), self.url, keep_path=False))
            raise self._failure(f"{type(exc).__name__}: {reason}") from exc
        except ValueError as exc:
            # aiohttp refuses the request itself (e.g. user:password@ in the URL plus an Authorization
            # header): no retry can succeed, so the delivery is dead-lettered with the reason.
            reason = terminal_safe(scrub(str(exc), self.url, keep_path=False))
            raise DeliveryError(f"POST {self._origin}: request refused: {reason}", retryable=False) from exc

    async def close(self) -> None:
        """Nothing to release: the ClientSession belongs to the application."""

    def _headers(self, msg_id: str, body: bytes) -> CIMultiDict[str]:
        timestamp = int(self._clock.now().timestamp())
        headers: CIMultiDict[str] = CIMultiDict({"User-Agent": f"rarewatch/{__version__}"})
        headers.update(self._extra_headers)
        # Set last so an extra header can never replace what the receiver verifies.
        headers["Content-Type"] = self._content_type
        headers["webhook-id"] = msg_id
        headers["webhook-timestamp"] = str(timestamp)
        if self._keys:
            headers["webhook-signature"] = sign(self._keys, msg_id, timestamp, body)
        return headers

    async def _check(self, resp: aiohttp.ClientResponse) -> None:
        status = resp.status
        if 200 <= status < 300:
            return
        if 300 <= status < 400:
            shown = redact_url(resp.headers.get("Location", "(no Location header)"))
            location = terminal_safe(shown)[:BODY_EXCERPT]
            raise DeliveryError(f"HTTP {status}: redirect to {location} not followed", retryable=False)
        if status == 410:
            raise DeliveryError("HTTP 410 Gone", retryable=False, disable=True)
        message = f"HTTP {status} {resp.reason or ''}".rstrip()
        excerpt = await _body_excerpt(resp)
        if excerpt:
            message += f": {excerpt}"
        if status in _RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"), self._clock.now())
            raise DeliveryError(message, retryable=True, retry_after=retry_after)
        raise DeliveryError(message, retryable=status >= 500)

    def _failure(self, reason: str) -> DeliveryError:
        return DeliveryError(f"POST {self._origin}: {reason}", retryable=True)


def _v1_json(alert: Alert) -> bytes:
    """The default body: the v1 payload as compact UTF-8 JSON."""
    return json.dumps(alert_payload(alert), ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", errors="replace"
    )


async def _body_excerpt(resp: aiohttp.ClientResponse) -> str:
    # Read only a little: an error page can be large, and only its start is worth quoting.
    raw = await resp.content.read(BODY_EXCERPT * 4)
    return terminal_safe(raw.decode("utf-8", "replace"))[:BODY_EXCERPT]


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"cannot resolve host {exc.host}"
    if isinstance(exc.os_error, ConnectionRefusedError):
        return "connection refused"
    return f"cannot connect: {exc.os_error.strerror or exc.os_error}"


def _check_whsec(secret: SecretStr) -> SecretStr:
    """A `whsec_` secret whose key decodes, checked at load so every command reports it the same way."""
    if not secret.get_secret_value().startswith("whsec_"):
        raise ValueError("webhook secret must start with 'whsec_' (Standard Webhooks format)")
    secret_key(secret.get_secret_value())  # ValueError (never the secret itself) when malformed or empty
    return secret


WebhookSecret = Annotated[SecretStr, BeforeValidator(from_env), AfterValidator(_check_whsec)]


class WebhookDestination(HttpDestinationConfig):
    """POST signed JSON (Standard Webhooks) to a URL."""

    type: Literal["webhook"]
    # Some webhook URLs are credentials (a Teams workflow URL carries a signature): "${TEAMS_URL}".
    url: Annotated[EnvStr, AfterValidator(http_url)]
    secret: WebhookSecret | None = None  # "${TICKETS_SECRET}" keeps the secret out of the file
    # Rotation without downtime: sign with every listed secret (Standard Webhooks allows several).
    secrets: list[WebhookSecret] = Field(default_factory=list)
    timeout: PositiveDuration = timedelta(seconds=10)
    # A Jinja2 template renders the body instead of the v1 payload (rarewatch.delivery.template);
    # examples for Jira, ServiceNow and Teams are in deploy/templates/. Relative to the config file.
    template: Path | None = None
    template_vars: dict[str, str] = Field(default_factory=dict)  # the template's `params`
    template_json: bool | None = None  # check the output is JSON; default: the file ends in .json.j2
    content_type: str = "application/json"

    @model_validator(mode="after")
    def _template_options_need_a_template(self) -> WebhookDestination:
        if self.template is None and (self.template_vars or self.template_json is not None):
            raise ValueError("template_vars and template_json need a template")
        return self

    def signing_secrets(self) -> list[str]:
        """Every secret to sign with: `secret` first, then `secrets` (duplicates dropped)."""
        values = ([self.secret] if self.secret else []) + self.secrets
        return list(dict.fromkeys(s.get_secret_value() for s in values))


def build(config: WebhookDestination, deps: NotifierDeps) -> Notifier:
    """The `WebhookNotifier` of a configured `webhook` destination."""
    return WebhookNotifier(
        config.name,
        config.url,
        deps.session,
        secrets=config.signing_secrets(),
        headers=config.resolved_headers(),
        timeout=config.timeout.total_seconds(),
        clock=deps.clock,
        body=_template_body(config, deps),
        content_type=config.content_type,
    )


def _template_body(config: WebhookDestination, deps: NotifierDeps) -> Callable[[Alert], bytes] | None:
    """The template renderer of a templated webhook (None: the v1 payload); errors name the destination."""
    if config.template is None:
        return None
    # Jinja2 is imported here: only a configuration with a templated webhook pays for it at start-up.
    from rarewatch.delivery.template import PayloadTemplate

    path = deps.resolve_path(config.template)
    try:
        template = PayloadTemplate.from_file(path, json=config.template_json, params=config.template_vars)
    except ValueError as exc:
        raise ConfigError(f"destination {config.name}: {exc}") from None
    return template.render
