"""An alert's presentation, built once for every notifier, and the English gloss of Chinese alerts in
each destination: the payload, Slack, the console, Alertmanager, Apprise and templates."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from rarewatch.delivery.alertmanager import alert_annotations
from rarewatch.delivery.apprise_notifier import format_body
from rarewatch.delivery.console import format_alert
from rarewatch.delivery.payload import alert_payload, digest_alert
from rarewatch.delivery.presentation import (
    GLOSS_MAX,
    GLOSS_TERMS_MAX,
    category_label,
    country_label,
    gloss_line,
    is_chinese,
    present,
)
from rarewatch.delivery.slack_blocks import build_message
from rarewatch.delivery.template import template_context
from rarewatch.models import Alert, AlertKind, Item, Match, Severity

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
BRIEF = (
    "Trade restrictions (China): unreliable entity list; rare earths, gallium — matched: "
    "不可靠实体清单 → unreliable entity list, 稀土 → rare earths"
)


def chinese_alert(
    *,
    title: str = "商务部将美国企业列入不可靠实体清单 涉及稀土、镓",
    lang: str | None = "zh",
    matches: tuple[Match, ...] | None = None,
    glosses: tuple[tuple[str, str], ...] = (
        ("不可靠实体清单", "unreliable entity list"),
        ("稀土", "rare earths"),
    ),
    materials: tuple[str, ...] = ("rare earths", "gallium"),
    countries: tuple[str, ...] = ("china",),
) -> Alert:
    item = Item("i1", "mofcom", title, "https://example.org/1", "摘要", "", NOW, lang)
    if matches is None:
        matches = (
            Match(
                "trade-restrictions-zh",
                "trade-restrictions",
                Severity.HIGH,
                ("不可靠实体清单", "稀土"),
                "列入不可靠实体清单",
            ),
        )
    return Alert("a1", item, matches, NOW, materials=materials, countries=countries, glosses=glosses)


def english_alert() -> Alert:
    item = Item(
        "i2", "bis", "US adds magnet maker to Entity List", "https://example.org/2", "", "", NOW, "en"
    )
    match = Match("trade-restrictions-en", "trade-restrictions", Severity.HIGH, ("entity list",), "adds")
    return Alert("a2", item, (match,), NOW, materials=("ndfeb magnets",), countries=("united states",))


# ---------------------------------------------------------------------------------------------------
# The gloss line


def test_the_gloss_of_a_chinese_alert_reads_categories_countries_actions_materials_and_terms() -> None:
    assert gloss_line(chinese_alert()) == BRIEF


def test_english_items_and_digests_have_no_gloss() -> None:
    assert gloss_line(english_alert()) == ""
    digest = digest_alert([chinese_alert(), english_alert()], NOW, "tickets")
    assert digest.kind is AlertKind.DIGEST
    assert gloss_line(digest) == ""


@pytest.mark.parametrize(
    ("title", "lang", "chinese"),
    [
        ("稀土出口管制", None, True),  # Chinese in the title, whatever the source says
        ("稀土出口管制", "en", True),
        ("Rare earths", "zh", True),  # a Chinese source's English title: its summary is Chinese
        ("Rare earths", "zh-TW", True),
        ("Rare earths", "zh_CN", False),  # not a language tag
        ("Rare earths", None, False),
        ("Rare earths", "en", False),
    ],
)
def test_which_items_are_chinese(title: str, lang: str | None, chinese: bool) -> None:
    assert is_chinese(Item("i", "s", title, "", "", "", NOW, lang)) is chinese


def test_a_term_without_a_gloss_is_listed_alone_and_latin_terms_are_left_out() -> None:
    match = Match("r", "supply-disruption", Severity.MEDIUM, ("镓", "NdFeB", "停摆"), "")
    alert = chinese_alert(
        matches=(match,), glosses=(("镓", "gallium"),), materials=("gallium",), countries=()
    )
    assert gloss_line(alert) == "Supply disruption: gallium — matched: 镓 → gallium, 停摆"


def test_a_term_inside_another_matched_term_is_left_out() -> None:
    match = Match("r", "personnel-controls", Severity.HIGH, ("人员", "人员名单", "名单"), "")
    glosses = (("人员", "personnel"), ("人员名单", "staff list"), ("名单", "list"))
    alert = chinese_alert(matches=(match,), glosses=glosses, materials=(), countries=())
    assert gloss_line(alert) == "Personnel controls: staff list — matched: 人员名单 → staff list"


def test_several_categories_and_countries() -> None:
    matches = (
        Match("a", "export-licensing", Severity.HIGH, ("出口管制",), ""),
        Match("b", "trade-restrictions", Severity.HIGH, ("禁止出口",), ""),
    )
    alert = chinese_alert(
        matches=matches,
        glosses=(("出口管制", "export control"), ("禁止出口", "export ban")),
        materials=(),
        countries=("china", "united states"),
    )
    assert gloss_line(alert) == (
        "Export licensing / Trade restrictions (China, United States): export control, export ban"
        " — matched: 出口管制 → export control, 禁止出口 → export ban"
    )


def test_an_action_glossed_like_a_material_is_not_repeated() -> None:
    assert "rare earths; rare earths" not in gloss_line(chinese_alert())
    assert gloss_line(chinese_alert()).count("rare earths") == 2  # the materials, and 稀土 → rare earths


def test_many_terms_are_capped_and_the_line_stays_one_line_and_short() -> None:
    terms = tuple(f"术{c}" for c in "甲乙丙丁戊己庚辛壬癸子丑寅卯"[: GLOSS_TERMS_MAX + 3])
    match = Match("r", "prosecution", Severity.HIGH, terms, "")
    glosses = tuple((t, f"term\n{i} " + "x" * 60) for i, t in enumerate(terms))
    line = gloss_line(chinese_alert(matches=(match,), glosses=glosses))
    assert "\n" not in line
    assert len(line) <= GLOSS_MAX
    short = gloss_line(chinese_alert(matches=(match,), glosses=()))
    assert short.endswith(f"{terms[GLOSS_TERMS_MAX - 1]}, +3 more")


def test_labels() -> None:
    assert category_label("export-licensing") == "Export licensing"
    assert country_label("democratic republic of the congo") == "Democratic Republic of the Congo"
    assert country_label("united states") == "United States"


def test_the_presentation_holds_what_every_notifier_shows() -> None:
    matches = (
        Match("b-rule", "supply-disruption", Severity.LOW, ("停产", "稀土"), "low snippet"),
        Match("a-rule", "trade-restrictions", Severity.HIGH, ("稀土",), "  "),
        Match("c-rule", "prosecution", Severity.MEDIUM, ("走私",), "medium snippet"),
    )
    view = present(chinese_alert(matches=matches))
    assert view.rules == ("a-rule", "b-rule", "c-rule")
    assert view.terms == ("停产", "稀土", "走私")
    assert view.snippet == "medium snippet"  # the most severe match with a non-blank snippet
    assert view.materials == ("rare earths", "gallium")
    assert view.gloss.startswith("Supply disruption / Trade restrictions / Prosecution (China): ")


# ---------------------------------------------------------------------------------------------------
# The gloss in every destination


def test_the_payload_carries_the_gloss_and_an_empty_string_for_english_items() -> None:
    assert alert_payload(chinese_alert())["gloss"] == BRIEF
    assert alert_payload(english_alert())["gloss"] == ""
    digest = alert_payload(digest_alert([chinese_alert(), english_alert()], NOW, "d"))
    assert digest["gloss"] == ""
    assert [child["gloss"] for child in digest["alerts"]] == [BRIEF, ""]


def test_slack_shows_the_gloss_as_a_context_line_under_the_title() -> None:
    _, blocks = build_message(chinese_alert())
    assert blocks[1]["type"] == "section"
    assert blocks[2] == {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": f"🌐 _{BRIEF}_", "verbatim": True}],
    }
    assert blocks[3]["elements"][0]["text"].startswith("Source: ")


def test_slack_has_no_gloss_line_for_english_items() -> None:
    _, blocks = build_message(english_alert())
    assert blocks[2]["elements"][0]["text"].startswith("Source: ")
    assert "🌐" not in json.dumps(blocks, ensure_ascii=False)


def test_the_slack_gloss_is_escaped_and_cannot_end_the_italics() -> None:
    glosses = (("不可靠实体清单", "<!channel> a_b & c"),)
    _, blocks = build_message(chinese_alert(glosses=glosses))
    text = blocks[2]["elements"][0]["text"]
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text
    assert "a_b" not in text and "&amp; c" in text


def test_the_console_prints_the_gloss_under_the_headline() -> None:
    lines = format_alert(chinese_alert()).splitlines()
    assert lines[1] == f"    gloss: {BRIEF}"
    assert lines[2].startswith("    materials: rare earths, gallium; countries: china; terms: ")
    assert not any("gloss:" in line for line in format_alert(english_alert()).splitlines())


def test_alertmanager_gets_a_gloss_annotation_for_chinese_items_only() -> None:
    assert alert_annotations(chinese_alert())["gloss"] == BRIEF
    assert "gloss" not in alert_annotations(english_alert())


def test_apprise_and_templates_see_the_gloss() -> None:
    assert f"English gloss: {BRIEF}" in format_body(chinese_alert(), "text")
    assert "English gloss" not in format_body(english_alert(), "text")
    context = template_context(chinese_alert(), {})
    assert context["gloss"] == context["alert"]["gloss"] == BRIEF
    assert template_context(english_alert(), {})["gloss"] == ""


def test_the_glosses_survive_the_store_round_trip() -> None:
    alert = chinese_alert()
    stored = json.loads(json.dumps(alert.to_dict()))
    assert stored["glosses"] == {"不可靠实体清单": "unreliable entity list", "稀土": "rare earths"}
    assert Alert.from_dict(stored) == alert
    del stored["glosses"]  # an alert stored before glosses existed
    assert Alert.from_dict(stored).glosses == ()
