"""The console destination: one readable line per alert, plus an indented snippet line.

    [HIGH] export-licensing  China adds magnets to licence list  (source: mofcom) https://…  rules: a, b
        materials: ndfeb magnets; countries: china; terms: licence list, magnet; matched in: title
        …the Ministry of Commerce announced that rare-earth permanent magnets…

Feed text is untrusted: control characters (ESC sequences could recolour or rewrite the terminal) and
bidirectional-override characters are removed, and line breaks become spaces so that one alert is
always exactly two lines.
"""

from __future__ import annotations

import re
import sys
from typing import TextIO

from rarewatch.delivery.payload import truncate
from rarewatch.errors import DeliveryError
from rarewatch.models import Alert, AlertKind

SNIPPET_MAX = 300

# C0 and C1 controls (incl. ESC, DEL), Unicode line/paragraph separators, and the bidi embedding,
# override and isolate characters used in "Trojan Source"-style spoofing.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")


def terminal_safe(text: str) -> str:
    """`text` on one line with control and bidi-override characters removed, whitespace collapsed."""
    # Whitespace controls (tab, newline) become spaces first, so that words do not run together.
    return _SPACES.sub(" ", _UNSAFE.sub(" ", text)).strip()


def format_alert(alert: Alert) -> str:
    """The two lines (with a trailing newline) the console destination prints for `alert`."""
    item, safe = alert.item, terminal_safe
    categories = safe(", ".join(alert.categories))
    rules = safe(", ".join(sorted({m.rule for m in alert.matches})))
    label = "UPDATE " if alert.kind is AlertKind.UPDATE else ""
    # Each part is cleaned on its own so that the double spaces between parts survive.
    lines = [
        f"[{alert.severity.name}] {label}{categories}  {safe(item.title)}  "
        f"(source: {safe(item.source)}) {safe(item.link)}  rules: {rules}"
    ]
    evidence = _evidence(alert)
    if evidence:
        lines.append("    " + safe(evidence))
    snippet = _best_snippet(alert)
    if snippet:
        lines.append("    " + truncate(snippet, SNIPPET_MAX))
    if alert.kind is AlertKind.DIGEST:
        lines.extend("    - " + safe(child.item.title) for child in alert.children)
    return "\n".join(lines) + "\n"


def _evidence(alert: Alert) -> str:
    parts = []
    if alert.materials:
        parts.append("materials: " + ", ".join(alert.materials))
    if alert.countries:
        parts.append("countries: " + ", ".join(alert.countries))
    terms = list(dict.fromkeys(t for m in alert.matches for t in m.terms))
    if terms:
        parts.append("terms: " + ", ".join(terms))
    if alert.matched_in:
        parts.append("matched in: " + alert.matched_in)
    return "; ".join(parts)


def _best_snippet(alert: Alert) -> str:
    """The snippet of the most severe match that has one."""
    for match in sorted(alert.matches, key=lambda m: m.severity, reverse=True):
        snippet = terminal_safe(match.snippet)
        if snippet:
            return snippet
    return ""


class ConsoleNotifier:
    """Prints alerts to a text stream (standard output by default)."""

    def __init__(self, name: str, stream: TextIO | None = None) -> None:
        self.name = name
        # None means "sys.stdout at the time of writing", so redirections made later are honoured.
        self._stream = stream

    async def send(self, alert: Alert) -> None:
        """Write the alert's lines and flush. A write error (e.g. a closed pipe) is retryable."""
        stream = self._stream if self._stream is not None else sys.stdout
        text = _encodable(format_alert(alert), stream)
        try:
            stream.write(text)
            stream.flush()
        except OSError as exc:
            raise DeliveryError(
                f"cannot write to the console: {exc.strerror or exc}", retryable=True
            ) from exc

    async def close(self) -> None:
        """Nothing to release: the stream belongs to the caller."""


def _encodable(text: str, stream: TextIO) -> str:
    # A terminal in a non-UTF-8 locale cannot show CJK headlines: replace what it cannot encode rather
    # than failing the delivery with UnicodeEncodeError.
    encoding = getattr(stream, "encoding", None) or "utf-8"
    return text.encode(encoding, "replace").decode(encoding)
