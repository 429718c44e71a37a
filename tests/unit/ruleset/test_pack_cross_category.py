"""The bundled pack keeps each story in its own category: a word of another category's story (the
licence a smuggler lacked, the ban an offender broke, the staff member who was arrested, a halt of
supply caused by a fire) does not raise that other category too."""

from __future__ import annotations

import pytest

from rarewatch.paths import bundled_rules_dir
from rarewatch.ruleset import Ruleset, load_ruleset


@pytest.fixture(scope="module")
def pack() -> Ruleset:
    return load_ruleset([bundled_rules_dir()])


def categories(pack: Ruleset, title: str, summary: str = "") -> set[str]:
    return {m.category for m in pack.match_fields({"title": title, "summary": summary})}


@pytest.mark.parametrize(
    ("title", "summary", "expected"),
    [
        # prosecution: the licence, the ban or the staff member belong to the case
        (
            "Court jails two brokers who shipped germanium to Singapore without export licences",
            "",
            {"prosecution"},
        ),
        (
            "Tungsten trader indicted for routing powder around Beijing's export ban",
            "",
            {"prosecution"},
        ),
        (
            "Former magnet engineer arrested for leaking sintering recipes to an overseas competitor",
            "",
            {"prosecution"},
        ),
        (
            "Police detain antimony exporter over forged end-user certificates",
            "",
            {"prosecution"},
        ),
        ("无证出口镓锭 两名被告人获刑", "", {"prosecution"}),
        ("伪造最终用户证明骗取稀土出口许可 企业负责人被起诉", "", {"prosecution"}),
        ("Rare-earth trader taken into custody after port raid", "", {"prosecution"}),
        # trade restrictions: promised penalties are part of the measure, not a case
        (
            "India bans Chinese NdFeB magnets from defence contracts",
            "Suppliers caught using them face fines and criminal charges, the ministry said.",
            {"trade-restrictions"},
        ),
        ("禁止向美国军事用户出口锗 违者依法追究刑事责任", "", {"trade-restrictions"}),
        # supply disruption: a halt of supply with a physical cause
        (
            "Samarium-cobalt magnet maker halts supply to customers after a fire",
            "",
            {"supply-disruption"},
        ),
        ("钕铁硼工厂停电 暂停供货一周", "", {"supply-disruption"}),
        # ... and the same halt decided against a buyer is a trade measure
        ("Beijing cuts off rare-earth magnet supplies to US drone makers", "", {"trade-restrictions"}),
        # licensing: the regime itself, even when it names what may not be done without a licence
        (
            "Tellurium cannot be exported without a licence from next month, ministry says",
            "",
            {"export-licensing"},
        ),
        ("Magnet export licence approvals now take 30 days, industry experts say", "", {"export-licensing"}),
        # personnel: controls phrased indirectly
        ("Gallium refiners' engineers told to surrender travel papers", "", {"personnel-controls"}),
        ("Rare-earth researchers' trips abroad now need ministry approval", "", {"personnel-controls"}),
        ("锑企业技术人员欲出境须报批", "", {"personnel-controls"}),
        # and what is no control
        ("Graphite producer's technicians travel abroad for a trade fair", "", set()),
        ("稀土企业举办技术人员安全培训班", "", set()),
    ],
)
def test_each_story_stays_in_its_category(
    pack: Ruleset, title: str, summary: str, expected: set[str]
) -> None:
    assert categories(pack, title, summary) == expected
