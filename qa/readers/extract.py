"""What a reader returns, and the line handling the PDF and OCR readers share.

A reader turns a file's bytes into ``Extracted``: the text an index stores and quotes (one
paragraph a line), where each page begins in it, and the labels the format itself gives to some
lines (a heading style, a table row), which cleaning then takes as they are.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

Progress = Callable[[str, int, int], None]

_SENT_END = "。！？!?；;…：:.」』”)"
_BULLET_RE = re.compile(r"^\s*(?:[•·▪◦●■\-–*]|\(?\d{1,3}[.)、]|[一二三四五六七八九十]{1,3}、)\s*")


@dataclass
class Extracted:
    """A file's text as read: ``text`` (one paragraph a line), ``pages`` (offset where each page
    begins; empty without pages), ``known`` (line start offset -> label), metadata and warnings."""

    text: str
    kind: str
    pages: tuple[int, ...] = ()
    known: dict[int, str] = field(default_factory=dict)
    title: str | None = None
    date: str | None = None
    warnings: list[str] = field(default_factory=list)


class TextBuilder:
    """Collects paragraphs into one text, recording page starts and known line labels."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.pages: list[int] = []
        self.known: dict[int, str] = {}

    def line(self, text: str, label: str | None = None) -> None:
        """Add one paragraph as a line (whitespace runs collapsed, tabs kept as cell separators; blank ones dropped)."""
        text = "\t".join(c for c in (" ".join(cell.split()) for cell in text.split("\t")) if c)
        if not text:
            return
        start = self.length + (1 if self.parts else 0)
        self.parts.append(text)
        self.length = start + len(text)
        if label:
            self.known[start] = label

    def page(self) -> None:
        """Mark that the next line begins a new page."""
        self.pages.append(self.length + (1 if self.parts else 0))

    def build(self, kind: str, **meta) -> Extracted:
        """The ``Extracted`` of what was added."""
        text = "\n".join(self.parts)
        pages = tuple(min(p, len(text)) for p in self.pages)
        return Extracted(text, kind, pages, dict(self.known), **meta)


def is_wide(ch: str) -> bool:
    """A CJK (full-width) character: lines of these are joined without a space."""
    return unicodedata.east_asian_width(ch) in ("W", "F")


def width(line: str) -> int:
    """Display width of a line: two columns for each wide character."""
    return sum(2 if is_wide(c) else 1 for c in line)


def join_two(a: str, b: str) -> str:
    """Join a wrapped line to the next: no space where either side is CJK or a word was hyphenated."""
    if not a or not b:
        return a + b
    if is_wide(a[-1]) or is_wide(b[0]) or (a[-1] == "-" and len(a) > 1 and a[-2].isalpha()):
        return a + b
    return f"{a} {b}"


def join_wrapped(lines: list[str], full: float = 0.8) -> list[str]:
    """Paragraphs of a page's lines: a line wider than ``full`` of the page's widest runs on into the
    next; a shorter line, a blank line or a next line that starts a list item ends the paragraph."""
    lines = [" ".join(x.split()) for x in lines]
    widest = max((width(x) for x in lines), default=0)
    paragraphs: list[str] = []
    current = ""
    for i, line in enumerate(lines):
        if not line:
            if current:
                paragraphs.append(current)
            current = ""
            continue
        current = join_two(current, line) if current else line
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if width(line) < full * widest or not nxt or _BULLET_RE.match(nxt):
            paragraphs.append(current)
            current = ""
    if current:
        paragraphs.append(current)
    return paragraphs


def ends_sentence(paragraph: str) -> bool:
    """True when a paragraph ends with sentence punctuation (a page's last one that does not runs on)."""
    return bool(paragraph) and paragraph[-1] in _SENT_END
