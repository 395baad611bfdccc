"""A learnt "same story" pair score over several cheap signals (issue 24).

Today the clusterer decides on ``cosine + number_weight x shared-number cosine``. A
:class:`PairScore` replaces that sum by a low-capacity linear score over every signal the clusterer
already holds per article, learnt from labelled pairs (``storyclust tune --learn-score``):

===================  ==========================================================================
feature              meaning (per pair of articles)
===================  ==========================================================================
``cos``              cosine of the language-neutral vectors (the clusterer's ``neutral_``)
``numbers``          TF-IDF cosine of the numbers both texts carry (:mod:`storyclust.evidence`)
``names``            TF-IDF cosine of their capitalised words and acronyms, function words left
                     out, folded (casefold, accents stripped, Cyrillic and Greek transliterated to
                     Latin with a built-in table), so "Путин" and "Putin" are one name
``gap_days``         days between the two dates when both are dated, else 0
``gap_unknown``      1 when either article has no date
``len_ratio``        ``|log(chars a / chars b)|`` of the texts
``xl_same_script``   1 for two languages written in one script (en-fr)
``xl_diff_script``   1 for two scripts (en-ru, zh-ar); same language is the reference
===================  ==========================================================================

Every feature costs nothing per token: it is computed from what the clusterer already has (the
neutral vector, the texts' numbers and capitalised words, dates, lengths, languages). The title +
lead view that the embedding step averages in is **not** a separate feature: the clusterer only
keeps the averaged vector, and a second vector per article would mean a second embedding pass or
twice the stored vectors. Transliteration is a small built-in table (Cyrillic, Greek, Latin
diacritics); scripts without letter case (Chinese, Arabic, Hebrew, ...) have no capitalised words,
so they give no names, and no new dependency is used (``unidecode`` is GPL-2.0).

The model (:meth:`PairScore.fit`) is a reduced-rank ridge regression of all seven SemEval ratings
(Geography, Entities, Time, Narrative, Overall, Style, Tone; a gold-story file gives Overall only
and it stands in for the others) on the standardised features, its coefficient matrix projected on
the top ``rank`` directions of the fitted ratings: the ratings share a few directions, which is
what lets ~1,700 pairs fit it. ``bench/bench_pair_score.py`` measured it at least as good as a
logistic regression on Overall in Pearson and equal in F1. The score is minus the predicted
Overall, then **mapped to the cosine scale**: divided by its weight on ``cos`` (so the score is
``cos + sum_k u_k x_k + c``, slope exactly 1 in the cosine, hence monotone in it; a fit whose cosine
weight is not positive is refused), and shifted so that ``1 - max_distance`` (0.50 by default) is the
threshold of best pair F1 on the training pairs: ``--max-distance`` keeps meaning "same story", and
average linkage averages distances ``1 - score`` as it averaged ``1 - cosine``. Features other than
``cos`` are clipped to the range seen in training, so the score never extrapolates and the most it
can add to a cosine is bounded (:meth:`PairScore.max_bonus`, which the neighbour search uses).
"""
from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping, Optional, Sequence

import numpy as np

from .evidence import group_evidence, number_evidence, pair_evidence, tfidf_rows

FORMAT = "storyclust-pair-score/1"
FEATURES = ("cos", "numbers", "names", "gap_days", "gap_unknown", "len_ratio", "xl_same_script", "xl_diff_script")
RATINGS = ("Geography", "Entities", "Time", "Narrative", "Overall", "Style", "Tone")
OVERALL = RATINGS.index("Overall")
SAME_MAX, DIFF_MIN = 1.5, 3.0  # Overall <= 1.5: same story; >= 3.0: different (storyclust.evaluate)
ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)
RANKS = (1, 2, 3, len(RATINGS))
DEFAULT_ALPHA, DEFAULT_RANK = 0.1, 3  # chosen by bench/bench_pair_score.py's inner folds on dev + extra
#: Fewest labelled pairs (and of each class) :meth:`PairScore.fit` accepts.
MIN_PAIRS, MIN_PER_CLASS = 50, 10

#: Script of common news languages; other languages are read off their text.
SCRIPT_OF = {
    **dict.fromkeys("en de es it pl tr fr pt nl sv da no nb fi et lv lt cs sk sl hr bs ro hu sq id ms tl vi "
                    "sw af ca eu gl ga cy is mt az uz".split(), "Latn"),
    **dict.fromkeys("ru uk bg sr mk be kk ky mn tg".split(), "Cyrl"),
    **dict.fromkeys("ar fa ur ps".split(), "Arab"),
    "zh": "Hani", "ja": "Jpan", "ko": "Hang", "he": "Hebr", "el": "Grek", "th": "Thai", "ka": "Geor", "hy": "Armn",
    **dict.fromkeys("hi mr ne".split(), "Deva"), "bn": "Beng", "ta": "Taml", "te": "Telu", "gu": "Gujr",
}

_WORD = re.compile(r"\b[^\W\d_]\w*")  # a word: a letter, then letters or digits
_CYRILLIC = dict(zip(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяіїєґў",
    ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "i", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u",
     "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya", "i", "i", "ye", "g", "u"]))
_GREEK = dict(zip("αβγδεζηθικλμνξοπρσςτυφχψω",
                  ["a", "v", "g", "d", "e", "z", "i", "th", "i", "k", "l", "m", "n", "x", "o", "p", "r", "s", "s",
                   "t", "y", "f", "ch", "ps", "o"]))
_TRANSLIT = str.maketrans({**_CYRILLIC, **_GREEK})


# --------------------------------------------------------------------------- per-article signals


def fold_name(word: str) -> str:
    """A capitalised word as one key across scripts: casefolded, accents stripped, Cyrillic and Greek
    written in Latin letters (a built-in table; other scripts kept as they are).

    >>> fold_name("Путин"), fold_name("Putin"), fold_name("Zelensky"), fold_name("Зеленский")
    ('putin', 'putin', 'zelensky', 'zelenskii')
    """
    w = unicodedata.normalize("NFKD", word.casefold())
    w = "".join(ch for ch in w if not unicodedata.combining(ch))
    return w.translate(_TRANSLIT)


def name_words(text: str, stop: frozenset[str]) -> list[str]:
    """Folded capitalised words (names, acronyms) of ``text``, at least two letters, function words left out."""
    out = []
    for match in _WORD.finditer(text):
        word = match.group(0)
        if len(word) >= 2 and word[0].isupper() and word.casefold() not in stop:
            out.append(fold_name(word))
    return out


def script_of(lang: Optional[str], text: str = "") -> str:
    """The script of ``lang`` (:data:`SCRIPT_OF`), else that of most letters of the text's start ("?" if none)."""
    if lang in SCRIPT_OF:
        return SCRIPT_OF[lang]
    counts: dict[str, int] = {}
    for ch in text[:1000]:
        if ch.isalpha():
            name = unicodedata.name(ch, "?").split(" ")[0]
            counts[name] = counts.get(name, 0) + 1
    return max(counts, key=counts.get) if counts else "?"


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from .labels import function_words

    return function_words()


@dataclass(frozen=True)
class RowSignals:
    """What the features need per article, computed once per clustering (one row per article)."""

    numbers: Any  # row-normalised TF-IDF CSR of numbers, or None
    names: Any  # row-normalised TF-IDF CSR of folded capitalised words, or None
    log_chars: np.ndarray  # log of text length (0 without texts)
    lang: np.ndarray  # int code per row, -1 unknown
    script: np.ndarray  # int code per row, -1 unknown
    days: Optional[np.ndarray]  # float days (NaN unknown), None when no row is dated

    @classmethod
    def of(cls, texts: Optional[Sequence[str]], langs: Sequence[Optional[str]],
           days: Optional[np.ndarray]) -> "RowSignals":
        n = len(langs)
        if texts is None:
            numbers = names = None
            log_chars = np.zeros(n)
        else:
            numbers = number_evidence(texts)
            stop = _stopwords()
            names = tfidf_rows([name_words(t, stop) for t in texts])
            log_chars = np.log(np.array([max(len(t), 1) for t in texts], dtype=np.float64))
        lang_codes: dict[str, int] = {}
        script_codes: dict[str, int] = {}
        lang = np.array([-1 if not x else lang_codes.setdefault(x, len(lang_codes)) for x in langs], dtype=np.int64)
        scripts = [script_of(x, "" if texts is None else texts[i]) for i, x in enumerate(langs)]
        script = np.array([-1 if s == "?" else script_codes.setdefault(s, len(script_codes)) for s in scripts],
                          dtype=np.int64)
        return cls(numbers, names, log_chars, lang, script, days)


def pair_features(Z: np.ndarray, signals: RowSignals, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The :data:`FEATURES` of each pair (rows[k], cols[k]): a (pairs, features) float64 matrix."""
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    F = np.zeros((len(rows), len(FEATURES)))
    if not len(rows):
        return F
    Z = np.asarray(Z)
    F[:, 0] = np.einsum("ij,ij->i", Z[rows].astype(np.float64), Z[cols].astype(np.float64))
    F[:, 1] = pair_evidence(signals.numbers, rows, cols)  # row cosines of a row-normalised TF-IDF matrix
    F[:, 2] = pair_evidence(signals.names, rows, cols)
    if signals.days is None:
        F[:, 4] = 1.0
    else:
        gap = np.abs(signals.days[rows] - signals.days[cols])
        unknown = np.isnan(gap)
        F[:, 3] = np.where(unknown, 0.0, gap)
        F[:, 4] = unknown
    F[:, 5] = np.abs(signals.log_chars[rows] - signals.log_chars[cols])
    known = (signals.lang[rows] >= 0) & (signals.lang[cols] >= 0)
    xl = known & (signals.lang[rows] != signals.lang[cols])
    same_script = signals.script[rows] == signals.script[cols]
    F[:, 6] = xl & same_script
    F[:, 7] = xl & ~same_script
    return F


def group_features(signals: RowSignals, members: np.ndarray):
    """``(k, M)`` for each feature ``FEATURES[k]`` but the cosine, ``M`` its dense (m, m) matrix among
    ``members`` (None where the feature is 0 throughout), one at a time (a generator: a big candidate
    group holds one such matrix at once, not eight)."""
    members = np.asarray(members, dtype=np.int64)
    m = len(members)
    for k, M in ((1, signals.numbers), (2, signals.names)):
        dense = group_evidence(M, members)
        yield k, None if dense is None else dense.astype(np.float64)
    if signals.days is None:
        yield 3, None
        yield 4, np.ones((m, m))
    else:
        d = signals.days[members]
        gap = np.abs(d[:, None] - d[None, :])
        unknown = np.isnan(gap)
        gap[unknown] = 0.0
        yield 3, gap
        del gap
        yield 4, unknown.astype(np.float64)
    c = signals.log_chars[members]
    yield 5, np.abs(c[:, None] - c[None, :])
    lang, script = signals.lang[members], signals.script[members]
    xl = (lang[:, None] >= 0) & (lang[None, :] >= 0) & (lang[:, None] != lang[None, :])
    same_script = script[:, None] == script[None, :]
    yield 6, (xl & same_script).astype(np.float64)
    yield 7, (xl & ~same_script).astype(np.float64)


# --------------------------------------------------------------------------- the score


def _standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = X.mean(axis=0)
    sd = X.std(axis=0)
    return mean, np.where(sd > 1e-12, sd, 1.0)


def _rr_ridge(Xs: np.ndarray, Ys: np.ndarray, alpha: float, rank: int) -> np.ndarray:
    """Reduced-rank ridge: ridge coefficients projected on the top ``rank`` directions of the fitted ratings."""
    B = np.linalg.solve(Xs.T @ Xs + alpha * np.eye(Xs.shape[1]), Xs.T @ Ys)
    if rank < Ys.shape[1]:
        _, _, Vt = np.linalg.svd(Xs @ B, full_matrices=False)
        V = Vt[:rank].T
        B = B @ V @ V.T
    return B


def best_threshold(score: np.ndarray, same: np.ndarray) -> float:
    """The threshold (same story when score >= it) of best pair F1 on these decided pairs, midway between
    the last score kept and the next (ties never split)."""
    order = np.argsort(-score, kind="stable")
    s, y = score[order], same[order].astype(np.int64)
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(y)[last]
    f1 = 2 * tp / (last + 1 + y.sum())
    k = int(np.argmax(f1))
    nxt = s[last[k] + 1] if last[k] + 1 < len(s) else s[last[k]] - 1.0
    return float((s[last[k]] + nxt) / 2)


def ratings_matrix(overall: np.ndarray, others: Optional[Mapping[str, np.ndarray]] = None) -> np.ndarray:
    """(pairs, 7) ratings in :data:`RATINGS` order; a rating missing (absent or NaN) takes Overall's value."""
    overall = np.asarray(overall, dtype=np.float64)
    Y = np.repeat(overall[:, None], len(RATINGS), axis=1)
    for j, name in enumerate(RATINGS):
        col = None if others is None else others.get(name, others.get(name.lower()))
        if col is not None and j != OVERALL:
            col = np.asarray(col, dtype=np.float64)
            Y[:, j] = np.where(np.isnan(col), overall, col)
    return Y


@dataclass(frozen=True)
class PairScore:
    """A fitted same-story score on the cosine scale (see the module docstring).

    ``coef`` and ``intercept`` are the model on standardised features (``(x - mean) / scale``),
    in units of minus the standardised Overall rating; ``lo``/``hi`` clip every feature but the
    cosine; ``offset`` is the calibration that puts the best-F1 threshold at ``1 - max_distance``.
    """

    coef: tuple[float, ...]
    intercept: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    lo: tuple[float, ...]
    hi: tuple[float, ...]
    offset: float
    max_distance: float = 0.5
    names: tuple[str, ...] = FEATURES
    params: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    provenance: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if tuple(self.names) != FEATURES:
            raise ValueError(f"pair score features {list(self.names)} are not this version's {list(FEATURES)}")
        for name in ("coef", "mean", "scale", "lo", "hi"):
            values = getattr(self, name)
            if len(values) != len(FEATURES) or not all(math.isfinite(v) for v in values):
                raise ValueError(f"pair score: {name} must hold {len(FEATURES)} finite numbers")
        if not (math.isfinite(self.intercept) and math.isfinite(self.offset)):
            raise ValueError("pair score: intercept and offset must be finite")
        if self.cosine_weight <= 0:
            raise ValueError("pair score: the weight of the cosine must be positive (the score rises with it)")

    # -- the score on the cosine scale: cos + sum_k u_k clip(x_k) + c ------------------
    @property
    def cosine_weight(self) -> float:
        """The model's weight on the raw cosine (positive: the score rises with it)."""
        return self.coef[0] / self.scale[0]

    def linear_form(self) -> tuple[np.ndarray, float]:
        """``(u, c)``: the score is ``cos + u @ clip(x)[1:] + c`` (u: one weight per feature after ``cos``)."""
        w = np.asarray(self.coef) / np.asarray(self.scale)
        a = w[0]
        const = (self.intercept - float(w @ np.asarray(self.mean))) / a + self.offset
        return w[1:] / a, float(const)

    def _clip(self, F: np.ndarray) -> np.ndarray:
        return np.clip(F, np.asarray(self.lo[1:]), np.asarray(self.hi[1:]))

    def __call__(self, F: np.ndarray) -> np.ndarray:
        """Scores of feature rows ``F`` (pairs, features), on the cosine scale."""
        F = np.asarray(F, dtype=np.float64)
        u, c = self.linear_form()
        return F[:, 0] + self._clip(F[:, 1:]) @ u + c

    def similarity(self, Z: np.ndarray, signals: RowSignals, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The score of each pair (rows[k], cols[k]) of the clusterer's rows."""
        return self(pair_features(Z, signals, rows, cols))

    def group_bonus(self, signals: RowSignals, members: np.ndarray) -> np.ndarray:
        """(m, m) matrix of score minus cosine among ``members`` (what average linkage adds to the cosine)."""
        u, c = self.linear_form()
        m = len(members)
        out = np.full((m, m), c)
        for k, M in group_features(signals, members):
            if u[k - 1] == 0:
                continue
            lo, hi = self.lo[k], self.hi[k]
            if M is None:
                out += u[k - 1] * min(max(0.0, lo), hi)
            else:
                np.clip(M, lo, hi, out=M)
                M *= u[k - 1]
                out += M
            del M
        return out

    def max_bonus(self) -> float:
        """The most the score can exceed the cosine (over the clipped feature ranges)."""
        u, c = self.linear_form()
        lo, hi = np.asarray(self.lo[1:]), np.asarray(self.hi[1:])
        return float(c + np.maximum(u * lo, u * hi).sum())

    # -- learning ----------------------------------------------------------------------
    @classmethod
    def fit(cls, F: np.ndarray, ratings: np.ndarray, *, folds: Optional[np.ndarray] = None,
            alphas: Sequence[float] = ALPHAS, ranks: Sequence[int] = RANKS, max_distance: float = 0.5,
            provenance: Optional[Mapping[str, Any]] = None) -> "PairScore":
        """Fit on feature rows ``F`` (pairs, :data:`FEATURES`) and ``ratings`` (pairs, 7, :data:`RATINGS`
        order, 1 = very similar .. 4 = very dissimilar; see :func:`ratings_matrix`).

        ``alpha`` x ``rank`` are chosen by the held-out squared error of Overall over ``folds`` (one
        fold number per pair, e.g. :func:`storyclust.evaluate.semeval_folds`; leave one fold out);
        without ``folds``, :data:`DEFAULT_ALPHA` and :data:`DEFAULT_RANK` (what the bench chose). Raises
        ValueError on too few pairs (:data:`MIN_PAIRS`, :data:`MIN_PER_CLASS` same and different), or when the fitted
        score does not rise with the cosine.
        """
        F = np.asarray(F, dtype=np.float64)
        Y = np.asarray(ratings, dtype=np.float64)
        if F.ndim != 2 or F.shape[1] != len(FEATURES) or Y.shape != (len(F), len(RATINGS)):
            raise ValueError(f"need (pairs, {len(FEATURES)}) features and (pairs, {len(RATINGS)}) ratings")
        if not (np.isfinite(F).all() and np.isfinite(Y).all()):
            raise ValueError("features and ratings must be finite")
        same, diff = Y[:, OVERALL] <= SAME_MAX, Y[:, OVERALL] >= DIFF_MIN
        if len(F) < MIN_PAIRS or same.sum() < MIN_PER_CLASS or diff.sum() < MIN_PER_CLASS:
            raise ValueError(f"too few labelled pairs to learn a pair score: {len(F)} pairs, {int(same.sum())} same "
                             f"story, {int(diff.sum())} different (need {MIN_PAIRS} pairs and {MIN_PER_CLASS} of "
                             "each)")
        x_mean, x_sd = _standardise(F)
        y_mean, y_sd = _standardise(Y)
        if folds is not None and len(np.unique(folds)) >= 2:
            folds = np.asarray(folds)
            errors = {}
            for alpha in alphas:
                for rank in ranks:
                    sq = 0.0
                    for f in np.unique(folds):
                        tr, te = folds != f, folds == f
                        m, s = _standardise(F[tr])
                        ym, ys = _standardise(Y[tr])
                        B = _rr_ridge((F[tr] - m) / s, (Y[tr] - ym) / ys, alpha, rank)
                        pred = ((F[te] - m) / s) @ B[:, OVERALL] * ys[OVERALL] + ym[OVERALL]
                        sq += float(np.sum((pred - Y[te, OVERALL]) ** 2))
                    errors[(alpha, rank)] = sq
            alpha, rank = min(errors, key=errors.get)
        else:
            alpha, rank = DEFAULT_ALPHA, DEFAULT_RANK
        B = _rr_ridge((F - x_mean) / x_sd, (Y - y_mean) / y_sd, alpha, rank)
        coef = -B[:, OVERALL]  # similarity = minus the standardised Overall
        lo, hi = F.min(axis=0), F.max(axis=0)
        lo[0], hi[0] = -1.0, 1.0  # the cosine is never clipped (only recorded)
        draft = dict(coef=tuple(map(float, coef)), intercept=0.0, mean=tuple(map(float, x_mean)),
                     scale=tuple(map(float, x_sd)), lo=tuple(map(float, lo)), hi=tuple(map(float, hi)))
        if coef[0] / x_sd[0] <= 0:
            raise ValueError("the fitted pair score does not rise with the cosine: refused (too little or odd data)")
        uncalibrated = cls(**draft, offset=0.0, max_distance=max_distance)
        decided = same | diff
        threshold = best_threshold(uncalibrated(F[decided]), same[decided])
        offset = (1.0 - max_distance) - threshold
        params = {"model": "reduced-rank ridge on the standardised features, 7 standardised ratings",
                  "alpha": float(alpha), "rank": int(rank), "targets": list(RATINGS),
                  "training_threshold": threshold, "pairs": int(len(F)), "same": int(same.sum()),
                  "different": int(diff.sum()), "ambiguous": int((~decided).sum())}
        return cls(**draft, offset=float(offset), max_distance=float(max_distance), params=params,
                   provenance=dict(provenance or {}))

    # -- files -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        u, c = self.linear_form()
        return {"format": FORMAT, "features": list(self.names), "coef": list(self.coef), "intercept": self.intercept,
                "mean": list(self.mean), "scale": list(self.scale), "lo": list(self.lo), "hi": list(self.hi),
                "offset": self.offset, "max_distance": self.max_distance, "params": dict(self.params),
                "provenance": dict(self.provenance),
                "cosine_scale": {"weights": dict(zip(self.names[1:], map(float, u))), "constant": c,
                                 "max_bonus": self.max_bonus()}}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PairScore":
        if data.get("format") != FORMAT:
            raise ValueError(f"not a pair score file (format {data.get('format')!r}, expected {FORMAT!r})")
        try:
            return cls(coef=tuple(map(float, data["coef"])), intercept=float(data["intercept"]),
                       mean=tuple(map(float, data["mean"])), scale=tuple(map(float, data["scale"])),
                       lo=tuple(map(float, data["lo"])), hi=tuple(map(float, data["hi"])),
                       offset=float(data["offset"]), max_distance=float(data.get("max_distance", 0.5)),
                       names=tuple(data["features"]), params=dict(data.get("params") or {}),
                       provenance=dict(data.get("provenance") or {}))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"pair score file is incomplete: {exc}") from None

    @classmethod
    def from_json(cls, text: str) -> "PairScore":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"pair score file is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError("pair score file must hold a JSON object")
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike[str]) -> None:
        from .write import open_output

        with open_output(str(path)) as fh:
            fh.write(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "PairScore":
        with open(path, encoding="utf-8") as fh:
            return cls.from_json(fh.read())


def labelled_features(articles: Sequence, Z: np.ndarray, id1: Sequence[str], id2: Sequence[str]) -> np.ndarray:
    """Features of labelled pairs of ``articles`` (rows of the neutral vectors ``Z``), with the signals
    computed over all the articles as one batch, as the clusterer computes them."""
    from .evidence import evidence_text
    from .pipeline import article_time

    row = {a.id: k for k, a in enumerate(articles)}
    times = [article_time(a) for a in articles]
    days = np.array([t.timestamp() / 86400.0 if t else np.nan for t in times], dtype=np.float64)
    signals = RowSignals.of([evidence_text(a) for a in articles], [a.lang for a in articles],
                            None if np.isnan(days).all() else days)
    rows = np.array([row[i] for i in id1], dtype=np.int64)
    cols = np.array([row[i] for i in id2], dtype=np.int64)
    return pair_features(Z, signals, rows, cols)
