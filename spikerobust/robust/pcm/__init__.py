"""PCM compute-in-memory simulation (docs/pcm.md): device statistics, crossbars, simulator, evaluation.

Modules: :mod:`.devices` (programming noise, drift, read noise — pure functions),
:mod:`.crossbar` (differential mapping, tiles, DAC/ADC), :mod:`.simulator` (:class:`PCMSimulator`,
which runs a model's Conv2d/Linear layers, an LSNN's input and recurrent weights (read at every time
step) and any other selected weight tensor on the crossbars without changing the model) and
:mod:`.evaluate` (accuracy over time since programming, and its plot).

Choices where docs/pcm.md leaves room (all documented again where they are made):

* ``g_p`` in the read-noise ``Q_s`` is the programmed normalised conductance (after programming
  noise, before drift); the drift exponent's μ_ν, σ_ν use the target ``g_T``; ν is drawn once per
  device at programming; read noise is drawn once per evaluation time and frozen over the test set.
* The normalised programming σ is the µS polynomial divided by ``g_max`` in µS (σ_p / 25).
* Weights are mapped by the abs-max of the whole layer (not per tile); clipping before mapping is
  an option (``clip_sigma``); biases stay digital.
* Global drift compensation is per layer by default (one α from the whole layer output for an
  all-ones calibration input), per tile as an option; the reference read at t0 has its own
  read-noise draw, so α at t0 equals 1 only without read noise.
* Converters: each tile scales its input slice by its abs-max per input vector, the DAC quantises
  on [−1, 1] and the ADC on a fixed ``[−adc_bound, adc_bound]``; both off by default.
* Times before ``t0`` are rejected (the power law starts at t0).

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(8, 4))
    >>> sim = PCMSimulator(model, PCMConfig(), seed=0).program().set_time(3600.0)
    >>> sim(torch.randn(2, 8)).shape
    torch.Size([2, 4])
"""

from . import crossbar, devices, evaluate, simulator
from .crossbar import crossbar_matmul, lsb, map_weights, quantize, tile_outputs, tile_readout, tile_shape, tile_slices
from .devices import (
    G_MAX_US,
    G_MIN_LOG,
    PROG_COEFFS_US,
    T_READ,
    draw_drift_exponent,
    drift_conductance,
    drift_exponent_stats,
    program_conductance,
    programming_noise_std,
    read_conductance,
    read_noise_std,
)
from .evaluate import PCM_TIMES, PCMAccuracy, format_time, pcm_accuracy_over_time, pcm_table, plot_accuracy_over_time
from .simulator import ANALOG_LAYERS, PCMConfig, PCMSimulator

#: everything public of the four modules (each module's ``__all__`` is the one list of its names)
__all__ = [*simulator.__all__, *evaluate.__all__, *devices.__all__, *crossbar.__all__]
