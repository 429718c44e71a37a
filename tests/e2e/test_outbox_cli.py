"""`rarewatch outbox …` and `rarewatch test-destination` as an operator uses them."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cli import rarewatch, story, write_config
from tests.support import feed_server, rss, webhook_receiver


async def test_test_destination_reports_the_exact_error_then_succeeds(tmp_path: Path) -> None:
    async with feed_server() as feeds, webhook_receiver() as hook:
        config = write_config(tmp_path, feeds.url("/wire.xml"), hook.url)
        hook.script = [401]
        code, out, _ = await rarewatch("test-destination", "tickets", "--config", str(config))
        assert code == 1
        assert "FAILED (permanent)" in out
        assert "401" in out
        code, out, _ = await rarewatch("test-destination", "tickets", "--config", str(config))
        assert code == 0, out
        assert hook.payloads()[-1]["test"] is True
        assert hook.payloads()[-1]["title"].startswith("[rarewatch test]")
        code, _, err = await rarewatch("test-destination", "nope", "--config", str(config))
        assert code == 2
        assert "tickets" in err


async def test_outbox_list_retry_and_purge(tmp_path: Path) -> None:
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss([story(1, "Rare earth export licence regime widened")])
        config = write_config(tmp_path, feeds.url("/wire.xml"), hook.url)
        hook.script = [400]  # a permanent failure: dead-lettered at once
        code, _, err = await rarewatch("once", "--config", str(config))
        assert code == 0, err

        code, out, _ = await rarewatch("outbox", "list", "--status", "dead", "--config", str(config))
        assert code == 0
        assert "tickets" in out
        assert "HTTP 400" in out
        assert "1 deliveries" in out

        code, out, _ = await rarewatch("outbox", "retry", "--destination", "tickets", "--config", str(config))
        assert code == 0
        assert out.startswith("1 deliveries due again")
        code, _, err = await rarewatch("once", "--config", str(config))
        assert code == 0, err
        assert len(hook.delivered_ids()) == 1, "the retried delivery went through"

        code, out, _ = await rarewatch("outbox", "purge", "--config", str(config))
        assert code == 2, "purge needs --status"
        code, out, _ = await rarewatch("outbox", "purge", "--status", "delivered", "--config", str(config))
        assert code == 0
        assert out.startswith("2 delivered deliveries purged"), out
