"""Text folding and tokenisation shared by every stage.

Folding maps Traditional to Simplified Chinese (OpenCC ``t2s``), full-width forms
to ASCII (NFKC) and letters to lower case, so both scripts and both widths match.
It is used only for matching: quotes and citations always show the original text.
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np

_CJK = r"[\u3400-\u9fff\uf900-\ufaff]"  # CJK ideographs and compatibility ideographs
_TOKEN_RE = re.compile(rf"[a-z0-9]+(?:[.'][a-z0-9]+)*|{_CJK}+")
_CJK_RE = re.compile(_CJK)
_CJK_RUN_RE = re.compile(_CJK + "+")

# Function words that carry no topic (folded, Simplified). Kept small on purpose:
# question words like 什么/多少/哪 are dropped, content words never are.
STOPWORDS = frozenset(
    """的 了 是 在 和 与 及 或 也 都 就 而 并 被 把 将 对 从 向 于 为 以 由 之 其 这 那 个
    一 有 又 等 中 上 下 吗 呢 吧 啊 么 什么 哪 哪里 哪些 哪个 哪一 多少 几 何 何时 谁 是谁
    如何 怎么 怎样 为什么 什么样 什么时候 时候 请问 请 问 一下 是否 会 能 可以 该 此 这个 那个 我 你 他
    她 它 们 我们 你们 他们 a an the of to in on at for by with and or is are was were be been
    what which who whom when where why how does do did has have had it its this that these
    those as from into about than then there their they he she his her i you we our your""".split()
)


@lru_cache(maxsize=2)
def opencc_converter(config: str):
    """An OpenCC converter, loaded once: ``"t2s"`` (Traditional to Simplified) or ``"s2t"``."""
    import opencc

    return opencc.OpenCC(config)


def fold(text: str) -> str:
    """Fold script, width and case: ``fold('蘇州ＡＢ') == '苏州ab'``."""
    text = unicodedata.normalize("NFKC", text).lower()
    if _CJK_RE.search(text):
        text = opencc_converter("t2s").convert(text)
    return text


@lru_cache(maxsize=1)
def jieba_tokenizer():
    """jieba's default tokenizer, initialised once (its prefix dict takes 0.6 s); the part-of-speech
    tagger that abstention uses (``jieba.posseg.dt``) wraps this same one, so the dict loads once."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.dt.initialize()
    return jieba.dt


def words(folded: str) -> list[str]:
    """Split already-folded text into jieba search-mode words and ASCII words."""
    out: list[str] = []
    cut = jieba_tokenizer().cut_for_search
    for m in _TOKEN_RE.finditer(folded):
        piece = m.group()
        if piece[0].isascii():
            out.append(piece)
        else:
            out.extend(w for w in cut(piece, HMM=True) if w.strip())
    return out


def tokenize(text: str) -> list[str]:
    """Folded content words of ``text`` for BM25 (stopwords dropped)."""
    return [w for w in words(fold(text)) if w not in STOPWORDS]


def has_cjk(text: str) -> bool:
    """True when the text holds at least one CJK ideograph."""
    return bool(_CJK_RE.search(text))


def cjk_chars(folded: str) -> set[str]:
    """Set of the CJK ideographs of a text (a question's one-character words match them)."""
    return set(_CJK_RE.findall(folded))


def char_trigrams(folded: str) -> set[str]:
    """Set of character trigrams inside the CJK runs of folded text (phrases a question copies from its answer)."""
    grams: set[str] = set()
    for m in _CJK_RUN_RE.finditer(folded):
        run = m.group()
        grams.update(run[i : i + 3] for i in range(len(run) - 2))
    return grams


def char_bigrams(folded: str) -> set[str]:
    """Set of CJK character bigrams and ASCII words in folded text (for quote overlap)."""
    grams: set[str] = set()
    for m in _TOKEN_RE.finditer(folded):
        piece = m.group()
        if piece[0].isascii():
            if piece not in STOPWORDS:
                grams.add(piece)
        elif len(piece) == 1:
            grams.add(piece)
        else:
            grams.update(piece[i : i + 2] for i in range(len(piece) - 1))
    return grams


_PAIR_SHIFT = 21  # every code point fits in 21 bits
_ALONE = (1 << _PAIR_SHIFT) - 1  # above every code point: the second half of a single character's code


def _single_codes(chars: np.ndarray) -> np.ndarray:
    """Codes of each character but NUL: ``c << 21 | _ALONE``."""
    chars = chars[chars != 0].astype(np.uint64)
    return (chars << _PAIR_SHIFT) | _ALONE


def _pair_codes(chars: np.ndarray) -> np.ndarray:
    """Codes of each adjacent pair of characters without a NUL: ``a << 21 | b``."""
    chars = chars.astype(np.uint64)
    keep = (chars[:-1] != 0) & (chars[1:] != 0)
    return ((chars[:-1] << _PAIR_SHIFT) | chars[1:])[keep]


def _chars(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


class CharGrams:
    """The set of characters and adjacent character pairs of some folded texts, as sorted integer
    codes: built once with the index (``python -m qa build``) and loaded with it, so abstention's
    "does the corpus contain this word" needs no pass over the corpus when the app starts."""

    def __init__(self, codes: np.ndarray):
        self.codes = np.ascontiguousarray(codes, dtype=np.uint64)
        self._sorted = memoryview(self.codes)  # bisect reads Python ints from it: ~1.5 us a word, as a set

    @classmethod
    def build(cls, folded: Iterable[str], chunk: int = 2_000) -> CharGrams:
        """From folded texts, ``chunk`` texts at a time (bounded memory)."""
        parts, batch = [], []
        for text in folded:
            batch.append(text)
            if len(batch) == chunk:
                parts.append(cls._unique("\0".join(batch)))
                batch = []
        if batch:
            parts.append(cls._unique("\0".join(batch)))
        return cls(np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.uint64))

    @staticmethod
    def _unique(joined: str) -> np.ndarray:
        chars = _chars(joined)
        return np.unique(np.concatenate([_single_codes(chars), _pair_codes(chars)]))

    def holds(self, word: str) -> bool:
        """Every adjacent pair of the folded ``word`` (its one character, if it has one) occurs in the texts."""
        if len(word) > 1:
            want = [(ord(a) << _PAIR_SHIFT) | ord(b) for a, b in zip(word, word[1:])]
        else:
            want = [(ord(word) << _PAIR_SHIFT) | _ALONE] if word else []
        codes, n = self._sorted, len(self._sorted)
        for code in want:  # a pair with a NUL is never stored, so never found
            i = bisect_left(codes, code)
            if i == n or codes[i] != code:
                return False
        return bool(want)

    def save(self, path: Path) -> None:
        np.save(path, self.codes, allow_pickle=False)

    @classmethod
    def load(cls, path: Path) -> CharGrams:
        codes = np.load(path, allow_pickle=False)
        if codes.dtype != np.uint64 or codes.ndim != 1:
            raise ValueError(f"{path.name} holds {codes.dtype} of shape {codes.shape}, expected 1-d uint64")
        if len(codes) > 1 and not bool(np.all(codes[1:] > codes[:-1])):  # a binary search needs them sorted
            raise ValueError(f"{path.name} is not sorted")
        return cls(codes)


@lru_cache(maxsize=1)
def char_frequencies() -> dict[str, int]:
    """Per-character frequency (Simplified) summed over jieba's word dictionary."""
    import jieba

    freq: dict[str, int] = {}
    path = os.path.join(os.path.dirname(jieba.__file__), "dict.txt")
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            word, count, _ = line.split(" ")
            n = int(count)
            for ch in word:
                freq[ch] = freq.get(ch, 0) + n
    return freq


def plausibility(text: str) -> float:
    """Mean log-frequency of the CJK characters in a decoding (higher is likelier right)."""
    sample = fold(text[:20000])
    freq = char_frequencies()
    chars = [c for c in sample if not c.isascii() and not c.isspace()]
    if not chars:
        return 0.0
    # Kana, box drawing, private-use and other non-CJK characters score 0: mis-decoded
    # Big5 read as GB18030 is full of them.
    return sum(math.log1p(freq.get(c, 0)) if "\u3400" <= c <= "\u9fff" else 0.0 for c in chars) / len(chars)


_CONTENT_POS = ("n", "v", "a", "i", "l", "j", "eng")
# Words that frame a question about a text rather than name a concept in it.
_FRAME = frozenset("文章 本文 文中 提到 提及 根据 据 说 认为 指 叫 叫做 称为 称 有 是 做 要 用 进行 属于 包括 主要 具体 分别".split())


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

    jieba_tokenizer()  # initialised quietly, once
    return jieba.posseg.dt


@lru_cache(maxsize=1024)
def tagged_words(question: str, hmm_chars: int = 80) -> tuple[tuple[str, str], ...]:
    """(word, part-of-speech flag) of every word of the folded question; cached, as abstention and the
    quote read them.

    jieba guesses words outside its dictionary with an HMM that costs about 1 ms a rare character.
    Only the first ``hmm_chars`` characters (``QuestionConfig.hmm_chars``) get that guess; the rest is
    cut with the dictionary alone, so a long question of rare characters costs no more than a short one.
    """
    folded = fold(question)
    head, tail = folded[:hmm_chars], folded[hmm_chars:]
    words = [(p.word, p.flag) for p in _posseg().cut(head)]
    if tail:
        words += [(p.word, p.flag) for p in _posseg().cut(tail, HMM=False)]
    return tuple(words)


def content_words(question: str, hmm_chars: int = 80) -> list[tuple[str, str]]:
    """(word, part-of-speech flag) of the question's Chinese content words, folded."""
    return [
        (w, f) for w, f in tagged_words(question, hmm_chars)
        if has_cjk(w) and w not in STOPWORDS and w not in _FRAME and f.startswith(_CONTENT_POS)
    ]


_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def inert(text: object) -> str:
    """``text`` safe to print to a terminal: control characters (escape sequences, bells, carriage
    returns) and bidirectional overrides are shown as ``\\xNN`` / ``\\uNNNN`` escapes, so a document
    cannot clear the screen, retitle the window or disguise a link. Newlines and tabs are kept."""
    out = []
    for c in str(text):
        if c in "\n\t" or (c.isprintable() and c not in _BIDI):
            out.append(c)
        elif unicodedata.category(c) in ("Zs",):
            out.append(c)
        else:
            out.append(c.encode("unicode_escape").decode("ascii"))
    return "".join(out)
