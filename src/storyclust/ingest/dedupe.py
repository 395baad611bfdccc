"""Exact and near-duplicate detection: content hashes, MinHash signatures and LSH banding.

A wire republished by several sites differs only by light edits and
boilerplate, so its word 3-shingles overlap almost entirely; two reports of
the same event written independently share names and facts but few
three-word sequences. The Jaccard similarity of shingle sets separates the two,
and MinHash estimates it from short signatures. LSH banding makes finding
candidates roughly linear in the number of articles.
"""
from __future__ import annotations

import re
import zlib
from dataclasses import replace
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from ..types import Article, Rejection

__all__ = ["Deduplicator", "shingle_hashes", "estimated_jaccard"]

_WORD = re.compile(r"\w+")
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)
#: Words per shingle for space-separated scripts; characters per shingle for the others.
WORD_SHINGLE = 3
CHAR_SHINGLE = 5
#: Texts with fewer shingles than this are only checked for exact duplicates.
MIN_SHINGLES = 8
#: Shingle hashes mapped through the permutations at a time: the work array is
#: ``_BLOCK x permutations x 8`` bytes (4 MiB at 128 permutations), whatever the text's length.
_BLOCK = 4096
#: Default for :attr:`Deduplicator.max_chars` (and ``IngestOptions.minhash_max_chars``).
MINHASH_MAX_CHARS = 200_000
#: Defaults of the signature's length and seed (``IngestOptions.minhash_permutations`` and ``seed``).
PERMUTATIONS = 128
SEED = 1
#: The default :attr:`Deduplicator.recipe`: the one the clusterer's fold of copies signs with.
DEFAULT_RECIPE = (PERMUTATIONS, SEED, MINHASH_MAX_CHARS)
_UNKNOWN = object()  # check(): no signature given, compute it
_NO_ROWS = np.empty(0, dtype=np.int64)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: spreads every input bit over the whole 64-bit word."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _tokens(text: str) -> tuple[list[str], int]:
    """Words (for scripts with spaces) or characters (Chinese, Japanese, Thai...), and the shingle size."""
    folded = text.casefold()
    words = _WORD.findall(folded)
    if words and len(folded) / len(words) <= 15:
        return words, WORD_SHINGLE
    return [ch for ch in folded if ch.isalnum()], CHAR_SHINGLE


def shingle_hashes(text: str) -> np.ndarray:
    """Distinct 64-bit hashes of the text's shingles (deterministic across runs and machines)."""
    tokens, size = _tokens(text)
    if len(tokens) < size:
        return np.empty(0, dtype=np.uint64)
    crcs = np.fromiter((zlib.crc32(t.encode("utf-8")) for t in tokens), dtype=np.uint64, count=len(tokens))
    token_hashes = _mix64(crcs)
    n = len(tokens) - size + 1
    combined = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(size):
            combined = _mix64(combined ^ token_hashes[offset : offset + n])
    return np.unique(combined)


class _Permutations:
    """``k`` random affine maps ``x -> (a*x + b) mod 2**64``, keeping the high 32 bits."""

    def __init__(self, k: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, 2**63, size=k, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        self.b = rng.integers(0, 2**63, size=k, dtype=np.uint64)

    def signature(self, hashes: np.ndarray) -> np.ndarray:
        """Per permutation, the least high half of ``a*x + b`` over ``hashes``, in blocks of :data:`_BLOCK`."""
        least = np.full(len(self.a), np.iinfo(np.uint64).max, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for start in range(0, len(hashes), _BLOCK):
                block = hashes[start : start + _BLOCK]
                values = block[:, None] * self.a[None, :] + self.b[None, :]
                np.minimum(least, (values >> np.uint64(32)).min(axis=0), out=least)
        return least.astype(np.uint32)


def estimated_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """Share of equal signature positions: an unbiased estimate of the Jaccard similarity."""
    return float(np.mean(sig_a == sig_b))


def _rows_per_band(k: int, threshold: float) -> int:
    """Widest band whose LSH threshold ``(1/b)**(1/r)`` stays 0.1 under ``threshold`` (few misses)."""
    for rows in (16, 8, 4, 2):
        if k % rows == 0 and (rows / k) ** (1 / rows) <= threshold - 0.1:
            return rows
    return 1


def _min_equal_positions(k: int, threshold: float) -> int:
    """The least number of equal positions (of ``k``) whose estimated Jaccard reaches ``threshold``;
    ``k + 1`` when none does (a threshold over 1).

    Evaluated as the estimated Jaccard is (:func:`estimated_jaccard`: the mean of a row of booleans, in
    float64) and compared (``>=``), so that "``m`` or more equal positions" and "estimated Jaccard >=
    threshold" are the same test, floating point included."""
    levels = (np.arange(k)[None, :] < np.arange(k + 1)[:, None]).mean(axis=1)  # row m: m of k positions equal
    reached = np.flatnonzero(levels >= threshold)
    return int(reached[0]) if len(reached) else k + 1


def _min_shared_bands(k: int, rows: int, threshold: float) -> int:
    """How many whole bands a signature shares with any match at ``threshold`` at least (and 1).

    A match agrees on at least ``m`` = :func:`_min_equal_positions` of the ``k`` positions, so it
    disagrees on at most ``k - m``; each disagreement spoils at most one band (of ``rows``
    positions), so at least ``k // rows - (k - m)`` bands are equal whole. At 128 permutations and
    a threshold of 0.8 (4 rows, 32 bands, m = 103) that is 7: a row found under fewer of the
    signature's band keys cannot be a match, and is not compared. Where the bound is 0 or less (low
    thresholds), a candidate must still share one band, as LSH banding always asked."""
    return max(1, k // rows - (k - _min_equal_positions(k, threshold)))


class Deduplicator:
    """Marks duplicates among articles seen in order (one instance per run).

    :meth:`check` returns a ``duplicate`` Rejection for the same article read again
    (same content hash and same id: a file listed twice, a record repeated), the
    article with ``duplicate_of`` set to the first copy's id when it is an exact copy
    under another id (a wire reprinted by a second site: a media monitor counts it)
    or a near duplicate, or the article as it is.

    Near duplicates are judged on the first ``max_chars`` characters of the text
    only, so one article's cost (time and memory) is bounded whatever its length:
    the token list, the shingle hashes (8 bytes each) and the blockwise signature
    work array together stay under ~100 bytes per character of that prefix plus
    4 MiB (about 25 MiB at the default 200,000). Memory kept per article: one
    signature (4 bytes per permutation) and its LSH keys (a 64-bit hash per band).

    A near copy is the earliest remembered article of the highest estimated Jaccard >= ``threshold``
    among those sharing a band with it. Where the bound of :func:`_min_shared_bands` is 1 or more (at
    128 permutations: thresholds over 0.75 up to 0.807, the default 0.8 among them, and over 0.875),
    every such article shares a band, so the result is exactly that of comparing the signature with
    every remembered one.
    """

    def __init__(
        self, threshold: float = 0.8, permutations: int = PERMUTATIONS, seed: int = SEED,
        max_chars: int = MINHASH_MAX_CHARS
    ) -> None:
        self.threshold = threshold
        self.max_chars = max_chars
        #: the signature's recipe: two instances with equal ``recipe`` give a text the same signature
        self.recipe = (permutations, seed, max_chars)
        self._perms = _Permutations(permutations, seed)
        self._rows = _rows_per_band(permutations, threshold)
        self._bands = permutations // self._rows
        self._min_equal = _min_equal_positions(permutations, threshold)  # a match's equal positions, at least
        self._min_shared = _min_shared_bands(permutations, self._rows, threshold)  # and its shared bands
        self._by_hash: dict[str, tuple[str, str]] = {}  # content hash -> (first id, its first copy)
        #: per band, band hash -> the row that has it (an int: most bands belong to one article) or the rows
        self._buckets: list[dict[int, Union[int, list[int]]]] = [{} for _ in range(self._bands)]
        self._salt = _mix64(np.arange(1, self._bands + 1, dtype=np.uint64))  # one per band
        self._bulk: Optional[tuple[np.ndarray, np.ndarray]] = None  # remember_many's (sorted band hashes, rows)
        self._expected: dict[bytes, np.ndarray] = {}  # expect(): a signature's bytes -> its band hashes
        self._signatures = np.empty((0, permutations), dtype=np.uint32)  # row i: remembered article i (of _roots)
        self._roots: list[str] = []
        self.signatures: dict[str, Optional[np.ndarray]] = {}  # article id -> its signature (None: too short)
        #: when set, also receives each text's signature by content hash (kept by the caller: ingest hands
        #: them to the clusterer, whose fold would otherwise shingle the same texts again)
        self.by_text: Optional[dict[str, Optional[np.ndarray]]] = None

    def signature(self, article: Article) -> Optional[np.ndarray]:
        """The article's MinHash signature (uint32, one per permutation); None for a text too short to judge."""
        hashes = shingle_hashes(article.text[: self.max_chars])
        return self._perms.signature(hashes) if len(hashes) >= MIN_SHINGLES else None

    def expect(self, signatures: Iterable[Optional[np.ndarray]]) -> None:
        """Get ready to :meth:`check` (or :meth:`remember`) articles with these signatures (made with this
        instance's ``recipe``; None is skipped): their bands are hashed now, in one vectorised pass over
        the batch, instead of one signature at a time. Each is used by the first article with that signature."""
        signed = [sig for sig in signatures if sig is not None]
        if signed:
            S = np.stack(signed).astype(np.uint32, copy=False)
            self._expected.update(zip((row.tobytes() for row in S), self._band_hashes(S)))

    def remember(self, article: Article, signature: Optional[np.ndarray]) -> None:
        """Register an article already placed (its ``duplicate_of`` final), with its known signature,
        without looking for its own match: later articles can match it."""
        root = self._register(article, signature)
        if signature is not None:
            self._remember(signature, self._keys(signature), root)

    def remember_many(self, articles: Sequence[Article], signatures: Sequence[Optional[np.ndarray]]) -> None:
        """:meth:`remember` for many articles at once, e.g. a night's window of earlier articles.

        Their band keys are cut from one stacked matrix and kept in one sorted array (a search per
        lookup) instead of one dict entry per band and article: building the index of 60,000 articles
        costs numpy's sort, not two million dict insertions."""
        signed = []
        for article, signature in zip(articles, signatures):
            root = self._register(article, signature)
            if signature is not None:
                signed.append((signature, root))
        if not signed:
            return
        S = np.stack([sig for sig, _ in signed]).astype(np.uint32, copy=False)
        start = len(self._roots)
        self._grow(start + len(S))
        self._signatures[start : start + len(S)] = S
        self._roots += [root for _, root in signed]
        keys = self._band_hashes(S).ravel()  # row-major: row i band b at i * bands + b
        rows = np.repeat(np.arange(start, start + len(S), dtype=np.int64), self._bands)
        if self._bulk is not None:
            keys, rows = np.concatenate([self._bulk[0], keys]), np.concatenate([self._bulk[1], rows])
        order = np.argsort(keys, kind="stable")  # rows stay in index order within a key
        self._bulk = (keys[order], rows[order])

    def _register(self, article: Article, signature: Optional[np.ndarray]) -> str:
        """Note an article already placed (its content hash and signature); returns its first copy's id."""
        root = article.duplicate_of or article.id
        self._by_hash.setdefault(article.hash, (article.id, root))
        self.signatures[article.id] = signature
        return root

    def _band_hashes(self, S: np.ndarray) -> np.ndarray:
        """``(n, bands)`` uint64: a hash of each band of each signature row, salted by the band's number.

        These are the LSH keys, of the bulk index and of the buckets alike. Two equal bands have equal
        hashes; a hash equal by chance only adds a candidate, which the signatures' comparison judges."""
        B = S.reshape(len(S), self._bands, self._rows).astype(np.uint64)
        h = self._salt
        for j in range(self._rows):
            h = _mix64(h ^ B[:, :, j])
        return h

    def _keys(self, signature: np.ndarray) -> np.ndarray:
        """The band hashes of ``signature``: those :meth:`expect` made, else made now."""
        keys = self._expected.pop(signature.tobytes(), None)
        return self._band_hashes(signature[None, :])[0] if keys is None else keys

    def check(self, article: Article, source: str, signature=_UNKNOWN) -> Union[Article, Rejection]:
        """The article as placed (see the class docstring). ``signature``: its text's signature when already
        known (made with this instance's ``recipe``; None: too short), else it is computed. An article whose
        ``duplicate_of`` is set already keeps it: it is only registered (later articles can match it)."""
        first = self._by_hash.get(article.hash)
        if first is not None:
            first_id, root = first
            if first_id == article.id:
                return Rejection(source, "duplicate", f"same text and id as article {first_id} read before")
            return article if article.duplicate_of else replace(article, duplicate_of=root)
        self._by_hash[article.hash] = (article.id, article.duplicate_of or article.id)
        if signature is _UNKNOWN:
            signature = self.signature(article)
        self.signatures[article.id] = signature
        if self.by_text is not None:
            self.by_text[article.hash] = signature
        if signature is None:
            return article
        keys = self._keys(signature)
        if article.duplicate_of is None:
            match = self._best_match(signature, keys)
            if match is not None:
                article = replace(article, duplicate_of=self._roots[match])
        self._remember(signature, keys, article.duplicate_of or article.id)
        return article

    def _best_match(self, signature: np.ndarray, keys: np.ndarray) -> Optional[int]:
        """The earliest row of the highest estimated Jaccard >= threshold among the rows sharing a band.

        Only rows found under at least :func:`_min_shared_bands` of the signature's band keys can reach
        the threshold: the others are not compared. A row's estimated Jaccard is its share of equal
        positions, so the highest share is the highest count, and reaching the threshold is having at
        least :func:`_min_equal_positions` of them."""
        rows = self._found_enough(keys)
        if not len(rows):
            return None
        equal = np.count_nonzero(self._signatures[rows] == signature, axis=1)
        best = int(np.argmax(equal))  # rows ascend: the first of the highest is the earliest
        return int(rows[best]) if equal[best] >= self._min_equal else None

    def _found_enough(self, keys: np.ndarray) -> np.ndarray:
        """The rows (ascending) found under at least :func:`_min_shared_bands` of ``keys`` (one per band),
        counting the bulk index's and the buckets' together (a row is in one or the other)."""
        bulk, buckets = self._bulk_hits(keys), self._bucket_hits(keys.tolist())
        if len(bulk) + len(buckets) < self._min_shared:
            return _NO_ROWS
        rows, found = np.unique(np.concatenate([bulk, np.array(buckets, dtype=np.int64)]), return_counts=True)
        return rows[found >= self._min_shared]

    def _bulk_hits(self, keys: np.ndarray) -> np.ndarray:
        """The rows of :meth:`remember_many`'s index under each of ``keys``, one entry per key found."""
        if self._bulk is None:
            return _NO_ROWS
        bulk_keys, bulk_rows = self._bulk
        lo = np.searchsorted(bulk_keys, keys)
        found = np.searchsorted(bulk_keys, keys, side="right") - lo
        total = int(found.sum())
        if not total:
            return _NO_ROWS
        # the ranges lo[i] : lo[i] + found[i] end to end: each range's start, less the entries before it,
        # plus a running count
        starts = np.repeat(lo - (np.cumsum(found) - found), found)
        return bulk_rows[starts + np.arange(total)]

    def _bucket_hits(self, keys: list[int]) -> list[int]:
        """The rows of the buckets (articles remembered one by one) under each of ``keys``, one entry per key found."""
        hits: list[int] = []
        for bucket, key in zip(self._buckets, keys):
            found = bucket.get(key)
            if found is None:
                continue
            if isinstance(found, int):
                hits.append(found)
            else:
                hits.extend(found)
        return hits

    def _remember(self, signature: np.ndarray, keys: np.ndarray, root: str) -> None:
        row = len(self._roots)
        self._grow(row + 1)
        self._signatures[row] = signature
        self._roots.append(root)
        for bucket, key in zip(self._buckets, keys.tolist()):
            held = bucket.setdefault(key, row)
            if held != row:  # the band was used already: its rows are a list from its second use on
                if isinstance(held, list):
                    held.append(row)
                else:
                    bucket[key] = [held, row]

    def _grow(self, rows: int) -> None:
        """Room for ``rows`` signatures, growing by doubling: amortised O(1) per article."""
        have = len(self._signatures)
        if rows > have:
            grown = np.empty((max(64, 2 * have, rows), self._signatures.shape[1]), dtype=np.uint32)
            grown[: len(self._roots)] = self._signatures[: len(self._roots)]
            self._signatures = grown
