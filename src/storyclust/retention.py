"""Retention: forget old closed stories so that a state file stays the size of its recent past.

:func:`prune` removes the closed (and merged) stories whose last activity is older than ``keep``
before ``now``, with their members' texts, metadata and vectors. What a pruned article still
leaves behind is a tombstone in ``forgotten``: its id, the first 16 bytes of its content hash
(:func:`storyclust.store.tombstone_key`) and the ID of the story it was in (~115 bytes on disk
against ~8-10 KB for a stored article; tombstones are never pruned). So

* its id stays "already seen": the same id read again is counted and skipped, as before;
* an exact reprint under another id (same content hash) is recognised and starts no story: it
  is counted as a reprint of a pruned article and kept as a tombstone too;
* a pruned story's ID stays in ``forgotten_stories`` and is never given to another story.

A near copy (a light edit) of a pruned article cannot be recognised (its shingles are gone) and
is clustered like any new article. Files recorded as read stay recorded while they exist, so an
unchanged old file is not read again; the records of files that no longer exist are dropped (each
record is looked at once, by the first prune after it ages past ``keep``, so a prune's cost does not
grow with the files of every past night).

Open stories are never forgotten, nor stories with a change still queued in the outbox (they go
once the change is published). A story that never goes quiet (a war, an election) would still grow
without end: of an open story larger than ``keep_latest`` (500, the night's window), the members taken
in before the cutoff and older than its latest 500 are forgotten too, leaving tombstones as above; the
story keeps its ID and its count of forgotten members (``forgotten`` in its records). Everything happens under the run lock in one transaction, so a
prune killed at any point leaves the state as it was before or after it; the file gives the
space back with ``VACUUM`` when at least ``vacuum_share`` of its pages are free (pages freed
by a prune below that share are reused by the next nights, so the file stops growing).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Optional

from .store import SQLiteStore

logger = logging.getLogger(__name__)

__all__ = ["PruneResult", "prune"]


@dataclass(frozen=True)
class PruneResult:
    """What :func:`prune` forgot (or, with ``dry_run``, would forget)."""

    stories: int  # closed or merged stories forgotten
    articles: int  # their articles, now tombstones
    vectors: int  # vectors no kept article uses any more
    files: int  # records of input files that no longer exist
    held: int  # stories old enough but kept because a change of theirs is still queued
    bytes_before: int
    bytes_after: int
    vacuumed: bool
    dry_run: bool
    cutoff: datetime
    trimmed: int = 0  # older members of open stories forgotten (each keeps its latest ``keep_latest``)

    def summary_line(self) -> str:
        verb = "would forget" if self.dry_run else "forgot"
        size = "" if self.dry_run else (f"; state {_mib(self.bytes_before)} -> {_mib(self.bytes_after)}"
                                         + (" (vacuumed)" if self.vacuumed else ""))
        return (f"prune: {verb} {self.stories} stories quiet since before {self.cutoff.isoformat(timespec='seconds')}"
                f" ({self.articles} articles, {self.vectors} vectors, {self.files} file records)"
                + (f"; {self.trimmed} older members of open stories" if self.trimmed else "")
                + (f"; {self.held} kept until their queued changes are published" if self.held else "") + size)


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def file_bytes(path: str) -> int:
    """Size of a state file with its write-ahead log."""
    return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))


class _DryRun(Exception):
    """Rolls a dry run's transaction back."""


def prune(store: SQLiteStore, keep: timedelta, *, now: Optional[datetime] = None, dry_run: bool = False,
          wait: bool = True, vacuum_share: float = 0.25, keep_latest: int = 500,
          vacuum: Optional[bool] = None) -> PruneResult:
    """Forget the closed stories whose last activity is older than ``now - keep`` (see the module docstring).

    ``dry_run`` does the same work in a transaction that is rolled back, so its counts are exact.
    ``keep_latest``: an open story keeps at least this many of its latest members (the night's window,
    ``StateOptions.recent_members``); its older members taken in before the cutoff are forgotten.
    ``vacuum``: None gives the space back when at least ``vacuum_share`` of the pages are free after a
    prune that forgot something; True always (a state with pages of another size is rebuilt with
    :data:`storyclust.store.PAGE_SIZE`), False never.
    Raises :class:`~storyclust.store.StateLocked` when another run holds the state and ``wait`` is False.
    """
    if keep <= timedelta(0):
        raise ValueError("keep must be positive")
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    cutoff = now - keep
    before = file_bytes(store.real_path)
    with store.lock(wait=wait):
        old = store.stories_quiet_since(cutoff)
        queued = store.queued_story_ids()
        stories = [sid for sid in old if sid not in queued]
        # each file record is looked at once, when it ages past the cutoff (a file still there keeps its record)
        checked = store.get_setting("files_checked_before")
        since = datetime.fromisoformat(checked) if checked else None
        gone_files = [path for path in store.files_read_before(cutoff, since) if not os.path.exists(path)]
        counts: dict[str, int] = {}
        try:
            with store.transaction():
                run_id = store.begin_run(now, store.get_setting("model_id"))
                articles = vectors = 0
                for sid in stories:
                    members = store.member_hashes(sid)
                    vectors += store.forget([(aid, h, sid) for aid, h in members], run_id)
                    articles += len(members)
                store.forget_stories(stories, run_id)
                trimmed = 0
                for story in store.long_open_stories(keep_latest):  # a story that never goes quiet
                    members = store.member_hashes(story.story_id, before=cutoff, keep_latest=keep_latest)
                    if members:
                        vectors += store.forget([(aid, h, story.story_id) for aid, h in members], run_id)
                        store.save_story(replace(story, size=story.size - len(members),
                                                 forgotten=story.forgotten + len(members)))
                        trimmed += len(members)
                store.forget_files(gone_files)
                if since is None or cutoff > since:
                    store.set_setting("files_checked_before", cutoff.isoformat())
                counts = {"pruned_stories": len(stories), "pruned_articles": articles, "trimmed_members": trimmed,
                          "pruned_vectors": vectors, "pruned_files": len(gone_files)}
                store.finish_run(run_id, counts)
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        if vacuum is None:
            vacuum = bool(stories or trimmed) and store.free_page_share() >= vacuum_share
        vacuumed = vacuum and not dry_run
        if not dry_run:
            store.compact(vacuum=vacuumed)
    result = PruneResult(len(stories), counts["pruned_articles"], counts["pruned_vectors"], len(gone_files),
                         len(old) - len(stories), before, file_bytes(store.real_path), vacuumed, dry_run, cutoff,
                         counts["trimmed_members"])
    logger.info("%s", result.summary_line())
    return result
