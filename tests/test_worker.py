"""Reading in a child process (``qa.readers.worker``): a file that hangs or crashes its reader is skipped
with one line naming the limit, and the files after it are read; .txt / .md never start a child."""

from __future__ import annotations

import time

import pytest
import slow_reader
from test_readers import pdf_bytes

from qa.config import Config, ReadConfig
from qa.errors import CorpusError
from qa.ingest import read_corpus
from qa.readers import worker
from qa.readers.worker import ReaderProcess


def text_pdf(pages: list[list[str]], size: tuple[int, int] = (300, 400)) -> bytes:
    """A PDF whose pages hold these lines in Helvetica (a text layer PDFium reads), one line every 14 points."""
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>",
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, lines in enumerate(pages):
        shown = " T* ".join("(" + x.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") Tj" for x in lines)
        stream = f"BT /F1 11 Tf 14 TL 20 {size[1] - 30} Td {shown} ET"
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {size[0]} {size[1]}] "
                       f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    return pdf_bytes(objects)


RIVER = text_pdf([["The river runs a long way through the", "valley and the plain to the sea.", "", "Short line."]])


@pytest.fixture
def slow(monkeypatch):
    """``read_document`` replaced by ``slow_reader.read_slowly`` (sent to the child by reference)."""
    monkeypatch.setattr(worker, "read_document", slow_reader.read_slowly)


def test_a_file_that_hangs_its_reader_is_skipped_and_the_others_are_read(tmp_path, slow):
    (tmp_path / "notes.txt").write_text("长江是中国最长的河流。", encoding="utf-8")
    (tmp_path / "river.pdf").write_bytes(RIVER)
    (tmp_path / "slow.pdf").write_bytes(RIVER)
    (tmp_path / "zz-after.pdf").write_bytes(RIVER)  # read by a new child, after the hung one is killed
    t0 = time.perf_counter()
    rep = read_corpus(tmp_path, read=ReadConfig(timeout_s=2))
    assert time.perf_counter() - t0 < 30  # not the 600 s the reader sleeps
    assert rep.skipped == [("slow.pdf", "reading took longer than 2 s (read.timeout_s); "
                                        "split the file, or raise the limit if it is just large")]
    docs = {d.doc_id: d for d in rep.documents}
    assert sorted(docs) == ["notes.txt", "river.pdf", "zz-after.pdf"]
    assert "The river runs a long way through the valley and the plain to the sea." in docs["river.pdf"].text


def test_a_reader_that_crashes_costs_only_its_file(tmp_path, slow):
    (tmp_path / "crash.pdf").write_bytes(RIVER)
    (tmp_path / "river.pdf").write_bytes(RIVER)
    rep = read_corpus(tmp_path, read=ReadConfig(timeout_s=30))
    assert rep.skipped == [("crash.pdf", "the reader crashed on it (exit code 3); re-save or re-export the file")]
    assert [d.doc_id for d in rep.documents] == ["river.pdf"]


def test_the_limit_counts_from_the_last_progress_report_and_reports_reach_the_caller(slow):
    seen = []
    with ReaderProcess(1.5) as reader:  # 2.4 s of work, a report every 0.6 s
        got = reader.read("busy.pdf", RIVER, ReadConfig(), lambda *report: seen.append(report))
    assert seen == [("ocr", 1, 4), ("ocr", 2, 4), ("ocr", 3, 4), ("ocr", 4, 4)]
    assert got.text.startswith("The river runs")


def test_a_reader_error_is_the_files_reason_and_the_child_reads_the_next(tmp_path):
    with ReaderProcess(30) as reader:
        with pytest.raises(CorpusError, match="not a readable PDF"):
            reader.read("bad.pdf", b"%PDF-1.4 truncated", ReadConfig())
        child = reader.proc
        assert reader.read("river.pdf", RIVER, ReadConfig()).text.startswith("The river runs")
        assert reader.proc is child  # one child for the whole scan
    assert reader.proc is None and child.poll() is not None  # and it is gone after


def test_text_files_never_start_a_child_and_a_limit_of_0_reads_in_process(tmp_path, monkeypatch):
    def no_child(*args, **kwargs):
        raise AssertionError("a child process was started")

    monkeypatch.setattr(worker.subprocess, "Popen", no_child)
    (tmp_path / "a.txt").write_text("长江是中国最长的河流。", encoding="utf-8")
    assert [d.doc_id for d in read_corpus(tmp_path).documents] == ["a.txt"]
    (tmp_path / "river.pdf").write_bytes(RIVER)
    assert len(read_corpus(tmp_path, read=ReadConfig(timeout_s=0)).documents) == 2


def test_the_time_limit_is_a_setting_that_does_not_change_what_an_index_reuses():
    assert Config.from_json({"read": {"timeout_s": 5}}).read.timeout_s == 5.0
    with pytest.raises(ValueError, match="read.timeout_s=-1"):
        ReadConfig(timeout_s=-1)
    assert ReadConfig(timeout_s=5).text_settings() == ReadConfig().text_settings()
    assert "timeout_s" not in ReadConfig().text_settings() and "ocr" in ReadConfig().text_settings()
