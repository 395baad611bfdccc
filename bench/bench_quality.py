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

Usage::

    python bench/bench_quality.py [--csv ../shared/eval/semeval_dev.csv]
        [--embeddings-cache PATH.npy] [--pooling auto|sif|model] [--prompt TEXT] [--split dev|check|all]
        [--methods storyclust,hdbscan-mcs2,...]
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
from pathlib import Path
from typing import Optional

import numpy as np

from storyclust.evaluate import (
    CosineLookup,
    clustering_space,
    labels_to_story_of,
    load_semeval,
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
    args = parser.parse_args(argv)
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
    if args.embeddings:
        vectors, means = np.load(args.embeddings), None
        info = {"source": f"precomputed {args.embeddings} (no embedder: storyclust uses the batch's language means)"}
    else:
        vectors, info, means = load_or_embed(data.articles, args.csv, args.embeddings_cache, args.pooling,
                                             args.prompt)
    if len(vectors) != len(data.articles):
        print(f"{len(vectors)} embeddings for {len(data.articles)} articles", file=sys.stderr)
        return 2
    print("embeddings:", ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items()))
    gc.collect()  # release the embedder before measuring the clusterers

    rows = []
    for name in methods:
        with RssSampler() as rss:
            t0 = time.perf_counter()
            story_of, similarity = METHODS[name](data.articles, vectors, means)
            cluster_s = time.perf_counter() - t0
        clusters, clustered = cluster_counts(story_of)
        rows.append({"method": name, "scores": score_semeval_pairs(pairs, story_of, similarity),
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
    print(f"process peak RSS (ru_maxrss): {peak_rss_mb():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
