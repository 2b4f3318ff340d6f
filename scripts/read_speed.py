"""Reading speed per format: PDF text layer (pages/s), OCR (s/page), .docx and .html (files/s).

Makes its own files in a temporary folder: a Chinese PDF printed by headless chromium (Debian's
``chromium`` and ``fonts-noto-cjk``), a scan of its pages as images, .docx files by python-docx and
saved web pages. Run: ``PYTHONPATH=. python scripts/read_speed.py [--pages 20] [--ocr-pages 3]``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_readers import NEWS_HTML, PARA_1, PARA_2, image_pdf, make_docx  # noqa: E402

from qa.config import ReadConfig  # noqa: E402
from qa.ingest import read_corpus  # noqa: E402
from qa.readers import read_docx, read_html, read_pdf  # noqa: E402


def timed(fn, items) -> float:
    """Seconds ``fn`` takes over every item."""
    t0 = time.perf_counter()
    for x in items:
        fn(x)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pages", type=int, default=20, help="about this many pages of text layer")
    ap.add_argument("--ocr-pages", type=int, default=3)
    ap.add_argument("--files", type=int, default=20)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="read-speed-"))
    try:
        chromium = shutil.which("chromium")
        if chromium:
            body = "".join(f"<h2>第{i}节</h2><p>{PARA_1}</p><p>{PARA_2}</p>" for i in range(args.pages * 5))
            page = work / "long.html"
            page.write_text(f'<html><head><meta charset="utf-8"><title>长江</title></head><body>{body}</body></html>',
                            encoding="utf-8")
            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--print-to-pdf={work / 'long.pdf'}",
                            page.as_uri()], capture_output=True, timeout=300, check=True)
            data = (work / "long.pdf").read_bytes()
            got = read_pdf(data)
            pages = len(got.pages)
            t = timed(read_pdf, [data] * 3) / 3
            print(f"pdf text layer: {pages} pages in {t:.2f} s = {pages / t:.0f} pages/s")
            folder = work / "corpus"
            folder.mkdir()
            shutil.copy(work / "long.pdf", folder / "long.pdf")
            t = timed(read_corpus, [folder])
            print(f"pdf read and cleaned (ingest, child process started): {pages} pages in {t:.2f} s = {pages / t:.0f} pages/s")
            import pypdfium2 as pdfium

            pdf = pdfium.PdfDocument(data)
            scans = [image_pdf(work / f"scan{i}.pdf", pdf[i].render(scale=150 / 72).to_pil().convert("RGB")).read_bytes()
                     for i in range(min(args.ocr_pages, len(pdf)))]
            read_pdf(scans[0])  # loads the OCR models once
            t = timed(read_pdf, scans)
            print(f"pdf OCR: {len(scans)} pages in {t:.1f} s = {t / len(scans):.1f} s/page")
        else:
            print("pdf: skipped (no chromium to make a Chinese PDF)")
        make_docx(work / "r.docx")
        docx = (work / "r.docx").read_bytes()
        t = timed(read_docx, [docx] * args.files)
        print(f"docx: {args.files} files in {t:.2f} s = {args.files / t:.0f} files/s")
        docs = work / "docs"
        docs.mkdir()
        for i in range(args.files):
            make_docx(docs / f"r{i}.docx")
        for limit, how in ((0, "in process"), (ReadConfig().timeout_s, "in a child process (read.timeout_s)")):
            t = timed(lambda folder: read_corpus(folder, read=ReadConfig(timeout_s=limit)), [docs])
            print(f"docx read and cleaned (ingest), {how}: {args.files} files in {t:.2f} s = {args.files / t:.0f} files/s")
        html = NEWS_HTML.replace("<p>", "<p>" + PARA_1 * 3).encode()
        t = timed(read_html, [html] * args.files)
        print(f"html: {args.files} files ({len(html) // 1024} KB each) in {t:.2f} s = {args.files / t:.0f} files/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
