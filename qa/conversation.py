"""Conversation: read a follow-up question with the questions asked before it.

A follow-up leans on earlier turns: by a pronoun ("它排名第几?"), by ellipsis ("2019年呢?", "那相城区呢?",
"What about Xiangcheng?") or by leaving words out ("其中有几个应用场景?"). ``contextual_reading`` turns it
into a question that stands alone, from the previous turn's reading (``ConversationConfig``):

- a *fragment* ("X呢?", "那X呢?", "what about X?", "and X?") puts X in place of the span of the same kind
  in the previous reading: a year for a year, a number for a number, a place for a place (jieba's
  ``ns`` tag; in English a capitalised word). With no such span, X goes in front of the previous reading.
- any other follow-up gets the previous reading's topic words (its runs of nouns, and its numbers when
  the follow-up states none; up to ``topic_words`` it does not state itself) put in front of it.

Earlier turns are read the same way, oldest first, as far back as ``max_turns``; a turn is read in
context only when it shows a cue (``leans``). ``Pipeline.ask`` asks both the question as it stands and
its contextual reading and keeps the one that abstention is more confident of (``prefer_contextual``);
a fragment's reading is always kept, and declined when the fragment names what the corpus never uses
(``absent_term``: "2023年呢?").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .config import ConversationConfig
from .text import fold, has_cjk, tagged_words

_ZH_FRAGMENT = re.compile(r"^(?:那么|那|还有|還有|而|再看)?\s*(.{1,24}?)\s*(?:的情况|的情況|又如何|怎么样|怎麼樣)?\s*呢\s*[?？]?$")
_EN_FRAGMENT = re.compile(r"^(?:and|what about|how about)\s+(.{1,60}?)\s*[?.!]*$", re.IGNORECASE)
_YEAR = re.compile(r"(?<!\d)(?:19|20)\d{2}(?!\d)(?:\s*年)?")
_NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?(?![\d.])")
_ZH_CUES = ("它", "其", "该", "該", "这", "這", "那", "此", "他们", "他們", "她", "上述")
_EN_CUES = frozenset("it its they them their there that this those these he she his her".split())
_EN_STOP = frozenset("what which when where who whom whose how many much does did have has with from that this "
                     "they their about into were was are is the and for".split())
_PLACE_POS = ("ns",)
_NOUN_POS = ("n", "eng")


def leans(question: str) -> bool:
    """Does the question show that it leans on earlier turns (a pronoun, a fragment, "what about")?"""
    if fragment(question) is not None:
        return True
    if has_cjk(question):
        return any(c in question for c in _ZH_CUES)
    return bool(_EN_CUES & set(re.findall(r"[a-z']+", question.lower())))


def fragment(question: str) -> str | None:
    """X of "X呢?", "那X呢?", "what about X?" or "and X?", else None."""
    m = (_ZH_FRAGMENT if has_cjk(question) else _EN_FRAGMENT).match(question.strip())
    if m is None:
        return None
    x = m.group(1).strip(" ,，、")
    return re.sub(r"^(?:in|at|for|of)\s+", "", x, flags=re.IGNORECASE) or None


def _places(text: str) -> list[tuple[int, int]]:
    """(start, end) in ``text`` of its place names: jieba's ``ns`` words, or capitalised English words
    after the first."""
    if not has_cjk(text):
        return [m.span() for m in re.finditer(r"(?<=\s)[A-Z][a-z]+", text)]
    folded, spans, at = fold(text), [], 0
    if len(folded) != len(text):
        return []
    for word, flag in tagged_words(text):
        start = folded.find(word, at)
        if start >= 0:
            at = start + len(word)
            if flag in _PLACE_POS:
                spans.append((start, at))
    return spans


def substitute(previous: str, x: str) -> str:
    """The previous reading with ``x`` in place of its span of the same kind, or ``x`` in front of it."""
    for pattern in (_YEAR, _NUMBER):
        if pattern.search(x):
            spans = [m.span() for m in pattern.finditer(previous)]
            if spans:
                s, e = spans[-1]
                keep = "年" if previous[s:e].endswith("年") and not x.endswith("年") else ""
                return previous[:s] + x + keep + previous[e:]
    if _places(x if has_cjk(x) else " " + x) or (has_cjk(x) and x.endswith(("区", "區", "市", "省", "县", "縣"))):
        spans = _places(previous)
        if spans:
            s, e = spans[0]
            return previous[:s] + x + previous[e:]
    return f"{x} {previous}"


def topic_words(previous: str, question: str, limit: int) -> list[str]:
    """The previous reading's content words, years and numbers that ``question`` does not state."""
    have = fold(question)
    if has_cjk(previous):
        words, run = [], ""
        for word, flag in tagged_words(previous) + (("", "x"),):
            if has_cjk(word) and (flag.startswith(_NOUN_POS) or flag in ("vn", "j")):
                run += word
            elif run:
                words, run = words + [run], ""
    else:
        words = [w for w in re.findall(r"[A-Za-z][\w'-]+", previous) if len(w) > 3 and w.lower() not in _EN_STOP]
    numbers = [m.group() for m in _NUMBER.finditer(previous)] if not _NUMBER.search(question) else []
    out: list[str] = []
    for w in words + numbers:
        if fold(w) not in have and w not in out:
            out.append(w)
    return out[:limit]


def read_with(question: str, previous: str, config: ConversationConfig = ConversationConfig()) -> str:
    """``question`` read in the context of the previous turn's reading."""
    x = fragment(question)
    if x is not None:
        return substitute(previous, x)
    words = topic_words(previous, question, config.topic_words)
    return " ".join(words + [question]) if words else question


def contextual_reading(question: str, history: Sequence[str],
                       config: ConversationConfig = ConversationConfig()) -> str | None:
    """``question`` read with the earlier turns (oldest first), or None when there are none."""
    turns = [t for t in history if t][-config.max_turns:]
    if not turns:
        return None
    previous = turns[0]
    for turn in turns[1:]:
        previous = read_with(turn, previous, config) if leans(turn) else turn
    return read_with(question, previous, config)


def new_terms(question: str, reading: str) -> list[str]:
    """What a fragment follow-up brings in that its reading must be about: X of "X呢?" ("2023年", "吴江区")."""
    x = fragment(question)
    return [x] if x is not None and x in reading else []


def prefer_contextual(standalone: float, contextual: float, question: str,
                      config: ConversationConfig = ConversationConfig()) -> bool:
    """Keep the contextual reading when abstention is more confident of it by ``margin``, or as confident
    when the question shows a cue (``leans``). A fragment ("2019年呢?") asks nothing by itself: its
    reading is always kept."""
    if fragment(question) is not None:
        return True
    return contextual > standalone + config.margin or (leans(question) and contextual >= standalone)


def absent_term(terms: Sequence[str], uses: Callable[[str], bool]) -> str | None:
    """The first of ``terms`` that the corpus never uses (``uses``: every BM25 token of it is in the
    vocabulary), else None. An English term is checked only for its numbers: a name may be translated."""
    for term in terms:
        core = " ".join(re.findall(r"\w+(?:\.\d+)?", term if has_cjk(term) else " ".join(_NUMBER.findall(term))))
        if core and not uses(core):
            return term
    return None
