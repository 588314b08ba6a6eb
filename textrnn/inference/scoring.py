"""Scoring text with a trained language model: how well it predicts held-out text.

Every token of a text is scored with the recurrent state carried through it, exactly as
validation scores the validation text (:class:`textrnn.training.tasks.LMTask` calls
:func:`score_tokens` too). The text is cut into at most :data:`EVAL_STREAMS` contiguous
streams laid side by side (few cold starts, one batched forward per window); the streams
overlap by one token and differ in length by at most one, so every token after the first
is predicted exactly once. A stream that ends earlier is padded and its padding masked.

Numbers per file (:func:`score_file`): ``loss`` (nats per predicted token), ``perplexity``
(``exp(loss)``), ``bits_per_char`` (bits per token over characters per token),
``word_perplexity`` (``exp`` of the total nats over the whitespace-separated words plus one
end-of-line per line, the convention of word-level benchmarks, so char, word and BPE
models compare), ``unknown_share`` (the share of ``<unk>`` tokens) and ``seconds``.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from ..config import default
from ..data.batches import ArrayTokens
from ..data.cache import token_dtype
from ..data.corpus import read_stream, segments, stream_codec
from ..errors import TextRNNError
from ..runconfig import RunConfig

EVAL_STREAMS = 16  # streams scored side by side (few cold starts, still batched)
LINE_BATCH = 64  # lines scored side by side by --per-line
IGNORE = -100  # target of a padding position (scored 0 by the model)


# -- the token scoring (validation and evaluate share it) ---------------------------------
def score_spans(model: torch.nn.Module, src: Any, spans: Sequence[tuple[int, int]], seq_len: int,
                device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Nats (float64) and predicted tokens of each span ``[start, end)`` of ``src`` (an id
    array or a token file with ``read(start, count)``), scored side by side from a fresh
    state carried window to window; a span's first token is context only."""
    preds = np.array([end - start - 1 for start, end in spans], dtype=np.int64)  # (S,)
    nats = np.zeros(len(spans))  # (S,) float64, on the CPU (MPS has no float64)
    state = None
    with torch.inference_mode():
        for lo in range(0, int(preds.max()), seq_len):
            rows = [torch.from_numpy(np.asarray(src.read(start + lo, max(0, min(seq_len + 1, end - start - lo))),
                                                dtype=np.int64)) for start, end in spans]
            chunk = pad_sequence(rows, batch_first=True, padding_value=IGNORE).to(device)  # (S, T + 1)
            x, y = chunk[:, :-1].clamp_min(0), chunk[:, 1:]  # (S, T), (S, T): padding predicts nothing
            losses, state = model(x, state, targets=y)  # (S, T) nats (LanguageModel.token_nll); padding 0
            nats += losses.sum(dim=1).cpu().numpy()  # (S,)
    return nats, preds


def stream_spans(n: int, streams: int) -> list[tuple[int, int]]:
    """``n`` tokens cut into ``streams`` spans overlapping by one token, whose predictions
    (``n - 1`` in all, each exactly once) differ in number by at most one."""
    base, extra = divmod(n - 1, streams)
    spans, start = [], 0
    for b in range(streams):
        k = base + (b < extra)
        spans.append((start, start + k + 1))
        start += k
    return spans


def check_scorable(n: int, name: str) -> None:
    if n < 2:
        raise TextRNNError(f"{name}: too short to evaluate on ({n} tokens); give a text of at least two tokens")


def score_tokens(model: torch.nn.Module, ids: Any, seq_len: int, device: torch.device,
                 max_streams: int = EVAL_STREAMS, rank: int = 0, world: int = 1,
                 name: str = "text") -> tuple[float, int]:
    """Total nats and predicted tokens of ``ids`` (an array or a token file): every token but
    the first, state carried (see module doc). With ``world`` processes this one scores its
    share of the same streams (sum the results over the ranks). The caller sets eval mode."""
    src = ids if hasattr(ids, "read") else ArrayTokens(ids)
    check_scorable(len(src), name)
    streams = max(1, min(max_streams, (len(src) - 1) // seq_len))
    mine = stream_spans(len(src), streams)[rank::world]
    if not mine:
        return 0.0, 0
    nats, preds = score_spans(model, src, mine, seq_len, device)
    return float(nats.sum()), int(preds.sum())


def loss_metrics(total: float, count: int, chars_per_token: float, prefix: str) -> dict[str, float]:
    """``<prefix>_loss`` (nats/token), ``_ppl`` and ``_bpc``, as validation records them."""
    loss = total / max(1, count)
    return {f"{prefix}_loss": round(loss, 5), f"{prefix}_ppl": round(math.exp(min(loss, 50.0)), 3),
            f"{prefix}_bpc": round(loss / chars_per_token / math.log(2), 5)}


# -- files ----------------------------------------------------------------------------------
def check_text_file(path: str | os.PathLike) -> Path:
    """``path`` as a readable text file, else a one-line error naming it."""
    path = Path(path)
    if not path.exists():
        raise TextRNNError(f"{path}: no such file; give a text file to evaluate on")
    if path.is_dir():
        raise TextRNNError(f"{path}: is a directory; give a text file to evaluate on")
    segments([(path, "utf-8")])  # NUL bytes near its start: a binary file
    return path


def _lines(path: Path, encoding: str) -> Iterator[str]:
    """The text of ``path`` read as a corpus is (each line with its newline; the last given
    one if it has none), decoded in chunks that end after a newline."""
    segs = segments([(check_text_file(path), stream_codec(encoding))])
    pending = ""
    for chunk in read_stream(segs, aligned=True):
        *whole, pending = (pending + chunk).split("\n")
        yield from (line + "\n" for line in whole)
    if pending:
        yield pending


def score_file(model: torch.nn.Module, tok: Any, path: str | os.PathLike, seq_len: int,
               encoding: str = "utf-8") -> dict[str, Any]:
    """The numbers of the module doc for one file, encoded as training encodes a --val-file."""
    t0 = time.perf_counter()
    device = next(model.parameters()).device
    path = Path(path)
    segs = segments([(check_text_file(path), stream_codec(encoding))])
    dtype = token_dtype(tok.vocab_size)
    parts, chars, words, lines = [], 0, 0, 0
    for chunk in read_stream(segs, aligned=True):  # (chars need no alignment, but it changes no char ids)
        parts.append(tok.encode(chunk, dtype=dtype))
        chars, words, lines = chars + len(chunk), words + len(chunk.split()), lines + chunk.count("\n")
    ids = np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)
    model.eval()
    total, count = score_tokens(model, ids, seq_len, device, name=str(path))
    unknown = int((ids == tok.unk_id).sum()) if tok.unk_id is not None else 0
    loss = total / count
    return {"file": str(path), "tokens": len(ids), "scored": count, "chars": chars, "words": words, "lines": lines,
            "loss": loss, "perplexity": math.exp(min(loss, 50.0)),
            "bits_per_char": loss / (chars / len(ids)) / math.log(2),  # (as validation's bpc)
            "word_perplexity": math.exp(min(total / max(1, words + lines), 50.0)),
            "unknown_share": unknown / len(ids), "seconds": time.perf_counter() - t0}


def score_lines(model: torch.nn.Module, tok: Any, path: str | os.PathLike, seq_len: int,
                encoding: str = "utf-8") -> list[dict[str, Any]]:
    """Each non-empty line of ``path`` scored on its own (:func:`score_texts`, its newline
    included): line number, text, tokens, nats, bits per character, perplexity; in file order."""
    numbered = [(i, line) for i, line in enumerate(_lines(Path(path), encoding), 1) if line.strip()]
    scores = score_texts(model, tok, [line if line.endswith("\n") else line + "\n" for _, line in numbered], seq_len)
    return [{"line": number, "text": line.rstrip("\n"), **score} for (number, line), score in zip(numbered, scores)]


def score_texts(model: torch.nn.Module, tok: Any, texts: Sequence[str], seq_len: int) -> list[dict[str, Any]]:
    """Each text scored on its own (fresh state, its first token context only): tokens, nats,
    bits per character (over all its characters), perplexity (per predicted token); in order."""
    device = next(model.parameters()).device
    encoded = tok.encode_many(list(texts))
    model.eval()
    nats = np.zeros(len(encoded))
    order = np.argsort([len(e) for e in encoded], kind="stable")  # similar lengths side by side
    for lo in range(0, len(order), LINE_BATCH):
        picked = order[lo : lo + LINE_BATCH]
        ids = np.concatenate([encoded[i] for i in picked])
        ends = np.cumsum([len(encoded[i]) for i in picked])
        spans = [(int(e - len(encoded[i])), int(e)) for i, e in zip(picked, ends)]
        nats[picked] = score_spans(model, ArrayTokens(ids), spans, seq_len, device)[0]
    return [{"tokens": len(e), "nats": float(n), "bits_per_char": float(n) / math.log(2) / max(1, len(text)),
             "perplexity": math.exp(min(float(n) / max(1, len(e) - 1), 50.0))}
            for text, e, n in zip(texts, encoded, nats)]


def evaluate_model(model: torch.nn.Module, tok: Any, run: RunConfig,
                   files: str | os.PathLike | Sequence[str | os.PathLike], encoding: Optional[str] = None,
                   per_line: bool = False) -> list[dict[str, Any]]:
    """:func:`evaluate` with a loaded model, its tokenizer and its run's configuration."""
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    seq_len = run.train.seq_len
    encoding = encoding or run.data.encoding or default("encoding")
    results = []
    for f in files:
        result = score_file(model, tok, f, seq_len, encoding)
        if per_line:
            result["per_line"] = score_lines(model, tok, f, seq_len, encoding)
        results.append(result)
    return results
