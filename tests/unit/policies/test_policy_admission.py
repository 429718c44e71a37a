"""Story admission on its own: seen, new story, update (same link or near-duplicate), capped, throttled."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from rarewatch.models import Alert, AlertKind, Item, Match, Severity
from rarewatch.policies.admission import Action, Plan, admit, candidates, known_story, same_event, story_keys
from rarewatch.store.keys import item_key, link_key
from rarewatch.stories import signature_keys

NOW = datetime(2026, 11, 20, 12, 10, tzinfo=UTC)
LICENSING = Match("licensing", "export-licensing", Severity.HIGH)
SHORTAGE = Match("shortage", "supply-disruption", Severity.MEDIUM)
HEADLINE = "China tightens export licence rules for rare earth magnets"


def make(
    n: int,
    title: str = HEADLINE,
    link: str = "",
    materials: tuple[str, ...] = ("rare earths",),
    match: Match = LICENSING,
) -> Alert:
    item = Item(f"i{n}", "wire", title, link or f"https://outlet{n}.example/story", "", "", NOW)
    return Alert(f"i{n}", item, (match,), NOW, materials=materials)


def routes(alert: Alert) -> Mapping[str, timedelta | None]:
    return {"tickets": None, "chat": timedelta(hours=1)}


def decide(
    alert: Alert,
    held: Mapping[str, str | None],
    known: Alert | None = None,
    *,
    throttled: bool = False,
    updates: int = 1,
    max_updates: int = 10,
) -> Plan:
    keys = story_keys(alert.item)
    return admit(
        alert,
        keys,
        signature_keys(alert.item.title),
        held,
        known,
        throttled=throttled,
        updates=updates,
        max_updates=max_updates,
        routes=routes,
        now=NOW,
    )


def test_story_keys_are_the_item_id_and_the_canonical_link() -> None:
    alert = make(1, link="https://wire.example/1")
    assert story_keys(alert.item) == (item_key("i1"), link_key("https://wire.example/1"))
    assert story_keys(Item("i2", "wire", "t", "", "", "", NOW)) == (item_key("i2"),)


def test_an_item_seen_before_is_nothing() -> None:
    alert = make(1)
    plan = decide(alert, {item_key("i1"): "i1"})
    assert plan.action is Action.SEEN


def test_a_new_story_is_sent_to_every_route_and_indexed_by_its_title() -> None:
    alert = make(1)
    plan = decide(alert, {})
    assert plan.action is Action.SEND
    assert plan.alert == alert
    assert plan.keys == story_keys(alert.item)
    assert plan.remember == signature_keys(HEADLINE)
    assert plan.destinations == ("tickets", "chat")
    assert plan.held_until == {"chat": datetime(2026, 11, 20, 13, 0, tzinfo=UTC)}


def test_a_report_of_a_known_story_is_an_update_claiming_only_its_new_keys() -> None:
    first = make(1, link="https://wire.example/1")
    again = make(2, title="Rare earth export licence rules tightened", link="https://wire.example/1")
    held = {link_key("https://wire.example/1"): "i1"}
    plan = decide(again, held, first)
    assert plan.action is Action.SEND
    assert plan.alert.kind is AlertKind.UPDATE and plan.alert.story == "i1"
    assert plan.keys == (item_key("i2"),)


def test_an_update_of_an_update_belongs_to_the_first_alerts_story() -> None:
    update = make(2)
    update = Alert(update.id, update.item, update.matches, NOW, kind=AlertKind.UPDATE, story="i1")
    plan = decide(make(3), {}, update)
    assert plan.alert.story == "i1"


def test_updates_over_the_cap_are_recorded_not_sent() -> None:
    first = make(1)
    assert decide(make(2), {}, first, updates=10, max_updates=10).action is Action.SEND
    plan = decide(make(2), {}, first, updates=11, max_updates=10)
    assert plan.action is Action.RECORD and plan.destinations == ()
    assert plan.alert.kind is AlertKind.UPDATE


def test_the_update_cap_does_not_apply_to_new_stories() -> None:
    assert decide(make(1), {}, None, updates=99, max_updates=0).action is Action.SEND


def test_a_throttled_alert_is_recorded_not_sent() -> None:
    plan = decide(make(1), {}, throttled=True)
    assert plan.action is Action.RECORD and plan.destinations == () and plan.remember == ()


def test_the_canonical_links_owner_is_the_known_story_whatever_its_title() -> None:
    first = make(1, title="Beijing adds licence regime", link="https://wire.example/1")
    again = make(2, title="Something else entirely about magnets", link="https://wire.example/1")
    keys = story_keys(again.item)
    held = {keys[1]: "i1"}
    assert candidates(keys, (), held) == ["i1"]
    assert known_story(again, keys, held, {"i1": first}) == first


def test_near_duplicate_titles_about_the_same_event_are_one_story() -> None:
    first = make(1)
    syndicated = make(2, title=HEADLINE + " - Mining Daily")
    assert same_event(first, syndicated)
    keys = story_keys(syndicated.item)
    similar = signature_keys(syndicated.item.title)
    held = dict.fromkeys(signature_keys(HEADLINE), "i1")
    assert candidates(keys, similar, held) == ["i1"]
    assert known_story(syndicated, keys, held, {"i1": first}) == first


def test_different_titles_are_different_stories() -> None:
    first = make(1)
    other = make(2, title="Magnet shortage halts production at Ohio motor plant")
    assert not same_event(first, other)
    assert known_story(other, story_keys(other.item), {}, {"i1": first}) is None


def test_different_numbers_are_different_events() -> None:
    assert not same_event(
        make(1, title=HEADLINE + " on 7 elements"), make(2, title=HEADLINE + " on 5 elements")
    )


def test_an_extra_material_in_one_report_does_not_split_the_story() -> None:
    first = make(1, materials=("rare earths",))
    richer = make(2, title=HEADLINE + " | Metal News", materials=("rare earths", "gallium"))
    assert same_event(first, richer) and same_event(richer, first)


def test_disjoint_materials_are_different_stories() -> None:
    gallium = make(
        1, title="China tightens export licence rules for gallium and its compounds", materials=("gallium",)
    )
    germanium = make(
        2,
        title="China tightens export licence rules for germanium and its compounds",
        materials=("germanium",),
    )
    assert not same_event(gallium, germanium, threshold=0.5)


def test_a_different_kind_of_event_is_a_different_story() -> None:
    assert not same_event(make(1), make(2, match=SHORTAGE))


def test_a_new_story_no_route_takes_is_unrouted_and_still_claimed_and_indexed() -> None:
    alert = make(1)
    keys = story_keys(alert.item)
    similar = signature_keys(alert.item.title)
    plan = admit(
        alert,
        keys,
        similar,
        {},
        None,
        throttled=False,
        updates=1,
        max_updates=10,
        routes=lambda a: {},
        now=NOW,
    )
    assert plan.action is Action.UNROUTED
    assert plan.alert == alert and plan.keys == keys and plan.remember == tuple(similar)
    assert plan.destinations == ()
