"""A classifier that starts from a classifier (``textrnn train --task classify my.csv --init-from sst2``).

::

    source run (tokenizer, encoder, head, labels) + the user's rows
        -> tokenizer + the rows' new words (new ids after the source's)       Tokenizer.with_words_of
        -> the run's labels and, for each, the source's head row or none      head_rows (--head)
        -> the source's model config with the new vocabulary and label count
        -> weights: encoder copied (a new word's rows start at the mean row), head rows by label

The options that shape the network (size, cell, direction, tokenizer) come from the source; the
training defaults are the ``adapt`` ones of :mod:`textrnn.config` (sized for a few hundred rows).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch

from .. import checkpoint
from ..config import SHAPE, ModelConfig
from ..data.labels import match_labels
from ..errors import TextRNNError
from ..model import Classifier, copy_pretrained
from ..tokenizer import Tokenizer

FIXED = SHAPE + ("bidirectional",)
"""What a classifier started from a classifier takes from it and may not change (besides its tokenizer)."""


def check_source(source: checkpoint.Checkpoint, name: str, model_opts: dict[str, Any], tokenizer: Optional[str],
                 vocab_size: Optional[int]) -> None:
    """A one-line error for an option that would change the source classifier's shape or tokenizer."""
    clash = sorted(k for k in FIXED if k in model_opts and model_opts[k] != getattr(source.run.model, k))
    clash += ["tokenizer"] if tokenizer not in (None, source.tokenizer.kind) else []
    clash += ["vocab_size"] if vocab_size is not None else []
    if clash:
        raise TextRNNError(f"--init-from {name}: the classifier's size and tokenizer come from it; drop "
                           + ", ".join("--" + k.replace("_", "-") for k in clash))


def head_rows(names: Sequence[Any], source_labels: Sequence[Any], mode: str, where: str,
              aliases: Optional[dict[str, Any]] = None) -> tuple[list[Any], list[Optional[int]]]:
    """The run's labels and, for each, the row of the source's output layer it keeps (None: a new row).

    ``names``: the labels of the user's rows, matched with the source's by name or by one of its
    ``aliases`` (:func:`~textrnn.data.labels.match_labels`: the shipped sst2's 0 is negative); ``mode``:
    ``keep`` (the source's labels, all of them; every row's label must be one), ``new`` (the rows'
    labels, a new layer) or ``auto`` (the rows' labels, those the source has keep their rows: the
    source's labels, in its order, when all match).
    """
    matched = match_labels(names, source_labels, aliases)
    if mode == "keep":
        unknown = [str(n) for n, m in zip(names, matched) if m is None]
        if unknown:
            raise TextRNNError(f"{where}: label {unknown[0]!r} is not one of the labels of the classifier given to "
                               f"--init-from ({', '.join(map(str, source_labels))}); fix the file, or give "
                               f"--head new (or auto) for a new output layer")
        return list(source_labels), list(range(len(source_labels)))
    if mode == "new":
        return list(names), [None] * len(names)
    if all(m is not None for m in matched):  # the same labels, or a subset: in the source's order
        rows = sorted(matched)
        return [source_labels[r] for r in rows], list(rows)
    return list(names), matched


def adapted_config(source: checkpoint.Checkpoint, model_opts: dict[str, Any], vocab_size: int,
                   num_classes: int) -> ModelConfig:
    """The source classifier's model config with the run's vocabulary and labels, and the
    options given that do not change its shape (dropout)."""
    return ModelConfig.from_dict({**source.run.model.to_dict(), **model_opts, "vocab_size": vocab_size,
                                  "num_classes": num_classes})


def copy_classifier(model: Classifier, source: Classifier, rows: Sequence[Optional[int]]) -> int:
    """Copy ``source``'s encoder into ``model`` (a new word's embedding row starts at the mean
    row) and, for each of ``model``'s labels, the source head's row ``rows[i]`` (None: the new
    layer's own initial row). Returns the number of words added."""
    added = copy_pretrained(model.encoder, source.encoder)
    with torch.no_grad():
        for i, r in enumerate(rows):
            if r is not None:
                model.head.weight[i].copy_(source.head.weight[r])  # (3W,)
                model.head.bias[i].copy_(source.head.bias[r])
    return added


def adapted_tokenizer(source: Tokenizer, texts: Sequence[str]) -> Tokenizer:
    """The source's tokenizer plus the words (a char tokenizer: the characters) of ``texts`` it lacks."""
    if source.kind == "char":
        from ..tokenizer import train_tokenizer

        return source.with_tokens_of(train_tokenizer("char", texts))
    return source.with_words_of(texts)


def note(name: Any, source: checkpoint.Checkpoint, mcfg: ModelConfig, names: Sequence[Any],
         rows: Sequence[Optional[int]], added: int, lr: float) -> str:
    """The one line that says what the run starts from."""
    m = source.run.model
    kept = sum(r is not None for r in rows)
    head = ("its output layer" if kept == len(rows) == len(source.run.labels)
            else f"its output layer's rows for {kept} of {len(rows)} labels" if kept else "a new output layer")
    words = f", {added} new {'word' if source.tokenizer.kind == 'word' else 'token'}{'s' * (added != 1)}"
    return (f"starting from classifier {name}: {m.layers}x{m.hidden} {'bi' * m.bidirectional}{m.cell.upper()}, "
            f"{mcfg.vocab_size} tokens{words if added else ''}; {head} (labels {', '.join(map(str, names))}); "
            f"learning rate {lr:g}; options you set are kept")
