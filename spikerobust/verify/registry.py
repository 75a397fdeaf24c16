"""Deprecated: look interval rules up by name. Call the functions of :mod:`spikerobust.verify.rules` instead.

The rules are plain functions (``rules.matmul(x, w)``), used directly by the feed-forward verifier
and the LSNN simulation; :data:`spikerobust.verify.rules.RULES` lists them by name. The string
interface below is kept for one release and emits a ``DeprecationWarning`` on every call.
"""

from __future__ import annotations

import warnings
from typing import Callable, Dict

from .interval import Interval
from .rules import RULES

__all__ = ["register_rule", "get_rule", "list_rules", "interval_propagate"]

# rules added through the deprecated register_rule, consulted by get_rule for one release
_ADDED: Dict[str, Callable[..., Interval]] = {}


def _deprecated(old: str, new: str) -> None:
    warnings.warn(f"spikerobust.verify.{old} is deprecated: {new}", DeprecationWarning, stacklevel=3)


def register_rule(name: str) -> Callable[[Callable[..., Interval]], Callable[..., Interval]]:
    """Deprecated: a rule is a plain function; call it directly."""
    _deprecated("register_rule", "an interval rule is a plain function, call it directly")

    def decorator(fn: Callable[..., Interval]) -> Callable[..., Interval]:
        if name in RULES or (name in _ADDED and _ADDED[name] is not fn):
            raise ValueError(f"interval rule {name!r} already exists")
        _ADDED[name] = fn
        return fn

    return decorator


def _lookup(name: str) -> Callable[..., Interval]:
    fn = RULES.get(name, _ADDED.get(name))
    if fn is None:
        raise ValueError(f"unknown interval rule {name!r}; rules: {sorted(RULES) + sorted(_ADDED)}")
    return fn


def get_rule(name: str) -> Callable[..., Interval]:
    """Deprecated: the function ``spikerobust.verify.rules.<name>``.

    Raises:
        ValueError: for an unknown name (the message lists the rules).
    """
    _deprecated("get_rule", f"use spikerobust.verify.rules.{name}")
    return _lookup(name)


def list_rules() -> list[str]:
    """Deprecated: ``sorted(spikerobust.verify.rules.RULES)``."""
    _deprecated("list_rules", "use sorted(spikerobust.verify.rules.RULES)")
    return sorted(RULES) + sorted(_ADDED)


def interval_propagate(op: str, *args, **kwargs) -> Interval:
    """Deprecated: ``spikerobust.verify.rules.<op>(*args, **kwargs)``."""
    _deprecated("interval_propagate", f"call spikerobust.verify.rules.{op}(...) directly")
    return _lookup(op)(*args, **kwargs)
