"""Payload templates: Jinja2 turns an alert into the request body a ticketing or chat system expects.

A webhook destination with a template POSTs the rendered text instead of the v1 payload (see
`webhook.WebhookNotifier(body=...)`); examples for Jira, ServiceNow and Microsoft Teams are in
`deploy/templates/`, each with the configuration to use it in its top comment.

What a template sees:

- `alert`: the v1 payload as a dict (`payload.alert_payload`): `alert.id`, `alert.title`, `alert.link`,
  `alert.source`, `alert.publisher`, `alert.published`, `alert.created`, `alert.severity`,
  `alert.categories`, `alert.materials`, `alert.countries`, `alert.summary`, `alert.matches` (each with
  `rule`, `category`, `severity`, `terms`, `snippet`)...
- `severity_rank`: the severity as a number, 0 (info) to 4 (critical), to index mapping lists;
- `rules`: the rule ids, sorted; `terms`: every matched term, deduplicated, in match order;
- `snippet`: the snippet of the most severe match that has one, or "";
- `gloss`: the one-line English gloss of an item in Chinese, or "" (also `alert.gloss`);
- `params`: the destination's own values from the configuration (a project key, a category...).

Filters, besides Jinja's own: `tojson` (a JSON value; use it for every string that goes into JSON),
`truncate(n)` (at most n characters, cut at a word when possible, ending in "…") and `oneline`
(control characters removed, whitespace collapsed: for one-line fields such as a ticket summary).

Safety. Feed text is untrusted data and is only ever data: it is passed in the context, never compiled,
so a headline containing `{{ ... }}` stays text. `tojson` escapes quotes, backslashes and newlines (and
`<`, `>`, `&` as `\\u003c`..., harmless in JSON, so the body stays inert if a receiver pastes it into
HTML), so feed text cannot break out of a JSON string.

A template meant to produce JSON (a name ending in `.json.j2`, or `json=True`) is autoescaped for JSON,
so the safe output is the default rather than a convention: every `{{ ... }}` that is not already
`tojson` output is escaped as the inside of a JSON string (a string: quotes, backslashes and control
characters escaped, no quotes added) or written as a JSON value (a number, list, mapping, true/false,
null). `"summary": "{{ alert.title }}"` is therefore safe: a title cannot close the string and add keys.
A bare `{{ alert.title }}` outside quotes gives invalid JSON, which is caught too: the output of a JSON
template is parsed before it is sent, and fails with a non-retryable DeliveryError otherwise. Because
every `{{ ... }}` is escaped, build multi-line texts from expressions (`lines | join("\\n") | tojson`)
rather than `{% set %}...{% endset %}` blocks, whose text `tojson` would escape a second time.

Templates run in Jinja's immutable sandbox with `StrictUndefined`: no access to `_`-attributes or Python
internals, no mutating the context, and a misspelt variable is an error rather than an empty string.

Mistakes show at start-up: the constructor compiles the template (a syntax error is a ValueError naming
the template and line) and renders a sample alert once, so an undefined variable or invalid JSON output
is reported before the first real alert.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from datetime import UTC, datetime
from json import JSONDecodeError, dumps, loads
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError, TemplateSyntaxError, Undefined
from jinja2.environment import Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

from rarewatch.delivery.console import terminal_safe
from rarewatch.delivery.payload import alert_payload, test_alert, truncate
from rarewatch.delivery.presentation import present
from rarewatch.errors import DeliveryError
from rarewatch.models import Alert

JSON_SUFFIX = ".json.j2"
# A fixed moment for the sample render, so that start-up checks are repeatable.
_SAMPLE_TIME = datetime(2026, 1, 1, tzinfo=UTC)
# Errors a template can raise while rendering: Jinja's own (undefined names, sandbox violations) and
# those of the Python operations a template may perform (`1 / 0`, `"x" + 1`, `int("a")`, `[][0]`).
_RENDER_ERRORS = (TemplateError, ArithmeticError, LookupError, TypeError, ValueError)
# Inside JSON strings these are equivalent to the characters; escaped, the output is inert in HTML too.
_HTML_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


class PayloadTemplate:
    """One compiled template; `render(alert)` gives the bytes to send. See the module docstring."""

    def __init__(
        self,
        source: str,
        *,
        name: str,
        json: bool | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        """Compile `source`; `json` defaults to whether `name` ends in `.json.j2`.

        Raises ValueError naming the template (and line, when known) for a syntax error, or when the
        sample alert does not render (an undefined variable, invalid JSON output).
        """
        self.name = name
        self.json = name.endswith(JSON_SUFFIX) if json is None else json
        self._params = dict(params or {})
        self._template = _compile(source, name, self.json)
        try:
            self.render(test_alert(_SAMPLE_TIME))
        except DeliveryError as exc:
            raise ValueError(f"{exc} (found rendering a sample alert)") from None

    @classmethod
    def from_file(
        cls, path: Path, *, json: bool | None = None, params: Mapping[str, Any] | None = None
    ) -> PayloadTemplate:
        """Load a template file (UTF-8); an unreadable file is a ValueError too."""
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ValueError(f"cannot read template {path}: {reason}") from None
        return cls(source, name=str(path), json=json, params=params)

    def render(self, alert: Alert) -> bytes:
        """The rendered body as UTF-8; raises a non-retryable DeliveryError if it cannot be rendered.

        Not retryable: the same template and alert would fail the same way on every attempt.
        """
        text = self.render_text(alert)
        if self.json:
            try:
                loads(text)
            except JSONDecodeError as exc:
                raise DeliveryError(
                    f"template {self.name} produced invalid JSON: {exc.msg} at line {exc.lineno} "
                    f"column {exc.colno}",
                    retryable=False,
                ) from None
        # "replace": a lone surrogate from a broken feed must not make the alert undeliverable.
        return text.encode("utf-8", "replace")

    def render_text(self, alert: Alert) -> str:
        """The rendered text, without the JSON check (for titles and other plain-text uses)."""
        try:
            return self._template.render(template_context(alert, self._params))
        except _RENDER_ERRORS as exc:
            where = _location(self.name, _runtime_line(exc, self.name))
            raise DeliveryError(f"{where}: {exc}", retryable=False) from None


def template_context(alert: Alert, params: Mapping[str, Any]) -> dict[str, Any]:
    """The variables a template sees (see the module docstring)."""
    view = present(alert)
    return {
        "alert": alert_payload(alert),
        "severity_rank": int(alert.severity),
        "rules": list(view.rules),
        "terms": list(view.terms),
        "snippet": view.snippet,
        "gloss": view.gloss,
        "params": dict(params),
    }


def _environment(json: bool) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        # Jinja's autoescape is for HTML; JSON's is `json_autoescape`, applied to every `{{ ... }}`.
        autoescape=False,
        finalize=json_autoescape if json else None,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["tojson"] = to_json
    env.filters["truncate"] = _truncate
    env.filters["oneline"] = terminal_safe
    return env


def _compile(source: str, name: str, json: bool) -> Template:
    env = _environment(json)
    try:
        # `filename=name` makes Jinja report template lines in runtime tracebacks (see _runtime_line).
        code = env.compile(source, name=name, filename=name)
    except TemplateSyntaxError as exc:
        raise ValueError(f"{_location(name, exc.lineno)}: {exc.message}") from None
    return env.template_class.from_code(env, code, env.make_globals(None))


class JsonSafe(str):
    """Text that is already a JSON value (the output of `tojson`): a JSON template writes it as it is."""

    __slots__ = ()


def to_json(value: Any) -> JsonSafe:
    """`value` as JSON, safe to place anywhere a JSON value may go; undefined values are errors."""
    if isinstance(value, Undefined):
        value._fail_with_undefined_error()  # raises UndefinedError naming what was missing
    return JsonSafe(dumps(value, ensure_ascii=False).translate(_HTML_SAFE))


def json_autoescape(value: Any) -> str:
    """What a JSON template writes for `{{ value }}`: `tojson` output as it is, a string escaped as the
    inside of a JSON string (no quotes added), anything else as a JSON value."""
    if isinstance(value, JsonSafe):
        return value
    if isinstance(value, Undefined):
        return str(value)  # "" for an inline if without else; StrictUndefined raises, naming the variable
    if isinstance(value, str):
        return to_json(value)[1:-1]
    return to_json(value)


def _truncate(value: Any, length: int = 255) -> str:
    if length < 1:
        raise ValueError(f"truncate needs a length of at least 1, not {length}")
    return truncate(str(value), length)


def _runtime_line(exc: BaseException, filename: str) -> int | None:
    """The template line of a runtime error: Jinja rewrites tracebacks to point into the template."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == filename]
    return frames[-1].lineno if frames else None


def _location(name: str, line: int | None) -> str:
    return f"template {name}, line {line}" if line else f"template {name}"
