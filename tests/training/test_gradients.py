"""textrnn.training.gradients: clipping and the gradient norms (total and per layer) in metrics.jsonl."""

import math

import pytest
import torch

from test_trainer import tiny_trainer  # (a Trainer of a one-layer linear model)


def test_grad_norms_match_a_hand_computation_and_clipping_is_counted():
    from textrnn.training.gradients import group_name

    for clip, clipped in [(1e6, 0.0), (1e-3, 1.0)]:
        trainer = tiny_trainer(clip=clip)
        model = trainer.model
        batch = torch.ones(2, 3)
        gw, gb = torch.autograd.grad(model(batch).pow(2).mean(), [model.weight, model.bias])
        total = math.sqrt(gw.pow(2).sum().item() + gb.pow(2).sum().item())
        trainer.train_step(batch)
        if clipped:
            grad = math.sqrt(sum(p.grad.pow(2).sum().item() for p in model.parameters()))
            assert grad == pytest.approx(clip, rel=1e-4)  # the gradients were clipped to the threshold
        m = trainer.grads.metrics()
        assert m["grad_norm"] == pytest.approx(total, rel=1e-5) and m["grad_norm_max"] == m["grad_norm"]
        assert m["grad_clipped"] == clipped
        assert m["grad_norm/weight"] == pytest.approx(gw.norm().item(), rel=1e-5)
        assert m["grad_norm/bias"] == pytest.approx(gb.norm().item(), rel=1e-5)
        assert trainer.grads.metrics() == {}  # read once: the sums restart
    assert group_name("encoder.rnn.weight_hh_l1_reverse") == group_name("encoder.rnn.bias_ih_l1") == "encoder.rnn.l1"
    assert group_name("encoder.embedding.weight") == "encoder.embedding" and group_name("head.bias") == "head"


def test_a_step_with_non_finite_gradients_counts_but_adds_no_norm():
    """(as when the fp16 GradScaler finds an overflow and skips the step)"""
    from textrnn.training.gradients import GradStats

    model = torch.nn.Linear(2, 1, bias=False)
    grads = GradStats(model, list(model.parameters()), torch.device("cpu"))
    for g in ([3.0, 4.0], [float("inf"), 0.0]):
        model.weight.grad = torch.tensor([g])
        grads.clip(1e6)
    m = grads.metrics()
    assert m["grad_norm"] == m["grad_norm_max"] == m["grad_norm/weight"] == 5.0 and m["grad_clipped"] == 0.0
    model.weight.grad = torch.tensor([[3.0, 4.0]])
    grads.clip(1.0)
    saved = grads.state()  # a resumed run goes on from the saved sums
    resumed = GradStats(model, list(model.parameters()), torch.device("cpu"), saved)
    expected = {"grad_norm": 5.0, "grad_norm_max": 5.0, "grad_clipped": 1.0, "grad_norm/weight": 5.0}
    assert resumed.metrics() == grads.metrics() == expected
