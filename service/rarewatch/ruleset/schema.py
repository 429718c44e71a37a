"""Pydantic models of rule files: strict (unknown keys are errors), frozen, validated at load.

A rule file holds YAML documents of two kinds: rules (with `id`) and shared vocabularies (with
`vocabulary`). A rule's `match` is a boolean expression; see `Expr`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    model_validator,
)

from rarewatch.models import Severity
from rarewatch.ruleset.text import canonical_term, is_word_char

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
    if " " not in key and len(key) <= 2 and all(is_word_char(c) for c in key):
        # Element symbols (EU, PR, Nd, Y) and two-letter words are never matched as bare tokens.
        raise ValueError(
            f"term {term!r} is one or two letters, which would match element symbols and short words "
            "anywhere; use a longer term, or a case-sensitive regex ({regex: ..., case_sensitive: true})"
        )
    return term


Term = Annotated[str, AfterValidator(_check_term)]


class VocabRef(_Strict):
    """`{vocab: name}`: any term of a shared vocabulary."""

    vocab: VocabName


class RegexLeaf(_Strict):
    """`{regex: "..."}`: a Python regex searched in the displayed (NFKC) text, case-insensitive by default."""

    regex: str
    case_sensitive: bool = False

    @model_validator(mode="after")
    def _compiles(self) -> RegexLeaf:
        flags = 0 if self.case_sensitive else re.IGNORECASE
        try:  # compiled as the matcher will compile it: NFKC, like the text it searches
            pattern = re.compile(unicodedata.normalize("NFKC", self.regex), flags)
        except re.error as exc:
            raise ValueError(f"invalid regex {self.regex!r}: {exc}") from None
        if pattern.search(""):
            raise ValueError(f"regex {self.regex!r} matches the empty string, so it would match every item")
        return self


NearSide = Term | VocabRef | Annotated[list[Term | VocabRef], Field(min_length=1)]


class NearLeaf(_Strict):
    """`{near: [A, B], within: N}`: A and B in one field, either order, with at most N words between
    them (N characters when either term is CJK)."""

    near: tuple[NearSide, NearSide]
    within: int = Field(ge=1, le=1000)


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
        for key in ("regex", "near", "vocab"):
            if key in value:
                return f"<{key}>"
        if value.keys() & {"all", "any", "none"}:
            return "<group>"
    return None


# Tags are written "<kind>" so that they never look like a key of the YAML (see `yamlpos.line_of`).
_MODEL_TAGS: dict[type[BaseModel], str] = {
    Group: "<group>",
    RegexLeaf: "<regex>",
    NearLeaf: "<near>",
    VocabRef: "<vocab>",
}

Expr = Annotated[
    Annotated[Term, Tag("<term>")]
    | Annotated[Group, Tag("<group>")]
    | Annotated[RegexLeaf, Tag("<regex>")]
    | Annotated[NearLeaf, Tag("<near>")]
    | Annotated[VocabRef, Tag("<vocab>")],
    Discriminator(
        _expr_kind,
        custom_error_type="expression",
        custom_error_message=(
            "expected a term (string), {all|any|none: [...]}, {regex: ...}, {near: [A, B], within: N} "
            "or {vocab: name}"
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


class Vocabulary(_Strict):
    """`{vocabulary: name, terms: [...]}`: a shared list of synonyms, referenced as `{vocab: name}`."""

    vocabulary: VocabName
    description: str = ""
    terms: Annotated[tuple[Term, ...], Field(min_length=1)]
