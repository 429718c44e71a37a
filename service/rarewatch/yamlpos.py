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
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent


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


# Limits on what one document may expand to: an alias bomb ("billion laughs") is a few lines of YAML
# whose aliases expand to billions of values, and deep nesting exhausts the stack. Real configuration
# and rule files stay far below both.
MAX_VALUES = 500_000
MAX_DEPTH = 100


class _Budget:
    """Counts the values a document expands to (aliases count every time they are used)."""

    def __init__(self) -> None:
        self.values = 0

    def spend(self, line: int) -> None:
        self.values += 1
        if self.values > MAX_VALUES:
            raise YamlSyntaxError(
                f"YAML document expands to more than {MAX_VALUES} values (aliases used as a bomb?)", line
            )


def _plain(node: Any, budget: _Budget, depth: int = 0, line: int = 1) -> Any:
    if isinstance(node, CommentedMap | CommentedSeq) and node.lc.line is not None:
        line = node.lc.line + 1
    budget.spend(line)
    if depth > MAX_DEPTH:
        raise YamlSyntaxError(f"YAML nested more than {MAX_DEPTH} levels deep", line)
    if isinstance(node, CommentedMap):
        return {str(k): _plain(v, budget, depth + 1, line) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(v, budget, depth + 1, line) for v in node]
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
            yield YamlDocument(data=_plain(node, _Budget()), node=node, start_line=start)
    except MarkedYAMLError as exc:
        raise YamlSyntaxError(f"invalid YAML: {_problem(exc)}", _error_line(exc, text)) from None
    except RecursionError:
        # ruamel composes nested collections recursively: far deeper than MAX_DEPTH overflows the stack.
        raise YamlSyntaxError(f"YAML nested more than {MAX_DEPTH} levels deep", _deep_line(text)) from None


def _problem(exc: MarkedYAMLError) -> str:
    problem = exc.problem or exc.context or "invalid YAML"
    if exc.problem and exc.context_mark is not None and _opened_on_its_line(exc.context):
        problem = f"{problem} ({exc.context} that starts on line {exc.context_mark.line + 1})"
    return problem


def _error_line(exc: MarkedYAMLError, text: str) -> int | None:
    """The line to show for a YAML error: where the mistake is, not where the parser gave up.

    The parser notices an unclosed quote or bracket, or a key without its colon, only at the next token,
    often on the next line or at the end of the file; the construct it was reading (the context mark)
    starts on the line to fix. Otherwise, a problem found at the end of the stream is reported on the
    last line that has content.
    """
    problem, context = exc.problem_mark, exc.context_mark
    if context is not None and _opened_on_its_line(exc.context):
        return int(context.line) + 1
    if problem is None:
        return None
    line = int(problem.line)
    lines = text.splitlines()
    if line >= len(lines) or (problem.column == 0 and not lines[line].strip()):
        line = min(line, len(lines)) - 1
        while line > 0 and not lines[line].strip():
            line -= 1
    return line + 1


# Contexts whose start is the line to fix (the construct was left open), rather than an enclosing block.
_STARTED_ON_ITS_LINE = (
    "while scanning a quoted scalar",
    "while scanning a simple key",
    "while parsing a flow sequence",
    "while parsing a flow mapping",
    "while scanning a block scalar",
    "while scanning an anchor",
    "while scanning an alias",
    "while scanning a tag",
)


def _opened_on_its_line(context: str | None) -> bool:
    return context is not None and context.startswith(_STARTED_ON_ITS_LINE)


def _deep_line(text: str) -> int | None:
    """The line where nesting first exceeds MAX_DEPTH, found with ruamel's (non-recursive) event parser."""
    depth = 0
    try:
        for event in YAML(typ="rt").parse(text):
            if isinstance(event, CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    return int(event.start_mark.line) + 1
            elif isinstance(event, CollectionEndEvent):
                depth -= 1
    except MarkedYAMLError:
        return None
    return None


def load_single(text: str) -> YamlDocument | None:
    """Parse a stream that must hold at most one document."""
    docs = list(load_documents(text))
    if len(docs) > 1:
        raise YamlSyntaxError("expected one YAML document, found several", docs[1].start_line)
    return docs[0] if docs else None
