"""Surrogate gradients: forward is the exact step, backward the closed form."""

import math

import pytest
import torch

from spikerobust.functional import ATan, FastSigmoid, Triangle, get_surrogate


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_triangle_derivative_closed_form(dtype):
    x = torch.linspace(-2, 2, 41, dtype=dtype, requires_grad=True)
    z = Triangle(0.3)(x)
    assert z.dtype == dtype
    assert torch.equal(z.detach(), (x > 0).to(dtype))
    z.sum().backward()
    expected = [0.3 * max(0.0, 1 - abs(v)) for v in x.detach().tolist()]
    assert x.grad.tolist() == pytest.approx(expected, abs=1e-7)


def test_other_surrogates_closed_forms():
    x = torch.tensor([-1.0, -0.1, 0.0, 0.3, 2.0], dtype=torch.float64, requires_grad=True)
    FastSigmoid(10.0)(x).sum().backward()
    assert x.grad.tolist() == pytest.approx([1 / (1 + 10 * abs(v)) ** 2 for v in x.tolist()])
    x.grad = None
    ATan(2.0)(x).sum().backward()
    assert x.grad.tolist() == pytest.approx([1 / (1 + (math.pi * v) ** 2) for v in x.tolist()])


def test_snntorch_surrogate_wrapped():
    import snntorch.surrogate as ss

    sg = get_surrogate(ss.fast_sigmoid(slope=25))
    x = torch.tensor([-0.2, 0.2], requires_grad=True)
    z = sg(x)
    assert z.tolist() == [0.0, 1.0]
    z.sum().backward()
    assert x.grad.tolist() == pytest.approx([1 / (1 + 25 * 0.2) ** 2] * 2)


def test_bad_surrogate_names():
    with pytest.raises(ValueError, match="unknown surrogate"):
        get_surrogate("nope")
    with pytest.raises(ValueError, match="gamma"):
        Triangle(0.0)
