"""Which validation error is reported first, and what a misspelt key was meant to be."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rarewatch.ruleset.schema import Rule
from rarewatch.settings import Settings
from rarewatch.validation import error_message, known_keys, ordered_errors


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    within: int
    scope: str = "field"


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    items: list[Inner] = []
    maybe: Inner | None = None


def errors_of(data: object) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate(data)
    return caught.value


def test_an_unknown_key_is_reported_before_the_missing_field_it_was_meant_to_be() -> None:
    exc = errors_of({"name": "x", "items": [{"withn": 3}]})
    assert [e["type"] for e in exc.errors()] == ["missing", "extra_forbidden"], "pydantic's own order"
    first = ordered_errors(exc)[0]
    assert first["loc"] == ("items", 0, "withn")
    assert error_message(first, Outer) == (
        "Extra inputs are not permitted (unknown key 'withn'; did you mean 'within'?)"
    )


def test_other_errors_keep_their_order_and_lose_the_value_error_prefix() -> None:
    exc = errors_of({"items": [{"within": "many"}]})
    ordered = ordered_errors(exc)
    assert [e["loc"] for e in ordered] == [e["loc"] for e in exc.errors()]
    assert not error_message(ordered[0], Outer).startswith("Value error")


def test_no_suggestion_when_nothing_is_close() -> None:
    first = ordered_errors(errors_of({"name": "x", "zzzzzz": 1}))[0]
    assert error_message(first, Outer) == "Extra inputs are not permitted (unknown key 'zzzzzz')"


def test_known_keys_follow_fields_lists_and_optionals() -> None:
    assert known_keys(Outer, ()) == {"name", "items", "maybe"}
    assert known_keys(Outer, ("items", 2)) == {"within", "scope"}
    assert known_keys(Outer, ("maybe",)) == {"within", "scope"}


def test_known_keys_pass_through_pydantic_tags_of_the_real_models() -> None:
    assert "within" in known_keys(Rule, ("match", "<near>"))
    assert "allow_fast_poll" in known_keys(Settings, ("sources", 0, "feed"))
    assert "port" in known_keys(Settings, ("http",))


class Feed(BaseModel):
    type: Literal["feed"]


class Page(BaseModel):
    type: Literal["html"]


class Sources(BaseModel):
    source: Annotated[Feed | Page, Field(discriminator="type")]


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ({}, "missing key 'type', which says what kind of entry this is"),
        ({"type": "fed"}, "unknown type 'fed'; did you mean 'feed'? (known: feed, html)"),
        ({"type": "zzz"}, "unknown type 'zzz' (known: feed, html)"),
    ],
)
def test_a_missing_or_unknown_kind_is_said_in_the_operators_words(entry: object, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Sources.model_validate({"source": entry})
    assert error_message(ordered_errors(caught.value)[0], Sources) == expected
