"""Do the rerank and quote settings transfer? Fit each on one corpus's questions, judge it on the other's.

For each setting (one at a time, the others at their defaults) every value of its grid is scored on
DRCD dev and on CMRC dev: hit@1 of the rerank for ``rerank.*`` and ``match.*`` (ties broken by MRR),
quote accuracy for ``quote.*`` (on the answered questions whose first passage is right with the
default rerank). The value best on one set is then read on the other, in both directions; a setting
whose best value flips between directions fits noise. Abstention settings are not covered here (their
checks read every passage's BM25 scores, which this script does not keep).

    python scripts/transfer.py [--out docs/eval/transfer.md] [--only quote.pair_margin,...]

Needs the eval indexes (``python -m qa eval evals/drcd/dev.questions.jsonl --docs evals/drcd/dev.docs.jsonl``
builds index/eval/drcd-dev.docs, likewise CMRC); the questions' candidates are kept in index/eval/*/transfer.pkl.
"""

from __future__ import annotations

import argparse
import dataclasses
import pickle
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.config import Config  # noqa: E402
from qa.evaluate import is_hit, load_questions  # noqa: E402
from qa.pipeline import Pipeline  # noqa: E402
from qa.quote import pick_quote  # noqa: E402
from qa.rerank import Reranker  # noqa: E402
from qa.text import fold  # noqa: E402

SETS = {"DRCD": ("evals/drcd/dev.questions.jsonl", "evals/drcd/dev.docs.jsonl", "index/eval/drcd-dev.docs"),
        "CMRC": ("evals/cmrc2018/dev.questions.jsonl", "evals/cmrc2018/dev.docs.jsonl", "index/eval/cmrc2018-dev.docs")}
RERANK_GRID = {
    "rerank.sentence_weight": (0.5, 0.75, 1.0, 1.5),
    "rerank.sentence_dense_weight": (0.0, 0.15, 0.3, 0.5),
    "rerank.number_weight": (0.0, 0.1, 0.2, 0.3),
    "rerank.title_weight": (0.0, 0.1, 0.2, 0.3),
    "rerank.kind_depth": (1, 2, 3, 5),
    "rerank.kind_support_gap": (0.0, 0.1, 0.15, 0.2, 0.3),
    "match.phrase_weight": (0.25, 0.5, 0.75),
    "match.char_weight": (0.1, 0.25, 0.5),
    "match.title_gram_weight": (0.0, 0.2, 0.5),
}
QUOTE_GRID = {
    "quote.char_share_weight": (0.3, 0.6, 0.9),
    "quote.when_bonus": (0.0, 0.2, 0.35, 0.5),
    "quote.count_bonus": (0.0, 0.15, 0.25, 0.4),
    "quote.who_bonus": (0.0, 0.1, 0.2, 0.4),
    "quote.where_bonus": (0.0, 0.1, 0.2, 0.4),
    "quote.neighbour_gain": (0.05, 0.1, 0.2, 1.0),
    "quote.min_quote_chars": (4, 8, 12),
    "quote.pronoun_lead": (False, True),
    "quote.sentence_dense_weight": (0.0, 0.5, 1.0, 2.0, 4.0),
    "quote.pair_margin": (0.0, 0.2, 0.3, 0.4, 0.6),
    "quote.kind_neighbours": ((), ("when",), ("when", "count"), ("when", "count", "who", "where")),
    "quote.rarity": (0.0, 0.5, 1.0, 1.5, 2.0, 3.0),
}


def with_setting(config: Config, name: str, value: float) -> Config:
    """``config`` with the one setting ``section.field`` changed."""
    section, field = name.split(".")
    return dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **{field: value})})


def candidates(name: str) -> tuple[Pipeline, list[dict]]:
    """The pipeline of one set and, per answerable question, its fused candidates before the rerank."""
    questions, docs, index = SETS[name]
    p = Pipeline.open(docs, index)
    cache = ROOT / index / "transfer.pkl"
    if cache.exists():
        return p, pickle.loads(cache.read_bytes())
    rows = []
    for q in load_questions(ROOT / questions).questions:
        if not q.answers:
            continue
        a = p.ask(q.question, k=5)
        query = p.retriever.query(a.question, "hybrid")
        ids, scores = p.retriever.search(query, p.config.rerank.depth, "hybrid")
        hits = [is_hit(q, p.passages[int(i)], p.documents) for i in ids]
        rows.append({"q": q, "lexical": query.lexical, "vector": query.vector, "ids": ids, "scores": scores,
                     "hits": dict(zip(map(int, ids), hits)), "answered": not a.abstained})
    cache.write_bytes(pickle.dumps(rows))
    return p, rows


def rerank_score(p: Pipeline, rows: list[dict], config: Config) -> tuple[float, float]:
    """(hit@1, MRR) of the rerank under ``config``."""
    r = Reranker(p.passages, p.documents, p.sentences, config.rerank, config.match)
    first, rr = [], []
    for row in rows:
        ids, _ = r.rerank(row["lexical"], row["ids"], row["scores"], row["vector"])
        ranks = [k for k, i in enumerate(ids, 1) if row["hits"][int(i)]]
        first.append(bool(ranks) and ranks[0] == 1)
        rr.append(1 / ranks[0] if ranks else 0.0)
    return float(np.mean(first)), float(np.mean(rr))


def quote_score(p: Pipeline, rows: list[dict], config: Config) -> float:
    """Quote accuracy under ``config`` on the answered questions whose first passage (default rerank) is right."""
    ok = []
    for row in rows:
        if not row["answered"] or row.get("top") is None:
            continue
        passage = p.passages[row["top"]]
        quote = pick_quote(row["lexical"], passage.text, p._sentence_vectors(row["top"]), row["vector"],
                           passage.title, config.quote, config.match, config.question.hmm_chars)
        ok.append(any(fold(a) in fold(quote.text) for a in row["q"].answers))
    return float(np.mean(ok))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="docs/eval/transfer.md")
    ap.add_argument("--only", default="", help="comma-separated settings to run; their rows in --out are replaced")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    loaded = {name: candidates(name) for name in SETS}
    base = Config()
    for p, rows in loaded.values():  # the first passage under the default rerank, for the quote grid
        r = Reranker(p.passages, p.documents, p.sentences, base.rerank, base.match)
        for row in rows:
            ids, _ = r.rerank(row["lexical"], row["ids"], row["scores"], row["vector"])
            row["top"] = int(ids[0]) if row["hits"][int(ids[0])] else None
    header = ["# Do the settings transfer? (`python scripts/transfer.py`)", "",
              "Each setting alone, the others at their defaults. Rerank and match: hit@1 (MRR breaks ties) of the "
              "answerable dev questions; quote: quote accuracy of the answered questions whose first passage is right. "
              "'best on X' is the grid value that scores best on X; the next column is what it scores on the other "
              "set.",
              "", "| setting | default | grid | DRCD (each value) | CMRC (each value) | best on DRCD → on CMRC | "
              "best on CMRC → on DRCD | agree |", "|---|---|---|---|---|---|---|---|"]
    lines = list(header)
    for grid, kind in ((RERANK_GRID, "rerank"), (QUOTE_GRID, "quote")):
        for name, values in grid.items():
            if only and name not in only:
                continue
            scores = {}
            for set_name, (p, rows) in loaded.items():
                scores[set_name] = [rerank_score(p, rows, with_setting(base, name, v)) if kind == "rerank"
                                    else (quote_score(p, rows, with_setting(base, name, v)), 0.0) for v in values]
            best = {s: int(np.argmax([a * 10 + b for a, b in scores[s]])) for s in scores}
            section, field = name.split(".")
            default = getattr(getattr(base, section), field)
            cells = {s: " / ".join(f"{a:.4f}" for a, _ in scores[s]) for s in scores}
            d2c = f"{values[best['DRCD']]} → {scores['CMRC'][best['DRCD']][0]:.4f}"
            c2d = f"{values[best['CMRC']]} → {scores['DRCD'][best['CMRC']][0]:.4f}"
            agree = "yes" if best["DRCD"] == best["CMRC"] else "no"
            lines.append(f"| `{name}` | {default} | {' / '.join(map(str, values))} | {cells['DRCD']} | {cells['CMRC']} "
                         f"| {d2c} | {c2d} | {agree} |")
            print(lines[-1], flush=True)
    out = Path(args.out)
    if only and out.exists():  # keep the other settings' rows, replace (or add) these
        new_rows = {row.split("`")[1]: row for row in lines[len(header):]}
        kept = out.read_text(encoding="utf-8").rstrip("\n").split("\n")
        lines = [new_rows.pop(row.split("`")[1], row) if row.startswith("| `") else row for row in kept]
        lines += list(new_rows.values())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
