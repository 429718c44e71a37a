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
        ("禁止向美国军事用户出口锗 违者依法追究刑事责任", "", {"trade-restrictions", "export-licensing"}),
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
        # personnel: a ban on what staff do, or on their travel, is no trade measure
        (
            "Magnet makers ban engineers from sharing sintering know-how with foreign clients",
            "",
            {"personnel-controls"},
        ),
        (
            "Travel bans on gallium refining experts widen as Beijing guards know-how",
            "",
            {"personnel-controls"},
        ),
        (
            "Rare-earth plant staff must report private trips abroad to the security office",
            "",
            {"personnel-controls"},
        ),
        ("钕铁硼企业员工护照由公司代管 出国须经审批", "", {"personnel-controls"}),
        # ... and workers hit by a trade measure are no staff control; a passport service is no control
        ("China's gallium export ban hits US workers", "", {"export-licensing"}),
        ("出入境管理局为稀土企业出国人员开通护照办理绿色通道", "", set()),
        # goods leaving the country need a licence, not a travel approval
        (
            "China imposes controls on exports of superhard materials",
            "The powders will need approval before leaving the country.",
            {"export-licensing"},
        ),
        ("稀土出境须申请两用物项出口许可", "", {"export-licensing"}),
        # prosecution: goods seized in a case were banned, not newly banned
        ("Customs seizes banned antimony at the Guangxi border; two smugglers arrested", "", {"prosecution"}),
        # ... and an offence without an arrest, charge or sentence is the reason for a measure or the
        # target of a campaign, not a case
        (
            "EU sanctions Chinese magnet exporter",
            "Brussels said the company had smuggled NdFeB magnets through Kazakhstan.",
            {"trade-restrictions"},
        ),
        ("Beijing launches campaign against strategic mineral smuggling", "", set()),
        ("海关总署部署打击稀土等战略矿产走私违法犯罪专项行动", "", set()),
        # halts of exports: a trade measure when decided, a supply disruption when an outage forces them
        (
            "Beijing halts gallium exports to US defence contractors",
            "",
            {"trade-restrictions", "export-licensing"},
        ),
        ("Power outage at a Jiangxi smelter halts tungsten exports for a week", "", {"supply-disruption"}),
        ("稀土分离厂火灾 暂停出口一周", "", {"supply-disruption"}),
    ],
)
def test_each_story_stays_in_its_category(
    pack: Ruleset, title: str, summary: str, expected: set[str]
) -> None:
    assert categories(pack, title, summary) == expected
