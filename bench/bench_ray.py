"""Articles/s of the one-shot recipe, local vs ``--engine ray`` with 1 and 2 workers, on this machine.

    python bench/bench_ray.py                    # 300 SemEval dev articles, real default model, ~2 min on 2 cores
    python bench/bench_ray.py --articles 1000 --small 20

Each configuration runs :func:`storyclust.pipeline.cluster_articles` on the same articles:

* ``local``: this process, the embedder's default threads (all cores);
* ``ray-1``: a local Ray cluster (``ray.init(num_cpus=2)``), one embedding actor with one CPU;
* ``ray-2``: the same cluster, two actors with one CPU each (the clustering tasks use both CPUs
  in both Ray configurations).

Reported: wall seconds and articles/s end to end, the embedding part alone, and whether the
stories (partition and IDs) equal the local ones. Every Ray run includes starting its actors and
loading the model in each of them (Ray Data builds a new actor pool per call), which is the fixed
overhead the ``--small`` line measures. The articles are the SemEval dev articles
(../shared/eval/semeval_dev.csv), else data/samples/. Not a timed test: numbers depend on the
machine and on what else runs on it (the load average is printed).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CSV = ROOT.parent / "shared" / "eval" / "semeval_dev.csv"


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def load_articles(n: int):
    if CSV.is_file():
        from storyclust.evaluate import load_semeval

        return list(load_semeval(str(CSV)).articles)[:n], "SemEval dev"
    from storyclust.ingest import ingest_paths
    from storyclust.types import Article

    return [a for a in ingest_paths([str(ROOT / "data" / "samples")]) if isinstance(a, Article)][:n], "data/samples"


def key(stories) -> list:
    return [(s.story_id, tuple(m.article.id for m in s.members)) for s in stories]


def timed(articles, embedder, engine):
    """(embedding seconds, clustering seconds, stories): every article embedded once, then the recipe."""
    from storyclust import pipeline

    t0 = time.perf_counter()
    X = pipeline.embed(articles, embedder, engine=engine)
    t_embed = time.perf_counter() - t0
    t0 = time.perf_counter()
    stories = pipeline.cluster_articles(articles, embedder, embeddings=X, engine=engine)
    return t_embed, time.perf_counter() - t0, stories


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=300)
    parser.add_argument("--small", type=int, default=20, help="articles of the overhead run")
    args = parser.parse_args(argv)
    import ray

    from storyclust.engine.ray_engine import RayEngine
    from storyclust.settings import EmbedOptions

    articles, source = load_articles(args.articles)
    small = articles[: args.small]
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores), ray {ray.__version__}, {len(articles)} {source} articles, "
          f"load average {os.getloadavg()[0]:.1f}")
    options = EmbedOptions()
    t0 = time.perf_counter()
    embedder = options.load()
    print(f"driver model load {time.perf_counter() - t0:.1f} s ({embedder.model_id})")
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    print(f"ray.init (local cluster) {time.perf_counter() - t0:.1f} s")
    configs = {"local": None, "ray-1": RayEngine(workers=1).for_embedder(options),
               "ray-2": RayEngine(workers=2).for_embedder(options)}
    base = None
    print(f"{'engine':7s} {'embed s':>8s} {'embed art/s':>11s} {'cluster s':>9s} {'total art/s':>11s} "
          f"{'small s':>8s} {'same stories':>12s}  load")
    for name, engine in configs.items():
        t_small = sum(timed(small, embedder, engine)[:2])
        t_embed, t_cluster, stories = timed(articles, embedder, engine)
        base = base if base is not None else key(stories)
        print(f"{name:7s} {t_embed:8.1f} {len(articles) / t_embed:11.1f} {t_cluster:9.2f} "
              f"{len(articles) / (t_embed + t_cluster):11.1f} {t_small:8.1f} {str(key(stories) == base):>12s}  "
              f"{os.getloadavg()[0]:.1f}", flush=True)
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
