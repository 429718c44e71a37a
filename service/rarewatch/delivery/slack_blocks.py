"""Slack Block Kit messages for alerts: pure functions, no I/O.

An alert becomes (fallback text, blocks):

    header   🔴 HIGH · export-licensing, supply-disruption
    section  *<https://example.org/news/1|China adds magnets to licence list>*
             The summary, at most 500 characters…
    context  🌐 _Export licensing (China): export control; gallium — matched: 出口管制 → export control_
             (the English gloss: Chinese items only)
    context  Source: *mofcom* | Publisher: *Ministry of Commerce* | Published: <!date^…|2026-01-31 08:00 UTC>
             | Severity: *HIGH* | Categories: … | Materials: gallium, germanium | Countries: china
             | Matched in: *article*   (publisher, materials, countries, matched in: left out when empty)
    divider
    section  (one per match, most severe first, at most 10)
             *export-licensing* · HIGH · rule `licensing`
             Terms: `export licence`, `稀土`
             > …the text around the first hit…
    context  …and 3 more matches (only when some were left out)
    context  Rules: `licensing`, `shortage` · Alert: `a1b2c3`
    actions  [Relevant] [Not relevant]   (with feedback buttons: see `feedback_block`)

Feed text is untrusted. Everything that comes from a feed (or from configuration) goes through
`escape_mrkdwn`, so it can never mention `<!channel>`, `<!here>`, `<@U…>`, `<#C…>` or disguise a link;
every mrkdwn text object is `verbatim` so that Slack does not auto-link bare URLs or channel names in it;
and links are only built for http(s) URLs, percent-encoded so that `|` and `>` cannot end the URL early.

Slack's limits are kept by construction: at most 50 blocks, 3,000 characters per section or context
text, 150 per header, 10 context elements. Cuts end in "…" and never split an HTML entity.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from rarewatch.delivery.console import terminal_safe
from rarewatch.delivery.presentation import present
from rarewatch.models import Alert, Match, Severity

Block = dict[str, Any]

MAX_BLOCKS = 50
HEADER_MAX = 150
TEXT_MAX = 3000  # a section's or context element's text, and the fallback text
CONTEXT_ELEMENTS_MAX = 10
MAX_MATCH_SECTIONS = 10  # matches shown one section each; the rest are counted
TITLE_MAX = 500
SUMMARY_MAX = 500
URL_MAX = 1500  # longer links are shown as plain text: they would crowd out the title
SNIPPET_MAX = 1500
TERMS_MAX = 1000
NAME_MAX = 200  # source names, categories, rule ids
GLOSS_MAX = 1000

ELLIPSIS = "…"

# The feedback buttons: Slack posts a click to the app's interactivity URL (`rarewatch.slack_interactions`)
# with these ids and the alert id as the value. Stable: a message posted by an older rarewatch still works.
FEEDBACK_BLOCK_ID = "rarewatch_feedback"
FEEDBACK_RELEVANT = "rarewatch_feedback_relevant"
FEEDBACK_NOT_RELEVANT = "rarewatch_feedback_not_relevant"
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
# mrkdwn's formatting characters, shown as lookalikes in feed text so that a title cannot make itself
# bold, italic, struck through or code: `*` ∗ (U+2217), `_` ˍ (U+02CD), `~` ∼ (U+223C), backtick ˋ (U+02CB).
_FORMATTING = str.maketrans({"*": "∗", "_": "ˍ", "~": "∼", "`": "ˋ"})
# Kept literally in URLs: RFC 3986 reserved and unreserved characters plus "%" (already-encoded
# octets). Everything else, notably "|", "<", ">", quotes, spaces and controls, is percent-encoded.
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~-._"

SEVERITY_EMOJI = {
    Severity.CRITICAL: "🚨",
    Severity.HIGH: "🔴",
    Severity.MEDIUM: "🟠",
    Severity.LOW: "🟡",
    Severity.INFO: "🔵",
}


# ---------------------------------------------------------------------------------------------------
# Escaping and cutting


def escape_mrkdwn(text: str) -> str:
    """`text` with Slack's three control characters (`&`, `<`, `>`) replaced by HTML entities."""
    return "".join(_ENTITIES.get(ch, ch) for ch in text)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in "…" when cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + ELLIPSIS


def clip_escaped(text: str, limit: int) -> str:
    """Escaped mrkdwn cut to at most `limit` characters without splitting an entity such as `&amp;`."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    # In escaped text every "&" starts an entity; one without its ";" was cut through.
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut.rstrip() + ELLIPSIS


def neutralise_formatting(text: str) -> str:
    """`text` with mrkdwn's formatting characters (`*`, `_`, `~`, backtick) replaced by lookalikes."""
    return text.translate(_FORMATTING)


def safe_text(text: str, limit: int) -> str:
    """Untrusted `text` on one line, escaped for mrkdwn, its formatting characters neutralised (see
    `neutralise_formatting`), cut to `limit` characters."""
    return clip_escaped(escape_mrkdwn(neutralise_formatting(terminal_safe(text))), limit)


def safe_name(text: str, limit: int) -> str:
    """A configured name (source, category, rule id: no `*`, `~` or backtick by their syntax) on one
    line, escaped and cut; underscores stay, as the operator wrote them."""
    return clip_escaped(escape_mrkdwn(terminal_safe(text)), limit)


def plain_text(text: str, limit: int) -> str:
    """`text` for a `plain_text` object: one line, no angle brackets (lookalikes instead), cut."""
    # plain_text is not parsed for mentions, but keep brackets out anyway so nothing resembles one.
    return clip(terminal_safe(text).replace("<", "‹").replace(">", "›"), limit)


def safe_url(url: str) -> str | None:
    """`url` ready for `<url|text>`, or None unless it is an absolute http(s) URL of sane length."""
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a malformed IPv6 host
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    encoded = escape_mrkdwn(quote(url, safe=_URL_SAFE))
    return encoded if len(encoded) <= URL_MAX else None


def link(url: str, text: str, limit: int = TITLE_MAX) -> str:
    """A mrkdwn link `<url|text>` with `text` escaped, or just the escaped text for a non-http(s) URL."""
    # A "|" in the text would not end the link, but it reads like Slack's separator; show a lookalike.
    label = (safe_text(text, limit) or "(untitled)").replace("|", "¦")
    target = safe_url(url)
    return f"<{target}|{label}>" if target else label


# ---------------------------------------------------------------------------------------------------
# Block helpers


def mrkdwn(text: str) -> dict[str, Any]:
    """A mrkdwn text object; `verbatim` stops Slack from auto-linking bare URLs and #channel names."""
    return {"type": "mrkdwn", "text": clip_escaped(text, TEXT_MAX) or " ", "verbatim": True}


def header_block(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": plain_text(text, HEADER_MAX) or " "}}


def section_block(text: str) -> Block:
    return {"type": "section", "text": mrkdwn(text)}


def context_block(*texts: str) -> Block:
    return {"type": "context", "elements": [mrkdwn(t) for t in texts[:CONTEXT_ELEMENTS_MAX]]}


def slack_date(when: datetime) -> str:
    """A Slack date token (shown in the reader's time zone) with a UTC fallback."""
    utc = (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)
    fallback = utc.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(utc.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


# ---------------------------------------------------------------------------------------------------
# Messages


def build_message(alert: Alert, *, feedback: bool = False) -> tuple[str, list[Block]]:
    """The fallback text and Block Kit blocks for `alert` (layout in the module docstring); with
    `feedback`, the "Relevant" / "Not relevant" buttons last (always kept within the block limit)."""
    matches = sorted(alert.matches, key=lambda m: (-m.severity, m.rule))
    shown = matches[:MAX_MATCH_SECTIONS]
    view = present(alert)
    blocks: list[Block] = [header_block(_headline(alert)), section_block(_title_text(alert))]
    if view.gloss:
        blocks.append(context_block(gloss_text(view.gloss)))
    blocks += [
        context_block(*_facts(alert)),
        {"type": "divider"},
        *(section_block(_match_text(m)) for m in shown),
    ]
    if len(matches) > len(shown):
        blocks.append(context_block(f"…and {len(matches) - len(shown)} more matches"))
    blocks.append(context_block(_rules_text(view.rules, alert.id)))
    if not feedback:
        return fallback_text(alert), blocks[:MAX_BLOCKS]
    return fallback_text(alert), [*blocks[: MAX_BLOCKS - 1], feedback_block(alert.id)]


def feedback_block(alert_id: str) -> Block:
    """The actions block of two buttons a reader votes with; each carries the alert id as its value."""
    return {
        "type": "actions",
        "block_id": FEEDBACK_BLOCK_ID,
        "elements": [
            _button("Relevant", FEEDBACK_RELEVANT, alert_id, "primary"),
            _button("Not relevant", FEEDBACK_NOT_RELEVANT, alert_id, None),
        ],
    }


def _button(text: str, action_id: str, value: str, style: str | None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": value,
    }
    if style is not None:
        button["style"] = style
    return button


def build_followup(alert: Alert, first_permalink: str | None) -> tuple[str, list[Block]]:
    """A short message for a later report of a story already alerted: who else reported it, and where."""
    item = alert.item
    source = safe_text(item.publisher or item.source, NAME_MAX)  # a publisher is feed text
    text = f"Also reported by *{source}*: {link(item.link, item.title)}"
    blocks = [section_block(text)]
    first = safe_url(first_permalink) if first_permalink else None
    if first:
        blocks.append(context_block(f"<{first}|First report>"))
    fallback = clip_escaped(f"Also reported by {source}: {safe_text(item.title, TEXT_MAX)}", TEXT_MAX)
    return fallback, blocks


def fallback_text(alert: Alert) -> str:
    """A plain one-line summary for notifications and clients that cannot show blocks."""
    item = alert.item
    categories = ", ".join(alert.categories)
    raw = f"[{alert.severity.name}] {categories}: {item.title} ({item.source})"
    return safe_text(raw, TEXT_MAX) or alert.severity.name


def _headline(alert: Alert) -> str:
    emoji = SEVERITY_EMOJI.get(alert.severity, "")
    return f"{emoji} {alert.severity.name} · {', '.join(alert.categories)}"


def _title_text(alert: Alert) -> str:
    item = alert.item
    text = f"*{link(item.link, item.title)}*"
    summary = safe_text(item.summary, SUMMARY_MAX)
    return f"{text}\n{summary}" if summary else text


def _facts(alert: Alert) -> list[str]:
    item = alert.item
    categories = ", ".join(safe_name(c, NAME_MAX) for c in alert.categories)
    facts = [f"Source: *{safe_name(item.source, NAME_MAX)}*"]
    if item.publisher:
        facts.append(f"Publisher: *{safe_text(item.publisher, NAME_MAX)}*")
    facts += [
        f"Published: {slack_date(item.published)}",
        f"Severity: *{alert.severity.name}*",
        f"Categories: {categories}",  # mrkdwn() cuts it to the element limit
    ]
    # The evidence the rule pack recognised: what a reader triages on, so not only in the webhook payload.
    if alert.materials:
        facts.append(f"Materials: {', '.join(safe_text(m, NAME_MAX) for m in alert.materials)}")
    if alert.countries:
        facts.append(f"Countries: {', '.join(safe_text(c, NAME_MAX) for c in alert.countries)}")
    if alert.matched_in:
        facts.append(f"Matched in: *{safe_name(alert.matched_in, NAME_MAX)}*")
    return facts


def _match_text(match: Match) -> str:
    # Each part has its own budget, so the sum stays well under the section limit.
    head = (
        f"*{safe_name(match.category, NAME_MAX)}* · {match.severity.name} · "
        f"rule {_code(match.rule, NAME_MAX)}"
    )
    lines = [head]
    if match.terms:
        terms = ", ".join(_code(t, NAME_MAX) for t in match.terms)
        lines.append(f"Terms: {clip_escaped(terms, TERMS_MAX)}")
    snippet = safe_text(match.snippet, SNIPPET_MAX)
    if snippet:
        lines.append(f"> {snippet}")
    return "\n".join(lines)


def gloss_text(gloss: str) -> str:
    """The English gloss line of a Chinese alert, escaped, in italics (it is a reading aid)."""
    return f"🌐 _{safe_text(gloss, GLOSS_MAX)}_"  # safe_text: no "_" inside ends the italics early


def _rules_text(rules: tuple[str, ...], alert_id: str) -> str:
    listed = ", ".join(_code(r, NAME_MAX) for r in rules)
    return clip_escaped(f"Rules: {listed} · Alert: {_code(alert_id, NAME_MAX)}", TEXT_MAX)


def _code(text: str, limit: int) -> str:
    """`text` as inline code; a backtick inside would end the code span, so it is replaced."""
    return f"`{safe_name(text.replace('`', 'ˋ'), limit)}`"
