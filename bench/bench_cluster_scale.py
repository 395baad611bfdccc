"""Clustering time and peak memory at 1k, 10k and 100k articles.

Synthetic articles are drawn around REAL embeddings, so the geometry (anisotropy,
language offsets, squeezed cosines) is the model's own:

* the real vectors are the default model's embeddings of every distinct article of
  ../shared/eval/semeval_dev.csv (computed once and cached, or given with --embeddings);
* each synthetic story starts from one real article: its language offset is removed
  (the mean of its language), noise is added for the story's own centre, and each member
  gets the offset of a randomly drawn language back plus member noise; noise scales are
  set so that within-story cosines (~0.9) and between-story cosines (~0.8) match what the
  real data shows;
* stories have 1-6 members (a long tail of singletons, as in real news), and dates are
  spread over --days days, members of a story within 2 days of each other;
* each member's text holds most of its story's three numbers plus its own time of day and the
  year, so the shared-number evidence (``ClusterOptions.number_weight``) is exercised as in a
  real run; ``--no-numbers`` leaves it out.

Each size runs in a fresh subprocess so that its peak RSS is its own. Prints, per size,
the clustering time, articles/s, peak RSS and the adjusted Rand index against the
generating stories, with and without dates (without dates an exact search would compare
every pair: the worst case). Above ``ClusterOptions.approximate_above`` articles the
neighbour search is approximate; ``--compare-exact`` also times the exact search there and
prints the ARI between the two partitions.

    python bench/bench_cluster_scale.py                # 1k, 10k, 100k
    python bench/bench_cluster_scale.py --sizes 1000 10000
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEMEVAL = ROOT.parent / "shared" / "eval" / "semeval_dev.csv"
CACHE = Path(os.environ.get("STORYCLUST_CACHE_DIR", Path.home() / ".cache" / "storyclust")) / "bench"


def real_embeddings(path: str | None) -> tuple[np.ndarray, list[str]]:
    """The default model's embeddings of the SemEval dev articles (cached), with their languages."""
    if path:
        data = np.load(path, allow_pickle=True)
        return data["X"], list(data["langs"])
    CACHE.mkdir(parents=True, exist_ok=True)
    cached = CACHE / "semeval_dev_default.npz"
    if cached.exists():
        data = np.load(cached, allow_pickle=True)
        return data["X"], list(data["langs"])
    if not SEMEVAL.exists():
        sys.exit(f"need {SEMEVAL} or --embeddings FILE.npz (arrays X, langs)")
    from storyclust.embed import embed_articles, load_embedder
    from storyclust.evaluate import load_semeval

    data = load_semeval(SEMEVAL)
    X = embed_articles(data.articles, load_embedder(), progress=sys.stderr.isatty())
    langs = [a.lang for a in data.articles]
    np.savez(cached, X=X, langs=np.array(langs))
    return X, langs


def synthesize(X: np.ndarray, langs: list[str], n: int, days: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    names = sorted(set(langs))
    L = np.array(langs)
    means = {lang: X[L == lang].mean(0) for lang in names}
    d = X.shape[1]
    sizes = []
    while sum(sizes) < n:
        sizes.append(int(rng.choice([1, 1, 1, 2, 2, 3, 4, 6])))
    sizes[-1] -= sum(sizes) - n
    out = np.empty((n, d), np.float32)
    out_langs, gold, dates, texts = [], np.empty(n, np.int64), np.empty(n), []
    row = 0
    for s, size in enumerate(sizes):
        base = rng.integers(len(X))
        centre = X[base] - means[langs[base]] + rng.normal(0, 0.6 / np.sqrt(d), d)
        day = rng.uniform(0, days)
        facts = rng.integers(1, 5000, size=3)  # the story's numbers (a toll, an amount, a score)
        for _ in range(size):
            lang = names[rng.integers(len(names))]
            v = centre + means[lang] + rng.normal(0, 0.2 / np.sqrt(d), d)
            out[row] = v / np.linalg.norm(v)
            out_langs.append(lang)
            gold[row] = s
            dates[row] = day + rng.uniform(0, 2)
            kept = facts[rng.random(3) < 0.7]  # each report repeats most of them, plus its own time and year
            texts.append(" ".join([*map(str, kept), f"{rng.integers(0, 24)}:{rng.integers(0, 60):02d}", "2026"]))
            row += 1
    return out, out_langs, gold, dates, texts


def _peak_rss_kib() -> int:
    """This process's peak resident size (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def one_size(args) -> dict:
    """Runs in its own process: synthesise, cluster with and without dates, report."""
    from datetime import datetime, timedelta, timezone

    from sklearn.metrics import adjusted_rand_score

    from storyclust.cluster import ClusterOptions, StoryClusterer

    X, langs = real_embeddings(args.embeddings)
    Xs, L, gold, days, texts = synthesize(X, langs, args.one, args.days)
    texts = None if args.no_numbers else texts
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    published = [t0 + timedelta(days=float(x)) for x in days]
    result = {"n": args.one}
    for label, dates in (("dated", published), ("undated", None)):
        if label == "undated" and args.one > args.max_undated:
            continue
        start = time.perf_counter()
        labels = StoryClusterer(ClusterOptions()).fit_predict(Xs, langs=L, published=dates, texts=texts)
        secs = time.perf_counter() - start
        result[label] = {"seconds": round(secs, 2), "articles_per_s": round(args.one / secs, 1),
                         "ari": round(adjusted_rand_score(gold, labels), 4), "stories": int(labels.max() + 1)}
        if args.compare_exact and args.one > ClusterOptions().approximate_above:
            start = time.perf_counter()
            exact = StoryClusterer(ClusterOptions(approximate_above=args.one)).fit_predict(Xs, langs=L, published=dates,
                                                                                           texts=texts)
            result[label]["exact_seconds"] = round(time.perf_counter() - start, 2)
            result[label]["exact_ari"] = round(adjusted_rand_score(gold, exact), 4)
            result[label]["ari_vs_exact"] = round(adjusted_rand_score(exact, labels), 4)
    result["peak_rss_mb"] = round(_peak_rss_kib() / 1024, 1)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--days", type=float, default=90.0, help="date spread of the synthetic corpus")
    ap.add_argument("--max-undated", type=int, default=100000, help="skip the undated run above this size")
    ap.add_argument("--embeddings", help="npz with X (float32 [n, d]) and langs, instead of SemEval")
    ap.add_argument("--compare-exact", action="store_true",
                    help="above the approximate-search size, also run the exact search and compare")
    ap.add_argument("--no-numbers", action="store_true",
                    help="cluster without the synthetic texts' shared numbers (embedding cosine alone)")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_size(args)))
        return
    real_embeddings(args.embeddings)  # compute the cache once, outside the timed children
    print(f"{'articles':>9} {'dated s':>8} {'art/s':>9} {'ARI':>6} {'undated s':>10} {'art/s':>9} {'ARI':>6} {'peak MB':>8}")
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--days", str(args.days),
               "--max-undated", str(args.max_undated)] + (["--embeddings", args.embeddings] if args.embeddings else [])
        cmd += ["--compare-exact"] if args.compare_exact else []
        cmd += ["--no-numbers"] if args.no_numbers else []
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        d, u = r.get("dated", {}), r.get("undated", {})
        print(f"{n:>9} {d.get('seconds', '-'):>8} {d.get('articles_per_s', '-'):>9} {d.get('ari', '-'):>6} "
              f"{u.get('seconds', '-'):>10} {u.get('articles_per_s', '-'):>9} {u.get('ari', '-'):>6} "
              f"{r['peak_rss_mb']:>8}", flush=True)
        for label, x in (("dated", d), ("undated", u)):
            if "exact_seconds" in x:
                print(f"{'':>9} {label} exact search: {x['exact_seconds']} s, ARI {x['exact_ari']}; "
                      f"approximate vs exact partition ARI {x['ari_vs_exact']}", flush=True)


if __name__ == "__main__":
    main()
