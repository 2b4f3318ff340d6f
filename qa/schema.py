"""The small frozen records that flow between pipeline stages."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

Mode = Literal["hybrid", "dense", "bm25"]  # the retrieval modes, listed here only
MODES: tuple[str, ...] = get_args(Mode)


@dataclass(frozen=True)
class Block:
    """A kept run of content: ``text[start:end]`` of paragraph ``paragraph`` (1-based)."""

    start: int
    end: int
    paragraph: int
    heading: str = ""


@dataclass(frozen=True)
class Document:
    """One source document: its full decoded text and what cleaning found in it.

    ``blocks`` are the spans that hold content. Navigation, captions, photo credits,
    copyright blocks, metadata lines and garbled runs are left out and listed in
    ``dropped`` as (start, end, reason). ``pages`` holds the offset in ``text`` where each page
    of a paged source (PDF) begins (page 1 at ``pages[0]``, usually 0); ``()`` for formats without pages.
    """

    doc_id: str
    text: str
    title: str
    date: str | None = None
    source: str | None = None
    encoding: str = "utf-8"
    blocks: tuple[Block, ...] = ()
    dropped: tuple[tuple[int, int, str], ...] = ()
    pages: tuple[int, ...] = ()

    def page_at(self, offset: int) -> int | None:
        """The 1-based page holding ``text[offset]``, or None for a document without pages."""
        return max(1, bisect_right(self.pages, offset)) if self.pages else None

    @property
    def garbled(self) -> list[tuple[int, int]]:
        """Spans reported as garbled text (mojibake)."""
        return [(s, e) for s, e, why in self.dropped if why == "garbled"]


@dataclass(frozen=True)
class Passage:
    """A retrievable span: ``text == document.text[start:end]`` always holds."""

    id: str
    doc_id: str
    text: str
    start: int
    end: int
    title: str
    paragraph: int
    heading: str = ""
    page: int | None = None  # 1-based page of ``start`` in a paged document (PDF), else None

    def to_json(self) -> dict:
        """Plain dict for JSON lines."""
        return asdict(self)


@dataclass(frozen=True)
class Hit:
    """A passage returned by a search with its score (higher is better)."""

    passage: Passage
    score: float
    rank: int


@dataclass(frozen=True)
class Quote:
    """The answering sentence(s): ``passage.text[start:end]`` relative to the passage."""

    text: str
    start: int
    end: int
    page: int | None = None  # 1-based page of the quote's start in a paged document (PDF), else None


@dataclass(frozen=True)
class Answer:
    """What ``Pipeline.ask`` returns.

    ``quote`` is None when the pipeline abstains (nothing in the corpus answers);
    ``hits`` are the retrieved passages best first, whether or not it abstained.
    ``understood_as`` is the question as read with the earlier turns of a conversation, when that
    reading was kept (``qa.conversation``); None for a question answered as it stands.
    """

    question: str
    hits: tuple[Hit, ...]
    quote: Quote | None
    mode: str
    confidence: float = 0.0
    notice: str | None = None
    timings_ms: dict = field(default_factory=dict)
    understood_as: str | None = None

    @property
    def abstained(self) -> bool:
        """True when no passage was judged to answer the question."""
        return self.quote is None

    @property
    def best(self) -> Hit | None:
        """The top hit, or None for an empty index."""
        return self.hits[0] if self.hits else None

    def to_json(self) -> dict:
        """The ``ask --json`` object (see README)."""
        best = self.best
        answer = None
        if self.quote is not None and best is not None:
            answer = {
                "quote": self.quote.text,
                "passage_id": best.passage.id,
                "doc_id": best.passage.doc_id,
                "start": best.passage.start + self.quote.start,
                "end": best.passage.start + self.quote.end,
                "page": self.quote.page,
            }
        out: dict = {"question": self.question}
        if self.understood_as is not None:
            out["understood_as"] = self.understood_as
        out |= {
            "answer": answer,
            "passages": [
                {
                    "rank": h.rank,
                    "passage_id": h.passage.id,
                    "doc_id": h.passage.doc_id,
                    "title": h.passage.title,
                    "paragraph": h.passage.paragraph,
                    "page": h.passage.page,
                    "text": h.passage.text,
                    "start": h.passage.start,
                    "end": h.passage.end,
                    "score": round(float(h.score), 6),
                }
                for h in self.hits
            ],
        }
        if self.notice:
            out["notice"] = self.notice
        return out
