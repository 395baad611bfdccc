"""Embedding recipes: tokens per article and seconds against cross-validated quality.

An article's vector is the normalised sum of the unit vectors of one or more *views* of its
text. Each view costs a forward pass, and on a CPU the pass costs in proportion to its tokens
(onnx-int8 here: about 5,300-6,200 tokens/s at 64-256 tokens per text), so the recipe sets most of
what a run waits for. This script embeds the dev file's articles under each view once (cached in
``--cache``), then scores every recipe by 5-fold CV (folds by connected component of the pair
graph, all articles clustered together) with the default thresholds and with ``max_distance``
chosen inside each fold's training pairs, and prints the paired gain (mean and standard error
over the folds) against the reference recipe.

Views:
    full           embedding_text(article), up to the embedder's max_tokens (256)
    full@T         the same text through an embedder with max_tokens T
    lead:C         embedding_text(article, max_chars=C)
    next:C1:C2     embedding_text(article, max_chars=C2) minus its first C1 characters' view

    python bench/bench_views.py --recipes full+lead:600 lead:600 lead:800 lead:300+lead:800
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np

from bench_ingest import cpu_model  # noqa: E402  (bench/ is on sys.path when run as a script)
from storyclust.embed import embedding_text, load_embedder
from storyclust.evaluate import cross_validate_semeval, load_semeval, paired_gain
from storyclust.tune import means_from_calibration

DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "semeval_dev.csv"
REFERENCE = "full+lead:600"
MAX_DISTANCE_GRID = (0.44, 0.46, 0.48, 0.50, 0.52, 0.54, 0.56)


def view_texts(view: str, articles) -> tuple[list[str], int]:
    """(one text per article, the embedder's max_tokens) for a view name; '' = no such view."""
    kind, *args = view.split(":")
    if kind.startswith("full"):
        tokens = int(kind.split("@")[1]) if "@" in kind else 256
        return [embedding_text(a) for a in articles], tokens
    if kind == "lead":
        return [embedding_text(a, max_chars=int(args[0])) for a in articles], 256
    if kind == "next":
        start, stop = int(args[0]), int(args[1])
        out = []
        for a in articles:
            head, whole = embedding_text(a, max_chars=start), embedding_text(a, max_chars=stop)
            out.append(whole[len(head):].strip())
        return out, 256
    raise ValueError(f"unknown view {view!r}")


class ViewStore:
    """Raw view vectors of the dev articles, embedded once per view and kept in an .npz."""

    def __init__(self, articles, cache: Path) -> None:
        self.articles, self.cache = articles, cache
        self.vectors: dict[str, np.ndarray] = {}
        self.stats: dict[str, dict] = {}
        self._embedders: dict[int, object] = {}
        self._key = hashlib.sha1("".join(a.id + a.text for a in articles).encode()).hexdigest()[:12]
        if cache.exists():
            z = np.load(cache, allow_pickle=False)
            meta = json.loads(str(z["meta"]))
            if meta.get("key") == self._key:
                self.stats = meta["stats"]
                self.vectors = {k: z[k] for k in z.files if k != "meta"}

    def embedder(self, max_tokens: int):
        if max_tokens not in self._embedders:
            self._embedders[max_tokens] = load_embedder(max_tokens=max_tokens)
        return self._embedders[max_tokens]

    def get(self, view: str) -> np.ndarray:
        if view in self.vectors:
            return self.vectors[view]
        texts, max_tokens = view_texts(view, self.articles)
        embedder = self.embedder(max_tokens)
        keep = [i for i, t in enumerate(texts) if t]
        tokens = self.count_tokens(view)
        t0 = time.perf_counter()
        X = np.zeros((len(texts), embedder.dim), dtype=np.float32)
        X[keep] = embedder.encode([texts[i] for i in keep])
        secs = time.perf_counter() - t0
        self.vectors[view] = X
        self.stats[view] = {"texts": len(keep), "tokens": tokens, "secs": secs, "model_id": embedder.model_id,
                            "counted": True}
        print(f"  embedded view {view}: {len(keep)} texts, {tokens} tokens, {secs:.1f} s "
              f"({(tokens or 0) / secs:.0f} tokens/s)", file=sys.stderr, flush=True)
        self.save()
        return X

    def count_tokens(self, view: str) -> Optional[int]:
        """Tokens the model sees for this view (prompt included, no padding); None if the backend hides them."""
        texts, max_tokens = view_texts(view, self.articles)
        lengths = getattr(self.embedder(max_tokens), "lengths", None)  # the embedder's own batching counts
        return sum(lengths([t for t in texts if t])) if lengths is not None else None

    def calibration(self) -> tuple[np.ndarray, np.ndarray]:
        if "calib" not in self.vectors:
            records = [json.loads(line) for line in
                       resources.files("storyclust").joinpath("calibration.jsonl").read_text("utf-8").splitlines()
                       if line.strip()]
            self.vectors["calib"] = self.embedder(256).encode([r["text"] for r in records])
            self.stats["calib_langs"] = [r["lang"] for r in records]
            self.save()
        return self.vectors["calib"], np.array(self.stats["calib_langs"])

    def save(self) -> None:
        tmp = self.cache.with_suffix(".tmp.npz")
        np.savez(tmp, meta=json.dumps({"key": self._key, "stats": self.stats}), **self.vectors)
        tmp.replace(self.cache)


def recipe_vectors(store: ViewStore, recipe: str) -> np.ndarray:
    total = None
    for view in recipe.split("+"):
        X = store.get(view)
        total = X.astype(np.float64) if total is None else total + X
    norms = np.linalg.norm(total, axis=1, keepdims=True)
    return (total / np.maximum(norms, 1e-12)).astype(np.float32)


def recipe_cost(store: ViewStore, recipe: str) -> tuple[float, float]:
    """(tokens per article, embedding seconds per article) of a recipe, summed over its views."""
    n = len(store.articles)
    views = recipe.split("+")
    for v in views:
        if not store.stats[v].get("counted"):
            store.stats[v].update(tokens=store.count_tokens(v), counted=True)
    return (sum(store.stats[v]["tokens"] or 0 for v in views) / n, sum(store.stats[v]["secs"] for v in views) / n)


def _pm(summary: dict, metric: str) -> str:
    s = summary[metric]
    return f"{s['mean']:.3f} ± {s['sd']:.3f}"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/storyclust-bench-views.npz"))
    parser.add_argument("--recipes", nargs="+", default=[REFERENCE, "lead:600", "lead:800", "lead:1000"])
    parser.add_argument("--reference", default=REFERENCE)
    args = parser.parse_args(argv)
    if not args.csv.exists():
        print(f"no labelled pairs at {args.csv}", file=sys.stderr)
        return 2
    data = load_semeval(str(args.csv))
    store = ViewStore(data.articles, args.cache)
    calib, langs = store.calibration()
    means = means_from_calibration(calib, langs)
    recipes = [args.reference] + [r for r in args.recipes if r != args.reference]
    print(f"# {cpu_model()}; {len(data.articles)} articles, {len(data.pairs)} pairs of {args.csv.name}; "
          f"embedder {store.embedder(256).model_id}")
    print("# 5-fold CV by pair-graph component, all articles clustered together; mean ± sd over folds; "
          f"gains are paired against {args.reference} (mean, SE)")
    header = (f"{'recipe':<28}{'tok/art':>8}{'ms/art':>8}{'F1':>15}{'xl F1':>15}{'Pearson':>15}"
              f"{'F1 gain':>16}{'xl gain':>16}{'nested F1':>15}{'nested xl':>15}{'nested gain':>16}")
    print(header)
    ref = None
    for recipe in recipes:
        X = recipe_vectors(store, recipe)
        fixed = cross_validate_semeval(data, X, language_means=means)
        nested = cross_validate_semeval(data, X, language_means=means, grid={"max_distance": MAX_DISTANCE_GRID})
        if ref is None:
            ref = (fixed, nested)
        tokens, secs = recipe_cost(store, recipe)
        g = paired_gain(fixed["folds"], ref[0]["folds"])
        gx = paired_gain(fixed["folds"], ref[0]["folds"], "xl_f1")
        gn = paired_gain(nested["folds"], ref[1]["folds"])
        print(f"{recipe:<28}{tokens:>8.0f}{secs * 1000:>8.1f}{_pm(fixed['summary'], 'f1'):>15}"
              f"{_pm(fixed['summary'], 'xl_f1'):>15}{_pm(fixed['summary'], 'pearson'):>15}"
              f"{g['mean']:>+9.3f} ({g['se']:.3f}){gx['mean']:>+9.3f} ({gx['se']:.3f})"
              f"{_pm(nested['summary'], 'f1'):>15}{_pm(nested['summary'], 'xl_f1'):>15}"
              f"{gn['mean']:>+9.3f} ({gn['se']:.3f})", flush=True)
        chosen = [f["params"].get("max_distance") for f in nested["folds"]]
        print(f"{'':<28}nested max_distance per fold: {chosen}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
