"""``nn.Module`` shells around :mod:`spikerobust.functional.lsnn`: parameters live here, state is returned."""

from __future__ import annotations

import math
from typing import Optional, Union

import torch
from torch import nn

from .._checks import check_time_first
from ..functional.lsnn import LSNNParams, LSNNState, lsnn_unroll
from ..functional.lsnn_fused import BACKENDS, resolve_backend
from ..functional.readout import rate_regulariser, time_mean
from ..functional.surrogate import get_surrogate
from ..protocol import TIME_FIRST

__all__ = ["LSNN", "LSNNClassifier", "NEURON_CONSTANTS", "neuron_constants_as_params", "register_neuron_constants", "truncated_normal_", "TRUNC2_STD"]

#: Names of the per-neuron constants of an :class:`LSNN` (buffers, or parameters when trainable).
NEURON_CONSTANTS = ("tau_mem", "tau_adapt", "beta_adapt", "b0")


#: Standard deviation of a standard normal truncated at ±2: sqrt(1 − 4·φ(2)/(2·Φ(2) − 1)).
TRUNC2_STD = math.sqrt(1.0 - 4.0 * math.exp(-2.0) / math.sqrt(2.0 * math.pi) / math.erf(math.sqrt(2.0)))


def truncated_normal_(t: torch.Tensor, std: float, *, exact_std: bool = True) -> torch.Tensor:
    """Fill ``t`` in place with a zero-mean normal truncated at ±2 of its own scale.

    Args:
        t: the tensor to fill.
        std: with ``exact_std`` (default), the standard deviation of the result: a standard normal
            truncated at ±2 is divided by its std :data:`TRUNC2_STD` (≈ 0.8796) and multiplied by
            ``std``, so values lie within ``±2·std/0.8796``; this is the reference's LSNN
            initialisation. Without ``exact_std``, the truncated standard normal is simply
            multiplied by ``std`` (values within ``±2·std``, std ``0.8796·std``), the reference's
            convention for the readout.
        exact_std: see ``std``.

    Returns:
        ``t``.
    """
    with torch.no_grad():
        nn.init.trunc_normal_(t, mean=0.0, std=1.0, a=-2.0, b=2.0)
        t.mul_(std / TRUNC2_STD if exact_std else std)
    return t


def register_neuron_constants(
    module: nn.Module, values: dict, n: Optional[int], *, trainable: bool, owner: str
) -> None:
    """Validate ``tau_mem``, ``tau_adapt``, ``beta_adapt``, ``b0`` and register them on ``module``.

    Scalars are broadcast to ``[n]`` (kept 0-d when ``n`` is ``None``); all but ``beta_adapt``
    must be > 0. They become ``nn.Parameter``s when ``trainable``, else buffers.

    Raises:
        ValueError: naming ``owner``, the constant and the expected shape.
    """
    for name in NEURON_CONSTANTS:
        value = torch.as_tensor(values[name], dtype=torch.get_default_dtype()).clone()
        if n is not None and value.dim() == 0:
            value = value.expand(n).clone()
        if value.dim() > 1 or (n is not None and value.shape != (n,)):
            expected = "a scalar" if n is None else f"a scalar or shape [{n}]"
            raise ValueError(f"{owner}: {name} must be {expected}, got shape {tuple(value.shape)}")
        if name != "beta_adapt" and not bool((value > 0).all()):
            raise ValueError(f"{owner}: {name} must be > 0 for every neuron")
        if trainable:
            setattr(module, name, nn.Parameter(value))
        else:
            module.register_buffer(name, value)


def neuron_constants_as_params(module: nn.Module, surrogate) -> LSNNParams:
    """:class:`LSNNParams` from a module's registered constants, ``n_refractory`` and ``dt``."""
    return LSNNParams(
        **{name: getattr(module, name) for name in NEURON_CONSTANTS},
        n_refractory=module.n_refractory,
        dt=module.dt,
        surrogate=surrogate,
    )


class LSNN(nn.Module):
    """A recurrent layer of adaptive-threshold LIF neurons (docs/lsnn.md).

    Args:
        d_in: input features per time step.
        n_hidden: number of neurons ``N``.
        params: neuron constants (:class:`~spikerobust.functional.LSNNParams`); scalars are
            broadcast to one value per neuron.
        train_neuron_params: make ``tau_mem``, ``tau_adapt``, ``beta_adapt`` and ``b0``
            trainable ``nn.Parameter``s (per neuron). Otherwise they are buffers, still
            per-neuron, so mismatch and interval analysis can target them.
        surrogate: overrides ``params.surrogate``: a name (``"triangle"``, ``"fast_sigmoid"``,
            ``"atan"``), a :class:`~spikerobust.functional.Surrogate` or an snnTorch surrogate.
        backend: how BPTT runs: ``"auto"`` (default: the compiled event-driven kernels of
            :mod:`spikerobust.functional.lsnn_event` on the CPU when numba is installed, else
            the fused hand-written backward pass of :mod:`spikerobust.functional.lsnn_fused`,
            else the reference), ``"event"``, ``"fused"`` or ``"reference"`` (autograd through
            the time loop). All give the same spikes bit for bit and the same gradients up to
            rounding. Under ``torch.func`` transforms (``vmap``, ``grad``) the reference path runs.

    Attributes:
        neuron_mask: ``None`` (default), or a 0/1 tensor ``[N]`` that every forward pass
            multiplies into the spikes inside the recurrence (``spike_mask`` of
            :func:`~spikerobust.functional.lsnn_unroll`): dropout as the reference does it. A
            plain attribute (not a buffer, not in ``state_dict``), set and cleared by
            :class:`~spikerobust.robust.methods.dropout.Dropout` during a training step.

    Shape:
        - Input: ``[T, B, d_in]`` (time first), floating point.
        - Output: spikes ``[T, B, N]``; with ``return_states=True`` also an
          :class:`~spikerobust.functional.LSNNTrace` of ``v``, ``b`` and ``threshold``, each
          ``[T, B, N]``; with ``return_final_state=True`` also the
          :class:`~spikerobust.functional.LSNNState` after the last step, each tensor ``[B, N]``.

    Examples:
        >>> import torch
        >>> layer = LSNN(2, 16)
        >>> z = layer(torch.randn(50, 4, 2))
        >>> z.shape
        torch.Size([50, 4, 16])
        >>> z, trace = layer(torch.randn(50, 4, 2), return_states=True)
        >>> trace.threshold.shape
        torch.Size([50, 4, 16])

        A long sequence in two pieces, the state carried over, gives the spikes of one run:

        >>> x = torch.randn(50, 4, 2)
        >>> z1, state = layer(x[:20], return_final_state=True)
        >>> z2 = layer(x[20:], state)
        >>> bool(torch.equal(torch.cat([z1, z2]), layer(x)))
        True
    """

    #: The model protocol (:mod:`spikerobust.protocol`): input ``[T, B, d_in]``.
    input_layout = TIME_FIRST

    def spiking_layers(self) -> list:
        """``[self]``: the layer is its own spiking layer (:func:`spikerobust.protocol.spiking_layers`)."""
        return [self]

    def __init__(
        self,
        d_in: int,
        n_hidden: int,
        params: Optional[LSNNParams] = None,
        *,
        train_neuron_params: bool = False,
        surrogate=None,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if backend not in BACKENDS:
            raise ValueError(f"LSNN: backend must be one of {BACKENDS}, got {backend!r}")
        if int(d_in) < 1 or int(n_hidden) < 1:
            raise ValueError(f"LSNN: d_in and n_hidden must be >= 1, got d_in={d_in}, n_hidden={n_hidden}")
        params = LSNNParams() if params is None else params
        self.d_in, self.n_hidden = int(d_in), int(n_hidden)
        self.n_refractory = int(params.n_refractory)
        self.dt = float(params.dt)
        self.surrogate = get_surrogate(surrogate if surrogate is not None else params.surrogate)
        if backend in ("event", "fused"):
            resolve_backend(backend, LSNNParams(surrogate=self.surrogate))  # raises if unsupported
        self.backend = backend
        self.w_in = nn.Parameter(torch.empty(self.d_in, self.n_hidden))
        self.w_rec = nn.Parameter(torch.empty(self.n_hidden, self.n_hidden))
        register_neuron_constants(
            self, {name: getattr(params, name) for name in NEURON_CONSTANTS}, self.n_hidden,
            trainable=train_neuron_params, owner="LSNN",
        )
        self.neuron_mask: Optional[torch.Tensor] = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Reference initialisation: normals truncated at ±2 of their scale, rescaled so that their
        standard deviations are exactly sqrt(2/(d_in+N)) (``W_in``) and sqrt(1/N) (``W_rec``)."""
        truncated_normal_(self.w_in, math.sqrt(2.0 / (self.d_in + self.n_hidden)))
        truncated_normal_(self.w_rec, math.sqrt(1.0 / self.n_hidden))
        with torch.no_grad():
            self.w_rec.fill_diagonal_(0.0)

    def neuron_params(self) -> LSNNParams:
        """The current constants as an :class:`LSNNParams` (tensors, per neuron)."""
        return neuron_constants_as_params(self, self.surrogate)

    def forward(
        self,
        x: torch.Tensor,
        state: Optional[LSNNState] = None,
        *,
        return_states: bool = False,
        return_final_state: bool = False,
    ) -> Union[torch.Tensor, tuple]:
        """Run the layer over the sequence ``x``.

        Args:
            x: input ``[T, B, d_in]``.
            state: the :class:`~spikerobust.functional.LSNNState` to start from (all zeros if
                ``None``), e.g. the final state of the previous piece of a longer sequence.
            return_states: also return the :class:`~spikerobust.functional.LSNNTrace`.
            return_final_state: also return the state after the last step, to continue from.

        Returns:
            ``spikes`` ``[T, B, N]`` alone, or a tuple ``(spikes, trace, final_state)`` holding
            only what was asked for, in that order.

        Raises:
            ValueError: for an input of the wrong shape, device or dtype.
        """
        check_time_first(x, self.d_in, device=self.w_in.device)
        if x.dtype != self.w_in.dtype:
            raise ValueError(
                f"x has dtype {x.dtype} but the LSNN's parameters are {self.w_in.dtype}; "
                f"convert one of them (e.g. model.double() or x.float())"
            )
        spikes, final_state, trace = lsnn_unroll(
            x,
            self.neuron_params(),
            self.w_in,
            self.w_rec,
            state,
            return_states=return_states,
            backend=self.backend,
            spike_mask=self.spike_mask(),
        )
        out = (spikes,) + ((trace,) if return_states else ()) + ((final_state,) if return_final_state else ())
        return out if len(out) > 1 else spikes

    def spike_mask(self) -> Optional[torch.Tensor]:
        """:attr:`neuron_mask`, checked (shape ``[N]``) and in the parameters' dtype and device, or ``None``.

        Raises:
            ValueError: for a mask of another shape.
        """
        mask = self.neuron_mask
        if mask is None:
            return None
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (self.n_hidden,):
            raise ValueError(
                f"LSNN: neuron_mask must be None or a tensor of shape [{self.n_hidden}], "
                f"got {getattr(mask, 'shape', type(mask))}"
            )
        return mask.to(dtype=self.w_in.dtype, device=self.w_in.device)

    def extra_repr(self) -> str:
        return (
            f"d_in={self.d_in}, n_hidden={self.n_hidden}, surrogate={self.surrogate!r}, "
            f"backend={self.backend!r}"
        )


class LSNNClassifier(nn.Module):
    """LSNN layer plus time-averaged linear readout: the paper's ECG and speech model.

    Args:
        d_in: input features per step (ECG: 2 leads; speech: 40 MFCCs).
        n_hidden: neurons (reference: 256).
        n_classes: output classes (required).
        params, train_neuron_params, surrogate, backend: passed to :class:`LSNN`.
        rate_target, rate_strength: firing-rate regulariser (docs/lsnn.md: 0.01 and 0.001).

    Shape:
        ``[T, B, d_in]`` → logits ``[B, n_classes]``.

    Examples:
        >>> import torch
        >>> model = LSNNClassifier(2, n_hidden=32, n_classes=4)
        >>> x = torch.randn(100, 8, 2)
        >>> model(x).shape
        torch.Size([8, 4])
        >>> logits, reg = model(x, return_aux_loss=True)
        >>> loss = torch.nn.functional.cross_entropy(logits, torch.zeros(8, dtype=torch.long)) + reg
    """

    #: The model protocol (:mod:`spikerobust.protocol`): time-first input;
    #: ``forward(x, return_aux_loss=True)`` returns ``(logits, rate_regulariser)``.
    input_layout = TIME_FIRST
    supports_aux_loss = True

    def spiking_layers(self) -> list:
        """``[self.lsnn]``."""
        return [self.lsnn]

    def __init__(
        self,
        d_in: int,
        n_hidden: int = 256,
        n_classes: Optional[int] = None,
        *,
        params: Optional[LSNNParams] = None,
        train_neuron_params: bool = False,
        surrogate=None,
        backend: str = "auto",
        rate_target: float = 0.01,
        rate_strength: float = 1e-3,
    ) -> None:
        super().__init__()
        for name, v in (("d_in", d_in), ("n_hidden", n_hidden), ("n_classes", n_classes)):
            if isinstance(v, bool) or not hasattr(v, "__index__") or int(v) < 1:
                raise ValueError(f"LSNNClassifier: {name} must be a positive integer, got {v!r}")
        self.n_classes = int(n_classes)
        self.rate_target = float(rate_target)
        self.rate_strength = float(rate_strength)
        self.lsnn = LSNN(
            d_in,
            n_hidden,
            params,
            train_neuron_params=train_neuron_params,
            surrogate=surrogate,
            backend=backend,
        )
        self.readout = nn.Linear(n_hidden, self.n_classes)
        self.reset_readout()

    def reset_readout(self) -> None:
        """Reference readout initialisation: ``W_out`` = 0.01 × a standard normal truncated at ±2
        (not rescaled to unit std, as in the reference), ``b_out = 0``."""
        truncated_normal_(self.readout.weight, 0.01, exact_std=False)
        with torch.no_grad():
            self.readout.bias.zero_()

    @property
    def d_in(self) -> int:
        return self.lsnn.d_in

    def rate_loss(self, spikes: torch.Tensor) -> torch.Tensor:
        """Firing-rate regulariser of docs/lsnn.md for spikes ``[T, B, N]``."""
        return rate_regulariser(spikes, self.rate_target, self.rate_strength)

    def forward(
        self,
        x: torch.Tensor,
        *,
        return_aux_loss: bool = False,
        return_spikes: bool = False,
    ):
        """Logits ``[B, C]``; optionally also the rate regulariser (``return_aux_loss``) and the
        hidden spikes ``[T, B, N]`` (``return_spikes``), in that order."""
        spikes = self.lsnn(x)
        rates = time_mean(spikes)  # one consumer of the spikes: one gradient broadcast over time
        logits = nn.functional.linear(rates, self.readout.weight, self.readout.bias)
        out = [logits]
        if return_aux_loss:
            out.append(rate_regulariser(spikes, self.rate_target, self.rate_strength, rates=rates))
        if return_spikes:
            out.append(spikes)
        return out[0] if len(out) == 1 else tuple(out)
