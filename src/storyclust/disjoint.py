"""Disjoint sets (union-find): which items a set of pairs joins, in near-constant time per operation.

Used wherever pairs join things: corrections (linked article ids), cross-validation folds (articles
joined by labelled pairs), the benchmarks' story components.
"""
from __future__ import annotations

from typing import Generic, Hashable, TypeVar

T = TypeVar("T", bound=Hashable)

__all__ = ["DisjointSets"]


class DisjointSets(Generic[T]):
    """Union-find with path halving; the smaller item (by ``<``) represents its set, so roots are
    deterministic whatever the order of the unions."""

    def __init__(self) -> None:
        self.parent: dict[T, T] = {}

    def find(self, x: T) -> T:
        parent = self.parent
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: T, b: T) -> bool:
        """Join the sets of ``a`` and ``b``; False when they were one set already."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        self.parent[max(ra, rb)] = min(ra, rb)  # type: ignore[type-var]
        return True
