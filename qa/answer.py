"""Answer: pick the answering sentence in the best passage, or abstain.

Abstention asks two things of the question's content words (nouns, verbs,
adjectives, names; cut with part-of-speech tags by jieba), each word weighted by
its general-language IDF (jieba's table) so rare, specific words count more:

1. Does the corpus use them at all? Words it never contains are *missing*.
2. Does one passage hold them together? ``coverage`` is the weighted share that
   the best of the top ``COVERAGE_DEPTH`` BM25 passages contains. A question about
   another corpus often names things this one mentions, but never in one place.

3. Does the corpus name what a counting or "who" question asks for? "有多少名员工",
   "院长是谁": when the corpus never names 员工 / 院长 it cannot answer, however well it
   knows the rest ("苏州域乎" is in it). A count stays answerable when a top passage counts
   with the question's measure word ("多少条措施" over "24条扶持举措").

4. Does one sentence of the best passage say much of it? When the answer to 1-3 is not
   clearly yes (confidence under ``AbstainConfig.unsure``), the top passage's best sentence
   must hold ``AbstainConfig.min_support`` of the question (``sentence_support``: its share
   of the question's bigrams plus half its share of the question's character trigrams, the
   reranker's sentence score). A question from another corpus finds its words, but spread
   over passages and sentences that are about something else.

5. Does one sentence of the best passage mean it? When unsure as in (4), the best passage's
   best sentence cosine to the question must stand ``AbstainConfig.min_sentence_gap`` above
   the mean of the best sentence cosines of the top ``SearchConfig.rerank_depth`` passages
   (``Pipeline.sentence_gap``; at least ``MIN_GAP_PASSAGES`` of them). A gap, not a cosine:
   the cosines of one model crowd into a narrow band, which differs between models and corpora.

6. Does its best sentence either say it or mean it? However sure 1-3 are, the best passage's
   best sentence must hold ``AbstainConfig.weak_support`` of the question or stand
   ``AbstainConfig.weak_gap`` above the others in meaning (the scores of (4) and (5)). A question
   is written from a sentence: the sentence that answers it shares its words or says it in
   other words. A question from another corpus whose words this one holds together (high
   coverage) still finds a passage whose sentences do neither.

    missing_share = sum idf(w missing) / sum idf(w content)
    confidence = 0                    if a place, person or organisation name is missing,
                                      or the attribute of (3) is
               = min(1 - missing_share, COVERAGE_SCALE * coverage)    otherwise
    and then, when confidence < unsure and sentence_support < min_support,
    confidence = min(confidence, sentence_support)
    and, when confidence < unsure and sentence_gap < min_sentence_gap, confidence = 0
    and, when sentence_support < weak_support and sentence_gap < weak_gap, confidence = 0

English questions over a Chinese corpus are judged by their words' CC-CEDICT
translations instead (a word is missing when the dictionary knows it but the
corpus uses none of its translations); coverage and checks (4) to (6) are not used for them. The pipeline
abstains when confidence is below ``threshold`` (0.6): a missing share over 0.4,
or a coverage under 0.4. The top passage's cosine is not used: on these corpora that of
unanswerable questions overlaps that of answerable ones (check (5) reads sentences).

Measured on 1,000-question samples (DRCD and CMRC dev; evals/cross), adding
coverage raised abstention on the cross-dataset sets from 48% / 67% to 73% / 78%,
while answerable questions wrongly abstained went from 2.0% / 2.0% to 2.8% / 2.1%.
Check (3) raised the articles set from 6 to 9 of 10 unanswerable questions abstained (the same
1 answerable wrongly), and on the full dev sets cost 1 (DRCD) and 2 (CMRC) more answerable
questions wrongly abstained; the cross-dataset sets were unchanged. Check (4), on the full dev sets
(600-character passages): cross-dataset abstention 70% / 75% -> 76% / 79% (DRCD questions on CMRC /
the reverse), answerable questions wrongly abstained 80 -> 91 (2.3% -> 2.6%, DRCD) and 62 -> 68
(1.9% -> 2.1%, CMRC), the articles set unchanged (9 of 10, 1 wrongly). The grid it was picked
from (min_support, unsure): (0.3, 0.8) gave 79% / 82% for 3.0% / 2.4% wrongly; (0.25, any
confidence) 77% / 80% for 3.0% / 3.0%; the sentence's IDF-weighted word coverage did worse.
Check (5), with the sentence cosine in the rerank (full dev sets, 600-character passages): cross-dataset
abstention 223 / 232 -> 234 / 248 of 294 / 291 (76% / 80% -> 80% / 85%), answerable questions wrongly
abstained 89 -> 90 (DRCD) and 67 -> 68 (CMRC), the articles set unchanged (9 of 10, 1 wrongly).
min_sentence_gap 0.01 / 0.015 / 0.02 / 0.025: 231 / 234 / 239 / 243 and 241 / 248 / 251 / 254 abstained,
for 89 / 90 / 95 / 103 DRCD questions wrongly abstained (0.025: 2.9%). A raw cosine limit separated
about as well on these sets (offline, 0.88: 242 / 253 for 92 wrongly), but would mean nothing for
another encoder.
Check (6) (full dev sets, 600-character passages): cross-dataset abstention 234 / 248 -> 248 / 258 of
294 / 291 (80% / 85% -> 84% / 89%), answerable questions wrongly abstained 90 -> 94 (DRCD, 2.7%) and 68
-> 74 (CMRC, 2.3%), the articles set unchanged. (weak_support, weak_gap) (0.25, 0.025) / (0.3, 0.02) /
(0.3, 0.025) / (0.3, 0.03) / (0.35, 0.025): 239 / 243 / 248 / 250 / 254 and 251 / 256 / 258 / 259 / 263
abstained, for 91 / 94 / 94 / 96 / 108 DRCD and 71 / 71 / 74 / 76 / 79 CMRC questions wrongly abstained.
With 800-character passages, (0.3, 0.025) / (0.3, 0.03) / (0.35, 0.025) / (0.35, 0.03) / (0.4, 0.025):
248 / 251 / 254 / 259 / 257 and 259 / 260 / 263 / 265 / 265 abstained, for 90 / 93 / 104 / 110 / 114 DRCD
and 74 / 76 / 78 / 80 / 85 CMRC questions wrongly abstained; (0.35, 0.025) would sit at 2.95% of DRCD,
on the 3% limit, so the defaults stay.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .rerank import (
    PHRASE_WEIGHT,
    question_grams,
    question_trigrams,
    sentence_grams,
    sentence_overlaps,
    sentence_trigrams,
)
from .schema import Quote
from .split import quote_spans
from .text import STOPWORDS, CharGrams, char_bigrams, char_trigrams, cjk_chars, fold, has_cjk, tokenize

_WHEN = re.compile(r"何时|什么时候|哪一?年|几月|哪个月|哪天|日期|时间|when|what year|which year|date", re.I)
_HOW_MANY = re.compile(r"多少|几[个家项条年月次位名所种]|比例|百分之|占比|排名|第几|how many|how much|percent|rank", re.I)
_DATE = re.compile(r"\d{4}\s*年|\d{1,2}\s*月|\d{4}[-/]\d{1,2}|(?:19|20)\d\d|近日|日前|近期|今年|去年|明年|当时|目前")
_NUMBER = re.compile(r"\d")
_WORD_CHARS = re.compile(r"\w")
MIN_QUOTE_CHARS = 8  # letters and digits; a shorter "sentence" is a fragment
_CONTENT_POS = ("n", "v", "a", "i", "l", "j", "eng")
_NAME_POS = ("ns", "nr", "nt", "nrt")
# Words that frame a question about a text rather than name a concept in it.
_FRAME = frozenset("文章 本文 文中 提到 提及 根据 据 说 认为 指 叫 叫做 称为 称 有 是 做 要 用 进行 属于 包括 主要 具体 分别".split())


# A neighbouring sentence is quoted with the best one when it holds at least this share of the
# question's bigrams (title bigrams weighted ``TOPIC_WEIGHT``, see qa.rerank) that the best sentence
# lacks: "春園別墅中的小湖的水是來自哪邊的?" matches "…建一私邸「春園別墅」…。" best, and is answered
# by the next sentence, "別墅內有一小湖…其水源乃由石水渠街所引入。" Quote accuracy (500-character
# passages), off -> 0.15 / 0.1: DRCD dev 0.868 -> 0.885 / 0.896, CMRC dev 0.858 -> 0.870 / 0.876,
# articles set 0.951 at each; the mean quote grew from 53 to 57-58 characters at 0.1.
NEIGHBOUR_GAIN = 0.1

# The quote's sentence score also counts the share of the characters of the question's content words
# (less the title's) that a sentence holds: a Chinese paraphrase keeps a character of the word it
# replaces ("主要的食物" / "主要猎食", "弟弟" / "胞弟", "著作" / "著有", "封地" / "封国"). Quote accuracy
# (800-character passages), 0 -> 0.1 / 0.2 / 0.4 / 0.6 / 1.0: CMRC dev 0.874 -> 0.877 / 0.879 / 0.884 /
# 0.882 / 0.883, DRCD dev 0.902 -> 0.905 / 0.906 / 0.907 / 0.907 / 0.905, articles set 0.940 -> 0.929 /
# 0.929 / 0.929 / 0.940 / 0.940 (one question).
CHAR_SHARE_WEIGHT = 0.6


COVERAGE_DEPTH = 10  # BM25 passages searched for one that holds the question's words together
COVERAGE_SCALE = 1.5  # coverage 0.4 scores 0.6, the threshold
CHAR_GRAMS_LIMIT = 200_000  # passages; past it, a word is present when BM25's vocabulary has its tokens


@dataclass(frozen=True)
class AbstainConfig:
    """Abstain when ``confidence < threshold``; under ``unsure``, also when the top passage's best
    sentence holds under ``min_support`` of the question, or its cosine to the question is under
    ``min_sentence_gap`` above the mean of the top passages' best sentences; at any confidence, when
    both are weak: under ``weak_support`` and under ``weak_gap`` (see module docstring)."""

    threshold: float = 0.6
    unsure: float = 0.8
    min_support: float = 0.25
    min_sentence_gap: float = 0.015
    weak_support: float = 0.3
    weak_gap: float = 0.025

    def sentence_checks(self, conf: float, support: float | None, gap: float | None) -> float:
        """``conf`` after checks (4) to (6) on the best passage's best sentence: ``support``, its
        ``sentence_support``; ``gap``, ``Pipeline.sentence_gap`` (a check is skipped without its score)."""
        if support is not None and conf < self.unsure and support < self.min_support:
            conf = min(conf, support)  # (4): does one sentence of the best passage say it?
        if gap is not None and conf < self.unsure and gap < self.min_sentence_gap:
            conf = 0.0  # (5): no sentence of the best passage means it more than the others do
        if support is not None and gap is not None and support < self.weak_support and gap < self.weak_gap:
            conf = 0.0  # (6): its best sentence neither says much of it nor means it more than others
        return conf


class CorpusWords:
    """Which words a corpus uses: its BM25 vocabulary and (up to ``CHAR_GRAMS_LIMIT`` passages) its
    characters and character pairs (``CharGrams``: stored with the index, or made on first use)."""

    def __init__(self, passages: Sequence, vocab: dict[str, int], grams: CharGrams | None = None):
        self.vocab = vocab
        self.cjk = sum(map(has_cjk, vocab)) > len(vocab) / 2
        self._passages = passages
        self._grams = grams

    def uses(self, word: str) -> bool:
        """Every BM25 token of ``word`` is in the corpus vocabulary."""
        toks = tokenize(word)
        return bool(toks) and all(t in self.vocab for t in toks)

    def present(self, word: str) -> bool:
        """Does the corpus contain this folded word (all its character bigrams, or its BM25 tokens)?"""
        if self._grams is None:  # an index written before they were stored: made on first use, once
            grams = corpus_grams(self._passages)
            self._grams = CharGrams(np.zeros(0, np.uint64)) if grams is None else grams
        if len(self._grams.codes):
            return self._grams.holds(word)
        return self.uses(word)


def corpus_grams(passages: Sequence) -> CharGrams | None:
    """The characters and character pairs of the passages' folded text; None past ``CHAR_GRAMS_LIMIT``."""
    if len(passages) > CHAR_GRAMS_LIMIT:
        return None
    return CharGrams.build(fold(p.text) for p in passages)


@lru_cache(maxsize=1)
def general_idf() -> tuple[dict[str, float], float]:
    """jieba's general-language IDF table and its median (used for unknown words)."""
    import jieba.analyse

    table: dict[str, float] = {}
    path = os.path.join(os.path.dirname(jieba.analyse.__file__), "idf.txt")
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            word, _, value = line.rstrip("\n").partition(" ")
            if value:
                table[word] = float(value)
    values = sorted(table.values())
    return table, values[len(values) // 2]


@lru_cache(maxsize=1)
def _posseg():
    """jieba's part-of-speech tokenizer; it wraps the tokenizer ``qa.text`` cuts words with (one prefix dict)."""
    import jieba.posseg

    from .text import jieba_tokenizer

    jieba_tokenizer()  # initialised quietly, once
    return jieba.posseg.dt


HMM_CHARS = 80  # characters of a question that jieba's HMM reads for words outside its dictionary


@lru_cache(maxsize=1024)
def tagged_words(question: str) -> tuple[tuple[str, str], ...]:
    """(word, part-of-speech flag) of every word of the folded question; cached, as abstention reads them twice.

    jieba guesses words outside its dictionary with an HMM that costs about 1 ms a character (20 rare
    characters: 19 ms; 1,000: 1.6 s). Only the first ``HMM_CHARS`` characters, longer than any real
    question, get that guess; the rest is cut with the dictionary alone (0.003 ms a character), so a
    long question of rare characters costs no more than a short one.
    """
    folded = fold(question)
    head, tail = folded[:HMM_CHARS], folded[HMM_CHARS:]
    words = [(p.word, p.flag) for p in _posseg().cut(head)]
    if tail:
        words += [(p.word, p.flag) for p in _posseg().cut(tail, HMM=False)]
    return tuple(words)


def content_words(question: str) -> list[tuple[str, str]]:
    """(word, part-of-speech flag) of the question's Chinese content words, folded."""
    return [
        (w, f) for w, f in tagged_words(question)
        if has_cjk(w) and w not in STOPWORDS and w not in _FRAME and f.startswith(_CONTENT_POS)
    ]


def _weight(word: str) -> float:
    idf, median = general_idf()
    return idf.get(word, median)


def missing_concepts(
    question: str, present: Callable[[str], bool], words: list[tuple[str, str]] | None = None,
) -> tuple[float, bool, list[str]]:
    """(IDF-weighted share of content words absent from the corpus, a name is absent, absent words)."""
    total = missing = 0.0
    name_missing = False
    absent: list[str] = []
    for word, flag in content_words(question) if words is None else words:
        weight = _weight(word)
        total += weight
        if not present(word):
            missing += weight
            absent.append(word)
            name_missing |= flag in _NAME_POS
    return (missing / total if total else 0.0), name_missing, absent


_COUNTING = ("多少", "几")
# Measure words that sit between 多少/几 and the counted noun ("多少名员工", "几笔交易").
_MEASURE = frozenset("个名笔家位种项条次届场本部座所台辆只件张首间层岁年月天元")
_NUMERAL = "0-9〇零一二三四五六七八九十百千万亿两几余多"


def asked_attributes(question: str) -> list[tuple[str, str]]:
    """(noun, measure word or "") for what a counting or "who is" question asks about.

    "苏州域乎有多少名员工?" -> [("员工", "名")]; "研究院的院长是谁?" -> [("院长", "")]. The noun is the
    last of the nouns that follow 多少/几 (and a measure word), or the noun right before 是谁.
    """
    toks = tagged_words(question)
    out: list[tuple[str, str]] = []
    for i, (word, _) in enumerate(toks):
        if word.startswith(_COUNTING):
            j, measure = i + 1, ""
            while j < len(toks) and (toks[j][1] in ("m", "q") or toks[j][0] in _MEASURE):
                measure = toks[j][0] if toks[j][0] in _MEASURE else measure
                j += 1
            noun = None
            while j < len(toks) and toks[j][1].startswith(("n", "vn")) and has_cjk(toks[j][0]):
                noun, j = toks[j][0], j + 1
            if noun:
                out.append((noun, measure))
        elif word == "谁" and i >= 2 and toks[i - 1][0] == "是" and toks[i - 2][1].startswith("n"):
            out.append((toks[i - 2][0], ""))
    return out


def unstated_attribute(question: str, present: Callable[[str], bool], passages: Sequence[str]) -> str | None:
    """The attribute a counting or "who" question asks for, when the corpus never names it, else None.

    A count is still answerable when one of ``passages`` counts with the question's measure word
    ("多少条具体措施" over "24条具体扶持举措").
    """
    for noun, measure in asked_attributes(question):
        if present(noun):
            continue
        # a count, not a rank: "24条" but not "第18名"
        counted = re.compile(f"(?<![第{_NUMERAL}])[{_NUMERAL}]+\\s*{re.escape(measure)}") if measure else None
        if counted is None or not any(counted.search(fold(t)) for t in passages):
            return noun
    return None


def coverage(words: list[tuple[str, str]], passages: Sequence[str]) -> float:
    """IDF-weighted share of ``words`` that the best single passage holds (1.0 when there are no words)."""
    if not words:
        return 1.0
    total = sum(_weight(w) for w, _ in words)
    folded = [fold(t) for t in passages]
    return max((sum(_weight(w) for w, _ in words if w in t) / total for t in folded), default=0.0)


def confidence(missing_share: float, key_missing: bool, covered: float = 1.0) -> float:
    """Confidence in [0, 1] that the corpus can answer (see module docstring); ``key_missing``: a name,
    or the attribute a counting or "who" question asks for, is absent from the corpus."""
    if key_missing:
        return 0.0
    return float(max(0.0, min(1.0 - missing_share, COVERAGE_SCALE * covered, 1.0)))


def _cue_bonus(question: str, sentence: str) -> float:
    """Extra weight for a sentence holding the answer type the question asks for."""
    bonus = 0.0
    question = fold(question)
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
    title: str = "",
) -> Quote:
    """The sentence of ``passage_text`` that best answers ``question``.

    Sentences are scored by the share of the bigrams of the question's content words they contain,
    plus ``PHRASE_WEIGHT`` times their share of the question's character trigrams (bigrams and
    trigrams of the passage's ``title`` count less, see ``sentence_overlaps``), plus an
    answer-type cue (dates for 'when', digits for 'how many'), plus ``CHAR_SHARE_WEIGHT`` times their share
    of the characters of the question's content words beyond the title's. When no
    sentence shares a word with the question beyond those of the ``title`` (an English
    question over Chinese text; "朱载圳的性格有什么特点?" over "朱载圳（），明世宗第四子…。
    朱载圳贪婪蛮横…") and an ``embed`` function is given, the sentence with the highest
    cosine to ``query_vector`` is chosen instead (quote accuracy, against falling back only
    when nothing at all is shared: CMRC dev 0.871 -> 0.878, DRCD dev 0.905 and the articles
    set 0.951 unchanged). A neighbour that holds enough of the question's
    remaining bigrams (``NEIGHBOUR_GAIN``) is quoted with the chosen sentence.
    """
    spans = quote_spans(passage_text)
    if len(spans) == 1:
        s, e = spans[0]
        return Quote(passage_text[s:e], s, e)
    sentences = [passage_text[s:e] for s, e in spans]
    # spans has 2 or more sentences here, so it is sentence_spans(passage_text), which sentence_grams cut.
    folded_title = fold(title)
    q_grams, grams, topic = question_grams(question), sentence_grams(passage_text), char_bigrams(folded_title)
    overlaps = sentence_overlaps(q_grams, grams, topic=topic)
    # No sentence says anything of the question beyond its document's subject: judge by meaning.
    by_meaning = embed is not None and query_vector is not None and not any(
        (q_grams - topic) & g for g in grams)
    if by_meaning:
        scores = list(embed(sentences) @ query_vector)
    else:
        phrases = sentence_overlaps(question_trigrams(question), sentence_trigrams(passage_text),
                                    char_trigrams(folded_title))
        scores = [o + PHRASE_WEIGHT * p + _cue_bonus(question, t) for o, p, t in zip(overlaps, phrases, sentences)]
        # the question's content characters beyond the title's; ``grams`` already hold each sentence's
        chars = cjk_chars("".join(w for w, _ in content_words(question))) - set(folded_title)
        if chars:
            scores = [x + CHAR_SHARE_WEIGHT * len(chars & g) / len(chars) for x, g in zip(scores, grams)]
    best = int(np.argmax(scores))
    s, e = spans[best]
    # A fragment ("硕塞（；）", "…分别是：") says nothing alone: quote it with the sentence that follows.
    if best + 1 < len(spans) and _fragment(passage_text[s:e]):
        return Quote(passage_text[s : spans[best + 1][1]], s, spans[best + 1][1])
    if not by_meaning and max(overlaps) > 0:
        # A question built from two sentences: quote the neighbour that holds most of the rest of it.
        lacking = q_grams - grams[best]
        neighbours = [n for n in (best - 1, best + 1) if 0 <= n < len(spans)]
        # each neighbour's weighted share of the lacking bigrams, rescaled to a share of the question's
        shares = sentence_overlaps(lacking, [grams[n] for n in neighbours], topic)
        gains = [x * len(lacking) / len(q_grams) for x in shares]
        n = neighbours[int(np.argmax(gains))]  # the one before wins a tie
        if max(gains) >= NEIGHBOUR_GAIN:
            s, e = min(s, spans[n][0]), max(e, spans[n][1])
    return Quote(passage_text[s:e], s, e)


def _fragment(sentence: str) -> bool:
    """A sentence too short to carry an answer, or one that introduces what follows."""
    return len(_WORD_CHARS.findall(sentence)) < MIN_QUOTE_CHARS or sentence.rstrip().endswith(("：", ":"))
