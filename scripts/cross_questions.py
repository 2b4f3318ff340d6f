"""Write the cross-dataset abstention sets: questions of one dataset asked of another's corpus.

    python scripts/cross_questions.py            # writes evals/cross/*.questions.jsonl

300 questions are sampled (seed 0) from DRCD dev and asked of the CMRC 2018 dev corpus,
and 300 from CMRC 2018 dev asked of DRCD dev. They are written as unanswerable
(``"answers": []``). A question is dropped as possibly answerable when one of its
gold answers (2 characters or more, folded) occurs in a paragraph of the other corpus
that also holds at least half of the question's content words: a loose test that errs
towards dropping.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.text import fold, tokenize  # noqa: E402

SETS = [  # (name, questions asked, corpus asked of)
    ("drcd-on-cmrc", "evals/drcd/dev.questions.jsonl", "evals/cmrc2018/dev.docs.jsonl"),
    ("cmrc-on-drcd", "evals/cmrc2018/dev.questions.jsonl", "evals/drcd/dev.docs.jsonl"),
]
SAMPLE = 300


def paragraphs(docs_path: Path) -> list[str]:
    """Every folded paragraph of a docs file."""
    out: list[str] = []
    with docs_path.open(encoding="utf-8") as fh:
        for line in fh:
            out.extend(fold(p) for p in json.loads(line)["text"].split("\n\n") if p.strip())
    return out


def maybe_answerable(question: dict, paras: list[str]) -> bool:
    """A gold answer and half the question's content words share a paragraph of the other corpus."""
    answers = [fold(a) for a in question["answers"] if len(a) >= 2]
    words = set(tokenize(question["question"]))
    for p in paras:
        if any(a in p for a in answers) and sum(w in p for w in words) >= len(words) / 2:
            return True
    return False


def main() -> int:
    out_dir = ROOT / "evals" / "cross"
    out_dir.mkdir(exist_ok=True)
    for name, q_path, docs_path in SETS:
        qs = [json.loads(line) for line in (ROOT / q_path).open(encoding="utf-8")]
        qs = [q for q in qs if q["question"].strip() and q["answers"]]
        random.Random(0).shuffle(qs)
        paras = paragraphs(ROOT / docs_path)
        kept, dropped = [], []
        for q in qs[:SAMPLE]:
            (dropped if maybe_answerable(q, paras) else kept).append(q)
        path = out_dir / f"{name}.questions.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for q in kept:
                fh.write(json.dumps({"id": q["id"], "question": q["question"], "answers": []}, ensure_ascii=False) + "\n")
        print(f"{path.relative_to(ROOT)}: {len(kept)} questions; dropped as possibly answerable: "
              + (", ".join(f"{q['id']} {q['question']}" for q in dropped) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
