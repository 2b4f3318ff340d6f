"""Fault injection: what a careless or hostile user does to an index, and what they see.

After each fault the previous index answers byte-identically (``ask --json``), or the user got one
line that says what to do, and doing it restores the same answers. Everything uses the ``hash``
encoder and writes under tmp_path.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, TINY_DOCS, run_qa, write_corpus

from qa import Pipeline, store
from qa.cli import inert
from qa.cli import main as cli_main
from qa.errors import EncoderError
from qa.search import DenseIndex, LexicalIndex, SentenceVectors
from qa.text import CharGrams

# Each case runs the CLI in subprocesses (about a second each): the suite belongs to the slow tier.
pytestmark = pytest.mark.slow

QUESTION = "相城区有多少家区块链企业？"


def _answer(index: Path, cwd: Path = ROOT, *extra) -> str:
    """``python -m qa ask QUESTION --json`` on ``index``; the JSON line (exit 0 asserted)."""
    r = run_qa("ask", QUESTION, "--index", index, "--json", *extra, cwd=cwd)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _error(r: subprocess.CompletedProcess) -> str:
    """The one error line of a failed CLI run."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "unexpected" not in lines[0] and "Traceback" not in r.stderr
    return lines[0]


def _manifest(index: Path) -> dict:
    return json.loads((index / "manifest.json").read_text(encoding="utf-8"))


def _snapshot(index: Path) -> dict[str, bytes]:
    """The manifest and every file of the build it names."""
    m = _manifest(index)
    files = {"manifest.json": (index / "manifest.json").read_bytes()}
    files.update({rel: (index / m["build"] / rel).read_bytes() for rel in m["files"]})
    return files


def _builds(index: Path) -> list[str]:
    return sorted(p.name for p in index.iterdir() if p.name.startswith("build-"))


@pytest.fixture
def cli_index(tmp_path: Path) -> tuple[Path, Path, str]:
    """(corpus, index, ask --json output) of the tiny corpus built with the CLI and the hash encoder."""
    corpus = write_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    r = run_qa("build", "--corpus", corpus, "--index", index, "--encoder", "hash", "--quiet")
    assert r.returncode == 0, r.stderr
    return corpus, index, _answer(index)


# ---- the corpus an index is refreshed from ------------------------------------------------------


def test_a_copied_index_is_not_refreshed_from_another_corpus_beside_the_user(tmp_path):
    """Built with a relative ``--corpus corpus``; asked from a folder whose own ``corpus/`` differs."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    write_corpus(home / "corpus")
    write_corpus(elsewhere / "corpus", {"other.txt": "另一个文件\n\n这里只谈红烧肉的做法。\n"})
    r = run_qa("build", "--corpus", "corpus", "--index", "index", "--encoder", "hash", "--quiet", cwd=home)
    assert r.returncode == 0, r.stderr
    assert _manifest(home / "index")["corpus"]["path"] == str((home / "corpus").resolve())
    copy = tmp_path / "copy"
    shutil.copytree(home / "index", copy)
    before = _snapshot(copy)
    answer = _answer(copy, cwd=home)

    assert _answer(copy, cwd=elsewhere) == answer
    assert _snapshot(copy) == before  # not rebuilt from elsewhere/corpus
    p = Pipeline.open(None, copy)  # what app.py --index COPY does
    assert set(p.documents) == set(TINY_DOCS)

    # naming the other corpus is how to switch: then it is rebuilt from it
    r = run_qa("ask", QUESTION, "--index", copy, "--corpus", "corpus", "--json", cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert _manifest(copy)["counts"]["documents"] == 1


def test_an_index_that_recorded_a_relative_corpus_path_is_served_as_it_is_elsewhere(tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path / "home" / "corpus")
    index = tmp_path / "home" / "index"
    Pipeline.build(corpus, index, "hash")
    m = _manifest(index)
    m["corpus"]["path"] = "corpus"  # as indexes built before absolute paths recorded it
    (index / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    write_corpus(tmp_path / "elsewhere" / "corpus", {"other.txt": "另一个文件\n\n这里只谈红烧肉的做法。\n"})
    copy = tmp_path / "copy" / "index"
    shutil.copytree(index, copy)
    before = _snapshot(copy)

    monkeypatch.chdir(tmp_path / "elsewhere")
    assert set(Pipeline.open(None, copy).documents) == set(TINY_DOCS)
    assert _snapshot(copy) == before
    assert store.corpus_path(m, copy) is None
    err = _error(run_qa("build", "--index", copy, "--quiet", cwd=tmp_path / "elsewhere"))
    assert "cannot tell which folder" in err and "--corpus DIR" in err
    assert _snapshot(copy) == before

    # beside its own corpus (the usual layout), the relative path is still understood
    monkeypatch.chdir(tmp_path / "home")
    assert store.corpus_path(m, Path("index")) == corpus.resolve()


# ---- damaged files and the suggested repair -----------------------------------------------------


@pytest.mark.parametrize("rel", ["dense.faiss", "sentences/vectors.npy", "documents.jsonl", "passages.jsonl",
                                 "bm25/vocab.index.json", store.GRAMS])
def test_flipped_bytes_then_the_suggested_repair_gives_the_same_answers(cli_index, rel):
    _, index, answer = cli_index
    m = _manifest(index)
    path = index / m["build"] / rel
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, min(len(data), len(data) // 2 + 8)):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))

    err = _error(run_qa("ask", QUESTION, "--index", index))
    assert "fails its checksum" in err
    command = err.split("rebuild with: ")[1]
    assert command.startswith("python -m qa build --index") and "--encoder hash:64" in command
    args = command.split()[3:]
    r = run_qa(*args)
    assert r.returncode == 0, r.stderr
    if rel in ("dense.faiss", "sentences/vectors.npy"):
        assert "(0 embedded" not in r.stdout and "sentences, 0 embedded" not in r.stdout, r.stdout
    assert _answer(index) == answer


def test_vectors_are_reused_only_from_files_that_pass_their_checksum(built_index):
    corpus, index, p = built_index
    m = _manifest(index)
    path = index / m["build"] / "dense.faiss"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # same size: only the checksum tells
    path.write_bytes(bytes(data))
    _, report = Pipeline.build(corpus, index, "hash")
    assert report.embedded == report.passages and report.reused == 0


def test_nan_vectors_are_never_written(built_index, monkeypatch):
    corpus, index, _ = built_index
    before = _snapshot(index)
    from qa.encode import HashEncoder

    real = HashEncoder.encode_batch
    monkeypatch.setattr(HashEncoder, "encode_batch",
                        lambda self, texts, kind: np.full_like(real(self, texts, kind), np.nan))
    (corpus / "new.txt").write_text("新文件\n\n一段新的文字。\n", encoding="utf-8")
    with pytest.raises(EncoderError, match="NaN or infinite"):
        Pipeline.build(corpus, index, "hash")
    assert _snapshot(index) == before


def test_the_repair_of_a_docs_jsonl_index_names_its_corpus_and_encoder(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"doc_id": n, "title": n, "text": t}, ensure_ascii=False) + "\n"
                            for n, t in TINY_DOCS.items()), encoding="utf-8")
    index = tmp_path / "index"
    assert run_qa("build", "--corpus", docs, "--index", index, "--encoder", "hash", "--quiet").returncode == 0
    answer = _answer(index)
    (index / _manifest(index)["build"] / "passages.jsonl").write_text("damaged\n", encoding="utf-8")
    command = _error(run_qa("ask", QUESTION, "--index", index)).split("rebuild with: ")[1]
    assert f"--corpus {docs}" in command and "--encoder hash:64" in command
    assert run_qa(*command.split()[3:]).returncode == 0
    assert _answer(index) == answer

    # a manifest that cannot be read: the corpus and encoder are unknown, and the message says so
    (index / "manifest.json").write_text("{not json", encoding="utf-8")
    err = _error(run_qa("ask", QUESTION, "--index", index))
    assert "--corpus DIR --encoder SPEC" in err and "cannot be read from the index" in err
    err = _error(run_qa("build", "--index", index, "--quiet", cwd=tmp_path))  # never guesses ./corpus
    assert "--corpus DIR" in err
    assert run_qa("build", "--index", index, "--corpus", docs, "--encoder", "hash", "--quiet").returncode == 0
    assert _answer(index) == answer


# ---- a full disk and other failed writes -----------------------------------------------------------


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _manifest_write_fails(monkeypatch) -> None:
    real = Path.write_text

    def write_text(self, *args, **kwargs):
        if self.name.startswith(".manifest-"):
            self.touch()  # the temp file exists, half-written, when the disk fills
            _no_space()
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


WRITE_STAGES = {
    "documents": lambda mp: mp.setattr(store, "write_documents", _no_space),
    "passages": lambda mp: mp.setattr(store, "write_passages", _no_space),
    "dense": lambda mp: mp.setattr(DenseIndex, "save", _no_space),
    "bm25": lambda mp: mp.setattr(LexicalIndex, "save", _no_space),
    "sentences": lambda mp: mp.setattr(SentenceVectors, "save", _no_space),
    "chargrams": lambda mp: mp.setattr(CharGrams, "save", _no_space),
    "fsync": lambda mp: mp.setattr(store, "_fsync_tree", _no_space),
    "manifest": _manifest_write_fails,
}


@pytest.mark.parametrize("stage", list(WRITE_STAGES))
def test_a_full_disk_at_each_write_leaves_the_previous_index_and_nothing_else(built_index, monkeypatch, capsys,
                                                                              stage):
    corpus, index, _ = built_index
    before = _snapshot(index)
    (corpus / "new.txt").write_text("新文件\n\n一段新的文字，讲碧螺春。\n", encoding="utf-8")
    WRITE_STAGES[stage](monkeypatch)
    code = cli_main(["build", "--index", str(index), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "no space left on the device holding" in err[0], err
    assert _snapshot(index) == before
    assert _builds(index) == [_manifest(index)["build"]]  # the failed build's folder is gone
    assert not [p for p in index.iterdir() if p.name.startswith(".manifest-")]

    monkeypatch.undo()
    rebuilt, _ = Pipeline.build(corpus, index, "hash")
    assert any("碧螺春" in p.text for p in rebuilt.passages)
    assert _builds(index) == [_manifest(index)["build"]]


def test_stale_partial_build_folders_never_block_a_later_build(built_index):
    corpus, index, _ = built_index
    keep = _manifest(index)["build"]
    for name in ("build-20260101-000000-aaaaaa", "build-20260101-000001-bbbbbb"):
        (index / name).mkdir()
        (index / name / "dense.faiss").write_bytes(b"\0" * 1024)
    (corpus / "new.txt").write_text("新文件\n\n一段新的文字。\n", encoding="utf-8")
    Pipeline.build(corpus, index, "hash")
    assert _builds(index) == [_manifest(index)["build"]] and keep not in _builds(index)


@pytest.mark.skipif(sys.platform != "linux" or shutil.which("mount") is None, reason="needs Linux mount")
def test_a_real_full_disk(tmp_path):
    """A 1 MiB tmpfs; skipped where this machine does not let the tests mount one."""
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        corpus = write_corpus(tmp_path / "corpus")
        index = small / "index"
        Pipeline.build(corpus, index, "hash")
        before, answer = _snapshot(index), _answer(index)
        big = "".join(f"第{i}段：相城区区块链企业的第{i}个应用场景备案成功，编号{i * 7919}。\n\n" for i in range(6000))
        (corpus / "big.txt").write_text("大文件\n\n" + big, encoding="utf-8")
        err = _error(run_qa("build", "--index", index, "--quiet"))
        assert "no space left on the device holding" in err
        assert _snapshot(index) == before and _builds(index) == [_manifest(index)["build"]]
        r = run_qa("ask", QUESTION, "--index", index, "--json")  # the stale index still answers, and says why
        assert r.returncode == 0 and r.stdout == answer, r.stderr
        assert r.stderr.startswith("warning: the corpus changed but the index could not be refreshed: no space")
        (corpus / "big.txt").unlink()
        assert run_qa("build", "--index", index, "--quiet").returncode == 0
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


def test_an_index_path_that_is_a_file_is_a_one_line_error(tmp_path):
    target = tmp_path / "not-a-folder"
    target.write_text("x", encoding="utf-8")
    for args in (["build", "--corpus", write_corpus(tmp_path / "corpus")], ["ask", QUESTION]):
        err = _error(run_qa(*args, "--index", target, "--encoder", "hash"))
        assert "is a file, not an index folder" in err
    assert target.read_text(encoding="utf-8") == "x"


def test_a_lock_that_is_a_folder_is_a_one_line_error(cli_index):
    corpus, index, answer = cli_index
    (index / ".lock").unlink()
    (index / ".lock").mkdir()
    err = _error(run_qa("build", "--index", index, "--quiet"))
    assert ".lock" in err and "is a folder" in err
    assert _answer(index) == answer


def test_an_index_folder_that_cannot_be_written_is_a_one_line_error(built_index, monkeypatch, capsys):
    """Tests run as root, which writes anywhere: the refusal is simulated where the lock is opened."""
    corpus, index, _ = built_index
    real_open = Path.open

    def refuse(self, *args, **kwargs):
        if self.name == ".lock":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    assert cli_main(["build", "--index", str(index), "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert "cannot write" in err and ".lock" in err and "Permission denied" in err and "\n" not in err


@pytest.mark.parametrize("files", [
    {"../../outside": {"sha256": "0" * 64, "bytes": 1}},
    {"dense.faiss": "tampered"},
    {"dense.faiss": {"sha256": "x", "bytes": "many"}},
])
def test_a_tampered_files_entry_in_the_manifest_is_a_one_line_error(cli_index, files):
    _, index, _ = cli_index
    m = _manifest(index)
    m["files"] = files
    (index / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    err = _error(run_qa("ask", QUESTION, "--index", index))
    assert "invalid data file" in err and "rebuild with: python -m qa build" in err


def test_a_tampered_build_name_cannot_point_outside_the_index(cli_index):
    _, index, _ = cli_index
    m = _manifest(index)
    m["build"] = "../../etc"
    (index / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    assert "not a build folder" in _error(run_qa("ask", QUESTION, "--index", index))


# ---- what the terminal shows ------------------------------------------------------------------------

HOSTILE = "恶意文件\n\n相城区有160家区块链企业\x1b]0;pwned\x07\x1b[2J，见\x1b]8;;http://evil.example\x1b\\链接\x1b]8;;\x1b\\。\u202e反转\n"


def test_terminal_escapes_in_a_document_are_shown_inert_and_json_stays_exact(tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {"hostile.txt": HOSTILE})
    index = tmp_path / "index"
    Pipeline.build(corpus, index, "hash")
    r = run_qa("ask", "相城区有多少家区块链企业？", "--index", index)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout and "\u202e" not in r.stdout
    assert "\\x1b]0;pwned\\x07" in r.stdout and "\\u202e" in r.stdout
    j = json.loads(_answer(index))
    assert "\x1b[2J" in j["passages"][0]["text"]  # --json: the document's exact text
    assert inert("第一行\n\t第二行　全角") == "第一行\n\t第二行　全角"


# ---- corpora with files that are not files ----------------------------------------------------------


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs FIFOs")
def test_a_fifo_a_device_and_a_link_out_of_the_corpus_never_hang_or_leak(cli_index, tmp_path):
    import os

    corpus, index, answer = cli_index
    outside = write_corpus(tmp_path / "secret", {"secret.txt": "机密\n\n相城区的秘密是有200家区块链企业。\n"})
    os.mkfifo(corpus / "pipe.txt")
    os.symlink("/dev/zero", corpus / "zero.txt")
    os.symlink(outside, corpus / "linked")
    r = run_qa("build", "--index", index, "--quiet", timeout=120)
    assert r.returncode == 0, r.stderr
    for name in ("pipe.txt", "zero.txt", "linked"):
        assert any(line.startswith(f"skipped {name}") for line in r.stderr.splitlines()), r.stderr
    assert "secret" not in json.dumps(_manifest(index)["corpus"]["files"])
    assert _answer(index) == answer
