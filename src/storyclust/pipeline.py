"""The recipe from articles to stories: each step lives here once, and both drivers call it.

==========================  ======================================================================
step                        function
==========================  ======================================================================
date rule                   :func:`article_time`: the publication date only, never the file's mtime
duplicate folding           :func:`fold_copies`: exact copies (same content hash) and near copies
                            (MinHash, :mod:`storyclust.ingest.dedupe`) follow their first copy
embedding views             :func:`embed`: whole text + title-and-lead, averaged
                            (:func:`storyclust.embed.embed_articles`); cached under :func:`text_key`
                            in :func:`vector_space`
language means              :func:`starting_language_means`: the shipped reference means
evidence and clustering     :func:`partition`: :class:`~storyclust.cluster.StoryClusterer` with the
                            shared-number evidence of :mod:`storyclust.evidence`
story IDs                   :func:`name_stories`: ``s_`` + 12 hex digits of the SHA-1 of the
                            story's first article's content hash
story records and labels    :func:`build_story`, :func:`with_labels` (:mod:`storyclust.labels`)
==========================  ======================================================================

The one-shot driver is :func:`cluster_articles`. The nightly driver
(:func:`storyclust.incremental.update_stories`) runs :func:`partition` on the articles of the
open stories plus tonight's, with the same vectors, means and evidence, and then maps the
result onto the stories it already has (:func:`storyclust.incremental.plan_night`). A night
whose articles are all new therefore gives exactly the stories, and the IDs, of a one-shot
run on the same articles.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Container, Iterable, Mapping, Optional, Sequence

import numpy as np

from .cluster import LanguageMeans, Settled, StoryClusterer, _GLOBAL, _unit
from .corrections import Correction, constraint_pairs, detach_unlinked_copies, linked_ids
from .evidence import evidence_text
from .settings import ClusterOptions
from .timing import stage
from .types import Article, Story, StoryMember

log = logging.getLogger(__name__)


# -- the date rule -------------------------------------------------------------------


def article_time(article: Article) -> Optional[datetime]:
    """When an article happened, for the time window: its publication date only.

    The retrieval date (file mtime, WARC date) is never used: a copy scraped today of a story
    published years ago would otherwise be kept apart from its siblings.
    """
    return article.published


def first_key(article: Article) -> tuple:
    """Order of a story's members: dated before undated, oldest first, then by content hash.

    A story's first article under this order names the story (:func:`name_stories`).
    """
    published = article.published
    return (published is None, published.timestamp() if published else 0.0, article.hash, article.id)


# -- duplicate folding ---------------------------------------------------------------


def fold_copies(articles: Sequence[Article], *, earlier: Sequence[Article] = (),
                threshold: Optional[float] = 0.8,
                signatures: Optional[dict[str, Optional[np.ndarray]]] = None,
                text_signatures: Mapping[str, Optional[np.ndarray]] = {}) -> list[Article]:
    """``articles`` with ``duplicate_of`` naming the first copy each one follows, or None.

    An article follows an earlier one (in ``earlier``, then in ``articles`` order) when its
    ``duplicate_of`` already leads there, when it has the same content hash (an exact copy under
    another id), or when its word shingles overlap at MinHash Jaccard >= ``threshold`` (a near
    copy: a wire reprinted with light edits; None turns this off). ``duplicate_of`` always names
    a first copy (an article that follows nobody), never another copy. A ``duplicate_of`` that
    names no known article, or a chain that loops, is dropped: the article stands alone.

    ``signatures``: MinHash signatures by article id (:class:`~storyclust.ingest.dedupe.Deduplicator`),
    read for ``earlier`` articles when present (their texts are not shingled again) and filled in with
    every signature computed here, so that a caller can keep them (the nightly state does).
    ``text_signatures``: signatures of texts by content hash, made with the default recipe
    (``ingest_paths(signatures=...)`` fills one): those texts are not shingled again.
    """
    known = {a.id: a for a in earlier}
    roots: dict[str, str] = {}
    for a in earlier:
        roots[a.id] = _chain_root(a, known) or a.id
    by_hash: dict[str, str] = {}
    for a in earlier:
        by_hash.setdefault(a.hash, roots[a.id])
    chains = {a.id: a for a in articles} | known  # where a duplicate_of leads (built once: a batch is large)
    dedupe = _near_index(earlier, threshold, signatures)
    to_check = _signatures_to_check(articles, by_hash, dedupe, text_signatures) if dedupe is not None else {}
    out: list[Article] = []
    for a in articles:
        root = _chain_root(a, chains) if a.duplicate_of else None
        if root is None and a.hash in by_hash:
            root = by_hash[a.hash]
        if root is None and dedupe is not None:
            probe = dedupe.check(_following(a, None), "", *_known(to_check, a))
            found = getattr(probe, "duplicate_of", None)
            root = roots.get(found, found) if found else None
        elif dedupe is not None:
            dedupe.check(_following(a, root), "", *_known(to_check, a))  # its shingles, under its root
        if root == a.id:
            root = None
        if dedupe is not None and signatures is not None and a.id in dedupe.signatures:
            signatures[a.id] = dedupe.signatures[a.id]
        roots[a.id] = root or a.id
        by_hash.setdefault(a.hash, roots[a.id])
        out.append(_following(a, root))
    return _to_first_copies(out, roots)


def _following(article: Article, root: Optional[str]) -> Article:
    """``article`` with ``duplicate_of=root``; itself when it has that already (``replace`` validates every field)."""
    return article if article.duplicate_of == root else replace(article, duplicate_of=root)


def _signatures_to_check(articles: Sequence[Article], earlier_hashes: Container[str], index,
                         text_signatures: Mapping[str, Optional[np.ndarray]]) -> dict[str, Optional[np.ndarray]]:
    """By content hash, the signatures of the texts :func:`fold_copies` will hand to ``index.check``: the
    first article of each content hash that no earlier article has (the others are exact copies, known
    by their hash). ``text_signatures``' when there, else signed here, all before the loop, and passed to
    ``index.expect`` so that their bands are hashed in one go."""
    todo: dict[str, Optional[np.ndarray]] = {}
    for a in articles:
        if a.hash not in earlier_hashes and a.hash not in todo:
            todo[a.hash] = text_signatures[a.hash] if a.hash in text_signatures else index.signature(a)
    index.expect(todo.values())
    return todo


def _known(by_text: Mapping[str, Optional[np.ndarray]], article: Article) -> tuple:
    """``Deduplicator.check``'s optional signature argument: the known signature of the article's text, if any."""
    return (by_text[article.hash],) if article.hash in by_text else ()


def _to_first_copies(folded: list[Article], earlier_roots: dict[str, str]) -> list[Article]:
    """Point every ``duplicate_of`` at a first copy: a copy may have been matched to an article that was
    itself found to be a copy later in the batch. In a loop, the loop's first article in batch order
    is the first copy."""
    by_id = {a.id: a for a in folded}
    position = {a.id: k for k, a in enumerate(folded)}
    out = []
    for a in folded:
        path, current = [a.id], a.duplicate_of
        while current in by_id and by_id[current].duplicate_of is not None and current not in path:
            path.append(current)
            current = by_id[current].duplicate_of
        if current in path:  # a loop: its first article in batch order stands alone
            current = min(path, key=position.__getitem__)
        root = earlier_roots.get(current, current) if current not in by_id else current
        root = None if root == a.id else root
        out.append(_following(a, root))
    return out


def _chain_root(article: Article, known: dict[str, Article]) -> Optional[str]:
    """The article that ``article.duplicate_of`` leads to through ``known`` (its last known link).

    None when ``duplicate_of`` names no known article, or when the chain loops.
    """
    seen = {article.id}
    current = article
    while current.duplicate_of is not None:
        nxt = known.get(current.duplicate_of)
        if nxt is None:
            break
        if nxt.id in seen:
            return None
        seen.add(nxt.id)
        current = nxt
    return None if current is article else current.id


def _near_index(earlier: Sequence[Article], threshold: Optional[float],
                signatures: Optional[dict[str, Optional[np.ndarray]]] = None):
    """A near-copy index holding ``earlier`` (already placed: registered, not matched again)."""
    if threshold is None:
        return None
    from .ingest.dedupe import Deduplicator

    index = Deduplicator(threshold=threshold)
    known = signatures or {}
    index.remember_many(earlier, [known[a.id] if a.id in known else index.signature(a) for a in earlier])
    return index


# -- embedding ---------------------------------------------------------------------


def vector_space(embedder) -> str:
    """Names the article vectors :func:`embed` makes with ``embedder`` (model id + views)."""
    from .embed import LEAD_CHARS

    return f"{embedder.model_id}|views=full+lead{LEAD_CHARS}"


def text_key(article: Article) -> str:
    """Cache key of an article's vector: SHA-256 of the exact texts the embedder sees."""
    from .embed import LEAD_CHARS, embedding_text

    views = embedding_text(article) + "\x00" + embedding_text(article, max_chars=LEAD_CHARS)
    return hashlib.sha256(views.encode("utf-8")).hexdigest()


def embed(articles: Sequence[Article], embedder, *, progress: bool = False, engine=None) -> np.ndarray:
    """Article vectors (float32, unit rows), in one call so that batches do not depend on the caller.

    ``engine`` (:mod:`storyclust.engine`; None: this process) runs the same batches elsewhere."""
    from .embed import embed_articles

    if not articles:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    if engine is not None:
        return engine.embed(articles, embedder, progress=progress)
    return embed_articles(articles, embedder, progress=progress)


# -- language means ------------------------------------------------------------------


def starting_language_means(embedder, options: ClusterOptions | None = None) -> LanguageMeans | None:
    """The language means every clustering starts from.

    The shipped reference means of ``embedder``'s model when there is an embedder and
    neutralisation is on; None (the batch's own means alone) otherwise.
    """
    options = options or ClusterOptions()
    if embedder is None or not options.neutralize:
        return None
    return reference_language_means(embedder, weight=options.reference_weight)


def reference_language_means(embedder, *, weight: float = 8.0, cache_dir=None) -> LanguageMeans:
    """Per-language mean vectors of the shipped calibration corpus, as ``weight`` pseudo-articles each.

    The corpus (``calibration.jsonl``: a dozen short texts on unrelated topics in each of
    16+ languages, written for storyclust) gives every language's offset in the model's
    space without depending on the batch, so that a batch of two articles is neutralised
    as well as one of two thousand. Embeddings are cached per model under the cache
    directory; the first call for a model embeds the corpus (a few seconds).
    """
    from importlib import resources

    from .embed.cache import cache_root

    corpus = resources.files("storyclust").joinpath("calibration.jsonl").read_bytes()
    key = hashlib.sha1(embedder.model_id.encode("utf-8") + b"\0" + corpus).hexdigest()[:16]
    path = cache_root(cache_dir) / "reference" / f"{key}.npz"
    records = [json.loads(line) for line in corpus.decode("utf-8").splitlines() if line.strip()]
    langs = np.array([r["lang"] for r in records])
    try:
        X = np.load(path)["X"]
    except (OSError, KeyError, ValueError):
        X = embedder.encode([r["text"] for r in records])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, X=X)
        os.replace(tmp, path)
    if len(X) != len(langs):
        raise ValueError(f"stale reference cache {path}: delete it")
    means: LanguageMeans = {}
    for lang in np.unique(langs):
        mean = X[langs == lang].astype(np.float64).mean(axis=0)
        means[str(lang)] = (mean * weight, weight)
    per_lang = np.stack([m[0] / weight for m in means.values()])
    means[_GLOBAL] = (per_lang.mean(axis=0) * weight * len(per_lang), weight * len(per_lang))
    return means


# -- clustering ----------------------------------------------------------------------


@dataclass(frozen=True)
class Partition:
    """Stories of a batch of first copies: one label per article, and the language-neutral vectors."""

    labels: np.ndarray  # int64, one per article
    neutral: np.ndarray  # float32 unit rows, the space the labels were decided in

    def groups(self) -> list[np.ndarray]:
        """Row indices of each label, in label order."""
        return [np.flatnonzero(self.labels == label) for label in np.unique(self.labels)]


def partition(articles: Sequence[Article], vectors: np.ndarray, options: ClusterOptions | None = None,
              language_means: LanguageMeans | None = None, *, engine=None,
              corrections: Sequence[Correction] = (), copies: Mapping[str, str] = {},
              numbers: Optional[Sequence[Sequence[str]]] = None, settled: Optional[Settled] = None
              ) -> Partition:
    """Cluster first copies (no article here may follow another) into stories (``engine``: see :mod:`.engine`).

    ``corrections`` (an editor's links and unlinks) constrain the clustering; ``copies`` maps the ids of
    copies to the first copy they follow, so that a correction naming a copy binds its first copy.
    ``numbers``: each article's numbers (:func:`~storyclust.evidence.number_tokens` of its
    :func:`~storyclust.evidence.evidence_text`) when already known, as the nightly state keeps them; the
    texts are then not read (a learnt pair score reads them still). ``settled``: pools of rows clustered as
    weighted summaries (``StoryClusterer.fit``), as a nightly run clusters a long story's older members."""
    options = options or ClusterOptions()
    row_of = {a.id: k for k, a in enumerate(articles)}
    row_of |= {c: row_of[root] for c, root in copies.items() if root in row_of}
    must, cannot = constraint_pairs(corrections, row_of)
    clusterer = StoryClusterer(options, language_means=language_means, engine=engine).fit(
        np.asarray(vectors, dtype=np.float32), langs=[a.lang for a in articles],
        published=[article_time(a) for a in articles],
        texts=None if numbers is not None and options.pair_score is None else [evidence_text(a) for a in articles],
        numbers=numbers, must_link=must, cannot_link=cannot, settled=settled,
    )
    return Partition(clusterer.labels_, clusterer.neutral_)


def detach_copies(folded: Sequence[Article], corrections: Sequence[Correction]) -> list[Article]:
    """``folded`` with the copies an unlink separates from their first copy standing alone (clustered on their own)."""
    detached = detach_unlinked_copies({a.id: a.duplicate_of for a in folded}, corrections)
    return [replace(a, duplicate_of=None) if a.id in detached else a for a in folded]


# -- story IDs and records -----------------------------------------------------------


def story_id_of(first: Article, taken: Container[str] = ()) -> str:
    """``s_`` + 12 hex digits of SHA-1 of the first article's content hash (salted while in ``taken``)."""
    n = 0
    while True:
        salt = f":{n}" if n else ""
        sid = "s_" + hashlib.sha1((first.hash + salt).encode("ascii")).hexdigest()[:12]
        if sid not in taken:
            return sid
        n += 1


class Either:
    """A container holding what any of its containers holds (``in`` only: a store's IDs are looked up, not listed)."""

    def __init__(self, *containers: Container[str]) -> None:
        self.containers = containers

    def __contains__(self, sid: object) -> bool:
        return any(sid in c for c in self.containers)


def name_stories(groups: Sequence[Sequence[Article]], taken: Container[str] = ()) -> list[str]:
    """IDs for new stories (each a list of its members), named in the order of their first articles.

    The order makes the IDs independent of how the groups were listed; ``taken`` holds IDs already
    in use (any container: an ID is never reused).
    """
    given: set[str] = set()
    used = Either(given, taken)
    firsts = [min(g, key=first_key) for g in groups]
    ids: list[Optional[str]] = [None] * len(groups)
    for k in sorted(range(len(groups)), key=lambda k: first_key(firsts[k])):
        ids[k] = story_id_of(firsts[k], used)
        given.add(ids[k])  # type: ignore[arg-type]
    return ids  # type: ignore[return-value]


def build_story(story_id: str, members: Sequence[tuple[Article, np.ndarray, Optional[str]]], **fields) -> Story:
    """A :class:`Story` from ``(article, neutral vector, joined_by)`` members; similarity is to their centroid."""
    Z = np.stack([z for _, z, _ in members])
    centroid = _unit(Z.mean(axis=0, keepdims=True))[0]
    sims = Z @ centroid
    ordered = sorted(
        (StoryMember(a, round(float(s), 6), how) for (a, _, how), s in zip(members, sims)),
        key=lambda m: (first_key(m.article), -m.similarity),
    )
    return Story(story_id=story_id, members=tuple(ordered), singleton=len(ordered) == 1, **fields)


def with_labels(stories: Sequence[Story], terms=None) -> list[Story]:
    """``stories`` with their labels (:func:`storyclust.labels.story_labels`: c-TF-IDF against each other);
    ``terms``: where the members' label terms come from (default: computed from their texts)."""
    from .labels import story_labels

    labels = story_labels(stories, terms=terms)
    return [replace(s, labels=labels.get(s.story_id, ())) for s in stories]


def stories_in_order(stories: Iterable[Story]) -> list[Story]:
    """Largest first, then oldest first, then by ID: the order one-shot runs print."""
    return sorted(stories, key=lambda s: (-s.size, s.first_published is None,
                                          s.first_published.timestamp() if s.first_published else 0.0,
                                          s.story_id))


# -- the one-shot driver -------------------------------------------------------------


def cluster_articles(
    articles: Sequence[Article],
    embedder=None,
    *,
    embeddings: np.ndarray | None = None,
    options: ClusterOptions | None = None,
    language_means: LanguageMeans | None = None,
    progress: bool = False,
    engine=None,
    corrections: Sequence[Correction] = (),
    signatures: Mapping[str, Optional[np.ndarray]] = {},
) -> list[Story]:
    """Embed (unless ``embeddings``, one row per article, are given) and cluster ``articles`` into stories.

    Every article ends in exactly one story; articles that join no other become stories of
    size 1 with ``singleton=True``. Copies (see :func:`fold_copies`) are not embedded or
    clustered on their own: they follow their first copy into its story, with ``duplicate_of``
    set and ``joined_by="duplicate"``.

    ``engine`` (:mod:`storyclust.engine`, e.g. a RayEngine) runs the embedding and the clustering's
    heavy steps elsewhere with the same result; None (the default) runs them in this process.

    ``corrections`` (:mod:`storyclust.corrections`): an editor's links and unlinks, honoured as the
    nightly driver honours those kept in a state; articles a link places carry ``joined_by="editor"``.
    ``signatures``: MinHash signatures of texts by content hash, as ``ingest_paths(signatures=...)`` fills
    them (see :func:`fold_copies`).
    """
    options = options or ClusterOptions()
    if language_means is None:
        with stage("language means"):
            language_means = starting_language_means(embedder, options)
    with stage("fold copies"):
        folded = fold_copies(articles, threshold=options.near_duplicate_threshold, text_signatures=signatures)
        folded = detach_copies(folded, corrections)
    primary = [i for i, a in enumerate(folded) if a.duplicate_of is None]
    firsts = [folded[i] for i in primary]
    if embeddings is None:
        if embedder is None:
            raise ValueError("cluster_articles needs an embedder or precomputed embeddings")
        with stage("embed"):
            X = embed(firsts, embedder, progress=progress, engine=engine)
    else:
        if len(embeddings) != len(articles):
            raise ValueError("embeddings must have one row per article")
        X = np.asarray(embeddings, dtype=np.float32)[primary]
    if not firsts:
        return []
    with stage("cluster"):
        copies = {a.id: a.duplicate_of for a in folded if a.duplicate_of is not None}
        part = partition(firsts, X, options, language_means, engine=engine, corrections=corrections, copies=copies)
    with stage("stories"):
        return _stories_of(folded, firsts, part, linked_ids(corrections))


def _stories_of(folded: Sequence[Article], firsts: Sequence[Article], part: Partition,
                linked: Container[str] = ()) -> list[Story]:
    """The one-shot stories of ``part`` (a partition of ``firsts``), each copy in its first copy's story;
    the first copies in ``linked`` were placed by an editor's link."""
    row_of = {a.id: k for k, a in enumerate(firsts)}
    groups = part.groups()
    members: list[list[tuple[Article, np.ndarray, Optional[str]]]] = [
        [(firsts[k], part.neutral[k], "editor" if firsts[k].id in linked else "cluster") for k in g] for g in groups
    ]
    label_of = {int(k): gi for gi, g in enumerate(groups) for k in g}
    for a in folded:
        if a.duplicate_of is not None:
            k = row_of[a.duplicate_of]
            members[label_of[k]].append((a, part.neutral[k], "duplicate"))
    ids = name_stories([[m[0] for m in ms] for ms in members])
    return stories_in_order(with_labels([build_story(sid, ms) for sid, ms in zip(ids, members)]))
