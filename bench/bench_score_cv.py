#!/usr/bin/env python
"""The learnt pair score through the clusterer: 5-fold CV on SemEval dev + extra (issue 24).

``bench_pair_score.py`` asked whether a learnt score classifies pairs better at one threshold;
this bench asks the question that decides a default: do the **stories** get better when the
clusterer's edges and average linkage use :class:`storyclust.score.PairScore` in place of
``cosine + 0.1 x numbers``?

Per fold (folds: :func:`storyclust.evaluate.semeval_folds` on the pair graph of base ids, so a
machine translation and its source are in one fold; seed 0), a :class:`PairScore` is fitted on
the training folds' pairs (features from :func:`storyclust.score.labelled_features`; alpha x rank
chosen on the training folds, leave one training fold out) and every distinct article of both
files is clustered with :func:`storyclust.pipeline.cluster_articles` (the one recipe both drivers
use) with ``ClusterOptions(pair_score=score)``; the held-out fold's pairs are scored
(:func:`storyclust.evaluate.score_semeval_pairs`: pair F1 of the stories, all pairs and
cross-lingual; Pearson of the score with -Overall). The baseline clusters once with today's
defaults (Pearson of ``cos + 0.1 x numbers``). Reported: mean ± sd over folds, the paired per-fold
gain ± SE (sd/sqrt(5)), F1 per language pair over the pooled held-out predictions with a 95%
bootstrap interval of the paired difference, runtime and peak RSS.

Rule: a default ships only when the F1 gain (all pairs) exceeds its SE.

Vectors: the two views cached by ``bench_pair_score.py --cache`` (the model is not loaded when
the cache matches; otherwise they are embedded, several minutes of CPU), summed and normalised
as :func:`storyclust.embed.embed_articles` does.

    nice -n 19 python bench/bench_score_cv.py [--cache /tmp/pair_score_views.npz] [--seed 0]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pair_score import (RATINGS, add_data_arguments, base_id_folds, cpu_model,  # noqa: E402
                              load_or_embed_views, load_pairs, neutral, peak_rss_mb)

from storyclust.evaluate import paired_gain, score_semeval_pairs, stories_to_story_of, summarize_folds  # noqa: E402
from storyclust.pipeline import cluster_articles  # noqa: E402
from storyclust.score import FEATURES, PairScore, labelled_features  # noqa: E402
from storyclust.settings import ClusterOptions  # noqa: E402

K = 5
METRICS = ("f1", "xl_f1", "pearson", "xl_pearson")


def figures(res: dict) -> dict:
    a, x = res["all"], res["cross_lingual"]
    return {"f1": a["f1"], "xl_f1": x["f1"], "pearson": a["pearson"], "xl_pearson": x["pearson"],
            "precision": a["precision"], "recall": a["recall"]}


def f1_of(pred: np.ndarray, same: np.ndarray) -> float:
    tp, p, a = int((pred & same).sum()), int(pred.sum()), int(same.sum())
    if tp == 0:
        return 0.0
    return 2 * tp / (p + a)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--threshold-grid", type=float, nargs="*", default=[],
                        help="diagnostic: also choose max_distance per fold among these values by training-pair F1, "
                             "for both the baseline and the score (e.g. 0.45 0.5 0.55)")
    parser.add_argument("--extra-seeds", type=int, nargs="*", default=[1, 2],
                        help="other fold seeds: F1 gains printed as a robustness check, not part of the verdict")
    args = parser.parse_args(argv)
    csvs = [p for p in (args.dev, args.extra) if p and str(p)]
    if any(not p.exists() for p in csvs):
        print("SemEval CSVs not found: skipped", file=sys.stderr)
        return 2
    t_start, cpu_start = time.perf_counter(), time.process_time()
    print(f"CPU: {cpu_model()}, {len(os.sched_getaffinity(0))} cores usable")
    data = load_pairs(csvs)
    table = data.table.reset_index(drop=True)
    articles = data.articles
    views = load_or_embed_views(articles, csvs, args.cache)
    print("views:", views.info.get("source"))
    avg = views.full + views.lead
    avg /= np.linalg.norm(avg, axis=1, keepdims=True)
    avg = avg.astype(np.float32)
    langs = [a.lang for a in articles]
    Z = neutral(avg, langs, views.means)
    t0 = time.perf_counter()
    F = labelled_features(articles, Z, table["id1"].tolist(), table["id2"].tolist())
    Y = table[[r.lower() for r in RATINGS]].to_numpy(dtype=np.float64)
    feat_s = time.perf_counter() - t0
    fold_of = base_id_folds(table, K, args.seed)
    overall = Y[:, RATINGS.index("Overall")]
    print(f"{len(articles)} articles, {len(table)} pairs; features in {feat_s:.1f} s; pairs per fold "
          f"{np.bincount(fold_of).tolist()}")

    def timed_cluster(options):
        t = time.perf_counter()
        stories = cluster_articles(articles, embeddings=avg, options=options, language_means=views.means)
        return stories_to_story_of(stories), time.perf_counter() - t

    base_story, base_s = timed_cluster(ClusterOptions())
    base_sim = F[:, 0] + ClusterOptions().number_weight * F[:, 1]
    rss_base = peak_rss_mb()
    base_folds, score_folds, score_times, scores = [], [], [], []
    pred_base = np.zeros(len(table), dtype=bool)
    pred_score = np.zeros(len(table), dtype=bool)
    sim_score = np.zeros(len(table))
    same_of = {}

    def same_pred(story_of, idx):
        return np.array([story_of.get(a) is not None and story_of.get(a) == story_of.get(b)
                         for a, b in zip(table["id1"][idx], table["id2"][idx])], dtype=bool)

    for f in range(K):
        tr, te = fold_of != f, fold_of == f
        score = PairScore.fit(F[tr], Y[tr], folds=fold_of[tr])
        scores.append(score)
        story_of, secs = timed_cluster(ClusterOptions(pair_score=score))
        score_times.append(secs)
        test = table[te]
        s_te = score(F[te])
        sim_score[te] = s_te
        sim_b = dict(zip(zip(test["id1"], test["id2"]), base_sim[te]))
        sim_s = dict(zip(zip(test["id1"], test["id2"]), s_te))
        base_folds.append(figures(score_semeval_pairs(test, base_story, sim_b)))
        score_folds.append(figures(score_semeval_pairs(test, story_of, sim_s)))
        idx = np.flatnonzero(te)
        pred_base[idx] = same_pred(base_story, idx)
        pred_score[idx] = same_pred(story_of, idx)
        print(f"fold {f}: alpha {score.params['alpha']:g} rank {score.params['rank']} max_bonus "
              f"{score.max_bonus():+.3f} | baseline F1 {base_folds[-1]['f1']:.3f} xl {base_folds[-1]['xl_f1']:.3f} | "
              f"score F1 {score_folds[-1]['f1']:.3f} xl {score_folds[-1]['xl_f1']:.3f} "
              f"r {score_folds[-1]['pearson']:.3f} ({secs:.1f} s)", flush=True)
    rss_all = peak_rss_mb()

    print(f"\n5-fold CV through the clusterer (seed {args.seed}); mean ± sd over held-out folds:")
    print(f"{'':<24}" + "".join(f"{m:>17}" for m in METRICS))
    for name, folds in (("baseline (today)", base_folds), ("learnt pair score", score_folds)):
        s = summarize_folds(folds, METRICS)
        print(f"{name:<24}" + "".join(f"{s[m]['mean']:>10.3f} ± {s[m]['sd']:.3f}" for m in METRICS))
    gains = {m: paired_gain(score_folds, base_folds, m) for m in METRICS}
    print(f"{'gain (mean ± SE)':<24}" + "".join(f"{gains[m]['mean']:>+10.3f} ± {gains[m]['se']:.3f}" for m in METRICS))
    g = paired_gain(score_folds, base_folds, "f1")
    print("per-fold F1 gain:", " ".join(f"{d:+.3f}" for d in g["folds"]))

    # per language pair, pooled held-out predictions, paired bootstrap of the F1 difference
    same = overall <= 1.5
    decided = same | (overall >= 3.0)
    lp = np.array(["-".join(sorted((a, b))) for a, b in zip(table["lang1"], table["lang2"])])
    rng = np.random.default_rng(0)
    print("\nper language pair (pooled held-out pairs; decided pairs only; 95% bootstrap interval of the gain):")
    print(f"{'pair':<8}{'pairs':>7}{'same':>6}{'F1 base':>9}{'F1 score':>10}{'gain':>8}   interval")
    for pair in sorted(set(lp), key=lambda p: -int(((lp == p) & decided).sum())):
        idx = np.flatnonzero((lp == pair) & decided)
        if not same[idx].any():
            continue
        fb, fs = f1_of(pred_base[idx], same[idx]), f1_of(pred_score[idx], same[idx])
        boots = []
        for _ in range(args.bootstrap):
            b = rng.choice(idx, len(idx))
            boots.append(f1_of(pred_score[b], same[b]) - f1_of(pred_base[b], same[b]))
        lo, hi = np.percentile(boots, [2.5, 97.5])
        print(f"{pair:<8}{len(idx):>7}{int(same[idx].sum()):>6}{fb:>9.3f}{fs:>10.3f}{fs - fb:>+8.3f}   "
              f"[{lo:+.3f}, {hi:+.3f}]")

    u = np.array([s.linear_form()[0] for s in scores])
    c = np.array([s.linear_form()[1] for s in scores])
    print("\nscore on the cosine scale, mean over folds: cos + " + " + ".join(
        f"{w:+.3f} x {n}" for n, w in zip(FEATURES[1:], u.mean(axis=0))) + f" {c.mean():+.3f}")
    if args.threshold_grid:
        print(f"\ndiagnostic: max_distance chosen per fold among {args.threshold_grid} by F1 on the training pairs")
        grid_base, grid_score = [], []
        base_by_md = {md: timed_cluster(ClusterOptions(max_distance=md))[0] for md in args.threshold_grid}
        for f in range(K):
            tr, te = fold_of != f, fold_of == f
            train, test = table[tr], table[te]
            picked = {}
            for name, make in (("baseline", lambda md: base_by_md[md]),
                               ("score", lambda md: timed_cluster(ClusterOptions(max_distance=md,
                                                                                 pair_score=scores[f]))[0])):
                best = None
                for md in args.threshold_grid:
                    story_of = make(md)
                    f1_train = score_semeval_pairs(train, story_of)["all"]["f1"]
                    if best is None or f1_train > best[0] + 1e-12:
                        best = (f1_train, md, story_of)
                picked[name] = best
            sim_b = dict(zip(zip(test["id1"], test["id2"]), base_sim[te]))
            sim_s = dict(zip(zip(test["id1"], test["id2"]), scores[f](F[te])))
            grid_base.append(figures(score_semeval_pairs(test, picked["baseline"][2], sim_b)))
            grid_score.append(figures(score_semeval_pairs(test, picked["score"][2], sim_s)))
            print(f"  fold {f}: chosen max_distance baseline {picked['baseline'][1]}, score {picked['score'][1]}; "
                  f"F1 {grid_base[-1]['f1']:.3f} / {grid_score[-1]['f1']:.3f}", flush=True)
        for name, folds in (("baseline, threshold per fold", grid_base), ("score, threshold per fold", grid_score)):
            sm = summarize_folds(folds, METRICS)
            print(f"  {name:<30}" + "".join(f"{sm[m]['mean']:>10.3f} ± {sm[m]['sd']:.3f}" for m in ("f1", "xl_f1")))
        grid_gain = {m: paired_gain(grid_score, grid_base, m) for m in ("f1", "xl_f1")}
        print("  gain (mean ± SE): " + " ".join(f"{m} {g['mean']:+.3f} ± {g['se']:.3f}" for m, g in grid_gain.items()))
    for seed in args.extra_seeds:
        other = base_id_folds(table, K, seed)
        b_f, s_f = [], []
        for f in range(K):
            tr, te = other != f, other == f
            score = PairScore.fit(F[tr], Y[tr], folds=other[tr])
            story_of, _ = timed_cluster(ClusterOptions(pair_score=score))
            test = table[te]
            s_te = dict(zip(zip(test["id1"], test["id2"]), score(F[te])))
            b_te = dict(zip(zip(test["id1"], test["id2"]), base_sim[te]))
            b_f.append(figures(score_semeval_pairs(test, base_story, b_te)))
            s_f.append(figures(score_semeval_pairs(test, story_of, s_te)))
        print(f"robustness, fold seed {seed}: gain (mean ± SE) " + " ".join(
            f"{m} {paired_gain(s_f, b_f, m)['mean']:+.3f} ± {paired_gain(s_f, b_f, m)['se']:.3f}" for m in METRICS),
            flush=True)
    print(f"\nruntime: clustering {len(articles)} articles: baseline {base_s:.1f} s, with the score "
          f"{np.mean(score_times):.1f} ± {np.std(score_times, ddof=1):.1f} s per fold; features {feat_s:.1f} s; "
          f"total {time.perf_counter() - t_start:.1f} s wall, {time.process_time() - cpu_start:.1f} s CPU")
    print(f"peak RSS (ru_maxrss): after the baseline clustering {rss_base:.0f} MiB, after the seed-0 CV "
          f"{rss_all:.0f} MiB, at the end {peak_rss_mb():.0f} MiB")
    verdict = g["mean"] > g["se"]
    print(f"\nverdict: {'SHIP' if verdict else 'NO DEFAULT'} (F1 gain {g['mean']:+.3f}, SE {g['se']:.3f}; "
          "rule: ship only when the gain exceeds its SE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
