"""Exact and near-duplicate detection, both ways, on texts written for the test."""
from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import numpy as np
import pytest

from storyclust.ingest import IngestOptions, IngestStats, ingest_paths
from storyclust.ingest.dedupe import Deduplicator, _rows_per_band, shingle_hashes
from storyclust.types import Article, Rejection

WIRE = """LISBON, June 3 - Portugal's parliament approved on Thursday a plan to build a second airport for Lisbon, ending more than fifty years of debate over where the capital's growing air traffic should go.
The new airport will be built on a former military range south of the Tagus river and is expected to open in 2034, the infrastructure minister told lawmakers before the vote.
The existing Humberto Delgado airport handled a record thirty-three million passengers last year and regularly runs out of take-off and landing slots during the summer season.
Airlines had long complained that the lack of capacity was holding back tourism, one of the country's largest sources of income and jobs.
Environmental groups said they would challenge the decision in court, arguing that the site lies next to a nature reserve used by hundreds of thousands of migrating birds.
The government said the project would be financed mainly by the private operator of Portuguese airports, which will receive a longer concession in return.
Opposition parties backed the plan after the government agreed to build a new rail link between the airport and the centre of Lisbon before the first flights take off."""

# The same wire as another site republished it: light edits, a changed figure, its own boilerplate.
REPUBLISHED = """Portugal's parliament approved on Thursday a plan to build a second airport for Lisbon, ending more than fifty years of debate over where the capital's growing air traffic should go.
The new airport will be built on a former military range south of the Tagus river and is expected to open in 2034, the infrastructure minister told lawmakers ahead of the vote.
The existing Humberto Delgado airport handled a record thirty-three million passengers last year and regularly runs out of take-off and landing slots in the summer season.
Airlines had long complained that the lack of capacity was holding back tourism, one of the country's largest sources of income and jobs.
Environmental groups said they would challenge the decision in court, arguing that the site lies next to a nature reserve used by hundreds of thousands of migrating birds.
The government said the project would be financed mainly by the private operator of Portuguese airports, which will receive a longer concession in return.
Opposition parties backed the plan after the government agreed to build a new rail link between the airport and the centre of Lisbon before the first flights take off.
Source: wire services. Follow our live coverage of Portuguese politics."""

# The same event, reported independently: same names and facts, different sentences.
SAME_EVENT = """Lawmakers in Lisbon voted on Thursday in favour of a second airport for the Portuguese capital, a project first discussed in the late 1960s.
Construction will take place on land south of the Tagus that the army once used for firing practice, and the minister for infrastructure expects the first passengers in 2034.
Humberto Delgado, the current airport, is close to saturation: thirty-three million travellers passed through it last year, a record, and airlines say they cannot get more slots.
Bird protection groups are preparing a legal challenge because the site borders an estuary reserve where migrating birds stop every winter.
The airport operator, a private company, will pay for most of the work and in exchange its concession will be extended, according to the government.
A rail connection to central Lisbon is part of the deal that won over the opposition."""


def _dedupe(texts: list[str], threshold: float = 0.8) -> list[Article | Rejection]:
    deduper = Deduplicator(threshold)
    return [deduper.check(Article(id=f"a{i}", text=t), f"src{i}") for i, t in enumerate(texts)]


def test_republished_wire_is_a_near_duplicate() -> None:
    first, second = _dedupe([WIRE, REPUBLISHED])
    assert isinstance(first, Article) and first.duplicate_of is None
    assert isinstance(second, Article) and second.duplicate_of == "a0"


def test_same_event_written_independently_is_not_a_duplicate() -> None:
    first, second = _dedupe([WIRE, SAME_EVENT])
    assert second.duplicate_of is None
    a, b = (set(shingle_hashes(t).tolist()) for t in (WIRE, SAME_EVENT))
    assert len(a & b) / len(a | b) < 0.1


def test_order_decides_which_copy_is_first() -> None:
    first, second = _dedupe([REPUBLISHED, WIRE])
    assert first.duplicate_of is None and second.duplicate_of == "a0"


def test_chain_of_copies_points_at_the_first() -> None:
    third = REPUBLISHED.replace("record thirty-three million", "record 33 million")
    items = _dedupe([WIRE, REPUBLISHED, third])
    assert [a.duplicate_of for a in items] == [None, "a0", "a0"]


def test_exact_copy_under_another_id_follows_its_first_copy_even_with_other_whitespace_and_case() -> None:
    first, second = _dedupe([WIRE, "  " + WIRE.upper().replace("\n", "\n\n")])
    assert isinstance(first, Article) and first.duplicate_of is None
    assert isinstance(second, Article) and second.duplicate_of == "a0"


def test_the_same_article_read_twice_is_rejected() -> None:
    dedupe = Deduplicator()
    article = Article(id="wire-1", text=WIRE)
    assert dedupe.check(article, "src0") is article
    again = dedupe.check(Article(id="wire-1", text=WIRE), "src1")
    assert isinstance(again, Rejection) and again.reason == "duplicate" and "wire-1" in again.detail
    assert again.source == "src1"


def test_threshold_controls_near_duplicates() -> None:
    assert _dedupe([WIRE, REPUBLISHED], threshold=1.0)[1].duplicate_of is None


def test_cjk_texts_use_character_shingles() -> None:
    text = (
        "中国监管机构近日约谈了阿里巴巴、腾讯等十一家科技公司，讨论深度伪造技术在其内容平台上的使用问题。"
        "监管部门要求企业自行开展安全评估，并在上线具有舆论属性的新功能时向政府提交报告。"
        "业内人士表示，这一举措反映出监管部门对新技术风险的高度关注，预计相关规定将在年内出台。"
    )
    edited = text.replace("十一家", "11家")
    other = "日本央行周四宣布维持超宽松货币政策不变，并表示将继续密切关注汇率变动对经济的影响。" * 2
    assert len(shingle_hashes(text)) > 30
    items = _dedupe([text, edited, other])
    assert [a.duplicate_of for a in items] == [None, "a0", None]


def test_shingle_hashes_are_deterministic() -> None:
    assert np.array_equal(shingle_hashes(WIRE), shingle_hashes(WIRE))
    assert shingle_hashes(WIRE).dtype == np.uint64


@pytest.mark.parametrize("dedupe", [True, False])
def test_ingest_marks_and_rejects_duplicates(tmp_path: Path, dedupe: bool) -> None:
    path = tmp_path / "wires.jsonl"
    records = [
        {"id": "wire", "text": WIRE},
        {"id": "copy", "text": REPUBLISHED},
        {"id": "other", "text": SAME_EVENT},
        {"id": "again", "text": WIRE},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    stats = IngestStats()
    items = list(ingest_paths([path], IngestOptions(jobs=1, dedupe=dedupe), stats=stats))
    if dedupe:
        assert [i.duplicate_of for i in items] == [None, "wire", None, "wire"]  # "again": an exact copy
        assert stats.near_duplicates == 2 and not stats.rejects
    else:
        assert all(isinstance(i, Article) and i.duplicate_of is None for i in items)


def test_an_index_built_at_once_matches_as_one_built_article_by_article() -> None:
    """remember_many (a night's window, as one sorted array of band hashes) finds the same first copies as
    remember called per article (one dict entry per band), for copies, near copies and new texts alike."""
    rng = np.random.default_rng(7)
    sentences = [s for text in (WIRE, REPUBLISHED, SAME_EVENT) for s in text.splitlines()]
    words = " ".join(sentences).split()

    def text(seed: int) -> str:
        pick = np.random.default_rng(seed).choice(len(words), 120)
        return " ".join(words[k] for k in pick)

    earlier = [Article(id=f"old{i}", text=text(i)) for i in range(300)]
    earlier += [Article(id="short", text="Too short."), Article(id="wire", text=WIRE)]
    earlier += [Article(id="again", text=WIRE, duplicate_of="wire")]
    tonight = [Article(id="rep", text=REPUBLISHED), Article(id="same", text=SAME_EVENT)]
    for i in rng.choice(300, 40, replace=False):  # near copies: a few words of an old text changed
        w = earlier[i].text.split()
        for k in rng.choice(len(w), int(rng.integers(1, 4)), replace=False):
            w[k] = "changed"
        tonight.append(Article(id=f"new{i}", text=" ".join(w)))
    tonight += [Article(id=f"fresh{i}", text=text(1000 + i)) for i in range(20)]

    one, many = Deduplicator(), Deduplicator()
    signatures = [one.signature(a) for a in earlier]
    for a, s in zip(earlier, signatures):
        one.remember(a, s)
    many.remember_many(earlier, signatures)
    got_one = [one.check(a, "night") for a in tonight]
    got_many = [many.check(a, "night") for a in tonight]
    assert got_many == got_one
    found = {a.id: a.duplicate_of for a in got_one}
    assert found["rep"] == "wire" and found["same"] is None
    assert 10 < sum(d is not None and d.startswith("old") for d in found.values()) <= 40


def _write_wires(folder: Path) -> Path:
    folder.mkdir()
    records = [{"id": "wire", "text": WIRE}, {"id": "copy", "text": REPUBLISHED}, {"id": "other", "text": SAME_EVENT},
               {"id": "again", "text": WIRE}, {"id": "short", "text": "Lisbon votes on its second airport today. " * 3},
               {"id": "few", "text": "Internationalisation " * 6}]
    (folder / "wires.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


@pytest.mark.parametrize("driver", ["one-shot", "nightly"])
def test_ingest_hands_its_signatures_to_the_fold_so_each_text_is_shingled_once(tmp_path: Path, monkeypatch,
                                                                              driver: str) -> None:
    """``run`` ingests (near copies found by MinHash) and then folds copies again before clustering; the
    fold takes ingest's signatures instead of shingling every text a second time, with the same outcome
    (stories, copies and, in a state, the signatures kept for later nights)."""
    import sys

    from storyclust.incremental import update_from_paths
    from storyclust.ingest import dedupe
    from storyclust.pipeline import cluster_articles
    from storyclust.settings import StateOptions
    from storyclust.store import open_store

    sys.path.insert(0, str(Path(__file__).parent))
    from wordhash import WordHashEmbedder

    wires = _write_wires(tmp_path / "wires")
    options = IngestOptions(jobs=1)

    def outcome(handed_over: bool):
        shingled: list[str] = []
        real = dedupe.shingle_hashes
        monkeypatch.setattr(dedupe, "shingle_hashes", lambda text: (shingled.append(text), real(text))[1])
        if driver == "one-shot":
            signatures: dict = {}
            items = list(ingest_paths([wires], options, signatures=signatures if handed_over else None))
            stories = cluster_articles(items, WordHashEmbedder(), signatures=signatures)
            result = sorted((tuple(sorted((m.article.id, m.article.duplicate_of) for m in s.members)) for s in stories))
        else:
            with open_store(tmp_path / f"state-{handed_over}.db") as store:
                now = StateOptions(now=NOW)
                if handed_over:
                    update_from_paths(store, [wires], WordHashEmbedder(), ingest_options=options, state=now)
                else:  # the night without the hand-over: ingest's items alone
                    from storyclust.incremental import update_stories
                    update_stories(store, ingest_paths([wires], options), WordHashEmbedder(), state=now)
                kept = store.signatures(["wire", "copy", "other", "short", "few"])
                assert len(kept) == 4  # of five texts, one has too few distinct shingles to be signed
                result = (sorted(store.memberships().items()), {k: v.tolist() for k, v in kept.items()})
        monkeypatch.setattr(dedupe, "shingle_hashes", real)
        return result, shingled

    before, shingled_before = outcome(handed_over=False)
    after, shingled = outcome(handed_over=True)
    assert after == before
    texts = Counter(shingled)
    assert len(texts) == 5 and set(texts.values()) == {1}  # five distinct texts, each shingled once
    assert Counter(shingled_before) == Counter({text: 2 for text in texts})  # ingest's and the fold's


NOW = datetime(2026, 6, 3, 2, 30, tzinfo=timezone.utc)


def test_signatures_of_another_recipe_are_not_handed_over(tmp_path: Path) -> None:
    """Signatures made with other MinHash options would not match those the fold makes: none are handed over."""
    wires = _write_wires(tmp_path / "wires")
    signatures: dict = {}
    list(ingest_paths([wires], IngestOptions(jobs=1, minhash_permutations=64), signatures=signatures))
    assert signatures == {}
    list(ingest_paths([wires], IngestOptions(jobs=1), signatures=signatures))
    assert len(signatures) == 5  # "again" is the same text as "wire"
    assert sum(sig is None for sig in signatures.values()) == 1  # too few shingles to judge: None, handed over too


# -- finding a near copy gives what comparing the signature with every remembered one gives -----------

K = 128  # permutations


def _compare_every_row(remembered: np.ndarray, signature: np.ndarray, threshold: float) -> Optional[int]:
    """Brute force: the earliest row of the highest estimated Jaccard >= threshold, every row compared."""
    if not len(remembered):
        return None
    scores = (remembered == signature).mean(axis=1)
    best = int(np.argmax(scores))
    return best if scores[best] >= threshold else None


def _min_equal(threshold: float) -> int:
    """The least number of equal positions of K whose share reaches ``threshold`` (K + 1: none)."""
    return next((m for m in range(K + 1) if m / K >= threshold), K + 1)


def _variant(rng: np.random.Generator, signature: np.ndarray, changed: int, rows: int, spread: bool) -> np.ndarray:
    """``signature`` with ``changed`` positions changed: spread, one per band while bands last, so that as
    many bands as possible are spoiled (the fewest shared bands a signature this close can have), or
    packed into as few bands as possible."""
    slots = rng.permuted(np.arange(K).reshape(K // rows, rows), axis=1)[rng.permutation(K // rows)]
    positions = (slots.T if spread else slots).ravel()[:changed]
    out = signature.copy()
    out[positions] ^= rng.integers(1, 2**32, size=len(positions), dtype=np.uint32)  # another value
    return out


def _shared_bands(a: np.ndarray, b: np.ndarray, rows: int) -> int:
    return int((a.reshape(-1, rows) == b.reshape(-1, rows)).all(axis=1).sum())


@pytest.mark.parametrize("threshold", [0.78, 0.8, 103 / K, 0.9, 0.95, 1.0])
@pytest.mark.parametrize("expect", [False, True])
def test_matches_at_the_edge_of_the_threshold_are_those_of_comparing_every_signature(threshold: float,
                                                                                   expect: bool) -> None:
    """Signatures made to sit at the threshold (one equal position fewer, as many, one more than a match
    needs), their differences spread to spoil as many bands as possible or packed into few: only the
    rows sharing enough bands are compared, and the match is exactly the brute force's, ties (the
    earliest row wins) and rows of the bulk index and of the buckets alike."""
    rng = np.random.default_rng(int(threshold * 1000) + expect)
    rows, edge = _rows_per_band(K, threshold), K - _min_equal(threshold)  # edge: a match's most differences
    index = Deduplicator(threshold)
    bases = [rng.integers(0, 2**32, K, dtype=np.uint32) for _ in range(40)]
    offsets = [(-1, 0, 1, 2), (1, 2), (0, 0, 1)]  # differences past the edge: any, only misses, many ties
    variants = [(f"b{b}v{j}", _variant(rng, base, max(0, edge + int(rng.choice(offsets[b % 3]))), rows,
                                       spread=rng.random() < 0.8))
                for b, base in enumerate(bases) for j in range(6)]
    order = rng.permutation(len(variants))
    bulk = [variants[k] for k in order[: len(order) // 2]]
    one_by_one = [variants[k] for k in order[len(order) // 2 :]]
    queries = [(f"q{b}", base) for b, base in enumerate(bases)]
    queries += [(f"q{k}", rng.integers(0, 2**32, K, dtype=np.uint32)) for k in range(40, 50)]  # unrelated
    queries += [(f"w{k}", sig) for k, (_, sig) in enumerate(variants[:: 17])]  # its siblings: twice as far
    queries = [queries[k] for k in rng.permutation(len(queries))]

    index.remember_many([Article(id=i, text=f"text {i}") for i, _ in bulk], [sig for _, sig in bulk])
    for i, sig in one_by_one:
        index.remember(Article(id=i, text=f"text {i}"), sig)
    if expect:
        index.expect(sig for _, sig in queries)
    got = [index.check(Article(id=i, text=f"text {i}"), "night", sig).duplicate_of for i, sig in queries]

    remembered, roots, want = [sig for _, sig in bulk + one_by_one], [i for i, _ in bulk + one_by_one], []
    at_edge = near_misses = 0
    for i, sig in queries:
        match = _compare_every_row(np.array(remembered), sig, threshold)
        want.append(None if match is None else roots[match])
        fewest = K - int((np.array(remembered) == sig).sum(axis=1).max())  # the closest row's differences
        if match is not None and fewest == edge:
            at_edge += _shared_bands(remembered[match], sig, rows) == K // rows - edge  # as few bands as can be
        near_misses += match is None and fewest == edge + 1
        remembered.append(sig)
        roots.append(roots[match] if match is not None else i)
    assert got == want
    assert at_edge >= 5  # matches at the threshold's edge that share only the bands the bound asks for
    assert near_misses >= 5  # a difference past it


def _brute_force_best_match(self: Deduplicator, signature: np.ndarray, keys: np.ndarray) -> Optional[int]:
    """``Deduplicator._best_match`` comparing every remembered signature, whatever bands they share."""
    return _compare_every_row(self._signatures[: len(self._roots)], signature, self.threshold)


def test_the_fold_finds_the_copies_that_comparing_every_signature_finds(monkeypatch) -> None:
    """fold_copies over a night (a window holding copies; tonight reprints, near copies of the window
    and of each other, exact copies, short texts, a ``duplicate_of`` known or not; some texts' signatures
    handed over, some signed by the fold, a few made to sit at the threshold's edge) finds the same first
    copies, and hands back the same signatures, as the fold whose index compares every remembered signature."""
    from storyclust.pipeline import fold_copies

    rng = np.random.default_rng(11)
    words = " ".join(s for text in (WIRE, REPUBLISHED, SAME_EVENT) for s in text.splitlines()).split()

    def text(seed: int) -> str:
        own = np.random.default_rng(seed)
        return " ".join(words[k] for k in own.choice(len(words), int(own.integers(20, 150))))

    def edited(base: str) -> str:
        w = base.split()
        for k in rng.choice(len(w), int(rng.integers(1, 5)), replace=False):
            w[k] = str(rng.integers(1000))
        return " ".join(w)

    earlier = [Article(id=f"old{i}", text=text(i)) for i in range(400)]
    earlier += [Article(id=f"oldcopy{i}", text=edited(earlier[i].text), duplicate_of=f"old{i}")
                for i in range(0, 40, 3)]
    earlier += [Article(id="short", text="Too short."), Article(id="wire", text=WIRE)]
    tonight = [Article(id="rep", text=REPUBLISHED), Article(id="same", text=SAME_EVENT), Article(id="wire2", text=WIRE)]
    for i in range(300):
        kind = rng.integers(6)
        source = (earlier + tonight)[int(rng.integers(len(earlier) + len(tonight)))]
        if kind == 0:
            tonight.append(Article(id=f"fresh{i}", text=text(1000 + i)))
        elif kind == 1:
            tonight.append(Article(id=f"exact{i}", text=source.text.upper()))
        elif kind == 2:
            tonight.append(Article(id=f"short{i}", text=" ".join(str(n) for n in rng.integers(100, size=5))))
        elif kind == 3:
            told = str(rng.choice([source.id, "nobody"]))  # its duplicate_of: known, or not
            tonight.append(Article(id=f"told{i}", text=edited(source.text), duplicate_of=told))
        else:
            tonight.append(Article(id=f"near{i}", text=edited(source.text)))

    reference = Deduplicator()
    signatures = {a.id: reference.signature(a) for a in earlier if rng.random() < 0.9}  # a few stored unsigned
    handed = {a.hash: reference.signature(a) for a in tonight if rng.random() < 0.6}
    # signatures at the edge of the threshold: tonight's texts a changed position short of, at, or one past it
    signed = [(a, s) for a in earlier if (s := signatures.get(a.id)) is not None]
    rows, edge = _rows_per_band(K, 0.8), K - _min_equal(0.8)
    for i in range(60):
        source, sig = signed[int(rng.integers(len(signed)))]
        a = Article(id=f"edge{i}", text=f"edge text {i}")
        handed[a.hash] = _variant(rng, sig, edge + int(rng.integers(-1, 2)), rows, spread=rng.random() < 0.8)
        tonight.insert(int(rng.integers(len(tonight) + 1)), a)

    def fold() -> tuple[list, dict]:
        kept = dict(signatures)
        folded = fold_copies(tonight, earlier=earlier, signatures=kept, text_signatures=handed)
        return [(a.id, a.duplicate_of) for a in folded], {k: None if v is None else v.tolist() for k, v in kept.items()}

    got = fold()
    monkeypatch.setattr(Deduplicator, "_best_match", _brute_force_best_match)
    want = fold()
    assert got == want
    copies = dict(want[0])
    assert sum(copies[f"near{i}"] is not None for i in range(300) if f"near{i}" in copies) > 50
    assert 5 < sum(copies[f"edge{i}"] is not None for i in range(60)) < 55
