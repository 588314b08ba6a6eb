"""The optimizer and the learning-rate schedule every run uses."""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from ..config import TrainConfig


def make_optimizer(model: nn.Module, cfg: TrainConfig,
                   lr_scales: Optional[dict[str, float]] = None) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases, norms and embeddings; parameters named in
    ``lr_scales`` train at that multiple of the learning rate."""
    groups: dict[tuple[bool, float], list] = {(True, 1.0): [], (False, 1.0): []}
    for name, p in model.named_parameters():
        if p.requires_grad:
            decay = not (p.ndim < 2 or "embedding" in name)
            groups.setdefault((decay, (lr_scales or {}).get(name, 1.0)), []).append(p)
    param_groups = [{"params": ps, "weight_decay": cfg.weight_decay if decay else 0.0, "lr_scale": scale}
                    for (decay, scale), ps in groups.items() if ps]
    kwargs = {"foreach": True} if next(model.parameters()).device.type != "mps" else {}
    return torch.optim.AdamW(param_groups, lr=cfg.lr, betas=(0.9, 0.99), **kwargs)


def layer_lr_scales(model: nn.Module, decay: float) -> dict[str, float]:
    """ULMFiT's discriminative rates for a language model: the output layer (and projection) at 1,
    recurrent layer ``k`` of ``L`` at ``decay ** -(L - k)``, the embedding at ``decay ** -(L + 1)``;
    {} for ``decay == 1``."""
    if decay == 1:
        return {}
    layers = model.encoder.rnn.num_layers
    scales = {}
    for name, _ in model.named_parameters():
        if name.startswith("encoder.embedding"):
            depth = layers + 1
        elif name.startswith("encoder.rnn."):
            depth = layers - int(name.rsplit("_l", 1)[1].split("_")[0])
        else:
            depth = 0
        scales[name] = decay ** -depth
    return scales


def lr_at(cfg: TrainConfig, step: int, fraction: float) -> float:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``min_lr_ratio`` by the end."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    cos = 0.5 * (1.0 + math.cos(math.pi * min(1.0, fraction)))
    return cfg.lr * warm * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cos)
