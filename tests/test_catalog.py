"""Catalog and the CLI's add / remove / docs: files copied into and deleted from the index's corpus
folder, the index refreshed without embedding unchanged passages or re-reading unchanged files."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_DOCS, write_corpus
from test_readers import NEWS_HTML, make_docx

from qa.cli import main as cli_main
from qa.readers.worker import ReaderProcess


@pytest.fixture
def indexed(tmp_path, capsys):
    """(corpus, index, outside folder) with the tiny corpus indexed by the hash encoder."""
    corpus = write_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    assert cli_main(["build", "--corpus", str(corpus), "--index", str(index), "--encoder", "hash", "--quiet"]) == 0
    outside = tmp_path / "outside"
    outside.mkdir()
    capsys.readouterr()
    return corpus, index, outside


def _docs(index, capsys) -> dict[str, dict]:
    assert cli_main(["docs", "--index", str(index), "--json"]) == 0
    return {d["name"]: d for d in json.loads(capsys.readouterr().out)}


def test_add_copies_into_the_corpus_and_embeds_only_the_new_passages(indexed, capsys):
    corpus, index, outside = indexed
    (outside / "news.html").write_text(NEWS_HTML, encoding="utf-8")
    make_docx(outside / "report.docx")
    assert cli_main(["add", str(outside / "news.html"), str(outside / "report.docx"), "--index", str(index), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert "added news.html" in err and "added report.docx" in err
    assert f"indexed {len(TINY_DOCS) + 2} documents" in out and " 0 reused" not in out
    reused = int(out.split(" embedded, ")[1].split(" reused")[0])
    assert reused >= len(TINY_DOCS)  # the tiny corpus's passages are not embedded again
    assert (corpus / "news.html").read_text(encoding="utf-8") == NEWS_HTML
    docs = _docs(index, capsys)
    assert docs["news.html"]["type"] == "html" and docs["news.html"]["pages"] is None and docs["news.html"]["passages"] >= 1
    assert docs["report.docx"]["size"] == (outside / "report.docx").stat().st_size


def test_an_unchanged_document_file_is_not_read_again_on_refresh(indexed, capsys, monkeypatch):
    corpus, index, outside = indexed
    (corpus / "news.html").write_text(NEWS_HTML, encoding="utf-8")
    assert cli_main(["build", "--index", str(index), "--quiet"]) == 0
    calls = []
    monkeypatch.setattr(ReaderProcess, "read", lambda self, rel, *a: calls.append(rel) or pytest.fail("read again"))
    (outside / "other.txt").write_text("另一份文件，讲的是别的事情。", encoding="utf-8")
    assert cli_main(["add", str(outside / "other.txt"), "--index", str(index), "--quiet"]) == 0
    capsys.readouterr()
    assert calls == [] and "news.html" in _docs(index, capsys)


def test_remove_deletes_the_file_and_its_passages(indexed, capsys):
    corpus, index, _ = indexed
    name = sorted(TINY_DOCS)[0]
    assert cli_main(["remove", name, "--index", str(index), "--quiet"]) == 0
    assert f"removed {name}" in capsys.readouterr().err
    assert not (corpus / name).exists() and name not in _docs(index, capsys)


@pytest.mark.parametrize("args, message", [
    (["remove", "no-such.txt"], "no file 'no-such.txt' in the corpus"),
    (["remove", "../index/manifest.json"], "is not a file of the corpus"),
    (["add", "picture.png"], "not a supported file type"),
    (["add", "missing.pdf"], "cannot be read"),
])
def test_add_and_remove_errors_are_one_line_and_change_nothing(indexed, capsys, args, message):
    corpus, index, outside = indexed
    (outside / "picture.png").write_bytes(b"\x89PNG")
    before = sorted(p.name for p in corpus.iterdir())
    if args[0] == "add":
        args = [args[0], str(outside / args[1])]
    assert cli_main([*args, "--index", str(index), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert sorted(p.name for p in corpus.iterdir()) == before


def test_docs_lists_skipped_files_with_their_reason(indexed, capsys):
    corpus, index, _ = indexed
    (corpus / "broken.docx").write_bytes(b"not a zip")
    assert cli_main(["build", "--index", str(index), "--quiet"]) == 0
    capsys.readouterr()
    assert cli_main(["docs", "--index", str(index)]) == 0
    out = capsys.readouterr().out
    assert any(line.startswith("broken.docx  [docx]  skipped: not a Word .docx file") for line in out.splitlines())


def _answer(index, capsys, question: str) -> dict:
    assert cli_main(["ask", question, "--index", str(index), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_removing_every_document_is_refused_before_anything_is_deleted(indexed, capsys):
    corpus, index, _ = indexed
    before = _answer(index, capsys, "长江有多长？")
    names = sorted(TINY_DOCS)
    assert cli_main(["remove", *names, "--index", str(index), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {', '.join(names)} not removed: they are the last documents of") and "\n" not in err
    assert sorted(p.name for p in corpus.iterdir()) == names  # nothing deleted, nothing hidden left behind
    assert _answer(index, capsys, "长江有多长？") == before and sorted(_docs(index, capsys)) == names


def test_removing_the_last_readable_document_puts_it_back_and_keeps_the_index(tmp_path, capsys):
    from test_uploads import LOCKED

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "river.txt").write_text("长江是中国最长的河流，全长约六千三百公里。", encoding="utf-8")
    (corpus / "locked.pdf").write_bytes(LOCKED)  # in the corpus, but never indexed
    index = tmp_path / "index"
    assert cli_main(["build", "--corpus", str(corpus), "--index", str(index), "--encoder", "hash", "--quiet"]) == 0
    capsys.readouterr()
    assert cli_main(["remove", "river.txt", "--index", str(index), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: river.txt not removed: the index would hold no documents (nothing to index in ")
    assert "locked.pdf: encrypted PDF" in err and err.endswith("so add others first") and "\n" not in err
    assert sorted(p.name for p in corpus.iterdir()) == ["locked.pdf", "river.txt"]
    assert "river.txt" in _docs(index, capsys)
    assert _answer(index, capsys, "长江全长多少公里？")["answer"]["doc_id"] == "river.txt"


def test_an_add_whose_build_fails_takes_the_new_files_back_out(indexed, capsys, monkeypatch):
    corpus, index, outside = indexed
    before = sorted(p.name for p in corpus.iterdir())
    (outside / "other.txt").write_text("另一份文件，讲的是别的事情。", encoding="utf-8")

    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("qa.cli.Pipeline.build", fail)
    assert cli_main(["add", str(outside / "other.txt"), "--index", str(index), "--quiet"]) != 0
    assert "no space left" in capsys.readouterr().err.lower()
    assert sorted(p.name for p in corpus.iterdir()) == before  # the corpus is what the live index holds
    assert "other.txt" not in _docs(index, capsys)
