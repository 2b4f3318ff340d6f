"""Rerank: how much of the question one sentence says, and the hybrid rerank built on it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import REAL_CORPUS, REAL_QUESTION

from qa import Pipeline
from qa.config import Config, MatchConfig, QuoteConfig, RerankConfig
from qa.quote import pick_quote
from qa.rerank import (
    best_sentence_overlap,
    number_share,
    question_grams,
    question_numbers,
    sentence_grams,
    sentence_overlaps,
    sentence_support,
)
from qa.search import minmax
from qa.text import char_trigrams, fold


def test_a_sentence_repeating_the_question_phrase_outranks_one_with_the_same_words_scattered():
    # From the articles: both sentences hold every content word of the question ("苏州 推动 区块链
    # 技术 融合 发展"), so their bigram shares tie; only the first says "推動區塊鏈技術與…融合發展".
    q = "苏州推动区块链与哪些技术融合发展?"
    answer = "蘇州正在推動區塊鏈技術與人工智能、大數據、物聯網等技術的融合發展。"
    scattered = "蘇州市加快推動區塊鏈技術研發、融合應用,不斷沉淀打造先導區的技術和產業發展優勢。"
    grams, tris = question_grams(q), frozenset(char_trigrams(fold(q)))
    assert best_sentence_overlap(grams, answer) == best_sentence_overlap(grams, scattered) > 0.8
    assert best_sentence_overlap(grams, answer, tris) > best_sentence_overlap(grams, scattered, tris)
    assert char_trigrams(fold("區塊鏈 ab 技術")) == {"区块链"}  # CJK runs only, folded
    assert best_sentence_overlap(grams, "", tris) == 0.0
    # The quote too: with the scattered sentence first, a bigram tie alone would quote it.
    assert pick_quote(q, scattered + answer, config=QuoteConfig(pair_margin=0)).text == answer


def test_a_document_the_question_names_by_its_title_is_ranked_up(tmp_path):
    # From CMRC 2018 dev: "大沙地站共有几层?" reads like 大沙东站's passage (大沙, 站, 共有, 两层);
    # its own article never repeats its title in the text.
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(json.dumps(d, ensure_ascii=False) for d in [
        {"doc_id": "east", "title": "大沙东站", "text": "大沙东站是广州地铁五号线的车站。本站共有两层，地下一层为站厅。"},
        {"doc_id": "di", "title": "大沙地站 (广州)", "text": "本站是广州地铁五号线的车站，位于黄埔区。车站分为三层。"},
    ]), encoding="utf-8")
    p, _ = Pipeline.build(docs, tmp_path / "index", "hash")
    question = "大沙地站共有几层？"
    assert p.reranker.titles.named(question) == {"di"}
    without = p.with_config(Config(rerank=RerankConfig(title_weight=0.0))).ask(question, k=2)
    with_title = p.with_config(Config(rerank=RerankConfig(title_weight=3.0))).ask(question, k=2)
    assert without.best.passage.doc_id == "east"
    assert with_title.best.passage.doc_id == "di"
    assert with_title.hits[0].score - without.hits[1].score == pytest.approx(3.0, abs=1e-5)  # the bonus, added once
    assert p.ask(question, k=2, mode="bm25").best.passage.doc_id == "east"  # single retrievers stay as they are


def test_a_one_character_word_of_the_question_counts_a_quarter_of_a_word():
    # From DRCD dev: the answering sentence shares 东西, 交通, 还是 and the one-character words 用 and 莒.
    q = "東西莒還是用什麼交通工具互通？"
    grams = question_grams(q)
    assert {"用", "莒"} <= grams
    sentence = sentence_grams("而東西莒交通船用的還是一般的輕型小遊艇。")[0]
    assert {"用", "莒", "东西", "交通", "还是"} <= sentence
    assert sentence_overlaps(grams, [sentence]) == [pytest.approx((3 + 2 * MatchConfig().char_weight) / len(grams))]
    assert sentence_overlaps(frozenset({"莒"}), [sentence], topic={"莒"}) == [pytest.approx(MatchConfig().char_weight * MatchConfig().title_gram_weight)]


def test_sentence_support_is_the_best_sentence_share_of_the_question():
    text = "龙井茶产于浙江杭州西湖一带。清明节前采摘的明前茶品质最好。"
    # 明前茶品质 is said by the second sentence: every bigram (1.0) and every trigram (0.5 * 1.0)
    assert sentence_support("明前茶品质", text) == pytest.approx(1.5)
    assert sentence_support("红烧肉", text) == 0.0
    assert sentence_support("明前茶", "") == 0.0


def test_rerank_adds_the_scaled_best_sentence_cosine(built_index):
    _, _, p = built_index
    qvec = p.retriever.query_vector(REAL_QUESTION)
    ids = np.arange(len(p.passages))
    fused = np.zeros(len(ids), np.float32)
    off = RerankConfig(sentence_weight=0.0, title_weight=0.0, sentence_dense_weight=0.0, kind_depth=1)
    on = dataclasses.replace(off, sentence_dense_weight=0.3)
    assert not p.with_config(Config(rerank=off)).reranker.rerank(REAL_QUESTION, ids, fused, qvec)[1].any()
    got_ids, got = p.with_config(Config(rerank=on)).reranker.rerank(REAL_QUESTION, ids, fused, qvec)
    want = 0.3 * minmax(p.sentences.best(ids, qvec))
    np.testing.assert_allclose(got, np.sort(want)[::-1], atol=1e-6)
    assert int(got_ids[0]) == int(np.argmax(want))


def test_question_numbers_match_whole_numbers_with_their_unit():
    numbers = question_numbers("相城區2020年7月那份政策涵蓋幾個方面?")
    assert len(numbers) == 2  # "2020年", "7月"
    assert number_share(numbers, "2020年7月，政策发布") == 1.0
    assert number_share(numbers, "2020年6月，政策发布") == 0.5
    assert number_share(numbers, "2020年17月") == 0.5  # "7月" is not in "17月"
    assert number_share(question_numbers("哪一年是1991?"), "first released in 1991.") == 1.0
    assert number_share(question_numbers("哪一年是1991?"), "共19910人") == 0.0
    assert number_share(question_numbers("哪一年是1991?"), "1991.5") == 0.0
    assert number_share(question_numbers("增长7%?"), "增长0.7%") == 0.0
    assert question_numbers("苏州是什么时候获批的?") == ()
    assert number_share((), "2020年") == 0.0


def test_rerank_adds_the_share_of_the_question_numbers_the_passage_states(built_index):
    _, _, p = built_index
    question = "臺北捷運1996年3月通車的是哪條線?"
    ids = np.arange(len(p.passages))
    fused = np.zeros(len(ids), np.float32)
    off = RerankConfig(sentence_weight=0.0, title_weight=0.0, sentence_dense_weight=0.0, number_weight=0.0)
    assert not p.with_config(Config(rerank=off)).reranker.rerank(question, ids, fused)[1].any()
    on = dataclasses.replace(off, number_weight=0.2)
    got_ids, got = p.with_config(Config(rerank=on)).reranker.rerank(question, ids, fused)
    want = np.array([0.2 * number_share(question_numbers(question), x.text) for x in p.passages], np.float32)
    assert want.max() == pytest.approx(0.2) and want.min() == 0.0
    np.testing.assert_allclose(got, np.sort(want)[::-1], atol=1e-6)
    assert "1996年3月" in p.passages[int(got_ids[0])].text


@pytest.mark.slow
@pytest.mark.parametrize("weight, qids", [("sentence_dense_weight", ("a013", "a017")), ("number_weight", ("a023",))])
def test_a_rerank_signal_ranks_the_answer_first(real_index, weight, qids):
    """Questions of the articles set whose answering passage is ranked first only with one signal of the
    rerank: a013 and a017 (English over Chinese text) with the best sentence cosine (hybrid hit@1 0.910 ->
    0.933); a023 ("相城區2020年7月那份…政策涵蓋幾個方面?", which the other article's 2017 policy of
    "九个方面" outranked) with the question's numbers (0.933 -> 0.944)."""
    from qa.evaluate import is_hit, load_questions

    _, p = real_index
    questions = {q.id: q for q in load_questions(REAL_CORPUS.parent / "evals" / "articles.questions.jsonl").questions}
    for value, answered in ((getattr(RerankConfig(), weight), True), (0.0, False)):
        changed = p.with_config(Config(rerank=RerankConfig(**{weight: value})))
        for qid in qids:
            q = questions[qid]
            top = changed.ask(q.question, k=1).hits[0].passage
            assert is_hit(q, top, p.documents) is answered, (weight, value, q.question, top.text[:80])


def test_with_rarity_the_grams_every_sentence_repeats_count_less_than_the_detail_asked_about():
    # From CMRC 2018 dev (紫堇属): the subject recurs, the asked-about 花序 is in one sentence only.
    text = "紫堇属是荷包牡丹科的一个属。紫堇属植物是一年或多年生草本植物。花序为圆锥花序或总状花序。紫堇属植物的果实为角果。"
    q_grams, grams = question_grams("紫堇属植物的花序有什么类型？"), sentence_grams(text)
    plain = sentence_overlaps(q_grams, grams)
    rare = sentence_overlaps(q_grams, grams, rarity=1.5)
    assert max(plain) > plain[2] and max(rare) == rare[2]  # the 花序 sentence wins only with rarity
    assert rare[2] == plain[2] == pytest.approx(1 / 5)  # a gram one sentence holds keeps its weight
    # 植物 (2 sentences) counts 2 ** -1.5, 紫堇 (3) 3 ** -1.5 and 属 (a character, 3) 0.25 x 3 ** -1.5
    assert rare[1] == pytest.approx((2 ** -1.5 + 3 ** -1.5 + 0.25 * 3 ** -1.5) / 5)
