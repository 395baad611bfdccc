"""Another model in a local folder gets the default model's recipe: the int8 ONNX export, SIF pooling,
reference language means computed once per model id and cached, one-shot and nightly runs.

The model is built here: a small BERT with random weights (4 layers of 48 dimensions, seeded) behind
the default model's real multilingual tokenizer, saved as a sentence-transformers folder, as a user's
multilingual-e5-base or bge-m3 folder would be laid out. Nothing is downloaded. Its vectors mean
nothing; the tests check the machinery, not the quality.
"""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from storyclust.embed import default_model_dir, load_embedder
from storyclust.incremental import nightly
from storyclust.pipeline import cluster_articles, reference_language_means
from storyclust.settings import StateOptions
from storyclust.store import open_store
from storyclust.types import Article

pytestmark = pytest.mark.model

DIM = 48


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    source = default_model_dir()
    folder = tmp_path_factory.mktemp("models") / "tiny-multilingual"
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "sentence_bert_config.json",
                 "config_sentence_transformers.json", "modules.json"):
        shutil.copy(source / name, folder / name)
    config = json.loads((source / "config.json").read_text())
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=config["vocab_size"], hidden_size=DIM, num_hidden_layers=4,
                                 num_attention_heads=4, intermediate_size=4 * DIM, pad_token_id=config["pad_token_id"],
                                 max_position_embeddings=512))
    model.save_pretrained(folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": DIM, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
         "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False}))
    (folder / "2_Normalize").mkdir()
    return folder


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One model cache for the module: the ONNX export is built once."""
    return tmp_path_factory.mktemp("cache")


ARTICLES = [
    Article(id="en-1", lang="en", title="Flood in Valencia", text="Heavy rain flooded the streets of Valencia on Tuesday."),
    Article(id="es-1", lang="es", title="Inundación en Valencia", text="Lluvias intensas inundaron las calles de Valencia."),
    Article(id="ru-1", lang="ru", title="Наводнение в Валенсии", text="Сильные дожди затопили улицы Валенсии во вторник."),
    Article(id="en-2", lang="en", title="Chess final", text="The chess world championship final ended in a draw."),
]


def test_a_user_model_gets_the_int8_export_and_sif_pooling(user_folder, cache):
    int8 = load_embedder(str(user_folder), backend="onnx-int8", cache_dir=cache)
    fp32 = load_embedder(str(user_folder), backend="torch", cache_dir=cache)
    assert int8.dim == fp32.dim == DIM
    assert "onnx-int8" in int8.model_id and "pooling=sif" in int8.model_id and str(user_folder) in int8.model_id
    assert "pooling=sif" in fp32.model_id  # a mean-pooling model with a Unigram tokenizer: SIF on every backend
    texts = [a.title + "\n" + a.text for a in ARTICLES]
    a, b = int8.encode(texts), fp32.encode(texts)
    assert a.dtype == np.float32 and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert float(np.mean(np.sum(a * b, axis=1))) > 0.95  # the int8 graph computes the fp32 model's vectors
    exports = [p for p in cache.rglob("*.onnx")]
    assert exports and all("user-" in str(p) for p in exports)  # built once, next to a user key
    again = load_embedder(str(user_folder), backend="onnx-int8", cache_dir=cache)
    assert sorted(cache.rglob("*.onnx")) == sorted(exports) and again.model_id == int8.model_id


def test_reference_means_are_computed_once_per_model_and_cached(user_folder, cache, tmp_path):
    embedder = load_embedder(str(user_folder), backend="onnx-int8", cache_dir=cache)
    calls = []
    encode = embedder.encode
    embedder.encode = lambda texts, **kw: calls.append(len(texts)) or encode(texts, **kw)
    first = reference_language_means(embedder, cache_dir=tmp_path / "means")
    second = reference_language_means(embedder, cache_dir=tmp_path / "means")
    assert len(calls) == 1 and calls[0] > 100  # the calibration corpus, embedded once
    assert set(first) == set(second) and {"en", "es", "ru", "*"} <= set(first)
    assert all(np.array_equal(first[k][0], second[k][0]) for k in first)
    assert first["en"][0].shape == (DIM,)


def test_one_shot_and_nightly_runs_work_on_a_user_model(user_folder, cache, tmp_path):
    embedder = load_embedder(str(user_folder), backend="onnx-int8", cache_dir=cache)
    stories = cluster_articles(ARTICLES, embedder)
    assert sorted(m.article.id for s in stories for m in s.members) == sorted(a.id for a in ARTICLES)
    printed: list = []
    with open_store(tmp_path / "s.db") as store:
        nightly(store, ARTICLES, embedder, printed.extend,
                state=StateOptions(now=datetime(2026, 3, 2, tzinfo=timezone.utc)))
        assert store.get_setting("model_id") == embedder.model_id
    one_shot = sorted(sorted(m.article.id for m in s.members) for s in stories)
    assert sorted(sorted(m.article.id for m in s.members) for s in printed) == one_shot
