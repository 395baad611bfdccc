"""``--engine ray`` gives the stories of ``--engine local``: the same partition, the same IDs, the same vectors.

One local Ray cluster (``ray.init(num_cpus=2)``) serves the whole module. The few-hundred-article
cases run on the word-hash embedder (tests/wordhash.py): with no factory bound, the Ray engine
ships the driver's embedder object to its actors, and the workers import ``wordhash`` from
``tests/`` (``PYTHONPATH`` in the cluster's runtime environment). data/samples/ runs on the real
default model, loaded by every actor from the same EmbedOptions.
"""
from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # ray.data.DataContext internals

from click.testing import CliRunner  # noqa: E402
from test_cluster import _story_of_tight_strands  # noqa: E402
from test_search import NAN_SHARES, as_dict, assert_same_edges, brute_force_edges, mixed_corpus  # noqa: E402
from wordhash import WordHashEmbedder, topic_articles  # noqa: E402

from storyclust import cli as cli_mod  # noqa: E402
from storyclust.cluster import candidate_edges  # noqa: E402
from storyclust.engine import LocalEngine, make_engine  # noqa: E402
from storyclust.engine.ray_engine import RayEngine  # noqa: E402
from storyclust.evidence import number_tokens  # noqa: E402
from storyclust.pipeline import cluster_articles, embed  # noqa: E402
from storyclust.schema import article_to_record  # noqa: E402
from storyclust.settings import EmbedOptions  # noqa: E402
from storyclust.types import Article  # noqa: E402

TESTS = Path(__file__).resolve().parent
SAMPLES = TESTS.parent / "data" / "samples"
NIGHTS = ["2026-03-03T02:00:00+00:00", "2026-03-05T02:00:00+00:00"]


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """A local two-CPU Ray cluster for the module (or the one this process already joined)."""
    started = not ray.is_initialized()
    if started:
        path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)
        # A busy two-core machine may leave the raylet a few seconds late with its health checks; the
        # default threshold would have the GCS declare this one node dead, and Ray's driver (this
        # pytest process) exit at once with nothing said. Here the node lives as long as the suite.
        # The object store is capped (the default takes 30% of the machine's memory in /dev/shm):
        # what these tests share is a few MiB.
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path}}, object_store_memory=256 * 2**20,
                 _system_config={"health_check_failure_threshold": 100, "health_check_timeout_ms": 30000})
    yield
    if started:
        ray.shutdown()


def synthetic(n_topics_articles: int = 50) -> list[Article]:
    """300 articles on six topics over three days, plus exact and near copies under other ids."""
    articles, _ = topic_articles(per_topic=n_topics_articles, seed=3)
    copies = [Article(id=f"copy-{a.id}", text=a.text, title=a.title, lang=a.lang, published=a.published)
              for a in articles[::17]]
    near = [Article(id=f"near-{a.id}", text=a.text + " Updated.", title=a.title, lang=a.lang,
                    published=a.published + timedelta(hours=1)) for a in articles[5::23]]
    return articles + copies + near


def story_key(stories) -> list:
    return [(s.story_id, tuple((m.article.id, m.similarity, m.joined_by) for m in s.members), s.labels)
            for s in stories]


# -- the library ---------------------------------------------------------------------------------


def test_candidate_edges_are_those_of_the_local_search_exact_dated_and_approximate():
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(3000, 32)).astype(np.float32)
    Z[1000:2000] = Z[:1000] + 0.3 * rng.normal(size=(1000, 32)).astype(np.float32)  # close pairs
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    days = rng.uniform(0, 30, size=len(Z))
    days[::50] = np.nan
    strands, _ = _story_of_tight_strands(per_strand=60)  # one big story in tight strands: its bridges count
    strand_days = rng.uniform(10, 13, size=len(strands))
    strand_days[::7] = np.nan
    engine = RayEngine()
    for (V, d), probes in zip(((Z, None), (Z, days), (strands, None), (strands, strand_days)) * 2,
                              (None,) * 4 + (4,) * 4):
        args = (V, d, 0.6, 10, 7.0, 64 if V is strands else 256)
        for bridge in (None, 0.6):
            local = candidate_edges(*args, probes=probes, return_similarity=True, bridge_distance=bridge)
            remote = candidate_edges(*args, probes=probes, return_similarity=True, engine=engine,
                                     bridge_distance=bridge)
            assert len(local[0]) > 1000
            for a, b in zip(local, remote):
                assert a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize("nan_share", NAN_SHARES)
def test_ray_search_is_brute_force_for_every_date_mix(nan_share):
    """Mixed dated and undated rows, blocks that cut dated runs: the Ray engine's edges are brute force's."""
    Z, days = mixed_corpus(400, nan_share, seed=11)
    engine = RayEngine()
    for window, probes in ((7.0, None), (0.5, None), (60.0, 20)):
        expected = brute_force_edges(Z, days, 0.5, window, neighbors=8)
        found = candidate_edges(Z, days, 0.5, 8, window, 16, probes=probes, return_similarity=True, engine=engine)
        assert_same_edges(as_dict(*found), expected)


def test_synthetic_articles_give_the_local_stories_and_ids():
    articles = synthetic()
    embedder = WordHashEmbedder()
    engine = RayEngine(workers=2)
    vectors = embed(articles, embedder, engine=engine)  # every article, copies too: cluster_articles picks its rows
    assert np.array_equal(embed(articles, embedder), vectors)
    local = cluster_articles(articles, embedder)
    assert story_key(cluster_articles(articles, embedder, embeddings=vectors, engine=engine)) == story_key(local)
    assert story_key(cluster_articles(articles, embedder, engine=LocalEngine())) == story_key(local)
    assert sum(not s.singleton for s in local) >= 6 and any(m.joined_by == "duplicate" for s in local
                                                              for m in s.members)


def test_a_consumer_that_took_every_result_cancels_no_task(monkeypatch):
    """Ingest reads ``zip(spans, engine.imap(...))``: it takes every result and never asks imap for its end,
    so the generator is closed suspended. That must cancel no task: cancelling one Ray is completing can
    abort the driver (seen in CI: "Tried to complete task that was not pending"). A consumer that stops
    early still cancels the tasks whose results it did not take."""
    engine = RayEngine(workers=2)
    cancelled: list = []
    monkeypatch.setattr(ray, "cancel", lambda ref, **kw: cancelled.append(ref))
    tasks = [f"{k} and {k + 1}" for k in range(6)]
    results = engine.imap(number_tokens, tasks)
    assert [r for _, r in zip(tasks, results)] == [number_tokens(t) for t in tasks]
    results.close()
    assert cancelled == []
    early = engine.imap(number_tokens, tasks)
    assert next(early) == ["0", "1"]
    early.close()
    assert len(cancelled) == len(tasks) - 1


def test_ingest_on_ray_gives_the_local_items_and_rejections(tmp_path):
    from storyclust.ingest import IngestOptions, IngestStats, ingest_paths

    (tmp_path / "binary.html").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "big.txt").write_text("A long wire. " * 20000, encoding="utf-8")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "bad.jsonl").write_text('{"id": "ok", "text": "' + "A real article text. " * 10 + '"}\nnot json\n',
                                        encoding="utf-8")
    (tmp_path / "copy.txt").write_text((SAMPLES / "wires" / "wire-0001.txt").read_text(encoding="utf-8"),
                                       encoding="utf-8")
    options = IngestOptions(max_file_bytes=100_000)
    stats = {"local": IngestStats(), "ray": IngestStats()}
    local = list(ingest_paths([str(SAMPLES), str(tmp_path)], options, stats=stats["local"]))
    remote = list(ingest_paths([str(SAMPLES), str(tmp_path)], options, stats=stats["ray"], engine=RayEngine()))
    assert remote == local
    assert stats["ray"].summary_line() == stats["local"].summary_line()
    reasons = {item.reason for item in local if not isinstance(item, Article)}
    assert len(reasons) >= 3 and sum(isinstance(a, Article) for a in local) >= 34


def test_local_engine_is_no_engine_and_ray_needs_no_import_for_local():
    assert make_engine("local") is None
    assert isinstance(make_engine("ray"), RayEngine)
    with pytest.raises(ValueError):
        make_engine("spark")


# -- the command line ------------------------------------------------------------------------------


@pytest.fixture
def word_hash(tmp_path, monkeypatch):
    """Commands embed with the word-hash embedder; the Ray engine ships that object to its actors."""
    monkeypatch.setenv("STORYCLUST_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(EmbedOptions, "load", lambda self: WordHashEmbedder())
    monkeypatch.setattr(RayEngine, "for_embedder", lambda self, factory: self)


def invoke(*args: str, input: str | None = None, env: dict | None = None):
    result = CliRunner().invoke(cli_mod.cli, ["-q", *args], input=input, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _nights(articles: list[Article], tmp_path: Path) -> list[Path]:
    """The articles as two nights of JSONL, in published order (stories continue across the nights)."""
    ordered = sorted(articles, key=lambda a: a.published or datetime.min.replace(tzinfo=timezone.utc))
    files = []
    for k in range(2):
        path = tmp_path / f"night-{k}.jsonl"
        part = ordered[k * len(ordered) // 2 : (k + 1) * len(ordered) // 2]
        path.write_text("".join(json.dumps(article_to_record(a)) + "\n" for a in part), encoding="utf-8")
        files.append(path)
    return files


def test_cli_cluster_with_and_without_state_on_synthetic_articles(word_hash, tmp_path):
    nights = _nights(synthetic(), tmp_path)
    everything = "".join(p.read_text(encoding="utf-8") for p in nights)
    one_shot = {engine: invoke("cluster", "--engine", engine, input=everything) for engine in ("local", "ray")}
    assert one_shot["ray"] == one_shot["local"] and len(one_shot["local"].splitlines()) >= 6
    outputs = {}
    for engine in ("local", "ray"):
        state = tmp_path / f"{engine}.db"
        outputs[engine] = [invoke("cluster", str(night), "--state", str(state), "--now", now,
                                  env={"STORYCLUST_ENGINE": engine})
                           for night, now in zip(nights, NIGHTS)]
        outputs[engine].append(invoke("stories", "--state", str(state), "--closed"))
    assert outputs["ray"] == outputs["local"]
    assert all(out.strip() for out in outputs["local"])


@pytest.mark.model
def test_cli_run_on_the_samples_with_the_real_model(tmp_path):
    """data/samples/ with multilingual-e5-small: identical output with and without --state, identical vectors."""
    runs = {}
    one_actor = {"STORYCLUST_RAY_WORKERS": "1"}  # one model load per run (2 workers: the synthetic tests)
    for engine in ("local", "ray"):
        one_shot = invoke("run", str(SAMPLES), "--engine", engine, env=one_actor)
        nightly = invoke("run", str(SAMPLES), "--engine", engine, "--state", str(tmp_path / f"{engine}.db"),
                         "--now", NIGHTS[0], env=one_actor)
        runs[engine] = (one_shot, nightly)
    assert runs["ray"] == runs["local"]
    assert len(runs["local"][0].splitlines()) >= 10
    # the vectors themselves, as each state stored them (the int8 backend quantises per batch: the
    # Ray batches are the local ones, so the vectors are bit for bit the same)
    stored = {}
    for engine in ("local", "ray"):
        with sqlite3.connect(tmp_path / f"{engine}.db") as db:
            stored[engine] = dict(db.execute("SELECT space || text_key, vector FROM vectors"))
    assert len(stored["local"]) >= 30 and stored["ray"] == stored["local"]
