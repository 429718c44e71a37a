"""The Apprise destination: one alert to any of the 100+ services Apprise speaks (email, Telegram,
Discord, Matrix, ntfy, Pushover, ...), each given as an Apprise URL such as `tgram://bot/chat`.

Apprise does the I/O in its own worker threads (its plugins use `requests`), so `send` awaits
`Apprise.async_notify` without blocking the event loop; `timeout` bounds the whole call.

What Apprise hides. Apprise reports per service only success, failure or timeout: not the HTTP status,
not a Retry-After. A permanent mistake (a revoked token, a wrong chat id) therefore looks exactly like
an outage, so every failure is reported as retryable; such alerts are dead-lettered only when they pass
the outbox's `max_age`. The logs of Apprise itself (logger `apprise`, secrets masked) say more.

Several URLs in one destination are notified together, and a retry notifies all of them again: a
service that had succeeded gets the alert twice. Where that matters, give each URL its own destination.

The body is short and readable: title, link, severity, categories, source and publisher, the
materials and countries the rule pack recognised, matched terms, the
English gloss of a Chinese item and the snippet. Feed text is untrusted: it is put on one line
(controls removed) and escaped for the chosen `body_format`, so that a headline cannot add Markdown
links or formatting, or raw HTML (which Apprise's Markdown-to-HTML conversion for email would
otherwise pass through).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, urlsplit

from pydantic import Field

from rarewatch.configtypes import EnvSecret, PositiveDuration
from rarewatch.delivery.base import Notifier
from rarewatch.delivery.config import DestinationConfigBase, NotifierDeps
from rarewatch.delivery.console import terminal_safe
from rarewatch.delivery.payload import truncate
from rarewatch.delivery.presentation import present
from rarewatch.errors import ConfigError, DeliveryError
from rarewatch.models import Alert, Severity

if TYPE_CHECKING:
    import apprise

    from rarewatch.delivery.template import PayloadTemplate

# Apprise takes about 0.3 s to import: it is imported where it is used, so only configurations with an
# apprise destination pay for it (this module is imported with the settings, for its config model).

BodyFormat = Literal["markdown", "text", "html"]

TITLE_MAX = 250
SNIPPET_MAX = 500
DEFAULT_TIMEOUT = 30.0


def _notify_type(severity: Severity) -> apprise.NotifyType:
    import apprise

    types = {
        Severity.CRITICAL: apprise.NotifyType.FAILURE,  # most services show it red
        Severity.HIGH: apprise.NotifyType.WARNING,
        Severity.MEDIUM: apprise.NotifyType.WARNING,
        Severity.LOW: apprise.NotifyType.INFO,
        Severity.INFO: apprise.NotifyType.INFO,
    }
    return types[severity]


# Every ASCII punctuation character Markdown may read as syntax; a backslash makes each literal.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")
# Kept literally in URLs (RFC 3986 reserved and unreserved, and "%"): no spaces, quotes, "<" or ">".
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~-._"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,31})://")


class AppriseNotifier:
    """Notifies every configured Apprise URL of each alert. See the module docstring."""

    def __init__(
        self,
        name: str,
        urls: Sequence[str],
        *,
        title_template: str | None = None,
        body_format: BodyFormat = "markdown",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        """Raises ValueError for an empty list, a URL Apprise cannot use (naming only its scheme: the
        rest of an Apprise URL usually holds a token), an unknown format, or a bad title template."""
        if not urls:
            raise ValueError("an apprise destination needs at least one URL")
        if body_format not in _ESCAPES:
            raise ValueError(f"body_format must be markdown, text or html, not {body_format!r}")
        self.name = name
        self._format = body_format
        self._timeout = timeout
        import apprise

        asset = apprise.AppriseAsset(app_id="rarewatch", app_desc="rarewatch alerts", secure_logging=True)
        self._apprise = apprise.Apprise(asset=asset)
        for index, url in enumerate(urls, start=1):
            self._add(index, url, asset)
        self._title = _title_template(name, title_template)

    def _add(self, index: int, url: str, asset: apprise.AppriseAsset) -> None:
        # `instantiate` takes exactly one URL (`add` would split a string at commas and spaces).
        import apprise

        with _apprise_logs_muted():
            service = apprise.Apprise.instantiate(url, asset=asset)
        if service is None:
            raise ValueError(
                f"apprise URL #{index} ({_scheme_of(url)}) is not one Apprise can use: an unknown service, "
                "or parts missing or malformed (`apprise --dry-run URL` says more)"
            )
        self._apprise.add(service)

    async def send(self, alert: Alert) -> None:
        """Notify every URL once; raise a retryable DeliveryError unless all of them succeeded."""
        result = await self._apprise.async_notify(
            body=format_body(alert, self._format),
            title=self._title_of(alert),
            body_format=self._format,
            notify_type=_notify_type(alert.severity),
            timeout=self._timeout,
        )
        if not result:
            raise DeliveryError(f"apprise: one or more services failed ({_failures(result)})", retryable=True)

    async def close(self) -> None:
        """Nothing to release: Apprise opens a connection per notification."""

    def _title_of(self, alert: Alert) -> str:
        if self._title is not None:
            return truncate(terminal_safe(self._title.render_text(alert)), TITLE_MAX)
        return truncate(f"[{alert.severity.name}] {terminal_safe(alert.item.title)}", TITLE_MAX)


def format_body(alert: Alert, body_format: BodyFormat) -> str:
    """The readable body of `alert`, every piece of feed text escaped for `body_format`."""
    esc, item, view = _ESCAPES[body_format], alert.item, present(alert)
    lines = [
        _BOLD[body_format](esc(item.title) or "(untitled)"),
        _LINKS[body_format](item.link),
        f"Severity: {alert.severity.label} · Categories: {esc(', '.join(alert.categories))}",
        f"Source: {esc(item.source)}" + (f" · Publisher: {esc(item.publisher)}" if item.publisher else ""),
    ]
    evidence = (("Materials", view.materials), ("Countries", view.countries))
    shown = [f"{name}: {esc(', '.join(values))}" for name, values in evidence if values]
    if shown:
        lines.append(" · ".join(shown))
    if view.terms:
        lines.append(f"Terms: {esc(', '.join(view.terms))}")
    if view.gloss:
        lines.append(f"English gloss: {esc(view.gloss)}")
    snippet = view.snippet
    if snippet:
        lines.append(_QUOTE[body_format](esc(truncate(snippet, SNIPPET_MAX))))
    separator = "<br>\n" if body_format == "html" else "\n"
    return separator.join(lines)


def escape_markdown(text: str) -> str:
    """`text` on one line, shown literally by Markdown renderers (and inert if converted to HTML)."""
    # "<" as an entity: Markdown passes raw HTML through, and a backslash does not stop that.
    return _MARKDOWN_SPECIAL.sub(r"\\\1", terminal_safe(text)).replace("<", "&lt;")


def _escape_html(text: str) -> str:
    return html.escape(terminal_safe(text))


def _web_url(url: str) -> str | None:
    """`url` percent-encoded so it cannot end a Markdown or HTML link early; None unless http(s)."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return quote(url.strip(), safe=_URL_SAFE) if scheme in ("http", "https") else None


def _markdown_link(url: str) -> str:
    target = _web_url(url)
    # Parentheses are encoded too, so the autolink cannot be ended by the URL itself.
    return f"<{target.replace('(', '%28').replace(')', '%29')}>" if target else escape_markdown(url)


def _html_link(url: str) -> str:
    target = _web_url(url)
    return f'<a href="{html.escape(target)}">{html.escape(target)}</a>' if target else _escape_html(url)


def _failures(result: apprise.AppriseResult) -> str:
    """Which services failed and how ("Discord: failure"): names only, never URLs or log text."""
    failed = [f"{r.name}: {r.status.name.lower()}" for r in result if not r]
    return ", ".join(failed) or result.status.name.lower()


@contextmanager
def _apprise_logs_muted() -> Iterator[None]:
    """Drop Apprise's log records for a moment: it quotes a URL it cannot parse whole, secrets and all."""
    import apprise

    logger = logging.getLogger(apprise.LOGGER_NAME)
    logger.addFilter(_drop_record)
    try:
        yield
    finally:
        logger.removeFilter(_drop_record)


def _drop_record(record: logging.LogRecord) -> bool:
    return False


def _scheme_of(url: str) -> str:
    match = _SCHEME.match(url.strip())
    return f"scheme {match.group(1).lower()}://" if match else "no scheme"


_ESCAPES: dict[str, Callable[[str], str]] = {
    "markdown": escape_markdown,
    "text": terminal_safe,
    "html": _escape_html,
}
_BOLD: dict[str, Callable[[str], str]] = {
    "markdown": lambda s: f"**{s}**",
    "text": lambda s: s,
    "html": lambda s: f"<b>{s}</b>",
}
_LINKS: dict[str, Callable[[str], str]] = {
    "markdown": _markdown_link,
    "text": terminal_safe,
    "html": _html_link,
}
_QUOTE: dict[str, Callable[[str], str]] = {
    "markdown": lambda s: f"\n> {s}",  # a blank line first: a quote cannot start inside a paragraph
    "text": lambda s: f"“{s}”",
    "html": lambda s: f"<i>“{s}”</i>",
}


class AppriseDestination(DestinationConfigBase):
    """Any service Apprise speaks (email, Teams, PagerDuty, Telegram, ntfy, Matrix...), by Apprise URL."""

    type: Literal["apprise"]
    # Apprise URLs usually hold a token: "${TELEGRAM_URL}" reads one from the environment.
    urls: list[EnvSecret] = Field(min_length=1)
    title_template: str | None = None  # Jinja2, same context as payload templates
    body_format: BodyFormat = "markdown"
    timeout: PositiveDuration = timedelta(seconds=30)


def build(config: AppriseDestination, deps: NotifierDeps) -> Notifier:
    """The `AppriseNotifier` of a configured `apprise` destination; its ValueError names the destination."""
    try:
        return AppriseNotifier(
            config.name,
            [url.get_secret_value() for url in config.urls],
            title_template=config.title_template,
            body_format=config.body_format,
            timeout=config.timeout.total_seconds(),
        )
    except ValueError as exc:
        raise ConfigError(f"destination {config.name}: {exc}") from None


def _title_template(name: str, source: str | None) -> PayloadTemplate | None:
    """The compiled title template, if any (Jinja2 imported here: only a configuration with a template pays
    for it at start-up)."""
    if not source:
        return None
    from rarewatch.delivery.template import PayloadTemplate

    return PayloadTemplate(source, name=f"{name} title", json=False)
