r"""Interval propagation rules, one plain function per operation (docs/verification.md), all vectorised tensor code.

Every rule accepts :class:`Interval` operands or plain tensors (degenerate intervals) and returns
an :class:`Interval` containing the exact result for every choice of operands in their intervals.
There is one way to propagate an operation: call its function. The feed-forward verifier
(:mod:`~spikerobust.verify.feedforward`) and the LSNN simulation (:mod:`~spikerobust.verify.lsnn`)
both build on these functions, so they share the same interval products. :data:`RULES` lists them
by name (the soundness tests iterate over it).

Bilinear maps (``matmul``, ``linear``, ``conv2d``) use the centre/radius form. For
:math:`x \in [x_c \pm x_r]` and :math:`W \in [W_c \pm W_r]`,

.. math::
    xW - x_c W_c = x_c (W - W_c) + (x - x_c) W_c + (x - x_c)(W - W_c),

so :math:`xW \in [x_c W_c \pm (|x_c| W_r + x_r |W_c| + x_r W_r)]` — two or three products of the
same kind as the original (two when ``W`` is relative, ``W_r = ε|W_c|``:
``radius = (ε|x_c| + (1 + ε) x_r) |W_c|``). This form is inclusion-monotone: a smaller input
or weight interval gives a nested output interval.

Monotone maps (ReLU, clip, max-pool, flatten, mean, Heaviside, any :func:`monotone` map such as
a ResNet's subsample-and-pad shortcut) act on each bound separately; element-wise products take
the min/max of the four endpoint products; division by a positive interval multiplies by
``[1/upper, 1/lower]``; batch normalisation (evaluation mode) is an exact positive scaling of
``x - mean`` followed by an element-wise product with ``γ`` and a sum with ``β``.

Examples:
    >>> import torch
    >>> from spikerobust.verify.rules import matmul, mul
    >>> x = Interval(torch.tensor([[-1.0, 2.0]]), torch.tensor([[1.0, 2.0]]))
    >>> w = torch.tensor([[1.0], [1.0]])
    >>> matmul(x, w)
    Interval(lower=tensor([[1.]]), upper=tensor([[3.]]))
    >>> mul(x, Interval(torch.tensor([[-2.0, 1.0]]), torch.tensor([[3.0, 2.0]])))
    Interval(lower=tensor([[-3.,  2.]]), upper=tensor([[3., 4.]]))
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from .interval import Interval, IntervalLike, as_interval

__all__ = [
    "RULES",
    "add",
    "sub",
    "mul",
    "div",
    "matmul",
    "linear",
    "conv2d",
    "heaviside",
    "le_zero",
    "clip",
    "relu",
    "max_pool2d",
    "flatten",
    "mean",
    "decay",
    "batch_norm",
    "monotone",
    "stack",
    "bilinear",
]


def _is_iv(x) -> bool:
    return isinstance(x, Interval)


def _each(x: IntervalLike, fn: Callable[[torch.Tensor], torch.Tensor]) -> Interval:
    """``[fn(lower), fn(upper)]`` for a non-decreasing ``fn``; a degenerate interval stays degenerate."""
    x = as_interval(x)
    if x.rel == 0.0:
        return Interval.point(fn(x.centre))
    return Interval.trusted(fn(x.lower), fn(x.upper))


def _exact(x):
    """A degenerate interval (built as a point, radius exactly zero) as its tensor; anything else unchanged."""
    return x.centre if _is_iv(x) and x.rel == 0.0 else x


# --------------------------------------------------------------------------- sums


def add(a: IntervalLike, b: IntervalLike) -> Interval:
    """``a + b``: lower bounds add, upper bounds add."""
    a, b = _exact(a), _exact(b)
    if not _is_iv(a) and not _is_iv(b):
        return Interval.point(a + b)
    a, b = as_interval(a), as_interval(b)
    return Interval.trusted(a.lower + b.lower, a.upper + b.upper)


def sub(a: IntervalLike, b: IntervalLike) -> Interval:
    """``a - b = [a.lower - b.upper, a.upper - b.lower]``."""
    a, b = _exact(a), _exact(b)
    if not _is_iv(a) and not _is_iv(b):
        return Interval.point(a - b)
    a, b = as_interval(a), as_interval(b)
    return Interval.trusted(a.lower - b.upper, a.upper - b.lower)


# --------------------------------------------------------------------------- products


def _nonneg(t) -> bool:
    """Whether every element is ``>= 0`` (False for NaN)."""
    if isinstance(t, (int, float)):
        return bool(t >= 0)
    return t.numel() == 0 or bool(t.min() >= 0)


def mul(a: IntervalLike, b: IntervalLike) -> Interval:
    """Element-wise ``a * b`` (broadcasting): min and max of the four endpoint products.

    A plain-tensor (or number, or degenerate-interval) factor ``c`` needs only two products:
    ``[c·lo, c·hi]`` swapped where ``c < 0``. Two non-negative intervals (spikes, thresholds,
    indicators) need two as well: ``[a_lo·b_lo, a_hi·b_hi]``.
    """
    a, b = _exact(a), _exact(b)
    if not _is_iv(a) and not _is_iv(b):
        return Interval.point(a * b)
    if not _is_iv(a):
        a, b = b, a
    if not _is_iv(b):
        p, q = a.lower * b, a.upper * b
        if _nonneg(b):
            return Interval.trusted(p, q)
        return Interval.trusted(torch.minimum(p, q), torch.maximum(p, q))
    if _nonneg(a.lower) and _nonneg(b.lower):
        return Interval.trusted(a.lower * b.lower, a.upper * b.upper)
    p, q = a.lower * b.lower, a.lower * b.upper
    u, w = a.upper * b.lower, a.upper * b.upper
    return Interval.trusted(torch.minimum(torch.minimum(p, q), torch.minimum(u, w)),
                            torch.maximum(torch.maximum(p, q), torch.maximum(u, w)))


def div(a: IntervalLike, b: IntervalLike) -> Interval:
    """``a / b`` for a strictly positive divisor ``b``: ``a · [1/b.upper, 1/b.lower]``.

    Raises:
        ValueError: if ``b`` is not strictly positive everywhere.
    """
    b = as_interval(b)
    if not bool((b.lower > 0).all()):
        raise ValueError(
            f"div: the divisor interval must be strictly positive, but its lower bound is "
            f"{float(b.lower.min()):.3g} somewhere"
        )
    a = as_interval(a)
    # a / b is monotone in a (b > 0) and in b for fixed sign of a: the extremes are at endpoints.
    quotients = torch.stack(
        torch.broadcast_tensors(a.lower / b.lower, a.lower / b.upper, a.upper / b.lower, a.upper / b.upper)
    )
    return Interval.trusted(quotients.amin(dim=0), quotients.amax(dim=0))


def bilinear(
    op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: IntervalLike,
    w: IntervalLike,
    bias: Optional[IntervalLike] = None,
    op_bias: Optional[Callable[..., torch.Tensor]] = None,
    bias_view: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
) -> Interval:
    """Centre/radius bound of a bilinear ``op(x, w)`` (+ ``bias``); see the module docstring.

    Args:
        op: a map linear in each argument, e.g. ``torch.matmul`` or ``F.conv2d`` with fixed
            hyper-parameters.
        x, w: operands (intervals or tensors).
        bias: optional interval or tensor added to the output.
        op_bias: ``op_bias(x, w, b)`` computing ``op(x, w) + b`` in one call (used for the
            centre so that a degenerate interval reproduces the plain layer bit for bit).
        bias_view: reshapes a bias tensor to broadcast against the output (conv: ``[C, 1, 1]``).
    """
    if _is_iv(x) and x.rel == 0.0:  # a degenerate interval: its radius is zero
        x = x.centre
    if _is_iv(w) and w.rel == 0.0:
        w = w.centre
    x_iv, w_iv = _is_iv(x), _is_iv(w)
    xc = x.centre if x_iv else x
    wc = w.centre if w_iv else w
    wc_abs = w.abs_centre if w_iv else (wc.abs() if x_iv else None)
    bc = None if bias is None else (bias.centre if _is_iv(bias) else bias)
    if op_bias is not None and bc is not None:
        centre = op_bias(xc, wc, bc)
    else:
        centre = op(xc, wc)
        if bc is not None:
            centre = centre + (bc if bias_view is None else bias_view(bc))
    radius = None
    if w_iv:
        wr = w.radius
        if x_iv:
            xr = x.radius
            if w.rel is not None:
                radius = op(w.rel * xc.abs() + (1.0 + w.rel) * xr, wc_abs)
            else:
                radius = op(xc.abs(), wr) + op(xr, wc_abs + wr)
        else:
            radius = w.rel * op(xc.abs(), wc_abs) if w.rel is not None else op(xc.abs(), wr)
    elif x_iv:
        radius = op(x.radius, wc_abs)
    if bias is not None and _is_iv(bias):
        br = bias.radius if bias_view is None else bias_view(bias.radius)
        radius = br.expand_as(centre) if radius is None else radius + br
    if radius is None:
        return Interval.point(centre)
    return Interval.trusted(centre - radius, centre + radius)


def matmul(x: IntervalLike, w: IntervalLike) -> Interval:
    """``x @ w`` with interval input and/or interval weights (centre/radius form).

    Shape:
        ``x`` ``[..., n]``, ``w`` ``[n, m]`` → ``[..., m]``.
    """
    return bilinear(torch.matmul, x, w)


def linear(x: IntervalLike, weight: IntervalLike, bias: Optional[IntervalLike] = None) -> Interval:
    """``F.linear(x, weight, bias) = x @ weight.T + bias`` (``nn.Linear`` layout), centre/radius form.

    Shape:
        ``x`` ``[..., in]``, ``weight`` ``[out, in]``, ``bias`` ``[out]`` → ``[..., out]``.
    """
    return bilinear(F.linear, x, weight, bias, op_bias=F.linear)


def conv2d(
    x: IntervalLike,
    weight: IntervalLike,
    bias: Optional[IntervalLike] = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
) -> Interval:
    """``F.conv2d`` with interval input and interval weights/bias (centre/radius form).

    ``padding`` may be an int, a pair or ``"same"``/``"valid"`` as in :func:`torch.nn.functional.conv2d`
    (zero padding: padded zeros are exact).

    Shape:
        ``x`` ``[B, C_in, H, W]``, ``weight`` ``[C_out, C_in/groups, kH, kW]`` → ``[B, C_out, H', W']``.
    """

    def op(a, w):
        return F.conv2d(a, w, None, stride, padding, dilation, groups)

    def op_bias(a, w, b):
        return F.conv2d(a, w, b, stride, padding, dilation, groups)

    return bilinear(op, x, weight, bias, op_bias=op_bias, bias_view=lambda b: b.reshape(-1, 1, 1))


# --------------------------------------------------------------------------- monotone maps


def heaviside(x: IntervalLike) -> Interval:
    """Spike ``H(x) = 1[x > 0]`` (``H(0) = 0``, as the LSNN's forward pass): ``[H(lower), H(upper)]``.

    The result is ``[1, 1]`` (certain spike), ``[0, 0]`` (impossible) or ``[0, 1]`` (uncertain).
    """
    return _each(x, lambda t: (t > 0).to(t.dtype))


def le_zero(x: IntervalLike) -> Interval:
    """Indicator ``1[x <= 0]`` (the LSNN's "not refractory"): decreasing, so ``[1[upper <= 0], 1[lower <= 0]]``."""
    x = as_interval(x)
    if x.rel == 0.0:
        return Interval.point((x.centre <= 0).to(x.dtype))
    return Interval.trusted((x.upper <= 0).to(x.dtype), (x.lower <= 0).to(x.dtype))


def clip(x: IntervalLike, min: Optional[float] = None, max: Optional[float] = None) -> Interval:
    """``clamp(x, min, max)``, monotone: applied to each bound."""
    return _each(x, lambda t: torch.clamp(t, min, max))


def relu(x: IntervalLike) -> Interval:
    """``max(x, 0)``, monotone: applied to each bound."""
    return _each(x, F.relu)


def max_pool2d(x: IntervalLike, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False) -> Interval:
    """``F.max_pool2d``: a maximum is monotone in every input, so pool each bound.

    Shape:
        ``[B, C, H, W]`` → ``[B, C, H', W']``.
    """
    kw = dict(kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    return _each(x, lambda t: F.max_pool2d(t, **kw))


def flatten(x: IntervalLike, start_dim: int = 1, end_dim: int = -1) -> Interval:
    """``torch.flatten`` of both bounds."""
    return _each(x, lambda t: torch.flatten(t, start_dim, end_dim))


def mean(x: IntervalLike, dim: Union[int, tuple] = 0) -> Interval:
    """Mean over ``dim`` (e.g. over time, ``dim=0`` for ``[T, B, N]``): a positive linear map."""
    return _each(x, lambda t: t.mean(dim=dim))


def decay(tau: IntervalLike, dt: float = 1.0) -> Interval:
    """``exp(-dt / τ)`` for ``τ > 0``, increasing in ``τ``: ``[exp(-dt/τ_lo), exp(-dt/τ_hi)]``.

    Raises:
        ValueError: if ``τ`` is not strictly positive everywhere or ``dt <= 0``.
    """
    tau = as_interval(tau)
    if not dt > 0:
        raise ValueError(f"decay: dt must be > 0, got {dt}")
    if not bool((tau.lower > 0).all()):
        raise ValueError(
            f"decay: the time constant interval must be strictly positive, lower bound reaches "
            f"{float(tau.lower.min()):.3g} (use a smaller epsilon)"
        )
    if tau.rel == 0.0:
        return Interval.point(torch.exp(-dt / tau.centre))
    return Interval.trusted(torch.exp(-dt / tau.lower), torch.exp(-dt / tau.upper))


def monotone(x: IntervalLike, fn: Callable[[torch.Tensor], torch.Tensor]) -> Interval:
    """``fn`` applied to each bound, for a map ``fn`` non-decreasing in every input element.

    E.g. slicing, reshaping, zero padding, pooling by maximum: the option-A shortcut of
    :class:`~spikerobust.models.resnet.ShortcutA` (subsample, then pad channels with zeros).
    Soundness rests on the caller: ``fn`` must be monotone.
    """
    return _each(x, fn)


def stack(xs: Sequence[IntervalLike], dim: int = 0) -> Interval:
    """``torch.stack`` of intervals (e.g. the steps of a time loop): lower bounds and upper bounds stacked."""
    xs = [as_interval(x) for x in xs]
    if all(x.rel == 0.0 for x in xs):
        return Interval.point(torch.stack([x.centre for x in xs], dim))
    return Interval.trusted(torch.stack([x.lower for x in xs], dim), torch.stack([x.upper for x in xs], dim))


def batch_norm(
    x: IntervalLike,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    weight: Optional[IntervalLike] = None,
    bias: Optional[IntervalLike] = None,
    eps: float = 1e-5,
) -> Interval:
    """Batch normalisation in evaluation mode, ``γ (x - μ) / sqrt(σ² + eps) + β``, over channel dim 1.

    The running statistics ``μ``, ``σ²`` are exact (buffers, not weights); ``γ`` (``weight``) and
    ``β`` (``bias``) may be intervals. ``(x - μ) / sqrt(σ² + eps)`` is an increasing affine map of
    ``x`` (exact on each bound), the product with ``γ`` takes the four endpoint products
    (:func:`mul`), then ``β`` is added (:func:`add`). With every operand exact the result is
    ``F.batch_norm`` itself.

    Shape:
        ``x`` ``[B, C, ...]``; ``running_mean``, ``running_var``, ``weight``, ``bias`` ``[C]``.
    """
    x, weight, bias = _exact(x), _exact(weight), _exact(bias)
    if not any(_is_iv(t) for t in (x, weight, bias)):
        return Interval.point(F.batch_norm(x, running_mean, running_var, weight, bias, False, 0.0, eps))
    x = as_interval(x)
    view = (1, -1) + (1,) * (x.lower.dim() - 2)
    mu = running_mean.reshape(view)
    scale = torch.rsqrt(running_var.reshape(view) + eps)
    out = Interval.trusted((x.lower - mu) * scale, (x.upper - mu) * scale)
    if weight is not None:
        out = mul(out, _each(weight, lambda t: t.reshape(view)))
    if bias is not None:
        out = add(out, _each(bias, lambda t: t.reshape(view)))
    return out


#: Every rule by name, for the soundness tests and for looking a rule up by a string.
RULES = {
    fn.__name__: fn
    for fn in (add, sub, mul, div, matmul, linear, conv2d, heaviside, le_zero, clip, relu, max_pool2d, flatten,
               mean, decay, batch_norm, monotone, stack)
}
