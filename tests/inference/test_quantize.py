"""int8 weights and products (textrnn/quantize.py)."""

import pytest
import torch

from textrnn.inference.quantize import Int8Product, quantize_rows


def _product(weight, bias=None) -> Int8Product:
    """The int8 product of ``weight``; x86 PyTorch builds (fbgemm) must have it."""
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        pytest.skip("this PyTorch has no fbgemm int8 products (the readers fall back to float32)")
    product = Int8Product.make(weight, bias)
    assert product is not None, "fbgemm is there, but the int8 product failed its check when made"
    return product


def test_quantize_rows_puts_each_row_on_its_own_grid():
    torch.manual_seed(0)
    weight = torch.randn(5, 7) * torch.tensor([[0.01], [1.0], [30.0], [0.0], [2.0]])
    codes, scale = quantize_rows(weight)
    assert codes.dtype == torch.int8 and codes.shape == weight.shape and scale.shape == (5,)
    assert codes[3].eq(0).all()  # a zero row stays zero
    assert [int(r.abs().max()) for k, r in enumerate(codes) if k != 3] == [127] * 4  # the row's largest at +-127
    err = (codes.float() * scale[:, None] - weight).abs()
    assert (err <= scale[:, None] * 0.5 + 1e-7).all()  # within half a step


@pytest.mark.parametrize("with_bias", [False, True])
def test_int8_product_is_the_exact_arithmetic_it_stands_for(with_bias):
    """Inputs rounded to the 2/127 grid times the int8 rows, exactly: also at the worst case for
    16-bit saturation (every input at +-1, every weight at its row's maximum)."""
    torch.manual_seed(1)
    weight = torch.randn(24, 40)
    weight[:4] = weight[:4].sign() * 3.0  # rows all at their maximum magnitude
    bias = torch.randn(24) if with_bias else None
    product = _product(weight, bias)
    x = torch.cat([torch.rand(6, 40) * 2 - 1, torch.ones(1, 40), -torch.ones(1, 40), torch.sign(torch.randn(2, 40))])
    codes, scale = quantize_rows(weight)
    exact = (torch.round(x / Int8Product.STEP) * Int8Product.STEP).double() @ (codes.double() * scale[:, None]).t()
    if bias is not None:
        exact += bias
    torch.testing.assert_close(product(x).double(), exact, rtol=1e-5, atol=1e-5)
    assert (product(x) - (x @ weight.t() + (0 if bias is None else bias))).abs().max() < 0.5  # near the float one


def test_int8_rows_do_not_depend_on_each_other():
    torch.manual_seed(2)
    product = _product(torch.randn(16, 12))
    x = torch.rand(9, 12) * 2 - 1
    together = product(x)
    assert all(torch.equal(together[k], product(x[k : k + 1])[0]) for k in range(9))


def test_no_int8_product_where_it_fails(monkeypatch):
    def refuse(self, x):
        raise RuntimeError("no int8 on this CPU")

    monkeypatch.setattr(Int8Product, "__call__", refuse)
    assert Int8Product.make(torch.randn(4, 4)) is None
