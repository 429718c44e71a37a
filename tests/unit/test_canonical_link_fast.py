"""The fast paths of `canonical_link` give what taking the URL apart gives, on many generated URLs."""

from __future__ import annotations

import random

import pytest

from rarewatch.normalize import _SIMPLE_LINK, _canonical_link_full, canonical_link

SCHEMES = ["http", "https", "HTTPS", "ftp", "Http"]
HOSTS = [
    "example.org",
    "News.Example.ORG",
    "a-b.example.co.uk",
    "127.0.0.1",
    "[::1]",
    "user:pw@example.org",
    "example.org.",
    "xn--fiqs8s.cn",
    "例子.中国",
    "ex ample.org",
    "",
]
PORTS = ["", ":80", ":443", ":8080", ":", ":x"]
SEGMENTS = ["a", "b.html", ".", "..", "", "%7e", "%7E", "é", "a b", "2025", "x.y", ";p=1", "~u", "a:b"]
PARAMS = [
    "utm_source=rss",
    "id=7",
    "UTM_Medium=x",
    "fbclid=1",
    "a=%2F",
    "q=稀土",
    "",
    "b",
    "x=1&y=2",
    "ref=home",
    "mc_cid=3",
    "p=a?b",
    "k=v=w",
]
FRAGMENTS = ["", "#top", "#", "#a/./b", "#x y", "#稀土"]
SPACE = ["", " ", "\t", "\n"]


def generated(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    urls = []
    for _ in range(count):
        path = "".join("/" + rng.choice(SEGMENTS) for _ in range(rng.randint(0, 4)))
        query = ""
        if rng.random() < 0.6:
            query = "?" + "&".join(rng.choice(PARAMS) for _ in range(rng.randint(0, 3)))
        host = rng.choice(HOSTS) if rng.random() < 0.5 else "example.org"
        port = rng.choice(PORTS) if rng.random() < 0.3 else ""
        url = f"{rng.choice(SCHEMES)}://{host}{port}{path}{query}{rng.choice(FRAGMENTS)}"
        urls.append(rng.choice(SPACE) + url + rng.choice(SPACE))
    return urls


TABLE = [
    "https://example.org",
    "https://example.org/a?utm_source=rss&id=7#top",
    "https://example.org/?utm_source=rss",
    "https://example.org?",
    "https://example.org/a?&&id=1&",
    "http://example.org/a/./b?x=1",
    "https://example.org/a#b?c",
    "https://example.org/path?q=a#frag ment",
    "https://example.org/%7e?q=1",
    "HTTPS://example.org/?q=1",
    "https://Example.org/?q=1",
    "https://example.org:443/?q=1",
]


@pytest.mark.parametrize("url", TABLE)
def test_fast_paths_agree_with_taking_the_url_apart(url: str) -> None:
    assert canonical_link(url) == _canonical_link_full(url.strip())


def test_fast_paths_agree_on_many_generated_urls() -> None:
    urls = generated(20_000, seed=13)
    different = [(u, canonical_link(u), _canonical_link_full(u.strip())) for u in urls]
    different = [d for d in different if d[1] != d[2]]
    assert different == []
    fast = sum(1 for u in urls if _SIMPLE_LINK(u.strip()) and "/." not in u)
    assert fast > 1_000  # the generator does reach the new fast path


def test_the_fast_path_drops_tracking_and_the_fragment() -> None:
    assert canonical_link("https://example.org/a?utm_source=rss&id=7#top") == "https://example.org/a?id=7"
    assert canonical_link("https://example.org?utm_medium=x") == "https://example.org/"
