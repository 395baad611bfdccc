"""Score a story clustering against gold labels.

Three kinds of gold are supported:

* **Labels**: two aligned sequences, gold story and predicted story per item
  (:func:`evaluate_labels`): pairwise precision/recall/F1, B-cubed
  precision/recall/F1 (Bagga & Baldwin, 1998) and the adjusted Rand index.
* **Articles JSONL with a ``story`` field** (:func:`evaluate_jsonl`): the
  articles are clustered by the default pipeline, or an existing ``storyclust
  cluster`` output is read, and scored with :func:`evaluate_labels`.
* **SemEval-2022 Task 8 pairs** (:func:`load_semeval`, :func:`score_semeval_pairs`,
  :func:`evaluate_semeval`): every distinct article of the CSV is clustered
  together and each labelled pair is asked "same story?".

Conventions, shared by every function here:

* **Noise is singletons.** A label of ``-1`` (the number HDBSCAN uses for
  noise), ``None`` or NaN means "in no cluster": each such item is its own
  singleton cluster, never one big cluster of all the noise. This holds for
  gold and predicted labels alike.
* **Vacuous ratios are 1.0.** Precision with no predicted same-story pairs,
  or recall with no gold same-story pairs, is 1.0 (nothing was claimed
  wrongly / nothing was missed); F1 is then computed as usual, so predicting
  all singletons against a gold with real stories gives P = 1, R = 0, F1 = 0.

All label metrics are computed from the contingency table in O(n), never
over the O(n^2) pairs. Importing this module does not import torch: the
embedder and clusterer are imported only inside :func:`evaluate_semeval` and
:func:`evaluate_jsonl` when they have to cluster.
"""
from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np
import pandas as pd

from .disjoint import DisjointSets
from .schema import iter_jsonl, record_to_article
from .types import Article, Story

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .cluster import ClusterOptions, LanguageMeans
    from .embed import Embedder

log = logging.getLogger(__name__)

#: The label that means "noise: a cluster of its own" (HDBSCAN's convention).
NOISE = -1

#: Default SemEval thresholds on ``Overall`` (1 = very similar .. 4 = very dissimilar).
SEMEVAL_SAME_MAX = 1.5
SEMEVAL_DIFF_MIN = 3.0

#: Names accepted by ``split=`` in :func:`select_split` / :func:`evaluate_semeval`.
SPLITS = ("dev", "check")

Similarity = Union[Mapping[tuple[str, str], float], Callable[[str, str], float]]


# --------------------------------------------------------------------------- labels


def _is_noise(label: Hashable) -> bool:
    if label is None:
        return True
    if isinstance(label, (float, np.floating)):
        return math.isnan(label) or label == NOISE
    return isinstance(label, (int, np.integer)) and not isinstance(label, bool) and label == NOISE


def singletonize(labels: Sequence[Hashable]) -> np.ndarray:
    """Map labels to dense integer codes, giving every noise item its own code.

    ``-1``, ``None`` and NaN are noise (see the module docstring). The result is an
    int64 array of the same length; equal codes mean the same cluster.
    """
    codes = np.empty(len(labels), dtype=np.int64)
    seen: dict[Hashable, int] = {}
    next_code = 0
    for i, label in enumerate(labels):
        if _is_noise(label):
            codes[i] = next_code
            next_code += 1
            continue
        code = seen.get(label)
        if code is None:
            code = seen[label] = next_code
            next_code += 1
        codes[i] = code
    return codes


def _codes_pair(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> tuple[np.ndarray, np.ndarray]:
    if len(gold) != len(pred):
        raise ValueError(f"gold has {len(gold)} labels but pred has {len(pred)}")
    if len(gold) == 0:
        raise ValueError("no items to evaluate")
    return singletonize(gold), singletonize(pred)


def _cell_sizes(*code_arrays: np.ndarray) -> np.ndarray:
    """Sizes of the non-empty cells of the contingency table of the given codings."""
    stacked = np.stack(code_arrays, axis=1)
    _, counts = np.unique(stacked, axis=0, return_counts=True)
    return counts.astype(np.int64)


def _pairs(sizes: np.ndarray) -> int:
    """Sum of C(s, 2) over cluster sizes: the number of same-cluster pairs."""
    return int((sizes * (sizes - 1) // 2).sum())


def _ratio(num: float, den: float) -> float:
    return 1.0 if den == 0 else float(num) / float(den)


def _f1(precision: float, recall: float) -> float:
    total = precision + recall
    return 0.0 if total == 0 else 2.0 * precision * recall / total


def _prf(true_pos: int, predicted: int, actual: int) -> dict:
    precision = _ratio(true_pos, predicted)
    recall = _ratio(true_pos, actual)
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def pairwise_scores(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> dict:
    """Pairwise precision, recall and F1 over all pairs of items.

    A pair is a positive when both items share a cluster. Precision is the
    share of predicted same-cluster pairs that are same-story in gold, recall
    the share of gold same-story pairs that the prediction puts together.
    Returns ``{"precision", "recall", "f1", "true_pairs", "pred_pairs", "gold_pairs"}``.
    """
    g, p = _codes_pair(gold, pred)
    true_pos = _pairs(_cell_sizes(g, p))
    pred_pairs = _pairs(_cell_sizes(p))
    gold_pairs = _pairs(_cell_sizes(g))
    return {**_prf(true_pos, pred_pairs, gold_pairs),
            "true_pairs": true_pos, "pred_pairs": pred_pairs, "gold_pairs": gold_pairs}


def cross_lingual_pairwise_scores(gold: Sequence[Hashable], pred: Sequence[Hashable],
                                  langs: Sequence[Optional[str]]) -> dict:
    """:func:`pairwise_scores` restricted to pairs of items in different languages.

    A pair counts when its two languages differ; unknown languages (``None``)
    are one more language value. Computed in O(n) as "all pairs minus the
    pairs inside one language".
    """
    g, p = _codes_pair(gold, pred)
    if len(langs) != len(g):
        raise ValueError(f"langs has {len(langs)} entries but there are {len(g)} labels")
    lang = pd.factorize(pd.Series(list(langs), dtype=object), use_na_sentinel=False)[0].astype(np.int64)
    true_pos = _pairs(_cell_sizes(g, p)) - _pairs(_cell_sizes(g, p, lang))
    pred_pairs = _pairs(_cell_sizes(p)) - _pairs(_cell_sizes(p, lang))
    gold_pairs = _pairs(_cell_sizes(g)) - _pairs(_cell_sizes(g, lang))
    return {**_prf(true_pos, pred_pairs, gold_pairs),
            "true_pairs": true_pos, "pred_pairs": pred_pairs, "gold_pairs": gold_pairs}


def bcubed_scores(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> dict:
    """B-cubed precision, recall and F1 (Bagga & Baldwin, 1998).

    Per item, precision is the share of its predicted cluster that shares its
    gold story, recall the share of its gold story found in its predicted
    cluster; both are averaged over items. With contingency cell sizes
    ``n_ij``, gold sizes ``a_i`` and predicted sizes ``b_j``:
    ``P = sum(n_ij^2 / b_j) / n`` and ``R = sum(n_ij^2 / a_i) / n``.
    Returns ``{"precision", "recall", "f1"}``.
    """
    g, p = _codes_pair(gold, pred)
    cells = np.stack([g, p], axis=1)
    uniq, n_ij = np.unique(cells, axis=0, return_counts=True)
    a = np.bincount(g)[uniq[:, 0]]
    b = np.bincount(p)[uniq[:, 1]]
    n = len(g)
    sq = n_ij.astype(np.float64) ** 2
    precision = float((sq / b).sum() / n)
    recall = float((sq / a).sum() / n)
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def evaluate_labels(gold: Sequence[Hashable], pred: Sequence[Hashable],
                    langs: Optional[Sequence[Optional[str]]] = None) -> dict:
    """All label metrics in one flat dict.

    Keys: ``n``, ``gold_clusters``, ``pred_clusters`` (singletons included),
    ``bcubed_precision``, ``bcubed_recall``, ``bcubed_f1``,
    ``pairwise_precision``, ``pairwise_recall``, ``pairwise_f1``, ``ari``
    (:func:`sklearn.metrics.adjusted_rand_score` on the singletonised labels).
    With ``langs`` (one language per item) also ``cross_lingual_pairwise_precision``,
    ``cross_lingual_pairwise_recall``, ``cross_lingual_pairwise_f1`` and
    ``cross_lingual_gold_pairs``.
    """
    from sklearn.metrics import adjusted_rand_score

    g, p = _codes_pair(gold, pred)
    pw = pairwise_scores(g, p)
    b3 = bcubed_scores(g, p)
    result = {
        "n": int(len(g)),
        "gold_clusters": int(g.max()) + 1,
        "pred_clusters": int(p.max()) + 1,
        "bcubed_precision": b3["precision"],
        "bcubed_recall": b3["recall"],
        "bcubed_f1": b3["f1"],
        "pairwise_precision": pw["precision"],
        "pairwise_recall": pw["recall"],
        "pairwise_f1": pw["f1"],
        "ari": float(adjusted_rand_score(g, p)),
    }
    if langs is not None:
        xl = cross_lingual_pairwise_scores(g, p, langs)
        result.update({
            "cross_lingual_pairwise_precision": xl["precision"],
            "cross_lingual_pairwise_recall": xl["recall"],
            "cross_lingual_pairwise_f1": xl["f1"],
            "cross_lingual_gold_pairs": xl["gold_pairs"],
        })
    return result


def labels_to_story_of(ids: Sequence[str], labels: Sequence[Hashable]) -> dict[str, str]:
    """``{id: story key}`` from aligned ids and cluster labels; noise items get keys of their own."""
    codes = singletonize(labels)
    return {str(i): str(c) for i, c in zip(ids, codes)}


def stories_to_story_of(stories: Sequence[Story]) -> dict[str, str]:
    """``{article id: story_id}`` for every member of every story (first story wins on a repeat)."""
    story_of: dict[str, str] = {}
    for story in stories:
        for member in story.members:
            story_of.setdefault(member.article.id, story.story_id)
    return story_of


# --------------------------------------------------------------------------- SemEval pairs


@dataclass(frozen=True)
class SemEvalData:
    """A SemEval-2022 Task 8 pairs file, as articles plus a pairs table.

    ``articles`` holds every distinct article, sorted by id (``lang`` from
    ``lang1``/``lang2``, ``title`` None, ``text`` the given title + body).
    ``pairs`` has one row per pair: ``pair_id``, ``id1``, ``id2``, ``lang1``,
    ``lang2``, ``overall`` (float, 1 = very similar .. 4 = very dissimilar)
    and ``cross_lingual`` (bool: ``lang1 != lang2``).
    """

    articles: list[Article]
    pairs: pd.DataFrame


def load_semeval(csv_path: str) -> SemEvalData:
    """Read a SemEval-2022 Task 8 CSV (columns pair_id, lang1, lang2, text1, text2, Overall, ...).

    An article that appears in several pairs keeps the text of its last
    occurrence (some copies in the published file are truncated differently;
    the last one is what the reference embeddings were computed from).
    Raises ValueError when a required column is missing or a pair_id is not ``<id1>_<id2>``.
    """
    df = pd.read_csv(csv_path, dtype={"pair_id": str, "lang1": str, "lang2": str,
                                      "text1": str, "text2": str})
    missing = {"pair_id", "lang1", "lang2", "text1", "text2", "Overall"} - set(df.columns)
    if missing:
        raise ValueError(f"{csv_path}: missing column(s) {', '.join(sorted(missing))}")
    parts = df["pair_id"].str.split("_")
    bad = parts.str.len() != 2
    if bad.any():
        raise ValueError(f"{csv_path}: pair_id {df['pair_id'][bad].iloc[0]!r} is not '<id1>_<id2>'")
    id1, id2 = parts.str[0], parts.str[1]
    texts: dict[str, tuple[str, str]] = {}
    for a, b, t1, t2, l1, l2 in zip(id1, id2, df["text1"], df["text2"], df["lang1"], df["lang2"]):
        texts[a] = ("" if pd.isna(t1) else t1, l1)
        texts[b] = ("" if pd.isna(t2) else t2, l2)
    articles = [Article(id=i, text=texts[i][0], lang=texts[i][1]) for i in sorted(texts)]
    pairs = pd.DataFrame({
        "pair_id": df["pair_id"],
        "id1": id1,
        "id2": id2,
        "lang1": df["lang1"],
        "lang2": df["lang2"],
        "overall": df["Overall"].astype(float),
        "cross_lingual": (df["lang1"] != df["lang2"]).to_numpy(),
    })
    return SemEvalData(articles=articles, pairs=pairs)


def select_split(pairs: pd.DataFrame, split: Optional[str]) -> pd.DataFrame:
    """The pairs of one deterministic half: ``"dev"``, ``"check"``, or all of them for None/``"all"``.

    A pair is in ``dev`` when the first byte of ``sha1(pair_id)`` is below 128,
    else in ``check``: stable across runs, machines and file orderings.
    """
    if split in (None, "all"):
        return pairs
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, 'all' or None, not {split!r}")
    in_dev = np.array([hashlib.sha1(pid.encode("utf-8")).digest()[0] < 128 for pid in pairs["pair_id"]],
                      dtype=bool)
    keep = in_dev if split == "dev" else ~in_dev
    return pairs[keep].reset_index(drop=True)


def lookup_similarity(similarity: Similarity, a: str, b: str) -> float:
    """The similarity of articles ``a`` and ``b``: ``similarity`` is a function of two ids or a pair mapping."""
    if callable(similarity):
        return float(similarity(a, b))
    if (a, b) in similarity:
        return float(similarity[(a, b)])
    return float(similarity[(b, a)])


def _correlations(sim: np.ndarray, overall: np.ndarray) -> tuple[Optional[float], Optional[float]]:
    """Pearson and Spearman of ``sim`` with ``-overall``; None when undefined (under 2 pairs, constant input)."""
    from scipy.stats import pearsonr, spearmanr

    if len(sim) < 2 or np.ptp(sim) == 0 or np.ptp(overall) == 0:
        return None, None
    return float(pearsonr(sim, -overall)[0]), float(spearmanr(sim, -overall)[0])


def _score_subset(overall: np.ndarray, same_pred: np.ndarray, sim: Optional[np.ndarray],
                  same_max: float, diff_min: float) -> dict:
    gold_same = overall <= same_max
    gold_diff = overall >= diff_min
    decided = gold_same | gold_diff
    true_pos = int((same_pred & gold_same).sum())
    predicted = int((same_pred & decided).sum())
    actual = int(gold_same.sum())
    pearson, spearman = _correlations(sim, overall) if sim is not None else (None, None)
    return {
        "pairs": int(len(overall)),
        "same": actual,
        "different": int(gold_diff.sum()),
        "ambiguous": int((~decided).sum()),
        "predicted_same": predicted,
        "true_positives": true_pos,
        **_prf(true_pos, predicted, actual),
        "pearson": pearson,
        "spearman": spearman,
    }


def score_semeval_pairs(pairs: pd.DataFrame, story_of: Mapping[str, str],
                        similarity: Optional[Similarity] = None, *,
                        same_max: float = SEMEVAL_SAME_MAX, diff_min: float = SEMEVAL_DIFF_MIN) -> dict:
    """Score a clustering on labelled pairs.

    Pairs with ``overall <= same_max`` are gold "same story", ``overall >=
    diff_min`` gold "different"; pairs in between are left out of precision
    and recall (but not of the correlations). A pair is predicted "same" when
    ``story_of[id1] == story_of[id2]``; an id absent from ``story_of`` is a
    singleton. ``similarity`` (a ``{(id1, id2): float}`` mapping, looked up in
    either order, or a callable) gives the system's similarity per pair,
    correlated (Pearson, Spearman) with ``-overall`` over all pairs.

    Returns ``{"same_max", "diff_min", "all": {...}, "cross_lingual": {...}}``
    where each subset has ``pairs``, ``same``, ``different``, ``ambiguous``,
    ``predicted_same`` (among the non-ambiguous pairs), ``true_positives``,
    ``precision``, ``recall``, ``f1``, ``pearson``, ``spearman`` (None when
    no similarity is given or it is undefined).
    """
    if not same_max < diff_min:
        raise ValueError(f"same_max ({same_max}) must be below diff_min ({diff_min})")
    id1 = pairs["id1"].astype(str).tolist()
    id2 = pairs["id2"].astype(str).tolist()
    same_pred = np.array([a in story_of and b in story_of and story_of[a] == story_of[b]
                          for a, b in zip(id1, id2)], dtype=bool)
    overall = pairs["overall"].to_numpy(dtype=float)
    cross = pairs["cross_lingual"].to_numpy(dtype=bool)
    sim = None
    if similarity is not None:
        sim = np.array([lookup_similarity(similarity, a, b) for a, b in zip(id1, id2)], dtype=float)
    return {
        "same_max": same_max,
        "diff_min": diff_min,
        "all": _score_subset(overall, same_pred, sim, same_max, diff_min),
        "cross_lingual": _score_subset(overall[cross], same_pred[cross],
                                       None if sim is None else sim[cross], same_max, diff_min),
    }


class CosineLookup:
    """Cosine similarity between two ids' rows of a matrix (rows L2-normalised once)."""

    def __init__(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids but {len(vectors)} vectors")
        v = np.asarray(vectors, dtype=np.float64)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        self._unit = v / np.where(norms == 0, 1.0, norms)
        self._row = {str(i): k for k, i in enumerate(ids)}

    def __call__(self, a: str, b: str) -> float:
        return float(self._unit[self._row[a]] @ self._unit[self._row[b]])


def pipeline_language_means(embedder: Optional["Embedder"],
                            cluster_options: Optional["ClusterOptions"] = None) -> Optional["LanguageMeans"]:
    """The language means ``cluster_articles(articles, embedder, options=cluster_options)`` starts from."""
    from .pipeline import starting_language_means

    return starting_language_means(embedder, cluster_options)


def clustering_space(articles: Sequence[Article], embeddings: np.ndarray,
                     cluster_options: Optional["ClusterOptions"] = None,
                     language_means: Optional["LanguageMeans"] = None) -> np.ndarray:
    """The unit vectors the clusterer compares: its language-neutral space for these articles.

    Same as ``StoryClusterer(cluster_options, language_means=language_means).fit(embeddings, langs).neutral_``
    without the clustering.
    """
    from .cluster import StoryClusterer

    clusterer = StoryClusterer(cluster_options, language_means=language_means)
    langs = [a.lang for a in articles]
    clusterer.update_language_means(embeddings, langs)
    return clusterer.neutralize(embeddings, langs)


def evaluate_semeval(csv_path: str, embedder: Optional["Embedder"] = None, *,
                     embeddings: Optional[np.ndarray] = None,
                     cluster_options: Optional["ClusterOptions"] = None,
                     split: Optional[str] = None) -> dict:
    """Cluster every article of a SemEval pairs CSV together and score the pairs.

    Embeds the articles with :func:`storyclust.embed.embed_articles` (with
    ``embedder``, or the default one) unless ``embeddings`` (rows aligned with
    ``load_semeval(csv_path).articles``) are given, clusters them all as
    :func:`storyclust.pipeline.cluster_articles` does with that embedder (with
    ``embeddings`` and no ``embedder``: without the model's reference language
    means), and scores the pairs of ``split`` (see :func:`select_split`) with
    :func:`score_semeval_pairs`, using the cosine in the clustering space as
    the pair similarity. The result also carries ``articles``, ``stories``,
    ``split`` and ``csv``.
    """
    from .pipeline import cluster_articles

    data = load_semeval(csv_path)
    if embeddings is None:
        from .embed import embed_articles, load_embedder

        embedder = embedder if embedder is not None else load_embedder()
        embeddings = embed_articles(data.articles, embedder)
    embeddings = np.asarray(embeddings)
    if len(embeddings) != len(data.articles):
        raise ValueError(f"{len(embeddings)} embeddings for {len(data.articles)} articles")
    means = pipeline_language_means(embedder, cluster_options)
    stories = cluster_articles(data.articles, embeddings=embeddings, options=cluster_options, language_means=means)
    space = clustering_space(data.articles, embeddings, cluster_options, means)
    similarity = CosineLookup([a.id for a in data.articles], space)
    scores = score_semeval_pairs(select_split(data.pairs, split), stories_to_story_of(stories), similarity)
    return {"csv": str(csv_path), "split": split or "all", "articles": len(data.articles),
            "stories": sum(1 for s in stories if s.size > 1), **scores}


# --------------------------------------------------------------------------- JSONL gold


@dataclass(frozen=True)
class GoldArticles:
    """Articles of a gold JSONL file with their gold story (None: a story of its own)."""

    articles: list[Article]
    stories: list[Optional[str]]
    skipped: int  # lines that were not usable articles (malformed, no text, no id, repeated id)


def load_gold_jsonl(path: str) -> GoldArticles:
    """Read articles with a gold ``story`` field from a JSONL file.

    Every record that :func:`storyclust.schema.record_to_article` accepts and
    that has an ``id`` is kept; records of another ``type`` (stories,
    rejections) are ignored; malformed lines, records without id or text, and
    repeated ids are skipped with a warning. A missing or null ``story`` makes
    the article a gold story of its own.
    """
    articles: list[Article] = []
    stories: list[Optional[str]] = []
    seen: set[str] = set()
    skipped = 0
    with open(path, encoding="utf-8") as fh:
        for loc, record, error in iter_jsonl(fh, str(path)):
            if record is not None and record.get("type", "article") != "article":
                continue
            try:
                if error is not None:
                    raise ValueError(error)
                article = record_to_article(record)
                if not article.id:
                    raise ValueError("record has no 'id'")
                if article.id in seen:
                    raise ValueError(f"repeated id {article.id!r}")
            except ValueError as exc:
                log.warning("%s: skipped: %s", loc, exc)
                skipped += 1
                continue
            seen.add(article.id)
            articles.append(article)
            story = record.get("story")
            stories.append(None if story is None or story == "" else str(story))
    return GoldArticles(articles=articles, stories=stories, skipped=skipped)


def load_pred_stories(path: str) -> dict[str, str]:
    """``{article id: story_id}`` from a stories JSONL as written by ``storyclust cluster``.

    Only ``type: story`` records (or records with an ``articles`` list and no
    type) are read; an id in several stories keeps its first story (warned).
    """
    story_of: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for loc, record, error in iter_jsonl(fh, str(path)):
            if error is not None:
                log.warning("%s: skipped: %s", loc, error)
                continue
            if record.get("type", "story") != "story" or not isinstance(record.get("articles"), list):
                continue
            story_id = str(record.get("story_id", loc))
            for member in record["articles"]:
                aid = member.get("id") if isinstance(member, dict) else None
                if aid is None:
                    continue
                if str(aid) in story_of:
                    log.warning("%s: article %r is already in story %r", loc, aid, story_of[str(aid)])
                    continue
                story_of[str(aid)] = story_id
    return story_of


def evaluate_jsonl(gold_path: str, stories: Optional[Sequence[Story]] = None, pred_path: Optional[str] = None,
                   *, embedder: Optional["Embedder"] = None,
                   cluster_options: Optional["ClusterOptions"] = None) -> dict:
    """Score a clustering of the articles in ``gold_path`` (JSONL with a ``story`` field).

    The prediction is, in order of preference: the stories in ``pred_path``
    (a ``storyclust cluster`` output), the given ``stories``, or a fresh
    clustering of the gold articles with :func:`storyclust.pipeline.cluster_articles`
    (``embedder`` or the default one, ``cluster_options``). Gold articles
    absent from the prediction are singletons. Returns :func:`evaluate_labels`
    (with cross-lingual pairwise scores) plus ``skipped`` (unusable gold
    lines) and ``missing_from_pred``.
    """
    gold = load_gold_jsonl(gold_path)
    if not gold.articles:
        raise ValueError(f"{gold_path}: no usable articles")
    if pred_path is not None:
        story_of = load_pred_stories(pred_path)
    else:
        if stories is None:
            from .pipeline import cluster_articles
            from .embed import load_embedder

            stories = cluster_articles(gold.articles, embedder if embedder is not None else load_embedder(),
                                       options=cluster_options)
        story_of = stories_to_story_of(stories)
    ids = [a.id for a in gold.articles]
    pred = [story_of.get(i) for i in ids]  # None: a singleton
    result = evaluate_labels(gold.stories, pred, langs=[a.lang for a in gold.articles])
    result["skipped"] = gold.skipped
    result["missing_from_pred"] = sum(1 for p in pred if p is None)
    return result


def format_report(result: Mapping[str, Any]) -> str:
    """A readable plain-text table of an :func:`evaluate_jsonl` or :func:`evaluate_semeval` result."""
    if "all" in result:
        return _format_semeval(result)
    return _format_labels(result)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _format_labels(result: Mapping[str, Any]) -> str:
    lines = [f"items {result['n']}  gold stories {result['gold_clusters']}  "
             f"predicted stories {result['pred_clusters']} (singletons included)",
             f"{'':<22}{'precision':>10}{'recall':>10}{'f1':>10}"]
    for label, prefix in (("B-cubed", "bcubed"), ("pairwise", "pairwise"),
                          ("pairwise cross-lingual", "cross_lingual_pairwise")):
        if f"{prefix}_f1" in result:
            lines.append(f"{label:<22}" + "".join(f"{_fmt(result[f'{prefix}_{k}']):>10}"
                                                  for k in ("precision", "recall", "f1")))
    lines.append(f"{'ARI':<22}{_fmt(result['ari']):>10}")
    extras = [f"{k.replace('_', ' ')} {result[k]}" for k in ("skipped", "missing_from_pred") if k in result]
    if extras:
        lines.append("  ".join(extras))
    return "\n".join(lines)


def _format_semeval(result: Mapping[str, Any]) -> str:
    head = []
    if "articles" in result:
        head.append(f"articles {result['articles']}  stories (2+ articles) {result['stories']}  "
                    f"split {result.get('split', 'all')}")
    head.append(f"same story: Overall <= {result['same_max']}; different: Overall >= {result['diff_min']}")
    cols = ("pairs", "same", "different", "predicted_same", "precision", "recall", "f1", "pearson", "spearman")
    lines = head + [f"{'':<15}" + "".join(f"{c.replace('predicted_same', 'pred same'):>10}" for c in cols)]
    for name in ("all", "cross_lingual"):
        sub = result[name]
        lines.append(f"{name.replace('_', '-'):<15}" + "".join(f"{_fmt(sub[c]):>10}" for c in cols))
    return "\n".join(lines)


# --------------------------------------------------------------------------- cross-validation


def semeval_folds(pairs: pd.DataFrame, k: int = 5, random_state: int = 0) -> np.ndarray:
    """A fold number (0..k-1) per row of ``pairs``: no article is in two folds, folds balanced by pair count.

    Pairs are grouped by connected component of the graph whose nodes are articles (``id1``,
    ``id2``) and whose edges are the pairs, so an article and every pair it is in fall in one
    fold (nothing learnt on one fold's articles is scored on another's). Components are
    shuffled with ``random_state``, then dealt largest first to the fold with the fewest pairs
    so far. Deterministic for a given pairs table and seed.
    """
    if k < 2:
        raise ValueError("k must be at least 2")
    id1 = pairs["id1"].astype(str).tolist()
    id2 = pairs["id2"].astype(str).tolist()
    sets: DisjointSets[str] = DisjointSets()
    for a, b in zip(id1, id2):
        sets.union(a, b)
    comp_of_pair = [sets.find(a) for a in id1]
    comps = sorted(set(comp_of_pair))
    if len(comps) < k:
        raise ValueError(f"{len(comps)} connected components cannot make {k} folds")
    sizes = {c: 0 for c in comps}
    for c in comp_of_pair:
        sizes[c] += 1
    rng = np.random.default_rng(random_state)
    order = [comps[i] for i in rng.permutation(len(comps))]
    order.sort(key=lambda c: -sizes[c])  # stable: ties stay in shuffled order
    load = np.zeros(k, dtype=np.int64)
    fold_of: dict[str, int] = {}
    for c in order:
        f = int(np.argmin(load))
        fold_of[c] = f
        load[f] += sizes[c]
    return np.array([fold_of[c] for c in comp_of_pair], dtype=np.int64)


#: What :func:`cross_validate_semeval` summarises, per fold and as mean / sd over folds.
CV_METRICS = ("f1", "xl_f1", "pearson", "xl_pearson", "precision", "recall")


def _cv_figures(scores: Mapping[str, Any]) -> dict:
    a, x = scores["all"], scores["cross_lingual"]
    return {"f1": a["f1"], "xl_f1": x["f1"], "pearson": a["pearson"], "xl_pearson": x["pearson"],
            "precision": a["precision"], "recall": a["recall"]}


def _objective_value(fig: Mapping[str, Any], objective: str) -> float:
    if objective == "f1":
        return float(fig["f1"])
    if objective == "min_f1":
        return float(min(fig["f1"], fig["xl_f1"]))
    if objective == "mean_f1":
        return float((fig["f1"] + fig["xl_f1"]) / 2)
    raise ValueError(f"unknown objective {objective!r} (f1, min_f1, mean_f1)")


def _grid_points(grid: Optional[Mapping[str, Sequence[Any]]]) -> list[dict]:
    import itertools

    if not grid:
        return [{}]
    keys = list(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def _default_cluster(articles: Sequence[Article], embeddings: np.ndarray, options: "ClusterOptions",
                     language_means: Optional["LanguageMeans"], **extra) -> tuple[dict[str, str], Callable]:
    """Cluster with :func:`storyclust.pipeline.cluster_articles`; pair similarity = clustering-space cosine."""
    from .pipeline import cluster_articles

    if extra:
        raise ValueError(f"grid keys {sorted(extra)} are not ClusterOptions fields (give a cluster= function)")
    stories = cluster_articles(articles, embeddings=embeddings, options=options, language_means=language_means)
    space = clustering_space(articles, embeddings, options, language_means)
    return stories_to_story_of(stories), CosineLookup([a.id for a in articles], space)


def summarize_folds(folds: Sequence[Mapping[str, Any]], metrics: Sequence[str] = CV_METRICS) -> dict:
    """``{metric: {"mean", "sd", "se"}}`` over per-fold figures (sd with ddof=1; se = sd / sqrt(k))."""
    out = {}
    for m in metrics:
        values = np.array([f[m] for f in folds if f.get(m) is not None], dtype=float)
        if len(values) == 0:
            out[m] = {"mean": None, "sd": None, "se": None}
            continue
        sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        out[m] = {"mean": float(values.mean()), "sd": sd, "se": sd / math.sqrt(len(values))}
    return out


def cross_validate_semeval(
    data: SemEvalData,
    fit_space: Union[np.ndarray, Callable[[pd.DataFrame], tuple[np.ndarray, Optional["LanguageMeans"]]]],
    *,
    language_means: Optional["LanguageMeans"] = None,
    cluster_options: Optional["ClusterOptions"] = None,
    grid: Optional[Mapping[str, Sequence[Any]]] = None,
    k: int = 5,
    random_state: int = 0,
    distractors: str = "all",
    objective: str = "f1",
    cluster: Optional[Callable[..., tuple[dict[str, str], Callable]]] = None,
    folds: Optional[np.ndarray] = None,
) -> dict:
    """K-fold cross-validation of a clustering recipe on SemEval pairs: fit on k-1 folds, score the k-th.

    Folds come from :func:`semeval_folds` (no article in two folds). For each fold:

    1. **fit the space**: ``fit_space(train_pairs)`` returns ``(embeddings, language_means)`` (one
       row per ``data.articles``) learnt from the training folds' pairs only, e.g. an adapter
       (:func:`storyclust.tune.head_space_factory`); a plain array means a fixed space (with
       ``language_means``);
    2. **fit the thresholds**: with ``grid`` (``{option: values}``; ClusterOptions fields such as
       ``max_distance`` and ``number_weight``, plus any extra keys ``cluster`` understands), every
       grid point is tried on the training pairs and the best by ``objective`` ("f1" = pair F1 on
       all pairs, "mean_f1", "min_f1" with the cross-lingual F1) is kept; without a grid,
       ``cluster_options`` as given;
    3. **score** the held-out fold's pairs: pair F1 all / cross-lingual and Pearson of the
       clustering-space cosine with -Overall.

    Distractors: with ``distractors="all"`` (the default, as :func:`evaluate_semeval`) every
    article of the file is clustered together, the training folds' articles acting as distractors
    for the held-out ones, so the density of the space, which the thresholds depend on, is the
    same as in the single-split figures; no held-out article is in a training pair, so no label
    leaks. With ``"fold"`` only the held-out fold's articles are clustered for scoring (and only
    the training folds' articles for choosing thresholds): fewer distractors, optimistic precision.

    Returns ``{"k", "distractors", "objective", "folds": [per-fold figures + "params" chosen],
    "summary": {metric: {mean, sd, se}}, "table": [per grid point: params + per-fold test figures +
    summary]}``; ``table`` lets a caller choose a fixed setting by CV mean and compare it fold by
    fold with another (paired differences).
    """
    from dataclasses import replace

    from .settings import ClusterOptions as _Options

    if distractors not in ("all", "fold"):
        raise ValueError("distractors must be 'all' or 'fold'")
    cluster = cluster or _default_cluster
    base_options = cluster_options or _Options()
    option_fields = set(_Options.__dataclass_fields__)
    pairs = data.pairs.reset_index(drop=True)
    fold_of = semeval_folds(pairs, k, random_state) if folds is None else np.asarray(folds)
    points = _grid_points(grid)
    fixed = not callable(fit_space)
    row = {a.id: i for i, a in enumerate(data.articles)}

    def run(point: dict, embeddings, means, articles_idx=None) -> tuple[dict[str, str], Callable]:
        opts = {k2: v for k2, v in point.items() if k2 in option_fields}
        extra = {k2: v for k2, v in point.items() if k2 not in option_fields}
        options = replace(base_options, **opts) if opts else base_options
        if articles_idx is None:
            return cluster(data.articles, embeddings, options, means, **extra)
        arts = [data.articles[i] for i in articles_idx]
        return cluster(arts, np.asarray(embeddings)[articles_idx], options, means, **extra)

    def fold_articles(mask: np.ndarray) -> np.ndarray:
        sub = pairs[mask]
        return np.array(sorted({row[i] for i in sub["id1"]} | {row[i] for i in sub["id2"]}), dtype=np.int64)

    shared: dict[int, tuple] = {}  # fixed space + all distractors: one clustering per grid point serves every fold
    per_fold, table_scores = [], [[None] * k for _ in points]
    for f in range(k):
        test_mask, train_mask = fold_of == f, fold_of != f
        if fixed:
            embeddings, means = np.asarray(fit_space), language_means
        else:
            embeddings, means = fit_space(pairs[train_mask].reset_index(drop=True))
        best = None
        for p, point in enumerate(points):
            if distractors == "all":
                if fixed and p in shared:
                    story_of, sim = shared[p]
                else:
                    story_of, sim = run(point, embeddings, means)
                    if fixed:
                        shared[p] = (story_of, sim)
                train_res = score_semeval_pairs(pairs[train_mask], story_of, sim) if len(points) > 1 else None
                test_res = score_semeval_pairs(pairs[test_mask], story_of, sim)
            else:
                train_res = None
                if len(points) > 1:
                    s_tr, sim_tr = run(point, embeddings, means, fold_articles(train_mask))
                    train_res = score_semeval_pairs(pairs[train_mask], s_tr, sim_tr)
                s_te, sim_te = run(point, embeddings, means, fold_articles(test_mask))
                test_res = score_semeval_pairs(pairs[test_mask], s_te, sim_te)
            test_fig = _cv_figures(test_res)
            table_scores[p][f] = test_fig
            value = _objective_value(_cv_figures(train_res), objective) if train_res is not None else 0.0
            if best is None or value > best[0] + 1e-12:
                best = (value, point, test_fig)
        per_fold.append({**best[2], "fold": f, "test_pairs": int(test_mask.sum()), "params": best[1]})
    table = [{"params": point, "folds": table_scores[p], "summary": summarize_folds(table_scores[p])}
             for p, point in enumerate(points)]
    return {"k": k, "random_state": random_state, "distractors": distractors, "objective": objective,
            "folds": per_fold, "summary": summarize_folds(per_fold), "table": table}


def paired_gain(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]], metric: str = "f1") -> dict:
    """Fold-by-fold gain of ``a`` over ``b`` (lists of per-fold figures): mean, sd and standard error."""
    d = np.array([x[metric] - y[metric] for x, y in zip(a, b)], dtype=float)
    sd = float(d.std(ddof=1)) if len(d) > 1 else 0.0
    return {"mean": float(d.mean()), "sd": sd, "se": sd / math.sqrt(len(d)), "folds": d.tolist()}
