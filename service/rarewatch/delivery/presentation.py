"""An alert's presentation, built in one place for every notifier: the best snippet, the matched terms,
the rule ids, the materials and countries, and the English gloss of a Chinese alert.

The gloss is one line for readers who do not read Chinese, built offline from what the alert carries:
its categories in English, its countries and materials (canonical English names from the rule pack's
entity vocabularies) and its Chinese terms with their glosses (`Alert.glosses`, from the pack's
glossary):

    Trade restrictions (China): unreliable entity list; rare earths, gallium — matched:
    不可靠实体清单 → unreliable entity list, 稀土 → rare earths        (one line)

that is `<Categories> (<Countries>): <what happens>; <materials> — matched: <term → gloss, ...>`, each
part left out when empty (a term without a gloss is shown alone, a term inside another matched
term not at all). Only items in Chinese get one (`lang`
`zh…`, or a Chinese character in the title); for every other item, and for digests, it is "".
"""

from __future__ import annotations

from dataclasses import dataclass

from rarewatch.models import Alert, AlertKind, Item

GLOSS_MAX = 400  # characters; the matched-term list is what gets cut
GLOSS_TERMS_MAX = 8  # matched terms listed with their glosses
_SMALL_WORDS = frozenset({"of", "the", "and"})


@dataclass(frozen=True, slots=True)
class Presentation:
    """What every destination shows of one alert (see the module docstring)."""

    rules: tuple[str, ...]  # sorted
    terms: tuple[str, ...]  # every matched term, once, in match order
    snippet: str  # the snippet of the most severe match that has one (raw: escape for the medium)
    materials: tuple[str, ...]
    countries: tuple[str, ...]
    gloss: str  # "" unless the item is in Chinese
    matched_in: str  # which text raised the alert (title, summary, content, article), "" if unknown


def present(alert: Alert) -> Presentation:
    """The presentation of `alert`."""
    terms = tuple(dict.fromkeys(t for m in alert.matches for t in m.terms))
    by_severity = sorted(alert.matches, key=lambda m: m.severity, reverse=True)
    return Presentation(
        rules=tuple(sorted({m.rule for m in alert.matches})),
        terms=terms,
        snippet=next((m.snippet for m in by_severity if m.snippet.strip()), ""),
        materials=alert.materials,
        countries=alert.countries,
        gloss=gloss_line(alert, terms),
        matched_in=alert.matched_in,
    )


def is_chinese(item: Item) -> bool:
    """Whether an item is in Chinese: `lang` zh (zh-CN, zh-TW …) or a Chinese character in the title."""
    lang = (item.lang or "").lower()
    return lang == "zh" or lang.startswith("zh-") or any(_is_han(c) for c in item.title)


def gloss_line(alert: Alert, terms: tuple[str, ...] | None = None) -> str:
    """The one-line English gloss of a Chinese alert, or "" (see the module docstring)."""
    if alert.kind is AlertKind.DIGEST or not is_chinese(alert.item):
        return ""
    if terms is None:
        terms = tuple(dict.fromkeys(t for m in alert.matches for t in m.terms))
    glossed = dict(alert.glosses)
    chinese = [t for t in terms if any(_is_han(c) for c in t)]
    # A term inside another matched term (人员 in 人员名单) adds nothing to the line.
    chinese = [t for t in chinese if not any(t != other and t in other for other in chinese)]
    names = {n.lower() for n in (*alert.materials, *alert.countries)}
    actions = list(dict.fromkeys(g for t in chinese if (g := glossed.get(t)) and g.lower() not in names))
    head = " / ".join(category_label(c) for c in alert.categories) or "Alert"
    if alert.countries:
        head += f" ({', '.join(country_label(c) for c in alert.countries)})"
    body = "; ".join(part for part in (", ".join(actions), ", ".join(alert.materials)) if part)
    line = f"{head}: {body}" if body else head
    shown = [f"{t} → {glossed[t]}" if t in glossed else t for t in chinese[:GLOSS_TERMS_MAX]]
    if len(chinese) > GLOSS_TERMS_MAX:
        shown.append(f"+{len(chinese) - GLOSS_TERMS_MAX} more")
    if shown:
        line += " — matched: " + ", ".join(shown)
    line = " ".join(line.split())  # one line, whatever a gloss or a term holds
    return line if len(line) <= GLOSS_MAX else line[: GLOSS_MAX - 1].rstrip() + "…"


def category_label(category: str) -> str:
    """A category in English words: `trade-restrictions` -> "Trade restrictions"."""
    return category.replace("-", " ").capitalize()


def country_label(name: str) -> str:
    """A canonical country name capitalised: "democratic republic of the congo" -> "Democratic
    Republic of the Congo"."""
    words = name.split(" ")
    return " ".join(w if (i and w in _SMALL_WORDS) else w[:1].upper() + w[1:] for i, w in enumerate(words))


def _is_han(char: str) -> bool:
    o = ord(char)
    return 0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x3FFFF
