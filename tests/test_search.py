"""The candidate search against brute force, for every mix of dated and undated articles.

Brute force: for each row, every other row at cosine >= the threshold whose date, when both dates
are known, lies within the window; the row keeps its top ``neighbors`` by cosine (ties: lower
column). The exact blocked search, the approximate search with every cell probed, and (in
tests/test_ray.py) the Ray engine must give exactly those edges and similarities, whatever the
share of undated rows, the window, or the block size that cuts runs of dated rows.
"""
from __future__ import annotations

import numpy as np
import pytest

from storyclust.cluster import candidate_edges

NAN_SHARES = (0.0, 0.01, 0.5, 0.99, 1.0)
WINDOWS = (0.5, 7.0, 60.0)


def mixed_corpus(n: int, nan_share: float, seed: int, dim: int = 12, span_days: float = 150.0):
    """Unit rows in loose groups (so many pairs pass the threshold), dates over ``span_days``, a share undated."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(2, n // 20), dim))
    Z = centres[rng.integers(len(centres), size=n)] + 0.6 * rng.normal(size=(n, dim))
    Z = (Z / np.linalg.norm(Z, axis=1, keepdims=True)).astype(np.float32)
    days = rng.uniform(19000.0, 19000.0 + span_days, size=n)
    days[rng.permutation(n)[: int(round(nan_share * n))]] = np.nan
    return Z, days


def brute_force_edges(Z, days, min_sim, window, neighbors) -> dict[tuple[int, int], float]:
    """``{(row, col): cosine}``: each row's top ``neighbors`` among all admissible pairs."""
    S = (Z.astype(np.float64) @ Z.astype(np.float64).T).astype(np.float32)
    ok = S >= min_sim
    np.fill_diagonal(ok, False)
    if window is not None and days is not None:
        ok &= ~(np.abs(days[:, None] - days[None, :]) > window)  # NaN: no date, no limit
    edges = {}
    for i in range(len(Z)):
        cols = np.flatnonzero(ok[i])
        best = cols[np.lexsort((cols, -S[i, cols]))][:neighbors]
        edges.update({(i, int(j)): float(S[i, j]) for j in best})
    return edges


def as_dict(rows, cols, sims) -> dict[tuple[int, int], float]:
    return {(int(r), int(c)): float(s) for r, c, s in zip(rows, cols, sims)}


def assert_same_edges(found: dict, expected: dict) -> None:
    missing, extra = set(expected) - set(found), set(found) - set(expected)
    assert not missing and not extra, f"{len(missing)} edges missing (e.g. {sorted(missing)[:3]}), {len(extra)} extra"
    worst = max((abs(found[e] - expected[e]) for e in expected), default=0.0)
    assert worst <= 1e-6


@pytest.mark.parametrize("nan_share", NAN_SHARES)
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("block_size", (16, 100, 4096))
def test_exact_search_is_brute_force_for_every_date_mix(nan_share, window, block_size):
    Z, days = mixed_corpus(400, nan_share, seed=int(nan_share * 100) + int(window))
    expected = brute_force_edges(Z, days, 0.5, window, neighbors=8)
    found = as_dict(*candidate_edges(Z, days, 0.5, 8, window, block_size, return_similarity=True))
    assert_same_edges(found, expected)


@pytest.mark.parametrize("nan_share", NAN_SHARES)
@pytest.mark.parametrize("window", (0.5, 60.0))
def test_approximate_search_probing_every_cell_is_brute_force(nan_share, window):
    Z, days = mixed_corpus(400, nan_share, seed=7)
    expected = brute_force_edges(Z, days, 0.5, window, neighbors=8)
    # 400 rows make 20 cells: probing 20 compares every pair, so nothing may be missed
    found = as_dict(*candidate_edges(Z, days, 0.5, 8, window, 64, probes=20, return_similarity=True))
    assert_same_edges(found, expected)


@pytest.mark.parametrize("nan_share", (0.0, 0.5, 1.0))
@pytest.mark.parametrize("window", (0.5, 60.0))
@pytest.mark.parametrize("block_size", (16, 4096))
def test_exact_search_in_one_big_story_is_brute_force(nan_share, window, block_size):
    """300 reports of one story (every pair far over the threshold) among loose rows: the rows with many more
    candidates than neighbours are cut to their possible top k in the block, and the edges stay brute force's."""
    rng = np.random.default_rng(int(window) + block_size)
    Z, days = mixed_corpus(400, nan_share, seed=5)
    Z[:300] = rng.normal(size=12) + 0.15 * rng.normal(size=(300, 12))
    Z = (Z / np.linalg.norm(Z, axis=1, keepdims=True)).astype(np.float32)
    expected = brute_force_edges(Z, days, 0.5, window, neighbors=5)
    found = as_dict(*candidate_edges(Z, days, 0.5, 5, window, block_size, return_similarity=True))
    assert_same_edges(found, expected)


def test_dated_rows_among_many_undated_link_within_the_window():
    """The shape of the reported bug: a few thousand undated rows and ~160 dated ones, shuffled."""
    rng = np.random.default_rng(0)
    n_undated, n_dated = 2314, 163
    days = np.r_[np.full(n_undated, np.nan), rng.uniform(19000, 19150, n_dated)]
    perm = rng.permutation(len(days))
    days = days[perm]
    Z = rng.normal(size=(len(days), 16)).astype(np.float32)
    Z /= np.linalg.norm(Z, axis=1, keepdims=True)
    rows, cols = candidate_edges(Z, days, max_distance=3.0 - 1e-9, neighbors=len(days), time_window_days=7)
    dated = ~np.isnan(days)
    found = {(int(r), int(c)) for r, c in zip(rows, cols) if dated[r] and dated[c]}
    d = np.flatnonzero(dated)
    close = {(int(i), int(j)) for i in d for j in d if i != j and abs(days[i] - days[j]) <= 7}
    assert len(close) > 1000 and found == close


def test_search_with_no_dates_ignores_the_window():
    Z, _ = mixed_corpus(200, 0.0, seed=3)
    expected = brute_force_edges(Z, None, 0.5, None, neighbors=5)
    assert_same_edges(as_dict(*candidate_edges(Z, None, 0.5, 5, 7.0, 32, return_similarity=True)), expected)


@pytest.mark.parametrize("nan_share", NAN_SHARES)
@pytest.mark.parametrize("window", WINDOWS)
def test_rows_near_is_brute_force_for_every_date_mix(nan_share, window):
    """The nightly reach test (which open stories tonight's articles touch): every window row at cosine >= the
    threshold of some query row within the date window, exactly, and with every coarse cell probed; a cell
    search probing fewer cells finds a subset of them."""
    from storyclust.cluster import rows_near

    Z, days = mixed_corpus(700, nan_share, seed=int(window * 10 + nan_share * 100))
    Q, D, q_days, d_days = Z[:40], Z[40:], days[:40], days[40:]
    S = Q.astype(np.float64) @ D.astype(np.float64).T
    ok = (S >= 0.8) & ~(np.abs(q_days[:, None] - d_days[None, :]) > window)
    expected = ok.any(axis=0)
    assert 0 < expected.sum() < len(D)  # the case is not trivial
    exact = rows_near(Q, q_days, D, d_days, 0.8, window)
    every_cell = rows_near(Q, q_days, D, d_days, 0.8, window, probes=10_000)
    few = rows_near(Q, q_days, D, d_days, 0.8, window, probes=2)
    assert np.array_equal(exact, expected) and np.array_equal(every_cell, expected)
    assert not (few & ~expected).any() and few.sum() >= 0.5 * expected.sum()
    assert np.array_equal(rows_near(Q, None, D, None, 0.8, window), (S >= 0.8).any(axis=0))  # no dates: no limit
