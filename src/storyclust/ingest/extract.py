"""HTML to article text and metadata with trafilatura (never touches the network).

trafilatura only ever sees a string that was already decoded here; its
download helpers are not used, so nothing is fetched.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from html import unescape
from typing import Optional
from urllib.parse import urlsplit

import lxml.html
import trafilatura
import trafilatura.metadata as _tm
import trafilatura.utils as _tu
from trafilatura.utils import load_html

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


def _parse(html: str):
    """The page as an lxml tree, parsed once, or None: trafilatura's ``load_html`` for a string
    already cleaned by :func:`~storyclust.ingest.decode.normalize_markup`, without its scan for
    XML-invalid characters (there are none left; the scan cost ~0.5 ms on a 100 KB page).
    Its parser, its two repairs and its checks are the same."""
    try:
        parser, doctype, faulty = _tu.HTML_PARSER, _tu.DOCTYPE_TAG, _tu.FAULTY_HTML
        from_bytes, dubious = _tu.fromstring_bytes, _tu.is_dubious_html
    except AttributeError:  # another trafilatura version: its own loader
        return load_html(html)
    beginning = html[:50].lower()
    check_flag = dubious(beginning)
    if "doctype" in beginning:  # libxml2 issue with some doctypes
        firstline, _, rest = html.partition("\n")
        html = doctype.sub("", firstline, count=1) + "\n" + rest
    for line in html[:4096].splitlines()[:4]:  # self-closing <html/> in the first lines
        if "<html" in line and line.endswith("/>"):
            html = faulty.sub(r"\1>", html, count=1)
            break
    tree, fallback = None, False
    try:
        tree = lxml.html.fromstring(html, parser=parser)
    except ValueError:  # "Unicode strings with encoding declaration are not supported."
        tree, fallback = from_bytes(html), True
    except Exception:
        tree = None
    if (tree is None or len(tree) < 1) and not fallback:
        tree = from_bytes(html)
    if tree is not None and check_flag and len(tree) < 2:
        tree = None
    return tree


#: Elements dropped from the tree before trafilatura sees it: all are in trafilatura's
#: ``MANUALLY_CLEANED`` list, so its own extractor never keeps their text; they only slowed it
#: down (each step copies or searches the whole tree: readability, html2txt, baseline and
#: jusText work on the raw tree). ``form``, ``figure``, ``table`` and ``head`` are not in this
#: list: trafilatura treats them specially. Dropping these made extraction ~35% faster on the
#: pages of ``bench/bench_ingest.py``, with the same text on every page (``--extraction-cost``
#: in that script compares texts with and without it: ``IngestOptions`` has no switch for it).
_DROPPED_TAGS = ("script", "style", "svg", "nav", "aside", "footer", "menu", "iframe", "object", "embed",
                 "noscript", "button", "input", "select", "textarea")


def _drop_code(tree) -> None:
    """Remove :data:`_DROPPED_TAGS` elements, their tails kept, except JSON-LD scripts
    (trafilatura's baseline reads ``articleBody`` there)."""
    if not _DROPPED_TAGS:  # tree.iter() without tags would visit every element
        return
    doomed = [el for el in tree.iter(*_DROPPED_TAGS)
              if el.tag != "script" or (el.get("type") or "").strip().lower() != "application/ld+json"]
    for el in doomed:
        if el.getparent() is not None:
            el.drop_tree()


@dataclass
class _Meta:
    title: Optional[str]
    author: Optional[str]
    url: Optional[str]
    sitename: Optional[str]
    hostname: Optional[str]


def _metadata(tree, default_url: Optional[str]) -> _Meta:
    """The metadata fields storyclust uses, found exactly as trafilatura's ``extract_metadata``
    finds them (same helpers, same order, same final trimming), without what it would
    compute and storyclust throw away: categories, tags, licence, image, description;
    the date is looked up only when the page's ``<meta>`` tags do not state it
    (see :func:`_date_of`). ``with_metadata=True`` spent half of trafilatura's time there."""
    doc = _tm.examine_meta(tree)
    if doc.author and " " not in doc.author:
        doc.author = None
    try:
        doc = _tm.extract_meta_json(tree, doc)
    except Exception:  # bugs in trafilatura's json_metadata, as extract_metadata tolerates them
        pass
    if not doc.title:
        doc.title = _tm.extract_title(tree)
    # No author in the meta tags or JSON-LD: looked for in the markup by _markup_author, later.
    if not doc.url:
        doc.url = _tm.extract_url(tree, default_url)
    if doc.url:
        doc.hostname = _tm.extract_domain(doc.url, fast=True)
    if not doc.sitename:
        doc.sitename = _tm.extract_sitename(tree)
    if doc.sitename:
        doc.sitename = doc.sitename.lstrip("@")
        if doc.sitename and "." not in doc.sitename and not doc.sitename[0].isupper():
            doc.sitename = doc.sitename.title()
    elif doc.url:
        match = _tm.META_URL.match(doc.url)
        if match:
            doc.sitename = match[1]
    doc.clean_and_trim()
    return _Meta(doc.title, doc.author, doc.url, doc.sitename, doc.hostname)


def _markup_author(tree) -> Optional[str]:
    """trafilatura's ``extract_author`` (its XPaths, its pruning, its name normalisation and the
    final trimming of ``extract_metadata``), run on ``tree`` itself, which it prunes, instead of a
    deep copy of the whole page: call it last, once the tree is no longer needed. Run after
    :func:`_drop_code`, so an author named only inside a dropped element (a ``<nav>``, an
    ``<aside>``, a ``<footer>``) is not found; the body's byline line still is (``clean_body``)."""
    try:
        subtree = _tm.prune_unwanted_nodes(tree, _tm.AUTHOR_DISCARD_XPATHS)
        author = _tm.extract_metainfo(subtree, _tm.AUTHOR_XPATHS, len_limit=120)
        if author:
            author = _tm.normalize_authors(None, author)
    except AttributeError:  # another trafilatura version: its own, slower, function
        author = _tm.extract_author(tree)
    if not author:
        return None
    if len(author) > 10000:
        author = author[:9999] + "…"
    return _tm.line_processing(unescape(author)) or None


def _date_of(tree, url: Optional[str]) -> Optional[str]:
    """htmldate's day, with trafilatura's date parameters (only structured places)."""
    return _tm.find_date(tree, url=url, **_DATE_PARAMS)


def extract_html(html: str, url: Optional[str] = None, *, fast: bool = False) -> Optional[HtmlArticle]:
    """Main text and metadata of an HTML page, or None when it holds no article text.

    ``url`` (from a WARC header or a record) helps trafilatura and wins over
    the page's own canonical URL. Metadata the page does not state stays None.
    The page is parsed once; metadata and text are both read from that tree.
    ``fast`` is trafilatura's ``fast=True`` (no readability/jusText comparison or
    rescue): see ``IngestOptions.fast_extract`` for what it costs.
    """
    tree = _parse(html)
    if tree is None:
        return None
    meta = _metadata(tree, url)
    published = _meta_published(html)
    day = _date_of(tree, meta.url) if published is None else None
    _drop_code(tree)
    doc = trafilatura.bare_extraction(
        tree,
        url=url,
        fast=fast,
        with_metadata=False,
        include_comments=False,
        include_tables=False,
        include_images=False,
        include_links=False,
    )
    if doc is None or not doc.text:
        return None
    title = clean_title(meta.title)
    body, byline = clean_body(_drop_leading_title(doc.text, meta.title))
    page_url = url or meta.url
    if published is None:
        published = _day_published(day)
    author = meta.author or _markup_author(tree)
    return HtmlArticle(
        text=body,
        title=title,
        url=page_url,
        published=published,
        source=meta.sitename or domain_of(page_url) or meta.hostname,
        author=author or byline,
    )
