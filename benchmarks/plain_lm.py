"""The plain PyTorch language model a user would otherwise write: the baseline of benchmarks/quality.py.

    python benchmarks/plain_lm.py --train T.txt --valid V.txt --test X.txt --level char --max-time 300
    python benchmarks/plain_lm.py --train T.txt --test X.txt --level word --max-time 300   # valid: last 10% of T

Modelled on pytorch/examples' word_language_model (written here, not copied):
- ``char``: the recipe people adapt for characters: embedding 200 -> 2x512 LSTM (dropout 0.2) -> linear,
  AdamW 2e-3, batch 32, BPTT 100, gradient clipping 0.25;
- ``word``: the example's own recipe: whitespace words plus ``<eos>`` per line, embedding 650 -> 2x650 LSTM,
  dropout 0.5, tied weights, SGD at lr 20 divided by 4 whenever validation does not improve, clipping 0.25,
  batch 20, BPTT 35.

Trains for ``--max-time`` seconds (whole budget, evaluation included), evaluates on the validation text
every ``--eval-every`` steps and at the end, keeps the best state, and prints one JSON line with the
held-out test loss per character (nats), bits per character and the word-level perplexity (total nats
over whitespace words plus one end-of-line per line, the convention of word-level benchmarks), so that
char and word models compare with textrnn's ``evaluate``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time

import torch
from torch import nn


def words_and_lines(text: str) -> int:
    """The word-level perplexity's denominator: whitespace words plus one end-of-line per line."""
    lines = text.splitlines()
    return sum(len(line.split()) for line in lines) + len(lines)


class Vocab:
    def __init__(self, text: str, level: str):
        self.level = level
        units = self.units(text)
        self.itos = ["<unk>"] + sorted(set(units))
        self.stoi = {u: i for i, u in enumerate(self.itos)}

    def units(self, text: str) -> list[str]:
        if self.level == "char":
            return list(text)
        return [w for line in text.splitlines() for w in line.split() + ["<eos>"]]

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor([self.stoi.get(u, 0) for u in self.units(text)], dtype=torch.long)


class RNNModel(nn.Module):
    def __init__(self, vocab: int, embed: int, hidden: int, layers: int, dropout: float, tie: bool):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(vocab, embed)
        self.rnn = nn.LSTM(embed, hidden, layers, dropout=dropout, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab)
        if tie:
            self.decoder.weight = self.encoder.weight

    def forward(self, x, state=None):
        out, state = self.rnn(self.drop(self.encoder(x)), state)  # (B, T, H)
        return self.decoder(self.drop(out)), state  # (B, T, V)


def batchify(ids: torch.Tensor, batch: int) -> torch.Tensor:
    n = len(ids) // batch
    return ids[: n * batch].view(batch, n)  # (B, N): B contiguous streams


def total_nats(model: RNNModel, ids: torch.Tensor, bptt: int, batch: int = 10) -> tuple[float, int]:
    """Summed cross-entropy over every token of ``ids`` (a few streams, state carried)."""
    model.eval()
    data = batchify(ids, min(batch, max(1, (len(ids) - 1) // (bptt + 1))))
    tail = ids[data.numel():]
    total, count = 0.0, 0
    with torch.no_grad():
        for part in ([data] + ([tail.view(1, -1)] if len(tail) > 1 else [])):
            state = None
            for i in range(0, part.shape[1] - 1, bptt):
                x, y = part[:, i:i + bptt], part[:, i + 1:i + 1 + bptt]
                x = x[:, : y.shape[1]]
                logits, state = model(x, state)
                total += float(nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum"))
                count += y.numel()
    model.train()
    return total, count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True)
    ap.add_argument("--valid", help="validation text (default: the last 10%% of --train)")
    ap.add_argument("--test", required=True)
    ap.add_argument("--level", choices=("char", "word"), default="char")
    ap.add_argument("--max-time", type=float, default=300.0, help="seconds, evaluation included")
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    train_text = open(args.train, encoding="utf-8").read()
    if args.valid:
        valid_text = open(args.valid, encoding="utf-8").read()
    else:
        cut = train_text.rfind("\n", 0, int(len(train_text) * 0.9)) + 1
        train_text, valid_text = train_text[:cut], train_text[cut:]
    test_text = open(args.test, encoding="utf-8").read()
    vocab = Vocab(train_text, args.level)
    if args.level == "char":
        hp = dict(embed=200, hidden=512, layers=2, dropout=0.2, tie=False, batch=32, bptt=100)
    else:
        hp = dict(embed=650, hidden=650, layers=2, dropout=0.5, tie=True, batch=20, bptt=35)
    model = RNNModel(len(vocab.itos), hp["embed"], hp["hidden"], hp["layers"], hp["dropout"], hp["tie"])
    if args.level == "char":
        opt: torch.optim.Optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=20.0)
    data = batchify(vocab.encode(train_text), hp["batch"])
    valid_ids = vocab.encode(valid_text)
    best, best_state, step, pos, state, last_eval = math.inf, None, 0, 0, None, 0.0
    while True:
        if pos + hp["bptt"] + 1 > data.shape[1]:
            pos, state = 0, None
        x, y = data[:, pos:pos + hp["bptt"]], data[:, pos + 1:pos + 1 + hp["bptt"]]
        pos += hp["bptt"]
        logits, state = model(x, state)
        state = tuple(s.detach() for s in state)
        loss = nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        opt.step()
        step += 1
        out_of_time = time.perf_counter() - t0 + last_eval >= args.max_time
        if step % args.eval_every == 0 or out_of_time:
            t = time.perf_counter()
            nats, count = total_nats(model, valid_ids, hp["bptt"])
            last_eval = time.perf_counter() - t
            if nats / count < best:
                best, best_state = nats / count, copy.deepcopy(model.state_dict())
            elif args.level == "word":
                for g in opt.param_groups:
                    g["lr"] /= 4.0
        if out_of_time:
            break
    model.load_state_dict(best_state)
    nats, count = total_nats(model, vocab.encode(test_text), hp["bptt"])
    chars = len(test_text) if args.level == "char" else None
    result = {"level": args.level, "steps": step, "best_val_loss_per_token": round(best, 5),
              "test_nats_per_token": round(nats / count, 5),
              "test_word_ppl": round(math.exp(min(nats / words_and_lines(test_text), 50.0)), 3),
              "wall_s": round(time.perf_counter() - t0, 1)}
    if chars:
        result["test_bpc"] = round(nats / chars / math.log(2), 5)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
