"""Ingest: decoding of every supported file encoding, skipped files, symlink loops, docs.jsonl."""

from __future__ import annotations

import json
import os
import threading

import pytest
from conftest import TINY_DOCS, write_corpus

from qa import Pipeline
from qa.cli import main as cli_main
from qa.errors import CorpusError
from qa.ingest import decode_bytes, load_corpus, read_corpus, read_docs_jsonl

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


def test_non_text_suffixes_are_ignored(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    (corpus / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (corpus / "notes.pdf").write_bytes(HANS.encode("utf-8"))  # text inside, but not a text file type
    (corpus / "data.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    rep = read_corpus(corpus)
    ids = {d.doc_id for d in rep.documents}
    assert ids == set(TINY_DOCS)
    for name in ("picture.png", "notes.pdf", "data.csv"):
        assert name not in ids
        assert name not in rep.hashes
        assert name not in dict(rep.skipped)


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
