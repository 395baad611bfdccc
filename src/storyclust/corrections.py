"""An editor's corrections: articles that belong to one story (``link``) and pairs that never share one
(``unlink``), honoured by every later clustering.

The clusterer takes them as must-link and cannot-link constraints on its rows
(:meth:`storyclust.cluster.StoryClusterer.fit`), so the one-shot driver (``cluster``/``run
--corrections FILE``) and the nightly driver (corrections kept in the state by ``storyclust link`` /
``unlink``) give the same partition for the same corrections.

Rules:

* a link of several ids puts them all in one story, and with them whatever else the evidence puts
  with any of them; links chain (A-B and B-C put A, B and C together);
* an unlink of two ids keeps them apart, also when evidence (or other articles) would bridge them:
  the story that would hold both is cut where its average-linkage tree separates them; an exact or
  near copy that an unlink separates from its first copy is clustered on its own;
* a set of corrections in which an unlinked pair is joined by a chain of links contradicts itself,
  and is refused with a message naming the corrections involved.

A correction file is JSON Lines: ``{"type": "correction", "link": ["id1", "id2", ...]}`` or
``{"type": "correction", "unlink": ["id1", "id2"]}``, with an optional ``"note"``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Container, Iterable, Mapping, Optional, Sequence

from .disjoint import DisjointSets
from .types import SCHEMA_VERSION

__all__ = ["Correction", "CorrectionError", "UnknownArticles", "check", "read_corrections", "correction_from_record",
           "correction_to_record", "constraint_pairs", "detach_unlinked_copies", "named_ids", "linked_ids",
           "decided_by", "record_corrections"]

KINDS = ("link", "unlink")


class CorrectionError(ValueError):
    """A correction (or a set of them) that cannot be honoured: bad shape, or a contradiction."""


@dataclass(frozen=True)
class Correction:
    """``link``: ``ids`` share a story; ``unlink``: the two ``ids`` never do."""

    kind: str
    ids: tuple[str, ...]
    note: Optional[str] = None
    created: Optional[datetime] = None
    correction_id: Optional[int] = None  # its number in a state file
    applied_run: Optional[int] = None  # the run that first applied it (None: the next run will)
    removed: Optional[datetime] = None  # taken back (the next run re-clusters without it)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise CorrectionError(f"a correction is a link or an unlink, not {self.kind!r}")
        ids = tuple(str(i) for i in self.ids)
        object.__setattr__(self, "ids", ids)
        if len(set(ids)) != len(ids):
            raise CorrectionError(f"an article cannot be {self.kind}ed to itself: {_names(ids)}")
        if self.kind == "link" and len(ids) < 2:
            raise CorrectionError("link needs at least two article ids")
        if self.kind == "unlink" and len(ids) != 2:
            raise CorrectionError(f"unlink takes exactly two article ids, not {len(ids)}")

    def describe(self) -> str:
        number = f"#{self.correction_id} " if self.correction_id is not None else ""
        return f"{number}{self.kind} {' '.join(self.ids)}"


class UnknownArticles(CorrectionError):
    """A correction names articles the state does not hold."""


def record_corrections(store, corrections: Sequence[Correction], now: datetime,
                       incoming: Container[str] = frozenset()) -> list[Correction]:
    """Check ``corrections`` against a state and store the new ones (under the caller's run lock).

    ``incoming``: ids of articles the caller is about to take in (they count as known).
    Raises :class:`UnknownArticles` for ids the state does not hold (a pruned id included) and
    :class:`CorrectionError` when they contradict each other or the state's corrections; changes
    nothing then. Returns the corrections stored (one already in force is not stored twice)."""
    wanted = named_ids(corrections)
    missing = sorted(i for i in wanted - store.stored_ids(wanted) if i not in incoming)
    if missing:
        pruned = store.known_ids(missing)
        detail = f" ({len(pruned)} of them pruned)" if pruned else ""
        raise UnknownArticles(f"no article with id {', '.join(missing)} in the state{detail}")
    existing = store.corrections()
    check(existing + list(corrections))
    seen = {(c.kind, frozenset(c.ids)) for c in existing}
    stored = []
    with store.transaction():
        for c in corrections:
            key = (c.kind, frozenset(c.ids))
            if key in seen:
                continue
            seen.add(key)
            number = store.add_correction(c, now)
            stored.append(Correction(c.kind, c.ids, c.note, now, number))
    return stored


def _names(ids: Iterable[str]) -> str:
    return " ".join(ids)


def check(corrections: Sequence[Correction]) -> None:
    """Raise CorrectionError when an unlinked pair is joined by a chain of links (naming the corrections)."""
    sets: DisjointSets[str] = DisjointSets()
    links = [c for c in corrections if c.kind == "link" and c.removed is None]
    for c in links:
        for a, b in zip(c.ids, c.ids[1:]):
            sets.union(a, b)
    for c in corrections:
        if c.kind == "unlink" and c.removed is None and sets.find(c.ids[0]) == sets.find(c.ids[1]):
            chain = _link_chain(c.ids[0], c.ids[1], links)
            raise CorrectionError(
                f"contradictory corrections: {c.describe()} keeps apart two articles that "
                f"{', '.join(x.describe() for x in chain)} put in one story; remove one of them first")


def _link_chain(a: str, b: str, links: Sequence[Correction]) -> list[Correction]:
    """The link corrections on a shortest chain from ``a`` to ``b`` (breadth-first over linked ids)."""
    edges: dict[str, list[tuple[str, Correction]]] = {}
    for c in links:
        for x in c.ids:
            for y in c.ids:
                if x != y:
                    edges.setdefault(x, []).append((y, c))
    came: dict[str, tuple[str, Correction] | None] = {a: None}
    queue = [a]
    while queue and b not in came:
        x = queue.pop(0)
        for y, c in edges.get(x, ()):
            if y not in came:
                came[y] = (x, c)
                queue.append(y)
    chain: list[Correction] = []
    node = b
    while came.get(node) is not None:
        node, c = came[node]  # type: ignore[misc]
        if c not in chain:
            chain.append(c)
    return chain[::-1]


def correction_from_record(record: Mapping, where: str = "") -> Correction:
    """A :class:`Correction` from ``{"type": "correction", "link"|"unlink": [ids], "note": ...}``."""
    if not isinstance(record, Mapping) or record.get("type", "correction") != "correction":
        raise CorrectionError(f"{where}not a correction record")
    kinds = [k for k in KINDS if k in record]
    if len(kinds) != 1 or not isinstance(record[kinds[0]], list):
        raise CorrectionError(f"{where}a correction has one of 'link' or 'unlink', a list of article ids")
    note = record.get("note")
    try:
        return Correction(kinds[0], tuple(record[kinds[0]]), None if note is None else str(note))
    except CorrectionError as exc:
        raise CorrectionError(f"{where}{exc}") from None


def read_corrections(path: str) -> list[Correction]:
    """The corrections of a JSON Lines file (``-`` is not accepted: stdin carries the articles), checked."""
    out: list[Correction] = []
    try:
        with open(path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise CorrectionError(f"{path}:{number}: not JSON ({exc})") from None
                out.append(correction_from_record(record, f"{path}:{number}: "))
    except OSError as exc:
        raise CorrectionError(f"cannot read corrections {path}: {exc}") from None
    check(out)
    return out


def correction_to_record(c: Correction) -> dict:
    record: dict = {"schema_version": SCHEMA_VERSION, "type": "correction", c.kind: list(c.ids)}
    if c.correction_id is not None:
        record["id"] = c.correction_id
    record["note"] = c.note
    if c.created is not None:
        record["created"] = c.created.isoformat()
    if c.correction_id is not None:
        record["applied_run"] = c.applied_run
    if c.removed is not None:
        record["removed"] = c.removed.isoformat()
    return record


def named_ids(corrections: Iterable[Correction]) -> set[str]:
    return {i for c in corrections for i in c.ids}


def linked_ids(corrections: Iterable[Correction]) -> set[str]:
    return {i for c in corrections if c.kind == "link" and c.removed is None for i in c.ids}


def constraint_pairs(corrections: Iterable[Correction], row_of: Mapping[str, int]
                     ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """``(must_link, cannot_link)`` row pairs for the clusterer; ``row_of`` maps an article id (a copy's id
    to its first copy's row) to its row. Ids with no row here are left out."""
    must: set[tuple[int, int]] = set()
    cannot: set[tuple[int, int]] = set()
    for c in corrections:
        if c.removed is not None:
            continue
        rows = [row_of[i] for i in c.ids if i in row_of]
        if c.kind == "link":
            must |= {(a, b) for a, b in zip(rows, rows[1:]) if a != b}
        elif len(rows) == 2 and rows[0] != rows[1]:
            cannot.add((rows[0], rows[1]))
    return sorted(must), sorted(cannot)


def detach_unlinked_copies(duplicate_of: Mapping[str, Optional[str]], corrections: Iterable[Correction]
                           ) -> set[str]:
    """Ids of copies to cluster on their own: an unlink separates them from the first copy they follow.

    ``duplicate_of`` maps every article id to the first copy it follows (None: it is a first copy)."""
    detached: set[str] = set()
    for c in corrections:
        if c.kind != "unlink" or c.removed is not None or not all(i in duplicate_of for i in c.ids):
            continue
        a, b = c.ids
        root_a = a if a in detached else (duplicate_of[a] or a)
        root_b = b if b in detached else (duplicate_of[b] or b)
        if root_a == root_b:
            detached.add(b if b != root_b else a)
    return detached


def decided_by(a: str, b: str, corrections: Sequence[Correction]) -> Optional[tuple[str, list[Correction]]]:
    """``("link", chain)`` when links put ``a`` and ``b`` in one story, ``("unlink", [c])`` when one keeps
    them apart; None when no correction decides the pair."""
    live = [c for c in corrections if c.removed is None]
    for c in live:
        if c.kind == "unlink" and set(c.ids) == {a, b}:
            return "unlink", [c]
    chain = _link_chain(a, b, [c for c in live if c.kind == "link"])
    return ("link", chain) if chain else None
