"""Ingest: decoding of every supported file encoding, skipped files, symlink loops, docs.jsonl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading

import pytest
from conftest import ROOT, TINY_DOCS, write_corpus

import qa.ingest
from qa import Pipeline
from qa.cli import main as cli_main
from qa.errors import CorpusError
from qa.ingest import UNSUPPORTED, current_hashes, decode_bytes, load_corpus, read_corpus, read_docs_jsonl
from qa.pipeline import is_stale

# Real sentences (from the corpus articles), one per script.
HANS = "苏州市相城区不断推动区块链产业发展集聚，获批创建区块链发展先导区。"
HANT = "蘇州市扎實推進區塊鏈生態建設，加快推進區塊鏈技術研發、融合應用。"
HANS_2 = "相城区已集聚区块链技术和应用企业160家，共计37个应用场景备案成功。"
HANT_2 = "蘇州是國內較早探索布局區塊鏈產業的城市之一。"


def _two_paragraphs(a: str, b: str) -> str:
    return f"{a}\n\n{b}\n"


ENCODINGS = [
    # (id, text, bytes of the file, encoding name the Document must report)
    ("utf-8", _two_paragraphs(HANS, HANS_2), _two_paragraphs(HANS, HANS_2).encode("utf-8"), "utf-8"),
    ("utf-8-bom", _two_paragraphs(HANS, HANS_2), b"\xef\xbb\xbf" + _two_paragraphs(HANS, HANS_2).encode("utf-8"), "utf-8-sig"),
    ("gb18030-simplified", _two_paragraphs(HANS, HANS_2), _two_paragraphs(HANS, HANS_2).encode("gb18030"), "gb18030"),
    ("gb18030-traditional", _two_paragraphs(HANT, HANT_2), _two_paragraphs(HANT, HANT_2).encode("gb18030"), "gb18030"),
    ("big5", _two_paragraphs(HANT, HANT_2), _two_paragraphs(HANT, HANT_2).encode("big5"), "big5"),
    ("utf-16-le-bom", _two_paragraphs(HANT, HANS), b"\xff\xfe" + _two_paragraphs(HANT, HANS).encode("utf-16-le"), "utf-16"),
    ("utf-16-be-bom", _two_paragraphs(HANS, HANT), b"\xfe\xff" + _two_paragraphs(HANS, HANT).encode("utf-16-be"), "utf-16"),
]


@pytest.mark.parametrize("text,data,encoding", [e[1:] for e in ENCODINGS], ids=[e[0] for e in ENCODINGS])
def test_file_encodings_decode_to_the_original_text(tmp_path, text, data, encoding):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "doc.txt").write_bytes(data)
    rep = read_corpus(corpus)
    assert rep.skipped == []
    [doc] = rep.documents
    assert doc.text == text  # no BOM, no mojibake, not re-normalised
    assert doc.encoding == encoding
    # The content of both paragraphs survives cleaning, character for character.
    kept = "".join(doc.text[b.start : b.end] for b in doc.blocks)
    first, second = text.split("\n\n")
    assert first.strip() in kept and second.strip() in kept


def test_offsets_index_the_decoded_file_text(tmp_path):
    # A GB18030 file: blocks point at characters, not bytes.
    corpus = write_corpus(tmp_path / "corpus", {})
    text = _two_paragraphs(HANS, HANS_2)
    (corpus / "gb.txt").write_bytes(text.encode("gb18030"))
    [doc] = read_corpus(corpus).documents
    assert [doc.text[b.start : b.end] for b in doc.blocks] == [HANS, HANS_2]


def test_short_big5_file_is_decoded_as_big5(tmp_path):
    text = "台北市政府今天宣布。"
    assert decode_bytes(text.encode("big5")) == (text, "big5")
    corpus = write_corpus(tmp_path / "corpus", {})
    (corpus / "short.txt").write_bytes(text.encode("big5"))
    [doc] = read_corpus(corpus).documents
    assert doc.text == text


def test_bad_files_are_skipped_with_a_message_and_the_rest_indexed(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    (corpus / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (corpus / "nul.txt").write_bytes("区块链\x00\x00\x00数据".encode("utf-8"))
    (corpus / "empty.txt").write_bytes(b"")
    (corpus / "blank.txt").write_text(" \n\t\n\u3000\u3000\n\n", encoding="utf-8")
    rep = read_corpus(corpus)
    assert sorted(d.doc_id for d in rep.documents) == sorted(TINY_DOCS)
    skipped = dict(rep.skipped)
    assert set(skipped) == {"image.txt", "nul.txt", "empty.txt", "blank.txt"}
    assert "binary" in skipped["image.txt"] and "NUL" in skipped["image.txt"]
    assert "binary" in skipped["nul.txt"]
    assert "empty" in skipped["empty.txt"]
    assert "empty" in skipped["blank.txt"]


def test_cli_build_names_each_skipped_file(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus")
    (corpus / "image.txt").write_bytes(b"\x00\x01\x02\x03binary")
    (corpus / "empty.txt").write_bytes(b"")
    rc = cli_main(["build", "--corpus", str(corpus), "--index", str(tmp_path / "index"), "--encoder", "hash", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert f"indexed {len(TINY_DOCS)} documents" in out
    err_lines = err.splitlines()
    assert any(line.startswith("skipped image.txt:") and "binary" in line for line in err_lines), err
    assert any(line.startswith("skipped empty.txt:") and "empty" in line for line in err_lines), err


def test_unsupported_file_types_are_skipped_with_the_types_that_are_read(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    (corpus / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (corpus / "notes.rtf").write_bytes(HANS.encode("utf-8"))  # text inside, but not a type that is read
    (corpus / "data.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    (corpus / "doc.txt.meta.json").write_text('{"title": "t"}', encoding="utf-8")  # a sidecar: quiet
    (corpus / ".hidden.png").write_bytes(b"x")  # hidden: quiet
    rep = read_corpus(corpus)
    assert {d.doc_id for d in rep.documents} == set(TINY_DOCS)
    assert set(rep.hashes) == set(TINY_DOCS)
    assert sorted(rep.skipped) == [(name, UNSUPPORTED) for name in ("data.csv", "notes.rtf", "picture.png")]
    assert ".txt, .md, .markdown, .text, .pdf, .docx, .html, .htm" in UNSUPPORTED


def test_markdown_and_subfolders_are_read_with_relative_ids(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {"a/b/notes.md": _two_paragraphs(HANS, HANS_2)})
    [doc] = read_corpus(corpus).documents
    assert doc.doc_id == "a/b/notes.md"


def test_symlink_loop_does_not_hang_and_each_file_is_read_once(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": _two_paragraphs(HANS, HANS_2), "sub/b.txt": _two_paragraphs(HANT, HANT_2)})
    os.symlink(corpus, corpus / "sub" / "up")  # sub/up -> its parent folder: a loop
    os.symlink(corpus / "sub", corpus / "self")  # a second way into sub/

    result: dict = {}

    def scan():
        result["report"] = read_corpus(corpus)

    worker = threading.Thread(target=scan, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive(), "read_corpus did not finish: symlink loop followed forever"
    rep = result["report"]
    texts = sorted(d.text for d in rep.documents)
    assert texts == sorted([_two_paragraphs(HANS, HANS_2), _two_paragraphs(HANT, HANT_2)])
    assert any("loop" in why for _, why in rep.skipped), rep.skipped


def test_read_docs_jsonl_reports_bad_lines_by_number_and_keeps_the_rest(tmp_path):
    path = tmp_path / "docs.jsonl"
    lines = [
        json.dumps({"doc_id": "d1", "title": "一", "text": HANS}, ensure_ascii=False),  # 1 ok
        '{"doc_id": "broken", "text": ',  # 2 bad JSON
        "",  # 3 blank: ignored, not an error
        json.dumps({"title": "no id", "text": HANS_2}, ensure_ascii=False),  # 4 no doc_id
        json.dumps({"doc_id": "d5", "text": 42}),  # 5 text not a string
        "[1, 2, 3]",  # 6 not an object
        json.dumps({"doc_id": "d7", "title": "七", "text": HANT}, ensure_ascii=False),  # 7 ok
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rep = read_docs_jsonl(path)
    assert [d.doc_id for d in rep.documents] == ["d1", "d7"]
    assert [d.title for d in rep.documents] == ["一", "七"]
    assert [d.text for d in rep.documents] == [HANS, HANT]
    assert [name for name, _ in rep.skipped] == ["docs.jsonl:2", "docs.jsonl:4", "docs.jsonl:5", "docs.jsonl:6"]
    assert all("bad line" in why for _, why in rep.skipped)
    # load_corpus picks the jsonl reader from the suffix
    assert [d.doc_id for d in load_corpus(path).documents] == ["d1", "d7"]


def test_docs_jsonl_with_a_duplicate_doc_id_is_reported(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text(
        json.dumps({"doc_id": "a", "title": "A", "text": HANS}, ensure_ascii=False) + "\n"
        + json.dumps({"doc_id": "a", "title": "B", "text": HANT_2}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    rep = read_docs_jsonl(path)
    assert [d.text for d in rep.documents] == [HANS]
    assert any(name == "docs.jsonl:2" and "duplicate" in why for name, why in rep.skipped)
    p, _ = Pipeline.build(path, tmp_path / "index", "hash")
    assert len({x.id for x in p.passages}) == len(p.passages)
    assert all(x.text in HANS for x in p.passages)


def test_build_of_a_corpus_with_nothing_indexable_raises_corpus_error(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {"empty.txt": "", "blank.md": "  \n\n"})
    (corpus / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(64))
    with pytest.raises(CorpusError) as exc:
        Pipeline.build(corpus, tmp_path / "index", "hash")
    msg = str(exc.value)
    assert "nothing to index" in msg and "empty.txt" in msg
    assert not (tmp_path / "index" / "manifest.json").exists()


def test_build_of_an_empty_folder_raises_corpus_error(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    with pytest.raises(CorpusError, match="nothing to index"):
        Pipeline.build(corpus, tmp_path / "index", "hash")


def test_missing_corpus_folder_raises_corpus_error(tmp_path):
    with pytest.raises(CorpusError, match="does not exist"):
        read_corpus(tmp_path / "nope")


# ---- what a scan must never read, and nothing left out without a message ----------------

NOT_REGULAR = "not a regular file but a {}; only regular files are read: use a plain file"
EXPECTED = "a folder, a document (.txt, .md, .markdown, .text, .pdf, .docx, .html, .htm) or a .jsonl docs file"
needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")


def _outside(target) -> str:
    return f"link points outside the corpus; not followed (it leads to {os.path.realpath(target)}): " \
        "copy what it points to into the corpus"


def _finishes(fn, timeout: float = 20):
    """(finished, result) of ``fn()`` run in a thread: a scan that opens a FIFO blocks forever."""
    out: dict = {}
    worker = threading.Thread(target=lambda: out.update(result=fn()), daemon=True)
    worker.start()
    worker.join(timeout)
    return not worker.is_alive(), out.get("result")


def _unblock(fifo) -> None:
    """Let a reader blocked on ``fifo`` (old code under test) see end-of-file."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # nobody was waiting on it


@needs_fifo
def test_a_fifo_in_the_corpus_is_skipped_without_being_opened(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    fifo = corpus / "pipe.txt"
    os.mkfifo(fifo)
    try:
        done, result = _finishes(lambda: (read_corpus(corpus), current_hashes(corpus)))
        assert done, "read_corpus or current_hashes blocked opening a FIFO"
    finally:
        _unblock(fifo)
    rep, hashes = result
    assert {d.doc_id for d in rep.documents} == set(TINY_DOCS)
    assert rep.skipped == [("pipe.txt", NOT_REGULAR.format("named pipe (FIFO)"))]
    assert hashes == rep.hashes and "pipe.txt" not in hashes


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /dev/zero and /proc/self/statm")
def test_a_link_to_dev_zero_is_skipped_instead_of_read_forever(tmp_path):
    # Run in a child whose address space is capped 512 MB above what it has mapped after
    # its imports: reading /dev/zero to its end would grow until the cap and fail there.
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": _two_paragraphs(HANS, HANS_2)})
    os.symlink("/dev/zero", corpus / "zero.txt")
    script = textwrap.dedent("""
        import json, resource, sys
        from qa.ingest import current_hashes, read_corpus
        cap = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize() + (512 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        print(json.dumps([[read_corpus(sys.argv[1], **kw).skipped, current_hashes(sys.argv[1], **kw)]
                          for kw in ({}, {"follow_links": True})]))
    """)
    res = subprocess.run([sys.executable, "-c", script, str(corpus)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    (plain, plain_hashes), (followed, followed_hashes) = json.loads(res.stdout)
    assert plain == [["zero.txt", _outside("/dev/zero")]]
    assert followed == [["zero.txt", NOT_REGULAR.format("character device")]]
    assert set(plain_hashes) == set(followed_hashes) == {"a.txt"}


@pytest.mark.skipif(not os.path.isfile("/proc/self/status"), reason="needs /proc")
def test_the_size_limit_counts_the_bytes_read_not_the_size_a_file_claims(tmp_path, monkeypatch):
    assert os.stat("/proc/self/status").st_size == 0  # a regular file that says it is empty, yet holds text
    monkeypatch.setattr(qa.ingest, "MAX_FILE_BYTES", 64)
    corpus = write_corpus(tmp_path / "corpus", {})
    os.symlink("/proc/self/status", corpus / "status.txt")
    rep = read_corpus(corpus, follow_links=True)
    assert rep.documents == []
    assert [(name, why.split(";")[0]) for name, why in rep.skipped] == [("status.txt", "larger than 0 MB")]
    assert rep.hashes == current_hashes(corpus, follow_links=True) == {"status.txt": "larger than 64 bytes"}


@needs_fifo
def test_a_sidecar_is_read_as_safely_as_its_file(tmp_path, monkeypatch):
    monkeypatch.setattr(qa.ingest, "MAX_SIDECAR_BYTES", 64)
    names = ["linked.txt", "fifo.txt", "big.txt", "good.txt"]
    corpus = write_corpus(tmp_path / "corpus", {n: _two_paragraphs(HANS, HANS_2) for n in names})
    secret = tmp_path / "secret.meta.json"
    secret.write_text(json.dumps({"title": "秘密"}, ensure_ascii=False), encoding="utf-8")
    os.symlink(secret, corpus / "linked.txt.meta.json")
    os.mkfifo(corpus / "fifo.txt.meta.json")
    (corpus / "big.txt.meta.json").write_text(json.dumps({"title": "大" * 40}, ensure_ascii=False), encoding="utf-8")
    (corpus / "good.txt.meta.json").write_text(json.dumps({"title": "好"}, ensure_ascii=False), encoding="utf-8")
    try:
        done, rep = _finishes(lambda: read_corpus(corpus))
        assert done, "read_corpus blocked opening a FIFO sidecar"
    finally:
        _unblock(corpus / "fifo.txt.meta.json")
    assert {d.doc_id: d.title for d in rep.documents} == {"big.txt": "big", "fifo.txt": "fifo", "linked.txt": "linked", "good.txt": "好"}
    assert rep.skipped == []
    assert sorted(rep.warnings) == [
        ("big.txt", "ignored big.txt.meta.json: larger than 0 MB; it holds only a title, date and source"),
        ("fifo.txt", "ignored fifo.txt.meta.json: " + NOT_REGULAR.format("named pipe (FIFO)")),
        ("linked.txt", "ignored linked.txt.meta.json: " + _outside(secret)),
    ]
    assert current_hashes(corpus) == rep.hashes


def test_docs_jsonl_line_that_is_not_utf8_is_skipped_by_its_number(tmp_path):
    path = tmp_path / "docs.jsonl"
    line = lambda doc_id, text: json.dumps({"doc_id": doc_id, "text": text}, ensure_ascii=False).encode("utf-8")  # noqa: E731
    path.write_bytes(b"\xef\xbb\xbf" + line("d1", HANS) + b"\r\n"
                     + b'{"doc_id": "d2", "text": "\xff"}\r\n'  # byte 27 is no UTF-8
                     + json.dumps({"doc_id": "d3", "text": HANT}, ensure_ascii=False).encode("big5") + b"\r\n"  # Big5
                     + line("d4", HANT_2) + b"\r\n")
    rep = read_docs_jsonl(path)
    assert [d.doc_id for d in rep.documents] == ["d1", "d4"]
    assert rep.skipped == [
        ("docs.jsonl:2", "bad line (not UTF-8 at byte 27 of the line (invalid start byte); save the file as UTF-8)"),
        # Big5 蘇 (C4 AC) happens to be valid UTF-8; 州 (A6 7B) is not
        ("docs.jsonl:3", "bad line (not UTF-8 at byte 29 of the line (invalid start byte); save the file as UTF-8)"),
    ]


def test_a_folder_that_cannot_be_opened_is_reported(tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": _two_paragraphs(HANS, HANS_2), "locked/b.txt": _two_paragraphs(HANT, HANT_2)})
    scandir = os.scandir

    def refuse_locked(path="."):
        if os.path.basename(path) == "locked":  # as a folder without read permission does (root reads anyway)
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refuse_locked)
    rep = read_corpus(corpus)
    assert [d.doc_id for d in rep.documents] == ["a.txt"]
    assert rep.skipped == [("locked", "cannot open folder (Permission denied); make it readable")]


def test_a_subfolder_readme_is_a_document_and_the_corpus_readme_is_left_out(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {
        "README.md": "# 关于这个语料库\n\n" + HANS_2, "LICENSE": "MIT", "licence": "MIT",
        "guide/README.md": "# 指南\n\n" + _two_paragraphs(HANS, HANS_2), "guide/LICENSE": "MIT",
    })
    rep = read_corpus(corpus)
    assert [d.doc_id for d in rep.documents] == ["guide/README.md"]
    assert rep.skipped == [("guide/LICENSE", UNSUPPORTED)]


def test_links_that_leave_the_corpus_are_not_followed_unless_asked(tmp_path):
    outside = write_corpus(tmp_path / "private", {"secret.txt": _two_paragraphs(HANT, HANT_2), "dir/more.txt": _two_paragraphs(HANT_2, HANT)})
    corpus = write_corpus(tmp_path / "corpus", {"a.txt": _two_paragraphs(HANS, HANS_2), "sub/b.txt": _two_paragraphs(HANS_2, HANS)})
    os.symlink(outside / "secret.txt", corpus / "secret.txt")
    os.symlink(outside / "dir", corpus / "private")
    os.symlink(os.path.join("..", "a.txt"), corpus / "sub" / "alias.txt")  # inside the corpus: followed
    rep = load_corpus(corpus)
    assert [d.doc_id for d in rep.documents] == ["a.txt", "sub/alias.txt", "sub/b.txt"]
    assert rep.skipped == [("private", _outside(outside / "dir")), ("secret.txt", _outside(outside / "secret.txt"))]
    assert current_hashes(corpus) == rep.hashes and set(rep.hashes) == {"a.txt", "sub/alias.txt", "sub/b.txt"}
    rep = load_corpus(corpus, follow_links=True)
    assert [d.doc_id for d in rep.documents] == ["a.txt", "secret.txt", "private/more.txt", "sub/alias.txt", "sub/b.txt"]
    assert rep.skipped == []
    assert current_hashes(corpus, follow_links=True) == rep.hashes


def test_a_single_text_file_is_a_corpus_of_one_document(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus", {"notes.zh-Hans.txt": _two_paragraphs(HANS, HANS_2), "other.txt": _two_paragraphs(HANT, HANT_2)})
    (corpus / "notes.zh-Hans.txt.meta.json").write_text(json.dumps({"title": "笔记", "date": "2022-04-12"}, ensure_ascii=False),
                                                         encoding="utf-8")
    one = corpus / "notes.zh-Hans.txt"
    rep = load_corpus(one)
    [doc] = rep.documents
    assert (doc.doc_id, doc.title, doc.date) == ("notes.zh-Hans.txt", "笔记", "2022-04-12")
    # the same document and hash as when it is read with its folder
    folder = load_corpus(corpus)
    assert doc == next(d for d in folder.documents if d.doc_id == doc.doc_id)
    assert rep.hashes == current_hashes(one) == {"notes.zh-Hans.txt": folder.hashes["notes.zh-Hans.txt"]}
    index = tmp_path / "index"
    assert cli_main(["build", "--corpus", str(one), "--index", str(index), "--encoder", "hash", "--quiet"]) == 0
    assert "indexed 1 documents" in capsys.readouterr().out
    assert not is_stale(json.loads((index / "manifest.json").read_text(encoding="utf-8")), one)


@pytest.mark.parametrize("kind", ["file of an unsupported type", pytest.param("named pipe (FIFO)", marks=needs_fifo)])
def test_a_corpus_that_is_no_folder_text_or_docs_file_says_what_is_expected(tmp_path, capsys, kind):
    path = tmp_path / "corpus.rtf"
    if kind.startswith("named pipe"):
        os.mkfifo(path)
    else:
        path.write_bytes(b"{\\rtf1 " + HANS.encode("utf-8"))
    with pytest.raises(CorpusError) as exc:
        load_corpus(path)
    assert str(exc.value) == f"corpus {str(path)!r} is a {kind}; pass --corpus with {EXPECTED}"
    assert current_hashes(path) == {}
    assert cli_main(["build", "--corpus", str(path), "--index", str(tmp_path / "index"), "--encoder", "hash", "--quiet"]) == 1
    assert capsys.readouterr().err.strip() == f"error: {exc.value}"
