"""Every bad input an operator can give: a one-line message naming where, exit code 2, never a traceback.

Each case runs the real `rarewatch` command in a subprocess (see `badinputs`). Config lines count from
the top of rarewatch.yaml; `config()` puts `store:` on line 1 and `rules:` on line 2, so a case's own
keys start on line 3.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.e2e.badinputs import FEED, SOURCE, WEBHOOK, Case, config, prepare, run_cli
from tests.e2e.slowfeed import sigterm_during_a_poll

RULE = "id: bad-rule\ntitle: Bad rule\ncategory: export-licensing\nseverity: high\n"
WITHN = {"bad/withn.yaml": RULE + "match: {near: [gallium, licence], withn: 5}\n"}  # `withn` on line 5
MISSPELT = "unknown key 'withn'; did you mean 'within'"
HOOK_ROUTE = "routes:\n  - to: [hook]\n"
GARBAGE = "this is not an SQLite database, only text where one should be\n" * 100
BOMB = "".join(
    [
        "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
        *(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)),
        "log_level: *a8\n",
    ]
)


def source(extra: str) -> str:
    return f"sources:\n  - {{name: wire, type: feed, url: '{FEED}', {extra}}}\n"


def hook(secret: str) -> str:
    return f"destinations:\n{WEBHOOK}, secret: '{secret}'}}\n{HOOK_ROUTE}"


# fmt: off
CONF = ("--config", "rarewatch.yaml")
Y = "rarewatch.yaml"

CONFIG_CASES = [
    Case("store-mysql", ("once", *CONF), "unsupported store URL scheme 'mysql'", f"{Y}:1",
         config("", store="mysql://admin:hunter2@db.example/rw"), absent=("hunter2", "admin")),
    Case("store-sqlite-two-slashes", ("once", *CONF), "sqlite:/// (three slashes)", f"{Y}:1",
         config("", store="sqlite://state.db")),
    Case("store-redis-bad-port", ("once", *CONF), "must be a number", f"{Y}:1",
         config("", store="redis://:hunter2@cache:port/0"), absent=("hunter2",)),
    Case("store-no-scheme", ("once", *CONF), "must be a URL with a scheme", f"{Y}:1",
         config("", store="state.db")),
    Case("secret-not-base64-outbox", ("outbox", "list", *CONF), "not valid base64", f"{Y}:4",
         config(hook("whsec_!!!")), absent=("whsec_!!!",)),
    Case("secret-empty-test-destination", ("test-destination", "hook", *CONF), "webhook secret is empty",
         f"{Y}:4", config(hook("whsec_"))),
    Case("secret-empty-once", ("once", *CONF), "webhook secret is empty", f"{Y}:4", config(hook("whsec_"))),
    Case("secret-no-prefix-run", ("run", *CONF), "must start with 'whsec_'", f"{Y}:4", config(hook("plain"))),
    Case("secret-env-unset", ("once", *CONF), "environment variable HOOK_SECRET is not set", f"{Y}:4",
         config(hook("${HOOK_SECRET}"))),
    Case("interval-zero", ("once", *CONF), "interval must be positive", f"{Y}:4",
         config(source("interval: 0"))),
    Case("interval-negative", ("once", *CONF), "must not be negative", f"{Y}:4",
         config(source("interval: -5m"))),
    Case("interval-under-floor", ("run", *CONF), "allow_fast_poll: true", f"{Y}:4",
         config(source("interval: 1s"))),
    Case("interval-huge", ("once", *CONF), "is too long", f"{Y}:4", config(source("interval: 1000000000d"))),
    Case("source-timeout-zero", ("once", *CONF), "duration must be positive", f"{Y}:4",
         config(source("timeout: 0s"))),
    Case("webhook-timeout-zero", ("test-destination", "hook", *CONF), "duration must be positive", f"{Y}:4",
         config(f"destinations:\n{WEBHOOK}, timeout: 0}}\n{HOOK_ROUTE}")),
    Case("unknown-top-level-key", ("once", *CONF), "did you mean 'sources'", f"{Y}:3",
         config(f"sorces:\n{SOURCE}")),
    Case("merged-key-error", ("once", *CONF), "under the 1m floor", f"{Y}:4",
         config(f"sources:\n  - <<: {{type: feed, interval: 5s}}\n    name: wire\n    url: '{FEED}'\n")),
    Case("source-without-type", ("once", *CONF), "missing key 'type'", f"{Y}:4",
         config(f"sources:\n  - {{name: wire, url: '{FEED}'}}\n")),
    Case("source-unknown-type", ("once", *CONF), "unknown type 'fedd'; did you mean 'feed'?", f"{Y}:4",
         config(f"sources:\n  - {{name: wire, type: fedd, url: '{FEED}'}}\n")),
    Case("unknown-source-key", ("once", *CONF), "did you mean 'interval'", f"{Y}:4",
         config(source("intervl: 5m"))),
    Case("bad-log-level", ("once", *CONF), "log_level: Input should be", f"{Y}:3",
         config("log_level: loud\n")),
    Case("http-port-out-of-range", ("run", *CONF), "less than or equal to 65535", f"{Y}:3",
         config("http: {port: 70000}\n")),
    Case("yaml-unclosed-quote", ("once", *CONF), "invalid YAML", f"{Y}:3",
         config('log_level: "info\nhttp: {port: 8080}\n')),
    Case("yaml-unclosed-bracket", ("once", *CONF), "invalid YAML", f"{Y}:4",
         config("http:\n  host: [a, b\nlog_level: info\n")),
    Case("yaml-tab", ("once", *CONF), "cannot start any token", f"{Y}:4", config("http:\n\tport: 8080\n")),
    Case("yaml-duplicate-key", ("once", *CONF), "duplicate key", f"{Y}:4",
         config("log_level: info\nlog_level: debug\n")),
    Case("yaml-alias-bomb", ("once", *CONF), "expands to more than", f"{Y}:3", config(BOMB)),
    Case("yaml-deep-nesting", ("once", *CONF), "nested more than", f"{Y}:3",
         config("http: " + "[" * 1000 + "]" * 1000 + "\n")),
    Case("store-items-keep-zero", ("once", *CONF), "duration must be positive", f"{Y}:5",
         config("store_items:\n  max: 10\n  keep: 0s\n")),
    Case("store-items-max-negative", ("backtest", "--rules", "rules/", *CONF), "greater than or equal to 0",
         f"{Y}:3", config("store_items: {max: -1}\n")),
    Case("pipeline-workers-negative", ("once", *CONF), "greater than or equal to 0", f"{Y}:3",
         config("pipeline: {workers: -1}\n")),
    Case("pipeline-connections-per-host-zero", ("once", *CONF), "greater than or equal to 1", f"{Y}:4",
         config("pipeline:\n  connections_per_host: 0\n")),
    Case("pipeline-workers-env", ("once", *CONF), "pipeline.workers", "RAREWATCH_PIPELINE__WORKERS",
         config(""), env={"RAREWATCH_PIPELINE__WORKERS": "many"}),
    Case("once-jobs-too-many", ("once", *CONF, "--jobs", "33"), "from 0 to 32", "--jobs", config("")),
    Case("once-jobs-not-a-number", ("once", *CONF, "--jobs", "two"), "from 0 to 32", "--jobs", config("")),
    Case("config-missing", ("once", "--config", "missing.yaml"), "cannot read configuration", "missing.yaml"),
    Case("config-not-utf8", ("once", *CONF), "not UTF-8 text", f"{Y}:1",
         files={Y: b"\xff\xfestore: x\n"}),
    Case("config-not-a-mapping", ("once", *CONF), "must be a mapping", f"{Y}:1", "- a\n- b\n"),
]

ENV_CASES = [
    Case("env-rules-not-json", ("once", *CONF), "not valid JSON", "environment variable RAREWATCH_RULES",
         config(""), env={"RAREWATCH_RULES": "rules/"}),
    Case("env-log-level", ("once", *CONF), "Input should be", "environment variable RAREWATCH_LOG_LEVEL",
         config(""), env={"RAREWATCH_LOG_LEVEL": "loud"}),
    Case("env-http-port", ("run", *CONF), "http.port", "environment variable RAREWATCH_HTTP__PORT",
         config(""), env={"RAREWATCH_HTTP__PORT": "eighty"}),
    Case("env-store-scheme", ("once", *CONF), "unsupported store URL scheme",
         "environment variable RAREWATCH_STORE", config(""),
         env={"RAREWATCH_STORE": "mysql://admin:hunter2@db/x"}, absent=("hunter2",)),
    Case("env-duration", ("once", *CONF), "not a duration", "environment variable RAREWATCH_DEDUP_WINDOW",
         config(""), env={"RAREWATCH_DEDUP_WINDOW": "forever"}),
    Case("env-source-interval", ("once", *CONF), "under the 1m floor",
         "environment variable RAREWATCH_SOURCES",
         config(""), env={"RAREWATCH_SOURCES": json.dumps(
             [{"name": "wire", "type": "feed", "url": FEED, "interval": "1s"}])}),
]


def patterns_file(patterns: str) -> str:
    """A rule file whose first document is a `kind: patterns` vocabulary with `patterns` (indented lines)."""
    return "vocabulary: t\nkind: patterns\npatterns:\n" + patterns + "---\n" + RULE + "match: gallium\n"


RULE_CASES = [
    Case("rule-misspelt-key", ("rules", "check", "bad/withn.yaml"), MISSPELT,
         "bad/withn.yaml:5", files=WITHN),
    Case("rule-misspelt-key-in-config", ("once", *CONF), MISSPELT, "withn.yaml:5",
         config("", rules="[rules/, bad/]"),
         files=WITHN),
    Case("rule-misspelt-severity", ("rules", "check", "bad/r.yaml"), "did you mean 'severity'",
         "bad/r.yaml:4",
         files={"bad/r.yaml": "id: bad-rule\ntitle: Bad\ncategory: export-licensing\nsevrity: high\n"
                              "match: gallium\n"}),
    Case("rule-yaml-unclosed-quote", ("rules", "check", "bad/q.yaml"), "invalid YAML", "bad/q.yaml:5",
         files={"bad/q.yaml": RULE + 'match: "gallium\ndescription: x\n'}),
    Case("rule-path-missing", ("rules", "check", "nope/"), "no such rule file or directory", "nope"),
    Case("rule-unknown-named-pattern", ("rules", "check", "bad/p.yaml"),
         "unknown pattern {{named-contry}}; did you mean 'named-country'?", "bad/p.yaml:9",
         files={"bad/p.yaml": "vocabulary: t\nkind: patterns\npatterns: {named-country: 'US|Japan'}\n---\n"
                              + RULE + 'match: {all: [ban, {regex: "to {{named-contry}}"}]}\n'}),
    # named patterns using each other (session 49): a cycle, an unknown inner one, stray braces no rule uses
    Case("rule-named-patterns-in-a-cycle", ("rules", "check", "bad/c.yaml"),
         "patterns use each other in a cycle: x -> y -> x", "bad/c.yaml:4",
         files={"bad/c.yaml": patterns_file("  x: 'a{{y}}'\n  y: 'b{{x}}'\n")}),
    Case("rule-named-pattern-uses-an-unknown-one", ("rules", "check", "bad/u.yaml"),
         "pattern 'x' uses unknown pattern {{named-contry}}; did you mean 'named-country'?", "bad/u.yaml:5",
         files={"bad/u.yaml": patterns_file("  named-country: 'US|Japan'\n  x: 'to {{named-contry}}'\n")}),
    Case("rule-named-pattern-stray-braces", ("rules", "check", "bad/s.yaml"),
         "kept for named patterns", "bad/s.yaml:4",
         files={"bad/s.yaml": patterns_file("  x: 'a{{b'\n")}),
    # a regex in Traditional characters could never match (the text is converted to Simplified first)
    Case("rule-regex-in-traditional-script", ("rules", "check", "bad/t.yaml"),
         "holds Traditional characters (產) that it can never match", "bad/t.yaml:5",
         files={"bad/t.yaml": RULE + 'match: {regex: "停產"}\n'}),
    Case("match-bad-rules", ("match", "--rules", "bad/withn.yaml", "-"), MISSPELT,
         "bad/withn.yaml:5", files=WITHN),
    Case("eval-bad-rules", ("eval", "--rules", "bad/withn.yaml", "items.jsonl"), MISSPELT,
         "bad/withn.yaml:5", files=WITHN),
    Case("backtest-bad-rules", ("backtest", "--rules", "bad/withn.yaml", *CONF), MISSPELT,
         "bad/withn.yaml:5", config(""), files=WITHN),
    Case("backtest-rules-missing", ("backtest", "--rules", "nope/", *CONF), "no such rule file or directory",
         "nope", config("")),
]

STORE_CASES = [
    Case("store-corrupt-once", ("once", *CONF), "is damaged", "state.db", config(""),
         files={"state.db": GARBAGE}),
    Case("store-corrupt-run", ("run", *CONF), "is damaged", "state.db",
         config("http: {port: {port}}\n"), files={"state.db": GARBAGE}),
    Case("redis-unreachable-once", ("once", *CONF), "is unreachable", "127.0.0.1:{port}",
         config("", store="redis://127.0.0.1:{port}/0")),
    Case("redis-unreachable-run", ("run", *CONF), "is unreachable", "127.0.0.1:{port}",
         config("http: {port: {port2}}\n", store="redis://127.0.0.1:{port}/0")),
    Case("http-port-in-use", ("run", *CONF), "cannot listen on", "127.0.0.1:{held}",
         config("http: {port: {held}}\n")),
]

CLI_CASES = [
    Case("cli-unknown-command", ("frobnicate",), "invalid choice: 'frobnicate'", "usage: rarewatch"),
    Case("cli-missing-option-value", ("once", "--config"), "expected one argument", "usage: rarewatch once"),
    Case("cli-bad-choice", ("outbox", "bogus", *CONF), "invalid choice: 'bogus'", "usage: rarewatch outbox",
         config("")),
    Case("cli-purge-needs-status", ("outbox", "purge", *CONF), "needs --status", "outbox purge", config("")),
    Case("cli-unknown-destination", ("test-destination", "nosuch", *CONF), "no destination named 'nosuch'",
         "configured: console", config("")),
    Case("cli-store-init-needs-yes", ("store", "init", *CONF), "Pass --yes", "store init", config("")),
    Case("cli-match-input-not-utf8", ("match", "items.jsonl"), "not UTF-8 text", "items.jsonl",
         files={"items.jsonl": b'{"id": 1, "title": "\xff"}\n'}),
    Case("cli-eval-input-not-utf8", ("eval", "items.jsonl"), "not UTF-8 text", "items.jsonl",
         files={"items.jsonl": b"\xff\n"}),
    Case("cli-eval-missing-file", ("eval", "missing.jsonl"), "cannot read", "missing.jsonl"),
    Case("cli-backtest-bad-since", ("backtest", "--rules", "rules/", "--since", "lately", *CONF),
         "not a duration", "--since", config("")),
    Case("cli-silence-unknown-rule", ("silence", "add", "--rule", "test-licensng", "--for", "1d", "--reason",
         "r", "--author", "a", *CONF), "did you mean 'test-licensing'", "--rule", config("")),
    Case("cli-silence-bad-for", ("silence", "add", "--rule", "test-licensing", "--for", "0", "--reason", "r",
         "--author", "a", *CONF), "duration must be positive", "--for", config("")),
    Case("cli-silence-no-author", ("silence", "add", "--rule", "test-licensing", "--for", "1d", "--reason",
         "r", *CONF), "required: --author", "usage: rarewatch silence add", config("")),
    Case("cli-silence-expire-unknown", ("silence", "expire", "nope", *CONF), "no silence 'nope'", "nope",
         config("")),
]

# fmt: on
CASES = CONFIG_CASES + ENV_CASES + RULE_CASES + STORE_CASES + CLI_CASES


def test_the_table_is_large_and_its_names_unique() -> None:
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


@contextmanager
def held_port() -> Iterator[int]:
    """A port another process (here: this one) is listening on."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock.getsockname()[1]


def _fill(text: str, ports: dict[str, int]) -> str:
    for key, value in ports.items():
        text = text.replace("{" + key + "}", str(value))
    return text


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input_is_a_clear_message_and_exit_2(case: Case, tmp_path: Path) -> None:
    with held_port() as held:
        ports = {"port": free_port(), "port2": free_port(), "held": held}
        filled = Case(
            case.name,
            case.args,
            case.phrase,
            _fill(case.where, ports),
            _fill(case.config, ports) if case.config is not None else None,
            case.env,
            case.files,
            case.absent,
        )
        prepare(filled, tmp_path)
        outcome = run_cli(filled.args, tmp_path, filled.env)
    both = outcome.out + outcome.err
    assert outcome.code == 2, both
    assert "Traceback" not in both, both
    assert filled.phrase in outcome.err, f"the message goes to standard error: {both}"
    assert filled.where in outcome.err, both
    for secret in filled.absent:
        assert secret not in both, f"{secret!r} leaked: {both}"


async def test_sigterm_during_a_poll_stops_cleanly(tmp_path: Path) -> None:
    """A poll still waiting on a slow server is cancelled at SIGTERM: exit 0, no CancelledError traceback."""
    returncode, text = await sigterm_during_a_poll(tmp_path)
    assert returncode == 0, text
    assert "Traceback" not in text and "CancelledError" not in text, text
    assert "source slow: poll cancelled by shutdown" in text, text
