"""Surrogate gradients for the Heaviside spike non-linearity.

The forward pass of every surrogate is the exact Heaviside step ``H(x) = 1[x > 0]``; only the
backward pass is replaced. The paper's default (docs/lsnn.md) is the triangular surrogate

.. math::  \\frac{dz}{dx} = \\gamma \\max(0, 1 - |x|), \\qquad \\gamma = 0.3,

applied to the *scaled* voltage ``x = (v - A) / A``.

Surrogates are small objects passed by value (no global registry of instances); any callable
``x -> spikes`` works, including snnTorch's ``snntorch.surrogate`` functions, which can be wrapped
with :func:`from_snntorch`.

Examples:
    >>> import torch
    >>> sg = Triangle(gamma=0.3)
    >>> x = torch.tensor([-0.5, 0.5], requires_grad=True)
    >>> sg(x).sum().backward()
    >>> x.grad
    tensor([0.1500, 0.1500])
"""

from __future__ import annotations

import math
from typing import Callable

import torch

__all__ = [
    "Surrogate",
    "Triangle",
    "FastSigmoid",
    "ATan",
    "from_snntorch",
    "get_surrogate",
    "has_closed_form_derivative",
    "heaviside",
]


def heaviside(x: torch.Tensor) -> torch.Tensor:
    """Exact step ``1[x > 0]`` in the dtype of ``x`` (no gradient)."""
    return (x > 0).to(x.dtype)


class _SurrogateSpike(torch.autograd.Function):
    """Heaviside forward, ``derivative(x)`` backward. The derivative is a plain callable."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, derivative: Callable[[torch.Tensor], torch.Tensor]):
        ctx.save_for_backward(x)
        ctx.derivative = derivative
        return heaviside(x)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_out * ctx.derivative(x), None


class Surrogate:
    """Base class: subclasses define :meth:`derivative`; calling the object spikes.

    Keeps the input dtype; works for float32 and float64.
    """

    name = "surrogate"

    def derivative(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define derivative(x)")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return _SurrogateSpike.apply(x, self.derivative)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(vars(self).items()))))


def _positive(surrogate: Surrogate, name: str, value: float) -> float:
    """``float(value)``, or a ``ValueError`` naming the surrogate class and parameter if it is not > 0."""
    if not value > 0:
        raise ValueError(f"{type(surrogate).__name__}: {name} must be > 0, got {value}")
    return float(value)


class Triangle(Surrogate):
    """Triangular surrogate ``gamma * max(0, 1 - |x|)`` (the paper's default, gamma = 0.3)."""

    name = "triangle"

    def __init__(self, gamma: float = 0.3) -> None:
        self.gamma = _positive(self, "gamma", gamma)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return self.gamma * torch.clamp(1.0 - x.abs(), min=0.0)


class FastSigmoid(Surrogate):
    """SuperSpike / fast-sigmoid surrogate ``1 / (1 + slope |x|)^2`` (Zenke & Ganguli 2018)."""

    name = "fast_sigmoid"

    def __init__(self, slope: float = 25.0) -> None:
        self.slope = _positive(self, "slope", slope)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return 1.0 / (1.0 + self.slope * x.abs()) ** 2


class ATan(Surrogate):
    """Arc-tangent surrogate ``(alpha/2) / (1 + (pi/2 alpha x)^2)`` (snnTorch's default shape)."""

    name = "atan"

    def __init__(self, alpha: float = 2.0) -> None:
        self.alpha = _positive(self, "alpha", alpha)

    def derivative(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * self.alpha / (1.0 + (0.5 * math.pi * self.alpha * x) ** 2)


def has_closed_form_derivative(surrogate: object) -> bool:
    """Whether ``surrogate`` spikes through :meth:`Surrogate.derivative`, a closed form.

    The hand-written backends (:mod:`~spikerobust.functional.lsnn_fused`,
    :mod:`~spikerobust.functional.lsnn_event`) evaluate the derivative themselves, so they need a
    :class:`Surrogate` that defines ``derivative(x)`` and does not override ``__call__``; a wrapped
    snnTorch function (:func:`from_snntorch`) or any other callable has none.

    Examples:
        >>> has_closed_form_derivative(Triangle()), has_closed_form_derivative(from_snntorch(torch.sigmoid))
        (True, False)
    """
    if not isinstance(surrogate, Surrogate):
        return False
    cls = type(surrogate)
    return cls.derivative is not Surrogate.derivative and cls.__call__ is Surrogate.__call__


class _Wrapped(Surrogate):
    """Any callable ``x -> spikes`` (e.g. ``snntorch.surrogate.fast_sigmoid()``)."""

    name = "wrapped"

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.fn = fn

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def from_snntorch(fn: Callable[[torch.Tensor], torch.Tensor]) -> Surrogate:
    """Wrap one of snnTorch's surrogate functions, e.g. ``snntorch.surrogate.atan()``.

    snnTorch's surrogates spike on ``x > 0`` too, so the forward pass is unchanged.

    Examples:
        >>> import snntorch.surrogate as ss
        >>> sg = from_snntorch(ss.fast_sigmoid(slope=25))
    """
    if not callable(fn):
        raise ValueError(f"from_snntorch: expected a callable surrogate, got {type(fn).__name__}")
    return _Wrapped(fn)


_BY_NAME = {cls.name: cls for cls in (Triangle, FastSigmoid, ATan)}


def get_surrogate(spec: str | Surrogate | Callable | None) -> Surrogate:
    """Resolve ``None`` (triangle, gamma 0.3), a name, a :class:`Surrogate` or a callable.

    Examples:
        >>> get_surrogate(None), get_surrogate("fast_sigmoid"), get_surrogate("atan")
        (Triangle(gamma=0.3), FastSigmoid(slope=25.0), ATan(alpha=2.0))
        >>> FastSigmoid(slope=0)
        Traceback (most recent call last):
        ...
        ValueError: FastSigmoid: slope must be > 0, got 0
    """
    if spec is None:
        return Triangle()
    if isinstance(spec, Surrogate):
        return spec
    if isinstance(spec, str):
        try:
            return _BY_NAME[spec]()
        except KeyError:
            raise ValueError(
                f"unknown surrogate {spec!r}; expected one of {sorted(_BY_NAME)}"
            ) from None
    if callable(spec):
        return from_snntorch(spec)
    raise ValueError(f"surrogate must be a name, a Surrogate or a callable, got {type(spec).__name__}")
