"""The wire schema: records to and from storyclust's objects, in one place.

Every record carries ``schema_version`` and a ``type`` (``article``, ``story`` or
``rejection``) so a consumer can tell them apart in one stream. :func:`iter_jsonl` is the
one JSON Lines reader (ingest, cluster and eval all read through it); :mod:`storyclust.write`
puts records on stdout or into files.
"""
from __future__ import annotations

import json
import logging
import math
import re
from datetime import datetime, timezone
from typing import IO, Any, Iterator, Optional, Union

from .types import SCHEMA_VERSION, Article, Rejection, Story, StoryMember, valid_text


def _iso(dt: Optional[datetime]) -> Optional[str]:
    return dt.isoformat() if dt else None


log = logging.getLogger(__name__)

#: Longest string :func:`parse_datetime` tries to read as a date (ISO 8601 with offset and
#: nanoseconds is 35 characters); longer values are not dates.
_MAX_DATE_CHARS = 64


def parse_datetime(value: Any) -> Optional[datetime]:
    """Parse an ISO 8601 string (or epoch seconds) into an aware datetime; None if not a date.

    Never raises. A naive value is taken as UTC. A value that is not a date (wrong type,
    unparsable text, a bool) is None; a value that is a date but cannot be used is None too,
    with a WARNING on this module's logger: epoch seconds that are not finite or out of the
    range ``datetime`` holds (``1e300``, ``NaN``, ``-1e18``), and dates whose UTC equivalent
    falls outside years 1..9999 (``9999-12-31T23:00:00-05:00``), which would otherwise raise
    OverflowError wherever the date is compared or converted later.
    """
    if value is None or value == "" or isinstance(value, bool):
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, (int, float)):
        try:
            dt = datetime.fromtimestamp(float(value), tz=timezone.utc)
        except (OverflowError, ValueError, OSError):
            log.warning("date dropped: %.40r is not a usable epoch time", value)
            return None
    elif isinstance(value, str):
        text = value.strip()
        if len(text) > _MAX_DATE_CHARS:
            return None
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            return None
    else:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    try:
        dt.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        log.warning("date dropped: %s is out of range in UTC", dt.isoformat())
        return None
    return dt


def _confidence(value: Any) -> Optional[float]:
    """A language confidence as a float clamped to [0, 1] (with a warning); None if not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        conf = float(value)
    except OverflowError:  # an int too large for a float
        conf = math.inf
    if math.isnan(conf):
        log.warning("lang_confidence dropped: NaN")
        return None
    if not 0.0 <= conf <= 1.0:
        clamped = min(max(conf, 0.0), 1.0)
        log.warning("lang_confidence %.6g clamped to %g", conf, clamped)
        return clamped
    return conf


def article_to_record(article: Article) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "type": "article",
        "id": article.id,
        "path": article.path,
        "url": article.url,
        "title": article.title,
        "text": article.text,
        "lang": article.lang,
        "lang_confidence": article.lang_confidence,
        "published": _iso(article.published),
        "retrieved": _iso(article.retrieved),
        "source": article.source,
        "author": article.author,
        "duplicate_of": article.duplicate_of,
        "chars": article.chars,
        "hash": article.hash,
    }


def record_to_article(record: dict) -> Article:
    """Build an Article from an ``ingest`` record or any JSON object with ``id`` and ``text``.

    Raises ValueError (with a one-line reason) when the record cannot be an article.
    """
    if not isinstance(record, dict):
        raise ValueError("record is not a JSON object")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("record has no 'text'")
    return _article_of(record, text)


def _article_of(record: dict, text: str) -> Article:
    """The Article an article record (or a story record's article entry) describes, with ``text``."""
    return Article(
        id=_opt_str(record.get("id")) or "",
        text=text,
        title=_opt_str(record.get("title")),
        url=_opt_str(record.get("url")),
        path=_opt_str(record.get("path")),
        lang=_opt_str(record.get("lang")),
        lang_confidence=_confidence(record.get("lang_confidence")),
        published=parse_datetime(record.get("published")),
        retrieved=parse_datetime(record.get("retrieved")),
        source=_opt_str(record.get("source")),
        author=_opt_str(record.get("author")),
        duplicate_of=_opt_str(record.get("duplicate_of")),
    )


def _opt_str(value: Any) -> Optional[str]:
    """A scalar as a stripped string (None when missing, empty, or an object or list).

    Numbers are written as JSON would write them; bools are ``true``/``false``. Never raises
    (an integer too long for ``str()`` is None).
    """
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        try:
            value = str(value)
        except ValueError:  # int of more digits than sys.get_int_max_str_digits()
            return None
    value = value.strip()
    return value or None


def rejection_to_record(rejection: Rejection) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "type": "rejection",
        "source": rejection.source,
        "reason": rejection.reason,
        "detail": rejection.detail,
    }


def story_to_record(story: Story, *, include_text: bool = False, explain: bool = False) -> dict:
    """The wire record of a story; ``explain`` adds each article's ``evidence``
    (:func:`storyclust.explain.member_evidence`)."""
    evidence = {}
    if explain:
        from .explain import member_evidence

        evidence = member_evidence(story)
    record = {
        "schema_version": SCHEMA_VERSION,
        "type": "story",
        "story_id": story.story_id,
        "size": story.size,
        "singleton": story.singleton,
        "languages": story.languages,
        "headline": story.headline,
        "labels": list(story.labels),
        "first_published": _iso(story.first_published),
        "last_published": _iso(story.last_published),
        "articles": [
            {
                "id": m.article.id,
                "title": m.article.title,
                "lang": m.article.lang,
                "url": m.article.url,
                "path": m.article.path,
                "source": m.article.source,
                "published": _iso(m.article.published),
                "similarity": round(float(m.similarity), 4),
                "duplicate_of": m.article.duplicate_of,
                "joined_by": m.joined_by,
                **({"evidence": evidence[m.article.id]} if explain else {}),
                **({"text": m.article.text} if include_text else {}),
            }
            for m in story.members
        ],
    }
    if story.status is not None:
        record["status"] = story.status
        record["added"] = list(story.added)
    if story.merged_into:
        record["merged_into"] = story.merged_into
    if story.split_from:
        record["split_from"] = story.split_from
    if story.forgotten:
        record["forgotten"] = story.forgotten
    return record


def record_to_story(record: dict) -> Story:
    """Build a Story from a ``story`` record as :func:`story_to_record` writes it (the inverse, field for field).

    Members keep their order, similarity and (when the record carries it) ``joined_by``; their
    ``text`` is the record's (``--include-text``) or empty. ``labels``, ``status``, ``added``,
    ``merged_into`` and ``split_from`` are read when present. Raises ValueError (with a one-line
    reason) when the record is not a story.
    """
    if not isinstance(record, dict):
        raise ValueError("record is not a JSON object")
    if record.get("type", "story") != "story":
        raise ValueError(f"record is a {record.get('type')!r} record, not a story")
    story_id = _opt_str(record.get("story_id"))
    if story_id is None:
        raise ValueError("record has no 'story_id'")
    entries = record.get("articles")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError(f"story {story_id}: 'articles' is not a list of objects")
    members = []
    for entry in entries:
        text = entry.get("text")
        article = _article_of(entry, text if isinstance(text, str) else "")
        similarity = entry.get("similarity")
        members.append(StoryMember(article, float(similarity) if isinstance(similarity, (int, float)) else 0.0,
                                   joined_by=_opt_str(entry.get("joined_by"))))
    labels = record.get("labels")
    return Story(
        story_id=story_id,
        members=tuple(members),
        singleton=bool(record.get("singleton", len(members) == 1)),
        status=_opt_str(record.get("status")),
        added=tuple(str(a) for a in record.get("added") or ()),
        merged_into=_opt_str(record.get("merged_into")),
        split_from=_opt_str(record.get("split_from")),
        labels=tuple(str(x) for x in labels) if isinstance(labels, list) else (),
        forgotten=_count(record.get("forgotten")),
    )


def _count(value: Any) -> int:
    """A non-negative count from a record (0 for anything else)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def dumps(record: dict) -> str:
    """One record as compact JSON text (UTF-8 characters as they are). Never raises on text.

    A string that holds surrogates (from anywhere: a record built by hand, a path)
    is written by the rule of :func:`storyclust.types.valid_text`, so the line
    always encodes as UTF-8.
    """
    line = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    return valid_text(line)


class JsonlError(str):
    """The error of one JSON Lines line: a one-line message (a ``str``) plus ``reason``,
    a :data:`~storyclust.types.REJECT_REASONS` code (``parse_error``, ``decode_error``,
    ``too_large`` or ``binary``)."""

    reason: str

    def __new__(cls, reason: str, detail: str) -> "JsonlError":
        error = super().__new__(cls, detail)
        error.reason = reason
        return error


#: Bytes read at a time while skipping the rest of an over-long line.
_SKIP_CHUNK = 1 << 20


def iter_jsonl(
    fh: Union[IO[str], IO[bytes]], source: str = "-", *, max_line_bytes: Optional[int] = None
) -> Iterator[tuple[str, Optional[dict], Optional[JsonlError]]]:
    """Yield ``(location, record, error)`` for each non-blank line of a JSON Lines stream.

    The one JSON Lines reader (ingest, cluster and eval read through it). ``fh`` is a text
    stream or a binary one (each line then decoded as UTF-8, a BOM allowed); ``location``
    is ``source#N`` (1-based line number); exactly one of ``record`` and ``error`` is not
    None. Each line is its own unit of failure: whatever is wrong with one line (not
    UTF-8, malformed JSON, an integer of more than 4,300 digits, nesting deep enough to
    exhaust the parser's recursion, not an object) gives an error for that line, and the
    next line is read. A line longer than ``max_line_bytes`` (characters for a text
    stream) is a ``too_large`` error and is skipped without being held in memory, so
    memory stays bounded by the limit even for a 100 MB line with no newline. A stream
    whose first record line holds a NUL byte is not JSON Lines: one ``binary`` error
    located at ``source`` ends it.
    """
    lineno = 0
    first = True
    while True:
        line = fh.readline(max_line_bytes + 1) if max_line_bytes is not None else fh.readline()
        if not line:
            return
        lineno += 1
        loc = f"{source}#{lineno}"
        newline = b"\n" if isinstance(line, bytes) else "\n"
        if max_line_bytes is not None and len(line) > max_line_bytes and not line.endswith(newline):
            while True:  # skip to the end of the line, a chunk at a time
                rest = fh.readline(_SKIP_CHUNK)
                if not rest or rest.endswith(newline):
                    break
            yield loc, None, JsonlError("too_large", f"line is longer than {max_line_bytes} bytes")
            first = False
            continue
        if not line.strip():
            continue
        if first:
            first = False
            if _looks_binary(line):
                yield source, None, JsonlError("binary", "binary data, not JSON Lines")
                return
        record, error = _parse_line(line)
        yield loc, record, error


# Code points that never occur in text: C0 controls other than \t \n \f \r and ESC, plus DEL.
_BINARY = re.compile("[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f\x7f]")
_BINARY_BYTES = re.compile(_BINARY.pattern.encode("ascii"))


def _looks_binary(line: Union[str, bytes]) -> bool:
    """A NUL byte, or more than 5% control bytes, in the first 8 KiB (as ingest's ``looks_binary``)."""
    head = line[:8192]
    pattern = _BINARY_BYTES if isinstance(head, bytes) else _BINARY
    controls = len(pattern.findall(head))
    return controls > 0 and ((b"\x00" if isinstance(head, bytes) else "\x00") in head or controls / len(head) > 0.05)


def _parse_line(line: Union[str, bytes]) -> tuple[Optional[dict], Optional[JsonlError]]:
    if isinstance(line, bytes):
        try:
            line = line.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return None, JsonlError("decode_error", f"line is not valid UTF-8 (byte {exc.start + 1})")
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, JsonlError("parse_error", f"malformed JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return None, JsonlError("parse_error", "malformed JSON: nested too deeply")
    except (ValueError, OverflowError, MemoryError) as exc:  # e.g. the int-digits limit
        return None, JsonlError("parse_error", f"unreadable JSON value: {str(exc).splitlines()[0][:200]}")
    if not isinstance(record, dict):
        return None, JsonlError("parse_error", "line is not a JSON object")
    return record, None
