"""Interval rules: hand-computed cases per rule, and a sampling soundness check of every rule (rules.RULES)."""

import pytest
import torch
import torch.nn.functional as F

from spikerobust.verify import Interval, get_rule, interval_propagate, list_rules, relative_interval, rules

D = torch.float64


def iv(lo, hi):
    return Interval(torch.tensor(lo, dtype=D), torch.tensor(hi, dtype=D))


def assert_iv(out, lo, hi):
    assert torch.allclose(out.lower, torch.tensor(lo, dtype=D), atol=1e-12), out
    assert torch.allclose(out.upper, torch.tensor(hi, dtype=D), atol=1e-12), out


# --------------------------------------------------------------------------- by hand


def test_add_and_sub_by_hand():
    a, b = iv([1.0, -2.0], [2.0, 0.0]), iv([-1.0, 3.0], [4.0, 5.0])
    assert_iv(rules.add(a, b), [0.0, 1.0], [6.0, 5.0])
    assert_iv(rules.sub(a, b), [-3.0, -7.0], [3.0, -3.0])


def test_mul_endpoint_products_by_hand():
    # [-1, 2] * [-3, 1]: products 3, -1, -6, 2 -> [-6, 3];  [2, 3] * [4, 5] -> [8, 15]
    assert_iv(rules.mul(iv([-1.0, 2.0], [2.0, 3.0]), iv([-3.0, 4.0], [1.0, 5.0])), [-6.0, 8.0], [3.0, 15.0])
    # tensor factor with a negative entry swaps the bounds
    assert_iv(rules.mul(iv([1.0, 1.0], [2.0, 2.0]), torch.tensor([-1.0, 3.0], dtype=D)), [-2.0, 3.0], [-1.0, 6.0])


def test_div_by_positive_interval_by_hand():
    # [-2, 6] / [2, 4] = [-2/2, 6/2] = [-1, 3]
    assert_iv(rules.div(iv([-2.0], [6.0]), iv([2.0], [4.0])), [-1.0], [3.0])
    with pytest.raises(ValueError, match="strictly positive"):
        rules.div(iv([1.0], [2.0]), iv([0.0], [1.0]))


def test_matmul_centre_radius_by_hand():
    # x in [0, 2] x [1, 1]; W = [[1 ± 0.5], [-2 ± 1]] ->
    # x0*w0 in [0, 3], x1*w1 in [-3, -1]: exact range [-3, 2].
    # centre/radius: xc = (1, 1), xr = (1, 0); Wc = (1, -2), Wr = (0.5, 1):
    # centre = 1 - 2 = -1; radius = |xc|Wr + xr|Wc| + xr Wr = (0.5 + 1) + (1 + 0) + (0.5 + 0) = 3 -> [-4, 2]
    x = iv([[0.0, 1.0]], [[2.0, 1.0]])
    w = iv([[0.5], [-3.0]], [[1.5], [-1.0]])
    assert_iv(rules.matmul(x, w), [[-4.0]], [[2.0]])
    # relative weights take the two-product path: same numbers
    wrel = relative_interval(torch.tensor([[1.0], [-2.0]], dtype=D), 0.5)
    assert_iv(rules.matmul(x, wrel), [[-4.0]], [[2.0]])
    # exact weights, interval x: centre -1, radius xr|W| = 1 -> [-2, 0] (tight)
    assert_iv(rules.matmul(x, torch.tensor([[1.0], [-2.0]], dtype=D)), [[-2.0]], [[0.0]])


def test_linear_with_bias_by_hand():
    # F.linear(x, W, b) with x = 2 exact, W = 3 ± 0.3 (ζ = 0.1), b = -1 ± 0.1 -> 5 ± 0.7
    out = rules.linear(
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
    assert_iv(rules.conv2d(x, w, b), [[[[2.5]]]], [[[[5.5]]]])


def test_heaviside_certain_impossible_uncertain_and_zero_is_no_spike():
    out = rules.heaviside(iv([0.5, -2.0, -1.0, -1.0, 0.0], [1.0, -1.0, 1.0, 0.0, 0.0]))
    assert_iv(out, [1.0, 0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 1.0, 0.0, 0.0])


def test_le_zero_clip_relu_by_hand():
    assert_iv(rules.le_zero(iv([0.0, 0.0, 1.0], [0.0, 1.0, 2.0])), [1.0, 0.0, 0.0], [1.0, 1.0, 0.0])
    assert_iv(rules.clip(iv([-1.0, 0.5], [0.5, 3.0]), 0.0, 2.0), [0.0, 0.5], [0.5, 2.0])
    assert_iv(rules.relu(iv([-1.0, -2.0], [0.5, -1.0])), [0.0, 0.0], [0.5, 0.0])


def test_max_pool_flatten_mean_decay_by_hand():
    x = iv([[[[0.0, 1.0], [-1.0, 0.5]]]], [[[[2.0, 1.5], [0.0, 3.0]]]])
    assert_iv(rules.max_pool2d(x, 2), [[[[1.0]]]], [[[[3.0]]]])
    assert_iv(rules.flatten(x), [[0.0, 1.0, -1.0, 0.5]], [[2.0, 1.5, 0.0, 3.0]])
    assert_iv(rules.mean(iv([[0.0], [1.0]], [[2.0], [3.0]]), 0), [0.5], [2.5])
    tau = iv([10.0], [20.0])
    out = rules.decay(tau, 1.0)
    assert_iv(out, [torch.exp(torch.tensor(-0.1)).item()], [torch.exp(torch.tensor(-0.05)).item()])
    with pytest.raises(ValueError, match="strictly positive"):
        rules.decay(iv([-1.0], [1.0]))


def test_deprecated_lookup_by_name_warns_and_calls_the_same_function():
    a = iv([0.0], [1.0])
    with pytest.warns(DeprecationWarning, match="rules.add"):
        out = interval_propagate("add", a, a)
    assert_iv(out, [0.0], [2.0])
    with pytest.warns(DeprecationWarning):
        assert get_rule("matmul") is rules.matmul
    with pytest.warns(DeprecationWarning):
        assert list_rules() == sorted(rules.RULES)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="unknown interval rule 'tanh'"):
        interval_propagate("tanh", a)


def test_degenerate_operands_reproduce_the_plain_op_exactly():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 6, 6, generator=g)
    w, b = torch.randn(4, 2, 3, 3, generator=g), torch.randn(4, generator=g)
    out = rules.conv2d(x, relative_interval(w, 0.0), relative_interval(b, 0.0), 1, "same")
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
        "batch_norm": (
            (any_((3, 4, 5, 5)), torch.randn(4, generator=g, dtype=D), torch.rand(4, generator=g, dtype=D) + 0.1,
             any_((4,)), any_((4,))),
            {},
            lambda x, m, v, w, b: F.batch_norm(x, m, v, w, b, False, 0.0, 1e-5),
        ),
        "monotone": (
            (any_((2, 4, 6, 6)), lambda t: F.pad(t[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))),
            {},
            lambda x, fn: fn(x),
        ),
        "stack": (([any_((3, 2)), any_((3, 2))],), {}, lambda xs: torch.stack(xs)),
    }


def _sample_arg(g, a):
    return [_sample(g, x) for x in a] if isinstance(a, list) else _sample(g, a)


def test_every_rule_has_a_soundness_case():
    assert set(_cases(torch.Generator().manual_seed(0))) == set(rules.RULES)


@pytest.mark.parametrize("name", sorted(_cases(torch.Generator().manual_seed(0))))
def test_rule_is_sound_by_sampling(name):
    g = torch.Generator().manual_seed(1)
    args, kwargs, fn = _cases(g)[name]
    out = rules.RULES[name](*args, **kwargs)
    for _ in range(200):
        y = fn(*[_sample_arg(g, a) for a in args], **kwargs)
        assert bool(out.contains(y, atol=1e-12).all()), name
    assert bool((out.lower <= out.upper).all())


def test_batch_norm_by_hand_and_exact_operands_give_the_layer():
    # x in [1, 3], mean 1, var 3 (eps 1): scale 1/2 -> x_hat in [0, 1]; γ in [-1, 2] -> [-1, 2]; β in [0.5, 1] -> [-0.5, 3]
    x = iv([[1.0]], [[3.0]])
    out = rules.batch_norm(x, torch.tensor([1.0], dtype=D), torch.tensor([3.0], dtype=D), iv([-1.0], [2.0]),
                           iv([0.5], [1.0]), eps=1.0)
    assert_iv(out, [[-0.5]], [[3.0]])
    bn = torch.nn.BatchNorm2d(3).double().eval()
    with torch.no_grad():
        bn.running_mean.normal_(), bn.running_var.uniform_(0.5, 2.0), bn.weight.normal_(), bn.bias.normal_()
    xs = torch.randn(2, 3, 4, 4, dtype=D)
    out = rules.batch_norm(xs, bn.running_mean, bn.running_var, relative_interval(bn.weight.detach(), 0.0),
                           bn.bias.detach(), bn.eps)
    assert torch.equal(out.lower, bn(xs).detach()) and torch.equal(out.upper, out.lower)


def test_degenerate_intervals_stay_degenerate_through_the_lsnn_rules():
    # the LSNN simulation at epsilon = 0 runs the plain operations: no rule widens a point
    p = Interval.point(torch.tensor([0.3, -0.2], dtype=D))
    for out in (rules.add(p, p), rules.sub(1.0, p), rules.mul(p, p), rules.heaviside(p), rules.le_zero(p),
                rules.clip(p, 0.0, 1.0), rules.stack([p, p]), rules.matmul(p, torch.eye(2, dtype=D)), p[0]):
        assert out.rel == 0.0 and torch.equal(out.lower, out.upper)


@pytest.mark.parametrize("case", ["both_nonneg", "exact_nonneg_factor", "exact_mixed_factor", "number"])
def test_mul_shortcuts_are_sound_by_sampling(case):
    # mul takes two products instead of four for non-negative operands; each path against samples
    g = torch.Generator().manual_seed(2)
    a = _rand_iv(g, (6, 7), positive=True)
    if case == "both_nonneg":
        b = _rand_iv(g, (6, 7), positive=True)
    elif case == "exact_nonneg_factor":
        b = torch.rand(7, generator=g, dtype=D)
    elif case == "exact_mixed_factor":
        b = torch.randn(7, generator=g, dtype=D)
        a = _rand_iv(g, (6, 7))
    else:
        b = -0.5
    out = rules.mul(a, b)
    for _ in range(300):
        y = _sample(g, a) * _sample(g, b)
        assert bool(out.contains(y, atol=1e-12).all())
    # tight: the bounds are attained at the corners (products of endpoints)
    corners = [lo * hi for lo in (a.lower, a.upper) for hi in ((b.lower, b.upper) if isinstance(b, Interval) else (b,))]
    assert torch.allclose(out.lower, torch.stack(torch.broadcast_tensors(*corners)).amin(0))
    assert torch.allclose(out.upper, torch.stack(torch.broadcast_tensors(*corners)).amax(0))
