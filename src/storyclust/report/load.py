"""Stories for a report: read back from a stories JSONL file or from a state file, then filtered."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import IO, Optional

from ..schema import iter_jsonl, record_to_story
from ..types import Story

log = logging.getLogger("storyclust.report")


@dataclass(frozen=True, slots=True)
class LoadStats:
    """What reading a stories JSONL stream found: stories kept, and lines that were not stories."""

    stories: int
    skipped: int  # records of another type (article, rejection...)
    errors: int  # malformed lines or story records that could not be read


def read_stories(fh: IO[str], source: str = "-", *,
                 progress: Optional[Callable[[int], None]] = None) -> tuple[list[Story], LoadStats]:
    """The stories of a JSONL stream (``story`` records), with counts of what was not a story.

    Malformed lines and unusable records are logged as warnings (with their ``source#line``) and
    skipped; records of other types are skipped silently (counted). ``progress(n)`` is called every
    thousand stories.
    """
    stories: list[Story] = []
    skipped = errors = 0
    for loc, record, error in iter_jsonl(fh, source):
        if record is None:
            log.warning("%s: %s", loc, error)
            errors += 1
            continue
        if record.get("type", "story") != "story":
            skipped += 1
            continue
        try:
            stories.append(record_to_story(record))
        except (ValueError, TypeError) as exc:
            log.warning("%s: not a usable story record: %s", loc, exc)
            errors += 1
            continue
        if progress is not None and len(stories) % 1000 == 0:
            progress(len(stories))
    return stories, LoadStats(len(stories), skipped, errors)


def stories_from_state(path: str, *, include_closed: bool = True) -> list[Story]:
    """The stories kept in a state file (open and, by default, closed), status = ``open``/``closed``.

    Raises :class:`storyclust.store.StateError` when the file cannot be used.
    """
    from ..incremental import current_stories
    from ..store import open_store

    with open_store(path) as store:
        return current_stories(store, include_closed=include_closed)


def last_activity(story: Story) -> Optional[datetime]:
    """When a story last changed: its newest article's publication date, else the state's last activity."""
    if story.last_published is not None:
        return story.last_published
    from ..schema import parse_datetime

    return parse_datetime(story.meta.get("last_activity"))


def select_stories(stories: Iterable[Story], *, since: Optional[timedelta] = None, now: Optional[datetime] = None,
                   min_size: int = 1) -> list[Story]:
    """The stories of at least ``min_size`` articles active within ``since`` of ``now``.

    With ``since``, a story is kept when its last activity (:func:`last_activity`) is no older than
    ``now - since``; stories with no date at all are dropped then.
    """
    out: Sequence[Story] = [s for s in stories if s.size >= min_size]
    if since is not None:
        if now is None:
            raise ValueError("since needs now")
        cutoff = now - since
        out = [s for s in out if (last_activity(s) or cutoff - timedelta(seconds=1)) >= cutoff]
    return list(out)
