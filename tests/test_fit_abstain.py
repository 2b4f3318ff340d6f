"""scripts/fit_abstain.py: the fitted weights rank answerable questions above the others, and the bias
puts the threshold where the declined share of answerable questions is the one asked for."""

from __future__ import annotations

import numpy as np
import pytest

from scripts.fit_abstain import DECLINED, confidences, fit, judge


def _questions(seed: int, n_answerable: int = 400, n_other: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(words' confidence, support, gap) rows: answerable questions find a sentence that says and means
    them; another corpus's questions find one that does neither, though their words are often known."""
    rng = np.random.default_rng(seed)
    yes = np.column_stack([rng.uniform(0.6, 1, n_answerable), rng.uniform(0.3, 1.2, n_answerable),
                           rng.uniform(0.0, 0.1, n_answerable)])
    no = np.column_stack([rng.uniform(0.3, 1, n_other), rng.uniform(0.0, 0.4, n_other), rng.uniform(-0.02, 0.02, n_other)])
    no[:5, 0] = 0.0  # a missing name: declined by rule, whatever the sentence
    return np.vstack([yes, no]), np.r_[np.ones(n_answerable, int), np.zeros(n_other, int)]


def test_fit_declines_the_asked_share_of_answerable_questions_and_weighs_each_number_up():
    rows, labels = _questions(0)
    cfg = fit(rows, labels, gap_scale=5.0)
    assert cfg.words_weight > 0 and cfg.support_weight > 0 and cfg.said_weight > 0
    other, answerable = judge(cfg, rows, labels)
    assert answerable == pytest.approx(DECLINED, abs=1 / 400 + 0.002)  # the bias is rounded to 0.01
    assert other > 0.9
    assert (confidences(cfg, rows[labels == 0][:5]) == 0.0).all()
    # judged on questions it was not fitted on, it still separates them
    other2, answerable2 = judge(cfg, *_questions(1))
    assert other2 > 0.9 and answerable2 < 0.05
