"""`rarewatch silence add|list|expire` as an operator runs them, with real `rarewatch once` runs against a
local feed server and webhook receiver, on a real SQLite file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.e2e.test_backtest import EVERYTHING, LICENSING_TITLE, SHORTAGE_TITLE
from tests.e2e.test_cli import rarewatch
from tests.e2e.test_unrouted_and_once import config, story
from tests.support import feed_server, rss, webhook_receiver

ADD = ("silence", "add", "--for", "2d", "--reason", "known flaky wire", "--author", "ana")


@pytest.mark.parametrize(
    ("matcher", "message"),
    [
        (("--rule", "test-licensin"), "unknown rule 'test-licensin'; did you mean 'test-licensing'?"),
        (("--source", "wrie"), "unknown source 'wrie'; did you mean 'wire'?"),
        (("--category", "export-licencing"), "did you mean 'export-licensing'?"),
        (("--material", "dysprosium"), "unknown material 'dysprosium' (none are defined)"),
        (("--story", "not-an-alert"), "neither an http(s) link nor the id of a recorded alert"),
        ((), "give at least one matcher"),
    ],
)
async def test_a_matcher_naming_nothing_is_refused_with_exit_2(
    tmp_path: Path, matcher: tuple[str, ...], message: str
) -> None:
    path = config(tmp_path, "http://127.0.0.1:9/wire.xml", "http://127.0.0.1:9/hook", EVERYTHING)
    code, out, err = await rarewatch(*ADD, *matcher, "--config", str(path))
    assert code == 2 and out == "", err
    assert message in err and "Traceback" not in err
    code, out, _ = await rarewatch("silence", "list", "--all", "--config", str(path))
    assert code == 0 and "0 silences" in out, "nothing was stored"


async def test_silence_mutes_until_expired_and_what_it_muted_is_never_sent(tmp_path: Path) -> None:
    async with feed_server() as feeds, webhook_receiver() as hook:
        feeds.feeds["/wire.xml"] = rss(
            [story(1, LICENSING_TITLE, timedelta(minutes=5)), story(2, SHORTAGE_TITLE, timedelta(minutes=6))]
        )
        path = config(tmp_path, feeds.url("/wire.xml"), hook.url, EVERYTHING)
        code, out, err = await rarewatch(
            *ADD, "--rule", "test-shortage", "--source", "wire", "--config", str(path)
        )
        assert code == 0, err
        silence_id = out.split()[0]
        assert "silences rule=test-shortage, source=wire until" in out
        code, out, _ = await rarewatch("silence", "list", "--config", str(path))
        assert f"{silence_id}  active" in out and "by ana: known flaky wire" in out

        code, _, err = await rarewatch("once", "--config", str(path))
        assert code == 0, err
        assert [p["title"] for p in hook.payloads()] == [LICENSING_TITLE]
        assert "note: 1 new alerts were muted by silences" in err

        code, out, err = await rarewatch("silence", "expire", silence_id, "--config", str(path))
        assert code == 0 and f"silence {silence_id} expired at" in out, err
        code, out, _ = await rarewatch("silence", "list", "--config", str(path))
        assert "0 silences" in out
        code, out, _ = await rarewatch("silence", "list", "--all", "--config", str(path))
        assert f"{silence_id}  expired" in out

        feeds.feeds["/wire.xml"] = rss(
            [
                story(1, LICENSING_TITLE, timedelta(minutes=5)),
                story(2, SHORTAGE_TITLE, timedelta(minutes=6)),
                story(
                    3, "Rare earth magnet shortage deepens as plant halts production", timedelta(minutes=1)
                ),
            ]
        )
        code, _, err = await rarewatch("once", "--config", str(path))
        assert code == 0, err
        titles = [p["title"] for p in hook.payloads()]
        assert SHORTAGE_TITLE not in titles, "expiring the silence re-sends nothing it muted"
        assert len(titles) == 2 and titles[-1].startswith("Rare earth magnet shortage deepens")

        code, _, err = await rarewatch("silence", "expire", silence_id[:-1] + "x", "--config", str(path))
        assert code == 2 and "no silence" in err and f"did you mean {silence_id!r}?" in err
