"""Seconds from uploading a 100-page Chinese PDF in the app to its first answer, with the default settings.

Prints a PDF with headless chromium (Debian's ``chromium`` and ``fonts-noto-cjk``) from about 80,000
characters of DRCD dev articles (distinct text, so nothing is reused), opens a pipeline on a copy of
``corpus/`` with the default encoder, as ``app.py`` does, and times ``qa.uploads.update`` -- what the
app's upload button runs: copy, read, embed, index, swap -- then asks a question about one of the
printed articles and checks that the quote holds its answer. Stage times come from the progress
callback the app's status line reads.

Run: ``PYTHONPATH=. python scripts/upload_speed.py [--chars 80000] [--encoder SPEC]``.
"""

from __future__ import annotations

import argparse
import html
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from qa import Pipeline
from qa.pipeline import PipelineHolder
from qa.uploads import update

ROOT = Path(__file__).resolve().parents[1]


def pick_articles(chars: int) -> tuple[list[dict], list[dict]]:
    """DRCD dev articles, in file order, until ``chars`` characters; and their questions."""
    docs, total = [], 0
    with open(ROOT / "evals/drcd/dev.docs.jsonl", encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            docs.append(d)
            total += len(d["text"])
            if total >= chars:
                break
    ids = {d["doc_id"] for d in docs}
    with open(ROOT / "evals/drcd/dev.questions.jsonl", encoding="utf-8") as fh:
        questions = [q for q in map(json.loads, fh) if q.get("doc_id") in ids]
    return docs, questions


def print_pdf(docs: list[dict], out: Path) -> None:
    """One PDF of the articles: a heading and its paragraphs each."""
    body = "".join(f"<h2>{html.escape(d['title'])}</h2>" + "".join(f"<p>{html.escape(p)}</p>"
                                                                    for p in d["text"].split("\n") if p.strip())
                   for d in docs)
    page = out.with_suffix(".html")
    style = "body { font-size: 20px; line-height: 1.9 }"  # about 800 characters a page, as in a report
    page.write_text(f'<html><head><meta charset="utf-8"><title>DRCD</title><style>{style}</style></head>'
                    f'<body>{body}</body></html>',
                    encoding="utf-8")
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", f"--print-to-pdf={out}", page.as_uri()],
                   capture_output=True, timeout=300, check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--chars", type=int, default=80_000, help="characters of text to print (default 80,000)")
    ap.add_argument("--encoder", default=None, help="encoder spec (default: the app's default)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="upload-speed-"))
    try:
        docs, questions = pick_articles(args.chars)
        pdf = work / "drcd-articles.pdf"
        print_pdf(docs, pdf)
        import pypdfium2 as pdfium

        pages = len(pdfium.PdfDocument(str(pdf)))
        shutil.copytree(ROOT / "corpus", work / "corpus")
        t0 = time.perf_counter()
        holder = PipelineHolder(Pipeline.open(work / "corpus", work / "index", args.encoder))
        print(f"articles index built in {time.perf_counter() - t0:.1f} s with {holder.pipeline.encoder.name}")
        marks: dict[str, float] = {}

        def progress(stage: str, done: int, total: int) -> None:
            marks.setdefault(stage, time.perf_counter())

        t0 = time.perf_counter()
        report = update(holder, add=[pdf], progress=progress)
        secs = time.perf_counter() - t0
        stages = ", ".join(f"{s} from {marks[s] - t0:.1f} s" for s in marks)
        b = report.build
        print(f"upload of a {pages}-page PDF ({sum(len(d['text']) for d in docs):,} chars, {len(docs)} articles): "
              f"answerable after {secs:.1f} s ({stages}); {b.passages} passages, {b.embedded} embedded, "
              f"{b.sentences_embedded} sentences embedded")
        asked = found = quoted = 0
        for q in questions[:: max(1, len(questions) // 20)]:
            a = holder.pipeline.ask(q["question"])
            asked += 1
            found += bool(a.best and any(x in a.best.passage.text for x in q["answers"]))
            quoted += bool(a.quote and any(x in a.quote.text for x in q["answers"]))
        print(f"of {asked} questions about the PDF: {found} with the answer in the first passage, {quoted} in the quote")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
