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
