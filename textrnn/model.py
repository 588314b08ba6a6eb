"""The recurrent networks: a shared encoder and the two models built on it.

``forward`` returns logits and the recurrent state; the training loop and evaluation take
per-token negative log-likelihoods (``targets=``, :meth:`LanguageModel.token_nll`) and
reduce them themselves. Shapes are batch-first: ``ids`` is ``(B, T)``.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Union

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .config import ModelConfig
from .layers import RecurrentStack, locked_dropout
from .mincells import MIN_CELLS, MinRNN

# LSTM state is (h, c), each (layers, B, H); GRU, RNN, minGRU and minLSTM state is h, (layers, B, H).
State = Union[Tensor, tuple[Tensor, Tensor]]

_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


class Outputs(NamedTuple):
    """The last recurrent layer's outputs, for activation regularization (AR / TAR)."""

    raw: Tensor  # (B, T, H): as the layer gave them
    dropped: Tensor  # (B, T, H): after the output dropout, as the head reads them


def recurrent_module(cfg: ModelConfig) -> nn.Module:
    """The recurrent layers of ``cfg``: an ``nn.LSTM`` / ``GRU`` / ``RNN``, or a :class:`~textrnn.mincells.MinRNN`
    (minGRU, minLSTM); called alike, ``(B, T, E)`` and the state -> ``(B, T, D*H)`` and the state."""
    between = cfg.dropout if cfg.layers > 1 else 0.0
    if cfg.cell in MIN_CELLS:  # (locked dropout between its layers is its own: it has no fused kernel to keep)
        return MinRNN(cfg.cell, cfg.embed, cfg.hidden, cfg.layers, dropout=between, bidirectional=cfg.bidirectional,
                      hidden_dropout=cfg.hidden_dropout)
    kwargs = {"nonlinearity": "tanh"} if cfg.cell == "rnn" else {}
    return _CELLS[cfg.cell](cfg.embed, cfg.hidden, cfg.layers, batch_first=True, dropout=between,
                            bidirectional=cfg.bidirectional, **kwargs)


class RNNEncoder(nn.Module):
    """Embedding -> dropout (+ locked) -> stacked LSTM / GRU / tanh-RNN / minGRU / minLSTM layers (weight drop
    and locked dropout between layers: see :class:`~textrnn.layers.RecurrentStack`)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = nn.Embedding(cfg.vocab_size, cfg.embed)
        self.drop = nn.Dropout(cfg.dropout)
        self.rnn = recurrent_module(cfg)
        if cfg.cell == "lstm":  # forget-gate bias 1: remember by default (Jozefowicz et al.)
            with torch.no_grad():
                for name, p in self.rnn.named_parameters():
                    if name.startswith("bias_ih"):
                        p[cfg.hidden : 2 * cfg.hidden].fill_(1.0)
        between = cfg.dropout if cfg.layers > 1 else 0.0
        self.stack = RecurrentStack(self.rnn, cfg.weight_drop, cfg.hidden_dropout, between)
        self.label_embedding: Optional[nn.Embedding] = None
        if cfg.condition_tokens:  # a conditioned LM: its label's vector joins every input (row 0: no label yet)
            self.label_embedding = nn.Embedding(len(cfg.condition_tokens) + 1, cfg.embed)
            label_of = torch.zeros(cfg.vocab_size, dtype=torch.long)
            label_of[torch.tensor(cfg.condition_tokens)] = torch.arange(1, len(cfg.condition_tokens) + 1)
            self.register_buffer("label_of_token", label_of, persistent=False)  # (V,): marker -> its label + 1

    def running_labels(self, ids: Tensor) -> Tensor:
        """(B, T) ids -> (B, T) the label (+1) of the last marker at or before each position in the
        window; 0 before the window's first marker (the state carries the label across windows)."""
        marks = self.label_of_token[ids]  # (B, T)
        at = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
        last = torch.where(marks > 0, at, -1).cummax(dim=1).values  # (B, T): where the last marker is
        return torch.where(last >= 0, marks.gather(1, last.clamp_min(0)), 0)

    def embed(self, ids: Tensor) -> Tensor:
        """(B, T) -> (B, T, E), with embedding dropout (whole tokens) and dropout in training."""
        p = self.cfg.embed_dropout
        if self.training and p > 0:
            keep = torch.empty(self.cfg.vocab_size, 1, device=ids.device).bernoulli_(1 - p) / (1 - p)  # (V, 1)
            x = nn.functional.embedding(ids, self.embedding.weight * keep)
        else:
            x = self.embedding(ids)
        return self.drop(x)

    def forward(self, ids: Tensor, state: Optional[State] = None,
                labels: Optional[Tensor] = None) -> tuple[Tensor, State]:
        """``ids`` (B, T) -> the last layer's outputs (B, T, H) and the state; ``labels`` (B, T): see :meth:`inputs`."""
        out, state = self.stack(self.inputs(ids, labels), state, self.training)  # (B, T, H)
        return out, state

    def inputs(self, ids: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """(B, T) -> what the recurrent layers read (B, T, E): the embedding (and a conditioned model's
        label vectors: of ``labels`` (B, T), else of :meth:`running_labels`), with the input dropouts
        in training."""
        x = self.embed(ids)  # (B, T, E)
        if self.label_embedding is not None:
            x = x + self.label_embedding(self.running_labels(ids) if labels is None else labels)
        return locked_dropout(x, self.cfg.input_dropout, self.training)

    def forward_padded(self, ids: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        """Encode padded texts of the given lengths as packed sequences (padding never
        reaches the network). ``ids`` (B, T), ``lengths`` (B,) on CPU ->
        outputs (B, T, D*H) with zeros past each length, and the last layer's final hidden
        state per direction (B, D*H)."""
        x = self.embed(ids)  # (B, T, E)
        if isinstance(self.rnn, MinRNN):  # each direction reads a row within its length (no packed sequences)
            out, h = self.rnn(x, None, lengths=lengths)  # (B, T, D*H), (layers*D, B, H)
            inside = torch.arange(ids.shape[1], device=out.device)[None, :] < lengths.to(out.device)[:, None]  # (B, T)
            out = out.masked_fill(~inside[..., None], 0.0)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, state = self.rnn(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
            h = state[0] if isinstance(state, tuple) else state  # (layers*D, B, H)
        directions = 2 if self.cfg.bidirectional else 1
        last = h[-directions:].transpose(0, 1).reshape(ids.shape[0], -1)  # (B, D*H)
        return out, last


class LanguageModel(nn.Module):
    """Next-token model: encoder -> dropout (+ locked) -> [projection] -> linear head over the
    vocabulary. With tied weights and ``embed != hidden`` a projection (hidden -> embed)
    precedes the head, which shares the embedding's weight. With ``cfg.adaptive_softmax`` the
    output layer is an :class:`~torch.nn.AdaptiveLogSoftmaxWithLoss` (``self.asm``, clusters at
    ``cfg.cutoffs()``) and ``self.head`` is None."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = RNNEncoder(cfg)
        self.drop = nn.Dropout(cfg.dropout)
        self.int8_products = False  # the CPU Stepper multiplies in int8 (inference.quantize): set for an --int8 export
        projected = cfg.tie_weights and cfg.embed != cfg.hidden
        self.proj = nn.Linear(cfg.hidden, cfg.embed) if projected else None
        self.head: Optional[nn.Linear] = None
        self.asm: Optional[nn.AdaptiveLogSoftmaxWithLoss] = None
        if cfg.adaptive_softmax:
            self.asm = nn.AdaptiveLogSoftmaxWithLoss(cfg.hidden, cfg.vocab_size, cfg.cutoffs(), div_value=4.0,
                                                     head_bias=True)
        else:
            self.head = nn.Linear(cfg.embed if projected else cfg.hidden, cfg.vocab_size)
            if cfg.tie_weights:
                self.head.weight = self.encoder.embedding.weight

    def forward(self, ids: Tensor, state: Optional[State] = None, return_outputs: bool = False,
                targets: Optional[Tensor] = None):
        """``ids`` (B, T) -> logits (B, T, V) and the state; with ``return_outputs``, also the
        last layer's :class:`Outputs` (for AR / TAR). With the adaptive softmax the "logits"
        are log-probabilities (``asm.log_prob``; softmax and cross-entropy of them are unchanged).
        With ``targets`` (B, T) the first result is instead the per-token negative log-likelihood
        (B, T) (0 where a target is negative: padding), without (B, T, V) logits for the adaptive
        softmax: see :meth:`token_nll` (it is here so that DDP and torch.compile wrap it)."""
        raw, state = self.encoder(ids, state)  # (B, T, H)
        dropped = locked_dropout(self.drop(raw), self.cfg.output_dropout, self.training)  # (B, T, H)
        if targets is not None:
            first = self._nll(dropped, targets)  # (B, T)
        else:
            first = self.scores(dropped)  # (B, T, V)
        if return_outputs:
            return first, state, Outputs(raw, dropped)
        return first, state

    def token_nll(self, ids: Tensor, targets: Tensor, state: Optional[State] = None, return_outputs: bool = False):
        """``ids`` (B, T), ``targets`` (B, T) -> nats of each target (B, T) (0 where a target is
        negative), the state[, :class:`Outputs`]. Full softmax: the cross-entropy of the logits;
        adaptive softmax: minus the target's log-probability from the clusters it needs only."""
        return self(ids, state, return_outputs=return_outputs, targets=targets)

    def scores(self, features: Tensor) -> Tensor:
        """The last layer's (dropped) outputs (..., H) -> what :meth:`forward` gives for them (..., V):
        logits, or with the adaptive softmax log-probabilities."""
        return self.log_probs(features) if self.asm is not None else self._logits(features)

    def log_probs(self, features: Tensor) -> Tensor:
        """The last layer's (dropped) outputs (..., H) -> log-probabilities over the vocabulary (..., V)."""
        if self.asm is None:
            return torch.log_softmax(self._logits(features).float(), dim=-1)  # (..., V)
        flat = features.reshape(-1, features.shape[-1]).float()  # (N, H)
        with torch.autocast(flat.device.type, enabled=False):  # (float32: see _nll)
            return self.asm.log_prob(flat).view(*features.shape[:-1], -1)  # (..., V)

    def _logits(self, features: Tensor) -> Tensor:
        return self.head(features if self.proj is None else self.proj(features))  # (..., V)

    def _nll(self, features: Tensor, targets: Tensor) -> Tensor:
        """(B, T, H), (B, T) -> (B, T) nats; negative targets (padding) score 0."""
        if self.asm is None:
            logits = self._logits(features)  # (B, T, V)
            return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100,
                                   reduction="none").view(targets.shape)  # (B, T)
        flat = features.flatten(0, 1).float()  # (B*T, H)
        with torch.autocast(flat.device.type, enabled=False):  # asm's index_copy_ needs one dtype: float32
            nll = -self.asm(flat, targets.flatten().clamp_min(0)).output  # (B*T,)
        return nll.view(targets.shape).masked_fill(targets < 0, 0.0)  # (B, T)


class Classifier(nn.Module):
    """Text classifier: encoder over packed sequences -> [last state; max; mean] pooling
    -> dropout -> linear over the classes (logits; softmax is applied by the user of them)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not cfg.num_classes:
            raise ValueError("a Classifier needs cfg.num_classes")
        self.cfg = cfg
        self.encoder = RNNEncoder(cfg)
        width = cfg.hidden * (2 if cfg.bidirectional else 1)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(3 * width, cfg.num_classes)
        self.int8_products = False  # the CpuReader multiplies in int8 (inference.quantize): set for an --int8 export

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        """``ids`` (B, T) padded, ``lengths`` (B,) -> logits (B, C)."""
        out, last = self.encoder.forward_padded(ids, lengths.cpu())  # (B, T, W), (B, W)
        mask = (torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths.to(ids.device)[:, None])
        mask = mask.unsqueeze(-1)  # (B, T, 1)
        max_pool = out.masked_fill(~mask, float("-inf")).amax(dim=1)  # (B, W)
        mean_pool = out.sum(dim=1) / lengths.to(out.device, out.dtype).unsqueeze(-1)  # padding is zero
        return self.head(self.drop(torch.cat([last, max_pool, mean_pool], dim=-1)))  # (B, C)


def copy_pretrained(model: nn.Module, source: nn.Module) -> int:
    """Copy ``source``'s weights into ``model``, a model of the same shape whose vocabulary may be
    larger (a fine-tuning run's char tokenizer gains the corpus's new characters as ids after the
    source's): the rows of the new ids (embedding, output layer) start at the mean of the source's
    rows, and parts the source lacks (a conditioned model's label vectors) at zero. Returns the number
    of ids added."""
    theirs = source.state_dict()
    added = 0
    with torch.no_grad():
        for name, mine in model.state_dict().items():  # (tensors that share the parameters' storage)
            old = theirs.get(name)
            if old is None:  # a part the source lacks (a label embedding): zeros, so the model starts as its source
                mine.zero_()
                continue
            if old.shape == mine.shape:
                mine.copy_(old)
                continue
            if old.shape[1:] != mine.shape[1:] or old.shape[0] > mine.shape[0]:
                raise ValueError(f"{name}: {tuple(old.shape)} cannot grow into {tuple(mine.shape)}")
            n = old.shape[0]  # a vocabulary-sized tensor: (V, ...) -> (V', ...)
            mine[:n].copy_(old)
            mine[n:].copy_(old.float().mean(0).to(mine.dtype))
            added = mine.shape[0] - n
    return added
