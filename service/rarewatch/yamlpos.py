"""YAML loading that remembers where each value came from, so errors can name file and line.

Both the configuration loader and the rule loader use it: parse with ruamel.yaml's round-trip loader
(which records positions), convert to plain Python values, and keep a `Locator` for error messages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError


class YamlSyntaxError(ValueError):
    """The text is not valid YAML. `line` is 1-based."""

    def __init__(self, message: str, line: int | None) -> None:
        self.line = line
        super().__init__(message)


@dataclass(frozen=True)
class YamlDocument:
    """One YAML document: plain data plus the positions of its values."""

    data: Any
    node: Any
    start_line: int  # 1-based line of the document's first value

    def line_of(self, loc: Sequence[int | str]) -> int:
        """The 1-based line of the value at `loc` (a pydantic error location), or of its nearest parent."""
        node = self.node
        line = self.start_line
        for part in loc:
            if isinstance(node, CommentedMap) and part in node:
                line = node.lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line = node.lc.item(part)[0] + 1
                node = node[part]
            else:
                # pydantic adds discriminator tags ("feed") and type names to locations: skip them.
                continue
        return line


def _plain(node: Any) -> Any:
    if isinstance(node, CommentedMap):
        return {str(k) if not isinstance(k, str) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)  # drop ruamel's scalar-string subclasses
    return node


def load_documents(text: str) -> Iterator[YamlDocument]:
    """Parse every document of a YAML stream; raise `YamlSyntaxError` with the line on bad YAML."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        for node in yaml.load_all(text):
            if node is None:
                continue
            start = 1
            if isinstance(node, CommentedMap | CommentedSeq) and node.lc.line is not None:
                start = node.lc.line + 1
            yield YamlDocument(data=_plain(node), node=node, start_line=start)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlSyntaxError(f"invalid YAML: {problem}", line) from None


def load_single(text: str) -> YamlDocument | None:
    """Parse a stream that must hold at most one document."""
    docs = list(load_documents(text))
    if len(docs) > 1:
        raise YamlSyntaxError("expected one YAML document, found several", docs[1].start_line)
    return docs[0] if docs else None
