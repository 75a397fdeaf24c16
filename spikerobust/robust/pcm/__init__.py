"""PCM compute-in-memory simulation (SPEC §6): device statistics, crossbars, simulator, evaluation.

Modules: :mod:`.devices` (programming noise, drift, read noise — pure functions),
:mod:`.crossbar` (differential mapping, tiles, DAC/ADC), :mod:`.simulator` (:class:`PCMSimulator`,
which runs any model's Conv2d/Linear layers on the crossbars without changing the model) and
:mod:`.evaluate` (accuracy over time since programming, and its plot).

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(8, 4))
    >>> sim = PCMSimulator(model, PCMConfig(), seed=0).program().set_time(3600.0)
    >>> sim(torch.randn(2, 8)).shape
    torch.Size([2, 4])
"""

from .crossbar import crossbar_matmul, lsb, map_weights, quantize, tile_readout
from .devices import (
    drift_conductance,
    drift_exponent_stats,
    draw_drift_exponent,
    program_conductance,
    programming_noise_std,
    read_conductance,
    read_noise_std,
)
from .evaluate import PCM_TIMES, PCMAccuracy, format_time, pcm_accuracy_over_time, plot_accuracy_over_time
from .simulator import PCMConfig, PCMSimulator

__all__ = [
    "PCMConfig",
    "PCMSimulator",
    "PCMAccuracy",
    "PCM_TIMES",
    "pcm_accuracy_over_time",
    "plot_accuracy_over_time",
    "format_time",
    "programming_noise_std",
    "drift_exponent_stats",
    "read_noise_std",
    "program_conductance",
    "draw_drift_exponent",
    "drift_conductance",
    "read_conductance",
    "map_weights",
    "quantize",
    "lsb",
    "crossbar_matmul",
    "tile_readout",
]
