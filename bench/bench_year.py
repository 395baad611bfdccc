"""Benchmark: a year of nightly runs on one state file, and how a night's cost grows with the history behind it.

Simulates ``--nights`` nightly runs (default 365) through the real nightly driver
(:func:`storyclust.incremental.update_stories` then :func:`~storyclust.incremental.publish`, under one
hold of the run lock, as ``storyclust run --state`` does) on the real SQLite store
(:func:`storyclust.store.open_store`), one simulated day apart (``StateOptions.now``). With
``--keep 30d``, :func:`storyclust.retention.prune` runs after each night.

What it measures, per night: wall seconds per stage (:mod:`storyclust.timing`, as the ``-v`` ``stages:``
line reads them: take in, fold copies, embed, cluster, apply, and here also publish and prune), the
night's wall time without the embedding (the model's own cost is measured by bench_embed.py and
bench_speed.py; here a stand-in embeds), the peak RSS so far and the night's own peak over the RSS it
started with (``/proc/self/clear_refs`` resets the high-water mark at every stage boundary, so the stage
that reached the peak is named too), the state file's size (with its ``-wal``), the rows of every table
of the state (tables added by newer code are picked up by themselves), the JSONL the night publishes
(each changed story as the CLI writes it, counted, not kept) and the evergreen story's size. Every
``--every``-th night, the first and the last night and the burst nights are printed; every night is
measured. At the end: a markdown table, how each stage grew from the early nights to the late ones, and
the ratios of issue "a year of nights": night 300 against night 30 (wall time without embedding, peak
RSS; on shorter runs the last regular night against the one at a tenth of it, and against night 30
when there is one) and, with ``--keep``, the state file at the last night against night 60 (or the same
fraction of a shorter run). ``--stop-after MINUTES`` (or SIGTERM / Ctrl-C) ends the run early and
reports on the nights run; ``--profile-night N`` prints a cProfile of night N.

The news, generated in memory night by night (``Article`` objects, no files; each source's night is
recorded as one input-file stamp, as a JSONL dump per source would be). ``--per-night`` counts every
article of a regular night, the evergreen's and the copies included:

* seven languages in templates: English, French, German, Spanish, Indonesian, Russian (Cyrillic) and
  Greek (Greek has no text in the shipped calibration corpus, as a real unexpected language);
* stories living from one night to the whole year (45% one night, 25% 2-3, 15% 4-14, 10% 15-90, 4%
  91-365, 1% the rest of the run; ``--max-lifetime N`` caps them, so that after N nights the news are
  stationary and a night's cost can be compared across months), each with its own place (from a pool
  of ~4,400, so some stories share a place), spokesperson, organisation and numbers, covered in one to
  all seven languages;
* burst nights (about one in 30, never on a printed regular night) with 10x the articles: five
  breaking stories take 40% of the night, the other stories double their rate (``--no-bursts``: none);
* reprints (6%: the same text under another id and source, from tonight or last night) and near copies
  (4%: a light edit of such an article);
* 20% of the articles without a publication date (``--undated``);
* one evergreen story (a ceasefire negotiation) taking ``--evergreen-per-night`` articles every night
  (default 300) in every language, so that by the end it has tens of thousands of members.

The stand-in embedder (:class:`SyntheticEmbedder`, after tests/wordhash.py) hashes each word to a
sparse random direction and weights it SIF-style: the generator's template and filler words (the
"frequent words" of this corpus) weigh 0.05, every other word (places, people, organisations: the
rare words) 1. So a story's reports are close across languages (they share its names) and stories
apart, as the real model makes them; it costs well under 1 ms per article. Russian and Greek reports
keep the Latin spelling of names (the stand-in cannot transliterate).

    python bench/bench_year.py                                   # 365 nights x 10,000 articles (a day or more)
    python bench/bench_year.py --nights 30 --per-night 500       # a short run (~5 min on 2 cores)
    python bench/bench_year.py --nights 40 --per-night 500 --keep 7d --out year.md

The full run keeps a state file of many GB (``--state`` to put it on a big disk; by default a temp
folder, removed at the end).
"""
from __future__ import annotations

import argparse
import contextlib
import cProfile
import hashlib
import io
import os
import pstats
import random
import re
import resource
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

import numpy as np

from storyclust import pipeline, timing
from storyclust.incremental import RunResult, publish, update_stories
from storyclust.schema import dumps, story_to_record
from storyclust.settings import StateOptions, parse_window
from storyclust.store import FileStamp, open_store
from storyclust.types import Article, Story

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_incremental import CLOSING as BASE_CLOSING, QUOTE as BASE_QUOTE, TEMPLATES  # noqa: E402  (the same wires, in five languages)

START = datetime(2026, 1, 1, 2, 30, tzinfo=timezone.utc)  # the first night's run time
MIB = 2 ** 20

# -- the templates -----------------------------------------------------------------------------------

LANGS = ("en", "fr", "de", "es", "id", "ru", "el")
LANG_WEIGHTS = (0.30, 0.15, 0.15, 0.13, 0.11, 0.10, 0.06)

# event kind -> language -> (title, [lead sentence, other sentences...]); {p} place, {n} {m} numbers:
# bench_incremental's templates (en, fr, de, es, id) and two languages in other scripts
OTHER_SCRIPTS: dict[str, dict[str, tuple[str, list[str]]]] = {
    "quake": {
        "ru": ("Землетрясение магнитудой {m} произошло в {p}", [
            "Землетрясение магнитудой {m} произошло у города {p}, погибли по меньшей мере {n} человек.",
            "Спасатели всю ночь разбирали завалы обрушившихся зданий в {p}.",
            "Афтершоки продолжали сотрясать район {p}."]),
        "el": ("Σεισμός {m} Ρίχτερ πλήττει την {p}", [
            "Σεισμός μεγέθους {m} σημειώθηκε κοντά στην {p}, με τουλάχιστον {n} νεκρούς.",
            "Τα σωστικά συνεργεία έψαχναν όλη τη νύχτα στα ερείπια των κτιρίων στην {p}.",
            "Μετασεισμοί συνέχισαν να ταρακουνούν την περιοχή της {p}."]),
    },
    "flood": {
        "ru": ("Наводнение вынудило {n} тысяч жителей {p} покинуть дома", [
            "Сильные дожди затопили большую часть {p}, {n} тысяч жителей покинули свои дома.",
            "Реки вокруг {p} вышли из берегов, несколько мостов закрыты.",
            "Власти {p} открыли пункты временного размещения в школах."]),
        "el": ("Πλημμύρες αναγκάζουν {n} χιλιάδες κατοίκους της {p} να φύγουν", [
            "Ισχυρές βροχές πλημμύρισαν μεγάλο μέρος της {p}, αναγκάζοντας {n} χιλιάδες κατοίκους να φύγουν.",
            "Τα ποτάμια γύρω από την {p} υπερχείλισαν και αρκετές γέφυρες έκλεισαν.",
            "Οι αρχές της {p} άνοιξαν χώρους φιλοξενίας σε σχολεία."]),
    },
    "strike": {
        "ru": ("Забастовка транспортников в {p} из-за зарплат", [
            "Водители автобусов и метро в {p} прекратили работу на {n} часов, требуя повышения зарплат.",
            "Жители {p} стояли в длинных очередях, общественный транспорт не работал.",
            "Профсоюзы {p} пригрозили новыми забастовками."]),
        "el": ("Απεργία στις συγκοινωνίες της {p} για τους μισθούς", [
            "Οι οδηγοί λεωφορείων και μετρό στην {p} απείργησαν για {n} ώρες ζητώντας αυξήσεις.",
            "Οι επιβάτες στην {p} περίμεναν σε μεγάλες ουρές χωρίς συγκοινωνίες.",
            "Τα συνδικάτα της {p} απειλούν με νέες απεργίες."]),
    },
    "fire": {
        "ru": ("Пожар уничтожил фабрику в {p}", [
            "Крупный пожар уничтожил текстильную фабрику на окраине {p}, пострадали {n} рабочих.",
            "Пожарным в {p} потребовалось несколько часов, чтобы потушить огонь.",
            "Полиция {p} начала расследование причин пожара."]),
        "el": ("Φωτιά καταστρέφει εργοστάσιο στην {p}", [
            "Μεγάλη πυρκαγιά κατέστρεψε κλωστοϋφαντουργείο στα περίχωρα της {p}, τραυματίζοντας {n} εργάτες.",
            "Οι πυροσβέστες στην {p} χρειάστηκαν ώρες για να θέσουν τη φωτιά υπό έλεγχο.",
            "Η αστυνομία της {p} ερευνά τα αίτια της πυρκαγιάς."]),
    },
    "election": {
        "ru": ("Мэр {p} переизбран, набрав {n} процентов", [
            "Мэр {p} получил второй срок, набрав {n} процентов голосов на воскресных выборах.",
            "Явка в {p} оказалась выше, чем на прошлых муниципальных выборах.",
            "Оппозиция {p} признала поражение в воскресенье вечером."]),
        "el": ("Επανεξελέγη ο δήμαρχος της {p} με {n} τοις εκατό", [
            "Ο δήμαρχος της {p} εξασφάλισε δεύτερη θητεία με {n} τοις εκατό των ψήφων στις εκλογές της Κυριακής.",
            "Η συμμετοχή στην {p} ήταν υψηλότερη από τις προηγούμενες δημοτικές εκλογές.",
            "Η αντιπολίτευση της {p} παραδέχθηκε την ήττα της την Κυριακή το βράδυ."]),
    },
}
KINDS: dict[str, dict[str, tuple[str, list[str]]]] = {kind: {**TEMPLATES[kind], **OTHER_SCRIPTS[kind]}
                                                       for kind in TEMPLATES}

# the event's own spokesperson {w} and organisation {o}
QUOTE = {**BASE_QUOTE,
    "ru": "{w}, представитель региональных властей {p}, сообщил, что подробности будут позже.",
    "el": "Ο {w}, εκπρόσωπος των περιφερειακών αρχών της {p}, δήλωσε ότι θα ακολουθήσουν περισσότερες πληροφορίες.",
}
ORG = {
    "en": "{o}, which operates in {p}, said it was following the situation closely.",
    "fr": "{o}, présent à {p}, a déclaré suivre la situation de près.",
    "de": "{o}, das in {p} tätig ist, erklärte, man verfolge die Lage genau.",
    "es": "{o}, que opera en {p}, dijo que sigue la situación de cerca.",
    "id": "{o}, yang beroperasi di {p}, mengatakan pihaknya terus memantau situasi.",
    "ru": "Компания {o}, работающая в {p}, заявила, что внимательно следит за ситуацией.",
    "el": "Η {o}, που δραστηριοποιείται στην {p}, δήλωσε ότι παρακολουθεί στενά την κατάσταση.",
}
FOLLOW_UP = {  # reports after a story's first night
    "en": "On day {d}, officials in {p} gave a new update on the situation.",
    "fr": "Au jour {d}, les responsables de {p} ont fait un nouveau point sur la situation.",
    "de": "Am Tag {d} gaben die Verantwortlichen in {p} einen neuen Lagebericht.",
    "es": "En el día {d}, las autoridades de {p} ofrecieron una nueva actualización.",
    "id": "Pada hari ke-{d}, pejabat di {p} memberikan informasi terbaru tentang situasi.",
    "ru": "На {d}-й день власти {p} сообщили новые сведения о ситуации.",
    "el": "Την ημέρα {d}, οι αξιωματούχοι της {p} έδωσαν νέα ενημέρωση για την κατάσταση.",
}
CLOSING = {**BASE_CLOSING,
    "ru": "{s} сообщило об этом в {h}:{mi}.",
    "el": "Το {s} μετέδωσε την είδηση στις {h}:{mi}.",
}
# generic background sentences, shared by every story of a language
FILLER = {
    "en": ["Officials said the situation was being monitored around the clock.",
           "Local media reported that schools and offices in {p} would stay closed on Monday.",
           "The national government promised additional funds for the affected area.",
           "Residents described scenes of confusion in the city centre of {p}.",
           "Analysts said the events could weigh on the regional economy for months.",
           "International organisations offered to send experts if needed.",
           "Opposition politicians called for an independent inquiry.",
           "Traffic on the main roads into {p} was diverted for several hours.",
           "Hospitals in the region said they had enough capacity for now.",
           "Further statements are expected later in the week."],
    "fr": ["Les autorités ont indiqué que la situation était surveillée en permanence.",
           "Les médias locaux ont annoncé que les écoles et les bureaux de {p} resteraient fermés lundi.",
           "Le gouvernement a promis des fonds supplémentaires pour la zone touchée.",
           "Des habitants ont décrit des scènes de confusion dans le centre de {p}.",
           "Selon des analystes, ces événements pourraient peser sur l'économie régionale pendant des mois.",
           "Des organisations internationales ont proposé d'envoyer des experts si nécessaire.",
           "Des responsables de l'opposition ont réclamé une enquête indépendante.",
           "La circulation sur les grands axes menant à {p} a été déviée pendant plusieurs heures.",
           "Les hôpitaux de la région disent disposer pour l'instant de capacités suffisantes.",
           "D'autres déclarations sont attendues dans la semaine."],
    "de": ["Die Behörden erklärten, die Lage werde rund um die Uhr beobachtet.",
           "Lokale Medien berichteten, Schulen und Büros in {p} blieben am Montag geschlossen.",
           "Die Regierung versprach zusätzliche Mittel für das betroffene Gebiet.",
           "Anwohner beschrieben chaotische Szenen in der Innenstadt von {p}.",
           "Analysten zufolge könnten die Ereignisse die regionale Wirtschaft monatelang belasten.",
           "Internationale Organisationen boten an, bei Bedarf Fachleute zu schicken.",
           "Oppositionspolitiker forderten eine unabhängige Untersuchung.",
           "Der Verkehr auf den Hauptstraßen nach {p} wurde für mehrere Stunden umgeleitet.",
           "Die Krankenhäuser der Region haben nach eigenen Angaben derzeit genug Kapazitäten.",
           "Weitere Erklärungen werden im Laufe der Woche erwartet."],
    "es": ["Las autoridades dijeron que la situación se vigila las veinticuatro horas.",
           "Los medios locales informaron de que las escuelas y oficinas de {p} seguirán cerradas el lunes.",
           "El gobierno prometió fondos adicionales para la zona afectada.",
           "Los vecinos describieron escenas de confusión en el centro de {p}.",
           "Los analistas creen que los hechos podrían lastrar la economía regional durante meses.",
           "Varias organizaciones internacionales ofrecieron enviar expertos si fuera necesario.",
           "Políticos de la oposición pidieron una investigación independiente.",
           "El tráfico en las principales carreteras hacia {p} fue desviado durante varias horas.",
           "Los hospitales de la región afirman tener por ahora capacidad suficiente.",
           "Se esperan nuevas declaraciones a lo largo de la semana."],
    "id": ["Pejabat mengatakan situasi terus dipantau sepanjang waktu.",
           "Media lokal melaporkan sekolah dan kantor di {p} tetap tutup pada hari Senin.",
           "Pemerintah pusat menjanjikan dana tambahan untuk daerah yang terdampak.",
           "Warga menggambarkan suasana kacau di pusat kota {p}.",
           "Analis menilai peristiwa ini dapat membebani ekonomi daerah selama berbulan-bulan.",
           "Organisasi internasional menawarkan bantuan tenaga ahli bila diperlukan.",
           "Politisi oposisi menyerukan penyelidikan independen.",
           "Lalu lintas di jalan utama menuju {p} dialihkan selama beberapa jam.",
           "Rumah sakit di wilayah itu menyatakan kapasitasnya masih mencukupi.",
           "Pernyataan lebih lanjut diperkirakan keluar akhir pekan ini."],
    "ru": ["Власти заявили, что ситуация находится под круглосуточным контролем.",
           "Местные СМИ сообщили, что школы и учреждения {p} в понедельник будут закрыты.",
           "Правительство пообещало выделить пострадавшему району дополнительные средства.",
           "Жители описывали неразбериху в центре {p}.",
           "По мнению аналитиков, события могут месяцами сказываться на экономике региона.",
           "Международные организации предложили при необходимости направить экспертов.",
           "Оппозиционные политики потребовали независимого расследования.",
           "Движение на главных дорогах к {p} было перекрыто на несколько часов.",
           "В больницах региона сообщили, что мест пока достаточно.",
           "Новые заявления ожидаются в течение недели."],
    "el": ["Οι αρχές δήλωσαν ότι η κατάσταση παρακολουθείται όλο το εικοσιτετράωρο.",
           "Τα τοπικά μέσα ανέφεραν ότι τα σχολεία και τα γραφεία της {p} θα μείνουν κλειστά τη Δευτέρα.",
           "Η κυβέρνηση υποσχέθηκε πρόσθετα κονδύλια για την πληγείσα περιοχή.",
           "Κάτοικοι περιέγραψαν σκηνές σύγχυσης στο κέντρο της {p}.",
           "Αναλυτές εκτιμούν ότι τα γεγονότα θα βαρύνουν την τοπική οικονομία για μήνες.",
           "Διεθνείς οργανισμοί προσφέρθηκαν να στείλουν ειδικούς αν χρειαστεί.",
           "Πολιτικοί της αντιπολίτευσης ζήτησαν ανεξάρτητη έρευνα.",
           "Η κυκλοφορία στους κεντρικούς δρόμους προς την {p} εκτράπηκε για αρκετές ώρες.",
           "Τα νοσοκομεία της περιοχής δηλώνουν ότι προς το παρόν επαρκούν.",
           "Νέες δηλώσεις αναμένονται μέσα στην εβδομάδα."],
}
# the evergreen story: {p} the place, {o} the talks' body, {w} a negotiator, {d} the day, {n} a number
EVERGREEN_NAMES = {"p": "Marevan", "o": "Tessaly Accord",
                   "w": ("Ilvo Dranek", "Saria Quendel", "Taro Belmik", "Omira Vashti")}
EVERGREEN = {
    "en": (("{p} talks, day {d}: {o} negotiators meet again", "Ceasefire around {p} holds on day {d}"), [
        "Negotiators of the {o} met again in {p} on day {d} of the talks.",
        "{w} said the parties had agreed on {n} of the remaining points.",
        "The ceasefire around {p} held overnight, with {n} violations reported.",
        "Humanitarian convoys reached {n} villages near {p}.",
        "Observers from the {o} will publish their next report in {n} days.",
        "Markets reacted calmly to the latest news from the {p} talks."]),
    "fr": (("Pourparlers de {p}, jour {d} : les négociateurs de l'{o} à nouveau réunis",
            "Le cessez-le-feu autour de {p} tient au jour {d}"), [
        "Les négociateurs de l'{o} se sont de nouveau réunis à {p} au jour {d} des pourparlers.",
        "{w} a indiqué que les parties s'étaient entendues sur {n} des points restants.",
        "Le cessez-le-feu autour de {p} a tenu cette nuit, {n} violations ont été signalées.",
        "Des convois humanitaires ont atteint {n} villages près de {p}.",
        "Les observateurs de l'{o} publieront leur prochain rapport dans {n} jours.",
        "Les marchés ont accueilli calmement les dernières nouvelles des pourparlers de {p}."]),
    "de": (("{p}-Gespräche, Tag {d}: Unterhändler des {o} treffen sich erneut",
            "Waffenruhe um {p} hält auch am Tag {d}"), [
        "Die Unterhändler des {o} sind am Tag {d} der Gespräche erneut in {p} zusammengekommen.",
        "{w} sagte, die Parteien hätten sich auf {n} der offenen Punkte geeinigt.",
        "Die Waffenruhe um {p} hielt in der Nacht, {n} Verstöße wurden gemeldet.",
        "Hilfskonvois erreichten {n} Dörfer in der Nähe von {p}.",
        "Die Beobachter des {o} legen ihren nächsten Bericht in {n} Tagen vor.",
        "Die Märkte reagierten gelassen auf die jüngsten Nachrichten aus {p}."]),
    "es": (("Negociaciones de {p}, día {d}: los negociadores del {o} vuelven a reunirse",
            "El alto el fuego en torno a {p} se mantiene en el día {d}"), [
        "Los negociadores del {o} volvieron a reunirse en {p} en el día {d} de las conversaciones.",
        "{w} dijo que las partes acordaron {n} de los puntos pendientes.",
        "El alto el fuego en torno a {p} se mantuvo durante la noche, con {n} violaciones denunciadas.",
        "Los convoyes humanitarios llegaron a {n} aldeas cerca de {p}.",
        "Los observadores del {o} publicarán su próximo informe dentro de {n} días.",
        "Los mercados reaccionaron con calma a las últimas noticias de {p}."]),
    "id": (("Perundingan {p} hari ke-{d}: juru runding {o} bertemu lagi",
            "Gencatan senjata di sekitar {p} bertahan pada hari ke-{d}"), [
        "Juru runding {o} kembali bertemu di {p} pada hari ke-{d} perundingan.",
        "{w} mengatakan para pihak telah menyepakati {n} dari poin yang tersisa.",
        "Gencatan senjata di sekitar {p} bertahan semalam, dengan {n} pelanggaran dilaporkan.",
        "Konvoi kemanusiaan telah mencapai {n} desa di dekat {p}.",
        "Pemantau dari {o} akan menerbitkan laporan berikutnya dalam {n} hari.",
        "Pasar menanggapi dengan tenang kabar terbaru dari perundingan {p}."]),
    "ru": (("Переговоры в {p}, день {d}: делегации {o} снова встретились",
            "Перемирие вокруг {p} соблюдается на {d}-й день"), [
        "Переговорщики {o} снова встретились в {p} на {d}-й день переговоров.",
        "{w} сообщил, что стороны согласовали {n} из оставшихся пунктов.",
        "Перемирие вокруг {p} ночью соблюдалось, зафиксировано {n} нарушений.",
        "Гуманитарные конвои добрались до {n} сёл около {p}.",
        "Наблюдатели {o} опубликуют следующий доклад через {n} дней.",
        "Рынки спокойно отреагировали на последние новости из {p}."]),
    "el": (("Συνομιλίες στην {p}, ημέρα {d}: νέα συνάντηση των διαπραγματευτών της {o}",
            "Η εκεχειρία γύρω από την {p} κρατά την ημέρα {d}"), [
        "Οι διαπραγματευτές της {o} συναντήθηκαν ξανά στην {p} την ημέρα {d} των συνομιλιών.",
        "Ο {w} δήλωσε ότι τα μέρη συμφώνησαν σε {n} από τα εκκρεμή σημεία.",
        "Η εκεχειρία γύρω από την {p} τήρηθε τη νύχτα, με {n} παραβιάσεις.",
        "Ανθρωπιστικές αυτοκινητοπομπές έφτασαν σε {n} χωριά κοντά στην {p}.",
        "Οι παρατηρητές της {o} θα δημοσιεύσουν την επόμενη έκθεσή τους σε {n} ημέρες.",
        "Οι αγορές αντέδρασαν ήρεμα στα τελευταία νέα από την {p}."]),
}
SOURCES = ["Wire One", "Daily Courier", "Global Desk", "Morning Post", "City Herald", "Radio Norte",
           "Kabar Kini", "Le Quotidien", "Tagesblatt", "El Diario", "Vesti Dnya", "Kathimerini Nea",
           "Harian Pagi", "Evening Standard Wire", "Nord Info", "Rundschau", "La Voz", "Pravda Regiona",
           "Ta Nea Tis Imeras", "Suara Kota", "Continental Press", "Metro Wire", "Coastal Times", "Valley News"]
ORG_SUFFIXES = ["Group", "Holdings", "Foundation", "Institute", "Energy", "Logistics", "Bank", "Alliance"]

_SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]


def pseudo_name(rng: random.Random, syllables: int) -> str:
    """A made-up proper name (``Velmoka``): the rare words that tell stories apart."""
    return "".join(rng.choice(_SYLLABLES) for _ in range(syllables)).capitalize()


_WORD = re.compile(r"[^\W\d_]{3,}")


def template_words() -> set[str]:
    """Every word the templates and filler write (case-folded): the corpus's frequent words."""
    texts: list[str] = list(SOURCES) + ORG_SUFFIXES
    for per_lang in KINDS.values():
        for title, sentences in per_lang.values():
            texts += [title, *sentences]
    for table in (QUOTE, ORG, FOLLOW_UP, CLOSING):
        texts += table.values()
    for sentences in FILLER.values():
        texts += sentences
    for titles, sentences in EVERGREEN.values():
        texts += [*titles, *sentences]
    words: set[str] = set()
    for text in texts:
        words.update(_WORD.findall(re.sub(r"\{\w+\}", " ", text).casefold()))
    return words


# -- the stand-in embedder ---------------------------------------------------------------------------


class SyntheticEmbedder:
    """A fast deterministic stand-in for the model (the :class:`storyclust.embed.Embedder` protocol).

    As in tests/wordhash.py, each word (case-folded, 3+ letters) adds a fixed pseudo-random direction
    chosen by a keyed hash of the word; here the direction is sparse (``nnz`` coordinates of +-1 among
    ``dim``) so that no table of word vectors is kept, and the word is weighted SIF-style: the words of
    ``frequent`` (the generator's templates) weigh ``frequent_weight``, all others 1. ``lengths`` gives
    words per text, the order the built-in embedders cut batches in.
    """

    def __init__(self, frequent: Iterable[str], *, dim: int = 384, seed: int = 7, nnz: int = 16,
                 frequent_weight: float = 0.05) -> None:
        self.dim = dim
        self._frequent = frozenset(w.casefold() for w in frequent)
        vocab = hashlib.sha1("\n".join(sorted(self._frequent)).encode("utf-8")).hexdigest()[:8]
        self.model_id = f"bench-year-wordhash-{dim}-{seed}-{nnz}-{frequent_weight}-{vocab}"
        self._key = seed.to_bytes(8, "little")
        self._nnz = nnz
        self._frequent_weight = frequent_weight
        self._ids: dict[str, int] = {}
        self._cols = np.zeros((4096, nnz), dtype=np.int64)
        self._vals = np.zeros((4096, nnz), dtype=np.float32)
        self.encoded = 0

    def _word_id(self, word: str) -> int:
        digest = hashlib.blake2b(word.encode("utf-8"), digest_size=4 * self._nnz, key=self._key).digest()
        raw = np.frombuffer(digest, dtype=np.uint16).astype(np.int64)
        k = len(self._ids)
        if k == len(self._cols):
            self._cols = np.concatenate([self._cols, np.zeros_like(self._cols)])
            self._vals = np.concatenate([self._vals, np.zeros_like(self._vals)])
        weight = self._frequent_weight if word in self._frequent else 1.0
        self._cols[k] = raw[: self._nnz] % self.dim
        self._vals[k] = np.where(raw[self._nnz:] & 1, weight, -weight)
        self._ids[word] = k
        return k

    def lengths(self, texts: Sequence[str]) -> list[int]:
        return [len(_WORD.findall(t)) for t in texts]

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        self.encoded += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        ids, get = self._ids, self._ids.get
        for start in range(0, len(texts), 256):
            chunk = texts[start:start + 256]
            rows: list[int] = []
            words: list[int] = []
            for i, text in enumerate(chunk):
                found = [get(w) if w in ids else self._word_id(w) for w in _WORD.findall(text.casefold())]
                words += found
                rows += [i] * len(found)
            if words:
                w = np.asarray(words, dtype=np.int64)
                flat = (np.asarray(rows, dtype=np.int64)[:, None] * self.dim + self._cols[w]).ravel()
                block = np.bincount(flat, weights=self._vals[w].ravel(), minlength=len(chunk) * self.dim)
                out[start:start + len(chunk)] = block.reshape(len(chunk), self.dim)
        norms = np.linalg.norm(out, axis=1)
        out[norms == 0] = 1.0  # a text without words: one fixed direction
        return out / np.linalg.norm(out, axis=1, keepdims=True)


# -- the synthetic year ------------------------------------------------------------------------------


@dataclass
class SynthStory:
    """A story of the synthetic year; its articles' ids start with ``tag`` (the gold story)."""

    tag: str
    kind: str
    place: str
    person: str
    org: str
    n: int
    m: str
    born: int  # its first night
    last: int  # its last night
    rate: float  # expected articles per night after the first
    langs: tuple[str, ...]


@dataclass
class NightNews:
    """One night's articles, and what the generator did."""

    articles: list[Article]
    files: list[FileStamp]
    burst: bool
    live_stories: int
    new_stories: int
    reprints: int
    near_copies: int
    undated: int

    def summary(self) -> str:
        return (f"{self.live_stories:,} synthetic stories live ({self.new_stories:,} new), {self.reprints:,} reprints, "
                f"{self.near_copies:,} near copies, {self.undated:,} undated")


@dataclass
class YearOfNews:
    """Generates the articles of each night of a synthetic year, deterministically for a seed."""

    nights: int
    per_night: int
    evergreen_per_night: int
    seed: int = 0
    undated: float = 0.2
    reprints: float = 0.06
    near_copies: float = 0.04
    avoid_bursts: frozenset[int] = frozenset()
    max_lifetime: Optional[int] = None  # None: stories live up to the whole run
    with_bursts: bool = True
    bursts: frozenset[int] = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.np_rng = np.random.default_rng(self.seed)
        self.places = list(dict.fromkeys(pseudo_name(self.rng, self.rng.choice((2, 3))) for _ in range(5000)))
        candidates = [k for k in range(5, self.nights) if k % 10 and k not in self.avoid_bursts]
        count = min(len(candidates), max(1, round(self.nights / 30))) if self.nights >= 10 and self.with_bursts else 0
        self.bursts = frozenset(self.rng.sample(candidates, count))
        self.live: list[SynthStory] = []
        self.yesterday: list[Article] = []
        self.serial = 0
        self.story_count = 0

    # -- stories
    def _lifetime(self) -> int:
        days = self._drawn_lifetime()
        return days if self.max_lifetime is None else min(days, self.max_lifetime)

    def _drawn_lifetime(self) -> int:
        r = self.rng.random()
        if r < 0.45:
            return 1
        if r < 0.70:
            return self.rng.randint(2, 3)
        if r < 0.85:
            return self.rng.randint(4, 14)
        if r < 0.95:
            return self.rng.randint(15, 90)
        if r < 0.99:
            return self.rng.randint(91, 365)
        return self.nights  # the rest of the run

    def _new_story(self, night: int, *, lifetime: Optional[int] = None, rate: Optional[float] = None) -> SynthStory:
        rng = self.rng
        self.story_count += 1
        days = lifetime or self._lifetime()
        speed = rate if rate is not None else float(self.np_rng.lognormal(0.6, 0.8)) * (0.5 if days > 14 else 1.0)
        k = min(len(LANGS), 1 + int(self.np_rng.binomial(6, 0.25 if days < 4 else 0.5)))
        langs = tuple(self.np_rng.choice(LANGS, size=k, replace=False, p=LANG_WEIGHTS))
        story = SynthStory(
            tag=f"s{self.story_count:07d}", kind=rng.choice(list(KINDS)), place=rng.choice(self.places),
            person=f"{pseudo_name(rng, 2)} {pseudo_name(rng, 3)}",
            org=f"{pseudo_name(rng, 3)} {rng.choice(ORG_SUFFIXES)}", n=rng.randint(3, 95),
            m=f"{rng.uniform(4.5, 7.9):.1f}", born=night, last=night + days - 1, rate=speed, langs=langs,
        )
        self.live.append(story)
        return story

    # -- articles
    def _dates(self, now: datetime) -> Optional[datetime]:
        if self.rng.random() < self.undated:
            return None
        return now - timedelta(hours=self.rng.uniform(2.0, 26.0))

    def _article(self, tag: str, night: int, now: datetime, lang: str, title: str, body: list[str],
                 place: str) -> Article:
        rng = self.rng
        source = rng.choice(SOURCES)
        filler = [s.format(p=place) for s in rng.sample(FILLER[lang], rng.randint(4, 8))]
        closing = CLOSING[lang].format(s=source, h=rng.randint(6, 23), mi=f"{rng.randint(0, 59):02d}")
        text = title + "\n\n" + " ".join(body) + "\n\n" + " ".join(filler) + " " + closing
        self.serial += 1
        aid = f"{tag}.{night:03d}.{self.serial:08d}"
        slug = source.lower().replace(" ", "-")
        return Article(
            id=aid, text=text, title=title, url=f"https://{slug}.example/{lang}/{aid}",
            path=f"/data/wires/{now:%Y-%m-%d}/{slug}.jsonl#{self.serial}", lang=lang, lang_confidence=0.99,
            published=self._dates(now), retrieved=now, source=source,
        )

    def _story_article(self, story: SynthStory, night: int, now: datetime) -> Article:
        rng = self.rng
        lang = rng.choice(story.langs)
        title_t, sentences = KINDS[story.kind][lang]
        fields = {"p": story.place, "n": story.n, "m": story.m, "w": story.person, "o": story.org,
                  "d": night - story.born + 1}
        body = [sentences[0], *rng.sample(sentences[1:], len(sentences) - 1)]
        body.insert(rng.randint(1, len(body)), QUOTE[lang])
        if rng.random() < 0.5:
            body.append(ORG[lang])
        if night > story.born:
            body.insert(1, FOLLOW_UP[lang])
        return self._article(story.tag, night, now, lang, title_t.format(**fields),
                             [s.format(**fields) for s in body], story.place)

    def _evergreen_article(self, night: int, now: datetime) -> Article:
        rng = self.rng
        lang = rng.choices(LANGS, weights=LANG_WEIGHTS)[0]
        titles, sentences = EVERGREEN[lang]
        fields = {"p": EVERGREEN_NAMES["p"], "o": EVERGREEN_NAMES["o"], "d": night, "n": rng.randint(2, 400),
                  "w": rng.choice(EVERGREEN_NAMES["w"])}
        body = [sentences[0], *rng.sample(sentences[1:], 3)]
        return self._article("ev", night, now, lang, rng.choice(titles).format(**fields),
                             [s.format(**fields) for s in body], EVERGREEN_NAMES["p"])

    def _copy(self, original: Article, night: int, now: datetime, *, edit: bool) -> Article:
        rng = self.rng
        source = rng.choice([s for s in SOURCES if s != original.source])
        text, title = original.text, original.title
        if edit:  # a light edit: an update mark, a changed time, an agency tag
            title = f"UPDATE {title}"
            stamp = f" ({source}, {rng.randint(6, 23)}:{rng.randint(0, 59):02d})"
            text = f"{title}\n\n" + text.split("\n\n", 1)[1] + stamp
        self.serial += 1
        tag = original.id.split(".", 1)[0]
        aid = f"{tag}.{night:03d}.{self.serial:08d}"
        slug = source.lower().replace(" ", "-")
        return Article(id=aid, text=text, title=title, url=f"https://{slug}.example/{original.lang}/{aid}",
                       path=f"/data/wires/{now:%Y-%m-%d}/{slug}.jsonl#{self.serial}", lang=original.lang,
                       lang_confidence=0.99, published=original.published if rng.random() < 0.7 else None,
                       retrieved=now, source=source)

    def night(self, night: int, now: datetime, *, evergreen: bool = True) -> NightNews:
        """The articles of night ``night`` (1-based), shuffled, with one file stamp per source."""
        rng = self.rng
        burst = night in self.bursts
        total = self.per_night * (10 if burst else 1)
        ev = min(self.evergreen_per_night if evergreen else 0, total)
        n_reprints = int(total * self.reprints)
        n_near = int(total * self.near_copies)
        budget = max(0, total - ev - n_reprints - n_near)
        self.live = [s for s in self.live if s.last >= night]
        counts = {id(s): int(self.np_rng.poisson(s.rate * (2.0 if burst else 1.0))) for s in self.live}
        demand = sum(counts.values())
        cap = int(0.8 * budget)
        if demand > cap:  # more ongoing coverage than the night holds: thin it
            counts = {k: int(self.np_rng.binomial(c, cap / demand)) for k, c in counts.items()}
        ongoing = list(self.live)
        new_before = self.story_count
        planned: list[tuple[SynthStory, int]] = [(s, counts[id(s)]) for s in ongoing if counts[id(s)]]
        remaining = budget - sum(c for _, c in planned)
        if burst:  # breaking news: five stories take 40% of the night, and stay big for days
            share = int(0.4 * budget) // 5
            for _ in range(5):
                if remaining <= 0:
                    break
                story = self._new_story(night, lifetime=rng.randint(3, 10), rate=max(1.0, share / 20))
                planned.append((story, min(share, remaining)))
                remaining -= planned[-1][1]
        while remaining > 0:
            story = self._new_story(night)
            planned.append((story, min(remaining, 1 + int(self.np_rng.poisson(story.rate)))))
            remaining -= planned[-1][1]
        originals = [self._story_article(s, night, now) for s, c in planned for _ in range(c)]
        originals += [self._evergreen_article(night, now) for _ in range(ev)]
        pool = originals + self.yesterday
        copies = [self._copy(rng.choice(pool), night, now, edit=False) for _ in range(n_reprints if pool else 0)]
        copies += [self._copy(rng.choice(pool), night, now, edit=True) for _ in range(n_near if pool else 0)]
        articles = originals + copies
        rng.shuffle(articles)
        self.yesterday = originals
        sizes: dict[str, int] = {}
        for a in articles:
            path = (a.path or "").split("#", 1)[0]
            sizes[path] = sizes.get(path, 0) + len(a.text.encode("utf-8")) + 200
        mtime = int(now.timestamp() * 1e9)
        files = [FileStamp(path, size, mtime) for path, size in sorted(sizes.items())]
        near = n_near if pool else 0
        return NightNews(articles, files, burst, len(self.live), self.story_count - new_before, len(copies) - near,
                         near, sum(a.published is None for a in articles))


# -- measuring ---------------------------------------------------------------------------------------


def cpu_description() -> str:
    """``model name`` of /proc/cpuinfo, the CPUs this process may use, and the AVX-512 / AMX flags."""
    name, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key = line.split(":", 1)[0].strip().lower()
                if key == "model name" and name == "unknown CPU":
                    name = line.split(":", 1)[1].strip()
                elif key == "flags" and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    avx512 = sorted(f for f in flags if f.startswith("avx512"))
    amx = sorted(f for f in flags if f.startswith("amx"))
    def listed(found: list[str]) -> str:
        return f"yes ({', '.join(found)})" if found else "no"

    return f"{name}, {len(os.sched_getaffinity(0))} CPUs; AVX-512: {listed(avx512)}; AMX: {listed(amx)}"


def code_description() -> str:
    """Where the storyclust being measured comes from: its folder, and the commit and uncommitted files of
    its git checkout (if it is one)."""
    import subprocess

    import storyclust

    folder = Path(storyclust.__file__).resolve().parent
    text = f"storyclust {getattr(storyclust, '__version__', '?')} from {folder}"
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--", "."], capture_output=True,
                               text=True, timeout=10, check=True).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return text
    changed = [line[3:] for line in dirty if line.strip()]
    return text + f", commit {commit}" + (f" + uncommitted changes in {', '.join(changed)}" if changed else "")


def _status_kib(field_name: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mib() -> float:
    """The process's resident set now."""
    kib = _status_kib("VmRSS")
    return (kib if kib is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def reset_peak_rss() -> bool:
    """Reset the process's RSS high-water mark (Linux ``clear_refs`` 5); False when not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """The RSS high-water mark since the process started or since :func:`reset_peak_rss`."""
    kib = _status_kib("VmHWM")
    return (kib if kib is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


class StagePeaks:
    """The RSS high-water mark of each stage of a night, and how far each stage rose above the RSS it
    started with: the nightly driver's ``stage`` is wrapped (for this process only) so that the mark is
    read and reset at every stage boundary."""

    def __init__(self) -> None:
        self.enabled = reset_peak_rss()
        self.peaks: dict[str, float] = {}
        self.rises: dict[str, float] = {}
        self.stage: Callable[[str], contextlib.AbstractContextManager[None]] = timing.stage

    def install(self) -> None:
        import storyclust.incremental as incremental

        original = incremental.stage

        @contextlib.contextmanager
        def measured(name: str) -> Iterator[None]:
            self.mark("between stages")
            start = rss_mib()
            with original(name):
                try:
                    yield
                finally:
                    self.mark(name, start)

        incremental.stage = measured  # type: ignore[assignment]
        self.stage = measured

    def start_night(self) -> None:
        self.peaks, self.rises = {}, {}
        if self.enabled:
            reset_peak_rss()

    def mark(self, label: str, start: Optional[float] = None) -> None:
        if not self.enabled:
            return
        peak = peak_rss_mib()
        self.peaks[label] = max(self.peaks.get(label, 0.0), peak)
        if start is not None:
            self.rises[label] = max(self.rises.get(label, 0.0), peak - start)
        reset_peak_rss()

    def night_peak(self) -> float:
        self.mark("between stages")
        return max(self.peaks.values()) if self.peaks else peak_rss_mib()


def state_bytes(path: Path) -> tuple[int, int]:
    """(main file, -wal) sizes of a state file."""
    def size(p: Path) -> int:
        try:
            return p.stat().st_size
        except OSError:
            return 0
    return size(path), size(path.with_name(path.name + "-wal"))


@dataclass
class StateCounts:
    tables: dict[str, int]  # rows per table, every table of the file
    stories: dict[str, int]  # stories by status
    evergreen_story: Optional[str]
    evergreen_size: int  # members of the story holding most evergreen articles
    evergreen_status: str
    evergreen_spread: int  # stories holding evergreen articles
    evergreen_open: int  # of them open


def count_rows(path: Path) -> StateCounts:
    """Rows per table (any table of the file, so tables added by new code show up), stories by status and
    where the evergreen story's articles are; read on a connection of its own, after the night."""
    db = sqlite3.connect(path, timeout=60)
    try:
        db.execute("PRAGMA query_only = 1")
        names = [r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid")]
        tables = {name: int(db.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]) for name in names}
        stories = dict(db.execute("SELECT status, count(*) FROM stories GROUP BY status").fetchall())
        spread = db.execute(
            "SELECT m.story_id, count(*), s.status, s.size FROM members m JOIN stories s ON s.story_id = m.story_id"
            " WHERE m.article_id >= 'ev.' AND m.article_id < 'ev/' GROUP BY m.story_id ORDER BY 2 DESC").fetchall()
    finally:
        db.close()
    top = spread[0] if spread else None
    return StateCounts(tables, {k: int(v) for k, v in stories.items()}, top[0] if top else None,
                       int(top[3]) if top else 0, top[2] if top else "-", len(spread),
                       sum(1 for r in spread if r[2] == "open"))


def window_purity(path: Path) -> tuple[int, int, float, float]:
    """(open stories, their members, purity, inverse purity) of the open stories against the synthetic
    stories (the id's first part): does the stand-in embedder let the recipe find the stories?"""
    db = sqlite3.connect(path, timeout=60)
    try:
        rows = db.execute("SELECT m.article_id, m.story_id FROM members m JOIN stories s ON s.story_id = m.story_id"
                          " WHERE s.status = 'open'").fetchall()
    finally:
        db.close()
    by_story: dict[str, dict[str, int]] = {}
    by_gold: dict[str, dict[str, int]] = {}
    for aid, sid in rows:
        gold = aid.split(".", 1)[0]
        by_story.setdefault(sid, {}).setdefault(gold, 0)
        by_story[sid][gold] += 1
        by_gold.setdefault(gold, {}).setdefault(sid, 0)
        by_gold[gold][sid] += 1
    n = max(len(rows), 1)
    purity = sum(max(g.values()) for g in by_story.values()) / n
    inverse = sum(max(s.values()) for s in by_gold.values()) / n
    return len(by_story), len(rows), purity, inverse


class JsonlSink:
    """``publish``'s writer: each story as the CLI writes it (``story_to_record`` + ``dumps``), into a
    byte counter instead of stdout."""

    def __init__(self) -> None:
        self.stories = 0
        self.bytes = 0
        self.largest = 0

    def __call__(self, stories: list[Story]) -> None:
        for story in stories:
            line = dumps(story_to_record(story))
            self.stories += 1
            self.bytes += len(line.encode("utf-8")) + 1
            self.largest = max(self.largest, story.size)


@dataclass
class Night:
    """What one night cost."""

    night: int
    burst: bool
    articles_in: int
    result: RunResult
    stages: dict[str, float]
    wall: float  # update_stories + publish (+ prune)
    generate: float
    rss_start: float
    rss_end: float
    night_peak: float  # the night's own RSS high-water mark
    peak_so_far: float
    db_bytes: int
    wal_bytes: int
    published: int
    published_bytes: int
    pruned: object = None
    counts: Optional[StateCounts] = None
    stage_peaks: dict[str, float] = field(default_factory=dict)  # RSS high-water mark (MiB) of each stage
    stage_rises: dict[str, float] = field(default_factory=dict)  # how far each stage rose above its start (MiB)
    generated: str = ""  # what the generator made of the night

    @property
    def peak_stage(self) -> str:
        """The stage that rose most above the RSS it started with (where the night's memory goes)."""
        if not self.stage_rises:
            return "-"
        top = max(self.stage_rises, key=self.stage_rises.__getitem__)
        return f"{top} +{self.stage_rises[top]:,.0f}"

    @property
    def embed(self) -> float:
        return self.stages.get("embed", 0.0)

    @property
    def without_embedding(self) -> float:
        return self.wall - self.embed

    @property
    def state_mib(self) -> float:
        return (self.db_bytes + self.wal_bytes) / MIB


#: Stages shown in the table, in the order the nightly driver runs them.
STAGES = ("take in", "load model", "fold copies", "embed", "cluster", "apply", "publish", "prune")
KNOWN_TABLES = ("articles", "vectors", "members", "stories", "outbox", "files", "runs", "settings")


def stage_text(stages: dict[str, float], wall: float) -> str:
    shown = [f"{name} {stages[name]:.2f}" for name in STAGES if name in stages and name != "embed"
             and (stages[name] >= 0.005 or name in ("take in", "fold copies", "cluster", "apply", "publish"))]
    other = wall - sum(v for k, v in stages.items() if "/" not in k)
    return ", ".join(shown + [f"other {other:.2f}"])


def print_night(n: Night) -> None:
    r, c = n.result, n.counts
    mark = "  BURST" if n.burst else ""
    print(f"night {n.night:3d}{mark}: {n.articles_in:,} in ({r.ingested:,} new, {r.copies:,} copies, "
          f"{r.embedded:,} embedded), {r.clustered:,} clustered; {r.created:,} new stories, {r.updated:,} updated, "
          f"{r.closed:,} closed", flush=True)
    print(f"    generated in {n.generate:.2f} s: {n.generated}")
    inner = ", ".join(f"{k.split('/', 1)[1]} {v:.2f}" for k, v in n.stages.items() if k.startswith("embed/"))
    print(f"    wall {n.wall:.2f} s, without embedding {n.without_embedding:.2f} s | embed {n.embed:.2f} s"
          + (f" ({inner})" if inner else "") + f" | {stage_text(n.stages, n.wall)}")
    print(f"    RSS: peak so far {n.peak_so_far:,.0f} MiB, tonight's peak {n.night_peak:,.0f} MiB "
          f"(+{n.night_peak - n.rss_start:,.0f} over its start), kept {n.rss_end - n.rss_start:+,.0f} MiB | state "
          f"{n.db_bytes / MIB:,.1f} MiB + wal {n.wal_bytes / MIB:,.1f} MiB | published {n.published:,} stories, "
          f"{n.published_bytes / MIB:,.2f} MiB JSONL")
    if n.stage_peaks:
        print("    RSS high-water mark by stage, MiB (rise over the stage's start): "
              + ", ".join(f"{k} {v:,.0f}" + (f" (+{n.stage_rises[k]:,.0f})" if k in n.stage_rises else "")
                          for k, v in n.stage_peaks.items()))
    if c is not None:
        tables = ", ".join(f"{k} {v:,}" for k, v in c.tables.items() if k != "stories")
        stories = " / ".join(f"{c.stories.get(s, 0):,} {s}" for s in ("open", "closed", "merged"))
        extra = [k for k in c.tables if k not in KNOWN_TABLES]
        print(f"    rows: {tables}; stories {c.tables.get('stories', 0):,} ({stories})"
              + (f"; new tables: {', '.join(extra)}" if extra else ""))
        if c.evergreen_story is not None:
            print(f"    evergreen: {c.evergreen_size:,} members in {c.evergreen_story} ({c.evergreen_status}); its "
                  f"articles are in {c.evergreen_spread:,} stories ({c.evergreen_open:,} open)")
    if n.pruned is not None:
        line = getattr(n.pruned, "summary_line", None)
        print(f"    {line()}" if callable(line) else f"    prune: {n.pruned}")


def markdown_table(nights: Sequence[Night], keep: bool) -> str:
    head = ["night", "articles in", "clustered", "take in s", "fold s", "cluster s", "apply s", "publish s"]
    head += ["prune s"] if keep else []
    head += ["**w/o embed s**", "embed s", "peak RSS MiB", "night +MiB", "largest rise MiB", "state MiB (wal)", "articles",
             "members", "stories open / all", "evergreen members"]
    extra = sorted({k for n in nights if n.counts for k in n.counts.tables if k not in KNOWN_TABLES})
    head += [f"{k} rows" for k in extra]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("--:" for _ in head) + "|"]
    for n in nights:
        c = n.counts
        s = n.stages
        row = [f"{n.night}{' (burst)' if n.burst else ''}", f"{n.articles_in:,}", f"{n.result.clustered:,}",
               f"{s.get('take in', 0):.2f}", f"{s.get('fold copies', 0):.2f}", f"{s.get('cluster', 0):.2f}",
               f"{s.get('apply', 0):.2f}", f"{s.get('publish', 0):.2f}"]
        row += [f"{s.get('prune', 0):.2f}"] if keep else []
        row += [f"**{n.without_embedding:.2f}**", f"{n.embed:.2f}", f"{n.peak_so_far:,.0f}",
                f"{n.night_peak - n.rss_start:+,.0f}", n.peak_stage, f"{n.state_mib:,.1f} ({n.wal_bytes / MIB:,.1f})"]
        if c is not None:
            row += [f"{c.tables.get('articles', 0):,}", f"{c.tables.get('members', 0):,}",
                    f"{c.stories.get('open', 0):,} / {c.tables.get('stories', 0):,}", f"{c.evergreen_size:,}"]
            row += [f"{c.tables.get(k, 0):,}" for k in extra]
        else:
            row += [""] * (4 + len(extra))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def reference_nights(nights: int) -> tuple[int, int, int]:
    """(late, early, size night): night 300 and night 30 of a year (on a shorter run the last night and the one
    at a tenth of it), and night 60 of 365 (the same fraction of a shorter run) for the state size with --keep."""
    late = min(300, nights)
    early = 30 if late == 300 else max(1, round(late / 10))
    size_night = 60 if nights >= 365 else max(1, round(nights * 60 / 365))
    return late, early, size_night


def regular_near(nights: dict[int, Night], k: int) -> Optional[Night]:
    """Night ``k``, or the closest earlier regular (not burst) night when ``k`` was a burst."""
    for j in range(k, 0, -1):
        if j in nights and not nights[j].burst:
            return nights[j]
    return None


def median_around(nights: dict[int, Night], k: int, value: Callable[[Night], float], span: int = 2) -> float:
    vals = [value(nights[j]) for j in range(k - span, k + span + 1) if j in nights and not nights[j].burst]
    return statistics.median(vals) if vals else float("nan")


def growth_report(nights: Sequence[Night], aftermath: int = 0) -> list[str]:
    """Mean seconds per stage over the first and the last fifth of the regular nights (night 1 left out), and
    the least-squares slope over them. ``aftermath``: also leave out the nights up to this many after a burst
    (its stories stay in the window until they have been quiet for the story window), so that where the
    bursts fell does not pass for growth with history."""
    bursts = [n.night for n in nights if n.burst]
    regular = [n for n in nights if not n.burst and n.night > 1
               and not any(0 < n.night - b <= aftermath for b in bursts)]
    if len(regular) < 4:
        return []
    fifth = max(1, len(regular) // 5)
    first, last = regular[:fifth], regular[-fifth:]
    out = [f"stage growth, mean of nights {first[0].night}-{first[-1].night} -> nights {last[0].night}-{last[-1].night}"
           f" (regular nights{f', none of the {aftermath} after a burst' if aftermath else ''}):"]

    def mean(group: Sequence[Night], get: Callable[[Night], float]) -> float:
        return sum(get(n) for n in group) / len(group)

    rows: list[tuple[str, Callable[[Night], float]]] = [
        (name, (lambda n, name=name: n.stages.get(name, 0.0))) for name in STAGES
        if any(name in n.stages for n in regular)]
    rows += [("other", lambda n: n.wall - sum(v for k, v in n.stages.items() if "/" not in k)),
             ("without embedding", lambda n: n.without_embedding), ("clustered (window)", lambda n: n.result.clustered),
             ("state MiB", lambda n: n.state_mib)]
    for name, get in rows:
        a, b = mean(first, get), mean(last, get)
        ratio = f"{b / a:5.2f}x" if a > 0.0005 else "   -  "
        out.append(f"    {name:20} {a:10.2f} -> {b:10.2f}  {ratio}")
    slope, _ = np.polyfit([n.night for n in regular], [n.without_embedding for n in regular], 1)
    out.append(f"    least-squares slope of the wall time without embedding: {slope * 1000:+.1f} ms per night of history")
    return out


# -- the run -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def interrupted_note(night: int) -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        print(f"interrupted during night {night}: the report covers the nights before it (the state's rows are read "
              "after it: the articles it took in stay pending, as after a killed run)")
        raise


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def nights_held(path: Path) -> int:
    """The last night a state made by this benchmark ran (from its last finished run's time; 0: none)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT now FROM runs WHERE finished_at IS NOT NULL ORDER BY run_id DESC LIMIT 1").fetchone()
    finally:
        db.close()
    return 0 if row is None else (datetime.fromisoformat(row[0]) - START).days + 1


def run_year(args: argparse.Namespace, state: Path, prune: Optional[Callable], out: list[Night]) -> None:
    """Run the nights, appending each one's figures to ``out`` (so that an interrupted run keeps what it measured)."""
    late, early, size_night = reference_nights(args.nights)
    printed = {1, args.nights} | {k for k in range(1, args.nights + 1) if k % args.every == 0}
    avoid = printed | {late, early, size_night} | set(range(late - 2, late + 3)) | set(range(early - 2, early + 3))
    news = YearOfNews(args.nights, args.per_night, args.evergreen_per_night, seed=args.seed, undated=args.undated,
                      max_lifetime=args.max_lifetime, with_bursts=not args.no_bursts, avoid_bursts=frozenset(avoid))
    printed |= news.bursts
    print(f"burst nights (10x articles): {', '.join(map(str, sorted(news.bursts))) or 'none'}")
    embedder = SyntheticEmbedder(template_words(), seed=args.seed + 7)
    t0 = time.perf_counter()
    pipeline.starting_language_means(embedder)  # embeds the calibration corpus once (cached per model id)
    print(f"stand-in embedder {embedder.model_id}; reference language means in {time.perf_counter() - t0:.2f} s")
    peak_so_far = peak_rss_mib()
    peaks = StagePeaks()
    peaks.install()
    if not peaks.enabled:
        print("note: /proc/self/clear_refs is not writable: a night's peak is the process's peak so far")
    for k in range(1, args.resume_after + 1):  # the nights the state holds: their news only, not run again
        news.night(k, START + timedelta(days=k - 1), evergreen=not args.no_evergreen)
    if args.resume_after:
        print(f"resumed: the state holds nights 1-{args.resume_after}; their news generated again, not run")
        printed.add(args.resume_after + 1)
    started = time.perf_counter()
    with open_store(state) as store:
        for k in range(args.resume_after + 1, args.nights + 1):
            if args.stop_after is not None and time.perf_counter() - started > 60 * args.stop_after:
                print(f"--stop-after {args.stop_after:g}: stopping before night {k}; the report covers nights 1-{k - 1}")
                break
            now = START + timedelta(days=k - 1)
            g0 = time.perf_counter()
            news_night = news.night(k, now, evergreen=not args.no_evergreen)
            generate = time.perf_counter() - g0
            sink = JsonlSink()
            pruned = None
            timing.reset()
            rss_start = rss_mib()
            peaks.start_night()
            profiler = cProfile.Profile() if k in args.profile_night else None
            if profiler is not None:
                profiler.enable()
            w0 = time.perf_counter()
            with store.lock(), interrupted_note(k):
                result = update_stories(store, news_night.articles, embedder, files=news_night.files,
                                        state=StateOptions(now=now, story_window=args.story_window,
                                                           members_in_full=args.members_in_full))
                with peaks.stage("publish"):
                    publish(store, sink)
                if prune is not None:
                    with peaks.stage("prune"):
                        pruned = prune(store, keep=args.keep, now=now)
            wall = time.perf_counter() - w0
            if profiler is not None:
                profiler.disable()
                report = io.StringIO()
                pstats.Stats(profiler, stream=report).sort_stats("cumulative").print_stats(30)
                print(f"cProfile of night {k} (wall under the profiler {wall:.2f} s):")
                print(report.getvalue())
            stages = timing.stage_seconds()
            night_peak = peaks.night_peak()
            peak_so_far = max(peak_so_far, night_peak)
            db_bytes, wal_bytes = state_bytes(state)
            night = Night(k, news_night.burst, len(news_night.articles), result, stages, wall, generate, rss_start,
                          rss_mib(), night_peak, peak_so_far, db_bytes, wal_bytes, sink.stories, sink.bytes, pruned,
                          stage_peaks=dict(peaks.peaks), generated=news_night.summary(),
                          stage_rises=dict(peaks.rises))
            del news_night
            if k in printed or k == args.nights or (args.stop_after is not None and
                                                     time.perf_counter() - started > 60 * args.stop_after):
                night.counts = count_rows(state)
                print_night(night)
            out.append(night)


def ratio_lines(what: str, by_night: dict[int, Night], late: Night, early: Night) -> list[str]:
    """Wall time without embedding and peak RSS of ``late`` against ``early``."""
    def wall(n: Night) -> float:
        return n.without_embedding

    late_median, early_median = median_around(by_night, late.night, wall), median_around(by_night, early.night, wall)
    return [
        f"ratios, {what}:",
        f"    wall time without embedding: {late.without_embedding:.2f} s / {early.without_embedding:.2f} s = "
        f"{late.without_embedding / max(early.without_embedding, 1e-9):.2f}x (medians of the regular nights within 2 of "
        f"each: {late_median:.2f} / {early_median:.2f} s = {late_median / max(early_median, 1e-9):.2f}x)",
        f"    peak RSS so far: {late.peak_so_far:,.0f} / {early.peak_so_far:,.0f} MiB = "
        f"{late.peak_so_far / max(early.peak_so_far, 1e-9):.2f}x; the night's own peak: {late.night_peak:,.0f} / "
        f"{early.night_peak:,.0f} MiB = {late.night_peak / max(early.night_peak, 1e-9):.2f}x",
        f"    clustered (open window + tonight): {late.result.clustered:,} / {early.result.clustered:,}",
    ]


def summary(args: argparse.Namespace, nights: list[Night], state: Path) -> list[str]:
    by_night = {n.night: n for n in nights}
    ran = nights[-1].night  # the last night run (before --nights after --stop-after or an interrupt)
    late_k, early_k, size_k = reference_nights(ran)
    lines: list[str] = []
    late, early = regular_near(by_night, late_k), regular_near(by_night, early_k)
    if late is not None and early is not None and late.night != early.night:
        what = "night 300 against night 30" if late_k == 300 else (
            f"a run of {ran} nights: night {late.night} against night {early.night} (a tenth of it, "
            "standing in for 300 against 30)")
        lines += ratio_lines(what, by_night, late, early)
    thirty = regular_near(by_night, 30)
    if late is not None and late_k != 300 and thirty is not None and thirty.night == 30 and late.night > 30:
        lines += ratio_lines(f"night {late.night} against night 30", by_night, late, thirty)
    if args.keep is not None:
        last, at = nights[-1], by_night.get(size_k)
        if at is not None:
            lines.append(f"state file with --keep {args.keep_text}: night {last.night} {last.state_mib:,.1f} MiB against "
                         f"night {size_k} {at.state_mib:,.1f} MiB = {last.state_mib / max(at.state_mib, 1e-9):.2f}x"
                         + ("" if ran >= 365 else f" (night {size_k} is 60/365 of this {ran}-night run)"))
    lines += growth_report(nights)
    lines += growth_report(nights, aftermath=max(1, round(args.story_window.total_seconds() / 86400)))
    stories, members, purity, inverse = window_purity(state)
    lines.append(f"sanity: the open window at the end holds {stories:,} stories, {members:,} members; purity {purity:.3f},"
                 f" inverse purity {inverse:.3f} against the synthetic stories")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nights", type=int, default=365, help="nights to run (default 365)")
    parser.add_argument("--per-night", type=int, default=10000, help="articles per regular night, the evergreen's and the copies included (default 10000)")
    parser.add_argument("--keep", type=str, default=None,
                        help="retention: prune after each night, keeping this long (e.g. 30d; default: no pruning)")
    parser.add_argument("--story-window", type=str, default=f"{StateOptions().story_window.days}d",
                        help="StateOptions.story_window (default: the library's, %(default)s)")
    parser.add_argument("--members-in-full", type=int, default=StateOptions().members_in_full, metavar="N",
                        help="StateOptions.members_in_full: cluster an open story's latest N members one by one and "
                             "its older dated ones as one weighted summary per day (default: the library's, "
                             "%(default)s: all one by one)")
    parser.add_argument("--every", type=int, default=10, help="print every N-th night (default 10)")
    parser.add_argument("--evergreen-per-night", type=int, default=300,
                        help="articles of the evergreen story per night (default 300)")
    parser.add_argument("--no-evergreen", action="store_true", help="no evergreen story")
    parser.add_argument("--no-bursts", action="store_true",
                        help="no burst nights (a short run then measures the regular nights alone)")
    parser.add_argument("--undated", type=float, default=0.2, help="share of articles without a date (default 0.2)")
    parser.add_argument("--max-lifetime", type=int, metavar="NIGHTS",
                        help="no story but the evergreen lives longer than this (default: up to the whole run). With "
                             "it the news are stationary after that many nights: as many stories live, as old, "
                             "every night, so a night's cost can be compared across months")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic year and the stand-in (default 0)")
    parser.add_argument("--profile-night", type=int, metavar="N", nargs="+", default=[],
                        help="run these nights under cProfile and print their 30 costliest functions (cumulative "
                             "time); their own figures then include the profiler's overhead")
    parser.add_argument("--stop-after", type=float, metavar="MINUTES",
                        help="start no night after this many minutes, and report on the nights run (a shared box)")
    parser.add_argument("--state", type=Path, help="state file to create (default: a temp file, removed at the end)")
    parser.add_argument("--out", type=Path, help="also write the markdown table and the ratios to this file")
    parser.add_argument("--resume", action="store_true",
                        help="--state is a state an earlier run of this benchmark left (the same options, e.g. "
                             "stopped by --stop-after): run its next nights up to --nights, the news of the nights "
                             "it holds generated again (not run) so that its synthetic stories go on")
    args = parser.parse_args()
    if args.nights < 1 or args.per_night < 1 or args.every < 1 or args.evergreen_per_night < 0 or (
            args.max_lifetime is not None and args.max_lifetime < 1):
        parser.error("--nights, --per-night, --every and --max-lifetime must be positive, --evergreen-per-night >= 0")
    try:
        args.story_window_text = args.story_window
        args.story_window = parse_window(args.story_window)
        args.keep_text = args.keep
        args.keep = parse_window(args.keep) if args.keep is not None else None
    except ValueError as exc:
        parser.error(str(exc))
    prune = None
    if args.keep is not None:
        try:
            from storyclust.retention import prune  # type: ignore[import-not-found,no-redef]
        except ImportError as exc:
            print(f"error: --keep needs storyclust.retention.prune(store, keep, *, now=...), which this checkout "
                  f"does not have yet ({exc}); run without --keep, or once retention.py has landed", file=sys.stderr)
            return 2
    args.resume_after = 0
    if args.resume:
        if args.state is None or not args.state.exists():
            parser.error("--resume needs --state naming the state file of an earlier run")
        args.resume_after = nights_held(args.state)
        if args.resume_after >= args.nights:
            parser.error(f"{args.state} already holds {args.resume_after} nights (--nights {args.nights})")
    elif args.state is not None and (args.state.exists() or args.state.with_name(args.state.name + "-wal").exists()):
        parser.error(f"{args.state} exists: give a new path (the benchmark starts from an empty state; "
                     "--resume goes on with it)")
    work = None
    if args.state is None:
        work = Path(tempfile.mkdtemp(prefix="bench-year-"))
        state = work / "state.db"
    else:
        state = args.state
    print(f"machine   : {cpu_description()}")
    print(f"code      : {code_description()}")
    lives = "up to the whole run" if args.max_lifetime is None else f"at most {args.max_lifetime} nights"
    print(f"run       : {args.nights} nights x {args.per_night:,} articles, evergreen "
          f"{0 if args.no_evergreen else args.evergreen_per_night}/night, {args.undated:.0%} undated, stories living "
          f"{lives}, story window {args.story_window_text}, keep {args.keep_text or 'everything'}, members in full "
          f"{'all' if args.members_in_full is None else args.members_in_full}, seed {args.seed}, state {state}"
          + (f", resumed after night {args.resume_after}" if args.resume_after else ""))
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, _interrupt)
    nights: list[Night] = []
    try:
        try:
            run_year(args, state, prune, nights)
        except KeyboardInterrupt:
            if not nights:
                raise
        if nights[-1].counts is None:  # stopped early: show where it stopped
            nights[-1].counts = count_rows(state)
            print_night(nights[-1])
        lines = summary(args, nights, state)
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    shown = [n for n in nights if n.counts is not None]
    table = markdown_table(shown, args.keep is not None)
    print()
    print(table)
    print()
    print("\n".join(lines))
    print(f"whole benchmark: {time.perf_counter() - started:.0f} s")
    if args.out is not None:
        header = (f"bench_year.py: {args.nights} nights x {args.per_night:,} articles, evergreen "
                  f"{0 if args.no_evergreen else args.evergreen_per_night}/night, stories living {lives}, "
                  f"story window {args.story_window_text}, keep {args.keep_text or 'everything'}, seed {args.seed}"
                  + (f", resumed after night {args.resume_after}" if args.resume_after else "")
                  + f"\n\n{cpu_description()}\n\n"
                  f"{code_description()}\n\n")
        args.out.write_text(header + table + "\n\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
