"""Kinds: what a question asks for, whether a sentence states it, and what the quote, rerank and eval make of it."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import REAL_QUESTION

from qa.config import RerankConfig
from qa.evaluate import EvalQuestion, Outcome, kind_answered, summarize
from qa.kinds import asked_kind, expressions, states
from qa.quote import pick_quote
from qa.rerank import Reranker
from qa.schema import Answer, Hit, Passage, Quote
from qa.search import SentenceVectors


@pytest.mark.parametrize("question, kind", [
    ("苏州是什么时候获批创建区块链发展先导区的？", "when"),
    ("蘇州哪一年出臺了「蘇九條」？", "when"),
    ("相城区有多少家区块链企业？", "count"),
    ("苏州区块链发展水平在2021年排名第几？", "count"),
    ("誰認為希臘語、拉丁語與梵語是出自於同一門語言？", "who"),
    ("哪家公司用區塊鏈幫消費者買到正宗的陽澄湖大閘蟹?", "who"),
    ("长三角数字金融数据中心落地在哪里？", "where"),
    ("When was the pilot zone approved?", "when"),
    ("How many blockchain companies are in Xiangcheng?", "count"),
    ("Which city became the first pilot zone?", "where"),
    ("苏州区块链发展水平怎么样？", None),
    # "在哪" asks where only of a place: not of a field, a trade, a war or a difference
    ("克什米尔马鹿分布在哪些地方？", "where"),
    ("苏州在哪些领域推进区块链应用?", None),
    ("落腳在哪個行業?", None),
    ("東芝在哪一場戰爭爆發之前是三井財閥的成員之一?", None),
    ("獨裁政體和民主政體的區別在哪?", None),
    ("伊斯蘭教在哪一個世紀傳入阿富汗?", "when"),
    # an era is answered by its name ("宋朝", "江戶時代"), which no date pattern reads
    ("在哪一個時期時常常發生強行徵兵的情況?", None),
    ("玄奘是哪一個朝代的人?", None),
    ("大曲车站是哪几年有人驻守？", "when"),
])
def test_asked_kind(question, kind):
    assert asked_kind(question) == kind


def test_a_relative_time_is_no_date_and_a_year_is_no_count():
    assert not states("when", "近日,工信部正式復函支持蘇州創建區塊鏈發展先導區。")
    assert states("when", "2021年11月,工信部正式复函,支持苏州市创建区块链发展先导区。")
    assert expressions("count", "从2019年的第18名跃升至2021年的第4名") == {"18名", "4名"}
    assert not states("count", "还编入了2021全球区块链创新应用示范案例集")
    assert states("count", "已集聚区块链技术和应用企业160家") and states("count", "共有三个项目")
    assert not states("count", "统一管理")  # 一 without a measure word is no number


def test_what_the_question_says_itself_is_not_counted():
    q = "苏州区块链发展水平在2021年排名第几？"
    assert not states("count", "苏州在2021年发布了白皮书。", q)
    assert states("count", "苏州在2021年跃升至第4名。", q)


def test_names_and_places():
    assert states("who", "威廉·瓊斯認為希臘語與梵語同源。")
    assert states("who", "苏州域乎区块链科技有限公司给出了答案。")
    assert states("who", "国家互联网信息办公室发布了名单。")
    assert not states("who", "给出了答案。")
    assert states("where", "数据中心成功落地苏州。")
    assert not states("where", "数据中心成功落地。")


def test_the_quote_prefers_the_sentence_that_names_who():
    # a053 of the articles set: the question's own words are in the first sentence; the company in the second
    q = "哪家公司用區塊鏈幫消費者買到正宗的陽澄湖大閘蟹?"
    text = ("吃蟹首选阳澄湖,但如何确保买到正宗的阳澄湖大闸蟹呢?"
            "苏州域乎区块链科技有限公司(以下简称“苏州域乎”)给出了答案。")
    assert "苏州域乎区块链科技有限公司" in pick_quote(q, text).text


def _reranker(texts):
    passages = [Passage(f"d#{i}", "d", t, 0, len(t), "t", i) for i, t in enumerate(texts)]
    sentences = SentenceVectors.build(np.zeros((len(texts), 2), np.float32), [1] * len(texts))
    return Reranker(passages, {}, sentences)


def test_a_dated_passage_goes_before_a_first_that_only_says_recently():
    texts = ["近日,工信部正式復函支持蘇州創建區塊鏈發展先導區。", "无关的一段话。",
             "2021年11月,工信部正式复函,支持苏州市创建区块链发展先导区。"]
    r = _reranker(texts)
    ids, scores = r.kind_first(REAL_QUESTION, np.arange(3), np.array([2.0, 1.9, 1.7], np.float32))
    assert ids.tolist() == [2, 0, 1] and scores[0] > 2.0 and list(scores) == sorted(scores, reverse=True)
    # off, or a passage that says too little of the question, or a kind not in kinds_first: unchanged
    off = Reranker(r.passages, {}, r.sentences, RerankConfig(kind_depth=1))
    assert off.kind_first(REAL_QUESTION, np.arange(3), np.array([2.0, 1.9, 1.7]))[0].tolist() == [0, 1, 2]
    weak = _reranker([texts[0], texts[1], "2021年11月,会议召开。"])
    assert weak.kind_first(REAL_QUESTION, np.arange(3), np.array([2.0, 1.9, 1.7]))[0].tolist() == [0, 1, 2]
    who = _reranker(texts)
    assert who.kind_first("谁复函支持苏州创建区块链发展先导区？", np.arange(3), np.array([2.0, 1.9, 1.7]))[0].tolist() == [0, 1, 2]


def test_eval_reports_the_kind_stated_per_kind():
    q = EvalQuestion("w", REAL_QUESTION, ("2021年11月",))
    passage = Passage("d#0", "d", "x", 0, 1, "t", 0)
    hits = (Hit(passage, 1.0, 1),)
    said = Answer(REAL_QUESTION, hits, Quote("2021年11月,工信部正式复函。", 0, 5), "hybrid", 1.0)
    vague = Answer(REAL_QUESTION, hits, Quote("近日,工信部正式復函。", 0, 5), "hybrid", 1.0)
    assert kind_answered(q, said) is True and kind_answered(q, vague) is False
    # not asked for a kind, gold answer not of the kind, or declined: not counted
    assert kind_answered(EvalQuestion("x", "苏州怎么样？", ("很好",)), said) is None
    assert kind_answered(EvalQuestion("y", REAL_QUESTION, ("近日",)), said) is None
    assert kind_answered(q, Answer(REAL_QUESTION, hits, None, "hybrid", 0.0)) is None
    outcomes = [Outcome(q, "hybrid", 1, False, True, 1.0, 1.0, 1.0, 1.0, ok, 10) for ok in (True, True, False, None)]
    s = summarize(outcomes, k=5)
    assert s["kind_answered"] == pytest.approx(2 / 3) and s["kind_answered_when"] == pytest.approx(2 / 3)
    assert s["kind_n_when"] == 3 and s["kind_answered_who"] is None and s["quote_chars_mean"] == 10


def test_a_sentence_whose_subject_is_a_pronoun_is_quoted_with_the_one_naming_it():
    from qa.config import QuoteConfig
    q = "哪个城市的区块链发展水平排名第4？"
    text = "苏州位于长江三角洲。它的区块链发展水平在2021年排名第4。相城区集聚了160家企业。"
    assert pick_quote(q, text).text == "苏州位于长江三角洲。它的区块链发展水平在2021年排名第4。"
    assert pick_quote(q, text, config=QuoteConfig(pronoun_lead=False)).text == "它的区块链发展水平在2021年排名第4。"


def test_the_passage_moved_up_must_name_the_question_subject():
    q = "劲松站什么时候投入使用？"
    first = "劲松站位于北京市朝阳区，是北京地铁10号线的一个车站。"
    other = _reranker([first, "岩手站于2008年6月14日投入使用。"])  # another station's date: stays second
    assert other.kind_first(q, np.arange(2), np.array([2.0, 1.9]))[0].tolist() == [0, 1]
    same = _reranker([first, "劲松站于2008年6月30日投入使用。"])
    assert same.kind_first(q, np.arange(2), np.array([2.0, 1.9]))[0].tolist() == [1, 0]
