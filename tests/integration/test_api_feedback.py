"""`POST /api/v1/alerts/{alert_id}/feedback` on the whole `rarewatch run` application with a real SQLite
store, served on 127.0.0.1: guarded by the write token, votes read back from the store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from rarewatch.api_feedback import FEEDBACK_MAX_BYTES
from rarewatch.app import build_web_app
from rarewatch.clock import FakeClock
from rarewatch.models import Vote, VoteKind
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

NOW = T0 + timedelta(days=1)


async def votes(tmp_path: Path) -> list[Vote]:
    store = SQLiteStore(tmp_path / "state.db")
    await store.open()
    try:
        return await store.votes(T0)
    finally:
        await store.close()


async def test_a_receiver_votes_with_the_write_token_and_its_last_vote_wins(tmp_path: Path) -> None:
    await fill(tmp_path / "state.db", [alert(1)])
    clock = FakeClock(NOW)
    app = build_web_app(api_settings(tmp_path, token=WRITE_TOKEN, read_token=READ_TOKEN), clock=clock)
    url = "/api/v1/alerts/alert-1/feedback"
    async with served(app) as base:
        status, body, _ = await call(
            "POST", base + url, json={"vote": "relevant", "who": "ana@x"}, headers=WRITE
        )
        assert (status, body) == (
            200,
            {
                "status": "ok",
                "alert_id": "alert-1",
                "vote": "relevant",
                "who": "ana@x",
                "at": NOW.isoformat(),
            },
        )
        clock.advance(5)
        vote = {"vote": "not_relevant", "who": "ana@x"}
        assert (await call("POST", base + url, json=vote, headers=WRITE))[0] == 200
        refused = [
            (await call("POST", base + url, json=vote))[0],
            (await call("POST", base + url, json=vote, headers=READ))[0],
        ]
    assert refused == [401, 401], "the read token does not vote"
    later = NOW + timedelta(seconds=5)
    assert await votes(tmp_path) == [Vote("alert-1", "ana@x", VoteKind.NOT_RELEVANT, later, "ana@x", "api")]


async def test_unknown_alerts_bad_votes_and_big_bodies_are_refused(tmp_path: Path) -> None:
    await fill(tmp_path / "state.db", [alert(1)])
    app = build_web_app(api_settings(tmp_path, token=WRITE_TOKEN), clock=FakeClock(NOW))
    url = "/api/v1/alerts/alert-1/feedback"
    async with served(app) as base:
        unknown = await call(
            "POST",
            base + "/api/v1/alerts/alert-9/feedback",
            json={"vote": "relevant", "who": "a"},
            headers=WRITE,
        )
        bad = [
            await call("POST", base + url, json=body, headers=WRITE)
            for body in (
                {"vote": "maybe", "who": "a"},
                {"vote": "relevant"},
                {"vote": "relevant", "who": ""},
                {"vote": "relevant", "who": "a", "extra": 1},
                [1],
            )
        ]
        text = await call(
            "POST", base + url, data="relevant", headers={**WRITE, "Content-Type": "text/plain"}
        )
        huge = await call(
            "POST",
            base + url,
            data=b"{" + b" " * FEEDBACK_MAX_BYTES + b"}",
            headers={**WRITE, "Content-Type": "application/json"},
        )
    assert unknown[0] == 404 and "alert-9" in unknown[1]["error"]
    assert [status for status, _, _ in bad] == [400] * 5
    assert all(body["status"] == "error" and body["error"].startswith("not a vote") for _, body, _ in bad)
    assert text[0] == 415
    assert huge[0] == 413
    assert await votes(tmp_path) == []


async def test_the_openapi_document_describes_the_feedback_operation(tmp_path: Path) -> None:
    async with served(build_web_app(api_settings(tmp_path))) as base:
        _, doc, _ = await call("GET", f"{base}/api/v1/openapi.json")
    op = doc["paths"]["/api/v1/alerts/{alert_id}/feedback"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/FeedbackRequest")
    assert {"200", "400", "401", "404", "413"} <= op["responses"].keys()
    request = doc["components"]["schemas"]["FeedbackRequest"]
    assert request["properties"]["vote"]["enum"] == ["relevant", "not_relevant"]
    assert request["additionalProperties"] is False
