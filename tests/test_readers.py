"""Readers: PDF (text layer and OCR), Word and web pages give text whose every quote is a slice of
what the index stores; bad files are skipped with one line naming them. Files are made by the tests:
python-docx for .docx, pypdfium2 for image-only and broken PDFs, Debian's chromium for real CJK PDFs."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from qa.cli import main as cli_main
from qa.config import ReadConfig
from qa.ingest import read_corpus
from qa.pipeline import Pipeline
from qa.readers import read_html
from qa.readers.extract import join_wrapped
from qa.readers.pdf import assemble, drop_furniture

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                    "(apt-get install chromium fonts-noto-cjk): it makes the CJK PDFs")
PARA_1 = ("长江是亚洲第一长河，也是世界第三长河，全长约六千三百公里。长江发源于青藏高原的唐古拉山脉各拉丹冬峰西南侧，"
          "干流流经青海、西藏、四川、云南、重庆、湖北、湖南、江西、安徽、江苏、上海十一个省级行政区，于崇明岛以东注入东海。")
PARA_2 = "长江年平均入海水量约九千六百多亿立方米，居世界第三位。三峡工程位于湖北省宜昌市，是世界上规模最大的水电站。"
PAGE_HTML = f"""<!doctype html><html><head><meta charset="utf-8"><title>长江概况</title>
<style>body{{font-family:"Noto Sans CJK SC";font-size:16px;width:380px}}</style></head><body>
<h2>第一章 概述</h2><p>{PARA_1}</p><p>The Yangtze River is the longest river in Asia and the third longest in the world.</p>
<div style="page-break-before:always"></div><h2>第二章 水文</h2><p>{PARA_2}</p></body></html>"""
NEWS_HTML = """<html><head><title>新闻 - 某网站</title><meta property="article:published_time" content="2024-05-06T10:00">
<script>var tracking = 1;</script></head><body><nav><a href="/">首页</a> | <a href="/n">新闻</a> | <a href="/s">体育</a></nav>
<header>某网站 LOGO 登录</header><article><h1>城市庆祝活动</h1><p>今天，本市举行了<b>盛大的</b>庆祝活动，数万市民参加。</p>
<p>活动持续了三个小时，游行队伍经过了市中心。</p></article><aside>热门推荐：明星八卦</aside><footer>版权所有 © 2024 某网站</footer></body></html>"""


def pdf_bytes(objects: list[str], trailer: str = "") -> bytes:
    """A minimal PDF of the given objects (numbered from 1; the first is the catalog)."""
    out, offsets = b"%PDF-1.4\n", []
    for i, obj in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{obj}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    return out + f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R {trailer}>>\nstartxref\n{xref}\n%%EOF\n".encode()


ONE_PAGE = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"]


def image_pdf(path: Path, image) -> Path:
    """A PDF of one page that is only ``image`` (a PIL image): a scan."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    w, h = 595, 842
    page = pdf.new_page(w, h)
    obj = pdfium.PdfImage.new(pdf)
    obj.set_bitmap(pdfium.PdfBitmap.from_pil(image))
    obj.set_matrix(pdfium.PdfMatrix().scale(w, h))
    page.insert_obj(obj)
    page.gen_content()
    pdf.save(str(path))
    return path


def make_docx(path: Path) -> Path:
    """A .docx with a title, a heading, a paragraph and a 3x3 table."""
    import docx

    d = docx.Document()
    d.add_heading("年度报告", 0)
    d.add_heading("第一节 收入", 1)
    d.add_paragraph("公司全年收入为一百二十亿元，同比增长百分之十五。")
    table = d.add_table(rows=3, cols=3)
    for r, row in enumerate([("地区", "收入", "增长"), ("华东", "50亿", "12%"), ("华南", "40亿", "18%")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_paragraph("以上数据未经审计。")
    d.save(str(path))
    return path


def chromium_pdf(html: str, out: Path, header_footer: bool = True) -> Path:
    """``html`` printed to a PDF by headless chromium (its default header and footer repeat on every page)."""
    page = out.with_suffix(".html")
    page.write_text(html, encoding="utf-8")
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--print-to-pdf={out}", page.as_uri()]
    if not header_footer:
        args.insert(3, "--no-pdf-header-footer")
    subprocess.run(args, capture_output=True, timeout=120, check=True)
    return out


# ---- joining lines, headers and footers (no files) ---------------------------------------


def test_wrapped_lines_join_without_a_space_in_cjk_and_with_one_between_latin_words():
    lines = ["长江是亚洲第一长河，也是世界第", "三长河。", "The Yangtze is the longest river in", "Asia and the third.", ""]
    assert join_wrapped(lines) == ["长江是亚洲第一长河，也是世界第三长河。", "The Yangtze is the longest river in Asia and the third."]


def test_headers_footers_and_page_numbers_repeated_on_every_page_are_dropped():
    pages = [["12/3/26 报告", f"正文{c}的内容。", f"- {i} -"] for i, c in enumerate("甲乙丙", 1)]
    assert drop_furniture(pages) == [[f"正文{c}的内容。"] for c in "甲乙丙"]


def test_page_starts_are_offsets_and_a_sentence_runs_on_across_a_page_break():
    text, starts = assemble([["第一段。", "", "第二段没有"], ["结束。", "", "第三段。"], []])
    assert text == "第一段。\n第二段没有结束。\n第三段。"
    assert starts == (0, text.index("结束"), len(text))


def test_a_heading_at_the_foot_of_a_page_does_not_run_on_into_the_next_page():
    text, starts = assemble([["正文第一段的内容写得很长很长，", "一直写到这一行的末尾。", "第二节 标题"], ["新的段落从这里开始。"]])
    assert text == "正文第一段的内容写得很长很长，一直写到这一行的末尾。\n第二节 标题\n新的段落从这里开始。"
    assert starts == (0, text.index("新的段落"))


# ---- Word and web pages ------------------------------------------------------------------


def test_a_docx_gives_its_heading_to_its_passages_and_its_table_as_rows_of_cells(tmp_path):
    make_docx(tmp_path / "report.docx")
    [doc] = read_corpus(tmp_path).documents
    assert doc.title == "年度报告" and doc.pages == () and doc.encoding == "docx"
    rows = [doc.text[b.start:b.end] for b in doc.blocks]
    assert rows == ["公司全年收入为一百二十亿元，同比增长百分之十五。", "地区\t收入\t增长", "华东\t50亿\t12%", "华南\t40亿\t18%",
                    "以上数据未经审计。"]
    assert {b.heading for b in doc.blocks} == {"第一节 收入"}


def test_a_saved_web_page_keeps_its_article_title_and_date_without_navigation_or_scripts(tmp_path):
    (tmp_path / "news.html").write_text(NEWS_HTML, encoding="utf-8")
    [doc] = read_corpus(tmp_path).documents
    assert (doc.title, doc.date) == ("城市庆祝活动", "2024-05-06")
    for gone in ("首页", "LOGO", "热门推荐", "版权所有", "tracking"):
        assert gone not in doc.text
    assert "今天，本市举行了盛大的庆祝活动，数万市民参加。" in [doc.text[b.start:b.end] for b in doc.blocks]


# ---- bad files: one line each, the rest indexed --------------------------------------------


def test_bad_files_are_skipped_with_one_line_naming_them_and_the_rest_are_indexed(tmp_path, capsys):
    from PIL import Image

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "good.txt").write_text(PARA_1, encoding="utf-8")
    encrypt = "<< /Filter /Standard /V 1 /R 2 /O <" + "11" * 32 + "> /U <" + "22" * 32 + "> /P -4 >>"
    (corpus / "locked.pdf").write_bytes(pdf_bytes(ONE_PAGE + [encrypt], f"/Encrypt 4 0 R /ID [<{'33' * 16}> <{'33' * 16}>] "))
    (corpus / "corrupt.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 20)
    (corpus / "empty.pdf").write_bytes(pdf_bytes(["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [] /Count 0 >>"]))
    whole = image_pdf(tmp_path / "whole.pdf", Image.new("RGB", (300, 300), "white")).read_bytes()
    (corpus / "truncated.pdf").write_bytes(whole[: len(whole) // 3])
    (corpus / "notzip.docx").write_bytes(b"this is not a zip")
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("word/document.xml", b"\0" * (300 << 20))
    (corpus / "bomb.docx").write_bytes(bomb.getvalue())
    (corpus / "script.html").write_text("<html><body><script>" + "x=1;" * 5000 + "</script><p>Loading…</p></body></html>",
                                        encoding="utf-8")
    (corpus / "deep.html").write_text("<div>" * 5000 + "深" + "</div>" * 5000, encoding="utf-8")
    image_pdf(corpus / "huge.pdf", Image.new("RGB", (3000, 3000), "white"))
    index = tmp_path / "index"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"read": {"max_image_pixels": 4_000_000}}), encoding="utf-8")
    rc = cli_main(["build", "--corpus", str(corpus), "--index", str(index), "--encoder", "hash", "--quiet",
                   "--config", str(config)])
    out, err = capsys.readouterr()
    assert rc == 0 and "indexed 1 documents" in out, err
    lines = err.splitlines()
    assert "Traceback" not in err
    for name, why in [("locked.pdf", "encrypted"), ("corrupt.pdf", "not a readable PDF"), ("empty.pdf", "no pages"),
                      ("notzip.docx", "not a zip"), ("bomb.docx", "zip bomb"), ("script.html", "script"), ("deep.html", "nested too deeply")]:
        assert any(line.startswith(f"skipped {name}: ") and why in line for line in lines), (name, err)
    assert any(line.startswith("skipped truncated.pdf: ") or line.startswith("warning truncated.pdf: ")
               for line in lines), err
    assert any(line.startswith("warning huge.pdf: page 1 ") and "3000x3000 pixels" in line for line in lines), err
    assert len(lines) == len(set(lines))


def test_a_scanned_page_is_left_out_with_a_warning_when_ocr_is_off(tmp_path):
    from PIL import Image

    image_pdf(tmp_path / "scan.pdf", Image.new("RGB", (200, 200), "white"))
    rep = read_corpus(tmp_path, read=ReadConfig(ocr=False))
    assert rep.documents == []
    assert ("scan.pdf", "page 1 had no text; left out (OCR is off: read.ocr)") in rep.warnings


# ---- real PDFs (chromium) and OCR: slow ----------------------------------------------------


@pytest.mark.slow
@needs_chromium
def test_a_chinese_pdf_joins_wrapped_lines_drops_repeated_headers_and_knows_its_pages(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    chromium_pdf(PAGE_HTML, corpus / "yangtze.pdf")
    (corpus / "yangtze.html").unlink()
    [doc] = read_corpus(corpus).documents
    assert PARA_1 in doc.text and PARA_2 in doc.text  # wrapped lines joined, no space between CJK characters
    assert "longest river in Asia and the third" in doc.text  # a space between Latin words
    assert "file://" not in doc.text and "长江概况" not in doc.text  # chromium's header and footer
    assert len(doc.pages) == 2 and doc.page_at(doc.text.index(PARA_2)) == 2 and doc.page_at(doc.text.index(PARA_1)) == 1
    assert {b.heading for b in doc.blocks} == {"第一章 概述", "第二章 水文"}


@pytest.mark.slow
@needs_chromium
def test_every_quote_and_passage_is_a_slice_of_the_stored_text_and_cites_its_page(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    chromium_pdf(PAGE_HTML, corpus / "yangtze.pdf")
    (corpus / "yangtze.html").unlink()
    make_docx(corpus / "report.docx")
    (corpus / "news.html").write_text(NEWS_HTML, encoding="utf-8")
    p, _ = Pipeline.build(corpus, tmp_path / "index", "hash")
    p = Pipeline.load(tmp_path / "index", "hash")  # as stored
    for question in ("三峡工程位于哪里？", "华东的收入是多少？", "庆祝活动持续了多久？", "长江全长多少公里？"):
        a = p.ask(question, k=3).to_json()
        for hit in a["passages"]:
            doc = p.document(hit["doc_id"])
            assert doc.text[hit["start"]:hit["end"]] == hit["text"]
            assert hit["page"] == (doc.page_at(hit["start"]) if hit["doc_id"].endswith(".pdf") else None)
        if a["answer"]:
            doc = p.document(a["answer"]["doc_id"])
            assert doc.text[a["answer"]["start"]:a["answer"]["end"]] == a["answer"]["quote"]
    a = p.ask("三峡工程位于哪里？", k=1).to_json()
    assert a["passages"][0]["doc_id"] == "yangtze.pdf" and a["passages"][0]["page"] == 2


@pytest.mark.slow
@needs_chromium
def test_a_scanned_page_is_read_by_ocr(tmp_path):
    import pypdfium2 as pdfium

    printed = chromium_pdf(PAGE_HTML, tmp_path / "printed.pdf", header_footer=False)
    image = pdfium.PdfDocument(str(printed))[0].render(scale=150 / 72).to_pil().convert("RGB")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    image_pdf(corpus / "scan.pdf", image)
    rep = read_corpus(corpus)
    [doc] = rep.documents
    assert ("scan.pdf", "page 1 had no text, OCR used") in rep.warnings
    assert "长江是亚洲第一长河" in doc.text and "第一章" in doc.text and doc.pages == (0,)


def test_the_document_view_marks_each_page_and_the_quote_in_place():
    import html
    import re

    from qa.render import citation, render_document
    from qa.schema import Block, Document, Passage

    text = "第一页的文字。\n第二页的文字。"
    doc = Document("a.pdf", text, "T", blocks=(Block(0, 7, 1), Block(8, 15, 2)), pages=(0, 8))
    body = render_document(doc, (8, 15), (8, 12)).split('<div class="qa-doc-body">')[1]
    assert body.count('class="qa-page"') == 2 and "第 2 頁 · page 2" in body
    shown = html.unescape(re.sub(r"<br>", "\n", re.sub(r'<span class="qa-page"[^>]*>[^<]*</span>', "", body)))
    assert re.sub(r"<[^>]+>", "", shown) == text  # the markers sit between characters of the stored text
    assert re.search(r"<mark[^>]*>第二页的</mark>", body)
    cite = citation(Passage("a.pdf#1", "a.pdf", text[8:15], 8, 15, "T", 2, page=2), doc, (8, 12))
    assert "第 2 頁 / p. 2" in cite


def test_page_starts_round_trip_through_the_store_and_older_documents_load_without_them(tmp_path):
    from qa import store
    from qa.schema import Block, Document

    paged = Document("a.pdf", "一页。\n二页。", "A", encoding="pdf", blocks=(Block(0, 3, 1),), pages=(0, 4))
    plain = Document("b.txt", "文字。", "B", blocks=(Block(0, 3, 1),))
    store.write_documents(tmp_path / "documents.jsonl", [paged, plain])
    lines = (tmp_path / "documents.jsonl").read_text(encoding="utf-8").splitlines()
    assert "pages" in json.loads(lines[0]) and "pages" not in json.loads(lines[1])  # as older indexes wrote them
    assert store.read_documents(tmp_path / "documents.jsonl") == [paged, plain]
    assert paged.page_at(0) == 1 and paged.page_at(4) == 2 and plain.page_at(0) is None
