"""The console destination: one readable line per alert, plus indented evidence and snippet lines.

    [HIGH] export-licensing  China adds magnets to licence list  (source: mofcom) https://…  rules: a, b
        publisher: Metals Daily; materials: ndfeb magnets; countries: china; terms: permanent magnet, …
        …the Ministry of Commerce announced that rare-earth permanent magnets…

A Chinese item gets one more line after the first, its English gloss:

        gloss: Export licensing (China): export control; gallium — matched: 出口管制 → export control

Feed text is untrusted: control characters (ESC sequences could recolour or rewrite the terminal) and
bidirectional-override characters are removed, and line breaks become spaces so that feed text
never adds a line.
"""

from __future__ import annotations

import re
import sys
from typing import Literal, TextIO

from rarewatch.delivery.base import Notifier
from rarewatch.delivery.config import DestinationConfigBase, NotifierDeps
from rarewatch.delivery.payload import truncate
from rarewatch.delivery.presentation import Presentation, present
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
    """The lines (with a trailing newline) the console destination prints for `alert`."""
    item, safe, view = alert.item, terminal_safe, present(alert)
    categories = safe(", ".join(alert.categories))
    rules = safe(", ".join(view.rules))
    label = "UPDATE " if alert.kind is AlertKind.UPDATE else ""
    # Each part is cleaned on its own so that the double spaces between parts survive.
    lines = [
        f"[{alert.severity.name}] {label}{categories}  {safe(item.title)}  "
        f"(source: {safe(item.source)}) {safe(item.link)}  rules: {rules}"
    ]
    if view.gloss:
        lines.append("    gloss: " + safe(view.gloss))
    evidence = _evidence(view, item.publisher)
    if evidence:
        lines.append("    " + safe(evidence))
    snippet = terminal_safe(view.snippet)
    if snippet:
        lines.append("    " + truncate(snippet, SNIPPET_MAX))
    if alert.kind is AlertKind.DIGEST:
        lines.extend("    - " + safe(child.item.title) for child in alert.children)
    return "\n".join(lines) + "\n"


def _evidence(view: Presentation, publisher: str = "") -> str:
    parts = [f"publisher: {publisher}"] if publisher else []
    if view.materials:
        parts.append("materials: " + ", ".join(view.materials))
    if view.countries:
        parts.append("countries: " + ", ".join(view.countries))
    if view.terms:
        parts.append("terms: " + ", ".join(view.terms))
    if view.matched_in:
        parts.append("matched in: " + view.matched_in)
    return "; ".join(parts)


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


class ConsoleDestination(DestinationConfigBase):
    """A readable line per alert on standard output."""

    type: Literal["console"]


def build(config: ConsoleDestination, deps: NotifierDeps) -> Notifier:
    """The `ConsoleNotifier` of a configured `console` destination, writing to `deps.stdout`."""
    return ConsoleNotifier(config.name, stream=deps.stdout)
