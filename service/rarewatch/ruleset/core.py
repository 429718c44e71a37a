"""The match core of a compiled rule pack: what `rarewatch match` needs to say which rules fire on an
item and to print them, and nothing else (no rule models, no vocabularies, no origins, no examples).

A `Ruleset` holds its core and asks it which rules fire, so both answer alike by construction. The rule
cache stores the core in an entry of its own, which unpickles without importing pydantic, the rule
schema or the compiler: reading back the whole pack (its pydantic rule models) and importing what they
need was most of `match`'s start-up. Anything that needs more than which rules fire (`--explain`, the
examples, the API, a configuration's route check) loads the whole `Ruleset`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from rarewatch.ruleset import chinese
from rarewatch.ruleset.nodes import AllOf, AnyOf, Near, Node, NoneOf, Regex, Scan, TermSet
from rarewatch.ruleset.scanning import Scanner


@dataclass(frozen=True, slots=True)
class CoreRule:
    """One rule as matching sees it: its expression and conditions, and what an output line says."""

    id: str
    category: str
    severity: str  # the severity's label ("high"), as printed
    fields: int  # bit mask: 1 title, 2 summary, 4 content
    sources: frozenset[str] | None
    expr: Node
    required: tuple[frozenset[int], ...] = ()  # term sets that must each be found for the rule to fire


# The key of `chinese.traditional_chars` in a pickled core: worked out once when the pack is compiled,
# then read back with it (its cache key names OpenCC's version), not made again by converting every
# character at each start.
_CHARS = "_traditional_chars"


class MatchCore:
    """Which rules of a pack fire on an item. Built by `Ruleset` from its compiled pack."""

    def __init__(
        self,
        rules: Sequence[CoreRule],
        triggers: Mapping[int, tuple[int, ...]],
        always: frozenset[int],
        scanner: Scanner,
    ) -> None:
        self.rules = tuple(rules)  # sorted by rule id, as the compiled pack's
        self._triggers = triggers
        self._always = always
        self._scanner = scanner
        self._tests = self._lazy_tests()

    def __getstate__(self) -> dict[str, object]:
        """The rules' compiled tests (functions made at run time) do not pickle: they are made again.
        The characters the Traditional to Simplified conversion changes go with the pack (`_CHARS`)."""
        state = {k: v for k, v in self.__dict__.items() if k != "_tests"}
        state[_CHARS] = chinese.traditional_chars()
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        """Unpickling (the rule cache) skips `__init__`: hand the Chinese tables the characters pickled with
        the pack (no OpenCC), and make the rules' tests again, each when an item first reaches its rule."""
        chars = state.pop(_CHARS, None)
        self.__dict__.update(state)
        self._tests = self._lazy_tests()
        chinese.warm_up(chars if isinstance(chars, str) else None)

    def _lazy_tests(self) -> list[RuleTest]:
        """A stand-in per rule (`_FirstCall`) that compiles the rule's test when first called: a process
        that matches nothing (a steady `once`, every feed unchanged) compiles none (about 20 ms for the
        bundled pack's 17), and each later call is the compiled test's own."""
        return [_FirstCall(self, index) for index in range(len(self.rules))]

    def _compile(self, index: int) -> RuleTest:
        """Rule `index`'s test, compiled and put in place of its stand-in."""
        test = self._tests[index] = compile_test(self.rules[index].expr)
        return test

    @property
    def tests(self) -> Sequence[RuleTest]:
        """Each rule's expression as one function (`compile_test`), in the order of `rules`."""
        return self._tests

    def cannot_fire(self, search: str) -> bool:
        """See `Ruleset.cannot_fire`."""
        return not self._always and not self._scanner.gate_open(search)

    def gate_closed_lines(self, folded: bytes) -> list[bool]:
        """See `Ruleset.gate_closed_lines`."""
        maybe = None if self._always else self._scanner.gate_may_open_lines(folded)
        if maybe is None:
            return [False] * (folded.count(b"\n") + 1)
        return [not m for m in maybe]

    def gate_may_open(self, search: str) -> bool:
        """Whether a key that can open the gate occurs in `search` (see `cannot_fire`), even off its word
        boundaries: False says no rule fires, for one quick automaton call (True without a gate, as in a
        pack with rules anchored on no term)."""
        return self._scanner.gate_may_open(search)

    def firing_rules_gated(
        self, plain: Sequence[str], search: str, source: str | None = None
    ) -> list[CoreRule]:
        """The rules that fire on an item, sorted by id: the rules of `Ruleset.match_fields`' matches, for
        a caller that needs no more (`rarewatch match` without `--explain`) and has asked `gate_may_open`.
        `plain`: the plain texts of title, summary and content; `search`: their search texts as
        `cannot_fire` takes them, already computed for the quick gate. [] when the gate is closed, as read
        from the term pass's own hits (`Scanner.scan_gated`), which spares the gate's own pass on the
        items that open it. Skips what a `Match` costs beyond that (its evidence and snippet, about a
        quarter of a firing item's time), and normalising the texts a second time."""
        scan = self._scanner.scan_gated(plain, search)
        return [] if scan is None else self._firing(scan, source)

    def _firing(self, scan: Scan, source: str | None) -> list[CoreRule]:
        """The rules that fire on the item of `scan` (unfiltered: filtered here when a rule may fire)."""
        candidates = candidate_indexes(self.rules, self._triggers, self._always, scan.masks, source)
        if not candidates:
            return []
        self._scanner.filter(scan)
        rules, tests, found_in = self.rules, self._tests, scan.found_in
        return [rules[i] for i in candidates if tests[i](scan, rules[i].fields, found_in(rules[i].fields))]


# A rule's expression as one function: `test(scan, fields, scan.found_in(fields))`.
RuleTest = Callable[[Scan, int, frozenset[int]], bool]


class _FirstCall:
    """A rule's test until its first call, which compiles the test (`MatchCore._compile`) and answers
    with it. An object, not a closure: it holds its core and index only (a closure would hold this
    module's globals)."""

    __slots__ = ("core", "index")

    def __init__(self, core: MatchCore, index: int) -> None:
        self.core = core
        self.index = index

    def __call__(self, scan: Scan, fields: int, found: frozenset[int]) -> bool:
        return self.core._compile(self.index)(scan, fields, found)


def compile_test(expr: Node) -> RuleTest:
    """`expr.test` as one Python function: `all`, `any` and `none` become `and`, `or` and `not`, in the
    order of their children, and a term set one set test against the terms found in the rule's fields
    (worked out once per rule, not once per term set); a `near` is called only when both its sides were
    found there (the set test of each first), and a regex with required literals only when the item
    holds them (a set test per need against the literals found, found once per item and only when a
    test first gets that far), then searched without asking them again. What it answers is
    `expr.test(scan, fields)`, its children tried cheapest first as there, except that an `all` tries its
    `none` children last (`_test_order`): an item that opens the gate wakes a few rules of a few hundred
    nodes each, and the calls of a tree of nodes were most of their cost."""
    constants: list[object] = []
    source = f"def test(scan, fields, found):\n    return {_source(expr, constants)}\n"
    namespace: dict[str, object] = {f"c{i}": c for i, c in enumerate(constants)}
    exec(compile(source, "<rule test>", "exec"), namespace)  # our own source: no input in it
    test: RuleTest = namespace["test"]  # type: ignore[assignment]
    return test


def _source(node: Node, constants: list[object]) -> str:
    """The Python expression of `node.test(scan, fields)`, its objects named `c0`, `c1`… in `constants`."""
    if isinstance(node, AllOf | AnyOf | NoneOf):
        parts = [_source(child, constants) for child in _test_order(node)]
        if isinstance(node, AllOf):
            return "(" + " and ".join(parts) + ")" if parts else "True"
        either = "(" + " or ".join(parts) + ")" if parts else "False"
        return either if isinstance(node, AnyOf) else f"(not {either})"
    if isinstance(node, Near):
        # A `near` holds only where both its sides were found in the rule's fields: two set tests, before
        # its hits are gathered and paired (most `near`s an item wakes miss a side).
        left, right = _term_test(node.left.tids, constants), _term_test(node.right.tids, constants)
        return f"({left} and {right} and {_constant(node, constants)}.test(scan, fields))"
    if isinstance(node, TermSet):
        return _term_test(node.tids, constants)
    if isinstance(node, Regex) and node.needs is not None and node.index is not None:
        # Most regexes an item's rules ask lack a literal there: two set tests spare the search, and the
        # calls `Regex.test` would make to find that out (`Regex._needs_met`).
        index = _constant(node.index, constants)
        lits = (
            f"((lits := scan.literal_ids) is not None or (lits := scan.fill_literals({index})) is not None)"
        )
        needs = [f"not {_constant(need, constants)}.isdisjoint(lits)" for need in node.needs]
        # An ASCII item cannot hold a need of Chinese literals: the flag spares it the literal pass (the
        # Chinese rules' regexes are asked of English items that name a material).
        script = ["not scan.ascii"] if node.needs_cjk else []
        return (
            "("
            + " and ".join([*script, lits, *needs, f"{_constant(node, constants)}.searched(scan, fields)"])
            + ")"
        )
    return f"{_constant(node, constants)}.test(scan, fields)"


def _test_order(node: AllOf | AnyOf | NoneOf) -> Sequence[Node]:
    """The order `node`'s children are tried in: cheapest first (`_Group`), except that in an `all` its
    `none` children come last. A `none` holds on almost every item that gets that far (vetoes seldom
    fire), so it stops an `and` almost never and is paid in full where it comes first, while the other
    children of an `all` (the rule's positive branches) fail on most of the items a rule is asked about:
    the bundled pack's English licensing rule fires on one in seven of them. The answer is the same in
    any order (each child's test has no effect but filling the item's caches)."""
    if not isinstance(node, AllOf):
        return node.children
    return sorted(node.children, key=lambda child: isinstance(child, NoneOf))


def _term_test(tids: frozenset[int], constants: list[object]) -> str:
    """The Python expression of "one of `tids` was found in the rule's fields"."""
    return f"(not {_constant(tids, constants)}.isdisjoint(found))"


def _constant(value: object, constants: list[object]) -> str:
    """The name `value` has in the rule's test (`c0`, `c1`…), added to `constants`."""
    constants.append(value)
    return f"c{len(constants) - 1}"


class _Candidate(Protocol):
    """What `candidate_indexes` reads of a rule (a `CoreRule` or a `compile.CompiledRule`)."""

    @property
    def sources(self) -> frozenset[str] | None: ...

    @property
    def required(self) -> tuple[frozenset[int], ...]: ...


def candidate_indexes(
    rules: Sequence[_Candidate],
    triggers: Mapping[int, tuple[int, ...]],
    always: frozenset[int],
    masks: Mapping[int, int],
    source: str | None,
) -> list[int]:
    """The indexes, in order, of the rules woken by a found term (a key of `masks`) whose required terms
    were all found (before filtering, which only removes hits), and whose sources admit `source`: the
    only ones that can fire."""
    woken = set(always)
    for tid in masks:
        woken.update(triggers.get(tid, ()))
    candidates = []
    for index in sorted(woken):
        rule = rules[index]
        if rule.sources is not None and source not in rule.sources:
            continue
        for required in rule.required:  # a plain loop: a generator in `all` cost more on this hot path
            if required.isdisjoint(masks):
                break
        else:
            candidates.append(index)
    return candidates
