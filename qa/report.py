"""Report: ``report.md`` and PNG charts for an evaluation run."""

from __future__ import annotations

from pathlib import Path

from .evaluate import Outcome, format_table, per_group


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> None:
    """Lay out, write as a 110-dpi PNG, and free the figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _hit_curve(outcomes: list[Outcome], k: int) -> list[float]:
    """hit@1..k of the answerable questions."""
    ans = [o for o in outcomes if o.question.answers]
    return [sum(o.first_hit is not None and o.first_hit <= r for o in ans) / max(1, len(ans)) for r in range(1, k + 1)]


def plot_hit_curves(results: dict[str, list[Outcome]], k: int, path: Path) -> None:
    """hit@k against k, one line per mode."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, outs in results.items():
        ax.plot(range(1, k + 1), _hit_curve(outs, k), marker="o", label=mode)
    ax.set_xlabel("k")
    ax.set_ylabel("hit@k")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("hit@k of answerable questions")
    save(fig, path)


def plot_confidence(results: dict[str, list[Outcome]], threshold: float, path: Path) -> None:
    """Histogram of the abstention confidence for answerable and unanswerable questions."""
    plt = pyplot()
    outs = next(iter(results.values()))
    ans = [o.confidence for o in outs if o.question.answers]
    una = [o.confidence for o in outs if not o.question.answers]
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = [i / 20 for i in range(21)]
    ax.hist(ans, bins=bins, alpha=0.6, label=f"answerable ({len(ans)})", density=True)
    if una:
        ax.hist(una, bins=bins, alpha=0.6, label=f"unanswerable ({len(una)})", density=True)
    ax.axvline(threshold, color="k", linestyle="--", label=f"threshold {threshold}")
    ax.set_xlabel("confidence (abstain below the threshold)")
    ax.set_ylabel("density")
    ax.legend()
    save(fig, path)


def plot_scores(results: dict[str, list[Outcome]], path: Path) -> None:
    """Top-1 retrieval score distributions of answerable and unanswerable questions, per mode."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.5), squeeze=False)
    for ax, (mode, outs) in zip(axes[0], results.items()):
        ans = [o.top_score for o in outs if o.question.answers]
        una = [o.top_score for o in outs if not o.question.answers]
        ax.hist(ans, bins=20, alpha=0.6, label="answerable", density=True)
        if una:
            ax.hist(una, bins=20, alpha=0.6, label="unanswerable", density=True)
        ax.set_title(f"{mode}: top-1 score")
        ax.legend(fontsize=8)
    save(fig, path)


def write_report(out_dir: Path, summary: dict[str, dict], results: dict[str, list[Outcome]], k: int,
                 questions: str | Path, corpus: str | Path | None, index: str | Path, threshold: float,
                 worst: int = 10) -> Path:
    """Write report.md with the tables, per-language rows and the worst misses, plus the charts
    (``threshold``: the abstention threshold the confidence chart marks)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_hit_curves(results, k, out_dir / "hit_at_k.png")
    plot_confidence(results, threshold, out_dir / "confidence.png")
    plot_scores(results, out_dir / "scores.png")
    lines = [f"# Evaluation of `{questions}`", "",
             f"Corpus: `{corpus}`; index `{index}`; k = {k}.", "",
             format_table(summary, k), "", "![hit@k](hit_at_k.png)", "",
             "![abstention confidence](confidence.png)", "", "![top-1 scores](scores.png)", ""]
    for mode, outs in results.items():
        groups = per_group(outs, lambda q: q.lang)
        if groups:
            lines += [f"## {mode}: by question language", "", "| lang | n | hit@1 | hit@5 |", "|---|---|---|---|"]
            lines += [f"| {g} | {v['n']} | {v['hit@1']:.3f} | {v['hit@5']:.3f} |" for g, v in groups.items()]
            lines.append("")
    first = next(iter(results))
    misses = [o for o in results[first] if o.question.answers and o.first_hit != 1][:worst]
    lines += [f"## Worst misses ({first}, first {len(misses)})", ""]
    for o in misses:
        lines.append(f"- `{o.question.id}` {o.question.question} — answers {list(o.question.answers)}; "
                     f"first hit at rank {o.first_hit or f'>{k}'}")
    wrong = [o for o in results[first] if o.abstained != (not o.question.answers)]
    lines += ["", f"## Abstention errors ({first})", ""]
    lines += [f"- `{o.question.id}` {o.question.question} — "
              f"{'abstained though answerable' if o.abstained else 'answered though unanswerable'} "
              f"(confidence {o.confidence:.2f})" for o in wrong[:worst * 2]]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
