"""The state store: what nightly runs remember between one night and the next.

A run with ``--state PATH`` keeps, in one SQLite file:

``articles``
    every article ever taken in, keyed by its id (an id seen again is "already seen"),
    with its metadata, its content hash, its first copy (``duplicate_of``) and the key of
    its vector;
``vectors``
    float32 article vectors keyed by ``(space, text_key)``: ``space`` names the model and
    the embedding views (:func:`storyclust.pipeline.vector_space`), ``text_key`` the exact
    texts embedded (:func:`storyclust.pipeline.text_key`), so a text is embedded once;
``stories`` and ``members``
    stories (``open``, ``closed``, ``merged``) and, for each article in a story, its
    language-neutral vector, its similarity to the story's centroid and the step that put
    it there (``joined_by``);
``outbox``
    story changes committed to the state but not yet published: a run clears them only
    after its output was written, so a change always reaches a consumer (see
    :func:`storyclust.incremental.publish`);
``files``
    size and mtime of every input file already read (files with a transient rejection
    are not recorded, so they are read again next run);
``runs`` and ``settings``
    one row per run, and the embedding model of the state;
``corrections``
    an editor's links and unlinks (:mod:`storyclust.corrections`), honoured by every night;
``forgotten`` and ``forgotten_stories``
    what retention (:mod:`storyclust.retention`) leaves of a pruned article (its id, the first
    16 bytes of its content hash and its story: :func:`tombstone_key`) and of a pruned story (its
    ID, size and last activity): the id stays "already seen", an exact reprint is recognised,
    and a story ID is never reused.

A night reads only tonight's articles and the open stories' recent members: every lookup it
makes goes through an index (articles by id, hash and text key; members by story and arrival;
stories by status), so its cost does not grow with the articles and stories of past nights.

Every write happens inside :meth:`SQLiteStore.transaction` (``BEGIN IMMEDIATE`` in WAL
mode). :meth:`SQLiteStore.lock` serialises whole runs with an advisory lock on
``<resolved path>.lock`` (released by the kernel when the process dies); the schema is
created or migrated only while that lock is held.

A file is a storyclust state when its SQLite ``application_id`` is :data:`APPLICATION_ID`;
anything else (another application's database, a state of schema 1 from before storyclust
0.2, a file that is not SQLite) is refused before a byte of it is changed.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np

from .types import Article

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .corrections import Correction

logger = logging.getLogger(__name__)

#: ``PRAGMA application_id`` of a storyclust state ("SCST").
APPLICATION_ID = 0x53435354

#: Story status values kept in the store.
STORY_STATES = ("open", "closed", "merged")


class StateError(Exception):
    """The state file cannot be used (not a state, newer schema, another model...)."""


class StateLocked(StateError):
    """Another run holds the lock on this state file."""


@dataclass(frozen=True, slots=True)
class StoredStory:
    """A story's bookkeeping row."""

    story_id: str
    status: str  # one of STORY_STATES
    size: int
    first_published: Optional[datetime]
    last_published: Optional[datetime]
    last_activity: datetime  # the run time (``now``) at which it last gained an article
    created_run: int
    updated_run: int
    closed_run: Optional[int] = None
    merged_into: Optional[str] = None
    split_from: Optional[str] = None
    labels: tuple[str, ...] = ()
    forgotten: int = 0  # older members retention forgot while the story stayed open


@dataclass(frozen=True, slots=True)
class StoredMember:
    """An article in a story, as stored."""

    article: Article
    story_id: str
    vector: np.ndarray  # language-neutral unit vector at its last clustering
    similarity: float  # cosine to the story's centroid then
    joined_by: Optional[str]
    text_key: str
    seq: int = 0  # arrival order of the article in the state


#: What ``storyclust explain`` reads for one article (an alias: the same record).
MemberInfo = StoredMember


@dataclass(frozen=True, slots=True)
class FileStamp:
    """An input file as last seen: absolute path, size and modification time."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One row of the ``runs`` table."""

    run_id: int
    started_at: datetime
    now: datetime
    model_id: Optional[str]
    finished_at: Optional[datetime]
    counts: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class Change:
    """An unreported story change (a row of the outbox)."""

    story_id: str
    event: str  # new / updated / closed
    added: tuple[str, ...]
    run_id: int


# --------------------------------------------------------------------------- helpers


def _blob(v: np.ndarray) -> bytes:
    return np.ascontiguousarray(v, dtype=np.float32).tobytes()


def _vec(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype=np.float32).copy()


def format_time(dt: datetime) -> str:
    """UTC, fixed width, so that ISO strings compare like the instants they name."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _opt_time(value: Optional[str]) -> Optional[datetime]:
    return datetime.fromisoformat(value) if value else None


def _opt_iso(dt: Optional[datetime]) -> Optional[str]:
    """Article dates keep their original offset (they are shown, not compared)."""
    return dt.isoformat() if dt else None


def _chunks(items: Sequence, size: int = 500) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def combine_events(old: str, new: str) -> str:
    """The event to report for a story changed twice before it was reported."""
    return "new" if old == "new" and new == "updated" else new


# --------------------------------------------------------------------------- schema


_V2_SCHEMA = """
        CREATE TABLE settings (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE runs (
            run_id       INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at   TEXT NOT NULL,
            now          TEXT NOT NULL,
            model_id     TEXT,
            finished_at  TEXT,
            counts       TEXT NOT NULL DEFAULT '{}'
        );
        CREATE TABLE articles (
            seq             INTEGER PRIMARY KEY AUTOINCREMENT,
            id              TEXT NOT NULL UNIQUE,
            hash            TEXT NOT NULL,
            text            TEXT NOT NULL,
            title           TEXT,
            url             TEXT,
            path            TEXT,
            lang            TEXT,
            lang_confidence REAL,
            published       TEXT,
            retrieved       TEXT,
            source          TEXT,
            author          TEXT,
            duplicate_of    TEXT,
            text_key        TEXT NOT NULL,
            run_id          INTEGER NOT NULL REFERENCES runs(run_id)
        );
        CREATE INDEX articles_hash ON articles(hash);
        CREATE TABLE vectors (
            space    TEXT NOT NULL,
            text_key TEXT NOT NULL,
            vector   BLOB NOT NULL,
            PRIMARY KEY (space, text_key)
        ) WITHOUT ROWID;
        CREATE TABLE stories (
            story_id        TEXT PRIMARY KEY,
            status          TEXT NOT NULL CHECK (status IN ('open', 'closed', 'merged')),
            size            INTEGER NOT NULL,
            first_published TEXT,
            last_published  TEXT,
            last_activity   TEXT NOT NULL,
            created_run     INTEGER NOT NULL REFERENCES runs(run_id),
            updated_run     INTEGER NOT NULL REFERENCES runs(run_id),
            closed_run      INTEGER REFERENCES runs(run_id),
            merged_into     TEXT,
            split_from      TEXT,
            labels          TEXT NOT NULL DEFAULT '[]'
        );
        CREATE INDEX stories_status ON stories(status, last_activity);
        CREATE TABLE members (
            article_id TEXT PRIMARY KEY REFERENCES articles(id),
            story_id   TEXT NOT NULL REFERENCES stories(story_id),
            vector     BLOB NOT NULL,
            similarity REAL NOT NULL,
            joined_by  TEXT,
            run_id     INTEGER NOT NULL REFERENCES runs(run_id)
        );
        CREATE INDEX members_story ON members(story_id);
        CREATE TABLE outbox (
            story_id TEXT PRIMARY KEY REFERENCES stories(story_id),
            event    TEXT NOT NULL,
            added    TEXT NOT NULL,
            run_id   INTEGER NOT NULL REFERENCES runs(run_id)
        );
        CREATE TABLE files (
            path     TEXT PRIMARY KEY,
            size     INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            run_id   INTEGER NOT NULL REFERENCES runs(run_id)
        );
"""


def _create_v2(db: sqlite3.Connection) -> None:
    """The schema of storyclust 0.2: articles by id, vectors by space, stories, members, outbox."""
    # One statement at a time: executescript() would COMMIT the migration's transaction.
    for statement in _V2_SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


def _migrate_2_to_3(db: sqlite3.Connection) -> None:
    """Schema 3: members know their arrival order (a story's recent members by index), texts are found
    by key (retention), and pruned articles and stories leave a tombstone."""
    statements = [
        "ALTER TABLE members ADD COLUMN seq INTEGER",
        "UPDATE members SET seq = (SELECT a.seq FROM articles a WHERE a.id = members.article_id)",
        "DROP INDEX members_story",
        "CREATE INDEX members_story_seq ON members(story_id, seq)",
        "CREATE INDEX articles_text_key ON articles(text_key)",
        "ALTER TABLE stories ADD COLUMN forgotten INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE articles ADD COLUMN minhash BLOB",
        "CREATE TABLE forgotten (id TEXT PRIMARY KEY, hash TEXT NOT NULL, story_id TEXT NOT NULL,"
        " run_id INTEGER NOT NULL)",
        "CREATE INDEX forgotten_hash ON forgotten(hash)",
        "CREATE TABLE forgotten_stories (story_id TEXT PRIMARY KEY, size INTEGER NOT NULL,"
        " last_activity TEXT NOT NULL, run_id INTEGER NOT NULL)",
        "CREATE TABLE corrections (correction_id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " kind TEXT NOT NULL CHECK (kind IN ('link', 'unlink')), ids TEXT NOT NULL, note TEXT,"
        " created_at TEXT NOT NULL, applied_run INTEGER, removed_at TEXT)",
    ]
    for statement in statements:
        db.execute(statement)


def _migrate_3_to_4(db: sqlite3.Connection) -> None:
    """Schema 4: an article keeps the terms it brings to its story's labels (computed once)."""
    db.execute("ALTER TABLE articles ADD COLUMN terms BLOB")


def _migrate_4_to_5(db: sqlite3.Connection) -> None:
    """Schema 5: a story keeps its label terms summed over its members (a night adds only its own)."""
    db.execute("CREATE TABLE story_terms (story_id TEXT PRIMARY KEY, terms BLOB NOT NULL)")


def _migrate_5_to_6(db: sqlite3.Connection) -> None:
    """Schema 6: an article keeps the numbers of its text (the clusterer's number evidence), found once when
    it is stored; an article stored before has none (NULL) and its numbers are found from its text."""
    db.execute("ALTER TABLE articles ADD COLUMN numbers TEXT")


def _migrate_6_to_7(db: sqlite3.Connection) -> None:
    """Schema 7: the files a run read are found by that run (prune looks only at the files of the runs that
    aged past its cutoff since it last looked, not at every file ever read)."""
    db.execute("CREATE INDEX files_run ON files(run_id)")


def tombstone_key(content_hash: str) -> bytes:
    """What a tombstone keeps of an article's content hash (:func:`storyclust.types.content_hash`, a
    SHA-256 hex digest): its first 16 bytes, raw. Two different texts share them with odds of
    2^-128 per pair, and an exact reprint of a pruned article is still recognised. A hash that is
    not such a digest (an :class:`Article` built by hand) is hashed first, so any string has a key."""
    try:
        raw = bytes.fromhex(content_hash)
    except ValueError:
        raw = b""
    if len(raw) < 16:
        raw = hashlib.sha256(content_hash.encode("utf-8", "surrogatepass")).digest()
    return raw[:16]


def _migrate_7_to_8(db: sqlite3.Connection) -> None:
    """Schema 8: compact tombstones. A pruned article's row in ``forgotten`` keeps 16 raw bytes of its
    content hash (:func:`tombstone_key`) in place of 64 hex digits, in a table keyed by id without a
    rowid (its id is stored once, not again in an index): ~115 bytes on disk per tombstone against ~230,
    the one thing of a pruned article that stays for good (a year at 10,000 articles a night leaves
    3.65 million)."""
    db.create_function("tombstone_key", 1, tombstone_key, deterministic=True)
    db.execute("DROP INDEX forgotten_hash")
    db.execute("ALTER TABLE forgotten RENAME TO forgotten_7")
    db.execute("CREATE TABLE forgotten (id TEXT PRIMARY KEY, hash BLOB NOT NULL, story_id TEXT NOT NULL,"
               " run_id INTEGER NOT NULL) WITHOUT ROWID")
    db.execute("INSERT INTO forgotten (id, hash, story_id, run_id)"
               " SELECT id, tombstone_key(hash), story_id, run_id FROM forgotten_7")
    db.execute("DROP TABLE forgotten_7")
    db.execute("CREATE INDEX forgotten_hash ON forgotten(hash)")


#: Schema version this code writes (``PRAGMA user_version``). Version 1 (storyclust 0.1) kept
#: articles by content hash and single-view vectors; it is refused, not migrated (see README).
STATE_SCHEMA_VERSION = 8

#: Page size of a new state file, and of an older one once :meth:`SQLiteStore.compact` vacuums it. A state's
#: rows are large (an article's text and signatures, a 384-float vector of 1.5 KB): with SQLite's default 4 KiB
#: pages a page holds one or two of them and ~42% of the file was unused space inside pages; 16 KiB pages
#: make the same state 0.73x the size, the nights no slower (64 KiB: 0.72x, slower; bench/README.md).
PAGE_SIZE = 16384

#: Ordered migrations from version N to N + 1, for N >= 2; a new file is created at version 2 by
#: :func:`_create_v2` and migrated in the same transaction.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {2: _migrate_2_to_3, 3: _migrate_3_to_4,
                                                               4: _migrate_4_to_5, 5: _migrate_5_to_6,
                                                               6: _migrate_6_to_7, 7: _migrate_7_to_8}

_OUR_TABLES = {"settings", "runs", "articles", "vectors", "stories", "members", "outbox", "files", "forgotten",
               "forgotten_stories", "corrections", "story_terms"}


def inspect_file(path: str) -> tuple[int, int, set[str]]:
    """``(application_id, user_version, table names)`` of an SQLite file, read without changing it.

    Raises StateError when the file is not SQLite (or cannot be read).
    """
    try:
        uri = "file:" + _uri_path(path) + "?mode=ro"
        db = sqlite3.connect(uri, uri=True, timeout=10)
        try:
            app = int(db.execute("PRAGMA application_id").fetchone()[0])
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        raise StateError(f"cannot open state file {path}: {exc}") from exc
    return app, version, tables


def _uri_path(path: str) -> str:
    from urllib.parse import quote

    return quote(os.path.abspath(path))


def _check_file(path: str) -> bool:
    """True when ``path`` is an existing storyclust state we can use; False when it must be created.

    Raises StateError for anything else, without writing to the file.
    """
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return False
    app, version, tables = inspect_file(path)
    if app != APPLICATION_ID:
        if app == 0 and version == 1 and {"articles", "stories", "members", "embeddings"} <= tables:
            raise StateError(
                f"{path} is a state file of storyclust 0.1 (schema 1), whose nightly recipe differed from "
                "one-shot runs; it cannot be carried over exactly: start a new state file (keep the old one "
                "for reference)"
            )
        if app == 0 and version == 0 and not tables:
            return False  # an empty SQLite file: ours to create
        raise StateError(f"{path} is not a storyclust state file (SQLite application_id {app:#x}); refusing to touch it")
    if version > STATE_SCHEMA_VERSION:
        raise StateError(
            f"state file {path} has schema version {version}; this storyclust understands up to "
            f"{STATE_SCHEMA_VERSION} (upgrade storyclust)"
        )
    if version == STATE_SCHEMA_VERSION and not _OUR_TABLES <= tables:
        raise StateError(f"state file {path} is damaged: tables {sorted(_OUR_TABLES - tables)} are missing")
    return True


# --------------------------------------------------------------------------- SQLite


class SQLiteStore:
    """The state store: one SQLite file in WAL mode.

    Opening checks the file without writing to it; the schema is created or migrated by
    :meth:`lock` (runs hold it) or :meth:`ensure_schema`. Reading commands (``storyclust
    stories``, ``report``, ``explain``) need no lock and never write.

    >>> with SQLiteStore("state.db") as store, store.lock():   # doctest: +SKIP
    ...     with store.transaction():
    ...         run_id = store.begin_run(now)
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 60.0) -> None:
        self.path = os.fspath(path)
        self.real_path = os.path.realpath(self.path)
        self._depth = 0
        self._lock_fd: Optional[int] = None
        directory = os.path.dirname(self.real_path)
        if not os.path.isdir(directory):
            raise StateError(f"directory of state file does not exist: {directory}")
        if os.path.isdir(self.real_path):
            raise StateError(f"state path {self.path} is a directory")
        self._exists = _check_file(self.real_path)
        try:
            # isolation_level=None: no implicit transactions; we issue BEGIN IMMEDIATE ourselves.
            self._db = sqlite3.connect(self.real_path, timeout=busy_timeout, isolation_level=None)
            self._db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot open state file {self.path}: {exc}") from exc

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        """Close the database (and release the run lock if held)."""
        self._release_lock()
        self._db.close()

    def __enter__(self) -> "SQLiteStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @property
    def is_new(self) -> bool:
        """True until the schema has been created in this file."""
        return not self._exists

    def ensure_schema(self) -> None:
        """Create the schema in a new file, or migrate an older one (callers hold the run lock)."""
        try:
            self._exists = _check_file(self.real_path)  # again: another run may have created it meanwhile
            if not self._exists:
                self._db.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # before WAL: it is fixed from then on
                self._db.execute("PRAGMA journal_mode=WAL")
                self._exists = True
                try:
                    with self.transaction():
                        _create_v2(self._db)
                        for number in range(2, STATE_SCHEMA_VERSION):
                            MIGRATIONS[number](self._db)
                        self._db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                        self._db.execute(f"PRAGMA user_version = {STATE_SCHEMA_VERSION}")
                except BaseException:
                    self._exists = False
                    raise
                logger.info("state %s: created (schema %d)", self.path, STATE_SCHEMA_VERSION)
                return
            for number in range(self.schema_version, STATE_SCHEMA_VERSION):
                with self.transaction():
                    MIGRATIONS[number](self._db)
                    self._db.execute(f"PRAGMA user_version = {number + 1}")
                logger.info("state %s: migrated schema to version %d", self.path, number + 1)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot use state file {self.path}: {exc}") from exc

    def _require_schema(self) -> None:
        if not self._exists:
            raise StateError(f"no state in {self.path} yet (a run with --state creates it, under the run lock)")

    # -- concurrency -------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, wait: bool = True) -> Iterator[None]:
        """Hold the run lock for the block (creating or migrating the schema first).

        The lock file is ``<resolved path>.lock``, so two names of one state (a symlink) share
        one lock. Raises :class:`StateLocked` if busy and not ``wait``. Re-entrant within a store.
        """
        if self._lock_fd is not None:
            yield
            return
        fd = os.open(self.real_path + ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            if wait:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    logger.info("state %s is locked by another run; waiting", self.path)
                    fcntl.flock(fd, fcntl.LOCK_EX)
            else:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise StateLocked(f"state file {self.path} is locked by another run") from exc
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        try:
            self.ensure_schema()
            yield
        finally:
            self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fd, self._lock_fd = self._lock_fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error); nested blocks join the outer one."""
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._require_schema()
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._depth = 0

    def _write(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Cursor:
        if not self._depth:
            raise StateError("write outside a transaction")
        return self._db.execute(sql, params)

    def _write_many(self, sql: str, rows: Iterable[Sequence[object]]) -> None:
        if not self._depth:
            raise StateError("write outside a transaction")
        self._db.executemany(sql, rows)

    def _read_in(self, sql: str, keys: Iterable[object]) -> Iterator[tuple]:
        """Rows of ``sql`` for ``keys`` (repeats dropped), 500 at a time: each ``{marks}`` in ``sql`` becomes
        ``?, ?, ...`` for the chunk, and the chunk is bound once per ``{marks}``."""
        uses = sql.count("{marks}")
        for chunk in _chunks(list(dict.fromkeys(keys))):
            yield from self._read(sql.format(marks=",".join("?" * len(chunk))), list(chunk) * uses)

    def _read(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        if not self._exists:
            return []
        return self._db.execute(sql, params).fetchall()

    # -- runs and settings -------------------------------------------------

    def begin_run(self, now: datetime, model_id: Optional[str] = None) -> int:
        """Record the start of a run; returns its id."""
        cur = self._write(
            "INSERT INTO runs (started_at, now, model_id) VALUES (?, ?, ?)",
            (format_time(datetime.now(timezone.utc)), format_time(now), model_id),
        )
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, counts: Mapping[str, int], model_id: Optional[str] = None) -> None:
        """Record the end of a run with its counts and, once known, its embedding model."""
        self._write(
            "UPDATE runs SET finished_at = ?, model_id = coalesce(?, model_id), counts = ? WHERE run_id = ?",
            (format_time(datetime.now(timezone.utc)), model_id, json.dumps(dict(counts), sort_keys=True), run_id),
        )

    def runs(self) -> list[RunInfo]:
        """All runs, oldest first."""
        return [
            RunInfo(r[0], datetime.fromisoformat(r[1]), datetime.fromisoformat(r[2]), r[3], _opt_time(r[4]),
                    json.loads(r[5]))
            for r in self._read("SELECT run_id, started_at, now, model_id, finished_at, counts FROM runs"
                                " ORDER BY run_id")
        ]

    def get_setting(self, key: str) -> Optional[str]:
        rows = self._read("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_setting(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    # -- input files -------------------------------------------------------

    def unchanged_files(self, stamps: Sequence[FileStamp]) -> set[str]:
        """Paths of ``stamps`` already read with the same size and mtime."""
        same: set[str] = set()
        for chunk in _chunks(list(stamps)):
            batch = {s.path: s for s in chunk}
            marks = ",".join("?" * len(batch))
            for path, size, mtime_ns in self._read(
                f"SELECT path, size, mtime_ns FROM files WHERE path IN ({marks})", list(batch)
            ):
                if batch[path].size == size and batch[path].mtime_ns == mtime_ns:
                    same.add(path)
        return same

    def files_read_before(self, cutoff: datetime, since: Optional[datetime] = None) -> list[str]:
        """Paths of the input files last read by a run before ``cutoff`` (and at or after ``since``)."""
        return [r[0] for r in self._read(
            "SELECT path FROM files WHERE run_id IN (SELECT run_id FROM runs WHERE now < ? AND now >= ?)",
            (format_time(cutoff), format_time(since) if since else ""))]

    def forget_files(self, paths: Sequence[str]) -> None:
        for chunk in _chunks(list(paths)):
            self._write(f"DELETE FROM files WHERE path IN ({','.join('?' * len(chunk))})", chunk)

    def record_files(self, stamps: Sequence[FileStamp], run_id: int) -> None:
        """Remember that these files (at this size and mtime) have been read."""
        self._write_many(
            "INSERT OR REPLACE INTO files (path, size, mtime_ns, run_id) VALUES (?, ?, ?, ?)",
            ((s.path, s.size, s.mtime_ns, run_id) for s in stamps),
        )

    # -- articles ----------------------------------------------------------

    def known_ids(self, ids: Iterable[str]) -> set[str]:
        """The subset of ``ids`` already stored, or stored once and pruned since (:meth:`forget`)."""
        return {r[0] for r in self._read_in(
            "SELECT id FROM articles WHERE id IN ({marks}) UNION SELECT id FROM forgotten WHERE id IN ({marks})", ids)}

    def stored_ids(self, ids: Iterable[str]) -> set[str]:
        """The subset of ``ids`` whose articles are stored (not pruned)."""
        return {r[0] for r in self._read_in("SELECT id FROM articles WHERE id IN ({marks})", ids)}

    def signatures(self, ids: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored MinHash signatures (uint32) of these articles, where one was kept."""
        return {aid: np.frombuffer(blob, dtype=np.uint32).copy() for aid, blob in self._read_in(
            "SELECT id, minhash FROM articles WHERE id IN ({marks}) AND minhash IS NOT NULL", ids)}

    def set_signatures(self, signatures: Mapping[str, Optional[np.ndarray]]) -> None:
        """Keep articles' MinHash signatures, so that near copies are found without shingling them again."""
        self._write_many("UPDATE articles SET minhash = ? WHERE id = ?",
                         ((np.ascontiguousarray(sig, dtype=np.uint32).tobytes(), aid)
                          for aid, sig in signatures.items() if sig is not None))

    def label_terms(self, ids: Iterable[str]) -> dict[str, bytes]:
        """The stored label terms (:func:`storyclust.labels.pack_terms`) of these articles, where kept."""
        return dict(self._read_in("SELECT id, terms FROM articles WHERE id IN ({marks}) AND terms IS NOT NULL", ids))

    def set_label_terms(self, terms: Mapping[str, bytes]) -> None:
        """Keep articles' label terms, so that labels do not tokenise their texts again."""
        self._write_many("UPDATE articles SET terms = ? WHERE id = ?", ((blob, aid) for aid, blob in terms.items()))

    def story_terms(self, story_ids: Iterable[str]) -> dict[str, bytes]:
        """The stored label-term tables (:meth:`storyclust.labels.TermTable.pack`) of these stories, where kept."""
        return dict(self._read_in("SELECT story_id, terms FROM story_terms WHERE story_id IN ({marks})", story_ids))

    def set_story_terms(self, tables: Mapping[str, Optional[bytes]]) -> None:
        """Keep stories' label-term tables (None: drop it, to be summed again over the members when needed)."""
        self._write_many("INSERT OR REPLACE INTO story_terms (story_id, terms) VALUES (?, ?)",
                         ((sid, blob) for sid, blob in tables.items() if blob is not None))
        self._drop_story_terms([sid for sid, blob in tables.items() if blob is None])

    def _drop_story_terms(self, story_ids: Sequence[str]) -> None:
        for chunk in _chunks(list(story_ids)):
            self._write(f"DELETE FROM story_terms WHERE story_id IN ({','.join('?' * len(chunk))})", chunk)

    def add_articles(self, items: Sequence[tuple[Article, str]], run_id: int,
                     numbers: Mapping[str, Sequence[str]] = {}) -> int:
        """Store ``(article, text key)`` pairs (ids already stored are ignored); returns how many were new.

        ``numbers``: by article id, the numbers of its text (:func:`storyclust.evidence.number_tokens` of
        :func:`~storyclust.evidence.evidence_text`), kept so that no night tokenises the text again."""
        before = self._db.total_changes
        self._write_many(
            "INSERT OR IGNORE INTO articles (id, hash, text, title, url, path, lang, lang_confidence,"
            " published, retrieved, source, author, duplicate_of, text_key, run_id, numbers)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (a.id, a.hash, a.text, a.title, a.url, a.path, a.lang, a.lang_confidence,
                 _opt_iso(a.published), _opt_iso(a.retrieved), a.source, a.author, a.duplicate_of, key, run_id,
                 None if a.id not in numbers else " ".join(numbers[a.id]))
                for a, key in items
            ),
        )
        return self._db.total_changes - before

    def article_numbers(self, ids: Iterable[str]) -> dict[str, list[str]]:
        """The kept numbers (:meth:`add_articles`) of these articles, where kept (not for articles stored
        by a version before schema 6)."""
        return {aid: numbers.split() for aid, numbers in self._read_in(
            "SELECT id, numbers FROM articles WHERE id IN ({marks}) AND numbers IS NOT NULL", ids)}

    def set_article_numbers(self, numbers: Mapping[str, Sequence[str]]) -> None:
        """Keep the numbers found for articles stored without them (before schema 6)."""
        self._write_many("UPDATE articles SET numbers = ? WHERE id = ?",
                         ((" ".join(tokens), aid) for aid, tokens in numbers.items()))

    def set_duplicate_of(self, pairs: Mapping[str, Optional[str]]) -> None:
        """Record the first copy each article follows (``article id -> first copy id or None``)."""
        self._write_many("UPDATE articles SET duplicate_of = ? WHERE id = ?", ((d, i) for i, d in pairs.items()))

    _ARTICLE_COLUMNS = (
        "a.id, a.text, a.title, a.url, a.path, a.lang, a.lang_confidence, a.published,"
        " a.retrieved, a.source, a.author, a.duplicate_of, a.hash, a.text_key"
    )

    @staticmethod
    def _article(row: Sequence) -> tuple[Article, str]:
        article = Article.from_valid(  # stored articles were checked on the way in
            row[0], row[1], row[2], row[3], row[4], row[5], row[6], _opt_time(row[7]), _opt_time(row[8]), row[9],
            row[10], row[11], row[12])
        return article, row[13]

    def pending_articles(self) -> list[tuple[Article, str]]:
        """``(article, text key)`` of articles stored but in no story yet, in the order they came in.

        Only articles after the last finished run's are looked at (:meth:`mark_placed`): every
        article before them was placed, so the cost is tonight's, not the archive's."""
        after = int(self.get_setting("placed_seq") or 0)
        return [self._article(r) for r in self._read(
            f"SELECT {self._ARTICLE_COLUMNS} FROM articles a WHERE a.seq > ?"
            " AND NOT EXISTS (SELECT 1 FROM members m WHERE m.article_id = a.id) ORDER BY a.seq", (after,)
        )]

    def mark_placed(self) -> None:
        """Record that every article stored so far is in a story (a run's last write)."""
        last = self._read("SELECT max(seq) FROM articles")[0][0]
        self.set_setting("placed_seq", str(max(int(last or 0), int(self.get_setting("placed_seq") or 0))))

    def first_copies_by_hash(self, hashes: Iterable[str]) -> dict[str, tuple[str, str]]:
        """``{content hash: (id of its first copy, story id)}`` among articles already in a story."""
        out: dict[str, tuple[str, str]] = {}
        for chunk in _chunks(list(dict.fromkeys(hashes))):
            marks = ",".join("?" * len(chunk))
            for h, aid, dup, sid in self._read(  # a first copy retention forgot gives way to its copy
                "SELECT a.hash, a.id, d.article_id, m.story_id FROM articles a JOIN members m ON m.article_id = a.id"
                " LEFT JOIN members d ON d.article_id = a.duplicate_of"
                f" WHERE a.hash IN ({marks}) ORDER BY a.seq", chunk
            ):
                out.setdefault(h, (dup or aid, sid))
        return out

    def forgotten_by_hash(self, hashes: Iterable[str]) -> dict[str, str]:
        """``{content hash: story id}`` for hashes of pruned articles (the story they were in)."""
        asked: dict[bytes, str] = {}
        for h in hashes:
            asked.setdefault(tombstone_key(h), h)
        out: dict[str, str] = {}
        for key, sid in self._read_in("SELECT hash, story_id FROM forgotten WHERE hash IN ({marks})", asked):
            out.setdefault(asked[key], sid)
        return out

    def forget(self, articles: Iterable[tuple[str, str, str]], run_id: int) -> int:
        """Keep only a tombstone ``(id, content hash, story id)`` of these articles (the hash as its
        :func:`tombstone_key`): their rows, members
        and vectors (when no kept article shares the text) go, and their stories' label-term tables (summed
        again over the members left when the story next changes). Returns how many vectors went."""
        rows = list(articles)
        vectors = 0
        self._drop_story_terms(sorted({sid for _, _, sid in rows}))
        self._write_many("INSERT OR REPLACE INTO forgotten (id, hash, story_id, run_id) VALUES (?, ?, ?, ?)",
                         ((aid, tombstone_key(h), sid, run_id) for aid, h, sid in rows))
        spaces = self._spaces()
        for chunk in _chunks([aid for aid, _, _ in rows]):
            marks = ",".join("?" * len(chunk))
            keys = [r[0] for r in self._read(f"SELECT DISTINCT text_key FROM articles WHERE id IN ({marks})", chunk)]
            self._write(f"DELETE FROM members WHERE article_id IN ({marks})", chunk)
            self._write(f"DELETE FROM articles WHERE id IN ({marks})", chunk)
            for space in spaces:  # by the primary key (space, text_key): text_key alone would read every vector
                for keys_chunk in _chunks(keys):
                    kmarks = ",".join("?" * len(keys_chunk))
                    vectors += self._write(f"DELETE FROM vectors WHERE space = ? AND text_key IN ({kmarks}) AND NOT"
                                           " EXISTS (SELECT 1 FROM articles a WHERE a.text_key = vectors.text_key)",
                                           (space, *keys_chunk)).rowcount
        return vectors

    def _spaces(self) -> list[str]:
        """The vector spaces the state holds, each found by one search of the primary key (a skip scan)."""
        return [r[0] for r in self._read(
            "WITH RECURSIVE spaces(space) AS (SELECT min(space) FROM vectors UNION ALL"
            " SELECT (SELECT min(space) FROM vectors WHERE space > spaces.space) FROM spaces"
            " WHERE spaces.space IS NOT NULL) SELECT space FROM spaces WHERE space IS NOT NULL")]

    def forget_stories(self, story_ids: Sequence[str], run_id: int) -> None:
        """Drop these stories' rows (their members must be gone), keeping their IDs, sizes and last activity."""
        for chunk in _chunks(list(story_ids)):
            marks = ",".join("?" * len(chunk))
            self._write("INSERT OR REPLACE INTO forgotten_stories (story_id, size, last_activity, run_id)"
                        f" SELECT story_id, size, last_activity, ? FROM stories WHERE story_id IN ({marks})",
                        (run_id, *chunk))
            self._write(f"DELETE FROM stories WHERE story_id IN ({marks})", chunk)
        self._drop_story_terms(story_ids)

    def stories_quiet_since(self, cutoff: datetime) -> list[str]:
        """IDs of the closed and merged stories whose last activity is before ``cutoff``."""
        return [r[0] for r in self._read("SELECT story_id FROM stories WHERE status IN ('closed', 'merged')"
                                         " AND last_activity < ? ORDER BY last_activity", (format_time(cutoff),))]

    def member_hashes(self, story_id: str, *, before: Optional[datetime] = None,
                      keep_latest: int = 0) -> list[tuple[str, str]]:
        """``(article id, content hash)`` of a story's members; with ``before``, only those taken in by a run
        before it, and never the story's ``keep_latest`` latest members."""
        if before is None:
            return [(r[0], r[1]) for r in self._read(
                "SELECT a.id, a.hash FROM members m JOIN articles a ON a.id = m.article_id WHERE m.story_id = ?",
                (story_id,))]
        return [(r[0], r[1]) for r in self._read(
            "SELECT a.id, a.hash FROM members m JOIN articles a ON a.id = m.article_id JOIN runs r ON r.run_id ="
            " a.run_id WHERE m.story_id = ? AND r.now < ? AND m.seq < coalesce((SELECT seq FROM members"
            " WHERE story_id = ? ORDER BY seq DESC LIMIT 1 OFFSET ?), 0)",
            (story_id, format_time(before), story_id, keep_latest - 1))]

    def long_open_stories(self, longer_than: int) -> list[StoredStory]:
        """Open stories with more than ``longer_than`` members."""
        return [self._stored_story(r) for r in self._read(
            f"SELECT {self._STORY_COLUMNS} FROM stories WHERE status = 'open' AND size > ?", (longer_than,))]

    def article_count(self) -> int:
        return int(self._read("SELECT count(*) FROM articles")[0][0]) if self._exists else 0

    # -- vectors -----------------------------------------------------------

    def missing_vectors(self, space: str, keys: Iterable[str]) -> list[str]:
        """The keys (in the order given, without repeats) that have no vector in ``space``."""
        wanted = list(dict.fromkeys(keys))
        have: set[str] = set()
        for chunk in _chunks(wanted):
            marks = ",".join("?" * len(chunk))
            have |= {r[0] for r in self._read(
                f"SELECT text_key FROM vectors WHERE space = ? AND text_key IN ({marks})", (space, *chunk))}
        return [k for k in wanted if k not in have]

    def get_vectors(self, space: str, keys: Sequence[str]) -> np.ndarray:
        """Stacked vectors for ``keys`` (in that order); KeyError if one is missing."""
        found: dict[str, np.ndarray] = {}
        for chunk in _chunks(list(dict.fromkeys(keys))):
            marks = ",".join("?" * len(chunk))
            for key, blob in self._read(
                f"SELECT text_key, vector FROM vectors WHERE space = ? AND text_key IN ({marks})", (space, *chunk)
            ):
                found[key] = _vec(blob)
        missing = [k for k in keys if k not in found]
        if missing:
            raise KeyError(f"no vector in {space} for {len(missing)} text(s), e.g. {missing[0]}")
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32)

    def put_vectors(self, space: str, vectors: Mapping[str, np.ndarray]) -> None:
        self._write_many(
            "INSERT OR REPLACE INTO vectors (space, text_key, vector) VALUES (?, ?, ?)",
            ((space, key, _blob(v)) for key, v in vectors.items()),
        )

    def vector_count(self, space: Optional[str] = None) -> int:
        if space is None:
            return int(self._read("SELECT count(*) FROM vectors")[0][0]) if self._exists else 0
        rows = self._read("SELECT count(*) FROM vectors WHERE space = ?", (space,))
        return int(rows[0][0]) if rows else 0

    # -- stories -----------------------------------------------------------

    _STORY_COLUMNS = (
        "story_id, status, size, first_published, last_published, last_activity,"
        " created_run, updated_run, closed_run, merged_into, split_from, labels, forgotten"
    )

    @staticmethod
    def _stored_story(row: Sequence) -> StoredStory:
        return StoredStory(
            story_id=row[0], status=row[1], size=int(row[2]), first_published=_opt_time(row[3]),
            last_published=_opt_time(row[4]), last_activity=datetime.fromisoformat(row[5]),
            created_run=int(row[6]), updated_run=int(row[7]), closed_run=row[8], merged_into=row[9],
            split_from=row[10], labels=tuple(json.loads(row[11] or "[]")), forgotten=int(row[12]),
        )

    def stories(self, *, status: Optional[str] = None, ids: Optional[Iterable[str]] = None) -> list[StoredStory]:
        """Stories, optionally only those with ``status`` or those in ``ids``; in the order they were created."""
        clauses: list[str] = []
        params: list[object] = []
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        if ids is not None:
            id_list = list(ids)
            if not id_list:
                return []
            clauses.append(f"story_id IN ({','.join('?' * len(id_list))})")
            params.extend(id_list)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        return [self._stored_story(r) for r in self._read(
            f"SELECT {self._STORY_COLUMNS} FROM stories{where} ORDER BY created_run, story_id", params)]

    def quiet_stories(self, before: datetime) -> list[StoredStory]:
        """Open stories whose last activity is at or before ``before`` (by the status index)."""
        return [self._stored_story(r) for r in self._read(
            f"SELECT {self._STORY_COLUMNS} FROM stories WHERE status = 'open' AND last_activity <= ?"
            " ORDER BY created_run, story_id", (format_time(before),))]

    def taken_story_ids(self, ids: Iterable[str]) -> set[str]:
        """The subset of ``ids`` in use or used before: an ID is never given twice."""
        return {r[0] for r in self._read_in("SELECT story_id FROM stories WHERE story_id IN ({marks}) UNION"
                                            " SELECT story_id FROM forgotten_stories WHERE story_id IN ({marks})", ids)}

    def story_size(self, story_id: str) -> int:
        return int(self._read("SELECT count(*) FROM members WHERE story_id = ?", (story_id,))[0][0])

    def story_dates(self, story_id: str) -> list[datetime]:
        """The publication dates of a story's members (undated ones left out)."""
        return [datetime.fromisoformat(r[0]) for r in self._read(
            "SELECT a.published FROM members m JOIN articles a ON a.id = m.article_id"
            " WHERE m.story_id = ? AND a.published IS NOT NULL", (story_id,))]

    def save_story(self, story: StoredStory) -> None:
        """Insert or replace a story's bookkeeping row."""
        if story.status not in STORY_STATES:
            raise ValueError(f"unknown story status {story.status!r}")
        self._write(
            f"INSERT OR REPLACE INTO stories ({self._STORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (story.story_id, story.status, story.size, _opt_iso(story.first_published),
             _opt_iso(story.last_published), format_time(story.last_activity), story.created_run,
             story.updated_run, story.closed_run, story.merged_into, story.split_from,
             json.dumps(list(story.labels), ensure_ascii=False), story.forgotten),
        )

    def put_members(self, members: Iterable[tuple[str, str, np.ndarray, float, Optional[str]]], run_id: int) -> None:
        """Insert or move members: ``(article id, story id, neutral vector, similarity, joined_by)``."""
        self._write_many(
            "INSERT INTO members (article_id, story_id, vector, similarity, joined_by, run_id, seq)"
            " VALUES (?, ?, ?, ?, ?, ?, (SELECT seq FROM articles WHERE id = ?))"
            " ON CONFLICT (article_id) DO UPDATE SET story_id = excluded.story_id,"
            " vector = excluded.vector, similarity = excluded.similarity, joined_by = excluded.joined_by,"
            " run_id = CASE WHEN members.story_id = excluded.story_id THEN members.run_id ELSE excluded.run_id END",
            ((aid, sid, _blob(v), float(sim), how, run_id, aid) for aid, sid, v, sim, how in members),
        )

    def move_members(self, from_story: str, to_story: str, joined_by: str, run_id: int) -> int:
        """Move every member still in ``from_story`` (those no night re-clustered) to ``to_story``."""
        return self._write("UPDATE members SET story_id = ?, joined_by = ?, run_id = ? WHERE story_id = ?",
                           (to_story, joined_by, run_id, from_story)).rowcount

    _MEMBER_QUERY = (
        "SELECT {cols}, m.story_id, m.vector, m.similarity, m.joined_by, a.seq FROM members m"
        " JOIN articles a ON a.id = m.article_id"
    )

    def _members(self, where: str, params: Sequence[object], *, light: bool = False) -> list[StoredMember]:
        """Members with their articles; ``light``: without the texts (``""``) and vectors (empty)."""
        return self._member_rows(self._read(self._member_query(light) + where, params))

    def _member_query(self, light: bool = False) -> str:
        query = self._MEMBER_QUERY.format(cols=self._ARTICLE_COLUMNS)
        return query.replace("a.text,", "'',", 1).replace("m.vector,", "x'',", 1) if light else query

    def _member_rows(self, rows: Iterable[Sequence]) -> list[StoredMember]:
        out = []
        for r in rows:
            article, key = self._article(r)
            out.append(StoredMember(article, r[14], _vec(r[15]), float(r[16]), r[17], key, int(r[18])))
        return out

    def members_by_id(self, article_ids: Iterable[str], *, light: bool = False) -> list[StoredMember]:
        """The members named (with texts and vectors unless ``light``), in the order their articles came in."""
        found = self._member_rows(self._read_in(self._member_query(light) + " WHERE m.article_id IN ({marks})",
                                                article_ids))
        return sorted(found, key=lambda m: m.seq)

    def story_members(self, story_id: str, *, light: bool = False) -> list[StoredMember]:
        """The members of one story, in the order they came in (``light``: no texts or vectors read)."""
        return self._members(" WHERE m.story_id = ? ORDER BY a.seq", (story_id,), light=light)

    def open_members(self, recent: Optional[int] = None, *, light: bool = False) -> list[StoredMember]:
        """The members of the open stories, in the order the articles came in (the night's window).

        ``recent``: at most that many of each story, its latest arrivals (one indexed read per story).
        ``light``: without the articles' texts and the members' vectors.
        """
        if recent is None:
            return self._members(" JOIN stories s ON s.story_id = m.story_id WHERE s.status = 'open'"
                                 " ORDER BY a.seq", (), light=light)
        out = self._members(" JOIN stories s ON s.story_id = m.story_id WHERE s.status = 'open' AND s.size <= ?",
                            (recent,), light=light)
        for (sid,) in self._read("SELECT story_id FROM stories WHERE status = 'open' AND size > ?", (recent,)):
            out += self._members(" WHERE m.story_id = ? ORDER BY m.seq DESC LIMIT ?", (sid, recent), light=light)
        out.sort(key=lambda m: m.seq)
        return out

    def member_info(self, article_id: str) -> Optional[StoredMember]:
        """One article's story, vector and joining step (None when it is in no story)."""
        found = self._members(" WHERE m.article_id = ?", (article_id,))
        return found[0] if found else None

    def memberships(self) -> dict[str, str]:
        """``{article id: story id}`` for every article in a story (handy for tests and audits)."""
        return dict(self._read("SELECT article_id, story_id FROM members"))

    # -- corrections ---------------------------------------------------------

    def add_correction(self, correction: "Correction", now: datetime) -> int:
        """Store an editor's correction (pending until a run applies it); returns its number."""
        return int(self._write(
            "INSERT INTO corrections (kind, ids, note, created_at) VALUES (?, ?, ?, ?)",
            (correction.kind, json.dumps(list(correction.ids), ensure_ascii=False), correction.note,
             format_time(now))).lastrowid)

    def corrections(self, *, removed: bool = False) -> list["Correction"]:
        """The corrections in force (with ``removed``, also those taken back but not yet re-clustered)."""
        from .corrections import Correction

        where = "" if removed else " WHERE removed_at IS NULL"
        return [Correction(kind, tuple(json.loads(ids)), note, datetime.fromisoformat(created), cid, applied,
                           _opt_time(gone))
                for cid, kind, ids, note, created, applied, gone in self._read(
                    "SELECT correction_id, kind, ids, note, created_at, applied_run, removed_at FROM corrections"
                    f"{where} ORDER BY correction_id")]

    def remove_correction(self, correction_id: int, now: datetime) -> bool:
        """Take a correction back: the next run re-clusters its stories without it. False if there is none."""
        return self._write("UPDATE corrections SET removed_at = ?, applied_run = NULL WHERE correction_id = ?"
                           " AND removed_at IS NULL", (format_time(now), correction_id)).rowcount > 0

    def mark_corrections_applied(self, run_id: int) -> None:
        """Every pending correction is applied by this run; corrections taken back are gone for good."""
        self._write("DELETE FROM corrections WHERE removed_at IS NOT NULL")
        self._write("UPDATE corrections SET applied_run = ? WHERE applied_run IS NULL", (run_id,))

    def reopen(self, story_id: str, now: datetime, run_id: int) -> None:
        """Open a closed story again (a correction names one of its articles)."""
        self._write("UPDATE stories SET status = 'open', closed_run = NULL, last_activity = ?, updated_run = ?"
                    " WHERE story_id = ? AND status = 'closed'", (format_time(now), run_id, story_id))

    # -- space -------------------------------------------------------------

    def free_page_share(self) -> float:
        """The share of the file's pages that are free (reused by later writes, or given back by VACUUM)."""
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        return free / pages if pages else 0.0

    @property
    def page_size(self) -> int:
        return int(self._db.execute("PRAGMA page_size").fetchall()[0][0])

    def compact(self, *, vacuum: bool) -> None:
        """Checkpoint the write-ahead log into the file (and ``VACUUM`` first when asked): callers hold the lock.

        A ``VACUUM`` of a file whose pages are not :data:`PAGE_SIZE` (a state created before 16 KiB pages)
        rebuilds it with them. The page size can only change outside WAL mode, so the file leaves it for the
        rebuild (which is then atomic through SQLite's rollback journal) and goes back to it; when another
        connection keeps the file open in WAL mode meanwhile, the file is vacuumed with its own page size."""
        if self._depth:
            raise StateError("compact inside a transaction")
        if vacuum and self.page_size != PAGE_SIZE:
            try:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                if self._db.execute("PRAGMA journal_mode=DELETE").fetchall()[0][0].lower() == "delete":
                    self._db.execute(f"PRAGMA page_size = {PAGE_SIZE}")
            except sqlite3.OperationalError as exc:  # another connection holds the file
                logger.info("state %s: kept its %d-byte pages (%s)", self.path, self.page_size, exc)
            try:
                self._db.execute("VACUUM")
            finally:
                self._db.execute("PRAGMA journal_mode=WAL").fetchall()  # the statement done: no table stays locked
            logger.info("state %s: vacuumed, %d-byte pages", self.path, self.page_size)
            try:  # the WAL is new and near empty; a statement still open after a migration can refuse it
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            except sqlite3.OperationalError as exc:
                logger.debug("state %s: checkpoint left to the next run (%s)", self.path, exc)
            return
        if vacuum:
            self._db.execute("VACUUM")
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    # -- the outbox --------------------------------------------------------

    def queued_story_ids(self) -> set[str]:
        """Stories with a change not yet published."""
        return {r[0] for r in self._read("SELECT story_id FROM outbox")}

    def add_changes(self, changes: Iterable[tuple[str, str, Sequence[str]]], run_id: int) -> None:
        """Queue story changes ``(story id, event, added ids)`` for publication, folding in unreported ones."""
        pending = {c.story_id: c for c in self.unreported()}
        rows = []
        for sid, event, added in changes:
            old = pending.get(sid)
            if old is not None:
                event = combine_events(old.event, event)
                added = list(dict.fromkeys([*old.added, *added]))
            rows.append((sid, event, json.dumps(list(added), ensure_ascii=False), run_id))
        self._write_many("INSERT OR REPLACE INTO outbox (story_id, event, added, run_id) VALUES (?, ?, ?, ?)", rows)

    def unreported(self) -> list[Change]:
        """Story changes committed but not yet published, oldest run first."""
        return [Change(sid, event, tuple(json.loads(added)), run_id) for sid, event, added, run_id in self._read(
            "SELECT story_id, event, added, run_id FROM outbox ORDER BY run_id, story_id")]

    def clear_reported(self, changes: Sequence[Change]) -> None:
        """Drop published changes (a change queued again by a later run stays)."""
        self._write_many("DELETE FROM outbox WHERE story_id = ? AND run_id <= ?",
                         ((c.story_id, c.run_id) for c in changes))


#: Kept for readers of the protocol name: the SQLite store is the state store.
StateStore = SQLiteStore


def open_store(path: str | os.PathLike[str]) -> SQLiteStore:
    """Open the state store at ``path`` (checked, not changed; a run's lock creates or migrates it)."""
    return SQLiteStore(path)
