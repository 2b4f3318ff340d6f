"""Milvus store: the whole pipeline on Milvus Lite (``--index milvus:PATH.db``) with the hash encoder.

What the folder store answers, the Milvus store answers the same: passages, scores' order, quotes and
abstention. Builds reuse vectors of unchanged text, a build that fails midway leaves the previous one
answering, and N shards written one after another make one index. Milvus Lite serves one process at
a time, so a test that runs the CLI in a subprocess gives it a database this process never opened.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import OFF_TOPIC, REAL_QUESTION, ROOT, run_qa, stop_app, wait_for_app, write_corpus

from qa import Pipeline
from qa.bench.milvus import milvus_spec
from qa.pipeline import PipelineHolder
from qa.catalog import list_documents
from qa.encode import HashEncoder
from qa.errors import IndexMissingError, IndexWriteError, QAError
from qa.index_spec import index_arg, open_store, parse_shard
from qa.milvus_store import MilvusStore, parse_milvus
from qa.milvus_write import MilvusWriter, blob_rows, words_of
from qa.config import IndexConfig
from qa.stores import Built, shard_of
from qa.text import tokenize
from qa.uploads import update

pytest.importorskip("milvus_lite")

QUESTIONS = [REAL_QUESTION, OFF_TOPIC, "臺北捷運什麼時候通車？", "龙井茶产于哪里？", "Who created Python?",
             "相城区集聚了多少家区块链企业？"]


def _change_a_file(corpus: Path) -> None:
    (corpus / "longjing-tea.zh-Hans.txt").write_text(
        "碧螺春\n\n碧螺春产于江苏苏州太湖洞庭山，是中国传统名茶。\n", encoding="utf-8")


def _collections(spec: str) -> list[str]:
    store = MilvusStore(spec)
    return sorted(c for c in store.client.list_collections() if c.startswith(f"{store.name}_"))


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """(corpus, folder pipeline, Milvus pipeline, spec) of the tiny corpus, built once."""
    base = tmp_path_factory.mktemp("milvus")
    corpus = write_corpus(base / "corpus")
    folder, _ = Pipeline.build(corpus, base / "index", "hash")
    spec = f"milvus:{base / 'index.db'}"
    milvus, report = Pipeline.build(corpus, spec, "hash")
    assert report.passages == len(folder.passages) and report.embedded == len(folder.passages)
    return corpus, folder, milvus, spec


# ---- without Milvus --------------------------------------------------------------


@pytest.mark.parametrize("spec, uri, name", [
    ("milvus:index.db", "index.db", "qa"),
    ("milvus:/data/qa/news.db", "/data/qa/news.db", "qa"),
    ("milvus:http://localhost:19530", "http://localhost:19530", "qa"),
    ("milvus:http://milvus.internal:19530/news_2026", "http://milvus.internal:19530", "news_2026"),
])
def test_a_milvus_spec_names_an_address_and_a_collection_prefix(spec, uri, name):
    assert parse_milvus(spec) == (uri, name)
    assert index_arg(spec) == spec  # a path would fold http:// to http:/
    assert isinstance(open_store(spec), MilvusStore)


@pytest.mark.parametrize("spec", ["milvus:index", "milvus:", "milvus:http://h:19530/bad-name", "milvus:http://h/1x"])
def test_a_bad_milvus_spec_is_a_one_line_error_naming_both_forms(spec):
    with pytest.raises(QAError, match="milvus:") as exc:
        parse_milvus(spec)
    assert "\n" not in str(exc.value)


def test_the_bench_names_one_milvus_index_per_size(tmp_path):
    assert milvus_spec("milvus", tmp_path, 10_000) == f"milvus:{tmp_path.resolve()}/indexes/n10000.db"
    assert milvus_spec("milvus:http://h:19530/", tmp_path, 100) == "milvus:http://h:19530/bench_n100"
    assert parse_milvus(milvus_spec("milvus:http://h:19530", tmp_path, 100)) == ("http://h:19530", "bench_n100")


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_a_bad_shard_is_a_one_line_error(text):
    with pytest.raises(QAError, match="I/N"):
        parse_shard(text)


def test_shards_split_passages_stably_and_evenly():
    ids = [f"doc-{d}.txt#{i}" for d in range(50) for i in range(20)]
    counts = np.bincount([shard_of(i, 4) for i in ids], minlength=5)[1:]
    assert counts.sum() == 1000 and counts.min() > 200  # about a quarter each
    assert [shard_of(i, 4) for i in ids[:5]] == [shard_of(i, 4) for i in ids[:5]]  # no per-process salt


def test_long_texts_are_stored_in_pieces_that_fit_a_varchar():
    text = "𠀀" * 40_000  # 4 bytes each in UTF-8
    rows = list(blob_rows("doc/7", text, 2))
    assert "".join(r["data"] for r in rows) == text and [r["part"] for r in rows] == [0, 1, 2]
    assert max(len(r["data"].encode("utf-8")) for r in rows) <= 65_535
    assert words_of(["3.5", "u.s", "don't", "苏州"]) == "3_5 u_s don_t 苏州"
    assert len(words_of(["区块链"] * 30_000).encode("utf-8")) <= 65_000


def test_a_folder_index_refuses_a_shard(tiny_corpus, tmp_path):
    with pytest.raises(IndexWriteError, match="Milvus"):
        Pipeline.build_shard(tiny_corpus, tmp_path / "index", (1, 2), "hash")


# ---- on Milvus Lite, in this process --------------------------------------------


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_milvus_answers_as_the_folder_store_does(both, mode):
    _, folder, milvus, _ = both
    def ranked(answer):  # passages of equal score in either order (FAISS breaks ties as it goes)
        return sorted((-round(h.score, 4) if mode != "bm25" else h.rank, h.passage.id) for h in answer.hits)

    for q in QUESTIONS:
        a, b = folder.ask(q, k=3, mode=mode), milvus.ask(q, k=3, mode=mode)
        assert ranked(b) == ranked(a) and {h.passage for h in b.hits} == {h.passage for h in a.hits}, q
        assert b.confidence == pytest.approx(a.confidence, abs=1e-6), q
        assert (b.quote is None) == (a.quote is None) and (a.quote is None or b.quote.text == a.quote.text), q
        if mode != "bm25":  # BM25 scores are Milvus's (k1 + 1 times bm25s's); cosines are the same
            np.testing.assert_allclose([h.score for h in b.hits], [h.score for h in a.hits], atol=1e-4)


def test_milvus_reads_back_what_it_wrote(both):
    _, folder, milvus, spec = both
    loaded = Pipeline.load(spec)
    assert loaded.documents == folder.documents and loaded.passages == folder.passages
    assert loaded._data.vhashes == folder._data.vhashes
    rows = np.arange(len(folder.passages))
    np.testing.assert_allclose(loaded.dense.vectors(rows), folder.dense.vectors(rows), atol=1e-6)
    for r in rows:  # sentence vectors are stored rounded to float16, as in the folder
        np.testing.assert_array_equal(loaded.sentences.of(int(r)), folder.sentences.of(int(r)))
    assert loaded.lexical.vocab.keys() == folder.lexical.vocab.keys() - {""}  # bm25s keeps an empty token
    assert np.array_equal(loaded.words._grams.codes, folder.words._grams.codes)
    assert loaded.manifest["store"]["engine"] == "milvus-lite" and loaded.manifest["corpus"] == folder.manifest["corpus"]
    assert [d.name for d in list_documents(spec)] == [d.name for d in list_documents(folder.index_dir)]


def test_passages_in_any_order_are_read_back_in_their_rows(both, tmp_path):
    _, folder, _, _ = both
    order = np.arange(len(folder.passages))[::-1]  # passages need not follow their documents (the bench's do not)
    passages = [folder.passages[i] for i in order]
    counts = [len(folder.sentences.of(int(i))) for i in order]
    sentences = np.concatenate([folder.sentences.of(int(i)) for i in order])
    built = Built(list(folder.documents.values()), passages, [folder._data.vhashes[i] for i in order], counts,
                  ["0" * 20] * len(sentences), np.arange(len(order)), folder.dense.vectors(order), sentences,
                  {k: folder.manifest[k] for k in ("encoder", "split", "read", "embed", "corpus", "skipped",
                                                   "warnings")}, None)
    store = MilvusStore(f"milvus:{tmp_path / 'order.db'}")
    store.write(built, IndexConfig())
    data = store.read_index(store.read_manifest())
    assert data.passages == passages and data.grams is None
    np.testing.assert_array_equal(data.sentences.of(0), folder.sentences.of(int(order[0])))


def test_bm25_scores_of_given_rows_match_the_top_list(both):
    _, folder, milvus, _ = both
    scores = milvus.lexical.score("苏州区块链先导区")
    ids, top = scores.top(10)
    assert len(ids) >= 2 and np.all(np.diff(top) <= 0)
    np.testing.assert_allclose(scores.of(ids[::-1]), top[::-1], rtol=1e-6)
    np.testing.assert_array_equal(ids, folder.lexical.score("苏州区块链先导区").top(10)[0])
    unmatched = [r for r in range(len(milvus.passages)) if r not in set(ids.tolist())]
    assert np.all(scores.of(np.array(unmatched)) == 0)


def test_an_incremental_build_reuses_unchanged_vectors_and_switches_the_alias(tmp_path, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus")
    spec = f"milvus:{tmp_path / 'm.db'}"
    first, _ = Pipeline.build(corpus, spec, "hash")
    _change_a_file(corpus)
    embedded = []
    original = HashEncoder.encode_batch
    monkeypatch.setattr(HashEncoder, "encode_batch", lambda self, texts, kind: embedded.extend(texts) or
                        original(self, texts, kind))
    second = Pipeline.open(corpus, spec, "hash")
    assert second.manifest["build"] != first.manifest["build"]
    assert second.manifest["previous"] == first.manifest["build"]
    assert embedded and all("碧螺春" in t for t in embedded)  # only the changed file's text
    assert second.ask("碧螺春产于哪里？").best.passage.doc_id == "longjing-tea.zh-Hans.txt"
    third, report = Pipeline.build(corpus, spec, "hash")
    assert report.embedded == 0 and report.sentences_embedded == 0
    kept = {c.rsplit("_", 1)[1] for c in _collections(spec) if not c.endswith("_builds")}
    assert kept == {second.manifest["build"], third.manifest["build"]}  # the live one and the one before


@pytest.mark.parametrize("where", ["embedding", "writing"])
def test_a_build_that_fails_midway_leaves_the_previous_one_answering(tmp_path, monkeypatch, where):
    corpus = write_corpus(tmp_path / "corpus")
    spec = f"milvus:{tmp_path / 'm.db'}"
    before, _ = Pipeline.build(corpus, spec, "hash")
    answer = before.ask(REAL_QUESTION)
    _change_a_file(corpus)

    def boom(*args, **kwargs):
        raise RuntimeError("killed (simulated)")

    if where == "embedding":
        monkeypatch.setattr(HashEncoder, "encode_batch", boom)
    else:
        calls = []
        insert = MilvusWriter.insert_rows
        monkeypatch.setattr(MilvusWriter, "insert_rows",
                            lambda self, name, rows: boom() if calls.append(name) or len(calls) > 2
                            else insert(self, name, rows))
    with pytest.raises(RuntimeError, match="simulated"):
        Pipeline.build(corpus, spec, "hash")
    monkeypatch.undo()
    after = Pipeline.load(spec)
    assert after.manifest["build"] == before.manifest["build"] and after.passages == before.passages
    assert after.ask(REAL_QUESTION) .best == answer.best
    assert "碧螺春" not in "".join(p.text for p in after.passages)
    rebuilt, _ = Pipeline.build(corpus, spec, "hash")  # sweeps what the failed build left
    assert any("碧螺春" in p.text for p in rebuilt.passages)
    kept = {c.rsplit("_", 1)[1] for c in _collections(spec) if not c.endswith("_builds")}
    assert kept == {before.manifest["build"], rebuilt.manifest["build"]}


def test_two_shards_written_one_after_the_other_make_one_index(both, tmp_path):
    corpus, folder, _, _ = both
    spec = f"milvus:{tmp_path / 'sharded.db'}"
    first = Pipeline.build_shard(corpus, spec, (1, 2), "hash")
    assert first.missing == (2,) and 0 < first.passages < len(folder.passages)
    with pytest.raises(IndexMissingError):  # nothing is live until the last shard is done
        Pipeline.load(spec)
    second = Pipeline.build_shard(corpus, spec, (2, 2), "hash")
    assert second.missing == () and first.passages + second.passages == len(folder.passages)
    sharded = Pipeline.load(spec)
    assert sharded.passages == folder.passages and sharded.manifest["store"]["shards"] == 2
    assert np.array_equal(sharded.words._grams.codes, folder.words._grams.codes)
    assert sharded.lexical.vocab.keys() == folder.lexical.vocab.keys() - {""}
    for q in QUESTIONS:  # two segments: BM25 statistics per shard, so only the best passage is compared
        a, b = folder.ask(q, k=3), sharded.ask(q, k=3)
        assert (b.best and b.best.passage) == (a.best and a.best.passage) and (b.quote is None) == (a.quote is None), q
    again = Pipeline.build_shard(corpus, spec, (1, 2), "hash")  # this corpus, so built, is live already
    assert again.missing == () and Pipeline.load(spec).manifest["build"] == sharded.manifest["build"]


def test_a_shard_run_again_replaces_what_it_wrote(both, tmp_path):
    corpus, folder, _, _ = both
    spec = f"milvus:{tmp_path / 'rerun.db'}"
    Pipeline.build_shard(corpus, spec, (1, 2), "hash")
    Pipeline.build_shard(corpus, spec, (1, 2), "hash")  # a machine that died and was started again
    Pipeline.build_shard(corpus, spec, (2, 2), "hash")
    sharded = Pipeline.load(spec)  # the counts check would fail on rows written twice
    assert sharded.passages == folder.passages


@pytest.mark.slow
def test_the_apps_upload_and_removal_rebuild_a_milvus_index_in_place(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    holder = PipelineHolder(Pipeline.build(corpus, f"milvus:{tmp_path / 'app.db'}", "hash")[0])
    new = tmp_path / "biluochun.txt"
    new.write_text("碧螺春\n\n碧螺春产于江苏苏州太湖洞庭山，是中国传统名茶。\n", encoding="utf-8")
    report = update(holder, add=[new])
    assert report.build.embedded == 1 and report.build.reused == 6
    assert holder.pipeline.ask("碧螺春产于哪里？").best.passage.doc_id == "biluochun.txt"
    update(holder, remove=["biluochun.txt"])
    assert "biluochun.txt" not in holder.pipeline.documents and len(holder.pipeline.passages) == 6
    assert "biluochun.txt" not in {d.name for d in list_documents(holder.pipeline.index_dir)}


# ---- the command line, in its own process -------------------------------------------


@pytest.mark.slow
def test_build_ask_eval_add_remove_and_docs_from_the_command_line(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    spec = f"milvus:{tmp_path / 'cli.db'}"
    assert run_qa("build", "--corpus", corpus, "--index", spec, "--encoder", "hash", "--quiet").returncode == 0
    asked = run_qa("ask", REAL_QUESTION, "--index", spec, "--json")
    assert asked.returncode == 0, asked.stderr
    assert "2021年11月" in json.loads(asked.stdout)["answer"]["quote"]
    questions = tmp_path / "q.jsonl"
    questions.write_text("".join(json.dumps({"id": str(i), "question": q, "answers": [a]}, ensure_ascii=False) + "\n"
                                 for i, (q, a) in enumerate([(REAL_QUESTION, "2021年11月"),
                                                             ("臺北捷運什麼時候通車？", "1996年3月28日")])),
                         encoding="utf-8")
    folder = run_qa("eval", questions, "--corpus", corpus, "--index", tmp_path / "folder", "--encoder", "hash",
                    "--json", "--mode", "all")
    milvus = run_qa("eval", questions, "--index", spec, "--json", "--mode", "all")
    assert milvus.returncode == 0, milvus.stderr
    assert json.loads(milvus.stdout)["modes"]["hybrid"]["hit@1"] == 1.0
    for mode in ("hybrid", "dense", "bm25"):
        for metric in ("hit@1", "mrr@10", "quote_accuracy"):
            assert json.loads(milvus.stdout)["modes"][mode][metric] == json.loads(folder.stdout)["modes"][mode][metric]
    new = tmp_path / "biluochun.txt"
    new.write_text("碧螺春\n\n碧螺春产于江苏苏州太湖洞庭山，是中国传统名茶。\n", encoding="utf-8")
    added = run_qa("add", new, "--index", spec, "--quiet")
    assert added.returncode == 0 and "(1 embedded, 6 reused" in added.stdout, added.stdout + added.stderr
    assert "biluochun.txt" in run_qa("docs", "--index", spec).stdout
    removed = run_qa("remove", "biluochun.txt", "--index", spec, "--quiet")
    assert removed.returncode == 0 and "(0 embedded, 6 reused" in removed.stdout, removed.stdout + removed.stderr
    assert "biluochun.txt" not in run_qa("docs", "--index", spec).stdout


@pytest.mark.slow
def test_two_shard_processes_and_then_ask(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    spec = f"milvus:{tmp_path / 'shards.db'}"
    one = run_qa("build", "--corpus", corpus, "--index", spec, "--encoder", "hash", "--shard", "1/2", "--quiet")
    assert one.returncode == 0 and "shards 2 to go" in one.stdout, one.stdout + one.stderr
    two = run_qa("build", "--corpus", corpus, "--index", spec, "--encoder", "hash", "--shard", "2/2", "--quiet")
    assert two.returncode == 0 and "the index is live" in two.stdout, two.stdout + two.stderr
    asked = run_qa("ask", "臺北捷運什麼時候通車？", "--index", spec, "--json")
    assert "1996年3月28日" in json.loads(asked.stdout)["answer"]["quote"]


@pytest.mark.slow
def test_an_unreachable_server_or_a_busy_lite_file_is_a_one_line_error(both, tmp_path):
    _, _, _, spec = both  # this process holds it
    busy = run_qa("ask", REAL_QUESTION, "--index", spec)
    assert busy.returncode == 1 and "one process at a time" in busy.stderr and "Traceback" not in busy.stderr
    assert len(busy.stderr.strip().splitlines()) == 1, busy.stderr
    down = run_qa("ask", REAL_QUESTION, "--index", "milvus:http://127.0.0.1:9/qa")
    assert down.returncode == 1 and "cannot reach Milvus at http://127.0.0.1:9" in down.stderr, down.stderr
    assert "Traceback" not in down.stderr and len(down.stderr.strip().splitlines()) == 1, down.stderr
    shard = run_qa("build", "--index", f"milvus:{tmp_path / 'x.db'}", "--shard", "3/2")
    assert shard.returncode == 1 and "I/N" in shard.stderr and not (tmp_path / "x.db").exists()


def test_words_are_the_folder_stores_bm25_tokens(both):
    _, folder, milvus, _ = both
    text = folder.passages[0].text
    assert words_of(tokenize(text)).split() == [t.replace(".", "_") for t in tokenize(text)]


@pytest.mark.slow
def test_the_app_builds_and_answers_from_milvus_lite(tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    base, log_path = f"http://127.0.0.1:{port}", tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADIO_")} | {"GRADIO_ANALYTICS_ENABLED": "False"}
    with open(log_path, "w") as log_file:
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "app.py"), "--corpus", str(corpus), "--index", f"milvus:{tmp_path / 'app.db'}",
             "--encoder", "hash", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log_file)
    try:
        wait_for_app(server, base, log_path)
        request = urllib.request.Request(f"{base}/api/ask", data=json.dumps({"question": REAL_QUESTION}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            assert "2021年11月" in json.loads(response.read())["answer"]["quote"]
    finally:
        stop_app(server)
    assert "Traceback" not in log_path.read_text()
