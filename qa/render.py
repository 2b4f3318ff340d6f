"""Render: answers, citations and documents as safe HTML for the chat app.

Every piece of document text, title, file name and question goes through
:func:`esc` before any markup is added. ``esc`` HTML-escapes the text and also
turns the characters Markdown, LaTeX and template engines give meaning to into
numeric entities, so the output stays inert text whether or not a renderer
interprets Markdown. The app renders these strings with Markdown off and
Gradio's HTML sanitizer on; the escaping does not rely on either.

All offsets are character offsets into ``Document.text`` (absolute) or into
``Passage.text`` (relative), exactly as the pipeline reports them.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from .schema import Answer, Document, Hit, Passage

# Characters with a meaning in Markdown / KaTeX / Handlebars / JS templates, as entities.
_MD_ENTITIES = {c: f"&#{ord(c)};" for c in "\\`*_{}[]()#!|~$<>"}
_MD_TABLE = str.maketrans({**_MD_ENTITIES, "&": "&amp;", '"': "&quot;", "'": "&#x27;"})

SNIPPET_CHARS = 90
RELATED_SHOWN = 3
LABEL_TITLE_CHARS = 18
PAGE_STYLE = ("display:block;margin:0.8em 0 0.3em;color:#888;font-size:0.8em;border-top:1px dashed #bbb;"
              "user-select:none")  # the page marker of a PDF in the document panel

# Reasons Document.dropped uses for structure (shown bold) rather than clutter (shown grey).
_STRUCTURE = {"title", "heading", "label"}

REASONS_ZH = {
    "title": "標題 title",
    "heading": "小標題 heading",
    "label": "標籤 label",
    "metadata": "資訊行 byline",
    "navigation": "導覽列 navigation",
    "caption": "圖說 caption",
    "credit": "圖片來源 photo credit",
    "legal": "版權聲明 copyright",
    "garbled": "亂碼 garbled text",
}

MODE_LABELS = {"hybrid": "混合 hybrid", "dense": "語義 dense", "bm25": "關鍵詞 BM25"}


def esc(text: str, br: bool = False) -> str:
    """Escape ``text`` for HTML and neutralise Markdown syntax; ``br`` turns newlines into <br>."""
    out = str(text).translate(_MD_TABLE)
    if br:
        out = out.replace("\r\n", "\n").replace("\n", "<br>")
    return out


def _attr(text: str) -> str:
    """Escape text for a double-quoted attribute value."""
    return html.escape(str(text), quote=True)


@dataclass(frozen=True)
class Span:
    """A styled range ``[start, end)`` of a text: ``tag`` with ``cls`` (and a tooltip)."""

    start: int
    end: int
    tag: str = "span"
    cls: str = ""
    title: str = ""


def highlight(text: str, spans: Iterable[Span], br: bool = True) -> str:
    """``text`` escaped, with each span wrapped in its tag; spans may nest or overlap.

    Each cut between boundaries is wrapped in the spans that cover it (earlier
    spans outside later ones), so the markup is always well nested.
    """
    n = len(text)
    spans = [Span(max(0, s.start), min(n, s.end), s.tag, s.cls, s.title) for s in spans]
    spans = [s for s in spans if s.start < s.end]
    cuts = sorted({0, n, *(s.start for s in spans), *(s.end for s in spans)})
    out = []
    for a, b in zip(cuts, cuts[1:]):
        piece = esc(text[a:b], br=br)
        for s in reversed([s for s in spans if s.start <= a and b <= s.end]):
            cls = f' class="{_attr(s.cls)}"' if s.cls else ""
            tip = f' title="{_attr(s.title)}"' if s.title else ""
            piece = f"<{s.tag}{cls}{tip}>{piece}</{s.tag}>"
        out.append(piece)
    return "".join(out)


# ---- citations -----------------------------------------------------------------


def quote_span(answer: Answer) -> tuple[int, int] | None:
    """The quote's absolute (start, end) in its document, or None when it abstained."""
    if answer.quote is None or answer.best is None:
        return None
    p = answer.best.passage
    return p.start + answer.quote.start, p.start + answer.quote.end


def citation(passage: Passage, document: Document | None = None, span: tuple[int, int] | None = None) -> str:
    """One line naming the source: title, file name, paragraph and character span.

    ``span`` defaults to the passage's own; give the quote's absolute span to cite
    the answering sentence exactly.
    """
    title = (document.title if document is not None else "") or passage.title or passage.doc_id
    start, end = span if span is not None else (passage.start, passage.end)
    page = document.page_at(start) if document is not None and document.pages else passage.page
    parts = [
        f'<span class="qa-cite-title">《{esc(title)}》</span>',
        f'<span class="qa-cite-file">{esc(passage.doc_id)}</span>',
        *([f'<span class="qa-cite-page">第 {page} 頁 / p. {page}</span>'] if page is not None else []),
        f'<span class="qa-cite-para">第 {passage.paragraph} 段 / ¶{passage.paragraph}</span>',
        f'<span class="qa-cite-span">字元 chars {start}–{end}</span>',
    ]
    if document is not None and document.date:
        parts.append(f'<span class="qa-cite-date">{esc(document.date)}</span>')
    return '<div class="qa-cite">' + " · ".join(parts) + "</div>"


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The start of a passage on one line, cut at ``limit`` characters with an ellipsis."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit].rstrip() + "…"


def _hit_item(hit: Hit, doc: Document | None) -> str:
    """One <li> of a sources list: score, snippet, citation."""
    return (
        f'<li class="qa-source"><span class="qa-score" title="score">{hit.score:.3f}</span> '
        f'<span class="qa-snippet">{esc(snippet(hit.passage.text))}</span>'
        f"{citation(hit.passage, doc)}</li>"
    )


def _lookup(documents: Callable[[str], Document] | None, doc_id: str) -> Document | None:
    if documents is None:
        return None
    try:
        return documents(doc_id)
    except Exception:  # noqa: BLE001 - a missing document only loses the title and date
        return None


def _sources(hits: Sequence[Hit], documents, label: str, open_: bool = False) -> str:
    if not hits:
        return ""
    items = "".join(_hit_item(h, _lookup(documents, h.passage.doc_id)) for h in hits)
    return (
        f'<details class="qa-sources"{" open" if open_ else ""}><summary>{label} ({len(hits)})</summary>'
        f'<ol class="qa-source-list" start="{hits[0].rank}">{items}</ol></details>'
    )


def _footer(answer: Answer) -> str:
    total = sum(float(v) for v in (answer.timings_ms or {}).values())
    mode = MODE_LABELS.get(answer.mode, answer.mode)
    return (
        f'<div class="qa-meta">{esc(mode)} · k={len(answer.hits)} · '
        f"信心 confidence {answer.confidence:.2f} · {total:.0f} ms</div>"
    )


def render_notice(notice: str | None, understood_as: str | None = None) -> str:
    """The pipeline's notice (e.g. question truncated) as a note, and how a follow-up was read; or ''."""
    out = f'<div class="qa-notice">注意 / Note: {esc(notice)}</div>' if notice else ""
    if understood_as:
        out += f'<div class="qa-notice qa-understood">理解为 / Understood as: {esc(understood_as)}</div>'
    return out


def _data(shown: dict | None) -> str:
    """``shown`` (what a reply showed, ``qa.feedback.shown``) as a ``data-shown`` attribute, or ''."""
    return f' data-shown="{esc(json.dumps(shown, ensure_ascii=False))}"' if shown is not None else ""


def render_answer(answer: Answer, documents: Callable[[str], Document] | None = None, shown: dict | None = None) -> str:
    """The assistant reply for one answer: quote in its passage, citation, other sources.

    ``documents`` (e.g. ``pipeline.document``) supplies titles and dates for citations; ``shown`` is kept
    in the reply (``reply_shown``), for its feedback and the Markdown transcript.
    """
    if answer.abstained or answer.best is None:
        return render_abstain(answer, documents, shown)
    best = answer.best
    doc = _lookup(documents, best.passage.doc_id)
    q = answer.quote
    body = highlight(best.passage.text, [Span(q.start, q.end, "mark", "qa-hl")])
    return (
        f'<div class="qa-reply qa-answer"{_data(shown)}>'
        + render_notice(answer.notice, answer.understood_as)
        + '<div class="qa-label">答案出處 / Answer from the documents</div>'
        + f'<blockquote class="qa-passage">{body}</blockquote>'
        + citation(best.passage, doc, quote_span(answer))
        + _sources(answer.hits[1:], documents, "來源 / Sources")
        + _footer(answer)
        + "</div>"
    )


def render_abstain(answer: Answer, documents: Callable[[str], Document] | None = None, shown: dict | None = None) -> str:
    """The reply when nothing answers: a plain not-found line and the closest passages (``shown`` as in
    ``render_answer``)."""
    near, rest = answer.hits[:RELATED_SHOWN], answer.hits[RELATED_SHOWN:]
    related = ""
    if near:
        items = "".join(_hit_item(h, _lookup(documents, h.passage.doc_id)) for h in near)
        related = (
            '<div class="qa-label">可能相關 / Possibly related</div>'
            f'<ol class="qa-source-list qa-related">{items}</ol>'
            + _sources(rest, documents, "其他來源 / More sources")
        )
    return (
        f'<div class="qa-reply qa-abstain"{_data(shown)}>'
        + render_notice(answer.notice, answer.understood_as)
        + '<p class="qa-none"><strong>文件中沒有找到答案。</strong> '
        "Not found in the documents.</p>"
        + related
        + _footer(answer)
        + "</div>"
    )


def render_question(question: str) -> str:
    """The user's message, escaped (it is shown as HTML with Markdown off); ``data-q`` keeps the question
    as typed, for ``asked_questions``."""
    return f'<div class="qa-q" data-q="{esc(question)}">{esc(question, br=True)}</div>'


_ASKED = re.compile(r'^<div class="qa-q" data-q="([^"]*)">')
_SHOWN = re.compile(r'^<div class="qa-reply qa-(?:answer|abstain)" data-shown="([^"]*)">')


def message_html(message: object) -> str:
    """The HTML of a chat message (a Gradio message dict), '' when it has none."""
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):  # Gradio may send content back as parts: [{"type": "text", "text": ...}]
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def asked_question(message: object) -> str | None:
    """The question of a user message ``render_question`` made, as typed; None for any other message."""
    m = _ASKED.match(message_html(message)) if isinstance(message, dict) and message.get("role") == "user" else None
    return html.unescape(m.group(1)) if m else None


def asked_questions(history: list) -> list[str]:
    """The questions of a chat history (Gradio messages whose content ``render_question`` made), oldest first."""
    return [q for q in map(asked_question, history) if q is not None]


def reply_shown(message: object) -> dict | None:
    """What an answer reply showed (the ``shown`` given to ``render_answer``), None for any other message."""
    m = _SHOWN.match(message_html(message))
    try:
        data = json.loads(html.unescape(m.group(1))) if m else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def render_message(text: str, kind: str = "info") -> str:
    """A short system-style reply: ``kind`` is 'info' (e.g. empty question) or 'error'."""
    return f'<div class="qa-reply qa-{_attr(kind)}">{esc(text, br=True)}</div>'


# ---- the document panel ----------------------------------------------------------


def render_document(
    doc: Document,
    passage: tuple[int, int] | None = None,
    quote: tuple[int, int] | None = None,
    heading: str = "",
) -> str:
    """A whole document with the cited passage and quote highlighted in place.

    ``passage`` and ``quote`` are absolute (start, end) spans of ``doc.text``.
    Spans cleaning left out are shown grey (clutter) or bold (titles, headings).
    """
    spans = []
    for s, e, why in doc.dropped:
        label = REASONS_ZH.get(why, why)
        if why in _STRUCTURE:
            spans.append(Span(s, e, "span", "qa-struct", f"{label}"))
        else:
            spans.append(Span(s, e, "span", "qa-dropped", f"清理時略去 left out: {label}"))
    if passage is not None:
        spans.append(Span(passage[0], passage[1], "span", "qa-cited", "引用段落 cited passage"))
    if quote is not None:
        spans.append(Span(quote[0], quote[1], "mark", "qa-hl", "答句 answering sentence"))
    meta = [f'<span class="qa-cite-file">{esc(doc.doc_id)}</span>']
    if doc.date:
        meta.append(esc(doc.date))
    if doc.source:
        meta.append(f"來源 source: {esc(doc.source)}")
    meta.append(f"{len(doc.text)} 字元 chars")
    if passage is not None:
        meta.append(f"引用 cited {passage[0]}–{passage[1]}")
    legend = (
        '<div class="qa-legend">'
        + ('<mark class="qa-hl">答句 answer</mark> ' if quote is not None else "")
        + ('<span class="qa-cited">引用段落 cited passage</span> ' if passage is not None else "")
        + '<span class="qa-dropped">清理時略去 left out when cleaning</span></div>'
    )
    head = f'<div class="qa-doc-heading">{esc(heading)}</div>' if heading else ""
    return (
        '<div class="qa-doc">'
        + head
        + f'<div class="qa-doc-title">{esc(doc.title or doc.doc_id)}</div>'
        + '<div class="qa-doc-meta">'
        + " · ".join(meta)
        + "</div>"
        + legend
        + f'<div class="qa-doc-body">{_paged(doc, spans)}</div>'
        + "</div>"
    )


def _paged(doc: Document, spans: list[Span]) -> str:
    """``highlight`` of the document's text with a page marker where each page begins (a PDF's);
    the markers sit between characters, so the highlighted text is the stored text unchanged."""
    if not doc.pages:
        return highlight(doc.text, spans)
    bounds = [0, *doc.pages[1:], len(doc.text)]
    out = []
    for number, (a, b) in enumerate(zip(bounds, bounds[1:]), 1):
        cut = [Span(x.start - a, x.end - a, x.tag, x.cls, x.title) for x in spans if x.start < b and x.end > a]
        out.append(f'<span class="qa-page" data-page="{number}" style="{PAGE_STYLE}">第 {number} 頁 · page {number}</span>'
                   + highlight(doc.text[a:b], cut))
    return "".join(out)


def render_document_placeholder() -> str:
    """What the document panel shows before the first question."""
    return (
        '<div class="qa-doc qa-doc-empty">提問後，這裡會顯示引用的原文，答句以黃色標示。<br>'
        "Ask a question: the cited document appears here with the answer highlighted.</div>"
    )


# ---- picking which retrieved passage to view ----------------------------------


def source_refs(answer: Answer) -> list[dict]:
    """JSON-able records of the retrieved passages, to keep in the session for the panel."""
    qspan = quote_span(answer)
    refs = []
    for h in answer.hits:
        p = h.passage
        refs.append(
            {
                "rank": h.rank,
                "doc_id": p.doc_id,
                "start": p.start,
                "end": p.end,
                "paragraph": p.paragraph,
                "page": p.page,
                "score": round(float(h.score), 4),
                "title": p.title,
                "quote": list(qspan) if (qspan and h.rank == 1) else None,
            }
        )
    return refs


def source_label(ref: dict) -> str:
    """A plain-text dropdown label for a retrieved passage (rendered as text, not HTML)."""
    mark = " ✓" if ref.get("quote") else ""
    title = ref["title"] or ref["doc_id"]
    if len(title) > LABEL_TITLE_CHARS:
        title = title[:LABEL_TITLE_CHARS].rstrip() + "…"
    page = f"p.{ref['page']} · " if ref.get("page") else ""
    return f"#{ref['rank']}{mark} · {ref['score']:.3f} · {page}¶{ref['paragraph']} · {title}"


def render_ref(ref: dict, documents: Callable[[str], Document]) -> str:
    """The document panel for one retrieved passage record (see :func:`source_refs`)."""
    doc = documents(ref["doc_id"])
    quote = tuple(ref["quote"]) if ref.get("quote") else None
    heading = f"#{ref['rank']} · score {ref['score']:.3f}"
    return render_document(doc, (ref["start"], ref["end"]), quote, heading=heading)
