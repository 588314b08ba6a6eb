"""The one-token sampler cell equals the model's forward pass."""

import pytest
import torch

from conftest import tiny_lm as tiny
from textrnn.inference.stepper import Stepper


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "mingru", "minlstm"])
@pytest.mark.parametrize("layers", [1, 3])
def test_stepper_equals_forward(cell, layers):
    model = tiny(cell, layers)
    ids = torch.randint(0, 11, (3, 7))
    full, _ = model(ids)
    with torch.inference_mode():
        step = Stepper(model)
        state = step.initial_state(3)
        for t in range(7):
            logits, state = step(ids[:, t], state)
            torch.testing.assert_close(logits, full[:, t], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("options", [
    dict(embed=6, tie_weights=True),  # hidden 8: a projection before the tied head
    dict(embed=8, tie_weights=True),
    dict(hidden_dropout=0.3, weight_drop=0.5, input_dropout=0.2, output_dropout=0.2),  # per-layer modules
    dict(embed=6, tie_weights=True, hidden_dropout=0.3, weight_drop=0.5),
])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stepper_equals_forward_with_the_regularization_options(cell, options):
    model = tiny(cell, 3, **options)
    ids = torch.randint(0, 11, (3, 7))
    full, _ = model(ids)
    with torch.inference_mode():
        step = Stepper(model, banned=[4])
        state = step.initial_state(3)
        for t in range(7):
            logits, state = step(ids[:, t], state)
            expected = full[:, t].clone()
            expected[:, 4] = float("-inf")
            torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(model.head.bias).all()  # banning does not touch the model


@pytest.mark.parametrize("cell", ["lstm", "gru", "minlstm"])
def test_stepper_equals_forward_with_the_adaptive_softmax(cell):
    model = tiny(cell, 2, hidden=32, adaptive_softmax=True, adaptive_cutoffs="3,7")
    ids = torch.randint(0, 11, (3, 7))
    full, _ = model(ids)  # (3, 7, 11) log-probabilities
    with torch.inference_mode():
        step = Stepper(model, banned=[0])
        state = step.initial_state(3)
        for t in range(7):
            logits, state = step(ids[:, t], state)
            expected = full[:, t].clone()
            expected[:, 0] = float("-inf")
            torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)


def test_adaptive_softmax_sampling_is_seeded_and_never_gives_a_banned_token():
    from textrnn.inference.generate import sample_ids
    from textrnn.inference.options import SamplingOptions

    model = tiny("lstm", 2, hidden=32, adaptive_softmax=True, adaptive_cutoffs="3,7")
    with torch.no_grad():
        model.asm.head.bias[0] = 20.0  # token 0 (<unk>) would be nearly certain
    options = SamplingOptions(length=40, num_samples=4, seed=5)
    draw = lambda: torch.stack(list(sample_ids(model, [1, 2], options, banned=[0])))  # noqa: E731
    first = draw()
    assert torch.equal(first, draw()) and (first != 0).all() and first.max() < 11


def test_a_conditioned_model_steps_with_its_label_as_forward_reads_the_marker():
    model = tiny("lstm", 2, condition_tokens=[9, 10])  # token 9 marks label 1, token 10 label 2
    ids = torch.tensor([[10, 3, 4, 5, 6, 7], [9, 1, 2, 3, 9, 8]])
    full, _ = model(ids)
    with torch.inference_mode():
        step = Stepper(model)
        for row, label in ((0, 2), (1, 1)):  # each row's marker is at its start: its label holds throughout
            state = step.initial_state(1)
            for t in range(6):
                logits, state = step(ids[row : row + 1, t], state, torch.tensor([label]))
                torch.testing.assert_close(logits[0], full[row, t], rtol=1e-5, atol=1e-5)
        assert not torch.allclose(step(ids[:1, 1], step.initial_state(1), torch.tensor([1]))[0],
                                  step(ids[:1, 1], step.initial_state(1), torch.tensor([2]))[0])
        # rows of one batch, each with its own label, step as each alone
        both, _ = step(ids[:, 1], step.initial_state(2), torch.tensor([2, 1]))
        for row, label in ((0, 2), (1, 1)):
            alone, _ = step(ids[row : row + 1, 1], step.initial_state(1), torch.tensor([label]))
            torch.testing.assert_close(both[row], alone[0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("rows", [1, 2, 8, 33])
@pytest.mark.parametrize("with_bias", [True, False])
def test_product_equals_the_plain_matrix_product(rows, with_bias):
    """A Product (oneDNN-packed weight where the CPU has it) gives x W^T + b (+ add) for any row count."""
    from textrnn.inference.stepper import Product

    torch.manual_seed(0)
    weight, bias = torch.randn(24, 10), torch.randn(24) if with_bias else None
    x, add = torch.randn(rows, 10), torch.randn(rows, 24)
    product, plain = Product(weight, bias), Product(weight, bias, pack=False)
    expected = x @ weight.t() + (0 if bias is None else bias)
    with torch.inference_mode():
        for p in (product, plain):
            torch.testing.assert_close(p(x), expected, rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(p(x, add), expected + add, rtol=1e-5, atol=1e-5)
    assert plain.packed is None


def test_product_packs_only_float32_weights_on_a_cpu_with_onednn():
    from textrnn.inference.stepper import Product

    if not torch.backends.mkldnn.is_available():
        pytest.skip("this PyTorch has no oneDNN: every product is addmm")
    assert Product(torch.randn(24, 10)).packed is not None
    assert Product(torch.randn(24, 10, dtype=torch.float64)).packed is None


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_an_int8_stepper_is_close_to_forward_and_its_rows_independent(cell):
    """A model marked ``int8_products`` (an --int8 export) steps with int8 products: logits near
    the forward pass's; each row's result the same alone or in a batch (the fixed input grid);
    where no int8 product is to be had, the float Stepper (equal to forward)."""
    from textrnn.inference.quantize import Int8Product

    if "fbgemm" not in torch.backends.quantized.supported_engines:
        pytest.skip("this PyTorch has no fbgemm int8 products")
    model = tiny(cell, 2, embed=6, tie_weights=True)  # a projection folded into the head too
    model.int8_products = True
    ids = torch.randint(0, 11, (3, 7))
    full, _ = model(ids)
    with torch.inference_mode():
        step = Stepper(model, banned=[4])
        assert all(isinstance(p, Int8Product) for p in [*step.hidden_side, *step.input_side[1:], step.head])
        state, alone = step.initial_state(3), [step.initial_state(1) for _ in range(3)]
        for t in range(7):
            logits, state = step(ids[:, t], state)
            expected = full[:, t].clone()
            expected[:, 4] = float("-inf")
            torch.testing.assert_close(logits, expected, atol=0.1, rtol=0)
            assert not torch.allclose(logits, expected, atol=1e-6, rtol=0)  # (it did run in int8)
            for k in range(3):
                row, alone[k] = step(ids[k : k + 1, t], alone[k])
                torch.testing.assert_close(row[0], logits[k], atol=1e-6, rtol=0)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(Int8Product, "make", classmethod(lambda cls, w, b=None: None))  # not on this CPU
            plain = Stepper(model)
            logits, _ = plain(ids[:, 0], plain.initial_state(3))
            torch.testing.assert_close(logits, full[:, 0], rtol=1e-5, atol=1e-5)


def test_a_conditioned_stepper_holds_one_input_table_and_one_row_per_label():
    """The server steps rows of many labels at once: a vector per label, not a vocabulary-sized table per label
    (a 20,000-word, 512-unit LSTM: 164 MB each)."""
    plain, labelled = Stepper(tiny("lstm", 2)), Stepper(tiny("lstm", 2, condition_tokens=list(range(1, 11))))
    assert labelled.table.shape == plain.table.shape == (11, 4 * 8)
    assert labelled.label_table.shape == (11, 4 * 8)  # ten labels and "none"
    assert plain.label_table is None


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_a_minimal_cell_marked_int8_steps_in_float32_equal_to_forward(cell):
    """A minGRU / minLSTM's hidden state is positive and unbounded: the int8 products (inputs on a grid of
    [-1, 1]) would clip it, so its Stepper keeps float32 products, from a carried state too."""
    model = tiny(cell, 2, embed=6, tie_weights=True, hidden_dropout=0.3)
    model.int8_products = True
    ids = torch.randint(0, 11, (3, 9))
    with torch.inference_mode():
        _, carried = model(ids[:, :4])
        full, _ = model(ids[:, 4:], carried)
        step = Stepper(model)
        assert step.int8 is False
        state = [carried[k] for k in range(2)]
        for t in range(5):
            logits, state = step(ids[:, 4 + t], state)
            torch.testing.assert_close(logits, full[:, t], rtol=1e-5, atol=1e-5)
