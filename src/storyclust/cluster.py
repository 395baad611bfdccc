"""Group embedded articles into stories.

The clusterer works in three steps, each linear or near-linear in the number of
articles except the last, which only ever sees one small candidate group at a time:

1. **Language-neutral vectors.** A multilingual model places a text closer to
   other texts of its own language than to its translation. Subtracting each
   language's mean vector removes most of that offset. Means of languages with
   few articles are shrunk towards the global mean (``language_prior``
   pseudo-articles), and the clustering starts from the shipped reference means, so a
   night with three Indonesian articles is as stable as one with three thousand.
2. **Candidate graph.** Each article is linked to its nearest neighbours (exact,
   blocked matrix products) whose similarity reaches ``1 - max_distance`` and whose
   dates lie within ``time_window_days``. The similarity is the cosine in the neutral
   space plus, when the texts are given, ``number_weight`` times the cosine of the
   numbers they share (:mod:`storyclust.evidence`: a translation keeps its numbers). When
   every article has a date the search only compares articles whose dates are
   close, so the cost grows with the articles per window, not with the archive.
   Above ``approximate_above`` articles the search is approximate instead: rows
   are split into ~sqrt(n) coarse cells by spherical k-means and each row is
   compared exactly with the rows of its ``search_probes`` nearest cells (an
   inverted-file index). Each article is also linked to the lowest-numbered article
   within ``max_distance`` (its *bridge*): the nearest neighbours alone cut a story with
   more reports than ``neighbors`` into its tighter strands (the reports quoting one
   spokesperson, one agency's rewrites), which share no edge though average linkage
   would join them; every report of such a story reaches its first ones, so the bridges
   keep it one group. Connected components of this graph are the candidate
   groups: no story can span two of them.
3. **Stories inside each group.** ``method="hdbscan"`` runs HDBSCAN on the
   group's distances and then splits each HDBSCAN cluster by average linkage at
   ``max_distance``; ``method="average"`` uses average linkage alone. Average
   linkage keeps a story cohesive: every member must be, on average, close to
   the others, which is what separates two earthquakes that single linkage (and
   plain HDBSCAN) would chain together. Rows may come pooled (``fit(settled=...)``,
   how a nightly run clusters a long story's older members): one summary row per
   pool, its rows' mean, weighing as many rows in the linkage
   (:func:`weighted_average_tree`), so a story's history counts as it would row by
   row at the cost of a few rows.

Complexity, for n articles in dimension d with k neighbours: neutralisation
O(n d); candidate graph O(n^2 d) multiply-adds in blocks of bounded memory
(O(n w d) with dates, w = articles per time window), or O(n^1.5 p d) with the
approximate search (p = probes; plus O(n^1.5 d) for the cells); shared numbers O(n t) to
build (t = numbers per text) and O(n k t) over the candidate edges; components O(n k); step 3
O(sum of m_i^2) over candidate groups of size m_i, which stay small (a
group larger than ``max_group`` is split by a stricter threshold first).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Optional, Sequence

import numpy as np

from .disjoint import DisjointSets
from .evidence import group_evidence, number_evidence, pair_evidence, tfidf_rows
from .score import RowSignals
from .settings import ClusterOptions

log = logging.getLogger(__name__)

LanguageMeans = dict[str, tuple[np.ndarray, int]]  # lang -> (sum of vectors, count)

_GLOBAL = "*"  # key of the all-languages running sum in LanguageMeans


def _unit(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return (X / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class StoryClusterer:
    """Cluster article embeddings into stories, in the style of a scikit-learn estimator.

    >>> clusterer = StoryClusterer(ClusterOptions()).fit(X, langs=langs, published=dates)
    >>> clusterer.labels_          # one label per row; every label is a story (no -1)
    >>> clusterer.neutral_         # the language-neutral unit vectors the labels came from

    ``language_means`` are per-language sums to start from (the shipped reference means, see
    :func:`storyclust.pipeline.starting_language_means`): :meth:`fit` starts afresh from them
    and adds the rows it is given; :meth:`partial_fit` adds rows to those seen since the last
    ``fit`` and clusters all of them again, so that a clusterer fed night by night ends where one
    ``fit`` on all the rows would. ``get_params``/``set_params`` expose the options' fields.
    """

    def __init__(self, options: ClusterOptions | None = None, *, language_means: LanguageMeans | None = None,
                 engine=None):
        self.options = options or ClusterOptions()
        self.language_means = language_means
        self.engine = engine  # None: this process; else the neighbour search and the groups run there
        self._reset_means()

    def _reset_means(self) -> None:
        self.language_means_: LanguageMeans = {k: (v[0].copy(), v[1]) for k, v in (self.language_means or {}).items()}

    def get_params(self, deep: bool = True) -> dict:
        """The options' fields (scikit-learn convention)."""
        return dataclasses.asdict(self.options)

    def set_params(self, **params) -> "StoryClusterer":
        """Replace some options (validated like ``ClusterOptions``); returns self."""
        self.options = dataclasses.replace(self.options, **params)
        return self

    # -- language neutralisation -------------------------------------------------
    def update_language_means(self, X: np.ndarray, langs: Sequence[Optional[str]]) -> None:
        """Add the rows of ``X`` to the running per-language sums."""
        X = np.asarray(X)
        rows_of: dict[str, list[int]] = {}
        for i, lang in enumerate(langs):
            rows_of.setdefault(lang or _GLOBAL, []).append(i)
        for key, rows in rows_of.items():  # summed in float64, each language's rows in their order
            self._add(key, X[rows].astype(np.float64).sum(axis=0), len(rows))
        if set(rows_of) - {_GLOBAL}:
            known = sorted(i for key, rows in rows_of.items() if key != _GLOBAL for i in rows)
            self._add(_GLOBAL, X[known].astype(np.float64).sum(axis=0), len(known))

    def _add(self, key: str, total: np.ndarray, count: int) -> None:
        old_sum, old_n = self.language_means_.get(key, (np.zeros_like(total), 0))
        self.language_means_[key] = (old_sum + total, old_n + count)

    def language_mean(self, lang: Optional[str]) -> np.ndarray:
        """The shrunk mean vector of ``lang`` (the global mean for unknown languages)."""
        g_sum, g_n = self.language_means_[_GLOBAL]
        g_mean = g_sum / max(g_n, 1)
        if not lang or lang not in self.language_means_:
            return g_mean
        l_sum, l_n = self.language_means_[lang]
        prior = self.options.language_prior
        return (l_sum + prior * g_mean) / (l_n + prior)

    def neutralize(self, X: np.ndarray, langs: Sequence[Optional[str]]) -> np.ndarray:
        """Language-neutral unit vectors for rows ``X`` (uses the current running means)."""
        X = np.asarray(X, dtype=np.float32)
        if not self.options.neutralize or _GLOBAL not in self.language_means_ or len(X) == 0:
            return _unit(X)
        means = {lang: self.language_mean(lang).astype(np.float32) for lang in set(langs)}
        return _unit(X - np.stack([means[lang] for lang in langs]))

    # -- clustering ----------------------------------------------------------------
    def fit(
        self,
        X: np.ndarray,
        langs: Sequence[Optional[str]] | None = None,
        published: Sequence[Optional[datetime]] | None = None,
        texts: Sequence[str] | None = None,
        must_link: Sequence[tuple[int, int]] = (),
        cannot_link: Sequence[tuple[int, int]] = (),
        numbers: Sequence[Sequence[str]] | None = None,
        settled: Optional["Settled"] = None,
    ) -> "StoryClusterer":
        """Cluster the rows of ``X`` afresh; ``texts`` (one per row) add the numbers they share as evidence.

        ``numbers``: the rows' numbers already found (:func:`~storyclust.evidence.number_tokens` of each
        text), in place of ``texts`` for the evidence: the same evidence without tokenising the texts again.
        A learnt pair score still reads ``texts``.

        ``must_link`` / ``cannot_link``: pairs of rows an editor put in one story / apart. A must-link
        pair always ends in one story (and with it everything linked to either row); a cannot-link
        pair never does, whatever chain of evidence joins them: the story holding both is cut where
        its average-linkage tree separates them. The two must not contradict each other (a
        cannot-link pair joined by a chain of must-links): :func:`storyclust.corrections` refuses that.

        ``settled`` (:class:`Settled`): rows pooled into weighted summary rows (parts of a story's older members,
        in nightly runs), each clustered as one row: their mean neutral vector, mean date and mean number
        evidence, weighing as many rows in the average linkage (:func:`summarize`). They count in the language
        means and come out with their pool's label. Rows an editor's pair names stay on their own; with a learnt
        pair score (which reads every row's text) every row does.
        """
        self._reset_means()
        X = np.asarray(X, dtype=np.float32)
        n = len(X)
        langs = list(langs) if langs is not None else [None] * n
        if len(langs) != n or (texts is not None and len(texts) != n) or (numbers is not None and len(numbers) != n):
            raise ValueError("langs, texts and numbers must have one entry per row of X")
        if n:
            self.update_language_means(X, langs)
        Z = self.neutralize(X, langs)
        days = _days(published, n)
        score = self.options.pair_score
        use_numbers = (texts is not None or numbers is not None) and self.options.number_weight > 0 and score is None
        self.neutral_ = Z
        self.evidence_ = None
        if use_numbers:
            self.evidence_ = tfidf_rows(numbers) if numbers is not None else number_evidence(texts)
        self.signals_ = RowSignals.of(texts, langs, days) if score is not None else None
        self.constraints_ = Constraints.of(n, must_link, cannot_link)
        self.weights_ = self.spread_ = self.anchors_ = None
        pooled = None
        if settled is not None and score is None and n:
            if len(settled.pool) != n:
                raise ValueError("settled must have one entry per row of X")
            pooled = summarize(Z, days, settled, self.constraints_)
        if pooled is None:
            self.labels_ = self._cluster(Z, days)
        else:  # cluster the summaries in place of their rows, then hand each row its summary's label
            full_evidence, full_constraints = self.evidence_, self.constraints_
            self.evidence_ = pooled.evidence(full_evidence)
            self.constraints_ = pooled.constraints(full_constraints)
            self.weights_, self.spread_, self.anchors_ = pooled.weights, pooled.spread, pooled.anchors
            log.info("%d rows clustered as %d: %d settled rows as %d summaries", n, len(pooled.Z),
                     n - len(pooled.free), len(pooled.Z) - len(pooled.free))
            try:
                self.labels_ = self._cluster(pooled.Z, pooled.days)[pooled.row_of]
            finally:
                self.evidence_, self.constraints_ = full_evidence, full_constraints
                self.weights_ = self.spread_ = self.anchors_ = None
        self._seen = (X, list(langs), None if published is None else list(published),
                      None if texts is None else list(texts), numbers is not None)
        return self

    def partial_fit(self, X, langs=None, published=None, texts=None) -> "StoryClusterer":
        """Add rows to those of the last :meth:`fit` (or ``partial_fit``) and cluster them all again.

        ``labels_`` and ``neutral_`` then cover every row seen so far, in the order given.
        ``published`` and ``texts`` must be given on every call or on none.
        """
        if not hasattr(self, "_seen"):
            return self.fit(X, langs, published, texts)
        X0, langs0, pub0, texts0, had_numbers = self._seen
        if had_numbers:
            raise ValueError("partial_fit adds rows by their texts: fit this clusterer with texts, not numbers")
        X = np.asarray(X, dtype=np.float32)
        langs = list(langs) if langs is not None else [None] * len(X)
        if (pub0 is None) != (published is None) or (texts0 is None) != (texts is None):
            raise ValueError("partial_fit needs published and texts exactly when fit had them")
        return self.fit(np.concatenate([X0, X]) if len(X0) else X, langs0 + langs,
                        None if published is None else pub0 + list(published),
                        None if texts is None else texts0 + list(texts))

    def fit_predict(self, X, langs=None, published=None, texts=None, must_link=(), cannot_link=()) -> np.ndarray:
        return self.fit(X, langs, published, texts, must_link, cannot_link).labels_

    def _similarity(self, Z: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Pair similarity the clusterer decides on: cosine plus ``number_weight`` x shared-number cosine, or
        the options' learnt :class:`~storyclust.score.PairScore` (on the cosine scale) when there is one."""
        if self.options.pair_score is not None:
            return self.options.pair_score.similarity(Z, self.signals_, rows, cols)
        sims = _pair_cosines(Z, rows, cols)
        if self.evidence_ is not None:
            sims = sims + self.options.number_weight * pair_evidence(self.evidence_, rows, cols)
        return sims

    def _cluster(self, Z: np.ndarray, days: Optional[np.ndarray]) -> np.ndarray:
        n = len(Z)
        labels = np.full(n, -1, dtype=np.int64)
        if n == 0:
            return labels
        opts = self.options
        bonus = opts.number_weight if self.evidence_ is not None else 0.0  # the most shared numbers can add
        if opts.pair_score is not None:  # the most the learnt score can add to a cosine
            bonus = max(opts.pair_score.max_bonus(), 0.0)
        rows, cols, cosines = candidate_edges(
            Z, days, min(opts.max_distance + bonus, 1.99), opts.neighbors, opts.time_window_days, opts.block_size,
            probes=opts.search_probes if n > opts.approximate_above else None, random_state=opts.random_state,
            return_similarity=True, engine=self.engine, bridge_distance=opts.max_distance,
        )
        if opts.pair_score is not None:
            keep = self._similarity(Z, rows, cols) >= 1.0 - opts.max_distance
            rows, cols = rows[keep], cols[keep]
        elif bonus:
            keep = cosines + bonus * pair_evidence(self.evidence_, rows, cols) >= 1.0 - opts.max_distance
            rows, cols = rows[keep], cols[keep]
        rows, cols = self._with_bound_edges(rows, cols)
        groups = _components(n, rows, cols)
        if self.engine is not None:
            split = _split_groups_on(self.engine, self, Z, days, groups, rows, cols)
        else:
            split = (self._split_group(Z, days, members, rows, cols, opts.max_distance) for members in groups)
        next_label = 0
        for subs in split:
            for sub in subs:
                labels[sub] = next_label
                next_label += 1
        return labels

    def _with_bound_edges(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Candidate edges plus those no similarity threshold may drop: an editor's links (linked rows share a
        candidate group) and each summary's anchor (a summary is reached wherever its story is)."""
        for pairs in (None if self.constraints_ is None else self.constraints_.must, self.anchors_):
            if pairs is not None:
                rows, cols = np.r_[rows, pairs[:, 0]], np.r_[cols, pairs[:, 1]]
        return rows, cols

    def _split_group(self, Z, days, members: np.ndarray, rows, cols, threshold: float) -> list[np.ndarray]:
        """Stories inside one candidate group (recursing with a stricter threshold when it is huge)."""
        if len(members) == 1:
            return [members]
        if len(members) > self.options.max_group:
            stricter = threshold * 0.9
            inside = np.isin(rows, members) & np.isin(cols, members)
            r, c = rows[inside], cols[inside]
            keep = self._similarity(Z, r, c) >= 1.0 - stricter
            r, c = r[keep], c[keep]
            if self.constraints_ is not None or self.anchors_ is not None:
                r, c = self._with_bound_edges(r, c)
                inside = np.isin(r, members) & np.isin(c, members)
                r, c = r[inside], c[inside]
            local = {m: i for i, m in enumerate(members)}
            parts = _components(len(members), np.array([local[x] for x in r], dtype=np.int64),
                                np.array([local[x] for x in c], dtype=np.int64))
            log.debug("candidate group of %d split into %d at distance %.3f", len(members), len(parts), stricter)
            out: list[np.ndarray] = []
            for part in parts:
                out.extend(self._split_group(Z, days, members[part], r, c, stricter))
            return out
        weights = None if self.weights_ is None else self.weights_[members]
        if weights is not None and not (weights > 1).any():
            weights = None  # rows alone: the plain average linkage, as a run without summaries
        spread = None if weights is None else [self.spread_[k] for k in members.tolist()]
        bonus = None
        if self.options.pair_score is not None:  # the learnt score minus the cosine
            bonus = self.options.pair_score.group_bonus(self.signals_, members)
        elif self.evidence_ is not None:
            bonus = self.options.number_weight * group_evidence(self.evidence_, members)
        D = _group_distances(Z[members], None if days is None else days[members], self.options.time_window_days,
                             bonus, spread)
        must, cannot = self.constraints_.within(members) if self.constraints_ is not None else (None, None)
        if cannot is not None:  # an unlinked pair is as far apart as two articles can be
            D[cannot[:, 0], cannot[:, 1]] = D[cannot[:, 1], cannot[:, 0]] = 2.0
        if self.options.method == "hdbscan" and len(members) > 2:
            parts = _hdbscan_parts(D, self.options)
        else:
            parts = [np.arange(len(members))]
        stories = [part[sub] for part in parts
                   for sub in _average_linkage(D[np.ix_(part, part)], threshold, _inside(cannot, part, len(members)),
                                               None if weights is None else weights[part])]
        if must is not None and len(must):  # a link joins the two stories, not only the two articles,
            stories = _join_linked(stories, must, len(members))
            if len(cannot):  # except what an unlink keeps from one of them: cut where the tree separates the pair,
                D[must[:, 0], must[:, 1]] = D[must[:, 1], must[:, 0]] = 0.0  # linked articles merging first
                stories = [part[sub] for part in stories
                           for sub in _average_linkage(D[np.ix_(part, part)], np.inf,
                                                       _inside(cannot, part, len(members)),
                                                       None if weights is None else weights[part])]
        return [members[story] for story in stories]


@dataclass(frozen=True)
class Summaries:
    """Rows pooled into weighted summary rows (:func:`summarize`); free rows first, in their order."""

    Z: np.ndarray  # float32: the free rows, then each pool's mean (not a unit row: its dot products are means)
    days: Optional[np.ndarray]  # each reduced row's mean day (NaN: undated)
    weights: np.ndarray  # float64: how many rows each reduced row stands for
    row_of: np.ndarray  # int64: the reduced row of every row
    free: np.ndarray  # int64: the rows left on their own, in order
    mean: object  # scipy CSR (pools x rows): each pool's row of averaging weights
    spread: list  # per reduced row: the sorted days of a dated pool's rows, else None
    anchors: np.ndarray  # (k, 2) int64: candidate edges from each summary to its anchor's reduced row

    def evidence(self, evidence):
        """The number evidence of the reduced rows: the free rows' own, each pool's mean (None stays None)."""
        if evidence is None:
            return None
        from scipy.sparse import csr_matrix, vstack

        return csr_matrix(vstack([evidence[self.free], self.mean @ evidence]), dtype=np.float32)

    def constraints(self, constraints: Optional["Constraints"]) -> Optional["Constraints"]:
        if constraints is None:
            return None
        return Constraints(self.row_of[constraints.must], self.row_of[constraints.cannot])


@dataclass(frozen=True)
class Settled:
    """Rows to cluster as weighted summaries (``StoryClusterer.fit(settled=...)``).

    ``pool``: one entry per row, -1 for a row clustered on its own, else the number of its pool (0, 1, ...).
    ``anchor``: one entry per pool, a row the pool's summary is joined to in the candidate graph (a row of the
    same story), or -1. Rows of one story are joined in that graph by their nearest neighbours; a summary's
    mean vector is no nearest neighbour of anything, so without its anchor it could stand alone and leave
    its story, whatever the average linkage says."""

    pool: Sequence[int]
    anchor: Sequence[int] = ()


def summarize(Z: np.ndarray, days: Optional[np.ndarray], settled: Settled,
              constraints: Optional["Constraints"] = None) -> Optional[Summaries]:
    """Pool the rows that share a pool number (>= 0) into one summary row each (dated and undated
    rows apart), joined in the candidate graph to their anchors.

    The mean of unit rows gives, by its dot product with any row, the mean cosine to the pool's rows, and the
    mean of their number evidence the mean number cosine: the distances of average linkage, which weighs each
    summary by its rows (:func:`weighted_average_tree`); the time window counts the share of its rows within
    reach of the other side's date (:func:`_near_share`). What is approximate: the candidate search takes a
    pool's mean date, the mean cosine stands for that of the rows within the time window, a mean distance is
    clipped to [0, 2] after averaging, not before, and the pool's rows stay together. None when no pool
    holds two rows."""
    from scipy.sparse import csr_matrix

    group = np.asarray(settled.pool, dtype=np.int64).copy()
    if constraints is not None:  # a row an editor named stays on its own
        group[np.concatenate([constraints.must.ravel(), constraints.cannot.ravel()])] = -1
    pooled = np.flatnonzero(group >= 0)
    if not len(pooled):
        return None
    undated = np.zeros(len(pooled), dtype=np.int64) if days is None else np.isnan(days[pooled]).astype(np.int64)
    keys, pool = np.unique(np.stack([group[pooled], undated], axis=1), axis=0, return_inverse=True)
    pool = pool.ravel()
    sizes = np.bincount(pool, minlength=len(keys)).astype(np.float64)
    if sizes.max() <= 1:
        return None
    free = np.flatnonzero(group < 0)
    row_of = np.empty(len(Z), dtype=np.int64)
    row_of[free] = np.arange(len(free))
    row_of[pooled] = len(free) + pool
    mean = csr_matrix((1.0 / sizes[pool], (pool, pooled)), shape=(len(keys), len(Z)))
    Zr = np.vstack([Z[free], np.asarray(mean @ Z, dtype=np.float32)]).astype(np.float32, copy=False)
    days_r = None
    spread: list = [None] * (len(free) + len(keys))
    if days is not None:
        pool_days = mean @ np.nan_to_num(days)
        pool_days[keys[:, 1] == 1] = np.nan
        days_r = np.concatenate([days[free], pool_days])
        order = np.lexsort((days[pooled], pool))  # by pool, then day
        bounds = np.searchsorted(pool[order], np.arange(len(keys) + 1))
        member_days = days[pooled][order]
        for k in np.flatnonzero(keys[:, 1] == 0):
            spread[len(free) + k] = member_days[bounds[k]:bounds[k + 1]]
    weights = np.concatenate([np.ones(len(free)), sizes])
    anchor = np.asarray(settled.anchor, dtype=np.int64)
    if len(anchor):
        has = anchor[keys[:, 0]] >= 0
        anchors = np.stack([len(free) + np.flatnonzero(has), row_of[anchor[keys[has, 0]]]], axis=1)
    else:
        anchors = np.zeros((0, 2), dtype=np.int64)
    return Summaries(Zr, days_r, weights, row_of, free, mean, spread, anchors)


def _days(published: Sequence[Optional[datetime]] | None, n: int) -> Optional[np.ndarray]:
    """Dates as float days since the epoch, NaN where unknown; None when no row has a date."""
    if published is None:
        return None
    days = np.array([p.timestamp() / 86400.0 if p else np.nan for p in published], dtype=np.float64)
    if len(days) != n:
        raise ValueError("published must have one entry per row of X")
    return None if np.isnan(days).all() else days


def candidate_edges(
    Z: np.ndarray,
    days: Optional[np.ndarray],
    max_distance: float,
    neighbors: int,
    time_window_days: Optional[float],
    block_size: int = 2048,
    *,
    probes: Optional[int] = None,
    random_state: int = 0,
    return_similarity: bool = False,
    engine=None,
    bridge_distance: Optional[float] = None,
) -> tuple[np.ndarray, ...]:
    """Edges (i, j), i != j, between each row and its ``neighbors`` most similar rows at cosine >= 1 - max_distance.

    Returns ``(rows, cols)``, or ``(rows, cols, cosines)`` with ``return_similarity``.

    ``bridge_distance``: each row is also linked to the lowest-numbered row at cosine >= 1 - bridge_distance
    (inside the time window), whatever its rank. The top ``neighbors`` alone can cut a big story in pieces:
    when it has more reports than ``neighbors`` and they fall in tighter sub-groups (those quoting one
    spokesperson, one agency's rewrites), every row's nearest rows lie in its own sub-group and the
    sub-groups share no edge, though each of them lies well inside the story threshold of the others. The
    rows of such a story all reach its lowest-numbered rows, so these edges join it into one candidate
    group, and the linkage decides. Like the top ``neighbors``, they are the same whatever blocks, cells,
    engine or threads found them.

    Rows with dates further apart than ``time_window_days`` are never linked (rows without a
    date link to anything).

    Exact by default: blocked matrix products over all pairs, or, with dates, over the rows
    inside each block's time window (rows visited in date order). With ``probes`` set, the
    search is approximate: see :func:`_cell_candidates`. Every reported similarity is exact.

    With an ``engine`` (:mod:`storyclust.engine`) the blocks (or cells) are searched as parallel
    tasks, each keeping its rows' top ``neighbors``; the top k of the union is the top k of the
    parts (ties broken by column), so the edges are exactly those of the local search.
    """
    min_sim = 1.0 - max_distance
    floor = min_sim - _SIM_SLACK  # the matrix products' rounding; exact cosines decide (_top_edges)
    window = time_window_days if (days is not None and time_window_days) else None
    bridge_sim = None if bridge_distance is None else 1.0 - bridge_distance
    if engine is not None:
        rows, cols, sims, bridges = _edges_on(engine, Z, days, min_sim, window, neighbors, block_size, probes,
                                              random_state, bridge_sim)
    else:
        if probes:
            pieces = _cell_candidates(Z, floor, probes, random_state, block_size)
        else:
            pieces = _exact_candidates(Z, days, floor, window, block_size, neighbors=neighbors, bridge_sim=bridge_sim)
        rows, cols, sims, bridges = _top_edges(pieces, Z, min_sim, days, window, neighbors, bridge_sim)
    rows, cols, sims = _with_bridges(Z, rows, cols, sims, bridges)
    rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    return (rows, cols, sims) if return_similarity else (rows, cols)


def _with_bridges(Z: np.ndarray, rows: np.ndarray, cols: np.ndarray, sims: np.ndarray,
                  bridges: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top-k edges plus the bridges they lack (exact cosines), in order of row, similarity, column."""
    b_rows, b_cols = bridges
    if not len(b_rows):
        return rows, cols, sims
    n = len(Z)
    new = ~np.isin(b_rows.astype(np.int64) * n + b_cols, rows.astype(np.int64) * n + cols)
    if not new.any():
        return rows, cols, sims
    rows, cols = np.r_[rows, b_rows[new]], np.r_[cols, b_cols[new]]
    sims = np.r_[sims, _pair_cosines(Z, b_rows[new], b_cols[new])]
    order = np.lexsort((cols, -sims, rows))
    return rows[order], cols[order], sims[order]


def _lowest_per_row(rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row of the pairs, the pair with its lowest column."""
    if not len(rows):
        return rows.astype(np.int64), cols.astype(np.int64)
    order = np.lexsort((cols, rows))
    rows, cols = rows[order], cols[order]
    first = np.r_[True, rows[1:] != rows[:-1]]
    return rows[first].astype(np.int64), cols[first].astype(np.int64)


def _bridge_pairs(Z: np.ndarray, rows: np.ndarray, cols: np.ndarray, sims: np.ndarray, bridge_sim: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's lowest column among the pairs (off the diagonal, inside the window) at exact cosine >=
    ``bridge_sim``; ``sims`` are a matrix product's, so the pairs within its rounding are computed again."""
    near = sims >= bridge_sim - _SIM_SLACK
    rows, cols, sims = rows[near], cols[near], sims[near]
    band = np.flatnonzero(sims < bridge_sim + _SIM_SLACK)
    if len(band):
        ok = np.ones(len(rows), dtype=bool)
        ok[band] = _pair_cosines(Z, rows[band], cols[band]) >= bridge_sim
        rows, cols = rows[ok], cols[ok]
    return _lowest_per_row(rows, cols)


def _top_edges(pieces, Z: np.ndarray, min_sim: float, days: Optional[np.ndarray], window: Optional[float],
               neighbors: int, bridge_sim: Optional[float] = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The edges of ``pieces`` off the diagonal, inside the window and at cosine >= ``min_sim``, top ``neighbors`` per row,
    and ``(rows, cols)`` of each row's bridge (its lowest column at cosine >= ``bridge_sim``; none when None).

    A piece is ``(rows, cols, sims)`` with ``sims`` from a matrix product, whose rounding depends on
    the shapes multiplied and on the BLAS kernel (so on the CPU and its threads). Each piece is cut
    to the pairs that can be in a row's top ``neighbors`` within that rounding, and their cosines
    are computed again pair by pair (:func:`_pair_cosines`): the edges and their similarities are
    then the same whatever blocks, cells, engine or threads found them.
    """
    out, held, bridges = [], 0, []
    for rows, cols, sims in pieces:
        keep = rows != cols
        if window is not None:
            keep &= ~(np.abs(days[rows] - days[cols]) > window)  # NaN (undated) stays linkable
        rows, cols, sims = rows[keep], cols[keep], sims[keep]
        if bridge_sim is not None:
            bridges.append(_bridge_pairs(Z, rows, cols, sims, bridge_sim))
        rows, cols, _ = _top_k_per_row(rows, cols, sims, neighbors, slack=2 * _SIM_SLACK)
        sims = _pair_cosines(Z, rows, cols)
        keep = sims >= min_sim
        out.append((rows[keep], cols[keep], sims[keep]))
        held += int(keep.sum())
        if held > _MAX_HELD_EDGES:  # bound memory on dense corpora: the top k of a union is the top k of parts
            out = [_merge_top(out, neighbors)]
            held = len(out[0][0])
    return (*_merge_top(out, neighbors), _merge_bridges(bridges))


def _merge_bridges(parts) -> tuple[np.ndarray, np.ndarray]:
    """Each row's lowest bridge over ``parts`` (each ``(rows, cols)``)."""
    parts = list(parts)
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return _lowest_per_row(*(np.concatenate(column) for column in zip(*parts)))


def _merge_top(parts, neighbors: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The top ``neighbors`` edges per row of the union of ``parts`` (each ``(rows, cols, exact sims)``)."""
    parts = list(parts)
    if not parts:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float32)
    return _top_k_per_row(*(np.concatenate(column) for column in zip(*parts)), neighbors)


def _pair_cosines(Z: np.ndarray, rows: np.ndarray, cols: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """``Z[rows[i]] . Z[cols[i]]`` for each pair, summed in float64 (float32 out): the same on every path."""
    out = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), chunk):
        r, c = rows[start : start + chunk], cols[start : start + chunk]
        out[start : start + chunk] = np.einsum("ij,ij->i", Z[r], Z[c], dtype=np.float64)  # cast as it sums
    return out


def _edges_on(engine, Z, days, min_sim, window, neighbors, block_size, probes, random_state, bridge_sim=None):
    """:func:`candidate_edges` with the blocks (or cells) searched as ``engine`` tasks, merged on the driver."""
    n = len(Z)
    tasks_wanted = 4 * max(1, engine.parallelism)
    if probes:
        plan = _cell_plan(Z, probes, random_state, block_size)
        cost = np.array([len(r) * len(v) for r, v in zip(*plan)], dtype=np.float64)
        spans = _spans(cost, tasks_wanted)
        parts = engine.map(_cell_task, spans, shared=(Z, days, plan, min_sim, window, neighbors, probes,
                                                      random_state, block_size, bridge_sim))
    else:
        blocks = -(-n // int(np.clip(_BLOCK_FLOATS // max(n, 1), 16, block_size))) if n else 0
        spans = _spans(np.ones(blocks), tasks_wanted)
        parts = engine.map(_block_task, spans, shared=(Z, days, min_sim, window, neighbors, block_size, bridge_sim))
    # each part is exact, off the diagonal and inside the window already
    return (*_merge_top([part[:3] for part in parts], neighbors), _merge_bridges(part[3] for part in parts))


def _spans(cost: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """Contiguous ``(first, stop)`` ranges of the items, about ``parts`` of them, of similar total ``cost``."""
    if not len(cost):
        return []
    edges = np.searchsorted(np.cumsum(cost), np.linspace(0, cost.sum(), parts + 1)[1:-1], side="right")
    bounds = np.unique(np.r_[0, edges, len(cost)])
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _block_task(Z, days, min_sim, window, neighbors, block_size, bridge_sim, span):
    """One engine task of the exact search: the top-k edges (and bridges) of the rows of blocks ``span``."""
    pieces = _exact_candidates(Z, days, min_sim - _SIM_SLACK, window, block_size, blocks=span, neighbors=neighbors,
                               bridge_sim=bridge_sim)
    return _top_edges(pieces, Z, min_sim, days, window, neighbors, bridge_sim)


def _cell_task(Z, days, plan, min_sim, window, neighbors, probes, random_state, block_size, bridge_sim, span):
    """One engine task of the approximate search: the top-k edges (and bridges) found in cells ``span``."""
    pieces = _cell_candidates(Z, min_sim - _SIM_SLACK, probes, random_state, block_size, plan=plan, span=span)
    return _top_edges(pieces, Z, min_sim, days, window, neighbors, bridge_sim)


def _split_groups_on(engine, clusterer: "StoryClusterer", Z, days, groups, rows, cols) -> list[list[np.ndarray]]:
    """``[clusterer._split_group(...) for each group]``, the groups of 2+ rows as ``engine`` tasks (in order)."""
    splitter = StoryClusterer.__new__(StoryClusterer)  # what _split_group reads, without the engine or the data
    splitter.options, splitter.evidence_, splitter.engine = clusterer.options, clusterer.evidence_, None
    splitter.constraints_ = clusterer.constraints_
    splitter.signals_ = clusterer.signals_
    splitter.weights_, splitter.spread_, splitter.anchors_ = clusterer.weights_, clusterer.spread_, clusterer.anchors_
    out: list = [[members] for members in groups]  # a single row is its own story
    multi = [i for i, members in enumerate(groups) if len(members) > 1]
    if multi:
        spans = _spans(np.array([len(groups[i]) ** 2 for i in multi], dtype=np.float64), 4 * max(1, engine.parallelism))
        tasks = [[groups[i] for i in multi[a:b]] for a, b in spans]
        done = engine.map(_split_task, tasks, shared=(splitter, Z, days, rows, cols))
        for i, subs in zip(multi, (subs for part in done for subs in part)):
            out[i] = subs
    return out


def _split_task(splitter: "StoryClusterer", Z, days, rows, cols, groups) -> list[list[np.ndarray]]:
    return [splitter._split_group(Z, days, members, rows, cols, splitter.options.max_distance) for members in groups]


_MAX_HELD_EDGES = 8_000_000  # candidate edges held before trimming each row to its top k
_SIM_SLACK = 1e-4  # far above a float32 matrix product's rounding of a cosine of unit rows (~1e-6)
_BLOCK_FLOATS = 2**25  # similarities computed at once (128 MiB of float32)


def _exact_candidates(Z: np.ndarray, days: Optional[np.ndarray], min_sim: float, window: Optional[float],
                      block_size: int, blocks: Optional[tuple[int, int]] = None, neighbors: Optional[int] = None,
                      bridge_sim: Optional[float] = None):
    """(rows, cols, sims) of every pair at cosine >= min_sim, block by block (within the time window when set).

    With a window the rows are visited undated first, then in date order: a block that holds an
    undated row compares with every row, a block of dated rows with the undated rows and the
    dated rows within ``window`` of its dates (the caller drops the pairs outside the window).
    ``blocks = (first, stop)``: only those blocks (a task of the engine's parallel search).

    ``neighbors``: a row with many more pairs over the threshold than that (the reports of one big
    story are all alike) yields only those that can be among its top ``neighbors`` within the
    products' rounding (:func:`_heavy_rows_cut`): a row meets all its candidates in its one block,
    so the caller's top-k selection (:func:`_top_edges`) keeps the same edges, without sorting a
    big story's n^2 pairs; with ``bridge_sim``, also those that can be its bridge (its lowest column at cosine >=
    ``bridge_sim``)."""
    n = len(Z)
    if window is not None:
        dated = ~np.isnan(days)
        n_undated = int((~dated).sum())
        order = np.argsort(np.where(dated, days, -np.inf), kind="stable")
        undated = order[:n_undated]
        dated_days = days[order[n_undated:]]  # ascending, no NaN: what a binary search may assume
    block_size = int(np.clip(_BLOCK_FLOATS // max(n, 1), 16, block_size))
    starts = range(0, n, block_size)
    for start in (starts if blocks is None else starts[blocks[0] : blocks[1]]):
        if window is None:
            block, cand = np.arange(start, min(start + block_size, n)), None
        else:
            block = order[start : start + block_size]
            cand = None  # a block holding an undated row compares with everything
            if start >= n_undated:  # every row of the block is dated
                bd = days[block]  # ascending
                lo = n_undated + np.searchsorted(dated_days, bd[0] - window, side="left")
                hi = n_undated + np.searchsorted(dated_days, bd[-1] + window, side="right")
                cand = np.concatenate([undated, order[lo:hi]])
        cand_idx = np.arange(n) if cand is None else cand
        S = Z[block] @ Z[cand_idx].T
        hits = S >= min_sim  # one cheap pass; the threshold keeps few entries per row, except in a big story
        if neighbors is not None:
            _heavy_rows_cut(S, hits, neighbors, None if window is None else days[block],
                            None if window is None else days[cand_idx], window,
                            None if bridge_sim is None else (bridge_sim, block, cand_idx))
        r, c = np.nonzero(hits)
        yield block[r], cand_idx[c], S[r, c]


def _heavy_rows_cut(S: np.ndarray, hits: np.ndarray, neighbors: int, row_days: Optional[np.ndarray],
                    col_days: Optional[np.ndarray], window: Optional[float],
                    bridge: Optional[tuple[float, np.ndarray, np.ndarray]] = None) -> None:
    """In place: the rows of ``hits`` with more than 4 x (``neighbors`` + 1) pairs keep only the pairs within
    2 x ``_SIM_SLACK`` of their (``neighbors`` + 1)-th best pair inside the date window (+1: the row itself may
    be among them). Those are the only ones :func:`_top_edges` can keep when the block holds every candidate
    of the row; a row whose candidates span several pieces keeps a superset (its local k-th is no higher).
    ``bridge = (bridge_sim, row ids, column ids)``: each such row also keeps the pairs that can be its bridge:
    its lowest column sure to be at cosine >= ``bridge_sim`` and the lower ones within the rounding of it."""
    heavy = np.flatnonzero(hits.sum(axis=1) > 4 * (neighbors + 1))
    if not len(heavy) or S.shape[1] <= neighbors + 1:
        return
    admissible = hits[heavy]
    if window is not None:  # pairs outside the window are dropped later: they must not set the k-th
        admissible &= ~(np.abs(row_days[heavy][:, None] - col_days[None, :]) > window)
    kth = np.partition(np.where(admissible, S[heavy], -np.inf), -(neighbors + 1), axis=1)[:, -(neighbors + 1)]
    keep = admissible & (S[heavy] >= (kth - 2 * _SIM_SLACK)[:, None])
    if bridge is not None:
        bridge_sim, row_ids, col_ids = bridge
        near = admissible & (S[heavy] >= bridge_sim - _SIM_SLACK) & (col_ids[None, :] != row_ids[heavy][:, None])
        sure = near & (S[heavy] >= bridge_sim + _SIM_SLACK)
        lowest = np.where(sure, col_ids[None, :], np.iinfo(np.int64).max).min(axis=1)
        keep |= near & (col_ids[None, :] <= lowest[:, None])
    hits[heavy] = keep


def _cell_candidates(Z: np.ndarray, min_sim: float, probes: int, random_state: int, block_size: int,
                     plan: Optional[tuple[list, list]] = None, span: Optional[tuple[int, int]] = None):
    """Approximate neighbour search in coarse cells (an inverted-file index, as in FAISS's IVF).

    Spherical k-means splits the rows into ~sqrt(n) cells; each row lives in its nearest
    cell and is compared, exactly, with the rows living in its ``probes`` nearest cells.
    Cost O(n * probes * n/cells * d) = O(n^1.5 * probes * d) instead of O(n^2 * d). A pair is
    missed only when neither row probes the other's cell, which for pairs above the story
    threshold is rare (bench/README.md gives the measured recall).

    ``plan`` (from :func:`_cell_plan`) and ``span = (first, stop)`` of the cells: a task of the
    engine's parallel search.
    """
    residents, visitors = plan if plan is not None else _cell_plan(Z, probes, random_state, block_size)
    cells = range(len(residents))
    for cell in (cells if span is None else cells[span[0] : span[1]]):
        db, queries = residents[cell], visitors[cell]
        if not len(db) or not len(queries):
            continue
        step = max(1, _BLOCK_FLOATS // len(db))
        for start in range(0, len(queries), step):
            q = queries[start : start + step]
            S = Z[q] @ Z[db].T
            r, c = np.nonzero(S >= min_sim)
            yield q[r], db[c], S[r, c]


def rows_near(Q: np.ndarray, q_days: Optional[np.ndarray], D: np.ndarray, d_days: Optional[np.ndarray],
              min_sim: float, window: Optional[float], *, probes: Optional[int] = None,
              random_state: int = 0) -> np.ndarray:
    """Which rows of ``D`` lie at cosine >= ``min_sim`` of some row of ``Q`` (a boolean mask over ``D``).

    Pairs whose dates (float days, NaN: unknown) are both known and further apart than ``window``
    days do not count. Exact by default: blocked matrix products of ``Q`` with all of ``D``, so the
    cost is ``len(Q) x len(D)``, not ``len(D)`` squared. With ``probes`` the rows of ``D`` live in
    ~sqrt(len(D)) coarse cells (spherical k-means, as :func:`_cell_candidates`) and each row of ``Q``
    is compared with the rows of its ``probes`` nearest cells only.
    """
    hit = np.zeros(len(D), dtype=bool)
    if not len(Q) or not len(D):
        return hit
    if probes:
        cells = max(1, min(int(round(np.sqrt(len(D)))), len(D)))
        centroids = _spherical_kmeans(D, cells, random_state)
        probes = min(probes, cells)
        home = np.concatenate([(D[s : s + 4096] @ centroids.T).argmax(axis=1) for s in range(0, len(D), 4096)])
        probed = np.concatenate([np.argpartition(-(Q[s : s + 4096] @ centroids.T), probes - 1, axis=1)[:, :probes]
                                 for s in range(0, len(Q), 4096)])
        residents = _rows_by_cell(home, cells)
        visitors = _rows_by_cell(probed.ravel(), cells, np.repeat(np.arange(len(Q)), probes))
        pieces = zip(visitors, residents)
    else:
        pieces = iter([(np.arange(len(Q)), np.arange(len(D)))])
    dated = window is not None and q_days is not None and d_days is not None
    for queries, db in pieces:
        if not len(queries) or not len(db):
            continue
        step = max(1, _BLOCK_FLOATS // len(db))
        for start in range(0, len(queries), step):
            q = queries[start : start + step]
            r, c = np.nonzero(Q[q] @ D[db].T >= min_sim)
            if dated:
                c = c[~(np.abs(q_days[q[r]] - d_days[db[c]]) > window)]  # NaN (a date unknown) keeps the pair
            hit[db[c]] = True
    return hit


def _cell_plan(Z: np.ndarray, probes: int, random_state: int, block_size: int) -> tuple[list, list]:
    """The coarse cells of :func:`_cell_candidates`: for each cell, the rows living there and the rows probing it."""
    n = len(Z)
    cells = max(1, min(int(round(np.sqrt(n))), n))
    centroids = _spherical_kmeans(Z, cells, random_state)
    probes = min(probes, cells)
    home = np.empty(n, dtype=np.int64)
    probed = np.empty((n, probes), dtype=np.int64)
    for start in range(0, n, block_size):
        S = Z[start : start + block_size] @ centroids.T
        home[start : start + block_size] = S.argmax(axis=1)
        probed[start : start + block_size] = np.argpartition(-S, probes - 1, axis=1)[:, :probes]
    residents = _rows_by_cell(home, cells)
    visitors = _rows_by_cell(probed.ravel(), cells, np.repeat(np.arange(n), probes))
    return residents, visitors


def _rows_by_cell(cell_of: np.ndarray, cells: int, rows: Optional[np.ndarray] = None) -> list[np.ndarray]:
    """For each cell, the ``rows`` (default: positions) whose ``cell_of`` entry is that cell."""
    rows = np.arange(len(cell_of)) if rows is None else rows
    order = np.argsort(cell_of, kind="stable")
    bounds = np.searchsorted(cell_of[order], np.arange(cells + 1))
    return [rows[order[bounds[c] : bounds[c + 1]]] for c in range(cells)]


def _spherical_kmeans(Z: np.ndarray, k: int, random_state: int, sample: int = 20000, iterations: int = 10) -> np.ndarray:
    """k unit centroids from cosine k-means on a sample of the rows of Z (reproducible with ``random_state``)."""
    from scipy.sparse import csr_matrix

    rng = np.random.default_rng(random_state)
    X = Z if len(Z) <= sample else Z[np.sort(rng.choice(len(Z), sample, replace=False))]
    centroids = X[rng.choice(len(X), k, replace=False)].copy()
    for _ in range(iterations):
        assign = (X @ centroids.T).argmax(axis=1)
        members = csr_matrix((np.ones(len(X), np.float32), (assign, np.arange(len(X)))), shape=(k, len(X)))
        sums = np.asarray(members @ X)
        filled = np.asarray(members.sum(axis=1)).ravel() > 0
        centroids[filled] = _unit(sums[filled])  # an empty cell keeps its old centroid
    return centroids


def _top_k_per_row(rows: np.ndarray, cols: np.ndarray, sims: np.ndarray, k: int,
                   slack: Optional[float] = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep, for each row, the k edges of highest similarity (ties: lower column first).

    With ``slack``, also keep every edge within ``slack`` of its row's k-th similarity: those whose
    rank could change when the similarities are known only to within ``slack / 2``."""
    order = np.lexsort((cols, -sims, rows))
    rows, cols, sims = rows[order], cols[order], sims[order]
    if not len(rows):
        return rows, cols, sims
    first = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
    sizes = np.diff(np.r_[first, len(rows)])
    rank = np.arange(len(rows)) - np.repeat(first, sizes)
    keep = rank < k
    if slack is not None:
        kth = sims[first + np.minimum(k, sizes) - 1]
        keep |= sims >= np.repeat(kth, sizes) - slack
    return rows[keep], cols[keep], sims[keep]


def _components(n: int, rows: np.ndarray, cols: np.ndarray) -> list[np.ndarray]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    return np.split(order, bounds) if n else []


def _group_distances(Zg: np.ndarray, days: Optional[np.ndarray], window: Optional[float],
                     bonus: Optional[np.ndarray] = None, spread: Optional[list] = None) -> np.ndarray:
    """1 - cosine (- ``bonus``: the shared-number term, or what a learnt pair score adds to the cosine),
    clipped to [0, 2]; 2 across the time window.

    ``spread``: for a summary row (:func:`summarize`), the sorted days of its dated rows (None for any other
    row): the share of its rows within the time window of the other row's date takes the summary's distance,
    the rest stand at 2, as they would one by one."""
    S = Zg.astype(np.float64) @ Zg.T.astype(np.float64)
    if bonus is not None:
        S += bonus
    D = np.clip(1.0 - S, 0.0, 2.0)
    if days is not None and window:
        far = np.abs(days[:, None] - days[None, :]) > window
        if spread is None or all(x is None for x in spread):
            D[far] = 2.0
        else:
            near = _near_share(days, spread, window, ~far)
            D = near * D + (1.0 - near) * 2.0
    np.fill_diagonal(D, 0.0)
    return D


def _near_share(days: np.ndarray, spread: list, window: float, near: np.ndarray) -> np.ndarray:
    """The share of row pairs within ``window`` days of each other, for rows and summaries of rows: ``near``
    (the rows' own test) where neither side summarises; a summary's share of dated rows within the window of
    the other side's date (an undated side is near), averaged over both directions between two summaries."""
    share = near.astype(np.float64)
    pooled = np.array([x is not None for x in spread])
    undated = np.isnan(days)
    for p in np.flatnonzero(pooled):
        member_days = spread[p]
        inside = (np.searchsorted(member_days, days + window, side="right")
                  - np.searchsorted(member_days, days - window, side="left"))
        share[p] = np.where(undated, 1.0, inside / len(member_days))
    both = pooled[:, None] & pooled[None, :]
    one = pooled[:, None] & ~pooled[None, :]
    return np.where(both, (share + share.T) / 2.0, np.where(one, share, np.where(one.T, share.T, share)))


def _average_linkage(D: np.ndarray, threshold: float, cannot: Optional[np.ndarray] = None,
                     weights: Optional[np.ndarray] = None) -> list[np.ndarray]:
    """Flat clusters of average linkage cut at ``threshold``, as index arrays.

    ``cannot`` (pairs of positions): a cluster that would hold such a pair is cut further down its
    tree, at the merge that joined the two sides, until no cluster holds one. ``weights``: how many
    rows each position stands for (:func:`weighted_average_tree`); None: one each."""
    m = len(D)
    cannot = None if cannot is None or not len(cannot) else cannot
    if m == 1:
        return [np.arange(1)]
    if m == 2:
        together = D[0, 1] <= threshold and cannot is None
        return [np.arange(2)] if together else [np.arange(1), np.arange(1, 2)]
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    if weights is None:
        tree = linkage(squareform(D, checks=False), method="average")
    else:
        tree = weighted_average_tree(D, weights)
    if cannot is None:
        flat = fcluster(tree, t=threshold, criterion="distance")
        return [np.flatnonzero(flat == c) for c in np.unique(flat)]
    return _constrained_cut(tree, m, threshold, cannot)


def weighted_average_tree(D: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average linkage (UPGMA) of ``m`` positions that each stand for ``weights[i]`` rows, as a scipy linkage
    matrix (``fcluster`` reads it).

    ``D[i, j]`` is the mean distance between the rows of positions i and j. Merging clusters a and b gives
    ``d(k, a+b) = (w_a d(k, a) + w_b d(k, b)) / (w_a + w_b)``: the linkage of the rows themselves whenever
    each position's rows would have merged first. With every weight 1 it is scipy's ``method="average"``.
    Nearest-neighbour chain, O(m^2) time and one m x m matrix."""
    m = len(D)
    d = np.array(D, dtype=np.float64)
    np.fill_diagonal(d, np.inf)
    size = np.asarray(weights, dtype=np.float64).copy()
    live = np.ones(m, dtype=bool)
    merges: list[tuple[int, int, float]] = []  # (position kept, position merged in, height)
    chain: list[int] = []
    for _ in range(m - 1):
        while True:
            if not chain:
                chain.append(int(np.flatnonzero(live)[0]))
            a = chain[-1]
            b = int(np.argmin(d[a]))
            if len(chain) > 1 and d[a, chain[-2]] <= d[a, b]:
                b = chain[-2]  # ties go back down the chain: it always ends in a reciprocal pair
            if len(chain) > 1 and b == chain[-2]:
                break
            chain.append(b)
        chain.pop()
        chain.pop()
        height = float(d[a, b])
        keep, gone = min(a, b), max(a, b)
        row = (size[keep] * d[keep] + size[gone] * d[gone]) / (size[keep] + size[gone])
        row[keep] = row[gone] = np.inf
        d[keep], d[:, keep] = row, row
        d[gone], d[:, gone] = np.inf, np.inf
        size[keep] += size[gone]
        merges.append((keep, gone, height))
        live[gone] = False
    # scipy's format: merges in order of height, each child a leaf (< m) or an earlier merge (m + its row)
    order = sorted(range(len(merges)), key=lambda k: merges[k][2])  # stable: a child before its equal parent
    tree = np.zeros((m - 1, 4), dtype=np.float64)
    node = np.arange(m)  # the tree node each position stands for
    count = np.ones(m, dtype=np.int64)  # positions under it (the matrix's fourth column)
    for row_no, k in enumerate(order):
        keep, gone, height = merges[k]
        left, right = sorted((int(node[keep]), int(node[gone])))
        tree[row_no] = (left, right, height, count[keep] + count[gone])
        count[keep] += count[gone]
        node[keep] = m + row_no
    return tree


def _constrained_cut(tree: np.ndarray, m: int, threshold: float, cannot: np.ndarray) -> list[np.ndarray]:
    """The clusters of ``fcluster(tree, threshold, "distance")``, with any cluster holding a ``cannot``
    pair replaced by its two subtrees (again and again): walked from the root, no recursion."""
    partner: dict[int, set[int]] = {}
    for a, b in cannot.tolist():
        partner.setdefault(a, set()).add(b)
        partner.setdefault(b, set()).add(a)
    leaves: dict[int, np.ndarray] = {}

    def leaves_of(node: int) -> np.ndarray:
        found = leaves.get(node)
        if found is None:
            stack, out = [node], []
            while stack:
                k = stack.pop()
                if k < m:
                    out.append(k)
                else:
                    stack += [int(tree[k - m, 0]), int(tree[k - m, 1])]
            found = leaves[node] = np.array(sorted(out))
        return found

    clusters, stack = [], [2 * m - 2]  # the root
    while stack:
        node = stack.pop()
        if node < m:
            clusters.append(np.array([node]))
            continue
        members = leaves_of(node)
        inside = set(members.tolist())
        held = any(partner.get(x, set()) & inside for x in members.tolist())
        if tree[node - m, 2] <= threshold and not held:
            clusters.append(members)
        else:
            stack += [int(tree[node - m, 1]), int(tree[node - m, 0])]
    return sorted(clusters, key=lambda c: int(c[0]))


def _inside(pairs: Optional[np.ndarray], part: np.ndarray, m: int) -> Optional[np.ndarray]:
    """The ``pairs`` (positions among m) with both ends in ``part``, as positions in ``part``."""
    if pairs is None or not len(pairs):
        return None
    position = np.full(m, -1)
    position[part] = np.arange(len(part))
    inner = position[pairs]
    return inner[(inner >= 0).all(axis=1)]


def _join_linked(parts: list[np.ndarray], must: np.ndarray, m: int) -> list[np.ndarray]:
    """``parts`` with any two parts holding a must-link pair joined."""
    part_of = np.empty(m, dtype=np.int64)
    for k, part in enumerate(parts):
        part_of[part] = k
    sets: DisjointSets[int] = DisjointSets()
    for a, b in must.tolist():
        sets.union(int(part_of[a]), int(part_of[b]))
    joined: dict[int, list[np.ndarray]] = {}
    for k, part in enumerate(parts):
        joined.setdefault(sets.find(k), []).append(part)
    return [np.sort(np.concatenate(ps)) for ps in joined.values()]


@dataclass(frozen=True)
class Constraints:
    """Pairs of rows (``(k, 2)`` int64 arrays) an editor put in one story (``must``) or apart (``cannot``)."""

    must: np.ndarray
    cannot: np.ndarray

    @classmethod
    def of(cls, n: int, must_link: Sequence[tuple[int, int]], cannot_link: Sequence[tuple[int, int]]
           ) -> Optional["Constraints"]:
        """None when there is no constraint; ValueError for a row out of range or a row paired with itself."""
        pairs = [np.asarray(list(p), dtype=np.int64).reshape(-1, 2) for p in (must_link, cannot_link)]
        if not any(len(p) for p in pairs):
            return None
        for p in pairs:
            if len(p) and (p.min() < 0 or p.max() >= n or (p[:, 0] == p[:, 1]).any()):
                raise ValueError("constraint pairs must name two different rows of X")
        return cls(*pairs)

    def within(self, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(must, cannot)`` pairs with both rows in ``members``, as positions in ``members``."""
        position = {int(x): k for k, x in enumerate(members)}
        out = []
        for pairs in (self.must, self.cannot):
            local = [(position[a], position[b]) for a, b in pairs.tolist() if a in position and b in position]
            out.append(np.asarray(local, dtype=np.int64).reshape(-1, 2))
        return out[0], out[1]


def _hdbscan_parts(D: np.ndarray, opts: ClusterOptions) -> list[np.ndarray]:
    """HDBSCAN clusters of one candidate group; each noise point is its own part."""
    import hdbscan

    size = min(opts.min_cluster_size, len(D))
    labels = hdbscan.HDBSCAN(
        metric="precomputed", min_cluster_size=max(size, 2), min_samples=opts.min_samples, allow_single_cluster=True
    ).fit_predict(D)
    parts = [np.flatnonzero(labels == c) for c in np.unique(labels[labels >= 0])]
    parts += [np.array([i]) for i in np.flatnonzero(labels < 0)]
    return parts
