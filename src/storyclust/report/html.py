"""One self-contained HTML page of stories: a timeline, a table, and every story's articles.

The page needs nothing but itself: no CDN, no web font, no charting library. The timeline is inline
SVG drawn here on the server (one row per story: a band from its first to its last article, marks
coloured by language and sized by how many articles of that language fell in that stretch of time);
the table is a plain HTML table, so everything is readable with JavaScript off (each story's articles
sit in a ``<details>`` element, and a timeline row is a link to its table row). A little vanilla
JavaScript adds sorting (click a column header) and filtering (text, language, size, status).

Colours come from the Okabe-Ito palette, which stays distinguishable under the common colour-vision
deficiencies; language is never told by colour alone (every mark has a tooltip, every badge its code),
badge text is black or white, whichever contrasts more, and marks have a dark outline (WCAG 1.4.11).
"""
from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Optional
from urllib.parse import quote, urlsplit

from .. import __version__
from ..types import Story, StoryMember

#: Okabe & Ito (2008) colours, most distinct first; languages beyond these share OTHER_COLOUR.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#56B4E9", "#CC79A7", "#F0E442")
OTHER_COLOUR = "#999999"

#: Most stories drawn on the timeline (the largest ones); the table always lists them all.
TIMELINE_LIMIT = 1000

_LINK_SCHEMES = ("http", "https", "file")


def _esc(text: object) -> str:
    """``text`` escaped for an attribute value."""
    return html.escape(str(text), quote=True)


def _txt(text: object) -> str:
    """``text`` escaped for element content (quotes may stay as they are)."""
    return html.escape(str(text), quote=False)


def _luminance(colour: str) -> float:
    """WCAG relative luminance of ``#rrggbb``."""
    def channel(v: int) -> float:
        c = v / 255.0
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_ratio(a: str, b: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_colour_on(background: str) -> str:
    """Black or white, whichever contrasts more with ``background``."""
    return "#000000" if contrast_ratio(background, "#000000") >= contrast_ratio(background, "#ffffff") else "#ffffff"


@dataclass(frozen=True, slots=True)
class LanguageColours:
    """Which colour class (``c0``..``c6``, ``co`` for the rest) each language gets: most frequent first."""

    order: tuple[str, ...]  # languages by article count, most first
    counts: dict

    @classmethod
    def of(cls, stories: Sequence[Story]) -> "LanguageColours":
        counts = Counter(m.article.lang or "?" for s in stories for m in s.members)
        return cls(tuple(sorted(counts, key=lambda lang: (-counts[lang], lang))), dict(counts))

    def css_class(self, lang: Optional[str]) -> str:
        index = self.order.index(lang or "?") if (lang or "?") in self.order else len(PALETTE)
        return f"c{index}" if index < len(PALETTE) else "co"

    def css(self) -> str:
        rules = []
        for i, colour in enumerate((*PALETTE, OTHER_COLOUR)):
            name = f"c{i}" if i < len(PALETTE) else "co"
            rules.append(f".{name}{{fill:{colour};background:{colour};color:{text_colour_on(colour)}}}")
        return "".join(rules)


def _fmt_date(dt: Optional[datetime], *, with_time: bool = True) -> str:
    if dt is None:
        return ""
    dt = dt.astimezone(timezone.utc)
    return dt.strftime("%Y-%m-%d %H:%M") if with_time else dt.strftime("%Y-%m-%d")


def _time_cell(dt: Optional[datetime]) -> str:
    """A date cell: the text sorts as it reads (UTC, ``YYYY-MM-DD HH:MM``), so it needs no sort key."""
    if dt is None:
        return '<td data-v="">–</td>'
    return f"<td>{_fmt_date(dt)}</td>"


def _safe_href(url: Optional[str]) -> Optional[str]:
    """``url`` if it is an http(s) or file link (never ``javascript:`` and the like), else None."""
    if not url:
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url.strip() if scheme in _LINK_SCHEMES else None


def _story_dates(story: Story) -> list[datetime]:
    return sorted(m.article.published for m in story.members if m.article.published)


# -- the timeline ---------------------------------------------------------------------------------

_STEPS = [timedelta(hours=h) for h in (1, 3, 6, 12)] + [timedelta(days=d) for d in (1, 2, 7, 14)]


def _ticks(start: datetime, end: datetime, max_ticks: int = 9) -> tuple[list[datetime], str]:
    """Round tick dates between ``start`` and ``end`` and their strftime format."""
    span = end - start
    for step in _STEPS:
        if span / step <= max_ticks:
            if step < timedelta(days=1):
                first = start.replace(minute=0, second=0, microsecond=0)
                fmt = "%d %b %H:%M"
            else:
                first = start.replace(hour=0, minute=0, second=0, microsecond=0)
                fmt = "%Y-%m-%d"
            ticks, t = [], first
            while t <= end:
                if t >= start:
                    ticks.append(t)
                t += step
            return ticks, fmt
    months = max(1, math.ceil((span.days / 30.4) / max_ticks))
    ticks, year, month = [], start.year, start.month
    while True:
        t = datetime(year, month, 1, tzinfo=timezone.utc)
        if t > end:
            break
        if t >= start:
            ticks.append(t)
        month += months
        year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return ticks, "%b %Y"


def _timeline(stories: Sequence[Story], colours: LanguageColours, limit: int) -> str:
    dated = [(s, _story_dates(s)) for s in stories]
    dated = [(s, d) for s, d in dated if d]
    if not dated:
        return '<p class="note">No story has a dated article: nothing to draw on a timeline.</p>'
    shown = sorted(dated, key=lambda sd: (-sd[0].size, sd[1][0], sd[0].story_id))[:limit]
    shown.sort(key=lambda sd: (sd[1][0], sd[1][-1], sd[0].story_id))
    n = len(shown)
    row_h = 18 if n <= 40 else 12 if n <= 150 else 6
    label_w = 300 if row_h >= 12 else 0
    plot_w, top, pad = 880, 28, 8
    width = label_w + plot_w + 2 * pad + 36  # room for the last tick's label
    height = top + n * row_h + pad
    start = min(d[0] for _, d in shown)
    end = max(d[-1] for _, d in shown)
    if end - start < timedelta(hours=2):
        start, end = start - timedelta(hours=1), end + timedelta(hours=1)
    span = (end - start).total_seconds()
    x0 = label_w + pad
    x = lambda t: x0 + plot_w * (t - start).total_seconds() / span
    bin_s = max(3600.0, span / 240)  # articles of one language this close share a mark
    out = [
        f'<svg id="timeline-svg" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-labelledby="tl-title tl-desc" font-size="11">',
        f'<title id="tl-title">Timeline of {n} stories</title>',
        f'<desc id="tl-desc">One row per story, oldest first; a band from its first to its last article; '
        f'marks coloured by language, larger for more articles.</desc>',
        '<g class="axis">',
    ]
    ticks, fmt = _ticks(start, end)
    for t in ticks:
        xt = x(t)
        out.append(f'<line x1="{xt:.1f}" y1="{top - 4}" x2="{xt:.1f}" y2="{height - pad}"/>'
                   f'<text x="{xt:.1f}" y="{top - 8}" text-anchor="middle">{_esc(t.strftime(fmt))}</text>')
    out.append("</g>")
    r_max = max(3.0, row_h * 0.5)
    for i, (story, dates) in enumerate(shown):
        yc = top + i * row_h + row_h / 2
        headline = story.headline or story.story_id
        langs = ", ".join(story.languages) or "?"
        tip = f"{headline}: {story.size} article{'s' * (story.size != 1)} ({langs}), {_fmt_date(dates[0])}"
        if dates[-1] != dates[0]:
            tip += f" to {_fmt_date(dates[-1])}"
        out.append(f'<a class="row" href="#{_esc(quote(story.story_id, safe=""))}">'
                   f'<title>{_esc(tip)}</title>')
        if i % 2 == 0:
            out.append(f'<rect class="stripe" x="0" y="{yc - row_h / 2:.1f}" width="{width}" height="{row_h}"/>')
        if label_w:
            short = headline if len(headline) <= 46 else headline[:45].rstrip() + "…"
            out.append(f'<text x="{pad}" y="{yc + 4:.1f}">{_esc(short)}</text>')
        xa, xb = x(dates[0]), x(dates[-1])
        out.append(f'<rect class="band" x="{xa - 1:.1f}" y="{yc - row_h * 0.2:.1f}" width="{max(2.0, xb - xa + 2):.1f}" '
                   f'height="{row_h * 0.4:.1f}"/>')
        groups: dict[tuple[str, int], list[float]] = {}
        for m in story.members:
            if m.article.published:
                s = (m.article.published - start).total_seconds()
                groups.setdefault((m.article.lang or "?", int(s // bin_s)), []).append(s)
        for (lang, _), secs in sorted(groups.items()):
            count = len(secs)
            xm = x0 + plot_w * (sum(secs) / count) / span
            r = min(r_max, 1.6 + 1.4 * math.sqrt(count)) if row_h < 12 else min(r_max, 2.6 + 1.8 * math.sqrt(count))
            out.append(f'<circle class="{colours.css_class(lang)}" cx="{xm:.1f}" cy="{yc:.1f}" r="{r:.1f}"/>')
        out.append("</a>")
    out.append("</svg>")
    note = ""
    if len(dated) > n:
        note = (f'<p class="note">The timeline shows the {n:,} largest of {len(dated):,} dated stories; '
                f'the table below lists all of them.</p>')
    undated = len(stories) - len(dated)
    if undated:
        note += f'<p class="note">{undated:,} stor{"ies have" if undated != 1 else "y has"} no dated article ' \
                f'and {"are" if undated != 1 else "is"} only in the table.</p>'
    return "".join(out) + note


def _legend(colours: LanguageColours) -> str:
    items = []
    for i, lang in enumerate(colours.order[:len(PALETTE)]):
        items.append(f'<li><span class="sw c{i}" aria-hidden="true"></span>{_esc(lang)} '
                     f'<span class="n">({colours.counts[lang]:,})</span></li>')
    rest = colours.order[len(PALETTE):]
    if rest:
        n = sum(colours.counts[lang] for lang in rest)
        items.append(f'<li><span class="sw co" aria-hidden="true"></span>other: {_esc(", ".join(rest))} '
                     f'<span class="n">({n:,})</span></li>')
    return '<ul class="legend" aria-label="Languages (articles)">' + "".join(items) + "</ul>"


# -- the table -------------------------------------------------------------------------------------


def _member_item(m: StoryMember, colours: LanguageColours, targets: set[str]) -> str:
    """One article of a story, as compact as readable: the page holds tens of thousands of these."""
    a = m.article
    title = _txt(a.title or a.id or "(untitled)")
    href = _safe_href(a.url)
    link = f'<a href="{_esc(href)}">{title}</a>' if href else f"<span>{title}</span>"
    lang = a.lang or "?"
    bits = [link, f"<b class={colours.css_class(lang)}>{_esc(lang)}</b>"]
    if a.source:
        bits.append(f"<i>{_txt(a.source)}</i>")
    if a.published:
        bits.append(_fmt_date(a.published))
    bits.append(f"<s>{m.similarity:.2f}</s>")
    if a.duplicate_of:
        ref = _esc(a.duplicate_of)
        target = f'<a href="#a-{_esc(quote(a.duplicate_of, safe=""))}">{ref}</a>' if a.duplicate_of in targets else ref
        bits.append(f'<em>duplicate of {target}</em>')
    if m.joined_by and m.joined_by != "cluster":
        bits.append(f"<em>joined by {_esc(m.joined_by)}</em>")
    if not href and a.path:
        bits.append(f"<i>{_esc(a.path)}</i>")
    bits.append(f"<code>{_esc(a.id)}</code>")
    anchor = f' id="a-{_esc(a.id)}"' if a.id in targets else ""
    return f"<li{anchor}>" + " ".join(bits) + "</li>"


def _story_row(story: Story, colours: LanguageColours, targets: set[str]) -> str:
    dates = _story_dates(story)
    first, last = (dates[0], dates[-1]) if dates else (None, None)
    langs = story.languages
    headline = _txt(story.headline or story.story_id)
    members = sorted(story.members, key=lambda m: (m.article.published is None,
                                                   m.article.published or datetime.min.replace(tzinfo=timezone.utc),
                                                   m.article.id))
    items = "".join(_member_item(m, colours, targets) for m in members)
    badges = " ".join(f"<b class={colours.css_class(lang)}>{_esc(lang)}</b>" for lang in langs) or "–"
    status = story.status or ""
    extra = ""
    if story.merged_into:
        extra += f' <span class="how">merged into <a href="#{_esc(quote(story.merged_into, safe=""))}">' \
                 f'{_esc(story.merged_into)}</a></span>'
    if story.split_from:
        extra += f' <span class="how">split from <a href="#{_esc(quote(story.split_from, safe=""))}">' \
                 f'{_esc(story.split_from)}</a></span>'
    edited = sum(m.joined_by == "editor" for m in story.members)
    if edited:
        extra += f' <span class="how" data-corrected="{edited}">corrected by an editor ({edited} ' \
                 f'article{"s" if edited != 1 else ""} placed by a correction)</span>'
    return (
        f'<tr id="{_esc(story.story_id)}" data-langs="{_esc(" ".join(langs))}"'
        + (f' data-status="{_esc(status)}"' if status else "") + ">"
        f"<td><details><summary>{headline}</summary>"
        f'<code>{_esc(story.story_id)}</code>{extra}<ol>{items}</ol></details></td>'
        f'<td>{_txt(", ".join(story.labels)) or "–"}</td>'
        f"<td>{badges}</td><td>{story.size}</td>"
        f"{_time_cell(first)}{_time_cell(last)}"
        f'<td>{_esc(status) or "–"}</td></tr>'
    )


# -- the page ---------------------------------------------------------------------------------------

_CSS = """
:root{color-scheme:light;--ink:#1a1a1a;--muted:#555;--line:#d0d0d0;--stripe:#f4f4f4}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif;color:var(--ink);
background:#fff;margin:0 auto;padding:1rem 1.5rem 3rem;max-width:1400px}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin:1.6rem 0 .5rem}
.meta,.note,.n{color:var(--muted)}.note{font-size:.9rem}
.scroll{overflow-x:auto;border:1px solid var(--line)}
#timeline-svg{display:block;max-width:none}
#timeline-svg .axis line{stroke:#c8c8c8;stroke-width:1}#timeline-svg .axis text{fill:var(--muted)}
#timeline-svg .stripe{fill:var(--stripe)}#timeline-svg text{fill:var(--ink)}
#timeline-svg .band{fill:#b9b9b9}#timeline-svg circle{stroke:#1a1a1a;stroke-width:.8;fill-opacity:.92}
#timeline-svg a:hover .band,#timeline-svg a:focus .band{fill:#444}
#timeline-svg a:focus{outline:2px solid #000}
#timeline-svg .off{opacity:.12}
.legend{list-style:none;padding:0;margin:.4rem 0;display:flex;flex-wrap:wrap;gap:.3rem 1.1rem}
.sw{display:inline-block;width:.9em;height:.9em;border-radius:50%;border:1px solid #1a1a1a;
margin-right:.35em;vertical-align:-.1em}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;border-bottom:1px solid var(--line)}
thead th{position:sticky;top:0;background:#fff;border-bottom:2px solid var(--ink);white-space:nowrap}
th button{font:inherit;font-weight:bold;border:0;background:none;padding:0;cursor:pointer;color:inherit}
th button::after{content:" \\2195";color:var(--muted)}
th[aria-sort=ascending] button::after{content:" \\2191"}th[aria-sort=descending] button::after{content:" \\2193"}
td:nth-child(4){text-align:right}td:nth-child(5),td:nth-child(6){white-space:nowrap}
small{color:var(--muted);font-size:.9em}
tr:target{outline:3px solid #000;background:#fff8d6}
summary{cursor:pointer}
td b,li b{display:inline-block;padding:0 .35em;border-radius:.25em;font-size:.82em;font-weight:600;
border:1px solid #1a1a1a}
td ol{margin:.4rem 0 .2rem;padding-left:1.4rem}td li{margin:.15rem 0;color:var(--muted);font-size:.92em}
td li a,td li>span{font-size:1.08em}td li i,td li s,code,.how{color:var(--muted);font-style:normal;text-decoration:none}
td li s::before{content:"sim "}td li em{color:#8a3b00;font-style:normal}
details>code{display:block;margin:.2rem 0;font-size:.85em}
a{color:#0b57a4}a:visited{color:#5a2d91}
form.filters{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:end;margin:.5rem 0}
form.filters label{display:flex;flex-direction:column;font-size:.85rem;color:var(--muted)}
form.filters input,form.filters select{font:inherit;padding:.2rem .3rem}
#shown{margin-left:auto}
"""

_JS = r"""
(function(){
  var table=document.getElementById('story-table');if(!table)return;
  var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
  var text=rows.map(function(r){return r.textContent.toLowerCase();});
  var form=document.getElementById('filters');form.hidden=false;
  var q=document.getElementById('f-q'),lang=document.getElementById('f-lang'),
      size=document.getElementById('f-size'),status=document.getElementById('f-status'),
      shown=document.getElementById('shown');
  var marks={};Array.prototype.forEach.call(document.querySelectorAll('#timeline-svg .row'),function(a){
    marks[decodeURIComponent(a.getAttribute('href').slice(1))]=a;});
  function apply(){
    var words=q.value.toLowerCase().split(/\s+/).filter(Boolean),l=lang.value,
        min=parseInt(size.value||'1',10)||1,st=status?status.value:'',n=0;
    rows.forEach(function(r,i){
      var ok=words.every(function(w){return text[i].indexOf(w)>=0;})&&
        (!l||(' '+r.getAttribute('data-langs')+' ').indexOf(' '+l+' ')>=0)&&
        parseInt(r.cells[3].textContent,10)>=min&&(!st||r.getAttribute('data-status')===st);
      r.hidden=!ok;if(ok)n++;
      var m=marks[r.id];if(m)m.classList.toggle('off',!ok);
    });
    shown.textContent=n===rows.length?'All '+n+' stories':n+' of '+rows.length+' stories';
  }
  var timer;function later(){clearTimeout(timer);timer=setTimeout(apply,120);}
  q.addEventListener('input',later);[lang,size,status].forEach(function(e){if(e)e.addEventListener('change',apply);});
  size.addEventListener('input',later);
  var heads=table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads,function(th,col){
    var b=document.createElement('button');b.type='button';b.textContent=th.textContent;
    th.textContent='';th.appendChild(b);
    b.addEventListener('click',function(){
      var dir=th.getAttribute('aria-sort')==='ascending'?-1:1,num=th.hasAttribute('data-num');
      Array.prototype.forEach.call(heads,function(h){h.removeAttribute('aria-sort');});
      th.setAttribute('aria-sort',dir===1?'ascending':'descending');
      var keyed=rows.map(function(r,i){var c=r.cells[col],sm=c.querySelector('summary'),
          v=c.hasAttribute('data-v')?c.getAttribute('data-v'):(sm||c).textContent;
        return [num?parseFloat(v)||0:v.toLowerCase(),i,r];});
      keyed.sort(function(x,y){if(x[0]<y[0])return -dir;if(x[0]>y[0])return dir;return x[1]-y[1];});
      var frag=document.createDocumentFragment();keyed.forEach(function(k){frag.appendChild(k[2]);});
      body.appendChild(frag);
    });
  });
  function openTarget(){var id=decodeURIComponent(location.hash.slice(1));if(!id)return;
    var el=document.getElementById(id);if(!el)return;
    if(el.tagName==='TR'){el.hidden=false;var d=el.querySelector('details');if(d)d.open=true;}
    else{var p=el.closest('details');if(p)p.open=true;var tr=el.closest('tr');if(tr)tr.hidden=false;}}
  window.addEventListener('hashchange',openTarget);openTarget();apply();
  document.documentElement.setAttribute('data-ready','1');
})();
"""


def render_report(
    stories: Sequence[Story],
    *,
    title: str = "storyclust report",
    generated_at: Optional[datetime] = None,
    timeline_limit: int = TIMELINE_LIMIT,
    progress: Optional[Callable[[int, int], None]] = None,
) -> str:
    """The whole report page for ``stories``, as one HTML string (UTF-8, self-contained).

    The table lists every story, newest last article first (undated ones last); the timeline draws
    the ``timeline_limit`` largest dated stories, oldest first. ``generated_at`` (default: now, UTC)
    is printed in the header. ``progress(done, total)`` is called every few hundred stories while
    rendering, and once at the end.
    """
    generated_at = generated_at or datetime.now(timezone.utc)
    colours = LanguageColours.of(stories)
    total = len(stories)
    n_articles = sum(s.size for s in stories)
    all_dates = [d for s in stories for d in _story_dates(s)]
    targets = {m.article.duplicate_of for s in stories for m in s.members if m.article.duplicate_of}
    statuses = sorted({s.status for s in stories if s.status})

    def newest_first(s: Story):
        last = s.last_published
        return (last is None, -(last.timestamp()) if last else 0.0, s.story_id)

    rows = []
    for i, story in enumerate(sorted(stories, key=newest_first), 1):
        rows.append(_story_row(story, colours, targets))
        if progress is not None and i % 500 == 0:
            progress(i, total)
    multi = sum(1 for s in stories if s.size > 1)
    span = (f"articles from {_fmt_date(min(all_dates), with_time=False)} to "
            f"{_fmt_date(max(all_dates), with_time=False)}" if all_dates else "no dated articles")
    summary = (f"{total:,} stor{'ies' if total != 1 else 'y'} ({multi:,} with 2+ articles), {n_articles:,} articles "
               f"in {len(colours.order):,} language{'s' * (len(colours.order) != 1)}; {span}. "
               f"Generated {_fmt_date(generated_at)} UTC by storyclust {_esc(__version__)}.")
    lang_options = "".join(f'<option value="{_esc(lang)}">{_esc(lang)} ({colours.counts[lang]:,})</option>'
                           for lang in colours.order)
    status_filter = ""
    if statuses:
        status_filter = ('<label>Status<select id="f-status"><option value="">any</option>'
                         + "".join(f'<option value="{_esc(s)}">{_esc(s)}</option>' for s in statuses)
                         + "</select></label>")
    timeline = _timeline(stories, colours, timeline_limit) if stories else ""
    page = [
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta name="generator" content="storyclust {_esc(__version__)}">',
        f"<title>{_esc(title)}</title><style>{_CSS}{colours.css()}</style></head><body>",
        f'<header><h1>{_esc(title)}</h1><p class="meta" id="summary">{summary}</p></header><main>',
    ]
    if not stories:
        page.append('<p class="note">No stories.</p>')
    else:
        page += [
            '<section aria-labelledby="tl-h"><h2 id="tl-h">Timeline</h2>',
            _legend(colours),
            f'<div class="scroll" id="timeline">{timeline}</div></section>',
            '<section aria-labelledby="st-h"><h2 id="st-h">Stories</h2>',
            '<noscript><p class="note">Sorting and filtering need JavaScript; the table and every story\'s '
            'articles are readable without it.</p></noscript>',
            '<form id="filters" class="filters" hidden role="search" onsubmit="return false">',
            '<label>Search (headline, labels, articles)<input type="search" id="f-q" size="30"></label>',
            f'<label>Language<select id="f-lang"><option value="">any</option>{lang_options}</select></label>',
            '<label>At least<input type="number" id="f-size" min="1" value="1" style="width:5em"></label>',
            status_filter,
            '<output id="shown" aria-live="polite"></output></form>',
            '<div class="scroll"><table id="story-table"><caption class="note" style="text-align:left">'
            'One row per story, newest first. Open a headline for its articles: title (linked), language, '
            'source, date (UTC), similarity to the story centroid (sim), duplicate marks, id.</caption>',
            '<thead><tr><th scope="col">Story</th><th scope="col">Labels</th><th scope="col">Languages</th>'
            '<th scope="col" data-num>Articles</th><th scope="col">First published</th>'
            '<th scope="col">Last published</th><th scope="col">Status</th></tr></thead><tbody>',
            "".join(rows),
            "</tbody></table></div></section>",
        ]
    page.append(f"</main><script>{_JS}</script></body></html>\n")
    if progress is not None:
        progress(total, total)
    return "".join(page)
