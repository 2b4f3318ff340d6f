"""Clean: find the content of a document without changing a character of it.

Each line (paragraph) is classified: navigation bar, repeated image caption, photo
credit, copyright or disclaimer block, metadata (date, source, byline), title,
heading, or content. Content lines become ``Block`` spans; garbled runs inside them
(mojibake) are cut out and reported. Offsets always index the original text.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache

from .schema import Block, Document
from .text import char_frequencies, opencc_converter

_SENT_END = "。！？!?；;…：:"
_DATE_RE = re.compile(r"((?:19|20)\d\d)[-/.年](\d{1,2})[-/.月](\d{1,2})日?")
_SOURCE_RE = re.compile(r"(?:来源|來源|source)\s*[:：]\s*(.+?)(?=\s*(?:编辑|編輯|责编|責編|作者|记者|記者)\s*[:：]|$)", re.I)
_META_WORDS = re.compile(r"来源|來源|编辑|編輯|责编|責編|作者|記者|记者|发布时间|發佈時間")
_CREDIT_RE = re.compile(r"供图|供圖|摄影|攝影|图片来源|圖片來源|图源|圖源|photo\s*(?:by|credit)|(?<!\w)摄(?!\w)|(?<!\w)攝(?!\w)", re.I)
_LEGAL_HEAD_RE = re.compile(r"版权|版權|免责|免責|声明|聲明|copyright|©|all rights reserved", re.I)
_LEGAL_BODY_RE = re.compile(r"版权|版權|授权|授權|转载|轉載|侵权|侵權|摘编|摘編|法律|声明|聲明|不代表|复制|複製|本网|本網|本站")
_CLAUSE_RE = re.compile(r"^\s*(?:\d{1,2}|[一二三四五六七八九十]{1,3})\s*[、.．)]")
_CAPTION_RE = re.compile(r"_fororder_|\.(?:jpe?g|png|gif|webp)\b|^\s*(?:图|圖|photo|figure)\s*\d*\s*[:：]", re.I)
_LABELS = {"导读", "導讀", "摘要", "提要", "编者按", "編者按"}


def _line_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line's non-blank content, skipping blank lines."""
    spans = []
    for m in re.finditer(r"[^\r\n]+", text):
        s, e = m.span()
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            spans.append((s, e))
    return spans


def is_navigation(line: str) -> bool:
    """A nav bar: several short items split by '|' or wide runs of spaces."""
    parts = [p for p in re.split(r"\s*[|｜]\s*|\s{3,}", line) if p.strip()]
    if len(parts) < 4:
        return False
    return sum(len(p) for p in parts) / len(parts) <= 8


def is_heading(line: str) -> bool:
    """A short line without sentence punctuation at its end (a title or section heading)."""
    bare = line.strip().lstrip("#").strip()
    return 0 < len(bare) <= 40 and bare[-1] not in _SENT_END + "，,、" and not _CLAUSE_RE.match(bare)


def parse_meta(line: str) -> tuple[str | None, str | None]:
    """(date, source) found in a metadata line such as '2022-04-12 17:28 来源:…'."""
    date = None
    m = _DATE_RE.search(line)
    if m:
        date = f"{m.group(1)}-{int(m.group(2)):02d}-{int(m.group(3)):02d}"
    src = _SOURCE_RE.search(line)
    source = src.group(1).strip() if src else None
    return date, source


def _is_meta(line: str) -> bool:
    """A byline: date or source with editor/author labels, not prose."""
    if len(line) > 120 or not _META_WORDS.search(line):
        return False
    stripped = _META_WORDS.sub("", line)
    return bool(_DATE_RE.search(line)) or len(stripped) < 40 and line[-1] not in "。！？"


def classify_lines(text: str, spans: list[tuple[int, int]], known: dict[int, str] | None = None) -> list[str]:
    """One label per line: content, heading, title, meta, navigation, caption, credit, legal, label.

    ``known`` maps a line's start offset to its label when the source format says what it is
    (a Word heading style, an HTML ``<h2>``, a table row): those lines are not guessed at.
    """
    known = known or {}
    lines = [text[s:e] for s, e in spans]
    counts = Counter(lines)
    labels: list[str] = []
    in_legal = False
    for (start, _), line in zip(spans, lines):
        if start in known:
            labels.append(known[start])
            continue
        bare = re.sub(r"\s+", "", line)
        if in_legal and (_CLAUSE_RE.match(line) or _LEGAL_BODY_RE.search(line)):
            labels.append("legal")
            continue
        in_legal = False
        if is_navigation(line):
            label = "navigation"
        elif _CAPTION_RE.search(line) or (counts[line] > 1 and len(line) <= 80):
            label = "caption"
        elif len(line) <= 40 and _CREDIT_RE.search(line):
            label = "credit"
        elif len(line) <= 60 and _LEGAL_HEAD_RE.search(line) and line[-1] not in "。！？":
            label, in_legal = "legal", True
        elif _is_meta(line):
            label = "meta"
        elif bare in _LABELS:
            label = "label"
        elif is_heading(line):
            label = "heading"
        else:
            label = "content"
        labels.append(label)
    # A heading with no content after it (before the next heading) is not a heading.
    for i, lab in enumerate(labels):
        if lab == "heading" and spans[i][0] not in known:
            nxt = next((x for x in labels[i + 1 :] if x in ("content", "heading")), None)
            if nxt != "content" and len(lines[i]) > 20:
                labels[i] = "content"
    return labels


def _script_is_traditional(text: str) -> bool:
    """True when folding to Simplified changes a noticeable share of the CJK characters."""
    t2s = opencc_converter("t2s")
    sample = "".join(c for c in text[:5000] if "\u4e00" <= c <= "\u9fff")
    if len(sample) < 20:
        return False
    changed = sum(a != b for a, b in zip(sample, t2s.convert(sample)))
    return changed / len(sample) > 0.05


@lru_cache(maxsize=65536)
def _cjk_class(ch: str, traditional: bool) -> int:
    """The odd-class of one CJK ideograph (cached: each distinct character is looked up once)."""

    t2s, s2t = opencc_converter("t2s"), opencc_converter("s2t")
    folded = t2s.convert(ch)
    f = char_frequencies().get(folded, 0)
    if f < 20:
        return 2
    if f < 200 or (traditional and folded == ch and s2t.convert(ch) != ch):
        return 1
    return 0


def _char_class(ch: str, prev: str, nxt: str, traditional: bool) -> int:
    """2 = strongly odd (rare or symbol), 1 = weakly odd, 0 = ordinary."""
    cp = ord(ch)
    if ch == "\ufffd" or 0xE000 <= cp <= 0xF8FF or 0x2460 <= cp <= 0x24FF:
        return 2
    if 0x3400 <= cp <= 0x9FFF:
        return _cjk_class(ch, traditional)
    if ch.isascii() and not ch.isspace() and not ch.isdigit():
        def cjk(c: str) -> bool:
            return not c.isascii() and not c.isspace()

        if ch in "?!@#$^&*=<>[]{}\\`|" or ch.isalpha():
            if (cjk(prev) or not prev.isalnum()) and (cjk(nxt) or not nxt.isalnum()):
                return 1
    return 0


def find_garbled(text: str, start: int, end: int, traditional: bool) -> list[tuple[int, int]]:
    """Spans in ``text[start:end]`` that look like mojibake.

    A run needs at least three different strongly odd characters (very rare CJK,
    enclosed numbers, replacement or private-use characters) no more than two apart
    (so a rare place name or a rule line of one repeated symbol is not flagged); it is
    then widened over adjacent weakly odd characters (rare CJK, Simplified-only
    characters inside Traditional text, stray ASCII letters or symbols).
    """
    segment = text[start:end]
    n = len(segment)
    cls = [  # CJK ideographs, most of any text, go straight to their cached class
        _cjk_class(c, traditional) if "\u3400" <= c <= "\u9fff"
        else _char_class(c, segment[i - 1] if i else " ", segment[i + 1] if i + 1 < n else " ", traditional)
        for i, c in enumerate(segment)
    ]
    strong = [i for i, c in enumerate(cls) if c == 2]
    runs: list[list[int]] = []
    for i in strong:
        if runs and i - runs[-1][-1] <= 3:
            runs[-1].append(i)
        else:
            runs.append([i])
    out = []
    for run in runs:
        if len({segment[i] for i in run}) < 3:
            continue
        s, e = run[0], run[-1] + 1
        while s > 0 and cls[s - 1] >= 1:
            s -= 1
        while e < n and cls[e] >= 1:
            e += 1
        out.append((start + s, start + e))
    return out


def clean_document(
    doc_id: str, text: str, encoding: str = "utf-8", fallback_title: str = "", title: str | None = None,
    known: dict[int, str] | None = None,
) -> Document:
    """Classify the lines of ``text`` (``known``: labels the source format gave) and return the cleaned ``Document``."""
    spans = _line_spans(text)
    labels = classify_lines(text, spans, known)
    traditional = _script_is_traditional(text)
    date = source = None
    dropped: list[tuple[int, int, str]] = []
    blocks: list[Block] = []
    heading = ""
    for number, ((s, e), label) in enumerate(zip(spans, labels), 1):
        line = text[s:e]
        if label == "meta":
            d, src = parse_meta(line)
            date, source = date or d, source or src
            dropped.append((s, e, "metadata"))
        elif label == "heading" and title is None and not blocks:
            title = line.strip().lstrip("#").strip()
            dropped.append((s, e, "title"))
        elif label in ("heading", "label"):
            heading = line.strip().lstrip("#").strip()
            dropped.append((s, e, label))
        elif label == "content":
            cursor = s
            for gs, ge in find_garbled(text, s, e, traditional):
                if gs > cursor:
                    blocks.append(Block(cursor, gs, number, heading))
                dropped.append((gs, ge, "garbled"))
                cursor = ge
            if e > cursor:
                blocks.append(Block(cursor, e, number, heading))
        else:
            dropped.append((s, e, label))
    return Document(
        doc_id=doc_id,
        text=text,
        title=title or fallback_title or doc_id,
        date=date,
        source=source,
        encoding=encoding,
        blocks=tuple(blocks),
        dropped=tuple(dropped),
    )
