"""Run a model's weights on simulated PCM crossbars (docs/pcm.md; docs/pcm.md): Conv2d and Linear layers,
an LSNN's input and recurrent weights read at every time step, or any other weight tensor.

:class:`PCMSimulator` wraps a model without changing its class or its parameters. It keeps, per
mapped weight tensor, the programmed state of the devices (target and programmed conductances of
both halves of each differential pair, and their drift exponents) and, after
:meth:`~PCMSimulator.set_time`, the drifted and read conductances at inference time ``t``
together with the drift-compensation gain. During a call, the model runs with the crossbar
weights: each ``nn.Linear``/``nn.Conv2d`` layer's ``forward`` is replaced *on the instance* by
the crossbar computation, each :class:`~spikerobust.nn.LSNN`'s ``forward`` by a time loop that
reads ``w_in`` and ``w_rec`` from the crossbars at every step, and every other mapped tensor
(e.g. an LSNN classifier's readout weight, used functionally, or a tensor chosen with
``tensors=``) is substituted by its effective crossbar weight; all is restored afterwards (also
on error); parameters are only read.

What is drawn when:

* programming noise and the drift exponents ν: once per device, at :meth:`~PCMSimulator.program`;
* drift: to the time ``t`` of :meth:`~PCMSimulator.set_time` (a sample's duration is negligible);
* read noise: one draw per device at every ``set_time`` for feed-forward layers (frozen over the
  test set, as for the CNNs); for an LSNN (``lsnn_reads="step"``, the default) a fresh draw at
  every time step, since the hardware reads ``w_in`` and ``w_rec`` again for every step. The draw
  of a step is shared by the samples of a batch (one read cycle per step for the batch);
* global drift compensation (GDC): every mapped tensor is read with a fixed calibration input
  ``x_cal`` (default: all ones, one vector of the matrix's input size) right after programming
  (at t0, with its own read-noise draw) and at each ``t``. The product (before the digital bias)
  is multiplied by ``α = Σ|y_cal(t0)| / Σ|y_cal(t)|`` — one α per tensor (default) or one per
  tile (``drift_compensation="tile"``). Biases stay digital and exact.

Matrices: a layer weight ``[out, in, ...]`` is mapped as ``[out, in·...]``; an LSNN's ``w_in``
``[d_in, N]`` and ``w_rec`` ``[N, N]`` (used as ``x @ w``) as their transposes, ``w_rec`` with no
device on its diagonal (the LSNN has no self-connections); another tensor as ``[shape[0], -1]``.

Two computation paths give the same numbers: when no converter is simulated, tiling cannot change
a linear product, so a layer runs as one ``F.linear``/``F.conv2d`` with the effective weight
``α·w_scale·(g⁺_r − g⁻_r)`` (per-tile α expanded over its block; fast); with DAC/ADC or
``explicit_tiles=True`` the unrolled input of layers called as modules and of the LSNN goes
through the tiles one by one (a tensor used functionally, such as the LSNN readout, then sees its
effective weight without converters).

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    >>> sim = PCMSimulator(model, PCMConfig.noise_free(), seed=0).program()
    >>> x = torch.randn(5, 4)
    >>> torch.allclose(sim(x), model(x), atol=1e-6)
    True
    >>> _ = sim.set_time(86400.0)
    >>> torch.allclose(sim(x), model(x), atol=1e-6)   # noise-free drift is undone by GDC only if uniform
    False

    An LSNN classifier: ``w_in``, ``w_rec`` and the readout are mapped.

    >>> from spikerobust.nn import LSNNClassifier
    >>> lsnn = LSNNClassifier(2, 8, 3)
    >>> sorted(PCMSimulator(lsnn).tensor_names())
    ['lsnn.w_in', 'lsnn.w_rec', 'readout.weight']
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from ...functional.lsnn import LSNNLayer, LSNNTrace, initial_state, lsnn_step_current
from ...protocol import spiking_layers
from . import devices
from .crossbar import crossbar_matmul, map_weights, tile_readout, tile_shape

__all__ = ["PCMConfig", "PCMSimulator", "ANALOG_LAYERS"]

ANALOG_LAYERS = (nn.Linear, nn.Conv2d)


@dataclass(frozen=True)
class PCMConfig:
    """Settings of the PCM simulation; defaults follow docs/pcm.md.

    Args:
        g_max: conductance of a fully-on device in µS (25).
        t0: time of programming / the drift reference in seconds (20; the paper's runs: 25).
        t_read: read duration in seconds of the 1/f noise (250 ns).
        prog_noise_scale: multiplier of the programming-noise σ (0 switches it off).
        read_noise_scale: multiplier of the read-noise σ (0 switches it off).
        drift: whether conductances drift.
        drift_nu: ``None``: draw ν per device from the device model of docs/pcm.md; a float: every device drifts
            with this exponent (a pure global drift).
        drift_compensation: ``"layer"`` (one GDC gain per layer), ``"tile"`` (one per tile) or
            ``None`` (no compensation).
        calibration: the fixed GDC input: ``"ones"`` or ``"random"`` (``n_calibration`` seeded
            uniform[−1, 1] vectors per layer, drawn once at programming). With an ADC, an
            all-ones read of a tile whose rows sum beyond ``adc_bound`` saturates and biases α;
            ``"random"`` avoids that.
        n_calibration: number of random calibration vectors.
        tile_size: crossbar tile ``rows × cols`` (256; an int or a pair; ``None``: unbounded).
        dac_bits, adc_bits: converter resolutions (``None``: ideal; the paper's option: 8).
        adc_bound: ADC range in units of a full-scale input on a fully-on device.
        clip_sigma: clip each layer's weights to ±clip_sigma·std before mapping (``None``: off).
        explicit_tiles: always compute tile by tile (for checking; slower).
        lsnn_reads: ``"step"``: an LSNN's ``w_in``/``w_rec`` get a fresh read-noise draw at every
            time step; ``"once"``: one draw per :meth:`PCMSimulator.set_time`, like other layers.
    """

    g_max: float = devices.G_MAX_US
    t0: float = 20.0
    t_read: float = devices.T_READ
    prog_noise_scale: float = 1.0
    read_noise_scale: float = 1.0
    drift: bool = True
    drift_nu: Optional[float] = None
    drift_compensation: Optional[str] = "layer"
    calibration: str = "ones"
    n_calibration: int = 16
    tile_size: Optional[Union[int, Tuple[int, int]]] = 256
    dac_bits: Optional[int] = None
    adc_bits: Optional[int] = None
    adc_bound: float = 12.0
    clip_sigma: Optional[float] = None
    explicit_tiles: bool = False
    lsnn_reads: str = "step"

    def __post_init__(self) -> None:
        if self.lsnn_reads not in ("step", "once"):
            raise ValueError(f"PCMConfig.lsnn_reads must be 'step' or 'once', got {self.lsnn_reads!r}")
        for name in ("g_max", "t0", "t_read", "adc_bound"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"PCMConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("prog_noise_scale", "read_noise_scale"):
            if not float(getattr(self, name)) >= 0:
                raise ValueError(f"PCMConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.drift_nu is not None and not float(self.drift_nu) >= 0:
            raise ValueError(f"PCMConfig.drift_nu must be >= 0 or None, got {self.drift_nu}")
        if self.drift_compensation not in ("layer", "tile", None):
            raise ValueError(f"PCMConfig.drift_compensation must be 'layer', 'tile' or None, got {self.drift_compensation!r}")
        if self.calibration not in ("ones", "random"):
            raise ValueError(f"PCMConfig.calibration must be 'ones' or 'random', got {self.calibration!r}")
        if int(self.n_calibration) < 1:
            raise ValueError(f"PCMConfig.n_calibration must be >= 1, got {self.n_calibration}")
        for name in ("dac_bits", "adc_bits"):
            v = getattr(self, name)
            if v is not None and int(v) < 2:
                raise ValueError(f"PCMConfig.{name} must be >= 2 or None, got {v}")
        ts = self.tile_size
        if ts is not None:
            pair = (ts, ts) if isinstance(ts, int) else tuple(ts)
            if len(pair) != 2 or min(int(v) for v in pair) < 1:
                raise ValueError(f"PCMConfig.tile_size must be a positive int or (rows, cols), got {ts}")

    @classmethod
    def noise_free(cls, **overrides) -> "PCMConfig":
        """A config with programming and read noise off (drift on, ν per device unless overridden)."""
        base = dict(prog_noise_scale=0.0, read_noise_scale=0.0)
        base.update(overrides)
        return cls(**base)

    def replace(self, **changes) -> "PCMConfig":
        return dataclasses.replace(self, **changes)


@dataclass
class _LayerState:
    param: str                                  # the parameter's full name
    shape: torch.Size                           # the parameter's shape
    to_param: Callable[[torch.Tensor], torch.Tensor]  # crossbar matrix [out, in] → parameter layout
    w_scale: torch.Tensor
    g_target: Tuple[torch.Tensor, torch.Tensor]
    g_prog: Tuple[torch.Tensor, torch.Tensor]
    nu: Tuple[torch.Tensor, torch.Tensor]
    calib: torch.Tensor
    zero_diag: bool = False                     # no device on the diagonal (LSNN w_rec)
    ref_readout: Optional[torch.Tensor] = None
    g_drift: Optional[Tuple[torch.Tensor, torch.Tensor]] = None  # drifted conductances at the current time
    g_diff: Optional[torch.Tensor] = None       # read g⁺ − g⁻ at the current time
    gain: Optional[torch.Tensor] = None         # GDC gain: 0-d (tensor) or [n_i, n_j] (tile)
    weight: Optional[torch.Tensor] = None       # effective weight (parameter layout) for the fast path


def _matrix(module: nn.Module) -> torch.Tensor:
    return module.weight.detach().reshape(module.weight.shape[0], -1)


def _selected(name: str, include: Optional[Iterable[str]], exclude: Optional[Iterable[str]]) -> bool:
    if include is not None and not any(fnmatch(name, p) for p in include):
        return False
    return not (exclude is not None and any(fnmatch(name, p) for p in exclude))


class PCMSimulator:
    """A PCM deployment of ``model``'s weights; call it like the model.

    Args:
        model: any ``nn.Module``; its class and parameters are left unchanged.
        config: :class:`PCMConfig` (default: docs/pcm.md).
        include, exclude: glob patterns over module names choosing the analog layers (default:
            every ``nn.Linear``, ``nn.Conv2d`` and LSNN layer, i.e. any spiking layer the model
            declares (:func:`spikerobust.protocol.spiking_layers`) that is a
            :class:`~spikerobust.functional.LSNNLayer`, such as :class:`~spikerobust.nn.LSNN`).
        tensors: glob patterns over parameter names of further weight tensors to map (any
            tensor of two or more dimensions, e.g. a Norse ``LIFRecurrent``'s
            ``"*.recurrent_weights"``); they are substituted by their effective crossbar weight.
        seed: seed of the simulator's ``torch.Generator`` (``None``: the global RNG).

    Raises:
        ValueError: if nothing is selected, or a ``tensors`` pattern matches no tensor of 2+ dims.
    """

    def __init__(
        self,
        model: nn.Module,
        config: Optional[PCMConfig] = None,
        *,
        include: Optional[Iterable[str]] = None,
        exclude: Optional[Iterable[str]] = None,
        tensors: Optional[Iterable[str]] = None,
        seed: Optional[int] = None,
    ) -> None:
        self.model = model
        self.config = config if config is not None else PCMConfig()
        self.layers: Dict[str, nn.Module] = {}
        self.lsnns: Dict[str, nn.Module] = {}
        # the spiking layers the model declares (spikerobust.protocol); those exposing the LSNN's
        # weights and constants (functional.LSNNLayer) are rerun step by step on the crossbars
        spiking = {id(m) for m in spiking_layers(model) if isinstance(m, LSNNLayer)}
        for name, mod in model.named_modules():
            if not _selected(name, include, exclude):
                continue
            if isinstance(mod, ANALOG_LAYERS):
                self.layers[name] = mod
            elif id(mod) in spiking:
                self.lsnns[name] = mod
        self.extra: Dict[str, torch.Tensor] = {}
        params = dict(model.named_parameters())
        for pat in tensors or ():
            hits = [n for n, p in params.items() if fnmatch(n, pat) and p.dim() >= 2]
            if not hits:
                raise ValueError(f"tensors: {pat!r} matches no parameter of two or more dimensions")
            self.extra.update({n: params[n] for n in hits})
        if not (self.layers or self.lsnns or self.extra):
            raise ValueError(f"no nn.Linear/nn.Conv2d/LSNN layer or tensor selected in {type(model).__name__} "
                             f"(include={include}, exclude={exclude}, tensors={tensors})")
        self._seed = seed
        self._generator: Optional[torch.Generator] = None
        self._state: Dict[str, _LayerState] = {}
        self.time: Optional[float] = None

    def tensor_names(self) -> List[str]:
        """Names of the parameters mapped to crossbars."""
        return [st_param for st_param, *_ in self._sources()]

    def _sources(self):
        """``(param name, key, matrix [out, in], to_param, zero_diag)`` of every mapped tensor."""
        out = []
        for name, mod in self.layers.items():
            shape = mod.weight.shape
            out.append((f"{name}.weight" if name else "weight", name, _matrix(mod),
                        functools.partial(torch.reshape, shape=shape), False))
        for name, mod in self.lsnns.items():
            prefix = f"{name}." if name else ""
            out.append((f"{prefix}w_in", f"{prefix}w_in", mod.w_in.detach().t(), torch.t, False))
            w_rec = mod.w_rec.detach()
            w_rec = w_rec - torch.diag_embed(torch.diagonal(w_rec))
            out.append((f"{prefix}w_rec", f"{prefix}w_rec", w_rec.t(), torch.t, True))
        for pname, p in self.extra.items():
            if pname in {o[0] for o in out}:
                continue
            out.append((pname, pname, p.detach().reshape(p.shape[0], -1),
                        functools.partial(torch.reshape, shape=p.shape), False))
        return out

    # ------------------------------------------------------------------ randomness
    def _gen(self, generator: Optional[torch.Generator], device: torch.device) -> Optional[torch.Generator]:
        if generator is not None:
            return generator
        if self._seed is None:
            return None
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(int(self._seed))
        return self._generator

    @property
    def explicit(self) -> bool:
        """Whether layers are computed tile by tile (converters or ``explicit_tiles``)."""
        c = self.config
        return c.explicit_tiles or c.dac_bits is not None or c.adc_bits is not None

    def _tile_kwargs(self) -> dict:
        c = self.config
        return dict(tile_size=c.tile_size, dac_bits=c.dac_bits, adc_bits=c.adc_bits, adc_bound=c.adc_bound)

    # ------------------------------------------------------------------ programming and time
    def program(self, generator: Optional[torch.Generator] = None) -> "PCMSimulator":
        """Write the current weights to the devices: mapping, programming noise, drift exponents.

        Also reads every tensor with its calibration input at ``t0`` (the GDC reference) and
        leaves the simulator at ``t = t0``. Returns ``self``.
        """
        c = self.config
        self._state = {}
        for pname, key, w, to_param, zero_diag in self._sources():
            gen = self._gen(generator, w.device)
            g_plus, g_minus, w_scale = map_weights(w, c.clip_sigma)
            g_prog = tuple(devices.program_conductance(g, scale=c.prog_noise_scale, g_max=c.g_max, generator=gen)
                           for g in (g_plus, g_minus))
            nu = tuple(devices.draw_drift_exponent(g, fixed=c.drift_nu, generator=gen) for g in (g_plus, g_minus))
            if c.calibration == "ones":
                calib = torch.ones(1, w.shape[1], dtype=w.dtype, device=w.device)
            else:
                calib = torch.rand(int(c.n_calibration), w.shape[1], dtype=w.dtype, device=w.device, generator=gen) * 2 - 1
            self._state[key] = _LayerState(pname, torch.Size(w.shape), to_param, w_scale, (g_plus, g_minus), g_prog,
                                           nu, calib, zero_diag)
        self._read_all(c.t0, generator, reference=True)
        return self

    def set_time(self, t: float, generator: Optional[torch.Generator] = None) -> "PCMSimulator":
        """Drift the programmed devices to ``t`` seconds, draw read noise and compensate. Returns ``self``.

        Raises:
            RuntimeError: before :meth:`program`.
            ValueError: for ``t < t0``.
        """
        if not self._state:
            raise RuntimeError("call program() before set_time()")
        t = float(t)
        if not t >= self.config.t0:
            raise ValueError(f"t must be >= t0 = {self.config.t0} s, got {t}")
        self._read_all(t, generator, reference=False)
        return self

    def _read(self, st: _LayerState, t: float, gen: Optional[torch.Generator]) -> torch.Tensor:
        """One read of ``g⁺ − g⁻`` of the drifted devices (fresh read noise)."""
        c = self.config
        g_read = [devices.read_conductance(g_t, g_p, t, scale=c.read_noise_scale, t_read=c.t_read, generator=gen)
                  for g_t, g_p in zip(st.g_drift, st.g_prog)]
        g_diff = g_read[0] - g_read[1]
        if st.zero_diag:
            g_diff = g_diff - torch.diag_embed(torch.diagonal(g_diff))
        return g_diff

    def _gain_matrix(self, st: _LayerState) -> torch.Tensor:
        """The GDC gain as a scalar or expanded over each tile's block of the matrix."""
        if st.gain.dim() == 0:
            return st.gain
        rows, cols = tile_shape(self.config.tile_size, *st.shape)
        return st.gain.repeat_interleave(rows, 0)[: st.shape[0]].repeat_interleave(cols, 1)[:, : st.shape[1]]

    def _effective(self, st: _LayerState, g_diff: torch.Tensor) -> torch.Tensor:
        """The weight (parameter layout) the devices realise with the read ``g_diff``."""
        return st.to_param(self._gain_matrix(st) * st.w_scale * g_diff)

    def _read_all(self, t: float, generator: Optional[torch.Generator], reference: bool) -> None:
        c = self.config
        for st in self._state.values():
            gen = self._gen(generator, st.w_scale.device)
            st.g_drift = tuple(devices.drift_conductance(g_p, nu, t, c.t0) if c.drift else g_p
                               for g_p, nu in zip(st.g_prog, st.nu))
            g_diff = self._read(st, t, gen)
            gain = torch.ones((), dtype=g_diff.dtype, device=g_diff.device)
            if c.drift_compensation is not None:
                if c.drift_compensation == "tile":
                    readout = tile_readout(st.calib, g_diff, **self._tile_kwargs())
                else:
                    readout = crossbar_matmul(st.calib, g_diff, **self._tile_kwargs()).abs().sum()
                if reference:
                    st.ref_readout = readout
                gain = torch.where(readout > 0, st.ref_readout / readout.clamp(min=torch.finfo(readout.dtype).tiny),
                                   torch.ones_like(readout))
            st.g_diff, st.gain = g_diff, gain
            st.weight = self._effective(st, g_diff)
        self.time = float(t)

    def effective_weights(self) -> Dict[str, torch.Tensor]:
        """Parameter name → the weight each mapped tensor realises now (``α·w_scale·(g⁺_r − g⁻_r)``,
        a per-tile α expanded over its block; converters are not included)."""
        if not self._state:
            raise RuntimeError("call program() before effective_weights()")
        return {st.param: st.weight for st in self._state.values()}

    # ------------------------------------------------------------------ forward
    def _matmul(self, st: _LayerState, x2d: torch.Tensor, g_diff: Optional[torch.Tensor] = None) -> torch.Tensor:
        g_diff = st.g_diff if g_diff is None else g_diff
        gain = st.gain if st.gain.dim() == 2 else None
        y = crossbar_matmul(x2d, g_diff.to(x2d.dtype), tile_gain=gain, **self._tile_kwargs())
        scale = st.w_scale if gain is not None else st.w_scale * st.gain
        return y * scale

    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        mod, st = self.layers[name], self._state[name]
        if not self.explicit:
            return F.linear(x, st.weight.to(x.dtype), mod.bias)
        y = self._matmul(st, x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)
        return y if mod.bias is None else y + mod.bias

    def _conv2d(self, name: str, x: torch.Tensor) -> torch.Tensor:
        mod, st = self.layers[name], self._state[name]
        if not self.explicit:
            return mod._conv_forward(x, st.weight.to(x.dtype), mod.bias)
        if mod.groups != 1:
            raise ValueError(f"layer {name!r}: tiled PCM simulation supports groups=1 only, got groups={mod.groups}")
        squeeze = x.dim() == 3
        if squeeze:
            x = x.unsqueeze(0)
        kh, kw = mod.kernel_size
        if isinstance(mod.padding, str):
            pads = [0, 0, 0, 0]
            if mod.padding == "same":
                th, tw = mod.dilation[0] * (kh - 1), mod.dilation[1] * (kw - 1)
                pads = [tw // 2, tw - tw // 2, th // 2, th - th // 2]
            x = F.pad(x, pads, mode="constant" if mod.padding_mode == "zeros" else mod.padding_mode)
            padding = (0, 0)
        elif mod.padding_mode != "zeros":
            x = F.pad(x, mod._reversed_padding_repeated_twice, mode=mod.padding_mode)
            padding = (0, 0)
        else:
            padding = mod.padding
        b, _, h, w = x.shape
        h_out = (h + 2 * padding[0] - mod.dilation[0] * (kh - 1) - 1) // mod.stride[0] + 1
        w_out = (w + 2 * padding[1] - mod.dilation[1] * (kw - 1) - 1) // mod.stride[1] + 1
        cols = F.unfold(x, (kh, kw), dilation=mod.dilation, padding=padding, stride=mod.stride)  # [B, in·k·k, L]
        y = self._matmul(st, cols.transpose(1, 2).reshape(-1, cols.shape[1]))                   # [B·L, out]
        y = y.reshape(b, h_out * w_out, -1).transpose(1, 2).reshape(b, -1, h_out, w_out)
        if mod.bias is not None:
            y = y + mod.bias.view(1, -1, 1, 1)
        return y.squeeze(0) if squeeze else y

    def _lsnn(self, name: str, x: torch.Tensor, state=None, *, return_states: bool = False):
        """The LSNN's time loop with ``w_in`` and ``w_rec`` read from the crossbars at every step.

        Shape:
            ``x`` ``[T, B, d_in]`` → spikes ``[T, B, N]`` (and an ``LSNNTrace`` with ``return_states``).
        """
        mod = self.lsnns[name]
        prefix = f"{name}." if name else ""
        st_in, st_rec = self._state[f"{prefix}w_in"], self._state[f"{prefix}w_rec"]
        params = mod.neuron_params()
        mask = mod.spike_mask()
        t_steps, batch, _ = x.shape
        if state is None:
            state = initial_state(batch, st_rec.shape[0], dtype=x.dtype, device=x.device)
        fresh = self.config.lsnn_reads == "step" and self.config.read_noise_scale > 0
        gen = self._gen(None, st_in.w_scale.device)
        g_in, g_rec = st_in.g_diff, st_rec.g_diff
        spikes, vs, bs = [], [], []
        for t in range(t_steps):
            if fresh and t > 0:  # the first step uses set_time's read
                g_in, g_rec = self._read(st_in, self.time, gen), self._read(st_rec, self.time, gen)
            if self.explicit:
                i_in = self._matmul(st_in, x[t], g_in)
                w_rec = None
            else:
                i_in = x[t] @ self._effective(st_in, g_in).to(x.dtype)
                w_rec = self._effective(st_rec, g_rec).to(x.dtype)
            if w_rec is None:  # explicit tiles: the recurrent product through the crossbar
                rec = self._matmul(st_rec, state.z, g_rec)
                z, state = lsnn_step_current(i_in + rec, state, params, torch.zeros_like(st_rec.weight).to(x.dtype),
                                             spike_mask=mask)
            else:
                z, state = lsnn_step_current(i_in, state, params, w_rec, spike_mask=mask)
            spikes.append(z)
            if return_states:
                vs.append(state.v)
                bs.append(state.b)
        out = torch.stack(spikes)
        if return_states:
            b_trace = torch.stack(bs)
            return out, LSNNTrace(torch.stack(vs), b_trace, params.b0 + params.beta_adapt * b_trace)
        return out

    @contextlib.contextmanager
    def deployed(self) -> Iterator[nn.Module]:
        """Context in which calling the model runs its mapped weights on the crossbars.

        Each selected layer's and LSNN's ``forward`` is overridden on the instance, and every
        mapped parameter is substituted by its effective crossbar weight (for uses outside those
        forwards, e.g. an LSNN classifier's readout); all is restored on exit.

        Raises:
            RuntimeError: before :meth:`program`.
        """
        from torch.nn.utils.stateless import _reparametrize_module

        if not self._state:
            raise RuntimeError("call program() before running the simulator")
        patched = []
        try:
            for name, mod in list(self.layers.items()) + list(self.lsnns.items()):
                had = "forward" in mod.__dict__
                patched.append((mod, had, mod.__dict__.get("forward")))
                fn = self._linear if isinstance(mod, nn.Linear) else self._conv2d if isinstance(mod, nn.Conv2d) else self._lsnn
                object.__setattr__(mod, "forward", functools.partial(fn, name))
            subs = {st.param: st.weight for st in self._state.values()}
            with _reparametrize_module(self.model, subs, strict=False):
                yield self.model
        finally:
            for mod, had, old in patched:
                if had:
                    object.__setattr__(mod, "forward", old)
                else:
                    object.__delattr__(mod, "forward")

    def __call__(self, *args, **kwargs):
        """Run the model on the crossbars at the current time (see :meth:`set_time`)."""
        with self.deployed() as model:
            return model(*args, **kwargs)

    def __repr__(self) -> str:
        return (f"PCMSimulator({type(self.model).__name__}, tensors={self.tensor_names()}, t={self.time}, "
                f"{self.config})")
