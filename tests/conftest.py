"""Shared fixtures: a tiny corpus in both Chinese scripts plus English, and helpers.

Unit tests use the deterministic ``hash`` encoder (qa.encode.HashEncoder), which
needs no model; tests that load the real model are marked ``slow``. Every index is
written under ``tmp_path`` (never to the repository's ``index/``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REAL_CORPUS = ROOT / "corpus"
HANS_ARTICLE = REAL_CORPUS / "xiangcheng-blockchain-2022-04-12.zh-Hans.txt"
HANT_ARTICLE = REAL_CORPUS / "suzhou-blockchain-pilot-zone.zh-Hant.txt"

# The tiny corpus. File name -> exact text written (UTF-8, LF line ends).
# The words 红/烧/肉/做/菜 appear nowhere, so a cooking question is off-topic.
TINY_DOCS: dict[str, str] = {
    "suzhou-blockchain.zh-Hans.txt": (
        "苏州区块链发展先导区\n"
        "\n"
        "2021年11月，工信部正式复函，支持苏州市创建区块链发展先导区。相城区是先导区的核心发展区。\n"
        "\n"
        "目前相城区已集聚区块链技术和应用企业160家，共计37个应用场景备案成功。\n"
    ),
    "taipei-metro.zh-Hant.txt": (
        "臺北捷運簡介\n"
        "\n"
        "臺北捷運於1996年3月28日正式通車，第一條路線是文湖線。目前每日平均運量約兩百萬人次。\n"
        "\n"
        "捷運系統由臺北大眾捷運股份有限公司負責營運。\n"
    ),
    "longjing-tea.zh-Hans.txt": (
        "龙井茶\n"
        "\n"
        "龙井茶产于浙江杭州西湖一带，是中国十大名茶之一。清明节前采摘的明前茶品质最好，价格也最高。\n"
    ),
    "python.en.txt": (
        "The Python Language\n"
        "\n"
        "Python was created by Guido van Rossum and first released in 1991. "
        "It emphasises code readability. Python is used for data science and web development.\n"
    ),
}

OFF_TOPIC = "红烧肉怎么做？"
REAL_QUESTION = "苏州是什么时候获批创建区块链发展先导区的？"


def write_corpus(folder: Path, docs: dict[str, str] = TINY_DOCS) -> Path:
    """Write ``docs`` (name -> text) as UTF-8 files into ``folder``; return it."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    return folder


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A fresh copy of the tiny corpus (safe to modify)."""
    return write_corpus(tmp_path / "corpus")


@pytest.fixture(scope="module")
def tiny_built(tmp_path_factory):
    """(corpus dir, index dir, Pipeline) built once per module with the hash encoder. Do not modify."""
    from qa import Pipeline

    base = tmp_path_factory.mktemp("tiny")
    corpus = write_corpus(base / "corpus")
    index = base / "index"
    pipeline, _ = Pipeline.build(corpus, index, "hash")
    return corpus, index, pipeline


@pytest.fixture
def built_index(tmp_path: Path):
    """(corpus dir, index dir, Pipeline) built with the hash encoder in this test's tmp_path."""
    from qa import Pipeline

    corpus = write_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    pipeline, _ = Pipeline.build(corpus, index, "hash")
    return corpus, index, pipeline


def run_qa(*args, timeout: float = 300, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m qa ARGS`` in a subprocess (cwd = repo root), text mode."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env["HF_HUB_OFFLINE"] = "1"
    full_env["TRANSFORMERS_OFFLINE"] = "1"
    full_env["PYTHONIOENCODING"] = "utf-8"
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "qa", *[str(a) for a in args]],
        cwd=cwd, env=full_env, capture_output=True, text=True, encoding="utf-8", timeout=timeout,
    )


def block_texts(doc) -> list[str]:
    """The text of every kept block of a Document."""
    return [doc.text[b.start : b.end] for b in doc.blocks]


@pytest.fixture(scope="session")
def real_index(tmp_path_factory):
    """(index dir, Pipeline) of the two real articles with the default encoder (e5-int8), built once."""
    from qa import Pipeline

    index = tmp_path_factory.mktemp("real") / "index"
    pipeline, report = Pipeline.build(REAL_CORPUS, index)
    assert pipeline.manifest["encoder"]["name"].startswith("e5-int8:original#")
    assert report.documents == 2
    return index, pipeline


def wait_for_app(proc: subprocess.Popen, base: str, log_path: Path, seconds: float = 90) -> None:
    """Wait until the app started as ``proc`` answers ``BASE/gradio_api/info``; fail with its log if it dies."""
    import time
    import urllib.request

    deadline = time.monotonic() + seconds
    while True:
        assert proc.poll() is None, log_path.read_text()
        assert time.monotonic() < deadline, f"the app did not start in {seconds:.0f} s"
        try:
            with urllib.request.urlopen(f"{base}/gradio_api/info", timeout=5):
                return
        except OSError:
            time.sleep(0.3)


def stop_app(proc: subprocess.Popen) -> None:
    """Stop an app started as ``proc``: terminate, then kill if it has not exited within 10 s."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
