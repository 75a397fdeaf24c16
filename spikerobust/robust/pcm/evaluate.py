"""Accuracy of a PCM-deployed model over time since programming, and its plot (docs/pcm.md).

Each repetition programs the devices afresh (programming noise and drift exponents), then, for
every time ``t`` in increasing order, drifts to ``t``, draws read noise, applies global drift
compensation and measures the accuracy on the whole of ``data``. The result holds the
``[n_reps, n_times]`` accuracies; mean and (sample) standard deviation are over repetitions.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(2, 2))
    >>> x = torch.randn(64, 2); y = model(x).argmax(1)
    >>> res = pcm_accuracy_over_time(model, (x, y), times=(25, 3600), n_reps=3, seed=0, progress=False)
    >>> res.accuracy.shape
    torch.Size([3, 2])
    >>> fig = plot_accuracy_over_time({"model": res})
    >>> print(pcm_table({"model": PCMAccuracy((25.0, 3600.0), torch.tensor([[0.9, 0.8], [0.7, 0.8]]), 0.95)}))
    | model | digital | 25 s | 1 h |
    |---|---|---|---|
    | model | 95.00 | 80.00 ± 14.14 | 80.00 ± 0.00 |
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from tqdm import tqdm

from .simulator import PCMConfig, PCMSimulator

__all__ = ["PCM_TIMES", "PCMAccuracy", "format_time", "pcm_accuracy_over_time", "plot_accuracy_over_time", "pcm_table"]

logger = logging.getLogger(__name__)

PCM_TIMES = (25.0, 3600.0, 86400.0, 30 * 86400.0, 365 * 86400.0)
"""docs/pcm.md evaluation times: 25 s, 1 hour, 1 day, 30 days, 1 year."""

_UNITS = ((365 * 86400.0, "y"), (86400.0, "d"), (3600.0, "h"), (60.0, "min"), (1.0, "s"))


def format_time(seconds: float) -> str:
    """Short label of a duration: ``format_time(86400) == '1 d'``, ``format_time(25) == '25 s'``."""
    for size, unit in _UNITS:
        if seconds >= size and abs(seconds / size - round(seconds / size)) < 1e-9:
            return f"{round(seconds / size)} {unit}"
    return f"{seconds:g} s"


@dataclass
class PCMAccuracy:
    """Accuracies of one model over time.

    Attributes:
        times: evaluation times in seconds.
        accuracy: ``[n_reps, n_times]`` accuracies in [0, 1].
        digital: accuracy of the unperturbed (floating-point) model, if measured.
        config: the :class:`PCMConfig` used.
    """

    times: Tuple[float, ...]
    accuracy: torch.Tensor
    digital: Optional[float] = None
    config: Optional[PCMConfig] = field(default=None, repr=False)

    @property
    def mean(self) -> torch.Tensor:
        return self.accuracy.mean(0)

    @property
    def std(self) -> torch.Tensor:
        """Sample standard deviation over repetitions (0 for a single repetition)."""
        if self.accuracy.shape[0] < 2:
            return torch.zeros(self.accuracy.shape[1], dtype=self.accuracy.dtype)
        return self.accuracy.std(0)

    def rows(self) -> List[dict]:
        """One dict per time: ``{"t", "label", "mean", "std"}`` (accuracies in %)."""
        return [dict(t=t, label=format_time(t), mean=100 * float(m), std=100 * float(s))
                for t, m, s in zip(self.times, self.mean, self.std)]


def _batches(data, batch_size: int) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(torch.is_tensor(d) for d in data):
        x, y = data
        if y.dim() == 1 and x.dim() == 3 and x.shape[0] != y.shape[0] and x.shape[1] == y.shape[0]:  # time first
            return [(x[:, i:i + batch_size], y[i:i + batch_size]) for i in range(0, y.shape[0], batch_size)]
        if x.shape[0] != y.shape[0] or y.dim() != 1:
            raise ValueError(f"data must be (x [N, ...], y [N]) or time first (x [T, N, F], y [N]), got shapes "
                             f"{tuple(x.shape)}, {tuple(y.shape)}")
        return [(x[i:i + batch_size], y[i:i + batch_size]) for i in range(0, x.shape[0], batch_size)]
    batches = [(xb, yb) for xb, yb in data]
    if not batches:
        raise ValueError("data is empty")
    return batches


@torch.no_grad()
def _accuracy(fn, batches) -> float:
    correct = total = 0
    for x, y in batches:
        logits = fn(x)
        if logits.dim() != 2 or logits.shape[0] != y.shape[0]:
            raise ValueError(f"the model must return logits [B, C] with B = {y.shape[0]}, got {tuple(logits.shape)}")
        correct += int((logits.argmax(1) == y).sum())
        total += y.shape[0]
    return correct / total


def pcm_accuracy_over_time(
    model: nn.Module,
    data: Union[Tuple[torch.Tensor, torch.Tensor], Iterable],
    times: Sequence[float] = PCM_TIMES,
    n_reps: int = 25,
    config: Optional[PCMConfig] = None,
    *,
    seed: Optional[int] = 0,
    batch_size: int = 1000,
    digital: bool = True,
    progress: bool = True,
    **sim_kwargs,
) -> PCMAccuracy:
    """Accuracy of ``model`` deployed on PCM at each time since programming.

    Args:
        model: any classifier with Conv2d/Linear or LSNN layers (or ``tensors=``, see
            :class:`PCMSimulator`) returning logits ``[B, C]``; evaluated in eval mode (its mode
            is restored afterwards).
        data: ``(x, y)`` tensors or a re-iterable of ``(x, y)`` batches (e.g. a ``DataLoader``).
        times: seconds since programming, each ≥ ``config.t0`` (docs/pcm.md: 25 s, 1 h, 1 d, 30 d, 1 y).
        n_reps: programming repetitions (25).
        config: :class:`PCMConfig` (default docs/pcm.md).
        seed: seed of all device randomness (``None``: global RNG).
        batch_size: batch size when ``data`` is a pair of tensors.
        digital: also measure the unperturbed model's accuracy.
        progress: show a tqdm bar.
        **sim_kwargs: passed to :class:`PCMSimulator` (``include``/``exclude``/``tensors``).

    Returns:
        :class:`PCMAccuracy`.

    Raises:
        ValueError: empty or badly shaped data, ``n_reps < 1``, no times, or a time before t0.
    """
    config = config if config is not None else PCMConfig()
    times = tuple(float(t) for t in times)
    if not times:
        raise ValueError("times must not be empty")
    if min(times) < config.t0:
        raise ValueError(f"times must be >= t0 = {config.t0} s, got {min(times)}")
    if int(n_reps) < 1:
        raise ValueError(f"n_reps must be >= 1, got {n_reps}")
    batches = _batches(data, int(batch_size))
    order = sorted(range(len(times)), key=lambda k: times[k])
    was_training = model.training
    model.eval()
    try:
        sim = PCMSimulator(model, config, seed=seed, **sim_kwargs)
        acc = torch.zeros(int(n_reps), len(times), dtype=torch.float64)
        digital_acc = _accuracy(model, batches) if digital else None
        bar = tqdm(total=int(n_reps) * len(times), desc="PCM", disable=not progress, leave=False)
        for r in range(int(n_reps)):
            sim.program()
            for k in order:
                sim.set_time(times[k])
                acc[r, k] = _accuracy(sim, batches)
                bar.update(1)
        bar.close()
    finally:
        model.train(was_training)
    logger.info("PCM accuracy over time: %s", [f"{format_time(t)}: {100 * m:.2f}%" for t, m in zip(times, acc.mean(0))])
    return PCMAccuracy(times, acc, digital_acc, config)


def plot_accuracy_over_time(
    results: Union[PCMAccuracy, Mapping[str, PCMAccuracy]],
    path: Optional[Union[str, os.PathLike]] = None,
    *,
    title: Optional[str] = None,
    figsize: Tuple[float, float] = (5.0, 3.5),
):
    """Mean ± std test accuracy (%) against time since programming (log axis), one line per model.

    A model's digital (floating-point) accuracy, when measured, is drawn as a dashed line of its colour.

    Args:
        results: one :class:`PCMAccuracy` or a mapping label → result.
        path: where to save a PNG (optional).
        title: figure title.

    Returns:
        the matplotlib ``Figure`` (no pyplot state; drawn with the Agg canvas).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if isinstance(results, PCMAccuracy):
        results = {"model": results}
    if not results:
        raise ValueError("results must not be empty")
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for k, (label, res) in enumerate(results.items()):
        color = f"C{k}"
        mean, std = 100 * res.mean.numpy(), 100 * res.std.numpy()
        ax.errorbar(res.times, mean, yerr=std, marker="o", capsize=3, color=color, label=label)
        if res.digital is not None:
            ax.axhline(100 * res.digital, color=color, linestyle="--", linewidth=0.8)
    times = sorted({t for res in results.values() for t in res.times})
    ax.set_xscale("log")
    ax.set_xticks(times)
    ax.set_xticklabels([format_time(t) for t in times])
    ax.minorticks_off()
    ax.set_xlabel("time since programming")
    ax.set_ylabel("test accuracy (%)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize="small")
    if path is not None:
        fig.savefig(path, dpi=120)
    return fig


def pcm_table(results: Union[PCMAccuracy, Mapping[str, PCMAccuracy]], *, digits: int = 2) -> str:
    """A markdown table of accuracies over time: one row per model, its digital accuracy, then
    mean ± std over programming repetitions (%) at each time.

    Args:
        results: one :class:`PCMAccuracy` (row label ``model``) or a mapping label → result; all
            must share the same times.
        digits: decimals of the percentages.

    Returns:
        the table, header and rule lines first (no trailing newline); ``–`` where the digital
        accuracy was not measured.

    Raises:
        ValueError: no results, or results measured at different times.
    """
    if isinstance(results, PCMAccuracy):
        results = {"model": results}
    if not results:
        raise ValueError("results must not be empty")
    times = next(iter(results.values())).times
    for label, res in results.items():
        if tuple(res.times) != tuple(times):
            raise ValueError(f"results must share their times: {label!r} has {tuple(res.times)}, "
                             f"expected {tuple(times)}")
    lines = ["| model | digital | " + " | ".join(format_time(t) for t in times) + " |", "|" + "---|" * (len(times) + 2)]
    for label, res in results.items():
        digital = "–" if res.digital is None else f"{100 * res.digital:.{digits}f}"
        cells = [f"{r['mean']:.{digits}f} ± {r['std']:.{digits}f}" for r in res.rows()]
        lines.append(f"| {label} | {digital} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
