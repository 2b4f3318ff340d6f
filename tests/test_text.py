"""CharGrams: the corpus's characters and character pairs as sorted integer codes."""

from __future__ import annotations

import random

import numpy as np
import pytest
from conftest import REAL_CORPUS

from qa.text import CharGrams, fold


def _reference(texts: list[str]) -> set[str]:
    """The plain set of strings CharGrams stands for."""
    grams: set[str] = set()
    for t in texts:
        grams.update(t[i : i + 2] for i in range(len(t) - 1))
        grams.update(t)
    return grams


def _held(grams: set[str], word: str) -> bool:
    return all(word[i : i + 2] in grams for i in range(max(1, len(word) - 1)))


def test_char_grams_hold_what_the_plain_set_holds_on_the_real_articles():
    texts = [fold(p.read_text(encoding="utf-8")) for p in sorted(REAL_CORPUS.glob("*.txt"))]
    grams, ref = CharGrams.build(texts, chunk=1), _reference(texts)
    assert len(grams.codes) == len(ref)  # chunked building loses and doubles nothing
    rng = random.Random(7)
    alphabet = sorted(set("".join(texts)))
    words = [t[i : i + n] for t in texts for n in (1, 2, 3, 5) for i in rng.sample(range(len(t) - n), 200)]
    words += ["".join(rng.choice(alphabet) for _ in range(n)) for n in (1, 2, 3, 4) for _ in range(300)]
    words += ["区块链", "大熊猫", "ai", "", "𠀀𠀁", "区\0块"]
    held = [grams.holds(w) for w in words]
    assert held == [_held(ref, w) for w in words]
    assert 0 < sum(held) < len(words)  # both answers occur


def test_char_grams_join_texts_without_inventing_pairs_across_them():
    grams = CharGrams.build(["苏州", "相城"])
    assert grams.holds("苏州") and grams.holds("相城") and grams.holds("州")
    assert not grams.holds("州相")  # the last character of one text and the first of the next


def test_char_grams_round_trip(tmp_path):
    grams = CharGrams.build(["区块链发展先导区"])
    grams.save(tmp_path / "chargrams.npy")
    assert np.array_equal(CharGrams.load(tmp_path / "chargrams.npy").codes, grams.codes)
    assert not CharGrams(np.zeros(0, np.uint64)).holds("区")
    np.save(tmp_path / "chargrams.npy", grams.codes[::-1].copy())  # a binary search over these would lie
    with pytest.raises(ValueError, match="not sorted"):
        CharGrams.load(tmp_path / "chargrams.npy")


def test_words_and_part_of_speech_tags_share_one_jieba_dictionary():
    from qa.text import _posseg, jieba_tokenizer

    assert _posseg().tokenizer is jieba_tokenizer()


def test_a_long_question_of_rare_characters_costs_no_more_hmm_than_a_short_one(monkeypatch):
    """jieba's HMM (about 1 ms a rare character) reads at most ``HMM_CHARS`` characters of a question."""
    import random

    import jieba.posseg

    from qa.config import QuestionConfig
    from qa.pipeline import MAX_QUESTION_CHARS
    from qa.text import fold, tagged_words

    HMM_CHARS = QuestionConfig().hmm_chars

    read = []
    real = jieba.posseg.viterbi
    monkeypatch.setattr(jieba.posseg, "viterbi", lambda obs, *a, **kw: (read.append(len(obs)), real(obs, *a, **kw))[1])
    rng = random.Random(7)
    question = "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(MAX_QUESTION_CHARS))
    words = tagged_words(question)
    assert "".join(w for w, _ in words) == fold(question)  # every character still cut into words
    assert 0 < sum(read) <= HMM_CHARS < MAX_QUESTION_CHARS
