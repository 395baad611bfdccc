#!/usr/bin/env python
"""How much of the language means should come from the batch? Quality on SemEval against robustness to a story
that dominates the news.

The clusterer makes vectors language-neutral by subtracting each language's mean, estimated from the shipped
calibration corpus (``reference_weight`` pseudo-articles per language) plus every article of the batch
(:meth:`storyclust.cluster.StoryClusterer.update_language_means`). When one story is a large share of a
language's articles, its own direction enters that mean and is subtracted from its reports: what is left of
them is what tells them apart (a quote, a name), and average linkage cuts the story into pieces. A topic
feed (a monitor scraping one war), or the evergreen story of ``bench_year.py`` at 300 of 500 articles a
night, is such a batch.

Two parts, one run:

1. **Quality** on SemEval dev + extra (the two CSVs of ``../shared/eval``; ``bench_pair_score.py``'s cached
   views, embedded when the cache does not match): every distinct article clustered once per setting with
   :func:`storyclust.pipeline.cluster_articles`, scored per fold (5 folds by connected component of the
   pair graph on base ids, :func:`bench_pair_score.base_id_folds`): pair F1 all and cross-lingual, and the
   Pearson of the neutral cosine (+ number term) with -Overall; mean ± sd over folds and the paired per-fold
   gain over today's setting ± SE. A setting involves no training, so every fold scores the same clustering.
2. **A dominant story** (the news of ``bench_year.py``, two nights clustered one-shot): the evergreen story
   at 3% to 60% of the articles, for each setting: how many stories its articles end in, and pair F1 of all
   articles against the generator's stories. With the stand-in embedder of ``bench_year.py``, and with
   ``--real-model`` also with the default model (a smaller set: ~2 minutes of embedding).

    python bench/bench_language_means.py [--weights 8 32 128 512 1e6] [--cache /tmp/pair_score_views.npz]
        [--real-model] [--skip-quality]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pair_score import (add_data_arguments, base_id_folds, cpu_model, load_or_embed_views,  # noqa: E402
                              load_pairs)

from storyclust.cluster import StoryClusterer, _GLOBAL  # noqa: E402
from storyclust.evaluate import paired_gain, score_semeval_pairs, stories_to_story_of, summarize_folds  # noqa: E402
from storyclust.evidence import number_evidence, pair_evidence  # noqa: E402
from storyclust.pipeline import cluster_articles, embed, starting_language_means  # noqa: E402
from storyclust.settings import ClusterOptions  # noqa: E402

K = 5
METRICS = ("f1", "xl_f1", "pearson")


def reweighted(means, weight: float):
    """The reference means (as ``reference_language_means`` builds them) given ``weight`` pseudo-articles each."""
    out = {}
    for lang, (total, count) in means.items():
        per = weight * (count / next(c for k, (_, c) in means.items() if k != _GLOBAL)) if lang == _GLOBAL else weight
        out[lang] = (total / count * per, per)
    return out


def options_for(label: str) -> ClusterOptions:
    weight = float(label)
    return ClusterOptions(reference_weight=weight)


def quality(args) -> None:
    csvs = [args.dev, args.extra]
    if any(not p.exists() for p in csvs):
        print("SemEval CSVs not found: quality part skipped", file=sys.stderr)
        return
    data = load_pairs(csvs)
    table = data.table.reset_index(drop=True)
    articles = data.articles
    views = load_or_embed_views(articles, csvs, args.cache)
    avg = views.full + views.lead
    avg = (avg / np.linalg.norm(avg, axis=1, keepdims=True)).astype(np.float32)
    langs = [a.lang for a in articles]
    fold_of = base_id_folds(table, K, args.seed)
    row_of = {a.id: k for k, a in enumerate(articles)}
    i1 = np.array([row_of[a] for a in table["id1"]])
    i2 = np.array([row_of[b] for b in table["id2"]])
    evidence = number_evidence([a.text for a in articles])
    print(f"\n## 1. Quality: {len(articles)} articles, {len(table)} pairs (views: {views.info.get('source')}); "
          f"pairs per fold {np.bincount(fold_of).tolist()}\n")
    results: dict[str, list[dict]] = {}
    for label in args.weights:
        options = options_for(label)
        means = reweighted(views.means, options.reference_weight)
        t0 = time.perf_counter()
        stories = cluster_articles(articles, embeddings=avg, options=options, language_means=means)
        secs = time.perf_counter() - t0
        story_of = stories_to_story_of(stories)
        clusterer = StoryClusterer(options, language_means=means)
        clusterer.update_language_means(avg, langs)
        Z = clusterer.neutralize(avg, langs)
        sims = np.einsum("ij,ij->i", Z[i1], Z[i2]) + options.number_weight * pair_evidence(evidence, i1, i2)
        similarity = {(a, b): float(s) for a, b, s in zip(table["id1"], table["id2"], sims)}
        folds = []
        for f in range(K):
            res = score_semeval_pairs(table[fold_of == f], story_of, similarity)
            folds.append({"f1": res["all"]["f1"], "xl_f1": res["cross_lingual"]["f1"],
                          "pearson": res["all"]["pearson"]})
        results[label] = folds
        summary = summarize_folds(folds, METRICS)
        print(f"reference_weight {label:>6}: " + "  ".join(
            f"{m} {summary[m]['mean']:.4f} ± {summary[m]['sd']:.4f}" for m in METRICS) + f"  ({secs:.1f} s)")
    base = args.weights[0]
    print(f"\npaired gain over reference_weight {base} (mean ± SE over {K} folds):")
    for label in args.weights[1:]:
        print(f"  {label:>6}: " + "  ".join(
            f"{m} {g['mean']:+.4f} ± {g['se']:.4f}" for m in METRICS
            for g in [paired_gain(results[label], results[base], m)]))


def pair_f1(gold: list[str], pred: list[str]) -> float:
    """Pair F1 of a clustering against gold labels, from the contingency table."""
    from collections import Counter

    def pairs(counts) -> int:
        return sum(c * (c - 1) // 2 for c in counts)

    both = pairs(Counter(zip(gold, pred)).values())
    p, g = pairs(Counter(pred).values()), pairs(Counter(gold).values())
    return 2 * both / (p + g) if p + g else 1.0


def dominant(args, real: bool) -> None:
    import bench_year as by

    if real:
        from storyclust.embed import load_embedder

        emb = load_embedder()
        sizes = ((600, 60), (600, 240), (500, 300))
    else:
        emb = by.SyntheticEmbedder(by.template_words(), seed=7)
        sizes = ((2000, 60), (2000, 200), (2000, 400), (2000, 800), (1000, 600))
    print(f"\n## 2{'b' if real else ''}. A dominant story ({emb.model_id if real else 'stand-in embedder'}, "
          "two nights one-shot)\n")
    print("| evergreen share | articles | " + " | ".join(f"w={w}: pieces / pair F1" for w in args.weights) + " |")
    print("|---|--:|" + "--:|" * len(args.weights))
    for per, ev in sizes:
        news = by.YearOfNews(10, per, ev, seed=args.seed)
        arts = [a for k in (1, 2) for a in news.night(k, by.START + timedelta(days=k - 1)).articles]
        gold = [a.id.split(".", 1)[0] for a in arts]
        X = embed(arts, emb)  # once; each setting clusters the same vectors from its own starting means
        cells = []
        for label in args.weights:
            options = options_for(label)
            stories = cluster_articles(arts, embeddings=X, options=options,
                                       language_means=starting_language_means(emb, options))
            story_of = stories_to_story_of(stories)
            pieces = len({story_of[a.id] for a in arts if a.id.startswith("ev.")})
            cells.append(f"{pieces} / {pair_f1(gold, [story_of[a.id] for a in arts]):.3f}")
        print(f"| {ev / per:.0%} | {len(arts):,} | " + " | ".join(cells) + " |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--weights", nargs="+", default=["8", "32", "128", "512", "1e6"],
                        help="reference_weight settings; the first is the one gains are measured against")
    parser.add_argument("--skip-quality", action="store_true", help="only the dominant-story part")
    parser.add_argument("--real-model", action="store_true",
                        help="the dominant-story part also with the default model (~2 minutes of embedding)")
    args = parser.parse_args(argv)
    print(f"CPU: {cpu_model()}, {len(os.sched_getaffinity(0))} cores usable")
    t0 = time.perf_counter()
    if not args.skip_quality:
        quality(args)
    dominant(args, real=False)
    if args.real_model:
        dominant(args, real=True)
    print(f"\nwhole benchmark: {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
