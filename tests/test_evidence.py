"""Shared numbers as cross-lingual evidence: extraction, similarity, and their effect on the clusterer."""
from __future__ import annotations

import numpy as np
import pytest

from storyclust.cluster import ClusterOptions, StoryClusterer
from storyclust.evidence import evidence_text, number_evidence, number_tokens, pair_evidence
from storyclust.types import Article


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("Plus de 20 000 habitants évacués", ["20000"]),  # French thousands (space)
        ("Lebih dari 20.000 warga dievakuasi", ["20000"]),  # Indonesian / German thousands (point)
        ("More than 20,000 residents evacuated", ["20000"]),
        ("séisme de magnitude 6,4", ["6.4"]),  # decimal comma
        ("a magnitude 6.4 quake; 1.500,25 EUR; 1,500.25 USD", ["6.4", "1500.25", "1500.25"]),
        ("٢٠ قتيلا", ["20"]),  # Arabic-Indic digits
        ("２０２４年", ["2024"]),  # fullwidth digits
        ("in 2020 200 people", ["2020", "200"]),  # a year is not a thousands group
        ("no numbers at all", []),
    ],
)
def test_numbers_are_read_in_one_canonical_form(text: str, numbers: list[str]) -> None:
    assert number_tokens(text) == numbers


def test_number_similarity_is_a_tfidf_cosine() -> None:
    texts = ["20 000 évacués, séisme de 6,4", "20.000 dievakuasi, gempa 6,4", "Lyon bat Saint-Étienne 3 à 1", "rien"]
    E = number_evidence(texts)
    S = (E @ E.T).toarray()
    assert S[0, 1] == pytest.approx(1.0)  # the same numbers, written two ways
    assert S[0, 2] == 0.0 and S[2, 2] == pytest.approx(1.0)
    assert not S[3].any()  # a text without numbers has no evidence either way
    np.testing.assert_allclose(pair_evidence(E, np.array([0, 0]), np.array([1, 2])), [1.0, 0.0], atol=1e-6)
    assert number_evidence(["rien", "nothing"]) is None


def test_rare_numbers_count_more_than_common_ones() -> None:
    texts = ["2026: 37 dead", "2026: 37 morts", "2026: 12 dead", "2026 budget", "2026 season"]
    S = (number_evidence(texts) @ number_evidence(texts).T).toarray()
    assert S[0, 1] > 0.99 and S[0, 2] < 0.5  # sharing the toll matters, sharing the year little


def test_evidence_text_includes_the_title() -> None:
    assert number_tokens(evidence_text(Article(id="a", text="Body.", title="7 dead"))) == ["7"]
    assert evidence_text(Article(id="b", text="Body 3.")) == "Body 3."


def _pair(cosine: float) -> np.ndarray:
    """Two unit vectors at ``cosine``, plus a third orthogonal to both."""
    return np.array([[1.0, 0.0, 0.0], [cosine, np.sqrt(1 - cosine**2), 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)


def test_shared_numbers_join_a_pair_just_under_the_threshold() -> None:
    X = _pair(0.45)  # distance 0.55: just beyond max_distance 0.50
    texts = ["Quake of magnitude 6.4 kills 37", "Gempa 6,4 tewaskan 37 orang", "Lyon 3, Saint-Étienne 1"]
    options = ClusterOptions(max_distance=0.50, number_weight=0.10, neutralize=False)
    joined = StoryClusterer(options).fit_predict(X, texts=texts)
    assert joined[0] == joined[1] != joined[2]
    apart = StoryClusterer(options).fit_predict(X)  # no texts: the embedding alone decides
    assert len(set(apart)) == 3
    off = StoryClusterer(ClusterOptions(max_distance=0.50, number_weight=0.0, neutralize=False))
    assert len(set(off.fit_predict(X, texts=texts))) == 3
    # the numbers found beforehand (as the nightly state keeps them) are the same evidence as the texts
    kept = StoryClusterer(options).fit(X, numbers=[number_tokens(t) for t in texts])
    assert list(kept.labels_) == list(joined)
    assert (kept.evidence_ != StoryClusterer(options).fit(X, texts=texts).evidence_).nnz == 0
    with pytest.raises(ValueError):
        kept.partial_fit(X[:1])  # rows are added by their texts


def test_shared_numbers_alone_do_not_join_unrelated_articles() -> None:
    X = _pair(0.10)  # far apart in meaning
    texts = ["37 dead in quake, magnitude 6.4", "Index up 6.4 points, 37 stocks gain", "nothing"]
    labels = StoryClusterer(ClusterOptions(max_distance=0.50, neutralize=False)).fit_predict(X, texts=texts)
    assert len(set(labels)) == 3


def test_negative_number_weight_is_refused() -> None:
    with pytest.raises(ValueError, match="number_weight"):
        ClusterOptions(number_weight=-0.1)
