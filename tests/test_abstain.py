"""Abstain: does the corpus answer the question at all? Each named check, by hand and on the tiny corpus."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import OFF_TOPIC, REAL_QUESTION

from qa.abstain import (
    _weight,
    asked_attributes,
    confidence,
    coverage,
    missing_concepts,
    sentence_confidence,
    unstated_attribute,
)
from qa.config import AbstainConfig
from qa.rerank import sentence_support


def test_off_topic_question_abstains_with_the_hash_encoder(tiny_built):
    # Reliable: no word of the question (红烧肉) occurs anywhere in the tiny corpus.
    _, _, p = tiny_built
    a = p.ask(OFF_TOPIC)
    assert a.abstained and a.quote is None
    assert a.confidence < p.config.abstain.threshold
    assert a.to_json()["answer"] is None


def test_words_the_corpus_has_but_never_in_one_passage_abstain(tiny_built):
    # 明前茶 (tea article), 相城区 (Suzhou article) and 捷运 (Taipei article) are all in the corpus,
    # so the corpus-level check alone would answer (missing: only 站 and 卖, about a quarter of the weight).
    _, _, p = tiny_built
    q = "明前茶在哪个相城区的捷运站卖？"
    share, name_missing, absent = missing_concepts(q, p.words.present)
    assert absent == ["站", "卖"] and not name_missing and 1 - share >= p.config.abstain.threshold
    a = p.ask(q)
    assert a.abstained and a.confidence < p.config.abstain.threshold
    # One passage holding the question's words together answers.
    assert not p.ask("相城区有多少个应用场景备案成功？").abstained


def test_a_best_sentence_that_says_little_of_the_question_abstains_on_a_corpus_too_small_for_a_gap(tiny_built):
    # sentence_confidence: six passages are too few for a gap, so the sentence's support is read alone.
    _, _, p = tiny_built
    spread = "创建先导区的公司负责捷运营运和采摘明前茶吗？"  # words of three articles, none together
    a = p.ask(spread)
    conf, support, gap = p.abstainer.evidence(spread, top=a.best.passage.text)
    assert gap is None and 0.4 < support < 0.5 and not a.abstained  # enough of it is said in one sentence
    assert a.confidence == pytest.approx(sentence_confidence(p.config.abstain, conf, support, None))
    other = next(x.text for x in p.passages if sentence_support(spread, x.text) < 0.1)
    assert p.abstainer.confidence(spread, top=other) < p.config.abstain.threshold  # the same words, said nowhere
    assert p.abstainer.confidence(spread) == conf  # no sentence to read: the words' confidence stands


def test_counting_and_who_questions_name_the_attribute_they_ask_for():
    assert asked_attributes("苏州域乎区块链科技有限公司有多少名员工?") == [("员工", "名")]
    assert asked_attributes("截至2020年4月苏州聚集了多少家区块链核心技术企业?") == [("企业", "家")]
    assert asked_attributes("相城區塊鏈產業研究院的院長是誰?") == [("院长", "")]
    assert asked_attributes("工信部是什么时候复函的?") == []


def test_an_attribute_the_corpus_never_names_is_unstated_unless_a_passage_counts_it():
    corpus = "相城区已集聚区块链企业160家。政策推出24条具体扶持举措。苏州排名从第18名升至第4名。"
    present = lambda w: w in corpus  # noqa: E731
    assert unstated_attribute("相城区有多少家区块链企业?", present, [corpus]) is None  # 企业 is named
    assert unstated_attribute("研究院的院长是谁?", present, [corpus]) == "院长"
    # 措施 is never named, but a passage counts with the same measure word: "24条"
    assert unstated_attribute("政策有多少条具体措施?", present, [corpus]) is None
    assert unstated_attribute("政策有多少条具体措施?", present, ["政策很多。"]) == "具体措施"
    # a rank ("第18名") is not a count of people
    assert unstated_attribute("公司有多少名员工?", present, [corpus]) == "员工"


def test_a_count_of_something_the_corpus_never_mentions_abstains(tiny_built):
    _, _, p = tiny_built
    assert p.ask("相城区有多少个应用场景备案成功？").confidence >= p.config.abstain.threshold
    a = p.ask("相城区有多少名员工？")  # every other word is in one passage; 员工 is nowhere
    assert a.abstained and a.confidence == 0.0
    assert p.ask("臺北捷運的董事長是誰？").abstained


def test_coverage_is_the_weighted_share_the_best_single_passage_holds():
    words = [("苏州", "ns"), ("地铁", "n")]
    w1, w2 = _weight("苏州"), _weight("地铁")
    assert coverage(words, ["蘇州很美。", "地铁很快。"]) == pytest.approx(max(w1, w2) / (w1 + w2))
    assert coverage(words, ["苏州地铁很快。"]) == 1.0
    assert coverage(words, []) == 0.0
    assert coverage([], ["任何文字"]) == 1.0
    # confidence: a missing name is 0; otherwise the lower of (1 - missing share) and 1.5 x coverage.
    assert confidence(0.1, True, 1.0) == 0.0
    assert confidence(0.1, False, 1.0) == pytest.approx(0.9)
    assert confidence(0.1, False, 0.3) == pytest.approx(0.45)


def test_sentence_gap_is_the_first_passages_lead_over_the_mean_and_needs_ten_passages(built_index):
    _, _, p = built_index
    qvec = p.retriever.query_vector(REAL_QUESTION)
    ids = np.array([0, 1] * 5)
    best = p.sentences.best(ids, qvec)
    least = AbstainConfig().min_gap_passages
    assert p.abstainer.sentence_gap(ids, qvec) == pytest.approx(float(best[0] - best.mean()))
    assert p.abstainer.sentence_gap(ids[:least - 1], qvec) is None  # too few to compare with
    assert p.abstainer.sentence_gap(np.zeros(least, np.int64), qvec) == pytest.approx(0.0, abs=1e-6)


def test_a_best_sentence_must_say_or_mean_the_question(built_index):
    _, _, p = built_index
    ab, threshold = p.abstainer, p.config.abstain.threshold
    conf, _, _ = ab.evidence(REAL_QUESTION)
    assert conf >= threshold
    says = next(x.text for x in p.passages if sentence_support(REAL_QUESTION, x.text) >= 0.5)
    other = next(x.text for x in p.passages if sentence_support(REAL_QUESTION, x.text) < 0.1)
    assert ab.confidence(REAL_QUESTION, top=other, gap=0.001) < threshold  # neither
    assert ab.confidence(REAL_QUESTION, top=says, gap=0.001) >= threshold  # says it
    assert ab.confidence(REAL_QUESTION, top=says, gap=0.2) > ab.confidence(REAL_QUESTION, top=says, gap=0.001)
    assert ab.confidence(REAL_QUESTION) == conf  # no sentence: not read


def test_sentence_confidence_by_hand():
    cfg = AbstainConfig(gap_scale=5.0, words_weight=4.0, support_weight=5.0, said_weight=10.0, bias=-7.0)
    sigmoid = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    # said = min(support, 5 x gap): 0.4 and 0.05 -> 0.25
    assert sentence_confidence(cfg, 0.9, 0.4, 0.05) == pytest.approx(sigmoid(-7 + 4 * 0.9 + 5 * 0.4 + 10 * 0.25))
    # with a gap, a sentence that says and means the question lifts what a few missing words lowered
    lifted = sentence_confidence(cfg, 0.5, 0.8, 0.2)
    assert lifted == pytest.approx(sigmoid(-7 + 4 * 0.5 + 5 * 0.8 + 10 * 0.8)) and lifted > 0.9
    # without one (a small corpus) said is the support, and the sentence can only lower the words' confidence
    assert sentence_confidence(cfg, 0.5, 0.8, None) == 0.5
    assert sentence_confidence(cfg, 0.9, 0.2, None) == pytest.approx(sigmoid(-7 + 4 * 0.9 + 5 * 0.2 + 10 * 0.2))
    assert sentence_confidence(cfg, 0.9, None, 0.05) == 0.9  # no sentence: the words' confidence stands
    assert sentence_confidence(cfg, 0.0, 0.9, 0.5) == 0.0  # a missing name or attribute stays declined
    # however well the corpus knows the words, a sentence that neither says nor means the question sinks it
    assert sentence_confidence(cfg, 1.0, 0.2, 0.001) < 0.3 < 0.9 < sentence_confidence(cfg, 1.0, 0.9, 0.2)
    # it rises with each of the three
    assert sentence_confidence(cfg, 0.6, 0.4, 0.05) < sentence_confidence(cfg, 0.8, 0.4, 0.05)
    assert sentence_confidence(cfg, 0.6, 0.4, 0.05) < sentence_confidence(cfg, 0.6, 0.5, 0.05)
    assert sentence_confidence(cfg, 0.6, 0.4, 0.05) < sentence_confidence(cfg, 0.6, 0.4, 0.06)
