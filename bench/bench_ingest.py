"""Benchmark the ingest stage on generated news pages.

Writes N realistic news pages (navigation, ads, share buttons, related links,
newsletter box, comments and footer around the story; five languages; three
site layouts; a few wires republished with light edits) to a temporary
folder, then times ``ingest_paths`` with jobs=1 and jobs=2.

Prints pages/s, peak RSS of the whole process tree (this process plus the
worker processes, sampled from /proc) and quality figures: share of pages
that became articles, story paragraphs recovered, boilerplate leaked, language
accuracy, and near-duplicate recall/false positives on the planted copies.

    python bench/bench_ingest.py --pages 1000
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import resource
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

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
BOILERPLATE_MARKERS = ["Subscribe", "cookies", "Advertisement", "Related stories", "comment", "Newsletter", "©"]

LAYOUTS = [
    """<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8"><title>{title} - {site}</title>
<meta property="og:site_name" content="{site}"><meta property="article:published_time" content="{date}">
<link rel="canonical" href="{url}"></head><body>
<div class="cookie">We use cookies to improve your experience. <button>Accept</button></div>
<header><a href="/">{site}</a><nav><ul><li><a href="/world">World</a></li><li><a href="/business">Business</a></li>
<li><a href="/sport">Sport</a></li><li><a href="/culture">Culture</a></li></ul></nav></header>
<div class="ad">Advertisement</div><main><article><h1>{title}</h1><p class="byline">{author}</p>{body}
<div class="share">Share on Facebook | Share on Twitter | Email</div></article>
<aside><h3>Related stories</h3><ul>{related}</ul></aside>
<section class="comments"><h3>12 comments</h3>{comments}</section></main>
<footer><div class="newsletter">Subscribe to our Newsletter</div>© 2024 {site}. All rights reserved.</footer></body></html>""",
    """<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"><title>{title} | {site}</title>
<meta name="date" content="{date}"></head><body><div id="top"><div class="logo">{site}</div>
<div class="menu"><a href="/">Home</a> · <a href="/news">News</a> · <a href="/video">Video</a> · <a href="/login">Login</a></div></div>
<div class="ad-banner"><img src="/ad.gif" alt="Advertisement"></div>
<div id="content"><div class="story"><h2>{title}</h2><div class="meta">{author} · {date}</div>
<div class="story-body">{body}</div></div>
<div class="sidebar"><h4>Most read</h4><ol>{related}</ol><div class="ad">Advertisement</div></div></div>
<div id="comments"><h4>Leave a comment</h4>{comments}</div>
<div id="footer"><a href="/privacy">Privacy</a> <a href="/cookies">Cookies</a> © {site}</div></body></html>""",
    """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title></head><body>
<nav class="navbar"><a href="/">{site}</a><a href="/politics">Politics</a><a href="/economy">Economy</a></nav>
<div class="container"><section class="article-wrapper"><header><h1 class="headline">{title}</h1>
<time datetime="{date}">{date}</time></header><div class="article-text">{body}</div>
<div class="newsletter-box"><p>Get the Newsletter every morning.</p><form><input type="email"><button>Subscribe</button></form></div>
</section><section class="related"><h3>Related stories</h3>{related}</section>
<section class="comments">{comments}</section></div><footer>© 2024 {site} Media Group</footer></body></html>""",
]


@dataclass
class Page:
    path: Path
    lang: str
    paragraphs: list[str]
    copy_of: int | None  # index of the page this one republishes


def _story(rng: random.Random, lang: str) -> tuple[str, list[str]]:
    pool = SENTENCES[lang]
    sentences = [
        s.format(city=rng.choice(CITIES), name=rng.choice(NAMES), org=rng.choice(ORGS), day=rng.choice(DAYS),
                 n=rng.randint(2, 9000))
        for s in rng.sample(pool, k=min(len(pool), rng.randint(6, 9)))
    ]
    paragraphs, k = [], 0
    while k < len(sentences):
        step = rng.randint(1, 2)
        paragraphs.append(" ".join(sentences[k : k + step]))
        k += step
    title = sentences[0].split(",")[0][:80]
    return title, paragraphs


SCRIPT = "<script>" + "".join(
    f"window.__cfg{k}={{slot:'ad-{k}',sizes:[[300,250],[728,90]],lazy:true,targeting:{{section:'news',k:{k}}}}};\n"
    for k in range(120)
) + "</script>"
STYLE = "<style>" + "".join(
    f".c{k}{{margin:{k % 7}px;padding:{k % 5}px;color:#{k:06x}}}\n" for k in range(300)
) + "</style>"
MEGA_MENU = "<div class='mega-menu'>" + "".join(
    f"<a href='/section/{k}'>Section {k}</a>" for k in range(80)
) + "</div>"
FOOTER_LINKS = "<div class='footer-links'>" + "".join(
    f"<a href='/page/{k}'>Page {k}</a> " for k in range(60)
) + "</div>"


def _render(rng: random.Random, index: int, lang: str, title: str, paragraphs: list[str]) -> str:
    site = rng.choice(["Daily Planet", "Morning Courier", "Harian Kita", "Le Petit Journal", "Der Bote", "El Diario"])
    related = "".join(
        f'<li><a href="/story/{rng.randint(1, 10**6)}">Story headline number {rng.randint(1, 999)}</a></li>'
        for _ in range(5)
    )
    comments = "".join(
        f'<div class="comment"><b>user{rng.randint(1, 999)}</b> '
        f'I think this is {rng.choice(["great", "terrible", "fine"])}.</div>'
        for _ in range(rng.randint(0, 4))
    )
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    date = f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T0{rng.randint(0, 9)}:00:00Z"
    page = rng.choice(LAYOUTS).format(
        lang=lang, title=title, site=site, date=date, url=f"https://www.example.org/news/{index}",
        author=f"By {rng.choice(NAMES)}", body=body, related=related, comments=comments,
    )
    page = page.replace("</head>", STYLE + SCRIPT + "</head>", 1)
    return page.replace("<body>", "<body>" + MEGA_MENU, 1).replace("</body>", FOOTER_LINKS + "</body>", 1)


def generate(folder: Path, n_pages: int, seed: int = 7, copy_rate: float = 0.03) -> list[Page]:
    """Write ``n_pages`` pages; ``copy_rate`` of them republish an earlier story, lightly edited."""
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
        path.parent.mkdir(exist_ok=True)
        path.write_text(_render(rng, i, lang, title, paragraphs), encoding="utf-8")
        pages.append(Page(path, lang, paragraphs, copy_of))
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


def measure(folder: Path, pages: list[Page], jobs: int) -> dict:
    sampler = TreeRssSampler()
    sampler.start()
    stats = IngestStats()
    started = time.perf_counter()
    items = list(ingest_paths([folder], IngestOptions(jobs=jobs), stats=stats))
    elapsed = time.perf_counter() - started
    peak = sampler.stop()
    by_path = {item.path: item for item in items if isinstance(item, Article)}
    exact_dups = {item.source for item in items if isinstance(item, Rejection) and item.reason == "duplicate"}
    recovered = leaked = lang_ok = flagged_copies = false_flags = 0
    copies = sum(p.copy_of is not None for p in pages)
    for page in pages:
        article = by_path.get(str(page.path))
        if article is None:
            flagged_copies += page.copy_of is not None and str(page.path) in exact_dups
            continue
        text = " ".join(article.text.split())
        recovered += all(" ".join(p.split()) in text for p in page.paragraphs)
        leaked += any(marker in article.text for marker in BOILERPLATE_MARKERS)
        lang_ok += article.lang == page.lang
        if page.copy_of is not None:
            flagged_copies += article.duplicate_of is not None
        else:
            false_flags += article.duplicate_of is not None
    n = len(pages)
    return {
        "jobs": jobs,
        "seconds": elapsed,
        "pages_per_s": n / elapsed,
        "peak_tree_rss_mib": peak / 1024,
        "articles": f"{stats.articles}/{n}",
        "story_recovered": recovered / max(1, stats.articles),
        "boilerplate_leaked": leaked / max(1, stats.articles),
        "lang_accuracy": lang_ok / max(1, stats.articles),
        "near_dup_recall": f"{flagged_copies}/{copies}",  # marked duplicate_of, or rejected as an exact copy
        "near_dup_false_flags": false_flags,
        "summary": stats.summary_line(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    folder = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    try:
        started = time.perf_counter()
        pages = generate(folder, args.pages, seed=args.seed)
        size = sum(p.path.stat().st_size for p in pages)
        print(f"generated {len(pages)} pages ({size / 2**20:.1f} MiB) in {time.perf_counter() - started:.1f} s")
        for jobs in args.jobs:
            result = measure(folder, pages, jobs)
            print(
                f"jobs={jobs}: {result['pages_per_s']:.1f} pages/s ({result['seconds']:.1f} s), "
                f"peak RSS (tree) {result['peak_tree_rss_mib']:.0f} MiB, articles {result['articles']}, "
                f"story recovered {result['story_recovered']:.1%}, boilerplate leaked {result['boilerplate_leaked']:.1%}, "
                f"lang accuracy {result['lang_accuracy']:.1%}, near-dup recall {result['near_dup_recall']}, "
                f"false near-dup flags {result['near_dup_false_flags']}"
            )
            print(f"  {result['summary']}")
        self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        children_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(f"ru_maxrss: self {self_kib / 1024:.0f} MiB, reaped children {children_kib / 1024:.0f} MiB")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
