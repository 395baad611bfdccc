"""explain_pair / format_explanation and the `explain` command, on the real sample articles."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import click
import numpy as np
import pytest
from click.testing import CliRunner
from sample_stories import build_state, sample_stories

from storyclust.explain import explain_pair, format_explanation, format_gap
from storyclust.report.commands import explain_command
from storyclust.schema import article_to_record, dumps, story_to_record
from storyclust.store import SQLiteStore
from storyclust.types import Article

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)


def by_id() -> dict[str, object]:
    return {s.story_id: s for s in sample_stories()}


def test_same_story_pair_shares_numbers_names_and_says_how_each_joined():
    trade = by_id()["s_trade-eu-indonesia"]
    a, b = trade.members[0].article, trade.members[1].article  # English feed, Indonesian feed
    d = explain_pair(a, b, story_a=trade, story_b=trade)
    assert {"417", "189", "38"} <= set(d["numbers"]["shared"])
    assert "Jakarta" in d["shared_names"]
    assert d["same_story"] is True
    assert d["a"]["joined_by"] == "cluster" and d["a"]["similarity"] == trade.members[0].similarity
    assert d["time_gap_hours"] == pytest.approx((b.published - a.published).total_seconds() / 3600, abs=0.01)
    assert d["cosine"] is None and d["text_evidence"] == "text"
    json.dumps(d)  # JSON-ready


def test_trap_pair_is_different_stories_with_few_shared_numbers():
    stories = by_id()
    trade, quake = stories["s_trade-eu-indonesia"], stories["s_quake-poso-2026-01"]
    a, c = trade.members[0].article, quake.members[0].article
    d = explain_pair(a, c, story_a=trade, story_b=quake)
    assert d["same_story"] is False
    assert "417" not in d["numbers"]["shared"] and "417" in d["numbers"]["only_a"]
    assert "6.7" in d["numbers"]["only_b"]
    assert not {"Jan", "Tuesday"} & set(d["shared_names"])  # dates are not names


def test_numbers_are_normalised_across_languages_and_cosine_is_computed():
    a = Article(id="fr1", lang="fr", title="Crue", text="20 000 habitants évacués, séisme de 6,4 à Pasto.", published=T0)
    b = Article(id="id1", lang="id", title="Banjir", text="20.000 warga dievakuasi, gempa 6.4 di Pasto.",
                published=T0 + timedelta(hours=30))
    d = explain_pair(a, b, vector_a=np.array([1.0, 0.0]), vector_b=np.array([0.6, 0.8]), story_a="s_1",
                     story_b="s_2", joined_by_b="merge")
    assert d["numbers"]["shared"] == ["20000", "6.4"]
    assert d["shared_names"] == ["Pasto"]
    assert d["cosine"] == pytest.approx(0.6)
    assert d["time_gap_hours"] == 30.0 and d["same_story"] is False
    assert d["b"]["joined_by"] == "merge"
    text = format_explanation(d)
    assert "cosine (language-neutral)  0.600" in text
    assert "shared numbers (2)" in text and "20000, 6.4" in text
    assert "1 d 6 h (B after A)" in text
    assert "different stories: A in s_1, B in s_2" in text and "B joined by" in text


def test_duplicates_and_unknowns():
    a = Article(id="w1", text="Same wire text about 12 ministers.", title="Wire")
    b = Article(id="w2", text="Same wire text about 12 ministers.", title="Wire", duplicate_of="w1")
    d = explain_pair(a, b)
    assert d["duplicate"] is True and d["same_story"] is None and d["time_gap_hours"] is None
    text = format_explanation(d)
    assert "duplicate" in text and "unknown (an article has no date)" in text and "cosine" in text
    assert format_gap(0.4) == "24 min" and format_gap(-49) == "2 d 1 h" and format_gap(3) == "3 h"


# -- the command -------------------------------------------------------------------------------


def run(*args: str, env: dict | None = None):
    return CliRunner().invoke(explain_command, list(args), env=env or {}, catch_exceptions=False)


@pytest.fixture(scope="module")
def stories_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("explain") / "stories.jsonl"
    path.write_text("".join(dumps(story_to_record(s)) + "\n" for s in sample_stories()), encoding="utf-8")
    return path


def test_explain_input_stories_jsonl_text_and_json(stories_file):
    proc = run("mn-2026-0210-eu-indonesia", "kh-20260211-ieu-cepa", "--input", str(stories_file))
    assert proc.exit_code == 0, proc.output
    assert "same story s_trade-eu-indonesia" in proc.output
    assert "numbers and names read from titles only" in proc.output  # story records carry no text
    proc = run("mn-2026-0210-eu-indonesia", "mn-2026-0114-sulawesi-quake", "--input", str(stories_file), "--json")
    assert proc.exit_code == 0, proc.output
    d = json.loads(proc.output)
    assert d["type"] == "explanation" and d["same_story"] is False
    assert d["a"]["story_id"] == "s_trade-eu-indonesia" and d["b"]["story_id"] == "s_quake-poso-2026-01"


def test_explain_input_articles_jsonl_reads_full_text(tmp_path):
    trade = by_id()["s_trade-eu-indonesia"]
    path = tmp_path / "articles.jsonl"
    path.write_text("".join(dumps(article_to_record(m.article)) + "\n" for m in trade.members), encoding="utf-8")
    proc = run(trade.members[0].article.id, trade.members[1].article.id, "--input", str(path), "--json")
    assert proc.exit_code == 0, proc.output
    d = json.loads(proc.output)
    assert "417" in d["numbers"]["shared"] and d["text_evidence"] == "text" and d["same_story"] is None


def test_explain_exit_codes(stories_file, tmp_path):
    assert run("x", "y", "--input", str(stories_file)).exit_code == 1  # ids not in the file
    assert run("x", "y").exit_code == 2  # neither --state nor --input
    db = tmp_path / "s.db"
    db.write_bytes(b"")
    assert run("x", "y", "--input", str(stories_file), "--state", str(db)).exit_code == 2
    assert run("x", "y", "--state", str(db), "--model", "m").exit_code == 2
    # STORYCLUST_STATE from the environment gives way to an explicit --input
    proc = run("mn-2026-0210-eu-indonesia", "kh-20260211-ieu-cepa", "--input", str(stories_file),
               env={"STORYCLUST_STATE": str(db)})
    assert proc.exit_code == 0, proc.output


def test_explain_from_state_reads_vectors_without_a_model(tmp_path):
    db = tmp_path / "news.db"
    build_state(db)
    trade = by_id()["s_trade-eu-indonesia"]
    ida, idb = trade.members[0].article.id, trade.members[1].article.id
    proc = run(ida, idb, "--state", str(db), "--json")
    assert proc.exit_code == 0, proc.output
    d = json.loads(proc.output)
    assert d["cosine_from"] == "state" and -1.0 <= d["cosine"] <= 1.0
    with SQLiteStore(db) as store:
        ia, ib = store.member_info(ida), store.member_info(idb)
    assert d["cosine"] == pytest.approx(float(np.dot(ia.vector, ib.vector)), abs=1e-3)
    assert d["same_story"] is (ia.story_id == ib.story_id)
    assert d["a"]["joined_by"] == ia.joined_by and d["text_evidence"] == "text"
    assert "417" in d["numbers"]["shared"]
    text = run(ida, idb, "--state", str(db))
    assert text.exit_code == 0 and "cosine (language-neutral)" in text.output and "unknown (no vectors" not in text.output
    missing = run(ida, "no-such-article", "--state", str(db))
    assert missing.exit_code == 1 and "no-such-article" in missing.output


def test_commands_plug_into_a_group():
    group = click.Group("storyclust")
    group.add_command(explain_command, "explain")
    proc = CliRunner().invoke(group, ["explain", "--help"])
    assert proc.exit_code == 0 and "--state" in proc.output and "STORYCLUST_STATE" in proc.output
