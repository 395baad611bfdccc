"""Bytes to clean Unicode: bounded reading, gzip streams, binary sniffing, charsets.

Everything here works on bytes that may be hostile: sizes are checked before
reading, compressed layers (gzip files, gzip or deflate ``Content-Encoding``
inside WARC records) are inflated chunk by chunk under a hard output limit
(so a decompression bomb costs at most ``limit`` bytes of memory), and text
comes out NFC-normalised without control characters.

Every regular expression here runs in time linear in its input (no nested or
adjacent ambiguous quantifiers); where a scan could restart at every position,
the text scanned is bounded (the first 8 KiB for sniffing).
"""
from __future__ import annotations

import codecs
import io
import re
import unicodedata
import zlib
from typing import BinaryIO, Iterator, Optional

from charset_normalizer import from_bytes

__all__ = [
    "InputError",
    "GzipReader",
    "is_gzip",
    "looks_binary",
    "looks_html",
    "looks_warc",
    "declared_html_charset",
    "meta_tags",
    "decode_bytes",
    "normalize_text",
    "normalize_markup",
]

_CHUNK = 64 * 1024
_SNIFF = 8 * 1024
_GZIP_MAGIC = b"\x1f\x8b"


class InputError(Exception):
    """A per-input problem that becomes a :class:`~storyclust.types.Rejection`.

    ``reason`` is one of :data:`storyclust.types.REJECT_REASONS`.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class GzipReader(io.RawIOBase):
    """A read-only stream that inflates (multi-member) gzip, or deflate, from ``raw`` lazily.

    The one inflater for every compressed layer (a ``.gz`` file, a gzip or
    deflate ``Content-Encoding`` inside a WARC record). Problems never raise
    mid-stream (that would lose the bytes already inflated inside a buffered
    reader): on corrupt or truncated input, or when more than ``limit`` bytes
    would come out (a decompression bomb), the stream simply ends and
    :attr:`error` holds an :class:`InputError` (``decompress_error``). Memory
    stays bounded by the chunk size whatever the compression ratio.

    ``deflate=True`` reads HTTP's ``deflate``: a zlib stream, or (as some servers
    send it) raw deflate data; one member only.
    """

    def __init__(self, raw: BinaryIO, limit: int, *, deflate: bool = False) -> None:
        super().__init__()
        self._raw = raw
        self._limit = limit
        self._produced = 0
        self._deflate = deflate
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""  # compressed bytes not yet fed to the inflater
        self._out = b""  # inflated bytes not yet handed out
        self._member_started = False
        self._finished = False
        self.error: Optional[InputError] = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._out and not self._finished:
            self._inflate_some(len(buffer))
        n = min(len(buffer), len(self._out))
        buffer[:n] = self._out[:n]
        self._out = self._out[n:]
        return n

    def _fail(self, detail: str) -> None:
        self.error = InputError("decompress_error", detail)
        self._finished = True
        self._out = b""

    def _inflate_some(self, want: int) -> None:
        if not self._pending:
            self._pending = self._raw.read(_CHUNK)
            if not self._pending:
                if self._member_started:
                    self._fail("truncated gzip stream")
                self._finished = True
                return
        if self._deflate and not self._member_started:
            # zlib header: CM = 8 and the 16-bit header a multiple of 31; else raw deflate.
            head = self._pending[:2]
            zlib_header = len(head) == 2 and head[0] & 0x0F == 8 and (head[0] << 8 | head[1]) % 31 == 0
            self._inflater = zlib.decompressobj(zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)
        budget = max(1, min(want, self._limit - self._produced + 1))
        try:
            out = self._inflater.decompress(self._pending, budget)
        except zlib.error as exc:
            self._fail(f"corrupt gzip stream: {exc}")
            return
        self._member_started = True
        self._pending = self._inflater.unconsumed_tail
        self._produced += len(out)
        if self._produced > self._limit:
            self._fail(f"decompressed data exceeds {self._limit} bytes (possible decompression bomb)")
            return
        self._out = out
        if self._inflater.eof:
            if self._deflate:
                self._finished = True
            else:
                self._next_member()

    def _next_member(self) -> None:
        rest = self._inflater.unused_data.lstrip(b"\x00")  # some writers pad members with NULs
        self._inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._member_started = False
        self._pending = rest


def is_gzip(head: bytes) -> bool:
    return head[:2] == _GZIP_MAGIC


# Bytes that never occur in text (C0 controls other than \t \n \f \r and ESC, plus DEL).
_BINARY_BYTES = bytes([*range(0, 8), 11, *range(14, 27), *range(28, 32), 127])
_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def looks_binary(data: bytes) -> bool:
    """True for data that is not text: NUL bytes or many control bytes in the first 8 KiB."""
    head = data[:_SNIFF]
    if not head or head.startswith(_BOMS):
        return False
    if b"\x00" in head:
        return True
    controls = len(head) - len(head.translate(None, _BINARY_BYTES))
    return controls / len(head) > 0.05


# The opening tag itself; what may precede it (an XML declaration, comments) is skipped by
# looks_html with str.find, never by a regex (``(?:<!--.*?-->\s*)*`` was exponential).
_HTML_TAG = re.compile(rb"<(?:!doctype\s+html|html|head|body|meta|title|article|div|p)[\s>/]", re.IGNORECASE)
_SPACE = b" \t\n\r\f\v"


def looks_html(data: bytes) -> bool:
    """True when the start of ``data`` is an HTML document (doctype or a common opening tag).

    Whitespace, an ``<?xml ...>`` declaration and any number of comments may come
    first. Linear in the first 8 KiB, the only part looked at.
    """
    head = data[:_SNIFF]
    for bom in _BOMS:
        if head.startswith(bom):
            head = head[len(bom):]
            break
    head = head.replace(b"\x00", b"")
    pos = len(head) - len(head.lstrip(_SPACE))
    if head.startswith(b"<?xml", pos):
        end = head.find(b">", pos)
        if end < 0:
            return False
        pos = _skip_space(head, end + 1)
    while head.startswith(b"<!--", pos):
        end = head.find(b"-->", pos + 4)
        if end < 0:
            return False
        pos = _skip_space(head, end + 3)
    return _HTML_TAG.match(head, pos) is not None


def _skip_space(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] in _SPACE:
        pos += 1
    return pos


def looks_warc(data: bytes) -> bool:
    return data[:8] in (b"WARC/1.0", b"WARC/1.1") or data[:7] == b"WARC/0."


_META_CHARSET = re.compile(r"""charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)
_HEADER_CHARSET = re.compile(r"""charset\s*=\s*["']?([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)
_META_OPEN = re.compile(r"<meta(?=[\s/>])", re.IGNORECASE)
#: One attribute: a name not preceded by another name character (so a scan never restarts
#: inside a name: linear), then an optional ``= value``, quoted or bare.
_ATTRIBUTE = re.compile(r"""(?<![^\s"'/])([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+)))?""")
#: Longest ``<meta ...>`` tag looked at; a longer one is no metadata a page means to state.
MAX_META_TAG = 4096


def meta_tags(html: str) -> Iterator[tuple[str, dict[str, str]]]:
    """``(tag text, {attribute name (lower case): value})`` for each ``<meta ...>`` tag of ``html``.

    A scanner, not one big regex: each tag is found with a literal search and its
    end with ``str.find``; a tag longer than :data:`MAX_META_TAG` is skipped. Linear
    in ``len(html)``: no position is scanned more than a bounded number of times.
    """
    pos = 0
    close = -1  # the first ">" at or after the current tag's start (found once, reused)
    while True:
        match = _META_OPEN.search(html, pos)
        if match is None:
            return
        start = match.end()
        if close < start:
            close = html.find(">", start)
            if close < 0:
                return  # no tag is ever closed after this point
        if close - start > MAX_META_TAG:
            pos = start
            continue
        tag = html[start:close]
        attrs: dict[str, str] = {}
        for attr in _ATTRIBUTE.finditer(tag):
            name = attr.group(1).lower()
            value = next((v for v in attr.groups()[1:] if v is not None), "")
            attrs.setdefault(name, value)
        yield tag, attrs
        pos = close + 1


def declared_html_charset(data: bytes) -> Optional[str]:
    """The charset named by ``<meta charset>`` or ``http-equiv`` in the first 8 KiB, if any."""
    head = data[:_SNIFF].decode("latin-1")  # byte for byte: only ASCII names are looked for
    for tag, _ in meta_tags(head):
        match = _META_CHARSET.search(tag)
        if match:
            return match.group(1)
    return None


def charset_from_content_type(value: Optional[str]) -> Optional[str]:
    """The ``charset=`` parameter of an HTTP Content-Type header value."""
    if not value:
        return None
    match = _HEADER_CHARSET.search(value)
    return match.group(1) if match else None


# What browsers (WHATWG Encoding Standard) actually use for these labels.
_LEGACY_ALIASES = {
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
    "iso8859-9": "cp1254",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
    "tis-620": "cp874",
    "iso8859-11": "cp874",
}
_SINGLE_BYTE_LATIN = {"cp1252", "iso8859-15", "cp1250", "iso8859-2"}


def _codec_name(label: Optional[str]) -> Optional[str]:
    """Python codec for a charset label, browser-style aliases applied; None if unknown."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().lower()).name
    except LookupError:
        return None
    return _LEGACY_ALIASES.get(name, name)


def _strip_bom(data: bytes) -> tuple[Optional[str], bytes]:
    for bom, codec in (
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if data.startswith(bom):
            return codec, data[len(bom):]
    return None, data


def _try_decode(data: bytes, codec: str) -> Optional[str]:
    try:
        return data.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


def _is_utf8_with_multibyte(data: bytes) -> bool:
    return not data.isascii() and _try_decode(data, "utf-8") is not None


def decode_bytes(data: bytes, declared: Optional[str] = None) -> str:
    """Decode ``data`` to a string (not yet normalised: see :func:`normalize_text`).

    Order: byte-order mark, then the ``declared`` charset (HTTP header or HTML
    meta), then UTF-8 if valid, then detection with charset-normalizer. A
    declared single-byte Latin charset loses to valid non-ASCII UTF-8, the
    commonest mislabelling on the web. Raises :class:`InputError`
    ``decode_error`` when no encoding explains the bytes.
    """
    bom_codec, body = _strip_bom(data)
    if bom_codec:
        text = _try_decode(body, bom_codec)
        if text is None:
            raise InputError("decode_error", f"invalid {bom_codec} after its byte-order mark")
        return text
    codec = _codec_name(declared)
    if codec and not (codec in _SINGLE_BYTE_LATIN and _is_utf8_with_multibyte(data)):
        text = _try_decode(data, codec)
        if text is not None:
            return text
    text = _try_decode(data, "utf-8")
    if text is not None:
        return text
    return _detect(data)


# Tie-breaker among equally plausible detections: the encodings news pages actually use.
# (charset-normalizer scores cp1250/cp1257 the same as cp1252 on most Western text.)
_COMMON = ("cp1252", "gb18030", "cp932", "euc_jp", "big5", "cp949", "cp1251", "koi8_r", "cp1256",
           "cp1253", "cp1254", "cp1255", "cp874", "iso8859_15", "cp1250", "iso8859_2")


def _rank(candidates: list[str]) -> int:
    ranks = [_COMMON.index(c) for c in candidates if c in _COMMON]
    return min(ranks) if ranks else len(_COMMON)


def _detect(data: bytes) -> str:
    """Decode with charset-normalizer: least chaos, most coherence, then the commonest encoding."""
    matches = [m for m in from_bytes(data) if m.encoding]
    if not matches:
        raise InputError("decode_error", "invalid UTF-8 and no other encoding explains the bytes")
    best = min(matches, key=lambda m: (round(m.chaos, 3), -round(m.coherence, 3), _rank(m.could_be_from_charset)))
    codec = next((c for c in _COMMON if c in best.could_be_from_charset), best.encoding)
    text = _try_decode(data, codec)
    return text if text is not None else str(best)


# C0/C1 controls except \t and \n, plus BOM/zero-width no-break space and zero-width space.
_CONTROL_CHARS = "\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff\u200b"
_CONTROL = re.compile(f"[{_CONTROL_CHARS}]")
_HSPACE = re.compile(r"[ \t\u00a0\u2009\u202f\u3000]+")
_BLANKS = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def normalize_text(text: str) -> str:
    """NFC, Unix newlines, no control characters, single plain spaces, at most one blank line in a row."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    text = _HSPACE.sub(" ", text)
    text = _BLANKS.sub("\n\n", text)
    return "\n".join(line.strip() for line in text.split("\n")).strip()


def normalize_markup(html: str) -> str:
    """What :func:`normalize_text` does that matters before parsing HTML: NFC, Unix
    newlines, no control characters (nor U+FFFE/U+FFFF, which XML forbids).

    Spaces and blank lines are left alone: markup whitespace is collapsed by the parser
    and trafilatura anyway, and the extracted text goes through :func:`normalize_text`.
    Collapsing them in a 100-300 KB page took ~2.5 ms, more than parsing it.
    """
    if "\r" in html or "\f" in html:
        html = html.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    html = unicodedata.normalize("NFC", html)
    return _MARKUP_CONTROL.sub("", html)


#: :data:`_CONTROL` plus the two characters XML forbids that it lacks: with them gone, the
#: markup needs no other clean-up before libxml2 (trafilatura's loader scans for exactly these).
_MARKUP_CONTROL = re.compile(f"[{_CONTROL_CHARS}\ufffe\uffff]")

