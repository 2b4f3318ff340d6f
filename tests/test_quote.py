"""Quote: which sentence of the best passage answers the question."""

from __future__ import annotations

import numpy as np
import pytest

from qa.config import QuoteConfig
from qa.quote import pick_quote, sentence_scores
from qa.split import quote_spans


def test_quote_prefers_the_sentence_that_answers_over_the_one_that_names_the_title():
    # From CMRC 2018 dev: the lead sentence names the subject (the document title) and
    # shares the most bigrams with the question; the answer leaves the subject out.
    text = ("截尾鹦嘴鱼，又名杂纹鹦哥鱼，为辐鳍鱼纲鲈形目鹦哥鱼科的一个种。"
            "本鱼分布于西太平洋区，包括日本、台湾及澳洲等海域。")
    q = "截尾鹦嘴鱼一般分布在什么地方？"
    assert pick_quote(q, text).text.startswith("截尾鹦嘴鱼")  # without a title: the lead sentence wins
    alone = QuoteConfig(neighbour_gain=1.0, pair_margin=0)  # the chosen sentence alone, without a neighbour
    assert pick_quote(q, text, title="截尾鹦嘴鱼", config=alone).text.startswith("本鱼分布于西太平洋区")
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
    # a word shared beyond the title keeps the choice lexical: the encoder is not asked for the choice alone
    words = QuoteConfig(sentence_dense_weight=0)
    assert pick_quote("朱载圳被封为什么王?", text, embed, query, title, words).text.endswith("嘉靖十八年（1538年），封景王。")
    assert len(asked) == 1


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


def test_quote_by_meaning_reads_the_stored_sentence_vectors(built_index, monkeypatch):
    _, _, p = built_index
    row = next(i for i, x in enumerate(p.passages) if len(quote_spans(x.text)) > 1)
    text = p.passages[row].text
    monkeypatch.setattr(p.encoder, "encode", lambda *a, **k: pytest.fail("sentences embedded again"))
    embed = p._sentence_vectors(row)
    np.testing.assert_array_equal(embed([text[a:b] for a, b in quote_spans(text)]), p.sentences.of(row))


@pytest.mark.parametrize("question, passage, title, answer", [
    ("新西兰鸲鹟主要的食物是什么？", "新西兰鸲鹟主要分布在北岛的中部，小部份在岛屿湾。牠们主要猎食无脊椎动物，包括蝉、蚯蚓及蜘蛛。",
     "新西兰鸲鹟", "无脊椎动物"),
    ("许国佐有着哪些著作？", "许国佐，又名许钦翼，号班王、旧庵、拙庵。广东海阳人，明朝政治人物。著有《蜀弦集》和《百洲堂集》等。",
     "许国佐", "蜀弦集"),
    ("黑边天竺鲷鱼体呈什么颜色？", "黑边天竺鲷，俗名大目侧仔，为辐鳍鱼纲鲈形目鲈亚目天竺鲷科的其中一个种。本鱼体呈银灰色，眼径较吻长为大。",
     "黑边天竺鲷", "银灰色"),
])


def test_quote_counts_the_characters_a_paraphrase_keeps(question, passage, title, answer):
    assert answer in pick_quote(question, passage, title=title).text
    words_alone = QuoteConfig(char_share_weight=0.0, neighbour_gain=1.0, pair_margin=0)  # the sentence alone
    assert answer not in pick_quote(question, passage, title=title, config=words_alone).text


def test_the_sentence_cosine_separates_sentences_that_share_as_many_words():
    # Both sentences hold 区块链 and 企业 once; only the stored vectors say which is about the count.
    text = "相城区区块链企业发展迅速。目前区块链企业共有160家。"
    single = QuoteConfig(pair_margin=0, count_bonus=0)

    def embed(sentences):
        return np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)

    q, query = "区块链企业", np.array([0.0, 1.0], dtype=np.float32)
    assert pick_quote(q, text, config=single).text == "相城区区块链企业发展迅速。"  # a tie: the first
    assert pick_quote(q, text, embed, query, config=single).text == "目前区块链企业共有160家。"
    off = QuoteConfig(pair_margin=0, count_bonus=0, sentence_dense_weight=0)
    assert pick_quote(q, text, embed, query, config=off).text == "相城区区块链企业发展迅速。"


def test_a_close_runner_up_next_to_the_best_sentence_is_quoted_with_it():
    text = "苏州获批创建区块链发展先导区。相城区是先导区的核心发展区。先导区位于苏州北部。"
    q = "相城区在先导区中的地位是什么？"
    alone = pick_quote(q, text, config=QuoteConfig(pair_margin=0, neighbour_gain=1.0))
    assert alone.text == "相城区是先导区的核心发展区。"
    scores_close = QuoteConfig(pair_margin=10.0, neighbour_gain=1.0)  # any runner-up is close
    both = pick_quote(q, text, config=scores_close)
    assert both.text in (text[: text.index("先导区位于")], text[text.index("相城区") :])
    assert text[both.start : both.end] == both.text and alone.text in both.text
    # a runner-up that is not next to the best sentence is never quoted with it
    apart = "相城区是先导区的核心发展区。今年天气很好。先导区的核心是相城区。"
    assert pick_quote(q, apart, config=scores_close).text in ("相城区是先导区的核心发展区。", "先导区的核心是相城区。")


def test_a_quote_without_the_asked_kind_takes_in_the_neighbour_that_states_it():
    # From DRCD dev: the sentence matching the question says "同年"; the year is in the one before.
    text = "1943年7月，墨索里尼被解除職務。同年，杜林爆發了規模空前的大罷工。罷工席捲整個義大利北部。"
    q = "杜林在哪一年爆發了規模空前的大罷工?"
    assert pick_quote(q, text, config=QuoteConfig(kind_neighbours=(), pair_margin=0)).text == \
        "同年，杜林爆發了規模空前的大罷工。"
    quote = pick_quote(q, text, config=QuoteConfig(pair_margin=0))
    assert quote.text == text[: text.index("罷工席捲")] and text[quote.start : quote.end] == quote.text
    # a quote that states the kind already, or a question of no kind, is left as it is
    assert pick_quote("墨索里尼在哪一年被解除職務?", text, config=QuoteConfig(pair_margin=0)).text == \
        "1943年7月，墨索里尼被解除職務。"
    assert pick_quote("杜林爆發了什麼?", text, config=QuoteConfig(pair_margin=0)).text == "同年，杜林爆發了規模空前的大罷工。"


def test_a_who_or_where_quote_takes_in_the_neighbour_that_names_one():
    text = "2022年4月，國家互聯網信息辦公室公布了第七批名單。名單中相城區共有7個項目備案成功。這些項目涵蓋金融和農業。"
    q = "誰公布的名單中相城區共有7個項目備案成功?"
    alone = QuoteConfig(kind_neighbours=(), pair_margin=0, neighbour_gain=1.0)
    assert pick_quote(q, text, config=alone).text == "名單中相城區共有7個項目備案成功。"
    quote = pick_quote(q, text, config=QuoteConfig(pair_margin=0, neighbour_gain=1.0))
    assert quote.text == text[: text.index("這些")]  # 國家互聯網信息辦公室: an organisation's name
    text = "研究院位於蘇州市相城區。研究院已成功落地並投入運營。研究院有50名研究員。"
    q = "研究院成功落地在哪裡並投入運營?"
    assert pick_quote(q, text, config=alone).text == "研究院已成功落地並投入運營。"
    assert pick_quote(q, text, config=QuoteConfig(pair_margin=0)).text == text[: text.index("研究院有")]


def test_sentence_scores_rank_the_sentences_as_the_quote_does():
    text = ("截尾鹦嘴鱼，又名杂纹鹦哥鱼，为辐鳍鱼纲鲈形目鹦哥鱼科的一个种。"
            "本鱼分布于西太平洋区，包括日本、台湾及澳洲等海域。")
    q, alone = "截尾鹦嘴鱼一般分布在什么地方？", QuoteConfig(neighbour_gain=1.0, pair_margin=0)
    spans, scores = sentence_scores(q, text, title="截尾鹦嘴鱼", config=alone)
    assert spans == quote_spans(text) and len(scores) == 2 and scores[1] > scores[0]
    s, e = spans[1]
    assert pick_quote(q, text, title="截尾鹦嘴鱼", config=alone).text == text[s:e]
    assert sentence_scores(q, "本鱼分布于西太平洋区。") == ([(0, 11)], [0.0])  # one sentence: nothing to rank
