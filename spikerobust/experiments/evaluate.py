"""The paper's measurements of one trained model, as a registry of evaluation parts.

:func:`evaluate_model` measures clean test accuracy, then runs the parts asked for, in the order
they were registered:

=============  ===========================================================================
part           result key(s) and what they hold
=============  ===========================================================================
``mismatch``   ``mismatch``: Table 1 (accuracy mean/std/min per mismatch level over
               ``n_draws`` draws); ``per_class``: sensitivity, PPV and confusion matrix
               (scikit-learn's metrics), clean and as the mean over the draws at
               m = :data:`PER_CLASS_LEVEL`
``attack``     worst-case weight-attack (``pga``) accuracy against a random perturbation of
               equal size, per relative size ζ in ``attack_eps``
``verify``     verified accuracy per ζ in ``zetas`` (interval bounds)
``landscape``  the weight-loss landscape and its flatness
``membrane``   (LSNN only) the membrane-potential distribution relative to the threshold
``cost``       the NeuroBench hardware cost: synaptic operations, sparsity, footprint
=============  ===========================================================================

A part is a function ``fn(ctx: EvalContext) -> result`` registered with :func:`register_part`;
it returns something JSON-friendly, or ``None`` where it does not apply to the model (nothing is
recorded then). A part may have several steps, each under its own key and timed on its own.

Examples:
    >>> list_parts()
    ('mismatch', 'attack', 'verify', 'landscape', 'membrane', 'cost')
    >>> from spikerobust.experiments import evaluate_model, load_model          # doctest: +SKIP
    >>> res = evaluate_model(model, data, cfg, parts=["mismatch", "verify"])     # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..robust.trainer import evaluate_accuracy
from .config import ExperimentConfig
from .tasks import TaskData
from .train import non_finite_names

__all__ = ["evaluate_model", "register_part", "list_parts", "EvalContext", "is_lsnn_model", "PARTS",
           "PER_CLASS_LEVEL", "MEMBRANE_RANGE", "MEMBRANE_BINS"]

log = logging.getLogger(__name__)

#: mismatch level of the per-class figures (sensitivity, PPV, confusion matrix), next to the clean ones
PER_CLASS_LEVEL = 0.5
#: histogram of the scaled voltage (v − A)/A kept in the results (range and bins)
MEMBRANE_RANGE, MEMBRANE_BINS = (-3.0, 3.0), 120

Batches = List[Tuple[torch.Tensor, torch.Tensor]]


@dataclass
class EvalContext:
    """What a part gets: the model (in eval mode), the task data and config, the test batches, and
    ``results`` so far (``test_accuracy`` first, then each earlier step's result under its key)."""

    model: nn.Module
    data: TaskData
    cfg: ExperimentConfig
    label: str
    progress: bool
    test: Batches
    results: Dict[str, Any]


PartFn = Callable[[EvalContext], Optional[Any]]
_PARTS: Dict[str, List[Tuple[str, PartFn]]] = {}


def register_part(name: str, *, key: Optional[str] = None) -> Callable[[PartFn], PartFn]:
    """Decorator: add ``fn`` as a step of evaluation part ``name`` (a new part goes last), its
    result stored under ``key`` (default ``name``).

    Raises:
        ValueError: ``key`` is taken already (by this or another part).
    """
    key = name if key is None else key

    def add(fn: PartFn) -> PartFn:
        if any(k == key for steps in _PARTS.values() for k, _ in steps) or key in ("test_accuracy", "timings"):
            raise ValueError(f"evaluation result key {key!r} is taken already")
        _PARTS.setdefault(name, []).append((key, fn))
        return fn

    return add


def list_parts() -> Tuple[str, ...]:
    """The registered evaluation parts, in the order they run."""
    return tuple(_PARTS)


def is_lsnn_model(model: nn.Module) -> bool:
    """Whether ``model`` declares a time-first spiking layer such as an :class:`~spikerobust.nn.LSNN`
    (membrane analysis, PCM per time step), asked through the model protocol (:mod:`spikerobust.protocol`)."""
    from ..protocol import TIME_FIRST, input_layout, spiking_layers

    return any(input_layout(layer) == TIME_FIRST for layer in spiking_layers(model))


def evaluate_model(model: nn.Module, data: TaskData, cfg: ExperimentConfig, *, label: str = "",
                   parts: Optional[Iterable[str]] = None, progress: Optional[bool] = None) -> dict:
    """The paper's measurements of one trained model on ``data.test`` (see the module docstring).

    Args:
        parts: a subset of :func:`list_parts` (default: all of them, :data:`PARTS` and any part
            registered since); ``"membrane"`` is skipped for models without an LSNN.

    Returns:
        a JSON-friendly dict with ``test_accuracy`` and one entry per part run, plus ``timings``.

    Raises:
        ValueError: an unknown part, or a model with non-finite weights.
    """
    parts = list_parts() if parts is None else tuple(parts)
    unknown = [p for p in parts if p not in _PARTS]
    if unknown:
        raise ValueError(f"unknown evaluation part(s) {unknown}; choose from {list_parts()}")
    progress = cfg.progress if progress is None else progress
    bad = non_finite_names(dict(model.named_parameters()))
    if bad:
        raise ValueError(f"{label or 'model'}: non-finite weights (NaN or infinity in {', '.join(bad)}); "
                         "evaluating it would give meaningless accuracies")
    model.eval()
    test = data.batches("test")
    out: dict = {"test_accuracy": evaluate_accuracy(model, test), "timings": {}}
    ctx = EvalContext(model, data, cfg, label, bool(progress), test, out)
    for name in list_parts():  # registration order, whatever the order asked for
        if name not in parts:
            continue
        for key, fn in _PARTS[name]:
            t0 = time.perf_counter()
            res = fn(ctx)
            if res is None:
                continue
            out[key] = res
            out["timings"][key] = time.perf_counter() - t0
            log.info("%s: %s done in %.1f s", label, key, out["timings"][key])
    return out


# --------------------------------------------------------------------------- the paper's parts


@register_part("mismatch")
def _mismatch(ctx: EvalContext) -> dict:
    from ..robust.mismatch import mismatch_evaluate

    cfg = ctx.cfg
    return mismatch_evaluate(ctx.model, ctx.test, levels=cfg.levels, n_draws=cfg.n_draws, seed=cfg.seed,
                             label=ctx.label, progress=ctx.progress).to_dict()


@register_part("mismatch", key="per_class")
def _per_class(ctx: EvalContext) -> dict:
    from ..analysis.per_class import per_class_summary

    return per_class_summary(ctx.model, ctx.test, ctx.data.classes, level=PER_CLASS_LEVEL,
                             n_draws=ctx.cfg.n_draws, seed=ctx.cfg.seed)


@register_part("attack")
def _attack(ctx: EvalContext) -> dict:
    from ..robust.attacks import attacked_accuracy

    cfg, clean = ctx.cfg, ctx.results["test_accuracy"]
    res = {}
    for eps in cfg.attack_eps:
        if eps == 0:
            res[str(eps)] = {"pga": clean, "random": clean}
            continue
        res[str(eps)] = {kind: attacked_accuracy(ctx.model, ctx.test, eps, attack=kind, objective=cfg.attack_objective,
                                                 seed=cfg.seed, progress=False)
                         for kind in ("pga", "random")}
    return res


@register_part("verify")
def _verify(ctx: EvalContext) -> dict:
    from ..verify import verified_accuracy

    return {str(z): verified_accuracy(ctx.model, ctx.test, z) for z in ctx.cfg.zetas}


@register_part("landscape")
def _landscape(ctx: EvalContext) -> dict:
    from ..robust.landscape import loss_landscape

    cfg = ctx.cfg
    land = loss_landscape(ctx.model, ctx.test, n_directions=cfg.landscape_directions, n_alphas=cfg.landscape_points,
                          seed=cfg.seed, label=ctx.label, progress=ctx.progress)
    alphas, smooth = land.smoothed
    return {"alphas": alphas.tolist(), "smoothed": smooth.tolist(), "flatness": float(land.flatness)}


@register_part("membrane")
def _membrane(ctx: EvalContext) -> Optional[dict]:
    if not is_lsnn_model(ctx.model) or ctx.cfg.membrane_samples <= 0:
        return None
    from ..analysis.membrane import membrane_summary, record_membrane

    rec = record_membrane(ctx.model, ctx.data.head("test", ctx.cfg.membrane_samples)[0])
    counts, edges = np.histogram(rec.scaled.clamp(*MEMBRANE_RANGE).flatten().numpy(), bins=MEMBRANE_BINS,
                                 range=MEMBRANE_RANGE)
    return {**membrane_summary(rec), "hist_counts": counts.tolist(), "hist_edges": edges.tolist()}


@register_part("cost")
def _cost(ctx: EvalContext) -> dict:
    from ..analysis.cost import hardware_cost

    return hardware_cost(ctx.model, ctx.test).to_dict()  # NeuroBench: synaptic ops, sparsity, footprint


#: the built-in evaluation parts, in the order they run
PARTS = list_parts()
