"""Slack Block Kit messages: structure, Slack's limits, and escaping of untrusted feed text."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from rarewatch.delivery.slack_blocks import (
    CONTEXT_ELEMENTS_MAX,
    FEEDBACK_NOT_RELEVANT,
    FEEDBACK_RELEVANT,
    HEADER_MAX,
    MAX_BLOCKS,
    TEXT_MAX,
    build_followup,
    build_message,
    clip_escaped,
    escape_mrkdwn,
    link,
    neutralise_formatting,
    safe_url,
    slack_date,
)
from rarewatch.models import Alert, Item, Match, Severity

PUBLISHED = datetime(2026, 1, 31, 16, 0, tzinfo=timezone(timedelta(hours=8)))  # 08:00 UTC
CREATED = datetime(2026, 1, 31, 8, 5, tzinfo=UTC)

# Everything Slack would turn into a mention, a channel link or a disguised link if left unescaped.
INJECTIONS = (
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U123>",
    "<#C123>",
    "<!subteam^S123>",
    "<https://evil.example|https://bank.example>",
)


def make_alert(
    *,
    title: str = "China adds rare-earth magnets to export licence list",
    link: str = "https://example.org/news/1",
    source: str = "mofcom",
    summary: str = "Short summary.",
    matches: tuple[Match, ...] | None = None,
) -> Alert:
    item = Item("item-1", source, title, link, summary, "full text", PUBLISHED)
    if matches is None:
        matches = (
            Match("shortage", "supply-disruption", Severity.MEDIUM, ("shortage",), "a shortage of magnets"),
            Match("licensing", "export-licensing", Severity.HIGH, ("export licence", "稀土"), "licence"),
        )
    return Alert("a1b2c3", item, matches, CREATED)


def texts(blocks: list[dict[str, Any]]) -> list[str]:
    """Every text string in the blocks."""
    found: list[str] = []
    for block in blocks:
        if "text" in block:
            found.append(block["text"]["text"])
        found.extend(e["text"] for e in block.get("elements", ()))
    return found


def assert_within_limits(blocks: list[dict[str, Any]]) -> None:
    assert 1 <= len(blocks) <= MAX_BLOCKS
    for block in blocks:
        if block["type"] == "header":
            assert block["text"]["type"] == "plain_text"
            assert 1 <= len(block["text"]["text"]) <= HEADER_MAX
        elif block["type"] == "section":
            assert 1 <= len(block["text"]["text"]) <= TEXT_MAX
        elif block["type"] == "context":
            assert 1 <= len(block["elements"]) <= CONTEXT_ELEMENTS_MAX
            assert all(1 <= len(e["text"]) <= TEXT_MAX for e in block["elements"])
        elif block["type"] == "actions":
            assert 1 <= len(block["elements"]) <= 25
            for button in block["elements"]:
                assert button["type"] == "button" and 1 <= len(button["text"]["text"]) <= 75
                assert len(button["action_id"]) <= 255 and 1 <= len(button["value"]) <= 2000
    json.dumps(blocks)  # JSON-ready


# Only the angle-bracket syntax this module builds on purpose: links to http(s) and date tokens.
_ALLOWED_TOKEN = re.compile(r"<(https?://[^|<>\s]+\|[^<>]*|!date\^\d+\^[^|<>]*\|[^<>]*)>")


def assert_no_injection(text: str) -> None:
    """No Slack control sequence in `text` except links and dates the builder made."""
    rest = _ALLOWED_TOKEN.sub("", text)
    assert "<" not in rest and ">" not in rest.replace("\n> ", "\n").removeprefix("> "), text
    for bad in INJECTIONS:
        assert bad not in text


# ---------------------------------------------------------------------------------------------------
# Structure


def test_the_message_has_header_title_facts_matches_and_rules() -> None:
    fallback, blocks = build_message(make_alert())
    kinds = [b["type"] for b in blocks]
    assert kinds == ["header", "section", "context", "divider", "section", "section", "context"]
    assert blocks[0]["text"]["text"] == "🔴 HIGH · supply-disruption, export-licensing"
    assert blocks[1]["text"]["text"] == (
        "*<https://example.org/news/1|China adds rare-earth magnets to export licence list>*\nShort summary."
    )
    facts = [e["text"] for e in blocks[2]["elements"]]
    assert facts[0] == "Source: *mofcom*"
    assert facts[1] == "Published: <!date^1769846400^{date_short_pretty} {time}|2026-01-31 08:00 UTC>"
    assert facts[2] == "Severity: *HIGH*"
    # Matches: most severe first, each with category, severity, rule, terms and the quoted snippet.
    assert blocks[4]["text"]["text"] == (
        "*export-licensing* · HIGH · rule `licensing`\nTerms: `export licence`, `稀土`\n> licence"
    )
    assert blocks[5]["text"]["text"].startswith("*supply-disruption* · MEDIUM · rule `shortage`")
    assert blocks[6]["elements"][0]["text"] == "Rules: `licensing`, `shortage` · Alert: `a1b2c3`"
    assert fallback == (
        "[HIGH] supply-disruption, export-licensing: "
        "China adds rare-earth magnets to export licence list (mofcom)"
    )
    assert_within_limits(blocks)


def test_the_facts_name_the_publisher_materials_and_countries_escaped() -> None:
    plain = make_alert()
    item = replace(plain.item, publisher="Wire & <!channel> Co")
    alert = replace(plain, item=item, materials=("gallium", "ndfeb magnets"), countries=("china",))
    _, blocks = build_message(alert)
    facts = [e["text"] for e in blocks[2]["elements"]]
    assert facts[:2] == ["Source: *mofcom*", "Publisher: *Wire &amp; &lt;!channel&gt; Co*"]
    assert "Materials: gallium, ndfeb magnets" in facts
    assert "Countries: china" in facts
    assert_within_limits(blocks)
    for text in texts(blocks):
        assert_no_injection(text)


def test_facts_without_publisher_materials_or_countries_leave_them_out() -> None:
    _, blocks = build_message(make_alert())
    facts = " ".join(e["text"] for e in blocks[2]["elements"])
    assert "Publisher" not in facts and "Materials" not in facts and "Countries" not in facts


def test_a_later_report_names_its_publisher_when_the_feed_gives_one() -> None:
    plain = make_alert(source="cfg-wire")
    _, blocks = build_followup(plain, None)
    assert blocks[0]["text"]["text"].startswith("Also reported by *cfg-wire*:")
    named = replace(plain, item=replace(plain.item, publisher="Mining Weekly"))
    _, blocks = build_followup(named, None)
    assert blocks[0]["text"]["text"].startswith("Also reported by *Mining Weekly*:")


def test_every_mrkdwn_text_is_verbatim() -> None:
    # verbatim stops Slack from auto-linking bare URLs and #channel names in feed text.
    _, blocks = build_message(make_alert())
    for block in blocks:
        objs = [block["text"]] if "text" in block else block.get("elements", [])
        for obj in objs:
            if obj["type"] == "mrkdwn":
                assert obj["verbatim"] is True


def test_a_match_without_terms_or_snippet_is_one_line() -> None:
    alert = make_alert(matches=(Match("r", "cat", Severity.LOW),))
    _, blocks = build_message(alert)
    assert blocks[4]["text"]["text"] == "*cat* · LOW · rule `r`"


def test_an_empty_summary_leaves_just_the_title_link() -> None:
    _, blocks = build_message(make_alert(summary=""))
    assert blocks[1]["text"]["text"] == (
        "*<https://example.org/news/1|China adds rare-earth magnets to export licence list>*"
    )


def test_an_empty_title_still_gives_a_link_text() -> None:
    _, blocks = build_message(make_alert(title=""))
    assert blocks[1]["text"]["text"].startswith("*<https://example.org/news/1|(untitled)>*")


def test_the_date_token_is_utc_with_a_utc_fallback() -> None:
    naive = datetime(2026, 1, 31, 8, 0)  # taken as UTC
    assert slack_date(naive) == slack_date(PUBLISHED)
    assert slack_date(PUBLISHED).endswith("|2026-01-31 08:00 UTC>")


# ---------------------------------------------------------------------------------------------------
# Limits


def test_a_huge_title_summary_and_snippet_stay_within_limits() -> None:
    huge = "rare earth " * 1000  # 11,000 characters
    matches = (Match("r" * 500, "c" * 500, Severity.CRITICAL, tuple([huge] * 20), huge),)
    alert = make_alert(title=huge, summary=huge, source=huge, matches=matches)
    fallback, blocks = build_message(alert)
    assert_within_limits(blocks)
    assert len(fallback) <= TEXT_MAX
    assert fallback.endswith("…")
    assert blocks[1]["text"]["text"].startswith("*<https://example.org/news/1|rare earth")
    assert "…" in blocks[4]["text"]["text"]


def test_text_made_of_characters_that_escape_long_stays_within_limits() -> None:
    # "<" becomes "&lt;": four times longer once escaped, so limits must count the escaped form.
    nasty = "<>&" * 4000
    alert = make_alert(title=nasty, summary=nasty, matches=(Match("r", "c", Severity.LOW, (nasty,), nasty),))
    fallback, blocks = build_message(alert)
    assert_within_limits(blocks)
    assert len(fallback) <= TEXT_MAX
    for text in [fallback, *texts(blocks)]:
        assert_no_injection(text)


def test_many_matches_stay_within_fifty_blocks_and_are_counted() -> None:
    matches = tuple(Match(f"rule-{i:03}", f"cat-{i}", Severity.MEDIUM, ("t",), "s") for i in range(200))
    _, blocks = build_message(make_alert(matches=matches))
    assert_within_limits(blocks)
    assert blocks[-2]["elements"][0]["text"] == "…and 190 more matches"
    rules = blocks[-1]["elements"][0]["text"]
    assert len(rules) <= TEXT_MAX
    assert rules.startswith("Rules: `rule-000`, `rule-001`")


def test_many_categories_keep_the_header_within_150_characters() -> None:
    matches = tuple(Match(f"r{i}", f"category-number-{i}", Severity.HIGH) for i in range(40))
    _, blocks = build_message(make_alert(matches=matches))
    header = blocks[0]["text"]["text"]
    assert len(header) == HEADER_MAX
    assert header.endswith("…")
    assert_within_limits(blocks)


def test_clipping_never_cuts_through_an_entity() -> None:
    escaped = escape_mrkdwn("ab<cd")  # "ab&lt;cd"
    assert clip_escaped(escaped, 5) == "ab…"
    assert clip_escaped(escaped, 7) == "ab&lt;…"
    assert clip_escaped(escaped, 8) == escaped


# ---------------------------------------------------------------------------------------------------
# Escaping and injection


def test_escape_mrkdwn_replaces_the_three_control_characters() -> None:
    assert escape_mrkdwn("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert escape_mrkdwn("<!channel>") == "&lt;!channel&gt;"
    assert escape_mrkdwn("&lt;") == "&amp;lt;"  # a pre-escaped entity is shown as typed, not decoded
    assert escape_mrkdwn("稀土 *bold* _it_") == "稀土 *bold* _it_"


@pytest.mark.parametrize("payload", INJECTIONS)
@pytest.mark.parametrize("where", ["title", "summary", "source", "snippet", "term", "category", "rule"])
def test_feed_text_cannot_ping_or_disguise_a_link(payload: str, where: str) -> None:
    bad = f"Breaking {payload} news | see >here<"
    if where in ("snippet", "term", "category", "rule"):
        match = Match(
            rule=bad if where == "rule" else "r",
            category=bad if where == "category" else "c",
            severity=Severity.HIGH,
            terms=(bad,) if where == "term" else ("t",),
            snippet=bad if where == "snippet" else "s",
        )
        alert = make_alert(matches=(match,))
    else:
        fields: dict[str, Any] = {where: bad}
        alert = make_alert(**fields)
    fallback, blocks = build_message(alert)
    for text in [fallback, *texts(blocks)]:
        assert_no_injection(text)
    # The text is still there, shown escaped (inside link text a "|" shows as a lookalike).
    shown = (escape_mrkdwn(payload), escape_mrkdwn(payload).replace("|", "¦"))
    assert any(s in t for t in texts(blocks) for s in shown)


FORMATTING = ("*bold*", "_italic_", "~strike~", "`code`", "```block```")


@pytest.mark.parametrize("payload", FORMATTING)
@pytest.mark.parametrize("where", ["title", "summary", "snippet"])
def test_feed_text_cannot_format_the_message(payload: str, where: str) -> None:
    bad = f"Rare earths {payload} now"
    if where == "snippet":
        match = Match("r", "c", Severity.HIGH, ("t",), bad)
        alert = make_alert(matches=(match,))
    else:
        fields: dict[str, Any] = {where: bad}
        alert = make_alert(**fields)
    fallback, blocks = build_message(alert)
    for text in [fallback, *texts(blocks)]:
        assert payload not in text
    shown = neutralise_formatting(payload)
    assert shown != payload and not set(shown) & set("*_~`")
    assert any(shown in t for t in texts(blocks))  # still readable, as lookalikes


def test_configured_names_keep_their_underscores() -> None:
    match = Match("rule_id", "export_licensing", Severity.HIGH, ("t",), "s")
    _, blocks = build_message(make_alert(source="mof_com", matches=(match,)))
    joined = "\n".join(texts(blocks))
    assert "*mof_com*" in joined and "`rule_id`" in joined and "*export_licensing*" in joined


def test_the_header_is_plain_text_without_angle_brackets() -> None:
    alert = make_alert(matches=(Match("r", "<!channel> cat", Severity.HIGH),))
    _, blocks = build_message(alert)
    assert blocks[0]["text"]["text"] == "🔴 HIGH · ‹!channel› cat"


def test_a_pipe_in_the_title_cannot_split_the_link() -> None:
    assert link("https://example.org/", "real|https://bank.example") == (
        "<https://example.org/|real¦https://bank.example>"
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.org/a?b=1&c=2", "https://example.org/a?b=1&amp;c=2"),
        ("https://example.org/a|https://bank.example", "https://example.org/a%7Chttps://bank.example"),
        ("https://example.org/a>b<c", "https://example.org/a%3Eb%3Cc"),
        ("https://example.org/a b\nc", "https://example.org/a%20b%0Ac"),
        ("HTTP://EXAMPLE.ORG/x", "HTTP://EXAMPLE.ORG/x"),
        ("https://example.org/%7C", "https://example.org/%7C"),  # already encoded: kept
    ],
)
def test_link_urls_are_encoded_so_they_end_where_they_should(url: str, expected: str) -> None:
    assert safe_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:text/html,<b>x</b>",
        "ftp://example.org/x",
        "mailto:a@example.org",
        "slack://channel?id=C123",
        "/relative/path",
        "https:///no-host",
        "",
        "https://[::1",  # malformed IPv6: urlsplit raises
        "https://example.org/" + "x" * 2000,  # too long to be worth a link
    ],
)
def test_non_http_urls_get_no_link(url: str) -> None:
    assert safe_url(url) is None
    _, blocks = build_message(make_alert(link=url, title="A <!here> title"))
    assert blocks[1]["text"]["text"].startswith("*A &lt;!here&gt; title*")


def test_control_and_bidi_characters_and_line_breaks_are_removed() -> None:
    alert = make_alert(title="a\u202eb\nc\x1bd", summary="line1\n> line2")
    _, blocks = build_message(alert)
    # A newline in the summary could otherwise start a fake quote or a fake line of the layout.
    assert blocks[1]["text"]["text"] == "*<https://example.org/news/1|a b c d>*\nline1 &gt; line2"


# ---------------------------------------------------------------------------------------------------
# Follow-ups


def test_followup_names_the_new_source_and_links_the_first_report() -> None:
    alert = make_alert(source="reuters")
    fallback, blocks = build_followup(alert, "https://team.slack.com/archives/C1/p1700000000000100")
    assert blocks[0]["text"]["text"] == (
        "Also reported by *reuters*: "
        "<https://example.org/news/1|China adds rare-earth magnets to export licence list>"
    )
    assert blocks[1]["elements"][0]["text"] == (
        "<https://team.slack.com/archives/C1/p1700000000000100|First report>"
    )
    assert fallback.startswith("Also reported by reuters: China adds")
    assert_within_limits(blocks)


def test_followup_without_a_permalink_and_with_hostile_text() -> None:
    alert = make_alert(source="<!channel>", title="<@U1> x", link="javascript:x")
    fallback, blocks = build_followup(alert, None)
    assert len(blocks) == 1
    for text in [fallback, *texts(blocks)]:
        assert_no_injection(text)
    _, blocks = build_followup(alert, "javascript:alert(1)")
    assert len(blocks) == 1


def test_the_facts_say_which_text_matched() -> None:
    alert = make_alert()
    _, blocks = build_message(alert)
    assert not any(e["text"].startswith("Matched in") for e in blocks[2]["elements"]), "unknown: not shown"
    located = replace(alert, matches=tuple(replace(m, matched_in="article") for m in alert.matches))
    _, blocks = build_message(located)
    assert blocks[2]["elements"][-1]["text"] == "Matched in: *article*"
    assert_within_limits(blocks)


# ---------------------------------------------------------------------------------------------------
# Feedback buttons


def test_feedback_adds_relevant_and_not_relevant_buttons_carrying_the_alert_id_last() -> None:
    _, plain = build_message(make_alert())
    _, blocks = build_message(make_alert(), feedback=True)
    assert blocks[:-1] == plain, "the buttons are added, nothing else changes"
    actions = blocks[-1]
    assert actions["type"] == "actions" and actions["block_id"] == "rarewatch_feedback"
    buttons = [(b["text"]["text"], b["action_id"], b["value"]) for b in actions["elements"]]
    assert buttons == [
        ("Relevant", "rarewatch_feedback_relevant", "a1b2c3"),
        ("Not relevant", "rarewatch_feedback_not_relevant", "a1b2c3"),
    ]
    assert (buttons[0][1], buttons[1][1]) == (FEEDBACK_RELEVANT, FEEDBACK_NOT_RELEVANT)
    assert_within_limits(blocks)


def test_without_feedback_there_are_no_buttons() -> None:
    _, blocks = build_message(make_alert())
    assert all(b["type"] != "actions" for b in blocks)


def test_the_buttons_survive_the_fifty_block_limit() -> None:
    matches = tuple(Match(f"rule-{i:03}", f"cat-{i}", Severity.MEDIUM, ("t",), "s") for i in range(200))
    texts_ = [f"line {i}" for i in range(60)]
    alert = make_alert(matches=matches, summary=" ".join(texts_))
    _, blocks = build_message(alert, feedback=True)
    assert len(blocks) <= MAX_BLOCKS
    assert blocks[-1]["type"] == "actions"
    assert_within_limits(blocks)
