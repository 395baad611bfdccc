#!/usr/bin/env python
"""The time rule reconsidered: a hard 7-day window against longer windows and a soft time decay.

Today two dated articles further apart than ``ClusterOptions.time_window_days`` (7) never share a
story; undated articles link to anything. Follow-ups of one story (a court ruling after an arrest,
a death toll revised, a pay deal after a strike) often come one to three weeks later, so a hard
7-day cut may split real stories; a longer window lets more same-kind events of the period merge.
This benchmark measures both sides, with the rules:

* ``hard W``: the product's rule with ``time_window_days = W`` (W = 7 today; 14, 21, 30; ``off``);
* ``soft g/r``: a time decay instead of a cut (implemented here only, by patching
  ``storyclust.cluster._group_distances`` for the run, see :func:`time_rule`): inside a story
  candidate group the distance of two dated articles grows by ``r * max(0, gap - g) / 7``
  (``r`` per week beyond a grace of ``g`` days), as the streaming news clusterer of Priberam
  (Miranda et al., EMNLP 2018) decays similarity with the time gap; a hard cap (30 days) bounds
  the search and how long a story must stay open. Undated articles get no penalty.

**Synthetic follow-ups** (:func:`generate`): template wires as in ``bench_incremental.py`` (5 kinds
of event, 40 cities, 5 languages, an event-specific spokesperson), ``--events`` events per corpus
(each a distinct kind and city) starting over ``--days`` days, a first burst of 3-8 reports within
36 h, and for ``--follow-share`` of the events 1-2 follow-up waves 0-``--max-gap`` days after the
start (1-3 reports each: a new title and two new sentences, such as a death toll revised or a
charge brought, plus one recap sentence of the first report and the same spokesperson). Gold: one
story per event, follow-ups included. Distractors: the other events of the same kind in the same
period (other cities), and, in the ``+ recurrences`` corpus, ``--recurrences`` x events that are
*new* events of the same kind in the same city 5-30 days after an event (new spokesperson, new
numbers): the hard case for a long window. Each seed is a new corpus; figures are means over
seeds, gains are paired against ``hard 7`` seed by seed (SE = sd / sqrt(seeds)). ``nested`` rows
pick the best longer window and the best soft setting on the other seeds and score it on the
held-out one (so the choice is not scored on the seeds it was chosen on).

**SemEval no-harm check**: the labelled dev pairs with the synthetic, component-consistent dates of
``bench_quality.py --dates mixed`` (same-story components within ``--date-jitter-days``, 3 by
default; components spread over 180 days), with ``--semeval-shares`` of the articles dated, over
``--date-seeds`` date draws. A rule only matters for pairs whose two articles are dated: with a
jitter of 3 days every dated same-story pair is within 3 days and the rules can only differ on
dated pairs of different components (precision); a jitter of 7 days puts a third of the same-story
pairs 3-7 days apart (inside today's window), which a decay without grace penalises. Gains are
paired against ``hard 7``, with two standard errors: over the date draws, and over the labelled
pairs (a paired bootstrap, :func:`pair_bootstrap_se`).

**The choice** (:func:`choose`, printed when both parts ran, or from earlier ``--json`` files with
``--from-json``): a rule may replace ``hard 7`` when its synthetic gain exceeds its SE on both
corpora and no SemEval loss (F1 all or cross-lingual, any dated variant) exceeds its SE; of those,
the best synthetic F1 wins.

Embeddings: the real default embedder, each view text embedded once and cached in
``--cache DIR/views-<model>.npz`` (text SHA-1 -> vector); the SemEval vectors come from
``bench_quality.py``'s ``--embeddings-cache`` file. ``--replay RULE=DAYS,...`` also feeds corpora
(``--replay-seeds``) night by night through ``storyclust.incremental.nightly`` with each story
window and compares the nightly state with the one-shot partition of the same rule. On 2 cores a
whole run takes longer than 10 minutes: run the parts apart (``--no-semeval``, ``--no-synthetic``
with one share each) with ``--json``, then ``--from-json`` for the choice (bench/README.md).

Usage::

    python bench/bench_time_rule.py [--seeds 0 1 2 3 4 5] [--events 150] [--cache /tmp/storyclust-time-rule]
        [--embeddings-cache /tmp/sem.npy] [--semeval-shares 0.4 1.0] [--date-jitter-days 3] [--date-seeds 10]
        [--no-semeval | --no-synthetic] [--json OUT.json] [--from-json A.json B.json ...]
        [--replay 'hard 7 (today)=3,7' ... --replay-seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import math
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_incremental import CLOSING, FIRST_NAMES, LAST_NAMES, PLACES, QUOTE, SOURCES, TEMPLATES  # noqa: E402

from storyclust.settings import ClusterOptions  # noqa: E402
from storyclust.types import Article  # noqa: E402

START = datetime(2026, 3, 2, 6, 0, tzinfo=timezone.utc)
LANGS = list(CLOSING)

# event kind -> language -> (follow-up title, [follow-up sentence, follow-up sentence]); {n2} is the wave's new number
FOLLOW_UPS: dict[str, dict[str, tuple[str, list[str]]]] = {
    "quake": {
        "en": ("Death toll from {p} earthquake rises to {n2}", [
            "The number of people killed by the magnitude {m} earthquake near {p} has risen to {n2}, officials said.",
            "Thousands of families in {p} are still living in tents while engineers inspect damaged buildings."]),
        "fr": ("Le bilan du séisme de {p} s'alourdit à {n2} morts", [
            "Le bilan du séisme de magnitude {m} près de {p} s'est alourdi à {n2} morts, selon les autorités.",
            "Des milliers de familles de {p} vivent toujours sous des tentes pendant que des ingénieurs inspectent "
            "les bâtiments endommagés."]),
        "de": ("Zahl der Todesopfer nach Erdbeben in {p} steigt auf {n2}", [
            "Die Zahl der Toten nach dem Erdbeben der Stärke {m} bei {p} ist auf {n2} gestiegen, teilten die "
            "Behörden mit.",
            "Tausende Familien in {p} leben weiterhin in Zelten, während Ingenieure beschädigte Gebäude prüfen."]),
        "es": ("Asciende a {n2} el número de muertos por el terremoto de {p}", [
            "El número de muertos por el terremoto de magnitud {m} cerca de {p} ha ascendido a {n2}, según las "
            "autoridades.",
            "Miles de familias de {p} siguen viviendo en tiendas de campaña mientras los ingenieros revisan los "
            "edificios dañados."]),
        "id": ("Korban tewas gempa {p} bertambah menjadi {n2} orang", [
            "Jumlah korban tewas akibat gempa bermagnitudo {m} di dekat {p} bertambah menjadi {n2} orang, kata "
            "pejabat setempat.",
            "Ribuan keluarga di {p} masih tinggal di tenda sementara para insinyur memeriksa bangunan yang rusak."]),
    },
    "flood": {
        "en": ("{p} begins clean-up as flood waters recede", [
            "Flood waters in {p} receded after the heavy rain that forced {n} thousand people from their homes.",
            "Insurers estimate the damage in {p} at {n2} million euros."]),
        "fr": ("{p} commence le nettoyage après la décrue", [
            "Les eaux ont reculé à {p} après les pluies diluviennes qui avaient chassé {n} mille habitants de "
            "chez eux.",
            "Les assureurs estiment les dégâts à {p} à {n2} millions d'euros."]),
        "de": ("{p} beginnt mit Aufräumarbeiten nach dem Hochwasser", [
            "Das Hochwasser in {p} ist zurückgegangen, nachdem der Starkregen {n} tausend Menschen aus ihren "
            "Häusern vertrieben hatte.",
            "Versicherer schätzen den Schaden in {p} auf {n2} Millionen Euro."]),
        "es": ("{p} empieza la limpieza tras la bajada de las aguas", [
            "Las aguas bajaron en {p} tras las lluvias que obligaron a {n} mil personas a dejar sus casas.",
            "Las aseguradoras calculan los daños en {p} en {n2} millones de euros."]),
        "id": ("{p} mulai bersih-bersih setelah banjir surut", [
            "Banjir di {p} mulai surut setelah hujan deras yang memaksa {n} ribu warga mengungsi.",
            "Perusahaan asuransi memperkirakan kerugian di {p} mencapai {n2} juta euro."]),
    },
    "strike": {
        "en": ("{p} transport unions reach pay deal after strike", [
            "Unions and the transport operator in {p} agreed a pay rise of {n2} percent, ending the dispute that "
            "led to a {n}-hour strike.",
            "Buses and metro trains in {p} were running normally again on Monday."]),
        "fr": ("Accord salarial dans les transports de {p} après la grève", [
            "Les syndicats et l'opérateur des transports de {p} ont conclu une hausse de salaire de {n2} %, "
            "mettant fin au conflit qui avait provoqué une grève de {n} heures.",
            "Les bus et les métros de {p} circulaient de nouveau normalement lundi."]),
        "de": ("Tarifeinigung im Nahverkehr von {p} nach dem Streik", [
            "Gewerkschaften und Verkehrsbetrieb in {p} einigten sich auf {n2} Prozent mehr Lohn und beendeten den "
            "Konflikt, der zu einem {n}-stündigen Streik geführt hatte.",
            "Busse und U-Bahnen in {p} fuhren am Montag wieder normal."]),
        "es": ("Acuerdo salarial en el transporte de {p} tras la huelga", [
            "Los sindicatos y la empresa de transporte de {p} pactaron una subida salarial del {n2} por ciento, "
            "poniendo fin al conflicto que provocó una huelga de {n} horas.",
            "Los autobuses y el metro de {p} volvieron a funcionar con normalidad el lunes."]),
        "id": ("Serikat transportasi {p} capai kesepakatan upah setelah mogok", [
            "Serikat pekerja dan operator transportasi {p} menyepakati kenaikan upah {n2} persen, mengakhiri "
            "perselisihan yang memicu mogok kerja selama {n} jam.",
            "Bus dan kereta di {p} kembali beroperasi normal pada hari Senin."]),
    },
    "fire": {
        "en": ("Factory owner in {p} charged over fire", [
            "Prosecutors in {p} charged the owner of the textile factory destroyed by fire, in which {n} workers "
            "were injured, with breaching safety rules.",
            "Investigators found that {n2} emergency exits at the {p} factory had been locked."]),
        "fr": ("Le propriétaire de l'usine incendiée à {p} mis en examen", [
            "Le parquet de {p} a mis en examen le propriétaire de l'usine textile détruite par l'incendie qui avait "
            "blessé {n} ouvriers, pour manquement aux règles de sécurité.",
            "Les enquêteurs ont établi que {n2} sorties de secours de l'usine de {p} étaient verrouillées."]),
        "de": ("Anklage gegen Fabrikbesitzer nach Großbrand in {p}", [
            "Die Staatsanwaltschaft in {p} hat den Besitzer der abgebrannten Textilfabrik, in der {n} Arbeiter "
            "verletzt wurden, wegen Verstößen gegen Sicherheitsvorschriften angeklagt.",
            "Ermittler stellten fest, dass {n2} Notausgänge der Fabrik in {p} verschlossen waren."]),
        "es": ("Imputado el dueño de la fábrica incendiada en {p}", [
            "La fiscalía de {p} imputó al dueño de la fábrica textil destruida por el incendio, que dejó {n} "
            "trabajadores heridos, por incumplir las normas de seguridad.",
            "Los investigadores descubrieron que {n2} salidas de emergencia de la fábrica de {p} estaban cerradas "
            "con llave."]),
        "id": ("Pemilik pabrik di {p} jadi tersangka kebakaran", [
            "Jaksa di {p} menetapkan pemilik pabrik tekstil yang hangus terbakar, yang melukai {n} pekerja, "
            "sebagai tersangka pelanggaran aturan keselamatan.",
            "Penyidik menemukan {n2} pintu darurat pabrik di {p} dalam keadaan terkunci."]),
    },
    "election": {
        "en": ("Re-elected mayor of {p} sworn in", [
            "The mayor of {p}, re-elected with {n} percent of the vote, was sworn in for a second term on Thursday.",
            "The new city council of {p} has {n2} members."]),
        "fr": ("Le maire réélu de {p} prête serment", [
            "Le maire de {p}, réélu avec {n} % des voix, a été investi jeudi pour un second mandat.",
            "Le nouveau conseil municipal de {p} compte {n2} membres."]),
        "de": ("Wiedergewählter Bürgermeister von {p} vereidigt", [
            "Der mit {n} Prozent wiedergewählte Bürgermeister von {p} wurde am Donnerstag für eine zweite "
            "Amtszeit vereidigt.",
            "Der neue Stadtrat von {p} hat {n2} Mitglieder."]),
        "es": ("Toma posesión el alcalde reelegido de {p}", [
            "El alcalde de {p}, reelegido con el {n} por ciento de los votos, tomó posesión de su segundo mandato "
            "el jueves.",
            "El nuevo concejo municipal de {p} tiene {n2} miembros."]),
        "id": ("Wali kota {p} yang terpilih kembali dilantik", [
            "Wali kota {p} yang terpilih kembali dengan {n} persen suara dilantik untuk masa jabatan kedua pada "
            "hari Kamis.",
            "Dewan kota {p} yang baru memiliki {n2} anggota."]),
    },
}


# the follow-up wave's new number: a revised death toll, damage in millions, a pay rise, locked exits, council seats
NEW_NUMBER = {
    "quake": lambda rng, n: n + rng.randint(2, 60),
    "flood": lambda rng, n: rng.randint(10, 900),
    "strike": lambda rng, n: rng.randint(2, 9),
    "fire": lambda rng, n: rng.randint(2, 6),
    "election": lambda rng, n: rng.randint(21, 61),
}


# -- the rules ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeRule:
    """A time rule: a hard window (``window`` days, None = off), plus a soft decay when ``per_week`` > 0.

    Soft: inside a candidate group, the distance of two dated articles grows by
    ``per_week * max(0, gap_days - grace) / 7``; ``window`` is then the hard cap beyond which they never
    share a story (and what bounds the neighbour search).
    """

    name: str
    window: Optional[float]
    grace: float = 0.0
    per_week: float = 0.0

    @property
    def soft(self) -> bool:
        return self.per_week > 0.0

    def reach_days(self, max_distance: float = ClusterOptions.max_distance) -> float:
        """The largest gap at which two articles can still share a story (infinite when there is no cap)."""
        far = self.window if self.window else float("inf")
        if self.soft:  # even at distance 0 the penalty must stay <= max_distance
            far = min(far, self.grace + 7.0 * max_distance / self.per_week)
        return far


HARD = [TimeRule("hard 7 (today)", 7.0), TimeRule("hard 14", 14.0), TimeRule("hard 21", 21.0),
        TimeRule("hard 30", 30.0), TimeRule("off (no window)", None)]
SOFT_CAP = 30.0
SOFT = [TimeRule(f"soft g{g:g} r{r:g}", SOFT_CAP, g, r) for g in (0.0, 3.0, 7.0) for r in (0.025, 0.05, 0.10, 0.20)]
# the cap's effect on two soft settings (not in the nested choice): a lower cap lets stories close sooner
CAPS = [TimeRule(f"soft g3 r0.1 cap {c:g}", c, 3.0, 0.10) for c in (14.0, 21.0)] + [
    TimeRule("soft g3 r0.2 cap 21", 21.0, 3.0, 0.20)]
RULES = HARD + SOFT + CAPS
BASELINE = HARD[0]
RULE_BY_NAME = {r.name: r for r in RULES}


@contextlib.contextmanager
def time_rule(rule: TimeRule) -> Iterator[ClusterOptions]:
    """Cluster options for ``rule``; for a soft rule, ``storyclust.cluster._group_distances`` is patched for the block.

    The candidate search keeps using the cap (``time_window_days = rule.window``) and the plain
    similarity, so candidate groups are a superset of the penalised ones; average linkage inside
    each group then decides on the penalised distances (a pair whose penalised distance exceeds the
    threshold cannot be merged by it, so the result is that of penalised candidate edges too).
    """
    from storyclust import cluster

    options = ClusterOptions(time_window_days=rule.window)
    if not rule.soft:
        yield options
        return
    original = cluster._group_distances

    def decayed(Zg: np.ndarray, days: Optional[np.ndarray], window: Optional[float],
                bonus: Optional[np.ndarray] = None) -> np.ndarray:
        D = original(Zg, days, window, bonus)
        if days is None:
            return D
        gap = np.abs(days[:, None] - days[None, :])
        penalty = np.nan_to_num(rule.per_week / 7.0 * np.clip(gap - rule.grace, 0.0, None), nan=0.0)  # undated: 0
        D = np.where(D < 2.0, np.minimum(D + penalty, 2.0), D)
        np.fill_diagonal(D, 0.0)
        return D

    cluster._group_distances = decayed
    try:
        yield options
    finally:
        cluster._group_distances = original


# -- the synthetic corpus ---------------------------------------------------------------


@dataclass(frozen=True)
class Wire:
    """One synthetic article with its gold: ``event`` (the story), ``recurrence_of`` (the event it recurs after)."""

    article: Article
    event: str
    kind: str
    wave: int  # 0 = first burst, 1.. = follow-up waves
    recurrence_of: Optional[str] = None


def _text(title: str, sentences: list[str], closing: str, fields: dict) -> tuple[str, str]:
    """(title, full text) of a wire: the title, a blank line, the sentences and the closing line."""
    body = " ".join(s.format(**fields) for s in sentences)
    return title.format(**fields), title.format(**fields) + "\n\n" + body + " " + closing + "\n"


def generate(seed: int, events: int = 150, days: float = 60.0, follow_share: float = 0.6, max_gap: float = 25.0,
             recurrences: float = 0.1) -> list[Wire]:
    """The synthetic dated wires of one seed (see the module docstring); recurrences come last."""
    rng = random.Random(seed)
    combos = [(kind, place) for kind in TEMPLATES for place in PLACES]
    rng.shuffle(combos)
    if events > len(combos):
        raise ValueError(f"at most {len(combos)} events (one per kind and city)")
    wires: list[Wire] = []

    def report(event: str, kind: str, place: str, wave: int, when: datetime, k: int, fields: dict, who: str,
               recurrence_of: Optional[str]) -> Wire:
        lang = rng.choice(LANGS)
        closing = CLOSING[lang].format(s=rng.choice(SOURCES), h=rng.randint(6, 22), mi=f"{rng.randint(0, 59):02d}")
        quote = QUOTE[lang].replace("{w}", who)
        first_title, first = TEMPLATES[kind][lang]
        if wave == 0:
            body = [first[0], *rng.sample(first[1:], len(first) - 1)]
            title = first_title
        else:
            title, follow = FOLLOW_UPS[kind][lang]
            body = [follow[0], first[0], follow[1]]  # new facts, a recap of the first report, more new facts
        body.insert(rng.randint(1, len(body)), quote)
        title_text, text = _text(title, body, closing, fields)
        article = Article(id=f"s{seed}-{event}-{k}", text=text, title=title_text, lang=lang, published=when,
                          source=rng.choice(SOURCES))
        return Wire(article, event, kind, wave, recurrence_of)

    def event_wires(event: str, kind: str, place: str, start: datetime, recurrence_of: Optional[str]) -> list[Wire]:
        fields = {"p": place, "n": rng.randint(3, 95), "m": f"{rng.uniform(5.0, 7.9):.1f}"}
        who = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        waves = [(0, start)]
        if recurrence_of is None and rng.random() < follow_share:
            waves += [(w, start + timedelta(days=rng.uniform(0.0, max_gap))) for w in range(1, rng.choice((1, 2)) + 1)]
        out: list[Wire] = []
        for wave, at in waves:
            wave_fields = {**fields, "n2": NEW_NUMBER[kind](rng, fields["n"])}
            for _ in range(rng.randint(3, 8) if wave == 0 else rng.randint(1, 3)):
                when = at + timedelta(hours=rng.uniform(0, 36))
                out.append(report(event, kind, place, wave, when, len(out), wave_fields, who, recurrence_of))
        return out

    starts = []
    for e, (kind, place) in enumerate(combos[:events]):
        start = START + timedelta(days=rng.uniform(0.0, days))
        starts.append((f"e{e}", kind, place, start))
        wires += event_wires(f"e{e}", kind, place, start, None)
    for r in range(int(round(recurrences * events))):
        event, kind, place, start = rng.choice(starts)
        wires += event_wires(f"r{r}", kind, place, start + timedelta(days=rng.uniform(5.0, 30.0)), event)
    return wires


# -- embeddings --------------------------------------------------------------------------


class CachedViews:
    """The default embedder's vectors for view texts, each text embedded once and kept in an .npz file.

    Has what :func:`storyclust.embed.embed_articles` and the nightly driver use of an embedder:
    ``model_id``, ``dim``, ``encode``. The real embedder is loaded at construction (for its id).
    """

    def __init__(self, folder: Path) -> None:
        from storyclust.embed import load_embedder

        self._base = load_embedder()
        self.model_id, self.dim = self._base.model_id, self._base.dim
        key = hashlib.sha1(self.model_id.encode("utf-8")).hexdigest()[:12]
        self.path = folder / f"views-{key}.npz"
        self._vectors: dict[str, np.ndarray] = {}
        if self.path.exists():
            z = np.load(self.path)
            self._vectors = dict(zip(z["keys"].tolist(), z["X"]))
        self.embedded = 0
        self.embed_s = 0.0

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        missing = sorted({self._key(t): t for t in texts if self._key(t) not in self._vectors}.items())
        if missing:
            t0 = time.perf_counter()
            X = self._base.encode([t for _, t in missing], progress=progress)
            self.embed_s += time.perf_counter() - t0
            self.embedded += len(missing)
            self._vectors.update(zip([k for k, _ in missing], X))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vectors[self._key(t)] for t in texts]).astype(np.float32)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = sorted(self._vectors)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, keys=np.array(keys), X=np.stack([self._vectors[k] for k in keys]))
        os.replace(tmp, self.path)


# -- scoring -----------------------------------------------------------------------------


def _event_codes(wires: Sequence[Wire]) -> tuple[np.ndarray, np.ndarray]:
    """Integer code of each wire's event, and of the event it recurs after (-1: none)."""
    codes = {e: k for k, e in enumerate(sorted({w.event for w in wires}))}
    event = np.array([codes[w.event] for w in wires])
    origin = np.array([codes.get(w.recurrence_of, -1) if w.recurrence_of else -1 for w in wires])
    return event, origin


def _prf(same_gold: np.ndarray, same_pred: np.ndarray) -> tuple[float, float, float]:
    """Pairwise precision, recall, F1 of boolean pair arrays (vacuous ratios are 1.0, as in storyclust.evaluate)."""
    tp, pred, gold = int((same_gold & same_pred).sum()), int(same_pred.sum()), int(same_gold.sum())
    p, r = (tp / pred if pred else 1.0), (tp / gold if gold else 1.0)
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def pair_figures(wires: Sequence[Wire], story_of: dict[str, str], far_days: float = 7.0) -> dict[str, float]:
    """Pairwise P / R / F1 over all pairs, over pairs more than ``far_days`` apart and within; recurrence merges."""
    event, origin = _event_codes(wires)
    stories = {s: k for k, s in enumerate(sorted(set(story_of.values())))}
    pred = np.array([stories[story_of[w.article.id]] for w in wires])
    days = np.array([w.article.published.timestamp() / 86400.0 for w in wires])
    i, j = np.triu_indices(len(wires), k=1)
    far = np.abs(days[i] - days[j]) > far_days
    same_gold, same_pred = event[i] == event[j], pred[i] == pred[j]
    p, r, f = _prf(same_gold, same_pred)
    fp, fr, ff = _prf(same_gold & far, same_pred & far)
    _, _, nf = _prf(same_gold & ~far, same_pred & ~far)
    rec = (origin[i] == event[j]) | (origin[j] == event[i])
    return {"f1": f, "p": p, "r": r, "far_f1": ff, "far_p": fp, "far_r": fr, "far_pairs": int((same_gold & far).sum()),
            "near_f1": nf, "rec_merged": float(same_pred[rec].mean()) if rec.any() else float("nan")}


class OneShot:
    """The one-shot recipe of :func:`storyclust.pipeline.cluster_articles` on fixed articles, rule after rule.

    Copies are folded once (:func:`~storyclust.pipeline.fold_copies` does not read dates or the time
    rule), then each call runs :func:`~storyclust.pipeline.partition` on the first copies and puts every
    copy in its first copy's story: the partition ``cluster_articles`` gives, without its story records.
    """

    def __init__(self, articles: Sequence[Article], X: np.ndarray, means) -> None:
        from storyclust.pipeline import fold_copies

        folded = fold_copies(articles, threshold=ClusterOptions.near_duplicate_threshold)
        self.ids = [a.id for a in folded]
        self.primary = [k for k, a in enumerate(folded) if a.duplicate_of is None]
        self.firsts = [folded[k] for k in self.primary]
        self.root = {a.id: a.duplicate_of or a.id for a in folded}
        self.X, self.means = np.asarray(X, dtype=np.float32)[self.primary], means

    def story_of(self, rule: TimeRule) -> dict[str, str]:
        """``{article id: story label}`` under ``rule``."""
        from storyclust.pipeline import partition

        with time_rule(rule) as options:
            labels = partition(self.firsts, self.X, options, self.means).labels
        label_of = {a.id: int(label) for a, label in zip(self.firsts, labels)}
        return {i: str(label_of[self.root[i]]) for i in self.ids}


def cluster_wires(wires: Sequence[Wire], X: np.ndarray, means, rule: TimeRule) -> dict[str, str]:
    """``{article id: story}`` of the one-shot recipe under ``rule`` (one call of :class:`OneShot`)."""
    return OneShot([w.article for w in wires], X, means).story_of(rule)


def paired(values: dict[int, float], reference: dict[int, float]) -> tuple[float, float]:
    """Mean and standard error of the seed-by-seed differences ``values - reference``."""
    d = np.array([values[s] - reference[s] for s in sorted(values)])
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")


def nested_choice(results: dict[str, dict[int, dict]], names: list[str], metric: str = "f1") -> dict[int, dict]:
    """Leave one seed out: the rule of ``names`` with the best mean ``metric`` on the other seeds, scored on it."""
    seeds = sorted(next(iter(results.values())))
    out = {}
    for s in seeds:
        best = max(names, key=lambda n: np.mean([results[n][t][metric] for t in seeds if t != s]))
        out[s] = {**results[best][s], "chosen": best}
    return out


def similarity_profile(wires: Sequence[Wire], X: np.ndarray, means) -> list[tuple[str, np.ndarray]]:
    """Neutral-space cosines of kinds of pairs (what a rule has to separate)."""
    from storyclust.evaluate import clustering_space

    Z = clustering_space([w.article for w in wires], X, None, means)
    S = Z @ Z.T
    i, j = np.triu_indices(len(wires), k=1)
    ev, origin = _event_codes(wires)
    kind = np.array([w.kind for w in wires])
    wave = np.array([w.wave for w in wires])
    days = np.array([w.article.published.timestamp() / 86400.0 for w in wires])
    gap = np.abs(days[i] - days[j])
    same = ev[i] == ev[j]
    rec = (origin[i] == ev[j]) | (origin[j] == ev[i])
    groups = [
        ("same event, first burst", same & (wave[i] == 0) & (wave[j] == 0)),
        ("same event, follow-up vs first burst", same & ((wave[i] == 0) != (wave[j] == 0))),
        ("same event, follow-up vs first, > 7 days", same & ((wave[i] == 0) != (wave[j] == 0)) & (gap > 7)),
        ("same kind, other city, within 30 days", ~same & ~rec & (kind[i] == kind[j]) & (gap <= 30)),
        ("recurrence (same kind and city, new event)", rec),
    ]
    return [(name, S[i[m], j[m]]) for name, m in groups if m.any()]


# -- nightly consistency -----------------------------------------------------------------


def replay(wires: Sequence[Wire], embedder: CachedViews, rule: TimeRule, story_window: timedelta) -> dict[str, str]:
    """Feed the wires one day per night (``now`` = the end of that day) through the nightly driver."""
    from storyclust.incremental import nightly
    from storyclust.settings import StateOptions
    from storyclust.store import open_store

    by_night: dict[int, list[Article]] = {}
    for w in wires:
        by_night.setdefault(int((w.article.published - START).total_seconds() // 86400), []).append(w.article)
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp) / "state.db") as store, time_rule(rule) as options:
        for night in range(min(by_night), max(by_night) + 1):
            nightly(store, by_night.get(night, []), embedder, lambda stories: None, options=options,
                    state=StateOptions(now=START + timedelta(days=night + 1), story_window=story_window))
        return dict(store.memberships())


# -- SemEval no-harm check ---------------------------------------------------------------


def pair_bootstrap_se(preds: dict[str, np.ndarray], base: str, same: np.ndarray, masks: Sequence[np.ndarray],
                      rounds: int = 1000, seed: int = 0) -> dict[str, list[float]]:
    """Standard error, over the labelled pairs, of each rule's F1 gain over ``base`` (mean over the date seeds).

    ``preds[rule]`` is a (date seeds, pairs) boolean array of "predicted same story". Each round resamples the
    pairs of each mask (all labelled pairs, the cross-lingual ones) with replacement, the same draw for every
    rule and date seed (a paired bootstrap), and recomputes the mean F1 difference. Returns
    ``{rule: [SE all, SE cross-lingual]}``.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {name: [] for name in preds}
    for mask in masks:
        idx = np.flatnonzero(mask)
        W = np.stack([np.bincount(idx[rng.integers(0, len(idx), len(idx))], minlength=len(mask))
                      for _ in range(rounds)]).astype(np.float64)  # rounds x pairs: how often each pair is drawn

        def f1(P: np.ndarray) -> np.ndarray:  # rounds x date seeds
            tp, predicted, actual = W @ (P & same).T, W @ P.T, (W @ same)[:, None]
            return 2 * tp / np.maximum(predicted + actual, 1)

        reference = f1(preds[base])
        for name, P in preds.items():
            out[name].append(float((f1(P) - reference).mean(axis=1).std(ddof=1)))
    return out


def semeval_check(csv: Path, cache: Optional[Path], shares: Sequence[float], date_seeds: int,
                  rules: Sequence[TimeRule], jitter_days: float = 3.0) -> dict[str, dict[str, dict]]:
    """Pair F1 (all, cross-lingual) of each rule on the SemEval pairs with synthetic component-consistent dates.

    Returns ``{"share S, jitter J d": {rule name: {"seeds": {date seed: (F1, xl F1, P, R)}, "pair_se": [SE, xl SE]}}}``
    (``pair_se``: :func:`pair_bootstrap_se` of the gain over :data:`BASELINE`).
    """
    import bench_quality as bq
    from storyclust.evaluate import load_semeval, score_semeval_pairs

    data = load_semeval(str(csv))
    vectors, info, means = bq.load_or_embed(data.articles, csv, cache)
    print(f"\nSemEval no-harm check: {csv.name}, {len(data.articles)} articles, vectors: {info['source']}; "
          f"dates as bench_quality.py --dates mixed (same-story components within {jitter_days:g} days, spread over "
          f"180 days), {date_seeds} date seeds per share; gain vs {BASELINE.name}, mean over the date seeds, with "
          "its SE over the date seeds and its SE over the labelled pairs (paired bootstrap, 1,000 rounds)")
    undated, _ = bq.run_storyclust(data.articles, vectors, means)
    u = score_semeval_pairs(data.pairs, undated)
    print(f"  undated (no rule applies): F1 {u['all']['f1']:.3f}, xl F1 {u['cross_lingual']['f1']:.3f}")
    same = (data.pairs["overall"] <= bq.SEMEVAL_SAME_MAX).to_numpy()
    labelled = same | (data.pairs["overall"] >= bq.SEMEVAL_DIFF_MIN).to_numpy()
    xl = data.pairs["cross_lingual"].to_numpy(dtype=bool)
    out: dict[str, dict[str, dict]] = {}
    for share in shares:
        scores: dict[str, dict[int, tuple]] = {r.name: {} for r in rules}
        preds: dict[str, list[np.ndarray]] = {r.name: [] for r in rules}
        affected = []
        for seed in range(date_seeds):
            dates = bq.synthetic_dates(data.articles, data.pairs, share, seed, jitter_days=jitter_days)
            gap = bq.pair_gap_days(data.pairs, dates)
            affected.append((int((labelled & ~np.isnan(gap)).sum()), int((labelled & (gap > 7)).sum()),
                             int((same & ~np.isnan(gap)).sum()), int((same & (gap > 3)).sum())))
            one_shot = OneShot(bq.with_dates(data.articles, dates), vectors, means)
            for rule in rules:
                story_of = one_shot.story_of(rule)
                s = score_semeval_pairs(data.pairs, story_of)
                scores[rule.name][seed] = (s["all"]["f1"], s["cross_lingual"]["f1"], s["all"]["precision"],
                                           s["all"]["recall"])
                preds[rule.name].append(np.array([story_of[a] == story_of[b]
                                                  for a, b in zip(data.pairs["id1"], data.pairs["id2"])]))
        pair_se = pair_bootstrap_se({k: np.stack(v) for k, v in preds.items()}, BASELINE.name, same,
                                    (labelled, labelled & xl))
        out[f"share {share:g}, jitter {jitter_days:g} d"] = {
            name: {"seeds": scores[name], "pair_se": pair_se[name]} for name in scores}
        a = np.array(affected).mean(axis=0)
        print(f"\n  dated share {share:g}, jitter {jitter_days:g} d (means over seeds): labelled pairs dated on both "
              f"sides {a[0]:.0f}, of which > 7 days apart {a[1]:.0f} (none same-story); same-story pairs dated on "
              f"both sides {a[2]:.0f}, of which > 3 days apart {a[3]:.0f}")
        print(f"  {'rule':<22}{'P':>7}{'R':>7}{'F1':>7}{'xl F1':>7}{'F1 gain (SE dates, pairs)':>30}"
              f"{'xl gain (SE dates, pairs)':>30}")
        base = scores[BASELINE.name]
        for rule in rules:
            sc = scores[rule.name]
            g, gs = paired({k: v[0] for k, v in sc.items()}, {k: v[0] for k, v in base.items()})
            x, xs = paired({k: v[1] for k, v in sc.items()}, {k: v[1] for k, v in base.items()})
            mean = np.mean(list(sc.values()), axis=0)
            ps = pair_se[rule.name]
            print(f"  {rule.name:<22}{mean[2]:>7.3f}{mean[3]:>7.3f}{mean[0]:>7.3f}{mean[1]:>7.3f}"
                  f"{g:>+14.4f} ({gs:.4f}, {ps[0]:.4f}){x:>+14.4f} ({xs:.4f}, {ps[1]:.4f})")
    return out


# -- main ---------------------------------------------------------------------------------


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5], help="one corpus per seed")
    parser.add_argument("--events", type=int, default=150, help="events per corpus (default %(default)s)")
    parser.add_argument("--days", type=float, default=60.0, help="events start over this many days")
    parser.add_argument("--follow-share", type=float, default=0.6, help="share of events with follow-ups")
    parser.add_argument("--max-gap", type=float, default=25.0, help="follow-up waves 0..this many days after the start")
    parser.add_argument("--recurrences", type=float, default=0.1,
                        help="new same-kind, same-city events per event, 5-30 days after one "
                             "(the + recurrences corpus)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "storyclust-time-rule",
                        help="folder of the view-vector cache (default %(default)s)")
    parser.add_argument("--semeval", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "eval" /
                        "semeval_dev.csv", help="SemEval pairs CSV for the no-harm check (skipped when absent)")
    parser.add_argument("--embeddings-cache", type=Path, help="bench_quality.py's SemEval vector cache (.npy)")
    parser.add_argument("--semeval-shares", type=float, nargs="+", default=[0.4, 1.0],
                        help="shares of dated SemEval articles (default %(default)s)")
    parser.add_argument("--date-seeds", type=int, default=10, help="date draws per share (default %(default)s)")
    parser.add_argument("--date-jitter-days", type=float, default=3.0,
                        help="articles of one SemEval story lie within this many days (default %(default)s)")
    parser.add_argument("--no-semeval", action="store_true", help="skip the SemEval check")
    parser.add_argument("--no-synthetic", action="store_true", help="skip the synthetic follow-ups")
    parser.add_argument("--replay", nargs="*", metavar="RULE=DAYS,...",
                        help="replay corpora night by night through the nightly driver, for each RULE "
                             "(a rule name) with each story window in DAYS (default: 'hard 7 (today)=3,7' and "
                             "'soft g7 r0.1=3,30')")
    parser.add_argument("--replay-seeds", type=int, nargs="+", help="corpora to replay (default: the first of --seeds)")
    parser.add_argument("--json", type=Path, help="also write every per-seed figure here")
    parser.add_argument("--from-json", type=Path, nargs="+", default=[],
                        help="merge the figures of earlier --json runs (e.g. the synthetic part and each SemEval "
                             "share run separately, to keep each run short) and print the choice")
    args = parser.parse_args(argv)
    replays = parse_replays(parser, args.replay)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"machine: {cpu}, {os.cpu_count()} cores (speed not measured: quality only)")
    t_start = time.perf_counter()
    synthetic, semeval, embedder, means = {}, {}, None, None
    if not args.no_synthetic or replays:
        from storyclust.pipeline import starting_language_means

        embedder = CachedViews(args.cache)
        means = starting_language_means(embedder)
        print(f"embedder: {embedder.model_id}; cache {embedder.path}")
    if not args.no_synthetic:
        synthetic = run_synthetic(args, embedder, means)
    if not args.no_semeval:
        if args.semeval.is_file():
            semeval = semeval_check(args.semeval, args.embeddings_cache, args.semeval_shares, args.date_seeds, RULES,
                                    args.date_jitter_days)
        else:
            print(f"\nSemEval CSV not found: {args.semeval}: no-harm check skipped")
    for path in args.from_json:
        earlier_synthetic, earlier_semeval = load_figures(path)
        for corpus, rules in earlier_synthetic.items():
            for name, seeds in rules.items():
                synthetic.setdefault(corpus, {}).setdefault(name, {}).update(seeds)
        semeval.update(earlier_semeval)
    if synthetic and semeval:
        choose(synthetic, semeval)
    if replays:
        replay_table(args, embedder, means, replays)
    if args.json:
        import json

        args.json.write_text(json.dumps({"synthetic": synthetic, "semeval": semeval}, indent=1, default=float))
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    return 0


def load_figures(path: Path) -> tuple[dict, dict]:
    """The (synthetic, SemEval) figures of a ``--json`` file, with numeric keys restored."""
    import json

    data = json.loads(path.read_text())
    synthetic = {corpus: {name: {int(seed): v for seed, v in seeds.items()} for name, seeds in rules.items()}
                 for corpus, rules in data.get("synthetic", {}).items()}
    semeval = {variant: {name: {"seeds": {int(seed): tuple(v) for seed, v in fig["seeds"].items()},
                                "pair_se": fig["pair_se"]} for name, fig in rules.items()}
               for variant, rules in data.get("semeval", {}).items()}
    return synthetic, semeval


def parse_replays(parser: argparse.ArgumentParser, specs: Optional[list[str]]) -> list[tuple[TimeRule, list[float]]]:
    """``--replay`` arguments as (rule, story windows in days)."""
    if specs is None:
        return []
    specs = specs or ["hard 7 (today)=3,7", "soft g7 r0.1=3,30"]
    out = []
    for spec in specs:
        name, _, windows = spec.partition("=")
        if name not in RULE_BY_NAME:
            parser.error(f"unknown rule {name!r} (one of: {', '.join(RULE_BY_NAME)})")
        try:
            out.append((RULE_BY_NAME[name], [float(w) for w in windows.split(",")] if windows else [3.0]))
        except ValueError:
            parser.error(f"bad story windows in {spec!r}")
    return out


def run_synthetic(args: argparse.Namespace, embedder: CachedViews, means) -> dict[str, dict[str, dict[int, dict]]]:
    """Every rule on every seed's corpus, with and without recurrences; prints the tables, returns the figures."""
    from storyclust.embed import embed_articles

    corpora = ("no recurrences", "+ recurrences")
    results: dict[str, dict[str, dict[int, dict]]] = {c: {r.name: {} for r in RULES} for c in corpora}
    profile: dict[str, list[np.ndarray]] = {}
    for seed in args.seeds:
        wires = generate(seed, args.events, args.days, args.follow_share, args.max_gap, args.recurrences)
        X = embed_articles([w.article for w in wires], embedder)
        embedder.save()
        base = [k for k, w in enumerate(wires) if w.recurrence_of is None]
        variants = {"no recurrences": base, "+ recurrences": list(range(len(wires)))}
        for corpus, rows in variants.items():
            sub = [wires[k] for k in rows]
            one_shot = OneShot([w.article for w in sub], X[rows], means)
            for rule in RULES:
                results[corpus][rule.name][seed] = pair_figures(sub, one_shot.story_of(rule))
        for name, sims in similarity_profile(wires, X, means):
            profile.setdefault(name, []).append(sims)
        n_follow = sum(w.wave > 0 for w in wires)
        print(f"seed {seed}: {len(wires)} wires ({len(base)} without recurrences; {n_follow} follow-ups), "
              f"{len({w.event for w in wires})} events; embedded {embedder.embedded} new texts so far "
              f"({embedder.embed_s:.0f} s)", flush=True)
    print("\nNeutral-space cosine of kinds of pairs (all seeds): mean [10th, 90th percentile]; story threshold "
          f"{1 - ClusterOptions.max_distance:.2f} (plus up to {ClusterOptions.number_weight:.2f} for shared numbers)")
    for name, parts in profile.items():
        s = np.concatenate(parts)
        print(f"  {name:<46}{s.mean():>7.3f} [{np.percentile(s, 10):.3f}, {np.percentile(s, 90):.3f}]  n={len(s)}")
    for corpus, res in results.items():
        print_rule_table(f"Synthetic follow-ups, {corpus}: {len(args.seeds)} seeds, mean over seeds; "
                         f"gains paired against {BASELINE.name} (± SE)", res)
    return results


def choose(synthetic: dict[str, dict[str, dict[int, dict]]], semeval: dict[str, dict[str, dict]]) -> Optional[TimeRule]:
    """The brief's standard: a rule may replace ``hard 7`` when its synthetic gain exceeds its SE on both corpora
    and no SemEval loss (F1 all and cross-lingual, in every dated variant) exceeds its SE; of those, the best mean
    synthetic F1 (both corpora) wins. The SemEval SE combines the date draws and the labelled pairs
    (sqrt of the sum of squares); the stricter one, the date draws alone, is shown too."""
    print(f"\nChoice: gain over hard 7 > its SE on both synthetic corpora, and no SemEval loss larger than its SE "
          f"(F1 all and xl; {'; '.join(semeval)}); best mean synthetic F1 of the two corpora among those")
    print(f"{'rule':<26}{'synthetic F1':>14}{'gain':>8}{'SE':>7}{'worst SemEval':>15}{'SE dates':>10}{'SE total':>10}"
          "  verdict (SE total) / (SE dates only)")
    best, best_f1, strict, strict_f1 = None, -1.0, None, -1.0
    measured = [r for r in RULES if all(r.name in synthetic[c] for c in synthetic)
                and all(r.name in sc for sc in semeval.values())]
    for rule in measured:
        gains = [paired({s: v["f1"] for s, v in synthetic[c][rule.name].items()},
                        {s: v["f1"] for s, v in synthetic[c][BASELINE.name].items()}) for c in synthetic]
        harm = []  # (loss, SE dates, SE total)
        for sc in semeval.values():
            for m in (0, 1):
                h, se = paired({s: v[m] for s, v in sc[rule.name]["seeds"].items()},
                               {s: v[m] for s, v in sc[BASELINE.name]["seeds"].items()})
                harm.append((h, se, float(np.hypot(se, sc[rule.name]["pair_se"][m]))))
        worst = min(harm, key=lambda x: x[0])  # the largest loss (or smallest gain) over the variants
        f1 = float(np.mean([np.mean([v["f1"] for v in synthetic[c][rule.name].values()]) for c in synthetic]))
        gain_ok = rule is not BASELINE and all(g > se for g, se in gains)
        harm_ok = all(h >= -total for h, _, total in harm)
        strict_ok = all(h >= -se for h, se, _ in harm)
        if gain_ok and harm_ok and f1 > best_f1:
            best, best_f1 = rule, f1
        if gain_ok and strict_ok and f1 > strict_f1:
            strict, strict_f1 = rule, f1

        def verdict(ok: bool) -> str:
            return "today" if rule is BASELINE else ("eligible" if gain_ok and ok else
                                                    "SemEval loss > SE" if gain_ok else "gain <= SE")

        g = np.mean([x[0] for x in gains])
        print(f"{rule.name:<26}{f1:>14.3f}{g:>+8.3f}{max(x[1] for x in gains):>7.3f}{worst[0]:>+15.4f}{worst[1]:>10.4f}"
              f"{worst[2]:>10.4f}  {verdict(harm_ok)} / {verdict(strict_ok)}")
    for label, rule in (("SE total", best), ("SE over the date draws only", strict)):
        if rule is None:
            print(f"-> by {label}: keep hard 7, no rule passes both tests")
            continue
        reach = math.ceil(rule.reach_days())
        print(f"-> by {label}: {rule.name} (cap {rule.window:g} d): two articles further apart than "
              f"{rule.reach_days():.1f} days never share a story, so a nightly story_window of {reach} days keeps "
              "nightly runs consistent with one-shot")
    return best


def print_rule_table(title: str, res: dict[str, dict[int, dict]]) -> None:
    print(f"\n{title}")
    print(f"{'rule':<26}{'F1':>7}{'P':>7}{'R':>7}{'F1 gain (SE)':>18}{'F1 >7d':>8}{'P >7d':>7}{'R >7d':>7}"
          f"{'>7d gain (SE)':>18}{'F1 <=7d':>9}{'recur. merged':>15}")
    base = res[BASELINE.name]
    rows = dict(res)
    nested = ("hard, nested (14-30, off)", "soft, nested") if len(base) > 1 else ()  # needs 2+ seeds
    if nested:
        rows[nested[0]] = nested_choice(res, [r.name for r in HARD[1:]])
        rows[nested[1]] = nested_choice(res, [r.name for r in SOFT])
    for name, per_seed in rows.items():
        m = {k: np.mean([v[k] for v in per_seed.values()])
             for k in ("f1", "p", "r", "far_f1", "far_p", "far_r", "near_f1", "rec_merged")}
        g, gs = paired({s: v["f1"] for s, v in per_seed.items()}, {s: v["f1"] for s, v in base.items()})
        fg, fgs = paired({s: v["far_f1"] for s, v in per_seed.items()}, {s: v["far_f1"] for s, v in base.items()})
        rec = "-" if np.isnan(m["rec_merged"]) else f"{m['rec_merged']:.3f}"  # NaN: no recurrences
        print(f"{name:<26}{m['f1']:>7.3f}{m['p']:>7.3f}{m['r']:>7.3f}{g:>+11.3f} ({gs:.3f}){m['far_f1']:>8.3f}"
              f"{m['far_p']:>7.3f}{m['far_r']:>7.3f}{fg:>+11.3f} ({fgs:.3f}){m['near_f1']:>9.3f}{rec:>15}")
    for name in nested:
        chosen = [v["chosen"] for v in rows[name].values()]
        print(f"{name}: chosen per held-out seed: {', '.join(chosen)}")
    if nested:
        g, gs = paired({s: v["f1"] for s, v in rows[nested[1]].items()},
                       {s: v["f1"] for s, v in rows[nested[0]].items()})
        fg, fgs = paired({s: v["far_f1"] for s, v in rows[nested[1]].items()},
                         {s: v["far_f1"] for s, v in rows[nested[0]].items()})
        print(f"soft, nested against hard, nested: F1 {g:+.3f} (SE {gs:.3f}), F1 >7d {fg:+.3f} (SE {fgs:.3f})")
    far = np.mean([v["far_pairs"] for v in base.values()])
    print(f"(>7d: the {far:.0f} same-story pairs per corpus more than 7 days apart, and the pairs predicted same "
          "that far apart; recur. merged: share of (recurrence, earlier event) article pairs put in one story)")


def replay_table(args: argparse.Namespace, embedder: CachedViews, means,
                 replays: list[tuple[TimeRule, list[float]]]) -> None:
    """One-shot against nightly (one day per night) for rules and story windows, on the ``--replay-seeds`` corpora."""
    from sklearn.metrics import adjusted_rand_score

    from storyclust.embed import embed_articles

    seeds = args.replay_seeds or args.seeds[:1]
    print(f"\nNightly replay of the corpora without recurrences, seeds {', '.join(map(str, seeds))}: one day per "
          "night, now = the end of that day, through storyclust.incremental.nightly; pair F1 of the nightly state, "
          "and its ARI against the one-shot partition of the same rule")
    print(f"{'seed':<6}{'rule':<26}{'story window':>14}{'F1':>8}{'F1 >7d':>8}{'one-shot F1':>13}{'one-shot >7d':>14}"
          f"{'ARI vs one-shot':>17}")
    figures: dict[tuple[str, float], dict[int, tuple[float, float, float]]] = {}
    for seed in seeds:
        wires = [w for w in generate(seed, args.events, args.days, args.follow_share, args.max_gap, args.recurrences)
                 if w.recurrence_of is None]
        X = embed_articles([w.article for w in wires], embedder)
        ids = [w.article.id for w in wires]
        for rule, windows in replays:
            one_story = cluster_wires(wires, X, means, rule)
            one = pair_figures(wires, one_story)
            for window in windows:
                night_story = replay(wires, embedder, rule, timedelta(days=window))
                night = pair_figures(wires, night_story)
                ari = adjusted_rand_score([one_story[i] for i in ids], [night_story[i] for i in ids])
                figures.setdefault((rule.name, window), {})[seed] = (night["f1"], night["far_f1"], ari)
                print(f"{seed:<6}{rule.name:<26}{window:>12g} d{night['f1']:>8.3f}{night['far_f1']:>8.3f}"
                      f"{one['f1']:>13.3f}{one['far_f1']:>14.3f}{ari:>17.4f}", flush=True)
    if len(seeds) > 1:
        print("\nmeans over the seeds; gains paired against the shortest story window of the same rule (± SE)")
        for rule, windows in replays:
            first = figures[(rule.name, min(windows))]
            for window in windows:
                cur = figures[(rule.name, window)]
                g, gs = paired({k: v[0] for k, v in cur.items()}, {k: v[0] for k, v in first.items()})
                a, as_ = paired({k: v[2] for k, v in cur.items()}, {k: v[2] for k, v in first.items()})
                m = np.mean(list(cur.values()), axis=0)
                print(f"  {rule.name:<26}{window:>5g} d: F1 {m[0]:.3f} ({g:+.3f} ± {gs:.3f}), F1 >7d {m[1]:.3f}, "
                      f"ARI vs one-shot {m[2]:.4f} ({a:+.4f} ± {as_:.4f})")


if __name__ == "__main__":
    sys.exit(main())
