"""Page images (``qa.page_image``): the cited page of a PDF rendered with the quote's characters marked
where they stand, found by matching the stored text (lines joined, headers and footers left out) to the
PDF's text layer; PDFs made here (Helvetica text by hand, an image-only page by pypdfium2)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from test_readers import image_pdf
from test_worker import text_pdf

from qa import Pipeline
from qa.ingest import read_corpus
from qa.page_image import PageHandlers, align, line_boxes, render_page
from qa.pipeline import PipelineHolder

PAGES = [["Annual Report 2026", "The river runs a long way through the", "valley and the plain to the sea.", "",
          "Boats carry grain down to the port.", "Page 1"],
         ["Annual Report 2026", "The port ships the grain abroad.", "Page 2"]]
LINE_Y = [90 + 42 * k for k in range(6)]  # pixel baseline of line k: (400 - 370 + 14 k) points x 3 (300 points -> 900 px)


def _marked_rows(png: bytes, rgb: tuple[int, int, int]) -> np.ndarray:
    """Rows of the image holding pixels close to ``rgb`` (a mark's colour over white paper)."""
    from PIL import Image

    a = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    near = (np.abs(a - np.array(rgb)).sum(axis=2) < 40)
    return np.flatnonzero(near.sum(axis=1) >= 3)


YELLOW, BLUE = (255, 231, 145), (216, 234, 255)  # the quote's and the passage's marks over white


@pytest.fixture
def river(tmp_path):
    """(document as stored, PDF bytes) of the two-page Helvetica PDF."""
    data = text_pdf(PAGES)
    (tmp_path / "river.pdf").write_bytes(data)
    [doc] = read_corpus(tmp_path).documents
    return doc, data


def test_align_steps_over_furniture_that_shares_characters_with_the_text():
    layer = list("长江报告\r\n长江是中国最长的河流。\r\n2")
    stored = "长江是中国最长的河流。"
    found = align(stored, layer)
    assert [layer[found[i]] for i in range(len(stored))] == list(stored)
    assert found[0] == 6  # the body's 长, not the header's


def test_line_boxes_merge_a_lines_characters_and_keep_lines_apart():
    line1 = [(10 + 10 * i, 100, 19 + 10 * i, 112) for i in range(5)]
    line2 = [(10 + 10 * i, 130, 19 + 10 * i, 142) for i in range(3)]
    assert line_boxes(line1 + line2) == [(10, 100, 59, 112), (10, 130, 39, 142)]


def test_the_quote_is_marked_on_its_lines_and_the_header_is_not(river):
    doc, data = river
    assert "Annual Report" not in doc.text and "Page 1" not in doc.text  # furniture left out of the text
    q = doc.text.index("a long way")
    quote = (q, q + len("a long way through the valley"))  # across a wrapped line: two rectangles
    p = doc.text.index("The river")
    passage = (p, doc.text.index("port.") + len("port."))
    img = render_page(data, doc, quote, passage)
    assert img.page == 1 and img.boxes == 2 and img.placed == 1.0 and img.note == ""
    assert img.size == (900, 1200) and img.png.startswith(b"\x89PNG") and len(img.png) < 200_000
    rows = _marked_rows(img.png, YELLOW)
    assert rows.min() > LINE_Y[0] + 2 and rows.max() < LINE_Y[2] + 12  # lines 1 and 2, below the header
    assert rows.min() < LINE_Y[1] < LINE_Y[2] < rows.max() + 8
    blue = _marked_rows(img.png, BLUE)
    assert blue.max() > LINE_Y[3]  # the rest of the passage, "Boats carry grain…", is marked blue
    assert doc.text[quote[0]:quote[1]] == "a long way through the valley"  # the stored text, untouched


def test_a_quote_on_page_two_renders_page_two_and_one_that_runs_on_says_so(river):
    doc, data = river
    q = doc.text.index("The port ships")
    assert render_page(data, doc, (q, q + 14)).page == 2
    start = doc.text.index("Boats")
    img = render_page(data, doc, (start, q + 8))
    assert img.page == 1 and "runs on to page 2" in img.note


def test_a_scanned_page_is_shown_without_marks_and_says_why(tmp_path):
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (300, 400), "white")
    ImageDraw.Draw(picture).text((20, 40), "The river runs a long way", fill="black")
    image_pdf(tmp_path / "scan.pdf", picture)
    data = (tmp_path / "scan.pdf").read_bytes()
    from qa.schema import Block, Document

    doc = Document("scan.pdf", "The river runs a long way", "scan", blocks=(Block(0, 25, 1),), pages=(0,))
    img = render_page(data, doc, (4, 9))
    assert img.boxes == 0 and img.placed == 0.0 and "could not be placed" in img.note
    assert img.png.startswith(b"\x89PNG") and len(_marked_rows(img.png, YELLOW)) == 0


def test_the_panel_shows_a_pdfs_page_and_nothing_for_other_files_and_refuses_a_changed_pdf(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "river.pdf").write_bytes(text_pdf(PAGES))
    (corpus / "notes.txt").write_text("长江是中国最长的河流，全长约六千三百公里。", encoding="utf-8")
    pipeline, _ = Pipeline.build(corpus, tmp_path / "index", "hash")
    pages = PageHandlers(PipelineHolder(pipeline))
    doc = pipeline.document("river.pdf")
    s = doc.text.index("Boats")
    ref = {"rank": 1, "doc_id": "river.pdf", "start": s, "end": s + 35, "quote": [s, s + 11], "page": 1}
    html = pages.html(ref)
    assert html.startswith('<div class="qa-page-image">') and 'src="data:image/png;base64,' in html
    assert "原頁 page 1 · river.pdf" in html
    assert pages.html({**ref, "doc_id": "notes.txt", "quote": None}) == "" and pages.html(None) == ""
    update = pages.show("2", [{**ref, "rank": 2}])
    assert update["visible"] and update["value"] == html
    (corpus / "river.pdf").write_bytes(text_pdf([["Another text"]]))
    assert "changed since it was indexed; re-index" in pages.html(ref)
    (corpus / "river.pdf").unlink()
    assert "cannot be read now" in pages.html(ref)
