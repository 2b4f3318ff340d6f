"""Rerank: how much of the question one sentence of a passage says.

The hybrid rerank adds the best sentence's score to the top fused passages
(``Pipeline.rerank``), abstention checks (4) and (6) ask it of the best passage
(``sentence_support``), and the quote is the sentence that scores best
(``qa.answer.pick_quote``). A sentence scores its share of the question's bigrams
(content words, ``question_grams``) plus ``PHRASE_WEIGHT`` times its share of the
question's character trigrams; the grams of a passage's sentences are cached, since
the same passages come back question after question. A passage that states the
question's own numbers ("2020年7月") gets ``number_share`` as well.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from .split import sentence_spans
from .text import char_bigrams, char_trigrams, cjk_chars, fold, has_cjk, tokenize


# Weight of question bigrams that are in the document title when picking the quote
# (quote accuracy on 300-question samples, weight 1 -> 0.2: CMRC 0.789 -> 0.882,
# DRCD 0.814 -> 0.832, articles set 0.925 -> 0.950; 0 scored the same as 0.2).
TOPIC_WEIGHT = 0.2


# Weight of a one-character content word of the question found in a sentence ("東西莒還是用什麼交通工具
# 互通?": 用 and 莒 in "而東西莒交通船用的還是一般的輕型小遊艇。"). They used to match nothing: a
# sentence's grams held its bigrams only. Weight 0.1 / 0.25 / 0.5 / 1.0, quote accuracy: DRCD dev 0.902 -> 0.903 /
# 0.905 / 0.905 / 0.906, CMRC dev 0.870 -> 0.870 / 0.871 / 0.867 / 0.857, articles set 0.939 -> 0.939 /
# 0.951 / 0.951 / 0.975. At 0.25 in the rerank and the abstention check as well: hybrid hit@1 DRCD 0.958
# same, CMRC 0.978 -> 0.979, articles 0.921 -> 0.910 (one question); answerable questions wrongly
# abstained 89 -> 85 (DRCD), 68 -> 67 (CMRC); cross-dataset abstention 221 -> 221 and 229 -> 231.
CHAR_WEIGHT = 0.25


# Weight of the share of the question's character trigrams that a sentence holds, added to its
# bigram share when reranking passages and picking the quote: a sentence that repeats the
# question's phrases in order ("推动区块链技术与…融合发展") beats one that holds the same words
# scattered. Hybrid hit@1 (300-character passages), weight 0 -> 0.25 / 0.5 / 0.75: articles set
# 0.899 -> 0.921 / 0.933 / 0.921; DRCD dev 0.941 and CMRC dev 0.913 unchanged at each (MRR@10 within
# 0.001); at 600 characters, 0.75 / 1.0 cost the articles set 2 / 3 questions. Quote accuracy
# (600-character passages, title trigrams weighted as title bigrams), 0 -> 0.25 / 0.5: DRCD dev
# 0.896 -> 0.901 / 0.902, CMRC dev 0.869 -> 0.868 / 0.870, articles set 0.951 -> 0.938 (1 quote).
PHRASE_WEIGHT = 0.5


@lru_cache(maxsize=1024)
def question_grams(question: str) -> frozenset[str]:
    """Bigrams of the question's content words (all its bigrams when it has none); cached, as the rerank,
    the abstention check and the quote read them for one question."""
    return frozenset(set().union(*(char_bigrams(t) for t in tokenize(question))) or char_bigrams(fold(question)))


@lru_cache(maxsize=1024)
def question_trigrams(question: str) -> frozenset[str]:
    """Character trigrams of the folded question (``char_trigrams``); cached like ``question_grams``."""
    return frozenset(char_trigrams(fold(question)))


@lru_cache(maxsize=8192)
def sentence_grams(passage_text: str) -> tuple[frozenset[str], ...]:
    """Bigrams and characters of each sentence of a passage (``question_grams`` holds a one-character
    word as itself); cached, since the same passages come back question after question."""
    folded = (fold(passage_text[s:e]) for s, e in sentence_spans(passage_text))
    return tuple(frozenset(char_bigrams(f) | cjk_chars(f)) for f in folded)


def sentence_overlaps(q_grams: frozenset[str], grams: Sequence[frozenset[str]],
                      topic: set[str] = frozenset()) -> list[float]:
    """Share of the question's bigrams (``question_grams``) in each sentence (``sentence_grams``);
    the same for trigrams (``char_trigrams``, ``sentence_trigrams``).

    Grams that are also in ``topic`` (the document title's) count ``TOPIC_WEIGHT``:
    a question names its document's subject, but the answering sentence often leaves
    the subject out ("截尾鹦嘴鱼分布在什么地方?" -> "分布于西太平洋区。"). A one-character
    word of the question ("用") counts ``CHAR_WEIGHT``.
    """
    weights = {g: (TOPIC_WEIGHT if g in topic else 1.0) * (CHAR_WEIGHT if len(g) == 1 and has_cjk(g) else 1.0)
               for g in q_grams}
    return [sum(weights[g] for g in q_grams & sent) / max(1, len(q_grams)) for sent in grams]


@lru_cache(maxsize=8192)
def sentence_trigrams(passage_text: str) -> tuple[frozenset[str], ...]:
    """Character trigrams of each sentence of a passage (aligned with ``sentence_grams``); cached."""
    return tuple(frozenset(char_trigrams(fold(passage_text[s:e]))) for s, e in sentence_spans(passage_text))


def best_sentence_overlap(q_grams: frozenset[str], passage_text: str,
                          q_trigrams: frozenset[str] = frozenset()) -> float:
    """The best sentence's share of ``q_grams``, plus ``PHRASE_WEIGHT`` times its share of ``q_trigrams``
    (the folded question's ``char_trigrams``); 0 for an empty passage."""
    overlaps = sentence_overlaps(q_grams, sentence_grams(passage_text))
    if not q_trigrams or not overlaps:
        return max(overlaps, default=0.0)
    phrases = sentence_overlaps(q_trigrams, sentence_trigrams(passage_text))
    return max(o + PHRASE_WEIGHT * p for o, p in zip(overlaps, phrases))


def sentence_support(question: str, passage_text: str) -> float:
    """How much of the question the passage's best sentence says: ``best_sentence_overlap`` of the
    question's bigrams and trigrams, the score the reranker adds."""
    return best_sentence_overlap(question_grams(question), passage_text, question_trigrams(question))


# A number the question states, with the unit that follows it: "2020年7月" -> "2020年", "7月".
_QUESTION_NUMBER = re.compile(r"\d+(?:\.\d+)?[年月日号%倍个家条名位万亿]?")


@lru_cache(maxsize=1024)
def question_numbers(question: str) -> tuple[re.Pattern[str], ...]:
    """A pattern for each number of the folded question (``_QUESTION_NUMBER``) that matches it as a
    whole number: "7月" is not in "17月" nor "1.7月", "2020" is in "2020年" but not "20201"; cached like
    ``question_grams``."""
    found = dict.fromkeys(_QUESTION_NUMBER.findall(fold(question)))
    return tuple(re.compile(rf"(?<!\d)(?<!\d\.){re.escape(n)}" + (r"(?!\.?\d)" if n[-1].isdigit() else ""))
                 for n in found)


def number_share(numbers: Sequence[re.Pattern[str]], passage_text: str) -> float:
    """The share of the question's numbers (``question_numbers``) that the passage states; 0 without any."""
    if not numbers:
        return 0.0
    folded = fold(passage_text)
    return sum(bool(n.search(folded)) for n in numbers) / len(numbers)
