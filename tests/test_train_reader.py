"""scripts/train_reader.py: the pair's tokens are owned by the sentences whose characters they read, the
pruned weights it carries to a GPU machine are the bundled model's own, and training moves the reader
towards the sentences that hold the answer."""

from __future__ import annotations

import numpy as np
import pytest

from qa.export import _state_dict, bin_path, build_tokenizer, read_bin
from qa.split import quote_spans
from qa.text import fold

pytest.importorskip("torch")
from scripts.train_reader import (PACKED, accuracy, encode, load_examples, load_weights, make_reader, prune,  # noqa: E402
                                  reader_scores, save_prepared, train)

TEXT = "蘇州獲批創建區塊鏈發展先導區。2021年11月,工信部正式復函。相城區集聚了160家區塊鏈企業。"
QUESTIONS = ["苏州什么时候获批？", "工信部哪一年复函？", "相城区有多少家企业？", "区块链企业有几家？"]


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


@pytest.fixture(scope="module")
def pruned(tok, tmp_path_factory):
    """The four questions over TEXT as examples, with the model pruned to their tokens, saved and loaded."""
    spans = quote_spans(TEXT)
    data = []
    for n, (q, g) in enumerate(zip(QUESTIONS, [1, 1, 2, 2])):
        ids, owner = encode(tok, q, TEXT, spans)
        data.append({"n": n, "ids": ids, "owner": owner, "scores": np.zeros(3, np.float32), "gold": np.arange(3) == g})
    folder = tmp_path_factory.mktemp("prepared")
    weights, config, remap = prune(read_bin(bin_path(), packed=PACKED), {i for ex in data for i in ex["ids"]})
    save_prepared(folder, {"A": data}, weights, config, remap)
    return folder, data, remap


def test_pruned_weights_are_the_bundled_model_s_rows(pruned):
    folder, data, remap = pruned
    weights, config = load_weights(folder)
    full = _state_dict(read_bin(bin_path()))
    assert config["vocab_size"] == len(remap) < 200
    for key, value in full.items():
        if key == "embeddings.word_embeddings.weight":
            old = sorted(remap, key=remap.get)
            np.testing.assert_array_equal(weights[key], value[old])
        elif not key.startswith("pooler"):
            np.testing.assert_array_equal(weights[key], value)  # the block scales are fp16 in the bundle too
    assert all(max(ex["ids"]) < len(remap) for ex in data)


@pytest.mark.slow
def test_training_moves_the_reader_to_the_answering_sentence(pruned):
    import torch
    folder, _, _ = pruned
    data = load_examples(folder)["A"]
    weights, config = load_weights(folder)
    torch.manual_seed(0)
    reader = make_reader(torch, weights, config, frozen=12)  # the head alone: the sentences' meanings decide
    before = accuracy(data, reader_scores(torch, reader, data, "cpu"), 0.0)
    assert accuracy(data, [np.zeros(3)] * 4, None) == 0.0  # all hand-set scores tie: the first sentence, never gold
    train(torch, reader, data, data, "cpu", epochs=30, lr=1e-3, size=2)
    after = accuracy(data, reader_scores(torch, reader, data, "cpu"), 0.0)
    assert after == 1.0 and after > before
