"""The optimizer and the learning-rate schedule every run uses."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import TextRNNError


def make_optimizer(model: nn.Module, cfg: TrainConfig, lr_scales: Optional[dict[str, float]] = None,
                   thaw_at: Optional[dict[str, float]] = None) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and embeddings; parameters named in
    ``lr_scales`` train at that multiple of the learning rate, and those named in ``thaw_at``
    stay frozen until that fraction of the run (see :func:`frozen_groups`)."""
    groups: dict[tuple[bool, float, float], list] = {(True, 1.0, 0.0): [], (False, 1.0, 0.0): []}
    for name, p in model.named_parameters():
        if p.requires_grad:
            decay = not (p.ndim < 2 or "embedding" in name)
            key = (decay, (lr_scales or {}).get(name, 1.0), (thaw_at or {}).get(name, 0.0))
            groups.setdefault(key, []).append(p)
    param_groups = [{"params": ps, "weight_decay": cfg.weight_decay if decay else 0.0, "lr_scale": scale,
                     "thaw_at": thaw} for (decay, scale, thaw), ps in groups.items() if ps]
    kwargs = {"foreach": True} if next(model.parameters()).device.type != "mps" else {}
    return torch.optim.AdamW(param_groups, lr=cfg.lr, betas=(0.9, 0.99), **kwargs)


def layer_depths(model: nn.Module) -> dict[str, int]:
    """How deep each parameter sits below the output, in ULMFiT's layers: recurrent layer ``k`` of
    ``L`` at ``L - k``, the embedding at ``L + 1``, the output layer and everything else (a
    conditioned model's label vectors) 0. An embedding tied to the output layer is the output
    layer's weight too: depth 0 (it trains from the start, as in ULMFiT, whose decoder is tied)."""
    layers = model.encoder.rnn.num_layers
    output = {id(p) for name, p in model.named_parameters(remove_duplicate=False) if name.startswith("head.")}
    depths = {}
    for name, p in model.named_parameters():
        if id(p) in output:
            depths[name] = 0
        elif name.startswith("encoder.embedding"):
            depths[name] = layers + 1
        elif name.startswith("encoder.rnn."):
            depths[name] = layers - int(name.rsplit("_l", 1)[1].split("_")[0])
        else:
            depths[name] = 0
    return depths


def layer_lr_scales(model: nn.Module, decay: float) -> dict[str, float]:
    """ULMFiT's discriminative rates: a parameter at depth ``d`` (:func:`layer_depths`) trains at
    ``decay ** -d`` times the learning rate; {} for ``decay == 1``."""
    if decay == 1:
        return {}
    return {name: decay ** -depth for name, depth in layer_depths(model).items()}


def thaw_fractions(model: nn.Module, every: float) -> dict[str, float]:
    """ULMFiT's gradual unfreezing: the parameters at depth ``d`` (:func:`layer_depths`) stay
    frozen until ``d * every`` of the run (the output layer trains from the start, then one layer
    more every ``every``, from the top); {} for ``every == 0``."""
    if not every:
        return {}
    return {name: depth * every for name, depth in layer_depths(model).items() if depth}


def check_unfreeze(cfg: TrainConfig, init_from: Optional[object], task: str = "lm") -> None:
    """--unfreeze-every (and, for a classifier, --layer-lr-decay) start from a trained model: a model
    trained from scratch has no pretrained layers to keep frozen or slow."""
    if cfg.unfreeze_every and init_from is None:
        raise TextRNNError("--unfreeze-every keeps pretrained layers frozen for a while: it needs --init-from")
    if task == "classify" and cfg.layer_lr_decay != 1 and init_from is None:
        raise TextRNNError("--layer-lr-decay slows a classifier's pretrained layers: it needs --init-from")


def frozen_groups(optimizer: torch.optim.Optimizer, fraction: float) -> list[dict]:
    """The parameter groups still frozen at ``fraction`` of the run (their ``thaw_at`` not reached)."""
    return [g for g in optimizer.param_groups if fraction < g.get("thaw_at", 0.0)]


def lr_at(cfg: TrainConfig, step: int, fraction: float) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``min_lr_ratio`` by the end."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    cos = 0.5 * (1.0 + math.cos(math.pi * min(1.0, fraction)))
    return cfg.lr * warm * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cos)
