r"""Hardware-cost metrics with NeuroBench's definitions: synaptic operations, activation sparsity,
parameter count and memory footprint.

The definitions follow NeuroBench (Yik et al., "The neurobench framework for benchmarking
neuromorphic computing algorithms and systems", Nature Communications 16, 1545, 2025, and the
``neurobench`` package's ``SynapticOperations``, ``ActivationSparsity``, ``ParameterCount`` and
``Footprint`` metrics):

- **Synaptic operations** of one call of a connection layer (weights ``W``, input ``x``): the
  number of (input, weight) products with a non-zero input *and* a non-zero weight, i.e. the
  layer evaluated with ``x`` and ``W`` binarised (non-zero → 1) and no bias. For a dense weight
  this is the number of non-zero inputs times the fan-out. The call counts as *accumulates* (ACs)
  when every input is in {-1, 0, 1} (spikes) and as *multiply-accumulates* (MACs) otherwise.
  ``dense`` counts every product (input and weight all ones). Totals are divided by the number of
  samples (labels) in ``data``: operations **per sample**, summed over time steps.
- **Activation sparsity**: zero activations / all activations, over every activation layer
  (spiking neurons, ReLU ...), time step and sample.
- **Parameter count**: elements of ``model.parameters()``.
- **Footprint**: bytes of parameters plus buffers.

Connection layers are ``nn.Linear`` and ``nn.Conv1d/2d/3d`` (seen through forward hooks, so a
snnTorch or Norse network's ``nn.Linear``/``nn.Conv2d`` layers are counted) and any module type
with a counter registered by :func:`register_counter`; the LSNN registers one for its input
(``w_in``, applied to every input frame) and recurrent (``w_rec``, applied to the previous step's
spikes) weights, and :class:`~spikerobust.nn.LSNNClassifier` one for its readout, counted as
executed: one dense layer on the time-averaged spike rate (MACs). Activation layers are the
``torch.nn`` activation modules, snnTorch's and Norse's neurons (any module with a ``threshold``
attribute whose output's first element is the spike tensor) and the spiking layers the model
declares (:func:`spikerobust.protocol.spiking_layers`: the LSNN).

Examples:
    >>> import torch
    >>> from torch import nn
    >>> layer = nn.Linear(3, 2)
    >>> x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])  # 3 non-zero spikes, fan-out 2
    >>> cost = hardware_cost(layer, (x, torch.tensor([0, 1])))
    >>> cost.effective_acs, cost.effective_macs, cost.dense   # per sample: 3·2/2, 0, 2·3·2/2
    (3.0, 0.0, 6.0)
    >>> cost.parameter_count, cost.footprint_bytes
    (8, 32)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Iterable, List, Tuple, Type, Union

import logging

import torch
import torch.nn.functional as F
from torch import nn

from ..protocol import spiking_layers

logger = logging.getLogger(__name__)

__all__ = [
    "CostReport",
    "LayerOps",
    "hardware_cost",
    "parameter_count",
    "footprint",
    "register_counter",
    "count_products",
]


@dataclass
class LayerOps:
    """Operations of one connection (summed over calls, not yet per sample)."""

    name: str
    effective: int = 0
    dense: int = 0
    spiking: bool = True  # every call saw inputs in {-1, 0, 1}


@dataclass
class CostReport:
    """The four NeuroBench metrics of one model on one data set.

    Attributes:
        effective_macs: multiply-accumulates per sample (connections with non-binary input).
        effective_acs: accumulates per sample (connections with spike input).
        dense: all products per sample, zeros included.
        activation_sparsity: zero activations / all activations.
        parameter_count: number of parameter elements.
        footprint_bytes: bytes of parameters and buffers.
        n_samples: samples the per-sample numbers average over.
        layers: per connection, ``{"name", "effective", "dense", "kind"}`` per sample.
    """

    effective_macs: float
    effective_acs: float
    dense: float
    activation_sparsity: float
    parameter_count: int
    footprint_bytes: int
    n_samples: int
    layers: List[dict] = field(default_factory=list)

    @property
    def synaptic_operations(self) -> float:
        """Effective operations per sample, ACs plus MACs."""
        return self.effective_acs + self.effective_macs

    def to_dict(self) -> dict:
        out = asdict(self)
        out["synaptic_operations"] = self.synaptic_operations
        return out

    def to_markdown(self) -> str:
        """A two-column table of the metrics."""
        rows = [
            ("synaptic ops / sample (ACs + MACs)", f"{self.synaptic_operations:,.0f}"),
            ("  accumulates (spike input)", f"{self.effective_acs:,.0f}"),
            ("  multiply-accumulates", f"{self.effective_macs:,.0f}"),
            ("dense ops / sample", f"{self.dense:,.0f}"),
            ("activation sparsity", f"{self.activation_sparsity:.3f}"),
            ("parameters", f"{self.parameter_count:,}"),
            ("footprint (bytes)", f"{self.footprint_bytes:,}"),
        ]
        return "\n".join(["| metric | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def parameter_count(model: nn.Module) -> int:
    """Number of parameter elements (NeuroBench ``ParameterCount``)."""
    return sum(p.numel() for p in model.parameters())


def footprint(model: nn.Module) -> int:
    """Bytes of parameters plus buffers (NeuroBench ``Footprint``)."""
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


def _binary(t: torch.Tensor) -> torch.Tensor:
    return (t != 0).to(torch.float64)


def _is_spiking(x: torch.Tensor) -> bool:
    return bool(((x == 0) | (x == 1) | (x == -1)).all())


def count_products(x: torch.Tensor, weight: torch.Tensor, op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Tuple[int, int]:
    """``(effective, dense)`` products of ``op(x, weight)``: ``op`` applied to the binarised tensors
    and to all-ones tensors, summed (float64, so counts are exact up to 2**53).

    Args:
        x: the layer input.
        weight: the weight tensor.
        op: the layer's linear map without bias, e.g. ``lambda x, w: x @ w``.
    """
    with torch.no_grad():
        eff = op(_binary(x), _binary(weight)).sum()
        dense = op(torch.ones_like(x, dtype=torch.float64), torch.ones_like(weight, dtype=torch.float64)).sum()
    return int(eff), int(dense)


# A counter returns a list of (suffix, x, weight, op) connections seen in one call of a module.
Counter = Callable[[nn.Module, tuple, object, dict], List[Tuple[str, torch.Tensor, torch.Tensor, Callable]]]
_COUNTERS: Dict[Type[nn.Module], Counter] = {}


def register_counter(module_type: Type[nn.Module]) -> Callable[[Counter], Counter]:
    """Register ``fn(module, inputs, output, ctx) -> [(suffix, x, weight, op), ...]`` for a module
    type whose weights are used inside its ``forward`` (not through ``nn.Linear``/``nn.Conv``).
    ``ctx`` is a dict shared by all hooks of one forward pass (e.g. to pass spikes on)."""

    def decorator(fn: Counter) -> Counter:
        _COUNTERS[module_type] = fn
        return fn

    return decorator


def _linear(module, inputs, output, ctx):
    return [("", inputs[0], module.weight, lambda x, w: F.linear(x, w))]


def _conv(module, inputs, output, ctx):
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[module.weight.dim() - 2]
    if module.padding_mode != "zeros":
        raise ValueError(f"hardware_cost: {module!r}: only zero padding is supported")

    def op(x, w):
        return conv(x, w, None, module.stride, module.padding, module.dilation, module.groups)

    return [("", inputs[0], module.weight, op)]


for _t in (nn.Linear,):
    _COUNTERS[_t] = _linear
for _t in (nn.Conv1d, nn.Conv2d, nn.Conv3d):
    _COUNTERS[_t] = _conv


def _register_lsnn() -> None:
    from ..functional.lsnn import zero_diagonal
    from ..nn.lsnn import LSNN, LSNNClassifier

    @register_counter(LSNN)
    def _lsnn(module, inputs, output, ctx):
        spikes = output[0] if isinstance(output, tuple) else output  # [T, B, N]
        ctx[id(module)] = spikes
        # w_rec sees the previous step's spikes; the initial state has none
        prev = torch.cat([torch.zeros_like(spikes[:1]), spikes[:-1]])
        return [
            ("w_in", inputs[0], module.w_in, lambda x, w: x @ w),
            ("w_rec", prev, zero_diagonal(module.w_rec.detach()), lambda z, w: z @ w),
        ]

    @register_counter(LSNNClassifier)
    def _lsnn_classifier(module, inputs, output, ctx):
        spikes = ctx.get(id(module.lsnn))
        if spikes is None:
            return []
        return [("readout", spikes.mean(0), module.readout.weight, lambda x, w: F.linear(x, w))]


_register_lsnn()


def _counter_for(module: nn.Module):
    for t in type(module).__mro__:
        if t in _COUNTERS:
            return _COUNTERS[t]
    return None


def _activation_output(module: nn.Module, output, spiking: bool = False) -> Union[torch.Tensor, None]:
    """The activation tensor of an activation layer's output, or None for other modules.

    ``spiking``: the module is one of the model's declared spiking layers
    (:func:`spikerobust.protocol.spiking_layers`); its output (or the output's first element) is the spikes.
    """
    if spiking:
        out = output[0] if isinstance(output, tuple) else output
        return out if isinstance(out, torch.Tensor) else None
    is_torch_act = type(module).__module__ == "torch.nn.modules.activation"
    # snnTorch neurons carry a ``threshold``; Norse neuron modules return ``(spikes, state)``
    is_norse = type(module).__module__.startswith("norse.torch.module.") and "LIF" in type(module).__name__
    is_neuron = (hasattr(module, "threshold") or is_norse) and not isinstance(module, nn.Threshold)
    if not (is_torch_act or is_neuron):
        return None
    out = output[0] if isinstance(output, tuple) else output
    return out if isinstance(out, torch.Tensor) else None


@torch.no_grad()
def hardware_cost(model: nn.Module, data: Union[Tuple[torch.Tensor, torch.Tensor], Iterable]) -> CostReport:
    """Synaptic operations per sample, activation sparsity, parameter count and footprint of
    ``model`` on ``data`` (see the module docstring for the definitions).

    Args:
        model: any ``nn.Module``; it is run in eval mode (mode restored afterwards).
        data: ``(x, y)`` or an iterable of ``(x, y)`` batches; the number of samples is the number
            of labels, so a time-first input (``[T, B, d]``) is counted per sample, not per step.

    Returns:
        a :class:`CostReport`.

    Shape:
        ``x``: whatever ``model`` takes, e.g. ``[T, B, d_in]`` (LSNN) or ``[B, 1, 28, 28]`` (CNN).

    Raises:
        ValueError: if ``data`` holds no samples or a layer has an unsupported padding mode.

    Examples:
        >>> from spikerobust.nn import LSNNClassifier
        >>> model = LSNNClassifier(2, 8, 3)
        >>> cost = hardware_cost(model, (torch.randn(20, 4, 2), torch.tensor([0, 1, 2, 0])))
        >>> cost.dense == 20 * (2 * 8 + 8 * 8) + 8 * 3   # w_in and w_rec every step, readout once
        True
    """
    from ..robust.mismatch import as_batches, model_mode

    ops: Dict[str, LayerOps] = {}
    zeros_acts = [0, 0]  # zero activations, all activations
    names = {m: n for n, m in model.named_modules()}
    spiking = {id(m) for m in spiking_layers(model)}
    ctx: dict = {}

    def hook(module, inputs, output):
        counter = _counter_for(module)
        if counter is not None:
            for suffix, x, w, op in counter(module, inputs, output, ctx):
                name = ".".join(p for p in (names.get(module, "?"), suffix) if p) or type(module).__name__
                eff, dense = count_products(x.detach(), w.detach(), op)
                rec = ops.setdefault(name, LayerOps(name))
                rec.effective += eff
                rec.dense += dense
                rec.spiking = rec.spiking and _is_spiking(x)
        act = _activation_output(module, output, id(module) in spiking)
        if act is not None:
            zeros_acts[0] += int((act == 0).sum())
            zeros_acts[1] += act.numel()

    uncounted = [
        f"{names[m]}.{n}" if names[m] else n
        for m in model.modules()
        if _counter_for(m) is None
        for n, p in m.named_parameters(recurse=False)
        if p.dim() >= 2
    ]
    if uncounted:
        logger.warning("hardware_cost: no synaptic-operation counter for %s (register_counter adds one)", uncounted)
    handles = [m.register_forward_hook(hook) for m in model.modules()]
    n_samples = 0
    try:
        with model_mode(model, False):
            for x, y in as_batches(data):
                ctx.clear()
                model(x)
                n_samples += int(y.shape[0])
    finally:
        for h in handles:
            h.remove()
    if n_samples == 0:
        raise ValueError("hardware_cost: data holds no samples")
    acs = sum(r.effective for r in ops.values() if r.spiking)
    macs = sum(r.effective for r in ops.values() if not r.spiking)
    layers = [
        {"name": r.name, "effective": r.effective / n_samples, "dense": r.dense / n_samples, "kind": "AC" if r.spiking else "MAC"}
        for r in ops.values()
    ]
    return CostReport(
        effective_macs=macs / n_samples,
        effective_acs=acs / n_samples,
        dense=sum(r.dense for r in ops.values()) / n_samples,
        activation_sparsity=(zeros_acts[0] / zeros_acts[1]) if zeros_acts[1] else 0.0,
        parameter_count=parameter_count(model),
        footprint_bytes=footprint(model),
        n_samples=n_samples,
        layers=layers,
    )
