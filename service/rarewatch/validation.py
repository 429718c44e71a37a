"""Pydantic validation errors made readable: which one to report first, and what a misspelt key meant.

Both the configuration loader and the rule loader report one error. A misspelt key (`withn`) produces
two: the unknown key, and the missing field it was meant to be (`within`). The unknown key is the
cause, so it comes first, with the nearest known key as a suggestion.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

UNKNOWN_KEY = "extra_forbidden"
_TAG_ERRORS = {"union_tag_not_found", "union_tag_invalid"}


def ordered_errors(exc: ValidationError) -> list[ErrorDetails]:
    """The errors of `exc`, unknown keys first, otherwise in pydantic's order."""
    errors = exc.errors()
    return sorted(errors, key=lambda e: e["type"] != UNKNOWN_KEY)


def error_message(error: ErrorDetails, model: type[BaseModel]) -> str:
    """The error's message without pydantic's "Value error, " prefix; an unknown key gets a suggestion."""
    msg = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] in _TAG_ERRORS:
        return _tag_message(error)
    if error["type"] != UNKNOWN_KEY or not error["loc"]:
        return msg
    key = str(error["loc"][-1])
    known = known_keys(model, error["loc"][:-1])
    guess = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    hint = f"; did you mean {guess[0]!r}?" if guess else ""
    return f"{msg} (unknown key {key!r}{hint})"


def _tag_message(error: ErrorDetails) -> str:
    """Pydantic's discriminator errors ("Unable to extract tag using discriminator 'type'") in the
    operator's words: the key that says what kind an entry is is missing, or names an unknown kind."""
    ctx = error.get("ctx") or {}
    key = str(ctx.get("discriminator", "'type'")).strip("'")
    if error["type"] == "union_tag_not_found":
        return f"missing key {key!r}, which says what kind of entry this is"
    expected = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip()]
    tag = str(ctx.get("tag", ""))
    guess = difflib.get_close_matches(tag, expected, n=1, cutoff=0.6)
    hint = f"; did you mean {guess[0]!r}?" if guess else ""
    return f"unknown {key} {tag!r}{hint} (known: {', '.join(expected)})"


def known_keys(model: type[BaseModel], loc: Sequence[int | str]) -> set[str]:
    """The field names valid at `loc` (a pydantic error location) under `model`.

    A location passes through unions, lists and pydantic's tags ("feed", "<near>"); where a step is not a
    field name it is skipped, and where a union leaves several models their fields are pooled.
    """
    candidates = {model}
    for part in loc:
        if not isinstance(part, str):
            continue
        found = {
            inner
            for m in candidates
            if part in m.model_fields
            for inner in _models_in(m.model_fields[part].annotation)
        }
        if any(part in m.model_fields for m in candidates):
            candidates = found
    return {name for m in candidates for name in m.model_fields}


def _models_in(annotation: Any) -> set[type[BaseModel]]:
    """The pydantic models an annotation can hold (through Optional, unions, lists, dicts, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {annotation}
    if get_origin(annotation) is None:
        return set()
    # Annotated's metadata (Field, Discriminator) holds no models, so every argument can be searched.
    return {m for arg in get_args(annotation) for m in _models_in(arg)}
