"""Figures for LSNN analysis (matplotlib, no global state: each function returns a Figure)."""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["plot_membrane_distribution", "plot_spike_raster"]


def _figure(figsize):
    from matplotlib.figure import Figure  # no pyplot: works headless, no global figure registry

    return Figure(figsize=figsize, layout="constrained")


def plot_membrane_distribution(
    v: torch.Tensor, threshold: Optional[torch.Tensor] = None, *, bins: int = 100, ax=None, label: str = ""
):
    """Histogram of membrane potentials ``v`` (any shape, e.g. a trace ``[T, B, N]``).

    With ``threshold``, also plots the histogram of ``v / threshold`` (1 = at threshold), the
    quantity that decides how far mismatch must move a neuron to flip a spike.

    Returns:
        The matplotlib ``Figure``.
    """
    if ax is None:
        fig = _figure((8, 3) if threshold is not None else (4, 3))
        axes = fig.subplots(1, 2 if threshold is not None else 1, squeeze=False)[0]
    else:
        fig, axes = ax.figure, [ax]
    axes[0].hist(v.detach().flatten().cpu().numpy(), bins=bins, histtype="step", label=label or None)
    axes[0].set_xlabel("membrane potential v")
    axes[0].set_ylabel("count")
    if threshold is not None and len(axes) > 1:
        ratio = (v / threshold).detach().flatten().cpu().numpy()
        axes[1].hist(ratio, bins=bins, histtype="step", label=label or None)
        axes[1].axvline(1.0, color="k", lw=0.8, ls="--")
        axes[1].set_xlabel("v / threshold")
    if label:
        axes[0].legend()
    return fig


def plot_spike_raster(spikes: torch.Tensor, *, sample: int = 0, ax=None):
    """Raster of ``spikes [T, B, N]`` for one sample of the batch. Returns the ``Figure``."""
    if spikes.dim() != 3:
        raise ValueError(f"spikes must have shape [T, B, N], got {tuple(spikes.shape)}")
    if ax is None:
        fig = _figure((6, 3))
        ax = fig.subplots()
    else:
        fig = ax.figure
    t_idx, n_idx = torch.nonzero(spikes[:, sample].detach().cpu(), as_tuple=True)
    ax.scatter(t_idx.numpy(), n_idx.numpy(), s=2, marker="|")
    ax.set_xlabel("time step")
    ax.set_ylabel("neuron")
    return fig
