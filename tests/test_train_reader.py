"""scripts/train_reader.py: the pair's tokens are owned by the sentences whose characters they read, and
training moves the reader towards the sentences that hold the answer."""

from __future__ import annotations

import numpy as np
import pytest

from qa.export import bin_path, build_tokenizer, read_bin
from qa.split import quote_spans
from qa.text import fold

pytest.importorskip("torch")
from scripts.train_reader import Reader, encode, judge, train  # noqa: E402

TEXT = "蘇州獲批創建區塊鏈發展先導區。2021年11月,工信部正式復函。相城區集聚了160家區塊鏈企業。"


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(read_bin(bin_path()))


def test_each_token_belongs_to_the_sentence_it_reads(tok):
    spans = quote_spans(TEXT)
    assert len(spans) == 3
    ids, owner = encode(tok, "苏州什么时候获批？", TEXT, spans)
    assert len(ids) == len(owner) and owner[0] == -1 and set(owner) == {-1, 0, 1, 2}
    for j, (s, e) in enumerate(spans):
        read = "".join(tok.id_to_token(i) for i, o in zip(ids, owner) if o == j).replace("▁", "")
        assert read == fold(TEXT[s:e]).replace(" ", "")  # Traditional folded, in order, nothing lost


@pytest.mark.slow
def test_training_moves_the_reader_to_the_answering_sentence(tok):
    import torch
    torch.manual_seed(0)
    spans = quote_spans(TEXT)
    questions = ["苏州什么时候获批？", "工信部哪一年复函？", "相城区有多少家企业？", "区块链企业有几家？"]
    golds = [1, 1, 2, 2]
    data = []
    for q, g in zip(questions, golds):
        ids, owner = encode(tok, q, TEXT, spans)
        data.append({"ids": ids, "owner": owner, "scores": np.zeros(3, np.float32), "gold": np.arange(3) == g})
    reader = Reader(torch, frozen=12, device="cpu")  # the head alone: the sentences' meanings decide
    before = judge(reader, data)
    train(reader, data, epochs=30, lr=1e-3, batch=1)
    after = judge(reader, data)
    assert before["hand-set"] == pytest.approx(0.0)  # all hand-set scores tie: the first sentence, never gold
    assert after["reader"] == 1.0 and after["reader"] > before["reader"]
