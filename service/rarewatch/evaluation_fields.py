"""The item fields an evaluation report can be split by: apart from `evaluation`, so that the command
line can offer them (`rarewatch eval --by`) without importing the scorer and the rule pack."""

from __future__ import annotations

BY_FIELDS: tuple[str, ...] = ("lang", "script", "origin")
"""The item fields a report can be split by (`--by`)."""
