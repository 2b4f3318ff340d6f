"""Answer: pick the answering sentence in the best passage, or abstain.

Abstention combines two signals of the top passage:

- lexical coverage: the IDF-weighted share of the question's words that occur in
  it, ``sum idf(t in q and p) / sum idf(t in q)``; a word the corpus never uses
  counts with the largest IDF, so a question about things the corpus lacks scores low;
- dense cosine of question and passage.

``confidence = max(coverage, (cosine - cos_floor) / (cos_full - cos_floor))`` clipped
to [0, 1]; the pipeline abstains when it is below ``threshold``. For a question
that shares no word with the corpus (say English over Chinese text) only the
cosine speaks.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .schema import Quote
from .split import sentence_spans
from .text import char_bigrams, fold, tokenize

_WHEN = re.compile(r"何时|什么时候|哪一?年|几月|哪个月|哪天|日期|时间|when|what year|which year|date", re.I)
_HOW_MANY = re.compile(r"多少|几[个家项条年月次位名所种]|比例|百分之|占比|排名|第几|how many|how much|percent|rank", re.I)
_DATE = re.compile(r"\d{4}\s*年|\d{1,2}\s*月|\d{4}[-/]\d{1,2}|(?:19|20)\d\d")
_NUMBER = re.compile(r"\d")


@dataclass(frozen=True)
class AbstainConfig:
    """Settings of the confidence score (see module docstring)."""

    threshold: float = 0.5
    cos_floor: float = 0.80
    cos_full: float = 0.90


def coverage(question_tokens: list[str], passage_text: str, idf: Callable[[str], float]) -> float | None:
    """IDF-weighted share of question words found in the passage; None if the question has none."""
    tokens = list(dict.fromkeys(question_tokens))
    if not tokens:
        return None
    folded = fold(passage_text)
    total = sum(idf(t) for t in tokens)
    found = sum(idf(t) for t in tokens if t in folded)
    return found / total if total > 0 else None


def confidence(cov: float | None, cosine: float, known_share: float, cfg: AbstainConfig) -> float:
    """Combine coverage and cosine into [0, 1] (coverage ignored when no question word is known)."""
    dense = (cosine - cfg.cos_floor) / (cfg.cos_full - cfg.cos_floor)
    lexical = cov if (cov is not None and known_share > 0) else 0.0
    return float(min(1.0, max(0.0, lexical, dense)))


def _cue_bonus(question: str, sentence: str) -> float:
    """Extra weight for a sentence holding the answer type the question asks for."""
    bonus = 0.0
    if _WHEN.search(question) and _DATE.search(sentence):
        bonus += 0.35
    if _HOW_MANY.search(question) and _NUMBER.search(sentence):
        bonus += 0.25
    return bonus


def pick_quote(
    question: str,
    passage_text: str,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    query_vector: np.ndarray | None = None,
) -> Quote:
    """The sentence of ``passage_text`` that best answers ``question``.

    Sentences are scored by the share of the question's folded bigrams they contain
    plus an answer-type cue (dates for 'when', digits for 'how many'). When no
    sentence shares a bigram with the question (e.g. an English question over
    Chinese text) and an ``embed`` function is given, the sentence with the highest
    cosine to ``query_vector`` is chosen instead.
    """
    spans = sentence_spans(passage_text) or [(0, len(passage_text))]
    if len(spans) == 1:
        s, e = spans[0]
        return Quote(passage_text[s:e], s, e)
    q_grams = char_bigrams(fold(question))
    sentences = [passage_text[s:e] for s, e in spans]
    overlaps = [len(q_grams & char_bigrams(fold(t))) / max(1, len(q_grams)) for t in sentences]
    if max(overlaps) == 0 and embed is not None and query_vector is not None:
        scores = list(embed(sentences) @ query_vector)
    else:
        scores = [o + _cue_bonus(question, t) for o, t in zip(overlaps, sentences)]
    best = int(np.argmax(scores))
    s, e = spans[best]
    return Quote(passage_text[s:e], s, e)


def make_idf(df: np.ndarray, vocab: dict[str, int], n_docs: int) -> Callable[[str], float]:
    """IDF lookup ``log(1 + (N - df + 0.5) / (df + 0.5))``; unknown words get df = 0."""
    top = math.log(1 + (n_docs + 0.5) / 0.5)

    def idf(token: str) -> float:
        i = vocab.get(token)
        if i is None:
            return top
        d = float(df[i])
        return math.log(1 + (n_docs - d + 0.5) / (d + 0.5))

    return idf


def question_tokens(question: str) -> list[str]:
    """Content words of a question (folded, stopwords dropped)."""
    return tokenize(question)
