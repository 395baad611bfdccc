#!/usr/bin/env python
"""Train the default adapter on the SemEval dev pairs and decide, by cross-validation, whether it ships.

Cross-validates a few :class:`storyclust.tune.PairHead` settings (5 folds by connected component
of the pair graph, every article clustered together, ``max_distance`` chosen again on each fold's
training pairs) against today's space on the same folds, fits the best on every pair, and writes
the adapter folder. The default moves only when the CV mean gain in pair F1 (all pairs) exceeds
its standard error (fold-by-fold differences); ``--ship`` writes into
``src/storyclust/adapters/default/`` only then (``--force`` overrides, for experiments only).

The adapter holds weights only (a 384-dim map; no text of the training data), with a manifest
and a README stating the data's provenance.

Usage::

    python bench/train_default_adapter.py [--csv ../shared/eval/semeval_dev.csv] [--views-cache PATH.npz]
        [-o /tmp/default-adapter] [--ship [--force]]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_quality import DEFAULT_CSV, RssSampler, load_or_embed_views, peak_rss_mb  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHIP_DIR = REPO / "src" / "storyclust" / "adapters" / "default"

#: The candidates cross-validated here: the best of the screening in bench/README.md.
CANDIDATES = [
    {"loss": "rating", "rank": 32, "basis": "pca", "weight_decay": 1e-3},
    {"loss": "rating", "rank": 64, "basis": "pca", "weight_decay": 1e-3},
    {"loss": "rating", "rank": 4, "basis": "free", "weight_decay": 1e-3},
    {"loss": "contrastive", "rank": 16, "basis": "pca", "weight_decay": 3e-3, "temperature": 0.1},
]
THRESHOLDS = {"max_distance": [0.46, 0.48, 0.50, 0.52]}

PROVENANCE = ("Trained on the 1,216 labelled pairs of semeval_dev.csv: SemEval-2022 Task 8 (Multilingual News "
              "Article Similarity) evaluation pairs, as HFL's winning team published them (title + body truncated "
              "to ~256 XLM-R tokens), human 'Overall' ratings. Third-party news text, used for evaluation and "
              "tuning only: the adapter holds weights (a linear map of the embedding) and no text.")

README = """# Default adapter

A linear map of the multilingual-e5-small vectors (`f(x) = x + (x A) B^T`, unit rows after),
learnt by `bench/train_default_adapter.py` from labelled pairs; see `adapter.json` for the base
model id, the SHA-256 of the training data, the settings and the cross-validated scores.

Training data: SemEval-2022 Task 8 ("Multilingual News Article Similarity") evaluation pairs, as
HFL published them (`semeval_dev.csv`). This folder holds **weights only**: no text, no ids.
"""


def main(argv=None) -> int:
    from storyclust.evaluate import load_semeval
    from storyclust.settings import ClusterOptions
    from storyclust import tune

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--views-cache", type=Path, help="reuse/save the raw views (.npz)")
    parser.add_argument("-o", "--output", type=Path, default=Path("/tmp/storyclust-default-adapter"))
    parser.add_argument("--ship", action="store_true", help=f"copy into {SHIP_DIR} when CV says it helps")
    parser.add_argument("--force", action="store_true", help="with --ship: copy even when it does not")
    args = parser.parse_args(argv)
    if not args.csv.exists():
        print(f"SemEval CSV not found: {args.csv}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    data = tune.load_labelled(semeval=[str(args.csv)])
    sem = load_semeval(str(args.csv))
    assert [a.id for a in sem.articles] == [a.id for a in data.articles]
    views, info = load_or_embed_views(sem.articles, args.csv, args.views_cache)
    with RssSampler() as rss:
        adapter, report = tune.tune_adapter(data, views, info["model_id"], grid=CANDIDATES, k=5, random_state=0,
                                            cluster_options=ClusterOptions(), threshold_grid=THRESHOLDS,
                                            provenance=PROVENANCE, name="default")
    secs = time.perf_counter() - t0
    b = report["baseline"]["summary"]
    print(f"5-fold CV, max_distance chosen on each fold's training pairs from {THRESHOLDS['max_distance']}")
    print(f"{'setting':<70}{'F1':>16}{'xl F1':>16}{'Pearson':>16}")
    pm = lambda s, k: f"{s[k]['mean']:.3f} ± {s[k]['sd']:.3f}"  # noqa: E731
    print(f"{'no adapter':<70}{pm(b, 'f1'):>16}{pm(b, 'xl_f1'):>16}{pm(b, 'pearson'):>16}")
    from storyclust.evaluate import paired_gain

    for c in report["candidates"]:
        g = paired_gain(c["folds"], report["baseline"]["folds"])
        label = json.dumps({k: v for k, v in c["params"].items() if k != "random_state"})
        print(f"{label:<70}{pm(c['summary'], 'f1'):>16}{pm(c['summary'], 'xl_f1'):>16}{pm(c['summary'], 'pearson'):>16}"
              f"  F1 gain {g['mean']:+.4f} (SE {g['se']:.4f})")
    gain = report["gain"]
    helps = gain["f1"]["mean"] > gain["f1"]["se"]
    print(f"chosen {report['chosen']['params']}: F1 gain {gain['f1']['mean']:+.4f} (SE {gain['f1']['se']:.4f}), "
          f"xl {gain['xl_f1']['mean']:+.4f} (SE {gain['xl_f1']['se']:.4f}), Pearson {gain['pearson']['mean']:+.4f} "
          f"(SE {gain['pearson']['se']:.4f}) -> {'ships' if helps else 'does NOT ship (gain <= SE)'}")
    adapter.manifest["ships"] = bool(helps)
    adapter.save(args.output)
    (args.output / "README.md").write_text(README, encoding="utf-8")
    print(f"adapter written to {args.output} (sha256 {adapter.sha256[:12]}); {secs:.0f} s, CV peak RSS "
          f"{rss.peak_mb:.0f} MiB, process peak {peak_rss_mb():.0f} MiB")
    if args.ship:
        if not helps and not args.force:
            print("not shipped: the CV gain does not exceed its standard error", file=sys.stderr)
            return 1
        if SHIP_DIR.exists():
            shutil.rmtree(SHIP_DIR)
        shutil.copytree(args.output, SHIP_DIR)
        print(f"shipped into {SHIP_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
