"""Rule files -> a validated, compiled `Ruleset`. Every error is a `RuleError` naming file, line and rule.

Files and directories are accepted; a directory contributes its `*.yaml` and `*.yml` files, recursively,
in sorted order. Each YAML document is a rule (it has `id`) or a shared vocabulary (it has `vocabulary`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from rarewatch.errors import RuleError
from rarewatch.ruleset.cache import RulesetCache, cache_key
from rarewatch.ruleset.compile import ExpressionError, compile_rules
from rarewatch.ruleset.files import read_rule_files as read_rule_files
from rarewatch.ruleset.files import rule_files as rule_files
from rarewatch.ruleset.matcher import RuleOrigin, Ruleset
from rarewatch.ruleset.schema import Rule, Vocabulary
from rarewatch.validation import error_message, ordered_errors
from rarewatch.yamlpos import YamlDocument, YamlSyntaxError, load_documents

_KEY = re.compile(r"^[a-z_]+$")  # a YAML key of the schema, as opposed to a pydantic tag
_NAMED_KEYS = ("entries", "patterns")  # mappings whose keys are names the operator chose


M = TypeVar("M", Rule, Vocabulary)


@dataclass(frozen=True)
class _Located(Generic[M]):
    """A validated document and where it came from."""

    model: M
    file: str
    doc: YamlDocument

    def line_of(self, loc: Sequence[int | str]) -> int:
        return self.doc.line_of(loc)


def load_ruleset(paths: Sequence[Path], cache: RulesetCache | None = None) -> Ruleset:
    """Load, validate and compile the rules under `paths`; raise `RuleError` on the first problem.

    With a `cache`, a pack compiled earlier from the same files (names and contents) by the same code
    is read back from it instead, and a freshly compiled pack is stored in it.
    """
    files = read_rule_files(paths)
    if cache is None:
        return _compile(files, paths)
    key = cache_key(files)
    ruleset = cache.get(key)
    if ruleset is None:
        ruleset = _compile(files, paths)
        cache.put(key, ruleset)
    return ruleset


def load_texts(files: Sequence[tuple[str, str]]) -> Ruleset:
    """Validate and compile a pack given as (file name, YAML text) pairs (the API's backtest: a posted
    file beside the files in use); `RuleError` names the file and line, as `load_ruleset` does."""
    return _compile(files, [Path(name) for name, _ in files])


def compile_files(files: Sequence[tuple[str, str]], paths: Sequence[Path]) -> Ruleset:
    """Validate and compile the pack read from `paths` as `files` (`read_rule_files`), without a cache."""
    return _compile(files, paths)


def _compile(files: Sequence[tuple[str, str]], paths: Sequence[Path]) -> Ruleset:
    digests: list[str] = []
    rules: list[_Located[Rule]] = []
    vocabularies: list[_Located[Vocabulary]] = []
    for file, text in files:
        digests.append(hashlib.sha256(text.encode()).hexdigest())
        for doc in _parse(text, file):
            model = _validate(doc, file)
            if isinstance(model, Rule):
                rules.append(_Located(model, file, doc))
            else:
                vocabularies.append(_Located(model, file, doc))
    if not rules:
        raise RuleError(f"no rules found in {', '.join(str(p) for p in paths) or '(no paths)'}")
    by_id = _by_name(rules, lambda r: r.id, "rule id")
    vocab_docs = _by_name(vocabularies, lambda v: v.vocabulary, "vocabulary")
    vocab = {name: v.model for name, v in vocab_docs.items()}
    _check_glossaries(vocab_docs.values())
    try:
        compiled = compile_rules([r.model for r in rules], vocab)
    except ExpressionError as exc:
        if exc.vocabulary is not None:  # an option of a vocabulary: point into the vocabulary
            owner = vocab_docs[exc.vocabulary]
            raise RuleError(str(exc), file=owner.file, line=owner.line_of(exc.loc)) from None
        home = by_id[exc.rule_id]
        raise RuleError(str(exc), file=home.file, line=home.line_of(exc.loc), rule_id=exc.rule_id) from None
    # The version depends on the contents only: moving or renaming the pack does not change it.
    version = hashlib.sha256("".join(sorted(digests)).encode()).hexdigest()[:12]
    origins = {rule_id: _origin(r) for rule_id, r in by_id.items()}
    return Ruleset(compiled, version, origins, vocab)


def _parse(text: str, file: str) -> list[YamlDocument]:
    try:
        return list(load_documents(text))
    except YamlSyntaxError as exc:
        raise RuleError(str(exc), file=file, line=exc.line) from None


def _validate(doc: YamlDocument, file: str) -> Rule | Vocabulary:
    data = doc.data
    if not isinstance(data, dict):
        raise RuleError(
            "a document must be a rule (a mapping with `id`) or a vocabulary (with `vocabulary`)",
            file=file,
            line=doc.start_line,
        )
    kind: type[Rule | Vocabulary] = Vocabulary if "vocabulary" in data else Rule
    rule_id = data.get("id") if kind is Rule and isinstance(data.get("id"), str) else None
    try:
        model: Rule | Vocabulary = kind.model_validate(data)
    except ValidationError as exc:
        errors = ordered_errors(exc)  # a misspelt key first, before the field it was meant to be
        first = errors[0]
        message = _describe(first, len(errors) - 1, kind)
        raise RuleError(message, file=file, line=doc.line_of(first["loc"]), rule_id=rule_id) from None
    return model


def _describe(error: ErrorDetails, more: int, model: type[Rule | Vocabulary]) -> str:
    """A pydantic error as `path.to.value: message`, without pydantic's union tags ("<term>", "VocabRef")."""
    loc = error["loc"]
    # A glossary's keys (Chinese terms) and pattern names: keep them in the path (`entries.停产`,
    # `patterns.Bad_Name`), unlike pydantic's tags.
    path = ".".join(
        str(p)
        for i, p in enumerate(loc)
        if isinstance(p, int) or _KEY.match(p) or (i and loc[i - 1] in _NAMED_KEYS and "[" not in p)
    )
    msg = error_message(error, model)
    message = f"{path}: {msg}" if path else msg
    if more:
        message += f" (and {more} more error{'s' if more > 1 else ''})"
    return message


def _by_name(located: list[_Located[M]], name_of: Callable[[M], str], what: str) -> dict[str, _Located[M]]:
    """The documents by name; a `RuleError` at a second definition of a name, naming the first."""
    by_name: dict[str, _Located[M]] = {}
    for d in located:
        name = name_of(d.model)
        first = by_name.setdefault(name, d)
        if first is not d:
            raise RuleError(
                f"duplicate {what} {name!r} (first defined at {first.file}:{first.doc.start_line})",
                file=d.file,
                line=d.doc.start_line,
                rule_id=name if what == "rule id" else None,
            )
    return by_name


def _check_glossaries(vocabularies: Iterable[_Located[Vocabulary]]) -> None:
    """A term glossed twice must be glossed the same way: a `RuleError` at the second, naming the first."""
    seen: dict[str, tuple[str, str, int]] = {}
    for located in vocabularies:
        for key, gloss in located.model.entries.items():
            line = located.line_of(("entries", key))
            first = seen.setdefault(key, (gloss, located.file, line))
            if first[0] != gloss:
                raise RuleError(
                    f"entries.{key}: glossed {gloss!r} here but {first[0]!r} at {first[1]}:{first[2]}",
                    file=located.file,
                    line=line,
                )


def _origin(located: _Located[Rule]) -> RuleOrigin:
    examples = located.model.examples
    lines = {
        kind: tuple(located.line_of(("examples", kind, i)) for i in range(len(getattr(examples, kind))))
        for kind in ("match", "no_match")
    }
    return RuleOrigin(located.file, located.doc.start_line, lines)
