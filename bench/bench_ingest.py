"""Benchmark the ingest stage on generated news pages, against bare trafilatura.

Writes N generated news pages to a temporary folder and times ``ingest_paths``.
The pages copy the shape of real news sites, not their text (every word is
generated here): a big ``<head>`` (dozens of meta and link tags, JSON-LD, analytics,
consent and ad-slot scripts, inline CSS), on some sites a hydration state
(``__NEXT_DATA__``-style JSON that repeats the article and the related items) and an
SVG sprite (those pages weigh 100-300 KB), a cookie banner, mega menus, a
breaking-news ticker, ad slots, breadcrumbs, a figure with its caption, sub-heads, an
inline "read also" teaser, share bars, tags, an author box, related-article cards with
teasers, a most-read list, a newsletter box, reader comments and a big footer; five
site layouts; en/fr/es/de/id; 3% of the pages republish an earlier story with one word
edited and an agency tag added.

Figures: pages/s, peak RSS of the whole process tree (sampled from /proc) and quality:
share of pages that became articles, story paragraphs recovered, boilerplate leaked
(any teaser, comment, banner or box text of the page, or a marker word, in the
article), comments leaked, language accuracy, near-duplicate recall and false flags.

    python bench/bench_ingest.py --pages 1000                    # storyclust, jobs 1 and 2
    python bench/bench_ingest.py --pages 300 --vs-bare --jobs 1 2  # against bare trafilatura
    python bench/bench_ingest.py --pages 300 --extraction-cost    # what fast_extract and the tag dropping change

``--vs-bare`` calls :func:`compare_with_bare`: in one run, in alternating order,
storyclust ``ingest_paths`` with jobs=N and bare ``trafilatura.bare_extraction(html)``
(default arguments, file bytes read in the worker) in a pool of N processes, over the
same files; it prints both rates, the ratio, peak RSS and storyclust's per-stage cost
(:func:`stage_breakdown`). Other scripts import it::

    from bench_ingest import compare_with_bare, generate
    result = compare_with_bare(["/data/pages/"], jobs=2)   # a folder, or a list of files
    result["ratio"]                                         # storyclust pages/s / bare pages/s

Measured 2026-12-02 on the 2-CPU dev box (AMD EPYC) while another engineer's embedding jobs
kept the load average at 3-4.8, 1,000 generated pages (106.5 MiB), 5 alternating rounds:
jobs=1 storyclust 73.2 pages/s, bare 47.1 pages/s, ratio 1.54 (rounds 1.28-1.62); jobs=2
storyclust 66.3, bare 42.5, ratio 1.54 (rounds 1.18-1.76; no gain over jobs=1: the box was
saturated). 300 pages at load 1.5-2.5: jobs=1 ratio 1.36 (1.15-1.79). Per stage in process:
trafilatura text ~50%, parse, metadata, language id, read and decode ~1 ms each, dedupe 0.5-0.8,
cleaning 0.3, IPC 0.04 ms/page. --extraction-cost: fast_extract 87.3% identical texts, length
ratio 0.936 in all, story recovered 98.7% -> 86.7%, boilerplate leaked 0.0% -> 12.7% (so it is
off by default); the tag dropping 100% identical.
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
import multiprocessing
import os
import pickle
import random
import resource
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Optional, Union

from storyclust.ingest import IngestOptions, IngestStats, ingest_paths
from storyclust.types import Article, Rejection


SENTENCES = {
    "en": [
        "Officials in {city} said on {day} that the {org} would review the plan before the end of the month.",
        "The decision follows weeks of protests by residents who say the project will raise rents across {city}.",
        "{name}, a spokesperson for the {org}, said about {n} people had signed a petition against the proposal.",
        "Analysts expect the measure to cost around {n} million dollars over the next five years.",
        "Opposition lawmakers called for an independent inquiry and demanded that the minister appear before parliament.",
        "Police in {city} reported {n} arrests after clashes near the central station late on {day}.",
        "The company said its quarterly profit rose by {n} percent, helped by strong demand in Asia.",
        "Local schools will remain closed until further notice while engineers inspect the damaged buildings.",
        "Rescue teams worked through the night to reach villages cut off by the floods near {city}.",
        "{name} told reporters that negotiations with the unions would resume on {day}.",
        "The central bank left interest rates unchanged and warned that inflation could stay high for longer.",
        "Health authorities recorded {n} new cases and urged people to avoid crowded places.",
    ],
    "fr": [
        "Les autorités de {city} ont annoncé {day} que le {org} examinerait le projet avant la fin du mois.",
        "Cette décision intervient après des semaines de manifestations d'habitants inquiets de la hausse des loyers à {city}.",
        "{name}, porte-parole du {org}, a indiqué qu'environ {n} personnes avaient signé une pétition contre le projet.",
        "Selon les analystes, la mesure devrait coûter près de {n} millions d'euros au cours des cinq prochaines années.",
        "Les députés de l'opposition réclament une commission d'enquête indépendante et l'audition du ministre.",
        "La police de {city} a procédé à {n} interpellations après des heurts près de la gare centrale {day} soir.",
        "Le groupe a fait état d'une hausse de {n} % de son bénéfice trimestriel, portée par la demande en Asie.",
        "Les écoles resteront fermées jusqu'à nouvel ordre pendant que des ingénieurs inspectent les bâtiments endommagés.",
        "Les secours ont travaillé toute la nuit pour atteindre les villages isolés par les inondations près de {city}.",
        "{name} a déclaré aux journalistes que les négociations avec les syndicats reprendraient {day}.",
    ],
    "es": [
        "Las autoridades de {city} anunciaron el {day} que el {org} revisará el plan antes de fin de mes.",
        "La decisión llega tras semanas de protestas de vecinos que temen una subida de los alquileres en {city}.",
        "{name}, portavoz del {org}, dijo que unas {n} personas habían firmado una petición contra la propuesta.",
        "Los analistas calculan que la medida costará cerca de {n} millones de euros en los próximos cinco años.",
        "Los diputados de la oposición pidieron una investigación independiente y la comparecencia del ministro.",
        "La policía de {city} informó de {n} detenciones tras los enfrentamientos cerca de la estación central.",
        "La empresa dijo que su beneficio trimestral aumentó un {n} por ciento gracias a la fuerte demanda en Asia.",
        "Los colegios seguirán cerrados hasta nuevo aviso mientras los ingenieros inspeccionan los edificios dañados.",
        "Los equipos de rescate trabajaron toda la noche para llegar a los pueblos aislados por las inundaciones.",
        "{name} dijo a los periodistas que las negociaciones con los sindicatos se reanudarán el {day}.",
    ],
    "de": [
        "Die Behörden in {city} teilten am {day} mit, dass der {org} den Plan bis Ende des Monats prüfen werde.",
        "Die Entscheidung folgt auf wochenlange Proteste von Anwohnern, die steigende Mieten in {city} befürchten.",
        "{name}, Sprecher des {org}, sagte, rund {n} Menschen hätten eine Petition gegen das Vorhaben unterschrieben.",
        "Nach Einschätzung von Analysten wird die Maßnahme in den kommenden fünf Jahren etwa {n} Millionen Euro kosten.",
        "Abgeordnete der Opposition forderten eine unabhängige Untersuchung und eine Anhörung des Ministers.",
        "Die Polizei in {city} meldete {n} Festnahmen nach Auseinandersetzungen in der Nähe des Hauptbahnhofs.",
        "Das Unternehmen steigerte seinen Quartalsgewinn um {n} Prozent, gestützt auf eine starke Nachfrage in Asien.",
        "Die Schulen bleiben bis auf Weiteres geschlossen, während Ingenieure die beschädigten Gebäude untersuchen.",
        "Rettungskräfte arbeiteten die ganze Nacht, um die vom Hochwasser abgeschnittenen Dörfer zu erreichen.",
        "{name} sagte vor Journalisten, die Verhandlungen mit den Gewerkschaften würden am {day} fortgesetzt.",
    ],
    "id": [
        "Pejabat di {city} mengatakan pada hari {day} bahwa {org} akan meninjau rencana tersebut sebelum akhir bulan.",
        "Keputusan itu muncul setelah berminggu-minggu protes warga yang khawatir harga sewa di {city} akan naik.",
        "{name}, juru bicara {org}, mengatakan sekitar {n} orang telah menandatangani petisi menentang usulan itu.",
        "Para analis memperkirakan kebijakan itu akan menelan biaya sekitar {n} miliar rupiah dalam lima tahun ke depan.",
        "Anggota dewan dari oposisi meminta penyelidikan independen dan menuntut menteri hadir di hadapan parlemen.",
        "Polisi di {city} melaporkan {n} penangkapan setelah bentrokan di dekat stasiun pusat pada malam hari.",
        "Perusahaan itu mengatakan laba kuartalannya naik {n} persen berkat permintaan yang kuat di Asia.",
        "Sekolah-sekolah akan tetap ditutup sampai pemberitahuan lebih lanjut selama para insinyur memeriksa bangunan.",
        "Tim penyelamat bekerja sepanjang malam untuk mencapai desa-desa yang terisolasi akibat banjir di dekat {city}.",
        "{name} mengatakan kepada wartawan bahwa perundingan dengan serikat pekerja akan dilanjutkan pada hari {day}.",
    ],
}
CITIES = ["Lisbon", "Nairobi", "Jakarta", "Lyon", "Bilbao", "Hamburg", "Osaka", "Quito", "Porto", "Dakar", "Leeds", "Graz"]
NAMES = ["Ana Costa", "Peter Lang", "Siti Rahma", "Jean Morel", "Lucía Pardo", "Karl Weber", "Amina Diallo", "Tom Reid"]
ORGS = ["Transport Authority", "Housing Council", "Energy Board", "Water Agency", "Health Institute", "Port Commission"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]

# Extra sentence material: "{subject} {predicate} {complement}." per language, so that long
# stories do not reuse the same dozen templates (independent stories must stay under the
# near-duplicate threshold).
FRAGMENTS = {
    "en": (
        ["The mayor of {city}", "A senior official at the {org}", "{name}", "The regional governor",
         "A coalition of local businesses", "The national audit office", "A group of engineers",
         "The opposition leader", "An independent monitor", "The union representing {n} workers"],
        ["warned on {day} that", "told a news conference that", "said in a written statement that",
         "argued in a letter to the {org} that", "confirmed late on {day} that", "insisted that"],
        ["the budget for the project had grown by {n} percent since March.",
         "about {n} households in {city} were still without electricity.",
         "the inquiry would publish its first findings within {n} days.",
         "repairs to the bridge near {city} could take until next spring.",
         "talks with the {org} had made little progress so far.",
         "ticket prices would rise for the third time in {n} months.",
         "the new rules would apply to some {n} companies across the country.",
         "the evacuation of {city} had gone more smoothly than expected."],
    ),
    "fr": (
        ["Le maire de {city}", "Un haut responsable du {org}", "{name}", "Le préfet de la région",
         "Un collectif de commerçants", "La Cour des comptes", "Un groupe d'ingénieurs",
         "Le chef de l'opposition", "Un observateur indépendant", "Le syndicat qui représente {n} salariés"],
        ["a averti {day} que", "a déclaré lors d'une conférence de presse que", "a indiqué dans un communiqué que",
         "a estimé dans une lettre au {org} que", "a confirmé {day} soir que", "a assuré que"],
        ["le budget du projet avait augmenté de {n} % depuis mars.",
         "environ {n} foyers de {city} étaient toujours privés d'électricité.",
         "l'enquête publierait ses premières conclusions d'ici {n} jours.",
         "la réparation du pont près de {city} pourrait durer jusqu'au printemps.",
         "les discussions avec le {org} avaient peu avancé jusqu'ici.",
         "le prix des billets augmenterait pour la troisième fois en {n} mois.",
         "les nouvelles règles concerneraient quelque {n} entreprises dans tout le pays.",
         "l'évacuation de {city} s'était mieux déroulée que prévu."],
    ),
    "es": (
        ["El alcalde de {city}", "Un alto cargo del {org}", "{name}", "El gobernador regional",
         "Una asociación de comerciantes", "El tribunal de cuentas", "Un grupo de ingenieros",
         "El líder de la oposición", "Un observador independiente", "El sindicato que representa a {n} trabajadores"],
        ["advirtió el {day} que", "dijo en una rueda de prensa que", "afirmó en un comunicado que",
         "sostuvo en una carta al {org} que", "confirmó el {day} por la noche que", "insistió en que"],
        ["el presupuesto del proyecto había crecido un {n} por ciento desde marzo.",
         "unos {n} hogares de {city} seguían sin electricidad.",
         "la investigación publicaría sus primeras conclusiones en {n} días.",
         "la reparación del puente cerca de {city} podría durar hasta la primavera.",
         "las conversaciones con el {org} apenas habían avanzado.",
         "el precio de los billetes subiría por tercera vez en {n} meses.",
         "las nuevas normas afectarían a unas {n} empresas de todo el país.",
         "la evacuación de {city} había transcurrido mejor de lo previsto."],
    ),
    "de": (
        ["Der Bürgermeister von {city}", "Ein hoher Beamter des {org}", "{name}", "Der Regierungspräsident",
         "Ein Bündnis örtlicher Händler", "Der Bundesrechnungshof", "Eine Gruppe von Ingenieuren",
         "Der Oppositionsführer", "Ein unabhängiger Beobachter", "Die Gewerkschaft mit {n} Mitgliedern"],
        ["warnte am {day}, dass", "sagte auf einer Pressekonferenz, dass", "erklärte in einer Mitteilung, dass",
         "schrieb in einem Brief an den {org}, dass", "bestätigte am {day} Abend, dass", "betonte, dass"],
        ["die Kosten des Projekts seit März um {n} Prozent gestiegen seien.",
         "rund {n} Haushalte in {city} noch immer ohne Strom seien.",
         "die Untersuchung erste Ergebnisse binnen {n} Tagen vorlegen werde.",
         "die Reparatur der Brücke bei {city} bis zum Frühjahr dauern könne.",
         "die Gespräche mit dem {org} bisher kaum vorangekommen seien.",
         "die Fahrpreise zum dritten Mal in {n} Monaten steigen würden.",
         "die neuen Regeln für etwa {n} Unternehmen im ganzen Land gelten würden.",
         "die Räumung von {city} besser verlaufen sei als erwartet."],
    ),
    "id": (
        ["Wali kota {city}", "Seorang pejabat senior {org}", "{name}", "Gubernur wilayah itu",
         "Sekelompok pengusaha lokal", "Badan Pemeriksa Keuangan", "Sekelompok insinyur",
         "Pemimpin oposisi", "Seorang pemantau independen", "Serikat yang mewakili {n} pekerja"],
        ["memperingatkan pada hari {day} bahwa", "mengatakan dalam konferensi pers bahwa",
         "menyatakan dalam keterangan tertulis bahwa", "menulis dalam surat kepada {org} bahwa",
         "membenarkan pada {day} malam bahwa", "menegaskan bahwa"],
        ["anggaran proyek itu telah naik {n} persen sejak Maret.",
         "sekitar {n} rumah tangga di {city} masih belum mendapat aliran listrik.",
         "penyelidikan akan menerbitkan temuan pertamanya dalam {n} hari.",
         "perbaikan jembatan di dekat {city} bisa memakan waktu hingga musim depan.",
         "pembicaraan dengan {org} sejauh ini belum banyak kemajuan.",
         "harga tiket akan naik untuk ketiga kalinya dalam {n} bulan.",
         "aturan baru itu akan berlaku bagi sekitar {n} perusahaan di seluruh negeri.",
         "evakuasi {city} berjalan lebih lancar dari perkiraan."],
    ),
}

COMMENTS = {
    "en": ["Typical. They announce a review and nothing ever changes.", "My street has been flooded twice this year already.",
           "Who is going to pay for all of this in the end?", "Finally some good news from the council.",
           "I was there on Friday and the police did a great job.", "This paper only ever prints one side of the story."],
    "fr": ["Comme d'habitude, on annonce un examen et rien ne change.", "Ma rue a déjà été inondée deux fois cette année.",
           "Qui va payer tout cela au bout du compte ?", "Enfin une bonne nouvelle de la mairie.",
           "J'y étais vendredi et la police a fait du bon travail.", "Ce journal ne donne jamais qu'un seul point de vue."],
    "es": ["Lo de siempre, anuncian una revisión y nada cambia.", "Mi calle ya se ha inundado dos veces este año.",
           "¿Quién va a pagar todo esto al final?", "Por fin una buena noticia del ayuntamiento.",
           "Estuve allí el viernes y la policía hizo un gran trabajo.", "Este periódico solo cuenta una versión de la historia."],
    "de": ["Typisch. Man kündigt eine Prüfung an und nichts ändert sich.", "Meine Straße stand dieses Jahr schon zweimal unter Wasser.",
           "Wer soll das am Ende eigentlich alles bezahlen?", "Endlich mal eine gute Nachricht aus dem Rathaus.",
           "Ich war am Freitag dort und die Polizei hat gute Arbeit geleistet.", "Diese Zeitung berichtet immer nur einseitig."],
    "id": ["Seperti biasa, diumumkan peninjauan tapi tidak ada yang berubah.", "Jalan rumah saya sudah dua kali banjir tahun ini.",
           "Siapa yang akhirnya akan membayar semua ini?", "Akhirnya ada kabar baik dari pemerintah kota.",
           "Saya ada di sana hari Jumat dan polisi bekerja dengan baik.", "Media ini selalu memberitakan satu sisi saja."],
}
UI = {  # site chrome words per language: menus, buttons, banners
    "en": dict(cookie="We and our {n} partners store and access information on your device, such as cookies, to measure audiences, personalise advertising and improve our services. You can accept or refuse, or change your choices at any time in the privacy settings at the bottom of the page.",
               accept="Accept all", refuse="Continue without accepting", news="Newsletter", sub="Subscribe", related="Related stories",
               read="Read also", most="Most read", comments="comments", tags="Topics", share="Share", bio="is a correspondent covering cities, transport and housing.",
               nl="Get the morning briefing in your inbox every weekday.", ad="Advertisement", sections=["World", "Politics", "Business", "Tech", "Sport", "Culture", "Opinion", "Climate", "Health", "Science"]),
    "fr": dict(cookie="Nous et nos {n} partenaires stockons et accédons à des informations sur votre appareil, comme les cookies, pour mesurer l'audience, personnaliser la publicité et améliorer nos services. Vous pouvez accepter ou refuser, ou modifier vos choix à tout moment dans les paramètres de confidentialité.",
               accept="Tout accepter", refuse="Continuer sans accepter", news="Newsletter", sub="S'abonner", related="Sur le même sujet",
               read="Lire aussi", most="Les plus lus", comments="commentaires", tags="Thèmes", share="Partager", bio="est correspondant, il couvre les villes, les transports et le logement.",
               nl="Recevez l'essentiel de l'actualité chaque matin dans votre boîte mail.", ad="Publicité", sections=["Monde", "Politique", "Économie", "Tech", "Sport", "Culture", "Idées", "Climat", "Santé", "Sciences"]),
    "es": dict(cookie="Nosotros y nuestros {n} socios almacenamos información en su dispositivo, como cookies, para medir audiencias, personalizar la publicidad y mejorar nuestros servicios. Puede aceptar o rechazar, o cambiar sus opciones en cualquier momento en la configuración de privacidad.",
               accept="Aceptar todo", refuse="Continuar sin aceptar", news="Boletín", sub="Suscríbete", related="Noticias relacionadas",
               read="Lee también", most="Lo más leído", comments="comentarios", tags="Temas", share="Compartir", bio="es corresponsal y cubre ciudades, transporte y vivienda.",
               nl="Recibe cada mañana las noticias más importantes en tu correo.", ad="Publicidad", sections=["Internacional", "Política", "Economía", "Tecnología", "Deportes", "Cultura", "Opinión", "Clima", "Salud", "Ciencia"]),
    "de": dict(cookie="Wir und unsere {n} Partner speichern und verarbeiten Informationen auf Ihrem Gerät, etwa Cookies, um Reichweiten zu messen, Werbung zu personalisieren und unsere Dienste zu verbessern. Sie können zustimmen, ablehnen oder Ihre Auswahl jederzeit in den Datenschutzeinstellungen ändern.",
               accept="Alle akzeptieren", refuse="Ohne Zustimmung fortfahren", news="Newsletter", sub="Abonnieren", related="Mehr zum Thema",
               read="Lesen Sie auch", most="Meistgelesen", comments="Kommentare", tags="Themen", share="Teilen", bio="ist Korrespondent und berichtet über Städte, Verkehr und Wohnen.",
               nl="Die wichtigsten Nachrichten jeden Morgen in Ihrem Postfach.", ad="Anzeige", sections=["Ausland", "Politik", "Wirtschaft", "Digital", "Sport", "Kultur", "Meinung", "Klima", "Gesundheit", "Wissen"]),
    "id": dict(cookie="Kami dan {n} mitra kami menyimpan dan mengakses informasi di perangkat Anda, seperti cookie, untuk mengukur audiens, menyesuaikan iklan, dan meningkatkan layanan kami. Anda dapat menerima atau menolak, atau mengubah pilihan kapan saja di pengaturan privasi.",
               accept="Terima semua", refuse="Lanjutkan tanpa menerima", news="Buletin", sub="Berlangganan", related="Berita terkait",
               read="Baca juga", most="Terpopuler", comments="komentar", tags="Topik", share="Bagikan", bio="adalah koresponden yang meliput perkotaan, transportasi, dan perumahan.",
               nl="Dapatkan ringkasan berita setiap pagi di kotak masuk Anda.", ad="Iklan", sections=["Dunia", "Politik", "Ekonomi", "Tekno", "Olahraga", "Budaya", "Opini", "Iklim", "Kesehatan", "Sains"]),
}

BOILERPLATE_MARKERS = ["Subscribe", "cookies", "Advertisement", "Related stories", "Newsletter", "©"]
SITES = [  # (name, domain, layout)
    ("Daily Planet", "dailyplanet.example", "wordpress"), ("Morning Courier", "courier.example", "modern"),
    ("Harian Kita", "hariankita.example", "portal"), ("Le Petit Journal", "petitjournal.example", "modern"),
    ("Der Bote", "derbote.example", "legacy"), ("El Diario", "eldiario.example", "wordpress"),
    ("City Wire", "citywire.example", "amp"), ("Berita Nusantara", "beritanusantara.example", "portal"),
]


@dataclass
class Page:
    path: Path
    lang: str
    paragraphs: list[str]
    copy_of: int | None  # index of the page this one republishes
    boilerplate: list[str] = field(default_factory=list)  # teaser, comment, banner and box texts of the page
    comments: list[str] = field(default_factory=list)


def _fill(rng: random.Random, template: str) -> str:
    return template.format(city=rng.choice(CITIES), name=rng.choice(NAMES), org=rng.choice(ORGS),
                           day=rng.choice(DAYS), n=rng.randint(2, 9000))


def _sentence(rng: random.Random, lang: str) -> str:
    subjects, predicates, complements = FRAGMENTS[lang]
    return _fill(rng, f"{rng.choice(subjects)} {rng.choice(predicates)} {rng.choice(complements)}")


def _story(rng: random.Random, lang: str) -> tuple[str, list[str]]:
    """A headline and 4-30 paragraphs (most stories 1,500-5,000 characters, a few long reads)."""
    pool = SENTENCES[lang]
    n_sentences = rng.choice([6, 8, 10, 12, 14, 16, 20, 24, 40])
    templates = rng.sample(pool, k=min(len(pool), n_sentences // 2))
    sentences = [_fill(rng, t) for t in templates] + [_sentence(rng, lang) for _ in range(n_sentences - len(templates))]
    rng.shuffle(sentences)
    paragraphs, k = [], 0
    while k < len(sentences):
        step = rng.randint(1, 3)
        paragraphs.append(" ".join(sentences[k : k + step]))
        k += step
    title = sentences[0].split(",")[0]
    title = title if len(title) <= 90 else title[:90].rsplit(" ", 1)[0]
    return title, paragraphs


def _teaser(rng: random.Random, lang: str) -> str:
    """A related-article headline: unique on the page, never a story sentence."""
    return f"{rng.choice(CITIES)}: {_sentence(rng, lang)[:70].rsplit(' ', 1)[0]} ({rng.randint(10, 99)})"


def _svg_path(rng: random.Random, points: int) -> str:
    return "M" + " ".join(f"{rng.randint(0, 240) / 10:.1f},{rng.randint(0, 240) / 10:.1f}" for _ in range(points)) + "z"


def _script_blob(rng: random.Random, name: str, kb: int) -> str:
    """Minified-looking JavaScript of about ``kb`` KB (analytics, consent manager, ad slots)."""
    parts, size = [f"(function(w,d){{var {name}=w.{name}||{{}};"], 0
    while size < kb * 1024:
        k = rng.randint(0, 10**6)
        part = (f"{name}.f{k}=function(a,b){{if(!a||a.length<{k % 97})return b;var c=d.createElement('div');"
                f"c.setAttribute('data-slot','s{k}');c.className='x{k % 500}';return a.map(function(e){{return e*{k % 13}+b}})}};")
        parts.append(part)
        size += len(part)
    return "<script>" + "".join(parts) + f"}})(window,document);</script>"


def _head(rng: random.Random, c: dict) -> str:
    lang, ui = c["lang"], c["ui"]
    metas = [
        '<meta charset="utf-8">', '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{c['title']} | {c['site']}</title>",
        f'<meta name="description" content="{c["lede"][:150]}">',
        f'<meta name="keywords" content="{", ".join(rng.sample(ui["sections"], 4))}">',
        '<meta name="robots" content="max-image-preview:large, max-snippet:-1">',
        f'<meta property="og:title" content="{c["title"]}">', '<meta property="og:type" content="article">',
        f'<meta property="og:url" content="{c["url"]}">', f'<meta property="og:site_name" content="{c["site"]}">',
        f'<meta property="og:image" content="https://img.{c["domain"]}/{c["index"]}/1200x630.jpg">',
        f'<meta property="og:description" content="{c["lede"][:200]}">',
        f'<meta name="twitter:card" content="summary_large_image"><meta name="twitter:site" content="@{c["domain"].split(".")[0]}">',
        f'<meta name="twitter:title" content="{c["title"]}">',
        f'<meta property="article:section" content="{rng.choice(ui["sections"])}">',
        f'<meta property="article:modified_time" content="{c["date"]}">',
        '<meta name="theme-color" content="#0a2540">', '<meta name="apple-mobile-web-app-capable" content="yes">',
    ]
    if c["layout"] != "legacy":
        metas.append(f'<meta property="article:published_time" content="{c["date"]}">')
    else:
        metas.append(f'<meta name="date" content="{c["date"]}">')
    metas += [f'<meta property="article:tag" content="{t}">' for t in c["tags"]]
    links = [f'<link rel="canonical" href="{c["url"]}">', f'<link rel="amphtml" href="{c["url"]}/amp">',
             '<link rel="icon" href="/favicon.ico"><link rel="apple-touch-icon" href="/icons/180.png">',
             '<link rel="manifest" href="/manifest.json">']
    links += [f'<link rel="preload" href="/fonts/f{k}.woff2" as="font" type="font/woff2" crossorigin>' for k in range(4)]
    links += [f'<link rel="preconnect" href="https://cdn{k}.{c["domain"]}">' for k in range(5)]
    links += [f'<link rel="alternate" hreflang="{h}" href="https://{h}.{c["domain"]}/">' for h in ("en", "fr", "es", "de", "id", "pt")]
    links += [f'<link rel="stylesheet" href="/static/css/main.{rng.randint(10**7, 10**8)}.css">']
    ld = {"@context": "https://schema.org", "@type": "NewsArticle", "headline": c["title"],
          "datePublished": c["date"], "dateModified": c["date"], "inLanguage": lang,
          "author": [{"@type": "Person", "name": c["author"], "url": f"https://{c['domain']}/author/{c['index'] % 50}"}],
          "publisher": {"@type": "Organization", "name": c["site"], "logo": {"@type": "ImageObject", "url": f"https://{c['domain']}/logo.png"}},
          "image": [f"https://img.{c['domain']}/{c['index']}/{w}.jpg" for w in (1200, 800, 400)],
          "mainEntityOfPage": c["url"], "isAccessibleForFree": True}
    crumbs = {"@context": "https://schema.org", "@type": "BreadcrumbList", "itemListElement": [
        {"@type": "ListItem", "position": k + 1, "name": s, "item": f"https://{c['domain']}/{s.lower()}"}
        for k, s in enumerate(rng.sample(ui["sections"], 3))]}
    scripts = [f'<script type="application/ld+json">{json.dumps(ld, ensure_ascii=False)}</script>',
               f'<script type="application/ld+json">{json.dumps(crumbs, ensure_ascii=False)}</script>',
               "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}"
               f"gtag('js',new Date());gtag('config','G-{rng.randint(10**6, 10**7)}',{{page_type:'article',section:'{rng.choice(ui['sections'])}'}});</script>",
               _script_blob(rng, "__cmp", rng.randint(4, 14)), _script_blob(rng, "googletag", rng.randint(2, 8))]
    style = "<style>" + "".join(
        f".{c['layout'][:2]}-{k}{{margin:{k % 7}px {k % 3}px;padding:{k % 5}px;color:#{rng.randint(0, 0xFFFFFF):06x};"
        f"font:{12 + k % 8}px/1.{k % 9} var(--f{k % 4})}}" for k in range(rng.randint(150, 600))) + "</style>"
    if c["layout"] == "legacy":
        return f'<head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">{"".join(metas[1:])}{"".join(links[:3])}{scripts[2]}{style}</head>'
    return "<head>" + "".join(metas) + "".join(links) + "".join(scripts) + style + "</head>"


def _menu(rng: random.Random, ui: dict, domain: str) -> str:
    parts = ['<nav class="main-nav" aria-label="Main"><ul class="menu">']
    for section in ui["sections"]:
        subs = "".join(f'<li><a href="https://{domain}/{section.lower()}/{k}">{section} {rng.choice(CITIES)}</a></li>'
                       for k in range(rng.randint(4, 14)))
        parts.append(f'<li class="menu-item has-children"><a href="/{section.lower()}">{section}</a><ul class="sub-menu">{subs}</ul></li>')
    parts.append("</ul></nav>")
    return "".join(parts)


def _sprite(rng: random.Random) -> str:
    return ('<svg xmlns="http://www.w3.org/2000/svg" style="display:none">' + "".join(
        f'<symbol id="icon-{k}" viewBox="0 0 24 24"><path d="{_svg_path(rng, rng.randint(8, 40))}"/></symbol>'
        for k in range(rng.randint(20, 70))) + "</svg>")


def _hydration(rng: random.Random, c: dict, paragraphs: list[str], teasers: list[str], kb: int) -> str:
    """A ``__NEXT_DATA__``-style state: the article again, related items, config; about ``kb`` KB."""
    items, size = [], 0
    while size < kb * 1024:
        item = {"id": rng.randint(10**6, 10**7), "slug": f"story-{rng.randint(1, 10**6)}", "title": _teaser(rng, c["lang"]),
                "teaser": _sentence(rng, c["lang"]), "image": {"src": f"https://img.{c['domain']}/{rng.randint(1, 10**6)}.jpg",
                "width": 800, "height": 450, "srcset": [f"{w}w" for w in (320, 640, 960, 1280)]}, "section": rng.choice(c["ui"]["sections"])}
        items.append(item)
        size += len(json.dumps(item, ensure_ascii=False))
    state = {"props": {"pageProps": {"article": {"id": c["index"], "headline": c["title"], "body": [{"type": "p", "text": p} for p in paragraphs],
             "authors": [c["author"]], "published": c["date"]}, "related": teasers, "feed": items}},
             "page": "/[section]/[slug]", "buildId": f"b{rng.randint(10**8, 10**9)}", "runtimeConfig": {"adsEnabled": True, "paywall": "metered"}}
    return f'<script id="__NEXT_DATA__" type="application/json">{json.dumps(state, ensure_ascii=False)}</script>'


def _render(rng: random.Random, index: int, lang: str, title: str, paragraphs: list[str]) -> tuple[str, list[str], list[str]]:
    """The page's HTML, its boilerplate texts (for the leak figure) and its comment texts."""
    site, domain, layout = rng.choice(SITES)
    ui = UI[lang]
    author = rng.choice(NAMES)
    date = f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T0{rng.randint(0, 9)}:{rng.randint(10, 59)}:00Z"
    c = dict(lang=lang, ui=ui, site=site, domain=domain, layout=layout, index=index, title=title, author=author,
             lede=paragraphs[0], date=date, url=f"https://www.{domain}/{rng.choice(ui['sections']).lower()}/{index}-story",
             tags=rng.sample(CITIES, 3) + rng.sample(ORGS, 2))
    teasers = [_teaser(rng, lang) for _ in range(rng.randint(4, 12))]
    most_read = [_teaser(rng, lang) for _ in range(rng.choice([0, 5, 10]))]
    inline_teaser = _teaser(rng, lang)
    comments = [f"{rng.choice(COMMENTS[lang])} {rng.choice(COMMENTS[lang])}" for _ in range(rng.choice([0, 0, 3, 8, 20, 40]))]
    cookie = ui["cookie"].format(n=rng.randint(100, 900))
    bio = f"{author} {ui['bio']}"
    boilerplate = teasers + most_read + [inline_teaser, cookie, ui["nl"], bio] + [t[len(t.split(":")[0]) + 2:] for t in teasers[:2]]
    ad = lambda k: f'<div class="ad-slot" id="ad-{k}" data-sizes="300x250,728x90"><span class="ad-label">{ui["ad"]}</span><div id="div-gpt-{k}"></div></div>'

    body_parts, sub_at = [], {len(paragraphs) // 3, 2 * len(paragraphs) // 3} if len(paragraphs) > 6 else set()
    for k, p in enumerate(paragraphs[1:], 1):
        if k in sub_at:
            body_parts.append(f"<h2>{_fill(rng, rng.choice(SENTENCES[lang])).split(',')[0][:60]}</h2>")
        if k == 2:
            body_parts.append(f'<figure class="wp-block-image"><img src="https://img.{domain}/{index}/800.jpg" alt="{title}" '
                              f'loading="lazy" width="800" height="450"><figcaption>{rng.choice(CITIES)}, {date[:10]}. '
                              f'Photo: {rng.choice(NAMES)} / Agency</figcaption></figure>')
        if k == 3:
            body_parts.append(f'<p class="read-also"><strong>{ui["read"]}:</strong> <a href="/story/{rng.randint(1, 10**6)}">{inline_teaser}</a></p>')
        if k == 4 and layout != "amp":
            body_parts.append(ad(len(body_parts)))
        if layout == "modern" and k % 3 == 0:
            words = p.split(" ")
            words[1:3] = [f'<a href="/tag/{k}">{words[1]} {words[2]}</a>'] if len(words) > 3 else words[1:3]
            p = " ".join(words)
        body_parts.append(f"<p>{p}</p>")
    body = "".join(body_parts)
    lede = f'<p class="standfirst">{paragraphs[0]}</p>'
    share = (f'<div class="share-bar"><span>{ui["share"]}</span>' + "".join(
        f'<a class="share-{s}" href="https://{s}.example/share?u={c["url"]}"><svg><use href="#icon-{k}"/></svg></a>'
        for k, s in enumerate(["facebook", "x", "whatsapp", "linkedin", "email"])) + "</div>")
    tags = f'<div class="tags"><span>{ui["tags"]}:</span>' + "".join(f'<a href="/tag/{t.lower()}" rel="tag">{t}</a>' for t in c["tags"]) + "</div>"
    author_box = f'<div class="author-box"><img src="/authors/{index % 50}.jpg" alt=""><p>{bio}</p><a href="/author/{index % 50}">@{author.split()[0].lower()}</a></div>'
    cards = "".join(
        f'<article class="card"><a href="/story/{rng.randint(1, 10**6)}"><img src="https://img.{domain}/{rng.randint(1, 10**6)}/320.jpg" alt="">'
        f'<h3 class="card-title">{t}</h3></a><p class="card-teaser">{t[len(t.split(":")[0]) + 2:]}</p><time>{date[:10]}</time></article>'
        for t in teasers)
    related = f'<section class="related"><h2>{ui["related"]}</h2><div class="grid">{cards}</div></section>'
    most = (f'<aside class="most-read"><h3>{ui["most"]}</h3><ol>' + "".join(f'<li><a href="/story/{k}">{t}</a></li>' for k, t in enumerate(most_read)) + "</ol></aside>") if most_read else ""
    newsletter = f'<div class="newsletter-box"><h3>{ui["news"]}</h3><p>{ui["nl"]}</p><form action="/subscribe"><input type="email" placeholder="email"><button>{ui["sub"]}</button></form></div>'
    comment_html = "".join(
        f'<li class="comment" id="comment-{k}"><div class="comment-author"><img src="/avatar/{k}.png" alt=""><b>reader{rng.randint(1, 9999)}</b></div>'
        f'<div class="comment-content"><p>{text}</p></div><div class="reply"><a href="#respond">Reply</a> · {rng.randint(0, 90)} likes</div></li>'
        for k, text in enumerate(comments))
    comments_section = (f'<section id="comments" class="comments-area"><h2>{len(comments)} {ui["comments"]}</h2><ol class="comment-list">{comment_html}</ol>'
                        f'<div id="respond"><h3>Leave a comment</h3><form><textarea></textarea><button>Post</button></form></div></section>') if comments else ""
    banner = (f'<div id="cookie-consent" class="cmp-banner" role="dialog" aria-modal="true"><div class="cmp-text"><p>{cookie}</p></div>'
              f'<button class="cmp-accept">{ui["accept"]}</button><button class="cmp-refuse">{ui["refuse"]}</button></div>')
    ticker = '<div class="breaking-ticker"><span>Live</span><ul>' + "".join(f"<li><a href='/live/{k}'>{t}</a></li>" for k, t in enumerate(teasers[:3])) + "</ul></div>"
    crumbs = f'<ol class="breadcrumb"><li><a href="/">{site}</a></li><li><a href="/{ui["sections"][1].lower()}">{ui["sections"][1]}</a></li></ol>'
    footer = ('<footer class="site-footer"><div class="footer-cols">' + "".join(
        f'<div class="col"><h4>{s}</h4><ul>' + "".join(f'<li><a href="/{s.lower()}/{k}">{s} {k}</a></li>' for k in range(rng.randint(5, 12))) + "</ul></div>"
        for s in ui["sections"]) + f'</div><p class="copyright">© 2024 {site}. All rights reserved.</p></footer>')
    byline = f'<div class="byline">By <a href="/author/{index % 50}" rel="author">{author}</a> · <time datetime="{date}">{date[:10]}</time></div>'
    sprite = _sprite(rng) if layout in ("modern", "portal", "wordpress") else ""
    hydrate = _hydration(rng, c, paragraphs, teasers, rng.choice([20, 60, 120, 200])) if layout == "modern" else ""
    tail_scripts = _script_blob(rng, "__ads", rng.randint(1, 6)) + '<script async src="https://cdn.example/widgets.js"></script>'

    if layout == "legacy":
        page = (f'<html>{_head(rng, c)}<body><table width="100%"><tr><td class="logo">{site}</td><td>{_menu(rng, ui, domain)}</td></tr></table>'
                f'{ad(0)}<table width="100%"><tr><td id="content" valign="top"><div class="story"><h2 class="title">{title}</h2>'
                f'<div class="meta">{author} · {date}</div><div class="story-body">{lede}{body}</div>{share}</div>'
                f'<div id="comments">{comments_section}</div></td><td class="sidebar" width="300">{most}{ad(1)}{related}</td></tr></table>'
                f'{newsletter}{footer}{tail_scripts}</body></html>')
    elif layout == "modern":
        page = (f'<!DOCTYPE html><html lang="{lang}">{_head(rng, c)}<body class="article-page">{sprite}<div id="__next">'
                f'<a class="skip" href="#main">Skip to content</a>{banner}<header class="site-header"><a class="logo" href="/">{site}</a>'
                f'{_menu(rng, ui, domain)}<button>{ui["sub"]}</button></header>{ticker}<main id="main"><div class="css-1x9k2">{crumbs}'
                f'<article class="css-a8f3k"><header><h1>{title}</h1>{lede}{byline}</header>{share}<div class="css-body" data-component="text-block">{body}</div>'
                f'{tags}{author_box}</article>{ad(9)}{related}{most}{comments_section}</div></main>{newsletter}{footer}</div>{hydrate}{tail_scripts}</body></html>')
    elif layout == "portal":
        page = (f'<!DOCTYPE html><html lang="{lang}">{_head(rng, c)}<body>{sprite}{banner}<div class="topbar">{ticker}</div>'
                f'<header>{_menu(rng, ui, domain)}</header>{ad(0)}<div class="container"><div class="row"><div class="col-8">{crumbs}'
                f'<div class="detail"><h1 class="detail__title">{title}</h1>{byline}<div class="detail__body-text">{lede}{body}</div>'
                f'{tags}{share}</div>{related}{comments_section}</div><div class="col-4">{most}{ad(1)}{newsletter}</div></div></div>{footer}{tail_scripts}</body></html>')
    elif layout == "amp":
        page = (f'<!doctype html><html amp lang="{lang}">{_head(rng, c)}<body><amp-consent id="consent" layout="nodisplay">{banner}</amp-consent>'
                f'<header class="amp-header"><a href="/">{site}</a></header><amp-sidebar id="sidebar" layout="nodisplay">{_menu(rng, ui, domain)}</amp-sidebar>'
                f'<main><article><h1>{title}</h1>{byline}{lede}{body}{share}</article>{related}</main>{footer}</body></html>')
    else:  # wordpress
        page = (f'<!DOCTYPE html><html lang="{lang}">{_head(rng, c)}<body class="post-template-default single single-post">{sprite}{banner}'
                f'<div id="page" class="site"><header id="masthead" class="site-header"><div class="site-branding"><p class="site-title">{site}</p></div>'
                f'{_menu(rng, ui, domain)}</header>{ad(0)}<div id="content" class="site-content"><div id="primary" class="content-area"><main id="main">'
                f'<article id="post-{index}" class="post type-post"><header class="entry-header"><h1 class="entry-title">{title}</h1>{byline}</header>'
                f'<div class="entry-content">{lede}{body}</div><footer class="entry-footer">{tags}{share}</footer></article>{author_box}'
                f'{related}{comments_section}</main></div><aside id="secondary" class="widget-area">{most}{newsletter}{ad(1)}</aside></div>'
                f'{footer}</div>{tail_scripts}</body></html>')
    return page, boilerplate, comments


def generate(folder: Path, n_pages: int, seed: int = 7, copy_rate: float = 0.03) -> list[Page]:
    """Write ``n_pages`` pages under ``folder``; ``copy_rate`` of them republish an earlier story, lightly edited."""
    rng = random.Random(seed)
    pages: list[Page] = []
    for i in range(n_pages):
        copy_of = None
        if pages and rng.random() < copy_rate:
            copy_of = rng.randrange(len(pages))
            while pages[copy_of].copy_of is not None:
                copy_of = pages[copy_of].copy_of
            source = pages[copy_of]
            lang, paragraphs = source.lang, list(source.paragraphs)
            middle = len(paragraphs) // 2
            words = paragraphs[middle].split()
            words[len(words) // 2] = "(x)"  # one word edited by the republishing site
            paragraphs[middle] = " ".join(words)
            paragraphs[-1] += " (AFP)"
            title = paragraphs[0][:60]
        else:
            lang = rng.choice(sorted(SENTENCES))
            title, paragraphs = _story(rng, lang)
        path = folder / f"{i // 100:02d}" / f"page{i:05d}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        html, boilerplate, comments = _render(rng, i, lang, title, paragraphs)
        path.write_text(html, encoding="utf-8")
        pages.append(Page(path, lang, paragraphs, copy_of, boilerplate, comments))
    return pages



class TreeRssSampler(threading.Thread):
    """Peak resident memory of this process plus all its descendants, sampled from /proc."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.peak_kib = 0
        self._halt = threading.Event()

    @staticmethod
    def _tree_rss_kib(root: int) -> int:
        parents: dict[int, int] = {}
        rss: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/status") as fh:
                    fields = dict(line.split(":", 1) for line in fh if ":" in line)
            except OSError:
                continue
            pid = int(entry)
            parents[pid] = int(fields["PPid"])
            rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0])
        total = 0
        for pid in rss:
            p = pid
            while p and p != root:
                p = parents.get(p, 0)
            if p == root:
                total += rss[pid]
        return total

    def run(self) -> None:
        me = os.getpid()
        while not self._halt.is_set():
            self.peak_kib = max(self.peak_kib, self._tree_rss_kib(me))
            self._halt.wait(self.interval)

    def stop(self) -> int:
        self._halt.set()
        self.join()
        return self.peak_kib


def quality(pages: list[Page], items: list) -> dict:
    """Quality figures of ``items`` (what ``ingest_paths`` gave) against the generated ``pages``."""
    by_path = {item.path: item for item in items if isinstance(item, Article)}
    exact_dups = {item.source for item in items if isinstance(item, Rejection) and item.reason == "duplicate"}
    recovered = paragraphs = found = leaked = comments_leaked = lang_ok = flagged_copies = false_flags = 0
    articles = 0
    copies = sum(p.copy_of is not None for p in pages)
    for page in pages:
        article = by_path.get(str(page.path))
        if article is None:
            flagged_copies += page.copy_of is not None and str(page.path) in exact_dups
            continue
        articles += 1
        text = " ".join(article.text.split())
        hits = [" ".join(p.split()) in text for p in page.paragraphs]
        recovered += all(hits)
        paragraphs += len(hits)
        found += sum(hits)
        leaked += any(marker in article.text for marker in BOILERPLATE_MARKERS) or any(b in text for b in page.boilerplate)
        comments_leaked += any(c in text for c in page.comments)
        lang_ok += article.lang == page.lang
        if page.copy_of is not None:
            flagged_copies += article.duplicate_of is not None
        else:
            false_flags += article.duplicate_of is not None
    n = max(1, articles)
    return {
        "articles": f"{articles}/{len(pages)}",
        "story_recovered": recovered / n,  # every story paragraph of the page is in the text
        "paragraph_recall": found / max(1, paragraphs),
        "boilerplate_leaked": leaked / n,  # any teaser, banner, box or comment text, or a marker word
        "comments_leaked": comments_leaked / n,
        "lang_accuracy": lang_ok / n,
        "near_dup_recall": f"{flagged_copies}/{copies}",  # marked duplicate_of, or rejected as an exact copy
        "near_dup_false_flags": false_flags,
    }


def measure(folder: Path, pages: list[Page], jobs: int, options: Optional[IngestOptions] = None) -> dict:
    """Time ``ingest_paths`` over ``folder`` with ``jobs`` processes; rate, peak RSS and :func:`quality`."""
    options = options or IngestOptions(jobs=jobs)
    sampler = TreeRssSampler()
    sampler.start()
    stats = IngestStats()
    started = time.perf_counter()
    items = list(ingest_paths([folder], replace(options, jobs=jobs), stats=stats))
    elapsed = time.perf_counter() - started
    peak = sampler.stop()
    return {"jobs": jobs, "seconds": elapsed, "pages_per_s": len(pages) / elapsed, "peak_tree_rss_mib": peak / 1024,
            **quality(pages, items), "summary": stats.summary_line(), "items": items}


# --- storyclust against bare trafilatura ------------------------------------------------

def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (and the number of CPUs this process may use)."""
    name = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {len(os.sched_getaffinity(0))} CPUs"


def _load() -> str:
    try:
        with open("/proc/loadavg") as fh:
            return " ".join(fh.read().split()[:3])
    except OSError:
        return "?"


def _files(pages: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]]) -> list[str]:
    """A folder (its ``*.html``/``*.htm`` files, recursively, sorted) or a list of files."""
    if isinstance(pages, (str, os.PathLike)) and Path(pages).is_dir():
        return sorted(str(p) for p in Path(pages).rglob("*") if p.suffix.lower() in (".html", ".htm") and p.is_file())
    if isinstance(pages, (str, os.PathLike)):
        return [str(pages)]
    out: list[str] = []
    for p in pages:
        out.extend(_files(p) if Path(p).is_dir() else [str(p)])
    return out


def _bare_one(path: str) -> int:
    """Bare trafilatura on one file: read the bytes, ``bare_extraction`` with default arguments."""
    import trafilatura

    with open(path, "rb") as fh:
        data = fh.read()
    doc = trafilatura.bare_extraction(data)
    return len(doc.text) if doc is not None and doc.text else 0


def _bare_init() -> None:
    import trafilatura  # noqa: F401  (imported once per worker, before the clock matters)

    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)


def run_bare(paths: list[str], jobs: int) -> dict:
    """``trafilatura.bare_extraction`` over ``paths``: in this process for jobs=1, else a
    ``multiprocessing.Pool(jobs)`` (fork; started inside the timed span, as storyclust's
    workers are) with ``imap`` and the chunk size ``Pool.map`` would pick."""
    sampler = TreeRssSampler()
    sampler.start()
    started = time.perf_counter()
    if jobs == 1:
        _bare_init()
        chars = [_bare_one(p) for p in paths]
    else:
        chunk = max(1, -(-len(paths) // (4 * jobs)))
        with multiprocessing.get_context("fork").Pool(jobs, initializer=_bare_init) as pool:
            chars = list(pool.imap(_bare_one, paths, chunksize=chunk))
    elapsed = time.perf_counter() - started
    peak = sampler.stop()
    return {"seconds": elapsed, "pages_per_s": len(paths) / elapsed, "peak_tree_rss_mib": peak / 1024,
            "texts": sum(c > 0 for c in chars)}


def run_storyclust(paths: list[str], jobs: int, options: Optional[IngestOptions] = None) -> dict:
    """``ingest_paths(paths, IngestOptions(jobs=jobs))`` (defaults otherwise); rate, peak RSS, parent CPU."""
    options = replace(options or IngestOptions(), jobs=jobs)
    sampler = TreeRssSampler()
    sampler.start()
    stats = IngestStats()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    items = list(ingest_paths(paths, options, stats=stats))
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    peak = sampler.stop()
    parent_cpu = (after.ru_utime - cpu.ru_utime) + (after.ru_stime - cpu.ru_stime)
    return {"seconds": elapsed, "pages_per_s": len(paths) / elapsed, "peak_tree_rss_mib": peak / 1024,
            "articles": stats.articles, "parent_cpu_ms_per_page": 1000 * parent_cpu / max(1, len(paths)), "items": items}


#: Stages of :func:`stage_breakdown`: (label, module attribute paths timed under it).
_STAGES = [
    ("read + sniff", []),
    ("decode", ["storyclust.ingest.readers:decode_bytes", "storyclust.ingest.readers:declared_html_charset",
                "storyclust.ingest.readers:normalize_markup"]),
    ("parse (lxml, once)", ["storyclust.ingest.extract:_parse"]),
    ("metadata", ["storyclust.ingest.extract:_metadata", "storyclust.ingest.extract:_date_of",
                  "storyclust.ingest.extract:_meta_published"]),
    ("drop script/style/svg", ["storyclust.ingest.extract:_drop_code"]),
    ("trafilatura text", ["trafilatura:bare_extraction"]),
    ("cleaning", ["storyclust.ingest.extract:clean_body", "storyclust.ingest.extract:clean_title",
                  "storyclust.ingest.readers:normalize_text"]),
    ("language id", ["storyclust.ingest.readers:detect_language"]),
    ("dedupe (hash check, MinHash, LSH)", ["storyclust.ingest.dedupe:Deduplicator.check"]),
]


def stage_breakdown(paths: list[str], options: Optional[IngestOptions] = None) -> dict:
    """Per-stage cost of storyclust's ingest, in ms per page: one in-process run (jobs=1) with
    each stage's functions wrapped in a timer, plus the cost of the worker messages
    (pickled in the worker, unpickled in the parent: measured on this run's own results,
    batched as :mod:`storyclust.ingest.parallel` sends them). "read + sniff" is what is
    left of the run's time (file reading, format sniffing, time limits, the Article)."""
    import importlib

    from storyclust.ingest import parallel

    options = replace(options or IngestOptions(), jobs=1)
    spent: dict[str, float] = {label: 0.0 for label, _ in _STAGES}
    undo = []
    active: list[str] = []  # the stage being timed (nested calls are charged to the outer one)

    def wrap(label: str, fn):
        def timed(*args, **kwargs):
            if active:
                return fn(*args, **kwargs)
            active.append(label)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - t0
                active.pop()
        return timed

    for label, targets in _STAGES:
        for target in targets:
            module_name, attr = target.split(":")
            owner = importlib.import_module(module_name)
            *outer, name = attr.split(".")
            for part in outer:
                owner = getattr(owner, part)
            original = getattr(owner, name)
            setattr(owner, name, wrap(label, original))
            undo.append((owner, name, original))
    try:
        started = time.perf_counter()
        items = list(ingest_paths(paths, options))
        total = time.perf_counter() - started
    finally:
        for owner, name, original in reversed(undo):
            setattr(owner, name, original)
    located = [(k, [parallel.Located(getattr(item, "source", getattr(item, "path", "")) or "", item)]) for k, item in enumerate(items)]
    t0 = time.perf_counter()
    for k, batch in located:
        pickle.loads(pickle.dumps(("done", k, batch), protocol=pickle.HIGHEST_PROTOCOL))
    spent["IPC (pickle + unpickle of the results)"] = time.perf_counter() - t0
    n = max(1, len(paths))
    spent["read + sniff"] = total - sum(v for k, v in spent.items() if not k.startswith("IPC"))
    return {"total_ms_per_page": 1000 * total / n, "stages_ms_per_page": {k: 1000 * v / n for k, v in spent.items()}}


def compare_with_bare(pages: Union[str, os.PathLike, Iterable[Union[str, os.PathLike]]], jobs: int = 2, *,
                      rounds: int = 3, options: Optional[IngestOptions] = None, breakdown: bool = True,
                      verbose: bool = True) -> dict:
    """storyclust ingest against bare trafilatura on the same files, in one run.

    ``pages``: a folder (its ``.html``/``.htm`` files, recursively) or a list of files.
    ``jobs``: processes on both sides. Runs ``rounds`` pairs in alternating order
    (storyclust first in even rounds, bare first in odd ones), so load on the machine
    hits both sides alike; one untimed warm-up of each first (page cache, forkserver,
    imports). storyclust: ``ingest_paths(files, IngestOptions(jobs=jobs))`` (``options``
    for other settings), dedupe included. Bare: ``trafilatura.bare_extraction(bytes)`` with
    default arguments, file reading included, in a pool of ``jobs`` processes (in this
    process for jobs=1), see :func:`run_bare`.

    Returns a dict: ``pages``, ``jobs``, ``cpu`` (model, from /proc/cpuinfo), ``load_before`` /
    ``load_after`` (1/5/15-min load averages), ``storyclust_pages_per_s`` / ``bare_pages_per_s``
    (medians over the rounds), ``ratio`` (median of the per-round ratios, storyclust / bare),
    ``rounds`` (every round's figures), ``storyclust_peak_rss_mib`` / ``bare_peak_rss_mib``
    (whole process tree), ``parent_cpu_ms_per_page`` and, with ``breakdown``, ``stages``
    (:func:`stage_breakdown`). Prints a summary when ``verbose``.
    """
    paths = _files(pages)
    if not paths:
        raise ValueError("no HTML files to compare on")
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    logging.getLogger("storyclust").setLevel(logging.ERROR)
    result: dict = {"pages": len(paths), "jobs": jobs, "cpu": cpu_model(), "load_before": _load(), "rounds": []}
    if verbose:
        print(f"{len(paths)} pages, jobs={jobs}, {result['cpu']}, load {result['load_before']}", flush=True)
    warm = paths[: min(len(paths), 20)]
    run_storyclust(warm, jobs, options)
    run_bare(warm, jobs)
    for r in range(rounds):
        order = ("storyclust", "bare") if r % 2 == 0 else ("bare", "storyclust")
        figures = {}
        for side in order:
            gc.collect()
            figures[side] = run_storyclust(paths, jobs, options) if side == "storyclust" else run_bare(paths, jobs)
        figures["storyclust"].pop("items")
        figures["ratio"] = figures["storyclust"]["pages_per_s"] / figures["bare"]["pages_per_s"]
        result["rounds"].append(figures)
        if verbose:
            print(f"  round {r + 1} ({' then '.join(order)}): storyclust {figures['storyclust']['pages_per_s']:.1f} pages/s, "
                  f"bare {figures['bare']['pages_per_s']:.1f} pages/s, ratio {figures['ratio']:.2f}", flush=True)
    rounds_ = result["rounds"]
    result["storyclust_pages_per_s"] = statistics.median(f["storyclust"]["pages_per_s"] for f in rounds_)
    result["bare_pages_per_s"] = statistics.median(f["bare"]["pages_per_s"] for f in rounds_)
    result["ratio"] = statistics.median(f["ratio"] for f in rounds_)
    result["storyclust_peak_rss_mib"] = max(f["storyclust"]["peak_tree_rss_mib"] for f in rounds_)
    result["bare_peak_rss_mib"] = max(f["bare"]["peak_tree_rss_mib"] for f in rounds_)
    result["parent_cpu_ms_per_page"] = statistics.median(f["storyclust"]["parent_cpu_ms_per_page"] for f in rounds_)
    result["load_after"] = _load()
    if breakdown:
        result["stages"] = stage_breakdown(paths, options)
    if verbose:
        print(f"jobs={jobs}: storyclust {result['storyclust_pages_per_s']:.1f} pages/s, bare trafilatura "
              f"{result['bare_pages_per_s']:.1f} pages/s, ratio {result['ratio']:.2f} (median of {rounds} rounds); "
              f"peak RSS (tree) {result['storyclust_peak_rss_mib']:.0f} / {result['bare_peak_rss_mib']:.0f} MiB; "
              f"storyclust parent CPU {result['parent_cpu_ms_per_page']:.2f} ms/page; load {result['load_after']}")
        if breakdown:
            st = result["stages"]
            print(f"  storyclust per stage, in process (jobs=1), {st['total_ms_per_page']:.2f} ms/page in all:")
            for label, ms in st["stages_ms_per_page"].items():
                print(f"    {label:40s} {ms:6.2f} ms/page")
    return result


# --- what an extraction setting changes -------------------------------------------------

def extraction_cost(folder: Path, pages: list[Page], variant: str = "fast_extract", verbose: bool = True) -> dict:
    """What one extraction setting changes, in process, on the same pages: the texts of the
    default settings (a) against ``variant`` (b): share of identical article texts, length
    ratio (median per page, and total), each side's :func:`quality` and speed.

    ``variant``: ``"fast_extract"`` (``IngestOptions(fast_extract=True)``: trafilatura's
    ``fast=True``) or ``"keep_tags"`` (the tree handed to trafilatura keeps the elements
    ``storyclust.ingest.extract._DROPPED_TAGS`` drops: a is storyclust, b what trafilatura alone
    would see, so identical texts mean the dropping costs nothing).
    """
    from storyclust.ingest import extract

    base = IngestOptions(jobs=1)
    a = measure(folder, pages, 1, base)
    if variant == "fast_extract":
        b = measure(folder, pages, 1, replace(base, fast_extract=True))
    elif variant == "keep_tags":
        dropped = extract._DROPPED_TAGS
        extract._DROPPED_TAGS = ()
        try:
            b = measure(folder, pages, 1, base)
        finally:
            extract._DROPPED_TAGS = dropped
    else:
        raise ValueError(f"unknown variant {variant!r}")
    ta = {i.path: i.text for i in a["items"] if isinstance(i, Article)}
    tb = {i.path: i.text for i in b["items"] if isinstance(i, Article)}
    both = sorted(set(ta) & set(tb))
    ratios = [len(tb[p]) / max(1, len(ta[p])) for p in both]
    result = {
        "variant": variant, "pages": len(pages), "articles_a": len(ta), "articles_b": len(tb),
        "identical_share": sum(ta[p] == tb[p] for p in both) / max(1, len(both)),
        "length_ratio_median": statistics.median(ratios) if ratios else float("nan"),
        "length_ratio_total": sum(len(tb[p]) for p in both) / max(1, sum(len(ta[p]) for p in both)),
        "pages_per_s_a": a["pages_per_s"], "pages_per_s_b": b["pages_per_s"],
        "quality_a": {k: v for k, v in a.items() if k not in ("items", "summary")},
        "quality_b": {k: v for k, v in b.items() if k not in ("items", "summary")},
    }
    if verbose:
        print(f"{variant}: identical texts {result['identical_share']:.1%} of {len(both)} articles, length ratio "
              f"(b/a) median {result['length_ratio_median']:.3f}, total {result['length_ratio_total']:.3f}; "
              f"in process {result['pages_per_s_a']:.1f} (a) vs {result['pages_per_s_b']:.1f} (b) pages/s")
        for side in ("a", "b"):
            print(f"  {side}: {_quality_line(result['quality_' + side])}")
    return result


def _quality_line(r: dict) -> str:
    return (f"articles {r['articles']}, story recovered {r['story_recovered']:.1%}, paragraph recall "
            f"{r['paragraph_recall']:.1%}, boilerplate leaked {r['boilerplate_leaked']:.1%}, comments leaked "
            f"{r['comments_leaked']:.1%}, lang accuracy {r['lang_accuracy']:.1%}, near-dup recall {r['near_dup_recall']}, "
            f"false near-dup flags {r['near_dup_false_flags']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000, help="pages to generate")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", help="use the HTML files of this folder instead of generated pages (--vs-bare only)")
    parser.add_argument("--vs-bare", action="store_true", help="compare with bare trafilatura (compare_with_bare)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per jobs value (--vs-bare)")
    parser.add_argument("--fast-extract", action="store_true", help="storyclust with IngestOptions(fast_extract=True)")
    parser.add_argument("--extraction-cost", action="store_true",
                        help="what fast_extract and dropping tags change in the texts (identical share, length ratio, quality)")
    parser.add_argument("--keep", help="write the pages to this folder and keep them")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    print(f"CPU: {cpu_model()}; load {_load()}")
    options = IngestOptions(fast_extract=args.fast_extract)
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    try:
        pages: list[Page] = []
        if not args.dir:
            started = time.perf_counter()
            pages = generate(folder, args.pages, seed=args.seed)
            sizes = sorted(p.path.stat().st_size for p in pages)
            print(f"generated {len(pages)} pages ({sum(sizes) / 2**20:.1f} MiB; median {sizes[len(sizes) // 2] / 1024:.0f} KB, "
                  f"{sum(s > 100_000 for s in sizes)} over 100 KB, largest {sizes[-1] / 1024:.0f} KB) "
                  f"in {time.perf_counter() - started:.1f} s")
        if args.extraction_cost:
            print("a = storyclust defaults; b = the variant")
            for variant in ("fast_extract", "keep_tags"):
                extraction_cost(folder, pages, variant)
        elif args.vs_bare:
            for jobs in args.jobs:
                compare_with_bare(args.dir or folder, jobs, rounds=args.rounds, options=options, breakdown=jobs == args.jobs[0])
        else:
            for jobs in args.jobs:
                result = measure(folder, pages, jobs, options)
                print(f"jobs={jobs}: {result['pages_per_s']:.1f} pages/s ({result['seconds']:.1f} s), "
                      f"peak RSS (tree) {result['peak_tree_rss_mib']:.0f} MiB, {_quality_line(result)}")
                print(f"  {result['summary']}")
            self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            print(f"ru_maxrss: self {self_kib / 1024:.0f} MiB, reaped children {children_kib / 1024:.0f} MiB")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
