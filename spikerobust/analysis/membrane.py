"""Membrane potentials relative to the adaptive threshold (the paper's Fig. S10 argument).

A spike is decided by the scaled voltage ``u = (v − A) / A`` (docs/lsnn.md): ``u > 0`` spikes outside
the refractory period. A weight perturbation flips a spike only where ``|u|`` is small, so a
robust network should keep less of its distribution near ``u = 0``. :func:`record_membrane`
records ``u`` (and ``v``, ``A`` and the spikes) of a model's LSNN layer over a test set; :func:`near_threshold_fraction`
turns it into one number; :func:`plot_membrane_comparison` draws the histograms of several models.

Examples:
    >>> import torch
    >>> from spikerobust.nn import LSNNClassifier
    >>> model = LSNNClassifier(2, 16, 4)
    >>> rec = record_membrane(model, torch.randn(30, 8, 2))
    >>> rec.scaled.shape                       # [T, B, N]
    torch.Size([30, 8, 16])
    >>> 0.0 <= near_threshold_fraction(rec, 0.1) <= 1.0
    True
"""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional

import torch
from torch import nn

from ..protocol import TIME_FIRST, input_layout, spiking_layers

__all__ = ["MembraneRecord", "record_membrane", "near_threshold_fraction", "membrane_summary",
           "plot_membrane_comparison"]


class MembraneRecord(NamedTuple):
    """Traces ``[T, B, N]`` of one LSNN layer: membrane ``v``, threshold ``A``, spikes ``z``."""

    v: torch.Tensor
    threshold: torch.Tensor
    spikes: torch.Tensor

    @property
    def scaled(self) -> torch.Tensor:
        """``(v − A) / A``: 0 at the threshold, −1 at rest, the argument of the spike function."""
        return (self.v - self.threshold) / self.threshold


def _lsnn_layer(model: nn.Module) -> nn.Module:
    """The one spiking layer of ``model`` that runs a whole sequence (:mod:`spikerobust.protocol`)."""
    layers = [m for m in spiking_layers(model) if input_layout(m) == TIME_FIRST]
    if not layers:
        raise ValueError(
            f"record_membrane: {type(model).__name__} declares no spiking layer that runs a time-first "
            f"sequence (spikerobust.protocol.spiking_layers), such as a spikerobust.nn.LSNN"
        )
    if len(layers) > 1:
        raise ValueError(f"record_membrane: {type(model).__name__} has {len(layers)} LSNN layers; pass one of them as `layer`")
    return layers[0]


@torch.no_grad()
def record_membrane(model: nn.Module, x: torch.Tensor, *, layer: Optional[nn.Module] = None,
                    batch_size: int = 512) -> MembraneRecord:
    """Run ``x [T, B, d_in]`` through the model's LSNN layer and record its traces.

    The layer must be the model's first stage (true of :class:`~spikerobust.nn.LSNNClassifier`),
    since ``x`` is fed to it directly.

    Args:
        model: a model with one time-first spiking layer (:func:`spikerobust.protocol.spiking_layers`),
            e.g. an :class:`~spikerobust.nn.LSNN` (or pass ``layer``).
        x: time-first input ``[T, B, d_in]``.
        batch_size: samples per forward pass (the traces of all of them are concatenated).
    """
    if x.dim() != 3:
        raise ValueError(f"record_membrane: x must have shape [T, B, d_in], got {tuple(x.shape)}")
    layer = layer if layer is not None else _lsnn_layer(model)
    vs, thr, zs = [], [], []
    for i in range(0, x.shape[1], batch_size):
        z, trace = layer(x[:, i : i + batch_size], return_states=True)
        vs.append(trace.v)
        thr.append(trace.threshold)
        zs.append(z)
    return MembraneRecord(torch.cat(vs, 1), torch.cat(thr, 1), torch.cat(zs, 1))


def near_threshold_fraction(record: MembraneRecord, delta: float = 0.1) -> float:
    """Fraction of (time, sample, neuron) points with ``|(v − A)/A| < delta``: how much of the
    network's state a small perturbation can push across the threshold."""
    if delta <= 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    return float((record.scaled.abs() < delta).float().mean())


def membrane_summary(record: MembraneRecord, deltas=(0.05, 0.1, 0.2)) -> dict:
    """Numbers for a report: mean/std of the scaled voltage, firing rate, near-threshold fractions."""
    u = record.scaled
    out = {"scaled_mean": float(u.mean()), "scaled_std": float(u.std()), "rate": float(record.spikes.mean())}
    out.update({f"near_{d:g}": near_threshold_fraction(record, d) for d in deltas})
    return out


def plot_membrane_comparison(records: Dict[str, MembraneRecord], *, bins: int = 120, lim: float = 3.0):
    """Histograms (densities) of the scaled voltage ``(v − A)/A`` of several models in one axis,
    clipped to ``[-lim, lim]``, with the threshold marked. Returns the matplotlib ``Figure``."""
    from matplotlib.figure import Figure

    if not records:
        raise ValueError("plot_membrane_comparison: records is empty")
    fig = Figure(figsize=(5, 3.2), layout="constrained")
    ax = fig.subplots()
    for name, rec in records.items():
        u = rec.scaled.flatten().clamp(-lim, lim).cpu().numpy()
        ax.hist(u, bins=bins, range=(-lim, lim), density=True, histtype="step",
                label=f"{name} ({100 * near_threshold_fraction(rec, 0.1):.1f}% within 0.1)")
    ax.axvline(0.0, color="k", lw=0.8, ls="--")
    ax.set(xlabel="(v − A) / A   (0 = threshold)", ylabel="density", yscale="log",
           title="membrane potential relative to threshold")
    ax.legend(fontsize=7)
    return fig
