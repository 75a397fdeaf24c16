r"""Weight-loss landscape and the flatness number of the paper's Table S1 (docs/evaluation.md).

For ``n_directions = 5`` random directions :math:`d = 0.2\,|\theta| \odot \mathcal{N}(0, I)` (one
per selected tensor, element-wise relative to the clean parameters), the test cross-entropy is
evaluated at :math:`\theta + \alpha d` for 50 values of α evenly spaced in [−2, 2]. The curves are
averaged over directions and smoothed by a 5-point moving average (``"valid"`` mode: the smoothed
curve has 46 points, centred on ``alphas[2:-2]``). The flatness number is the mean absolute slope
of the smoothed curve,

.. math::  \mathrm{flatness} = \frac{1}{n-1} \sum_i \frac{|\bar L_{i+1} - \bar L_i|}{\alpha_{i+1} - \alpha_i}

(lower is flatter). For a loss exactly linear in α, ``a·α + c``, it is ``|a|``.

Evaluations at the 50 points of a direction are batched like mismatch draws (``vmap`` over
stacked parameters, see :func:`~spikerobust.robust.mismatch.evaluate_stacked`); the model is not
modified and is evaluated in eval mode.

Examples:
    >>> import torch
    >>> alphas = torch.linspace(-2, 2, 50)
    >>> round(flatness(alphas, 3.0 * alphas + 1.0), 6)
    3.0
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import torch
from torch import nn
from tqdm import tqdm

from .core import Data, as_batches, check_logits, model_mode, randn_like, resolve_params, seeded_generator
from .mismatch import evaluate_stacked
from .spec import CHUNK_SIZE

__all__ = ["LandscapeResult", "moving_average", "flatness", "loss_landscape", "plot_landscape"]


def moving_average(values: torch.Tensor, window: int = 5) -> torch.Tensor:
    """``window``-point moving average in ``"valid"`` mode (length ``n − window + 1``).

    Examples:
        >>> moving_average(torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]), 5).tolist()
        [3.0, 4.0]
    """
    values = torch.as_tensor(values, dtype=torch.float64).reshape(-1)
    if int(window) < 1 or values.numel() < int(window):
        raise ValueError(f"window must be in [1, {values.numel()}] (the curve length), got {window}")
    return values.unfold(0, int(window), 1).mean(-1)


def flatness(alphas: torch.Tensor, losses: torch.Tensor, window: int = 5) -> float:
    """Mean ``|Δ loss| / Δα`` of the ``window``-point moving average of ``losses`` over ``alphas``.

    Args:
        alphas: increasing grid ``[n]``.
        losses: loss at each α ``[n]`` (already averaged over directions).
        window: moving-average width (5; 1 = no smoothing).
    """
    alphas = torch.as_tensor(alphas, dtype=torch.float64).reshape(-1)
    losses = torch.as_tensor(losses, dtype=torch.float64).reshape(-1)
    if alphas.shape != losses.shape:
        raise ValueError(f"alphas {tuple(alphas.shape)} and losses {tuple(losses.shape)} must have the same shape [n]")
    if not bool((alphas.diff() > 0).all()):
        raise ValueError("alphas must be strictly increasing")
    smooth_a = moving_average(alphas, window)
    smooth_l = moving_average(losses, window)
    if smooth_a.numel() < 2:
        raise ValueError(f"need at least window + 1 = {int(window) + 1} points, got {alphas.numel()}")
    return float((smooth_l.diff().abs() / smooth_a.diff()).mean())


@dataclass
class LandscapeResult:
    """Loss curves along random directions.

    Attributes:
        alphas: the grid ``[n_alphas]``.
        losses: loss per direction and α, ``[n_directions, n_alphas]``.
        window: moving-average width used for :attr:`smoothed` and :attr:`flatness`.
        directions: the directions, one name → tensor mapping each.
        label: optional name for plots.
    """

    alphas: torch.Tensor
    losses: torch.Tensor
    window: int = 5
    directions: List[Dict[str, torch.Tensor]] = field(default_factory=list, repr=False)
    label: str = ""

    @property
    def mean(self) -> torch.Tensor:
        """Loss averaged over directions ``[n_alphas]``."""
        return self.losses.double().mean(0)

    @property
    def smoothed(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(alphas, loss)`` of the moving average of :attr:`mean` (valid mode)."""
        return moving_average(self.alphas, self.window), moving_average(self.mean, self.window)

    @property
    def flatness(self) -> float:
        """The Table S1 number: mean absolute slope of the smoothed mean curve (lower is flatter)."""
        return flatness(self.alphas, self.mean, self.window)


def loss_landscape(
    model: nn.Module,
    data: Data,
    *,
    n_directions: int = 5,
    n_alphas: int = 50,
    alpha_range: Tuple[float, float] = (-2.0, 2.0),
    scale: float = 0.2,
    window: int = 5,
    params: Optional[Mapping[str, torch.Tensor]] = None,
    include: Optional[Iterable[str]] = None,
    exclude: Optional[Iterable[str]] = None,
    loss_fn: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
    seed: int = 0,
    generator: Optional[torch.Generator] = None,
    chunk_size: Optional[int] = CHUNK_SIZE,
    vectorize: Union[bool, str] = "auto",
    label: str = "",
    progress: bool = True,
) -> LandscapeResult:
    """Test loss at ``θ + α·d`` along random relative directions (docs/evaluation.md, Table S1).

    Args:
        model: any ``nn.Module`` returning logits ``[B, C]``.
        data: ``(x, y)`` or an iterable of batches (the test set).
        n_directions: random directions (5).
        n_alphas: grid points (50), evenly spaced over ``alpha_range`` ([−2, 2]).
        scale: direction size relative to ``|θ|`` (0.2).
        window: moving-average width for the flatness number (5).
        params, include, exclude: the perturbed parameters (default selection: every trainable
            tensor except normalisation layers).
        loss_fn: ``(logits [B, C], y [B]) -> per-sample loss [B]``; default cross-entropy.
        seed, generator: randomness of the directions.
        chunk_size, vectorize: batching of the evaluations (see ``evaluate_stacked``).
        label: a name for plots.
        progress: tqdm bar over directions.

    Returns:
        :class:`LandscapeResult` (``.flatness`` is the Table S1 number).
    """
    if int(n_directions) < 1:
        raise ValueError(f"n_directions must be >= 1, got {n_directions}")
    if int(n_alphas) < int(window) + 1:
        raise ValueError(f"n_alphas must be >= window + 1 = {int(window) + 1}, got {n_alphas}")
    lo, hi = float(alpha_range[0]), float(alpha_range[1])
    if not hi > lo:
        raise ValueError(f"alpha_range must be (low, high) with high > low, got {alpha_range}")
    selected = {n: p.detach() for n, p in resolve_params(model, params, include, exclude).items()}
    batches = as_batches(data)
    generator = seeded_generator(seed, generator)
    alphas = torch.linspace(lo, hi, int(n_alphas), dtype=torch.float64)
    losses = torch.zeros(int(n_directions), int(n_alphas), dtype=torch.float64)
    directions = []
    with model_mode(model, False), torch.no_grad():
        check_logits(model(batches[0][0].to(next(iter(selected.values())).device)), batches[0][1])
        for k in tqdm(range(int(n_directions)), desc="landscape directions", disable=not progress):
            d = {n: scale * t.abs() * randn_like(t, generator) for n, t in selected.items()}
            directions.append(d)
            a = alphas.to(dtype=next(iter(selected.values())).dtype, device=next(iter(selected.values())).device)
            stacked = {n: t.unsqueeze(0) + a.view(-1, *([1] * t.dim())) * d[n].unsqueeze(0) for n, t in selected.items()}
            _, total, count, used_vmap = evaluate_stacked(
                model, batches, stacked, chunk_size=chunk_size, vectorize=vectorize, with_loss=True, loss_fn=loss_fn,
                return_vmap_used=True,
            )
            if vectorize == "auto" and not used_vmap:
                vectorize = False
            losses[k] = total.cpu() / count
    return LandscapeResult(alphas, losses, int(window), directions, label)


def plot_landscape(
    results: Union[LandscapeResult, Mapping[str, LandscapeResult]],
    path: Optional[Union[str, Path]] = None,
    *,
    title: str = "Weight-loss landscape",
    smoothed: bool = True,
):
    """Plot mean (smoothed) loss against α for one or several results; optionally save to ``path``.

    Uses :class:`matplotlib.figure.Figure` directly (no pyplot state, works under the Agg
    backend). The legend gives each curve's flatness number.

    Returns:
        the ``matplotlib.figure.Figure``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if isinstance(results, LandscapeResult):
        results = {results.label or "model": results}
    if not results:
        raise ValueError("results is empty; give a LandscapeResult or a mapping label → LandscapeResult")
    fig = Figure(figsize=(5, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, res in results.items():
        a, l = res.smoothed if smoothed else (res.alphas, res.mean)
        ax.plot(a.numpy(), l.numpy(), label=f"{name} (flatness {res.flatness:.4f})")
    ax.set_xlabel("α")
    ax.set_ylabel("test loss")
    ax.set_title(title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    if path is not None:
        fig.savefig(str(path))
    return fig
