"""Split: sentence-aligned passages with exact offsets, size limits and overlap."""

from __future__ import annotations

from itertools import accumulate, islice

import pytest
from conftest import REAL_CORPUS

from qa.clean import clean_document
from qa.errors import QAError
from qa.ingest import read_corpus
from qa.config import SplitConfig
from qa.split import _cut_long, sentence_spans, split_document, split_documents

CONFIGS = [
    SplitConfig(),
    SplitConfig(max_chars=120, overlap_chars=60, min_chars=40),
    SplitConfig(max_chars=60, overlap_chars=40, min_chars=10),
    SplitConfig(max_chars=45, overlap_chars=20, min_chars=0),
    SplitConfig(max_chars=30, overlap_chars=0, min_chars=40),
]
CONFIG_IDS = [f"max{c.max_chars}-ov{c.overlap_chars}-min{c.min_chars}" for c in CONFIGS]

# Short sentences (each < 30 chars), including closing quotes/brackets after the full stop.
SENTENCES_1 = [
    "苏州是国内较早探索布局区块链产业的城市之一。",
    "早在2017年，苏州就率先出台扶持政策！",
    "这是为什么呢？",
    "他说：“今天的会议很重要……。”",
    "大家都同意了。",
    "「這是繁體的引號。」",
    "最后一句也在这里；",
    "然后结束。",
]
SENTENCES_2 = [
    "第二段的第一句话。",
    "区块链技术研发与融合应用逐步推进。",
    "（这是括号里的补充说明。）",
    "完。",
]
TITLE = "合成测试文档"


def synthetic_doc():
    """A doc whose sentence boundaries are known by construction: (doc, set of starts, set of ends)."""
    head = TITLE + "\n\n"
    para1 = "".join(SENTENCES_1)
    para2 = "".join(SENTENCES_2)
    text = head + para1 + "\n\n" + para2 + "\n"
    starts, ends = set(), set()
    for offset, sentences in ((len(head), SENTENCES_1), (len(head) + len(para1) + 2, SENTENCES_2)):
        bounds = [offset] + [offset + n for n in accumulate(len(s) for s in sentences)]
        starts.update(bounds[:-1])
        ends.update(bounds[1:])
    return clean_document("synthetic.txt", text), starts, ends


@pytest.fixture(scope="module")
def real_docs():
    return read_corpus(REAL_CORPUS).documents


def _all_docs(real_docs):
    return list(real_docs) + [synthetic_doc()[0]]


def test_synthetic_doc_is_cleaned_as_expected():
    doc, starts, ends = synthetic_doc()
    assert doc.title == TITLE
    assert [doc.text[b.start : b.end] for b in doc.blocks] == ["".join(SENTENCES_1), "".join(SENTENCES_2)]
    assert [doc.text[s:e] for s, e in sentence_spans(doc.text, doc.blocks[0].start, doc.blocks[0].end)] == SENTENCES_1


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_every_passage_is_the_document_slice(real_docs, config):
    for doc in _all_docs(real_docs):
        passages = split_document(doc, config)
        assert passages, doc.doc_id
        for n, p in enumerate(passages):
            assert p.text == doc.text[p.start : p.end]
            assert p.text and p.text == p.text.strip()
            assert p.doc_id == doc.doc_id and p.id == f"{doc.doc_id}#{n}" and p.title == doc.title


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_passages_never_include_dropped_text(real_docs, config):
    for doc in _all_docs(real_docs):
        for p in split_document(doc, config):
            for s, e, why in doc.dropped:
                assert p.end <= s or p.start >= e, f"{p.id} overlaps dropped {why} {doc.text[s:e]!r}"


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_passages_respect_max_chars(real_docs, config):
    for doc in _all_docs(real_docs):
        for p in split_document(doc, config):
            assert len(p.text) <= config.max_chars, p


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_passage_boundaries_are_sentence_boundaries(config):
    # Every sentence of the synthetic doc is shorter than every max_chars, so no cut is needed.
    assert max(len(s) for s in SENTENCES_1 + SENTENCES_2) <= min(c.max_chars for c in CONFIGS)
    doc, starts, ends = synthetic_doc()
    passages = split_document(doc, config)
    for p in passages:
        assert p.start in starts, (p.text, "starts inside a sentence")
        assert p.end in ends, (p.text, "ends inside a sentence")
    # every sentence is in some passage, whole
    for s in SENTENCES_1 + SENTENCES_2:
        assert any(s in p.text for p in passages), s


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_real_article_passages_end_at_sentence_ends(real_docs, config):
    # For the real articles, sentence ends found by sentence_spans (or clause cuts of long sentences).
    for doc in real_docs:
        for p in split_document(doc, config):
            last = p.text[-1]
            block = next(b for b in doc.blocks if b.start <= p.start < b.end)
            at_block_end = any(p.end == b.end for b in doc.blocks)
            assert at_block_end or last in "。！？!?；;…”’」』）)]\"'》，,、：:" or len(p.text) == config.max_chars, (
                p.text[-20:], block
            )


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_consecutive_passages_share_at_most_one_short_sentence(real_docs, config):
    for doc in _all_docs(real_docs):
        passages = split_document(doc, config)
        for a, b in zip(passages, passages[1:]):
            assert b.start >= a.start and b.end > a.end
            if b.start < a.end:
                shared = doc.text[b.start : a.end]
                assert len(shared) <= config.overlap_chars, shared
                assert any(blk.start <= b.start and a.end <= blk.end for blk in doc.blocks), "overlap across blocks"
                assert len(sentence_spans(doc.text, b.start, a.end)) == 1, shared


def test_overlap_happens_when_configured_and_not_when_disabled():
    doc, _, _ = synthetic_doc()
    # By hand, max 45 / overlap 20: [S0 (22 chars) + S1 (20)] = 42; adding S2 (7) -> 49 > 45, so a new
    # passage starts; S1 is 20 <= 20 chars and S1+S2 = 27 <= 45, so S1 is repeated.
    with_overlap = split_document(doc, SplitConfig(max_chars=45, overlap_chars=20, min_chars=0))
    assert len(SENTENCES_1[0]) == 22 and len(SENTENCES_1[1]) == 20 and len(SENTENCES_1[2]) == 7
    assert with_overlap[0].text == SENTENCES_1[0] + SENTENCES_1[1]
    assert with_overlap[1].text.startswith(SENTENCES_1[1] + SENTENCES_1[2])
    no_overlap = split_document(doc, SplitConfig(max_chars=45, overlap_chars=0, min_chars=0))
    assert all(b.start >= a.end for a, b in zip(no_overlap, no_overlap[1:]))


@pytest.mark.parametrize("max_chars", [20, 30, 45])
def test_closing_quotes_stay_with_their_sentence(max_chars):
    doc, _, _ = synthetic_doc()
    for p in split_document(doc, SplitConfig(max_chars=max_chars, overlap_chars=10, min_chars=0)):
        assert p.text[0] not in "”’」』）)》", p.text
        if "今天的会议很重要" in p.text:
            assert "今天的会议很重要……。”" in p.text
        if "這是繁體的引號" in p.text:
            assert "這是繁體的引號。」" in p.text
        if "这是括号里的补充说明" in p.text:
            assert "这是括号里的补充说明。）" in p.text


@pytest.mark.parametrize(
    "text,expected",
    [
        ("他说：“今天的会议很重要……。”大家都同意了。", ["他说：“今天的会议很重要……。”", "大家都同意了。"]),
        ("「你好。」『再見！』", ["「你好。」", "『再見！』"]),
        ("真的吗？！是的。", ["真的吗？！", "是的。"]),
        (
            "Python was created in 1991. It is popular! Is it fast? Version 2.0 is here.",
            ["Python was created in 1991.", "It is popular!", "Is it fast?", "Version 2.0 is here."],
        ),
        ("没有句号的一句", ["没有句号的一句"]),
    ],
)
def test_sentence_spans(text, expected):
    assert [text[s:e] for s, e in sentence_spans(text)] == expected


def test_english_document_splits_at_full_stop_space():
    text = "A Title\n\nPython was created in 1991. It is popular. Version 2.0 is here. It is free.\n"
    doc = clean_document("en.txt", text)
    passages = split_document(doc, SplitConfig(max_chars=30, overlap_chars=0, min_chars=0))
    assert [p.text for p in passages] == [
        "Python was created in 1991.",
        "It is popular.",
        "Version 2.0 is here.",
        "It is free.",
    ]


def _one_sentence_doc(sentence: str):
    doc = clean_document("long.txt", "长句\n\n" + sentence + "\n")
    assert [doc.text[b.start : b.end] for b in doc.blocks] == [sentence]
    return doc


def test_long_sentence_is_cut_at_clause_punctuation():
    clauses = [f"第{i}个分句的内容呀" for i in range(10)]
    assert all(len(c) == 9 for c in clauses)
    sentence = "，".join(clauses) + "。"  # 10 clauses of 9 chars + 9 commas + full stop = 100 chars
    assert len(sentence) == 100
    doc = _one_sentence_doc(sentence)
    passages = split_document(doc, SplitConfig(max_chars=40, overlap_chars=0, min_chars=0))
    # By hand: the last comma inside the first 40 chars is the 40th char, so pieces are 40, 40, 20.
    assert [p.text for p in passages] == [sentence[:40], sentence[40:80], sentence[80:]]
    assert passages[0].text.endswith("，") and passages[1].text.endswith("，")


def test_long_sentence_without_clause_punctuation_is_cut_hard():
    sentence = "甲乙丙丁戊己庚辛壬癸" * 10 + "。"  # 101 chars
    doc = _one_sentence_doc(sentence)
    passages = split_document(doc, SplitConfig(max_chars=40, overlap_chars=0, min_chars=0))
    assert [p.text for p in passages] == [sentence[:40], sentence[40:80], sentence[80:]]


def test_clause_too_early_in_the_window_is_not_used():
    # The only comma is at char 2, before max_chars // 3, so the cut is hard at 40.
    sentence = "短，" + "甲乙丙丁戊己庚辛壬癸" * 6 + "。"  # 63 chars
    doc = _one_sentence_doc(sentence)
    passages = split_document(doc, SplitConfig(max_chars=40, overlap_chars=0, min_chars=0))
    assert [p.text for p in passages] == [sentence[:40], sentence[40:]]


def test_short_touching_blocks_are_joined_up_to_min_chars():
    text = "标题\n\n很短的一段。\n第二段也很短。\n"
    doc = clean_document("short.txt", text)
    assert len(doc.blocks) == 2
    joined = split_document(doc, SplitConfig(max_chars=100, overlap_chars=0, min_chars=40))
    assert [p.text for p in joined] == ["很短的一段。\n第二段也很短。"]
    separate = split_document(doc, SplitConfig(max_chars=100, overlap_chars=0, min_chars=0))
    assert [p.text for p in separate] == ["很短的一段。", "第二段也很短。"]


def test_split_documents_keeps_order(real_docs):
    ps = split_documents(real_docs)
    assert [p.doc_id for p in ps] == sorted((p.doc_id for p in ps), key=[d.doc_id for d in real_docs].index)


def test_cut_long_always_makes_progress():
    pieces = list(islice(_cut_long("甲乙丙丁戊", 0, 5, 2), 20))
    assert pieces == [(0, 2), (2, 4), (4, 5)]


def test_split_config_rejects_non_positive_max_chars():
    with pytest.raises((ValueError, QAError)):
        SplitConfig(max_chars=0)
