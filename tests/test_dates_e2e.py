"""Dated and undated articles in one run, with the real model and the real CLI.

A story told by two dated articles in languages that share no script (a French web page with its
publication date in the page's metadata, a Russian feed record with a ``published`` field, two days
apart) among undated plain-text wires on other subjects. Before the fix of the dated search
(cluster._exact_candidates), the undated rows broke the binary search over dates and the two dated
articles were never compared: two stories. They must be one story one-shot, in one ``--state``
night, and over two nights when the second copy arrives a night later.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_e2e import jsonl, storyclust
from test_incremental import CORPUS

pytestmark = pytest.mark.model

FRENCH_PAGE = """<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8">
<title>Incendie géant dans un entrepôt chimique du port de Rotterdam | Le Quotidien du Nord</title>
<meta property="og:title" content="Incendie géant dans un entrepôt chimique du port de Rotterdam">
<meta property="article:published_time" content="2026-03-14T09:30:00+01:00">
</head><body>
<nav><a href="/">Accueil</a> <a href="/monde">Monde</a> <a href="/economie">Économie</a></nav>
<article><h1>Incendie géant dans un entrepôt chimique du port de Rotterdam</h1>
<p>Un violent incendie s'est déclaré samedi matin dans un entrepôt de produits chimiques du port de
Rotterdam, aux Pays-Bas. Plus de 120 pompiers ont lutté pendant neuf heures contre les flammes, qui ont
dégagé un épais panache de fumée noire visible à des dizaines de kilomètres.</p>
<p>Trois employés ont été légèrement blessés. Les autorités ont demandé aux habitants des quartiers de
Pernis et de Hoogvliet de garder portes et fenêtres fermées. Le trafic des porte-conteneurs a été
suspendu pendant plusieurs heures dans le bassin concerné.</p>
<p>L'entrepôt, exploité par la société de logistique Vanderkade, stockait environ 4 000 tonnes de
solvants et de résines. Le parquet de Rotterdam a ouvert une enquête sur l'origine du feu.</p>
</article><footer>© Le Quotidien du Nord — Tous droits réservés</footer></body></html>
"""

RUSSIAN_RECORD = {
    "id": "ru-rotterdam-fire",
    "title": "Крупный пожар на химическом складе в порту Роттердама",
    "text": "В субботу утром на складе химической продукции в порту Роттердама вспыхнул сильный пожар. Более "
            "120 пожарных девять часов боролись с огнём, столб чёрного дыма был виден за десятки километров. "
            "Трое сотрудников получили лёгкие травмы. Жителей районов Пернис и Хогвлит попросили не открывать "
            "окна и двери, движение контейнеровозов в этой части порта было приостановлено на несколько часов. "
            "Склад логистической компании Vanderkade хранил около 4000 тонн растворителей и смол. Прокуратура "
            "Роттердама начала расследование причин пожара.",
    "lang": "ru",
    "published": "2026-03-16T07:00:00+03:00",
}


def write_distractors(folder: Path) -> int:
    """The test corpus's other stories as undated plain-text wires (title, blank line, body)."""
    folder.mkdir(parents=True, exist_ok=True)
    for _, _, aid, _, title, text in CORPUS:
        (folder / f"{aid}.txt").write_text(f"{title}\n\n{text}\n", encoding="utf-8")
    return len(CORPUS)


@pytest.fixture()
def folders(tmp_path):
    night1, night2 = tmp_path / "night1", tmp_path / "night2"
    write_distractors(night1 / "wires")
    (night1 / "web").mkdir()
    (night1 / "web" / "rotterdam-fire.html").write_text(FRENCH_PAGE, encoding="utf-8")
    night2.mkdir()
    (night2 / "feed.jsonl").write_text(json.dumps(RUSSIAN_RECORD, ensure_ascii=False) + "\n", encoding="utf-8")
    return night1, night2


def fire_stories(stories: list[dict]) -> set[str]:
    ids = {"ru-rotterdam-fire"}
    return {s["story_id"] for s in stories for a in s["articles"]
            if a["id"] in ids or (a.get("path") or "").endswith("rotterdam-fire.html")}


def test_two_dated_articles_among_undated_ones_are_one_story(folders, tmp_path):
    night1, night2 = folders
    articles = jsonl(storyclust("ingest", str(night1), str(night2)).stdout)
    dated = [a for a in articles if a.get("published")]
    assert len(articles) == len(CORPUS) + 2
    assert len(dated) == 2 and {a["lang"] for a in dated} == {"fr", "ru"}  # the rest are undated

    one_shot = storyclust("run", str(night1), str(night2))
    assert one_shot.returncode == 0, one_shot.stderr
    stories = jsonl(one_shot.stdout)
    assert len(fire_stories(stories)) == 1
    (fire,) = [s for s in stories if s["story_id"] in fire_stories(stories)]
    assert fire["size"] == 2

    state = tmp_path / "one-night.db"
    nightly = storyclust("run", str(night1), str(night2), "--state", str(state), "--now", "2026-03-16T23:00:00Z")
    assert nightly.returncode == 0, nightly.stderr
    assert fire_stories(jsonl(nightly.stdout)) == {fire["story_id"]}  # the one-shot story, under its ID

    state = tmp_path / "two-nights.db"
    first = storyclust("run", str(night1), "--state", str(state), "--now", "2026-03-14T23:00:00Z")
    second = storyclust("run", str(night2), "--state", str(state), "--now", "2026-03-16T23:00:00Z")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    changed = jsonl(second.stdout)
    assert len(fire_stories(changed)) == 1
    (story,) = [s for s in changed if s["story_id"] in fire_stories(changed)]
    assert story["status"] == "updated" and story["added"] == ["ru-rotterdam-fire"] and story["size"] == 2
