"""The `rarewatch` command line. Exit codes: 0 success, 1 a check failed, 2 usage or configuration error."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from rarewatch import __version__
from rarewatch.errors import ConfigError, RuleError, StoreError
from rarewatch.evaluation_fields import BY_FIELDS
from rarewatch.paths import bundled_rules_dir

# The settings (pydantic, the delivery kinds, aiohttp) and the rule compiler are imported where a command
# needs them: `rarewatch match` over a small file was mostly start-up, and its start-up mostly imports.
if TYPE_CHECKING:
    from rarewatch.logs import LogFormat
    from rarewatch.ruleset import Ruleset
    from rarewatch.settings import Settings

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE = 0, 1, 2
RuleCheck = Callable[["Ruleset"], None] | None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rarewatch", description="Alerts on rare-earth and critical-mineral export controls."
    )
    parser.add_argument("--version", action="version", version=f"rarewatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--config",
            type=Path,
            default=os.environ.get("RAREWATCH_CONFIG"),
            help="configuration file (default: $RAREWATCH_CONFIG, else the bundled default)",
        )
        return p

    sub.add_parser("demo", help="run the pipeline once, offline, on bundled sample feeds")
    with_config(sub.add_parser("run", help="run the service until SIGTERM/SIGINT"))
    once = with_config(sub.add_parser("once", help="run one cycle: fetch every source, match, deliver, exit"))
    once.add_argument(
        "--backfill",
        metavar="DURATION",
        help="also alert on matches published within DURATION (e.g. 7d) that a first poll marks, or "
        "marked, seen without an alert",
    )
    once.add_argument(
        "--jobs",
        type=_worker_count,
        metavar="N",
        help="parse, normalise and match the feeds in N worker processes, 0 to 32 (default: the "
        "configuration's pipeline.workers; 0: in this process)",
    )

    match = sub.add_parser(
        "match", help="match JSON Lines items against rules; one JSON line out per line in"
    )
    match.add_argument("--rules", type=Path, action="append", help="rule file or directory (repeatable)")
    match.add_argument(
        "--explain",
        action="store_true",
        help="add the terms that fired to each match, and why each rule that was close did not (why_not)",
    )
    match.add_argument(
        "--jobs",
        type=_positive_int,
        default=1,
        metavar="N",
        help="match in N worker processes (default 1); the output keeps the input's order",
    )
    _rules_config(match)
    match.add_argument("file", nargs="?", default="-", help="JSON Lines input (default: standard input)")

    evaluate = sub.add_parser(
        "eval", help="precision, recall, F1 and a confusion table per category on a labelled JSONL set"
    )
    evaluate.add_argument("--rules", type=Path, action="append", help="rule file or directory (repeatable)")
    _rules_config(evaluate)
    evaluate.add_argument(
        "--by",
        choices=BY_FIELDS,
        metavar="FIELD",
        help=f"also report per value of an item field ({', '.join(BY_FIELDS)})",
    )
    evaluate.add_argument(
        "file", type=Path, help="labelled JSON Lines: {id, title, summary, lang, labels, also}"
    )

    rules = sub.add_parser("rules", help="rule pack tools")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="SUBCOMMAND")
    check = rules_sub.add_parser("check", help="validate rules and run their examples")
    check.add_argument("paths", nargs="*", type=Path, help="rule files or directories (default: bundled)")
    _rules_config(check)

    backtest = with_config(
        sub.add_parser(
            "backtest",
            help="replay the items the store kept through a rule pack: the alerts it would add and remove",
        )
    )
    backtest.add_argument(
        "--rules", type=Path, action="append", required=True, help="rule file or directory (repeatable)"
    )
    backtest.add_argument("--since", default="30d", metavar="DURATION", help="items fetched within (30d)")
    backtest.add_argument("--json", action="store_true", help="one JSON object instead of the text report")

    feedback = sub.add_parser("feedback", help="readers' votes on alerts (Slack buttons, the API)")
    feedback_sub = feedback.add_subparsers(dest="feedback_command", required=True, metavar="SUBCOMMAND")
    export = with_config(
        feedback_sub.add_parser("export", help="the votes as labelled JSON Lines for `rarewatch eval`")
    )
    export.add_argument("--since", default="30d", metavar="DURATION", help="votes cast within (30d)")
    export.add_argument(
        "-o", "--output", type=Path, metavar="FILE", help="write here (default: standard output)"
    )
    silence = sub.add_parser("silence", help="mute a rule, source, category, material or story for a while")
    silence_sub = silence.add_subparsers(dest="silence_command", required=True, metavar="SUBCOMMAND")
    add = with_config(silence_sub.add_parser("add", help="add a silence (every matcher given must fit)"))
    for name, what in SILENCE_FLAGS:
        add.add_argument(f"--{name}", metavar=name.upper(), help=what)
    add.add_argument("--for", dest="duration", required=True, metavar="DURATION", help="how long, e.g. 2d")
    add.add_argument("--reason", required=True, help="why (shown with the silence)")
    add.add_argument("--author", required=True, help="who (shown with the silence)")
    listing = with_config(silence_sub.add_parser("list", help="the active and pending silences"))
    listing.add_argument("--all", action="store_true", help="the ended ones too")
    expire = with_config(silence_sub.add_parser("expire", help="end a silence now"))
    expire.add_argument("id", help="the silence id (see `silence list`)")

    outbox = with_config(sub.add_parser("outbox", help="inspect and manage the delivery outbox"))
    outbox.add_argument("action", choices=["list", "retry", "purge"])
    outbox.add_argument("--status", choices=["pending", "delivered", "dead"], help="filter (purge: required)")
    outbox.add_argument("--destination", help="only this destination")

    alerts = sub.add_parser("alerts", help="alerts no route took: list them, send one later")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True, metavar="SUBCOMMAND")
    unrouted = with_config(alerts_sub.add_parser("unrouted", help="list the alerts no route took"))
    unrouted.add_argument("--limit", type=int, default=50, help="at most this many, newest first")
    resend = with_config(
        alerts_sub.add_parser("resend", help="send an unrouted alert to a destination (once)")
    )
    resend.add_argument("id", help="the alert id (see `alerts unrouted` or /api/v1/alerts?unrouted=true)")
    resend.add_argument("--to", required=True, metavar="DEST", help="destination name from the configuration")

    store = sub.add_parser("store", help="look at or reset the store's identity marker")
    store_sub = store.add_subparsers(dest="store_command", required=True, metavar="SUBCOMMAND")
    with_config(store_sub.add_parser("status", help="the store's kind, URL and identity marker"))
    init = with_config(
        store_sub.add_parser("init", help="write a fresh identity marker (confirm a fresh start)")
    )
    init.add_argument("--yes", action="store_true", help="do it (without: explain and exit 2)")

    test = with_config(sub.add_parser("test-destination", help="send a clearly marked test alert"))
    test.add_argument("name", help="destination name from the configuration")
    return parser


SILENCE_FLAGS = (
    ("rule", "a rule id"),
    ("source", "a source name"),
    ("category", "a category"),
    ("material", "a material"),
    ("story", "one story: its link, or its alert id"),
)


def _rules_config(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        help="use this configuration file's rule paths, and check its routes against the rules",
    )


def _rule_source(args: argparse.Namespace, paths: Sequence[Path] | None) -> tuple[list[Path], RuleCheck]:
    """The rule paths of a rule command and the check to run on the loaded pack: `--config`'s rules and
    routes, else the paths given (default: the bundled rules) and no check."""
    if args.config is None:
        return list(paths or [bundled_rules_dir()]), None
    if paths:
        raise ConfigError("give either --config or rule paths (--rules), not both")
    from rarewatch.route_check import check_routes
    from rarewatch.settings import load_settings

    settings = load_settings(args.config)
    return settings.rule_paths(), lambda ruleset: check_routes(settings, ruleset)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `rarewatch` command."""
    args = _parser().parse_args(argv)
    try:
        # Called with arguments (tests, another program), a command leaves the process's collector as it
        # found it; as the process's own command line, the process exits next (`startup_gc`).
        return _dispatch(args, thaw=argv is not None)
    except (ConfigError, RuleError) as exc:
        print(f"rarewatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except StoreError as exc:  # the store cannot be opened (damaged file, unreachable server)
        print(f"rarewatch: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `rarewatch match … | head`: the reader left. Quietly, and without a second error at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def _worker_count(text: str) -> int:
    """An argparse type: a number of item workers, as `pipeline.workers` takes it (`checked_workers`)."""
    from rarewatch.settings import checked_workers  # here: `match` and `rules` never load the settings

    try:
        value: int | None = int(text)
    except ValueError:
        value = None
    try:
        return checked_workers(value, text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# One-shot commands whose start-up is a large part of a run: the collector waits for it (`startup_gc`).
_START_UP_PAUSED = frozenset({"match", "once"})


def _dispatch(args: argparse.Namespace, *, thaw: bool) -> int:
    if args.command not in _START_UP_PAUSED:
        return _command(args)
    from rarewatch import startup_gc

    with startup_gc.paused(thaw=thaw):
        return _command(args)


def _command(args: argparse.Namespace) -> int:
    if args.command == "match":
        from rarewatch.commands.rules import match_jsonl
        from rarewatch.ruleset.cache import RulesetCache, default_cache_dir

        paths, check = _rule_source(args, args.rules)
        cache = RulesetCache(default_cache_dir())
        try:
            if args.file == "-":
                return match_jsonl(paths, args.explain, sys.stdin, sys.stdout, check, cache, args.jobs)
            with open(args.file, encoding="utf-8") as infile:
                return match_jsonl(paths, args.explain, infile, sys.stdout, check, cache, args.jobs)
        except OSError as exc:
            print(f"rarewatch: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return EXIT_USAGE
        except UnicodeDecodeError:
            name = "standard input" if args.file == "-" else args.file
            print(f"rarewatch: cannot read {name}: not UTF-8 text", file=sys.stderr)
            return EXIT_USAGE
    if args.command == "eval":
        from rarewatch.commands.evaluate import evaluate_command

        paths, check = _rule_source(args, args.rules)
        return evaluate_command(paths, args.file, sys.stdout, args.by, check=check)
    if args.command == "rules":
        from rarewatch.commands.rules import rules_check

        paths, check = _rule_source(args, args.paths)
        return rules_check(paths, sys.stdout, check=check)
    import asyncio  # here: `match`, `eval` and `rules` never start an event loop

    if args.command == "demo":
        from rarewatch.demo.run import run_demo

        _configure_logging("warning")
        return asyncio.run(run_demo(sys.stdout))
    from rarewatch.settings import load_settings, with_workers

    settings = load_settings(args.config)
    _configure_logging(settings.log_level, settings.log_format)
    if args.command == "run":
        return _run(settings)
    if args.command == "once":
        from rarewatch.commands.service import run_once

        settings = with_workers(settings, args.jobs)
        return asyncio.run(run_once(settings, sys.stdout, sys.stderr, _backfill(args.backfill)))
    if args.command == "backtest":
        from rarewatch.commands.backtest import backtest

        since = _positive_duration("--since", args.since)
        return asyncio.run(backtest(settings, args.rules, since, sys.stdout, as_json=args.json))
    if args.command == "silence":
        return _silence(settings, args)
    if args.command == "feedback":
        from rarewatch.commands.feedback import feedback_export

        since = _positive_duration("--since", args.since)
        return asyncio.run(feedback_export(settings, since, args.output, sys.stdout, sys.stderr))
    if args.command == "outbox":
        from rarewatch.commands.service import outbox_command

        return asyncio.run(outbox_command(settings, args.action, args.status, args.destination, sys.stdout))
    if args.command == "alerts":
        from rarewatch.commands.alerts import list_unrouted, resend

        if args.alerts_command == "unrouted":
            return asyncio.run(list_unrouted(settings, args.limit, sys.stdout))
        return asyncio.run(resend(settings, args.id, args.to, sys.stdout, sys.stderr))
    if args.command == "store":
        from rarewatch.commands.store import store_init, store_status

        if args.store_command == "status":
            return asyncio.run(store_status(settings, sys.stdout))
        return asyncio.run(store_init(settings, args.yes, sys.stdout))
    if args.command == "test-destination":
        from rarewatch.commands.service import test_destination

        return asyncio.run(test_destination(settings, args.name, sys.stdout))
    raise AssertionError(f"unhandled command {args.command}")


def _silence(settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from rarewatch.commands.silences import silence_add, silence_expire, silence_list

    if args.silence_command == "add":
        matchers = [(name, value) for name, _ in SILENCE_FLAGS if (value := getattr(args, name)) is not None]
        duration = _positive_duration("--for", args.duration)
        return asyncio.run(silence_add(settings, matchers, duration, args.reason, args.author, sys.stdout))
    if args.silence_command == "list":
        return asyncio.run(silence_list(settings, args.all, sys.stdout))
    return asyncio.run(silence_expire(settings, args.id, sys.stdout))


def _backfill(value: str | None) -> timedelta | None:
    """`once --backfill`'s duration (ConfigError when it is not a positive duration)."""
    if value is None:
        return None
    return _positive_duration("--backfill", value)


def _positive_duration(flag: str, value: str) -> timedelta:
    """A flag's positive duration (ConfigError naming the flag otherwise)."""
    from rarewatch.durations import parse_positive_duration

    try:
        return parse_positive_duration(value)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def _run(settings: Settings) -> int:
    import asyncio

    from rarewatch.app import build_web_app
    from rarewatch.httpserver import serve

    # Bind before anything starts: a port in use is a clear error, not a failure after the store opened.
    # The socket itself is handed to the server, so nothing can take the port in between.
    sock = listen(settings.http.host, settings.http.port)
    asyncio.run(
        serve(
            build_web_app(settings),
            sock,
            header_timeout=settings.http.header_timeout.total_seconds(),
            on_started=logging.getLogger("rarewatch").info,
        )
    )
    return EXIT_OK


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; a `ConfigError` naming host:port when it cannot be had."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, _, _, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        return socket.create_server(address, family=family)
    except socket.gaierror as exc:
        raise ConfigError(f"http.host: cannot resolve {host!r}: {exc.strerror}") from None
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ConfigError(
            f"cannot listen on {where}: {reason} (another process holds it? set http.port "
            "or RAREWATCH_HTTP__PORT)"
        ) from None


def _configure_logging(level: str, fmt: LogFormat = "text") -> None:
    # APScheduler logs every job run at INFO: `configure` keeps its noise down unless debugging.
    from rarewatch.logs import configure as configure_logs

    configure_logs(level, fmt, sys.stderr)
