"""Story labels: c-TF-IDF keywords per story, on the real sample articles and on other scripts."""
from __future__ import annotations

import time
import zlib
from datetime import datetime, timezone

from sample_stories import sample_stories

import random

from storyclust.labels import (TermTable, function_words, member_terms, name_terms, pack_terms, story_labels,
                              table_labels, unpack_terms)
from storyclust.types import Article, Story, StoryMember


def story(sid: str, *texts: tuple[str, str, str]) -> Story:
    """A story of (lang, title, text) members."""
    return Story(sid, tuple(StoryMember(Article(id=f"{sid}-{i}", lang=lang, title=title, text=text), 0.9)
                            for i, (lang, title, text) in enumerate(texts)))


def test_sample_stories_get_telling_labels():
    stories = sample_stories()
    labels = story_labels(stories)
    assert set(labels) == {s.story_id for s in stories}
    assert all(1 <= len(v) <= 5 for v in labels.values())
    assert "6.7" in labels["s_quake-poso-2026-01"]  # the magnitude every copy reports
    assert "417" in labels["s_trade-eu-indonesia"]  # the vote count, in en, fr and id alike
    assert any(name in labels["s_culture-berlinale-golden-bear"] for name in ("Étienne Marchal", "Putri Anjani",
                                                                              "Kartika Wulandari"))
    assert "EMA" in labels["s_health-veranumab-ema"]
    common = {"the", "de", "la", "der", "die", "yang", "dan", "el", "und", "tuesday", "mardi"}
    assert not {w.casefold() for v in labels.values() for w in v} & common


def test_function_words_are_public_casefolded_and_include_the_calibration_ones():
    words = function_words()
    assert {"the", "de", "der", "yang", "mardi", "januari"} <= words
    assert all(w == w.casefold() for w in words)
    assert len(words) > 600  # the built-in list has about 480: the calibration corpus adds its recurring words
    assert not {"parliament", "earthquake"} & words


def test_labels_are_deterministic_and_top_k_is_honoured():
    stories = sample_stories()
    assert story_labels(stories) == story_labels(list(stories))
    assert all(len(v) <= 2 for v in story_labels(stories, top_k=2).values())
    assert story_labels(stories, top_k=0) == {s.story_id: () for s in stories}
    assert story_labels([]) == {}


def test_a_word_inside_a_chosen_name_is_not_repeated():
    labels = story_labels(sample_stories(), top_k=8)
    for values in labels.values():
        names = [set(v.casefold().split()) for v in values if " " in v]
        for v in values:
            if " " not in v:
                assert not any(v.casefold() in n for n in names), values


def test_numbers_written_three_ways_are_one_label():
    flood = story("flood",
                  ("fr", "Crue : 20 000 habitants évacués", "Les secours ont évacué 20 000 habitants de la vallée."),
                  ("id", "Banjir: 20.000 warga dievakuasi", "Tim penyelamat mengevakuasi 20.000 warga lembah."),
                  ("en", "Flood: 20,000 residents evacuated", "Rescuers evacuated 20,000 residents of the valley."))
    other = story("other", ("en", "Parliament votes on budget", "The parliament voted on the budget on Monday."))
    labels = story_labels([flood, other])
    assert "20000" in labels["flood"]
    assert "20000" not in labels["other"]


def test_cjk_arabic_and_cyrillic_stories():
    quake_zh = story("zh", ("zh", "四川发生地震", "四川省昨日发生六级地震，地震造成多人受伤。救援队伍已经赶到地震灾区。"),
                     ("zh", "四川地震救援", "四川地震发生后，救援人员连夜搜救被困群众。"))
    train_zh = story("zh2", ("zh", "北京地铁新线开通", "北京地铁新线今天开通运营，乘客可以换乘多条线路。"))
    vote_ru = story("ru", ("ru", "Выборы мэра в Новосибирске",
                           "В Новосибирске прошли выборы мэра. Избиратели выбирали мэра из пяти кандидатов."),
                    ("ru", "Итоги выборов в Новосибирске", "Избирательная комиссия Новосибирска объявила итоги выборов мэра."))
    port_ar = story("ar", ("ar", "افتتاح ميناء جديد في العقبة",
                           "افتتحت الحكومة ميناء جديدا في العقبة. وقال الوزير إن الميناء سيزيد حركة التجارة."),
                    ("ar", "ميناء العقبة الجديد", "الميناء الجديد في العقبة يستقبل السفن الكبيرة."))
    labels = story_labels([quake_zh, train_zh, vote_ru, port_ar])
    assert "地震" in labels["zh"] and "四川" in labels["zh"]
    assert "地铁" in labels["zh2"] and "地震" not in labels["zh2"]
    assert "川地" not in labels["zh"] and "京地" not in labels["zh2"]  # bigrams straddling two words
    assert {"новосибирске", "мэра"} & {v.casefold() for v in labels["ru"]}
    assert not {"в", "и", "на"} & set(labels["ru"])
    assert {"العقبة", "ميناء", "الميناء"} & set(labels["ar"])
    assert not {"في", "إن", "من"} & set(labels["ar"])


def test_names_and_acronyms():
    found = [s for s, _ in name_terms("Selon Kartika Wulandari, l'EMA et la NASA ont parlé avec Tomás Arriaga.")]
    assert "Kartika Wulandari" in found and "Tomás Arriaga" in found
    assert "EMA" in found and "NASA" in found
    assert not any(f.startswith("Selon") for f in found)


def test_ten_thousand_short_stories_label_in_seconds():
    words = ["flood", "vote", "budget", "quake", "strike", "election", "market", "festival", "match", "court"]
    stories = []
    for i in range(10_000):
        w = words[i % 10]
        members = tuple(StoryMember(Article(id=f"{i}-{j}", lang="en", title=f"{w.title()} in Town{i} leaves {i % 97} hurt",
                                            text=f"The {w} in Town{i} on day {j}: officials of Region{i % 300} said "
                                                 f"{i % 97} people were hurt and {i * 7} evacuated. " * 3,
                                            published=datetime(2026, 1, 1, tzinfo=timezone.utc)), 0.9)
                        for j in range(3))
        stories.append(Story(f"s{i}", members))
    start = time.perf_counter()
    labels = story_labels(stories)
    elapsed = time.perf_counter() - start
    assert len(labels) == 10_000
    assert any(v.startswith("town") or v.startswith("Town") for v in labels["s42"])
    assert elapsed < 15.0, f"{elapsed:.1f} s for 10,000 stories"


def test_labels_from_kept_terms_are_the_labels_computed_afresh():
    """The nightly state keeps each member's terms (pack_terms); labels from them are the same labels,
    in every script the samples have, and a blob of another format is computed again."""
    stories = sample_stories()
    members = [m.article for s in stories for m in s.members]
    assert {a.lang for a in members} >= {"fr", "id", "en"}
    kept = {a.id: unpack_terms(pack_terms(member_terms(a)), a.lang) for a in members}
    assert all(kept[a.id] == member_terms(a) for a in members)  # keys, weights, surfaces and their order
    asked: list[str] = []
    assert story_labels(stories, terms=lambda a: asked.append(a.id) or kept[a.id]) == story_labels(stories)
    assert sorted(asked) == sorted(kept)
    assert unpack_terms(b"t0" + pack_terms({})[2:], "fr") is None
    zh = Article(id="zh", title="四川发生地震", text="四川省昨日发生六级地震，地震造成多人受伤。救援队伍已经赶到地震灾区。", lang="zh")
    assert unpack_terms(pack_terms(member_terms(zh)), "zh") == member_terms(zh)


def _state(table: TermTable) -> dict:
    """What a table holds, independent of the order rows were added in."""
    return {"size": table.size,
            "rows": {key: (table.weights[row], table.surfaces[row], table.ranks[table.rank_of[row]], table.positions[row])
                     for row, key in enumerate(table.keys)}}


def test_a_packed_table_comes_back_whole_and_members_added_in_any_order_give_the_same_labels():
    """The nightly state keeps a table per story (TermTable.pack) and adds a night's members to it; members
    come in any order with any rank (tuples, as the state's order keys are), through any number of pack and
    unpack round trips, and the labels are those of the story summed at once in rank order. An empty table,
    a one-term table and words of several scripts survive; bytes of another format give None (summed again)."""
    stories = list(sample_stories())
    stories.append(story("zh", ("zh", "四川发生地震", "四川省昨日发生六级地震，地震造成多人受伤。救援队伍已经赶到地震灾区。"),
                         ("ar", "زلزال في سيتشوان", "ضرب زلزال بقوة 6 درجات إقليم سيتشوان وأصيب العشرات.")))
    rng = random.Random(7)
    tables = []
    for s in stories:
        members = [((f"2026-01-{1 + i // 3:02d}", i), member_terms(m.article)) for i, m in enumerate(s.members)]
        rng.shuffle(members)
        table = TermTable()
        for i, (rank, terms) in enumerate(members):
            table.add(terms, rank)
            if i % 2:
                again = TermTable.unpack(table.pack())
                assert _state(again) == _state(table)
                table = again
        tables.append((s.story_id, TermTable.unpack(table.pack())))
    assert table_labels(tables) == story_labels(stories)
    assert table_labels(tables, top_k=8) == story_labels(stories, top_k=8)

    empty = TermTable.unpack(TermTable().pack())
    assert len(empty) == 0 and empty.size == 0
    one = TermTable()
    one.add({("n", "6.4"): (2.0, "6,4")}, 3)
    back = TermTable.unpack(one.pack())
    assert _state(back) == _state(one) and back.surfaces == ["6,4"]
    assert table_labels([("a", back), ("b", empty)]) == {"a": ("6,4",), "b": ()}
    assert TermTable.unpack(None) is None
    assert TermTable.unpack(b"s1" + zlib.compress(b"[]")) is None  # the previous format: summed again
