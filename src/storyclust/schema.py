"""The wire schema: records to and from storyclust's objects, in one place.

Every record carries ``schema_version`` and a ``type`` (``article``, ``story`` or
``rejection``) so a consumer can tell them apart in one stream. :func:`iter_jsonl` is the
one JSON Lines reader (ingest, cluster and eval all read through it); :mod:`storyclust.write`
puts records on stdout or into files.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import IO, Any, Iterator, Optional

from .types import SCHEMA_VERSION, Article, Rejection, Story, StoryMember


def _iso(dt: Optional[datetime]) -> Optional[str]:
    return dt.isoformat() if dt else None


def parse_datetime(value: Any) -> Optional[datetime]:
    """Parse an ISO 8601 string (or epoch seconds) into an aware datetime; None if not a date."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, (int, float)):
        dt = datetime.fromtimestamp(float(value), tz=timezone.utc)
    else:
        text = str(value).strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt


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
    rid = record.get("id")
    conf = record.get("lang_confidence")
    return Article(
        id=str(rid) if rid not in (None, "") else "",
        text=text,
        title=_opt_str(record.get("title")),
        url=_opt_str(record.get("url")),
        path=_opt_str(record.get("path")),
        lang=_opt_str(record.get("lang")),
        lang_confidence=float(conf) if isinstance(conf, (int, float)) else None,
        published=parse_datetime(record.get("published")),
        retrieved=parse_datetime(record.get("retrieved")),
        source=_opt_str(record.get("source")),
        author=_opt_str(record.get("author")),
        duplicate_of=_opt_str(record.get("duplicate_of")),
    )


def _opt_str(value: Any) -> Optional[str]:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def rejection_to_record(rejection: Rejection) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "type": "rejection",
        "source": rejection.source,
        "reason": rejection.reason,
        "detail": rejection.detail,
    }


def story_to_record(story: Story, *, include_text: bool = False) -> dict:
    record = {
        "schema_version": SCHEMA_VERSION,
        "type": "story",
        "story_id": story.story_id,
        "size": story.size,
        "singleton": story.singleton,
        "languages": story.languages,
        "headline": story.headline,
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
        article = Article(
            id=str(entry.get("id") if entry.get("id") is not None else ""),
            text=text if isinstance(text, str) else "",
            title=_opt_str(entry.get("title")),
            url=_opt_str(entry.get("url")),
            path=_opt_str(entry.get("path")),
            lang=_opt_str(entry.get("lang")),
            published=parse_datetime(entry.get("published")),
            source=_opt_str(entry.get("source")),
            duplicate_of=_opt_str(entry.get("duplicate_of")),
        )
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
    )


def dumps(record: dict) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def iter_jsonl(fh: IO[str], source: str = "-") -> Iterator[tuple[str, dict | None, str | None]]:
    """Yield ``(location, record, error)`` for each non-blank line of a JSONL stream.

    ``location`` is ``source#N`` (1-based line number); exactly one of
    ``record`` and ``error`` is not None. Malformed lines never stop the stream.
    """
    for lineno, line in enumerate(fh, 1):
        if not line.strip():
            continue
        loc = f"{source}#{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield loc, None, f"malformed JSON: {exc.msg} at column {exc.colno}"
            continue
        if not isinstance(record, dict):
            yield loc, None, "line is not a JSON object"
            continue
        yield loc, record, None
