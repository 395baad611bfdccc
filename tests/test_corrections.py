"""An editor's corrections: the constraint logic of the clusterer, the checks, the nightly and one-shot
drivers, and the commands. Fast: the word-hash embedder stands in for the model (the real-model run on
data/samples is in test_corrections_e2e.py)."""
from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from click.testing import CliRunner
from wordhash import WordHashEmbedder, topic_articles

from storyclust import cli as cli_mod
from storyclust.cluster import ClusterOptions, StoryClusterer, _average_linkage
from storyclust.corrections import Correction, CorrectionError, check, decided_by, read_corrections
from storyclust.incremental import nightly
from storyclust.labels import story_labels
from storyclust.pipeline import cluster_articles
from storyclust.settings import StateOptions
from storyclust.store import open_store
from storyclust.types import Article

NIGHT0 = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def embedder():
    return WordHashEmbedder()


def unit(X):
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def story_of(labels, i):
    return int(labels[i])


# -- the clusterer's constraints ---------------------------------------------------------


def two_groups(seed=0, per=5, dim=16, spread=0.08):
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(2, dim)))
    X = np.concatenate([centres[k] + spread * rng.normal(size=(per, dim)) for k in range(2)])
    return unit(X)


def test_a_must_link_joins_two_stories_and_a_cannot_link_splits_one():
    X = two_groups()
    opts = ClusterOptions(neutralize=False, max_distance=0.4)
    free = StoryClusterer(opts).fit_predict(X)
    assert len(set(free[:5])) == 1 and len(set(free[5:])) == 1 and free[0] != free[5]
    linked = StoryClusterer(opts).fit_predict(X, must_link=[(0, 7)])
    assert len(set(linked)) == 1  # the link merges both stories, not only the two rows
    apart = StoryClusterer(opts).fit_predict(X, cannot_link=[(0, 1)])
    assert apart[0] != apart[1]
    assert {story_of(apart, i) for i in range(2, 5)} <= {apart[0], apart[1]}  # the rest goes with one of them


def test_an_unlink_wins_over_a_chain_of_evidence_that_would_bridge_the_pair():
    rng = np.random.default_rng(3)
    a, b = unit(rng.normal(size=(2, 16)))
    steps = np.linspace(0, 1, 9)[:, None]
    X = unit(a * (1 - steps) + b * steps)  # a chain of close rows from a to b
    opts = ClusterOptions(neutralize=False, max_distance=0.9)
    assert len(set(StoryClusterer(opts).fit_predict(X))) == 1
    labels = StoryClusterer(opts).fit_predict(X, cannot_link=[(0, 8)])
    assert labels[0] != labels[8]


def partition(labels) -> list[list[int]]:
    return sorted(sorted(np.flatnonzero(labels == v).tolist()) for v in np.unique(labels))


def test_links_chain_and_join_whole_stories_under_every_method():
    X = unit(np.random.default_rng(5).normal(size=(12, 16)))
    for method in ("average", "hdbscan"):
        opts = ClusterOptions(neutralize=False, method=method)
        free = StoryClusterer(opts).fit_predict(X)
        labels = StoryClusterer(opts).fit_predict(X, must_link=[(0, 3), (3, 7)])
        joined = {i for i in range(12) if free[i] in {free[0], free[3], free[7]}}
        expected = [sorted(joined)] + [g for g in partition(free) if not set(g) & joined]
        assert partition(labels) == sorted(expected)


def test_constrained_cut_without_a_pair_inside_is_the_plain_cut():
    rng = np.random.default_rng(7)
    X = unit(rng.normal(size=(40, 8)))
    D = np.clip(1 - X.astype(np.float64) @ X.T, 0, 2)
    np.fill_diagonal(D, 0)
    plain = _average_linkage(D, 0.6)
    far = np.array([[0, 1]]) if not any({0, 1} <= set(c.tolist()) for c in plain) else np.empty((0, 2), int)
    same = _average_linkage(D, 0.6, far)
    assert sorted(map(tuple, map(np.ndarray.tolist, plain))) == sorted(map(tuple, map(np.ndarray.tolist, same)))


def test_constraints_name_two_different_rows():
    with pytest.raises(ValueError):
        StoryClusterer().fit(two_groups(), must_link=[(0, 0)])
    with pytest.raises(ValueError):
        StoryClusterer().fit(two_groups(), cannot_link=[(0, 99)])


# -- the checks --------------------------------------------------------------------------


def test_contradictions_are_refused_naming_the_corrections():
    links = [Correction("link", ("a", "b"), correction_id=1), Correction("link", ("b", "c"), correction_id=2)]
    check(links + [Correction("unlink", ("a", "d"), correction_id=3)])
    with pytest.raises(CorrectionError, match=r"#3 unlink a c .*#1 link a b, #2 link b c"):
        check(links + [Correction("unlink", ("a", "c"), correction_id=3)])
    with pytest.raises(CorrectionError, match="to itself"):
        Correction("link", ("a", "a"))
    with pytest.raises(CorrectionError, match="exactly two"):
        Correction("unlink", ("a", "b", "c"))
    assert decided_by("a", "c", links)[0] == "link" and decided_by("a", "x", links) is None


def test_a_corrections_file_is_read_and_checked_line_by_line(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"type": "correction", "link": ["a", "b", "c"], "note": "one quake"}\n\n'
                    '{"type": "correction", "unlink": ["d", "e"]}\n', encoding="utf-8")
    assert [(c.kind, c.ids, c.note) for c in read_corrections(str(good))] == [
        ("link", ("a", "b", "c"), "one quake"), ("unlink", ("d", "e"), None)]
    for body, message in (('{"link": ["a"]}', "at least two"), ("not json", "not JSON"),
                          ('{"type": "story"}', "not a correction"), ('{"link": "a b"}', "one of 'link'"),
                          ('{"link": ["a", "b"]}\n{"unlink": ["a", "b"]}', "contradictory")):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(body + "\n", encoding="utf-8")
        with pytest.raises(CorrectionError, match=message):
            read_corrections(str(bad))


# -- the nightly driver and the one-shot driver ------------------------------------------------


def corpus():
    articles, gold = topic_articles(5, seed=11)
    return articles, gold


def night(store, articles, embedder, day):
    printed: list = []
    result = nightly(store, articles, embedder, printed.extend, state=StateOptions(now=NIGHT0 + timedelta(days=day)))
    return result, printed


def cli(*args, input=None):
    return CliRunner().invoke(cli_mod.cli, list(args), input=input)


def test_unlink_and_link_are_applied_by_the_next_run_and_kept_every_night(tmp_path, embedder):
    articles, gold = corpus()
    path = tmp_path / "s.db"
    with open_store(path) as store:
        night(store, articles, embedder, 0)
        before = store.memberships()
    quake, vote = "quake-0", "vote-0"
    assert before["quake-0"] == before["quake-1"] and before[quake] != before[vote]
    assert cli("unlink", "quake-0", "quake-1", "--state", str(path), "--note", "two quakes").exit_code == 0
    assert cli("link", quake.replace("0", "2"), vote, "--state", str(path)).exit_code == 0  # quake-2 + vote-0

    with open_store(path) as store:
        result, printed = night(store, [], embedder, 0.5)  # no new article: the corrections alone
        after = store.memberships()
        stories = {s.story_id: s for s in store.stories()}
    assert_labels_are_fresh(printed)  # split, merged into and edited stories' kept label terms
    assert after["quake-0"] != after["quake-1"]
    assert after["quake-2"] == after[vote]
    changed = {s.story_id: s for s in printed}
    assert set(changed) == {sid for sid in set(after.values()) | set(before.values())
                            if {a for a, s in after.items() if s == sid} != {a for a, s in before.items() if s == sid}}
    split = [s for s in printed if s.split_from == before["quake-0"]]
    assert len(split) == 1 and split[0].status == "new"
    merged = [s for s in printed if s.merged_into]
    (gone,) = merged
    survivor = stories[gone.merged_into]
    assert survivor.created_run <= stories[gone.story_id].created_run  # the older story keeps its ID
    editor = {m.article.id for s in printed for m in s.members if m.joined_by == "editor"}
    assert editor & {"quake-0", "quake-1", "quake-2", vote}

    with open_store(path) as store:  # two more nights, with articles that would bridge the unlinked pair
        for day in (1, 2):
            bridge = [replace(a, id=f"bridge{day}-{a.id}", text=a.text + " " + articles[0].text + " " + articles[1].text,
                              published=a.published + timedelta(days=day)) for a in articles[:2]]
            assert_labels_are_fresh(night(store, bridge, embedder, day)[1])
        final = store.memberships()
    assert final["quake-0"] != final["quake-1"] and final["quake-2"] == final[vote]

    one_shot = cluster_articles(articles + [a for d in (1, 2) for a in [
        replace(x, id=f"bridge{d}-{x.id}", text=x.text + " " + articles[0].text + " " + articles[1].text,
                published=x.published + timedelta(days=d)) for x in articles[:2]]], embedder,
        corrections=[Correction("unlink", ("quake-0", "quake-1")), Correction("link", ("quake-2", vote))])
    shot = {m.article.id: s.story_id for s in one_shot for m in s.members}
    ids = sorted(final)
    from sklearn.metrics import adjusted_rand_score
    assert adjusted_rand_score([shot[i] for i in ids], [final[i] for i in ids]) == 1.0


def assert_labels_are_fresh(printed):
    """The night's changed stories are labelled as a fresh labelling of them, every member tokenised again,
    would label them (the state sums each story's terms night after night)."""
    changed = [s for s in printed if s.status in ("new", "updated")]
    assert changed and {s.story_id: s.labels for s in changed} == story_labels(changed)


def test_a_corrections_file_gives_one_shot_runs_the_nightly_partition(tmp_path, embedder):
    articles, _ = corpus()
    path = tmp_path / "s.db"
    corrections = [Correction("unlink", ("final-0", "final-3")), Correction("link", ("storm-1", "drug-2", "fire-0"))]
    file = tmp_path / "corrections.jsonl"
    file.write_text("".join(json.dumps({"type": "correction", c.kind: list(c.ids)}) + "\n" for c in corrections))
    with open_store(path) as store:
        night(store, articles, embedder, 0)
    for c in corrections:
        assert cli(c.kind, *c.ids, "--state", str(path)).exit_code == 0
    listed = [json.loads(line) for line in cli("corrections", "--state", str(path)).stdout.splitlines()]
    assert [r.get("link") or r.get("unlink") for r in listed] == [list(c.ids) for c in corrections]
    assert all(r["type"] == "correction" and r["applied_run"] is None for r in listed)
    with open_store(path) as store:
        night(store, [], embedder, 0.5)
        nightly_part = store.memberships()
        assert all(c.applied_run for c in store.corrections())
    shot = {m.article.id: s.story_id for s in cluster_articles(articles, embedder, corrections=read_corrections(
        str(file))) for m in s.members}
    groups = lambda m: sorted(sorted(a for a, s in m.items() if s == sid) for sid in set(m.values()))  # noqa: E731
    assert groups(shot) == groups(nightly_part)
    assert len({nightly_part[i] for i in ("storm-1", "drug-2", "fire-0")}) == 1
    assert nightly_part["final-0"] != nightly_part["final-3"]


def test_an_unlink_separates_an_exact_copy_from_its_first_copy(tmp_path, embedder):
    articles, _ = corpus()
    copy = Article(id="copy-of-quake-0", text=articles[0].text, title="elsewhere", lang="en",
                   published=articles[0].published)
    stories = cluster_articles(articles + [copy], embedder,
                               corrections=[Correction("unlink", ("quake-0", "copy-of-quake-0"))])
    story = {m.article.id: s.story_id for s in stories for m in s.members}
    assert story["quake-0"] != story["copy-of-quake-0"]
    path = tmp_path / "s.db"
    with open_store(path) as store:
        night(store, articles + [copy], embedder, 0)
        assert store.memberships()["copy-of-quake-0"] == store.memberships()["quake-0"]
    assert cli("unlink", "quake-0", "copy-of-quake-0", "--state", str(path)).exit_code == 0
    with open_store(path) as store:
        night(store, [], embedder, 0.5)
        members = store.memberships()
        assert store.member_info("copy-of-quake-0").article.duplicate_of is None
    assert members["copy-of-quake-0"] != members["quake-0"]


# -- the commands ------------------------------------------------------------------------


def test_bad_corrections_change_nothing_and_say_why(tmp_path, embedder):
    articles, _ = corpus()
    path = tmp_path / "s.db"
    with open_store(path) as store:
        night(store, articles, embedder, 0)
    unknown = cli("link", "quake-0", "no-such-article", "--state", str(path))
    assert unknown.exit_code == 2 and "no-such-article" in unknown.output
    itself = cli("link", "quake-0", "quake-0", "--state", str(path))
    assert itself.exit_code == 2 and "itself" in itself.output
    assert cli("link", "quake-0", "vote-0", "--state", str(path)).exit_code == 0
    assert cli("link", "vote-0", "final-0", "--state", str(path)).exit_code == 0
    clash = cli("unlink", "quake-0", "final-0", "--state", str(path))
    assert clash.exit_code == 2 and "#1 link quake-0 vote-0" in clash.output and "#2 link vote-0 final-0" in clash.output
    again = cli("link", "vote-0", "quake-0", "--state", str(path))  # already in force: nothing stored
    assert again.exit_code == 0 and again.stdout == ""
    assert cli("corrections", "--state", str(path), "--remove", "7").exit_code == 2
    assert cli("corrections", "--state", str(path), "--remove", "2").exit_code == 0
    assert cli("unlink", "quake-0", "final-0", "--state", str(path)).exit_code == 0  # no chain any more
    with open_store(path) as holder, holder.lock():
        locked = cli("link", "storm-0", "drug-0", "--state", str(path), "--no-wait")
        assert locked.exit_code == cli_mod.EXIT_LOCKED
    with open_store(path) as store:
        assert [c.describe() for c in store.corrections()] == ["#1 link quake-0 vote-0", "#3 unlink quake-0 final-0"]


def test_a_link_takes_the_story_along_but_not_what_an_unlink_keeps_apart():
    X = two_groups()
    opts = ClusterOptions(neutralize=False, max_distance=0.4)
    labels = StoryClusterer(opts).fit_predict(X, must_link=[(0, 7)], cannot_link=[(1, 7)])
    assert labels[0] == labels[7] and labels[1] != labels[7]
    assert len({labels[i] for i in (5, 6, 8, 9)} | {labels[7]}) == 1  # 7's story came along


def test_explain_names_the_corrections_that_decide_a_pair(tmp_path, embedder):
    articles, _ = corpus()
    path = tmp_path / "s.db"
    with open_store(path) as store:
        night(store, articles, embedder, 0)
    assert cli("link", "quake-0", "vote-0", "--state", str(path), "--note", "one event").exit_code == 0
    assert cli("link", "vote-0", "final-0", "--state", str(path)).exit_code == 0
    assert cli("unlink", "storm-0", "storm-1", "--state", str(path)).exit_code == 0
    with open_store(path) as store:
        night(store, [], embedder, 0.5)
    text = cli("explain", "quake-0", "final-0", "--state", str(path))
    assert text.exit_code == 0 and "linked: one story by correction #1 (one event), #2" in text.output
    record = json.loads(cli("explain", "storm-0", "storm-1", "--state", str(path), "--json").output)
    assert record["correction"]["decides"] == "unlink" and record["correction"]["corrections"][0]["id"] == 3
    assert record["same_story"] is False
    plain = json.loads(cli("explain", "fire-0", "fire-1", "--state", str(path), "--json").output)
    assert plain["correction"] is None
