"""Interval rules: hand-computed cases per rule, and a sampling soundness check of every registered rule."""

import pytest
import torch
import torch.nn.functional as F

from spikerobust.verify import Interval, get_rule, interval_propagate, list_rules, relative_interval

D = torch.float64


def iv(lo, hi):
    return Interval(torch.tensor(lo, dtype=D), torch.tensor(hi, dtype=D))


def assert_iv(out, lo, hi):
    assert torch.allclose(out.lower, torch.tensor(lo, dtype=D), atol=1e-12), out
    assert torch.allclose(out.upper, torch.tensor(hi, dtype=D), atol=1e-12), out


# --------------------------------------------------------------------------- by hand


def test_add_and_sub_by_hand():
    a, b = iv([1.0, -2.0], [2.0, 0.0]), iv([-1.0, 3.0], [4.0, 5.0])
    assert_iv(interval_propagate("add", a, b), [0.0, 1.0], [6.0, 5.0])
    assert_iv(interval_propagate("sub", a, b), [-3.0, -7.0], [3.0, -3.0])


def test_mul_endpoint_products_by_hand():
    # [-1, 2] * [-3, 1]: products 3, -1, -6, 2 -> [-6, 3];  [2, 3] * [4, 5] -> [8, 15]
    assert_iv(interval_propagate("mul", iv([-1.0, 2.0], [2.0, 3.0]), iv([-3.0, 4.0], [1.0, 5.0])), [-6.0, 8.0], [3.0, 15.0])
    # tensor factor with a negative entry swaps the bounds
    assert_iv(interval_propagate("mul", iv([1.0, 1.0], [2.0, 2.0]), torch.tensor([-1.0, 3.0], dtype=D)), [-2.0, 3.0], [-1.0, 6.0])


def test_div_by_positive_interval_by_hand():
    # [-2, 6] / [2, 4] = [-2/2, 6/2] = [-1, 3]
    assert_iv(interval_propagate("div", iv([-2.0], [6.0]), iv([2.0], [4.0])), [-1.0], [3.0])
    with pytest.raises(ValueError, match="strictly positive"):
        interval_propagate("div", iv([1.0], [2.0]), iv([0.0], [1.0]))


def test_matmul_centre_radius_by_hand():
    # x in [0, 2] x [1, 1]; W = [[1 ± 0.5], [-2 ± 1]] ->
    # x0*w0 in [0, 3], x1*w1 in [-3, -1]: exact range [-3, 2].
    # centre/radius: xc = (1, 1), xr = (1, 0); Wc = (1, -2), Wr = (0.5, 1):
    # centre = 1 - 2 = -1; radius = |xc|Wr + xr|Wc| + xr Wr = (0.5 + 1) + (1 + 0) + (0.5 + 0) = 3 -> [-4, 2]
    x = iv([[0.0, 1.0]], [[2.0, 1.0]])
    w = iv([[0.5], [-3.0]], [[1.5], [-1.0]])
    assert_iv(interval_propagate("matmul", x, w), [[-4.0]], [[2.0]])
    # relative weights take the two-product path: same numbers
    wrel = relative_interval(torch.tensor([[1.0], [-2.0]], dtype=D), 0.5)
    assert_iv(interval_propagate("matmul", x, wrel), [[-4.0]], [[2.0]])
    # exact weights, interval x: centre -1, radius xr|W| = 1 -> [-2, 0] (tight)
    assert_iv(interval_propagate("matmul", x, torch.tensor([[1.0], [-2.0]], dtype=D)), [[-2.0]], [[0.0]])


def test_linear_with_bias_by_hand():
    # F.linear(x, W, b) with x = 2 exact, W = 3 ± 0.3 (ζ = 0.1), b = -1 ± 0.1 -> 5 ± 0.7
    out = interval_propagate(
        "linear",
        torch.tensor([[2.0]], dtype=D),
        relative_interval(torch.tensor([[3.0]], dtype=D), 0.1),
        relative_interval(torch.tensor([-1.0], dtype=D), 0.1),
    )
    assert_iv(out, [[4.3]], [[5.7]])


def test_conv2d_by_hand():
    # 1x1 conv is a per-pixel scale: x in [1, 2] (one pixel), w = 2 ± 0.2, b = 1 ± 0.1.
    # centre 1.5 * 2 + 1 = 4; radius |1.5|*0.2 + 0.5*2 + 0.5*0.2 + 0.1 = 0.3 + 1 + 0.1 + 0.1 = 1.5
    x = iv([[[[1.0]]]], [[[[2.0]]]])
    w = relative_interval(torch.tensor([[[[2.0]]]], dtype=D), 0.1)
    b = relative_interval(torch.tensor([1.0], dtype=D), 0.1)
    assert_iv(interval_propagate("conv2d", x, w, b), [[[[2.5]]]], [[[[5.5]]]])


def test_heaviside_certain_impossible_uncertain_and_zero_is_no_spike():
    out = interval_propagate("heaviside", iv([0.5, -2.0, -1.0, -1.0, 0.0], [1.0, -1.0, 1.0, 0.0, 0.0]))
    assert_iv(out, [1.0, 0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0, 0.0])


def test_le_zero_clip_relu_by_hand():
    assert_iv(interval_propagate("le_zero", iv([0.0, 0.0, 1.0], [0.0, 1.0, 2.0])), [1.0, 0.0, 0.0], [1.0, 1.0, 0.0])
    assert_iv(interval_propagate("clip", iv([-1.0, 0.5], [0.5, 3.0]), 0.0, 2.0), [0.0, 0.5], [0.5, 2.0])
    assert_iv(interval_propagate("relu", iv([-1.0, -2.0], [0.5, -1.0])), [0.0, 0.0], [0.5, 0.0])


def test_max_pool_flatten_mean_decay_by_hand():
    x = iv([[[[0.0, 1.0], [-1.0, 0.5]]]], [[[[2.0, 1.5], [0.0, 3.0]]]])
    assert_iv(interval_propagate("max_pool2d", x, 2), [[[[1.0]]]], [[[[3.0]]]])
    assert_iv(interval_propagate("flatten", x), [[0.0, 1.0, -1.0, 0.5]], [[2.0, 1.5, 0.0, 3.0]])
    assert_iv(interval_propagate("mean", iv([[0.0], [1.0]], [[2.0], [3.0]]), 0), [0.5], [2.5])
    tau = iv([10.0], [20.0])
    out = interval_propagate("decay", tau, 1.0)
    assert_iv(out, [torch.exp(torch.tensor(-0.1)).item()], [torch.exp(torch.tensor(-0.05)).item()])
    with pytest.raises(ValueError, match="strictly positive"):
        interval_propagate("decay", iv([-1.0], [1.0]))


def test_unknown_rule_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown interval rule 'tanh'"):
        interval_propagate("tanh", iv([0.0], [1.0]))


def test_degenerate_operands_reproduce_the_plain_op_exactly():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 6, 6, generator=g)
    w, b = torch.randn(4, 2, 3, 3, generator=g), torch.randn(4, generator=g)
    out = interval_propagate("conv2d", x, relative_interval(w, 0.0), relative_interval(b, 0.0), 1, "same")
    ref = F.conv2d(x, w, b, 1, "same")
    assert torch.equal(out.lower, ref) and torch.equal(out.upper, ref)


# --------------------------------------------------------------------------- soundness by sampling, every rule


def _rand_iv(g, shape, positive=False):
    c = torch.randn(*shape, generator=g, dtype=D)
    if positive:
        c = c.abs() + 0.5
    r = torch.rand(*shape, generator=g, dtype=D) * 0.5
    return Interval.from_centre_radius(c, r)


def _sample(g, x):
    if isinstance(x, Interval):
        u = torch.rand(x.shape, generator=g, dtype=D)
        corner = torch.rand(x.shape, generator=g, dtype=D) < 0.3  # often at an endpoint
        u = torch.where(corner, torch.round(u), u)
        return x.lower + u * (x.upper - x.lower)
    return x


def _cases(g):
    """(args, kwargs, exact function) per rule name."""
    pos = lambda s: _rand_iv(g, s, positive=True)  # noqa: E731
    any_ = lambda s: _rand_iv(g, s)  # noqa: E731
    return {
        "add": ((any_((4, 5)), any_((4, 5))), {}, torch.add),
        "sub": ((any_((4, 5)), any_((4, 5))), {}, torch.sub),
        "mul": ((any_((4, 5)), any_((4, 5))), {}, torch.mul),
        "div": ((any_((4, 5)), pos((4, 5))), {}, torch.div),
        "matmul": ((any_((3, 5)), any_((5, 4))), {}, torch.matmul),
        "linear": ((any_((3, 5)), any_((4, 5)), any_((4,))), {}, F.linear),
        "conv2d": (
            (any_((2, 3, 6, 6)), any_((4, 3, 3, 3)), any_((4,))),
            {"padding": 1},
            lambda x, w, b, padding: F.conv2d(x, w, b, padding=padding),
        ),
        "heaviside": ((any_((50,)),), {}, lambda x: (x > 0).to(D)),
        "le_zero": ((any_((50,)),), {}, lambda x: (x <= 0).to(D)),
        "clip": ((any_((50,)), -0.5, 0.7), {}, lambda x, a, b: torch.clamp(x, a, b)),
        "relu": ((any_((50,)),), {}, F.relu),
        "max_pool2d": ((any_((2, 3, 6, 6)), 2), {}, F.max_pool2d),
        "flatten": ((any_((2, 3, 4)),), {}, lambda x: torch.flatten(x, 1)),
        "mean": ((any_((7, 3, 4)), 0), {}, lambda x, d: x.mean(dim=d)),
        "decay": ((pos((20,)), 1.0), {}, lambda t, dt: torch.exp(-dt / t)),
    }


def test_every_registered_rule_has_a_soundness_case():
    assert set(_cases(torch.Generator().manual_seed(0))) == set(list_rules())


@pytest.mark.parametrize("name", sorted(_cases(torch.Generator().manual_seed(0))))
def test_rule_is_sound_by_sampling(name):
    g = torch.Generator().manual_seed(1)
    args, kwargs, fn = _cases(g)[name]
    out = get_rule(name)(*args, **kwargs)
    for _ in range(200):
        y = fn(*[_sample(g, a) for a in args], **kwargs)
        assert bool(out.contains(y, atol=1e-12).all()), name
    assert bool((out.lower <= out.upper).all())
