"""Learn "same story" from labelled pairs: a small linear head on the frozen embedding.

The head is a residual low-rank map of the model's vectors (optionally with a per-dimension
scale), ``f(x) = s * x + (x A) B^T``, started at the identity (``s = 1``, ``B = 0``) and
trained with a pairwise loss on the language-neutral vectors the clusterer compares
(:func:`storyclust.evaluate.clustering_space`):

* ``loss="contrastive"``: a logistic loss on ``(cos - (1 - margin)) / temperature`` for gold
  "same story" pairs (rating <= 1.5) against gold "different" pairs (>= 3.0) and sampled
  random pairs (``negatives`` per labelled pair, almost always different stories), so the
  clustering threshold ``1 - max_distance`` keeps its meaning;
* ``loss="rating"``: least squares of the cosine against the straight line that today's cosine
  draws through the ratings (so the scale is kept), every labelled pair counted.

Weight decay pulls ``A``, ``B`` to 0 and ``s`` to 1: today's space. ``rank`` and
``weight_decay`` are chosen by cross-validation (:func:`cross_validate_head`; folds from
:func:`storyclust.evaluate.semeval_folds`), never on the pairs they are scored on.

The fitted head is saved as an :class:`~storyclust.embed.adapter.Adapter` (the map plus a manifest:
base model id, training data SHA-256, settings, CV scores, provenance) and applied by
:class:`~storyclust.embed.adapter.AdaptedEmbedder`, whose ``model_id`` is the base id plus
``|adapter=<sha12>``; both live in :mod:`storyclust.embed.adapter` (below this module: the
embedder applies an adapter without importing the trainer) and are re-exported here.

The head is linear and has no bias, so applying it to raw vectors and then subtracting the
(adapted) language means, as the pipeline does, is the same as applying it to neutral vectors up
to the row normalisations; the CV scores are measured through the wrapper (adapted views,
adapted reference means), not in the training space.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .embed.adapter import (ADAPTER_FILE, ADAPTER_FORMAT, WEIGHTS_FILE, Adapter, AdaptedEmbedder,  # noqa: F401
                            AdapterMismatchError, apply_map, base_label, load_adapter, strip_adapter, wrap_embedder)
from .embed.adapter import unit_rows as _unit

log = logging.getLogger(__name__)

SAME_MAX = 1.5
#: How the low-rank part is parametrised: "free" (learn A and B), "pca" (A = the top-rank principal
#: directions of the training vectors, fixed; learn a rank x rank matrix M, B = A M^T), "pca-diag" (M diagonal).
BASES = ("free", "pca", "pca-diag")
DIFF_MIN = 3.0


# --------------------------------------------------------------------------- the head


class PairHead:
    """A residual low-rank (+ optional diagonal) linear map trained on labelled pairs.

    scikit-learn style: ``fit(X, pairs, ratings)`` then ``transform(X)`` (unit rows).

    Args:
        rank: columns of ``A`` and ``B`` (0: diagonal only, or identity when ``diagonal`` is off).
        weight_decay: L2 penalty on ``A``, ``B`` and ``s - 1`` (per pair of the loss mean).
        diagonal: also learn a per-dimension scale ``s``.
        loss: "contrastive" or "rating" (see the module docstring).
        margin: with "contrastive": pairs are pushed across cosine ``1 - margin`` (the clusterer's
            ``max_distance``).
        temperature: with "contrastive": the logistic's scale in cosine units.
        negatives: random pairs per labelled pair, counted as "different" (0: none).
        epochs: full-batch Adam steps; lr: Adam's step size.
        random_state: seeds the initialisation of ``A`` and the random pairs.
    """

    def __init__(self, rank: int = 16, weight_decay: float = 1e-2, *, diagonal: bool = False,
                 loss: str = "contrastive", margin: float = 0.5, temperature: float = 0.05,
                 negatives: int = 2, epochs: int = 300, lr: float = 1e-2, basis: str = "free",
                 random_state: int = 0) -> None:
        if basis not in BASES:
            raise ValueError(f"basis must be one of {BASES}, not {basis!r}")
        self.basis = basis
        if loss not in ("contrastive", "rating"):
            raise ValueError(f"loss must be 'contrastive' or 'rating', not {loss!r}")
        if rank < 0 or weight_decay < 0 or epochs < 0 or negatives < 0:
            raise ValueError("rank, weight_decay, epochs and negatives must not be negative")
        self.rank, self.weight_decay, self.diagonal = int(rank), float(weight_decay), bool(diagonal)
        self.loss, self.margin, self.temperature = loss, float(margin), float(temperature)
        self.negatives, self.epochs, self.lr, self.random_state = int(negatives), int(epochs), float(lr), int(random_state)

    def get_params(self, deep: bool = True) -> dict:
        return {k: getattr(self, k) for k in ("rank", "weight_decay", "diagonal", "loss", "margin", "temperature",
                                              "negatives", "epochs", "lr", "basis", "random_state")}

    def set_params(self, **params) -> "PairHead":
        for k, v in params.items():
            if k not in self.get_params():
                raise ValueError(f"unknown parameter {k!r}")
            setattr(self, k, v)
        return self

    def fit(self, X: np.ndarray, pairs: np.ndarray, ratings: np.ndarray, *, progress: bool = False) -> "PairHead":
        """Fit on vectors ``X`` (n, d), row-index ``pairs`` (m, 2) and their ratings (1 same .. 4 different)."""
        import torch

        X = np.asarray(X, dtype=np.float32)
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        ratings = np.asarray(ratings, dtype=np.float64)
        n, d = X.shape
        rng = np.random.default_rng(self.random_state)
        gen = torch.Generator().manual_seed(self.random_state)
        self.dim_ = d
        r = max(min(self.rank, d), 0)
        s = torch.ones(d, dtype=torch.float32)
        params = []
        if self.diagonal:
            s.requires_grad_(True)
            params.append(s)
        if self.basis == "free":
            A = (torch.randn(d, r, generator=gen) / np.sqrt(d)).float()
            B = torch.zeros(d, r, dtype=torch.float32)
            M = None
            if r > 0:
                A.requires_grad_(True)
                B.requires_grad_(True)
                params += [A, B]
        else:  # fixed basis U: the top-r principal directions of X (no labels used); learn M (r x r or diagonal)
            U = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)[2][:r].T.astype(np.float32) if r else \
                np.zeros((d, 0), np.float32)
            A = torch.from_numpy(np.ascontiguousarray(U))
            M = torch.zeros(r if self.basis == "pca-diag" else (r, r), dtype=torch.float32, requires_grad=r > 0)
            if r > 0:
                params.append(M)
            B = None
        i, j, target, weight = self._training_pairs(X, pairs, ratings, rng)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # multi-threaded scatter-adds in the backward pass are not bit-reproducible
        try:
            self._optimise(torch, X, s, A, B, M, params, i, j, target, weight, progress)
        finally:
            torch.set_num_threads(threads)
        self.scale_ = s.detach().numpy().astype(np.float32)
        self.A_ = A.detach().numpy().astype(np.float32)
        self.B_ = self._B(torch, A, B, M).detach().numpy().astype(np.float32)
        return self

    def _B(self, torch, A, B, M):
        if M is None:
            return B
        if M.dim() == 1:
            return A * M
        return A @ M.T

    def _optimise(self, torch, X, s, A, B, M, params, i, j, target, weight, progress) -> None:
        if params and self.epochs and len(i):
            Xt = torch.from_numpy(X)
            it, jt = torch.from_numpy(i), torch.from_numpy(j)
            tt = torch.from_numpy(target.astype(np.float32))
            wt = torch.from_numpy((weight / weight.sum()).astype(np.float32))
            opt = torch.optim.Adam(params, lr=self.lr)
            steps = range(self.epochs)
            bar = None
            if progress and sys.stderr.isatty():
                from tqdm import tqdm

                bar = tqdm(total=self.epochs, desc="tune", unit="step", leave=False)
            for _ in steps:
                opt.zero_grad()
                Y = Xt * s + (Xt @ A) @ self._B(torch, A, B, M).T
                Y = Y / Y.norm(dim=1, keepdim=True).clamp_min(1e-12)
                cos = (Y[it] * Y[jt]).sum(1)
                if self.loss == "contrastive":
                    z = (cos - (1.0 - self.margin)) / self.temperature
                    per = torch.nn.functional.softplus(-z) * tt + torch.nn.functional.softplus(z) * (1 - tt)
                else:
                    per = (cos - tt) ** 2
                if M is not None:
                    penalty = M.pow(2).sum()
                else:
                    penalty = (A.pow(2).sum() + B.pow(2).sum() if self.rank > 0 else 0.0)
                if self.diagonal:
                    penalty = penalty + (s - 1).pow(2).sum()
                total = (per * wt).sum() + self.weight_decay * penalty
                total.backward()
                opt.step()
                if bar is not None:
                    bar.update(1)
            if bar is not None:
                bar.close()

    def _training_pairs(self, X, pairs, ratings, rng):
        """(i, j, target, weight) arrays of the loss: labelled pairs plus random negatives."""
        n = len(X)
        if self.loss == "contrastive":
            same, diff = ratings <= SAME_MAX, ratings >= DIFF_MIN
            keep = same | diff
            i, j = pairs[keep, 0], pairs[keep, 1]
            target = same[keep].astype(np.float64)
        else:
            # the straight line today's cosine draws through the ratings: keep its scale
            cos = np.einsum("ij,ij->i", _unit(X[pairs[:, 0]]), _unit(X[pairs[:, 1]])) if len(pairs) else np.zeros(0)
            slope, intercept = np.polyfit(ratings, cos, 1) if len(pairs) > 1 and np.ptp(ratings) > 0 else (0.0, 0.0)
            self.line_ = (float(slope), float(intercept))
            i, j = pairs[:, 0], pairs[:, 1]
            target = intercept + slope * ratings
        weight = np.ones(len(i))
        m = self.negatives * len(pairs)
        if m and n > 1:
            ri = rng.integers(0, n, size=m)
            rj = rng.integers(0, n - 1, size=m)
            rj = rj + (rj >= ri)
            labelled = {(int(a), int(b)) for a, b in pairs} | {(int(b), int(a)) for a, b in pairs}
            ok = np.array([(a, b) not in labelled for a, b in zip(ri, rj)], dtype=bool)
            ri, rj = ri[ok], rj[ok]
            neg = 0.0 if self.loss == "contrastive" else self.line_[1] + self.line_[0] * 4.0
            i, j = np.concatenate([i, ri]), np.concatenate([j, rj])
            target = np.concatenate([target, np.full(len(ri), neg)])
            weight = np.concatenate([weight, np.full(len(ri), 0.5)])
        return i.astype(np.int64), j.astype(np.int64), target, weight

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``normalize(s * X + (X A) B^T)``, float32 unit rows."""
        return apply_map(X, self.scale_, self.A_, self.B_)

    def fit_transform(self, X, pairs, ratings) -> np.ndarray:
        return self.fit(X, pairs, ratings).transform(X)


# --------------------------------------------------------------------------- views and spaces


@dataclass(frozen=True)
class RawViews:
    """The raw (unadapted) vectors the pipeline's embedding step combines, kept apart so an adapter
    can be applied exactly as :class:`AdaptedEmbedder` would: one row per article of the whole text,
    one of the title + lead (``longer``: rows where the lead is a separate pass), and the shipped
    calibration corpus (for the reference language means)."""

    full: np.ndarray
    lead: np.ndarray
    longer: np.ndarray
    calib: np.ndarray
    calib_langs: np.ndarray

    @classmethod
    def embed(cls, articles, embedder, *, progress: bool = False) -> "RawViews":
        from importlib import resources

        from .embed import LEAD_CHARS, embedding_text

        full = [embedding_text(a) for a in articles]
        lead = [embedding_text(a, max_chars=LEAD_CHARS) for a in articles]
        records = [json.loads(line) for line in
                   resources.files("storyclust").joinpath("calibration.jsonl").read_text("utf-8").splitlines()
                   if line.strip()]
        C = embedder.encode([r["text"] for r in records])
        F = embedder.encode(full, progress=progress)
        longer = np.array([len(a) < len(b) for a, b in zip(lead, full)], dtype=bool)
        L = F.copy()
        idx = np.flatnonzero(longer)
        if len(idx):
            L[idx] = embedder.encode([lead[i] for i in idx], progress=progress)
        return cls(F, L, longer, C, np.array([r["lang"] for r in records]))

    def vectors(self, transform=None) -> tuple[np.ndarray, np.ndarray]:
        """(article vectors as :func:`storyclust.embed.embed_articles` makes them, calibration vectors),
        each view through ``transform`` first (None: the raw model)."""
        t = transform or _unit
        F, L = t(self.full), t(self.lead)
        out = F.copy()
        if self.longer.any():
            out[self.longer] = _unit(F[self.longer] + L[self.longer])
        return out.astype(np.float32), t(self.calib).astype(np.float32)


def means_from_calibration(calib: np.ndarray, langs: Sequence[str], weight: float = 8.0):
    """The reference language means :func:`storyclust.pipeline.reference_language_means` makes from
    calibration vectors (here given, e.g. through an adapter)."""
    from .cluster import _GLOBAL

    langs = np.asarray(langs)
    means = {}
    for lang in np.unique(langs):
        mean = np.asarray(calib, dtype=np.float64)[langs == lang].mean(axis=0)
        means[str(lang)] = (mean * weight, weight)
    per_lang = np.stack([m[0] / weight for m in means.values()])
    means[_GLOBAL] = (per_lang.mean(axis=0) * weight * len(per_lang), weight * len(per_lang))
    return means


def neutral_space(articles, vectors: np.ndarray, means, cluster_options=None) -> np.ndarray:
    from .evaluate import clustering_space

    return clustering_space(articles, vectors, cluster_options, means)


# --------------------------------------------------------------------------- labelled data


@dataclass(frozen=True)
class LabelledData:
    """Articles plus labelled pairs (``pairs``: DataFrame with id1, id2, overall, cross_lingual, pair_id)."""

    articles: list
    pairs: Any  # pandas.DataFrame
    sources: tuple  # (path, sha256) of each input file

    @property
    def sha256(self) -> str:
        h = hashlib.sha256()
        for _path, digest in sorted(self.sources, key=lambda s: s[1]):
            h.update(digest.encode("ascii"))
        return h.hexdigest()


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pairs_from_stories(articles, stories: Sequence[Optional[str]], *, negatives_per_article: int = 3,
                       blocks: int = 5, random_state: int = 0):
    """Labelled pairs from gold stories: every same-story pair (rating 1.0) and, per article,
    ``negatives_per_article`` random articles of other stories (rating 4.0).

    Stories are dealt into ``blocks`` blocks (seeded, balanced by article count) and negatives are
    drawn inside a block only, so the pair graph has one connected component per block and
    :func:`storyclust.evaluate.semeval_folds` with ``k <= blocks`` can keep every article in one fold.
    """
    import pandas as pd

    rng = np.random.default_rng(random_state)
    ids = [a.id for a in articles]
    langs = [a.lang for a in articles]
    by_story: dict[str, list[int]] = {}
    for k, s in enumerate(stories):
        by_story.setdefault(s if s is not None else f"\0{k}", []).append(k)
    names = [list(by_story)[i] for i in rng.permutation(len(by_story))]
    names.sort(key=lambda s: -len(by_story[s]))
    load = np.zeros(max(1, blocks), dtype=np.int64)
    block_of_story: dict[str, int] = {}
    for s in names:
        b = int(np.argmin(load))
        block_of_story[s] = b
        load[b] += len(by_story[s])
    story_of = [s if s is not None else f"\0{k}" for k, s in enumerate(stories)]
    rows = []
    for members in by_story.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                rows.append((members[x], members[y], 1.0))
    in_block: dict[int, list[int]] = {}
    for k, s in enumerate(story_of):
        in_block.setdefault(block_of_story[s], []).append(k)
    for k, s in enumerate(story_of):
        pool = [m for m in in_block[block_of_story[s]] if story_of[m] != s]
        if pool:
            for m in rng.permutation(pool)[:negatives_per_article]:
                rows.append((k, int(m), 4.0))
    seen, uniq = set(), []
    for a, b, r in rows:
        key = (min(a, b), max(a, b))
        if key not in seen:
            seen.add(key)
            uniq.append((key[0], key[1], r))
    return pd.DataFrame({
        "pair_id": [f"{ids[a]}_{ids[b]}" for a, b, _ in uniq],
        "id1": [ids[a] for a, _, _ in uniq], "id2": [ids[b] for _, b, _ in uniq],
        "lang1": [langs[a] for a, _, _ in uniq], "lang2": [langs[b] for _, b, _ in uniq],
        "overall": np.array([r for _, _, r in uniq], dtype=float),
        "cross_lingual": np.array([langs[a] != langs[b] for a, b, _ in uniq], dtype=bool),
    })


def _with_other_ratings(pairs, path):
    """``pairs`` plus the SemEval ratings other than Overall the CSV has (``geography``, ``entities``, ...,
    lower case; a :class:`~storyclust.score.PairScore` learns from all seven)."""
    import pandas as pd

    from .score import OVERALL, RATINGS

    others = [r for j, r in enumerate(RATINGS) if j != OVERALL]
    present = [r for r in others if r in pd.read_csv(path, nrows=0).columns]
    if not present:
        return pairs
    extra = pd.read_csv(path, usecols=["pair_id", *present], dtype={"pair_id": str})
    if len(extra) != len(pairs) or not (extra["pair_id"].to_numpy() == pairs["pair_id"].to_numpy()).all():
        return pairs
    out = pairs.copy()
    for r in present:
        out[r.lower()] = pd.to_numeric(extra[r], errors="coerce").to_numpy(dtype=float)
    return out


def load_labelled(semeval: Sequence[str] = (), gold: Sequence[str] = (), *, blocks: int = 5,
                  random_state: int = 0) -> LabelledData:
    """Articles and pairs from SemEval-layout CSVs and/or articles JSONL files with a gold ``story``
    (pairs derived by :func:`pairs_from_stories` in ``blocks`` blocks: give ``blocks`` >= the CV folds)."""
    import pandas as pd

    from .evaluate import load_gold_jsonl, load_semeval

    articles: dict[str, Any] = {}
    frames, sources = [], []
    for path in semeval:
        data = load_semeval(str(path))
        for a in data.articles:
            articles[a.id] = a
        frames.append(_with_other_ratings(data.pairs, path))
        sources.append((str(path), file_sha256(path)))
    for path in gold:
        g = load_gold_jsonl(str(path))
        for a in g.articles:
            articles[a.id] = a
        frames.append(pairs_from_stories(g.articles, g.stories, blocks=blocks, random_state=random_state))
        sources.append((str(path), file_sha256(path)))
    if not frames:
        raise ValueError("no labelled data: give a SemEval CSV and/or a gold JSONL")
    pairs = pd.concat(frames, ignore_index=True).drop_duplicates("pair_id", keep="last").reset_index(drop=True)
    return LabelledData(sorted(articles.values(), key=lambda a: a.id), pairs, tuple(sources))


# --------------------------------------------------------------------------- CV around the head


def head_space_factory(articles, views: RawViews, head_params: Mapping[str, Any], *, cluster_options=None,
                       reference_weight: float = 8.0):
    """A ``fit_space`` for :func:`storyclust.evaluate.cross_validate_semeval`: fits a :class:`PairHead` on
    the training pairs (in today's neutral space) and returns the article vectors and reference means
    *through the adapter wrapper* (adapted views, adapted calibration means)."""
    base_vectors, base_calib = views.vectors()
    base_means = means_from_calibration(base_calib, views.calib_langs, reference_weight)
    Z = neutral_space(articles, base_vectors, base_means, cluster_options)
    row = {a.id: k for k, a in enumerate(articles)}

    def fit_space(train_pairs):
        if head_params is None:
            return base_vectors, base_means
        idx = np.array([[row[a], row[b]] for a, b in zip(train_pairs["id1"], train_pairs["id2"])], dtype=np.int64)
        head = PairHead(**head_params).fit(Z, idx, train_pairs["overall"].to_numpy(dtype=float))
        vectors, calib = views.vectors(head.transform)
        fit_space.last_head = head
        return vectors, means_from_calibration(calib, views.calib_langs, reference_weight)

    return fit_space


def fit_adapter(data: LabelledData, views: RawViews, base_model_id: str, head_params: Mapping[str, Any], *,
                cv: Optional[Mapping[str, Any]] = None, settings: Optional[Mapping[str, Any]] = None,
                provenance: str = "", name: str = "", progress: bool = False, reference_weight: float = 8.0) -> Adapter:
    """Fit the head on every labelled pair of ``data`` and wrap it with its manifest."""
    import storyclust

    base_vectors, base_calib = views.vectors()
    means = means_from_calibration(base_calib, views.calib_langs, reference_weight)
    Z = neutral_space(data.articles, base_vectors, means)
    row = {a.id: k for k, a in enumerate(data.articles)}
    idx = np.array([[row[a], row[b]] for a, b in zip(data.pairs["id1"], data.pairs["id2"])], dtype=np.int64)
    head = PairHead(**head_params).fit(Z, idx, data.pairs["overall"].to_numpy(dtype=float), progress=progress)
    manifest = {
        "name": name,
        "base_model_id": strip_adapter(base_model_id),
        "training_data": [{"file": os.path.basename(p), "sha256": d} for p, d in data.sources],
        "training_data_sha256": data.sha256,
        "training_pairs": int(len(data.pairs)),
        "training_articles": int(len(data.articles)),
        "head": {"kind": "residual low-rank" + (" + diagonal" if head.diagonal else ""), **head.get_params()},
        "settings": dict(settings or {}),
        "cv": dict(cv or {}),
        "provenance": provenance,
        "storyclust_version": getattr(storyclust, "__version__", "?"),
        "applies_to": "raw model vectors (each embedded view); the pipeline subtracts language means after",
    }
    return Adapter.from_head(head, manifest)


# --------------------------------------------------------------------------- the whole tuning run


def _as_semeval(data: LabelledData):
    from .evaluate import SemEvalData

    return SemEvalData(articles=list(data.articles), pairs=data.pairs.reset_index(drop=True))


def tune_adapter(data: LabelledData, views: RawViews, base_model_id: str, *,
                 grid: Optional[Mapping[str, Sequence[Any]]] = None, head_params: Optional[Mapping[str, Any]] = None,
                 k: int = 5, random_state: int = 0, cluster_options=None, objective: str = "f1",
                 threshold_grid: Optional[Mapping[str, Sequence[Any]]] = None,
                 progress: bool = False, provenance: str = "", name: str = "") -> tuple[Adapter, dict]:
    """Choose the head's settings by k-fold CV (pair F1 of the clustering of held-out folds), fit on all.

    ``grid`` maps :class:`PairHead` parameters to candidate values (default: rank 4/16/64, weight
    decay 1e-3/1e-2/1e-1), or is a list of candidate parameter dicts; ``head_params`` are the fixed others. Every candidate and today's space
    (no adapter) are cross-validated on the same folds (:func:`storyclust.evaluate.cross_validate_semeval`,
    all articles clustered together, ``cluster_options`` fixed, or with ``threshold_grid`` (e.g.
    ``{"max_distance": [...]}``) the thresholds chosen again on each fold's training pairs, since a
    learnt map may move the cosine's scale). Returns the adapter fitted on every
    pair with the best candidate, and a report (``baseline``, ``candidates``, ``chosen``, ``gain``:
    the chosen candidate's fold-by-fold F1 gain over no adapter, with its standard error).
    """
    from .evaluate import _objective_value, cross_validate_semeval, paired_gain

    grid = grid or {"rank": [4, 16, 64], "weight_decay": [1e-3, 1e-2, 1e-1]}
    fixed = {"random_state": random_state, **dict(head_params or {})}
    sem = _as_semeval(data)
    if isinstance(grid, Mapping):
        points = [dict(zip(grid, values)) for values in __import__("itertools").product(*grid.values())]
    else:  # a list of candidate settings
        points, grid = [dict(p) for p in grid], {"candidates": [dict(p) for p in grid]}
    base_vectors, base_calib = views.vectors()
    base_means = means_from_calibration(base_calib, views.calib_langs)
    cv_kw = dict(k=k, random_state=random_state, cluster_options=cluster_options, grid=threshold_grid,
                 objective=objective)
    baseline = cross_validate_semeval(sem, base_vectors, language_means=base_means, **cv_kw)
    bar = None
    if progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(points), desc="tune: CV", unit="setting", leave=False)
    candidates = []
    for point in points:
        params = {**fixed, **point}
        result = cross_validate_semeval(sem, head_space_factory(data.articles, views, params,
                                                                cluster_options=cluster_options), **cv_kw)
        candidates.append({"params": params, "summary": result["summary"], "folds": result["folds"]})
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()

    def score(c):
        return float(np.mean([_objective_value(f, objective) for f in c["folds"]]))

    best = max(candidates, key=score)
    gain = {m: paired_gain(best["folds"], baseline["folds"], m) for m in ("f1", "xl_f1", "pearson")}
    cv = {"k": k, "random_state": random_state, "objective": objective, "distractors": "all",
          "baseline": baseline["summary"], "adapter": best["summary"], "gain": gain,
          "candidates": [{"params": c["params"], "summary": c["summary"]} for c in candidates]}
    settings = {"head": best["params"], "grid": {k2: list(v) for k2, v in grid.items()},
                "threshold_grid": None if threshold_grid is None else {k2: list(v) for k2, v in threshold_grid.items()},
                "thresholds_chosen_per_fold": [f["params"] for f in best["folds"]],
                "cluster_options": None if cluster_options is None else
                {f: getattr(cluster_options, f) for f in ("max_distance", "number_weight", "method")}}
    adapter = fit_adapter(data, views, base_model_id, best["params"], cv=cv, settings=settings,
                          provenance=provenance, name=name, progress=progress)
    return adapter, {"baseline": baseline, "candidates": candidates, "chosen": best, "gain": gain}


# --------------------------------------------------------------------------- a learnt pair score


PAIR_SCORE_FILE = "pair_score.json"


def _pair_ratings(pairs) -> np.ndarray:
    from .score import RATINGS, ratings_matrix

    others = {r: pairs[r.lower()].to_numpy(dtype=float) for r in RATINGS if r.lower() in pairs.columns}
    return ratings_matrix(pairs["overall"].to_numpy(dtype=float), others)


def tune_pair_score(data: LabelledData, views: RawViews, base_model_id: str, *, k: int = 5, random_state: int = 0,
                    cluster_options=None, provenance: str = "", name: str = "", reference_weight: float = 8.0):
    """Learn a :class:`~storyclust.score.PairScore` from every labelled pair of ``data`` (in the model's own
    neutral space, no adapter) and measure it by k-fold CV through the clusterer against today's similarity.

    Each fold fits a score on the training folds' pairs (alpha x rank chosen on them) and clusters every
    article with it (:func:`storyclust.pipeline.cluster_articles`); held-out pairs are scored (pair F1 all /
    cross-lingual, Pearson of the score). Raises ValueError on too few labelled pairs (the score's own
    refusal) or too few connected components for ``k`` folds. Returns ``(score, report)``; the score's
    provenance holds the training files with their SHA-256, the pair counts, the base model and the CV.
    """
    import dataclasses

    import storyclust

    from .evaluate import cross_validate_semeval, paired_gain, semeval_folds, stories_to_story_of
    from .pipeline import cluster_articles
    from .score import PairScore, labelled_features
    from .settings import ClusterOptions

    options = cluster_options or ClusterOptions()
    pairs = data.pairs.reset_index(drop=True)
    vectors, calib = views.vectors()
    means = means_from_calibration(calib, views.calib_langs, reference_weight)
    Z = neutral_space(data.articles, vectors, means, options)
    F = labelled_features(data.articles, Z, pairs["id1"].tolist(), pairs["id2"].tolist())
    Y = _pair_ratings(pairs)
    PairScore.fit(F, Y, max_distance=options.max_distance)  # refuses too little data before any CV
    fold_of = semeval_folds(pairs, k, random_state)
    index = {(a, b): i for i, (a, b) in enumerate(zip(pairs["id1"], pairs["id2"]))}
    current: dict[str, PairScore] = {}

    def fit_space(train_pairs):
        rows = np.array([index[(a, b)] for a, b in zip(train_pairs["id1"], train_pairs["id2"])], dtype=np.int64)
        current["score"] = PairScore.fit(F[rows], Y[rows], folds=fold_of[rows], max_distance=options.max_distance)
        return vectors, means

    def cluster(articles, embeddings, opts, language_means):
        score = current["score"]
        stories = cluster_articles(articles, embeddings=embeddings, options=dataclasses.replace(opts, pair_score=score),
                                   language_means=language_means)

        def similarity(a, b):
            i = index.get((a, b), index.get((b, a)))
            return float(score(F[i:i + 1])[0])

        return stories_to_story_of(stories), similarity

    sem = _as_semeval(data)
    baseline = cross_validate_semeval(sem, vectors, language_means=means, cluster_options=options, k=k,
                                      random_state=random_state, folds=fold_of)
    learnt = cross_validate_semeval(sem, fit_space, cluster_options=options, k=k, random_state=random_state,
                                    cluster=cluster, folds=fold_of)
    gain = {m: paired_gain(learnt["folds"], baseline["folds"], m) for m in ("f1", "xl_f1", "pearson")
            if all(f.get(m) is not None for f in learnt["folds"] + baseline["folds"])}
    cv = {"k": k, "random_state": random_state, "through": "the clusterer (pipeline.cluster_articles)",
          "baseline": baseline["summary"], "score": learnt["summary"], "gain": gain,
          "helps": bool(gain["f1"]["mean"] > gain["f1"]["se"])}
    same = int((pairs["overall"] <= SAME_MAX).sum())
    different = int((pairs["overall"] >= DIFF_MIN).sum())
    record = {
        "name": name,
        "provenance": provenance,
        "base_model_id": strip_adapter(base_model_id),
        "space": "the base model's language-neutral vectors (no adapter)",
        "training_data": [{"file": os.path.basename(p), "sha256": d} for p, d in data.sources],
        "training_data_sha256": data.sha256,
        "training_pairs": int(len(pairs)), "same_story_pairs": same, "different_story_pairs": different,
        "ambiguous_pairs": int(len(pairs)) - same - different,
        "cross_lingual_pairs": int(pairs["cross_lingual"].sum()),
        "training_articles": int(len(data.articles)),
        "ratings": [r for r in ("geography", "entities", "time", "narrative", "style", "tone") if r in pairs.columns],
        "cv": cv,
        "storyclust_version": getattr(storyclust, "__version__", "?"),
    }
    inner = semeval_folds(pairs, k, random_state)
    score = PairScore.fit(F, Y, folds=inner, max_distance=options.max_distance, provenance=record)
    return score, {"baseline": baseline, "score": learnt, "gain": gain, "cv": cv}


# --------------------------------------------------------------------------- a second pass (experimental)


def merge_fragments(labels: Sequence[int], Z: np.ndarray, langs: Sequence[Optional[str]], threshold: float, *,
                    days: Optional[Sequence[Optional[float]]] = None, max_gap_days: Optional[float] = 7.0,
                    cross_lingual_only: bool = True) -> np.ndarray:
    """Merge stories whose mean pairwise cosine (in ``Z``, unit rows) reaches ``threshold``: a second pass
    for cross-lingual fragments.

    Greedy, best pair first, like average linkage over whole stories: two stories merge when the
    mean cosine over all their cross pairs is >= ``threshold``, (``cross_lingual_only``) they have no
    language in common, and (with ``days``, one float per row or None) their closest dated members
    are at most ``max_gap_days`` apart. Returns new labels (the smallest label of each merged group).
    Measured under CV in bench/bench_quality.py; not part of the pipeline.
    """
    labels = np.asarray(labels, dtype=np.int64)
    uniq, inv = np.unique(labels, return_inverse=True)
    k = len(uniq)
    Z = np.asarray(Z, dtype=np.float64)
    sums = np.zeros((k, Z.shape[1]))
    np.add.at(sums, inv, Z)
    sizes = np.bincount(inv, minlength=k).astype(np.float64)
    lang_codes = {l: c for c, l in enumerate(sorted({str(x) for x in langs}))}
    L = np.zeros((k, len(lang_codes)), dtype=bool)
    L[inv, [lang_codes[str(x)] for x in langs]] = True
    lo = np.full(k, np.inf)
    hi = np.full(k, -np.inf)
    if days is not None:
        for r, d in enumerate(days):
            if d is not None and not np.isnan(d):
                lo[inv[r]] = min(lo[inv[r]], d)
                hi[inv[r]] = max(hi[inv[r]], d)
    alive = np.ones(k, dtype=bool)
    group = np.arange(k)
    S = sums @ sums.T / np.outer(sizes, sizes)
    np.fill_diagonal(S, -np.inf)

    def allowed(a: int, others: np.ndarray) -> np.ndarray:
        ok = alive[others].copy()
        if cross_lingual_only:
            ok &= ~(L[others] & L[a]).any(axis=1)
        if days is not None and max_gap_days is not None and np.isfinite(lo[a]):
            dated = np.isfinite(lo[others])
            gap = np.maximum(lo[others] - hi[a], lo[a] - hi[others])
            ok &= ~dated | (gap <= max_gap_days)
        return ok

    cand = S.copy()
    for a in range(k):
        cand[a, ~allowed(a, np.arange(k))] = -np.inf
    while True:
        flat = int(np.argmax(cand))
        a, b = divmod(flat, k)
        if not np.isfinite(cand[a, b]) or cand[a, b] < threshold:
            break
        a, b = min(a, b), max(a, b)
        sums[a] += sums[b]
        sizes[a] += sizes[b]
        L[a] |= L[b]
        lo[a], hi[a] = min(lo[a], lo[b]), max(hi[a], hi[b])
        alive[b] = False
        group[group == b] = a
        cand[b, :] = cand[:, b] = -np.inf
        row = sums @ sums[a] / (sizes * sizes[a])
        row[~allowed(a, np.arange(k))] = -np.inf
        row[a] = -np.inf
        cand[a, :] = cand[:, a] = row
    return uniq[group[inv]]


def merge_cluster(articles, embeddings, options, language_means, *, merge_threshold: Optional[float] = None,
                  cross_lingual_only: bool = True):
    """A ``cluster=`` function for :func:`storyclust.evaluate.cross_validate_semeval`: the pipeline's
    clustering, then :func:`merge_fragments` at ``merge_threshold`` (None: no second pass)."""
    from .evaluate import CosineLookup, _default_cluster, clustering_space

    story_of, sim = _default_cluster(articles, embeddings, options, language_means)
    if merge_threshold is None:
        return story_of, sim
    Z = clustering_space(articles, embeddings, options, language_means)
    codes = {s: c for c, s in enumerate(sorted(set(story_of.values())))}
    labels = np.array([codes[story_of[a.id]] for a in articles])
    merged = merge_fragments(labels, Z, [a.lang for a in articles], merge_threshold,
                             cross_lingual_only=cross_lingual_only)
    return {a.id: str(m) for a, m in zip(articles, merged)}, CosineLookup([a.id for a in articles], Z)
