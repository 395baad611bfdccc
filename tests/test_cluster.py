"""The clusterer on vectors whose right answer is known by construction."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from storyclust.cluster import ClusterOptions, StoryClusterer, candidate_edges
from storyclust.pipeline import build_story, cluster_articles, fold_copies, name_stories
from storyclust.types import Article

DIM = 64


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _corpus(n_stories=12, per_story=4, langs=("fr", "id", "en", "de"), lang_offset=2.0, noise=0.25, seed=0):
    """Stories = random directions; each language adds a large shared offset, as multilingual models do."""
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(n_stories, DIM))
    offsets = {lang: lang_offset * _unit(rng.normal(size=DIM)) for lang in langs}
    X, L, gold = [], [], []
    for s in range(n_stories):
        for j in range(per_story):
            lang = langs[j % len(langs)]
            X.append(_unit(topics[s]) + offsets[lang] / np.sqrt(DIM) * 4 + noise * rng.normal(size=DIM) / np.sqrt(DIM))
            L.append(lang)
            gold.append(s)
    return _unit(np.array(X, dtype=np.float32)), L, np.array(gold)


def _same_partition(a, b):
    pairs = lambda lab: {(i, j) for i in range(len(lab)) for j in range(i + 1, len(lab)) if lab[i] == lab[j]}
    return pairs(a) == pairs(b)


def test_language_offset_dominates_raw_space_but_not_neutral_space():
    X, langs, gold = _corpus()
    # in the raw space, the nearest neighbour of most rows is a same-language row of another story
    S = X @ X.T
    np.fill_diagonal(S, -1)
    nn = S.argmax(1)
    assert np.mean(gold[nn] == gold) < 0.5
    clusterer = StoryClusterer(ClusterOptions(max_distance=0.6)).fit(X, langs=langs)
    assert _same_partition(clusterer.labels_, gold)
    raw = StoryClusterer(ClusterOptions(max_distance=0.6, neutralize=False)).fit(X, langs=langs)
    assert not _same_partition(raw.labels_, gold)


@pytest.mark.parametrize("method", ["average", "hdbscan"])
def test_every_row_gets_exactly_one_label_and_results_are_deterministic(method):
    X, langs, _ = _corpus(seed=3)
    opts = ClusterOptions(method=method)
    a = StoryClusterer(opts).fit_predict(X, langs=langs)
    b = StoryClusterer(opts).fit_predict(X, langs=langs)
    assert len(a) == len(X) and (a >= 0).all()
    assert np.array_equal(a, b)


def test_time_window_keeps_same_topic_far_apart_in_time_separate():
    X, langs, gold = _corpus()
    n = len(X)
    X = np.concatenate([X, X])  # the same vectors again, two months later: different events
    langs = langs + langs
    t0 = datetime(2026, 1, 10, tzinfo=timezone.utc)
    dates = [t0] * n + [t0 + timedelta(days=60)] * n
    labels = StoryClusterer(ClusterOptions(time_window_days=7)).fit_predict(X, langs=langs, published=dates)
    assert _same_partition(labels, np.concatenate([gold, gold + 100]))
    joined = StoryClusterer(ClusterOptions(time_window_days=None)).fit_predict(X, langs=langs, published=dates)
    assert _same_partition(joined, np.concatenate([gold, gold]))


def test_candidate_edges_respect_threshold_neighbours_and_window():
    rng = np.random.default_rng(1)
    Z = _unit(rng.normal(size=(300, 16)).astype(np.float32))
    rows, cols = candidate_edges(Z, None, max_distance=0.7, neighbors=5, time_window_days=None, block_size=64)
    sims = np.einsum("ij,ij->i", Z[rows], Z[cols])
    assert (sims >= 0.3 - 1e-6).all() and (rows != cols).all()
    assert np.bincount(rows, minlength=300).max() <= 5
    # brute force: each row's best neighbour above the threshold is among its edges
    S = Z @ Z.T
    np.fill_diagonal(S, -1)
    edges = set(zip(rows.tolist(), cols.tolist()))
    for i in range(300):
        j = int(S[i].argmax())
        if S[i, j] >= 0.3:
            assert (i, j) in edges
    days = np.repeat(np.arange(3) * 30.0, 100)
    rows, cols = candidate_edges(Z, days, 0.7, 5, time_window_days=7, block_size=64)
    assert (np.abs(days[rows] - days[cols]) <= 7).all()


def test_running_language_means_make_small_batches_stable():
    X, langs, gold = _corpus(n_stories=8, per_story=4, seed=5)
    big = StoryClusterer(ClusterOptions(max_distance=0.6)).fit(X, langs=langs)
    # a tiny later batch: two articles of one story, neutralised with last run's means
    small = StoryClusterer(ClusterOptions(max_distance=0.6), language_means=big.language_means_)
    labels = small.fit_predict(X[:2], langs=langs[:2])
    assert labels[0] == labels[1]
    assert small.language_means_["fr"][1] == big.language_means_["fr"][1] + 1


def _articles(langs, dup_of=None):
    return [
        Article(id=f"a{i}", text=f"text {i}", title=f"title {i}", lang=lang,
                duplicate_of=(dup_of or {}).get(i))
        for i, lang in enumerate(langs)
    ]


def test_cluster_articles_near_duplicates_follow_their_first_copy():
    X, langs, gold = _corpus(n_stories=3, per_story=4, seed=7)
    # a5 is a near-duplicate of a0 (story 0) although its own vector sits in story 1
    arts = _articles(langs, dup_of={5: "a0"})
    stories = cluster_articles(arts, embeddings=X, options=ClusterOptions(max_distance=0.6))
    story_of = {m.article.id: s.story_id for s in stories for m in s.members}
    assert sorted(story_of) == sorted(a.id for a in arts)  # every article exactly once
    assert story_of["a5"] == story_of["a0"]


def test_duplicate_cycles_do_not_lose_articles():
    X, langs, _ = _corpus(n_stories=1, per_story=2)
    arts = _articles(langs, dup_of={0: "a1", 1: "a0"})
    stories = cluster_articles(arts, embeddings=X)
    assert sorted(m.article.id for s in stories for m in s.members) == ["a0", "a1"]


def test_story_ids_come_from_the_first_article_whatever_the_order_of_the_groups():
    arts = _articles(["fr", "id", "en", "de"])
    groups = [[arts[0], arts[1]], [arts[2]], [arts[3]]]
    ids = name_stories(groups)
    again = name_stories(groups[::-1])[::-1]
    assert ids == again and len(set(ids)) == 3
    assert all(i.startswith("s_") and len(i) == 14 for i in ids)
    salted = name_stories(groups, taken=ids)  # an id in use is never given again
    assert not set(salted) & set(ids)


def test_build_story_marks_singletons_and_similarities_to_the_centroid():
    X, langs, _ = _corpus(n_stories=1, per_story=2, seed=2)
    arts = _articles(langs[:2])
    pair = build_story("s_x", [(arts[0], X[0], "cluster"), (arts[1], X[1], "duplicate")])
    one = build_story("s_y", [(arts[0], X[0], "cluster")])
    assert not pair.singleton and one.singleton
    assert [m.joined_by for m in pair.members] == ["cluster", "duplicate"]
    assert all(-1.0 <= m.similarity <= 1.0 + 1e-6 for m in pair.members)
    assert one.members[0].similarity == pytest.approx(1.0, abs=1e-5)


def test_exact_and_near_copies_follow_their_first_copy():
    body = " ".join(f"word{i}" for i in range(60))
    first = Article(id="a", text=body)
    exact = Article(id="b", text=body)  # same text under another id
    near = Article(id="c", text=body.replace("word30", "changed"))
    other = Article(id="d", text=" ".join(f"other{i}" for i in range(60)))
    folded = fold_copies([first, exact, near, other])
    assert [a.duplicate_of for a in folded] == [None, "a", "a", None]
    assert [a.duplicate_of for a in fold_copies([first, exact, near], threshold=None)] == [None, "a", None]
    later = fold_copies([near], earlier=[first])  # the first copy came on an earlier night
    assert later[0].duplicate_of == "a"


def test_fit_starts_afresh_and_partial_fit_equals_one_fit():
    X, langs, gold = _corpus(n_stories=6, per_story=4, seed=5)
    options = ClusterOptions(max_distance=0.6)
    once = StoryClusterer(options).fit(X, langs=langs)
    twice = StoryClusterer(options).fit(X, langs=langs).fit(X, langs=langs)
    assert _same_partition(once.labels_, twice.labels_)
    assert once.language_means_["fr"][1] == twice.language_means_["fr"][1]
    stepwise = StoryClusterer(options).fit(X[:10], langs=langs[:10]).partial_fit(X[10:], langs=langs[10:])
    assert _same_partition(once.labels_, stepwise.labels_)
    c = StoryClusterer(options)
    assert c.get_params()["max_distance"] == 0.6
    assert c.set_params(max_distance=0.4).options.max_distance == 0.4
    with pytest.raises(ValueError):
        c.set_params(max_distance=5.0)


def test_options_are_validated():
    with pytest.raises(ValueError):
        ClusterOptions(method="kmeans")
    with pytest.raises(ValueError):
        ClusterOptions(max_distance=0)


def test_approximate_search_finds_nearly_all_edges_and_no_false_ones():
    X, langs, gold = _corpus(n_stories=150, per_story=4, seed=11)
    Z = StoryClusterer(ClusterOptions()).fit(X, langs=langs).neutral_
    exact = set(zip(*map(np.ndarray.tolist, candidate_edges(Z, None, 0.6, 30, None))))
    rows, cols = candidate_edges(Z, None, 0.6, 30, None, probes=4, random_state=0)
    assert (np.einsum("ij,ij->i", Z[rows], Z[cols]) >= 0.4 - 1e-6).all()  # no false edge
    found = set(zip(rows.tolist(), cols.tolist()))
    assert found <= exact
    assert len(found) >= 0.95 * len(exact)
    again = candidate_edges(Z, None, 0.6, 30, None, probes=4, random_state=0)
    np.testing.assert_array_equal(again[0], rows)  # reproducible with random_state
    np.testing.assert_array_equal(again[1], cols)


def test_approximate_search_on_a_large_corpus_keeps_the_stories():
    X, langs, gold = _corpus(n_stories=300, per_story=4, seed=5)
    exact = StoryClusterer(ClusterOptions()).fit_predict(X, langs=langs)
    approx = StoryClusterer(ClusterOptions(approximate_above=100, search_probes=6)).fit_predict(X, langs=langs)
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(gold, exact) > 0.95
    assert adjusted_rand_score(exact, approx) > 0.98


def test_copies_of_copies_point_at_the_first_copy():
    body = " ".join(f"word{i}" for i in range(60))
    first = Article(id="a", text=body)
    near = Article(id="b", text=body.replace("word30", "changed"), duplicate_of="gone")  # names an unknown id
    chained = Article(id="c", text="an unrelated text entirely " * 5, duplicate_of="b")  # follows b by its chain
    folded = fold_copies([chained, first, near])
    assert {a.id: a.duplicate_of for a in folded} == {"c": "a", "a": None, "b": "a"}
    loop = fold_copies([Article(id="x", text="one text here " * 5, duplicate_of="y"),
                        Article(id="y", text="another text there " * 5, duplicate_of="x")], threshold=None)
    assert [a.duplicate_of for a in loop] == [None, None]


def test_folding_a_large_batch_of_linked_copies_is_linear():
    """Ingest links near copies (``duplicate_of``); a night of 100,000 articles with 10% of them linked, against
    a window of 100,000, took 10.8 s (no window) and minutes with one when every link copied the whole batch."""
    import time

    earlier = [Article(id=f"e{i}", text=f"earlier report number {i} " * 5) for i in range(100_000)]
    batch = [Article(id=f"n{i}", text=f"tonight report number {i} " * 5,
                     duplicate_of=(f"e{i}" if i % 20 == 0 else f"n{i - 1}") if i % 10 == 0 and i else None)
             for i in range(100_000)]
    start = time.perf_counter()
    folded = fold_copies(batch, earlier=earlier, threshold=None)
    assert time.perf_counter() - start < 3.0  # ~0.3 s here; the quadratic version needs minutes
    linked = {a.id: a.duplicate_of for a in folded if a.duplicate_of}
    assert len(linked) == 9_999 and linked["n20"] == "e20" and linked["n10"] == "n9"


# -- weighted summaries (nightly runs cluster a long story's older members as a few weighted rows) ---------


def test_the_weighted_average_tree_is_scipys_and_a_weight_counts_as_that_many_rows():
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import pdist, squareform

    from storyclust.cluster import weighted_average_tree

    rng = np.random.default_rng(0)
    for _ in range(30):
        m = int(rng.integers(3, 30))
        P = rng.normal(size=(m, 4))
        D = squareform(pdist(P))
        ours, theirs = weighted_average_tree(D, np.ones(m)), linkage(pdist(P), method="average")
        assert np.allclose(ours[:, 2], theirs[:, 2])
        w = rng.integers(1, 5, size=m)
        copies = linkage(pdist(np.repeat(P, w, axis=0)), method="average")  # each row w times, at distance 0
        weighted = weighted_average_tree(D, w)
        assert np.allclose(np.sort(weighted[:, 2]), np.sort(copies[:, 2])[w.sum() - m:])
        for t in (0.5, 1.5, 3.0):
            assert _same_partition(np.repeat(fcluster(weighted, t, "distance"), w), fcluster(copies, t, "distance"))


def _settled_corpus():
    """One topic in three waves: 30 old rows (days 0-1), 6 rows of day 5, 2 rows of day 10; with a 7-day window
    the old rows are near the day-5 rows and far from the day-10 ones."""
    rng = np.random.default_rng(1)
    topic = _unit(rng.normal(size=DIM))
    noise = np.r_[np.full(36, 0.15), np.full(2, 0.6)][:, None]  # the day-10 rows a little further off
    X = _unit(topic + noise * rng.normal(size=(38, DIM)) / np.sqrt(DIM)).astype(np.float32)
    t0 = datetime(2026, 5, 1, tzinfo=timezone.utc)
    dates = [t0 + timedelta(hours=float(h)) for h in rng.uniform(0, 40, 30)]
    dates += [t0 + timedelta(days=5, hours=k) for k in range(6)] + [t0 + timedelta(days=10, hours=k) for k in range(2)]
    return X, ["en"] * 38, dates


def test_settled_rows_cluster_as_their_rows_would_and_their_weight_counts():
    from storyclust.cluster import Settled

    X, langs, dates = _settled_corpus()
    opts = ClusterOptions(time_window_days=7, neutralize=False)
    full = StoryClusterer(opts).fit_predict(X, langs=langs, published=dates)
    assert len(set(full[:36])) == 1 and full[36] == full[37] != full[0]  # day 10 stands apart from the weight of the old
    pooled = StoryClusterer(opts).fit(X, langs=langs, published=dates,
                                      settled=Settled([0] * 30 + [-1] * 8, anchor=[35])).labels_
    assert _same_partition(pooled, full)
    # the same summary weighing one row: the day-10 rows join, which no clustering of the rows themselves does
    one = StoryClusterer(opts)
    one.fit(np.vstack([_unit(X[:30].mean(axis=0, keepdims=True)), X[30:]]), langs=langs[29:],
            published=[dates[0]] + dates[30:])
    assert len(set(one.labels_)) == 1


def test_a_summary_is_joined_to_its_story_in_the_candidate_graph():
    """A pool's mean date can lie outside the time window of its story's rows while most of its rows lie
    inside: no candidate edge reaches the summary, its anchor does."""
    from storyclust.cluster import Settled

    rng = np.random.default_rng(2)
    topic = _unit(rng.normal(size=DIM))
    X = _unit(topic + 0.15 * rng.normal(size=(14, DIM)) / np.sqrt(DIM)).astype(np.float32)
    t0 = datetime(2026, 5, 1, tzinfo=timezone.utc)
    dates = [t0 + timedelta(days=3)] * 9 + [t0 - timedelta(days=40)] + [t0 + timedelta(days=6.5)] * 4
    opts = ClusterOptions(time_window_days=7, neutralize=False)
    pools = [0] * 10 + [-1] * 4
    anchored = StoryClusterer(opts).fit(X, langs=["en"] * 14, published=dates, settled=Settled(pools, [10])).labels_
    alone = StoryClusterer(opts).fit(X, langs=["en"] * 14, published=dates, settled=Settled(pools)).labels_
    assert len(set(anchored)) == 1
    assert alone[0] != alone[10] and len(set(alone[10:])) == 1
    # a row named by an editor's pair is clustered on its own even when settled
    apart = StoryClusterer(opts).fit(X, langs=["en"] * 14, published=dates, settled=Settled(pools, [10]),
                                     cannot_link=[(0, 13)]).labels_
    assert apart[0] != apart[13] and apart[1] == apart[2]


def _story_of_tight_strands(strands=6, per_strand=40, distractors=120, seed=3):
    """One story whose reports fall in ``strands`` tight sub-groups (each quoting one spokesperson, say): every
    report's 30 nearest reports are in its own strand, while the strands lie at cosine ~0.8 of each other, far
    inside the story threshold. Then unrelated distractors. Returns (vectors, strand of each story row)."""
    rng = np.random.default_rng(seed)
    centre = _unit(rng.normal(size=DIM))
    rows = []
    for _ in range(strands):
        strand = _unit(centre + 0.5 * _unit(rng.normal(size=DIM)))
        rows += [_unit(strand + 0.03 * rng.normal(size=DIM)) for _ in range(per_strand)]
    rows += list(_unit(rng.normal(size=(distractors, DIM))))
    return np.array(rows, dtype=np.float32), np.repeat(np.arange(strands), per_strand)


def _components_of(n, rows, cols):
    from storyclust.cluster import _components

    label = np.empty(n, dtype=np.int64)
    for k, members in enumerate(_components(n, rows, cols)):
        label[members] = k
    return label


def test_a_story_bigger_than_the_neighbour_count_stays_whole_though_its_strands_are_tighter():
    Z, strand = _story_of_tight_strands()
    story = np.arange(len(strand))
    S = Z[story] @ Z[story].T
    np.fill_diagonal(S, -np.inf)
    nearest = np.argsort(-S, axis=1)[:, :30]
    assert (strand[nearest] == strand[:, None]).all()  # the 30 nearest of every report: its own strand
    between = [1.0 - S[np.ix_(strand == a, strand == b)].mean() for a in range(6) for b in range(a + 1, 6)]
    assert max(between) < 0.35  # average linkage at 0.5 joins the strands

    days = np.linspace(0.0, 3.0, len(Z))  # dated within the time window: the dated search and its heavy-row cut
    for kwargs in ({}, {"block_size": 32}, {"probes": 4}):
        for d in (None, days):
            top_k_only = candidate_edges(Z, d, 0.5, 30, 7.0, **kwargs)
            assert len(np.unique(_components_of(len(Z), *top_k_only)[story])) == 6  # the cut the bridges mend
            rows, cols, sims = candidate_edges(Z, d, 0.5, 30, 7.0, bridge_distance=0.5, return_similarity=True,
                                               **kwargs)
            assert len(np.unique(_components_of(len(Z), rows, cols)[story])) == 1
            assert (sims >= 0.5 - 1e-6).all()
            np.testing.assert_allclose(sims, np.einsum("ij,ij->i", Z[rows], Z[cols]), atol=1e-5)

    labels = StoryClusterer(ClusterOptions(neutralize=False)).fit_predict(Z)
    assert len(set(labels[story])) == 1
    assert not set(labels[len(story):]) & set(labels[story])  # no distractor joins it


def test_bridges_are_the_same_whatever_the_blocks():
    Z, _ = _story_of_tight_strands(seed=4)
    days = np.where(np.arange(len(Z)) % 3 == 0, np.nan, np.linspace(0.0, 20.0, len(Z)))  # some undated
    found = {bs: candidate_edges(Z, days, 0.5, 30, 7.0, bs, bridge_distance=0.5) for bs in (16, 64, 2048)}
    for bs in (16, 64):
        np.testing.assert_array_equal(found[bs][0], found[2048][0])
        np.testing.assert_array_equal(found[bs][1], found[2048][1])
