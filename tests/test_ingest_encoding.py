"""Legacy encodings, byte-order marks and undecodable bytes, through the whole ingest path."""
from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from storyclust.ingest import IngestOptions, ingest_paths
from storyclust.ingest.decode import normalize_text
from storyclust.types import Article, Rejection

ONE_JOB = IngestOptions(jobs=1)

# (python codec, label for <meta charset>, language, title, paragraphs)
SAMPLES = [
    (
        "cp1252",
        "windows-1252",
        "fr",
        "Le président s’exprime à Genève",
        [
            "Le président a déclaré « nous sommes prêts » — l’économie française a progressé de 2 € par habitant cette année.",
            "Les négociations reprendront à Genève après l’été, a-t-il ajouté devant les journalistes réunis à l’Élysée.",
        ],
    ),
    (
        "latin-1",
        "iso-8859-1",
        "de",
        "Größere Brücke für München",
        [
            "Die Bürger in München und Köln diskutieren seit Wochen über die Größe der neuen Brücke über die Isar.",
            "Der Bürgermeister äußerte sich später zur Lage und kündigte eine öffentliche Anhörung für Anfang März an.",
        ],
    ),
    (
        "gb18030",
        "gb2312",
        "zh",
        "中国监管机构约谈科技公司",
        [
            "中国监管机构近日约谈了阿里巴巴、腾讯等十一家科技公司，讨论深度伪造技术在其内容平台上的使用问题。",
            "监管部门要求企业自行开展安全评估，并在上线具有舆论属性的新功能时向政府提交报告，以加强对行业的监管。业内人士表示，这一举措反映出监管部门对新技术风险的高度关注。",
        ],
    ),
    (
        "shift_jis",
        "shift_jis",
        "ja",
        "中国当局、ＩＴ企業を呼び出し",
        [
            "中国の規制当局は、アリババやテンセントなど国内のテクノロジー企業１１社を呼び出し、ディープフェイク技術の利用について協議した。",
            "当局は各社に対し、新しい機能を追加する際には自ら安全評価を行い、政府に報告書を提出するよう求めたという。",
        ],
    ),
    (
        "cp1256",
        "windows-1256",
        "ar",
        "الصين تستدعي شركات التكنولوجيا",
        [
            "استدعت الجهات التنظيمية الصينية مؤخرا إحدى عشرة شركة تكنولوجيا محلية بما في ذلك علي بابا وتينسنت لمناقشة استخدام تقنية التزييف العميق.",
            "وطلبت الجهات التنظيمية من الشركات إجراء تقييمات أمنية بنفسها وتقديم تقارير إلى الحكومة عند إضافة وظائف جديدة.",
        ],
    ),
]


def _page(title: str, paragraphs: list[str], meta: str) -> str:
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    return (
        f"<html><head>{meta}<title>{title}</title></head><body><nav><a href='/'>Home</a></nav>"
        f"<article><h1>{title}</h1>{body}</article><footer>(c) 2024</footer></body></html>"
    )


def _article(path: Path) -> Article:
    items = list(ingest_paths([path], ONE_JOB))
    assert len(items) == 1 and isinstance(items[0], Article), items
    return items[0]


@pytest.mark.parametrize("meta_style", ["charset", "http-equiv", "none"])
@pytest.mark.parametrize(("codec", "label", "lang", "title", "paragraphs"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_html_in_legacy_encodings(
    tmp_path: Path, codec: str, label: str, lang: str, title: str, paragraphs: list[str], meta_style: str
) -> None:
    meta = {
        "charset": f'<meta charset="{label}">',
        "http-equiv": f'<meta http-equiv="Content-Type" content="text/html; charset={label}">',
        "none": "",
    }[meta_style]
    path = tmp_path / "page.html"
    path.write_bytes(_page(title, paragraphs, meta).encode(codec))
    article = _article(path)
    assert article.title == title
    assert article.text == "\n".join(paragraphs)
    assert article.lang == lang


@pytest.mark.parametrize(("codec", "label", "lang", "title", "paragraphs"), SAMPLES, ids=[s[0] for s in SAMPLES])
def test_plain_text_in_legacy_encodings(
    tmp_path: Path, codec: str, label: str, lang: str, title: str, paragraphs: list[str]
) -> None:
    path = tmp_path / "wire.txt"
    path.write_bytes("\n".join([title, "", *paragraphs]).encode(codec))
    article = _article(path)
    assert article.title == title and article.text == "\n".join(paragraphs)


@pytest.mark.parametrize("bom_codec", ["utf-8-sig", "utf-16", "utf-32"])
def test_byte_order_marks(tmp_path: Path, bom_codec: str) -> None:
    _, _, _, title, paragraphs = SAMPLES[0]
    path = tmp_path / "bom.txt"
    path.write_bytes("\n".join([title, *paragraphs]).encode(bom_codec))
    assert path.read_bytes()[:2] in (codecs.BOM_UTF8[:2], codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
    article = _article(path)
    assert article.title == title and article.text == "\n".join(paragraphs)


def test_mislabelled_utf8_page_is_read_as_utf8(tmp_path: Path) -> None:
    _, _, _, title, paragraphs = SAMPLES[0]
    path = tmp_path / "mislabelled.html"
    path.write_bytes(_page(title, paragraphs, '<meta charset="iso-8859-1">').encode("utf-8"))
    assert _article(path).text == "\n".join(paragraphs)


def test_bytes_no_encoding_explains_are_a_decode_error(tmp_path: Path) -> None:
    path = tmp_path / "garbled.txt"
    path.write_bytes(b"Headline\n" + bytes(range(0x80, 0x100)) * 8)
    items = list(ingest_paths([path], ONE_JOB))
    assert len(items) == 1 and isinstance(items[0], Rejection) and items[0].reason == "decode_error"


def test_normalize_text() -> None:
    decomposed = "Cafe\u0301 \u00a0 du\tcoin\r\nligne\x07 deux\u200b\x00\n\n\n\nfin"
    assert normalize_text(decomposed) == "Café du coin\nligne deux\n\nfin"
