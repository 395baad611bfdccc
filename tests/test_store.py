"""The SQLite state store: refusing foreign files, schema under the lock, transactions, the run lock, round trips."""
from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone

import numpy as np
import pytest

from storyclust.store import (
    APPLICATION_ID,
    STATE_SCHEMA_VERSION,
    FileStamp,
    SQLiteStore,
    StateError,
    StateLocked,
    StoredStory,
    combine_events,
    open_store,
)
from storyclust.incremental import story_from_state
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
    with s.lock():
        yield s
    s.close()


def _digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def test_schema_is_created_under_the_lock_with_our_application_id(tmp_path):
    path = tmp_path / "state.db"
    store = open_store(path)
    assert store.is_new and not path.exists() or path.stat().st_size == 0  # opening writes nothing
    with store.lock():
        assert store.schema_version == STATE_SCHEMA_VERSION and not store.is_new
    store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"articles", "vectors", "stories", "members", "outbox", "runs", "files", "settings"} <= tables
    raw.close()
    with open_store(path) as s, s.lock():  # reopening does not create again
        assert s.schema_version == STATE_SCHEMA_VERSION


def test_a_foreign_sqlite_file_is_refused_without_a_byte_changed(tmp_path):
    path = tmp_path / "app.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    raw.execute("INSERT INTO customers (name) VALUES ('someone')")
    raw.commit()
    raw.close()
    before = _digest(path)
    with pytest.raises(StateError, match="not a storyclust state"):
        open_store(path)
    assert _digest(path) == before and not os.path.exists(str(path) + "-wal")


def test_a_state_of_storyclust_0_1_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "old.db"
    raw = sqlite3.connect(path)
    for table in ("settings", "articles", "embeddings", "stories", "members", "runs"):
        raw.execute(f"CREATE TABLE {table} (x)")
    raw.execute("PRAGMA user_version = 1")
    raw.commit()
    raw.close()
    before = _digest(path)
    with pytest.raises(StateError, match="start a new state file"):
        open_store(path)
    assert _digest(path) == before


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "state.db"
    with open_store(path) as s, s.lock():
        pass
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


def test_reading_a_state_that_does_not_exist_yet_finds_nothing(tmp_path):
    with open_store(tmp_path / "state.db") as s:
        assert s.stories() == [] and s.unreported() == [] and s.get_setting("model_id") is None
        with pytest.raises(StateError):
            with s.transaction():
                s.set_setting("x", "y")


def test_a_symlink_to_the_state_shares_its_lock(tmp_path):
    path = tmp_path / "state.db"
    link = tmp_path / "link.db"
    link.symlink_to(path)
    first, second = open_store(path), open_store(link)
    with first.lock():
        with pytest.raises(StateLocked):
            with second.lock(wait=False):
                pass
    first.close()
    second.close()
    assert not (tmp_path / "link.db.lock").exists()


def test_writes_need_a_transaction_and_roll_back_on_error(db):
    with pytest.raises(StateError, match="outside a transaction"):
        db.set_setting("k", "v")
    with pytest.raises(RuntimeError):
        with db.transaction():
            db.set_setting("k", "v")
            raise RuntimeError("boom")
    assert db.get_setting("k") is None


def test_articles_are_keyed_by_id_and_pending_until_placed(db):
    a, b = _article(1), _article(2)
    same_text = Article(id="other", text=a.text)
    with db.transaction():
        run = db.begin_run(T0)
        assert db.add_articles([(a, "k1"), (b, "k2"), (same_text, "k1")], run) == 3
        assert db.add_articles([(a, "k1")], run) == 0  # the same id again
    assert db.known_ids(["a1", "other", "zz"]) == {"a1", "other"}
    assert [x.id for x, _ in db.pending_articles()] == ["a1", "a2", "other"]
    z = np.ones(4, dtype=np.float32) / 2
    with db.transaction():
        db.save_story(StoredStory("s_1", "open", 1, None, None, T0, run, run))
        db.put_members([("a1", "s_1", z, 1.0, "cluster")], run)
    assert [x.id for x, _ in db.pending_articles()] == ["a2", "other"]
    assert db.first_copies_by_hash([a.hash]) == {a.hash: ("a1", "s_1")}
    info = db.member_info("a1")
    assert info.story_id == "s_1" and info.joined_by == "cluster" and np.allclose(info.vector, z)
    assert db.member_info("a2") is None


def test_an_article_read_back_is_the_article_stored_every_field_of_it(db):
    """The store builds articles it reads without checking them again (Article.from_valid): every field
    comes back in its place, strings that were repaired on the way in stay repaired, and the article is
    equal to one built and checked afresh."""
    full = Article(id="é1", text="Séisme de magnitude 6,4 \ud800 à Sichuan", title="四川 \udcff", url="https://x.test/a",
                   path="/wires/a.html", lang="fr", lang_confidence=0.93, published=T0,
                   retrieved=datetime(2026, 11, 2, tzinfo=timezone.utc), source="Reuters", author="Ana", duplicate_of=None)
    bare = Article(id="b2", text="plain")
    with db.transaction():
        run = db.begin_run(T0)
        db.add_articles([(full, "k1"), (bare, "k2")], run)
    back = {a.id: a for a, _ in db.pending_articles()}
    assert back == {"é1": full, "b2": bare}
    assert "\ufffd" in back["é1"].text and back["é1"].hash == full.hash
    assert Article.from_valid(*(getattr(full, f) for f in Article.__dataclass_fields__)) == full
    with pytest.raises(ValueError):
        Article.from_valid("x", "text", *[None] * 10, "")


def test_vectors_per_space(db):
    rng = np.random.default_rng(0)
    v1, v2 = _unit(rng), _unit(rng)
    with db.transaction():
        db.put_vectors("m1", {"k1": v1, "k2": v2})
        db.put_vectors("m2", {"k1": v2})
    assert db.missing_vectors("m1", ["k1", "k3", "k1"]) == ["k3"]
    assert np.allclose(db.get_vectors("m1", ["k2", "k1"]), np.stack([v2, v1]))
    assert np.allclose(db.get_vectors("m2", ["k1"]), v2[None])
    with pytest.raises(KeyError):
        db.get_vectors("m2", ["k2"])


def test_stories_members_and_loading(db):
    rng = np.random.default_rng(1)
    arts = [_article(i, published=T0.replace(day=1 + i)) for i in range(3)]
    zs = [_unit(rng) for _ in arts]
    with db.transaction():
        run = db.begin_run(T0)
        db.add_articles([(a, f"k{a.id}") for a in arts], run)
        db.save_story(StoredStory("s_1", "open", 3, arts[0].published, arts[2].published, T0, run, run,
                                  labels=("volcano", "Flores")))
        db.put_members([(a.id, "s_1", z, 0.5 + i / 10, "cluster" if i else "duplicate")
                        for i, (a, z) in enumerate(zip(arts, zs))], run)
    (stored,) = db.stories(status="open")
    assert stored.labels == ("volcano", "Flores") and stored.size == 3
    story = story_from_state(db, stored, status="updated", added=["a2"])
    assert [m.article.id for m in story.members] == ["a0", "a1", "a2"]  # by date
    assert [m.similarity for m in story.members] == pytest.approx([0.5, 0.6, 0.7])
    assert story.members[0].joined_by == "duplicate" and story.labels == ("volcano", "Flores")
    assert story.status == "updated" and story.added == ("a2",) and story.meta["state"] == "open"
    assert db.memberships() == {"a0": "s_1", "a1": "s_1", "a2": "s_1"}


def test_the_outbox_keeps_changes_until_they_are_cleared(db):
    assert combine_events("new", "updated") == "new" and combine_events("new", "closed") == "closed"
    assert combine_events("updated", "closed") == "closed" and combine_events("closed", "updated") == "updated"
    with db.transaction():
        run1 = db.begin_run(T0)
        for sid in ("s_1", "s_2"):
            db.save_story(StoredStory(sid, "open", 1, None, None, T0, run1, run1))
        db.add_changes([("s_1", "new", ["a"]), ("s_2", "new", ["b"])], run1)
        run2 = db.begin_run(T0)
        db.add_changes([("s_1", "updated", ["c"])], run2)  # not yet reported: folded into the first change
    changes = {c.story_id: c for c in db.unreported()}
    assert changes["s_1"].event == "new" and changes["s_1"].added == ("a", "c") and changes["s_1"].run_id == run2
    with db.transaction():
        db.clear_reported([changes["s_2"]])
    assert [c.story_id for c in db.unreported()] == ["s_1"]


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
    with open_store(path) as s, s.lock():
        pass
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
    assert info.finished_at is not None and info.counts == {"ingested": 5, "embedded": 4}
