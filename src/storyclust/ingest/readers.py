"""One input file (or stdin) to a stream of Article | Rejection, one per record.

Formats: HTML, plain text, JSON, JSON Lines and WARC, each optionally gzipped;
anything else is sniffed (HTML, WARC) or rejected (``binary``/``unsupported``).
Every record is its own unit of failure: any exception while decoding,
sniffing, parsing, normalising, hashing or dating one record (a whole document,
a JSONL line, an item of a JSON list, a WARC record) becomes a :class:`Rejection`
of that record and the next record is read. Only an archive whose framing is
lost (a corrupt WARC) or a stream that fails to read ends early, with one
rejection for the rest. Every step that looks at a document's bytes (sniffing,
decoding, extraction, cleaning, dating) runs under :func:`time_limit`, which
never spans a ``yield``, so a slow consumer cannot trip it; only plain reading
and inflating (linear, and bounded by the size limits) runs outside it.
"""
from __future__ import annotations

import io
import json
import os
import stat
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, BinaryIO, Callable, Iterator, NamedTuple, Optional, TypeVar, Union

from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import ChunkedDataReader

from ..schema import _opt_str, iter_jsonl, parse_datetime, record_to_article
from ..types import Article, Rejection, valid_text
from .clean import clean_body, clean_title, parse_plain_text
from .clean import warm_up as warm_up_dates
from .decode import (
    GzipReader,
    InputError,
    charset_from_content_type,
    declared_html_charset,
    decode_bytes,
    is_gzip,
    looks_binary,
    looks_html,
    looks_warc,
    normalize_markup,
    normalize_text,
)
from .extract import HtmlArticle, domain_of, extract_html
from .lang import detect_language
from .lang import warm_up as warm_up_lang
from .options import IngestOptions
from .timeout import ExtractionTimeout, time_limit

__all__ = ["Item", "Located", "read_file", "read_jsonl_stream", "warm_up", "warm_up_extraction"]

Item = Union[Article, Rejection]


class Located(NamedTuple):
    """An item and where it came from: the path, or ``path#N`` for record N; ``signed``: ``(signature,)``
    when the reader already computed the article's MinHash signature (:func:`storyclust.ingest.parallel.read_task`,
    in the worker), else ``()``."""

    source: str
    item: Item
    signed: tuple = ()


_KINDS = {
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".shtml": "html",
    ".txt": "txt",
    ".text": "txt",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".warc": "warc",
}
_HTML_TYPES = ("text/html", "application/xhtml+xml")
#: storyclust's own non-article records (``storyclust cluster`` output fed back in).
_OTHER_RECORD_TYPES = ("story", "rejection")
_READ_CHUNK = 1 << 20
_T = TypeVar("_T")


# --- building articles ------------------------------------------------------------------

def _finish_article(
    text: str,
    options: IngestOptions,
    *,
    path: Optional[str],
    article_id: Optional[str] = None,
    title: Optional[str] = None,
    url: Optional[str] = None,
    lang: Optional[str] = None,
    lang_confidence: Optional[float] = None,
    published: Optional[datetime] = None,
    retrieved: Optional[datetime] = None,
    source: Optional[str] = None,
    author: Optional[str] = None,
    duplicate_of: Optional[str] = None,
) -> Article:
    """An Article from cleaned text; :class:`InputError` ``no_text`` when too short."""
    text = normalize_text(text)
    if len(text) < options.min_chars:
        raise InputError("no_text", f"article text is {len(text)} characters, fewer than {options.min_chars}")
    if lang is None:
        lang, lang_confidence = detect_language(text)
    article = Article(
        id="",
        text=text,
        title=normalize_text(title) if title else None,
        url=url,
        path=path,
        lang=lang,
        lang_confidence=lang_confidence,
        published=published,
        retrieved=retrieved,
        source=source or domain_of(url),
        author=author,
        duplicate_of=duplicate_of,
    )
    return _with_id(article, article_id)


def _with_id(article: Article, article_id: Optional[str]) -> Article:
    """``article`` with its own id, or the first 16 hex digits of its content hash."""
    return replace(article, id=article_id or article.hash[:16])


def _extract_page(data: bytes, options: IngestOptions, *, url: Optional[str], charset: Optional[str]) -> HtmlArticle:
    """Decode and extract one HTML document (raises :class:`InputError`)."""
    if len(data) > options.max_html_bytes:
        raise InputError("too_large", f"HTML document is larger than {options.max_html_bytes} bytes")
    if looks_binary(data):
        raise InputError("binary", "HTML document holds binary data")
    html = normalize_markup(decode_bytes(data, charset or declared_html_charset(data)))
    if not html or html.isspace():  # not html.strip(): that copies the page
        raise InputError("empty", "HTML document is empty")
    page = extract_html(html, url=url, fast=options.fast_extract)
    if page is None:
        raise InputError("no_text", "no article text found in the HTML")
    return page


def _html_article(
    data: bytes,
    options: IngestOptions,
    *,
    path: Optional[str],
    url: Optional[str] = None,
    retrieved: Optional[datetime] = None,
    charset: Optional[str] = None,
) -> Article:
    """An article from one HTML document (raises :class:`InputError`)."""
    page = _extract_page(data, options, url=url, charset=charset)
    return _finish_article(
        page.text,
        options,
        path=path,
        title=page.title,
        url=page.url,
        published=page.published,
        retrieved=retrieved,
        source=page.source,
        author=page.author,
    )


def _text_article(
    data: bytes, options: IngestOptions, *, path: Optional[str], retrieved: Optional[datetime]
) -> Article:
    """A plain-text wire: title line, optional date line, body."""
    text = normalize_text(decode_bytes(data))
    lang, confidence = detect_language(text)
    wire = parse_plain_text(text, lang)
    if not wire.body:
        raise InputError("no_text", "no body text under the title")
    return _finish_article(
        wire.body,
        options,
        path=path,
        title=wire.title,
        lang=lang,
        lang_confidence=confidence,
        published=wire.published,
        retrieved=retrieved,
        author=wire.author,
    )


def _record_article(
    record: dict, options: IngestOptions, *, path: Optional[str], retrieved: Optional[datetime]
) -> Article:
    """An article from a JSON object: ``text`` or ``html``, plus optional ``id``, ``title``,
    ``url``, ``lang``, ``published``, ``retrieved``, ``source``, ``author``; the record's own
    values win over what is extracted or detected."""
    kind = record.get("type")
    if kind in _OTHER_RECORD_TYPES and "schema_version" in record:
        raise InputError("unsupported", f"storyclust {kind} record, not an article")
    if kind == "article":
        return _own_article(record)
    meta = _record_meta(record)
    url = meta["url"]
    html = record.get("html")
    text = record.get("text")
    if isinstance(text, str) and text.strip():
        body, byline = clean_body(normalize_text(text))
        return _finish_article(
            body,
            options,
            path=path,
            article_id=meta["id"],
            title=clean_title(meta["title"]),
            url=url,
            lang=meta["lang"],
            published=meta["published"],
            retrieved=meta["retrieved"] or retrieved,
            source=meta["source"],
            author=meta["author"] or byline,
        )
    if isinstance(html, str) and html.strip():
        page = _extract_page(valid_text(html).encode("utf-8"), options, url=url, charset="utf-8")
        return _finish_article(
            page.text,
            options,
            path=path,
            article_id=meta["id"],
            title=clean_title(meta["title"]) or page.title,
            url=url or page.url,
            lang=meta["lang"],
            published=meta["published"] or page.published,
            retrieved=meta["retrieved"] or retrieved,
            source=meta["source"] or page.source,
            author=meta["author"] or page.author,
        )
    if isinstance(text, str) or isinstance(html, str):
        raise InputError("empty", "record's text is empty")
    raise InputError("no_text", "record has neither 'text' nor 'html'")


def _own_article(record: dict) -> Article:
    """An ``article`` record as storyclust writes it: kept as it is (id, path, hash, duplicate_of)."""
    try:
        article = record_to_article(record)
    except ValueError as exc:
        raise InputError("no_text", str(exc)) from None
    if article.lang is None:
        lang, confidence = detect_language(article.text)
        article = replace(article, lang=lang, lang_confidence=confidence)
    return _with_id(article, article.id)


def _record_meta(record: dict) -> dict[str, Any]:
    lang = _opt_str(record.get("lang"))
    return {
        "id": _opt_str(record.get("id")),
        "title": _opt_str(record.get("title")),
        "url": _opt_str(record.get("url")),
        "lang": lang.lower() if lang else None,
        "published": parse_datetime(record.get("published")),
        "retrieved": parse_datetime(record.get("retrieved")),
        "source": _opt_str(record.get("source")),
        "author": _opt_str(record.get("author")),
    }


# --- guarded steps ----------------------------------------------------------------------

def warm_up() -> None:
    """Load the language model and date tables once per process, so their one-time
    cost (a second or two) is never charged to a document's time limit."""
    warm_up_lang()
    warm_up_dates()


_WARM_PAGE = (
    "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Warm-up page | Site</title>"
    "<meta property='og:site_name' content='Site'><link rel='canonical' href='https://example.org/a/1'>"
    "<script type='application/ld+json'>{\"@context\": \"https://schema.org\", \"@type\": \"NewsArticle\"}</script>"
    "</head><body><nav><a href='/'>Home</a></nav><div class='content'><h1>Warm-up page</h1>"
    "<p class='byline'>By Jane Doe</p><time datetime='2024-01-02'>2 January 2024</time>"
    "<p>A short paragraph, so that every fallback of the extractor runs once.</p>"
    "<ul><li><a href='/b'>Another page</a></li></ul></div><footer>Footer</footer></body></html>"
)


def warm_up_extraction() -> None:
    """Run one small page through HTML extraction (both modes), so trafilatura's lazy state
    (jusText stop lists, readability and htmldate internals) exists before workers are forked."""
    for fast in (False, True):
        try:
            extract_html(_WARM_PAGE, url="https://example.org/a/1", fast=fast)
        except Exception:  # a warm-up must never stop the workers from starting
            pass


def _attempt(source: str, options: IngestOptions, step: Callable[[], _T]) -> Union[_T, Rejection]:
    """``step()`` under the per-document time limit; any failure becomes a Rejection of ``source``.

    This is where "every record is its own unit of failure" is enforced: an
    :class:`InputError` keeps its reason, the time limit gives ``timeout``, deep
    nesting and any unexpected exception (a library's bug on a strange input)
    give ``parse_error``. KeyboardInterrupt and SystemExit pass through.
    """
    warm_up()
    try:
        with time_limit(options.timeout):
            return step()
    except InputError as exc:
        return Rejection(source, exc.reason, exc.detail)
    except ExtractionTimeout:
        return Rejection(source, "timeout", f"extraction took longer than {options.timeout:g} s")
    except RecursionError:
        return Rejection(source, "parse_error", "document is nested too deeply")
    except Exception as exc:
        return Rejection(source, "parse_error", _internal(exc))


def _internal(exc: BaseException) -> str:
    return f"internal error while reading: {exc!r}"[:300].splitlines()[0]


def _guarded(source: str, options: IngestOptions, build: Callable[[], Article]) -> Located:
    """Run ``build`` under the time limit; per-input failures become a Rejection."""
    return Located(source, _attempt(source, options, build))


def _located(items: Iterator[Union[Rejection, Located]]) -> Iterator[Located]:
    """Give bare rejections their own source as location."""
    for item in items:
        yield Located(item.source, item) if isinstance(item, Rejection) else item


# --- files ------------------------------------------------------------------------------

def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime, tz=timezone.utc)


def _kind_of(path: str) -> tuple[Optional[str], bool]:
    """``(format, gzipped)`` from the file name: ``x.jsonl.gz`` -> ``("jsonl", True)``."""
    name = os.path.basename(path).lower()
    gzipped = name.endswith(".gz")
    if gzipped:
        name = name[:-3]
    if name.endswith(".tgz"):
        return None, True
    return _KINDS.get(os.path.splitext(name)[1]), gzipped


def read_file(path: str, options: IngestOptions) -> Iterator[Located]:
    """Read one file: one item per record (one for a plain document), never raising for bad input."""
    return _located(_read_file(path, options))


def _read_file(path: str, options: IngestOptions) -> Iterator[Union[Rejection, Located]]:
    try:
        st = os.stat(path)
    except OSError as exc:
        yield Rejection(path, "unreadable", f"cannot stat: {exc.strerror or exc}")
        return
    if not stat.S_ISREG(st.st_mode):
        yield Rejection(path, "unreadable", "not a regular file")
        return
    if st.st_size > options.max_file_bytes:
        yield Rejection(path, "too_large", f"{st.st_size} bytes, over the {options.max_file_bytes}-byte limit")
        return
    if st.st_size == 0:
        yield Rejection(path, "empty", "empty file")
        return
    try:
        fh = open(path, "rb")
    except OSError as exc:
        yield Rejection(path, "unreadable", f"cannot open: {exc.strerror or exc}")
        return
    with fh:
        try:
            yield from _read_open_file(fh, path, st, options)
        except OSError as exc:
            yield Rejection(path, "unreadable", f"read error: {exc.strerror or exc}")


def _read_open_file(
    fh: BinaryIO, path: str, st: os.stat_result, options: IngestOptions
) -> Iterator[Union[Rejection, Located]]:
    """Pick the format (name, then gzip/WARC/HTML sniffing) and read the file with it."""
    kind, gzipped = _kind_of(path)
    if kind == "html" and not gzipped and st.st_size > options.max_html_bytes:
        yield Rejection(
            path, "too_large", f"HTML page of {st.st_size} bytes, over the {options.max_html_bytes}-byte limit"
        )
        return
    buffer = max(io.DEFAULT_BUFFER_SIZE, min(_READ_CHUNK, st.st_size + 1))  # no 1 MiB buffer for a 50 KB page
    stream: BinaryIO = io.BufferedReader(fh, buffer_size=buffer)  # type: ignore[arg-type]
    gz: Optional[GzipReader] = None
    if gzipped or is_gzip(stream.peek(2)[:2]):
        gz = GzipReader(stream, options.max_decompressed_bytes)
        stream = io.BufferedReader(gz, buffer_size=_READ_CHUNK)
    retrieved = _mtime(st)
    if kind is None and looks_warc(stream.peek(8)[:8]):
        kind = "warc"
    if kind == "warc":
        yield from _read_warc(stream, path, options, gz)
    elif kind == "jsonl":
        yield from _read_jsonl(stream, path, options, retrieved, gz)
    else:
        limit = _document_limit(kind, options)
        # Not gzipped: the file's own size (+1 to see a file that grew) is the most there is to
        # read; asking for limit + 1 made every read allocate a 16-64 MiB buffer and shrink it.
        data = stream.read((limit if gz is not None else min(limit, st.st_size)) + 1)
        if gz is None and len(data) > st.st_size:  # it grew since stat: read on, as far as the limit
            data += stream.read(limit + 1 - len(data))
        if gz is not None and gz.error is not None:
            yield Rejection(path, gz.error.reason, gz.error.detail)
        elif len(data) > limit:
            yield Rejection(path, "too_large", f"decompressed document is larger than {limit} bytes")
        else:
            yield from _read_document(data, kind, path, options, retrieved)


def _document_limit(kind: Optional[str], options: IngestOptions) -> int:
    """Most bytes a whole-document format may inflate to: what its uncompressed file could hold."""
    limit = options.max_html_bytes if kind == "html" else options.max_file_bytes
    return min(limit, options.max_decompressed_bytes)


def _read_document(
    data: bytes, kind: Optional[str], path: str, options: IngestOptions, retrieved: datetime
) -> Iterator[Union[Rejection, Located]]:
    """A whole-document file (HTML, text, JSON, or unknown and sniffed) already in memory."""
    kind = _attempt(path, options, lambda: _document_kind(data, kind))
    if isinstance(kind, Rejection):
        yield kind
        return
    if kind == "html":
        yield _guarded(path, options, lambda: _html_article(data, options, path=path, retrieved=retrieved))
    elif kind == "txt":
        yield _guarded(path, options, lambda: _text_article(data, options, path=path, retrieved=retrieved))
    else:
        yield from _read_json(data, path, options, retrieved)


def _document_kind(data: bytes, kind: Optional[str]) -> str:
    """``kind``, or the sniffed format when the name said nothing (raises :class:`InputError`)."""
    if not data.strip():
        raise InputError("empty", "nothing but whitespace")
    if looks_binary(data):
        raise InputError("binary", "binary data, not text")
    if kind is None:
        kind = _sniff(data)
        if kind is None:
            raise InputError("unsupported", "not a supported format (html, txt, json, jsonl, warc)")
    return kind


def _sniff(data: bytes) -> Optional[str]:
    """``html`` or ``json`` (JSON or JSON Lines) for a file whose name says nothing, else None."""
    if looks_html(data):
        return "html"
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"["):
        return "json"
    return None


def _read_json(
    data: bytes, path: str, options: IngestOptions, retrieved: datetime
) -> Iterator[Union[Rejection, Located]]:
    """A ``.json`` file: one object (source ``path``) or a list of them (``path#N``, 1-based).

    A file that holds one object per line (JSON Lines under a ``.json`` name) is read as such.
    Decoding and parsing run under the time limit; then each record under its own.
    """
    parsed = _attempt(path, options, lambda: _parse_json(data))
    if parsed is _JSON_LINES:
        yield from _read_jsonl(io.BytesIO(data), path, options, retrieved, None)
        return
    if isinstance(parsed, Rejection):
        yield parsed
    elif isinstance(parsed, dict):
        yield _record_item(parsed, path, path, options, retrieved)
    elif isinstance(parsed, list):
        if not parsed:
            yield Rejection(path, "empty", "empty JSON list")
        for n, record in enumerate(parsed, 1):
            loc = f"{path}#{n}"
            if isinstance(record, dict):
                yield _record_item(record, loc, path, options, retrieved)
            else:
                yield Rejection(loc, "parse_error", "list item is not a JSON object")
    else:
        yield Rejection(path, "parse_error", "JSON is neither an object nor a list of objects")


_JSON_LINES = object()  # _parse_json's answer for JSON Lines under a .json name


def _parse_json(data: bytes) -> Any:
    """The parsed document, or :data:`_JSON_LINES` (raises :class:`InputError`)."""
    text = decode_bytes(data)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and exc.lineno > 1:
            return _JSON_LINES
        raise InputError("parse_error", f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise InputError("parse_error", "malformed JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer over the int-digits limit
        raise InputError("parse_error", f"unreadable JSON value: {str(exc).splitlines()[0][:200]}") from None


def _record_item(
    record: dict, loc: str, path: Optional[str], options: IngestOptions, retrieved: Optional[datetime]
) -> Located:
    return _guarded(loc, options, lambda: _record_article(record, options, path=path, retrieved=retrieved))


def read_jsonl_stream(
    stream: BinaryIO,
    source: str,
    options: IngestOptions,
    *,
    retrieved: Optional[datetime] = None,
) -> Iterator[Located]:
    """JSON Lines from a binary stream (a file, gzip stream or stdin): one item per non-blank line.

    Locations are ``source#N`` with N the 1-based line number. A stream with no
    record at all yields one ``empty`` rejection for ``source``. ``stream`` may also
    be a text stream. Lines are read by :func:`storyclust.schema.iter_jsonl`, each
    at most ``options.max_file_bytes`` long (a longer line is ``too_large``).
    """
    return _located(_read_jsonl(stream, source, options, retrieved, None))


def _read_jsonl(
    stream: BinaryIO,
    source: str,
    options: IngestOptions,
    retrieved: Optional[datetime],
    gz: Optional[GzipReader],
) -> Iterator[Union[Rejection, Located]]:
    path = None if source == "-" else source
    records = 0
    loc = f"{source}#1"
    lines = iter_jsonl(stream, source, max_line_bytes=options.max_file_bytes)
    while True:
        try:
            found = next(lines, None)
        except OSError as exc:  # the stream itself failed (stdin closed under us, I/O error)
            yield Rejection(loc, "unreadable", f"read error: {exc.strerror or exc}; stream ends here")
            return
        if found is None:
            break
        loc, record, error = found
        records += 1
        if error is not None:
            yield Rejection(loc, error.reason, str(error))
        else:
            yield _record_item(record, loc, path, options, retrieved)
        loc = _next_loc(source, loc)
    if gz is not None and gz.error is not None:
        yield Rejection(loc, gz.error.reason, f"{gz.error.detail}; stream ends here")
    elif not records:
        yield Rejection(source, "empty", "no JSON records")


def _next_loc(source: str, loc: str) -> str:
    """The location after ``loc`` (``source#N`` -> ``source#N+1``), for a problem past the last record."""
    _, _, n = loc.rpartition("#")
    return f"{source}#{int(n) + 1}" if loc != source and n.isdigit() else source


# --- WARC -------------------------------------------------------------------------------

def _read_warc(
    stream: BinaryIO, path: str, options: IngestOptions, gz: Optional[GzipReader]
) -> Iterator[Union[Rejection, Located]]:
    """HTML response records of a WARC file, as ``path#N`` (N = 1-based record index).

    Other records (warcinfo, request, metadata, non-HTML responses) are skipped.
    Each record is its own unit of failure (its body is read, inflated and
    extracted under the time limit). A truncated or corrupt archive (the framing
    is lost: a lying ``Content-Length``, garbage between records) yields the
    records read so far plus one rejection for the rest.
    """
    found = 0
    index = 0
    problem: Optional[str] = None
    records = ArchiveIterator(stream)
    record = None
    while True:
        previous = record
        try:
            record = next(records, None)
        except Exception as exc:  # warcio raises ArchiveLoadFailed, EOFError, ValueError, OSError...
            problem = f"truncated or corrupt WARC: {exc}".splitlines()[0][:300]
            break
        if record is None:
            missing = getattr(getattr(previous, "raw_stream", None), "limit", 0)
            if isinstance(missing, int) and missing > 0:  # the archive ended inside the last record
                problem = (
                    f"truncated WARC: record {index} claims {missing} bytes more than the file holds "
                    "(a lying Content-Length swallows the records after it)"
                )
            break
        index += 1
        loc = f"{path}#{index}"
        item = _attempt(loc, options, lambda: _warc_record(record, loc, path, options))
        if item is not None:
            found += 1
            yield item if isinstance(item, Rejection) else Located(loc, item)
    if gz is not None and gz.error is not None:
        yield Rejection(f"{path}#{index + 1}", gz.error.reason, f"{gz.error.detail}; archive ends here")
    elif problem is not None:
        yield Rejection(f"{path}#{index + 1}", "parse_error", problem)
    elif not found:
        yield Rejection(path, "no_text", "WARC file holds no HTML response records")


def _warc_record(record: Any, loc: str, path: str, options: IngestOptions) -> Optional[Article]:
    """The article of an HTML response record; None for any other record (raises :class:`InputError`)."""
    if record.rec_type != "response" or record.http_headers is None:
        return None
    content_type = record.http_headers.get_header("Content-Type") or ""
    if content_type and not content_type.lower().startswith(_HTML_TYPES):
        return None
    body = _http_body(record, options)
    if not content_type and not looks_html(body):
        return None
    url = _opt_str(record.rec_headers.get_header("WARC-Target-URI"))
    retrieved = parse_datetime(record.rec_headers.get_header("WARC-Date"))
    charset = charset_from_content_type(content_type)
    return _html_article(body, options, path=path, url=url, retrieved=retrieved, charset=charset)


#: HTTP content codings inflated by :class:`GzipReader` (``deflate``: zlib or raw).
_CODINGS = {"gzip": False, "x-gzip": False, "deflate": True}


def _http_body(record: Any, options: IngestOptions) -> bytes:
    """The body of a WARC response, de-chunked and inflated, at most ``max_html_bytes + 1`` bytes.

    Every ``Content-Encoding`` layer (``gzip, gzip`` is two) goes through the same
    bounded inflater as a ``.gz`` file, under ``max_decompressed_bytes``: warcio's own
    decoding inflates whole blocks without a limit. An unknown coding (``br``,
    ``zstd``) is ``unsupported``.
    """
    stream: Any = record.raw_stream
    if (record.http_headers.get_header("Transfer-Encoding") or "").strip().lower() == "chunked":
        stream = ChunkedDataReader(stream)
    layers = []
    codings = [c.strip().lower() for c in (record.http_headers.get_header("Content-Encoding") or "").split(",")]
    for coding in reversed([c for c in codings if c and c != "identity"]):
        if coding not in _CODINGS:
            raise InputError("unsupported", f"Content-Encoding {coding!r} is not supported")
        layer = GzipReader(stream, options.max_decompressed_bytes, deflate=_CODINGS[coding])
        layers.append(layer)
        stream = io.BufferedReader(layer, buffer_size=_READ_CHUNK)
    body = stream.read(options.max_html_bytes + 1)
    for layer in layers:
        if layer.error is not None:
            raise layer.error
    return body
