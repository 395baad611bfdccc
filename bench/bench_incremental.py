"""Benchmark: nightly runs against one-shot runs, and a second run over an unchanged corpus >= 20x faster.

First, on ``../shared/eval/semeval_dev.csv`` (when present): pair F1 of a one-shot ``cluster``, of one
``--state`` night with every article (ARI against the one-shot partition must be 1.0), and of the same
articles over four nights in random order, a day apart, with a story window longer than the replay
(``--nights`` and ``--story-window`` change both: e.g. 14 nights with the default 7-day window, where the two
articles of a pair may come further apart than the story window; bench/README.md, "Settling old members").

Generates N short synthetic wire stories (default 2,000) from multilingual
templates (English, French, German, Spanish, Indonesian; events such as
earthquakes, floods, strikes in various cities, each with its own
spokesperson), one plain-text file each, dated over ten days through their
mtime. Then runs the incremental pipeline on one state file, each run in a
fresh child process (the same work ``storyclust run --state`` does: ingest,
embed what is new, update stories): a first run, a second run over the
unchanged folder, and a third after touching every file (all files parsed
again, all articles already seen). Prints wall time, throughput and
the child's peak RSS of each run, plus how many stories were found and how
pure they are against the template events.

    python bench/bench_incremental.py               # 2,000 articles
    python bench/bench_incremental.py -n 300 --keep /tmp/bench-inc

Exit status 1 if the second run is not at least 20x faster or embedded anything.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from storyclust.store import open_store

START = datetime(2026, 10, 1, 6, 0, tzinfo=timezone.utc)
DAYS = 10

PLACES = [
    "Aleppo", "Almaty", "Arequipa", "Bandung", "Bergamo", "Bilbao", "Bremen", "Brest", "Cebu", "Cordoba",
    "Cusco", "Dakar", "Davao", "Durban", "Gdansk", "Graz", "Hue", "Izmir", "Kandy", "Kobe",
    "Lille", "Linz", "Lyon", "Makassar", "Malaga", "Medan", "Mombasa", "Nantes", "Oaxaca", "Padang",
    "Porto", "Quito", "Rosario", "Sapporo", "Sendai", "Sevilla", "Surabaya", "Tabriz", "Toulouse", "Valparaiso",
]

SOURCES = ["Wire One", "Daily Courier", "Global Desk", "Morning Post", "City Herald", "Radio Norte", "Kabar Kini"]

# event type -> language -> (title template, body sentence templates)
TEMPLATES: dict[str, dict[str, tuple[str, list[str]]]] = {
    "quake": {
        "en": ("Magnitude {m} earthquake hits {p}", [
            "A magnitude {m} earthquake struck near {p}, killing at least {n} people.",
            "Rescue teams searched collapsed buildings in {p} through the night.",
            "Aftershocks continued to shake the region around {p}."]),
        "fr": ("Un séisme de magnitude {m} frappe {p}", [
            "Un séisme de magnitude {m} a frappé la région de {p}, faisant au moins {n} morts.",
            "Les secours ont fouillé les décombres des immeubles effondrés à {p} toute la nuit.",
            "Des répliques ont continué de secouer la région de {p}."]),
        "de": ("Erdbeben der Stärke {m} erschüttert {p}", [
            "Ein Erdbeben der Stärke {m} hat die Region um {p} erschüttert, mindestens {n} Menschen starben.",
            "Rettungskräfte suchten in {p} die ganze Nacht in eingestürzten Gebäuden nach Verschütteten.",
            "Nachbeben erschütterten weiterhin die Gegend um {p}."]),
        "es": ("Un terremoto de magnitud {m} sacude {p}", [
            "Un terremoto de magnitud {m} sacudió {p} y dejó al menos {n} muertos.",
            "Los equipos de rescate buscaron durante la noche entre los edificios derrumbados de {p}.",
            "Las réplicas siguieron sacudiendo la zona de {p}."]),
        "id": ("Gempa magnitudo {m} guncang {p}", [
            "Gempa bermagnitudo {m} mengguncang {p} dan menewaskan sedikitnya {n} orang.",
            "Tim penyelamat mencari korban di reruntuhan gedung di {p} sepanjang malam.",
            "Gempa susulan masih terasa di sekitar {p}."]),
    },
    "flood": {
        "en": ("Floods force {n} thousand from homes in {p}", [
            "Heavy rain flooded large parts of {p}, forcing {n} thousand residents from their homes.",
            "Rivers around {p} burst their banks and several bridges were closed.",
            "Authorities in {p} opened emergency shelters in schools."]),
        "fr": ("Des inondations chassent {n} mille habitants à {p}", [
            "De fortes pluies ont inondé une grande partie de {p}, chassant {n} mille habitants de leurs maisons.",
            "Les rivières autour de {p} sont sorties de leur lit et plusieurs ponts ont été fermés.",
            "Les autorités de {p} ont ouvert des abris d'urgence dans les écoles."]),
        "de": ("Hochwasser vertreibt {n} tausend Menschen in {p}", [
            "Starkregen hat weite Teile von {p} überflutet, {n} tausend Bewohner mussten ihre Häuser verlassen.",
            "Flüsse rund um {p} traten über die Ufer, mehrere Brücken wurden gesperrt.",
            "Die Behörden in {p} öffneten Notunterkünfte in Schulen."]),
        "es": ("Las inundaciones desplazan a {n} mil personas en {p}", [
            "Las fuertes lluvias inundaron gran parte de {p} y obligaron a {n} mil vecinos a dejar sus casas.",
            "Los ríos de {p} se desbordaron y varios puentes fueron cerrados.",
            "Las autoridades de {p} abrieron refugios de emergencia en escuelas."]),
        "id": ("Banjir paksa {n} ribu warga {p} mengungsi", [
            "Hujan deras membanjiri sebagian besar {p} dan memaksa {n} ribu warga meninggalkan rumah.",
            "Sungai di sekitar {p} meluap dan beberapa jembatan ditutup.",
            "Pemerintah {p} membuka tempat pengungsian darurat di sekolah-sekolah."]),
    },
    "strike": {
        "en": ("Transport workers strike in {p} over pay", [
            "Bus and metro workers in {p} walked out for {n} hours demanding higher wages.",
            "Commuters in {p} faced long queues as public transport stopped.",
            "Unions in {p} threatened further strikes if talks fail."]),
        "fr": ("Grève des transports à {p} pour les salaires", [
            "Les conducteurs de bus et de métro de {p} ont cessé le travail pendant {n} heures pour réclamer des hausses de salaire.",
            "Les usagers de {p} ont fait face à de longues files d'attente.",
            "Les syndicats de {p} menacent de nouvelles grèves si les négociations échouent."]),
        "de": ("Verkehrsstreik in {p} um höhere Löhne", [
            "Bus- und U-Bahn-Fahrer in {p} haben für {n} Stunden die Arbeit niedergelegt und mehr Lohn gefordert.",
            "Pendler in {p} mussten lange warten, weil der Nahverkehr stillstand.",
            "Die Gewerkschaften in {p} drohen mit weiteren Streiks."]),
        "es": ("Huelga del transporte en {p} por los salarios", [
            "Los conductores de autobús y metro de {p} pararon durante {n} horas para exigir subidas salariales.",
            "Los usuarios de {p} sufrieron largas colas sin transporte público.",
            "Los sindicatos de {p} amenazan con nuevas huelgas."]),
        "id": ("Mogok pekerja transportasi di {p} tuntut kenaikan upah", [
            "Sopir bus dan kereta di {p} mogok kerja selama {n} jam menuntut kenaikan upah.",
            "Para penglaju di {p} mengantre panjang karena transportasi umum berhenti.",
            "Serikat pekerja di {p} mengancam akan mogok lagi."]),
    },
    "fire": {
        "en": ("Fire destroys factory in {p}", [
            "A large fire destroyed a textile factory on the outskirts of {p}, injuring {n} workers.",
            "Firefighters in {p} needed hours to bring the blaze under control.",
            "Police in {p} opened an investigation into the cause of the fire."]),
        "fr": ("Un incendie détruit une usine à {p}", [
            "Un important incendie a détruit une usine textile en périphérie de {p}, blessant {n} ouvriers.",
            "Les pompiers de {p} ont mis des heures à maîtriser le feu.",
            "La police de {p} a ouvert une enquête sur l'origine de l'incendie."]),
        "de": ("Großbrand zerstört Fabrik in {p}", [
            "Ein Großbrand hat eine Textilfabrik am Rand von {p} zerstört, {n} Arbeiter wurden verletzt.",
            "Die Feuerwehr in {p} brauchte Stunden, um das Feuer zu löschen.",
            "Die Polizei in {p} ermittelt zur Brandursache."]),
        "es": ("Un incendio destruye una fábrica en {p}", [
            "Un gran incendio destruyó una fábrica textil en las afueras de {p} y dejó {n} trabajadores heridos.",
            "Los bomberos de {p} tardaron horas en controlar las llamas.",
            "La policía de {p} investiga la causa del fuego."]),
        "id": ("Kebakaran hanguskan pabrik di {p}", [
            "Kebakaran besar menghanguskan pabrik tekstil di pinggiran {p} dan melukai {n} pekerja.",
            "Petugas pemadam kebakaran di {p} butuh berjam-jam untuk memadamkan api.",
            "Polisi {p} menyelidiki penyebab kebakaran."]),
    },
    "election": {
        "en": ("Mayor of {p} re-elected with {n} percent", [
            "The mayor of {p} won a second term with {n} percent of the vote in Sunday's election.",
            "Turnout in {p} was higher than at the last municipal vote.",
            "The opposition in {p} conceded defeat late on Sunday."]),
        "fr": ("Le maire de {p} réélu avec {n} % des voix", [
            "Le maire de {p} a obtenu un second mandat avec {n} % des voix lors du scrutin de dimanche.",
            "La participation à {p} a été plus forte qu'aux dernières municipales.",
            "L'opposition de {p} a reconnu sa défaite dimanche soir."]),
        "de": ("Bürgermeister von {p} mit {n} Prozent wiedergewählt", [
            "Der Bürgermeister von {p} hat mit {n} Prozent der Stimmen eine zweite Amtszeit gewonnen.",
            "Die Wahlbeteiligung in {p} war höher als bei der letzten Kommunalwahl.",
            "Die Opposition in {p} räumte am Sonntagabend ihre Niederlage ein."]),
        "es": ("El alcalde de {p} reelegido con el {n} por ciento", [
            "El alcalde de {p} logró un segundo mandato con el {n} por ciento de los votos el domingo.",
            "La participación en {p} fue mayor que en las últimas municipales.",
            "La oposición de {p} reconoció su derrota el domingo por la noche."]),
        "id": ("Wali kota {p} terpilih lagi dengan {n} persen suara", [
            "Wali kota {p} memenangi masa jabatan kedua dengan {n} persen suara dalam pemilihan hari Minggu.",
            "Partisipasi pemilih di {p} lebih tinggi dibandingkan pemilihan sebelumnya.",
            "Pihak oposisi di {p} mengakui kekalahan pada Minggu malam."]),
    },
}

FIRST_NAMES = ["Amara", "Bruno", "Chen", "Dewi", "Elif", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kofi", "Lucia",
               "Mateo", "Nadia", "Omar", "Priya", "Rafael", "Sofia", "Tomasz", "Yusuf"]
LAST_NAMES = ["Okafor", "Moreau", "Santoso", "Keller", "Alvarez", "Nakamura", "Haddad", "Kowalski", "Rossi",
              "Mensah", "Lindqvist", "Pereira", "Wibowo", "Dubois", "Yilmaz", "Fischer", "Quispe", "Tanaka"]

# an event-specific spokesperson, so that two events of one kind in one city differ as real news does
QUOTE = {
    "en": "{w}, a spokesperson for the regional authorities in {p}, said more information would follow.",
    "fr": "{w}, porte-parole des autorités régionales de {p}, a indiqué que d'autres informations suivraient.",
    "de": "{w}, Sprecher der Regionalbehörden in {p}, kündigte weitere Informationen an.",
    "es": "{w}, portavoz de las autoridades regionales de {p}, dijo que habrá más información.",
    "id": "{w}, juru bicara pemerintah daerah {p}, mengatakan informasi lebih lanjut akan menyusul.",
}

CLOSING = {
    "en": "{s} reported the news at {h}:{mi}.",
    "fr": "{s} a rapporté l'information à {h} h {mi}.",
    "de": "{s} meldete dies um {h}:{mi} Uhr.",
    "es": "{s} informó de la noticia a las {h}:{mi}.",
    "id": "{s} melaporkan berita ini pukul {h}.{mi}.",
}


def generate(folder: Path, n: int, per_event: int = 8, seed: int = 0) -> dict[str, str]:
    """Write ``n`` article files under ``folder``; returns {file name: event id} (the gold)."""
    rng = random.Random(seed)
    events = [(kind, place) for kind in TEMPLATES for place in PLACES]
    rng.shuffle(events)
    gold: dict[str, str] = {}
    k = 0
    e = 0
    while k < n:
        kind, place = events[e % len(events)]
        event = f"{kind}-{place}-{e // len(events)}"
        number = rng.randint(3, 95)
        magnitude = f"{rng.uniform(5.0, 7.9):.1f}"
        who = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        start = START + timedelta(hours=rng.uniform(0, 24 * (DAYS - 2)))
        for j in range(min(per_event, n - k)):
            lang = rng.choice(list(CLOSING))
            title, sentences = TEMPLATES[kind][lang]
            fields = {"p": place, "n": number, "m": magnitude}
            body = [sentences[0], *rng.sample(sentences[1:], len(sentences) - 1)]
            body.insert(rng.randint(1, len(body)), QUOTE[lang].replace("{w}", who))
            closing = CLOSING[lang].format(s=rng.choice(SOURCES), h=rng.randint(6, 22), mi=f"{rng.randint(0, 59):02d}")
            text = title.format(**fields) + "\n\n" + " ".join(s.format(**fields) for s in body) + " " + closing + "\n"
            day = start + timedelta(hours=rng.uniform(0, 36))
            name = f"day{(day - START).days:02d}/{k:05d}-{lang}.txt"
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            os.utime(path, (day.timestamp(), day.timestamp()))
            gold[name] = event
            k += 1
        e += 1
    return gold


CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from datetime import datetime
from storyclust.embed import load_embedder
from storyclust.incremental import files_to_read, nightly
from storyclust.ingest import IngestOptions, ingest_paths
from storyclust.schema import parse_datetime
from storyclust.settings import StateOptions
from storyclust.store import open_store
printed = []
with open_store(sys.argv[1]) as store, store.lock():
    to_read, files, unchanged = files_to_read(store, [sys.argv[2]])
    items = ingest_paths(to_read, IngestOptions(jobs=1))
    result = nightly(store, items, load_embedder, printed.extend, files=files,
                     state=StateOptions(now=parse_datetime(sys.argv[3])))
print(json.dumps({"seconds": time.perf_counter() - t0, "ingested": result.ingested, "skipped": result.already_seen,
                  "unchanged_files": unchanged, "embedded": result.embedded, "changed": len(printed)}))
"""


def run_child(state: Path, corpus: Path, now: datetime) -> dict:
    """One incremental run in a fresh process; adds its wall time and peak RSS (MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(state), str(corpus), now.isoformat()],
                            stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"run failed with status {proc.returncode}")
    stats = json.loads(out)
    stats["wall"] = time.perf_counter() - start
    stats["peak_mib"] = usage.ru_maxrss / 1024  # Linux: KiB
    return stats


def replay_nightly(work: Path, corpus: Path, seed_state: Path) -> list[dict]:
    """Feed the corpus one day folder per night into a growing folder and a fresh state.

    The new state is seeded with the embeddings of ``seed_state`` (the cache
    is keyed by model and text), so the replay measures clustering, not
    embedding. Returns each night's run stats.
    """
    live, state = work / "live", work / "nightly.db"
    shutil.rmtree(live, ignore_errors=True)
    live.mkdir()
    for leftover in work.glob("nightly.db*"):
        leftover.unlink()
    with open_store(state) as store, store.lock():  # an empty state with the current schema
        pass
    db = sqlite3.connect(state)
    db.execute("ATTACH DATABASE ? AS seed", (str(seed_state),))
    db.execute("INSERT INTO vectors SELECT * FROM seed.vectors")
    db.commit()
    db.close()
    nights = []
    for day in sorted(p.name for p in corpus.iterdir()):
        shutil.copytree(corpus / day, live / day)  # copy2 keeps the mtimes (the article dates)
        now = START + timedelta(days=int(day[3:]) + 1)
        nights.append(run_child(state, live, now))
    return nights


def purity(state: Path, gold: dict[str, str], corpus: Path) -> tuple[int, int, float, float]:
    """(stories, non-singleton stories, purity, adjusted Rand index against the events).

    Purity = share of articles whose story's majority event is their own.
    """
    from sklearn.metrics import adjusted_rand_score

    db = sqlite3.connect(state)
    rows = db.execute("SELECT a.path, m.story_id FROM members m JOIN articles a ON a.id = m.article_id").fetchall()
    db.close()
    by_story: dict[str, list[str]] = {}
    for path, story in rows:
        by_story.setdefault(story, []).append(gold[str(Path(path).relative_to(corpus))])
    right = sum(Counter(events).most_common(1)[0][1] for events in by_story.values())
    events = [gold[str(Path(path).relative_to(corpus))] for path, _ in rows]
    ari = adjusted_rand_score(events, [story for _, story in rows]) if rows else 0.0
    return len(by_story), sum(len(v) > 1 for v in by_story.values()), right / max(len(rows), 1), ari


class CachedEmbedder:
    """The real embedder's vectors for every text of a corpus, computed once in the calls a one-shot run makes.

    ONNX int8 quantises activations per batch, so a text's vector moves (cosine ~0.9999) with the texts
    it is batched with; caching keeps the replay's vectors identical to the one-shot run's, so the
    comparison measures the nightly recipe, not batching noise.
    """

    def __init__(self, base, articles) -> None:
        from storyclust.embed import LEAD_CHARS, embedding_text

        self.model_id, self.dim = base.model_id, base.dim
        full = [embedding_text(a) for a in articles]
        leads = [embedding_text(a, max_chars=LEAD_CHARS) for a in articles]
        longer = [lead for lead, text in zip(leads, full) if len(lead) < len(text)]
        self._cache = dict(zip(full, base.encode(full))) | dict(zip(longer, base.encode(longer)))
        self._base = base

    def encode(self, texts, *, progress=False):
        import numpy as np

        missing = [t for t in texts if t not in self._cache]
        if missing:  # texts outside the corpus (the calibration texts of the reference means)
            self._cache.update(zip(missing, self._base.encode(missing)))
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)


def semeval_replay(csv: Path, nights: int = 4, seed: int = 0, story_window: timedelta | None = None) -> None:
    """One-shot vs one nightly run vs ``nights`` nights (random order, a day apart) on the labelled pairs,
    with ``story_window`` (None: longer than the replay, ``nights`` + 30 days)."""
    from sklearn.metrics import adjusted_rand_score

    from storyclust.embed import load_embedder
    from storyclust.evaluate import load_semeval, score_semeval_pairs, stories_to_story_of
    from storyclust.incremental import nightly
    from storyclust.pipeline import cluster_articles
    from storyclust.settings import StateOptions

    data = load_semeval(str(csv))
    t0 = time.perf_counter()
    embedder = CachedEmbedder(load_embedder(), data.articles)
    print(f"semeval   : {len(data.articles)} articles of {csv.name} embedded in {time.perf_counter() - t0:.1f} s "
          f"({embedder.model_id})")
    ids = [a.id for a in data.articles]

    def line(name: str, story_of: dict[str, str], seconds: float, reference: dict[str, str] | None) -> None:
        scores = score_semeval_pairs(data.pairs, story_of)
        ari = "" if reference is None else (
            f", ARI vs one-shot {adjusted_rand_score([reference[i] for i in ids], [story_of[i] for i in ids]):.4f}")
        print(f"  {name:28}: pair F1 all {scores['all']['f1']:.3f}, cross-lingual {scores['cross_lingual']['f1']:.3f}"
              f"{ari} ({seconds:.1f} s)")

    t0 = time.perf_counter()
    one_shot = stories_to_story_of(cluster_articles(data.articles, embedder))
    line("one-shot cluster", one_shot, time.perf_counter() - t0, None)
    window = StateOptions(story_window=story_window or timedelta(days=nights + 30))
    print(f"  story window {window.story_window / timedelta(days=1):g} d, {nights} nights a day apart")
    for n in (1, nights):
        order = data.articles[:]
        random.Random(seed).shuffle(order)
        with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp) / "s.db") as store:
            t0 = time.perf_counter()
            for night in range(n):
                now = START + timedelta(days=night)
                nightly(store, order[night::n] if n > 1 else data.articles, embedder, lambda stories: None,
                        state=StateOptions(now=now, story_window=window.story_window))
            line(f"--state, {n} night{'s' if n > 1 else ''}" + (" (shuffled)" if n > 1 else ""),
                 store.memberships(), time.perf_counter() - t0, one_shot)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="number of articles (default 2000)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder)")
    parser.add_argument("--semeval", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "eval" /
                        "semeval_dev.csv", help="labelled pairs for the one-shot vs nightly comparison "
                                                "(default ../shared/eval/semeval_dev.csv; skipped when absent)")
    parser.add_argument("--only-semeval", action="store_true", help="skip the speed runs")
    parser.add_argument("--nights", type=int, default=4, help="nights of the SemEval replay (default 4)")
    parser.add_argument("--story-window", type=float, metavar="DAYS",
                        help="story window of the SemEval replay (default: the nights + 30 days)")
    args = parser.parse_args()
    from storyclust.embed import auto_backend
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine   : {cpu}, {os.cpu_count()} cores, backend auto = {auto_backend()}")
    if args.semeval.is_file():
        semeval_replay(args.semeval, nights=args.nights,
                       story_window=None if args.story_window is None else timedelta(days=args.story_window))
    else:
        print(f"semeval   : {args.semeval} not found: one-shot vs nightly comparison skipped")
    if args.only_semeval:
        return 0
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-incremental-"))
    corpus, state = work / "corpus", work / "state.db"
    if corpus.exists():
        shutil.rmtree(corpus)
    for leftover in work.glob("state.db*"):
        leftover.unlink()
    gold = generate(corpus, args.n)
    now = START + timedelta(days=DAYS)
    print(f"corpus: {len(gold)} articles, {len(set(gold.values()))} events, in {corpus}")
    first = run_child(state, corpus, now)
    second = run_child(state, corpus, now)
    for path in corpus.rglob("*.txt"):  # same content, new mtimes: every file is read again
        mtime = path.stat().st_mtime + 1
        os.utime(path, (mtime, mtime))
    touched = run_child(state, corpus, now)
    for name, r in (("first run", first), ("second run", second), ("touched", touched)):
        print(f"{name:10}: {r['wall']:7.2f} s wall ({args.n / r['wall']:7.1f} articles/s), "
              f"peak RSS {r['peak_mib']:6.0f} MiB, ingested {r['ingested']}, skipped {r['skipped']}, "
              f"files unchanged {r['unchanged_files']}, "
              f"embedded {r['embedded']}, stories reported {r['changed']}")
    speedup = first["wall"] / second["wall"]
    print(f"touched   : {first['wall'] / touched['wall']:.1f}x faster than the first run "
          "(every file parsed again, every article already seen)")
    stories, multi, pure, ari = purity(state, gold, corpus)
    print(f"speed-up  : {speedup:.1f}x (target >= 20x)")
    print(f"stories   : {stories} ({multi} with 2+ articles), purity {pure:.3f}, ARI {ari:.3f}, state file "
          f"{state.stat().st_size / 2**20:.1f} MiB")
    nights = replay_nightly(work, corpus, state)
    n_stories, n_multi, n_pure, n_ari = purity(work / "nightly.db", gold, work / "live")
    print(f"nightly   : the same corpus fed one day per run ({len(nights)} runs, embeddings cached): "
          f"{sum(r['wall'] for r in nights):.1f} s in all, {n_stories} stories ({n_multi} with 2+ articles), "
          f"purity {n_pure:.3f}, ARI {n_ari:.3f}, {sum(r['changed'] for r in nights)} story changes reported")
    if not args.keep:
        shutil.rmtree(work)
    return 0 if speedup >= 20 and second["embedded"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
