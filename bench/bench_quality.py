#!/usr/bin/env python
"""Story-clustering quality on the SemEval-2022 Task 8 pairs, storyclust against two baselines.

Embeds every distinct article of the CSV once, then clusters the same vectors with:

1. ``storyclust``: :func:`storyclust.pipeline.cluster_articles` with default options;
2. ``hdbscan-mcs2``: plain ``HDBSCAN(min_cluster_size=2)`` (library defaults, so min_samples=2);
3. ``hdbscan-mcs2-ms1``: plain ``HDBSCAN(min_cluster_size=2, min_samples=1)``;
4. ``bertopic-recipe``: BERTopic's default recipe, UMAP(n_neighbors=15, n_components=5,
   min_dist=0.0, metric='cosine', random_state=42) -> HDBSCAN(min_cluster_size=10,
   metric='euclidean', cluster_selection_method='eom', prediction_data=True).

Noise is singletons everywhere. Each method is scored on the labelled pairs
(pairwise precision / recall / F1 for all and cross-lingual pairs, Pearson and
Spearman of the pair cosine with -Overall: the language-neutral cosine for
storyclust, the raw cosine for the baselines). Prints embedding throughput,
clustering time, the process's RSS at its highest while each method ran
(sampled every 10 ms, after the embedder has been released) and how much it grew
over the RSS before the method started, and the overall peak (ru_maxrss).

Then, unless ``--no-cv``, the same figures under **5-fold cross-validation**
(:func:`storyclust.evaluate.cross_validate_semeval`; folds by connected component of the pair
graph, balanced by pairs; every article of the file clustered together, the other folds'
articles as distractors; mean ± sd over folds), each block with its runtime and the RSS at
its highest:

1. today's defaults;
2. thresholds: a table of ``max_distance`` x ``number_weight``, CV mean per setting and its
   fold-by-fold gain over the defaults (± standard error), and the nested estimate (chosen on
   four folds, scored on the fifth);
3. a learnt adapter (:mod:`storyclust.tune`; ``--cv-head`` JSON, fitted on four folds, applied
   through the adapter wrapper: adapted views and adapted reference means) with the thresholds
   table again (``max_distance`` chosen on the training folds in the nested estimate);
4. a second pass merging cross-lingual fragments (:func:`storyclust.tune.merge_fragments`) at
   several thresholds.

The adapter blocks need the raw views (whole text, title + lead, calibration corpus) kept apart:
``--views-cache PATH.npz`` saves/reuses them (keyed by model id and CSV hash).

**Mixed dates** (``--dates mixed``; default ``none``, the figures above unchanged). The CSV has no
dates, and a run where every article is undated never exercises the time window or the dated
search. With ``--dates mixed`` each article gets a synthetic publication date built from the labels
(:func:`synthetic_dates`): the articles of one connected component of the same-story pair graph
(Overall <= 1.5; an id and its machine translations, same numeric base id, are one node) share a
component base date, spread uniformly over ``--date-span-days`` (180), plus a per-article jitter
of up to ``--date-jitter-days`` (3), so every same-story pair lies well inside the 7-day window.
A seeded RNG (``--dates-seed``) then keeps the date of ``--dated-share`` (0.4) of the articles; the
rest stay undated (undated articles remain the majority, and about 15% of the labelled pairs are
dated on both sides). storyclust runs on both versions of the articles: the table gets a
``storyclust mixed`` row next to the undated one, then the figures by pair kind (both articles
dated, one, neither). A search that drops dated pairs (the bug fixed in
``cluster._exact_candidates``: undated rows broke the binary search over dates) shows as lost
recall on the pairs whose two articles are dated (bench/README.md gives the measured drop). The
baselines ignore dates and are not run again.

Usage::

    python bench/bench_quality.py [--csv ../shared/eval/semeval_dev.csv]
        [--embeddings-cache PATH.npy | --views-cache PATH.npz] [--pooling auto|sif|model] [--prompt TEXT]
        [--split dev|check|all] [--methods storyclust,hdbscan-mcs2,...] [--no-cv] [--cv-head JSON]
        [--adapter FOLDER] [--dates none|mixed] [--dated-share 0.4] [--dates-seed 0]
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import inspect
import os
import threading
import json
import logging
import resource
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from storyclust.disjoint import DisjointSets
from storyclust.evaluate import (
    SEMEVAL_DIFF_MIN,
    SEMEVAL_SAME_MAX,
    CosineLookup,
    clustering_space,
    labels_to_story_of,
    load_semeval,
    lookup_similarity,
    pipeline_language_means,
    score_semeval_pairs,
    select_split,
    stories_to_story_of,
)
from storyclust.types import Article

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CSV = REPO.parent / "shared" / "eval" / "semeval_dev.csv"
RANDOM_STATE = 42


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    """Resident set size of this process now, in MiB (from /proc/self/statm)."""
    with open("/proc/self/statm") as fh:
        resident_pages = int(fh.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    """Context manager that records the highest current RSS while its block runs."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.start_mb = self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, current_rss_mb())

    def __enter__(self) -> "RssSampler":
        self.start_mb = self.peak_mb = current_rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, current_rss_mb())


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_or_embed(articles: list[Article], csv_path: Path, cache: Optional[Path],
                  pooling: str = "auto", prompt: Optional[str] = None) -> tuple[np.ndarray, dict, object]:
    """Embeddings of ``articles`` with the default embedder (and ``pooling``, ``prompt``), reused from
    ``cache`` when its key matches.

    The cache is ``PATH.npy`` plus ``PATH.json`` holding the key: the embedder's
    ``model_id``, a hash of the embedding recipe (the source of ``embed_articles``
    and ``embedding_text``, so a change in views or text cutting invalidates it),
    the CSV's sha256 and the number of rows. Returns the vectors,
    a dict of figures and the pipeline's language means for that embedder.
    """
    from storyclust.embed import embed_articles, embedding_text, load_embedder

    t0 = time.perf_counter()
    embedder = load_embedder(pooling=pooling, prompt=prompt)
    load_s = time.perf_counter() - t0
    means = pipeline_language_means(embedder)
    recipe = hashlib.sha1((inspect.getsource(embed_articles) + inspect.getsource(embedding_text)).encode()).hexdigest()
    key = {"model_id": embedder.model_id, "recipe_sha1": recipe[:12], "csv_sha256": file_sha256(csv_path),
           "rows": len(articles)}
    meta_path = cache.with_suffix(".json") if cache else None
    if cache and cache.exists() and meta_path.exists() and json.loads(meta_path.read_text()) == key:
        return np.load(cache), {**key, "source": f"cache {cache}", "load_s": load_s}, means
    t0 = time.perf_counter()
    vectors = np.asarray(embed_articles(articles, embedder), dtype=np.float32)
    embed_s = time.perf_counter() - t0
    if cache:
        np.save(cache, vectors)
        meta_path.write_text(json.dumps(key))
    info = {**key, "source": "embedded", "load_s": load_s, "embed_s": embed_s,
            "articles_per_s": len(articles) / embed_s, "peak_rss_mb": peak_rss_mb()}
    return vectors, info, means


def run_storyclust(articles: list[Article], vectors: np.ndarray, means) -> tuple[dict[str, str], Callable]:
    from storyclust.pipeline import cluster_articles

    stories = cluster_articles(articles, embeddings=vectors, language_means=means)
    space = clustering_space(articles, vectors, None, means)
    return stories_to_story_of(stories), CosineLookup([a.id for a in articles], space)


def run_hdbscan(articles: list[Article], vectors: np.ndarray, **params) -> tuple[dict[str, str], Callable]:
    import hdbscan

    labels = hdbscan.HDBSCAN(**params).fit_predict(vectors)
    ids = [a.id for a in articles]
    return labels_to_story_of(ids, labels), CosineLookup(ids, vectors)


def run_bertopic_recipe(articles: list[Article], vectors: np.ndarray) -> tuple[dict[str, str], Callable]:
    import hdbscan
    import umap

    reduced = umap.UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine",
                        random_state=RANDOM_STATE).fit_transform(vectors)
    labels = hdbscan.HDBSCAN(min_cluster_size=10, metric="euclidean", cluster_selection_method="eom",
                             prediction_data=True).fit_predict(reduced)
    ids = [a.id for a in articles]
    return labels_to_story_of(ids, labels), CosineLookup(ids, vectors)


#: name -> function(articles, vectors, language means) -> (story_of, pair similarity); the
#: baselines ignore the language means (they cluster the raw model space).
METHODS: dict[str, Callable[..., tuple[dict[str, str], Callable]]] = {
    "storyclust": run_storyclust,
    "hdbscan-mcs2": lambda arts, vecs, _means: run_hdbscan(arts, vecs, min_cluster_size=2),
    "hdbscan-mcs2-ms1": lambda arts, vecs, _means: run_hdbscan(arts, vecs, min_cluster_size=2, min_samples=1),
    "bertopic-recipe": lambda arts, vecs, _means: run_bertopic_recipe(arts, vecs),
}


# -- synthetic dates (--dates mixed) -------------------------------------------------------

DATES_START = datetime(2020, 1, 1, tzinfo=timezone.utc)  # SemEval 2022's articles are from 2020


def base_id(article_id: str) -> str:
    """The numeric base id of a SemEval id: ``1483779588ru`` (a machine translation) -> ``1483779588``."""
    digits = len(article_id) - len(article_id.lstrip("0123456789"))
    return article_id[:digits] or article_id


def story_components(pairs: pd.DataFrame, ids: list[str], same_max: float = SEMEVAL_SAME_MAX) -> dict[str, int]:
    """Component number of each id in the graph of same-story pairs (``overall <= same_max``).

    An id and its machine translations (same :func:`base_id`) are joined too: a translation is the
    same article. Components are numbered in the order of their smallest id (deterministic).
    """
    sets: DisjointSets[str] = DisjointSets()
    for i in ids:
        sets.union(i, "base:" + base_id(i))
    for a, b, overall in zip(pairs["id1"], pairs["id2"], pairs["overall"]):
        if overall <= same_max:
            sets.union(str(a), str(b))
    roots = sorted({sets.find(i) for i in ids})
    number = {r: k for k, r in enumerate(roots)}
    return {i: number[sets.find(i)] for i in ids}


def synthetic_dates(articles: list[Article], pairs: pd.DataFrame, share: float, seed: int = 0,
                    span_days: float = 180.0, jitter_days: float = 3.0) -> dict[str, Optional[datetime]]:
    """Plausible publication dates for SemEval articles, consistent with the same-story labels.

    Each component of :func:`story_components` gets a base date uniform over ``span_days`` from
    :data:`DATES_START`; each article its component's base plus a uniform jitter of up to
    ``jitter_days`` (so two articles of one story are at most ``jitter_days`` apart, two
    components usually weeks or months apart). Then ``round(share * n)`` articles, drawn with
    ``seed``, keep their date; the others get None (undated). Reproducible for given arguments.
    """
    ids = [a.id for a in articles]
    comp = story_components(pairs, ids)
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.0, span_days, size=max(comp.values(), default=-1) + 1)
    jitter = rng.uniform(0.0, jitter_days, size=len(ids))
    kept = set(rng.choice(len(ids), size=int(round(share * len(ids))), replace=False).tolist())
    return {i: (DATES_START + timedelta(days=float(base[comp[i]] + jitter[k])) if k in kept else None)
            for k, i in enumerate(ids)}


def dated_pair_kind(pairs: pd.DataFrame, dates: dict[str, Optional[datetime]]) -> np.ndarray:
    """Per pair, how many of its two articles carry a date (0, 1 or 2)."""
    return np.array([(dates.get(a) is not None) + (dates.get(b) is not None)
                     for a, b in zip(pairs["id1"], pairs["id2"])], dtype=np.int64)


def pair_gap_days(pairs: pd.DataFrame, dates: dict[str, Optional[datetime]]) -> np.ndarray:
    """Per pair, the days between its two dates (NaN when one is undated)."""
    return np.array([abs((dates[a] - dates[b]).total_seconds()) / 86400.0
                     if dates.get(a) is not None and dates.get(b) is not None else np.nan
                     for a, b in zip(pairs["id1"], pairs["id2"])], dtype=np.float64)


def describe_dates(pairs: pd.DataFrame, dates: dict[str, Optional[datetime]], window_days: float = 7.0) -> str:
    """One line: how many articles are dated, how many labelled pairs are dated on both sides, their gaps."""
    kind, gap = dated_pair_kind(pairs, dates), pair_gap_days(pairs, dates)
    same = (pairs["overall"] <= SEMEVAL_SAME_MAX).to_numpy()
    diff = (pairs["overall"] >= SEMEVAL_DIFF_MIN).to_numpy()
    both = kind == 2
    dated = sum(d is not None for d in dates.values())
    return (f"{dated} of {len(dates)} articles dated; same-story pairs with both dated {int((same & both).sum())} "
            f"of {int(same.sum())} (largest gap {np.nanmax(gap[same & both], initial=0.0):.1f} days), "
            f"different-story pairs with both dated {int((diff & both).sum())} of {int(diff.sum())} "
            f"({int((diff & both & (gap <= window_days)).sum())} within {window_days:g} days)")


def with_dates(articles: list[Article], dates: dict[str, Optional[datetime]]) -> list[Article]:
    """``articles`` with ``published`` set from ``dates`` (None: undated)."""
    return [replace(a, published=dates.get(a.id)) for a in articles]


def print_dated_breakdown(pairs: pd.DataFrame, kind: np.ndarray, runs: list[tuple[str, dict[str, str]]]) -> None:
    """P / R / F1 of each run on the labelled pairs by how many of their articles are dated."""
    print(f"\n  {'pairs by articles dated (mixed run)':<36}{'pairs':>6}{'same':>6}" +
          "".join(f"{name + ' P':>16}{'R':>7}{'F1':>7}" for name, _ in runs))
    for label, mask in (("both dated", kind == 2), ("one dated", kind == 1), ("neither dated", kind == 0),
                        ("all", np.ones(len(kind), dtype=bool))):
        sub = pairs[mask]
        line = f"  {label:<36}{len(sub):>6}{int((sub['overall'] <= SEMEVAL_SAME_MAX).sum()):>6}"
        for _, story_of in runs:
            a = score_semeval_pairs(sub, story_of)["all"]
            line += f"{a['precision']:>16.3f}{a['recall']:>7.3f}{a['f1']:>7.3f}"
        print(line)


def bootstrap_f1(pairs, story_of: dict[str, str], rounds: int = 2000, seed: int = RANDOM_STATE) -> dict[str, tuple]:
    """95% percentile intervals of pairwise F1 (all, cross-lingual) over pairs resampled with replacement.

    The clustering is fixed; only which labelled pairs are drawn varies. With 253 same-story
    pairs (78 cross-lingual) one pair moves F1 by ~0.002 (~0.006 cross-lingual), so this says
    which differences between settings are larger than the sample can tell apart.
    """
    same = (pairs["overall"] <= 1.5).to_numpy()
    labelled = same | (pairs["overall"] >= 3.0).to_numpy()
    pred = np.array([story_of[a] == story_of[b] for a, b in zip(pairs["id1"], pairs["id2"])])
    rng = np.random.default_rng(seed)
    out = {}
    for name, subset in (("all", labelled), ("cross_lingual", labelled & pairs["cross_lingual"].to_numpy())):
        idx = np.flatnonzero(subset)
        draws = idx[rng.integers(0, len(idx), size=(rounds, len(idx)))]
        tp = (pred[draws] & same[draws]).sum(1)
        f1 = 2 * tp / np.maximum(pred[draws].sum(1) + same[draws].sum(1), 1)
        out[name] = tuple(np.percentile(f1, [2.5, 97.5]))
    return out


def language_pair_scores(pairs, story_of: dict[str, str], similarity, rounds: int = 2000,
                         seed: int = RANDOM_STATE) -> list[dict]:
    """F1 and Pearson per language pair (``de-en``, ``en-en``, ...), each with a 95% bootstrap interval.

    F1 over the pairs labelled same (Overall <= 1.5) or different (>= 3.0), Pearson of the pair
    similarity with -Overall over every scored pair of that language pair; the intervals resample
    that language pair's pairs, so a change smaller than them is noise (64-78 same-story
    cross-lingual pairs per file carry about +-0.04 of F1)."""
    from scipy.stats import pearsonr

    overall = pairs["overall"].to_numpy()
    same = overall <= SEMEVAL_SAME_MAX
    labelled = same | (overall >= SEMEVAL_DIFF_MIN)
    pred = np.array([story_of[a] == story_of[b] for a, b in zip(pairs["id1"], pairs["id2"])])
    sims = np.array([lookup_similarity(similarity, a, b) for a, b in zip(pairs["id1"], pairs["id2"])])
    key = np.array(["-".join(sorted((str(a), str(b)))) for a, b in zip(pairs["lang1"], pairs["lang2"])])
    rng = np.random.default_rng(seed)

    def f1(idx: np.ndarray) -> np.ndarray:  # idx: (rounds, n) or (n,)
        tp = (pred[idx] & same[idx]).sum(-1)
        return 2 * tp / np.maximum(pred[idx].sum(-1) + same[idx].sum(-1), 1)

    def pearson(idx: np.ndarray) -> float:
        x, y = sims[idx], -overall[idx]
        return float(pearsonr(x, y)[0]) if len(idx) > 2 and np.ptp(x) > 0 and np.ptp(y) > 0 else float("nan")

    out = []
    for lp in sorted(set(key), key=lambda k: (-int((key == k).sum()), k)):
        scored = np.flatnonzero(key == lp)
        lab = scored[labelled[scored]]
        row = {"pair": lp, "n": len(scored), "same": int(same[scored].sum()), "labelled": len(lab)}
        if len(lab):
            draws = lab[rng.integers(0, len(lab), size=(rounds, len(lab)))]
            row["f1"], row["f1_ci"] = float(f1(lab)), tuple(np.percentile(f1(draws), [2.5, 97.5]))
        boots = [pearson(scored[rng.integers(0, len(scored), len(scored))]) for _ in range(min(rounds, 500))]
        row["pearson"] = pearson(scored)
        row["pearson_ci"] = tuple(np.nanpercentile(boots, [2.5, 97.5])) if np.isfinite(boots).any() else (np.nan,) * 2
        out.append(row)
    return out


def print_language_pairs(label: str, rows: list[dict]) -> None:
    print(f"\n{label}: per language pair (95% bootstrap intervals over that pair's pairs)")
    print(f"{'pair':<8}{'pairs':>7}{'same':>6}{'F1':>7}{'F1 interval':>17}{'pearson':>9}{'pearson interval':>19}")
    for r in rows:
        f1 = f"{r['f1']:7.3f}{'[%.3f, %.3f]' % r['f1_ci']:>17}" if "f1" in r else f"{'-':>7}{'-':>17}"
        print(f"{r['pair']:<8}{r['n']:>7}{r['same']:>6}{f1}{r['pearson']:>9.3f}{'[%.3f, %.3f]' % r['pearson_ci']:>19}")


def cluster_counts(story_of: dict[str, str]) -> tuple[int, int]:
    """(clusters of 2+ articles, articles in them)."""
    sizes: dict[str, int] = {}
    for story in story_of.values():
        sizes[story] = sizes.get(story, 0) + 1
    multi = [s for s in sizes.values() if s > 1]
    return len(multi), sum(multi)


def print_table(rows: list[dict]) -> None:
    head = (f"{'method':<18}{'P':>7}{'R':>7}{'F1':>7}{'xl P':>7}{'xl R':>7}{'xl F1':>7}"
            f"{'pearson':>9}{'spearman':>9}{'xl prs':>8}{'clusters':>10}{'in clust':>9}{'secs':>7}{'rss MB':>8}"
            f"{'+rss MB':>9}")
    print(head)
    for r in rows:
        a, x = r["scores"]["all"], r["scores"]["cross_lingual"]
        print(f"{r['method']:<18}{a['precision']:>7.3f}{a['recall']:>7.3f}{a['f1']:>7.3f}"
              f"{x['precision']:>7.3f}{x['recall']:>7.3f}{x['f1']:>7.3f}"
              f"{a['pearson']:>9.3f}{a['spearman']:>9.3f}{x['pearson']:>8.3f}"
              f"{r['clusters']:>10}{r['clustered']:>9}{r['cluster_s']:>7.1f}{r['rss_mb']:>8.0f}{r['rss_growth_mb']:>9.0f}")


# -- cross-validation ----------------------------------------------------------------

#: The adapter head measured by default (the best of the screening in bench/README.md, "Learning
#: same story from labelled pairs").
DEFAULT_CV_HEAD = {"loss": "rating", "rank": 32, "basis": "pca", "weight_decay": 1e-3}
CV_MAX_DISTANCE = (0.44, 0.46, 0.48, 0.50, 0.52, 0.54)
CV_NUMBER_WEIGHT = (0.0, 0.05, 0.10, 0.15, 0.20)
CV_MERGE = (None, 0.40, 0.45, 0.48)


def load_or_embed_views(articles: list[Article], csv_path: Path, cache: Optional[Path], pooling: str = "auto",
                        prompt: Optional[str] = None):
    """The raw views of :class:`storyclust.tune.RawViews` with the default embedder, reused from ``cache``."""
    from storyclust.embed import embed_articles, embedding_text, load_embedder
    from storyclust.tune import RawViews

    recipe = hashlib.sha1((inspect.getsource(embed_articles) + inspect.getsource(embedding_text)).encode()).hexdigest()
    if cache and cache.exists():
        z = np.load(cache)
        key = json.loads(str(z["key"]))
        if key.get("csv_sha256") == file_sha256(csv_path) and key.get("recipe_sha1") == recipe[:12] \
                and list(z["ids"]) == [a.id for a in articles]:
            views = RawViews(z["full"], z["lead"], z["longer"], z["calib"], z["calib_lang"])
            return views, {**key, "source": f"cache {cache}"}
    t0 = time.perf_counter()
    embedder = load_embedder(pooling=pooling, prompt=prompt)
    views = RawViews.embed(articles, embedder)
    key = {"model_id": embedder.model_id, "recipe_sha1": recipe[:12], "csv_sha256": file_sha256(csv_path)}
    if cache:
        np.savez(cache, full=views.full, lead=views.lead, longer=views.longer, calib=views.calib,
                 calib_lang=views.calib_langs, ids=np.array([a.id for a in articles]), key=json.dumps(key))
    return views, {**key, "source": "embedded", "embed_s": time.perf_counter() - t0}


def _pm(summary: dict, key: str) -> str:
    s = summary[key]
    return f"{s['mean']:.3f} ± {s['sd']:.3f}"


def _cv_block(title: str, fn) -> dict:
    with RssSampler() as rss:
        t0 = time.perf_counter()
        result = fn()
        secs = time.perf_counter() - t0
    result["secs"], result["rss_mb"] = secs, rss.peak_mb
    print(f"{title:<44}{_pm(result['summary'], 'f1'):>16}{_pm(result['summary'], 'xl_f1'):>16}"
          f"{_pm(result['summary'], 'pearson'):>16}{secs:>8.0f}{rss.peak_mb:>8.0f}")
    return result


def _grid_table(title: str, result: dict, reference: dict) -> None:
    from storyclust.evaluate import paired_gain

    print(f"\n{title}")
    print(f"{'setting':<40}{'F1':>16}{'xl F1':>16}{'Pearson':>16}{'F1 gain (SE)':>18}{'xl gain (SE)':>18}")
    for row in result["table"]:
        g, gx = paired_gain(row["folds"], reference["folds"]), paired_gain(row["folds"], reference["folds"], "xl_f1")
        label = ", ".join(f"{k} {v}" for k, v in row["params"].items())
        print(f"{label:<40}{_pm(row['summary'], 'f1'):>16}{_pm(row['summary'], 'xl_f1'):>16}"
              f"{_pm(row['summary'], 'pearson'):>16}{g['mean']:>+11.3f} ({g['se']:.3f}){gx['mean']:>+11.3f} ({gx['se']:.3f})")
    best = max(result["table"], key=lambda r: r["summary"]["f1"]["mean"])
    g = paired_gain(best["folds"], reference["folds"])
    print(f"best by CV mean F1: {best['params']}: gain {g['mean']:+.4f} vs SE {g['se']:.4f} -> "
          f"{'moves the default' if g['mean'] > g['se'] else 'keep the default (gain <= SE)'}")
    print("nested (chosen on 4 folds, scored on the 5th): " + "  ".join(
        f"{k} {_pm(result['summary'], k)}" for k in ("f1", "xl_f1", "pearson"))
        + "; chosen: " + "; ".join(", ".join(f"{k} {v}" for k, v in f["params"].items()) for f in result["folds"]))


def run_cv(data, vectors: np.ndarray, means, views, head: Optional[dict], adapter_path: Optional[Path]) -> None:
    from storyclust.evaluate import cross_validate_semeval, paired_gain
    from storyclust import tune

    print("\nCross-validation: 5 folds by connected component of the pair graph (no article in two folds), "
          "balanced by pairs (seed 0); all articles clustered together (other folds = distractors); mean ± sd over "
          "folds")
    print(f"{'':<44}{'F1':>16}{'xl F1':>16}{'Pearson':>16}{'secs':>8}{'rss MB':>8}")
    base = _cv_block("today's defaults", lambda: cross_validate_semeval(data, vectors, language_means=means))
    thr = _cv_block("thresholds (grid, nested)", lambda: cross_validate_semeval(
        data, vectors, language_means=means,
        grid={"max_distance": CV_MAX_DISTANCE, "number_weight": CV_NUMBER_WEIGHT}))
    merge = _cv_block("second pass: merge fragments (nested)", lambda: cross_validate_semeval(
        data, vectors, language_means=means, cluster=tune.merge_cluster, grid={"merge_threshold": CV_MERGE}))
    rows = {}
    if views is not None and head is not None:
        factory = lambda: tune.head_space_factory(data.articles, views, head)  # noqa: E731
        rows["adapter"] = _cv_block(f"adapter {json.dumps(head)[:30]}.. (fixed defaults)",
                                    lambda: cross_validate_semeval(data, factory()))
        rows["adapter+thr"] = _cv_block("adapter + max_distance (nested)", lambda: cross_validate_semeval(
            data, factory(), grid={"max_distance": CV_MAX_DISTANCE}))
    if adapter_path is not None and views is not None:
        adapter = tune.load_adapter(adapter_path)
        av, ac = views.vectors(adapter.transform)
        rows["shipped"] = _cv_block(f"adapter {adapter_path.name} (trained on this file!)", lambda: cross_validate_semeval(
            data, av, language_means=tune.means_from_calibration(ac, views.calib_langs)))
    for name, r in rows.items():
        gains = "  ".join(f"{m} {paired_gain(r['folds'], base['folds'], m)['mean']:+.4f} "
                          f"(SE {paired_gain(r['folds'], base['folds'], m)['se']:.4f})" for m in ("f1", "xl_f1", "pearson"))
        print(f"{name}: gain over today's defaults, fold by fold: {gains}")
    _grid_table("Thresholds by CV (no adapter): max_distance x number_weight", thr, base)
    if "adapter+thr" in rows:
        _grid_table("Thresholds by CV with the adapter (refitted on each fold's training pairs)", rows["adapter+thr"], base)
    _grid_table("Second pass (merge stories with no language in common at mean pairwise cosine >= t)", merge, base)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="SemEval pairs CSV (default: %(default)s)")
    parser.add_argument("--embeddings-cache", type=Path, help="reuse/save embeddings here (.npy + .json key)")
    parser.add_argument("--embeddings", type=Path,
                        help="precomputed float32 .npy, rows aligned with the CSV's articles sorted by id; "
                             "used as is, without the default embedder")
    parser.add_argument("--pooling", choices=("auto", "sif", "model"), default="auto",
                        help="pooling of the default embedder (model: plain mean pooling, as before SIF)")
    parser.add_argument("--prompt", help="prompt of the default embedder (default: the model's own, "
                                         "'query: ')")
    parser.add_argument("--split", choices=("dev", "check", "all"), default="all",
                        help="score the pairs of this half (clustering always uses every article)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="comma-separated subset of: " + ", ".join(METHODS))
    parser.add_argument("--views-cache", type=Path,
                        help="reuse/save the raw views (.npz) needed by the adapter blocks of the CV")
    parser.add_argument("--no-cv", action="store_true", help="skip the cross-validation blocks")
    parser.add_argument("--cv-head", default=json.dumps(DEFAULT_CV_HEAD),
                        help="JSON parameters of the PairHead cross-validated as the adapter ('' to skip); "
                             "default %(default)s")
    parser.add_argument("--adapter", type=Path, help="also score this adapter folder (through the wrapper)")
    parser.add_argument("--dates", choices=("none", "mixed"), default="none",
                        help="mixed: also run storyclust with synthetic dates on a share of the articles "
                             "(component-consistent, see the module docstring); default none")
    parser.add_argument("--dated-share", type=float, default=0.4,
                        help="share of the articles that keep a date with --dates mixed (default %(default)s)")
    parser.add_argument("--dates-seed", type=int, default=0, help="seed of the synthetic dates (default 0)")
    parser.add_argument("--date-span-days", type=float, default=180.0,
                        help="story base dates are spread over this many days (default %(default)s)")
    parser.add_argument("--date-jitter-days", type=float, default=3.0,
                        help="articles of one story lie within this many days (default %(default)s)")
    args = parser.parse_args(argv)
    if not 0.0 <= args.dated_share <= 1.0:
        parser.error("--dated-share must lie in [0, 1]")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)  # umap + random_state
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method(s): {', '.join(unknown)}")
    if not args.csv.exists():
        print(f"SemEval CSV not found: {args.csv}", file=sys.stderr)
        return 2

    data = load_semeval(str(args.csv))
    pairs = select_split(data.pairs, args.split)
    print(f"{args.csv.name}: {len(data.articles)} articles, scoring {len(pairs)} pairs (split {args.split}); "
          f"same story = Overall <= 1.5, different = Overall >= 3.0")
    t_start = time.perf_counter()
    views = None
    if args.embeddings:
        vectors, means = np.load(args.embeddings), None
        info = {"source": f"precomputed {args.embeddings} (no embedder: storyclust uses the batch's language means)"}
    elif args.views_cache:
        from storyclust.tune import means_from_calibration

        views, info = load_or_embed_views(data.articles, args.csv, args.views_cache, args.pooling, args.prompt)
        vectors, calib = views.vectors()
        means = means_from_calibration(calib, views.calib_langs)
    else:
        vectors, info, means = load_or_embed(data.articles, args.csv, args.embeddings_cache, args.pooling,
                                             args.prompt)
    if len(vectors) != len(data.articles):
        print(f"{len(vectors)} embeddings for {len(data.articles)} articles", file=sys.stderr)
        return 2
    print("embeddings:", ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items()))
    gc.collect()  # release the embedder before measuring the clusterers

    runs = [(name, name, data.articles) for name in methods]
    dates = None
    if args.dates == "mixed":
        dates = synthetic_dates(data.articles, data.pairs, args.dated_share, args.dates_seed,
                                args.date_span_days, args.date_jitter_days)
        print(f"dates mixed (share {args.dated_share:g}, seed {args.dates_seed}, span {args.date_span_days:g} d, "
              f"jitter {args.date_jitter_days:g} d): {describe_dates(pairs, dates)}")
        if "storyclust" in methods:  # the only method that reads dates
            at = methods.index("storyclust") + 1
            runs.insert(at, ("storyclust mixed", "storyclust", with_dates(data.articles, dates)))
    rows, story_ofs = [], {}
    for label, name, articles in runs:
        with RssSampler() as rss:
            t0 = time.perf_counter()
            story_of, similarity = METHODS[name](articles, vectors, means)
            cluster_s = time.perf_counter() - t0
        clusters, clustered = cluster_counts(story_of)
        story_ofs[label] = story_of
        if label == "storyclust":
            by_language = language_pair_scores(pairs, story_of, similarity)
        rows.append({"method": label, "scores": score_semeval_pairs(pairs, story_of, similarity),
                     "ci": bootstrap_f1(pairs, story_of),
                     "clusters": clusters, "clustered": clustered, "cluster_s": cluster_s,
                     "rss_mb": rss.peak_mb, "rss_growth_mb": rss.peak_mb - rss.start_mb})
    print_table(rows)
    print("P/R/F1: pairwise over pairs labelled same or different; xl = cross-lingual pairs only; "
          "pearson/spearman: pair cosine vs -Overall over all scored pairs; "
          "clusters: stories of 2+ articles; secs: clustering time; rss: highest RSS while the method ran, "
          "+rss: its growth over the RSS before it")
    for r in rows:
        (lo, hi), (xlo, xhi) = r["ci"]["all"], r["ci"]["cross_lingual"]
        print(f"{r['method']:<18} F1 95% bootstrap interval: all [{lo:.3f}, {hi:.3f}], xl [{xlo:.3f}, {xhi:.3f}]")
    if "storyclust" in story_ofs:
        print_language_pairs("storyclust", by_language)
    if dates is not None and "storyclust mixed" in story_ofs:
        print_dated_breakdown(pairs, dated_pair_kind(pairs, dates),
                              [("undated", story_ofs["storyclust"]), ("mixed", story_ofs["storyclust mixed"])])
        print("storyclust mixed: the same vectors and options, with the synthetic dates; a search that drops "
              "dated pairs shows as lost recall on 'both dated'")
    if not args.no_cv:
        run_cv(data, vectors, means, views, json.loads(args.cv_head) if args.cv_head else None, args.adapter)
    print(f"total {time.perf_counter() - t_start:.0f} s; process peak RSS (ru_maxrss): {peak_rss_mb():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
