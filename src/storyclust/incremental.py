"""Nightly runs with memory: add tonight's articles to the stories of previous nights.

:func:`update_stories` is the whole incremental pipeline on a :class:`~storyclust.store.StateStore`:

1. **Ingest** (one transaction): articles whose content hash is already stored
   (the same text under any path) are skipped; new ones are stored with their
   effective date (``published``, else ``retrieved``, else ``now``) and the key
   of their embedding text.
2. **Embed** (one transaction per batch): every *pending* article (stored but
   not yet in a story, whether new tonight or left over by a killed run) whose
   text has no vector for this model yet is embedded. The cache key is
   ``(embedder.model_id, sha256(embedding_text(article)))``: the same text is
   never embedded twice for one model, whatever its path or id.
3. **Assign** (one transaction): pending vectors are made language-neutral with
   the running per-language means kept in the store (seeded on the first night
   with the clusterer's reference means). They are then clustered, by
   :class:`~storyclust.cluster.StoryClusterer`, together with the members of
   every open story (whose vectors are stored), so that a new article lands
   where the batch clusterer would put it. Each cluster is mapped onto the
   existing stories: the story with most members in it grows (and keeps its
   ID) with the new articles whose mean cosine to its members in the cluster
   reaches ``ClusterOptions.assign_threshold``; another story with more than half of
   its members in the cluster, and any one-article story in it, is merged
   into it (reported once as ``closed`` with ``merged_into``); a cluster of
   new articles only becomes a new story. Old articles never change story
   except by a merge or a split: a story that grew this run is re-clustered
   and a group of its articles that the clusterer would not have put with the
   rest splits off into a new story with ``split_from``. Finally stories whose
   last article is older than ``now - story_window`` close and take no new
   articles.

Because everything after the embeddings is one transaction that only reads
pending articles, a run killed at any point is finished by the next run with
the same result as an uninterrupted run. Story IDs are ``s_`` + 12 hex digits
of the SHA-1 of the content hash of the story's first article, so they do not
depend on paths or on the order files were listed in.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Iterable, Optional, Sequence, Union

import numpy as np

from .evidence import evidence_text
from .store import FileStamp, StateError, StateStore, StoredArticle, StoredStory
from .types import Article, Rejection, Story

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .cluster import ClusterOptions
    from .embed import Embedder
    from .ingest import IngestOptions, IngestStats

logger = logging.getLogger(__name__)

#: Default time after which a story with no new article closes.
DEFAULT_STORY_WINDOW = timedelta(days=3)

#: Smallest group of articles that may split off a story (and half the smallest story checked for splits).
MIN_SPLIT = 2

#: Articles embedded (and committed) per transaction.
DEFAULT_BATCH_SIZE = 32

_WINDOW_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([wdhms]?)\s*$", re.IGNORECASE)
_WINDOW_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds", "": "days"}


def parse_window(text: str) -> timedelta:
    """Parse a duration such as ``3d``, ``36h``, ``90m``, ``1w`` or ``2.5`` (days).

    Raises ValueError for anything else, or for a zero duration.
    """
    match = _WINDOW_RE.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 3d, 36h, 90m, 1w)")
    value = timedelta(**{_WINDOW_UNITS[match.group(2).lower()]: float(match.group(1))})
    if value <= timedelta(0):
        raise ValueError(f"duration must be positive: {text!r}")
    return value


def article_date(article: Article, now: datetime) -> datetime:
    """The date an article counts at: ``published``, else ``retrieved``, else ``now``."""
    return article.published or article.retrieved or now


def text_key(article: Article) -> str:
    """Embedding-cache key of an article: SHA-256 of the exact text the embedder sees."""
    from .embed import embedding_text

    return hashlib.sha256(embedding_text(article).encode("utf-8")).hexdigest()


def new_story_id(first_hash: str, taken: set[str]) -> str:
    """Stable story ID from the content hash of the story's first article (not in ``taken``)."""
    salt = ""
    n = 0
    while True:
        sid = "s_" + hashlib.sha1((first_hash + salt).encode("ascii")).hexdigest()[:12]
        if sid not in taken:
            return sid
        n += 1
        salt = f":{n}"


@dataclass(frozen=True)
class RunResult:
    """What one incremental run did."""

    run_id: int
    stories: list[Story]  # changed this run (or every open story with include_all), oldest first
    ingested: int  # new articles stored this run
    skipped: int  # articles whose content was already stored (or repeated in this input)
    embedded: int  # texts embedded this run (cache misses)
    pending: int  # articles placed into stories this run (new + left over by an interrupted run)
    assigned: int  # of those, how many joined an existing story
    created: int  # new stories
    closed: int  # stories closed (quiet too long, or merged into another)
    unchanged_files: int = 0  # input files not read again: same size and mtime as when last read


@dataclass
class _Work:
    """A story being updated in memory during the assignment transaction."""

    story_id: str
    state: str
    singleton: bool
    size: int
    total: np.ndarray
    first_date: datetime
    last_date: datetime
    created_run: int
    updated_run: int
    closed_run: Optional[int] = None
    merged_into: Optional[str] = None
    split_from: Optional[str] = None
    event: Optional[str] = None  # new / updated / closed
    added: list[str] = field(default_factory=list)  # hashes added this run

    @classmethod
    def of(cls, s: StoredStory) -> "_Work":
        return cls(s.story_id, s.status, s.singleton, s.size, s.centroid_sum.copy(), s.first_date,
                   s.last_date, s.created_run, s.updated_run, s.closed_run, s.merged_into, s.split_from)

    def stored(self) -> StoredStory:
        return StoredStory(self.story_id, self.state, self.singleton, self.size, self.total.astype(np.float32),
                           self.first_date, self.last_date, self.created_run, self.updated_run,
                           self.closed_run, self.merged_into, self.split_from)


EmbedderSource = Union["Embedder", Callable[[], "Embedder"]]


def update_stories(
    store: StateStore,
    articles: Iterable[Article | Rejection],
    embedder: EmbedderSource,
    *,
    options: Optional["ClusterOptions"] = None,
    now: Optional[datetime] = None,
    story_window: timedelta = DEFAULT_STORY_WINDOW,
    include_all: bool = False,
    wait: bool = True,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
    files: Sequence[FileStamp] = (),
) -> RunResult:
    """Ingest ``articles`` into ``store``, embed what is new and update the stories.

    ``embedder`` is an :class:`~storyclust.embed.Embedder` or a zero-argument
    callable returning one; a callable is only called when there is something
    to embed or assign, so a night with nothing new never loads the model.
    Rejections in ``articles`` are counted and otherwise ignored. ``files``
    (the stamps of the files ``articles`` were read from) are recorded with the
    articles, so that :func:`update_from_paths` skips them while unchanged.

    Holds the store's run lock for the whole run (``wait=False`` raises
    :class:`~storyclust.store.StateLocked` instead of waiting) and returns the
    stories that changed (every open story as well with ``include_all``).
    Raises :class:`~storyclust.store.StateError` when the state was built with
    another embedding model.
    """
    from .cluster import ClusterOptions

    options = options or ClusterOptions()
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    load = _loader(embedder)
    with store.lock(wait=wait):
        run_id, ingested, skipped, rejected = _ingest(store, articles, now, files)
        pending = store.pending_articles()
        model_id = store.get_setting("model_id")
        embedded = 0
        means: dict[str, tuple[np.ndarray, int]] = {}
        if pending:
            model = load()
            model_id = _check_model(store, model.model_id)
            embedded = _embed_pending(store, pending, model, batch_size, progress)
            means = _initial_means(store, model, options)
        with store.transaction():
            assignment = _Assignment(store, run_id, now, story_window, options, model_id)
            assigned = assignment.place(pending, means) if pending else 0
            assignment.split_drifted_stories()
            assignment.close_quiet_stories()
            assignment.save()
            changed = [w for w in assignment.works.values() if w.event]
            store.finish_run(run_id, {"ingested": ingested, "skipped": skipped, "rejected": rejected,
                                      "embedded": embedded, "assigned": len(pending), "changed": len(changed)},
                             model_id=model_id)
        stories = _report(store, assignment, include_all)
    result = RunResult(
        run_id=run_id, stories=stories, ingested=ingested, skipped=skipped, embedded=embedded,
        pending=len(pending), assigned=assigned, created=sum(w.event == "new" for w in changed),
        closed=sum(w.event == "closed" for w in changed),
    )
    logger.info(
        "run %d: %d new articles, %d already seen, %d embedded, %d placed (%d into existing stories),"
        " %d new stories, %d closed", run_id, ingested, skipped, embedded, len(pending), assigned,
        result.created, result.closed,
    )
    return result


def update_from_paths(
    store: StateStore,
    paths: Sequence[str | os.PathLike[str]],
    embedder: EmbedderSource,
    *,
    ingest_options: Optional["IngestOptions"] = None,
    stats: Optional["IngestStats"] = None,
    wait: bool = True,
    progress: bool = False,
    **kwargs: object,
) -> RunResult:
    """The nightly job: read the files under ``paths`` that changed since they were last read, then
    :func:`update_stories` (``kwargs`` go there).

    A file whose size and mtime are what they were when a previous run read it
    is not parsed again; every other file (and ``-``, stdin) is ingested, and
    articles already in the store are skipped by content hash.
    """
    from .ingest import ingest_paths

    with store.lock(wait=wait):
        to_read, fresh, unchanged = files_to_read(store, paths)
        items = ingest_paths(to_read, ingest_options, stats=stats, progress=progress) if to_read else iter(())
        result = update_stories(store, items, embedder, files=fresh, wait=wait, progress=progress,
                                **kwargs)  # type: ignore[arg-type]
    return replace(result, unchanged_files=unchanged)


def files_to_read(store: StateStore, paths: Sequence[str | os.PathLike[str]]) -> tuple[list[str], list[FileStamp], int]:
    """``(paths to ingest, stamps of those files, how many files are unchanged)`` for the files under ``paths``.

    Folders are walked as ingest walks them. A file is left out when its size
    and mtime are what they were when a previous run read it; ``-`` (stdin)
    and paths that cannot be stat'ed are always passed on (ingest turns the
    latter into ``unreadable`` rejections). Pass the stamps to
    :func:`update_stories` (``files=``) so they are recorded with the articles.
    """
    from .ingest.walk import STDIN, expand_paths

    passed: list[str] = []
    stamps: list[FileStamp] = []
    for path in expand_paths(paths):
        try:
            st = os.stat(path) if path != STDIN else None
        except OSError:
            st = None
        if st is None:
            passed.append(path)
        else:
            stamps.append(FileStamp(os.path.abspath(path), st.st_size, st.st_mtime_ns))
    unchanged = store.unchanged_files(stamps)
    fresh = [s for s in stamps if s.path not in unchanged]
    if unchanged:
        logger.info("%d input files unchanged since they were last read", len(unchanged))
    return [s.path for s in fresh] + passed, fresh, len(unchanged)


def current_stories(store: StateStore, *, include_closed: bool = False) -> list[Story]:
    """The stories in the store, without ingesting anything: open ones (and closed ones if asked).

    Each story's ``status`` is its state in the store, ``open`` or ``closed``.
    """
    states = ("open", "closed") if include_closed else ("open",)
    return [store.load_story(s, status=state) for state in states for s in store.stories(status=state)]


def state_embedding(store: StateStore, backend: str, pooling: str) -> tuple[str, str, Optional[str]]:
    """The embedding backend, pooling and prompt to load for ``store`` when the user asked for these.

    Each ``"auto"`` resolves to what the state file was built with, and so does the prompt
    (None: the model's own), so that a state keeps working when the defaults change (another
    machine, a new storyclust version: states from before SIF pooling keep mean pooling);
    explicit choices are returned as asked (and refused later if they do not match the state).
    """
    from .embed import settings_of

    known = store.get_setting("model_id")
    settings = settings_of(known) if known else None
    if settings is None:
        return backend, pooling, None
    return (settings.backend if backend == "auto" else backend,
            settings.pooling if pooling == "auto" else pooling,
            settings.prompt)


def _loader(embedder: EmbedderSource) -> Callable[[], "Embedder"]:
    if hasattr(embedder, "encode"):
        return lambda: embedder  # type: ignore[return-value]
    cache: list["Embedder"] = []

    def load() -> "Embedder":
        if not cache:
            cache.append(embedder())  # type: ignore[operator]
        return cache[0]

    return load


def _check_model(store: StateStore, model_id: str) -> str:
    """The state's stories live in one model's space: refuse to mix models."""
    known = store.get_setting("model_id")
    if known is None:
        with store.transaction():
            store.set_setting("model_id", model_id)
    elif known != model_id:
        raise StateError(
            f"state file was built with embedding model {known!r}, not {model_id!r};"
            " use that model or start a new state file"
        )
    return model_id


def _ingest(store: StateStore, items: Iterable[Article | Rejection], now: datetime,
            files: Sequence[FileStamp]) -> tuple[int, int, int, int]:
    """Store the articles not seen before, in one transaction. Returns (run id, new, skipped, rejected)."""
    fresh: dict[str, Article] = {}
    seen = rejected = 0
    for item in items:
        if isinstance(item, Rejection):
            rejected += 1
            logger.debug("rejected %s: %s %s", item.source, item.reason, item.detail)
            continue
        seen += 1
        fresh.setdefault(item.hash, item)
    known = store.known_hashes(fresh)
    rows = [(a, article_date(a, now), text_key(a)) for h, a in fresh.items() if h not in known]
    with store.transaction():
        run_id = store.begin_run(now, store.get_setting("model_id"))
        added = store.add_articles(rows, run_id)
        store.record_files(files, run_id)
    return run_id, added, seen - added, rejected


def _initial_means(store: StateStore, embedder: "Embedder",
                   options: "ClusterOptions") -> dict[str, tuple[np.ndarray, int]]:
    """The state's running language sums; on the first night, the clusterer's reference means.

    Seeding with the reference means (a calibration corpus shipped with
    storyclust, as a few pseudo-articles per language) keeps a first night of
    a handful of articles from being neutralised by its own tiny mean.
    """
    from .cluster import reference_language_means

    means = store.language_means(embedder.model_id)
    if not means and options.neutralize:
        means = reference_language_means(embedder, weight=options.reference_weight)
    return means


def _embed_pending(store: StateStore, pending: Sequence[StoredArticle], embedder: "Embedder",
                   batch_size: int, progress: bool) -> int:
    """Embed the pending texts not yet cached, committing one batch per transaction."""
    from .embed import embedding_text

    texts = {p.text_key: embedding_text(p.article) for p in pending}
    missing = store.missing_embeddings(embedder.model_id, texts)
    for start in range(0, len(missing), batch_size):
        keys = missing[start:start + batch_size]
        vectors = np.asarray(embedder.encode([texts[k] for k in keys], progress=progress), dtype=np.float32)
        with store.transaction():
            store.put_embeddings(embedder.model_id, dict(zip(keys, vectors)))
        logger.info("embedded %d/%d new texts", start + len(keys), len(missing))
    return len(missing)


def _report(store: StateStore, assignment: "_Assignment", include_all: bool) -> list[Story]:
    """Stories to print: the changed ones (with status and added ids), plus every open one if asked."""
    added_hashes = [h for w in assignment.works.values() for h in w.added]
    ids = {h: s.article.id for h, s in store.articles_by_hash(added_hashes).items()}
    out: list[tuple[datetime, str, Story]] = []
    for w in assignment.works.values():
        if w.event is None and not (include_all and w.state == "open"):
            continue
        if w.story_id in assignment.merged_reports:
            story = assignment.merged_reports[w.story_id]
            story = replace(story, status=w.event, merged_into=w.merged_into,
                            meta={**story.meta, "state": w.state, "closed_run": w.closed_run})
        else:
            story = store.load_story(w.stored(), status=w.event or "unchanged",
                                     added=[ids[h] for h in w.added])
        out.append((w.first_date, w.story_id, story))
    out.sort(key=lambda t: (t[0], t[1]))
    return [s for _, _, s in out]


class _Assignment:
    """The assignment step of one run; every store write happens in the caller's transaction."""

    def __init__(self, store: StateStore, run_id: int, now: datetime, window: timedelta,
                 options: "ClusterOptions", model_id: Optional[str]) -> None:
        self.store = store
        self.run_id = run_id
        self.now = now
        self.window = window
        self.options = options
        self.model_id = model_id
        self.works: dict[str, _Work] = {s.story_id: _Work.of(s) for s in store.stories(status="open")}
        self.taken: set[str] = set(self.works) | {s.story_id for s in store.stories()}
        self.merged_reports: dict[str, Story] = {}

    # -- placing pending articles -----------------------------------------

    def place(self, pending: Sequence[StoredArticle], means: dict[str, tuple[np.ndarray, int]]) -> int:
        """Put every pending article into a story; returns how many joined a story that existed before.

        ``means`` are the running per-language sums before this run; they are
        updated with tonight's articles and stored. The pending articles are
        clustered together with the open singletons and the members of the
        open stories, exactly as the batch clusterer would cluster them; each
        cluster is then mapped onto the stories that already exist.
        """
        from .cluster import StoryClusterer

        assert self.model_id is not None
        X = self.store.get_embeddings(self.model_id, [p.text_key for p in pending])
        langs = [p.article.lang for p in pending]
        clusterer = StoryClusterer(self.options, language_means=means)
        clusterer.update_language_means(X, langs)
        self.store.set_language_means(self.model_id, clusterer.language_means_)
        Z = _unit_rows(clusterer.neutralize(X, langs))

        members = self.store.open_members()
        owners: list[Optional[_Work]] = [None] * len(pending) + [self.works[m[0]] for m in members]
        rows = np.concatenate([Z, *(m[2][None, :] for m in members)])
        days = _days([p.date for p in pending] + [m[3] for m in members])
        texts = None
        if self.options.number_weight > 0:  # the members' texts are read only when their numbers count
            stored = self.store.articles_by_hash([m[1] for m in members])
            texts = [evidence_text(p.article) for p in pending] + [evidence_text(stored[m[1]].article) for m in members]
        labels = _cluster_neutral(self.options, rows, days, texts)
        groups: dict[int, list[int]] = {}
        for k, label in enumerate(labels):
            groups.setdefault(int(label), []).append(k)
        joined = 0
        for label in sorted(groups):
            news = [k for k in groups[label] if k < len(pending)]
            if news:
                olds = [(owners[k], k) for k in groups[label] if k >= len(pending)]
                joined += self._place_group(pending, Z, news, olds, rows, days)
        return joined

    def _similarity(self, news: list[int], members: list[int], rows: np.ndarray, days: np.ndarray) -> np.ndarray:
        """Mean cosine of each new row to the member rows: the batch clusterer's average linkage.

        As in :class:`~storyclust.cluster.StoryClusterer`, a member further than
        ``time_window_days`` from the row counts as cosine -1 (distance 2).
        """
        S = rows[news] @ rows[members].T
        window = self.options.time_window_days
        if window:
            S = np.where(np.abs(days[news][:, None] - days[members][None, :]) > window, -1.0, S)
        return S.mean(axis=1)

    def _place_group(self, pending: Sequence[StoredArticle], Z: np.ndarray, news: list[int],
                     olds: list[tuple[_Work, int]], rows: np.ndarray, days: np.ndarray) -> int:
        """Map one cluster holding new articles onto the stories; returns how many joined an older story.

        ``olds`` are the cluster's old members as (story, row). The story with
        most members in the cluster (the oldest on a tie) is the target.
        Another story with more than half of its members in the cluster, and
        every singleton in it, is merged into the target. New articles join the
        target when their mean cosine to the target's members in the cluster
        reaches ``assign_threshold``; the others start a story of their own.
        """
        counts: dict[str, int] = {}
        for w, _ in olds:
            counts[w.story_id] = counts.get(w.story_id, 0) + 1
        if not counts:
            self._new_story(pending, Z, news, singleton=len(news) == 1)
            return 0
        ranked = sorted(counts, key=lambda sid: (-counts[sid], self.works[sid].first_date, sid))
        target = self.works[ranked[0]]
        for sid in ranked[1:]:
            other = self.works[sid]
            if other.singleton or 2 * counts[sid] > other.size:
                self._merge(other, target)
        sims = self._similarity(news, [k for w, k in olds if w.story_id == target.story_id], rows, days)
        joining = [i for i, sim in zip(news, sims) if sim >= self.options.assign_threshold]
        staying = [i for i in news if i not in set(joining)]
        if joining:
            self._join(target, [pending[i] for i in joining], Z[joining])
            target.singleton = False
        if staying:
            self._new_story(pending, Z, staying, singleton=len(staying) == 1)
        return len(joining)

    # -- story bookkeeping --------------------------------------------------

    def _touch(self, w: _Work) -> None:
        w.updated_run = self.run_id
        if w.event is None:
            w.event = "updated"

    def _join(self, w: _Work, arts: Sequence[StoredArticle], Z: np.ndarray) -> None:
        self.store.add_members(w.story_id, {p.article.hash: z for p, z in zip(arts, Z)}, self.run_id)
        w.total = w.total + Z.sum(axis=0)
        w.size += len(arts)
        w.first_date = min([w.first_date, *(p.date for p in arts)])
        w.last_date = max([w.last_date, *(p.date for p in arts)])
        w.added.extend(p.article.hash for p in arts)
        self._touch(w)

    def _new_story(self, pending: Sequence[StoredArticle], Z: np.ndarray, idx: list[int], *,
                   singleton: bool) -> _Work:
        arts = sorted((pending[i] for i in idx), key=lambda p: (p.date, p.article.hash))
        sid = new_story_id(arts[0].article.hash, self.taken)
        self.taken.add(sid)
        first = arts[0].date
        w = _Work(sid, "open", singleton, 0, np.zeros(Z.shape[1], dtype=np.float32), first, first,
                  self.run_id, self.run_id, event="new")
        self.store.save_story(w.stored())
        self.works[sid] = w
        self._join(w, [pending[i] for i in idx], Z[idx])
        w.event = "new"
        return w

    def _merge(self, src: _Work, dst: _Work) -> None:
        """Move every member of ``src`` into ``dst``; ``src`` is closed with ``merged_into``."""
        self.merged_reports[src.story_id] = self.store.load_story(src.stored())
        moved = self.store.member_runs(src.story_id)
        self.store.move_members(src.story_id, dst.story_id)
        dst.total = dst.total + src.total
        dst.size += src.size
        dst.first_date = min(dst.first_date, src.first_date)
        dst.last_date = max(dst.last_date, src.last_date)
        dst.added.extend(sorted(moved))
        dst.singleton = False
        self._touch(dst)
        src.state, src.merged_into, src.closed_run, src.size = "merged", dst.story_id, self.run_id, 0
        src.updated_run = self.run_id
        src.event = "closed"
        logger.info("story %s merged into %s", src.story_id, dst.story_id)

    def split_drifted_stories(self) -> None:
        """Split stories that grew this run and now hold clearly different groups of articles.

        A story that received articles and has at least ``2 * MIN_SPLIT``
        members is re-clustered; each sub-cluster of ``MIN_SPLIT`` or more
        articles whose mean cosine to the part holding the story's first
        article is below ``1 - max_distance`` (the clusterer would not have
        joined them) becomes a new story with ``split_from`` set (the
        original keeps its ID and the rest).
        """
        min_sim = 1.0 - self.options.max_distance
        for w in sorted(self.works.values(), key=lambda w: w.story_id):
            if w.state != "open" or w.singleton or not w.added or w.size < 2 * MIN_SPLIT:
                continue
            vectors = self.store.member_vectors(w.story_id)
            stored = self.store.articles_by_hash(list(vectors))
            order = sorted(vectors, key=lambda h: (stored[h].date, h))
            Zm = np.stack([vectors[h] for h in order])
            labels = _cluster_neutral(self.options, Zm, _days([stored[h].date for h in order]),
                                      [evidence_text(stored[h].article) for h in order])
            groups: dict[int, list[int]] = {}
            for k, label in enumerate(labels):
                groups.setdefault(int(label), []).append(k)
            if len(groups) < 2:
                continue
            keep = int(labels[0])  # the part holding the story's first article keeps the story
            kept = Zm[groups[keep]].mean(axis=0)
            for label, idx in sorted(groups.items()):
                if label != keep and len(idx) >= MIN_SPLIT and float(Zm[idx].mean(axis=0) @ kept) < min_sim:
                    self._split(w, [stored[order[k]] for k in idx], Zm[idx], stored)

    def _split(self, src: _Work, arts: list[StoredArticle], Z: np.ndarray,
               stored: dict[str, StoredArticle]) -> None:
        """Move ``arts`` (sorted by date) out of ``src`` into a new story that records ``split_from``."""
        sid = new_story_id(arts[0].article.hash, self.taken)
        self.taken.add(sid)
        hashes = [p.article.hash for p in arts]
        w = _Work(sid, "open", False, len(arts), Z.sum(axis=0), arts[0].date, max(p.date for p in arts),
                  self.run_id, self.run_id, split_from=src.story_id, event="new", added=hashes)
        self.store.save_story(w.stored())
        self.store.reassign(hashes, sid)
        self.works[sid] = w
        moved = set(hashes)
        remaining = [stored[h].date for h in self.store.member_vectors(src.story_id)]
        src.total = src.total - Z.sum(axis=0)
        src.size -= len(arts)
        src.added = [h for h in src.added if h not in moved]
        src.first_date, src.last_date = min(remaining), max(remaining)
        self._touch(src)
        logger.info("story %s split: %d articles form %s", src.story_id, len(arts), sid)

    def close_quiet_stories(self) -> None:
        """Close open stories whose last article is older than ``now - window``."""
        limit = self.now - self.window
        for w in self.works.values():
            if w.state == "open" and w.last_date < limit:
                w.state, w.closed_run, w.updated_run = "closed", self.run_id, self.run_id
                if w.event != "new":
                    w.event = "closed"

    def save(self) -> None:
        """Write back every story this run touched."""
        for w in self.works.values():
            if w.updated_run == self.run_id:
                self.store.save_story(w.stored())


def _unit_rows(Z: np.ndarray) -> np.ndarray:
    Z = np.asarray(Z, dtype=np.float32)
    norms = np.linalg.norm(Z, axis=1, keepdims=True)
    return Z / np.where(norms > 0, norms, 1.0)


def _cluster_neutral(options: "ClusterOptions", Z: np.ndarray, days: np.ndarray,
                     texts: Optional[Sequence[str]]) -> np.ndarray:
    """StoryClusterer labels for vectors that are already language-neutral (every label is a story).

    ``days`` are the rows' dates as float days since the epoch; ``texts`` (or None) give the
    shared-number evidence.
    """
    from .cluster import StoryClusterer

    dates = [datetime.fromtimestamp(d * 86400.0, tz=timezone.utc) for d in days]
    return StoryClusterer(replace(options, neutralize=False)).fit(Z, None, dates, texts).labels_


def _days(dates: Sequence[datetime]) -> np.ndarray:
    """Dates as float days since the epoch (the unit of ``ClusterOptions.time_window_days``)."""
    return np.array([d.timestamp() / 86400.0 for d in dates], dtype=np.float64)
