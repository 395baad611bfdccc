"""The learnt pair score (storyclust.score): features, fit, JSON, monotonicity, the clusterer, CLI and tune.

Everything runs on synthetic data written here and the word-hash embedder: fast and deterministic.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from click.testing import CliRunner

from storyclust import cli as cli_mod
from storyclust.cluster import ClusterOptions, StoryClusterer
from storyclust.score import (FEATURES, MIN_PAIRS, RATINGS, PairScore, RowSignals, fold_name, pair_features,
                              ratings_matrix)
from storyclust.settings import EmbedOptions

from wordhash import WordHashEmbedder

NF = len(FEATURES)


def today_as_a_score(number_weight: float = 0.1) -> PairScore:
    """A PairScore that is exactly today's similarity: cosine + number_weight x numbers."""
    coef = [1.0, number_weight] + [0.0] * (NF - 2)
    lo = [-1.0] + [0.0] * (NF - 1)
    hi = [1.0, 1.0] + [1e6] * (NF - 2)
    return PairScore(coef=tuple(coef), intercept=0.0, mean=(0.0,) * NF, scale=(1.0,) * NF, lo=tuple(lo),
                     hi=tuple(hi), offset=0.0)


def synthetic_pairs(n: int = 300, seed: int = 0):
    """Features and seven ratings where similarity rises with cos, numbers and names."""
    rng = np.random.default_rng(seed)
    F = np.zeros((n, NF))
    F[:, 0] = rng.uniform(-0.1, 1.0, n)
    F[:, 1] = rng.uniform(0, 1, n) * (rng.random(n) < 0.5)
    F[:, 2] = rng.uniform(0, 1, n) * (rng.random(n) < 0.5)
    F[:, 4] = 1.0
    F[:, 5] = np.abs(rng.normal(0, 0.5, n))
    F[:, 6] = rng.random(n) < 0.2
    F[:, 7] = (rng.random(n) < 0.2) & (F[:, 6] == 0)
    latent = 2.5 * F[:, 0] + 0.5 * F[:, 1] + 0.3 * F[:, 2] + 0.3 * F[:, 7] + rng.normal(0, 0.2, n)
    overall = np.clip(4.0 - 3.0 * (latent - latent.min()) / np.ptp(latent), 1.0, 4.0)
    others = {r: np.clip(overall + rng.normal(0, 0.3, n), 1, 4) for r in RATINGS if r != "Overall"}
    return F, ratings_matrix(overall, others)


@pytest.fixture(scope="module")
def fitted():
    F, Y = synthetic_pairs()
    return PairScore.fit(F, Y, folds=np.arange(len(F)) % 4, provenance={"training_data": "synthetic"})


# -- the score itself -----------------------------------------------------------------


def test_fit_learns_from_the_seven_ratings_and_lands_on_the_cosine_scale(fitted):
    F, Y = synthetic_pairs()
    assert fitted.params["targets"] == list(RATINGS) and fitted.params["pairs"] == len(F)
    s = fitted(F)
    same, diff = Y[:, 4] <= 1.5, Y[:, 4] >= 3.0
    # calibrated: the default threshold 1 - 0.5 is the training pairs' best-F1 cut
    pred = s >= 0.5
    tp = int((pred & same).sum())
    assert tp / max(int((pred & (same | diff)).sum()), 1) > 0.8 and tp / same.sum() > 0.8
    u, _ = fitted.linear_form()
    assert u[0] > 0 and u[1] > 0  # numbers and names raise the score


def test_the_score_is_monotone_in_the_cosine_with_slope_one(fitted):
    F, _ = synthetic_pairs(50, seed=1)
    for step in (0.01, 0.1, 0.5):
        G = F.copy()
        G[:, 0] += step
        assert np.allclose(fitted(G) - fitted(F), step)
    assert fitted.cosine_weight > 0


def test_json_round_trip_keeps_every_score(fitted, tmp_path):
    again = PairScore.from_json(fitted.to_json())
    assert again == fitted and again.provenance == fitted.provenance and again.params == fitted.params
    F, _ = synthetic_pairs(40, seed=2)
    assert np.array_equal(again(F), fitted(F))
    fitted.save(tmp_path / "s.json")
    assert PairScore.load(tmp_path / "s.json") == fitted
    data = json.loads(fitted.to_json())
    assert data["format"] == "storyclust-pair-score/1" and data["features"] == list(FEATURES)
    with pytest.raises(ValueError, match="features"):
        PairScore.from_dict({**data, "features": data["features"][:-1]})
    with pytest.raises(ValueError, match="not a pair score"):
        PairScore.from_json('{"format": "other"}')


def test_fit_refuses_too_few_pairs_and_a_score_falling_with_the_cosine():
    F, Y = synthetic_pairs()
    with pytest.raises(ValueError, match="too few labelled pairs"):
        PairScore.fit(F[: MIN_PAIRS - 1], Y[: MIN_PAIRS - 1])
    with pytest.raises(ValueError, match="rise with the cosine"):
        PairScore.fit(F, 5.0 - Y)  # ratings reversed: more similar texts rated further apart
    with pytest.raises(ValueError, match="positive"):
        PairScore(**{**today_as_a_score().__dict__, "coef": (-1.0,) + (0.0,) * (NF - 1)})


def test_names_fold_across_scripts_and_features_see_dates_lengths_and_languages():
    assert fold_name("Путин") == fold_name("Putin") == "putin" and fold_name("Zürich") == "zurich"
    texts = ["Vladimir Putin met Olaf Scholz in Berlin on 3 May, 2,500 people protested.",
             "Владимир Путин встретился с Олафом Шольцем в Берлине 3 мая, протестовали 2 500 человек.",
             "Ein ganz anderer Bericht über Fußball in München, 1:0."]
    day = datetime(2026, 5, 3, tzinfo=timezone.utc).timestamp() / 86400
    signals = RowSignals.of(texts, ["en", "ru", "de"], np.array([day, day + 2, np.nan]))
    Z = np.eye(3, dtype=np.float32)
    F = pair_features(Z, signals, np.array([0, 0, 1]), np.array([1, 2, 2]))
    col = {n: F[:, k] for k, n in enumerate(FEATURES)}
    assert col["numbers"][0] > 0.5 and col["names"][0] > 0  # 2500 and 3; Putin / Путин
    assert col["gap_days"].tolist() == [2.0, 0.0, 0.0] and col["gap_unknown"].tolist() == [0.0, 1.0, 1.0]
    assert col["xl_diff_script"].tolist() == [1.0, 0.0, 1.0] and col["xl_same_script"].tolist() == [0.0, 1.0, 0.0]
    assert col["len_ratio"][0] > 0


def test_group_bonus_is_the_score_minus_the_cosine(fitted):
    rng = np.random.default_rng(4)
    texts = [f"Report {i % 3} about Acme Corp and {100 + i % 4} people in Paris" for i in range(9)]
    langs = ["en", "fr", "ru"] * 3
    signals = RowSignals.of(texts, langs, None)
    Z = rng.normal(size=(9, 8)).astype(np.float32)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    members = np.array([0, 2, 3, 5, 8])
    B = fitted.group_bonus(signals, members)
    r, c = np.meshgrid(members, members, indexing="ij")
    direct = fitted.similarity(Z, signals, r.ravel(), c.ravel()).reshape(B.shape)
    cos = Z[members].astype(np.float64) @ Z[members].T.astype(np.float64)
    assert np.allclose(cos + B, direct)
    assert fitted.max_bonus() >= (direct - cos).max() - 1e-12


# -- the clusterer --------------------------------------------------------------------


def _corpus():
    events = [("earthquake rescuers rubble magnitude", "6.4", "Sumatra"),
              ("parliament budget vote minister", "2027", "Bundestag"),
              ("football final stadium trophy", "3", "Wembley"),
              ("flooding evacuation river storm", "20000", "Valencia")]
    texts, langs, dates = [], [], []
    base = datetime(2026, 3, 1, tzinfo=timezone.utc)
    for e, (words, number, name) in enumerate(events):
        for k in range(4):
            texts.append(f"{name} {words} report {k} with {number} and details {e * 7 + k}")
            langs.append(("en", "fr")[k % 2])
            dates.append(base + timedelta(days=e, hours=k) if k != 3 else None)
    X = WordHashEmbedder().encode(texts)
    return X, langs, dates, texts


def test_no_score_is_todays_clustering_and_todays_similarity_as_a_score_matches_it():
    X, langs, dates, texts = _corpus()
    today = StoryClusterer(ClusterOptions()).fit(X, langs=langs, published=dates, texts=texts)
    assert ClusterOptions().pair_score is None and today.signals_ is None
    same = StoryClusterer(ClusterOptions(pair_score=today_as_a_score())).fit(X, langs=langs, published=dates,
                                                                             texts=texts)
    assert np.array_equal(today.labels_, same.labels_)
    for md in (0.3, 0.7):  # at other thresholds too (edges, split and linkage all go through the score)
        a = StoryClusterer(ClusterOptions(max_distance=md)).fit_predict(X, langs=langs, published=dates, texts=texts)
        b = StoryClusterer(ClusterOptions(max_distance=md, pair_score=today_as_a_score())).fit_predict(
            X, langs=langs, published=dates, texts=texts)
        assert np.array_equal(a, b)
    for opts in ({"method": "hdbscan"}, {"max_distance": 0.4, "number_weight": 0.1}):  # HDBSCAN sees the score too
        a = StoryClusterer(ClusterOptions(**opts)).fit_predict(X, langs=langs, published=dates, texts=texts)
        b = StoryClusterer(ClusterOptions(**opts, pair_score=today_as_a_score())).fit_predict(
            X, langs=langs, published=dates, texts=texts)
        assert np.array_equal(a, b), opts
    rows, cols = np.array([0, 1, 4]), np.array([1, 5, 9])
    assert np.allclose(today._similarity(today.neutral_, rows, cols), same._similarity(same.neutral_, rows, cols),
                       atol=1e-6)


def test_a_score_that_adds_to_every_pair_joins_more(fitted):
    X, langs, dates, texts = _corpus()
    generous = PairScore(**{**today_as_a_score().__dict__, "offset": 1.5})
    labels = StoryClusterer(ClusterOptions(pair_score=generous, time_window_days=None)).fit_predict(
        X, langs=langs, published=dates, texts=texts)
    assert len(set(labels.tolist())) == 1
    learnt = StoryClusterer(ClusterOptions(pair_score=fitted)).fit_predict(X, langs=langs, published=dates, texts=texts)
    assert len(learnt) == len(X) and (learnt >= 0).all()


# -- the CLI and tune -------------------------------------------------------------------


@pytest.fixture
def wordhash_model(tmp_path, monkeypatch):
    monkeypatch.setenv("STORYCLUST_CACHE_DIR", str(tmp_path / "cache"))
    for name in list(__import__("os").environ):
        if name.startswith("STORYCLUST_") and name != "STORYCLUST_CACHE_DIR":
            monkeypatch.delenv(name)
    monkeypatch.setattr(EmbedOptions, "load", lambda self: WordHashEmbedder())


def _articles_jsonl(path):
    _, langs, dates, texts = _corpus()
    with open(path, "w", encoding="utf-8") as fh:
        for i, (t, lang, d) in enumerate(zip(texts, langs, dates)):
            fh.write(json.dumps({"id": f"a{i:02d}", "text": t * 3, "lang": lang,
                                 "published": d.isoformat() if d else None}) + "\n")
    return path


def _stories(output: str) -> list[list[str]]:
    return sorted(sorted(a["id"] for a in json.loads(line)["articles"]) for line in output.splitlines() if line)


def test_cluster_takes_a_pair_score_file_from_the_option_or_the_environment(wordhash_model, tmp_path):
    articles = _articles_jsonl(tmp_path / "articles.jsonl")
    plain = CliRunner().invoke(cli_mod.cli, ["cluster", str(articles)], catch_exceptions=False)
    assert plain.exit_code == 0, plain.output
    path = tmp_path / "today.json"
    today_as_a_score().save(path)
    scored = CliRunner().invoke(cli_mod.cli, ["cluster", str(articles), "--pair-score", str(path)],
                                catch_exceptions=False)
    assert scored.exit_code == 0, scored.output
    assert _stories(scored.stdout) == _stories(plain.stdout)
    generous = tmp_path / "generous.json"
    PairScore(**{**today_as_a_score().__dict__, "offset": 1.5}).save(generous)
    joined = CliRunner().invoke(cli_mod.cli, ["run", str(articles), "--time-window", "0"],
                                env={"STORYCLUST_PAIR_SCORE": str(generous)}, catch_exceptions=False)
    assert joined.exit_code == 0 and len(_stories(joined.stdout)) == 1
    nightly = CliRunner().invoke(cli_mod.cli, ["cluster", str(articles), "--time-window", "0", "--pair-score",
                                               str(generous), "--state", str(tmp_path / "news.db"), "--now",
                                               "2026-03-09T02:00:00+00:00"], catch_exceptions=False)
    assert nightly.exit_code == 0 and len(_stories(nightly.stdout)) == 1  # the nightly driver gets it too
    other = tmp_path / "other.json"
    PairScore(**{**today_as_a_score().__dict__, "provenance": {"base_model_id": "another-model"}}).save(other)
    warned = CliRunner().invoke(cli_mod.cli, ["cluster", str(articles), "--pair-score", str(other)],
                                catch_exceptions=False)
    assert warned.exit_code == 0 and "learnt on another-model" in warned.stderr
    assert "learnt on" not in scored.stderr
    (tmp_path / "bad.json").write_text('{"format": "nope"}')
    bad = CliRunner().invoke(cli_mod.cli, ["cluster", str(articles), "--pair-score", str(tmp_path / "bad.json")])
    assert bad.exit_code == 2 and "not a pair score" in bad.output


def test_tune_learn_score_writes_a_score_with_provenance(wordhash_model, tmp_path):
    from test_tune import write_gold

    from storyclust.tune_command import tune_command

    gold = write_gold(tmp_path / "gold.jsonl")
    out = tmp_path / "score"
    result = CliRunner().invoke(tune_command, ["--gold", str(gold), "-o", str(out), "--learn-score", "--folds", "3",
                                               "--provenance", "synthetic test fixture", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    score = PairScore.load(out / "pair_score.json")
    prov = score.provenance
    assert prov["provenance"] == "synthetic test fixture" and prov["base_model_id"] == WordHashEmbedder().model_id
    assert prov["training_data"][0]["file"] == "gold.jsonl" and len(prov["training_data"][0]["sha256"]) == 64
    assert prov["training_pairs"] == prov["same_story_pairs"] + prov["different_story_pairs"] + prov["ambiguous_pairs"]
    assert {"baseline", "score", "gain", "helps"} <= set(prov["cv"]) and report["helps"] == prov["cv"]["helps"]
    assert score.cosine_weight > 0 and report["pair_score"].endswith("pair_score.json")
    again = CliRunner().invoke(cli_mod.cli, ["cluster", str(_articles_jsonl(tmp_path / "a.jsonl")), "--pair-score",
                                             str(out / "pair_score.json")], catch_exceptions=False)
    assert again.exit_code == 0


def test_tune_learn_score_refuses_too_few_labelled_pairs(wordhash_model, tmp_path):
    from storyclust.tune_command import tune_command

    gold = tmp_path / "tiny.jsonl"
    with open(gold, "w", encoding="utf-8") as fh:
        for s in range(6):
            for k in range(2):
                fh.write(json.dumps({"id": f"s{s}-{k}", "text": f"event {s} words number {k} alpha beta", "lang": "en",
                                     "story": f"s{s}"}) + "\n")
    result = CliRunner().invoke(tune_command, ["--gold", str(gold), "-o", str(tmp_path / "x"), "--learn-score",
                                               "--folds", "2"])
    assert result.exit_code == 1 and "too few labelled pairs" in result.output
    assert not (tmp_path / "x" / "pair_score.json").exists()


def test_the_engine_path_gets_the_score_too(fitted):
    import pickle

    from storyclust.engine import LocalEngine

    class PicklingEngine(LocalEngine):  # what a remote engine does to the shared objects and the tasks
        def map(self, fn, tasks, *, shared=()):
            return [fn(*pickle.loads(pickle.dumps(shared)), pickle.loads(pickle.dumps(task))) for task in tasks]

    X, langs, dates, texts = _corpus()
    for score in (fitted, PairScore(**{**today_as_a_score().__dict__, "offset": 0.2})):
        here = StoryClusterer(ClusterOptions(pair_score=score)).fit_predict(X, langs=langs, published=dates,
                                                                            texts=texts)
        there = StoryClusterer(ClusterOptions(pair_score=score), engine=PicklingEngine()).fit_predict(
            X, langs=langs, published=dates, texts=texts)
        assert np.array_equal(here, there)
