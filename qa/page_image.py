"""Page images: the cited page of a PDF, rendered, with the quote's characters marked where they stand.

A PDF's stored text is its text layer with wrapped lines joined, whitespace collapsed and headers,
footers and page numbers left out (``qa.readers.pdf``): every character it keeps is one the text
layer holds, in the same order. ``align`` matches a page's stored text to the layer's characters
(PDFium's char indices), whitespace ignored, by difflib's longest matching blocks, which step over
the furniture the stored text lacks. A span of the stored text then gives char indices, whose boxes
(``FPDFText_GetCharBox``) are merged line by line into rectangles drawn half-transparent on the page
as PDFium renders it. A page read by OCR has no text layer to match: it is shown without marks, and
says so. The stored text is never changed: the marks only point at it.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

from . import render as R
from .catalog import corpus_file
from .ingest import read_source
from .pipeline import Pipeline, PipelineHolder
from .schema import Document

PAGE_WIDTH = 900  # pixels across a rendered page (an A4 page at about 110 dpi): legible CJK in the panel
MAX_PIXELS = 4_000_000  # a page of an odd shape is scaled down to this
MIN_PLACED = 0.5  # under this share of a span's characters found in the text layer, no marks are drawn
COLORS = {"passage": (80, 160, 255, 56), "quote": (255, 200, 0, 110)}  # RGBA of the marks, as the text panel's


@dataclass(frozen=True)
class PageImage:
    """A rendered page (``png``: PNG bytes, ``size``: pixels), its 1-based ``page``, how many rectangles
    were drawn, the share of the quote's characters placed on the page, and a note for the user."""

    png: bytes
    size: tuple[int, int]
    page: int
    boxes: int
    placed: float
    note: str = ""


def page_of(doc: Document, offset: int) -> tuple[int, int, int]:
    """(0-based page, start, end) of the page of ``doc.text`` that holds ``offset``."""
    number = doc.page_at(offset) or 1
    bounds = [*doc.pages, len(doc.text)]
    return number - 1, bounds[number - 1], bounds[number]


def align(stored: str, layer: Sequence[str]) -> dict[int, int]:
    """{offset in ``stored``: index in ``layer``} for the characters of a page's stored text found, in
    order, among the text layer's characters (one string each), whitespace on both sides left out."""
    a = [i for i, c in enumerate(stored) if not c.isspace()]
    b = [i for i, c in enumerate(layer) if c and not c.isspace()]
    matcher = SequenceMatcher(None, [stored[i] for i in a], [layer[j] for j in b], autojunk=False)
    return {a[i + k]: b[j + k] for i, j, n in matcher.get_matching_blocks() for k in range(n)}


def layer_chars(textpage: Any) -> list[str]:
    """The text layer's characters by PDFium char index ('' where it has none)."""
    import pypdfium2.raw as pdfium_c

    out = []
    for i in range(textpage.count_chars()):
        code = pdfium_c.FPDFText_GetUnicode(textpage, i)
        out.append(chr(code) if 0 < code < 0x110000 and not 0xD800 <= code < 0xE000 else "")
    return out


def line_boxes(boxes: Sequence[tuple[float, float, float, float]]) -> list[tuple[float, float, float, float]]:
    """Character boxes (x0, y0, x1, y1, pixels, in reading order) merged into one rectangle a line: a
    box that overlaps the current rectangle by half its height and follows it closely joins it."""
    rects: list[list[float]] = []
    for x0, y0, x1, y1 in boxes:
        if rects:
            r = rects[-1]
            overlap = min(r[3], y1) - max(r[1], y0)
            height = min(r[3] - r[1], y1 - y0)
            if overlap >= 0.5 * height and r[0] - height <= x0 <= r[2] + 3 * height:
                r[:] = [min(r[0], x0), min(r[1], y0), max(r[2], x1), max(r[3], y1)]
                continue
        rects.append([x0, y0, x1, y1])
    return [tuple(r) for r in rects]  # type: ignore[misc]


def render_page(data: bytes, doc: Document, quote: tuple[int, int], passage: tuple[int, int] | None = None,
                width: int = PAGE_WIDTH) -> PageImage:
    """The page of ``doc`` (read from the PDF bytes ``data``) where ``quote`` begins, rendered ``width``
    pixels across, the quote's characters marked yellow and the rest of ``passage`` on it blue."""
    import pypdfium2 as pdfium
    from PIL import Image, ImageDraw

    index, start, end = page_of(doc, quote[0])
    pdf = pdfium.PdfDocument(data)
    try:
        page = pdf[index]
        w, h = page.get_size()
        scale = min((width - 0.5) / w, (MAX_PIXELS / (w * h)) ** 0.5)  # PDFium rounds the pixels up
        bitmap = page.render(scale=scale)
        image = bitmap.to_pil().convert("RGBA")
        conv = bitmap.get_posconv(page)
        textpage = page.get_textpage()
        found = align(doc.text[start:end], layer_chars(textpage))

        def boxes(a: int, b: int) -> tuple[list[tuple[float, float, float, float]], int]:
            """Pixel boxes of the characters of ``doc.text[a:b]`` on this page, and how many are to place."""
            want = [i - start for i in range(max(a, start), min(b, end)) if not doc.text[i].isspace()]
            out = []
            for i in (i for i in want if i in found):
                left, bottom, right, top = textpage.get_charbox(found[i])
                (x0, y0), (x1, y1) = conv.to_bitmap(left, top), conv.to_bitmap(right, bottom)
                if x0 != x1 and y0 != y1:
                    out.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
            return out, len(want)

        quote_boxes, wanted = boxes(*quote)
        placed = len(quote_boxes) / wanted if wanted else 0.0
        marks = []
        if placed >= MIN_PLACED:
            if passage is not None:
                marks += [(r, "passage") for r in line_boxes(boxes(passage[0], quote[0])[0])]
                marks += [(r, "passage") for r in line_boxes(boxes(quote[1], passage[1])[0])]
            marks += [(r, "quote") for r in line_boxes(quote_boxes)]
    finally:
        pdf.close()
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    for (x0, y0, x1, y1), kind in marks:
        draw.rectangle((x0 - 1, y0 - 2, x1 + 1, y1 + 2), fill=COLORS[kind])
    out = io.BytesIO()
    Image.alpha_composite(image, overlay).convert("RGB").quantize(64).save(out, "PNG", optimize=True)
    note = "" if marks else ("引文在此頁的文字層中找不到（此頁以文字辨識讀取）。The quote could not be placed on this page "
                             "(it has no text layer: it was read by OCR).")
    if quote[1] > end:
        note += f" 引文續於第 {index + 2} 頁。The quote runs on to page {index + 2}."
    return PageImage(out.getvalue(), image.size, index + 1, sum(k == "quote" for _, k in marks), placed, note.strip())


def page_html(img: PageImage, name: str) -> str:
    """The page image as HTML for the document panel: a PNG data URI, scaled to the panel's width."""
    uri = "data:image/png;base64," + base64.b64encode(img.png).decode("ascii")
    note = f'<div class="qa-page-note">{R.esc(img.note)}</div>' if img.note else ""
    return (f'<div class="qa-page-image"><div class="qa-doc-meta">原頁 page {img.page} · {R.esc(name)} · '
            f'<mark class="qa-hl">答句 answer</mark> <span class="qa-cited">引用段落 passage</span></div>{note}'
            f'<img src="{uri}" alt="page {img.page} of {R.esc(name)}" width="{img.size[0]}" height="{img.size[1]}" '
            f'style="width:100%;height:auto;border:1px solid var(--border-color-primary)"></div>')


def source_pdf(pipeline: Pipeline, doc_id: str) -> tuple[bytes | None, str]:
    """(the PDF's bytes, '') of an indexed PDF as it was indexed, or (None, why it cannot be shown)."""
    path = corpus_file(pipeline.corpus_path, doc_id)
    if path is None:
        return None, "the PDF's folder is not known to this index"
    src = read_source(Path(path))
    if src.data is None:
        return None, f"the PDF cannot be read now ({src.problem})"
    if src.hash != pipeline.manifest.get("corpus", {}).get("files", {}).get(doc_id):
        return None, "the PDF changed since it was indexed; re-index to see its pages"
    return src.data, ""


class PageHandlers:
    """The document panel's page image, around the ``PipelineHolder`` the chat shares."""

    def __init__(self, holder: PipelineHolder):
        self.holder = holder

    def html(self, ref: dict | None) -> str:
        """The cited page of a retrieved passage record (``render.source_refs``) as HTML, or '' when it is
        not from a PDF; a page that cannot be shown is one line saying why."""
        pipeline = self.holder.pipeline
        doc = pipeline.documents.get(ref["doc_id"]) if ref else None
        if doc is None or not doc.pages or not doc.doc_id.lower().endswith(".pdf"):
            return ""
        data, why = source_pdf(pipeline, doc.doc_id)
        if data is None:
            return f'<div class="qa-page-note">{R.esc(why)}</div>'
        quote = tuple(ref["quote"]) if ref.get("quote") else (ref["start"], ref["end"])
        try:
            img = render_page(data, doc, quote, (ref["start"], ref["end"]))
        except Exception as exc:  # noqa: BLE001 - the page is extra: one line, the text panel still stands
            return f'<div class="qa-page-note">{R.esc(f"the page cannot be rendered ({type(exc).__name__})")}</div>'
        return page_html(img, doc.doc_id)

    def show(self, choice: str | None, refs: list | None) -> dict:
        """The panel's page for the picked passage (the first when none is picked): a Gradio update."""
        import gradio as gr

        refs = refs or []
        ref = next((r for r in refs if str(r["rank"]) == str(choice)), refs[0] if refs else None)
        html = self.html(ref)
        return gr.update(value=html, visible=bool(html))
