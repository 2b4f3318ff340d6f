"""Abstain: does the corpus answer the question at all? One class, ``Abstainer``, whose checks have names.

Every check reads the question's content words (nouns, verbs, adjectives, names; cut with
part-of-speech tags by jieba), each weighted by its general-language IDF (jieba's table), so rare,
specific words count more. The words' confidence starts at 1 and each of the first three checks may
lower it (``AbstainConfig``):

- ``words_missing``: the IDF-weighted share of content words the corpus never uses lowers it to
  ``1 - share``; a place, person or organisation name it never uses (``name_missing``) sets it to 0.
- ``attribute_unstated``: a counting or "who" question whose attribute the corpus never names
  ("有多少名员工", "院长是谁") sets it to 0, unless a top passage counts with the question's
  measure word ("多少条措施" over "24条扶持举措").
- ``not_held_together``: ``coverage``, the weighted share of the words that the best of the top
  ``coverage_depth`` BM25 passages holds, caps it at ``coverage_scale * coverage``: a question about
  another corpus often names things this one mentions, but never in one place.
- ``sentence_confidence``: with the best passage's best sentence at hand, confidence becomes a
  logistic of the words' confidence, that sentence's ``support`` (how much of the question it says:
  ``qa.rerank.sentence_support``) and ``said``, the lower of its support and ``gap_scale`` x its
  ``gap`` (how much closer to the question it means than the mean best sentence of the top passages:
  ``sentence_gap``). A question is written from a sentence, which shares its words or says it in other
  words; a question about another corpus whose words this one holds together still finds a passage
  whose sentences do neither. The weights are fitted (``scripts/fit_abstain.py``), not set by hand.

English questions over a Chinese corpus are judged by their words' CC-CEDICT translations (a word is
missing when the dictionary knows it but the corpus uses none of its renderings); the other checks do
not apply to them. The pipeline abstains when confidence is under ``threshold``. The top passage's
cosine is not used: that of unanswerable questions overlaps that of answerable ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from .config import AbstainConfig, IndexConfig, MatchConfig, QuestionConfig
from .rerank import sentence_support
from .schema import Passage
from .stores import LexicalScores, LexicalSearch, SentenceSearch
from .text import CharGrams, content_words, fold, general_idf, has_cjk, tagged_words, tokenize

_NAME_POS = ("ns", "nr", "nt", "nrt")


class CorpusWords:
    """Which words a corpus uses: its BM25 vocabulary and (up to ``limit`` passages,
    ``IndexConfig.char_grams_limit``) its characters and character pairs (``CharGrams``: stored with
    the index, or made on first use)."""

    def __init__(self, passages: Sequence, vocab: dict[str, int], grams: CharGrams | None = None,
                 limit: int = IndexConfig().char_grams_limit):
        self.vocab = vocab
        self.cjk = sum(map(has_cjk, vocab)) > len(vocab) / 2
        self._passages = passages
        self._grams = grams
        self._limit = limit

    def uses(self, word: str) -> bool:
        """Every BM25 token of ``word`` is in the corpus vocabulary."""
        toks = tokenize(word)
        return bool(toks) and all(t in self.vocab for t in toks)

    def present(self, word: str) -> bool:
        """Does the corpus contain this folded word (all its character bigrams, or its BM25 tokens)?"""
        if self._grams is None:  # an index written before they were stored: made on first use, once
            grams = corpus_grams(self._passages, self._limit)
            self._grams = CharGrams(np.zeros(0, np.uint64)) if grams is None else grams
        if len(self._grams.codes):
            return self._grams.holds(word)
        return self.uses(word)


def corpus_grams(passages: Sequence, limit: int = IndexConfig().char_grams_limit) -> CharGrams | None:
    """The characters and character pairs of the passages' folded text; None past ``limit`` passages."""
    if len(passages) > limit:
        return None
    return CharGrams.build(fold(p.text) for p in passages)


def _weight(word: str) -> float:
    """A word's general-language IDF (the table's median for a word it lacks)."""
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


def asked_attributes(question: str, hmm_chars: int = 80) -> list[tuple[str, str]]:
    """(noun, measure word or "") for what a counting or "who is" question asks about.

    "苏州域乎有多少名员工?" -> [("员工", "名")]; "研究院的院长是谁?" -> [("院长", "")]. The noun is the
    last of the nouns that follow 多少/几 (and a measure word), or the noun right before 是谁.
    """
    toks = tagged_words(question, hmm_chars)
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


def unstated_attribute(question: str, present: Callable[[str], bool], passages: Sequence[str],
                       hmm_chars: int = 80) -> str | None:
    """The attribute a counting or "who" question asks for, when the corpus never names it, else None.

    A count is still answerable when one of ``passages`` counts with the question's measure word
    ("多少条具体措施" over "24条具体扶持举措").
    """
    for noun, measure in asked_attributes(question, hmm_chars):
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


def confidence(missing_share: float, key_missing: bool, covered: float = 1.0,
               scale: float = AbstainConfig().coverage_scale) -> float:
    """Confidence in [0, 1] that the corpus can answer: ``min(1 - missing_share, scale * covered)``, or 0
    when ``key_missing`` (a name, or the attribute a counting or "who" question asks for, is absent)."""
    if key_missing:
        return 0.0
    return float(max(0.0, min(1.0 - missing_share, scale * covered, 1.0)))


class Abstainer:
    """How sure we are that the corpus answers a question (see the module docstring for the checks)."""

    def __init__(self, passages: Sequence[Passage], lexical: LexicalSearch, sentences: SentenceSearch,
                 words: CorpusWords, config: AbstainConfig = AbstainConfig(), match: MatchConfig = MatchConfig(),
                 question: QuestionConfig = QuestionConfig()):
        self.passages, self.lexical, self.sentences, self.words = passages, lexical, sentences, words
        self.config, self.match, self.hmm_chars = config, match, question.hmm_chars

    def sentence_gap(self, ids: np.ndarray, qvec: np.ndarray) -> float | None:
        """How much closer to the question the first passage's best sentence is than the average
        passage's best sentence (cosines, over ``ids``); None for fewer than ``min_gap_passages``."""
        if len(ids) < self.config.min_gap_passages:
            return None
        best = self.sentences.best(ids, qvec)
        return float(best[0] - best.mean())

    def confidence(self, question: str, translation: tuple | None = None, lex: LexicalScores | None = None,
                   top: str | None = None, gap: float | None = None) -> float:
        """Confidence in [0, 1] that the corpus answers ``question``.

        ``translation``: the CC-CEDICT translation of an English question over Chinese text (None for
        others); ``lex``: the BM25 scores of the question when already computed; ``top``: the best
        passage's text, and ``gap``, ``sentence_gap`` of the passages found, for ``sentence_confidence``,
        which is skipped without the text.
        """
        if translation is not None:
            _, missing, content = translation
            missing = [w for w in missing if not self.words.uses(w)]  # English words the corpus itself uses
            return confidence(len(missing) / content if content else 1.0, False, scale=self.config.coverage_scale)
        return sentence_confidence(self.config, *self.evidence(question, lex, top, gap))

    def evidence(self, question: str, lex: LexicalScores | None = None, top: str | None = None,
                 gap: float | None = None) -> tuple[float, float | None, float | None]:
        """(the words' confidence, ``support``, ``gap``): what ``sentence_confidence`` weighs, for a
        Chinese question; ``scripts/fit_abstain.py`` fits the weights on them."""
        words = content_words(question, self.hmm_chars)
        share, name_missing, _ = missing_concepts(question, self.words.present, words)
        if name_missing or not words:
            conf = confidence(share, name_missing, scale=self.config.coverage_scale)
        else:
            lex = self.lexical.score(question) if lex is None else lex
            ids, _ = lex.top(self.config.coverage_depth)
            texts = [self.passages[int(i)].text for i in ids]
            unstated = unstated_attribute(question, self.words.present, texts, self.hmm_chars)
            conf = confidence(share, bool(unstated), 1.0 if unstated else coverage(words, texts),
                              self.config.coverage_scale)
        return conf, None if top is None else sentence_support(question, top, self.match), gap


def sentence_confidence(config: AbstainConfig, conf: float, support: float | None, gap: float | None) -> float:
    """Confidence from the words' ``conf`` and the best passage's best sentence: its ``support``
    (``sentence_support``) and ``gap`` (``Abstainer.sentence_gap``).

    ``sigmoid(bias + words_weight * conf + support_weight * support + said_weight * said)`` with
    ``said = min(support, gap_scale * gap)``: a sentence must say the question or mean it, and one that
    does neither sinks the confidence however well the corpus knows the words, and one that does both
    can lift a confidence that a few missing words lowered. Without a gap (fewer than
    ``min_gap_passages`` passages, unlike the corpora the weights were fitted on) ``said`` is the
    support and the sentence can only lower the words' confidence. Without a sentence, or when
    ``conf`` is 0 (a missing name or attribute, or no word of the question in the corpus), ``conf``
    stands.
    """
    if support is None or conf == 0.0:
        return conf
    said = support if gap is None else min(support, config.gap_scale * gap)
    z = config.bias + config.words_weight * conf + config.support_weight * support + config.said_weight * said
    p = float(1.0 / (1.0 + np.exp(-z)))
    return p if gap is not None else min(conf, p)
