"""Article enrichment, and which text a match was found in. Small decisions, each tested on its own.

An item whose title and summary name a watched material, agency or list (`Ruleset.worth_enriching`)
but fire no rule has its linked article read (`sources.article.ArticleReader`: polite, bounded, cached)
and matched again, with the article's lead as the item's content. A page that cannot be read leaves the
item as it was: enrichment never loses, blocks or fails anything.

Every match then says which text completed it (`matched_in`): the title alone, with the summary, with
the feed's own full text (`content`), or with the fetched `article` (`locate`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

import aiohttp

from rarewatch.models import Item, Match
from rarewatch.ruleset import Ruleset
from rarewatch.sources.article import Article, ArticleReader

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ArticleStats:
    """What enrichment did during one poll of one source. Every read is one of: `fetched` (from the
    network, read), `failed` (from the network, not read) or `cached` (answered by the cache, a read or
    a remembered failure). `matched`: items that fired rules only thanks to their article."""

    fetched: int = 0
    cached: int = 0
    failed: int = 0
    matched: int = 0

    def add(self, article: Article, matched: bool) -> ArticleStats:
        """These stats with one more article read counted."""
        return replace(
            self,
            fetched=self.fetched + (not article.cached and article.ok),
            cached=self.cached + article.cached,
            failed=self.failed + (not article.cached and not article.ok),
            matched=self.matched + matched,
        )


NO_ARTICLES = ArticleStats()


@dataclass(frozen=True, slots=True)
class Enriched:
    """An item after enrichment: with the article's lead as content and its matches when the article
    made rules fire, else the item as it came (`matches` empty)."""

    item: Item
    matches: tuple[Match, ...]
    article: Article


def fields_of(item: Item) -> dict[str, str]:
    return {"title": item.title, "summary": item.summary, "content": item.content}


def wants_article(ruleset: Ruleset, item: Item, matches: Sequence[Match]) -> bool:
    """Whether `item` is worth reading in full: no rule fired, it has a link, and it names a watched
    material, agency or list."""
    return not matches and bool(item.link) and ruleset.worth_enriching(fields_of(item), item.lang)


async def enrich(
    reader: ArticleReader, session: aiohttp.ClientSession, ruleset: Ruleset, item: Item
) -> Enriched:
    """Read `item`'s article and match again with its lead as the content (it replaces the feed's own
    content, which fired nothing). A failure is logged (once per fresh failure) and gives no matches."""
    article = await reader.read(session, item.link)
    if not article.ok:
        if not article.cached:
            log.info("source %s: article %s not read: %s", item.source, item.link, article.error)
        return Enriched(item, (), article)
    enriched = replace(item, content=article.text)
    # The snippet from the article where it can: the headline is in the alert already.
    matches = tuple(ruleset.match_fields(fields_of(enriched), item.source, snippet_from="content"))
    return Enriched(enriched if matches else item, matches, article)


def locate(
    ruleset: Ruleset, item: Item, matches: Sequence[Match], *, from_article: bool
) -> tuple[Match, ...]:
    """`matches` with `matched_in` set: "title", "summary", then "content" (the feed's own text) or,
    when the content is a fetched article's lead (`from_article`), "article". Matches that already say
    where they matched (an item worker located them: see `item_workers.parse_and_match`) are kept as
    they are, unless they came from an article, which is always located anew."""
    if not matches:
        return ()
    if not from_article and all(m.matched_in for m in matches):
        return tuple(matches)
    first = ruleset.first_fields(fields_of(item), [m.rule for m in matches], item.source)
    content = "article" if from_article else "content"
    return tuple(
        replace(m, matched_in=content if first.get(m.rule, "content") == "content" else first[m.rule])
        for m in matches
    )
