"""Quote: the sentence of the best passage that answers the question, quoted exactly.

The quote is always a slice of the passage's text (``Quote.start`` / ``Quote.end`` relative to the
passage), so its citation can be checked against the original file.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from .config import MatchConfig, QuoteConfig
from .kinds import asked_kind, expressions, states
from .rerank import question_grams, question_trigrams, sentence_grams, sentence_overlaps, sentence_trigrams
from .schema import Quote
from .split import quote_spans
from .text import char_bigrams, char_trigrams, cjk_chars, content_words, fold

_WORD_CHARS = re.compile(r"\w")
# A sentence whose subject is a pronoun: what it stands for is named in the sentence before.
_PRONOUN = re.compile(r"[「“\"（(]?(?:它|他|她|其|该|該|此|这|這|后者|後者|前者|两者|兩者|二者)")


def _cue_bonus(question: str, sentence: str, config: QuoteConfig) -> float:
    """Extra weight for a sentence stating the kind of fact the question asks for (``qa.kinds``)
    beyond what the question says itself: a date for "when", a number for "how many", a name for
    "who", a place for "where"."""
    kind = asked_kind(question)
    if kind is None or not states(kind, sentence, question):
        return 0.0
    return getattr(config, f"{kind}_bonus")


class _Scored(NamedTuple):
    """A passage's sentence scores as ``pick_quote`` ranks them, and what its later steps read again."""

    scores: list[float]
    by_meaning: bool
    q_grams: frozenset[str]
    grams: list[frozenset[str]]
    topic: set[str]
    overlaps: list[float]


def _score(question: str, passage_text: str, embed: Callable[[list[str]], np.ndarray] | None,
           query_vector: np.ndarray | None, title: str, config: QuoteConfig, match: MatchConfig,
           hmm_chars: int, spans: list[tuple[int, int]]) -> _Scored:
    """Score the two or more sentences ``spans`` of ``passage_text`` (see ``pick_quote``)."""
    sentences = [passage_text[s:e] for s, e in spans]
    # spans has 2 or more sentences here, so it is sentence_spans(passage_text), which sentence_grams cut.
    folded_title = fold(title)
    q_grams, grams, topic = question_grams(question), sentence_grams(passage_text), char_bigrams(folded_title)
    overlaps = sentence_overlaps(q_grams, grams, topic=topic, match=match, rarity=config.rarity)
    # No sentence says anything of the question beyond its document's subject: judge by meaning.
    by_meaning = embed is not None and query_vector is not None and not any(
        (q_grams - topic) & g for g in grams)
    if by_meaning:
        scores = [float(c) for c in embed(sentences) @ query_vector]
    else:
        phrases = sentence_overlaps(question_trigrams(question), sentence_trigrams(passage_text),
                                    char_trigrams(folded_title), match, config.rarity)
        scores = [o + match.phrase_weight * p + _cue_bonus(question, t, config)
                  for o, p, t in zip(overlaps, phrases, sentences)]
        # the question's content characters beyond the title's; ``grams`` already hold each sentence's
        chars = cjk_chars("".join(w for w, _ in content_words(question, hmm_chars))) - set(folded_title)
        if chars:
            scores = [x + config.char_share_weight * len(chars & g) / len(chars) for x, g in zip(scores, grams)]
        if config.sentence_dense_weight and embed is not None and query_vector is not None:
            cosines = embed(sentences) @ query_vector
            scores = [x + config.sentence_dense_weight * float(c) for x, c in zip(scores, cosines)]
    return _Scored(scores, by_meaning, q_grams, grams, topic, overlaps)


def sentence_scores(
    question: str,
    passage_text: str,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    query_vector: np.ndarray | None = None,
    title: str = "",
    config: QuoteConfig = QuoteConfig(),
    match: MatchConfig = MatchConfig(),
    hmm_chars: int = 80,
) -> tuple[list[tuple[int, int]], list[float]]:
    """The spans of ``passage_text``'s sentences and the scores ``pick_quote`` ranks them by, before its
    pair, neighbour and kind steps (a passage of one sentence scores 0): what a learned scorer is
    measured against (``scripts/train_reader.py``)."""
    spans = quote_spans(passage_text)
    if len(spans) == 1:
        return spans, [0.0]
    return spans, _score(question, passage_text, embed, query_vector, title, config, match, hmm_chars, spans).scores


def pick_quote(
    question: str,
    passage_text: str,
    embed: Callable[[list[str]], np.ndarray] | None = None,
    query_vector: np.ndarray | None = None,
    title: str = "",
    config: QuoteConfig = QuoteConfig(),
    match: MatchConfig = MatchConfig(),
    hmm_chars: int = 80,
) -> Quote:
    """The sentence of ``passage_text`` that best answers ``question``.

    Sentences are scored by the share of the bigrams of the question's content words they contain,
    plus ``match.phrase_weight`` times their share of the question's character trigrams (bigrams and
    trigrams of the passage's ``title`` count less, and so do those many of its sentences hold:
    ``config.rarity``, see ``sentence_overlaps``), plus an answer-type cue
    (``_cue_bonus``), plus ``config.char_share_weight`` times their share of
    the characters of the question's content words beyond the title's, plus ``config.sentence_dense_weight``
    times their cosine to ``query_vector`` (vectors from ``embed``, when given). When no sentence shares a word
    with the question beyond those of the ``title`` (an English question over Chinese text;
    "朱载圳的性格有什么特点?" over "朱载圳（），明世宗第四子…。朱载圳贪婪蛮横…") and an ``embed``
    function is given, the sentence with the highest cosine to ``query_vector`` is chosen instead. A
    runner-up next to a sentence chosen by its words, within ``config.pair_margin`` of its score, is quoted
    with it. A neighbour that holds ``config.neighbour_gain`` of the question's bigrams that the chosen
    sentence lacks is quoted with it, and so is the sentence before one whose subject is a pronoun
    (``config.pronoun_lead``). A quote that still states no fact of the asked kind (``qa.kinds``) takes in
    the sentence before it, else the one after it, that states one (``config.kind_neighbours``).
    """
    spans = quote_spans(passage_text)
    if len(spans) == 1:
        s, e = spans[0]
        return Quote(passage_text[s:e], s, e)
    scores, by_meaning, q_grams, grams, topic, overlaps = _score(
        question, passage_text, embed, query_vector, title, config, match, hmm_chars, spans)
    best = int(np.argmax(scores))
    s, e = spans[best]
    # A fragment ("硕塞（；）", "…分别是：") says nothing alone: quote it with the sentence that follows.
    if best + 1 < len(spans) and _fragment(passage_text[s:e], config.min_quote_chars):
        return Quote(passage_text[s : spans[best + 1][1]], s, spans[best + 1][1])
    if not by_meaning:  # a close runner-up next to the best: the scores cannot tell which answers
        runner = max((n for n in range(len(spans)) if n != best), key=lambda n: scores[n])
        if abs(runner - best) == 1 and scores[best] - scores[runner] < config.pair_margin:
            s, e = min(s, spans[runner][0]), max(e, spans[runner][1])
    if not by_meaning and max(overlaps) > 0:
        # A question built from two sentences: quote the neighbour that holds most of the rest of it.
        lacking = q_grams - grams[best]
        neighbours = [n for n in (best - 1, best + 1) if 0 <= n < len(spans)]
        # each neighbour's weighted share of the lacking bigrams, rescaled to a share of the question's
        shares = sentence_overlaps(lacking, [grams[n] for n in neighbours], topic, match, config.rarity)
        gains = [x * len(lacking) / len(q_grams) for x in shares]
        n = neighbours[int(np.argmax(gains))]  # the one before wins a tie
        if max(gains) >= config.neighbour_gain:
            s, e = min(s, spans[n][0]), max(e, spans[n][1])
    if config.pronoun_lead and best > 0 and _PRONOUN.match(passage_text[spans[best][0]:spans[best][1]]):
        s = min(s, spans[best - 1][0])  # "它…": the sentence before names what it is
    kind = asked_kind(question)
    # (a quote that repeats the question's own "排名第4" answers it with something else: a name)
    if kind in config.kind_neighbours and not states(kind, passage_text[s:e], question) and \
            not any(o in fold(passage_text[s:e]) for o in expressions(kind, question)):
        first = next(i for i, (a, _) in enumerate(spans) if a >= s)
        last = max(i for i, (_, b) in enumerate(spans) if b <= e)
        for n in (first - 1, last + 1):  # "同年…", "该公司…": the fact is stated next door
            if 0 <= n < len(spans) and states(kind, passage_text[spans[n][0]:spans[n][1]], question):
                s, e = min(s, spans[n][0]), max(e, spans[n][1])
                break
    return Quote(passage_text[s:e], s, e)


def _fragment(sentence: str, min_chars: int) -> bool:
    """A sentence of fewer than ``min_chars`` letters and digits, or one that introduces what follows."""
    return len(_WORD_CHARS.findall(sentence)) < min_chars or sentence.rstrip().endswith(("：", ":"))
