"""LMTask: activation regularization (AR / TAR) changes the training loss only."""

import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_lm as tiny
from textrnn.data.batches import LMBatches
from textrnn.training.tasks import LMTask


def _task(ar=0.0, tar=0.0):
    torch.manual_seed(1)
    val = torch.randint(0, 11, (40,)).numpy()  # validation token ids
    train = LMBatches(torch.randint(0, 11, (40,)).numpy(), batch_size=2, seq_len=6)
    return LMTask(train, val, torch.device("cpu"), chars_per_val_token=1.0, ar=ar, tar=tar)


@pytest.mark.parametrize("ar, tar", [(2.0, 0.0), (0.0, 3.0), (2.0, 3.0)])
def test_ar_and_tar_add_to_the_training_loss_only(ar, tar):
    model = tiny("lstm", 2, output_dropout=0.5).train()
    batch = torch.randint(0, 11, (2, 9))  # (B, T + 1)
    plain_task, task = _task(), _task(ar, tar)
    torch.manual_seed(0)
    plain, count = plain_task.loss(model, batch)
    torch.manual_seed(0)
    regularized, count2 = task.loss(model, batch)
    torch.manual_seed(0)  # the same masks again, by hand
    logits, _, out = model(batch[:, :-1], return_outputs=True)
    expected = (F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten()) + ar * out.dropped.pow(2).mean()
                + tar * (out.raw[:, 1:] - out.raw[:, :-1]).pow(2).mean())
    assert count == count2 == 16
    torch.testing.assert_close(regularized, expected)
    assert regularized > plain
    with torch.no_grad():
        model.eval()
        assert _task(ar, tar).evaluate(model) == _task().evaluate(model)  # validation: plain cross-entropy


def test_the_state_is_carried_with_activation_regularization():
    model = tiny("gru", 2).eval()
    task = _task(ar=1.0, tar=1.0)
    task.loss(model, torch.randint(0, 11, (2, 9)))
    assert task.state.shape == (2, 2, 8) and not task.state.requires_grad
