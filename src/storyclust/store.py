"""The state store: what nightly runs remember between one night and the next.

A run with ``--state PATH`` keeps, in one SQLite file:

``articles``
    every article ever ingested, keyed by its content hash (so the same text
    under another path is "already seen"), with its metadata, its effective
    date and the key of its embedding text;
``embeddings``
    float32 vectors keyed by ``(model_id, text_key)`` where ``text_key`` is the
    SHA-256 of :func:`storyclust.embed.embedding_text` (title + body), so an
    article is embedded once per model, whatever its path;
``language_means``
    running per-language sums of embeddings, used to make vectors
    language-neutral in a way that stays stable from night to night;
``stories`` and ``members``
    stories with their centroid (as a running sum of member vectors), status
    (``open``, ``closed``, ``merged``) and membership (each article belongs to
    at most one story, with its language-neutral vector at assignment time);
``files``
    size and mtime of every input file already read, so that unchanged
    files are not even parsed again;
``runs``
    one row per run, for inspection.

Every write happens inside :meth:`SQLiteStore.transaction` (``BEGIN IMMEDIATE``
in WAL mode), so a run killed at any point leaves the file consistent: a
half-finished run simply leaves articles that have no story yet ("pending"),
and the next run picks them up. :meth:`SQLiteStore.lock` serialises whole runs
on one state file with an advisory lock on a sidecar ``PATH.lock`` file,
which the kernel releases when the process dies.

The schema carries a version (``PRAGMA user_version``) and is brought up to
date by ordered migration functions in :data:`MIGRATIONS`. Other databases can
be added later by implementing the :class:`StateStore` protocol.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator, Mapping, Optional, Protocol, Sequence

import numpy as np

from .types import Article, Story, StoryMember

logger = logging.getLogger(__name__)

#: Environment variable holding the default state path.
STATE_ENVVAR = "STORYCLUST_STATE"

#: Exit code of a run that finds the state locked and must not wait (sysexits.h EX_TEMPFAIL).
EXIT_LOCKED = 75

#: Story status values kept in the store.
STORY_STATES = ("open", "closed", "merged")


class StateError(Exception):
    """The state file cannot be used (newer schema, another model, corrupt file...)."""


class StateLocked(StateError):
    """Another run holds the lock on this state file."""


@dataclass(frozen=True, slots=True)
class StoredStory:
    """A story as the store keeps it: bookkeeping plus its centroid."""

    story_id: str
    status: str  # one of STORY_STATES
    singleton: bool
    size: int
    centroid_sum: np.ndarray  # sum of the members' language-neutral vectors
    first_date: datetime
    last_date: datetime  # date of the newest member: the story's last activity
    created_run: int
    updated_run: int
    closed_run: Optional[int] = None
    merged_into: Optional[str] = None
    split_from: Optional[str] = None

    @property
    def centroid(self) -> np.ndarray:
        """Unit-length centroid (the normalised member sum)."""
        return _unit(self.centroid_sum)


@dataclass(frozen=True, slots=True)
class StoredArticle:
    """An article read back from the store, with its effective date and embedding key."""

    article: Article
    date: datetime
    text_key: str
    run_id: int


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


class StateStore(Protocol):
    """What incremental clustering needs from a state store.

    :class:`SQLiteStore` is the embedded implementation; a server database
    can implement the same methods. All writes must happen inside
    :meth:`transaction`; reads may happen anywhere.
    """

    def lock(self, wait: bool = True) -> contextlib.AbstractContextManager[None]: ...

    def transaction(self) -> contextlib.AbstractContextManager[None]: ...

    def close(self) -> None: ...

    # runs and settings
    def begin_run(self, now: datetime, model_id: Optional[str]) -> int: ...

    def finish_run(self, run_id: int, counts: Mapping[str, int], model_id: Optional[str] = None) -> None: ...

    def runs(self) -> list[RunInfo]: ...

    def get_setting(self, key: str) -> Optional[str]: ...

    def set_setting(self, key: str, value: str) -> None: ...

    # input files, articles and embeddings
    def unchanged_files(self, stamps: Sequence[FileStamp]) -> set[str]: ...

    def record_files(self, stamps: Sequence[FileStamp], run_id: int) -> None: ...

    def known_hashes(self, hashes: Iterable[str]) -> set[str]: ...

    def add_articles(self, items: Sequence[tuple[Article, datetime, str]], run_id: int) -> int: ...

    def pending_articles(self) -> list[StoredArticle]: ...

    def articles_by_hash(self, hashes: Sequence[str]) -> dict[str, StoredArticle]: ...

    def missing_embeddings(self, model_id: str, keys: Iterable[str]) -> list[str]: ...

    def get_embeddings(self, model_id: str, keys: Sequence[str]) -> np.ndarray: ...

    def put_embeddings(self, model_id: str, vectors: Mapping[str, np.ndarray]) -> None: ...

    def language_means(self, model_id: str) -> dict[str, tuple[np.ndarray, int]]: ...

    def set_language_means(self, model_id: str, means: Mapping[str, tuple[np.ndarray, int]]) -> None: ...

    # stories
    def stories(self, *, status: Optional[str] = None, ids: Optional[Iterable[str]] = None) -> list[StoredStory]: ...

    def save_story(self, story: StoredStory) -> None: ...

    def add_members(self, story_id: str, members: Mapping[str, np.ndarray], run_id: int) -> None: ...

    def move_members(self, from_story: str, to_story: str) -> int: ...

    def reassign(self, hashes: Sequence[str], story_id: str) -> None: ...

    def member_vectors(self, story_id: str) -> dict[str, np.ndarray]: ...

    def member_runs(self, story_id: str) -> dict[str, int]: ...

    def open_members(self) -> list[tuple[str, str, np.ndarray, datetime]]: ...

    def load_story(self, stored: StoredStory, *, status: Optional[str] = None,
                   added: Sequence[str] = ()) -> Story: ...


# --------------------------------------------------------------------------- helpers


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return (v / norm).astype(np.float32) if norm > 0 else v.astype(np.float32)


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


# --------------------------------------------------------------------------- schema


def _migrate_v1(db: sqlite3.Connection) -> None:
    """The first schema: articles, embeddings, language means, stories, members, runs."""
    # One statement at a time: executescript() would COMMIT the migration's transaction.
    for statement in _V1_SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


_V1_SCHEMA = """
        CREATE TABLE settings (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        CREATE TABLE runs (
            run_id      INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at  TEXT NOT NULL,
            now         TEXT NOT NULL,
            model_id    TEXT,
            finished_at TEXT,
            ingested    INTEGER NOT NULL DEFAULT 0,
            skipped     INTEGER NOT NULL DEFAULT 0,
            rejected    INTEGER NOT NULL DEFAULT 0,
            embedded    INTEGER NOT NULL DEFAULT 0,
            assigned    INTEGER NOT NULL DEFAULT 0,
            changed     INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE articles (
            seq             INTEGER PRIMARY KEY AUTOINCREMENT,
            hash            TEXT NOT NULL UNIQUE,
            id              TEXT NOT NULL,
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
            date            TEXT NOT NULL,
            text_key        TEXT NOT NULL,
            run_id          INTEGER NOT NULL REFERENCES runs(run_id)
        );
        CREATE INDEX articles_id ON articles(id);
        CREATE TABLE embeddings (
            model_id TEXT NOT NULL,
            text_key TEXT NOT NULL,
            dim      INTEGER NOT NULL,
            vector   BLOB NOT NULL,
            PRIMARY KEY (model_id, text_key)
        ) WITHOUT ROWID;
        CREATE TABLE language_means (
            model_id TEXT NOT NULL,
            lang     TEXT NOT NULL,
            total    BLOB NOT NULL,
            count    INTEGER NOT NULL,
            PRIMARY KEY (model_id, lang)
        ) WITHOUT ROWID;
        CREATE TABLE stories (
            story_id     TEXT PRIMARY KEY,
            status       TEXT NOT NULL CHECK (status IN ('open', 'closed', 'merged')),
            singleton    INTEGER NOT NULL,
            size         INTEGER NOT NULL,
            centroid_sum BLOB NOT NULL,
            first_date   TEXT NOT NULL,
            last_date    TEXT NOT NULL,
            created_run  INTEGER NOT NULL REFERENCES runs(run_id),
            updated_run  INTEGER NOT NULL REFERENCES runs(run_id),
            closed_run   INTEGER REFERENCES runs(run_id),
            merged_into  TEXT REFERENCES stories(story_id),
            split_from   TEXT REFERENCES stories(story_id)
        );
        CREATE INDEX stories_status ON stories(status, last_date);
        CREATE TABLE members (
            article_hash TEXT PRIMARY KEY REFERENCES articles(hash),
            story_id     TEXT NOT NULL REFERENCES stories(story_id),
            vector       BLOB NOT NULL,
            run_id       INTEGER NOT NULL REFERENCES runs(run_id)
        );
        CREATE INDEX members_story ON members(story_id);
        CREATE TABLE files (
            path     TEXT PRIMARY KEY,
            size     INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            run_id   INTEGER NOT NULL REFERENCES runs(run_id)
        );
"""


#: Ordered schema migrations; ``user_version`` N means the first N have run.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migrate_v1,)

#: Schema version this code writes.
STATE_SCHEMA_VERSION = len(MIGRATIONS)


# --------------------------------------------------------------------------- SQLite


class SQLiteStore:
    """The embedded :class:`StateStore`: one SQLite file in WAL mode.

    >>> store = SQLiteStore("state.db")      # doctest: +SKIP
    >>> with store.lock(), store.transaction():
    ...     run_id = store.begin_run(now, embedder.model_id)
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 60.0) -> None:
        self.path = os.fspath(path)
        self._depth = 0
        self._lock_fd: Optional[int] = None
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise StateError(f"directory of state file does not exist: {directory}")
        try:
            # isolation_level=None: no implicit transactions; we issue BEGIN IMMEDIATE ourselves.
            self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
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

    def _migrate(self) -> None:
        version = self.schema_version
        if version > STATE_SCHEMA_VERSION:
            raise StateError(
                f"state file {self.path} has schema version {version}; this storyclust "
                f"understands up to {STATE_SCHEMA_VERSION} (upgrade storyclust)"
            )
        for number in range(version, STATE_SCHEMA_VERSION):
            with self.transaction():
                MIGRATIONS[number](self._db)
                self._db.execute(f"PRAGMA user_version = {number + 1}")
            logger.info("state %s: migrated schema to version %d", self.path, number + 1)

    # -- concurrency -------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, wait: bool = True) -> Iterator[None]:
        """Hold the run lock (``PATH.lock``) for the block; raise :class:`StateLocked` if busy and not ``wait``.

        Re-entrant: a block inside another ``lock()`` block of the same store just runs.
        """
        if self._lock_fd is not None:
            yield
            return
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            flags = fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB)
            if wait:
                try:
                    fcntl.flock(fd, flags | fcntl.LOCK_NB)
                except OSError:
                    logger.info("state %s is locked by another run; waiting", self.path)
                    fcntl.flock(fd, flags)
            else:
                fcntl.flock(fd, flags)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise StateLocked(f"state file {self.path} is locked by another run") from exc
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        try:
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

    # -- runs and settings -------------------------------------------------

    def begin_run(self, now: datetime, model_id: Optional[str]) -> int:
        """Record the start of a run (``model_id`` may not be known yet); returns its id."""
        cur = self._write(
            "INSERT INTO runs (started_at, now, model_id) VALUES (?, ?, ?)",
            (format_time(datetime.now(timezone.utc)), format_time(now), model_id),
        )
        return int(cur.lastrowid)

    def finish_run(self, run_id: int, counts: Mapping[str, int], model_id: Optional[str] = None) -> None:
        """Record the end of a run with its counts (keys: ingested, skipped, rejected, embedded, assigned,
        changed) and, once known, the embedding model it used."""
        columns = [c for c in ("ingested", "skipped", "rejected", "embedded", "assigned", "changed") if c in counts]
        sets = "".join(f", {c} = ?" for c in columns)
        self._write(
            f"UPDATE runs SET finished_at = ?, model_id = coalesce(?, model_id){sets} WHERE run_id = ?",
            (format_time(datetime.now(timezone.utc)), model_id, *(int(counts[c]) for c in columns), run_id),
        )

    def runs(self) -> list[RunInfo]:
        """All runs, oldest first."""
        rows = self._db.execute(
            "SELECT run_id, started_at, now, model_id, finished_at, ingested, skipped, rejected,"
            " embedded, assigned, changed FROM runs ORDER BY run_id"
        ).fetchall()
        names = ("ingested", "skipped", "rejected", "embedded", "assigned", "changed")
        return [
            RunInfo(r[0], datetime.fromisoformat(r[1]), datetime.fromisoformat(r[2]), r[3],
                    _opt_time(r[4]), dict(zip(names, r[5:])))
            for r in rows
        ]

    def get_setting(self, key: str) -> Optional[str]:
        row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, value))

    # -- input files -------------------------------------------------------

    def unchanged_files(self, stamps: Sequence[FileStamp]) -> set[str]:
        """Paths of ``stamps`` already read with the same size and mtime."""
        same: set[str] = set()
        for start in range(0, len(stamps), 500):
            batch = {s.path: s for s in stamps[start:start + 500]}
            marks = ",".join("?" * len(batch))
            for path, size, mtime_ns in self._db.execute(
                f"SELECT path, size, mtime_ns FROM files WHERE path IN ({marks})", list(batch)
            ):
                if batch[path].size == size and batch[path].mtime_ns == mtime_ns:
                    same.add(path)
        return same

    def record_files(self, stamps: Sequence[FileStamp], run_id: int) -> None:
        """Remember that these files (at this size and mtime) have been read."""
        self._write_many(
            "INSERT OR REPLACE INTO files (path, size, mtime_ns, run_id) VALUES (?, ?, ?, ?)",
            ((s.path, s.size, s.mtime_ns, run_id) for s in stamps),
        )

    # -- articles ----------------------------------------------------------

    def known_hashes(self, hashes: Iterable[str]) -> set[str]:
        """The subset of ``hashes`` already stored."""
        found: set[str] = set()
        batch: list[str] = []
        for h in hashes:
            batch.append(h)
            if len(batch) == 500:
                found |= self._known(batch)
                batch = []
        if batch:
            found |= self._known(batch)
        return found

    def _known(self, batch: Sequence[str]) -> set[str]:
        marks = ",".join("?" * len(batch))
        return {r[0] for r in self._db.execute(f"SELECT hash FROM articles WHERE hash IN ({marks})", batch)}

    def add_articles(self, items: Sequence[tuple[Article, datetime, str]], run_id: int) -> int:
        """Store ``(article, effective date, text key)`` triples; already-known hashes are ignored.

        Returns how many rows were inserted.
        """
        before = self._db.total_changes
        self._write_many(
            "INSERT OR IGNORE INTO articles (hash, id, text, title, url, path, lang, lang_confidence,"
            " published, retrieved, source, author, duplicate_of, date, text_key, run_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (a.hash, a.id, a.text, a.title, a.url, a.path, a.lang, a.lang_confidence,
                 _opt_iso(a.published), _opt_iso(a.retrieved), a.source, a.author,
                 a.duplicate_of, format_time(date), key, run_id)
                for a, date, key in items
            ),
        )
        return self._db.total_changes - before

    _ARTICLE_COLUMNS = (
        "a.hash, a.id, a.text, a.title, a.url, a.path, a.lang, a.lang_confidence, a.published,"
        " a.retrieved, a.source, a.author, a.duplicate_of, a.date, a.text_key, a.run_id"
    )

    @staticmethod
    def _stored_article(row: Sequence) -> StoredArticle:
        article = Article(
            id=row[1], text=row[2], title=row[3], url=row[4], path=row[5], lang=row[6],
            lang_confidence=row[7], published=_opt_time(row[8]), retrieved=_opt_time(row[9]),
            source=row[10], author=row[11], duplicate_of=row[12], hash=row[0],
        )
        return StoredArticle(article, datetime.fromisoformat(row[13]), row[14], row[15])

    def pending_articles(self) -> list[StoredArticle]:
        """Articles stored but not yet in any story (new, or left over by an interrupted run), by date then hash."""
        rows = self._db.execute(
            f"SELECT {self._ARTICLE_COLUMNS} FROM articles a"
            " LEFT JOIN members m ON m.article_hash = a.hash"
            " WHERE m.article_hash IS NULL ORDER BY a.date, a.hash"
        ).fetchall()
        return [self._stored_article(r) for r in rows]

    def articles_by_hash(self, hashes: Sequence[str]) -> dict[str, StoredArticle]:
        out: dict[str, StoredArticle] = {}
        for start in range(0, len(hashes), 500):
            batch = list(hashes[start:start + 500])
            marks = ",".join("?" * len(batch))
            for row in self._db.execute(
                f"SELECT {self._ARTICLE_COLUMNS} FROM articles a WHERE a.hash IN ({marks})", batch
            ):
                out[row[0]] = self._stored_article(row)
        return out

    def article_count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM articles").fetchone()[0])

    # -- embeddings --------------------------------------------------------

    def missing_embeddings(self, model_id: str, keys: Iterable[str]) -> list[str]:
        """The keys (in the order given, without repeats) that have no vector for ``model_id``."""
        wanted = list(dict.fromkeys(keys))
        have: set[str] = set()
        for start in range(0, len(wanted), 500):
            batch = wanted[start:start + 500]
            marks = ",".join("?" * len(batch))
            have |= {
                r[0]
                for r in self._db.execute(
                    f"SELECT text_key FROM embeddings WHERE model_id = ? AND text_key IN ({marks})",
                    (model_id, *batch),
                )
            }
        return [k for k in wanted if k not in have]

    def get_embeddings(self, model_id: str, keys: Sequence[str]) -> np.ndarray:
        """Stacked vectors for ``keys`` (in that order); KeyError if one is missing."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 500):
            batch = unique[start:start + 500]
            marks = ",".join("?" * len(batch))
            for key, blob in self._db.execute(
                f"SELECT text_key, vector FROM embeddings WHERE model_id = ? AND text_key IN ({marks})",
                (model_id, *batch),
            ):
                found[key] = _vec(blob)
        missing = [k for k in unique if k not in found]
        if missing:
            raise KeyError(f"no {model_id} embedding for {len(missing)} text(s), e.g. {missing[0]}")
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32)

    def put_embeddings(self, model_id: str, vectors: Mapping[str, np.ndarray]) -> None:
        self._write_many(
            "INSERT OR REPLACE INTO embeddings (model_id, text_key, dim, vector) VALUES (?, ?, ?, ?)",
            ((model_id, key, int(v.shape[-1]), _blob(v)) for key, v in vectors.items()),
        )

    def embedding_count(self, model_id: Optional[str] = None) -> int:
        if model_id is None:
            return int(self._db.execute("SELECT count(*) FROM embeddings").fetchone()[0])
        return int(self._db.execute("SELECT count(*) FROM embeddings WHERE model_id = ?", (model_id,)).fetchone()[0])

    def language_means(self, model_id: str) -> dict[str, tuple[np.ndarray, int]]:
        """Running per-language ``(sum vector, count)`` for ``model_id`` (sums kept as float64)."""
        return {
            lang: (np.frombuffer(total, dtype=np.float64).copy(), int(count))
            for lang, total, count in self._db.execute(
                "SELECT lang, total, count FROM language_means WHERE model_id = ? ORDER BY lang", (model_id,)
            )
        }

    def set_language_means(self, model_id: str, means: Mapping[str, tuple[np.ndarray, int]]) -> None:
        self._write_many(
            "INSERT OR REPLACE INTO language_means (model_id, lang, total, count) VALUES (?, ?, ?, ?)",
            ((model_id, lang, np.ascontiguousarray(total, dtype=np.float64).tobytes(), int(count))
             for lang, (total, count) in means.items()),
        )

    # -- stories -----------------------------------------------------------

    _STORY_COLUMNS = (
        "story_id, status, singleton, size, centroid_sum, first_date, last_date,"
        " created_run, updated_run, closed_run, merged_into, split_from"
    )

    @staticmethod
    def _stored_story(row: Sequence) -> StoredStory:
        return StoredStory(
            story_id=row[0], status=row[1], singleton=bool(row[2]), size=int(row[3]),
            centroid_sum=_vec(row[4]), first_date=datetime.fromisoformat(row[5]),
            last_date=datetime.fromisoformat(row[6]), created_run=int(row[7]), updated_run=int(row[8]),
            closed_run=row[9], merged_into=row[10], split_from=row[11],
        )

    def stories(self, *, status: Optional[str] = None, ids: Optional[Iterable[str]] = None) -> list[StoredStory]:
        """Stories, optionally only those with ``status`` or those in ``ids``; oldest first."""
        sql = f"SELECT {self._STORY_COLUMNS} FROM stories"
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
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY first_date, story_id"
        return [self._stored_story(r) for r in self._db.execute(sql, params)]

    def save_story(self, story: StoredStory) -> None:
        """Insert or replace a story's bookkeeping row."""
        if story.status not in STORY_STATES:
            raise ValueError(f"unknown story status {story.status!r}")
        self._write(
            f"INSERT INTO stories ({self._STORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (story_id) DO UPDATE SET status = excluded.status, singleton = excluded.singleton,"
            " size = excluded.size, centroid_sum = excluded.centroid_sum, first_date = excluded.first_date,"
            " last_date = excluded.last_date, updated_run = excluded.updated_run,"
            " closed_run = excluded.closed_run, merged_into = excluded.merged_into,"
            " split_from = excluded.split_from",
            (story.story_id, story.status, int(story.singleton), story.size, _blob(story.centroid_sum),
             format_time(story.first_date), format_time(story.last_date), story.created_run,
             story.updated_run, story.closed_run, story.merged_into, story.split_from),
        )

    def add_members(self, story_id: str, members: Mapping[str, np.ndarray], run_id: int) -> None:
        """Put articles (by hash, with their language-neutral vectors) into a story."""
        self._write_many(
            "INSERT INTO members (article_hash, story_id, vector, run_id) VALUES (?, ?, ?, ?)",
            ((h, story_id, _blob(v), run_id) for h, v in members.items()),
        )

    def move_members(self, from_story: str, to_story: str) -> int:
        """Move every member of ``from_story`` into ``to_story``; returns how many moved."""
        return self._write(
            "UPDATE members SET story_id = ? WHERE story_id = ?", (to_story, from_story)
        ).rowcount

    def reassign(self, hashes: Sequence[str], story_id: str) -> None:
        """Move the given member articles (by hash) into ``story_id``."""
        self._write_many("UPDATE members SET story_id = ? WHERE article_hash = ?", ((story_id, h) for h in hashes))

    def member_vectors(self, story_id: str) -> dict[str, np.ndarray]:
        """``{article hash: language-neutral vector}`` of a story's members."""
        return {
            h: _vec(v)
            for h, v in self._db.execute(
                "SELECT article_hash, vector FROM members WHERE story_id = ? ORDER BY article_hash", (story_id,)
            )
        }

    def open_members(self) -> list[tuple[str, str, np.ndarray, datetime]]:
        """``(story id, article hash, vector, date)`` of every member of an open story, by story then hash."""
        return [
            (sid, h, _vec(v), datetime.fromisoformat(d))
            for sid, h, v, d in self._db.execute(
                "SELECT m.story_id, m.article_hash, m.vector, a.date FROM members m"
                " JOIN stories s ON s.story_id = m.story_id JOIN articles a ON a.hash = m.article_hash"
                " WHERE s.status = 'open' ORDER BY m.story_id, m.article_hash"
            )
        ]

    def member_runs(self, story_id: str) -> dict[str, int]:
        """``{article hash: run that added it}`` of a story's members."""
        return dict(self._db.execute("SELECT article_hash, run_id FROM members WHERE story_id = ?", (story_id,)))

    def memberships(self) -> dict[str, str]:
        """``{article hash: story id}`` for every article in a story (handy for tests and audits)."""
        return dict(self._db.execute("SELECT article_hash, story_id FROM members"))

    def load_story(self, stored: StoredStory, *, status: Optional[str] = None,
                   added: Sequence[str] = ()) -> Story:
        """Build a :class:`Story` (members by date, similarity to the current centroid) from the store."""
        vectors = self.member_vectors(stored.story_id)
        articles = self.articles_by_hash(list(vectors))
        centroid = stored.centroid
        members = sorted(
            (StoryMember(articles[h].article, float(np.dot(v, centroid))) for h, v in vectors.items()),
            key=lambda m: (articles[m.article.hash].date, m.article.id),
        )
        return Story(
            story_id=stored.story_id,
            members=tuple(members),
            singleton=stored.singleton,
            status=status,
            added=tuple(added),
            merged_into=stored.merged_into,
            split_from=stored.split_from,
            meta={
                "state": stored.status,
                "last_activity": stored.last_date.isoformat(),
                "created_run": stored.created_run,
                "updated_run": stored.updated_run,
                "closed_run": stored.closed_run,
            },
        )


def open_store(path: str | os.PathLike[str]) -> SQLiteStore:
    """Open (creating and migrating if needed) the state store at ``path``."""
    return SQLiteStore(path)
