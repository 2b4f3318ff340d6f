"""Uploads and the documents view: files added to and removed from a running app's corpus, the index
rebuilt beside the live one and swapped in whole, the chat and the HTTP API answering from the new
one at once; the upload route's own request limit (every other route keeps 4 MiB)."""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import OFF_TOPIC, write_corpus
from test_readers import ONE_PAGE, make_docx, pdf_bytes

from qa import Pipeline, api, uploads
from qa.chat import ChatHandlers
from qa.config import Config, UploadConfig
from qa.documents_view import DocumentHandlers, limits_note
from qa.errors import CorpusError
from qa.pipeline import PipelineHolder
from qa.serve import MAX_REQUEST_BYTES, RequestGuard

DOCX_QUESTION = "公司全年收入为多少？"  # answered only by make_docx's report
LOCKED = pdf_bytes(ONE_PAGE + ["<< /Filter /Standard /V 1 /R 2 /O <" + "11" * 32 + "> /U <" + "22" * 32 + "> /P -4 >>"],
                   f"/Encrypt 4 0 R /ID [<{'33' * 16}> <{'33' * 16}>] ")


@pytest.fixture
def served(tmp_path):
    """(corpus, holder, outside folder): the tiny corpus indexed by the hash encoder, held as the app holds it."""
    corpus = write_corpus(tmp_path / "corpus")
    pipeline, _ = Pipeline.build(corpus, tmp_path / "index", "hash")
    outside = tmp_path / "outside"
    outside.mkdir()
    return corpus, PipelineHolder(pipeline), outside


def _ask_api(holder, question: str) -> dict:
    """``POST /api/ask`` through the routes the app serves, built once around ``holder``."""
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    with TestClient(Starlette(routes=api.routes(holder))) as client:
        response = client.post("/api/ask", json={"question": question})
    assert response.status_code == 200, response.text
    return response.json()


def test_check_uploads_states_each_refusal():
    limits = UploadConfig(files=2, file_bytes=100, total_bytes=150)

    class F:  # a path-like with a name and a size, no disk needed
        def __init__(self, name, size):
            self.name, self.size = name, size

        def stat(self):
            return type("S", (), {"st_size": self.size})()

    files = [F("a.txt", 80), F("b.png", 1), F(".hidden.md", 1), F("a.txt", 1), F("big.pdf", 101), F("c.md", 80),
             F("d.md", 60), F("e.md", 1)]
    ok, refused = uploads.check_uploads(files, limits)
    assert [f.name for f in ok] == ["a.txt", "d.md"]
    why = dict(refused)
    assert "not a supported file type" in why["b.png"] and "hidden" in why[".hidden.md"]
    assert "same name" in why["a.txt"] and "over the limit of 100 B" not in why["big.pdf"]
    assert "0.0 MiB, over the limit" in why["big.pdf"]  # 101 bytes > 100: over the size of one file
    assert "would pass" in why["c.md"]  # 80 + 80 > 150 in all
    assert "over the limit of 2 files" in why["e.md"]


def test_an_upload_is_indexed_and_answered_at_once_by_the_chat_and_the_api(served):
    corpus, holder, outside = served
    chat = ChatHandlers(holder)
    before = holder.pipeline
    assert _ask_api(holder, DOCX_QUESTION)["answer"] is None  # not in the tiny corpus
    make_docx(outside / "report.docx")
    (outside / "locked.pdf").write_bytes(LOCKED)
    (outside / "picture.png").write_bytes(b"\x89PNG")
    stages = []
    report = uploads.update(holder, add=[outside / "report.docx", outside / "locked.pdf", outside / "picture.png"],
                            progress=lambda stage, done, total: stages.append(stage))
    assert holder.pipeline is not before and "report.docx" in holder.pipeline.documents
    assert stages[0] == "read" and "embed" in stages and "index" in stages and stages[-1] == "ready"
    lines = report.lines()
    assert "✓ report.docx: added" in lines
    assert any(line.startswith("✗ locked.pdf: skipped: ") and "encrypted" in line for line in lines)
    assert any(line.startswith("✗ picture.png: not a supported file type") for line in lines)
    assert not (corpus / "picture.png").exists() and (corpus / "report.docx").exists()
    assert report.build.reused >= len(before.passages) - 1  # the tiny corpus is not embedded again
    assert "一百二十亿元" in _ask_api(holder, DOCX_QUESTION)["answer"]["quote"]
    history, *_ = chat.respond(DOCX_QUESTION, [], "hybrid", 5, [])
    assert "一百二十亿元" in history[-1]["content"] and "report.docx" in history[-1]["content"]


def test_removing_a_document_declines_its_question_and_the_last_cannot_go(served):
    corpus, holder, outside = served
    make_docx(outside / "report.docx")
    uploads.update(holder, add=[outside / "report.docx"])
    assert _ask_api(holder, DOCX_QUESTION)["answer"] is not None
    report = uploads.update(holder, remove=["report.docx"])
    assert report.removed == ["report.docx"] and not (corpus / "report.docx").exists()
    assert _ask_api(holder, DOCX_QUESTION)["answer"] is None
    live = holder.pipeline
    with pytest.raises(CorpusError, match="not removed: they are the last documents of"):
        uploads.update(holder, remove=sorted(holder.pipeline.documents))
    assert sorted(p.name for p in corpus.iterdir()) == sorted(holder.pipeline.documents)
    status, *_ = DocumentHandlers(holder).remove(sorted(holder.pipeline.documents))  # the app's remove button
    assert "not removed: they are the last documents of" in status and "qa-error" in status
    assert holder.pipeline is live and sorted(p.name for p in corpus.iterdir()) == sorted(live.documents)
    (outside / "new.md").write_text("# 新\n\n一份新的文件，讲的是黄河。\n", encoding="utf-8")
    report = uploads.update(holder, add=[outside / "new.md"], remove=sorted(live.documents))  # replaced in one go
    assert sorted(holder.pipeline.documents) == ["new.md"] and sorted(report.removed) == sorted(live.documents)
    assert sorted(p.name for p in corpus.iterdir()) == ["new.md"]


def test_removing_the_last_readable_document_in_the_app_puts_it_back(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "river.txt").write_text("长江是中国最长的河流，全长约六千三百公里。", encoding="utf-8")
    (corpus / "locked.pdf").write_bytes(LOCKED)
    holder = PipelineHolder(Pipeline.build(corpus, tmp_path / "index", "hash")[0])
    live = holder.pipeline
    status, table, _, _ = DocumentHandlers(holder).remove(["river.txt"])
    assert "river.txt not removed: the index would hold no documents" in status and "Traceback" not in status
    assert holder.pipeline is live and sorted(p.name for p in corpus.iterdir()) == ["locked.pdf", "river.txt"]
    assert "river.txt" in table and _ask_api(holder, "长江全长多少公里？")["answer"]["doc_id"] == "river.txt"


def test_a_failed_build_leaves_the_live_index_and_the_corpus_as_they_were(served, monkeypatch, caplog):
    corpus, holder, outside = served
    before, files = holder.pipeline, sorted(p.name for p in corpus.iterdir())
    (outside / "new.txt").write_text("一份新的文件，讲的是长江。", encoding="utf-8")

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Pipeline, "build", broken)
    status, table, _, _ = DocumentHandlers(holder).reindex()
    out = DocumentHandlers(holder).upload([str(outside / "new.txt")])
    assert out[0] is None and "Updating the documents failed" in out[1] and "Traceback" not in out[1]
    assert holder.pipeline is before and sorted(p.name for p in corpus.iterdir()) == files
    assert "new.txt" not in out[2]
    status, *_ = DocumentHandlers(holder).remove([files[0]])
    assert "Updating the documents failed" in status
    assert holder.pipeline is before and sorted(p.name for p in corpus.iterdir()) == files  # put back


def test_the_documents_view_lists_warnings_and_reports_bad_uploads_in_one_line(served):
    corpus, holder, outside = served
    (outside / "locked.pdf").write_bytes(LOCKED)
    (outside / "notes.md").write_text("# 笔记\n\n长江是中国最长的河流。\n", encoding="utf-8")
    ticks = []
    picker, status, table, choices, head = DocumentHandlers(holder).upload(
        [str(outside / "locked.pdf"), str(outside / "notes.md")], lambda p, desc: ticks.append((p, desc)))
    assert picker is None and "qa-error" in status and "✓ notes.md: added" in status
    assert "locked.pdf" in table and "skipped: " in table and "notes.md" in table
    assert "notes.md" in choices["choices"] and "5 篇文件" in head
    assert {d for _, d in ticks} >= {"讀取 reading", "嵌入 embedding", "完成 ready"}
    status, *_ = DocumentHandlers(holder).remove([])
    assert "Pick the documents" in status
    status, *_ = DocumentHandlers(holder).remove(["../index/manifest.json"])
    assert "is not a file of the corpus" in status and "Traceback" not in status


def test_uploads_go_nowhere_when_the_index_was_built_from_a_single_file(tmp_path):
    doc = tmp_path / "one.txt"
    doc.write_text("只有一份文件。长江是中国最长的河流。", encoding="utf-8")
    holder = PipelineHolder(Pipeline.build(doc, tmp_path / "index", "hash")[0])
    (tmp_path / "more.txt").write_text("另一份。", encoding="utf-8")
    status, *_ = DocumentHandlers(holder).upload([str(tmp_path / "more.txt")])[1:]
    assert "start the app with --corpus FOLDER" in status


async def _through_guard(path: str, size: int, guard_kwargs: dict) -> tuple[int, dict | None]:
    """Send a body of ``size`` bytes to ``path`` through ``RequestGuard`` in front of an app that reads
    the body and answers 200; (status, JSON error or None)."""
    async def app(scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    chunks = [b"x" * min(1 << 20, size - i) for i in range(0, size, 1 << 20)]
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": [(b"content-length", str(size).encode())]}
    await RequestGuard(app, **guard_kwargs)(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body) if body else None


@pytest.mark.parametrize("path, size, status", [
    ("/gradio_api/upload", MAX_REQUEST_BYTES + 1, 200),  # an upload may pass 4 MiB
    ("/gradio_api/upload", 8 * 1024 * 1024 + 1, 413),  # but not its own limit
    ("/gradio_api/call/chat", MAX_REQUEST_BYTES + 1, 413),  # every other route keeps 4 MiB
    ("/api/ask", MAX_REQUEST_BYTES + 1, 413),
    ("/api/feedback", MAX_REQUEST_BYTES + 1, 413),
])
def test_the_upload_route_has_its_own_request_limit(path, size, status):
    got, error = asyncio.run(_through_guard(path, size, {"upload_bytes": 8 * 1024 * 1024}))
    assert got == status
    if status == 413:
        assert error["error"].startswith(f"request body over {4 if 'upload' not in path else 8} MiB refused")
        assert ("upload limits: " in error["error"]) == ("upload" in path)


def test_the_default_upload_limit_holds_an_upload_of_the_stated_size():
    limits = UploadConfig()
    assert RequestGuard(None).upload_bytes > limits.total_bytes > MAX_REQUEST_BYTES
    assert limits.file_bytes <= limits.total_bytes


def test_the_upload_limits_are_settings_the_app_states_and_the_server_enforces(tmp_path):
    config = Config.from_json({"upload": {"files": 1, "file_bytes": 2000, "total_bytes": 3000}, "read": {"max_pages": 9}})
    corpus = write_corpus(tmp_path / "corpus")
    holder = PipelineHolder(Pipeline.build(corpus, tmp_path / "index", "hash", config=config)[0])
    note = limits_note(holder.pipeline.config)
    assert "at most 1 files, 0.00190735 MiB each, 0.00286102 MiB in all" in note and "first 9 pages" in note
    for name, size in (("a.md", 100), ("b.md", 100), ("big.md", 2001)):
        (tmp_path / name).write_text("长" * (size // 3) + "x" * (size % 3), encoding="utf-8")
    status = DocumentHandlers(holder).upload([str(tmp_path / n) for n in ("big.md", "a.md", "b.md")])[1]
    assert "✓ a.md: added" in status and "✗ b.md: over the limit of 1 files an upload" in status
    assert "✗ big.md: 0.0 MiB, over the limit of 0.00190735 MiB a file" in status
    assert sorted(p.name for p in corpus.iterdir() if p.suffix == ".md") == ["a.md"]
    guard = RequestGuard(None, config=holder.pipeline.config)
    assert guard.upload_bytes == 3000 + 1024 * 1024 and "the first 9 pages of a PDF" in guard.limits
    with pytest.raises(ValueError, match="upload.files=0; expected 1 or more"):
        Config.from_json({"upload": {"files": 0}})


def test_an_off_topic_question_still_declines_after_an_upload(served):
    _, holder, outside = served
    (outside / "notes.md").write_text("# 笔记\n\n长江是中国最长的河流。\n", encoding="utf-8")
    uploads.update(holder, add=[outside / "notes.md"])
    assert _ask_api(holder, OFF_TOPIC)["answer"] is None
