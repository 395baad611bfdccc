#!/usr/bin/env python
"""Feasibility of a learned "same story" pair score against today's single similarity (issue 24).

Question: does a low-capacity model over several pair signals separate same-story from
different-story pairs better than the similarity the clusterer decides on today,
``cos_avg + number_weight x numbers`` (the language-neutral cosine of the averaged two views plus
0.1 x the shared-number cosine), by more than its standard error under 5-fold cross-validation?

What it measures. Every distinct article of ``semeval_dev.csv`` and ``semeval_extra.csv`` is
embedded once with the default embedder, the two views kept apart (whole text:
``embedding_text(a)``; title + lead: ``embedding_text(a, max_chars=LEAD_CHARS)``, encoded exactly as
:func:`storyclust.embed.embed_articles` does, so their normalised sum is today's vector). The views
and their average are neutralised as the clusterer does (shipped reference language means plus
all articles of both files as one batch). Per labelled pair the features are:

* ``cos_full``, ``cos_lead``, ``cos_avg``: neutral cosines of the whole-text view, the lead view and
  the averaged vector (today's);
* ``numbers``: shared-number cosine (:func:`storyclust.evidence.number_evidence` over
  ``evidence_text``, IDF over the batch);
* ``names``: TF-IDF cosine of the capitalised words (and acronyms) of the two texts, function
  words (:func:`storyclust.labels.function_words`) left out, casefolded; ``names_translit``: the
  same after transliterating each word to Latin letters with ``unidecode`` (when installed, else
  the feature is left out and the run says so). Scripts without letter case (Chinese, Arabic)
  give no names either way;
* ``len_ratio``: ``|log(chars a / chars b)|`` of the evidence texts;
* ``xl_same_script``, ``xl_diff_script``: different languages in one script / in two scripts (same
  language is the reference).

The SemEval files carry no dates, so there is no time-gap feature. Three scores, each monotone
so one threshold decides:

* ``baseline``: today's similarity, no parameter learnt (only its threshold);
* ``logistic``: L2 logistic regression on the features predicting same story (Overall <= 1.5) against
  different (Overall >= 3.0), ambiguous pairs left out of training; the score is its decision value;
* ``rr-ridge``: reduced-rank ridge regression of all seven ratings (standardised) on the features;
  the score is minus the predicted Overall.

Features are standardised inside each training fold. The learnt models' one hyper-parameter set
(logistic C; ridge alpha x rank) is chosen inside the training folds (leave one training fold out,
held-out log-loss / Overall MSE). Folds: :func:`storyclust.evaluate.semeval_folds` on the pair graph
of **base ids** (``1483779588ru`` is a machine translation of ``1483779588``: one node), so no text
and no translation of it is in two folds; seeded. For each fold the threshold that maximises pair
F1 on the training folds is applied to the held-out fold. Figures per fold: pair F1 on pairs
labelled same or different (all; cross-lingual alone), Pearson of the score with -Overall over all
held-out pairs (and cross-lingual). Reported as mean ± sd over folds and as the paired per-fold
gain over the baseline ± its standard error (sd / sqrt(5)).

This is **pair classification by a threshold**, a proxy for the clusterer: the clusterer links
articles through average linkage over candidate groups, so a better pair score is necessary, not
sufficient, for better stories.

Verdict: GO only if ``logistic`` or ``rr-ridge`` gains on F1 (all pairs) beyond one SE **and** on
cross-lingual F1 or Pearson beyond one SE; otherwise NO-GO.

Usage::

    nice -n 10 python bench/bench_pair_score.py [--dev ../shared/eval/semeval_dev.csv]
        [--extra ../shared/eval/semeval_extra.csv] [--cache /tmp/pair_score_views.npz] [--refresh]
        [--seed 0] [--extra-seeds 1 2 3 4]
"""
from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import logging
import os
import re
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from storyclust.cluster import LanguageMeans, StoryClusterer
from storyclust.evaluate import SEMEVAL_DIFF_MIN, SEMEVAL_SAME_MAX, load_semeval, paired_gain, semeval_folds
from storyclust.evidence import evidence_text, number_evidence, pair_evidence, tfidf_rows
from storyclust.score import _rr_ridge, best_threshold  # the package's copies: storyclust.score grew out of this study
from storyclust.settings import ClusterOptions
from storyclust.types import Article

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "eval"
DEFAULT_DEV = EVAL / "semeval_dev.csv"
DEFAULT_EXTRA = EVAL / "semeval_extra.csv"
DEFAULT_CACHE = Path("/tmp/pair_score_views.npz")
RATINGS = ("Geography", "Entities", "Time", "Narrative", "Overall", "Style", "Tone")
OVERALL = RATINGS.index("Overall")
K = 5
METRICS = ("f1", "xl_f1", "pearson", "xl_pearson")
#: Script of each SemEval language (the relation feature); others are looked up from the text.
SCRIPT_OF = {"en": "Latn", "de": "Latn", "es": "Latn", "it": "Latn", "pl": "Latn", "tr": "Latn", "fr": "Latn",
             "ru": "Cyrl", "ar": "Arab", "zh": "Hani"}
LOGISTIC_C = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
RIDGE_ALPHA = (0.01, 0.1, 1.0, 10.0, 100.0)
RIDGE_RANK = (1, 2, 3, len(RATINGS))
_BASE_ID = re.compile(r"^(\d+)")
#: A word (letters, then letters or digits); apostrophes and hyphens split words ("Putin's", "Jean-Claude").
_WORD = re.compile(r"\b[^\W\d_]\w*")

log = logging.getLogger("bench_pair_score")


# --------------------------------------------------------------------------- measurement


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Pairs:
    """Both files as one batch: distinct articles (sorted by id) and one row per labelled pair."""

    articles: list[Article]
    table: pd.DataFrame  # pair_id, id1, id2, lang1, lang2, cross_lingual, source, the seven ratings (lower case)


def load_pairs(paths: Sequence[Path]) -> Pairs:
    """Articles and pairs of several SemEval CSVs; an article id seen twice keeps its first file's text."""
    articles: dict[str, Article] = {}
    tables = []
    for path in paths:
        data = load_semeval(str(path))
        ratings = pd.read_csv(path, usecols=["pair_id", *RATINGS], dtype={"pair_id": str})
        if not (ratings["pair_id"].to_numpy() == data.pairs["pair_id"].to_numpy()).all():
            raise ValueError(f"{path}: pair order differs between readers")
        table = data.pairs.copy()
        for name in RATINGS:
            table[name.lower()] = ratings[name].astype(float).to_numpy()
        table["source"] = path.stem
        tables.append(table)
        for article in data.articles:
            articles.setdefault(article.id, article)
    table = pd.concat(tables, ignore_index=True)
    return Pairs([articles[i] for i in sorted(articles)], table)


def base_id(article_id: str) -> str:
    """``1483779588ru`` -> ``1483779588``: a machine translation joins its source in one fold."""
    match = _BASE_ID.match(article_id)
    return match.group(1) if match else article_id


def base_id_folds(table: pd.DataFrame, k: int, seed: int) -> np.ndarray:
    """A fold per pair: connected components of the pair graph on base ids, balanced by pairs."""
    by_base = pd.DataFrame({"id1": table["id1"].map(base_id), "id2": table["id2"].map(base_id)})
    return semeval_folds(by_base, k, seed)


# --------------------------------------------------------------------------- views


@dataclass
class Views:
    """Raw model vectors of each article's two views and the pipeline's starting language means."""

    full: np.ndarray
    lead: np.ndarray
    means: Optional[LanguageMeans]
    info: dict


def _recipe_sha1() -> str:
    from storyclust.embed import LEAD_CHARS, embed_articles, embedding_text

    source = inspect.getsource(embed_articles) + inspect.getsource(embedding_text) + f"LEAD_CHARS={LEAD_CHARS}"
    return hashlib.sha1(source.encode()).hexdigest()[:12]


def _cache_key(articles: Sequence[Article], csvs: Sequence[Path]) -> dict:
    ids = hashlib.sha1("\n".join(a.id for a in articles).encode()).hexdigest()[:12]
    return {"recipe_sha1": _recipe_sha1(), "csv_sha256": [file_sha256(p)[:16] for p in csvs], "ids_sha1": ids,
            "rows": len(articles)}


def embed_views(articles: Sequence[Article]) -> Views:
    """Both views with the default embedder, encoded as ``embed_articles`` encodes them (same calls, same
    batches), so ``unit(full + lead)`` is today's article vector; an article no longer than its lead
    gets one pass and its lead view is its whole-text view."""
    from storyclust.embed import LEAD_CHARS, embedding_text, load_embedder
    from storyclust.pipeline import starting_language_means

    t0 = time.perf_counter()
    embedder = load_embedder()
    load_s = time.perf_counter() - t0
    means = starting_language_means(embedder)
    t0 = time.perf_counter()
    full_texts = [embedding_text(a) for a in articles]
    full = np.asarray(embedder.encode(full_texts), dtype=np.float32)
    leads = [embedding_text(a, max_chars=LEAD_CHARS) for a in articles]
    longer = [i for i, (lead, whole) in enumerate(zip(leads, full_texts)) if len(lead) < len(whole)]
    lead = full.copy()
    if longer:
        lead[longer] = embedder.encode([leads[i] for i in longer])
    embed_s = time.perf_counter() - t0
    info = {"model_id": embedder.model_id, "load_s": round(load_s, 1), "embed_s": round(embed_s, 1),
            "texts": len(full_texts) + len(longer), "articles_per_s": round(len(articles) / embed_s, 1),
            "peak_rss_mb_after_embedding": round(peak_rss_mb())}
    return Views(full, lead, means, info)


def _pack_means(means: Optional[LanguageMeans]) -> dict:
    if not means:
        return {"mean_langs": np.array([], dtype=str), "mean_sums": np.zeros((0, 0)), "mean_counts": np.zeros(0)}
    langs = sorted(means)
    return {"mean_langs": np.array(langs), "mean_sums": np.stack([means[k][0] for k in langs]),
            "mean_counts": np.array([means[k][1] for k in langs], dtype=np.int64)}


def _unpack_means(z) -> Optional[LanguageMeans]:
    langs = [str(x) for x in z["mean_langs"]]
    if not langs:
        return None
    return {k: (z["mean_sums"][i].astype(np.float64), int(z["mean_counts"][i])) for i, k in enumerate(langs)}


def load_or_embed_views(articles: Sequence[Article], csvs: Sequence[Path], cache: Optional[Path],
                        refresh: bool = False) -> Views:
    """The views from ``cache`` (an .npz keyed by the embedding recipe, the CSVs and the article ids; the
    model is not loaded then), else embedded and saved there."""
    key = _cache_key(articles, csvs)
    if cache and cache.exists() and not refresh:
        with np.load(cache, allow_pickle=False) as z:
            stored = json.loads(str(z["key"]))
            if stored == key:
                info = {**json.loads(str(z["info"])), "source": f"cache {cache}"}
                return Views(z["full"], z["lead"], _unpack_means(z), info)
        print(f"cache {cache} is for other data or another recipe: embedding again", file=sys.stderr)
    views = embed_views(articles)
    views.info["source"] = "embedded"
    if cache:
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez(tmp, full=views.full, lead=views.lead, key=json.dumps(key), info=json.dumps(views.info),
                 **_pack_means(views.means))
        tmp.replace(cache)
    return views


def neutral(X: np.ndarray, langs: Sequence[Optional[str]], means: Optional[LanguageMeans]) -> np.ndarray:
    """The clusterer's language-neutral unit vectors for ``X``: starting means plus all rows as one batch."""
    clusterer = StoryClusterer(ClusterOptions(), language_means=means)
    clusterer.update_language_means(X, langs)
    return clusterer.neutralize(X, langs)


# --------------------------------------------------------------------------- features


def capitalised_words(text: str, stop: frozenset[str]) -> list[str]:
    """Casefolded words that start with an upper-case letter (names, acronyms), function words left out."""
    out = []
    for match in _WORD.finditer(text):
        word = match.group(0)
        if len(word) >= 2 and word[0].isupper() and word.casefold() not in stop:
            out.append(word.casefold())
    return out


def transliterator() -> Optional[Callable[[str], str]]:
    """``unidecode`` as a word -> lower-case Latin function, or None when it is not installed."""
    try:
        from unidecode import unidecode
    except ImportError:
        return None
    return lambda word: re.sub(r"[^0-9a-z]", "", unidecode(word).lower())


def script_of(article: Article) -> str:
    """Script of an article's language (SCRIPT_OF), else of the majority of its letters (Unicode name prefix)."""
    if article.lang in SCRIPT_OF:
        return SCRIPT_OF[article.lang]
    import unicodedata

    counts: dict[str, int] = {}
    for ch in article.text[:2000]:
        if ch.isalpha():
            name = unicodedata.name(ch, "UNKNOWN").split(" ")[0]
            counts[name] = counts.get(name, 0) + 1
    return max(counts, key=counts.get) if counts else "?"


@dataclass
class Features:
    X: np.ndarray  # (pairs, features)
    names: list[str]
    notes: list[str]


def pair_features(data: Pairs, views: Views) -> Features:
    """The feature matrix of every labelled pair (see the module docstring)."""
    from storyclust.labels import function_words

    articles = data.articles
    row = {a.id: i for i, a in enumerate(articles)}
    i1 = data.table["id1"].map(row).to_numpy()
    i2 = data.table["id2"].map(row).to_numpy()
    langs = [a.lang for a in articles]
    avg = views.full + views.lead
    avg /= np.linalg.norm(avg, axis=1, keepdims=True)
    columns: dict[str, np.ndarray] = {}
    for name, X in (("cos_full", views.full), ("cos_lead", views.lead), ("cos_avg", avg)):
        Z = neutral(X, langs, views.means).astype(np.float64)
        columns[name] = (Z[i1] * Z[i2]).sum(axis=1)
    texts = [evidence_text(a) for a in articles]
    columns["numbers"] = pair_evidence(number_evidence(texts), i1, i2).astype(np.float64)
    stop = function_words()
    words = [capitalised_words(t, stop) for t in texts]
    columns["names"] = pair_evidence(tfidf_rows(words), i1, i2).astype(np.float64)
    notes = []
    latin = transliterator()
    if latin is not None:
        folded = [[w for w in (latin(x) for x in ws) if len(w) >= 2] for ws in words]
        columns["names_translit"] = pair_evidence(tfidf_rows(folded), i1, i2).astype(np.float64)
        notes.append("names_translit: capitalised words transliterated to Latin with unidecode")
    else:
        notes.append("unidecode is not installed: names_translit left out (capitalised words matched as written)")
    chars = np.array([max(len(t), 1) for t in texts], dtype=np.float64)
    columns["len_ratio"] = np.abs(np.log(chars[i1] / chars[i2]))
    scripts = np.array([script_of(a) for a in articles])
    diff_lang = data.table["cross_lingual"].to_numpy(dtype=bool)
    same_script = scripts[i1] == scripts[i2]
    columns["xl_same_script"] = (diff_lang & same_script).astype(np.float64)
    columns["xl_diff_script"] = (diff_lang & ~same_script).astype(np.float64)
    names = list(columns)
    return Features(np.column_stack([columns[n] for n in names]), names, notes)


# --------------------------------------------------------------------------- models


class Standardiser:
    """Mean 0, sd 1 per column, fitted on training rows (a constant column is centred only)."""

    def fit(self, X: np.ndarray) -> "Standardiser":
        self.mean_ = X.mean(axis=0)
        sd = X.std(axis=0)
        self.sd_ = np.where(sd > 0, sd, 1.0)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.sd_


class Scorer:
    """A pair score: ``fit(X, Y, fold_of)`` on training pairs, ``score(X)`` higher = more likely one story."""

    name = ""

    def fit(self, X: np.ndarray, Y: np.ndarray, fold_of: np.ndarray) -> "Scorer":
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> str:
        return ""


class Baseline(Scorer):
    """Today's similarity: cos_avg + number_weight x numbers; nothing learnt."""

    name = "baseline (today)"

    def __init__(self, names: list[str], number_weight: float) -> None:
        self.cos, self.num, self.weight = names.index("cos_avg"), names.index("numbers"), number_weight

    def score(self, X: np.ndarray) -> np.ndarray:
        return X[:, self.cos] + self.weight * X[:, self.num]


def _decided(Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows labelled same or different, and whether each is same story."""
    overall = Y[:, OVERALL]
    keep = (overall <= SEMEVAL_SAME_MAX) | (overall >= SEMEVAL_DIFF_MIN)
    return keep, overall[keep] <= SEMEVAL_SAME_MAX


class Logistic(Scorer):
    """L2 logistic regression, same vs different story (ambiguous pairs out); C chosen on inner folds by log-loss."""

    name = "logistic"

    def __init__(self, columns: Optional[list[int]] = None, grid: Sequence[float] = LOGISTIC_C) -> None:
        self.columns, self.grid = columns, tuple(grid)

    def _cols(self, X: np.ndarray) -> np.ndarray:
        return X if self.columns is None else X[:, self.columns]

    @staticmethod
    def _fit_one(X: np.ndarray, y: np.ndarray, C: float):
        from sklearn.linear_model import LogisticRegression

        scaler = Standardiser().fit(X)
        model = LogisticRegression(C=C, max_iter=2000).fit(scaler.transform(X), y)
        return scaler, model

    def fit(self, X: np.ndarray, Y: np.ndarray, fold_of: np.ndarray) -> "Logistic":
        X = self._cols(X)
        keep, y = _decided(Y)
        X, folds = X[keep], fold_of[keep]
        losses = {}
        for C in self.grid:
            total = 0.0
            for f in np.unique(folds):
                scaler, model = self._fit_one(X[folds != f], y[folds != f], C)
                p = np.clip(model.predict_proba(scaler.transform(X[folds == f]))[:, 1], 1e-9, 1 - 1e-9)
                yt = y[folds == f]
                total -= float(np.sum(yt * np.log(p) + (1 - yt) * np.log(1 - p)))
            losses[C] = total / len(y)
        self.C_ = min(losses, key=losses.get)
        self.scaler_, self.model_ = self._fit_one(X, y, self.C_)
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        return self.model_.decision_function(self.scaler_.transform(self._cols(X)))

    def describe(self) -> str:
        return f"C={self.C_:g}"


class ReducedRankRidge(Scorer):
    """Ridge regression of the seven standardised ratings on the standardised features, its coefficient
    matrix projected on the top ``rank`` directions of the fitted ratings (reduced-rank ridge; rank 7 is
    plain multi-output ridge); the score is minus the predicted Overall. alpha x rank chosen on inner
    folds by the held-out MSE of Overall."""

    name = "rr-ridge (7 ratings)"

    def __init__(self, alphas: Sequence[float] = RIDGE_ALPHA, ranks: Sequence[int] = RIDGE_RANK) -> None:
        self.alphas, self.ranks = tuple(alphas), tuple(ranks)

    @staticmethod
    def _fit_one(X: np.ndarray, Y: np.ndarray, alpha: float, rank: int):
        xs, ys = Standardiser().fit(X), Standardiser().fit(Y)
        return xs, ys, _rr_ridge(xs.transform(X), ys.transform(Y), alpha, rank)

    @staticmethod
    def _overall(model, X: np.ndarray) -> np.ndarray:
        xs, ys, B = model
        return (xs.transform(X) @ B[:, OVERALL]) * ys.sd_[OVERALL] + ys.mean_[OVERALL]

    def fit(self, X: np.ndarray, Y: np.ndarray, fold_of: np.ndarray) -> "ReducedRankRidge":
        errors = {}
        for alpha in self.alphas:
            for rank in self.ranks:
                sq = 0.0
                for f in np.unique(fold_of):
                    tr, te = fold_of != f, fold_of == f
                    pred = self._overall(self._fit_one(X[tr], Y[tr], alpha, rank), X[te])
                    sq += float(np.sum((pred - Y[te, OVERALL]) ** 2))
                errors[(alpha, rank)] = sq / len(X)
        self.alpha_, self.rank_ = min(errors, key=errors.get)
        self.model_ = self._fit_one(X, Y, self.alpha_, self.rank_)
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        return -self._overall(self.model_, X)

    def describe(self) -> str:
        return f"alpha={self.alpha_:g} rank={self.rank_}"


# --------------------------------------------------------------------------- cross-validation


def _f1(pred: np.ndarray, same: np.ndarray) -> tuple[float, float, float]:
    tp, p, a = int((pred & same).sum()), int(pred.sum()), int(same.sum())
    precision = 1.0 if p == 0 else tp / p
    recall = 1.0 if a == 0 else tp / a
    return (0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)), precision, recall


def _pearson(score: np.ndarray, overall: np.ndarray) -> Optional[float]:
    if len(score) < 2 or np.ptp(score) == 0 or np.ptp(overall) == 0:
        return None
    return float(np.corrcoef(score, -overall)[0, 1])


def fold_figures(score: np.ndarray, threshold: float, Y: np.ndarray, xl: np.ndarray) -> dict:
    """Pair F1 (all, cross-lingual; decided pairs) at ``threshold`` and Pearson with -Overall (all pairs)."""
    keep, same = _decided(Y)
    pred = score[keep] >= threshold
    f1, precision, recall = _f1(pred, same)
    xk = xl[keep]
    xl_f1, _, _ = _f1(pred[xk], same[xk])
    return {"f1": f1, "precision": precision, "recall": recall, "xl_f1": xl_f1,
            "pearson": _pearson(score, Y[:, OVERALL]), "xl_pearson": _pearson(score[xl], Y[xl, OVERALL]),
            "same": int(same.sum()), "xl_same": int(same[xk].sum()), "pairs": int(len(score))}


def cross_validate(make: Callable[[], Scorer], X: np.ndarray, Y: np.ndarray, xl: np.ndarray, fold_of: np.ndarray,
                   fixed_threshold: Optional[float] = None) -> list[dict]:
    """Per held-out fold: fit on the other folds, threshold by training F1 (or ``fixed_threshold``), score."""
    out = []
    for f in range(K):
        tr, te = fold_of != f, fold_of == f
        scorer = make().fit(X[tr], Y[tr], fold_of[tr])
        if fixed_threshold is None:
            keep, same = _decided(Y[tr])
            threshold = best_threshold(scorer.score(X[tr])[keep], same)
        else:
            threshold = fixed_threshold
        out.append({**fold_figures(scorer.score(X[te]), threshold, Y[te], xl[te]), "fold": f,
                    "threshold": threshold, "params": scorer.describe(), "scorer": scorer})
    return out


def _pm(folds: list[dict], metric: str) -> str:
    values = np.array([f[metric] for f in folds if f[metric] is not None], dtype=float)
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


def _gain(folds: list[dict], base: list[dict], metric: str) -> dict:
    return paired_gain(folds, base, metric)


def print_cv(rows: list[tuple[str, list[dict]]], base: list[dict]) -> None:
    head = f"{'score':<34}" + "".join(f"{m:>17}" for m in METRICS)
    print(head)
    for name, folds in rows:
        print(f"{name:<34}" + "".join(f"{_pm(folds, m):>17}" for m in METRICS))
    print("\npaired gain over the baseline, fold by fold (mean ± SE = sd/sqrt(5)):")
    print(f"{'score':<34}" + "".join(f"{m:>17}" for m in METRICS))
    for name, folds in rows:
        if folds is base:
            continue
        cells = []
        for m in METRICS:
            g = _gain(folds, base, m)
            cells.append(f"{g['mean']:+.3f} ± {g['se']:.3f}")
        print(f"{name:<34}" + "".join(f"{c:>17}" for c in cells))


def verdict(rows: dict[str, list[dict]], base: list[dict]) -> tuple[bool, list[str]]:
    """GO when a learnt score gains on F1 beyond one SE and on xl F1 or Pearson beyond one SE."""
    go, reasons = False, []
    for name in ("logistic", "rr-ridge (7 ratings)"):
        g = {m: _gain(rows[name], base, m) for m in ("f1", "xl_f1", "pearson")}
        beyond = {m: g[m]["mean"] > g[m]["se"] for m in g}
        ok = beyond["f1"] and (beyond["xl_f1"] or beyond["pearson"])
        go |= ok
        reasons.append(f"{name}: F1 {g['f1']['mean']:+.3f} (SE {g['f1']['se']:.3f}) "
                       f"{'beyond' if beyond['f1'] else 'within'} 1 SE; xl F1 {g['xl_f1']['mean']:+.3f} "
                       f"(SE {g['xl_f1']['se']:.3f}) {'beyond' if beyond['xl_f1'] else 'within'}; Pearson "
                       f"{g['pearson']['mean']:+.3f} (SE {g['pearson']['se']:.3f}) "
                       f"{'beyond' if beyond['pearson'] else 'within'} -> {'passes' if ok else 'fails'}")
    return go, reasons


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--dev``, ``--extra``, ``--cache`` and ``--seed``: the pairs, the cached views and the folds' seed,
    as every bench on these two CSVs takes them."""
    parser.add_argument("--dev", type=Path, default=DEFAULT_DEV, help="SemEval pairs CSV (default: %(default)s)")
    parser.add_argument("--extra", type=Path, default=DEFAULT_EXTRA,
                        help="second, disjoint pairs CSV ('' to leave out; default: %(default)s)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="reuse/save the two views here (.npz; default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds (default 0)")


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_data_arguments(parser)
    parser.add_argument("--refresh", action="store_true", help="embed again even when the cache matches")
    parser.add_argument("--extra-seeds", type=int, nargs="*", default=[1, 2, 3, 4],
                        help="other fold seeds, printed as a robustness check only (default: 1 2 3 4)")
    parser.add_argument("--number-weight", type=float, default=ClusterOptions().number_weight,
                        help="number weight of the baseline (default: the clusterer's, %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    csvs = [p for p in (args.dev, args.extra) if p and str(p)]
    missing = [p for p in csvs if not p.exists()]
    if missing:
        print(f"SemEval CSV not found: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    cpu_start = time.process_time()
    print(f"CPU: {cpu_model()}, {len(os.sched_getaffinity(0))} cores usable")

    data = load_pairs(csvs)
    table = data.table
    counts = ", ".join(f"{src} {n}" for src, n in table["source"].value_counts(sort=False).items())
    keep, same = _decided(table[[r.lower() for r in RATINGS]].to_numpy())
    xl = table["cross_lingual"].to_numpy(dtype=bool)
    print(f"{len(data.articles)} distinct articles, {len(table)} pairs ({counts}); same story {int(same.sum())} "
          f"({int((same & xl[keep]).sum())} cross-lingual), different {int((~same).sum())}, "
          f"ambiguous {int((~keep).sum())}")

    t0 = time.perf_counter()
    views = load_or_embed_views(data.articles, csvs, args.cache, args.refresh)
    embed_wall = time.perf_counter() - t0
    print("views:", ", ".join(f"{k} {v}" for k, v in views.info.items()), f"(this step {embed_wall:.1f} s)")

    t0 = time.perf_counter()
    feats = pair_features(data, views)
    print(f"features ({time.perf_counter() - t0:.1f} s): {', '.join(feats.names)}")
    for note in feats.notes:
        print("  " + note)
    X = feats.X
    Y = table[[r.lower() for r in RATINGS]].to_numpy(dtype=np.float64)
    print("feature means, same / different story:  " + "  ".join(
        f"{n} {X[keep][same, j].mean():.3f}/{X[keep][~same, j].mean():.3f}" for j, n in enumerate(feats.names)))

    t0 = time.perf_counter()
    names = feats.names
    today = [names.index("cos_avg"), names.index("numbers")]
    makers: dict[str, Callable[[], Scorer]] = {
        "baseline (today)": lambda: Baseline(names, args.number_weight),
        "logistic": Logistic,
        "rr-ridge (7 ratings)": ReducedRankRidge,
    }
    diagnostics: dict[str, tuple[Callable[[], Scorer], Optional[float]]] = {
        f"baseline, fixed threshold {1 - ClusterOptions().max_distance:.2f}":
            (lambda: Baseline(names, args.number_weight), 1 - ClusterOptions().max_distance),
        "logistic on cos_avg + numbers only": (lambda: Logistic(columns=today), None),
    }

    def run(seed: int) -> tuple[dict[str, list[dict]], np.ndarray]:
        fold_of = base_id_folds(table, K, seed)
        results = {name: cross_validate(make, X, Y, xl, fold_of) for name, make in makers.items()}
        return results, fold_of

    results, fold_of = run(args.seed)
    base = results["baseline (today)"]
    print(f"\n5-fold CV, folds by connected component of the pair graph on base ids (seed {args.seed}); "
          f"pairs per fold {np.bincount(fold_of).tolist()}, same-story per fold {[f['same'] for f in base]}, "
          f"cross-lingual same-story per fold {[f['xl_same'] for f in base]}")
    print("Pair classification at one threshold per fold (chosen for F1 on the training folds), a proxy for the "
          "clusterer. Mean ± sd over the 5 held-out folds:\n")
    diag = {name: cross_validate(make, X, Y, xl, fold_of, thr) for name, (make, thr) in diagnostics.items()}
    print_cv(list(results.items()), base)
    print("\ndiagnostics (not part of the verdict):")
    print_cv([(n, f) for n, f in diag.items()], base)
    print("\nper fold (threshold; chosen parameters):")
    for name, folds in results.items():
        print(f"  {name:<22} " + " | ".join(
            f"F1 {f['f1']:.3f} xl {f['xl_f1']:.3f} r {f['pearson']:.3f} thr {f['threshold']:.3f}"
            + (f" {f['params']}" if f["params"] else "") for f in folds))
    coefs = np.array([f["scorer"].model_.coef_.ravel() for f in results["logistic"]])
    print("logistic coefficients (standardised features), mean over folds: " + ", ".join(
        f"{n} {c:+.2f}" for n, c in zip(names, coefs.mean(axis=0))))
    ridge = np.array([f["scorer"].model_[2][:, OVERALL] for f in results["rr-ridge (7 ratings)"]])
    print("rr-ridge coefficients for standardised Overall (lower = more similar), mean over folds: " + ", ".join(
        f"{n} {c:+.2f}" for n, c in zip(names, ridge.mean(axis=0))))
    cv_s = time.perf_counter() - t0

    if args.extra_seeds:
        print("\nrobustness: gain over the baseline with other fold seeds (mean ± SE), not part of the verdict")
        for seed in args.extra_seeds:
            other, _ = run(seed)
            b = other["baseline (today)"]
            print(f"  seed {seed}: " + " | ".join(
                f"{name} " + " ".join(f"{m} {_gain(other[name], b, m)['mean']:+.3f}±{_gain(other[name], b, m)['se']:.3f}"
                                      for m in ("f1", "xl_f1", "pearson"))
                for name in ("logistic", "rr-ridge (7 ratings)")))

    go, reasons = verdict(results, base)
    print("\nverdict: " + ("GO" if go else "NO-GO")
          + " (bar: a learnt score gains on F1 beyond 1 SE and on xl F1 or Pearson beyond 1 SE)")
    for reason in reasons:
        print("  " + reason)
    print(f"\nruntime: total {time.perf_counter() - t_start:.1f} s wall, {time.process_time() - cpu_start:.1f} s CPU "
          f"(views {embed_wall:.1f} s, CV {cv_s:.1f} s); process peak RSS (ru_maxrss) {peak_rss_mb():.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
