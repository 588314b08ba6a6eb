"""Sample text from a language model exported by ``textrnn export --format onnx``.

Standalone: needs only numpy, onnxruntime and tokenizers (0.21 or later: ``DecodeStream``), not
PyTorch or textrnn, and the files beside it (``model.json``, ``tokenizer.json``, ``prompt.onnx``,
``step.onnx``).

    python sample.py --prompt "ROMEO:" --length 200 --temp 0.8 --top-p 0.9 --seed 1
    python sample.py --prompt "ROMEO:" --length 200 --greedy
    python sample.py --prompt "ROMEO:" --stop "\\n\\n" --ban thee

The options are textrnn's sampling options (declared once in textrnn and written into
``model.json``), with the same bounds and error texts.

``--greedy`` takes the most likely token at each step, as ``textrnn generate --greedy`` does, and
the exported functions compute in float32 what PyTorch computes (each is checked against it at
export, to within 1e-4). So for the same prompt and length it writes the text ``textrnn generate
--greedy`` writes for a model exported from a trained run, or from a ``textrnn export`` made with
``--half`` or ``--int8-embedding`` (their weights load as float32 in both; only two tokens tied to
within that rounding could go the other way). The exception is a ``textrnn export --int8`` model:
``textrnn generate`` multiplies it in int8 on a CPU that has int8 products, this sampler in
float32 (the int8 weights expanded), so the two greedy texts can part after some tokens (their
probabilities agree to about 0.01); here it writes what textrnn writes with those weights in
float32 (as textrnn does on a GPU, where it has no int8 products). Sampling draws from numpy's
generator, so a seed gives other text than ``textrnn generate``'s.
"""

import argparse
import codecs
import json
import os
import sys

import numpy as np
import onnxruntime
from tokenizers import Tokenizer, decoders

HERE = os.path.dirname(os.path.abspath(__file__))
UNK = "<unk>"


def parse_args(meta, argv=None):
    """The command line, its options made from textrnn's declaration of the sampling options (in model.json)
    and checked as textrnn checks them (the same error texts)."""
    p = argparse.ArgumentParser(description="Sample text from an exported textrnn language model.")
    p.add_argument("--prompt", "-p", default="", help="Text to start from.")
    options = [o for o in meta["sampling"] if o["name"] != "num_samples"]  # (one stream here)
    for o in options:
        flags = [f for f in (o["flag"], o["alias"], o["short"]) if f]
        if o["type"] == "bool":
            p.add_argument(*flags, dest=o["name"], action="store_true", help=o["help"])
        elif o["repeatable"]:
            p.add_argument(*flags, dest=o["name"], action="append", default=[], help=o["help"])
        else:
            kind = {"int": int, "float": float}[o["type"]]
            p.add_argument(*flags, dest=o["name"], type=kind, default=o["default"],
                           help=o["help"] + ("" if o["default"] is None else f" (default {o['default']})"))
    labels = [c["label"] for c in meta["conditions"]]
    if labels:
        p.add_argument("--condition", choices=labels, help="Write text of this label's kind.")
    args = p.parse_args(argv)
    names = {o["name"]: o["flag"] for o in meta["sampling"]}
    for o in options:
        if o["escapes"]:
            setattr(args, o["name"], [codecs.decode(v.encode("latin-1", "backslashreplace"), "unicode_escape")
                                      for v in getattr(args, o["name"])])
        problem = out_of_bounds(o, getattr(args, o["name"]), args)
        if problem:
            p.error(problem.replace("{name}", o["flag"]).format(**names))
    return args


def out_of_bounds(o, value, args):
    """The error template of an option's value out of its declared bounds, or None."""
    if value is None or (o["unless"] and getattr(args, o["unless"])):
        return None
    for v in value if isinstance(value, list) else [value]:
        n = len(v) if isinstance(v, str) else v
        low, high = o["low"], o["high"]
        if (low is not None and (n <= low if o["low_open"] else n < low)) or (high is not None and n > high) \
                or n != n:
            return o["error"].replace("{value}", repr(v) if isinstance(v, str) else str(v))
    return None


class Model:
    """The exported step and prompt functions, one sample at a time."""

    def __init__(self, meta, label=0):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # one token at a time: threads cost more than they give
        self.sessions = {name: onnxruntime.InferenceSession(os.path.join(HERE, f["file"]), options,
                                                            providers=["CPUExecutionProvider"])
                         for name, f in meta["functions"].items()}
        self.meta = meta
        self.label = np.array([label], dtype=np.int64)

    def initial_state(self):
        shape = (self.meta["layers"], 1, self.meta["hidden"])
        return [np.zeros(shape, dtype=np.float32) for _ in self.meta["state"]]

    def run(self, name, ids, state):
        """(logits (V,), the next state) after ``ids``: one id (step) or a list of them (prompt)."""
        f = self.meta["functions"][name]
        feed = dict(zip(f["inputs"], [np.array([ids], dtype=np.int64), *state]))
        if "label" in f["inputs"]:
            feed["label"] = self.label
        logits, *state = self.sessions[name].run(f["outputs"], feed)
        return logits[0], state


def encode_prompt(tok, meta, prompt):
    """Token ids of the prompt (an empty one starts where ``textrnn generate`` starts)."""
    if not prompt:
        return list(meta["empty_prompt"])
    if meta["tokenizer"] == "char":
        unknown = sorted({c for c in prompt if tok.token_to_id(c) is None})
        if unknown:
            fail("--prompt has characters the model never saw in training: " + " ".join(repr(u) for u in unknown[:10]))
    ids = tok.encode(prompt, add_special_tokens=False).ids
    if not ids:
        fail("--prompt encodes to no tokens; give a prompt with text in it")
    return ids


def fail(message):
    """End with one line on stderr and exit status 2, as textrnn does."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


class Decoder:
    """One id at a time -> the text it completes, as ``textrnn generate`` writes it."""

    def __init__(self, tok, meta):
        self.tok, self.kind, self.prev = tok, meta["tokenizer"], None
        self.spacing = meta.get("word_spacing")
        self.stream, self.held = decoders.DecodeStream(skip_special_tokens=False), []

    def __call__(self, i):
        if self.kind == "char":
            piece = self.tok.id_to_token(i)
            return "\ufffd" if piece == UNK else piece
        if self.kind == "bpe":  # bytes held back until they complete a character
            text = self.stream.step(self.tok, i)
            if text is None:
                self.held.append(i)
                return ""
            self.held.clear()
            return text
        piece = self.tok.id_to_token(i)  # word: the spaces between words by rule
        prev, self.prev = self.prev, piece
        if prev is None or piece[:1] in self.spacing["no_space_before"] or prev[-1:] in self.spacing["no_space_after"]:
            return piece
        return " " + piece

    def flush(self):
        return self.tok.decode(self.held, skip_special_tokens=False) if self.kind == "bpe" and self.held else ""


def pick(logits, args, rng):
    """The next token: the most likely (--greedy), else a sample of softmax(logits / temp) within top-k, top-p."""
    if args.greedy:
        return int(np.argmax(logits))
    logits = logits.astype(np.float64) / args.temperature
    if args.top_k is not None and args.top_k < logits.size:
        logits = np.where(logits < np.sort(logits)[-args.top_k], -np.inf, logits)
    if args.top_p is not None and args.top_p < 1:
        order = np.argsort(-logits, kind="stable")
        probs = np.exp(logits[order] - logits[order[0]])
        probs /= probs.sum()
        drop = (np.cumsum(probs) - probs) >= args.top_p  # the tokens before it already reach top_p
        logits[order[drop]] = -np.inf
    return int(np.argmax(logits + rng.gumbel(size=logits.size)))  # Gumbel-max: a sample of softmax(logits)


def ban_sequences(tok, meta, words):
    """The token sequences never completed: each word as the tokenizer spells it alone and, but for a
    character model, after a space (as textrnn's BannedWords does)."""
    sequences = set()
    for word in words:
        for spelling in [word] + ([" " + word] if meta["tokenizer"] != "char" else []):
            ids = tuple(tok.encode(spelling, add_special_tokens=False).ids)
            if ids and UNK not in [tok.id_to_token(i) for i in ids]:
                sequences.add(ids)
    return sequences


def blocked(sequences, history):
    """The ids that would complete a banned sequence after the tokens ``history``."""
    return [s[-1] for s in sequences if len(s) == 1 or tuple(history[len(history) - len(s) + 1:]) == s[:-1]]


class Stop:
    """The text up to the first stop string: what may be written now, a possible start of one held back."""

    def __init__(self, stops):
        self.stops, self.held, self.stopped = stops, "", False

    def feed(self, piece):
        if self.stopped or not self.stops:
            return "" if self.stopped else piece
        text = self.held + piece
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped, self.held = True, ""
            return text[:cut]
        keep = max((k for s in self.stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        self.held = text[len(text) - keep:] if keep else ""
        return text[: len(text) - keep]


def sample(meta, args, out):
    tok = Tokenizer.from_file(os.path.join(HERE, "tokenizer.json"))
    condition = next((c for c in meta["conditions"] if c["label"] == getattr(args, "condition", None)), None)
    ids = encode_prompt(tok, meta, (condition["start"] if condition else "") + args.prompt)
    model = Model(meta, condition["index"] if condition else 0)
    rng = np.random.default_rng(args.seed)
    decode, stop, banned = Decoder(tok, meta), Stop(args.stop), ban_sequences(tok, meta, args.ban)
    history = list(ids)
    decode(ids[-1])  # word spacing and BPE byte joins see the prompt's end
    out.write(args.prompt)
    logits, state = model.run("prompt", ids, model.initial_state())
    for t in range(args.length):
        logits[meta["banned"] + blocked(banned, history)] = -np.inf
        token = pick(logits, args, rng)
        history.append(token)
        out.write(stop.feed(decode(token)))
        out.flush()
        if stop.stopped:
            break
        if t + 1 < args.length:
            logits, state = model.run("step", token, state)
    out.write(("" if stop.stopped else stop.feed(decode.flush()) + stop.held) + "\n")


def main(argv=None):
    with open(os.path.join(HERE, "model.json"), encoding="utf-8") as f:
        meta = json.load(f)
    sample(meta, parse_args(meta, argv), sys.stdout)


if __name__ == "__main__":
    main()
