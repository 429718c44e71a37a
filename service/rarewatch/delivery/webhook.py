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
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict

from rarewatch import __version__
from rarewatch.clock import Clock, SystemClock
from rarewatch.delivery.console import terminal_safe
from rarewatch.delivery.payload import alert_payload
from rarewatch.delivery.signing import secret_key, sign
from rarewatch.errors import DeliveryError
from rarewatch.httputil import parse_retry_after
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
        self._origin = _origin(url)
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
            raise self._failure(f"{type(exc).__name__}: {terminal_safe(str(exc))}") from exc
        except ValueError as exc:
            # aiohttp refuses the request itself (e.g. user:password@ in the URL plus an Authorization
            # header): no retry can succeed, so the delivery is dead-lettered with the reason.
            reason = terminal_safe(str(exc))
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
            location = _without_query(resp.headers.get("Location", "(no Location header)"))
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


def _origin(url: str) -> str:
    parts = urlsplit(url)
    # Drop any user:password@ as well as the path and query.
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def _without_query(url: str) -> str:
    parts = urlsplit(url)
    return terminal_safe(parts._replace(query="", fragment="").geturl())[:BODY_EXCERPT]
