"""Pydantic models of rule files: strict (unknown keys are errors), frozen, validated at load.

A rule file holds YAML documents of two kinds: rules (with `id`) and shared vocabularies (with
`vocabulary`). A rule's `match` is a boolean expression; see `Expr`.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    model_validator,
)

from rarewatch.durations import parse_positive_duration
from rarewatch.models import Severity
from rarewatch.ruleset import chinese
from rarewatch.ruleset.forms import STEM_MARK, is_stem_word
from rarewatch.ruleset.text import canonical_term, is_cjk, is_word_char

Category = Literal[
    "export-licensing", "personnel-controls", "prosecution", "trade-restrictions", "supply-disruption"
]
FieldName = Literal["title", "summary", "content"]
CATEGORIES: tuple[str, ...] = get_args(Category)
FIELDS: tuple[FieldName, ...] = get_args(FieldName)
RuleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=100)]
VocabName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_term(term: str) -> str:
    key = canonical_term(term)
    if not any(c.isalnum() for c in key):
        raise ValueError(f"term {term!r} has no letter or digit")
    if " " not in key and len(key.rstrip(STEM_MARK)) <= 2 and all(is_word_char(c) for c in key):
        # Element symbols (EU, PR, Nd, Y) and two-letter words are never matched as bare tokens.
        raise ValueError(
            f"term {term!r} is one or two letters, which would match element symbols and short words "
            "anywhere; use a longer term, {term: ..., case_sensitive: true}, or a case-sensitive regex"
        )
    return _check_stems(term, key)


def _check_stems(term: str, key: str) -> str:
    for word in key.split(" "):
        if STEM_MARK in word and not is_stem_word(word):
            raise ValueError(
                f"term {term!r}: `~` marks the end of a Latin word of two or more letters (`ban~`, "
                "`halt~ production`)"
            )
    return term


def _check_short_term(term: str) -> str:
    """A negator may be a two-letter word ("no"): it never makes a rule fire, it only cancels hits."""
    key = canonical_term(term)
    if not any(c.isalnum() for c in key):
        raise ValueError(f"term {term!r} has no letter or digit")
    if " " not in key and len(key) < 2 and all(is_word_char(c) for c in key):
        raise ValueError(f"negator {term!r} is a single letter")
    return _check_stems(term, key)


def _check_phrase(phrase: str) -> str:
    key = canonical_term(phrase)
    if STEM_MARK in key and phrase != phrase.lower():
        raise ValueError(f"exclusion {phrase!r}: a capitalised (case-sensitive) exclusion cannot use `~`")
    _check_stems(phrase, key)
    if len(key) < (2 if any(is_cjk(c) for c in key) else 3) or not any(c.isalnum() for c in key):
        raise ValueError(f"exclusion {phrase!r} is too short")
    return phrase


Term = Annotated[str, AfterValidator(_check_term)]
ShortTerm = Annotated[str, AfterValidator(_check_short_term)]
Phrase = Annotated[str, AfterValidator(_check_phrase)]


class CasedTerm(_Strict):
    """`{term: US, case_sensitive: true}`: found only with its capitals as written ("US", not "us").
    Two letters are enough here, since case tells the symbol or acronym from the word."""

    term: str
    case_sensitive: bool

    @model_validator(mode="after")
    def _valid(self) -> CasedTerm:
        key = canonical_term(self.term)
        if STEM_MARK in key:
            raise ValueError(f"term {self.term!r}: `~` forms cannot be case-sensitive")
        if not self.case_sensitive:
            _check_term(self.term)
        elif len(key) < 2 or not any(c.isalnum() for c in key):
            raise ValueError(f"case-sensitive term {self.term!r} needs two or more characters")
        return self


def _term_kind(value: Any) -> str:
    return "<cased>" if isinstance(value, dict | CasedTerm) else "<term>"


TermLike = Annotated[
    Annotated[Term, Tag("<term>")] | Annotated[CasedTerm, Tag("<cased>")],
    Discriminator(_term_kind),
]


class VocabRef(_Strict):
    """`{vocab: name}`: any term of a shared vocabulary."""

    vocab: VocabName


# `{{name}}` in a regex: a named pattern of a `kind: patterns` vocabulary, expanded when the pack compiles.
PLACEHOLDER = re.compile(r"\{\{([^{}]*)\}\}")


def _nfkc_regex(source: str, flags: int = 0) -> re.Pattern[str]:
    """`source` compiled as the matcher compiles it (NFKC, like the text it searches); `ValueError`
    naming it when it is invalid, or when it holds a Traditional character (it could never match)."""
    _check_simplified(source)
    try:
        return re.compile(unicodedata.normalize("NFKC", source), flags)
    except re.error as exc:
        raise ValueError(f"invalid regex {source!r}: {exc}") from None


def _check_simplified(source: str) -> None:
    """Regexes search the text after its Traditional characters are converted to Simplified
    (`chinese.to_simplified`), so a Traditional character in a pattern is never found: say so at load
    rather than let the rule stay silent (its examples would only report that they did not fire)."""
    if source.isascii() or not chinese.has_traditional(source):
        return
    simplified = chinese.to_simplified(source)
    changed = "".join(sorted({a for a, b in zip(source, simplified, strict=True) if a != b}))
    raise ValueError(
        f"regex {source!r} holds Traditional characters ({changed}) that it can never match: text is "
        f"converted to Simplified before regexes search it; write {simplified!r}"
    )


BRACES_KEPT = "`{{` and `}}` are kept for named patterns, written {{name}}"


def has_braces(source: str) -> bool:
    """Whether `source` holds `{{` or `}}`: before expansion, a named pattern; after, a stray brace pair."""
    return "{{" in source or "}}" in source


def check_fragment_regex(source: str) -> None:
    """A named pattern's regex, its own named patterns expanded: `ValueError` when it is invalid or holds
    Traditional characters (it may match the empty string: it is an optional part of a larger regex)."""
    _nfkc_regex(source)


def compile_regex(source: str, case_sensitive: bool) -> re.Pattern[str]:
    """A rule's regex as the matcher compiles it; `ValueError` when it is invalid or matches the empty
    string (it would then match every item)."""
    pattern = _nfkc_regex(source, 0 if case_sensitive else re.IGNORECASE)
    if pattern.search(""):
        raise ValueError(f"regex {source!r} matches the empty string, so it would match every item")
    return pattern


class RegexLeaf(_Strict):
    """`{regex: "..."}`: a Python regex searched in the displayed (NFKC) text, case-insensitive by default.

    `{{name}}` stands for a named pattern (see `Vocabulary.patterns`); a regex using one is checked
    once the pack's patterns are known, when the pack compiles."""

    regex: str
    case_sensitive: bool = False

    @model_validator(mode="after")
    def _compiles(self) -> RegexLeaf:
        if "{{" not in self.regex:
            compile_regex(self.regex, self.case_sensitive)
        return self


NearSide = Term | VocabRef | Annotated[list[Term | VocabRef], Field(min_length=1)]


Scope = Literal["field", "sentence", "clause"]


class NearLeaf(_Strict):
    """`{near: [A, B], within: N, scope: clause}`: A and B in one field, either order, with at most N
    words between them (N characters when either term is CJK) and, with `scope`, no sentence or clause
    boundary between them (see `clauses`). The default scope is the field."""

    near: tuple[NearSide, NearSide]
    within: int = Field(ge=1, le=1000)
    scope: Scope = "field"


class Negation(_Strict):
    """`negated_by: {terms: [...], before: 3, after: 0}`: a hit of a term with one of these negators
    or hedges at most `before` words before it (or `after` words after it), in the same clause and
    field, does not count. The other hits of the same term still do. CJK distances are in characters:
    `before_cjk`/`after_cjk`, twice the word distance unless given. `null` turns a side off."""

    terms: Annotated[list[ShortTerm | VocabRef], Field(min_length=1)]
    before: int | None = Field(default=3, ge=0, le=20)
    after: int | None = Field(default=None, ge=0, le=20)
    before_cjk: int | None = Field(default=None, ge=0, le=40)
    after_cjk: int | None = Field(default=None, ge=0, le=40)

    def window(self) -> tuple[int | None, int | None, int | None, int | None]:
        """(before, before_cjk, after, after_cjk) with the CJK defaults filled in."""

        def cjk(given: int | None, words: int | None) -> int | None:
            return given if given is not None else (None if words is None else 2 * words)

        return self.before, cjk(self.before_cjk, self.before), self.after, cjk(self.after_cjk, self.after)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, dict) else value


Negations = Annotated[tuple[Negation, ...], BeforeValidator(_one_or_many)]


class Group(_Strict):
    """`{all: [...], any: [...], none: [...]}`: every key given must hold (all of, one of, none of)."""

    all: Annotated[list[Expr], Field(min_length=1)] | None = None
    any: Annotated[list[Expr], Field(min_length=1)] | None = None
    none: Annotated[list[Expr], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> Group:
        if self.all is None and self.any is None and self.none is None:
            raise ValueError("a group needs at least one of all, any, none")
        return self


def _expr_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "<term>"
    if isinstance(value, BaseModel):
        return _MODEL_TAGS.get(type(value))
    if isinstance(value, dict):
        for key, tag in (("regex", "<regex>"), ("near", "<near>"), ("vocab", "<vocab>"), ("term", "<cased>")):
            if key in value:
                return tag
        if value.keys() & {"all", "any", "none"}:
            return "<group>"
    return None


# Tags are written "<kind>" so that they never look like a key of the YAML (see `yamlpos.line_of`).
_MODEL_TAGS: dict[type[BaseModel], str] = {
    Group: "<group>",
    RegexLeaf: "<regex>",
    NearLeaf: "<near>",
    VocabRef: "<vocab>",
    CasedTerm: "<cased>",
}

Expr = Annotated[
    Annotated[Term, Tag("<term>")]
    | Annotated[Group, Tag("<group>")]
    | Annotated[RegexLeaf, Tag("<regex>")]
    | Annotated[NearLeaf, Tag("<near>")]
    | Annotated[VocabRef, Tag("<vocab>")]
    | Annotated[CasedTerm, Tag("<cased>")],
    Discriminator(
        _expr_kind,
        custom_error_type="expression",
        custom_error_message=(
            "expected a term (string), {all|any|none: [...]}, {regex: ...}, {near: [A, B], within: N}, "
            "{vocab: name} or {term: ..., case_sensitive: true}"
        ),
    ),
]
Group.model_rebuild()


class ExampleItem(_Strict):
    """An example story; `source` defaults to the rule's first source when the rule has `sources`."""

    title: str = ""
    summary: str = ""
    content: str = ""
    source: str | None = None

    @model_validator(mode="after")
    def _has_text(self) -> ExampleItem:
        if not (self.title or self.summary or self.content):
            raise ValueError("an example needs a title, summary or content")
        return self


Example = Annotated[str, Field(min_length=1)] | ExampleItem


class Examples(_Strict):
    """Stories the rule must match, and stories it must not; `rarewatch rules check` runs them."""

    match: tuple[Example, ...] = ()
    no_match: tuple[Example, ...] = ()


def _severity(value: Any) -> Severity:
    if isinstance(value, Severity):
        return value
    if not isinstance(value, str):
        raise ValueError("severity must be one of info|low|medium|high|critical")
    return Severity.parse(value)


def _unique(values: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(values)) != len(values):
        raise ValueError("values must be unique")
    return values


class Throttle(_Strict):
    """At most `max` alerts from this rule per `per` (a duration); the excess is recorded, not sent."""

    max: int = Field(ge=1)
    per: Annotated[timedelta, BeforeValidator(parse_positive_duration)]


class Rule(_Strict):
    """One rule: when `match` holds for an item, an alert of `category` and `severity` is raised."""

    id: RuleId
    title: str = Field(min_length=1)
    category: Category
    severity: Annotated[Severity, PlainValidator(_severity)]
    description: str = ""
    match: Expr
    fields: Annotated[tuple[FieldName, ...], Field(min_length=1), AfterValidator(_unique)] = FIELDS
    sources: Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(min_length=1)] | None = None
    tags: tuple[str, ...] = ()
    examples: Examples = Examples()
    # Options of the terms written in `match` itself (a vocabulary's terms take the vocabulary's).
    exclude: tuple[Phrase, ...] = ()
    negated_by: Negations = ()
    throttle: Throttle | None = None


EntityKind = Literal["materials", "countries"]
VocabKind = Literal["materials", "countries", "negators", "glossary", "watch", "patterns"]
ENTITY_KINDS: tuple[str, ...] = get_args(EntityKind)
EntityName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9 ()./-]*$", max_length=100)]
GLOSS_MAX = 80


def _check_gloss_key(key: str) -> str:
    """A glossary key: Chinese, Simplified (the text is converted before matching), no spaces."""
    if key != key.strip() or not key or any(c.isspace() for c in key):
        raise ValueError(f"glossary key {key!r} must be one term without spaces")
    if not any(is_cjk(c) for c in key):
        raise ValueError(f"glossary key {key!r} has no Chinese character: glosses are for Chinese terms")
    if len(key) > 40:
        raise ValueError(f"glossary key {key!r} is longer than 40 characters")
    simplified = chinese.to_simplified(key)
    if simplified != key:
        raise ValueError(
            f"glossary key {key!r} is in Traditional script: write it in Simplified ({simplified!r}); "
            "Traditional text is converted before it is glossed"
        )
    return key


def _check_gloss(gloss: str) -> str:
    """A gloss: a short English phrase on one line."""
    if not gloss.strip() or gloss != gloss.strip():
        raise ValueError(f"gloss {gloss!r} must be non-empty, without leading or trailing spaces")
    if any(c in gloss for c in "\n\r\t"):
        raise ValueError(f"gloss {gloss!r} must be on one line")
    if any(is_cjk(c) for c in gloss):
        raise ValueError(f"gloss {gloss!r} must be English, not Chinese")
    if len(gloss) > GLOSS_MAX:
        raise ValueError(f"gloss {gloss!r} is longer than {GLOSS_MAX} characters")
    return gloss


GlossKey = Annotated[str, AfterValidator(_check_gloss_key)]
Gloss = Annotated[str, AfterValidator(_check_gloss)]
_PATTERN_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


def _check_pattern_name(name: str) -> str:
    if not _PATTERN_NAME.match(name) or len(name) > 60:
        raise ValueError(
            f"pattern name {name!r} must be lower-case words joined by hyphens (named-country-en)"
        )
    return name


PatternName = Annotated[str, AfterValidator(_check_pattern_name)]


def _check_fragment(fragment: str) -> str:
    """A named pattern: a regex on its own (it is spliced into rules' regexes as `(?:fragment)`). One
    that uses other named patterns (`{{name}}`) is checked when the pack compiles, once they are
    expanded (`compile._named_patterns`)."""
    if not has_braces(fragment):
        check_fragment_regex(fragment)
    return fragment


Fragment = Annotated[str, Field(min_length=1), AfterValidator(_check_fragment)]


class Vocabulary(_Strict):
    """`{vocabulary: name, terms: [...]}`: a shared list of synonyms, referenced as `{vocab: name}`.

    Options, applied to the terms of this vocabulary wherever it is used:

    * `exclude`: phrases containing a term, in which that term does not count ("Graphite Capital").
      A phrase with a capital letter is matched case-sensitively; an all-lower-case phrase in any case.
    * `negated_by`: negators and hedges that cancel the hit they precede (see `Negation`).
    * `kind` + `entities`: canonical names, each with its synonyms (the name itself is one), reported
      by `Ruleset.entities`. All synonyms are terms of the vocabulary, along with `terms`.
    * `kind: negators`: a list of negators or hedges for `negated_by`. Its terms may be two-letter
      words ("no", "if"); rules cannot use it as a subject or action.
    * `kind: glossary` + `entries`: English glosses of Chinese terms (`{不可靠实体清单: unreliable
      entity list}`), for the one-line English gloss of Chinese alerts. Not terms: nothing matches
      on them, and rules cannot reference the vocabulary.
    * `kind: watch`: agencies, lists and controls worth a closer look (`terms` only): an item that names
      one, or a material, but fires no rule is worth reading in full (`Ruleset.worth_enriching`).
    * `kind: patterns` + `patterns`: named regex fragments (`{named-country-en: "(?:US|Japan|...)"}`),
      written `{{named-country-en}}` inside any rule's `regex`, so a long alternation or a set of
      look-behinds has one home. Not terms: rules cannot reference the vocabulary with `{vocab: ...}`.
    """

    vocabulary: VocabName
    description: str = ""
    terms: tuple[ShortTerm | CasedTerm, ...] = ()
    kind: VocabKind | None = None
    entities: dict[EntityName, tuple[TermLike, ...]] = Field(default_factory=dict)
    entries: dict[GlossKey, Gloss] = Field(default_factory=dict)
    patterns: dict[PatternName, Fragment] = Field(default_factory=dict)
    exclude: tuple[Phrase, ...] = ()
    negated_by: Negations = ()

    @model_validator(mode="after")
    def _consistent(self) -> Vocabulary:
        if (self.kind == "patterns") != bool(self.patterns):
            raise ValueError("`patterns` need `kind: patterns`, and that kind needs `patterns`")
        if self.kind == "patterns":
            if self.terms or self.entities or self.entries or self.exclude or self.negated_by:
                raise ValueError(
                    "a vocabulary of patterns holds `patterns` only (no `terms`, `entities`, `entries`, "
                    "`exclude` or `negated_by`)"
                )
            return self
        if (self.kind == "glossary") != bool(self.entries):
            raise ValueError("`entries` need `kind: glossary`, and a glossary needs `entries`")
        if self.kind == "glossary":
            if self.terms or self.entities or self.exclude or self.negated_by:
                raise ValueError(
                    "a glossary holds `entries` only (no `terms`, `entities`, `exclude` or `negated_by`)"
                )
            return self
        if not self.terms and not self.entities:
            raise ValueError("a vocabulary needs `terms` or `entities`")
        if (self.kind in ENTITY_KINDS) != bool(self.entities):
            raise ValueError(
                "`entities` need `kind: materials` or `kind: countries`, and those kinds need entities"
            )
        if self.kind == "watch" and not self.terms:
            raise ValueError("a vocabulary of `kind: watch` needs `terms`")
        if self.kind == "negators":
            if self.negated_by:
                raise ValueError("a vocabulary of negators cannot itself be `negated_by`")
        else:  # two-letter words are for negators only ("no"): anywhere else they are symbols
            for term in self.terms:
                if isinstance(term, str):
                    _check_term(term)
        return self

    def all_terms(self) -> tuple[TermLike, ...]:
        """Every term of the vocabulary: `terms`, then each entity's name and synonyms."""
        found: list[TermLike] = list(self.terms)
        for name, synonyms in self.entities.items():
            found.append(name)
            found.extend(synonyms)
        return tuple(found)
