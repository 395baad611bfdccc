"""storyclust tune: CV folds, the pair head, adapters (manifest, model id, refusal), the command.

The labelled fixture is synthetic (written here): ten events, each reported twice in English,
French and German with words of a small trilingual lexicon. With the word-hash embedder, reports
of one event in two languages share no word, so today's space cannot put them together; a map
learnt from the labelled pairs can (it aligns the lexicon's words across the three languages), and
since held-out events reuse the lexicon, part of that carries over to them under CV.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from storyclust import tune
from storyclust.evaluate import SemEvalData, cross_validate_semeval, score_semeval_pairs, semeval_folds
from storyclust.types import Article

from wordhash import WordHashEmbedder

#: a small trilingual lexicon (en, fr, de); each synthetic event picks five of its concepts
LEXICON = [("earthquake", "séisme", "erdbeben"), ("rescuers", "sauveteurs", "retter"),
           ("parliament", "parlement", "parlament"), ("ballot", "scrutin", "abstimmung"),
           ("minister", "ministre", "ministerin"), ("budget", "budget", "haushalt"),
           ("football", "football", "fußball"), ("stadium", "stade", "stadion"), ("trophy", "trophée", "pokal"),
           ("storm", "tempête", "sturm"), ("flooding", "inondations", "überschwemmung"),
           ("evacuation", "évacuation", "evakuierung"), ("medicine", "médicament", "medikament"),
           ("patients", "patients", "patienten"), ("regulator", "régulateur", "behörde"),
           ("fire", "incendie", "brand"), ("servers", "serveurs", "server"), ("outage", "panne", "ausfall"),
           ("harbour", "port", "hafen"), ("strike", "grève", "streik"), ("airport", "aéroport", "flughafen"),
           ("bridge", "pont", "brücke"), ("election", "élection", "wahl"), ("prison", "prison", "gefängnis")]
LANGS = ("en", "fr", "de")
FILLER = {"en": "said the officials local people after reports on monday with",
          "fr": "ont déclaré les responsables locaux habitants après selon lundi avec",
          "de": "sagten die behörden örtliche menschen nach berichten am montag mit"}


def fixture_articles(events: int = 10, per_lang: int = 2, seed: int = 0) -> tuple[list[Article], list[str]]:
    """``events`` events x 3 languages x ``per_lang`` reports (60 short articles), with their gold story."""
    rng = np.random.default_rng(seed)
    articles, stories = [], []
    for e in range(events):
        concepts = rng.choice(len(LEXICON), size=5, replace=False)
        for li, lang in enumerate(LANGS):
            for k in range(per_lang):
                words = [LEXICON[c][li] for c in rng.choice(concepts, size=4, replace=False)]
                words += list(rng.choice(FILLER[lang].split(), size=5))
                rng.shuffle(words)
                articles.append(Article(id=f"e{e}-{lang}-{k}", text=" ".join(words) + ".", lang=lang))
                stories.append(f"e{e}")
    return articles, stories


def write_gold(path: pathlib.Path) -> pathlib.Path:
    articles, stories = fixture_articles()
    with open(path, "w", encoding="utf-8") as fh:
        for a, s in zip(articles, stories):
            fh.write(json.dumps({"type": "article", "id": a.id, "text": a.text, "lang": a.lang, "story": s}) + "\n")
    return path


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    gold = write_gold(tmp_path_factory.mktemp("gold") / "gold.jsonl")
    data = tune.load_labelled(gold=[str(gold)], blocks=3)
    embedder = WordHashEmbedder()
    views = tune.RawViews.embed(data.articles, embedder)
    return gold, data, embedder, views


def _scores(data, vectors, means):
    from storyclust.evaluate import CosineLookup, clustering_space, stories_to_story_of
    from storyclust.pipeline import cluster_articles

    stories = cluster_articles(data.articles, embeddings=vectors, language_means=means)
    space = clustering_space(data.articles, vectors, None, means)
    return score_semeval_pairs(data.pairs, stories_to_story_of(stories), CosineLookup([a.id for a in data.articles],
                                                                                      space))


# -- folds ----------------------------------------------------------------------------


def test_folds_keep_components_apart_and_balance_pairs(labelled):
    _, data, _, _ = labelled
    pairs = data.pairs
    folds = semeval_folds(pairs, k=3, random_state=0)
    assert set(folds) == {0, 1, 2}
    fold_of_article: dict[str, int] = {}
    for a, b, f in zip(pairs["id1"], pairs["id2"], folds):
        for x in (a, b):
            assert fold_of_article.setdefault(x, f) == f  # no article in two folds
    np.testing.assert_array_equal(folds, semeval_folds(pairs, k=3, random_state=0))  # reproducible


def test_folds_balanced_on_disjoint_pairs():
    import pandas as pd

    ids = [(f"a{i}", f"b{i}") for i in range(50)]
    pairs = pd.DataFrame({"id1": [a for a, _ in ids], "id2": [b for _, b in ids]})
    counts = np.bincount(semeval_folds(pairs, k=5, random_state=3), minlength=5)
    assert counts.tolist() == [10] * 5


# -- the head and the adapter ----------------------------------------------------------


def test_adapter_raises_the_fixture_pair_scores(labelled):
    _, data, embedder, views = labelled
    base_vectors, base_calib = views.vectors()
    before = _scores(data, base_vectors, tune.means_from_calibration(base_calib, views.calib_langs))
    adapter = tune.fit_adapter(data, views, embedder.model_id, {"rank": 16, "weight_decay": 1e-3, "epochs": 300})
    vectors, calib = views.vectors(adapter.transform)
    after = _scores(data, vectors, tune.means_from_calibration(calib, views.calib_langs))
    assert before["cross_lingual"]["f1"] < 0.2  # today's word-hash space cannot join languages
    assert after["cross_lingual"]["f1"] > before["cross_lingual"]["f1"] + 0.3
    assert after["all"]["f1"] > before["all"]["f1"] + 0.2
    assert after["all"]["pearson"] > before["all"]["pearson"] + 0.1


def test_the_wrapper_gives_the_vectors_the_views_simulate(labelled):
    from storyclust.embed import embed_articles

    _, data, embedder, views = labelled
    adapter = tune.fit_adapter(data, views, embedder.model_id, {"rank": 4, "weight_decay": 1e-2, "epochs": 50})
    wrapped = tune.AdaptedEmbedder(embedder, adapter)
    simulated, _ = views.vectors(adapter.transform)
    np.testing.assert_allclose(embed_articles(data.articles, wrapped), simulated, atol=1e-5)


def test_fit_is_reproducible(labelled):
    _, data, embedder, views = labelled
    params = {"rank": 8, "weight_decay": 1e-2, "epochs": 40, "random_state": 5}
    a = tune.fit_adapter(data, views, embedder.model_id, params)
    b = tune.fit_adapter(data, views, embedder.model_id, params)
    assert a.sha256 == b.sha256


def test_model_id_changes_with_the_adapter(labelled, tmp_path):
    _, data, embedder, views = labelled
    a = tune.fit_adapter(data, views, embedder.model_id, {"rank": 4, "weight_decay": 1e-2, "epochs": 30})
    b = tune.fit_adapter(data, views, embedder.model_id, {"rank": 4, "weight_decay": 1e-1, "epochs": 30})
    a.save(tmp_path / "a")
    ids = {embedder.model_id, tune.wrap_embedder(embedder, tmp_path / "a").model_id,
           tune.AdaptedEmbedder(embedder, b).model_id}
    assert len(ids) == 3
    wrapped = tune.wrap_embedder(embedder, tmp_path / "a")
    assert wrapped.model_id == f"{embedder.model_id}|adapter={a.sha256[:12]}"
    assert tune.wrap_embedder(embedder, None) is embedder


def test_adapter_for_another_model_is_refused(labelled, tmp_path):
    _, data, embedder, views = labelled
    adapter = tune.fit_adapter(data, views, "other-model@1|onnx-int8|max_tokens=256|prompt='query: '",
                               {"rank": 4, "epochs": 5})
    adapter.save(tmp_path / "other")
    with pytest.raises(tune.AdapterMismatchError, match="trained for .other-model@1"):
        tune.wrap_embedder(embedder, tmp_path / "other")
    with pytest.raises(tune.AdapterMismatchError, match="dimension"):
        tune.AdaptedEmbedder(WordHashEmbedder(dim=96), tune.Adapter(np.ones(8, np.float32), np.zeros((8, 0), np.float32),
                                                                    np.zeros((8, 0), np.float32),
                                                                    {"base_model_id": embedder.model_id}))


def test_backend_may_differ_but_prompt_may_not():
    class Fake:
        dim = 4

        def __init__(self, model_id):
            self.model_id = model_id

    base = "m@1|onnx-int8|max_tokens=256|prompt='query: '|pooling=sif(a=0.0001)"
    adapter = tune.Adapter(np.ones(4, np.float32), np.zeros((4, 0), np.float32), np.zeros((4, 0), np.float32),
                           {"base_model_id": base.replace("onnx-int8", "torch-bf16")})
    assert tune.AdaptedEmbedder(Fake(base), adapter).model_id.startswith(base + "|adapter=")
    with pytest.raises(tune.AdapterMismatchError):
        tune.AdaptedEmbedder(Fake(base.replace("query: ", "passage: ")), adapter)


def test_tampered_weights_are_refused(labelled, tmp_path):
    _, data, embedder, views = labelled
    tune.fit_adapter(data, views, embedder.model_id, {"rank": 4, "epochs": 5}).save(tmp_path / "a")
    with open(tmp_path / "a" / tune.WEIGHTS_FILE, "ab") as fh:
        fh.write(b"x")
    with pytest.raises(ValueError, match="does not match"):
        tune.load_adapter(tmp_path / "a")


def test_load_embedder_adapter_parameter_reaches_the_wrapper(labelled, tmp_path, monkeypatch):
    import storyclust.embed as embed

    _, data, embedder, views = labelled
    tune.fit_adapter(data, views, embedder.model_id, {"rank": 4, "epochs": 5}).save(tmp_path / "a")
    import types

    monkeypatch.setattr(embed, "_resolve_model", lambda model, cache_dir: types.SimpleNamespace(folder=None))
    monkeypatch.setattr(embed, "_default_prompt", lambda folder: "")
    monkeypatch.setattr(embed, "_load_onnx", lambda resolved, name, **kw: embedder)
    monkeypatch.setattr(embed, "_load_torch", lambda resolved, name, **kw: embedder)
    monkeypatch.setattr(embed, "_pick_backend", lambda backend: "onnx")
    loaded = embed.load_embedder(adapter=str(tmp_path / "a"))
    assert loaded.model_id.startswith(embedder.model_id + "|adapter=")
    assert embed.load_embedder(adapter=None) is embedder



def test_an_adapter_is_applied_without_importing_the_trainer(labelled, tmp_path):
    """The adapter lives below the trainer (storyclust.embed.adapter): applying one never imports
    storyclust.tune, and tune's names for it are the same objects."""
    import subprocess
    import sys

    import storyclust.embed.adapter as adapter_module

    assert tune.wrap_embedder is adapter_module.wrap_embedder and tune.Adapter is adapter_module.Adapter
    _, data, embedder, views = labelled
    saved = tune.fit_adapter(data, views, embedder.model_id, {"rank": 4, "epochs": 5})
    saved.save(tmp_path / "a")
    code = f"""
import sys
import numpy as np
import storyclust
from storyclust.embed.adapter import wrap_embedder

class Base:
    model_id, dim = {embedder.model_id!r}, {embedder.dim}
    def encode(self, texts, progress=False):
        return np.ones((len(texts), self.dim), np.float32)

wrapped = wrap_embedder(Base(), {str(tmp_path / "a")!r})
assert wrapped.model_id == Base.model_id + "|adapter=" + {saved.sha256[:12]!r}, wrapped.model_id
assert wrapped.encode(["x"]).shape == (1, Base.dim)
assert "storyclust.tune" not in sys.modules, "applying an adapter imported the trainer"
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)

# -- CV and the command -------------------------------------------------------------------


def test_cross_validation_reports_mean_and_sd(labelled):
    _, data, embedder, views = labelled
    sem = SemEvalData(articles=list(data.articles), pairs=data.pairs)
    base_vectors, base_calib = views.vectors()
    means = tune.means_from_calibration(base_calib, views.calib_langs)
    plain = cross_validate_semeval(sem, base_vectors, language_means=means, k=3,
                                   grid={"max_distance": [0.4, 0.5, 0.6]})
    assert len(plain["folds"]) == 3 and len(plain["table"]) == 3
    assert set(plain["summary"]["f1"]) == {"mean", "sd", "se"}
    fitted = cross_validate_semeval(
        sem, tune.head_space_factory(data.articles, views, {"rank": 16, "weight_decay": 1e-3}), k=3)
    assert fitted["summary"]["pearson"]["mean"] > plain["summary"]["pearson"]["mean"]


def test_tune_command_writes_a_complete_adapter(labelled, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from storyclust.settings import EmbedOptions
    from storyclust.tune_command import tune_command

    gold, _, embedder, _ = labelled
    monkeypatch.setattr(EmbedOptions, "load", lambda self: embedder)
    out = tmp_path / "adapter"
    result = CliRunner().invoke(tune_command, ["--gold", str(gold), "-o", str(out), "--rank", "4,16",
                                               "--weight-decay", "0.001", "--folds", "3", "--epochs", "150",
                                               "--provenance", "synthetic test fixture", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    manifest = json.loads((out / tune.ADAPTER_FILE).read_text())
    for key in ("base_model_id", "training_data_sha256", "training_data", "settings", "cv", "provenance",
                "weights_sha256", "head", "dim", "rank", "format"):
        assert key in manifest, key
    assert manifest["base_model_id"] == embedder.model_id
    assert manifest["training_data_sha256"] == tune.load_labelled(gold=[str(gold)], blocks=3).sha256
    assert manifest["provenance"] == "synthetic test fixture"
    assert {"baseline", "adapter", "gain", "candidates"} <= set(manifest["cv"])
    assert manifest["settings"]["head"]["rank"] in (4, 16)
    assert report["cv"]["pearson"]["mean"] > report["baseline"]["pearson"]["mean"]
    adapter = tune.load_adapter(out)
    assert adapter.sha256 == manifest["weights_sha256"] == report["sha256"]


def test_tune_command_needs_labelled_data(tmp_path):
    from click.testing import CliRunner

    from storyclust.tune_command import tune_command

    result = CliRunner().invoke(tune_command, ["-o", str(tmp_path / "x")])
    assert result.exit_code == 2 and "labelled data" in result.output


SEMEVAL = pathlib.Path(__file__).resolve().parents[2] / "shared" / "eval" / "semeval_dev.csv"


@pytest.mark.skipif(not SEMEVAL.exists(), reason="SemEval dev file absent")
def test_semeval_folds_on_the_dev_file():
    from storyclust.evaluate import load_semeval

    pairs = load_semeval(str(SEMEVAL)).pairs
    folds = semeval_folds(pairs, k=5, random_state=0)
    counts = np.bincount(folds)
    assert counts.max() - counts.min() <= max(3, counts.max() // 20)
    seen: dict[str, int] = {}
    for a, b, f in zip(pairs["id1"], pairs["id2"], folds):
        assert seen.setdefault(a, f) == f and seen.setdefault(b, f) == f


def test_merge_fragments_joins_only_stories_with_no_language_in_common():
    Z = np.array([[1, 0], [1, 0.1], [0.9, 0.2], [0, 1]], dtype=float)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    merged = tune.merge_fragments([0, 1, 2, 3], Z, ["en", "de", "en", "fr"], 0.9)
    assert merged[0] == merged[1] and merged[2] != merged[0] and merged[3] not in merged[:3]
    gapped = tune.merge_fragments([0, 1, 2, 3], Z, ["en", "de", "en", "fr"], 0.9, days=[0, 30, 1, 2], max_gap_days=7)
    assert len(set(gapped)) == 4
