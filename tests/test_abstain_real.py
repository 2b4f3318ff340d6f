"""Abstention with the real model on real data: a slice of CMRC 2018 dev, asked its own questions and
DRCD's (``evals/cross``, which it cannot answer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa import Pipeline
from qa.evaluate import load_questions

EVALS = Path(__file__).resolve().parent.parent / "evals"


@pytest.mark.slow
def test_the_fitted_weights_decline_another_datasets_questions_and_answer_the_corpus_own(tmp_path):
    docs = [json.loads(line) for line in (EVALS / "cmrc2018" / "dev.docs.jsonl").open(encoding="utf-8")][:150]
    slice_ = tmp_path / "docs.jsonl"
    slice_.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    p, _ = Pipeline.build(slice_, tmp_path / "index")
    ids = {d["doc_id"] for d in docs}
    own = [q for q in load_questions(EVALS / "cmrc2018" / "dev.questions.jsonl").questions if q.doc_id in ids]
    other = load_questions(EVALS / "cross" / "drcd-on-cmrc.questions.jsonl").questions[:150]
    declined_own = sum(p.ask(q.question).abstained for q in own) / len(own)
    declined_other = sum(p.ask(q.question).abstained for q in other) / len(other)
    assert len(own) > 400
    # measured: 1.6% and 95.3% (the hand-set limits before them: 3.1% and 94.0%); on the full sets
    # 1.9% and 90.8% (docs/eval/abstain.md): a slice of the corpus holds fewer near misses
    assert declined_own <= 0.025 and declined_other >= 0.93, (declined_own, declined_other)
