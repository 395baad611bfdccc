"""End to end: the real CLI, the real default model, real files.

These run `storyclust` in a subprocess exactly as a user would, on data/samples/
(original articles in fr, id, en, es, de with a gold clustering in
tests/fixtures/samples_gold.json), on the two real seed copies in ../shared/seeds
(skipped when absent), and on a folder of broken files.
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
GOLD = json.loads((ROOT / "tests" / "fixtures" / "samples_gold.json").read_text(encoding="utf-8"))
SEEDS = ROOT.parent / "shared" / "seeds"

pytestmark = pytest.mark.model


def storyclust(*args: str, stdin: str | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("storyclust")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "storyclust"]
    return subprocess.run(cmd + list(args), input=stdin, capture_output=True, text=True, cwd=cwd, timeout=900,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def gold_key(article: dict) -> str:
    """The gold-file name of an article in a story record: path relative to data/samples, plus #id for records."""
    rel = Path(article["path"]).resolve().relative_to(SAMPLES.resolve()).as_posix()
    return f"{rel}#{article['id']}" if ".json" in rel else rel


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "stories.jsonl"
    proc = storyclust("run", str(SAMPLES), "-o", str(out))
    return proc, jsonl(out.read_text(encoding="utf-8"))


def story_of(stories: list[dict]) -> dict[str, str]:
    return {gold_key(a): s["story_id"] for s in stories for a in s["articles"]}


def test_run_on_samples_finds_the_gold_stories(sample_run):
    proc, stories = sample_run
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # -o FILE: nothing on stdout
    assert all(s["schema_version"] == 1 and s["type"] == "story" for s in stories)
    found = story_of(stories)
    every = [e for members in GOLD["stories"].values() for e in members] + GOLD["singletons"]
    assert sorted(found) == sorted(every)  # every article exactly once
    for key, members in GOLD["stories"].items():
        ids = {found[m] for m in members}
        assert len(ids) == 1, f"gold story {key} was split: {members}"
        (sid,) = ids
        story = next(s for s in stories if s["story_id"] == sid)
        assert sorted(gold_key(a) for a in story["articles"]) == sorted(members), f"story {key} is not pure"
        assert len(story["languages"]) == len({GOLD["languages"][m] for m in members})
    for a, b in GOLD["traps"]:
        assert found[GOLD["stories"][a][0]] != found[GOLD["stories"][b][0]]
    for single in GOLD["singletons"]:
        story = next(s for s in stories if s["story_id"] == found[single])
        assert story["size"] == 1 and story["singleton"] is True


def test_story_records_carry_the_documented_fields(sample_run):
    _, stories = sample_run
    big = max(stories, key=lambda s: s["size"])
    assert {"story_id", "size", "singleton", "languages", "headline", "first_published", "last_published",
            "articles"} <= set(big)
    assert big["headline"] in {a["title"] for a in big["articles"]}
    assert big["first_published"] <= big["last_published"]
    for a in big["articles"]:
        assert {"id", "title", "lang", "url", "path", "similarity"} <= set(a)
        assert 0.0 < a["similarity"] <= 1.0


def test_ingest_cluster_pipeline_gives_the_same_stories(sample_run, tmp_path):
    _, stories = sample_run
    ingested = storyclust("ingest", str(SAMPLES))
    assert ingested.returncode == 0, ingested.stderr
    records = jsonl(ingested.stdout)  # stdout is pure JSONL
    assert len(records) == sum(len(v) for v in GOLD["stories"].values()) + len(GOLD["singletons"])
    assert {r["lang"] for r in records} == {"fr", "id", "en", "es", "de"}
    clustered = storyclust("cluster", "-", stdin=ingested.stdout)
    assert clustered.returncode == 0, clustered.stderr
    piped = jsonl(clustered.stdout)
    partition = lambda ss: sorted(sorted(a["id"] for a in s["articles"]) for s in ss)
    assert partition(piped) == partition(stories)


def test_min_size_hides_singletons_and_says_how_many(sample_run):
    _, stories = sample_run
    proc = storyclust("run", str(SAMPLES), "--min-size", "2")
    shown = jsonl(proc.stdout)
    singles = sum(1 for s in stories if s["size"] == 1)
    assert len(shown) == len(stories) - singles and all(s["size"] >= 2 for s in shown)
    assert f"hid {singles} stories" in proc.stderr


@pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds not present")
def test_seed_copies_form_one_clean_story(tmp_path):
    proc = storyclust("run", str(SEEDS), "--include-text")
    assert proc.returncode == 0, proc.stderr
    stories = jsonl(proc.stdout)
    assert len(stories) == 1
    (story,) = stories
    assert story["size"] == 2 and sorted(story["languages"]) == ["fr", "id"]
    by_lang = {a["lang"]: a for a in story["articles"]}
    # the wire's "MISE À JOUR 2 –" (UPDATE 2) prefix is version noise, not title
    assert by_lang["fr"]["title"].startswith("Les régulateurs chinois ont eu des entretiens avec Alibaba")
    assert by_lang["id"]["title"] == "China Panggil Alibaba CS Bahas Teknologi Deep Fake"
    for a in story["articles"]:
        text = a["text"]
        assert "Laisser un commentaire" not in text and "tulis komentar anda" not in text.lower()
        paragraphs = [p for p in text.split("\n") if p.strip()]
        assert len(paragraphs) == len(set(paragraphs)), "repeated paragraphs survived"


@pytest.mark.skipif(not SEEDS.is_dir(), reason="../shared/seeds not present")
@pytest.mark.parametrize("order", ["one night", "French first", "Indonesian first"])
def test_seed_copies_form_one_story_with_a_state_whatever_the_order(tmp_path, order):
    """The cron case: the two copies in one night, or on two nights in either order."""
    state = str(tmp_path / "news.db")
    seeds = sorted(SEEDS.iterdir())
    langs = {p: ("fr" if "régulateurs" in p.read_text(encoding="utf-8") else "id") for p in seeds}
    if order == "one night":
        folders = [SEEDS]
    else:
        first = "fr" if order == "French first" else "id"
        folders = []
        for night, lang in enumerate([first, {"fr": "id", "id": "fr"}[first]]):
            folder = tmp_path / f"night{night}"
            folder.mkdir()
            for p in seeds:
                if langs[p] == lang:
                    (folder / p.name).write_bytes(p.read_bytes())
            folders.append(folder)
    reported = []
    for night, folder in enumerate(folders):
        proc = storyclust("run", str(folder), "--state", state, "--now", f"2026-11-0{night + 1}T02:00:00Z")
        assert proc.returncode == 0, proc.stderr
        reported.append(jsonl(proc.stdout))
    final = reported[-1]
    assert len(final) == 1 and final[0]["size"] == 2 and sorted(final[0]["languages"]) == ["fr", "id"]
    assert final[0]["status"] == ("new" if order == "one night" else "updated")
    if order != "one night":
        assert reported[0][0]["story_id"] == final[0]["story_id"]  # the story kept its id
    ids = [a["id"] for a in final[0]["articles"]]
    explained = storyclust("explain", *ids, "--state", state, "--json")
    assert explained.returncode == 0, explained.stderr
    why = json.loads(explained.stdout)
    assert why["same_story"] is True and why["cosine_from"] == "state" and why["cosine"] > 0.5
    assert {"11", "18"} <= set(why["numbers"]["shared"])  # 11 companies, 18 March
    assert {"Alibaba Group", "Tencent", "ByteDance"} <= set(why["shared_names"])


def test_bad_inputs_are_reported_and_the_run_goes_on(tmp_path):
    corpus = tmp_path / "in"
    corpus.mkdir()
    good = (SAMPLES / "wires" / "wire-0005.txt").read_bytes()
    (corpus / "good.txt").write_bytes(good)
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "random.bin").write_bytes(os.urandom(4096))
    (corpus / "latin1.txt").write_bytes(
        "Élections régionales à Besançon\n\nLe préfet a annoncé vendredi que les électeurs du Doubs "
        "voteront à nouveau dimanche après l'annulation du premier tour pour des irrégularités.".encode("cp1252"))
    (corpus / "nav.html").write_text("<html><body><nav><a href='/'>Home</a></nav></body></html>")
    (corpus / "feed.jsonl").write_text(
        json.dumps({"id": "ok-1", "title": "Hello", "text": good.decode("utf-8")}) + "\n{not json\n")
    with gzip.open(corpus / "cut.txt.gz", "wb") as fh:
        fh.write(good * 50)
    data = (corpus / "cut.txt.gz").read_bytes()
    (corpus / "cut.txt.gz").write_bytes(data[: len(data) // 2])
    rejects = tmp_path / "rejects.jsonl"
    proc = storyclust("run", str(corpus), "--rejects", str(rejects))
    assert proc.returncode == 3, proc.stderr
    got = {r["source"]: r["reason"] for r in jsonl(rejects.read_text(encoding="utf-8"))}
    assert all(r.startswith(str(corpus)) for r in got)
    named = lambda name: got[str(corpus / name)]
    assert named("empty.txt") == "empty"
    assert named("random.bin") == "binary"
    assert named("nav.html") == "no_text"
    assert named("feed.jsonl#2") == "parse_error"
    assert named("cut.txt.gz") == "decompress_error"
    for name in ("empty.txt", "random.bin", "nav.html", "cut.txt.gz"):
        assert any(name in line for line in proc.stderr.splitlines()), f"{name} not named on stderr"
    stories = jsonl(proc.stdout)
    ids = [a["id"] for s in stories for a in s["articles"]]
    assert "ok-1" in ids  # the good line of a broken JSONL file survives
    assert len(ids) + len(got) == 8  # 7 files, one holding 2 records: each ends as an article or a rejection
    langs = {a["lang"] for s in stories for a in s["articles"]}
    assert "fr" in langs  # the cp1252 file was decoded, not rejected


def test_no_articles_at_all_exits_4(tmp_path):
    (tmp_path / "empty.txt").write_text("   \n")
    proc = storyclust("run", str(tmp_path))
    assert proc.returncode == 4
    assert proc.stdout == ""
    assert "empty.txt" in proc.stderr


def test_usage_errors_exit_2():
    assert storyclust("run").returncode == 2
    assert storyclust("cluster", "--max-distance", "7").returncode == 2
