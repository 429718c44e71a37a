"""Payload templates: the shipped examples, JSON safety with hostile feed text, the sandbox, errors."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rarewatch.delivery.template import PayloadTemplate
from rarewatch.errors import DeliveryError
from rarewatch.models import Alert, Item, Match, Severity

TEMPLATES = Path(__file__).resolve().parents[3] / "deploy" / "templates"
NOW = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
# Everything that breaks naive JSON or template handling: quotes, backslashes, a newline, template
# syntax, a script end tag, Chinese.
HOSTILE_TITLE = "He said \"stop\" \\ C:\\temp\\new\n{{ 7*7 }} {% if %} </script> 稀土出口管制 'x'"
PARAMS = {"project": "RARE"}


def make_alert(
    title: str = HOSTILE_TITLE,
    severity: Severity = Severity.HIGH,
    link: str = "https://example.org/news/1?a=1&b=2",
    alert_id: str = "story-42",
) -> Alert:
    item = Item(alert_id, "mofcom", title, link, 'Summary with "quotes"\nand <b>tags</b>', "", NOW)
    matches = (
        Match("licensing", "export-licensing", severity, ("稀土", "export licence"), 'snippet "q" \\'),
        Match("shortage", "supply-disruption", Severity.LOW, ("shortage",), ""),
    )
    return Alert(alert_id, item, matches, NOW)


def strings(value: Any) -> list[str]:
    """Every string inside a parsed JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def example(name: str, **params: Any) -> PayloadTemplate:
    return PayloadTemplate.from_file(TEMPLATES / f"{name}.json.j2", params={**PARAMS, **params})


def rendered(name: str, alert: Alert, **params: Any) -> Any:
    return json.loads(example(name, **params).render(alert))


# ---------------------------------------------------------------------------------------------------
# The shipped examples


@pytest.mark.parametrize("name", ["jira", "servicenow", "teams"])
def test_each_example_renders_valid_json_for_a_hostile_title(name: str) -> None:
    body = example(name).render(make_alert())
    text = body.decode("utf-8")
    data = json.loads(text)
    # The title arrives intact (on one line), with its template syntax not evaluated.
    one_line = HOSTILE_TITLE.replace("\n", " ")
    assert any(one_line in text for text in strings(data))
    assert "49" not in text
    assert "稀土出口管制" in text  # UTF-8, not \u escapes
    assert "</script>" not in text  # escaped as \u003c/script\u003e: inert if pasted into HTML


@pytest.mark.parametrize("name", ["jira", "servicenow", "teams"])
def test_each_example_shows_the_publisher_materials_and_countries(name: str) -> None:
    plain = make_alert()
    item = replace(plain.item, publisher='Trade "Desk"\n{{ 7*7 }}')
    alert = replace(plain, item=item, materials=("gallium", "germanium"), countries=("china", "japan"))
    texts = strings(rendered(name, alert))
    assert any('Trade "Desk" {{ 7*7 }}' in t for t in texts)  # one line, not evaluated
    assert any("gallium, germanium" in t for t in texts)
    assert any("china, japan" in t for t in texts)


@pytest.mark.parametrize("name", ["jira", "servicenow", "teams"])
def test_each_example_leaves_out_what_the_alert_does_not_have(name: str) -> None:
    texts = strings(rendered(name, make_alert()))
    assert not any(label in t for t in texts for label in ("Publisher:", "Materials:", "Countries:"))


@pytest.mark.parametrize("name", ["jira", "servicenow", "teams"])
def test_each_example_starts_with_the_configuration_to_use_it(name: str) -> None:
    source = (TEMPLATES / f"{name}.json.j2").read_text(encoding="utf-8")
    assert source.startswith("{#")
    head = source.split("#}", 1)[0]
    assert "destinations:" in head
    assert "type: webhook" in head
    assert f"template: /etc/rarewatch/templates/{name}.json.j2" in head


@pytest.mark.parametrize("name", ["jira", "servicenow", "teams"])
def test_each_example_renders_an_alert_without_summary_snippet_or_web_link(name: str) -> None:
    item = Item("x", "s", "", "urn:x", "", "", NOW)
    alert = Alert("x", item, (Match("r", "c", Severity.INFO),), NOW)
    json.loads(example(name).render(alert))


def test_jira_fields() -> None:
    fields = rendered("jira", make_alert())["fields"]
    assert fields["project"] == {"key": "RARE"}
    assert fields["issuetype"] == {"name": "Task"}
    assert fields["labels"] == ["rarewatch", "export-licensing", "supply-disruption", "rarewatch-story-42"]
    assert fields["priority"] == {"name": "High"}
    summary = fields["summary"]
    assert summary.startswith('[HIGH] He said "stop"') and "\n" not in summary
    doc = fields["description"]
    assert doc["type"] == "doc" and doc["version"] == 1
    title_node = doc["content"][0]["content"][0]
    assert title_node["marks"] == [{"type": "link", "attrs": {"href": "https://example.org/news/1?a=1&b=2"}}]


def test_jira_summary_is_cut_to_its_limit() -> None:
    summary = rendered("jira", make_alert(title="word " * 200))["fields"]["summary"]
    assert len(summary) <= 255 and summary.endswith("…")


def test_jira_labels_have_no_spaces_and_issue_type_is_configurable() -> None:
    item = Item("i", "s", "t", "https://e.org/", "", "", NOW)
    alert = Alert("i", item, (Match("r", "supply disruption", Severity.CRITICAL),), NOW)
    fields = rendered("jira", alert, issuetype="Bug")["fields"]
    assert "supply-disruption" in fields["labels"]
    assert fields["issuetype"] == {"name": "Bug"}
    assert fields["priority"] == {"name": "Highest"}


def test_jira_without_a_project_key_fails_at_load() -> None:
    with pytest.raises(
        ValueError, match=r"jira\.json\.j2, line \d+: 'dict object' has no attribute 'project'"
    ):
        PayloadTemplate.from_file(TEMPLATES / "jira.json.j2")


def test_servicenow_correlation_id_is_the_alert_id() -> None:
    data = rendered("servicenow", make_alert(alert_id="story-7f3a"))
    assert data["correlation_id"] == "story-7f3a"
    assert data["correlation_display"] == "rarewatch"
    assert data["category"] == "inquiry"
    assert "assignment_group" not in data
    assert len(data["short_description"]) <= 160
    assert "https://example.org/news/1?a=1&b=2" in data["description"]


@pytest.mark.parametrize(
    ("severity", "urgency", "impact"),
    [
        (Severity.CRITICAL, "1", "1"),
        (Severity.HIGH, "1", "2"),
        (Severity.MEDIUM, "2", "2"),
        (Severity.LOW, "3", "2"),
        (Severity.INFO, "3", "3"),
    ],
)
def test_servicenow_urgency_and_impact_follow_severity(severity: Severity, urgency: str, impact: str) -> None:
    item = Item("i", "s", "t", "https://e.org/", "", "", NOW)
    data = rendered("servicenow", Alert("i", item, (Match("r", "c", severity),), NOW))
    assert (data["urgency"], data["impact"]) == (urgency, impact)


def test_servicenow_optional_fields_come_from_params() -> None:
    data = rendered("servicenow", make_alert(), category="software", assignment_group='Trade "Desk"')
    assert data["category"] == "software"
    assert data["assignment_group"] == 'Trade "Desk"'


def test_teams_card() -> None:
    data = rendered("teams", make_alert())
    [attachment] = data["attachments"]
    assert data["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard"
    # Feed text only in TextRuns (not read as Markdown), never in TextBlocks.
    assert {block["type"] for block in card["body"]} == {"RichTextBlock"}
    assert card["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open the story", "url": "https://example.org/news/1?a=1&b=2"}
    ]


def test_teams_card_has_no_link_button_for_a_non_web_link() -> None:
    card = rendered("teams", make_alert(link="javascript:alert(1)"))["attachments"][0]["content"]
    assert card["actions"] == []


# ---------------------------------------------------------------------------------------------------
# The template machinery


def test_the_context_offers_the_payload_and_helpers() -> None:
    source = (
        '{"id": {{ alert.id | tojson }}, "rank": {{ severity_rank }}, "rules": {{ rules | tojson }},'
        ' "terms": {{ terms | tojson }}, "snippet": {{ snippet | tojson }},'
        ' "p": {{ params.project | tojson }}}'
    )
    data = json.loads(PayloadTemplate(source, name="t.json.j2", params=PARAMS).render(make_alert()))
    assert data == {
        "id": "story-42",
        "rank": 3,
        "rules": ["licensing", "shortage"],
        "terms": ["稀土", "export licence", "shortage"],
        "snippet": 'snippet "q" \\',
        "p": "RARE",
    }


def test_filters_truncate_and_oneline() -> None:
    template = PayloadTemplate("{{ alert.title | oneline | truncate(12) }}", name="t.txt.j2")
    assert template.render(make_alert(title="alpha\nbeta gamma delta")) == "alpha beta…".encode()


def test_a_syntax_error_names_the_template_and_line() -> None:
    with pytest.raises(ValueError, match=r"^template tickets\.json\.j2, line 3: "):
        PayloadTemplate('{\n  "a": 1,\n  {% if %}\n}', name="tickets.json.j2")


def test_an_unknown_filter_fails_at_load() -> None:
    with pytest.raises(ValueError, match="No filter named 'nosuch'"):
        PayloadTemplate("{{ alert.title | nosuch }}", name="t.txt.j2")


def test_an_undefined_variable_fails_at_load_not_with_an_empty_string() -> None:
    with pytest.raises(ValueError, match=r"line 2: 'dict object' has no attribute 'titel'"):
        PayloadTemplate('{\n"t": {{ alert.titel | tojson }}}', name="t.json.j2")


@pytest.mark.parametrize(
    "expression",
    [
        "''.__class__.__mro__",
        "alert.__class__",
        "alert.categories.append('x')",
        "alert.update({'id': 'forged'})",
        "cycler.__init__.__globals__",
    ],
)
def test_sandbox_violations_fail_at_load(expression: str) -> None:
    with pytest.raises(ValueError, match="is unsafe"):
        PayloadTemplate("{{ " + expression + " }}", name="t.txt.j2")


def test_a_sandbox_violation_at_render_is_a_non_retryable_delivery_error() -> None:
    # Passes the sample alert (severity info) at load; the violation is reached by a critical one.
    source = "{% if severity_rank == 4 %}\n{{ ''.__class__.__mro__[1].__subclasses__() }}\n{% endif %}ok"
    template = PayloadTemplate(source, name="evil.txt.j2")
    with pytest.raises(DeliveryError) as info:
        template.render(make_alert(severity=Severity.CRITICAL))
    assert not info.value.retryable
    assert str(info.value).startswith("template evil.txt.j2, line 2: access to attribute '__class__'")


INJECTING_TITLE = 'x", "assignee": "attacker", "y": "\\'


@pytest.mark.parametrize("title", [INJECTING_TITLE, HOSTILE_TITLE])
def test_a_template_that_forgets_tojson_is_autoescaped_for_json(title: str) -> None:
    template = PayloadTemplate(
        '{"summary": "{{ alert.title }}", "rank": {{ severity_rank }}}', name="n.json.j2"
    )
    data = json.loads(template.render(make_alert(title=title)))
    assert data == {"summary": title, "rank": 3}  # the title stays a string: no key injected


def test_tojson_output_is_not_escaped_twice() -> None:
    template = PayloadTemplate(
        '{"s": {{ alert.title | tojson }}, "c": {{ alert.categories }}}', name="t.json.j2"
    )
    data = json.loads(template.render(make_alert(title=INJECTING_TITLE)))
    assert data == {"s": INJECTING_TITLE, "c": ["export-licensing", "supply-disruption"]}


def test_plain_text_templates_are_not_escaped() -> None:
    template = PayloadTemplate("{{ alert.title }}", name="t.txt.j2")
    assert template.render(make_alert(title=INJECTING_TITLE)) == INJECTING_TITLE.encode()


def test_a_bare_string_outside_quotes_is_caught_by_the_json_check() -> None:
    # Fine for the sample alert's plain title? No: a bare string is never a JSON value; caught at load.
    with pytest.raises(ValueError, match="produced invalid JSON"):
        PayloadTemplate('{"summary": {{ alert.title }}}', name="naive.json.j2")


def test_the_json_flag_overrides_the_file_name() -> None:
    with pytest.raises(ValueError, match="produced invalid JSON"):
        PayloadTemplate("not json", name="body.j2", json=True)
    assert PayloadTemplate("not json", name="body.j2").render(make_alert()) == b"not json"
    assert not PayloadTemplate("{}", name="x.json.j2", json=False).json


def test_a_runtime_error_in_the_template_is_a_non_retryable_delivery_error() -> None:
    template = PayloadTemplate("{{ 1 // (severity_rank - 3) }}", name="t.txt.j2")
    with pytest.raises(DeliveryError) as info:
        template.render(make_alert(severity=Severity.HIGH))
    assert not info.value.retryable
    assert "integer division or modulo by zero" in str(info.value)


def test_a_lone_surrogate_from_a_broken_feed_does_not_stop_delivery() -> None:
    body = example("servicenow").render(make_alert(title="broken \ud800 title"))
    assert json.loads(body)["short_description"].endswith("broken ? title")


def test_an_unreadable_template_file_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot read template .*missing\.json\.j2"):
        PayloadTemplate.from_file(tmp_path / "missing.json.j2")
