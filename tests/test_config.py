"""Config.from_json: JSON lists become the tuples a config holds; the wrong types are one-line errors."""

from __future__ import annotations

import pytest

from qa.config import Config


def test_a_list_of_names_sets_a_tuple_setting():
    cfg = Config.from_json({"quote": {"kind_neighbours": ["when", "count", "who"]}, "rerank": {"kinds_first": []}})
    assert cfg.quote.kind_neighbours == ("when", "count", "who") and cfg.rerank.kinds_first == ()
    hash(cfg)  # still a frozen, hashable config
    assert Config.from_json({"abstain": {"bias": -6}}).abstain.bias == -6.0  # a whole number for a float


@pytest.mark.parametrize("value", ["when", [1, 2], 0.5])
def test_a_tuple_setting_wants_a_list_of_names(value):
    with pytest.raises(ValueError, match=r"quote\.kind_neighbours=.*expected a list of names"):
        Config.from_json({"quote": {"kind_neighbours": value}})


@pytest.mark.parametrize("section, field", [("quote", "kind_neighbours"), ("rerank", "kinds_first")])
def test_a_misspelt_kind_is_refused_not_ignored(section, field):
    # a typo would otherwise turn the step off for that kind without a word
    with pytest.raises(ValueError, match=rf"my\.json: {section}\.{field}=.*unknown kind 'wen'; expected names from when, count"):
        Config.from_json({section: {field: ["wen", "count"]}}, "my.json")
