"""Abstain: does the corpus answer the question at all? Each named check, by hand and on the tiny corpus."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import OFF_TOPIC, REAL_QUESTION

from qa.abstain import (
    _weight,
    asked_attributes,
    confidence,
    coverage,
    missing_concepts,
    sentence_checks,
    unstated_attribute,
)
from qa.config import AbstainConfig, Config
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


def test_an_unsure_answer_whose_best_sentence_says_little_of_the_question_abstains(tiny_built):
    # sentence_says_little (qa.abstain), with its limits moved so that the tiny corpus's short sentences reach them.
    _, _, p = tiny_built
    spread = "创建先导区的公司负责捷运营运和采摘明前茶吗？"  # words of three articles, none together
    default = p.ask(spread)
    support = sentence_support(spread, default.best.passage.text)
    assert p.config.abstain.threshold <= default.confidence < p.config.abstain.unsure
    assert not default.abstained and 0.25 < support < 0.5  # by default, enough of it is said
    strict = p.with_config(Config(abstain=AbstainConfig(min_support=0.5)))
    a = strict.ask(spread)
    assert a.abstained and a.confidence == pytest.approx(support)
    confident = "运量最高的名茶是什么？"  # confidence over `unsure`: its sentence is not checked
    assert strict.ask(confident).confidence >= 0.8 and not strict.ask(confident).abstained
    assert sentence_support(confident, strict.ask(confident).best.passage.text) < 0.5
    assert not p.with_config(Config(abstain=AbstainConfig(min_support=0.5, unsure=0.6))).ask(spread).abstained


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


def test_sentence_means_little_applies_only_when_unsure(built_index):
    _, _, p = built_index
    conf = p.abstainer.confidence(REAL_QUESTION)
    assert conf >= p.config.abstain.threshold
    unsure = p.with_config(Config(abstain=AbstainConfig(unsure=1.01))).abstainer  # every question is unsure
    assert unsure.confidence(REAL_QUESTION, gap=0.001) == 0.0
    assert unsure.confidence(REAL_QUESTION, gap=0.5) == conf
    assert unsure.confidence(REAL_QUESTION, gap=None) == conf
    sure = p.with_config(Config(abstain=AbstainConfig(unsure=0.0))).abstainer  # sure enough: not checked
    assert sure.confidence(REAL_QUESTION, gap=0.001) == conf


def test_neither_says_nor_means_wants_a_best_sentence_that_says_or_means_the_question(built_index):
    _, _, p = built_index
    ab = p.with_config(Config(abstain=AbstainConfig(unsure=0.0))).abstainer  # the two unsure-only checks off
    conf = ab.confidence(REAL_QUESTION)
    assert conf >= p.config.abstain.threshold
    says = next(x.text for x in p.passages if sentence_support(REAL_QUESTION, x.text) >= 0.3)
    other = next(x.text for x in p.passages if sentence_support(REAL_QUESTION, x.text) < 0.3)
    assert ab.confidence(REAL_QUESTION, top=other, gap=0.001) == 0.0  # neither
    assert ab.confidence(REAL_QUESTION, top=other, gap=0.5) == conf  # means it
    assert ab.confidence(REAL_QUESTION, top=says, gap=0.001) == conf  # says it
    assert ab.confidence(REAL_QUESTION, top=other) == conf  # no gap to judge by: not checked


def test_sentence_checks_by_hand():
    cfg = AbstainConfig(unsure=0.8, min_support=0.25, min_sentence_gap=0.015, weak_support=0.3, weak_gap=0.025)
    # sentence_says_little: unsure and the best sentence says under 0.25 of the question -> confidence is at most that share
    assert sentence_checks(cfg, 0.7, 0.2, None) == 0.2
    assert sentence_checks(cfg, 0.7, 0.25, None) == 0.7
    assert sentence_checks(cfg, 0.9, 0.2, None) == 0.9  # sure: (4) is not asked
    # sentence_means_little: unsure and the best sentence stands under 0.015 above the others -> 0
    assert sentence_checks(cfg, 0.7, None, 0.01) == 0.0
    assert sentence_checks(cfg, 0.7, None, 0.015) == 0.7
    assert sentence_checks(cfg, 0.9, None, 0.01) == 0.9
    # neither_says_nor_means: however sure, both weak -> 0; either one strong enough -> unchanged
    assert sentence_checks(cfg, 0.95, 0.29, 0.02) == 0.0
    assert sentence_checks(cfg, 0.95, 0.3, 0.02) == 0.95
    assert sentence_checks(cfg, 0.95, 0.29, 0.025) == 0.95
    assert sentence_checks(cfg, 0.95, None, None) == 0.95
