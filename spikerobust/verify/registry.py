"""Registry of interval propagation rules: one rule per operation, looked up by name.

A rule takes :class:`~spikerobust.verify.interval.Interval` operands (or plain tensors, which are
degenerate intervals) and returns an :class:`Interval` that contains the operation's output for
every choice of operands inside their intervals (soundness). The rules live in
:mod:`spikerobust.verify.rules`, which registers them when imported; the package
(``spikerobust/verify/__init__.py``) imports it, and Python runs the package before any of its
modules, so the registry is full whichever module a caller imports. This module imports no
rules itself (the rules import it). The tests iterate over :func:`list_rules` and check each
one by sampling.

Examples:
    >>> import torch
    >>> from spikerobust.verify import Interval, interval_propagate
    >>> a = Interval(torch.tensor([0.0]), torch.tensor([1.0]))
    >>> interval_propagate("add", a, a)
    Interval(lower=tensor([0.]), upper=tensor([2.]))
    >>> "conv2d" in list_rules()
    True
"""

from __future__ import annotations

from typing import Callable, Dict

from .interval import Interval

__all__ = ["register_rule", "get_rule", "list_rules", "interval_propagate"]

_RULES: Dict[str, Callable[..., Interval]] = {}


def register_rule(name: str) -> Callable[[Callable[..., Interval]], Callable[..., Interval]]:
    """Decorator registering an interval propagation rule under ``name``."""

    def decorator(fn: Callable[..., Interval]) -> Callable[..., Interval]:
        if name in _RULES and _RULES[name] is not fn:
            raise ValueError(f"interval rule {name!r} is already registered")
        _RULES[name] = fn
        return fn

    return decorator


def get_rule(name: str) -> Callable[..., Interval]:
    """The rule registered under ``name``.

    Raises:
        ValueError: for an unknown name (the message lists the registered ones).
    """
    try:
        return _RULES[name]
    except KeyError:
        raise ValueError(f"unknown interval rule {name!r}; registered: {list_rules()}") from None


def list_rules() -> list[str]:
    """Names of all registered rules, sorted."""
    return sorted(_RULES)


def interval_propagate(op: str, *args, **kwargs) -> Interval:
    """Apply the rule ``op`` to interval (or tensor) operands: ``get_rule(op)(*args, **kwargs)``."""
    return get_rule(op)(*args, **kwargs)

