"""Rerank: how much of the question one sentence of a passage says, and the hybrid rerank built on it.

A sentence scores its share of the question's bigrams (content words, ``question_grams``) plus
``MatchConfig.phrase_weight`` times its share of the question's character trigrams; the grams of a
passage's sentences are cached, since the same passages come back question after question.
``Reranker`` adds the best sentence's score to the top fused passages; abstention asks it of the best
passage (``sentence_support``) and the quote is the sentence that scores best (``qa.quote``). A
passage that states the question's own numbers ("2020年7月") gets ``number_share`` as well.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cached_property, lru_cache

import numpy as np

from .config import MatchConfig, RerankConfig
from .kinds import asked_kind, states
from .schema import Document, Passage
from .search import TitleIndex, minmax
from .split import sentence_spans
from .stores import SentenceSearch
from .text import char_bigrams, char_trigrams, cjk_chars, content_words, fold, has_cjk, tokenize

DEFAULT_MATCH = MatchConfig()


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
                      topic: set[str] = frozenset(), match: MatchConfig = DEFAULT_MATCH,
                      rarity: float = 0.0) -> list[float]:
    """Share of the question's bigrams (``question_grams``) in each sentence (``sentence_grams``);
    the same for trigrams (``char_trigrams``, ``sentence_trigrams``).

    Grams that are also in ``topic`` (the document title's) count ``match.title_gram_weight``:
    a question names its document's subject, but the answering sentence often leaves
    the subject out ("截尾鹦嘴鱼分布在什么地方?" -> "分布于西太平洋区。"). A one-character
    word of the question ("用") counts ``match.char_weight``. With ``rarity``, a gram that k of
    ``grams`` hold counts ``k ** -rarity`` as well: the subject recurs from sentence to sentence, the
    detail asked about ("…的鳞片有什么特点?") does not.
    """
    weights = {g: (match.title_gram_weight if g in topic else 1.0)
               * (match.char_weight if len(g) == 1 and has_cjk(g) else 1.0) for g in q_grams}
    if rarity:
        for g in weights:
            held = sum(g in sent for sent in grams)
            weights[g] *= held ** -rarity if held else 1.0
    return [sum(weights[g] for g in q_grams & sent) / max(1, len(q_grams)) for sent in grams]


@lru_cache(maxsize=8192)
def sentence_trigrams(passage_text: str) -> tuple[frozenset[str], ...]:
    """Character trigrams of each sentence of a passage (aligned with ``sentence_grams``); cached."""
    return tuple(frozenset(char_trigrams(fold(passage_text[s:e]))) for s, e in sentence_spans(passage_text))


def best_sentence_overlap(q_grams: frozenset[str], passage_text: str, q_trigrams: frozenset[str] = frozenset(),
                          match: MatchConfig = DEFAULT_MATCH) -> float:
    """The best sentence's share of ``q_grams``, plus ``match.phrase_weight`` times its share of
    ``q_trigrams`` (the folded question's ``char_trigrams``); 0 for an empty passage."""
    overlaps = sentence_overlaps(q_grams, sentence_grams(passage_text), match=match)
    if not q_trigrams or not overlaps:
        return max(overlaps, default=0.0)
    phrases = sentence_overlaps(q_trigrams, sentence_trigrams(passage_text), match=match)
    return max(o + match.phrase_weight * p for o, p in zip(overlaps, phrases))


def best_sentence(q_grams: frozenset[str], passage_text: str, match: MatchConfig = DEFAULT_MATCH) -> tuple[str, float]:
    """The sentence of a passage holding the largest share of ``q_grams`` (the first on a tie), and that
    share (``best_sentence_overlap`` without trigrams); (the passage, 0.0) when it has no sentence."""
    spans = sentence_spans(passage_text)
    if not spans:
        return passage_text, 0.0
    overlaps = sentence_overlaps(q_grams, sentence_grams(passage_text), match=match)
    best = int(np.argmax(overlaps))
    s, e = spans[best]
    return passage_text[s:e], overlaps[best]


def sentence_support(question: str, passage_text: str, match: MatchConfig = DEFAULT_MATCH) -> float:
    """How much of the question the passage's best sentence says: ``best_sentence_overlap`` of the
    question's bigrams and trigrams, the score the reranker adds."""
    return best_sentence_overlap(question_grams(question), passage_text, question_trigrams(question), match)


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


class Reranker:
    """The hybrid rerank of fused candidates (``RerankConfig``): what one sentence of a passage says
    of the question, in words and in meaning, its numbers, and the document it names by its title.

    A passage whose single sentence holds most of the question's words (and repeats its phrases), or
    says what it asks in other words, beats one that scatters them over several sentences;
    "大沙地站共有几层?" is about the article 大沙地站, not 大沙东站, however alike their passages read.
    """

    def __init__(self, passages: Sequence[Passage], documents: dict[str, Document], sentences: SentenceSearch,
                 config: RerankConfig = RerankConfig(), match: MatchConfig = DEFAULT_MATCH):
        self.passages, self.documents, self.sentences = passages, documents, sentences
        self.config, self.match = config, match

    @cached_property
    def titles(self) -> TitleIndex:
        """The documents' titles as the rerank matches them, built on first use (loading stays fast)."""
        return TitleIndex(((d.doc_id, d.title) for d in self.documents.values()), self.config.max_title_chars)

    def rerank(self, question: str, ids: np.ndarray, fused: np.ndarray,
               qvec: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Add ``sentence_weight * best_sentence_overlap``, ``sentence_dense_weight`` times the min-max
        scaled best sentence cosine (to ``qvec``) and ``number_weight`` times the share of the question's
        numbers a passage states to the top ``depth`` fused scores, and ``title_weight`` to every
        candidate from a document the question names by its title; best first."""
        cfg = self.config
        fused = fused.copy()
        top = min(len(ids), cfg.depth)
        if cfg.sentence_dense_weight and qvec is not None:
            fused[:top] += cfg.sentence_dense_weight * minmax(self.sentences.best(ids[:top], qvec))
        if cfg.sentence_weight:
            q_grams, q_trigrams = question_grams(question), question_trigrams(question)
            fused[:top] += cfg.sentence_weight * np.array(
                [best_sentence_overlap(q_grams, self.passages[int(i)].text, q_trigrams, self.match)
                 for i in ids[:top]], dtype=np.float32)
        numbers = question_numbers(question) if cfg.number_weight else ()
        if numbers:
            fused[:top] += cfg.number_weight * np.array(
                [number_share(numbers, self.passages[int(i)].text) for i in ids[:top]], dtype=np.float32)
        named = self.titles.named(question) if cfg.title_weight else set()
        if named:
            fused += cfg.title_weight * np.array([self.passages[int(i)].doc_id in named for i in ids], dtype=np.float32)
        order = np.lexsort((ids, -fused))
        return self.kind_first(question, ids[order], fused[order])

    def kind_first(self, question: str, ids: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Move up a passage that states the kind of fact asked for when the first does not.

        For a question of a kind in ``kinds_first`` ("苏州是什么时候获批…?"), when the best sentence
        of the first passage states none of that kind ("近日,工信部正式復函…": recently), the first
        of the next ``kind_depth - 1`` passages whose best sentence does ("2021年11月,工信部正式复函…")
        says at least ``kind_min_support`` of the question, no more than ``kind_support_gap`` less than the
        first's, and names the question's subject (its first content word: "劲松站什么时候投入使用?" is
        not answered by another station's opening date), goes first, its score raised just above the first's."""
        cfg = self.config
        kind = asked_kind(question) if cfg.kind_depth > 1 and len(ids) > 1 else None
        if kind not in cfg.kinds_first:
            return ids, scores
        q_grams = question_grams(question)
        first, support = best_sentence(q_grams, self.passages[int(ids[0])].text, self.match)
        if states(kind, first, question):
            return ids, scores
        floor = max(cfg.kind_min_support, support - cfg.kind_support_gap)
        words = content_words(question)
        subject = words[0][0] if words else ""  # "劲松站什么时候投入使用?": 劲松
        for j in range(1, min(cfg.kind_depth, len(ids))):
            sentence, support = best_sentence(q_grams, self.passages[int(ids[j])].text, self.match)
            if support >= floor and states(kind, sentence, question) and subject in fold(sentence):
                order = np.r_[j, np.arange(j), np.arange(j + 1, len(ids))]
                scores = scores.copy()
                scores[j] = scores[0] + 1e-3
                return ids[order], scores[order]
        return ids, scores
