"""Every command and option, in-process (click's CliRunner), on data/samples/ and files written here.

The embedding model is replaced by the deterministic word-hash embedder (tests/wordhash.py), so
these tests check the shell and the drivers in seconds; test_e2e.py runs the real model.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from wordhash import WordHashEmbedder

from storyclust import cli as cli_mod
from storyclust.settings import EmbedOptions
from storyclust.store import open_store

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data" / "samples"
NIGHT = "2026-03-02T02:00:00+00:00"


@pytest.fixture(autouse=True)
def fake_model(tmp_path, monkeypatch):
    """Every command that loads a model gets the word-hash embedder (and a cache of its own)."""
    monkeypatch.setenv("STORYCLUST_CACHE_DIR", str(tmp_path / "cache"))
    for name in list(__import__("os").environ):
        if name.startswith("STORYCLUST_") and name != "STORYCLUST_CACHE_DIR":
            monkeypatch.delenv(name)
    loads: list[EmbedOptions] = []

    def load(self):
        loads.append(self)
        return WordHashEmbedder()

    monkeypatch.setattr(EmbedOptions, "load", load)
    return loads


def invoke(*args: str, input: str | None = None, env: dict | None = None):
    return CliRunner().invoke(cli_mod.cli, list(args), input=input, env=env, catch_exceptions=False)


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_ingest_writes_article_records_and_accepts_quiet_after_the_command(tmp_path):
    out, rejects = tmp_path / "articles.jsonl", tmp_path / "rejects.jsonl"
    result = invoke("ingest", str(SAMPLES), "-q", "-o", str(out), "--rejects", str(rejects))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""  # -q: nothing but errors
    arts = records(out.read_text(encoding="utf-8"))
    assert len(arts) == 33 and {r["type"] for r in arts} == {"article"}
    assert all(r["schema_version"] == 1 for r in arts) and rejects.read_text() == ""


def test_options_come_from_the_environment_and_no_article_exits_4(tmp_path):
    rejects = tmp_path / "rejects.jsonl"
    result = invoke("ingest", str(SAMPLES / "wires"), env={"STORYCLUST_MIN_CHARS": "100000",
                                                           "STORYCLUST_REJECTS": str(rejects)})
    assert result.exit_code == 4 and result.stdout == ""
    assert {r["reason"] for r in records(rejects.read_text(encoding="utf-8"))} == {"no_text"}


def test_from_list_reads_paths_from_stdin():
    listing = f"# the wires\n{SAMPLES / 'wires' / 'wire-0001.txt'}\n\n{SAMPLES / 'wires' / 'wire-0002.txt'}\n"
    result = invoke("ingest", "--from-list", "-", input=listing)
    assert result.exit_code == 0 and len(records(result.stdout)) == 2


def test_a_rejected_input_exits_3_and_the_rest_goes_on(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"id": "ok", "text": "' + "A real article text. " * 10 + '"}\nnot json\n',
                                        encoding="utf-8")
    result = invoke("ingest", str(tmp_path / "bad.jsonl"))
    assert result.exit_code == 3 and [r["id"] for r in records(result.stdout)] == ["ok"]
    assert "bad.jsonl#2" in result.stderr


def test_cluster_reads_stdin_and_run_gives_the_same_stories(tmp_path, fake_model):
    articles = invoke("ingest", str(SAMPLES), "-q").stdout
    clustered = invoke("cluster", input=articles)
    assert clustered.exit_code == 0, clustered.stderr
    ran = invoke("run", str(SAMPLES), "--max-distance", "0.5")
    assert records(clustered.stdout) == records(ran.stdout)
    stories = records(ran.stdout)
    assert sum(s["size"] for s in stories) == 33 and all(s["type"] == "story" for s in stories)
    assert {a["joined_by"] for s in stories for a in s["articles"]} <= {"cluster", "duplicate"}
    assert fake_model[-1].max_tokens == 256 and fake_model[-1].backend == "auto"  # defaults from EmbedOptions


def test_min_size_include_text_and_cluster_options(tmp_path):
    base = records(invoke("run", str(SAMPLES)).stdout)
    big = records(invoke("run", str(SAMPLES), "--min-size", "2", "--include-text").stdout)
    assert [s["story_id"] for s in big] == [s["story_id"] for s in base if s["size"] >= 2]
    assert all("text" in a for s in big for a in s["articles"])
    apart = records(invoke("run", str(SAMPLES), "--max-distance", "0.01", "--number-weight", "0").stdout)
    assert all(s["size"] == 1 for s in apart) and len(apart) == 33


def test_nightly_runs_print_what_changed_then_nothing(tmp_path):
    state = str(tmp_path / "news.db")
    first = invoke("run", str(SAMPLES / "wires"), "--state", state, "--now", NIGHT)
    assert first.exit_code == 0, first.stderr
    assert {s["status"] for s in records(first.stdout)} == {"new"}
    again = invoke("run", str(SAMPLES / "wires"), "--state", state, "--now", NIGHT)
    assert again.exit_code == 0 and again.stdout == ""
    every = records(invoke("run", str(SAMPLES / "wires"), "--state", state, "--all", "--now", NIGHT).stdout)
    assert {s["status"] for s in every} == {"unchanged"} and len(every) == len(records(first.stdout))
    listed = records(invoke("stories", "--state", state).stdout)
    assert {s["story_id"] for s in listed} == {s["story_id"] for s in every} and {s["status"] for s in listed} == {"open"}
    more = invoke("cluster", "--state", state, "--now", NIGHT, input=invoke("ingest", str(SAMPLES / "web")).stdout)
    assert more.exit_code == 0 and records(more.stdout)


def test_a_failed_output_exits_1_and_the_next_run_prints_what_was_lost(tmp_path):
    state = str(tmp_path / "news.db")
    lost = invoke("run", str(SAMPLES / "wires"), "--state", state, "-o", str(tmp_path / "missing" / "out.jsonl"))
    assert lost.exit_code == 1 and "next run prints them" in lost.stderr
    with open_store(state) as store:
        queued = {c.story_id for c in store.unreported()}
    assert queued
    later = invoke("run", str(SAMPLES / "wires"), str(SAMPLES / "api"), "--state", state)
    assert later.exit_code == 0
    assert queued <= {s["story_id"] for s in records(later.stdout)}
    with open_store(state) as store:
        assert store.unreported() == []


def test_a_locked_state_exits_75_with_no_wait(tmp_path):
    state = tmp_path / "news.db"
    holder = open_store(state)
    with holder.lock():
        result = invoke("run", str(SAMPLES / "wires"), "--state", str(state), "--no-wait")
    holder.close()
    assert result.exit_code == 75 and "locked" in result.stderr


def test_a_foreign_database_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "app.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    before = path.read_bytes()
    result = invoke("run", str(SAMPLES / "wires"), "--state", str(path))
    assert result.exit_code == 1 and "not a storyclust state" in result.stderr
    assert path.read_bytes() == before


def test_usage_errors_exit_2():
    assert invoke("run").exit_code == 2  # no input
    assert invoke("run", str(SAMPLES), "--max-distance", "5").exit_code == 2
    assert invoke("run", str(SAMPLES), "--state", "x.db", "--story-window", "forever").exit_code == 2
    assert invoke("run", str(SAMPLES), "--state", "x.db", "--now", "yesterday").exit_code == 2
    assert invoke("eval").exit_code == 2


def test_eval_scores_an_existing_output(tmp_path):
    gold = ROOT / "tests" / "fixtures" / "eval" / "tiny_gold.jsonl"
    pred = tmp_path / "pred.jsonl"
    assert invoke("cluster", str(gold), "-o", str(pred)).exit_code == 0
    result = invoke("eval", "--gold", str(gold), "--pred", str(pred), "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["type"] == "evaluation" and "pairwise" in json.dumps(report)


def test_report_and_explain_are_commands_of_the_cli(tmp_path):
    stories = tmp_path / "stories.jsonl"
    invoke("run", str(SAMPLES), "-o", str(stories))
    html = tmp_path / "report.html"
    assert invoke("report", str(stories), "-o", str(html), "-q").exit_code == 0
    assert html.read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    first = records(stories.read_text(encoding="utf-8"))[0]["articles"]
    explained = invoke("explain", first[0]["id"], first[1]["id"], "--input", str(stories), "--json")
    assert explained.exit_code == 0 and json.loads(explained.stdout)["same_story"] is True


def test_adapter_option_reaches_the_embed_settings(tmp_path, fake_model):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    assert invoke("run", str(SAMPLES / "wires"), "--adapter", str(adapter), "-q").exit_code == 0
    assert fake_model[-1].adapter == str(adapter)
    assert invoke("run", str(SAMPLES / "wires"), "--adapter", str(tmp_path / "missing")).exit_code == 2
    assert "tune" in invoke("--help").stdout


def test_explain_adds_each_members_evidence():
    stories = records(invoke("run", str(SAMPLES), "--explain").stdout)
    plain = records(invoke("run", str(SAMPLES)).stdout)
    assert [s["story_id"] for s in stories] == [s["story_id"] for s in plain]
    assert all("evidence" not in a for s in plain for a in s["articles"])
    trade = max(stories, key=lambda s: s["size"])
    assert trade["size"] >= 2
    anchors = [a for a in trade["articles"] if a["evidence"]["anchor"] is None]
    assert len(anchors) == 1
    for a in trade["articles"]:
        e = a["evidence"]
        assert e["joined_by"] == a["joined_by"] and -1.0 <= e["similarity"] <= 1.0
        if e["anchor"] is not None:
            assert e["anchor"] == anchors[0]["id"] and isinstance(e["shared_names"], list)
            assert isinstance(e["shared_numbers"], list) and "time_gap_hours" in e


@pytest.mark.parametrize("nightly", [False, True])
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_run_shingles_each_text_once(tmp_path, monkeypatch, nightly, jobs):
    """`run` finds near copies at ingest and folds copies again before clustering: the fold takes ingest's
    MinHash signatures, so no text of the samples is shingled twice (one-shot and nightly alike). With
    workers, they shingle what they read: this process shingles nothing."""
    from collections import Counter

    from storyclust.ingest import dedupe

    shingled: Counter[str] = Counter()
    real = dedupe.shingle_hashes
    monkeypatch.setattr(dedupe, "shingle_hashes", lambda text: (shingled.update([text]), real(text))[1])
    state = ["--state", str(tmp_path / "state.db"), "--now", NIGHT] if nightly else []
    result = invoke("run", str(SAMPLES), "-q", "-j", jobs, *state)
    assert result.exit_code == 0, result.stderr
    assert len(records(result.stdout)) > 1
    if jobs == "1":
        assert len(shingled) >= 25 and set(shingled.values()) == {1}
    else:
        assert not shingled


def test_members_in_full_comes_from_the_flag_or_the_environment_and_minus_one_turns_summaries_off(tmp_path,
                                                                                                 monkeypatch):
    from storyclust.settings import StateOptions

    seen: list[StateOptions] = []
    check = StateOptions.__post_init__
    monkeypatch.setattr(StateOptions, "__post_init__", lambda self: (seen.append(self), check(self))[1])
    state = str(tmp_path / "s.db")
    assert invoke("run", str(SAMPLES / "wires"), "--state", state, "--now", NIGHT).exit_code == 0
    assert invoke("run", str(SAMPLES / "wires"), "--state", state, "--members-in-full", "-1").exit_code == 0
    assert invoke("run", str(SAMPLES / "wires"), "--state", state, env={"STORYCLUST_MEMBERS_IN_FULL": "3"}).exit_code == 0
    assert invoke("run", str(SAMPLES / "wires"), "--state", state, "--members-in-full", "-2").exit_code == 2
    assert StateOptions().members_in_full is None  # off unless asked for
    assert [s.members_in_full for s in seen if s.path] == [None, None, 3]
