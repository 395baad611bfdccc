"""The small, typed records that flow between storyclust's stages.

Data flows one way: ``ingest`` yields :class:`Article` or :class:`Rejection`;
``embed`` turns articles into vectors; ``cluster`` groups them into
:class:`Story` objects; ``output`` turns all of these into JSON Lines records.
Every type here is a frozen dataclass so that stages cannot mutate each other's
data behind their backs.
"""
from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from typing import Optional

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


@dataclass(frozen=True, slots=True)
class Article:
    """One clean news article, ready to embed."""

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
        if not self.hash:
            object.__setattr__(self, "hash", content_hash(self.text))

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
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """An input (file, or record inside a file) that did not become an article."""

    source: str  # path, or "path#line" / "path#record-N" for a record inside a file
    reason: str  # one of REJECT_REASONS
    detail: str = ""  # human-readable, one line

    def __post_init__(self) -> None:
        if self.reason not in REJECT_REASONS:
            raise ValueError(f"unknown rejection reason {self.reason!r}")


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
