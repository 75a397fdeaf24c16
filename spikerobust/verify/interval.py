"""The :class:`Interval` type: element-wise lower and upper bounds on a tensor (docs/verification.md).

An interval ``[lower, upper]`` stands for every tensor ``x`` with ``lower <= x <= upper`` element
by element. Parameters under relative noise become ``[p - ε|p|, p + ε|p|]``
(:func:`relative_interval`; ``ε`` is ``epsilon``, the relative box size used across the library);
a plain tensor or number is the degenerate interval ``[x, x]``.

The constructor checks ``lower <= upper`` exactly, without tolerance: every propagation rule in
:mod:`spikerobust.verify.rules` produces ordered bounds by construction (``c - r <= c + r`` for
``r >= 0`` holds in floating point too, since rounding is monotone), so a violation always means a
bug or a bad input (NaN bounds fail the check as well).

Examples:
    >>> import torch
    >>> iv = Interval(torch.tensor([0.0, -1.0]), torch.tensor([2.0, 1.0]))
    >>> iv.centre, iv.radius
    (tensor([1., 0.]), tensor([1., 1.]))
    >>> lo, hi = iv  # unpacks like a pair
    >>> relative_interval(torch.tensor([2.0, -4.0]), 0.5)
    Interval(lower=tensor([ 1., -6.]), upper=tensor([ 3., -2.]))
"""

from __future__ import annotations

from typing import Iterator, Optional, Union

import warnings

import torch

__all__ = ["Interval", "IntervalLike", "as_interval", "relative_interval", "check_epsilon", "check_zeta",
           "resolve_epsilon"]


class Interval:
    """Element-wise bounds ``lower <= x <= upper`` on a tensor.

    Args:
        lower: lower bounds.
        upper: upper bounds, same shape, dtype and device as ``lower``.

    Raises:
        ValueError: if the shapes differ, or ``lower > upper`` anywhere (the message gives the
            number of offending elements and the largest violation ``max(lower - upper)``).

    Shape:
        ``lower`` and ``upper``: any shape, identical.

    Attributes:
        rel: when not ``None``, the interval was built as ``centre ± rel·|centre|``
            (:func:`relative_interval`); affine rules use it to save one matrix product.
            ``rel == 0`` marks a degenerate interval (:meth:`point`), which rules treat as a tensor.

    Examples:
        >>> import torch
        >>> Interval(torch.zeros(3), torch.ones(3)).shape
        torch.Size([3])
        >>> Interval(torch.ones(2), torch.zeros(2))
        Traceback (most recent call last):
        ...
        ValueError: Interval: lower > upper at 2 of 2 elements (max violation lower - upper = 1)
    """

    __slots__ = ("lower", "upper", "_centre", "_radius", "_abs_centre", "rel")

    def __init__(self, lower: torch.Tensor, upper: torch.Tensor) -> None:
        if not isinstance(lower, torch.Tensor) or not isinstance(upper, torch.Tensor):
            raise ValueError(
                f"Interval: lower and upper must be tensors, got {type(lower).__name__} and {type(upper).__name__}"
            )
        if lower.shape != upper.shape:
            raise ValueError(
                f"Interval: lower has shape {tuple(lower.shape)} but upper has shape {tuple(upper.shape)}; "
                f"they must be identical"
            )
        if lower.dtype != upper.dtype:
            raise ValueError(f"Interval: lower has dtype {lower.dtype} but upper has dtype {upper.dtype}")
        bad = ~(lower <= upper)
        n_bad = int(bad.sum())
        if n_bad:
            diff = (lower - upper)[bad]
            worst = "NaN" if bool(torch.isnan(diff).any()) else f"{float(diff.max()):.3g}"
            raise ValueError(
                f"Interval: lower > upper at {n_bad} of {lower.numel()} elements "
                f"(max violation lower - upper = {worst})"
            )
        self._set(lower, upper)

    def _set(self, lower, upper, centre=None, radius=None, rel=None) -> None:
        self.lower = lower
        self.upper = upper
        self._centre = centre
        self._radius = radius
        self._abs_centre = None
        self.rel = rel

    @classmethod
    def trusted(cls, lower: torch.Tensor, upper: torch.Tensor) -> "Interval":
        """Build without the ``lower <= upper`` check (for rules whose output is ordered by construction)."""
        out = cls.__new__(cls)
        out._set(lower, upper)
        return out

    @classmethod
    def from_centre_radius(
        cls, centre: torch.Tensor, radius: Union[torch.Tensor, float], *, rel: Optional[float] = None
    ) -> "Interval":
        """``[centre - radius, centre + radius]``; ``radius`` must be ``>= 0`` (broadcast to ``centre``).

        The exact ``centre`` and ``radius`` are kept, so centre/radius rules use them unrounded.

        Raises:
            ValueError: if ``radius`` is negative or NaN anywhere.
        """
        radius = torch.as_tensor(radius, dtype=centre.dtype, device=centre.device).expand_as(centre)
        if not bool((radius >= 0).all()):
            raise ValueError("Interval.from_centre_radius: radius must be >= 0 everywhere (and not NaN)")
        out = cls.__new__(cls)
        out._set(centre - radius, centre + radius, centre, radius, rel)
        return out

    @classmethod
    def point(cls, x: torch.Tensor) -> "Interval":
        """The degenerate interval ``[x, x]``."""
        out = cls.__new__(cls)
        out._set(x, x, x, torch.zeros_like(x), 0.0)
        return out

    @property
    def centre(self) -> torch.Tensor:
        """``(lower + upper) / 2``."""
        if self._centre is None:
            self._centre = (self.lower + self.upper) * 0.5
        return self._centre

    @property
    def radius(self) -> torch.Tensor:
        """``(upper - lower) / 2`` (non-negative)."""
        if self._radius is None:
            self._radius = (self.upper - self.lower) * 0.5
        return self._radius

    @property
    def abs_centre(self) -> torch.Tensor:
        """``|centre|``, computed once (a weight interval reused at every time step needs it each step)."""
        if self._abs_centre is None:
            self._abs_centre = self.centre.abs()
        return self._abs_centre

    @property
    def width(self) -> torch.Tensor:
        """``upper - lower``."""
        return self.upper - self.lower

    @property
    def shape(self) -> torch.Size:
        return self.lower.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.lower.dtype

    @property
    def device(self) -> torch.device:
        return self.lower.device

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter((self.lower, self.upper))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index) -> "Interval":
        """Index both bounds alike (``iv[0]``, ``iv[:, 3]``); a degenerate interval stays degenerate."""
        if self.rel == 0.0:
            return Interval.point(self.lower[index])
        return Interval.trusted(self.lower[index], self.upper[index])

    def contains(self, x: torch.Tensor, atol: float = 0.0) -> torch.Tensor:
        """Boolean tensor: ``lower - atol <= x <= upper + atol`` element-wise."""
        return (x >= self.lower - atol) & (x <= self.upper + atol)

    def is_subset_of(self, other: "Interval", atol: float = 0.0) -> bool:
        """Whether ``self ⊆ other`` everywhere (up to ``atol``)."""
        return bool(((self.lower >= other.lower - atol) & (self.upper <= other.upper + atol)).all())

    def to(self, *args, **kwargs) -> "Interval":
        """Convert both bounds (``dtype``/``device``) like :meth:`torch.Tensor.to`."""
        return Interval.trusted(self.lower.to(*args, **kwargs), self.upper.to(*args, **kwargs))

    def __repr__(self) -> str:
        return f"Interval(lower={self.lower!r}, upper={self.upper!r})"


#: A rule operand: an :class:`Interval` or a plain tensor (a degenerate interval).
IntervalLike = Union[Interval, torch.Tensor]


def as_interval(x: Union[IntervalLike, float]) -> Interval:
    """``x`` itself if it is an :class:`Interval`, else the degenerate interval ``[x, x]`` (a tensor or a number)."""
    if isinstance(x, Interval):
        return x
    if isinstance(x, torch.Tensor):
        return Interval.point(x)
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return Interval.point(torch.as_tensor(float(x)))
    raise ValueError(f"expected an Interval, a torch.Tensor or a number, got {type(x).__name__}")


def resolve_epsilon(epsilon: Optional[float], zeta: Optional[float], *, owner: str) -> float:
    """The relative box size from ``epsilon``, or from the former keyword ``zeta`` (deprecated).

    ``zeta=`` still works for one release, with a ``DeprecationWarning``.

    Raises:
        TypeError: if neither or both are given.
        ValueError: for a negative or non-finite value (:func:`check_epsilon`).
    """
    if zeta is not None:
        warnings.warn(f"{owner}: zeta= is deprecated, use epsilon= (the same relative box size)",
                      DeprecationWarning, stacklevel=3)
        if epsilon is not None:
            raise TypeError(f"{owner}: got both epsilon and its deprecated name zeta")
        epsilon = zeta
    if epsilon is None:
        raise TypeError(f"{owner}: missing the relative box size epsilon")
    return check_epsilon(epsilon)


def relative_interval(p: torch.Tensor, epsilon: Optional[float] = None, *, zeta: Optional[float] = None) -> Interval:
    """``[p - ε|p|, p + ε|p|]``: the box of docs/verification.md around a parameter tensor.

    Args:
        p: the nominal parameter.
        epsilon: relative half-width ``ε >= 0``.
        zeta: deprecated name of ``epsilon``.

    Raises:
        ValueError: if ``epsilon`` is negative or not finite.

    Examples:
        >>> import torch
        >>> iv = relative_interval(torch.tensor([1.0, 0.0]), 0.1)
        >>> iv.lower, iv.upper
        (tensor([0.9000, 0.0000]), tensor([1.1000, 0.0000]))
    """
    epsilon = resolve_epsilon(epsilon, zeta, owner="relative_interval")
    return Interval.from_centre_radius(p, epsilon * p.abs(), rel=epsilon)


def check_epsilon(epsilon: float) -> float:
    """Validate the relative half-width: a finite float ``>= 0``.

    Raises:
        ValueError: otherwise.
    """
    try:
        e = float(epsilon)
    except (TypeError, ValueError):
        raise ValueError(f"epsilon must be a non-negative float, got {epsilon!r}") from None
    if not (e >= 0.0) or e == float("inf"):
        raise ValueError(f"epsilon must be a finite float >= 0, got {epsilon!r}")
    return e


def check_zeta(zeta: float) -> float:
    """Deprecated name of :func:`check_epsilon` (``DeprecationWarning``)."""
    warnings.warn("check_zeta is deprecated, use check_epsilon", DeprecationWarning, stacklevel=2)
    return check_epsilon(zeta)
