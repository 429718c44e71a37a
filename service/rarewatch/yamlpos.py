"""YAML loading that remembers where each value came from, so errors can name file and line.

Both the configuration loader and the rule loader use it. The fast path composes the document with
libyaml (PyYAML's C parser, which records each node's position) and builds plain Python values itself,
with YAML 1.2 meanings. Whatever it is not sure of (a YAML error, a scalar that YAML 1.1 and 1.2 read
differently, a tag, a duplicate key, an alias bomb, deep nesting, a `%YAML` directive) goes to the slow
path, ruamel.yaml's round-trip loader: it gives the values and the error messages (with their lines)
exactly as before.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import yaml as pyyaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import CollectionEndEvent, CollectionStartEvent
from ruamel.yaml.nodes import ScalarNode as RuamelScalar
from ruamel.yaml.resolver import VersionedResolver
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

try:
    from yaml._yaml import CParser

    _LIBYAML = True
except ImportError:  # PyYAML built without libyaml: the slow path only
    _LIBYAML = False


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
            if isinstance(node, Node):
                found = _child(node, part)
                if found is not None:
                    line, node = found
                continue  # as below: a part that names no child (a pydantic tag) is skipped
            if isinstance(node, CommentedMap) and part in node:
                # A key brought in by a merge (`<<: *defaults`) has no position in this mapping: keep the
                # mapping's own line rather than fail.
                if part in node.lc.data:
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
    fast = _fast_documents(text)
    if fast is not None:
        return iter(fast)
    return _slow_documents(text)


def _slow_documents(text: str) -> Iterator[YamlDocument]:
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


# --- the fast path -------------------------------------------------------------------------------------


class _Unsure(Exception):
    """The fast path cannot promise the slow path's result: let the slow path decide."""


_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
# The scalars whose value both YAML versions and both libraries agree on; anything else is _Unsure.
_SIMPLE_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
_SIMPLE_FLOAT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)\.[0-9]+")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_MAX_LINE = 2_000  # libyaml's composer recurses in C: keep nesting far from the C stack's limit
# libyaml refuses flow nesting past its own limit by itself (a ScannerError, "exceeded maximum nesting
# depth": the slow path then reports MAX_DEPTH with its line), so this bound only keeps absurd files off the
# fast path. It counts every bracket, quoted or not, and a rule file's regexes hold hundreds: at 1,000
# (before session 27) the bundled trade rules came within a few dozen of it, and once crossed it.
_MAX_BRACKETS = 20_000
_RUAMEL_12 = VersionedResolver(version=(1, 2))
# ruamel picks a plain scalar's implicit patterns by its first character: one that starts with any other
# character is a string without asking the resolver (a configuration's names, URLs and most keys).
_PATTERNS_BY_FIRST = _RUAMEL_12.versioned_resolver
_NO_PATTERN = None not in _PATTERNS_BY_FIRST


def _plain_tag(value: str) -> str:
    """The tag of a plain scalar as ruamel reads it (YAML 1.2), when the fast path can build it."""
    if value and _NO_PATTERN and value[0] not in _PATTERNS_BY_FIRST:
        return _STR
    return _resolved_tag(value)


@functools.lru_cache(maxsize=4_096)
def _resolved_tag(value: str) -> str:
    """`_plain_tag` asked of ruamel's resolver; a file repeats its keys and values (`type: feed`)."""
    tag = str(_RUAMEL_12.resolve(RuamelScalar, value, (True, False)))
    if tag == _STR:
        return _STR
    if (
        (tag == _INT and _SIMPLE_INT.fullmatch(value))
        or (tag == _FLOAT and _SIMPLE_FLOAT.fullmatch(value))
        or (tag == _BOOL and value in _BOOLS)
        or (tag == _NULL and value in _NULLS)
    ):
        return tag
    raise _Unsure(value)


if _LIBYAML:

    class _Loader(CParser, pyyaml.resolver.BaseResolver):
        """libyaml's parser and composer, resolving plain scalars as ruamel does (YAML 1.2)."""

        def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
            if kind is ScalarNode and implicit[0]:
                return _plain_tag(value)
            return str(pyyaml.resolver.BaseResolver.resolve(self, kind, value, implicit))  # type: ignore[no-untyped-call]


def _nesting_is_bounded(text: str) -> bool:
    """Whether nesting is far too shallow to exhaust the C stack: each level of nesting needs a bracket
    or more indentation (at most two block levels per column)."""
    if text.count("[") + text.count("{") > _MAX_BRACKETS:
        return False
    return max((len(line) for line in text.splitlines()), default=0) <= _MAX_LINE


def _fast_documents(text: str) -> list[YamlDocument] | None:
    """The documents of `text` through libyaml, or None when the slow path must decide."""
    if not _LIBYAML or "%YAML" in text or not _nesting_is_bounded(text):
        return None
    loader = _Loader(text)
    docs = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            data = _build(node, _Budget(), 0)
            if data is None:
                continue
            start = node.start_mark.line + 1 if isinstance(node, MappingNode | SequenceNode) else 1
            docs.append(YamlDocument(data=data, node=node, start_line=start))
    except (_Unsure, pyyaml.YAMLError, YamlSyntaxError, RecursionError, ValueError):
        return None  # the slow path gives the value, or the error with its message and line
    finally:
        loader.dispose()
    return docs


def _build(node: Node, budget: _Budget, depth: int) -> Any:
    """Plain values of a composed node, as `_plain` makes them from ruamel's (aliases expanded)."""
    budget.spend(node.start_mark.line + 1)
    if depth > MAX_DEPTH:
        raise _Unsure("deep")
    if isinstance(node, ScalarNode):
        return _scalar(node)
    if isinstance(node, SequenceNode) and node.tag == _SEQ:
        return [_build(child, budget, depth + 1) for child in node.value]
    if isinstance(node, MappingNode) and node.tag == _MAP:
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _build(key_node, budget, depth + 1)
            if not isinstance(key, str | int | float | bool) or str(key) in result:
                raise _Unsure("key")  # a duplicate or a collection as a key: ruamel's message
            result[str(key)] = _build(value_node, budget, depth + 1)
        return result
    raise _Unsure(node.tag)


def _scalar(node: ScalarNode) -> Any:
    tag, value = node.tag, node.value
    if tag == _STR:
        return value
    if tag == _INT and _SIMPLE_INT.fullmatch(value):
        return int(value)
    if tag == _FLOAT and _SIMPLE_FLOAT.fullmatch(value):
        return float(value)
    if tag == _BOOL and value in _BOOLS:
        return _BOOLS[value]
    if tag == _NULL and value in _NULLS:
        return None
    raise _Unsure(tag)


def _child(node: Node, part: int | str) -> tuple[int, Node] | None:
    """The 1-based line and the node at `part` of a location, as `line_of` finds them in ruamel's nodes:
    a mapping's value is found on its key's line, a sequence's item on its own line."""
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            if _key_matches(key_node, part):
                return key_node.start_mark.line + 1, value_node
        return None
    if isinstance(node, SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        item: Node = node.value[part]
        return item.start_mark.line + 1, item
    return None


def _key_matches(key_node: Node, part: int | str) -> bool:
    if not isinstance(key_node, ScalarNode):
        return False
    if key_node.tag == _STR:
        return bool(key_node.value == part)
    return key_node.tag == _INT and isinstance(part, int) and int(key_node.value) == part
