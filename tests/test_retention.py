"""Months of nights: retention (`storyclust prune`), a night's work bounded by the open window, the schema
migration, and outputs created through the umask. Fast: the word-hash embedder stands in for the model.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from wordhash import TOPICS, WordHashEmbedder, topic_articles

from storyclust import cli as cli_mod
from storyclust.corrections import Correction
from storyclust.incremental import current_stories, nightly, publish, update_stories
from storyclust.labels import story_labels
from storyclust.retention import prune
from storyclust.settings import ClusterOptions, StateOptions
from storyclust.store import (MIGRATIONS, STATE_SCHEMA_VERSION, FileStamp, SQLiteStore, StateLocked, _create_v2,
                              open_store)
from storyclust.types import Article, content_hash
from storyclust.write import open_output

NIGHT0 = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def embedder():
    return WordHashEmbedder()


def batch(prefix: str, per_topic: int, seed: int, day: float, topics=None) -> list[Article]:
    """topic_articles under fresh ids, published on ``day`` after NIGHT0."""
    articles, _ = topic_articles(per_topic, seed=seed)
    return [replace(a, id=f"{prefix}-{a.id}", published=NIGHT0 + timedelta(days=day, hours=k % 12))
            for k, a in enumerate(articles) if topics is None or a.id.split("-")[0] in topics]


BACKGROUND = ("vote", "final", "storm", "drug", "fire")  # one a night: each story closes (3 days) before it returns


def evergreen(day: int, n: int) -> list[Article]:
    """``n`` reports of one long-running story published on ``day``: its words, two of filler, an id."""
    words = TOPICS["quake"].split() + "ceasefire talks border shelling convoy".split()
    rng = np.random.default_rng(day)
    filler = "said the on in for with reported officials local people after news".split()
    return [Article(id=f"war-{day}-{k}", lang="en", title=f"war {day} {k}",
                    text=" ".join(words + list(rng.choice(filler, 2))) + f". Update {day}-{k}.",
                    published=NIGHT0 + timedelta(days=day, minutes=k)) for k in range(n)]


def night(store, articles, embedder, day: float, **state):
    printed: list = []
    result = nightly(store, articles, embedder, printed.extend, state=StateOptions(now=NIGHT0 + timedelta(days=day),
                                                                                  **state))
    return result, printed


def table_count(path: Path, table: str) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        db.close()


def two_months(path: Path, embedder) -> list[Article]:
    """Night 0 and night 40 (night 0's stories closed long ago); returns night 0's articles."""
    old = batch("old", 30, seed=1, day=0)
    with open_store(path) as store:
        night(store, old, embedder, 0)
        night(store, batch("new", 5, seed=2, day=40), embedder, 40)
    return old


# -- prune -------------------------------------------------------------------------------


def test_prune_forgets_old_closed_stories_and_gives_the_space_back(tmp_path, embedder):
    path = tmp_path / "s.db"
    old = two_months(path, embedder)
    size_before = os.path.getsize(path) + os.path.getsize(f"{path}-wal") if os.path.exists(f"{path}-wal") else \
        os.path.getsize(path)
    with open_store(path) as store:
        old_stories = {store.member_info(a.id).story_id for a in old}
        kept_ids = {s.story_id for s in current_stories(store, include_closed=True)} - old_stories
        result = prune(store, timedelta(days=30), now=NIGHT0 + timedelta(days=40))
        closed_after = {s.story_id for s in current_stories(store, include_closed=True)}
        assert store.known_ids([a.id for a in old]) == {a.id for a in old}  # still "already seen"
        assert all(store.member_info(a.id) is None for a in old)
    assert result.stories == len(old_stories) and result.articles == len(old) and result.vectors == len(old)
    db = sqlite3.connect(path)  # a page per table and index, whatever it holds
    floor = db.execute("SELECT count(*) + 1 FROM sqlite_master WHERE rootpage > 0").fetchone()[0] * \
        db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    assert result.bytes_after - floor < 0.5 * (size_before - floor) and result.vacuumed
    assert closed_after == kept_ids  # `stories --closed` lists what is left, nothing pruned
    assert table_count(path, "articles") == 30 and table_count(path, "forgotten") == len(old)
    assert table_count(path, "forgotten_stories") == len(old_stories)


def test_a_pruned_id_is_already_seen_and_an_exact_reprint_starts_no_story(tmp_path, embedder):
    path = tmp_path / "s.db"
    old = two_months(path, embedder)
    reprint = replace(old[0], id="reprint-of-old-0")
    fresh = batch("fresh", 1, seed=9, day=41)
    with open_store(path) as store:
        prune(store, timedelta(days=30), now=NIGHT0 + timedelta(days=40))
        before = embedder.encoded
        result, printed = night(store, [old[1], reprint, *fresh], embedder, 41)
        assert store.known_ids(["reprint-of-old-0"]) == {"reprint-of-old-0"}  # a tombstone too
        assert store.member_info("reprint-of-old-0") is None
    assert result.already_seen == 1 and result.pruned_copies == 1
    assert embedder.encoded - before == len(fresh)  # the reprint was neither embedded nor clustered
    assert {m.article.id for s in printed for m in s.members} >= {a.id for a in fresh}
    assert not any(m.article.id == "reprint-of-old-0" for s in printed for m in s.members)


def test_prune_never_drops_a_queued_change_and_a_dry_run_changes_nothing(tmp_path, embedder):
    path = tmp_path / "s.db"
    with open_store(path) as store:
        night(store, batch("a", 4, seed=1, day=0), embedder, 0)
        update_stories(store, batch("b", 2, seed=2, day=40), embedder,
                       state=StateOptions(now=NIGHT0 + timedelta(days=40)))  # night 40's changes stay queued
        queued = store.queued_story_ids()
        closed_queued = {s.story_id for s in store.stories(status="closed")} & queued
        assert closed_queued  # night 0's stories closed on night 40: a change not yet published
        dry = prune(store, timedelta(days=30), now=NIGHT0 + timedelta(days=40), dry_run=True)
        assert dry.stories == 0 and dry.held == len(closed_queued) and store.queued_story_ids() == queued
        night(store, [], embedder, 40.5)  # publishes
        dry = prune(store, timedelta(days=30), now=NIGHT0 + timedelta(days=41), dry_run=True)
        articles = table_count(path, "articles")
        real = prune(store, timedelta(days=30), now=NIGHT0 + timedelta(days=41))
    assert dry.dry_run and dry.stories == real.stories == len(closed_queued)
    assert (dry.articles, dry.vectors) == (real.articles, real.vectors) and real.articles == 24
    assert table_count(path, "articles") == articles - 24


def test_prune_refuses_a_state_another_run_holds(tmp_path, embedder):
    path = tmp_path / "s.db"
    two_months(path, embedder)
    with open_store(path) as holder, holder.lock():
        with open_store(path) as store, pytest.raises(StateLocked):
            prune(store, timedelta(days=30), now=NIGHT0 + timedelta(days=40), wait=False)
        result = CliRunner().invoke(cli_mod.cli, ["prune", "--state", str(path), "--keep", "30d", "--no-wait",
                                                  "--now", (NIGHT0 + timedelta(days=40)).isoformat()])
        assert result.exit_code == cli_mod.EXIT_LOCKED
    assert table_count(path, "forgotten") == 0


def test_prune_command_prints_one_record_and_takes_its_options_from_the_environment(tmp_path, embedder):
    path = tmp_path / "s.db"
    two_months(path, embedder)
    runner = CliRunner()
    now = (NIGHT0 + timedelta(days=40)).isoformat()
    dry = runner.invoke(cli_mod.cli, ["prune", "--state", str(path), "--dry-run", "--now", now],
                        env={"STORYCLUST_KEEP": "30d"})
    assert dry.exit_code == 0, dry.output
    record = json.loads(dry.stdout)
    assert record["type"] == "prune" and record["schema_version"] == 1 and record["dry_run"] and record["stories"] > 0
    assert table_count(path, "forgotten") == 0
    done = runner.invoke(cli_mod.cli, ["prune", "--state", str(path), "--keep", "30d", "--now", now])
    assert done.exit_code == 0 and json.loads(done.stdout)["articles"] == record["articles"]
    bad = runner.invoke(cli_mod.cli, ["prune", "--state", str(path), "--keep", "soon"])
    assert bad.exit_code == 2 and "not a duration" in bad.output


def test_run_with_keep_prunes_after_the_night(tmp_path, embedder):
    path = tmp_path / "s.db"
    old = batch("old", 3, seed=1, day=0)
    with open_store(path) as store:
        night(store, old, embedder, 0, keep=timedelta(days=30))
        result, _ = night(store, batch("new", 2, seed=2, day=40), embedder, 40, keep=timedelta(days=30))
        later, _ = night(store, [], embedder, 41, keep=timedelta(days=30))
    assert result.pruned is not None and result.pruned.held > 0  # closed tonight: published first, then pruned
    assert later.pruned.articles == len(old) and table_count(path, "forgotten") == len(old)


_KILL_SCRIPT = """
import sys
from datetime import datetime, timedelta, timezone
from storyclust.retention import prune
from storyclust.store import open_store
with open_store(sys.argv[1]) as store:
    print("ready", flush=True)
    prune(store, timedelta(days=30), now=datetime(2026, 4, 11, 2, tzinfo=timezone.utc))
"""


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.15, 0.3])
def test_kill_9_during_prune_leaves_a_state_the_next_run_uses(tmp_path, embedder, delay):
    path = tmp_path / "s.db"
    old = two_months(path, embedder)
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    forgotten = db.execute("SELECT count(*) FROM forgotten").fetchone()[0]
    articles = db.execute("SELECT count(*) FROM articles").fetchone()[0]
    db.close()
    assert (forgotten, articles) in ((0, len(old) + 30), (len(old), 30))  # before or after, nothing between
    with open_store(path) as store:
        result, printed = night(store, [old[0], *batch("later", 1, seed=4, day=41)], embedder, 41)
        again = prune(store, timedelta(days=30), now=NIGHT0 + timedelta(days=41))
    assert result.already_seen == 1 and printed
    assert table_count(path, "forgotten") == len(old) and again.articles in (0, len(old))


# -- a night's work is bounded ----------------------------------------------------------------


def test_a_story_that_never_goes_quiet_is_clustered_by_its_recent_members_only(tmp_path, embedder):
    """An evergreen story takes 12 articles a night for 8 nights among other news; each night clusters at
    most its 20 latest members, and it stays one story with the right size and dates."""
    runs = {}
    for recent in (20, 10_000):
        path = tmp_path / f"s{recent}.db"
        clustered, ids = [], []
        with open_store(path) as store:
            for day in range(8):
                articles = evergreen(day, 12)
                ids += [a.id for a in articles]
                others = batch(f"bg{day}", 6, seed=day, day=day, topics={BACKGROUND[day % 5]})  # the night's news
                result, _ = night(store, articles + others, embedder, day, recent_members=recent,
                                  story_window=timedelta(days=3))
                clustered.append(result.clustered)
            stories = {store.member_info(i).story_id for i in ids}
            runs[recent] = (clustered, store.memberships(), store.stories(ids=stories))
            dates = [store.member_info(i).article.published for i in ids]
    bounded, unbounded = runs[20], runs[10_000]
    assert unbounded[0][7] - unbounded[0][3] >= 40  # all of it, every night (near copies aside)
    # bounded: tonight's 18, the evergreen's 20 latest and at most the other news still open (3 nights of 6)
    assert max(bounded[0]) <= 18 + 20 + 3 * 6
    # one story throughout (clustering all of it every night is not only slower: on this embedder its
    # members come to dominate the batch's language mean, neutralising its own common words, and it breaks up)
    assert len({sid for aid, sid in bounded[1].items() if aid.startswith("war-")}) == 1
    (story,) = bounded[2]
    assert story.size == 96 and story.status == "open"
    assert story.first_published == min(dates) and story.last_published == max(dates)


def test_a_night_clusters_only_the_open_stories_its_articles_reach(tmp_path, embedder):
    """Night 2 brings one topic's follow-ups: only that topic's story is clustered again and reported; the other
    open stories keep their member rows untouched, and the partition is the one-shot partition of all nights."""
    from storyclust.pipeline import cluster_articles

    first = batch("a", 6, seed=0, day=0, topics={"vote", "storm", "fire"})
    follow = batch("b", 4, seed=1, day=1, topics={"storm"})
    path = tmp_path / "s.db"
    with open_store(path) as store:
        night(store, first, embedder, 0)
        rows_before = dict(sqlite3.connect(path).execute("SELECT article_id, hex(vector) || similarity FROM members").fetchall())
        result, printed = night(store, follow, embedder, 1)
        final = store.memberships()
    rows_after = dict(sqlite3.connect(path).execute("SELECT article_id, hex(vector) || similarity FROM members").fetchall())
    storm = {final[a.id] for a in first if a.id.startswith("a-storm")}
    assert len(storm) == 1 and {final[a.id] for a in follow} == storm  # the follow-ups joined their story
    assert [s.story_id for s in printed] == list(storm) and printed[0].status == "updated"
    reached = sum(1 for a in first if final[a.id] in storm)
    assert result.clustered == reached + len(follow) < len(first) + len(follow)  # the others were not read
    assert all(rows_after[a.id] == rows_before[a.id] for a in first if final[a.id] not in storm)
    one_shot = {frozenset(m.article.id for m in s.members) for s in cluster_articles(first + follow, embedder)}
    assert one_shot == {frozenset(a for a, sid in final.items() if sid == story) for story in set(final.values())}


def test_merged_stories_take_their_older_members_along(tmp_path, embedder):
    """Stories kept apart by a strict threshold merge later; members outside the night's window move too."""
    path = tmp_path / "s.db"
    articles = evergreen(0, 16)
    strict = ClusterOptions(max_distance=0.05)
    others = batch("bg", 2, seed=5, day=0, topics={"vote", "final", "storm"})
    with open_store(path) as store:
        update_stories(store, others, embedder, state=StateOptions(now=NIGHT0 - timedelta(hours=1)))
        for k in range(4):
            update_stories(store, articles[4 * k: 4 * k + 4], embedder, options=strict,
                           state=StateOptions(now=NIGHT0 + timedelta(hours=k), recent_members=2))
        assert len(store.stories(status="open")) > 1
        update_stories(store, evergreen(1, 2), embedder,
                       state=StateOptions(now=NIGHT0 + timedelta(hours=5), recent_members=2))
        sizes = {s.story_id: (s.status, s.size, store.story_size(s.story_id)) for s in store.stories()}
    assert all(size == counted for _, size, counted in sizes.values())
    assert all(size == 0 for status, size, _ in sizes.values() if status == "merged")
    assert sum(size for _, size, _ in sizes.values()) == 18 + len(others)


# -- schema and files ----------------------------------------------------------------


def test_a_schema_2_state_is_migrated_under_the_lock(tmp_path, embedder):
    path = tmp_path / "v2.db"
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("BEGIN")
    _create_v2(raw)
    raw.execute("INSERT INTO runs (started_at, now) VALUES ('2026-03-01T00:00:00+00:00', '2026-03-01T00:00:00+00:00')")
    raw.execute("INSERT INTO articles (id, hash, text, text_key, run_id) VALUES ('a', 'h', 'text', 'k', 1)")
    raw.execute("INSERT INTO stories (story_id, status, size, last_activity, created_run, updated_run)"
                " VALUES ('s_1', 'open', 1, '2026-03-01T00:00:00.000000+00:00', 1, 1)")
    raw.execute("INSERT INTO members (article_id, story_id, vector, similarity, run_id) VALUES ('a', 's_1', ?, 1, 1)",
                (np.zeros(4, np.float32).tobytes(),))
    raw.execute("PRAGMA application_id = 1396921172")
    raw.execute("PRAGMA user_version = 2")
    raw.execute("COMMIT")
    raw.close()
    with SQLiteStore(path) as store:
        assert store.schema_version == 2
        with store.lock():
            assert store.schema_version == STATE_SCHEMA_VERSION == 8
        assert [m.seq for m in store.open_members(recent=5)] == [1]
        assert store.story_terms(["s_1"]) == {}  # no table yet: summed over its members when it next changes
        assert store.article_numbers(["a"]) == {}  # none kept: found from its text when it is next clustered


def test_the_tombstones_of_a_schema_7_state_are_made_compact_and_still_recognised(tmp_path):
    path = tmp_path / "v7.db"
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("BEGIN")
    _create_v2(raw)
    for number in range(2, 7):
        MIGRATIONS[number](raw)
    reprinted, other = content_hash("Floods close the port of Kupang"), content_hash("Un autre texte")
    raw.executemany("INSERT INTO forgotten (id, hash, story_id, run_id) VALUES (?, ?, ?, 1)",
                    [("old-1", reprinted, "s_0000000000a1"), ("old-2", other, "s_0000000000a2")])
    raw.execute("PRAGMA application_id = 1396921172")
    raw.execute("PRAGMA user_version = 7")
    raw.execute("COMMIT")
    raw.close()
    with SQLiteStore(path) as store:
        with store.lock():
            assert store.schema_version == STATE_SCHEMA_VERSION == 8
        assert store.known_ids(["old-1", "old-2", "new-1"]) == {"old-1", "old-2"}
        assert store.forgotten_by_hash([reprinted, content_hash("A new text")]) == {reprinted: "s_0000000000a1"}
    db = sqlite3.connect(path)
    assert db.execute("SELECT id, typeof(hash), length(hash) FROM forgotten ORDER BY id").fetchall() == [
        ("old-1", "blob", 16), ("old-2", "blob", 16)]
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()


def test_a_tombstone_takes_about_a_hundred_bytes_for_good(tmp_path):
    """What a pruned article leaves stays forever (a year at 10,000 a night leaves 3.65 million): its id,
    16 bytes of its content hash and its story, in a table without a second copy of the id. Schema 7 kept
    the hash as 64 hex digits and the id twice: ~230 bytes a tombstone."""
    path, n = tmp_path / "s.db", 20_000
    rng = np.random.default_rng(0)

    def used_bytes() -> int:
        db = sqlite3.connect(path)
        (pages,), (free,), (size,) = (db.execute(f"PRAGMA {p}").fetchone()
                                      for p in ("page_count", "freelist_count", "page_size"))
        db.close()
        return (pages - free) * size

    with open_store(path) as store:
        with store.lock():  # the schema, empty
            before = used_bytes()
        with store.lock(), store.transaction():
            store.forget([(f"s{rng.integers(10**7):07d}.001.{i:08d}", content_hash(f"report {i}"),
                           f"s_{rng.integers(16**12):012x}") for i in range(n)], run_id=1)
        assert len(store.known_ids(f"s{i}" for i in range(100))) == 0
        assert len(store.forgotten_by_hash([content_hash("report 7"), content_hash("report 8")])) == 2
    assert (used_bytes() - before) / n < 150  # a reader sees the committed pages, in the WAL or not


def test_a_state_made_with_4k_pages_is_rebuilt_with_16k_ones_by_prune_vacuum(tmp_path, embedder, monkeypatch):
    """A state holds large rows (texts, 1.5 KB vectors) that 4 KiB pages pack badly; new files get 16 KiB pages and
    `prune --vacuum` rebuilds an older file with them, in place, keeping every row and WAL mode."""
    import storyclust.store as store_mod

    new = tmp_path / "new.db"
    with open_store(new) as store, store.lock():
        assert store.page_size == store_mod.PAGE_SIZE == 16384
    path = tmp_path / "s.db"
    monkeypatch.setattr(store_mod, "PAGE_SIZE", 4096)
    old = two_months(path, embedder)
    monkeypatch.undo()
    with open_store(path) as store:
        assert store.page_size == 4096
        ids = [a.id for a in old]
        stories = current_stories(store, include_closed=True)
    runner = CliRunner()
    now = (NIGHT0 + timedelta(days=10)).isoformat()  # nothing old enough: only the rebuild
    reader = sqlite3.connect(path)  # another process reading the state: the file is vacuumed as it is
    assert reader.execute("SELECT count(*) FROM articles").fetchone()[0] == len(old) + 30
    busy = runner.invoke(cli_mod.cli, ["prune", "--state", str(path), "--keep", "30d", "--now", now, "--vacuum"])
    assert busy.exit_code == 0 and json.loads(busy.stdout)["vacuumed"], busy.output
    assert reader.execute("PRAGMA page_size").fetchone()[0] == 4096
    reader.close()
    done = runner.invoke(cli_mod.cli, ["prune", "--state", str(path), "--keep", "30d", "--now", now, "--vacuum"])
    assert done.exit_code == 0, done.output
    record = json.loads(done.stdout)
    assert record["vacuumed"] and record["stories"] == 0
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA page_size").fetchone()[0] == 16384
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with open_store(path) as store:
        assert current_stories(store, include_closed=True) == stories
        assert all(store.member_info(i) is not None for i in ids)
        result, printed = night(store, batch("later", 2, seed=5, day=41), embedder, 41)
    assert printed and result.clustered > 0
    held = runner.invoke(cli_mod.cli, ["prune", "--state", str(path), "--keep", "30d", "--now", now, "--vacuum"])
    assert held.exit_code == 0 and json.loads(held.stdout)["vacuumed"]


def test_outputs_are_created_through_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with open_output(str(tmp_path / "report.jsonl")) as fh:
            fh.write("{}\n")
        os.chmod(tmp_path / "report.jsonl", 0o640)
        with open_output(str(tmp_path / "report.jsonl")) as fh:  # an existing file keeps its mode
            fh.write("{}\n")
        with open_output(str(tmp_path / "other.jsonl")) as fh:
            fh.write("{}\n")
    finally:
        os.umask(old)
    assert (tmp_path / "report.jsonl").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "other.jsonl").stat().st_mode & 0o777 == 0o644


def test_prune_drops_the_records_of_old_input_files_that_are_gone(tmp_path, embedder):
    from storyclust.store import FileStamp

    path = tmp_path / "s.db"
    kept, gone = tmp_path / "kept.jsonl", tmp_path / "gone.jsonl"
    kept.write_text("{}\n")
    stamps = [FileStamp(str(kept), 3, 1), FileStamp(str(gone), 3, 1)]
    with open_store(path) as store:
        update_stories(store, batch("old", 2, seed=1, day=0), embedder, files=stamps,
                       state=StateOptions(now=NIGHT0))
        night(store, batch("new", 1, seed=2, day=40), embedder, 40)
        result = prune(store, timedelta(days=30), now=NIGHT0 + timedelta(days=40))
        again = prune(store, timedelta(days=30), now=NIGHT0 + timedelta(days=41))
        assert store.unchanged_files(stamps) == {str(kept)}  # still read: not read again
    assert result.files == 1 and again.files == 0


def test_prune_trims_a_story_that_never_goes_quiet_to_its_latest_members(tmp_path, embedder):
    path = tmp_path / "s.db"
    with open_store(path) as store:
        for day in range(6):
            articles = evergreen(day, 12) + batch(f"bg{day}", 6, seed=day, day=day, topics={BACKGROUND[day % 5]})
            night(store, articles, embedder, day, recent_members=20)
        (war,) = {store.member_info(f"war-{d}-0").story_id for d in range(6)}
        recent = {a for a, sid in store.memberships().items() if sid == war and a.startswith(("war-3", "war-4", "war-5"))}
        result = prune(store, timedelta(days=2), now=NIGHT0 + timedelta(days=5), keep_latest=20)
        (story,) = store.stories(ids=[war])
        kept = [aid for aid, sid in store.memberships().items() if sid == war]
        assert store.known_ids(["war-0-0"]) == {"war-0-0"} and store.member_info("war-0-0") is None
        later, printed = night(store, evergreen(6, 3), embedder, 6, recent_members=20)
    assert story.status == "open" and story.size == len(kept) >= 20 and story.forgotten == result.trimmed > 0
    assert story.size + story.forgotten == 72
    assert recent <= set(kept)  # taken in after the cutoff: kept
    (record,) = [s for s in printed if s.story_id == war]
    assert record.forgotten == story.forgotten and record.size == story.size + 3
    changed = [s for s in printed if s.status in ("new", "updated")]  # the trimmed story's terms summed again
    assert {s.story_id: s.labels for s in changed} == story_labels(changed)


def test_a_reprint_of_a_trimmed_first_copy_joins_its_story_through_a_kept_copy(tmp_path, embedder):
    path = tmp_path / "s.db"
    first = evergreen(0, 1)[0]
    with open_store(path) as store:
        for day in range(6):
            articles = evergreen(day, 12) + batch(f"bg{day}", 6, seed=day, day=day, topics={BACKGROUND[day % 5]})
            if day == 4:  # a reprint of the story's first article, kept among its latest members
                articles.append(replace(first, id="reprint-4", published=first.published + timedelta(days=4)))
            night(store, articles, embedder, day, recent_members=20)
        war = store.member_info("war-0-0").story_id
        prune(store, timedelta(days=2), now=NIGHT0 + timedelta(days=5), keep_latest=20)
        assert store.member_info("war-0-0") is None and store.member_info("reprint-4").story_id == war
        result, printed = night(store, [replace(first, id="reprint-6")], embedder, 6, recent_members=20)
        info = store.member_info("reprint-6")
    assert result.copies == 1 and info.story_id == war and info.joined_by == "duplicate"
    assert info.article.duplicate_of == "reprint-4"


def test_two_reprints_of_an_article_older_than_the_window_follow_it(tmp_path, embedder):
    """Two reprints of a member older than the story's latest members (outside the night's window): the first
    becomes a copy of the stored article, the second, which copies the first, follows the same first copy."""
    with open_store(tmp_path / "s.db") as store:
        night(store, evergreen(0, 12), embedder, 0, recent_members=5)
        first = store.member_info("war-0-0")
        reprints = [replace(first.article, id=f"reprint-{k}", duplicate_of=None) for k in range(2)]
        result, printed = night(store, reprints, embedder, 1, recent_members=5)
        infos = [store.member_info(a.id) for a in reprints]
    assert result.copies == 2 and {i.story_id for i in infos} == {first.story_id}
    assert [i.article.duplicate_of for i in infos] == ["war-0-0", "war-0-0"]
    assert [i.joined_by for i in infos] == ["duplicate", "duplicate"]
    assert [s.story_id for s in printed] == [first.story_id] and set(printed[0].added) == {"reprint-0", "reprint-1"}


def test_a_night_does_not_shingle_the_window_again(tmp_path, embedder, monkeypatch):
    """Near copies are found against the window's stored MinHash signatures: only tonight's texts are shingled."""
    from storyclust.ingest import dedupe

    path = tmp_path / "s.db"
    first = batch("a", 6, seed=1, day=0)
    with open_store(path) as store:
        night(store, first, embedder, 0)
        stored = store.signatures(a.id for a in first)
        calls = []
        real = dedupe.shingle_hashes
        monkeypatch.setattr(dedupe, "shingle_hashes", lambda text: calls.append(text) or real(text))
        near = replace(first[0], id="near-copy", text=first[0].text + " Updated at noon.")
        result, _ = night(store, [near, *batch("b", 1, seed=2, day=1)], embedder, 1)
        info = store.member_info("near-copy")
    assert len(stored) == len(first)  # every window article's signature was kept
    assert 0 < len(calls) <= 7 and not set(calls) & {a.text for a in first}  # tonight's, none of the window's 36
    assert result.copies == 1 and info.article.duplicate_of == first[0].id


# -- a night's cost: no read proportional to history ---------------------------------------------


def test_a_night_and_a_prune_search_by_index_never_reading_a_table_whole(tmp_path, embedder):
    """Every statement of a night (files, an exact reprint of a pruned article, an editor's correction, an
    evergreen story) and of a prune is planned by SQLite to search by key or index: none scans a table that
    grows with history (articles, members, vectors, stories, files, tombstones, label terms). What may be
    scanned grows with runs or editors' actions, not with articles: the runs (one row per run), the outbox
    (changes not yet published), the corrections and the settings."""
    path = tmp_path / "s.db"
    inputs = tmp_path / "wires"
    inputs.mkdir()

    def stamps(day: int) -> list[FileStamp]:
        out = []
        for k in range(3):
            f = inputs / f"day{day}-{k}.jsonl"
            f.write_text("{}\n")
            out.append(FileStamp(str(f), 3, day * 10**9 + k))
        return out

    first = batch("d0", 3, seed=0, day=0)
    with open_store(path) as store:
        for day in range(12):
            articles = first if day == 0 else batch(f"d{day}", 3, seed=day, day=day, topics=BACKGROUND[day % 5:][:1])
            with store.lock():
                update_stories(store, articles + evergreen(day, 4), embedder, files=stamps(day),
                               state=StateOptions(now=NIGHT0 + timedelta(days=day)))
                publish(store, lambda stories: None)
        for f in list(inputs.iterdir())[:5]:
            f.unlink()  # gone: prune forgets their records
        prune(store, timedelta(days=5), now=NIGHT0 + timedelta(days=11))
        with store.lock(), store.transaction():
            store.add_correction(Correction("link", ("war-11-0", articles[0].id)), NIGHT0 + timedelta(days=11))
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        with store.lock():
            update_stories(store, [replace(first[0], id="reprint-of-pruned")] + evergreen(12, 4)
                           + batch("d12", 3, seed=12, day=12), embedder, files=stamps(12),
                           state=StateOptions(now=NIGHT0 + timedelta(days=12)))
            publish(store, lambda stories: None)
        prune(store, timedelta(days=5), now=NIGHT0 + timedelta(days=12))
        store._db.set_trace_callback(None)
        assert store.known_ids(["reprint-of-pruned"]) and store.member_info("reprint-of-pruned") is None
    assert any(sql.startswith("DELETE FROM vectors") for sql in statements)  # the traced prune forgot texts too
    db = sqlite3.connect(path)
    history = {"articles", "members", "vectors", "stories", "files", "forgotten", "forgotten_stories", "story_terms"}
    aliases = {"a": "articles", "m": "members", "s": "stories", "f": "files"}  # as the store's queries name them
    scans = {}
    for sql in statements:
        if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT", "WITH")):
            continue
        for row in db.execute("EXPLAIN QUERY PLAN " + sql):
            detail = row[3]
            if detail.startswith("SCAN ") and aliases.get(detail.split()[1], detail.split()[1]) in history:
                scans[sql[:160]] = detail
    db.close()
    assert len(statements) > 50 and not scans
