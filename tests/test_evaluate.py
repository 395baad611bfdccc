"""Tests for storyclust.evaluate: label metrics, SemEval pairs, gold JSONL."""
from __future__ import annotations

import json
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.cluster import pair_confusion_matrix

from storyclust.evaluate import (
    CosineLookup,
    bcubed_scores,
    clustering_space,
    cross_lingual_pairwise_scores,
    evaluate_jsonl,
    evaluate_labels,
    evaluate_semeval,
    format_report,
    pipeline_language_means,
    labels_to_story_of,
    load_gold_jsonl,
    load_pred_stories,
    load_semeval,
    pairwise_scores,
    score_semeval_pairs,
    select_split,
    singletonize,
)
from storyclust.types import Article, Story, StoryMember

FIXTURES = Path(__file__).parent / "fixtures" / "eval"
SEMEVAL_DEV = Path(__file__).resolve().parents[2] / "shared" / "eval" / "semeval_dev.csv"

GOLD = ["a", "a", "a", "b", "b"]
PRED = [1, 1, 2, 2, 2]


# --------------------------------------------------------------------------- label metrics


def test_pairwise_hand_computed():
    # Contingency cells: (a,1)=2, (a,2)=1, (b,2)=2.
    # True pairs  = C(2,2)+C(1,2)+C(2,2) = 1+0+1 = 2
    # Pred pairs  = C(2,2)+C(3,2) = 1+3 = 4 ; gold pairs = C(3,2)+C(2,2) = 3+1 = 4
    # P = 2/4 = 0.5, R = 2/4 = 0.5, F1 = 0.5
    s = pairwise_scores(GOLD, PRED)
    assert (s["true_pairs"], s["pred_pairs"], s["gold_pairs"]) == (2, 4, 4)
    assert s["precision"] == pytest.approx(0.5)
    assert s["recall"] == pytest.approx(0.5)
    assert s["f1"] == pytest.approx(0.5)


def test_pairwise_asymmetric_hand_computed():
    # gold [a,a,a,b,b] vs pred [1,1,1,1,2]: cells (a,1)=3, (b,1)=1, (b,2)=1
    # true = C(3,2) = 3; pred pairs = C(4,2) = 6; gold pairs = 3 + 1 = 4
    # P = 3/6 = 0.5, R = 3/4 = 0.75, F1 = 2*0.5*0.75/1.25 = 0.6
    s = pairwise_scores(GOLD, [1, 1, 1, 1, 2])
    assert s["precision"] == pytest.approx(0.5)
    assert s["recall"] == pytest.approx(0.75)
    assert s["f1"] == pytest.approx(0.6)


def test_bcubed_hand_computed():
    # Item by item (precision = |pred cluster ∩ gold story| / |pred cluster|,
    #               recall    = |pred cluster ∩ gold story| / |gold story|):
    #   items 0,1 (a, pred 1): P = 2/2, R = 2/3
    #   item 2    (a, pred 2): P = 1/3, R = 1/3
    #   items 3,4 (b, pred 2): P = 2/3, R = 2/2
    # P = (1 + 1 + 1/3 + 2/3 + 2/3) / 5 = (11/3) / 5 = 11/15
    # R = (2/3 + 2/3 + 1/3 + 1 + 1) / 5 = (11/3) / 5 = 11/15 ; F1 = 11/15
    s = bcubed_scores(GOLD, PRED)
    assert s["precision"] == pytest.approx(11 / 15)
    assert s["recall"] == pytest.approx(11 / 15)
    assert s["f1"] == pytest.approx(11 / 15)


def test_ari_hand_computed_and_matches_sklearn():
    # index = sum C(n_ij,2) = 2; expected = (4 * 4) / C(5,2) = 1.6; max = (4 + 4) / 2 = 4
    # ARI = (2 - 1.6) / (4 - 1.6) = 0.4 / 2.4 = 1/6
    r = evaluate_labels(GOLD, PRED)
    assert r["ari"] == pytest.approx(1 / 6)
    assert r["ari"] == pytest.approx(adjusted_rand_score(GOLD, PRED))
    assert (r["n"], r["gold_clusters"], r["pred_clusters"]) == (5, 2, 2)


def test_perfect_clustering_scores_one_whatever_the_label_names():
    r = evaluate_labels(["x", "x", "y", "z", "z"], [7, 7, "q", 0, 0])
    for key in ("bcubed_precision", "bcubed_recall", "bcubed_f1",
                "pairwise_precision", "pairwise_recall", "pairwise_f1", "ari"):
        assert r[key] == pytest.approx(1.0), key


def test_all_singletons_has_zero_recall():
    # No predicted pairs: pairwise P is vacuously 1, R = 0/4 = 0, F1 = 0.
    # B-cubed: P = 1 for every item; R = (3 * 1/3 + 2 * 1/2) / 5 = 2/5.
    r = evaluate_labels(GOLD, [10, 11, 12, 13, 14])
    assert r["pairwise_recall"] == 0.0
    assert r["pairwise_precision"] == 1.0
    assert r["pairwise_f1"] == 0.0
    assert r["bcubed_precision"] == pytest.approx(1.0)
    assert r["bcubed_recall"] == pytest.approx(2 / 5)


def test_noise_label_is_a_singleton_each_not_one_cluster():
    as_noise = evaluate_labels(GOLD, [-1, -1, -1, -1, -1])
    as_singletons = evaluate_labels(GOLD, [10, 11, 12, 13, 14])
    assert as_noise == as_singletons
    assert as_noise["pred_clusters"] == 5
    # numpy arrays from HDBSCAN, None and NaN are noise too; two -1 items are never paired
    labels = np.array([0, 0, -1, 1, -1])
    assert pairwise_scores(GOLD, labels)["pred_pairs"] == 1
    assert pairwise_scores(GOLD, [0, 0, None, 1, float("nan")])["pred_pairs"] == 1
    # gold noise follows the same convention
    assert pairwise_scores([-1, -1, "a", "a", None], PRED)["gold_pairs"] == 1


def test_only_numeric_minus_one_is_noise():
    codes = singletonize(["-1", "-1", -1, -1, True, True])
    assert codes[0] == codes[1]  # the string "-1" is an ordinary label
    assert codes[2] != codes[3]
    assert codes[4] == codes[5]


def test_metrics_match_brute_force_on_random_labels():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 6, size=60)
    pred = rng.integers(-1, 8, size=60)
    codes = singletonize(list(pred))
    pairs = list(combinations(range(60), 2))
    same_g = {(i, j) for i, j in pairs if gold[i] == gold[j]}
    same_p = {(i, j) for i, j in pairs if codes[i] == codes[j]}
    s = pairwise_scores(list(gold), list(pred))
    assert s["precision"] == pytest.approx(len(same_g & same_p) / len(same_p))
    assert s["recall"] == pytest.approx(len(same_g & same_p) / len(same_g))
    b = bcubed_scores(list(gold), list(pred))
    prec = np.mean([np.sum((codes == codes[i]) & (gold == gold[i])) / np.sum(codes == codes[i]) for i in range(60)])
    rec = np.mean([np.sum((codes == codes[i]) & (gold == gold[i])) / np.sum(gold == gold[i]) for i in range(60)])
    assert b["precision"] == pytest.approx(prec)
    assert b["recall"] == pytest.approx(rec)


def test_pairwise_matches_sklearn_pair_confusion_on_large_input():
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 5000, size=100_000)
    pred = rng.integers(0, 4000, size=100_000)
    (_, fp), (fn, tp) = pair_confusion_matrix(gold, pred)  # ordered pairs: twice the unordered counts
    s = pairwise_scores(gold, pred)
    assert s["true_pairs"] * 2 == tp
    assert s["pred_pairs"] * 2 == tp + fp
    assert s["gold_pairs"] * 2 == tp + fn


def test_cross_lingual_pairwise_hand_computed():
    # items: 0 (a,1,en) 1 (a,1,fr) 2 (a,2,en) 3 (b,2,en) 4 (b,2,fr)
    # gold same pairs across languages: (0,1) (1,2) (3,4)       -> 3
    # pred same pairs across languages: (0,1) (2,4) (3,4)       -> 3   [(2,3) is en-en]
    # true: (0,1) (3,4) -> 2 ; P = 2/3, R = 2/3
    langs = ["en", "fr", "en", "en", "fr"]
    s = cross_lingual_pairwise_scores(GOLD, PRED, langs)
    assert (s["true_pairs"], s["pred_pairs"], s["gold_pairs"]) == (2, 3, 3)
    assert s["precision"] == pytest.approx(2 / 3)
    r = evaluate_labels(GOLD, PRED, langs=langs)
    assert r["cross_lingual_pairwise_recall"] == pytest.approx(2 / 3)
    assert r["cross_lingual_gold_pairs"] == 3


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="5 labels but pred has 4"):
        evaluate_labels(GOLD, PRED[:4])
    with pytest.raises(ValueError, match="no items"):
        pairwise_scores([], [])


def test_labels_to_story_of_keeps_noise_apart():
    story_of = labels_to_story_of(["p", "q", "r", "s"], [3, -1, -1, 3])
    assert story_of["p"] == story_of["s"]
    assert len({story_of["q"], story_of["r"], story_of["p"]}) == 3


# --------------------------------------------------------------------------- SemEval


def test_load_semeval_tiny_fixture():
    data = load_semeval(str(FIXTURES / "tiny_semeval.csv"))
    ids = [a.id for a in data.articles]
    assert ids == sorted(ids) and len(ids) == 8
    by_id = {a.id: a for a in data.articles}
    assert by_id["301de"].lang == "de" and by_id["201fr"].lang == "fr" and by_id["101"].lang == "en"
    assert by_id["101"].title is None
    # 201fr appears twice with different texts: the last occurrence wins
    assert by_id["201fr"].text == "La Vell a inondé Almsbury mardi."
    assert list(data.pairs.columns) == ["pair_id", "id1", "id2", "lang1", "lang2", "overall", "cross_lingual"]
    assert data.pairs["cross_lingual"].tolist() == [False, True, True, False, False, True]
    assert data.pairs.loc[1, "id2"] == "201fr"


def test_load_semeval_rejects_bad_files(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("pair_id,lang1,lang2,text1,text2\n1_2,en,en,x,y\n", encoding="utf-8")
    with pytest.raises(ValueError, match="Overall"):
        load_semeval(str(path))
    path.write_text("pair_id,lang1,lang2,text1,text2,Overall\n1_2_3,en,en,x,y,1.0\n", encoding="utf-8")
    with pytest.raises(ValueError, match="1_2_3"):
        load_semeval(str(path))


STORY_OF = {"101": "A", "102": "A", "201fr": "B", "103": "C", "301de": "C", "104": "D", "105": "D", "302de": "B"}
SIMS = [0.9, 0.8, 0.7, 0.6, 0.1, 0.5]


def test_score_semeval_pairs_hand_computed():
    # pair         Overall gold       pred same?  outcome
    # 101_102      1.0     same       A==A yes    TP
    # 101_201fr    1.25    same  (xl) A/B  no     FN
    # 103_301de    1.5     same  (xl) C==C yes    TP
    # 104_105      2.5     ambiguous  D==D yes    ignored
    # 102_104      4.0     different  A/D  no     TN
    # 201fr_302de  3.0     diff  (xl) B==B yes    FP
    # all: P = 2/3 (TP 2 of 3 predicted), R = 2/3 (2 of 3 same), F1 = 2/3
    # cross-lingual: P = 1/2, R = 1/2, F1 = 1/2
    pairs = load_semeval(str(FIXTURES / "tiny_semeval.csv")).pairs
    sims = {(a, b): s for a, b, s in zip(pairs["id1"], pairs["id2"], SIMS)}
    r = score_semeval_pairs(pairs, STORY_OF, sims)
    a, x = r["all"], r["cross_lingual"]
    assert (a["pairs"], a["same"], a["different"], a["ambiguous"]) == (6, 3, 2, 1)
    assert (a["predicted_same"], a["true_positives"]) == (3, 2)
    assert (a["precision"], a["recall"], a["f1"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert (x["pairs"], x["same"], x["different"], x["ambiguous"]) == (3, 2, 1, 0)
    assert (x["precision"], x["recall"], x["f1"]) == pytest.approx((0.5, 0.5, 0.5))
    # Similarity ranks [6,5,4,3,1,2] equal the ranks of -Overall [-1,-1.25,-1.5,-2.5,-4,-3]: Spearman 1.
    assert a["spearman"] == pytest.approx(1.0)
    assert a["pearson"] == pytest.approx(np.corrcoef(SIMS, -pairs["overall"])[0, 1])
    # Cross-lingual sims [0.8, 0.7, 0.5] vs -Overall [-1.25, -1.5, -3]:
    # dx = [.1333, .0333, -.1667], dy = [.6667, .4167, -1.0833]; Sxy = .28333, Sxx = .04667, Syy = 1.79167
    # r = .28333 / sqrt(.04667 * 1.79167) = 0.9799
    assert x["pearson"] == pytest.approx(0.9799, abs=1e-4)
    assert x["spearman"] == pytest.approx(1.0)


def test_score_semeval_pairs_thresholds_similarity_forms_and_missing_ids():
    pairs = load_semeval(str(FIXTURES / "tiny_semeval.csv")).pairs
    # reversed keys are found, and a callable gives the same result
    reversed_sims = {(b, a): s for a, b, s in zip(pairs["id1"], pairs["id2"], SIMS)}
    lookup = dict(zip(zip(pairs["id1"], pairs["id2"]), SIMS))
    r1 = score_semeval_pairs(pairs, STORY_OF, reversed_sims)
    r2 = score_semeval_pairs(pairs, STORY_OF, lambda a, b: lookup[(a, b)])
    assert r1 == r2
    # with same_max=1.25 the 1.5 pair becomes ambiguous: all-pairs same = 2, TP = 1 (101_102)
    r3 = score_semeval_pairs(pairs, STORY_OF, same_max=1.25)
    assert (r3["all"]["same"], r3["all"]["true_positives"], r3["all"]["ambiguous"]) == (2, 1, 2)
    assert r3["all"]["pearson"] is None  # no similarity given
    # ids absent from story_of are singletons: nothing predicted same, recall 0
    r4 = score_semeval_pairs(pairs, {})
    assert r4["all"]["predicted_same"] == 0 and r4["all"]["recall"] == 0.0
    with pytest.raises(ValueError, match="below"):
        score_semeval_pairs(pairs, STORY_OF, same_max=3.0, diff_min=2.0)


def test_select_split_is_a_deterministic_partition():
    pairs = pd.DataFrame({"pair_id": [f"{i}_{i + 1}" for i in range(0, 2000, 2)]})
    dev, check = select_split(pairs, "dev"), select_split(pairs, "check")
    assert set(dev["pair_id"]).isdisjoint(check["pair_id"])
    assert len(dev) + len(check) == len(pairs)
    assert 400 < len(dev) < 600
    shuffled = pairs.sample(frac=1.0, random_state=3)
    assert set(select_split(shuffled, "dev")["pair_id"]) == set(dev["pair_id"])
    assert select_split(pairs, None) is pairs and select_split(pairs, "all") is pairs
    with pytest.raises(ValueError, match="split"):
        select_split(pairs, "train")


def test_cosine_lookup():
    sim = CosineLookup(["u", "v", "w"], np.array([[3.0, 0.0], [1.0, 1.0], [0.0, 2.0]]))
    assert sim("u", "v") == pytest.approx(np.sqrt(0.5))
    assert sim("u", "w") == pytest.approx(0.0)
    assert sim("w", "w") == pytest.approx(1.0)


def _tiny_semeval_embeddings(ids: list[str]) -> np.ndarray:
    """Hand-made vectors: one direction per story (flood, chess), one of its own for each other article."""
    rng = np.random.default_rng(0)
    story = {"101": 0, "102": 0, "201fr": 0, "103": 1, "301de": 1, "104": 2, "105": 3, "302de": 4}
    basis = np.eye(16)
    return np.stack([basis[story[i]] + 0.05 * rng.standard_normal(16) for i in ids]).astype(np.float32)


def test_evaluate_semeval_with_given_embeddings():
    from storyclust.cluster import StoryClusterer

    csv = str(FIXTURES / "tiny_semeval.csv")
    data = load_semeval(csv)
    vectors = _tiny_semeval_embeddings([a.id for a in data.articles])
    r = evaluate_semeval(csv, embeddings=vectors)
    assert (r["articles"], r["stories"], r["split"]) == (8, 2, "all")
    # flood (101, 102, 201fr) and chess (103, 301de) found; 104/105 and 201fr/302de kept apart
    assert (r["all"]["precision"], r["all"]["recall"]) == (1.0, 1.0)
    assert (r["cross_lingual"]["true_positives"], r["cross_lingual"]["recall"]) == (2, 1.0)
    assert r["all"]["pearson"] > 0.5
    # the similarity space is the clusterer's own language-neutral space
    langs = [a.lang for a in data.articles]
    assert np.allclose(clustering_space(data.articles, vectors), StoryClusterer().fit(vectors, langs).neutral_)
    # a split scores a subset of the pairs, clustering all articles either way
    dev, check = evaluate_semeval(csv, embeddings=vectors, split="dev"), evaluate_semeval(csv, embeddings=vectors,
                                                                                          split="check")
    assert dev["all"]["pairs"] + check["all"]["pairs"] == 6
    with pytest.raises(ValueError, match="7 embeddings for 8 articles"):
        evaluate_semeval(csv, embeddings=vectors[:7])


def test_clustering_space_with_carried_language_means():
    from storyclust.cluster import StoryClusterer

    data = load_semeval(str(FIXTURES / "tiny_semeval.csv"))
    vectors = _tiny_semeval_embeddings([a.id for a in data.articles])
    langs = [a.lang for a in data.articles]
    rng = np.random.default_rng(5)
    means = {lang: (rng.standard_normal(16) * 4.0, 4) for lang in ("en", "fr", "de", "*")}
    space = clustering_space(data.articles, vectors, None, means)
    assert np.allclose(space, StoryClusterer(language_means=means).fit(vectors, langs).neutral_)
    assert not np.allclose(space, clustering_space(data.articles, vectors))  # the carried means matter
    assert pipeline_language_means(None) is None  # no embedder: the batch's own means


@pytest.mark.skipif(not SEMEVAL_DEV.exists(), reason="shared SemEval dev file not present")
def test_load_real_semeval_dev():
    data = load_semeval(str(SEMEVAL_DEV))
    assert len(data.articles) == 2301
    assert len(data.pairs) == 1216
    same = data.pairs["overall"] <= 1.5
    assert int(same.sum()) == 253
    assert int((same & data.pairs["cross_lingual"]).sum()) == 78
    assert int(data.pairs["cross_lingual"].sum()) == 368
    assert all(a.text and a.lang for a in data.articles)


# --------------------------------------------------------------------------- gold JSONL


def _member(aid: str, lang: str = "en") -> StoryMember:
    return StoryMember(article=Article(id=aid, text=f"text of {aid}", lang=lang), similarity=1.0)


def test_load_gold_jsonl_fixture():
    gold = load_gold_jsonl(str(FIXTURES / "tiny_gold.jsonl"))
    assert len(gold.articles) == 8 and gold.skipped == 0
    assert {a.lang for a in gold.articles} == {"en", "fr", "de"}
    assert gold.stories.count("almsbury-flood") == 3
    assert gold.stories[-1] is None  # the bakery article has no story: a story of its own


def test_evaluate_jsonl_with_pred_file(tmp_path):
    # Prediction: the flood story complete, chess split in two, bridge-en alone, bridge-fr missing.
    stories = [
        {"schema_version": 1, "type": "story", "story_id": "s1",
         "articles": [{"id": "flood-en"}, {"id": "flood-fr"}, {"id": "flood-de"}]},
        {"schema_version": 1, "type": "story", "story_id": "s2", "articles": [{"id": "chess-en"}]},
        {"schema_version": 1, "type": "story", "story_id": "s3", "articles": [{"id": "chess-de"}]},
        {"schema_version": 1, "type": "story", "story_id": "s4", "articles": [{"id": "bridge-en"}, {"id": "bakery-fr"}]},
        {"schema_version": 1, "type": "rejection", "source": "x", "reason": "empty", "detail": ""},
    ]
    pred = tmp_path / "stories.jsonl"
    pred.write_text("".join(json.dumps(s) + "\n" for s in stories) + "{not json\n", encoding="utf-8")
    r = evaluate_jsonl(str(FIXTURES / "tiny_gold.jsonl"), pred_path=str(pred))
    # gold pairs: flood 3 + chess 1 + bridge 1 = 5; pred pairs: flood 3 + (bridge-en, bakery-fr) 1 = 4
    # true pairs: 3 -> P = 3/4, R = 3/5
    assert r["pairwise_precision"] == pytest.approx(3 / 4)
    assert r["pairwise_recall"] == pytest.approx(3 / 5)
    assert r["missing_from_pred"] == 1 and r["skipped"] == 0
    assert (r["n"], r["gold_clusters"], r["pred_clusters"]) == (8, 4, 5)  # s1..s4 + bridge-fr alone
    # cross-lingual: gold 3 (flood) + 1 (chess en-de) + 1 (bridge en-fr) = 5; pred 3 + 1 (en-fr); true 3
    assert r["cross_lingual_pairwise_precision"] == pytest.approx(3 / 4)
    assert r["cross_lingual_pairwise_recall"] == pytest.approx(3 / 5)


def test_evaluate_jsonl_with_story_objects():
    gold = load_gold_jsonl(str(FIXTURES / "tiny_gold.jsonl"))
    by_story: dict = {}
    for article, story in zip(gold.articles, gold.stories):
        by_story.setdefault(story or article.id, []).append(article)
    stories = [Story(story_id=k, members=tuple(StoryMember(a, 1.0) for a in v)) for k, v in by_story.items()]
    r = evaluate_jsonl(str(FIXTURES / "tiny_gold.jsonl"), stories=stories)
    assert r["bcubed_f1"] == pytest.approx(1.0) and r["ari"] == pytest.approx(1.0)
    assert r["missing_from_pred"] == 0


def test_gold_jsonl_skips_bad_lines(tmp_path, caplog):
    path = tmp_path / "gold.jsonl"
    lines = [
        json.dumps({"id": "1", "text": "one", "story": "s"}),
        "{broken",
        json.dumps({"id": "2", "text": "   ", "story": "s"}),  # no text
        json.dumps({"text": "no id", "story": "s"}),
        json.dumps({"id": "1", "text": "repeat", "story": "s"}),
        json.dumps({"type": "rejection", "source": "x", "reason": "empty"}),  # ignored, not skipped
        json.dumps({"id": "3", "text": "three", "story": "s"}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    gold = load_gold_jsonl(str(path))
    assert [a.id for a in gold.articles] == ["1", "3"]
    assert gold.skipped == 4
    assert "repeated id" in caplog.text


def test_load_pred_stories_first_story_wins(tmp_path, caplog):
    path = tmp_path / "pred.jsonl"
    path.write_text(
        json.dumps({"type": "story", "story_id": "a", "articles": [{"id": "x"}, {"id": "y"}]}) + "\n"
        + json.dumps({"type": "story", "story_id": "b", "articles": [{"id": "y"}, {"id": "z"}]}) + "\n",
        encoding="utf-8")
    assert load_pred_stories(str(path)) == {"x": "a", "y": "a", "z": "b"}
    assert "already in story" in caplog.text


def test_format_report_tables():
    labels_table = format_report(evaluate_labels(GOLD, PRED, langs=["en", "fr", "en", "en", "fr"]))
    assert "B-cubed" in labels_table and "0.733" in labels_table and "pairwise cross-lingual" in labels_table
    pairs = load_semeval(str(FIXTURES / "tiny_semeval.csv")).pairs
    semeval_table = format_report(score_semeval_pairs(pairs, STORY_OF))
    rows = {line.split()[0]: line.split() for line in semeval_table.splitlines()}
    assert rows["all"][1:5] == ["6", "3", "2", "3"]
    assert rows["cross-lingual"][5:7] == ["0.500", "0.500"]


def test_import_does_not_load_torch():
    code = "import sys, storyclust.evaluate; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --------------------------------------------------------------------------- CLI


def _cli(*args: str):
    from click.testing import CliRunner

    from storyclust.cli import cli

    return CliRunner().invoke(cli, ["-q", "eval", *args])


def test_cli_eval_usage_errors_exit_2():
    gold, csv = str(FIXTURES / "tiny_gold.jsonl"), str(FIXTURES / "tiny_semeval.csv")
    assert _cli().exit_code == 2
    assert _cli("--gold", gold, "--semeval", csv).exit_code == 2
    assert _cli("--semeval", csv, "--pred", gold).exit_code == 2
    assert _cli("--gold", gold, "--split", "dev").exit_code == 2
    assert _cli("--gold", str(FIXTURES / "absent.jsonl")).exit_code == 2


def test_cli_eval_scores_a_pred_file(tmp_path):
    pred = tmp_path / "stories.jsonl"
    pred.write_text(json.dumps({"type": "story", "story_id": "s",
                                "articles": [{"id": "flood-en"}, {"id": "flood-fr"}, {"id": "chess-en"}]}) + "\n",
                    encoding="utf-8")
    gold = str(FIXTURES / "tiny_gold.jsonl")
    # gold pairs 5 (flood 3, chess 1, bridge 1); pred pairs 3; true 1 (flood-en, flood-fr): P = 1/3, R = 1/5
    result = _cli("--gold", gold, "--pred", str(pred), "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["schema_version"] == 1 and record["type"] == "evaluation"
    assert record["pairwise_precision"] == pytest.approx(1 / 3)
    assert record["pairwise_recall"] == pytest.approx(1 / 5)
    assert record["missing_from_pred"] == 5 and "model_id" not in record
    table = _cli("--gold", gold, "--pred", str(pred))
    assert table.exit_code == 0 and "0.333" in table.stdout and "ARI" in table.stdout


def test_cli_eval_unusable_gold_exits_1(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("{broken\n", encoding="utf-8")
    pred = tmp_path / "pred.jsonl"
    pred.write_text("", encoding="utf-8")
    result = _cli("--gold", str(empty), "--pred", str(pred))
    assert result.exit_code == 1 and "no usable articles" in result.output


@pytest.mark.model
def test_cli_eval_clusters_tiny_gold_with_the_default_model():
    result = _cli("--gold", str(FIXTURES / "tiny_gold.jsonl"), "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["n"] == 8 and record["model_id"]
    # three short stories told in en/fr/de plus one unrelated article: the default pipeline gets them all
    assert record["bcubed_f1"] == pytest.approx(1.0)
    assert record["cross_lingual_pairwise_recall"] == pytest.approx(1.0)
