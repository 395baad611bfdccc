"""The nightly logic, fast: plan_night as a pure function, and whole nights on a deterministic embedder.

No model is loaded here (tests/wordhash.py stands in for it); the real-model nightly tests are in
test_incremental.py.
"""
from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score
from wordhash import WordHashEmbedder, topic_articles

from storyclust.incremental import nightly, plan_night, publish, update_stories
from storyclust.pipeline import cluster_articles, name_stories
from storyclust.settings import StateOptions
from storyclust.store import FileStamp, open_store
from storyclust.types import Article, Rejection

NIGHT0 = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)


def _arts(*ids: str) -> dict[str, Article]:
    return {i: Article(id=i, text=f"text of {i}") for i in ids}


# -- plan_night ----------------------------------------------------------------------


def test_a_night_of_new_articles_names_stories_as_a_one_shot_run():
    arts = _arts("a", "b", "c")
    plan = plan_night([["a", "b"], ["c"]], {}, arts)
    expected = name_stories([[arts["a"], arts["b"]], [arts["c"]]])
    assert set(plan.new_stories) == set(expected) and all(v is None for v in plan.new_stories.values())
    assert plan.story_of == {"a": expected[0], "b": expected[0], "c": expected[1]}
    assert {plan.event(s) for s in expected} == {"new"} and set(plan.joined_by.values()) == {"cluster"}


def test_a_story_that_grows_keeps_its_id_and_reports_the_newcomers():
    arts = _arts("a", "b", "c")
    plan = plan_night([["a", "b", "c"]], {"a": "s_old", "b": "s_old"}, arts)
    assert plan.story_of == {"a": "s_old", "b": "s_old", "c": "s_old"}
    assert plan.added == {"s_old": ["c"]} and plan.event("s_old") == "updated" and not plan.new_stories
    assert plan.joined_by == {"c": "cluster"}  # the old members did not move


def test_two_stories_in_one_cluster_merge_into_the_older():
    arts = _arts("a", "b", "c", "d")
    plan = plan_night([["a", "b", "c", "d"]], {"a": "s_young", "b": "s_young", "c": "s_old", "d": "s_old"}, arts,
                      story_rank={"s_old": 0, "s_young": 1})
    assert plan.merged == {"s_young": "s_old"} and plan.event("s_young") == "closed"
    assert set(plan.added["s_old"]) == {"a", "b"} and plan.joined_by == {"a": "merge", "b": "merge"}
    assert set(plan.story_of.values()) == {"s_old"}


def test_a_group_the_recipe_puts_apart_splits_off_with_split_from():
    arts = _arts("a", "b", "c", "d", "e")
    plan = plan_night([["a", "b", "c"], ["d", "e"]], dict.fromkeys("abcde", "s_1"), arts)
    (new,) = plan.new_stories
    assert plan.new_stories[new] == "s_1" and plan.story_of["d"] == plan.story_of["e"] == new
    assert plan.removed == {"s_1": ["d", "e"]} and plan.joined_by == {"d": "split", "e": "split"}
    assert plan.event("s_1") == "updated" and plan.event(new) == "new"


def test_copies_follow_their_first_copy_and_ids_are_never_reused():
    arts = _arts("a", "b", "copy")
    taken = name_stories([[arts["a"]]])  # the id "a" would get is already used
    plan = plan_night([["a"], ["b"]], {}, arts, copies={"copy": "b"}, taken=taken)
    assert plan.story_of["copy"] == plan.story_of["b"] and plan.joined_by["copy"] == "duplicate"
    assert plan.story_of["a"] not in taken


def test_many_stories_merging_in_one_night_cost_the_night_not_its_square():
    """A night where 20,000 old stories pair up (each cluster takes two of them: the older keeps its ID, the
    other merges into it): each merge looks at its own story's clusters, not at every article of the night
    (the plan once scanned the whole night per merged story: minutes here)."""
    n = 20_000
    arts = {f"a{i}": Article(id=f"a{i}", text=f"text {i}", hash=f"h{i}") for i in range(2 * n)}
    old = {f"a{i}": f"s_{i:06d}" for i in range(2 * n)}
    start = time.perf_counter()
    plan = plan_night([[f"a{2 * k}", f"a{2 * k + 1}"] for k in range(n)], old, arts,
                      story_rank={f"s_{i:06d}": i for i in range(2 * n)})
    elapsed = time.perf_counter() - start
    assert plan.merged == {f"s_{2 * k + 1:06d}": f"s_{2 * k:06d}" for k in range(n)}
    assert not plan.new_stories and plan.joined_by[f"a{2 * n - 1}"] == "merge"
    assert elapsed < 10.0, f"{elapsed:.1f} s to plan {n} merges"


# -- whole nights on the deterministic embedder ---------------------------------------


@pytest.fixture
def embedder(tmp_path, monkeypatch):
    monkeypatch.setenv("STORYCLUST_CACHE_DIR", str(tmp_path / "cache"))
    return WordHashEmbedder()


def _night(store, articles, embedder, night: int = 0, **state):
    printed: list = []
    result = nightly(store, articles, embedder, printed.extend,
                     state=StateOptions(now=NIGHT0 + timedelta(days=night), **state))
    return result, printed


def _partition(memberships: dict[str, str], ids) -> list[str]:
    return [memberships[i] for i in ids]


def test_one_night_of_new_articles_equals_one_shot_clustering(tmp_path, embedder):
    articles, gold = topic_articles(5, seed=3)
    one_shot = cluster_articles(articles, embedder)
    with open_store(tmp_path / "s.db") as store:
        _, printed = _night(store, articles, embedder)
        memberships = store.memberships()
    assert {s.story_id: sorted(m.article.id for m in s.members) for s in one_shot} == \
        {s.story_id: sorted(m.article.id for m in s.members) for s in printed}
    assert adjusted_rand_score([gold[a.id] for a in articles], _partition(memberships, [a.id for a in articles])) == 1.0
    assert {s.story_id: s.labels for s in one_shot} == {s.story_id: s.labels for s in printed}
    assert all(s.labels for s in printed)


def test_articles_over_four_nights_in_random_order_end_as_the_one_shot_stories(tmp_path, embedder):
    articles, gold = topic_articles(6, seed=4)
    shuffled = articles[:]
    random.Random(1).shuffle(shuffled)
    with open_store(tmp_path / "s.db") as store:
        for night in range(4):
            _night(store, shuffled[night::4], embedder, night, story_window=timedelta(days=30))
        memberships = store.memberships()
    one_shot = {m.article.id: s.story_id for s in cluster_articles(articles, embedder) for m in s.members}
    ids = [a.id for a in articles]
    assert adjusted_rand_score(_partition(one_shot, ids), _partition(memberships, ids)) == 1.0
    assert sorted(memberships) == sorted(ids)  # every article in exactly one story


def test_every_input_id_ends_in_one_story_or_one_rejection_and_repeats_are_already_seen(tmp_path, embedder):
    articles, _ = topic_articles(3, seed=5)
    bad = Rejection("/in/broken.jsonl#3", "parse_error", "malformed JSON")
    with open_store(tmp_path / "s.db") as store:
        first, _ = _night(store, [*articles[:10], bad], embedder)
        again, printed = _night(store, [*articles[5:], articles[0]], embedder, 1)
        memberships = store.memberships()
    assert first.ingested == 10 and first.rejected == 1
    assert again.already_seen == 6 and again.ingested == len(articles) - 10  # 5..9 and 0 were seen
    assert sorted(memberships) == sorted(a.id for a in articles)
    assert all(s.status in ("new", "updated") for s in printed)


def test_exact_copies_are_not_embedded_and_join_their_first_copy(tmp_path, embedder):
    articles, _ = topic_articles(2, seed=6)
    copy = Article(id="reprint", text=articles[0].text, title="Reprinted elsewhere")
    with open_store(tmp_path / "s.db") as store:
        _night(store, articles, embedder)
        before = embedder.encoded
        result, printed = _night(store, [copy], embedder, 1)
        info, first = store.member_info("reprint"), store.member_info(articles[0].id)
    assert embedder.encoded == before and result.copies == 1 and result.embedded == 0
    assert info.story_id == first.story_id and info.joined_by == "duplicate"
    assert info.article.duplicate_of == articles[0].id
    (story,) = printed
    assert story.added == ("reprint",) and story.status == "updated"


def test_a_failed_publication_is_published_by_the_next_run(tmp_path, embedder):
    articles, _ = topic_articles(3, seed=7)

    def broken(stories):
        raise OSError(28, "No space left on device")

    with open_store(tmp_path / "s.db") as store:
        with pytest.raises(OSError):
            nightly(store, articles[:9], embedder, broken, state=StateOptions(now=NIGHT0))
        assert {c.event for c in store.unreported()} == {"new"}
        first_ids = {c.story_id for c in store.unreported()}
        result, printed = _night(store, articles[9:], embedder, 1)
        assert store.unreported() == []
    assert first_ids <= {s.story_id for s in printed}  # the lost night's stories, then tonight's
    assert {m.article.id for s in printed for m in s.members} == {a.id for a in articles}


def test_stories_close_after_the_story_window_in_run_time(tmp_path, embedder):
    old = Article(id="dated-long-ago", text="volcano eruption ash flights cancelled island alert",
                  published=datetime(2021, 3, 18, tzinfo=timezone.utc))
    with open_store(tmp_path / "s.db") as store:
        _, printed = _night(store, [old], embedder)
        assert [s.status for s in printed] == ["new"]  # an old publication date does not close it at once
        _, printed = _night(store, [], embedder, 6)
        assert printed == []
        _, printed = _night(store, [], embedder, 7)  # the default story window: 7 days
        assert [s.status for s in printed] == ["closed"]
        late = Article(id="follow-up", text=old.text + " resumed")
        _, printed = _night(store, [late], embedder, 8)
    assert [s.status for s in printed] == ["new"]  # a closed story takes no new article


def test_files_with_transient_rejections_are_read_again(tmp_path, embedder):
    ok, slow = FileStamp("/in/ok.html", 10, 1), FileStamp("/in/slow.html", 10, 1)
    articles, _ = topic_articles(1, seed=8)
    with open_store(tmp_path / "s.db") as store:
        update_stories(store, [articles[0], Rejection("/in/slow.html", "timeout", "took longer than 30 s")],
                       embedder, state=StateOptions(now=NIGHT0), files=[ok, slow])
        assert store.unchanged_files([ok, slow]) == {"/in/ok.html"}
        update_stories(store, [Rejection("/in/ok.html#2", "parse_error")], embedder,
                       state=StateOptions(now=NIGHT0), files=[ok])
        assert store.unchanged_files([ok]) == {"/in/ok.html"}  # a permanent rejection is not retried


def test_show_all_prints_unchanged_open_stories(tmp_path, embedder):
    articles, _ = topic_articles(2, seed=9)
    with open_store(tmp_path / "s.db") as store:
        _night(store, articles, embedder)
        printed: list = []
        publish(store, printed.extend, show_all=True)
    assert printed and {s.status for s in printed} == {"unchanged"}
    assert np.isclose(sum(s.size for s in printed), len(articles))


def test_an_articles_numbers_are_found_once_and_a_state_without_them_finds_them_from_texts(tmp_path, embedder,
                                                                                           monkeypatch):
    """The clusterer's number evidence comes from numbers each article keeps from the night it is stored
    (schema 6): a later night reads the window's touched members without their texts and tokenises only its
    own articles. Articles kept without numbers (stored before schema 6) are tokenised from their texts once,
    then kept, and the stories and labels are the same either way."""
    from storyclust import cluster, incremental

    articles, _ = topic_articles(6, seed=4)
    first, second = articles[::2], articles[1::2]
    tokenised: list[str] = []
    real = incremental.number_tokens
    monkeypatch.setattr(incremental, "number_tokens", lambda text: tokenised.append(text) or real(text))
    monkeypatch.setattr(cluster, "number_evidence", lambda texts: pytest.fail("the partition tokenised texts"))
    runs = {}
    for kept in (True, False):
        with open_store(tmp_path / f"{kept}.db") as store:
            _night(store, first, embedder, story_window=timedelta(days=30))
            assert store.article_numbers([first[0].id]) == {first[0].id: real(f"{first[0].title}\n{first[0].text}")}
            if not kept:
                with store.lock(), store.transaction():
                    store._write("UPDATE articles SET numbers = NULL")
            tokenised.clear()
            _, printed = _night(store, second, embedder, 1, story_window=timedelta(days=30))
            runs[kept] = ({s.story_id: (sorted(m.article.id for m in s.members), s.labels) for s in printed},
                          store.memberships(), len(tokenised))
            clustered = [a.id for a in first if store.member_info(a.id).joined_by != "duplicate"]
            assert store.article_numbers(clustered).keys() == set(clustered)  # found once, then kept
    assert runs[True][:2] == runs[False][:2] and len(runs[True][0]) >= 2
    assert runs[True][2] == len(second)  # tonight's articles only
    assert runs[False][2] > len(second)  # and the touched window's members, from their texts


def test_members_label_terms_are_kept_and_a_stale_blob_is_computed_again(tmp_path, embedder, monkeypatch):
    """A member's text is tokenised for labels once: the night it first labels a story. A story that only
    gains members adds tonight's terms to its kept table (no other member is read again); a story whose
    table is stale is summed again over its members' kept terms, a stale member blob computed again. The
    labels are those of a run that computed everything afresh."""
    from storyclust import labels as labels_mod

    articles, _ = topic_articles(6, seed=4)
    first, second = articles[::2], articles[1::2]
    computed: list[str] = []
    real = labels_mod.member_terms
    monkeypatch.setattr(labels_mod, "member_terms", lambda a, stop=None: computed.append(a.id) or real(a, stop))
    with open_store(tmp_path / "s.db") as store:
        _night(store, first, embedder, story_window=timedelta(days=30))
        assert sorted(computed) == sorted(a.id for a in first)
        assert store.label_terms([a.id for a in articles]).keys() == {a.id for a in first}
        story_of = store.memberships()
        other = next(a for a in first if story_of[a.id] != story_of[first[0].id])
        assert set(store.story_terms(set(story_of.values()))) == set(story_of.values())
        with store.lock(), store.transaction():
            store.set_label_terms({first[0].id: b"t0 from another format", other.id: b"t0 from another format"})
            store.set_story_terms({story_of[first[0].id]: b"s0 from another format"})
        computed.clear()
        _, printed = _night(store, second, embedder, 1, story_window=timedelta(days=30))
        kept = store.label_terms([a.id for a in articles])
        after = store.memberships()
    assert {after[a.id] for a in articles} == set(story_of.values())  # every story only gained
    # tonight's, and the stale member of the stale table; the other stale member's story only added tonight's
    assert set(computed) == {a.id for a in second} | {first[0].id}
    assert kept[first[0].id].startswith(labels_mod.TERMS_FORMAT) and not kept[other.id].startswith(labels_mod.TERMS_FORMAT)
    fresh = labels_mod.story_labels(printed)  # the same stories, every member tokenised again
    assert {s.story_id: s.labels for s in printed} == fresh and all(fresh.values())


def _waves(nights: int, per_night: int, seed: int) -> list[list[Article]]:
    """Six topics that each take ``per_night`` articles every night for ``nights`` nights: dated that night
    (every third undated), in English, French and Russian labels, so each story outgrows a small window."""
    from wordhash import TOPICS

    rng = np.random.default_rng(seed)
    filler = "said the on in for with reported officials local people after news".split()
    out = []
    for night in range(nights):
        batch = []
        for t, (topic, words) in enumerate(TOPICS.items()):
            for k in range(per_night):
                picked = list(rng.choice(words.split(), size=9, replace=False)) + list(rng.choice(filler, size=2))
                aid = f"{topic}-{night}-{k}"
                when = NIGHT0 + timedelta(days=night - 1, hours=2 + 3 * k + t)
                batch.append(Article(id=aid, text=" ".join(picked) + f" ({aid})", lang=("en", "fr", "ru")[k % 3],
                                     published=None if (night + k + t) % 3 == 0 else when))
        out.append(batch)
    return out


def test_a_long_story_clustered_through_summaries_of_its_older_members_stays_whole(
        tmp_path, embedder, caplog):
    waves = _waves(12, 3, seed=11)
    ids = [a.id for batch in waves for a in batch]
    ends = {}
    for in_full in (None, 5):
        with open_store(tmp_path / f"s{in_full}.db") as store, caplog.at_level("INFO", logger="storyclust.cluster"):
            caplog.clear()
            for night, batch in enumerate(waves):
                _night(store, batch, embedder, night, members_in_full=in_full)
            ends[in_full] = store.memberships()
            pooled = [r.getMessage() for r in caplog.records if "settled rows" in r.getMessage()]
        assert bool(pooled) == (in_full is not None)  # the older members did go through summaries
    assert adjusted_rand_score(_partition(ends[None], ids), _partition(ends[5], ids)) == 1.0
    assert len(set(ends[5].values())) == 6  # one story per topic, twelve nights long
