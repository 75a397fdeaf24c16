r"""Device mismatch (docs/evaluation.md, Eq. 1) and Monte-Carlo evaluation of a model under it.

Mismatch multiplies every element of every selected parameter tensor by an independent factor,

.. math::  \theta_{mm} = \theta \odot (1 + m \cdot \mathcal{N}(0, I)),

at a level ``m`` (relative standard deviation). :func:`mismatch_evaluate` reproduces the paper's
Table 1 protocol: for each level in {0, 0.1, 0.2, 0.3, 0.5, 0.7}, 100 draws (one at m = 0), the
test accuracy of each draw, then mean, std and min over draws.

The user's model is never modified: parameters are substituted with
:func:`torch.func.functional_call`. Many draws run as one batched computation:
:func:`torch.func.vmap` over a chunk of stacked parameter draws (``chunk_size`` bounds memory),
with a plain loop as fallback (``vectorize=False``, or automatically when a model cannot be
vmapped). The default ``vectorize="auto"`` vmaps on accelerators and loops on CPU, where the
work is compute-bound and the loop measured faster. Both paths see the same draws (generated draw by draw from one seeded generator), so
they give the same accuracies. Evaluation runs in eval mode under ``torch.no_grad``; the model's
train/eval mode is restored afterwards.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> x, y = torch.randn(64, 4), torch.randint(0, 3, (64,))
    >>> res = mismatch_evaluate(model, (x, y), levels=(0.0, 0.5), n_draws=10, progress=False)
    >>> res.accuracies[0.0].shape, res.accuracies[0.5].shape
    (torch.Size([1]), torch.Size([10]))
    >>> print(res.to_markdown().splitlines()[0])
    | m | mean acc. (%) | std | min |
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap
from tqdm import tqdm

from .core import Batch, Data, as_batches, check_logits, model_mode, randn_like, resolve_params, seeded_generator
from .spec import CHUNK_SIZE, MISMATCH_LEVELS, N_DRAWS
from .stats import summarise

__all__ = [
    "DEFAULT_LEVELS",
    "MismatchResult",
    "mismatch_params",
    "draw_mismatch",
    "evaluate_stacked",
    "mismatch_evaluate",
    "as_batches",
    "resolve_params",
    "model_mode",
    "check_logits",
]

logger = logging.getLogger(__name__)

#: Mismatch levels of the paper's Table 1 (:data:`spikerobust.robust.spec.MISMATCH_LEVELS`).
DEFAULT_LEVELS = MISMATCH_LEVELS


def _check_labels(batches, n_classes: int) -> None:
    """Refuse labels outside ``0 .. n_classes - 1``: they would count as wrong answers without a word."""
    for i, (_, y) in enumerate(batches):
        bad = (y < 0) | (y >= n_classes)
        if bool(bad.any()):
            raise ValueError(f"label {int(y[bad][0])} in batch {i} is outside the model's {n_classes} classes "
                             f"(0..{n_classes - 1})")


# --------------------------------------------------------------------------- draws


def mismatch_params(
    params: Mapping[str, torch.Tensor], level: float, *, generator: Optional[torch.Generator] = None
) -> Dict[str, torch.Tensor]:
    """One mismatch draw ``θ ⊙ (1 + m·N(0, 1))`` of every tensor in ``params`` (detached copies).

    Args:
        params: name → tensor (e.g. from :func:`select_parameters`).
        level: mismatch level ``m >= 0``.
        generator: random generator (its device is used to draw, then moved to each tensor's device).

    Examples:
        >>> import torch
        >>> theta = {"w": torch.ones(3)}
        >>> mismatch_params(theta, 0.0)["w"]
        tensor([1., 1., 1.])
    """
    _check_level(level)
    out = {}
    for name, p in params.items():
        p = p.detach()
        out[name] = p * (1.0 + level * randn_like(p, generator)) if level > 0 else p.clone()
    return out


def draw_mismatch(
    params: Mapping[str, torch.Tensor],
    level: float,
    n_draws: int,
    *,
    generator: Optional[torch.Generator] = None,
) -> Dict[str, torch.Tensor]:
    """``n_draws`` independent draws stacked on a new leading dimension.

    Draws are generated one after another (draw ``k`` does not depend on ``n_draws``), so the
    first ``k`` draws of a larger call equal a call with ``n_draws = k`` from the same seed.

    Shape:
        each tensor ``[*s]`` → ``[n_draws, *s]``.
    """
    if int(n_draws) < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    draws = [mismatch_params(params, level, generator=generator) for _ in range(int(n_draws))]
    return {name: torch.stack([d[name] for d in draws]) for name in params}


def _check_level(level: float) -> None:
    if not (float(level) >= 0.0):
        raise ValueError(f"mismatch level must be >= 0, got {level}")


# --------------------------------------------------------------------------- evaluation


def _eval_one(model: nn.Module, p: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    return functional_call(model, dict(p), (x,), strict=False)


def evaluate_stacked(
    model: nn.Module,
    batches: Sequence[Batch],
    stacked: Mapping[str, torch.Tensor],
    *,
    chunk_size: Optional[int] = CHUNK_SIZE,
    vectorize: Union[bool, str] = "auto",
    with_loss: bool = False,
    loss_fn: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
    return_vmap_used: bool = False,
) -> Union[Tuple[torch.Tensor, torch.Tensor, int], Tuple[torch.Tensor, torch.Tensor, int, bool]]:
    """Evaluate ``model`` at ``K`` stacked parameter sets on every batch (no grad, current mode).

    Args:
        model: any ``nn.Module`` returning logits ``[B, C]``.
        batches: list of ``(x, y)``.
        stacked: name → tensor ``[K, *shape]``; unnamed parameters/buffers keep the model's values.
        chunk_size: parameter sets per vmapped call (memory bound); ``None``: all ``K`` at once.
        vectorize: ``True`` (vmap, errors propagate), ``False`` (plain loop) or ``"auto"``: vmap on
            an accelerator (falling back to the loop with a logged warning when the model cannot
            be vmapped), the loop on CPU, where the evaluation is compute-bound and vmap's larger
            intermediate tensors measured slower (``benchmarks/bench_mismatch.py``).
        with_loss: also sum a per-sample loss per parameter set.
        loss_fn: ``(logits [B, C], y [B]) -> per-sample loss [B]`` (default: cross-entropy).
        return_vmap_used: also return whether ``vmap`` ran to the end (``"auto"`` may fall back).

    Returns:
        ``(correct [K], loss_sum [K], n_samples)``, and ``vmap_used`` last with
        ``return_vmap_used``; ``loss_sum`` is zeros unless ``with_loss``.
    """
    correct, ce, n, used_vmap = _evaluate_stacked(
        model, batches, stacked, chunk_size=chunk_size, vectorize=vectorize, with_loss=with_loss, loss_fn=loss_fn
    )
    return (correct, ce, n, used_vmap) if return_vmap_used else (correct, ce, n)


def _evaluate_stacked(model, batches, stacked, *, chunk_size, vectorize, with_loss, loss_fn=None):
    names = list(stacked)
    k_total = stacked[names[0]].shape[0]
    chunk = k_total if chunk_size is None else max(1, int(chunk_size))
    dev = next(iter(stacked.values())).device
    correct = torch.zeros(k_total, dtype=torch.long, device=dev)
    ce = torch.zeros(k_total, dtype=torch.float64, device=dev)
    n = 0
    use_vmap = vectorize is True or (vectorize == "auto" and dev.type != "cpu")
    with torch.no_grad():
        for x, y in batches:
            x, y = x.to(dev), y.to(dev)
            n += int(y.shape[0])
            for start in range(0, k_total, chunk):
                part = {name: t[start : start + chunk] for name, t in stacked.items()}
                kk = part[names[0]].shape[0]
                out = None
                if use_vmap:
                    try:
                        out = vmap(lambda p: _eval_one(model, p, x))(part)
                    except ValueError:
                        raise
                    except Exception as err:  # functorch refuses some ops (custom autograd functions)
                        if vectorize is True:
                            raise
                        logger.warning("vmap over parameter draws failed (%s); using a plain loop", err)
                        use_vmap = False
                if out is None:
                    out = torch.stack([_eval_one(model, {nm: t[i] for nm, t in part.items()}, x) for i in range(kk)])
                check_logits(out, y, batched=True)
                yy = y.to(out.device)
                correct[start : start + kk] += (out.argmax(-1) == yy).sum(-1)
                if with_loss:
                    if loss_fn is None:
                        c = out.shape[-1]
                        losses = F.cross_entropy(out.reshape(-1, c).double(), yy.repeat(kk), reduction="none")
                        ce[start : start + kk] += losses.view(kk, -1).sum(-1)
                    else:
                        ce[start : start + kk] += torch.stack([loss_fn(o, yy).double().sum() for o in out])
    return correct, ce, n, use_vmap


@dataclass
class MismatchResult:
    """Accuracies of every draw at every mismatch level, and the Table-1 summary.

    Attributes:
        levels: the mismatch levels, in order.
        accuracies: level → tensor ``[n_draws]`` of test accuracies in ``[0, 1]``.
        label: optional name (method / model) used in tables.
    """

    levels: Tuple[float, ...]
    accuracies: Dict[float, torch.Tensor] = field(repr=False)
    label: str = ""

    def summary(self) -> List[dict]:
        """One row per level: ``{"level", "mean", "std", "min", "max", "n"}`` (fractions; std ddof = 1)."""
        return [{"level": m, **summarise(self.accuracies[m])} for m in self.levels]

    def mean(self, level: float) -> float:
        return float(self.accuracies[level].double().mean())

    def min(self, level: float) -> float:
        return float(self.accuracies[level].min())

    def to_markdown(self, digits: int = 2) -> str:
        """The Table-1 layout: level, mean, std and min accuracy over draws, in percent."""
        head = "| m | mean acc. (%) | std | min |" if not self.label else f"| {self.label}: m | mean acc. (%) | std | min |"
        rows = [head, "|---|---|---|---|"]
        for r in self.summary():
            rows.append(
                f"| {r['level']:g} | {100 * r['mean']:.{digits}f} | {100 * r['std']:.{digits}f} | {100 * r['min']:.{digits}f} |"
            )
        return "\n".join(rows)

    def to_dict(self) -> dict:
        """JSON-friendly: levels, per-level lists of accuracies, and the summary rows."""
        return {
            "label": self.label,
            "levels": list(self.levels),
            "accuracies": {str(m): self.accuracies[m].tolist() for m in self.levels},
            "summary": self.summary(),
        }

    @staticmethod
    def pool(*results: "MismatchResult", label: str = "") -> "MismatchResult":
        """Concatenate the draws of several runs (e.g. the paper's two seeds) level by level."""
        if not results:
            raise ValueError("pool: give at least one MismatchResult")
        levels = results[0].levels
        if any(r.levels != levels for r in results):
            raise ValueError("pool: all results must have the same levels")
        acc = {m: torch.cat([r.accuracies[m] for r in results]) for m in levels}
        return MismatchResult(levels, acc, label or results[0].label)


def mismatch_evaluate(
    model: nn.Module,
    data: Data,
    levels: Sequence[float] = DEFAULT_LEVELS,
    n_draws: int = N_DRAWS,
    *,
    params: Optional[Mapping[str, torch.Tensor]] = None,
    include: Optional[Iterable[str]] = None,
    exclude: Optional[Iterable[str]] = None,
    seed: int = 0,
    generator: Optional[torch.Generator] = None,
    chunk_size: Optional[int] = CHUNK_SIZE,
    vectorize: Union[bool, str] = "auto",
    label: str = "",
    progress: bool = True,
) -> MismatchResult:
    """Monte-Carlo test accuracy under mismatch (docs/evaluation.md): ``n_draws`` draws per level, one at m = 0.

    Args:
        model: any ``nn.Module`` returning logits ``[B, C]`` (LSNN classifier, CNN, ResNet ...).
        data: ``(x, y)`` tensors or an iterable of ``(x, y)`` batches (e.g. the test ``DataLoader``).
        levels: mismatch levels ``m >= 0``.
        n_draws: draws per non-zero level.
        params: explicit selection name → tensor (default :func:`select_parameters` with
            ``include``/``exclude``).
        include, exclude: glob patterns for the default selection.
        seed: seed of the generator (ignored when ``generator`` is given).
        generator: a ``torch.Generator`` to draw from.
        chunk_size: draws evaluated per vmapped call; lower it to bound memory.
        vectorize: see :func:`evaluate_stacked`.
        label: a name for tables.
        progress: show a tqdm bar over levels.

    Returns:
        :class:`MismatchResult`.

    Raises:
        ValueError: a level < 0, ``n_draws < 1``, an empty selection, or a model whose output is
            not logits ``[B, C]``.
    """
    levels = tuple(float(m) for m in levels)
    if not levels:
        raise ValueError("levels is empty; expected mismatch levels such as (0, 0.1, 0.2, 0.3, 0.5, 0.7)")
    for m in levels:
        _check_level(m)
    if isinstance(n_draws, bool) or int(n_draws) != n_draws or int(n_draws) < 1:
        raise ValueError(f"n_draws must be an integer >= 1, got {n_draws!r}")
    selected = resolve_params(model, params, include, exclude)
    batches = as_batches(data)
    generator = seeded_generator(seed, generator)
    accuracies: Dict[float, torch.Tensor] = {}
    vec = vectorize
    with model_mode(model, False), torch.no_grad():
        dev = next(iter(selected.values())).device
        x0, y0 = batches[0]
        n_classes = check_logits(model(x0.to(dev)), y0).shape[-1]
        _check_labels(batches, n_classes)
        for m in tqdm(levels, desc="mismatch levels", disable=not progress):
            k = 1 if m == 0 else int(n_draws)
            correct = torch.zeros(k, dtype=torch.long)
            n = 0
            step = k if chunk_size is None else max(1, int(chunk_size))
            for start in range(0, k, step):  # draw lazily, chunk by chunk, to bound memory
                stacked = draw_mismatch(selected, m, min(step, k - start), generator=generator)
                c, _, n, used_vmap = _evaluate_stacked(
                    model, batches, stacked, chunk_size=None, vectorize=vec, with_loss=False
                )
                if vec == "auto" and not used_vmap:
                    vec = False  # remember the fallback: warn once
                correct[start : start + c.shape[0]] = c.cpu()
            accuracies[m] = correct.double() / n
    return MismatchResult(levels, accuracies, label)
