"""Split: cut cleaned documents into sentence-aligned passages with exact offsets."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from .config import SplitConfig
from .schema import Document, Passage

# A sentence ends at Chinese or ASCII terminal punctuation (closing quotes and
# brackets stay with it), at an ASCII full stop before a space, or at a newline.
_SENTENCE_END = re.compile(
    r"(?:[。！？!?；;…]+|\.(?=\s|$))[”’」』）)\]\"'》]*|\n+"
)
_CLAUSE_END = re.compile(r"[，,、：:]")


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """(start, end) of each sentence in ``text[start:end]``, whitespace trimmed."""
    end = len(text) if end is None else end
    spans = []
    cursor = start
    for m in _SENTENCE_END.finditer(text, start, end):
        spans.append((cursor, m.end()))
        cursor = m.end()
    if cursor < end:
        spans.append((cursor, end))
    out = []
    for s, e in spans:
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            out.append((s, e))
    return out


def quote_spans(text: str) -> list[tuple[int, int]]:
    """The sentences a passage is quoted and embedded by: ``sentence_spans``, or the whole text as one."""
    return sentence_spans(text) or [(0, len(text))]


def _cut_long(text: str, s: int, e: int, limit: int) -> Iterator[tuple[int, int]]:
    """Cut one over-long sentence at clause punctuation (or hard) into pieces <= limit."""
    while e - s > limit:
        window = text[s : s + limit]
        cut = max((m.end() for m in _CLAUSE_END.finditer(window)), default=0)
        if cut < max(1, limit // 3):
            cut = limit
        yield s, s + cut
        s += cut
    if e > s:
        yield s, e


def _units(doc: Document, max_chars: int) -> list[tuple[int, int, int]]:
    """Sentence units (start, end, block index), long sentences cut to fit."""
    units = []
    for bi, block in enumerate(doc.blocks):
        for s, e in sentence_spans(doc.text, block.start, block.end):
            units.extend((a, b, bi) for a, b in _cut_long(doc.text, s, e, max_chars))
    return units


def _touching(doc: Document, a: int, b: int) -> bool:
    """True when blocks a and b are separated only by whitespace and share a heading."""
    x, y = doc.blocks[a], doc.blocks[b]
    return x.heading == y.heading and not doc.text[x.end : y.start].strip()


def split_document(doc: Document, config: SplitConfig = SplitConfig()) -> list[Passage]:
    """Pack a document's sentences into passages; ``p.text == doc.text[p.start:p.end]``."""
    units = _units(doc, config.max_chars)
    groups: list[list[tuple[int, int, int]]] = []
    current: list[tuple[int, int, int]] = []
    for unit in units:
        if current:
            first, last = current[0], current[-1]
            same_block = unit[2] == last[2]
            joinable = same_block or (
                _touching(doc, last[2], unit[2]) and last[1] - first[0] < config.min_chars
            )
            if not joinable or unit[1] - first[0] > config.max_chars:
                groups.append(current)
                tail = current[-1]
                overlap = (
                    same_block
                    and len(current) > 1
                    and tail[1] - tail[0] <= config.overlap_chars
                    and unit[1] - tail[0] <= config.max_chars
                )
                current = [tail] if overlap else []
        current.append(unit)
    if current:
        groups.append(current)
    passages = []
    for n, group in enumerate(groups):
        s, e, bi = group[0][0], group[-1][1], group[0][2]
        block = doc.blocks[bi]
        passages.append(
            Passage(
                id=f"{doc.doc_id}#{n}",
                doc_id=doc.doc_id,
                text=doc.text[s:e],
                start=s,
                end=e,
                title=doc.title,
                paragraph=block.paragraph,
                heading=block.heading,
                page=doc.page_at(s),
            )
        )
    return passages


def split_documents(docs: Iterable[Document], config: SplitConfig = SplitConfig()) -> list[Passage]:
    """Split every document, in order."""
    return [p for doc in docs for p in split_document(doc, config)]
