"""The SQLite state store: schema and migrations, transactions, the run lock, round trips."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from storyclust import store as store_mod
from storyclust.store import (
    STATE_SCHEMA_VERSION,
    FileStamp,
    SQLiteStore,
    StateError,
    StateLocked,
    StateStore,
    StoredStory,
    open_store,
)
from storyclust.types import Article

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=timezone.utc)


def _article(n: int, **kw) -> Article:
    return Article(id=f"a{n}", text=f"Article number {n} about something.", **kw)


def _unit(rng: np.random.Generator, dim: int = 8) -> np.ndarray:
    v = rng.normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.fixture
def db(tmp_path):
    s = open_store(tmp_path / "state.db")
    yield s
    s.close()


def test_new_file_has_current_schema_in_wal_mode(tmp_path):
    path = tmp_path / "state.db"
    with open_store(path) as s:
        assert s.schema_version == STATE_SCHEMA_VERSION
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"articles", "embeddings", "stories", "members", "runs", "language_means"} <= tables
    raw.close()
    with open_store(path) as s:  # reopening does not migrate again
        assert s.schema_version == STATE_SCHEMA_VERSION


def test_store_satisfies_protocol(db):
    def use(s: StateStore) -> int:
        return len(s.stories())

    assert use(db) == 0


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "state.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {STATE_SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(StateError, match="upgrade storyclust"):
        open_store(path)


def test_not_a_database_is_a_state_error(tmp_path):
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(StateError, match="cannot open"):
        open_store(path)


def test_failed_migration_leaves_previous_version_intact(tmp_path, monkeypatch):
    path = tmp_path / "state.db"
    open_store(path).close()

    def broken_v2(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("migration failed midway")

    monkeypatch.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS + (broken_v2,))
    monkeypatch.setattr(store_mod, "STATE_SCHEMA_VERSION", STATE_SCHEMA_VERSION + 1)
    with pytest.raises(RuntimeError, match="midway"):
        SQLiteStore(path)
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == STATE_SCHEMA_VERSION
    assert raw.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0
    raw.close()


def test_ordered_migrations_run_from_current_version(tmp_path, monkeypatch):
    path = tmp_path / "state.db"
    open_store(path).close()

    def add_notes(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE notes (text TEXT)")

    monkeypatch.setattr(store_mod, "MIGRATIONS", store_mod.MIGRATIONS + (add_notes,))
    monkeypatch.setattr(store_mod, "STATE_SCHEMA_VERSION", STATE_SCHEMA_VERSION + 1)
    with SQLiteStore(path) as s:
        assert s.schema_version == STATE_SCHEMA_VERSION + 1
        with s.transaction():
            s.set_setting("k", "v")  # v1 tables untouched
        assert s.get_setting("k") == "v"


def test_writes_need_a_transaction_and_roll_back_on_error(db):
    with pytest.raises(StateError, match="outside a transaction"):
        db.set_setting("model_id", "m")
    with pytest.raises(ValueError):
        with db.transaction():
            db.set_setting("model_id", "m")
            with db.transaction():  # nested block joins the outer transaction
                db.set_setting("other", "x")
            raise ValueError("boom")
    assert db.get_setting("model_id") is None and db.get_setting("other") is None
    with db.transaction():
        db.set_setting("model_id", "m")
    assert db.get_setting("model_id") == "m"


def test_articles_are_keyed_by_content_hash(db):
    a = _article(1, title="T", lang="fr", lang_confidence=0.9, url="http://x/1",
                 published=datetime(2026, 11, 1, 9, 30, tzinfo=timezone(timedelta(hours=2))),
                 retrieved=T0, source="x", author="Ann", path="/in/1.txt")
    same_text_other_path = Article(id="other", text=a.text.upper() + "  ", path="/in/copy.txt")
    assert same_text_other_path.hash == a.hash
    b = _article(2)
    with db.transaction():
        run = db.begin_run(T0, "model")
        assert db.add_articles([(a, T0, "ka"), (b, T0 - timedelta(hours=1), "kb")], run) == 2
        assert db.add_articles([(same_text_other_path, T0, "kc")], run) == 0
    assert db.known_hashes([a.hash, "nope", b.hash]) == {a.hash, b.hash}
    assert db.article_count() == 2
    pending = db.pending_articles()
    assert [p.article.id for p in pending] == ["a2", "a1"]  # by date
    back = pending[1]
    assert back.article == a  # every field round-trips, including the +02:00 offset
    assert back.article.published.utcoffset() == timedelta(hours=2)
    assert back.text_key == "ka" and back.run_id == run and back.date == T0


def test_known_hashes_handles_many(db):
    arts = [_article(i) for i in range(1200)]
    with db.transaction():
        run = db.begin_run(T0, "m")
        db.add_articles([(a, T0, a.hash) for a in arts[:700]], run)
    assert db.known_hashes(a.hash for a in arts) == {a.hash for a in arts[:700]}


def test_embeddings_per_model(db):
    rng = np.random.default_rng(0)
    v1, v2 = _unit(rng), _unit(rng)
    with db.transaction():
        db.put_embeddings("m1", {"k1": v1, "k2": v2})
        db.put_embeddings("m2", {"k1": v2})
    assert db.missing_embeddings("m1", ["k2", "k3", "k1", "k3"]) == ["k3"]
    assert db.missing_embeddings("m2", ["k1", "k2"]) == ["k2"]
    got = db.get_embeddings("m1", ["k2", "k1", "k2"])
    assert got.dtype == np.float32 and got.shape == (3, 8)
    np.testing.assert_array_equal(got[0], v2)
    np.testing.assert_array_equal(got[1], v1)
    with pytest.raises(KeyError):
        db.get_embeddings("m2", ["k2"])
    assert db.embedding_count() == 3 and db.embedding_count("m2") == 1


def test_language_means_round_trip(db):
    means = {"en": (np.arange(4, dtype=np.float32), 3), "fr": (np.ones(4, dtype=np.float32), 1)}
    with db.transaction():
        db.set_language_means("m", means)
        db.set_language_means("m", {"fr": (np.full(4, 2, dtype=np.float32), 2)})
    back = db.language_means("m")
    assert sorted(back) == ["en", "fr"] and back["fr"][1] == 2
    np.testing.assert_array_equal(back["en"][0], means["en"][0])
    assert db.language_means("other") == {}


def test_stories_members_and_loading(db):
    rng = np.random.default_rng(1)
    arts = [_article(i, lang="en") for i in range(3)]
    zs = [_unit(rng) for _ in arts]
    with db.transaction():
        run = db.begin_run(T0, "m")
        db.add_articles([(a, T0 + timedelta(hours=i), a.hash) for i, a in enumerate(arts)], run)
        total = zs[0] + zs[1]
        db.save_story(StoredStory("s_a", "open", False, 2, total, T0, T0 + timedelta(hours=1), run, run))
        db.add_members("s_a", {arts[0].hash: zs[0], arts[1].hash: zs[1]}, run)
        db.save_story(StoredStory("s_b", "open", True, 1, zs[2], T0, T0 + timedelta(hours=2), run, run))
        db.add_members("s_b", {arts[2].hash: zs[2]}, run)
    assert [p.article.id for p in db.pending_articles()] == []
    with pytest.raises(sqlite3.IntegrityError):  # an article belongs to one story only
        with db.transaction():
            db.add_members("s_b", {arts[0].hash: zs[0]}, run)

    # merge s_b into s_a: move members, mark s_b merged (upsert keeps created_run)
    with db.transaction():
        run2 = db.begin_run(T0 + timedelta(days=1), "m")
        assert db.move_members("s_b", "s_a") == 1
        db.save_story(StoredStory("s_a", "open", False, 3, total + zs[2], T0, T0 + timedelta(hours=2), 999, run2))
        db.save_story(StoredStory("s_b", "merged", True, 0, zs[2], T0, T0 + timedelta(hours=2), run, run2,
                                  closed_run=run2, merged_into="s_a"))
    a_story, = db.stories(status="open")
    assert a_story.story_id == "s_a" and a_story.created_run == run and a_story.updated_run == run2
    assert db.stories(ids=["s_b"])[0].merged_into == "s_a"
    assert db.stories(ids=[]) == []
    assert db.memberships() == {a.hash: "s_a" for a in arts}
    assert db.member_runs("s_a") == {a.hash: run for a in arts}

    story = db.load_story(a_story, status="updated", added=["a2"])
    assert [m.article.id for m in story.members] == ["a0", "a1", "a2"]  # by date
    centroid = (total + zs[2]) / np.linalg.norm(total + zs[2])
    for m, z in zip(story.members, zs):
        assert m.similarity == pytest.approx(float(z @ centroid), abs=1e-5)
    assert story.status == "updated" and story.added == ("a2",) and story.meta["state"] == "open"


def test_lock_no_wait_raises_while_held(tmp_path):
    path = tmp_path / "state.db"
    first, second = open_store(path), open_store(path)
    with first.lock():
        with pytest.raises(StateLocked):
            with second.lock(wait=False):
                pass
    with second.lock(wait=False):  # free again
        pass
    first.close()
    second.close()


def test_lock_is_reentrant_within_one_store(tmp_path):
    path = tmp_path / "state.db"
    first, second = open_store(path), open_store(path)
    with first.lock(wait=False):
        with first.lock(wait=False):  # the same store may nest lock blocks
            pass
        with pytest.raises(StateLocked):  # still held after the inner block
            with second.lock(wait=False):
                pass
    first.close()
    second.close()


def test_lock_wait_blocks_until_released(tmp_path):
    path = tmp_path / "state.db"
    first, second = open_store(path), open_store(path)
    events: list[str] = []
    first_lock = first.lock()
    first_lock.__enter__()

    def holder() -> None:
        time.sleep(0.4)
        events.append("release")
        first_lock.__exit__(None, None, None)

    t = threading.Thread(target=holder)
    t.start()
    with second.lock(wait=True):
        events.append("acquired")
    t.join()
    assert events == ["release", "acquired"]
    first.close()
    second.close()


def test_lock_is_released_when_holder_is_killed(tmp_path):
    path = tmp_path / "state.db"
    open_store(path).close()
    code = (
        "import sys, time, fcntl, os\n"
        f"fd = os.open({str(path) + '.lock'!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with open_store(path) as s:
            with pytest.raises(StateLocked):
                with s.lock(wait=False):
                    pass
            proc.kill()
            proc.wait()
            with s.lock(wait=False):
                pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_file_stamps_detect_changes(db):
    a, b = FileStamp("/in/a.txt", 10, 1_000), FileStamp("/in/b.txt", 20, 2_000)
    with db.transaction():
        run = db.begin_run(T0, "m")
        db.record_files([a, b], run)
    assert db.unchanged_files([a, b]) == {a.path, b.path}
    touched = FileStamp(a.path, 10, 1_001)
    grown = FileStamp(b.path, 21, 2_000)
    new = FileStamp("/in/c.txt", 1, 1)
    assert db.unchanged_files([touched, grown, new]) == set()
    with db.transaction():
        db.record_files([touched], run)
    assert db.unchanged_files([touched]) == {a.path}
    assert db.unchanged_files([a]) == set()


def test_runs_are_recorded(db):
    with db.transaction():
        run = db.begin_run(T0, "m")
    with db.transaction():
        db.finish_run(run, {"ingested": 5, "embedded": 4})
        later = db.begin_run(T0, None)
        db.finish_run(later, {}, model_id="m2")
    info, second = db.runs()
    assert second.model_id == "m2"
    assert info.run_id == run and info.now == T0 and info.model_id == "m"
    assert info.finished_at is not None and info.counts["ingested"] == 5 and info.counts["skipped"] == 0
