"""Nightly runs with memory: tonight's articles and the open stories, clustered by the one recipe.

:func:`update_stories` runs one night on a :class:`~storyclust.store.SQLiteStore`, holding its
run lock throughout:

1. **Take in** (one transaction): articles whose id is already stored are "already seen"; the
   others are stored as *pending*. The files they came from are recorded (size, mtime) so an
   unchanged file is not read again, except files with a transient rejection (``timeout``,
   ``unreadable``, a dead worker): those are read again next run.
2. **Fold copies**: a pending article with the same text as a stored one, or a near copy of an
   article of the window (:func:`storyclust.pipeline.fold_copies`), follows its first copy. The
   window is the open stories' members, at most ``recent_members`` of each (:func:`_window`).
3. **Embed** the pending first copies whose vectors are not stored yet, in one call (so the
   vectors are the ones a one-shot run makes), and store them (one transaction).
4. **Cluster** the pending first copies with those of the open stories they reach
   (:func:`_touched`) by :func:`storyclust.pipeline.partition`: the same vectors, reference
   means, evidence and options as a one-shot run on those articles. With ``members_in_full`` set, of each
   such story only the latest first copies are clustered one by one and its older dated ones as one weighted
   summary per day (:func:`_settled`), so a long story costs a night its latest members and its days.
5. **Plan** (:func:`plan_night`, a pure function): map the clusters onto the stories that exist,
   so each keeps its ID; a cluster that holds no story's articles is a new story (named as a
   one-shot run names it), a story whose articles all went to other stories closes with
   ``merged_into``, a group of a story's articles that went to a cluster of their own becomes a
   new story with ``split_from``. Copies follow their first copy. Stories that gained no article
   for ``story_window`` (in run time) close.
6. **Apply** the plan, queue every changed story in the outbox, and record the run: one
   transaction.

:func:`publish` then writes the queued changes (and earlier ones that were never published)
and clears them only once the output is written; :func:`nightly` does all of it.

A night whose articles are all new gives the partition and the IDs of a one-shot
``storyclust cluster`` of the same articles. A run killed at any point leaves a consistent file:
the next run finds the pending articles and finishes the work.
"""
from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable, Container, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from . import pipeline
from .settings import ClusterOptions, StateOptions, parse_window
from .store import FileStamp, SQLiteStore, StateError, StoredMember, StoredStory
from .corrections import Correction, detach_unlinked_copies, linked_ids, named_ids
from .evidence import evidence_text, number_tokens
from .timing import stage
from .types import Article, Rejection, Story, StoryMember

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .embed import Embedder
    from .ingest import IngestOptions, IngestStats
    from .cluster import LanguageMeans, Settled
    from .retention import PruneResult

logger = logging.getLogger(__name__)

__all__ = ["RunResult", "NightPlan", "plan_night", "update_stories", "update_from_paths", "publish", "nightly",
           "files_to_read", "current_stories", "story_from_state", "state_embedding", "parse_window"]


@dataclass(frozen=True)
class RunResult:
    """What one nightly run did."""

    run_id: int
    articles_in: int  # articles given to the run
    ingested: int  # new articles stored this run
    already_seen: int  # ids already in the state (or repeated in this input)
    copies: int  # placed as copies of an earlier article (duplicate_of)
    embedded: int  # texts embedded this run (vectors not yet stored)
    clustered: int  # first copies clustered (the open stories' and the new ones)
    created: int
    updated: int
    closed: int  # quiet too long, or merged into another
    rejected: int
    retried_files: int  # files with a transient rejection: read again next run
    unchanged_files: int = 0  # input files not read again: same size and mtime as when last read
    pruned_copies: int = 0  # exact reprints of articles that retention forgot: "already seen", no story
    corrections: int = 0  # an editor's corrections (or removals) applied for the first time
    pruned: Optional["PruneResult"] = None  # what retention forgot after the night (StateOptions.keep)

    def summary_line(self) -> str:
        return (f"run {self.run_id}: {self.articles_in} articles in ({self.ingested} new, {self.already_seen} already "
                f"seen, {self.copies} copies), {self.rejected} rejected, {self.embedded} embedded, {self.clustered} "
                f"clustered; {self.created} new stories, {self.updated} updated, {self.closed} closed"
                + (f"; {self.corrections} corrections applied" if self.corrections else "")
                + (f"; {self.pruned_copies} reprints of pruned articles" if self.pruned_copies else "")
                + (f"; {self.retried_files} files to retry" if self.retried_files else "")
                + (f"; {self.unchanged_files} files unchanged" if self.unchanged_files else ""))


EmbedderSource = Union["Embedder", Callable[[], "Embedder"]]


# -- the plan: a pure function -------------------------------------------------------


@dataclass
class NightPlan:
    """What a night changes; built by :func:`plan_night`, applied by :func:`update_stories`."""

    story_of: dict[str, str] = field(default_factory=dict)  # article id -> story id, every placed article
    joined_by: dict[str, str] = field(default_factory=dict)  # article id -> step, for articles that moved or came
    new_stories: dict[str, Optional[str]] = field(default_factory=dict)  # new story id -> split_from
    merged: dict[str, str] = field(default_factory=dict)  # story id -> the story it merged into
    added: dict[str, list[str]] = field(default_factory=dict)  # story id -> article ids added this night
    removed: dict[str, list[str]] = field(default_factory=dict)  # story id -> article ids that left it

    def event(self, story_id: str) -> Optional[str]:
        if story_id in self.merged:
            return "closed"
        if story_id in self.new_stories:
            return "new"
        if self.added.get(story_id) or self.removed.get(story_id):
            return "updated"
        return None


def plan_night(
    groups: Sequence[Sequence[str]],
    old_story: Mapping[str, str],
    articles: Mapping[str, Article],
    *,
    copies: Mapping[str, str] = {},
    story_rank: Mapping[str, int] = {},
    taken: Container[str] = (),
    linked: Container[str] = (),
) -> NightPlan:
    """Map tonight's clusters onto the stories that exist.

    Args:
        groups: the clusters of the night's first copies (article ids), as :func:`pipeline.partition` made them.
        old_story: story id of each first copy that was already in an open story.
        articles: every article named in ``groups`` or ``copies``.
        copies: ``copy id -> first copy id`` for the copies to place (new ones and those of the open stories).
        story_rank: older stories have smaller ranks; on equal overlap the older story keeps its ID.
        taken: story IDs already in use (never reused); any container (``in`` is all it is asked).
        linked: ids an editor linked: a cluster holding one goes to the oldest story it overlaps (the older
            story keeps its ID when a link merges two).

    Each story is matched with at most one cluster, and each cluster with at most one story, greedily
    by the number of the story's articles in the cluster (then the older story, then the earlier
    cluster). A matched cluster keeps its story's ID; an unmatched one is a new story, named by
    :func:`pipeline.name_stories`, with ``split_from`` the story most of its old articles came from;
    an unmatched story is merged into the story that got most of its articles.
    """
    plan = NightPlan()
    overlap: Counter[tuple[int, str]] = Counter()
    for gi, group in enumerate(groups):
        for aid in group:
            if aid in old_story:
                overlap[(gi, old_story[aid])] += 1
    by_editor = {gi for gi, group in enumerate(groups) if any(a in linked for a in group)}

    def order(kv: tuple[tuple[int, str], int]) -> tuple:
        (gi, sid), count = kv
        rank = story_rank.get(sid, 1 << 62)
        return (0, rank, -count, sid, gi) if gi in by_editor else (1, -count, rank, sid, gi)

    ranked = sorted(overlap.items(), key=order)
    story_of_group: dict[int, str] = {}
    group_of_story: dict[str, int] = {}
    for (gi, sid), _ in ranked:
        if gi not in story_of_group and sid not in group_of_story:
            story_of_group[gi], group_of_story[sid] = sid, gi
    unmatched = [gi for gi in range(len(groups)) if gi not in story_of_group]
    copies_of: dict[str, list[str]] = {}
    for cid, root in copies.items():
        copies_of.setdefault(root, []).append(cid)
    names = pipeline.name_stories(
        [[articles[m] for a in groups[gi] for m in (a, *copies_of.get(a, ()))] for gi in unmatched],
        taken=pipeline.Either(taken, group_of_story),
    )
    for gi, sid in zip(unmatched, names):
        story_of_group[gi] = sid
        sources = Counter(old_story[a] for a in groups[gi] if a in old_story)
        plan.new_stories[sid] = min(sources, key=lambda s: (-sources[s], story_rank.get(s, 1 << 62), s)) \
            if sources else None
    groups_of: dict[str, list[tuple[int, int]]] = {}  # old story -> (group, its articles there)
    for (gi, sid), count in overlap.items():
        groups_of.setdefault(sid, []).append((gi, count))
    for sid in sorted(set(old_story.values()) - set(group_of_story)):
        receivers = Counter({story_of_group[gi]: count for gi, count in groups_of[sid]})  # one story per group
        plan.merged[sid] = min(receivers, key=lambda s: (-receivers[s], s))
    for gi, group in enumerate(groups):
        sid = story_of_group[gi]
        for aid in group:
            _place(plan, aid, sid, old_story.get(aid), "cluster")
    for cid, root in copies.items():
        _place(plan, cid, plan.story_of[root], old_story.get(cid), "duplicate")
    return plan


def _place(plan: NightPlan, aid: str, sid: str, before: Optional[str], how: str) -> None:
    plan.story_of[aid] = sid
    if before == sid:
        return
    if before is not None:
        plan.removed.setdefault(before, []).append(aid)
        if how != "duplicate":
            how = "merge" if plan.merged.get(before) == sid else ("split" if plan.new_stories.get(sid) == before
                                                                  else "cluster")
    plan.joined_by[aid] = how
    plan.added.setdefault(sid, []).append(aid)


# -- one night -----------------------------------------------------------------------


def update_stories(
    store: SQLiteStore,
    items: Iterable[Article | Rejection],
    embedder: EmbedderSource,
    *,
    options: Optional[ClusterOptions] = None,
    state: Optional[StateOptions] = None,
    progress: bool = False,
    files: Sequence[FileStamp] = (),
    engine=None,
    signatures: Mapping[str, Optional[np.ndarray]] = {},
) -> RunResult:
    """Take ``items`` into ``store``, embed what is new and update the stories (steps 1-6 above).

    ``embedder`` is an :class:`~storyclust.embed.Embedder` or a zero-argument callable returning
    one; a callable is only called when there is something to cluster, so a night with nothing
    new never loads the model. ``files`` are the stamps of the files ``items`` were read from.
    Raises :class:`~storyclust.store.StateError` when the state was built with another model.
    The changes are queued in the outbox: :func:`publish` writes them. ``engine``
    (:mod:`storyclust.engine`) embeds and clusters elsewhere; the state stays with this process.
    ``signatures``: MinHash signatures of the items' texts by content hash, as
    ``ingest_paths(signatures=...)`` fills them: the fold does not shingle those texts again.
    """
    options = options or ClusterOptions()
    state = state or StateOptions()
    now = state.now or datetime.now(timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    load = _loader(embedder)
    with store.lock(wait=state.wait):
        with stage("take in"):
            run_id, counts = _take_in(store, items, files, now)
            pending = store.pending_articles()
        night = _Night(NightPlan(), {}, {}, {})
        embedded = copies = 0
        reprints: dict[str, tuple[Article, str]] = {}
        folded: list[Article] = []
        made: dict[str, Optional[np.ndarray]] = {}  # MinHash signatures by article id, kept with the night
        model_id = store.get_setting("model_id")
        corrections = store.corrections(removed=True)  # taken back ones too: their stories are clustered again
        fresh_corrections = [c for c in corrections if c.applied_run is None]
        live = [c for c in corrections if c.removed is None]
        if pending or fresh_corrections:
            with stage("fold copies"):
                window = _window(store, state, corrections, fresh_corrections, now, run_id)
                if pending:
                    folded, reprints = _fold(store, window, [a for a, _ in pending], options, made, signatures)
                window, folded, detached = _detach(window, folded, live)
        if folded or (fresh_corrections and window):
            with stage("load model"):
                model = load()
            model_id, space = _check_model(store, model)
            copies = sum(a.duplicate_of is not None for a in folded)
            new_firsts = [a for a in folded if a.duplicate_of is None] + detached
            keys = {a.id: key for a, key in pending} | {m.article.id: m.text_key for m in window}
            with stage("embed"):
                embedded = _embed_missing(store, space, new_firsts, keys, model, progress, engine)
            with stage("cluster"):
                night = _cluster_night(store, space, window, folded, keys, model, options, engine, live,
                                       fresh_corrections, detached, state.members_in_full)
        with stage("apply"), store.transaction():
            store.set_signatures({a.id: made.get(a.id) for a in folded})
            store.set_article_numbers(night.numbers)
            store.forget([(a.id, a.hash, sid) for a, sid in reprints.values()], run_id)
            changed = _apply(store, night, run_id, now, state.story_window)
            store.mark_placed()
            if fresh_corrections:
                store.mark_corrections_applied(run_id)
            counts.update(embedded=embedded, clustered=night.clustered, copies=copies, pruned_copies=len(reprints),
                          **{k: sum(e == k for e in changed.values()) for k in ("new", "updated", "closed")})
            store.add_changes([(sid, event, night.plan.added.get(sid, [])) for sid, event in changed.items()],
                              run_id)
            store.finish_run(run_id, counts, model_id=model_id)
    result = RunResult(
        run_id=run_id, articles_in=counts["articles_in"], ingested=counts["ingested"],
        already_seen=counts["already_seen"], copies=copies, embedded=embedded, clustered=night.clustered,
        created=counts["new"], updated=counts["updated"], closed=counts["closed"], rejected=counts["rejected"],
        retried_files=counts["retried_files"], pruned_copies=len(reprints), corrections=len(fresh_corrections),
    )
    if state.keep is not None:
        from .retention import prune

        result = replace(result, pruned=prune(store, state.keep, now=now, wait=state.wait,
                                              keep_latest=state.recent_members))
    logger.info("%s", result.summary_line())
    return result


def _take_in(store: SQLiteStore, items: Iterable[Article | Rejection], files: Sequence[FileStamp],
             now: datetime) -> tuple[int, dict[str, int]]:
    """Step 1: store the articles not seen before, and the files read without a transient failure."""
    fresh: dict[str, Article] = {}
    seen = rejected = 0
    retry: list[str] = []
    for item in items:
        if isinstance(item, Rejection):
            rejected += 1
            if item.transient:  # types.TRANSIENT_REASONS: read the file again next run
                retry.append(item.source)
            continue
        seen += 1
        fresh.setdefault(item.id, item)
    known = store.known_ids(fresh)
    new = [(a, pipeline.text_key(a)) for aid, a in fresh.items() if aid not in known]
    numbers = {a.id: number_tokens(evidence_text(a)) for a, _ in new}  # kept: no night tokenises them again
    keep = [s for s in files if not any(src == s.path or src.startswith(s.path + "#") for src in retry)]
    with store.transaction():
        run_id = store.begin_run(now, store.get_setting("model_id"))
        ingested = store.add_articles(new, run_id, numbers)
        store.record_files(keep, run_id)
    if len(keep) < len(files):
        logger.info("%d files had a transient failure: they are read again next run", len(files) - len(keep))
    return run_id, {"articles_in": seen, "ingested": ingested, "already_seen": seen - ingested,
                    "rejected": rejected, "retried_files": len(files) - len(keep)}


def _fold(store: SQLiteStore, window: Sequence[StoredMember], pending: Sequence[Article],
          options: ClusterOptions, signatures: dict[str, Optional[np.ndarray]],
          text_signatures: Mapping[str, Optional[np.ndarray]] = {}
          ) -> tuple[list[Article], dict[str, tuple[Article, str]]]:
    """Step 2: pending articles with ``duplicate_of`` naming their first copy (or None), and apart
    ``{id: (article, story id)}`` the exact reprints of pruned articles (they start no story).

    The window's MinHash signatures are read from the state (computed once, when each article came);
    ``signatures`` receives tonight's by article id, to be stored with the night; ``text_signatures`` are
    those ingest made, by content hash."""
    signatures.update(store.signatures(m.article.id for m in window))
    unsigned = {m.article.id for m in window if m.article.id not in signatures}  # too short, or stored before
    texts = {m.article.id: m.article for m in store.members_by_id(unsigned)} if unsigned else {}  # signatures
    folded = pipeline.fold_copies(pending, earlier=[texts.get(m.article.id, m.article) for m in window],
                                  threshold=options.near_duplicate_threshold, signatures=signatures,
                                  text_signatures=text_signatures)
    in_window = {m.article.id for m in window}
    loose = [a for a in folded if a.duplicate_of is None or a.duplicate_of not in in_window]
    outside = store.first_copies_by_hash(a.hash for a in loose)  # exact copies of articles in closed stories
    batch_ids = {a.id for a in folded}
    forgotten = store.forgotten_by_hash(a.hash for a in loose if a.hash not in outside)
    out, reprints = [], {}
    followed: dict[str, str] = {}  # tonight's first copies that turn out to copy a stored article outside the window
    for a in folded:
        if a.duplicate_of is None and a.hash in outside and outside[a.hash][0] not in batch_ids:
            a = replace(a, duplicate_of=outside[a.hash][0])
            followed[a.id] = a.duplicate_of
        elif a.duplicate_of in followed:  # a copy of one of those follows the same first copy (firsts come first)
            a = replace(a, duplicate_of=followed[a.duplicate_of])
        if a.duplicate_of is None and a.hash in forgotten:
            reprints[a.id] = (a, forgotten[a.hash])
        elif a.duplicate_of in reprints:  # a copy of a reprint follows it (first copies come first)
            reprints[a.id] = (a, reprints[a.duplicate_of][1])
        else:
            out.append(a)
    return out, reprints


def _window(store: SQLiteStore, state: StateOptions, corrections: Sequence[Correction],
            fresh: Sequence[Correction], now: datetime, run_id: int) -> list[StoredMember]:
    """The night's window: the open stories' latest members, and every member a correction names in an open
    story; a correction not yet applied first opens again the closed stories of the articles it names."""
    named = store.members_by_id(sorted(named_ids(corrections)), light=True)  # one read, as the window's members
    fresh_ids = named_ids(fresh)
    reopen = {info.story_id for info in named if info.article.id in fresh_ids}
    if reopen:
        with store.transaction():
            for sid in sorted(reopen):
                store.reopen(sid, now, run_id)
    window = store.open_members(recent=state.recent_members, light=True)  # texts: only the touched stories'
    have = {m.article.id for m in window}
    open_ids = {s.story_id for s in store.stories(ids={info.story_id for info in named}) if s.status == "open"}
    window += [info for info in named if info.story_id in open_ids and info.article.id not in have]
    return sorted(window, key=lambda m: m.seq)


def _detach(window: list[StoredMember], folded: list[Article], corrections: Sequence[Correction]
            ) -> tuple[list[StoredMember], list[Article], list[Article]]:
    """Copies that an unlink separates from their first copy become first copies (clustered, so embedded)."""
    duplicate_of = {m.article.id: m.article.duplicate_of for m in window} | {a.id: a.duplicate_of for a in folded}
    detached_ids = detach_unlinked_copies(duplicate_of, corrections)
    if not detached_ids:
        return window, folded, []
    window = [replace(m, article=replace(m.article, duplicate_of=None)) if m.article.id in detached_ids else m
              for m in window]
    folded = [replace(a, duplicate_of=None) if a.id in detached_ids else a for a in folded]
    return window, folded, [m.article for m in window if m.article.id in detached_ids]


def _embed_missing(store: SQLiteStore, space: str, firsts: Sequence[Article], keys: Mapping[str, str],
                   embedder: "Embedder", progress: bool, engine=None) -> int:
    """Step 3: embed the first copies whose texts have no vector in ``space`` yet, in one call."""
    missing = set(store.missing_vectors(space, [keys[a.id] for a in firsts]))
    todo, seen = [], set()
    for a in firsts:
        if keys[a.id] in missing and keys[a.id] not in seen:
            todo.append(a)
            seen.add(keys[a.id])
    if todo:
        vectors = pipeline.embed(todo, embedder, progress=progress, engine=engine)
        with store.transaction():
            store.put_vectors(space, {keys[a.id]: v for a, v in zip(todo, vectors)})
        logger.info("embedded %d new texts", len(todo))
    return len(todo)


@dataclass
class _Night:
    """A night's plan with what applying it needs."""

    plan: NightPlan
    neutral: dict[str, np.ndarray]  # article id -> language-neutral vector, every placed article
    duplicate_of: dict[str, Optional[str]]  # tonight's articles -> the first copy they follow
    joined_before: dict[str, Optional[str]]  # the open stories' members -> their stored joined_by
    articles: dict[str, Article] = field(default_factory=dict)  # every article of the window and of tonight
    clustered: int = 0
    similarity: dict[str, float] = field(default_factory=dict)  # copies placed beside a member not clustered
    numbers: dict[str, list[str]] = field(default_factory=dict)  # numbers found from texts tonight, to keep


def _cluster_night(store: SQLiteStore, space: str, window: Sequence[StoredMember], folded: Sequence[Article],
                   keys: Mapping[str, str], embedder: "Embedder", options: ClusterOptions, engine=None,
                   corrections: Sequence[Correction] = (), fresh: Sequence[Correction] = (),
                   detached: Sequence[Article] = (), in_full: Optional[int] = None) -> _Night:
    """Steps 4 and 5: one partition of tonight's first copies and the open stories they touch, and its plan.

    Of each touched story the latest ``in_full`` first copies are clustered one by one, the older dated ones as
    weighted summaries (:func:`_settled`); None: every one by one."""
    window, means, read = _touched(store, space, window, folded, keys, embedder, options, fresh, detached)
    old_firsts = [m for m in window if m.article.duplicate_of is None]
    firsts = [m.article for m in old_firsts] + [a for a in folded if a.duplicate_of is None]
    wanted = [m.text_key for m in old_firsts] + [keys[a.id] for a in firsts[len(old_firsts):]]
    unread = [k for k in dict.fromkeys(wanted) if k not in read]  # first copies an editor named, not read yet
    read |= dict(zip(unread, store.get_vectors(space, unread)))
    X = np.stack([read[k] for k in wanted]).astype(np.float32, copy=False) if wanted else np.zeros((0, 0), np.float32)
    all_copies = {a.id: a.duplicate_of for a in [m.article for m in window] + list(folded)
                  if a.duplicate_of is not None}
    found: dict[str, list[str]] = {}
    named = named_ids(fresh) | {a.id for a in detached}
    settled = None if in_full is None else _settled(old_firsts, len(firsts) - len(old_firsts), in_full, named)
    part = pipeline.partition(firsts, X, options, means, engine=engine, corrections=corrections, copies=all_copies,
                              numbers=None if options.pair_score is not None else _numbers(store, firsts, found),
                              settled=settled)
    clustered_ids = {a.id for a in firsts}
    # the window's copies follow their first copies when those are clustered again (a copy of an older,
    # settled member stays where it is); tonight's copies always get a place
    copies = {m.article.id: m.article.duplicate_of for m in window
              if m.article.duplicate_of is not None and m.article.duplicate_of in clustered_ids}
    copies |= {a.id: a.duplicate_of for a in folded if a.duplicate_of is not None}
    outside = {cid: root for cid, root in copies.items() if root not in clustered_ids}  # first copy in a closed story
    articles = {m.article.id: m.article for m in window} | {a.id: a for a in folded}
    for cid, root in outside.items():
        articles[cid] = replace(articles[cid], duplicate_of=root)
    plan = plan_night(
        [[firsts[k].id for k in g] for g in part.groups()],
        {m.article.id: m.story_id for m in window}, articles,
        copies={c: r for c, r in copies.items() if c not in outside},
        story_rank={s.story_id: k for k, s in enumerate(store.stories(status="open"))},
        taken=_StoredIds(store, [pipeline.story_id_of(a) for a in articles.values()]),
        linked=linked_ids(corrections),
    )
    for aid in named_ids(fresh) & set(plan.joined_by):  # moved by tonight's corrections
        plan.joined_by[aid] = "editor"
    neutral = {a.id: part.neutral[k] for k, a in enumerate(firsts)}
    similarity: dict[str, float] = {}
    for cid, root in copies.items():
        if cid in outside:  # a copy of an article of a closed story, or of an older member, joins that story
            info = store.member_info(root)
            plan.story_of[cid] = info.story_id
            plan.joined_by[cid] = "duplicate"
            plan.added.setdefault(info.story_id, []).append(cid)
            neutral[cid], similarity[cid] = info.vector, info.similarity
        else:
            neutral[cid] = neutral[root]
    duplicate_of = {a.id: a.duplicate_of for a in folded} | {a.id: None for a in detached}
    return _Night(plan, neutral, duplicate_of, {m.article.id: m.joined_by for m in window}, articles, len(firsts),
                  similarity, found)


def _settled(members: Sequence[StoredMember], tonight: int, in_full: int, named: Container[str]
             ) -> Optional["Settled"]:
    """The pools of the window's first copies ``members``, then of ``tonight`` more rows (all on their own): a story's
    latest ``in_full`` stay on their own, and so do those an editor's new correction names and the undated;
    its older dated ones pool by the calendar day (UTC) of their publication, each pool anchored to the
    story's latest first copy. None when nothing pools.

    A day's members of one story lie close in time and, as a rule, in topic: pooled, they weigh in the
    average linkage about as they would one by one. Wider pools measured worse: all of a story's members
    dated before tonight's time window in one pool, or all its undated members in one, is no subtree the
    linkage would have built, and long stories broke in two on a replay that clustering one by one kept whole
    (tests/test_nightly.py::test_a_long_story_clustered_through_summaries_of_its_older_members_stays_whole)."""
    from .cluster import Settled

    latest: Counter[str] = Counter()
    newest: dict[str, int] = {}  # story -> the row of its latest first copy
    pool_of: dict[tuple[str, int], int] = {}
    anchor: list[int] = []
    out = [-1] * (len(members) + tonight)
    for k in range(len(members) - 1, -1, -1):  # members come in order of arrival: latest first
        m = members[k]
        latest[m.story_id] += 1
        newest.setdefault(m.story_id, k)
        if latest[m.story_id] <= in_full or m.article.id in named:
            continue
        when = pipeline.article_time(m.article)
        if when is None:
            continue
        key = (m.story_id, int(when.timestamp() // 86400))
        if key not in pool_of:
            pool_of[key] = len(pool_of)
            anchor.append(newest[m.story_id])
        out[k] = pool_of[key]
    return Settled(out, anchor) if pool_of else None


def _touched(store: SQLiteStore, space: str, window: Sequence[StoredMember], folded: Sequence[Article],
             keys: Mapping[str, str], embedder: "Embedder", options: ClusterOptions,
             fresh: Sequence[Correction], detached: Sequence[Article]
             ) -> tuple[list[StoredMember], Optional["LanguageMeans"], dict[str, np.ndarray]]:
    """The members of the open stories that tonight can change (read with their texts), the
    language means to cluster them with, and the vectors read on the way (by text key).

    The language means are those a partition of the whole window and tonight's articles would use
    (the shipped reference means plus every first copy of both), so clustering a part of the window
    puts it in the same language-neutral space as clustering all of it. In that space a story is
    touched when one of its first copies lies within reach of one of tonight's first copies: cosine
    at least ``1 - max_distance - number_weight`` (the most shared numbers can add; with a learnt
    pair score, the most it can add), inside the time
    window when both are dated. Stories an editor's new correction names, or holding a copy it
    detaches, are touched too. Only those are clustered again, so a night costs what tonight's
    articles reach, not the whole open window; the others keep their members as they are (a copy of
    one of theirs still joins them).
    """
    from .cluster import StoryClusterer, _days, rows_near

    named = named_ids(fresh) | {a.id for a in detached}
    touched = {m.story_id for m in window if m.article.id in named}
    tonight = [a for a in folded if a.duplicate_of is None] + list(detached)
    old = [m for m in window if m.article.duplicate_of is None and m.article.id not in named]
    starting = pipeline.starting_language_means(embedder, options)
    means = StoryClusterer(options, language_means=starting)
    X_old = store.get_vectors(space, [m.text_key for m in old])
    X_new = store.get_vectors(space, [keys[a.id] for a in tonight])
    means.update_language_means(X_old, [m.article.lang for m in old])
    means.update_language_means(X_new, [a.lang for a in tonight])
    if tonight and old:
        Q = means.neutralize(X_new, [a.lang for a in tonight])
        D = means.neutralize(X_old, [m.article.lang for m in old])
        times = [pipeline.article_time(a) for a in tonight] + [pipeline.article_time(m.article) for m in old]
        days = _days(times, len(times))
        q_days, d_days = (None, None) if days is None else (days[: len(tonight)], days[len(tonight) :])
        bonus = max(options.pair_score.max_bonus(), 0.0) if options.pair_score is not None else options.number_weight
        reach = 1.0 - options.max_distance - bonus  # the clusterer's own candidate floor
        exact = len(tonight) * len(old) <= options.approximate_above ** 2
        hit = rows_near(Q, q_days, D, d_days, reach, options.time_window_days,
                        probes=None if exact else options.search_probes, random_state=options.random_state)
        touched |= {old[k].story_id for k in np.flatnonzero(hit)}
    # the means the partition starts from: the reference and the first copies it will not see itself
    outside = [k for k, m in enumerate(old) if m.story_id not in touched]
    base = StoryClusterer(options, language_means=starting)
    base.update_language_means(X_old[outside], [old[k].article.lang for k in outside])
    chosen = [m.article.id for m in window if m.story_id in touched]
    # without a learnt pair score the clusterer needs no texts: their numbers are kept (_numbers)
    light = options.pair_score is None
    full = {m.article.id: m for m in store.members_by_id(chosen, light=light)} if chosen else {}
    logger.debug("%d of %d open stories within reach of tonight's articles", len(touched),
                 len({m.story_id for m in window}))
    sub = [_member_following(full[m.article.id], m.article.duplicate_of) for m in window if m.article.id in full]
    read = dict(zip([m.text_key for m in old], X_old)) | dict(zip([keys[a.id] for a in tonight], X_new))
    return sub, (base.language_means_ if outside else starting), read


def _numbers(store: SQLiteStore, articles: Sequence[Article], found: dict[str, list[str]]) -> list[list[str]]:
    """The numbers of each article's text (the clusterer's evidence), as kept when it was stored. For an
    article stored before schema 6 they are found from its text (read when the article came without it) and
    added to ``found``, which the night keeps."""
    kept = store.article_numbers([a.id for a in articles])
    missing = [a.id for a in articles if a.id not in kept and not a.text]
    texts = {m.article.id: m.article for m in store.members_by_id(missing)} if missing else {}
    for a in articles:
        if a.id not in kept:
            kept[a.id] = found[a.id] = number_tokens(evidence_text(texts.get(a.id, a)))
    return [kept[a.id] for a in articles]


def _member_following(member: StoredMember, duplicate_of: Optional[str]) -> StoredMember:
    """``member`` with its article following ``duplicate_of`` (tonight's corrections may have detached it)."""
    if member.article.duplicate_of == duplicate_of:
        return member
    return replace(member, article=replace(member.article, duplicate_of=duplicate_of))


class _StoredIds:
    """The story IDs a store has used, asked one at a time (``in``) after one read of the likely ones."""

    def __init__(self, store: SQLiteStore, likely: Iterable[str]) -> None:
        self.store, self.asked = store, set(likely)
        self.taken = store.taken_story_ids(self.asked)

    def __contains__(self, sid: object) -> bool:
        if sid not in self.asked:
            self.asked.add(sid)  # type: ignore[arg-type]
            self.taken |= self.store.taken_story_ids([sid])  # type: ignore[list-item]
        return sid in self.taken


def _apply(store: SQLiteStore, night: _Night, run_id: int, now: datetime, story_window: timedelta) -> dict[str, str]:
    """Step 6 (inside the caller's transaction): write the plan; returns ``{story id: event}`` of changed stories."""
    plan = night.plan
    by_story: dict[str, list[str]] = {}
    for aid, sid in plan.story_of.items():
        by_story.setdefault(sid, []).append(aid)
    existing = {s.story_id: s for s in store.stories(ids=set(by_story) | set(plan.merged))}
    for sid, split_from in plan.new_stories.items():  # rows first: members reference them
        store.save_story(StoredStory(sid, "open", 0, None, None, now, run_id, run_id, split_from=split_from))
    rows = []
    for sid, aids in by_story.items():
        if plan.event(sid) is None and sid in existing:
            continue  # same members: their rows stay as they are
        clustered = [a for a in aids if a not in night.similarity]
        # a copy placed beside a member that was not clustered tonight (in a closed story, or an older member
        # of an open one) takes that member's vector and similarity
        rows += [(a, sid, night.neutral[a], night.similarity[a], "duplicate") for a in aids if a in night.similarity]
        if not clustered:
            continue
        story = pipeline.build_story(sid, [
            (night.articles[a], night.neutral[a], plan.joined_by.get(a) or night.joined_before.get(a) or "cluster")
            for a in clustered])
        rows += [(m.article.id, sid, night.neutral[m.article.id], m.similarity, m.joined_by) for m in story.members]
    store.put_members(rows, run_id)
    store.set_duplicate_of(night.duplicate_of)
    for sid, receiver in plan.merged.items():  # members no night re-clustered follow the rest
        store.move_members(sid, receiver, "merge", run_id)
    receivers = set(plan.merged.values())
    relabel = sorted(sid for sid in set(by_story) - set(plan.merged) if plan.event(sid) or sid not in existing)
    labels = _labels(store, night, relabel, rebuild={sid for sid in relabel if sid not in existing
                                                       or plan.removed.get(sid) or sid in receivers})
    store.set_story_terms({sid: None for sid in plan.merged})
    changed: dict[str, str] = {}
    for sid in set(by_story) | set(plan.merged):
        event = plan.event(sid)
        old = existing.get(sid)
        if event is None and old is not None:
            continue  # same members
        if old is None or plan.removed.get(sid) or sid in receivers or sid in plan.merged:
            dates = store.story_dates(sid)  # members left or came from elsewhere: read them all
        else:  # only additions: the stored range and tonight's dates
            dates = [d for d in (old.first_published, old.last_published) if d is not None]
            dates += [night.articles[a].published for a in plan.added.get(sid, ()) if night.articles[a].published]
        store.save_story(StoredStory(
            sid, "merged" if sid in plan.merged else (old.status if old else "open"), store.story_size(sid),
            min(dates) if dates else None, max(dates) if dates else None,
            now if plan.added.get(sid) or old is None else old.last_activity,
            old.created_run if old else run_id, run_id,
            run_id if sid in plan.merged else (old.closed_run if old else None),
            plan.merged.get(sid), old.split_from if old else plan.new_stories.get(sid),
            () if sid in plan.merged else labels[sid],
            0 if sid in plan.merged else (old.forgotten if old else 0) + sum(
                existing[m].forgotten for m, into in plan.merged.items() if into == sid and m in existing),
        ))
        changed[sid] = event or "updated"
    for story in store.quiet_stories(now - story_window):  # close the quiet ones
        store.save_story(replace(story, status="closed", closed_run=run_id, updated_run=run_id))
        changed[story.story_id] = "closed"
    return changed


def _labels(store: SQLiteStore, night: _Night, stories: Sequence[str], rebuild: Container[str]
            ) -> dict[str, tuple[str, ...]]:
    """Labels of the night's changed ``stories`` (their members as written tonight), each against the others.

    A story's label terms summed over its members (:class:`storyclust.labels.TermTable`) are kept in the
    state: a story that only gained members adds theirs, so labelling costs the night's members, not the
    stories' histories. A story in ``rebuild`` (new, it lost members or took in a merged story's) or without
    a kept table (pruned members, an older state) is summed again over its members. A member's own terms are
    computed from its text once, the first night it is counted, and kept (``articles.terms``)."""
    from .labels import TERMS_FORMAT, TermTable, member_terms, pack_terms, table_labels, unpack_terms

    kept = store.story_terms(s for s in stories if s not in rebuild)
    tables: dict[str, TermTable] = {}
    counted: dict[str, list[Article]] = {}  # story id -> the members to add to its table
    for sid in stories:
        table = None if sid in rebuild else TermTable.unpack(kept.get(sid))
        if table is not None:
            counted[sid] = [night.articles[a] for a in night.plan.added.get(sid, ())]
        else:
            table = TermTable()
            counted[sid] = [m.article for m in store.story_members(sid, light=True)]  # no texts: terms are kept
        tables[sid] = table
    ids = [a.id for members in counted.values() for a in members]
    blobs = store.label_terms(ids)
    # members whose terms must be found from a text the night did not read (window members come without)
    unread = [a for a in ids if not blobs.get(a, b"").startswith(TERMS_FORMAT)
              and not (a in night.articles and night.articles[a].text)]
    texts = {m.article.id: m.article for m in store.members_by_id(unread)} if unread else {}
    fresh: dict[str, bytes] = {}
    for sid, members in counted.items():
        for article in members:
            blob = blobs.get(article.id)
            terms = None if blob is None else unpack_terms(blob, article.lang)
            if terms is None:  # first counted, or a blob of another format
                terms = member_terms(texts.get(article.id) or night.articles[article.id])
                fresh[article.id] = blobs[article.id] = pack_terms(terms)
            tables[sid].add(terms, pipeline.first_key(article))
    store.set_label_terms(fresh)
    store.set_story_terms({sid: table.pack() for sid, table in tables.items()})
    return table_labels([(sid, tables[sid]) for sid in stories])


# -- publishing ----------------------------------------------------------------------


def publish(store: SQLiteStore, write: Callable[[list[Story]], None], *, show_all: bool = False,
            texts: bool = True) -> list[Story]:
    """Hand every unreported story change (this run's and any earlier run's) to ``write``, then clear them.

    ``write`` must raise when the output could not be written (a full disk, a broken pipe, a
    missing folder): the changes then stay queued and the next run publishes them. With
    ``show_all`` every open story is handed over too (unchanged ones with status ``unchanged``).
    Returns the stories written. ``texts=False``: the members' texts are not read (see :func:`story_from_state`).
    """
    changes = store.unreported()
    by_id = {c.story_id: c for c in changes}
    stored = {s.story_id: s for s in store.stories(ids=list(by_id))}
    stories = [story_from_state(store, stored[c.story_id], status=c.event, added=c.added, texts=texts)
               for c in changes if c.story_id in stored]
    if show_all:
        stories += [story_from_state(store, s, status="unchanged", texts=texts) for s in store.stories(status="open")
                    if s.story_id not in by_id]
    stories.sort(key=lambda s: (s.first_published is None,
                                s.first_published.timestamp() if s.first_published else 0.0, s.story_id))
    write(stories)
    if changes:
        with store.lock(), store.transaction():
            store.clear_reported(changes)
    return stories


def nightly(store: SQLiteStore, items: Iterable[Article | Rejection], embedder: EmbedderSource,
            write: Callable[[list[Story]], None], *, options: Optional[ClusterOptions] = None,
            state: Optional[StateOptions] = None, progress: bool = False,
            files: Sequence[FileStamp] = ()) -> RunResult:
    """:func:`update_stories` then :func:`publish`, under one hold of the run lock."""
    state = state or StateOptions()
    with store.lock(wait=state.wait):
        result = update_stories(store, items, embedder, options=options, state=state, progress=progress, files=files)
        publish(store, write, show_all=state.show_all)
    return result


def update_from_paths(
    store: SQLiteStore,
    paths: Sequence[str | os.PathLike[str]],
    embedder: EmbedderSource,
    *,
    ingest_options: Optional["IngestOptions"] = None,
    stats: Optional["IngestStats"] = None,
    state: Optional[StateOptions] = None,
    progress: bool = False,
    **kwargs: object,
) -> RunResult:
    """The nightly job without publishing: read the files under ``paths`` that changed since they were
    last read, then :func:`update_stories` (``kwargs`` go there)."""
    from .ingest import ingest_paths

    state = state or StateOptions()
    with store.lock(wait=state.wait):
        to_read, fresh, unchanged = files_to_read(store, paths)
        signatures: dict[str, Optional[np.ndarray]] = {}  # ingest's MinHash signatures, for the fold
        items = ingest_paths(to_read, ingest_options, stats=stats, progress=progress,
                             signatures=signatures) if to_read else iter(())
        result = update_stories(store, items, embedder, files=fresh, state=state, progress=progress,
                                signatures=signatures, **kwargs)  # type: ignore[arg-type]
    return replace(result, unchanged_files=unchanged)


def files_to_read(store: SQLiteStore, paths: Sequence[str | os.PathLike[str]]) -> tuple[list[str], list[FileStamp], int]:
    """``(paths to ingest, stamps of those files, how many files are unchanged)`` for the files under ``paths``.

    Folders are walked as ingest walks them. A file is left out when its size and mtime are what
    they were when a previous run read it; ``-`` (stdin) and paths that cannot be stat'ed are
    always passed on (ingest turns the latter into ``unreadable`` rejections).
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


def story_from_state(store: SQLiteStore, stored: StoredStory, *, status: Optional[str] = None,
                     added: Sequence[str] = (), texts: bool = True) -> Story:
    """A :class:`Story` from the state: its members as last clustered, in story order (``pipeline.first_key``).

    ``texts=False`` leaves the articles' texts empty (not read: a record without ``--include-text`` or
    ``--explain`` does not show them)."""
    members = sorted(
        (StoryMember(m.article, m.similarity, m.joined_by)
         for m in store.story_members(stored.story_id, light=not texts)),
        key=lambda m: (pipeline.first_key(m.article), -m.similarity),
    )
    return Story(
        story_id=stored.story_id,
        members=tuple(members),
        singleton=stored.size == 1,
        status=status,
        added=tuple(added),
        merged_into=stored.merged_into,
        split_from=stored.split_from,
        labels=stored.labels,
        forgotten=stored.forgotten,
        meta={
            "state": stored.status,
            "last_activity": stored.last_activity.isoformat(),
            "created_run": stored.created_run,
            "updated_run": stored.updated_run,
            "closed_run": stored.closed_run,
        },
    )


def current_stories(store: SQLiteStore, *, include_closed: bool = False) -> list[Story]:
    """The stories in the store, without taking anything in: open ones (and closed ones if asked).

    Each story's ``status`` is its state in the store, ``open`` or ``closed``.
    """
    stored = [s for s in store.stories() if s.status != "merged"] if include_closed else store.stories(status="open")
    return [story_from_state(store, s, status=s.status) for s in stored]


def state_embedding(store: SQLiteStore, backend: str, pooling: str) -> tuple[str, str, Optional[str]]:
    """The embedding backend, pooling and prompt to load for ``store`` when the user asked for these.

    Each ``"auto"`` resolves to what the state file was built with, and so does the prompt, so that
    a state keeps working when the defaults change (another machine, a new storyclust version);
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


def _check_model(store: SQLiteStore, embedder: "Embedder") -> tuple[str, str]:
    """The state's stories live in one model's space: refuse to mix models. Returns (model id, vector space)."""
    known = store.get_setting("model_id")
    if known is None:
        with store.transaction():
            store.set_setting("model_id", embedder.model_id)
    elif known != embedder.model_id:
        raise StateError(
            f"state file was built with embedding model {known!r}, not {embedder.model_id!r};"
            " use that model or start a new state file"
        )
    return embedder.model_id, pipeline.vector_space(embedder)
