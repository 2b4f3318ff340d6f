"""PDF: the text layer of each page (pypdfium2, Apache-2.0/BSD), OCR where a page has none.

Lines the PDF wraps inside a paragraph are joined (``join_wrapped``: no space between CJK
characters, one between Latin words), also across a page break when a page ends mid-sentence on a
full line (a heading at the foot of a page stays a heading).
Lines at the top or bottom of at least half the pages (digits ignored: "3 / 12") and bare page
numbers are headers, footers and page numbers: they are left out of the text. ``Extracted.pages``
records where each page begins, so every passage knows its page.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Any

from ..config import ReadConfig
from ..errors import CorpusError
from .extract import Extracted, Progress, ends_sentence, join_two, join_wrapped, width
from .ocr import ocr_lines

_PAGE_NO_RE = re.compile(r"^[-–—\s]*(?:第\s*)?\d{1,4}(?:\s*页)?(?:\s*(?:/|of)\s*\d{1,4})?[-–—\s]*$|^(?:page|p\.)\s*\d{1,4}"
                         r"(?:\s*(?:/|of)\s*\d{1,4})?$", re.I)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
EDGE = 2  # lines at each end of a page that may be a header or footer


def _open(data: bytes) -> Any:
    """A ``PdfDocument`` of ``data``; a ``CorpusError`` saying why when it cannot be opened."""
    import pypdfium2 as pdfium

    try:
        return pdfium.PdfDocument(data)
    except pdfium.PdfiumError:
        # PDFium's error code can be stale (the previous file's) or "Success": the bytes say what is wrong.
        if b"/Encrypt" in data:
            raise CorpusError("encrypted PDF (it needs a password); save an unprotected copy to index it") from None
        if re.search(rb"/Count\s+0\b", data) and not re.search(rb"/Type\s*/Page(?!s)", data):
            raise CorpusError("PDF with no pages; re-export it") from None
        raise CorpusError("not a readable PDF, corrupt or truncated; re-save or re-export it") from None


def page_text(page: Any) -> str:
    """A page's text layer, lines split at line ends, control characters left out."""
    text = page.get_textpage().get_text_range()
    return _CONTROL_RE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def text_problem(text: str, config: ReadConfig) -> str | None:
    """Why a page's text layer is not used ('had no text', 'had a garbage text layer'), or None."""
    chars = [c for c in text if not c.isspace()]
    if sum(c.isalnum() for c in chars) < config.ocr_min_chars:
        return "had no text"
    good = sum(c.isalnum() or c.isprintable() and not ("\ue000" <= c <= "\uf8ff") and c != "\ufffd" for c in chars)
    return "had a garbage text layer" if good < config.min_text_share * len(chars) else None


def huge_image(page: Any, limit: int) -> tuple[int, int] | None:
    """(width, height) in pixels of an image on ``page`` larger than ``limit`` pixels, or None."""
    import pypdfium2.raw as pdfium_c

    for obj in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,)):
        w, h = obj.get_px_size()
        if w * h > limit:
            return w, h
    return None


def render(page: Any, config: ReadConfig) -> Any:
    """The page as a PIL image at ``config.ocr_dpi``, scaled down to at most ``max_image_pixels``."""
    w, h = page.get_size()  # points, 72 a inch
    scale = config.ocr_dpi / 72
    if w * h * scale * scale > config.max_image_pixels:
        scale = math.sqrt(config.max_image_pixels / (w * h))
    return page.render(scale=scale).to_pil()


def drop_furniture(pages: list[list[str]]) -> list[list[str]]:
    """Pages without their headers, footers and page numbers (see the module docstring)."""
    def key(line: str) -> str:
        return re.sub(r"\d+", "#", " ".join(line.split()))

    def edges(lines: list[str]) -> list[int]:
        filled = [i for i, x in enumerate(lines) if x.strip()]
        return sorted(set(filled[:EDGE] + filled[-EDGE:]))

    counts = Counter(k for lines in pages for k in {key(lines[i]) for i in edges(lines)})
    repeated = {k for k, c in counts.items() if len(pages) >= 2 and c >= max(2, math.ceil(len(pages) / 2))}
    out = []
    for lines in pages:
        drop = {i for i in edges(lines) if key(lines[i]) in repeated or _PAGE_NO_RE.match(lines[i].strip())}
        out.append([x for i, x in enumerate(lines) if i not in drop])
    return out


def ends_full(lines: list[str], full: float = 0.8) -> bool:
    """True when a page's last line is as wide as its full lines (``join_wrapped``'s ``full``): a
    paragraph cut by the page break, not a heading or a short last line."""
    filled = [x for x in lines if x.strip()]
    return bool(filled) and width(filled[-1]) >= full * max(map(width, filled))


def assemble(pages: list[list[str]]) -> tuple[str, tuple[int, ...]]:
    """(text, page start offsets) of the pages' lines: one paragraph a line; a page's last paragraph
    that does not end a sentence and fills its last line runs on into the next page's first."""
    paragraphs: list[str] = []
    marks: list[tuple[int, int]] = []  # page i begins at paragraphs[p][offset]
    runs_on = False
    for lines in pages:
        paras = join_wrapped(lines)
        if paragraphs and paras and runs_on and not ends_sentence(paragraphs[-1]):
            merged = join_two(paragraphs[-1], paras[0])
            marks.append((len(paragraphs) - 1, len(merged) - len(paras[0])))
            paragraphs[-1] = merged
            paras = paras[1:]
        else:
            marks.append((len(paragraphs), 0))
        paragraphs += paras
        runs_on = ends_full(lines) if paras else runs_on
    starts, pos = [], 0
    for p in paragraphs:
        starts.append(pos)
        pos += len(p) + 1
    text = "\n".join(paragraphs)
    return text, tuple(starts[p] + off if p < len(starts) else len(text) for p, off in marks)


def read_pdf(data: bytes, config: ReadConfig = ReadConfig(), progress: Progress | None = None) -> Extracted:
    """The text of a PDF's pages (OCR where a page has no usable text layer and ``config.ocr``).

    Raises ``CorpusError`` for an encrypted, corrupt or page-less PDF; a page that cannot be read
    is left out with a warning naming it.
    """
    import pypdfium2 as pdfium

    pdf = _open(data)
    warnings: list[str] = []
    try:
        n = len(pdf)
        if n == 0:
            raise CorpusError("PDF has no pages")
        if n > config.max_pages:
            warnings.append(f"only the first {config.max_pages} of {n} pages read (read.max_pages)")
            n = config.max_pages
        pages: list[list[str] | None] = []
        why: dict[int, str] = {}
        for i in range(n):
            try:
                text = page_text(pdf[i])
            except pdfium.PdfiumError as exc:
                warnings.append(f"page {i + 1} cannot be read ({exc}); left out")
                pages.append([])
                continue
            problem = text_problem(text, config)
            if problem:
                why[i] = problem
            pages.append(None if problem else text.split("\n"))
        todo = sorted(why)
        for done, i in enumerate(todo):
            if progress:
                progress("ocr", done, len(todo))
            pages[i] = _ocr_page(pdf[i], i + 1, why[i], config, warnings)
        if progress and todo:
            progress("ocr", len(todo), len(todo))
        title = (pdf.get_metadata_dict().get("Title") or "").strip() or None
    finally:
        pdf.close()
    text, starts = assemble(drop_furniture([p or [] for p in pages]))
    return Extracted(text, "pdf", starts, title=title, warnings=warnings)


def _ocr_page(page: Any, number: int, problem: str, config: ReadConfig, warnings: list[str]) -> list[str]:
    """The OCR lines of one page, or [] with a warning saying why it was left out."""
    if not config.ocr:
        warnings.append(f"page {number} {problem}; left out (OCR is off: read.ocr)")
        return []
    try:
        size = huge_image(page, config.max_image_pixels)
        if size:
            warnings.append(f"page {number} {problem} and is an image of {size[0]}x{size[1]} pixels, over "
                            f"read.max_image_pixels={config.max_image_pixels}; left out")
            return []
        lines = ocr_lines(render(page, config))
    except Exception as exc:  # noqa: BLE001 - one bad page never stops the file
        warnings.append(f"page {number} {problem} and OCR failed ({type(exc).__name__}: {exc}); left out")
        return []
    warnings.append(f"page {number} {problem}, OCR used" if lines else f"page {number} {problem}, and OCR found none")
    return lines
