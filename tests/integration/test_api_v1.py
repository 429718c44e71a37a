"""The JSON API under `/api/v1` on the whole `rarewatch run` application (`build_web_app`) with a real
SQLite store, served on 127.0.0.1 as `run` serves it: read auth, alert filters and pages, rules, match,
outbox, and JSON errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest

from rarewatch import api_rules
from rarewatch.app import build_web_app
from rarewatch.clock import FakeClock
from rarewatch.models import Severity
from rarewatch.store.sqlite import SQLiteStore
from tests.integration.api_support import (
    READ,
    READ_TOKEN,
    T0,
    WRITE,
    WRITE_TOKEN,
    alert,
    api_settings,
    call,
    fill,
    served,
)
from tests.support import TEST_RULES

READS = [
    "/api/v1/sources",
    "/api/v1/alerts",
    "/api/v1/rules",
    "/api/v1/outbox",
    "/api/v1/openapi.json",
    "/api/v1/silences",
    "/api/v1/items",
]


@pytest.mark.parametrize("path", READS)
async def test_reads_need_the_read_token_when_one_is_set(tmp_path: Path, path: str) -> None:
    app = build_web_app(api_settings(tmp_path, token=WRITE_TOKEN, read_token=READ_TOKEN))
    async with served(app) as base:
        none, body, resp = await call("GET", base + path)
        wrong, _, _ = await call("GET", base + path, headers={"Authorization": "Bearer " + "x" * 29})
        as_reader, _, _ = await call("GET", base + path, headers=READ)
        as_writer, _, _ = await call("GET", base + path, headers=WRITE)
        probes = [(await call("GET", base + p))[0] for p in ("/healthz", "/metrics")]
    assert (none, wrong, as_reader, as_writer) == (401, 401, 200, 200)
    assert body["status"] == "error" and "http.read_token" in body["error"]
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="rarewatch"'
    assert probes == [200, 200], "probes and scrapes stay open"


async def test_match_is_a_read_and_the_read_token_does_not_write(tmp_path: Path) -> None:
    app = build_web_app(api_settings(tmp_path, token=WRITE_TOKEN, read_token=READ_TOKEN))
    async with served(app) as base:
        anonymous, _, _ = await call("POST", f"{base}/api/v1/match", json={"title": "x"})
        reader, _, _ = await call("POST", f"{base}/api/v1/match", json={"title": "x"}, headers=READ)
        reload_as_reader, _, _ = await call("POST", f"{base}/-/reload", headers=READ)
    assert (anonymous, reader, reload_as_reader) == (401, 200, 401)


async def test_reads_are_open_without_a_read_token(tmp_path: Path) -> None:
    async with served(build_web_app(api_settings(tmp_path, token=WRITE_TOKEN))) as base:
        status, body, _ = await call("GET", f"{base}/api/v1/sources")
    assert status == 200
    assert body["sources"][0]["name"] == "wire"


async def test_alerts_are_filtered(tmp_path: Path) -> None:
    await fill(
        tmp_path / "state.db",
        [
            alert(0, materials=["gallium"], countries=["china"]),
            alert(1, category="supply-disruption", severity=Severity.MEDIUM, materials=["neodymium"]),
            alert(2, severity=Severity.CRITICAL, source="gazette", countries=["japan"]),
            alert(3, category="supply-disruption", severity=Severity.LOW, countries=["china"]),
        ],
    )
    clock = FakeClock(T0 + timedelta(hours=4))
    async with served(build_web_app(api_settings(tmp_path), clock=clock)) as base:

        async def ids(query: str) -> list[str]:
            status, body, _ = await call("GET", f"{base}/api/v1/alerts?{query}")
            assert status == 200, body
            return [a["id"] for a in body["alerts"]]

        assert await ids("") == ["alert-3", "alert-2", "alert-1", "alert-0"]
        assert await ids("category=supply-disruption") == ["alert-3", "alert-1"]
        assert await ids("severity=high") == ["alert-2", "alert-0"], "at least this severity"
        assert await ids("source=gazette") == ["alert-2"]
        assert await ids("material=Gallium") == ["alert-0"]
        assert await ids("country=china") == ["alert-3", "alert-0"]
        since = (T0 + timedelta(hours=1)).isoformat()
        until = (T0 + timedelta(hours=3)).isoformat()
        assert await ids(f"since={since.replace('+', '%2B')}&until={until.replace('+', '%2B')}") == [
            "alert-2",
            "alert-1",
        ]
        assert await ids("since=2h") == ["alert-3", "alert-2"], "a duration counts back from now"
        assert await ids("until=3h") == ["alert-0"]
        assert await ids("country=china&category=export-licensing") == ["alert-0"]


async def test_alerts_page_with_an_opaque_cursor(tmp_path: Path) -> None:
    await fill(tmp_path / "state.db", [alert(n, countries=["china"] if n % 2 else []) for n in range(7)])
    async with served(build_web_app(api_settings(tmp_path))) as base:
        seen: list[str] = []
        cursor = ""
        for _ in range(5):
            status, body, _ = await call("GET", f"{base}/api/v1/alerts?limit=2&country=china{cursor}")
            assert status == 200
            seen += [a["id"] for a in body["alerts"]]
            if body["next_cursor"] is None:
                break
            cursor = f"&cursor={body['next_cursor']}"
        _, unfiltered, _ = await call("GET", f"{base}/api/v1/alerts?limit=7")
    assert seen == ["alert-5", "alert-3", "alert-1"]
    assert unfiltered["next_cursor"] is None, "no next page when everything fit"
    assert unfiltered["truncated"] is False and "unrouted" in unfiltered["alerts"][0]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("limit=ten", "limit"),
        ("limit=0", "limit"),
        ("limit=-3", "limit"),
        ("severity=urgent", "severity"),
        ("category=gossip", "category"),
        ("since=yesterday", "since"),
        ("until=3 fortnights", "until"),
        ("cursor=not-a-cursor", "cursor"),
        ("unrouted=maybe", "unrouted"),
        ("source=", "source"),
    ],
)
async def test_bad_alert_queries_are_400_json(tmp_path: Path, query: str, says: str) -> None:
    async with served(build_web_app(api_settings(tmp_path))) as base:
        status, body, resp = await call("GET", f"{base}/api/v1/alerts?{query}")
    assert status == 400
    assert resp.content_type == "application/json"
    assert body["status"] == "error" and says in body["error"]


async def test_alerts_are_utf8_not_escaped(tmp_path: Path) -> None:
    await fill(tmp_path / "state.db", [alert(0, title="稀土出口管制 — gallium")])
    async with (
        served(build_web_app(api_settings(tmp_path))) as base,
        aiohttp.ClientSession() as session,
        session.get(f"{base}/api/v1/alerts") as resp,
    ):
        raw = await resp.read()
    assert "稀土出口管制 — gallium".encode() in raw
    assert b"\\u" not in raw
    assert resp.charset == "utf-8"


async def test_rules_list_each_rule_with_file_line_and_the_pack_version(tmp_path: Path) -> None:
    async with served(build_web_app(api_settings(tmp_path))) as base:
        status, body, _ = await call("GET", f"{base}/api/v1/rules")
        _, reloaded, _ = await call("POST", f"{base}/-/reload", headers=WRITE)
    assert status == 200
    rule_file = str(tmp_path / "rules" / "test.yaml")
    by_id = {r["id"]: r for r in body["rules"]}
    assert by_id["test-licensing"] == {
        "id": "test-licensing",
        "title": "Rare-earth export licensing (test)",
        "category": "export-licensing",
        "severity": "high",
        "file": rule_file,
        "line": 1,
    }
    assert by_id["test-shortage"]["line"] == TEST_RULES.splitlines().index("id: test-shortage") + 1
    assert body["version"] and reloaded["status"] == "error"  # no token configured: reload refused


async def test_match_a_json_item_and_plain_text(tmp_path: Path) -> None:
    item = {"title": "China widens rare earth export licence regime", "summary": "", "lang": "en"}
    async with served(build_web_app(api_settings(tmp_path))) as base:
        status, body, _ = await call("POST", f"{base}/api/v1/match", json=item)
        _, text, _ = await call(
            "POST", f"{base}/api/v1/match", data="Magnet maker halts production\nrare earth shortage"
        )
        _, none, _ = await call("POST", f"{base}/api/v1/match", json={"title": "Weather is fine"})
        _, alerts, _ = await call("GET", f"{base}/api/v1/alerts")
    assert status == 200
    assert [(m["rule"], m["severity"]) for m in body["matches"]] == [("test-licensing", "high")]
    assert sorted(body["matches"][0]["terms"]) == ["export licence", "rare earth"]
    assert "why_not" not in body, "only with explain"
    assert [m["rule"] for m in text["matches"]] == ["test-shortage"]
    assert none["matches"] == []
    assert alerts["alerts"] == [], "matching stores nothing"


async def test_match_explains_why_a_close_rule_did_not_fire(tmp_path: Path) -> None:
    item = {"title": "Rare earth prices climb", "summary": "No export licence news."}
    async with served(build_web_app(api_settings(tmp_path))) as base:
        _, fired, _ = await call("POST", f"{base}/api/v1/match?explain=true", json=item)
        _, close, _ = await call("POST", f"{base}/api/v1/match?explain=true", json={"title": "Rare earth"})
    assert [m["rule"] for m in fired["matches"]] == ["test-licensing"]
    why = {w["rule"]: w for w in close["why_not"]}
    assert close["matches"] == []
    assert "shortage" in " ".join(why["test-shortage"]["failed"])
    assert "export licence" in " ".join(why["test-licensing"]["failed"])


@pytest.mark.parametrize(
    ("kwargs", "status", "says"),
    [
        ({"json": {"title": 3}}, 400, "title"),
        ({"json": {"title": "x", "colour": "red"}}, 400, "colour"),
        ({"json": ["not", "an", "item"]}, 400, "not an item"),
        ({"data": b"{broken", "headers": {"Content-Type": "application/json"}}, 400, "not an item"),
        ({"data": b"\xff\xfe\xfa", "headers": {"Content-Type": "text/plain"}}, 400, "utf-8"),
        ({"data": b"<item/>", "headers": {"Content-Type": "application/xml"}}, 415, "text/plain"),
        ({"data": "x" * (api_rules.MATCH_MAX_BYTES + 1)}, 413, "KiB"),
    ],
)
async def test_bad_match_bodies_get_json_errors(
    tmp_path: Path, kwargs: dict[str, object], status: int, says: str
) -> None:
    async with served(build_web_app(api_settings(tmp_path))) as base:
        got, body, resp = await call("POST", f"{base}/api/v1/match", **kwargs)
    assert (got, body["status"]) == (status, "error")
    assert says in body["error"]
    assert resp.content_type == "application/json"


async def test_a_chunked_body_past_the_bound_is_413(tmp_path: Path) -> None:
    async def chunks():  # type: ignore[no-untyped-def]  # no Content-Length: counted while read
        for _ in range(api_rules.MATCH_MAX_BYTES // 65536 + 2):
            yield b"x" * 65536

    async with served(build_web_app(api_settings(tmp_path))) as base:
        status, body, _ = await call(
            "POST", f"{base}/api/v1/match", data=chunks(), headers={"Content-Type": "text/plain"}
        )
    assert status == 413 and body["status"] == "error"


async def dead_and_pending(path: Path) -> None:
    """alert-0 and alert-1 for the unconfigured destination `oldhook` (kept pending, never sent); the
    first given up on (dead)."""
    await fill(path, [alert(0), alert(1)], destinations=["oldhook"])
    store = SQLiteStore(path)
    await store.open()
    try:
        await store.mark_dead("alert-0", "oldhook", "HTTP 410", T0)
    finally:
        await store.close()


async def test_outbox_lists_counts_and_entries(tmp_path: Path) -> None:
    await dead_and_pending(tmp_path / "state.db")
    async with served(build_web_app(api_settings(tmp_path))) as base:
        status, body, _ = await call("GET", f"{base}/api/v1/outbox")
        _, dead, _ = await call("GET", f"{base}/api/v1/outbox?status=dead")
        _, one, _ = await call("GET", f"{base}/api/v1/outbox?limit=1")
        bad, error, _ = await call("GET", f"{base}/api/v1/outbox?limit=0")
    assert status == 200
    assert body["destinations"]["oldhook"]["pending"] == 1
    assert body["destinations"]["oldhook"]["dead"] == 1
    assert sorted((e["alert_id"], e["status"]) for e in body["entries"]) == [
        ("alert-0", "dead"),
        ("alert-1", "pending"),
    ]
    assert [(e["alert_id"], e["last_error"]) for e in dead["entries"]] == [("alert-0", "HTTP 410")]
    assert (len(one["entries"]), one["truncated"], body["truncated"]) == (1, True, False)
    assert bad == 400 and "limit" in error["error"]


async def test_outbox_retry_needs_the_token_and_makes_deliveries_due(tmp_path: Path) -> None:
    await dead_and_pending(tmp_path / "state.db")
    async with served(build_web_app(api_settings(tmp_path, token=WRITE_TOKEN))) as base:
        outbox = f"{base}/api/v1/outbox"
        refused = [(await call("POST", f"{outbox}/{p}"))[0] for p in ("retry", "alert-0/retry", "purge")]
        unknown, missing, _ = await call("POST", f"{outbox}/retry?destination=nohook", headers=WRITE)
        status, retried, _ = await call("POST", f"{outbox}/retry?destination=oldhook", headers=WRITE)
        _, after_retry, _ = await call("GET", f"{outbox}?status=dead")
    assert refused == [401, 401, 401]
    assert unknown == 404 and "nohook" in missing["error"]
    assert status == 200 and retried == {"status": "ok", "count": 2}, "dead and pending made due"
    assert after_retry["entries"] == []


async def test_outbox_retry_of_one_alert(tmp_path: Path) -> None:
    await dead_and_pending(tmp_path / "state.db")
    async with served(build_web_app(api_settings(tmp_path, token=WRITE_TOKEN))) as base:
        outbox = f"{base}/api/v1/outbox"
        elsewhere, _, _ = await call("POST", f"{outbox}/alert-0/retry?destination=archive", headers=WRITE)
        status, retried, _ = await call("POST", f"{outbox}/alert-0/retry", headers=WRITE)
        absent, why, _ = await call("POST", f"{outbox}/alert-9/retry", headers=WRITE)
        _, left, _ = await call("GET", outbox)
    assert elsewhere == 404, "alert-0 has no delivery to archive"
    assert (status, retried["count"]) == (200, 1)
    assert absent == 404 and "alert-9" in why["error"]
    assert {(e["alert_id"], e["status"]) for e in left["entries"]} == {
        ("alert-0", "pending"),
        ("alert-1", "pending"),
    }


async def test_outbox_purge_deletes_dead_deliveries_only(tmp_path: Path) -> None:
    await dead_and_pending(tmp_path / "state.db")
    async with served(build_web_app(api_settings(tmp_path, token=WRITE_TOKEN))) as base:
        status, purged, _ = await call("POST", f"{base}/api/v1/outbox/purge", headers=WRITE)
        _, left, _ = await call("GET", f"{base}/api/v1/outbox")
    assert status == 200 and purged["count"] == 1
    assert [(e["alert_id"], e["status"]) for e in left["entries"]] == [("alert-1", "pending")]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/nothing-here", 404),
        ("DELETE", "/api/v1/alerts", 405),
        ("GET", "/api/v1/match", 405),
    ],
)
async def test_api_errors_are_json(tmp_path: Path, method: str, path: str, status: int) -> None:
    async with served(build_web_app(api_settings(tmp_path))) as base:
        got, body, resp = await call(method, base + path)
        _, _, outside = await call("GET", base + "/not-the-api")
    assert got == status
    assert body["status"] == "error" and body["error"]
    assert resp.content_type == "application/json"
    if status == 405:
        assert "Allow" in resp.headers
    assert outside.content_type == "text/plain", "only /api/v1 is turned into JSON"
