"""HTML to article text and metadata with trafilatura (never touches the network).

trafilatura only ever sees a string that was already decoded here; its
download helpers are not used, so nothing is fetched.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional
from urllib.parse import urlsplit

import trafilatura

from ..schema import parse_datetime
from .clean import clean_body, clean_title
from .decode import meta_tags

__all__ = ["HtmlArticle", "extract_html", "domain_of"]

# Meta tags that state the full publication timestamp (trafilatura keeps only the day).
_PUBLISHED_NAMES = frozenset(
    {"article:published_time", "og:published_time", "datepublished", "pubdate", "publishdate", "dc.date.issued"}
)
_NAME_ATTRIBUTES = ("property", "name", "itemprop")
_HEAD_CHARS = 64 * 1024

# htmldate: only structured places (meta, time elements, URL), no guessing from free text.
_DATE_PARAMS = {"extensive_search": False, "original_date": True}


@dataclass(frozen=True)
class HtmlArticle:
    """What an HTML page yields: cleaned text plus whatever metadata it states."""

    text: str
    title: Optional[str]
    url: Optional[str]
    published: Optional[datetime]
    source: Optional[str]
    author: Optional[str]


def domain_of(url: Optional[str]) -> Optional[str]:
    """Host name of ``url`` without a leading ``www.``; None when there is none."""
    if not url:
        return None
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:
        return None
    if not host:
        return None
    return host[4:] if host.startswith("www.") else host


def _meta_published(html: str) -> Optional[datetime]:
    """The first publication timestamp stated by a ``<meta>`` tag in the first 64 K characters.

    Tags are read by :func:`~storyclust.ingest.decode.meta_tags` (a linear scanner:
    the two regexes used before took quadratic to cubic time on a page of
    unclosed ``<meta`` tags), attributes in any order.
    """
    for _, attrs in meta_tags(html[:_HEAD_CHARS]):
        if not any(attrs.get(name, "").lower() in _PUBLISHED_NAMES for name in _NAME_ATTRIBUTES):
            continue
        content = attrs.get("content", "").strip()
        if 8 <= len(content) <= 40:
            parsed = parse_datetime(content)
            if parsed is not None:
                return parsed
    return None


def _day_published(day: Optional[str]) -> Optional[datetime]:
    """trafilatura's ``YYYY-MM-DD`` as midnight UTC."""
    if not day:
        return None
    try:
        return datetime.strptime(day[:10], "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def _drop_leading_title(text: str, title: Optional[str]) -> str:
    """trafilatura often repeats the ``<h1>`` as the first line; the title has its own field."""
    if not title:
        return text
    first, _, rest = text.partition("\n")
    if " ".join(first.casefold().split()) == " ".join(title.casefold().split()):
        return rest
    return text


def extract_html(html: str, url: Optional[str] = None) -> Optional[HtmlArticle]:
    """Main text and metadata of an HTML page, or None when it holds no article text.

    ``url`` (from a WARC header or a record) helps trafilatura and wins over
    the page's own canonical URL. Metadata the page does not state stays None.
    """
    doc = trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
        include_images=False,
        include_links=False,
        date_extraction_params=_DATE_PARAMS,
    )
    if doc is None or not doc.text:
        return None
    title = clean_title(doc.title)
    body, byline = clean_body(_drop_leading_title(doc.text, doc.title))
    page_url = url or doc.url
    published = _meta_published(html)
    if published is None:
        published = _day_published(doc.date)
    return HtmlArticle(
        text=body,
        title=title,
        url=page_url,
        published=published,
        source=doc.sitename or domain_of(page_url) or doc.hostname,
        author=doc.author or byline,
    )
