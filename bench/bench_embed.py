"""Embedding throughput and quality: plain sentence-transformers vs storyclust's backends.

    python bench/bench_embed.py                 # 300 SemEval pairs (~590 articles), ~4-6 min on 2 cores
    python bench/bench_embed.py --pairs all     # all 1,216 pairs / 2,301 articles (slower)

After the embedding table it times clustering at 1k, 10k and 100k articles
(``bench_cluster_scale.py``; ``--cluster-sizes`` with no value skips it), so one run prints
both halves of the speed story.

Every runner embeds the SAME texts (the distinct articles of the chosen SemEval pairs, as
``storyclust.embed.embedding_text`` gives them) in its own spawned process, so peak RSS
(``ru_maxrss``) is per runner:

* ``naive``: ``SentenceTransformer(<converted default model>)``, ``max_seq_length=256``,
  ``encode(prompt="query: ", batch_size=32)``: what a user would write without storyclust;
* ``torch``, ``torch-bf16``, ``onnx``, ``onnx-int8``: ``storyclust.embed.load_embedder(backend=...,
  pooling=...)`` (``auto`` picks one of them per machine: the line above the table says which).
  Their default SIF pooling differs from naive's mean (cosine ~0.99); ``--pooling model``
  compares like with like.

Throughput is articles/s over the whole set after a short warm-up (model loading and the
one-time conversion/export are reported apart as "load s"). "cpu art/s" divides by the
process CPU time instead of wall time, times the number of cores used, which is steadier
when other jobs share the machine. Quality: Pearson of the pair cosine with -Overall (all
pairs and cross-lingual pairs), pairwise F1 after clustering the chosen articles with
``storyclust.pipeline.cluster_articles`` (Overall <= 1.5 same story, >= 3 different), and
the cosine of each runner's vectors to the naive ones for the same text.

Needs ../shared/eval/semeval_dev.csv (relative to the repository); exits when it is absent.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

CSV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "semeval_dev.csv"
RUNNERS = ("naive", "torch", "torch-bf16", "onnx", "onnx-int8")
WARMUP = 8


def _load(runner: str, pooling: str) -> Any:
    """An object with ``encode(texts) -> np.ndarray`` for ``runner``."""
    from storyclust.embed import default_model_dir, load_embedder

    if runner != "naive":
        return load_embedder(backend=runner, pooling=pooling)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(default_model_dir()), device="cpu")
    model.max_seq_length = 256

    class Naive:
        def encode(self, texts: list[str]) -> np.ndarray:
            return model.encode(texts, prompt="query: ", batch_size=32, normalize_embeddings=True)

    return Naive()


def _measure(runner: str, texts: list[str], pooling: str) -> dict[str, Any]:
    """Run in a fresh process: load, warm up, time one pass over ``texts``."""
    start = time.perf_counter()
    embedder = _load(runner, pooling)
    load_s = time.perf_counter() - start
    embedder.encode(texts[:WARMUP])
    wall, cpu = time.perf_counter(), time.process_time()
    vectors = embedder.encode(texts)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    cores = len(os.sched_getaffinity(0))
    return {
        "runner": runner,
        "load_s": load_s,
        "rate": len(texts) / wall,
        "cpu_rate": cores * len(texts) / cpu,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "vectors": np.asarray(vectors, dtype=np.float32),
    }


def _pick_pairs(pairs: Any, n: str, seed: int) -> Any:
    if n == "all" or int(n) >= len(pairs):
        return pairs
    rows = sorted(random.Random(seed).sample(range(len(pairs)), int(n)))
    return pairs.iloc[rows].reset_index(drop=True)


def _quality(articles: list[Any], pairs: Any, vectors: np.ndarray) -> dict[str, float]:
    from storyclust.pipeline import cluster_articles
    from storyclust.evaluate import CosineLookup, score_semeval_pairs, stories_to_story_of

    stories = cluster_articles(articles, embeddings=vectors)
    scores = score_semeval_pairs(pairs, stories_to_story_of(stories), CosineLookup([a.id for a in articles], vectors))
    return {
        "pearson": scores["all"]["pearson"],
        "pearson_xl": scores["cross_lingual"]["pearson"],
        "f1": scores["all"]["f1"],
        "f1_xl": scores["cross_lingual"]["f1"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default="300", help="number of SemEval pairs to use, or 'all' (default 300)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runners", nargs="+", choices=RUNNERS, default=list(RUNNERS))
    parser.add_argument("--pooling", choices=("auto", "sif", "model"), default="auto",
                        help="pooling of the storyclust runners (model: mean pooling like naive, so that "
                             "the cosine column isolates the backends' precision)")
    parser.add_argument("--cluster-sizes", nargs="*", type=int, default=[1000, 10000, 100000],
                        help="then time clustering at these sizes with bench_cluster_scale.py (none: skip)")
    args = parser.parse_args(argv)
    if not CSV.is_file():
        print(f"skipped: {CSV} not found", file=sys.stderr)
        return 0

    from storyclust.embed import auto_backend, embedding_text
    from storyclust.evaluate import load_semeval

    data = load_semeval(str(CSV))
    pairs = _pick_pairs(data.pairs, args.pairs, args.seed)
    wanted = set(pairs["id1"]) | set(pairs["id2"])
    articles = [a for a in data.articles if a.id in wanted]
    texts = [embedding_text(a) for a in articles]
    print(f"{len(pairs)} pairs ({int(pairs['cross_lingual'].sum())} cross-lingual), {len(texts)} articles, "
          f"median {int(np.median([len(t) for t in texts]))} chars; load average {os.getloadavg()[0]:.1f}; "
          f"auto = {auto_backend()} on this machine")

    results = {}
    spawn = multiprocessing.get_context("spawn")
    for runner in args.runners:
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            results[runner] = pool.submit(_measure, runner, texts, args.pooling).result()
        results[runner].update(_quality(articles, pairs, results[runner]["vectors"]))
        r = results[runner]
        print(f"  {runner:10s} {r['rate']:6.1f} art/s  (load average now {os.getloadavg()[0]:.1f})", flush=True)

    base = results.get("naive")
    header = (f"{'runner':10s} {'art/s':>6s} {'x naive':>7s} {'cpu art/s':>9s} {'load s':>6s} {'RSS MB':>6s} "
              f"{'pearson':>7s} {'p xling':>7s} {'F1':>5s} {'F1 xl':>5s} {'cos naive mean/min':>18s}")
    print(header)
    for runner, r in results.items():
        speed = f"{r['rate'] / base['rate']:7.2f}" if base else f"{'-':>7s}"
        if base:
            cos = np.sum(r["vectors"] * base["vectors"], axis=1)
            agreement = f"{cos.mean():.4f}/{cos.min():.4f}"
        else:
            agreement = "-"
        print(f"{runner:10s} {r['rate']:6.1f} {speed} {r['cpu_rate']:9.1f} {r['load_s']:6.1f} {r['rss_mb']:6.0f} "
              f"{r['pearson']:7.4f} {r['pearson_xl']:7.4f} {r['f1']:5.3f} {r['f1_xl']:5.3f} {agreement:>18s}")
    if "onnx" in results and "onnx-int8" in results:
        cos = np.sum(results["onnx"]["vectors"] * results["onnx-int8"]["vectors"], axis=1)
        print(f"onnx-int8 vs onnx fp32, same texts: mean cosine {cos.mean():.4f}, min {cos.min():.4f}")
    if args.cluster_sizes:
        print("\nclustering (bench_cluster_scale.py: synthetic articles around the real embeddings)", flush=True)
        scale = Path(__file__).with_name("bench_cluster_scale.py")
        subprocess.run([sys.executable, str(scale), "--sizes", *map(str, args.cluster_sizes)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
