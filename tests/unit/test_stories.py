"""Near-duplicate titles: syndicated copies cluster, distinct events do not."""

from __future__ import annotations

import pytest

from rarewatch.stories import jaccard, names, same_story, shingles, signature_keys, swapped_names, title_key

SAME = [
    (
        "China curbs rare earth exports, adding licences for seven elements - Reuters",
        "China curbs rare-earth exports, adds licences for seven elements | Mining.com",
    ),
    ("中国对七种中重稀土实施出口管制_新浪财经", "中国对七种中重稀土实施出口管制"),
    (
        "Exclusive: China halts rare earth magnet exports to US automakers, sources say",
        "China halts rare earth magnet exports to US automakers -sources",
    ),
    (
        "Japan adds antimony to export licence list",
        "Japan adds antimony to export licence list, effective December",
    ),
    # Title Case says nothing about names; a rewrite naming the same actor differently is no new event
    (
        "China Adds Seven Rare Earths To Export Control List",
        "China adds seven rare earths to export control list",
    ),
    (
        "China Restricts Gallium And Germanium Exports To United States Chipmakers",
        "China Curbs Gallium And Germanium Exports To United States Chipmakers",
    ),
    (
        "China halts magnet exports to Washington defence suppliers",
        "China halts magnet exports to US defence suppliers",
    ),
    (
        "Gallium curbs tighten as MOFCOM adds licence checks",
        "Gallium curbs tighten as Beijing adds licence checks",
    ),
]
DIFFERENT = [
    ("China curbs rare earth exports - Reuters", "US adds rare earth firm to Entity List - Reuters"),
    ("中国对七种中重稀土实施出口管制", "商务部：对镓锗相关物项实施出口管制"),
    ("China adds 7 rare earths to export control list", "China adds 5 rare earths to export control list"),
    ("Myanmar border closure halts rare earth shipments", "Vietnam opens new rare earth refinery"),
    # one name swapped for another: alike in every other word, two listings
    ("US adds Acme processor to the Entity List", "US adds Zenith processor to the Entity List"),
    ("China puts Skydio on its unreliable entity list", "China puts Lockheed on its unreliable entity list"),
]


@pytest.mark.parametrize(("a", "b"), SAME)
def test_syndicated_copies_are_the_same_story(a: str, b: str) -> None:
    assert same_story(a, b)
    assert set(signature_keys(a)) & set(signature_keys(b)), "copies must meet in at least one LSH band"


@pytest.mark.parametrize(("a", "b"), DIFFERENT)
def test_distinct_events_are_not(a: str, b: str) -> None:
    assert not same_story(a, b)


def test_title_key_drops_outlet_suffix_and_punctuation() -> None:
    assert title_key("Rare-Earth Curbs Widen – Financial Times") == "rare earth curbs widen"
    assert title_key("稀土出口管制升级_新浪财经") == "稀土出口管制升级"


def test_shingles_mix_words_and_cjk_bigrams() -> None:
    assert shingles("Magnets shortage 稀土短缺") == frozenset({"magnet", "shortage", "稀土", "土短", "短缺"})
    assert jaccard(frozenset(), frozenset()) == 0.0


def test_signature_is_stable_and_banded() -> None:
    keys = signature_keys("China bans gallium exports")
    assert keys == signature_keys("China bans gallium exports")
    assert len(keys) == 10
    assert all(k.startswith("sim:") for k in keys)
    assert signature_keys("   ") == ()


def test_names_are_capitalised_words_after_the_first_and_acronyms() -> None:
    assert names("BIS adds Acme to the list, Beijing says") == {"us", "acme", "china"}
    assert names("Exclusive: China halts magnet exports") == {"china"}


def test_title_case_and_chinese_headlines_name_nothing() -> None:
    assert names("China Adds Acme Processor To The Entity List") == frozenset()
    assert names("商务部将两家美国企业列入不可靠实体清单") == frozenset()


def test_a_name_on_one_side_only_is_no_swap() -> None:
    assert not swapped_names("China halts magnet exports, Reuters reports", "China halts magnet exports")
    assert swapped_names("US lists Acme", "US lists Zenith")
