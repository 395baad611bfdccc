"""The small, typed records that flow between storyclust's stages.

Data flows one way: ``ingest`` yields :class:`Article` or :class:`Rejection`;
``embed`` turns articles into vectors; ``cluster`` groups them into
:class:`Story` objects; ``output`` turns all of these into JSON Lines records.
Every type here is a frozen dataclass so that stages cannot mutate each other's
data behind their backs.
"""
from __future__ import annotations

import functools
import hashlib
import re
import unicodedata
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Optional

#: Version of the JSON Lines schema written by :mod:`storyclust.schema`.
#: Bump on any backwards-incompatible change to a record's fields.
SCHEMA_VERSION = 1


def content_hash(text: str) -> str:
    """Stable hash of an article's text: NFC, case-folded, whitespace-collapsed.

    Two copies of the same text that differ only in whitespace, case or Unicode
    normalisation get the same hash; that is what "already seen" means.
    """
    norm = " ".join(unicodedata.normalize("NFC", text).casefold().split())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()


# A surrogate pair (two code points that belong together) or an unpaired surrogate.
_SURROGATES = re.compile("[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]")


def _fix_surrogate(match: re.Match) -> str:
    found = match.group()
    if len(found) == 2:  # a pair split into two code points: the character it encodes
        return found.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    code = ord(found)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that did not decode (surrogateescape): name it
        return f"\\x{code - 0xDC00:02x}"
    return "\ufffd"


def valid_text(value: str) -> str:
    """``value`` as valid Unicode: the one rule for every string that leaves storyclust.

    Python strings may hold surrogate code points, which UTF-8 cannot encode
    (writing them raises UnicodeEncodeError). They come from JSON escapes
    (``"\\udcff"``) and from file names that are not valid UTF-8 (the OS's
    undecodable bytes arrive as U+DC80..U+DCFF, "surrogateescape"). The rule:

    - a high surrogate followed by a low one becomes the character the pair encodes;
    - an unpaired U+DC80..U+DCFF (an undecodable byte 0x80..0xFF) becomes the four
      visible characters ``\\xNN`` (so ``caf\\xe9.html`` names the file as ``ls -b`` does);
    - any other unpaired surrogate becomes U+FFFD (the replacement character).

    Everything else is kept as it is. Fast path: a string that encodes as UTF-8
    (nearly all of them) is returned unchanged after one encode attempt.
    """
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub(_fix_surrogate, value)
    return value


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _validate_strings(obj: Any) -> None:
    """Apply :func:`valid_text` to every ``str`` field of a frozen dataclass instance."""
    for name in _field_names(type(obj)):
        value = getattr(obj, name)
        if isinstance(value, str):
            fixed = valid_text(value)
            if fixed is not value:
                object.__setattr__(obj, name, fixed)


@dataclass(frozen=True, slots=True)
class Article:
    """One clean news article, ready to embed.

    Every ``str`` field is valid Unicode by construction: ``__post_init__`` applies
    :func:`valid_text` (surrogates repaired or replaced) before the hash is computed.
    """

    id: str
    text: str
    title: Optional[str] = None
    url: Optional[str] = None
    path: Optional[str] = None
    lang: Optional[str] = None  # ISO 639-1
    lang_confidence: Optional[float] = None
    published: Optional[datetime] = None  # publication date from content/metadata, tz-aware; never invented
    retrieved: Optional[datetime] = None  # when this copy was fetched: WARC-Date, else the file's mtime
    source: Optional[str] = None  # site name or domain
    author: Optional[str] = None
    duplicate_of: Optional[str] = None  # id of the first copy of a near-duplicate wire
    hash: str = ""  # content_hash(text); filled in by __post_init__ when empty

    def __post_init__(self) -> None:
        _validate_strings(self)
        if not self.hash:
            object.__setattr__(self, "hash", content_hash(self.text))

    @classmethod
    def from_valid(cls, id: str, text: str, title: Optional[str], url: Optional[str], path: Optional[str],
                   lang: Optional[str], lang_confidence: Optional[float], published: Optional[datetime],
                   retrieved: Optional[datetime], source: Optional[str], author: Optional[str],
                   duplicate_of: Optional[str], hash: str) -> "Article":
        """An article from fields already checked, every one given: its strings valid Unicode and its
        ``hash`` that of its text, as an article stored and read back has them (SQLite hands back strings
        decoded from UTF-8, so they hold no surrogate). Nothing is checked again: a night reads hundreds
        of thousands of stored articles, and the check costs several times the rest of building one."""
        if not hash:
            raise ValueError("Article.from_valid needs the article's hash")
        article = object.__new__(cls)
        for name, value in zip(_field_names(cls), (id, text, title, url, path, lang, lang_confidence, published,
                                                   retrieved, source, author, duplicate_of, hash)):
            object.__setattr__(article, name, value)
        return article

    @property
    def chars(self) -> int:
        return len(self.text)


#: Reason codes a :class:`Rejection` may carry.
REJECT_REASONS = (
    "empty",  # nothing but whitespace
    "binary",  # not text at all
    "too_large",  # over the size limit
    "timeout",  # extraction took longer than the per-file limit
    "no_text",  # parsed, but no article text in it
    "decode_error",  # bytes that no encoding explains
    "parse_error",  # malformed JSON, WARC, HTML...
    "unreadable",  # permission denied, vanished, I/O error
    "unsupported",  # a file type storyclust does not read
    "duplicate",  # exact duplicate of an article already ingested
    "decompress_error",  # truncated or corrupt gzip, decompression bomb
    "worker_died",  # the worker process reading it died or was killed (crash, OOM killer, stuck in C code)
)

#: Reasons that say nothing about the input itself: the same file may well be read next
#: time (a slow or overloaded night, a file still being written or copied, a worker the OS
#: killed). Nightly runs retry inputs rejected for these; every other reason is permanent
#: (the same bytes would be rejected again).
TRANSIENT_REASONS = ("timeout", "unreadable", "worker_died")


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input (file, or record inside a file) that did not become an article.

    ``source`` and ``detail`` are valid Unicode by construction (:func:`valid_text`).
    """

    source: str  # path, or "path#N" for record N inside a file (line of a JSONL, item of a JSON list, WARC record)
    reason: str  # one of REJECT_REASONS
    detail: str = ""  # human-readable, one line

    def __post_init__(self) -> None:
        if self.reason not in REJECT_REASONS:
            raise ValueError(f"unknown rejection reason {self.reason!r}")
        _validate_strings(self)

    @property
    def transient(self) -> bool:
        """True when the input may well be read next time (see :data:`TRANSIENT_REASONS`)."""
        return self.reason in TRANSIENT_REASONS


#: How a member came to be in its story (``StoryMember.joined_by``).
JOIN_STEPS = (
    "cluster",  # the clustering of its night (or of a one-shot run) put it there
    "duplicate",  # an exact or near copy of an earlier member (``duplicate_of``)
    "merge",  # its story was merged into this one on a later night
    "split",  # it split off its earlier story with the rest of this one
)


@dataclass(frozen=True, slots=True)
class StoryMember:
    article: Article
    similarity: float  # cosine similarity to the story centroid, in the clustering space
    joined_by: Optional[str] = None  # the step that put it here: see JOIN_STEPS


@dataclass(frozen=True, slots=True)
class Story:
    """A group of articles about one news event."""

    story_id: str
    members: tuple[StoryMember, ...]
    singleton: bool = False  # True when the clusterer left the article as noise
    status: Optional[str] = None  # new / updated / closed (incremental runs only)
    added: tuple[str, ...] = ()  # article ids added in this run (incremental runs only)
    merged_into: Optional[str] = None
    split_from: Optional[str] = None
    labels: tuple[str, ...] = ()  # a few keywords saying what the story is about
    forgotten: int = 0  # older members retention forgot (nightly runs with --keep only)
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def articles(self) -> list[Article]:
        return [m.article for m in self.members]

    @property
    def languages(self) -> list[str]:
        """Languages of the members, most frequent first (ties alphabetical)."""
        counts: dict[str, int] = {}
        for m in self.members:
            if m.article.lang:
                counts[m.article.lang] = counts.get(m.article.lang, 0) + 1
        return sorted(counts, key=lambda lang: (-counts[lang], lang))

    @property
    def headline(self) -> Optional[str]:
        """Title of the most central member that has one."""
        for m in sorted(self.members, key=lambda m: -m.similarity):
            if m.article.title:
                return m.article.title
        return None

    @property
    def first_published(self) -> Optional[datetime]:
        dates = [m.article.published for m in self.members if m.article.published]
        return min(dates) if dates else None

    @property
    def last_published(self) -> Optional[datetime]:
        dates = [m.article.published for m in self.members if m.article.published]
        return max(dates) if dates else None
