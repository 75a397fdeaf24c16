"""Run any model's Conv2d and Linear layers on simulated PCM crossbars (SPEC §6).

:class:`PCMSimulator` wraps a model without changing its class or its parameters. It keeps, per
analog layer, the programmed state of the devices (target and programmed conductances of both
halves of each differential pair, and their drift exponents) and, after :meth:`~PCMSimulator.set_time`,
the read conductances at inference time ``t`` together with the drift-compensation gain. During
a call, each analog layer's ``forward`` is replaced *on the instance* by the crossbar computation
and restored afterwards (also on error); parameters are only read.

The flow of one repetition (what :func:`~spikerobust.robust.pcm.pcm_accuracy_over_time` does)::

    sim = PCMSimulator(model, PCMConfig(), seed=0)
    sim.program()          # map weights, programming noise, drift exponents, reference readout at t0
    sim.set_time(3600.0)   # drift to t, draw read noise, global drift compensation
    logits = sim(x)

Global drift compensation (GDC): every layer is read with a fixed calibration input ``x_cal``
(default: all ones, one vector of the layer's unrolled input size) right after programming (at
t0, with its own read-noise draw) and at each ``t`` (with the read conductances used for
inference). The layer output (before the digital bias) is multiplied by
``α = Σ|y_cal(t0)| / Σ|y_cal(t)|`` — one α per layer (default) or one per tile
(``drift_compensation="tile"``). Biases stay digital and exact.

Two computation paths give the same numbers: when no converter is simulated and compensation is
per layer, tiling cannot change a linear product, so the layer runs as one ``F.linear``/``F.conv2d``
with the effective weight ``α·w_scale·(g⁺_r − g⁻_r)`` (fast); otherwise (DAC/ADC, per-tile
compensation, or ``explicit_tiles=True``) the unrolled input goes through the tiles one by one.

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
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Dict, Iterable, Iterator, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from . import devices
from .crossbar import crossbar_matmul, map_weights, tile_readout

__all__ = ["PCMConfig", "PCMSimulator", "ANALOG_LAYERS"]

ANALOG_LAYERS = (nn.Linear, nn.Conv2d)


@dataclass(frozen=True)
class PCMConfig:
    """Settings of the PCM simulation; defaults follow SPEC §6.

    Args:
        g_max: conductance of a fully-on device in µS (25).
        t0: time of programming / the drift reference in seconds (20; the paper's runs: 25).
        t_read: read duration in seconds of the 1/f noise (250 ns).
        prog_noise_scale: multiplier of the programming-noise σ (0 switches it off).
        read_noise_scale: multiplier of the read-noise σ (0 switches it off).
        drift: whether conductances drift.
        drift_nu: ``None``: draw ν per device from the SPEC model; a float: every device drifts
            with this exponent (a pure global drift).
        drift_compensation: ``"layer"`` (one GDC gain per layer), ``"tile"`` (one per tile) or
            ``None`` (no compensation).
        calibration: the fixed GDC input: ``"ones"`` or ``"random"`` (``n_calibration`` seeded
            uniform[−1, 1] vectors per layer, drawn once at programming). With an ADC, an
            all-ones read of a tile whose rows sum beyond ``adc_bound`` saturates and biases α;
            ``"random"`` avoids that.
        n_calibration: number of random calibration vectors.
        tile_size: crossbar tile ``rows × cols`` (256; an int or a pair; ``None``: unbounded).
        dac_bits, adc_bits: converter resolutions (``None``: ideal; SPEC option: 8).
        adc_bound: ADC range in units of a full-scale input on a fully-on device.
        clip_sigma: clip each layer's weights to ±clip_sigma·std before mapping (``None``: off).
        explicit_tiles: always compute tile by tile (for checking; slower).
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

    def __post_init__(self) -> None:
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
    shape: torch.Size
    w_scale: torch.Tensor
    g_target: Tuple[torch.Tensor, torch.Tensor]
    g_prog: Tuple[torch.Tensor, torch.Tensor]
    nu: Tuple[torch.Tensor, torch.Tensor]
    calib: torch.Tensor
    ref_readout: Optional[torch.Tensor] = None
    g_diff: Optional[torch.Tensor] = None      # read g⁺ − g⁻ at the current time
    gain: Optional[torch.Tensor] = None        # GDC gain: 0-d (layer) or [n_i, n_j] (tile)
    weight: Optional[torch.Tensor] = None      # effective weight for the fast path


def _matrix(module: nn.Module) -> torch.Tensor:
    return module.weight.detach().reshape(module.weight.shape[0], -1)


class PCMSimulator:
    """A PCM deployment of ``model``'s Conv2d/Linear layers; call it like the model.

    Args:
        model: any ``nn.Module``; its class and parameters are left unchanged.
        config: :class:`PCMConfig` (default: SPEC §6).
        include, exclude: glob patterns over module names choosing the analog layers (default:
            every ``nn.Linear`` and ``nn.Conv2d``).
        seed: seed of the simulator's ``torch.Generator`` (``None``: the global RNG).

    Raises:
        ValueError: if no analog layer is selected.
    """

    def __init__(
        self,
        model: nn.Module,
        config: Optional[PCMConfig] = None,
        *,
        include: Optional[Iterable[str]] = None,
        exclude: Optional[Iterable[str]] = None,
        seed: Optional[int] = None,
    ) -> None:
        self.model = model
        self.config = config if config is not None else PCMConfig()
        self.layers: Dict[str, nn.Module] = {}
        for name, mod in model.named_modules():
            if not isinstance(mod, ANALOG_LAYERS):
                continue
            if include is not None and not any(fnmatch(name, p) for p in include):
                continue
            if exclude is not None and any(fnmatch(name, p) for p in exclude):
                continue
            self.layers[name] = mod
        if not self.layers:
            raise ValueError(f"no nn.Linear/nn.Conv2d layer selected in {type(model).__name__} "
                             f"(include={include}, exclude={exclude})")
        self._seed = seed
        self._generator: Optional[torch.Generator] = None
        self._state: Dict[str, _LayerState] = {}
        self.time: Optional[float] = None

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
        """Whether layers are computed tile by tile (converters, per-tile GDC or ``explicit_tiles``)."""
        c = self.config
        return c.explicit_tiles or c.dac_bits is not None or c.adc_bits is not None or c.drift_compensation == "tile"

    def _tile_kwargs(self) -> dict:
        c = self.config
        return dict(tile_size=c.tile_size, dac_bits=c.dac_bits, adc_bits=c.adc_bits, adc_bound=c.adc_bound)

    # ------------------------------------------------------------------ programming and time
    def program(self, generator: Optional[torch.Generator] = None) -> "PCMSimulator":
        """Write the current weights to the devices: mapping, programming noise, drift exponents.

        Also reads every layer with its calibration input at ``t0`` (the GDC reference) and
        leaves the simulator at ``t = t0``. Returns ``self``.
        """
        c = self.config
        self._state = {}
        for name, mod in self.layers.items():
            w = _matrix(mod)
            gen = self._gen(generator, w.device)
            g_plus, g_minus, w_scale = map_weights(w, c.clip_sigma)
            g_prog = tuple(devices.program_conductance(g, scale=c.prog_noise_scale, g_max=c.g_max, generator=gen)
                           for g in (g_plus, g_minus))
            nu = tuple(devices.draw_drift_exponent(g, fixed=c.drift_nu, generator=gen) for g in (g_plus, g_minus))
            if c.calibration == "ones":
                calib = torch.ones(1, w.shape[1], dtype=w.dtype, device=w.device)
            else:
                calib = torch.rand(int(c.n_calibration), w.shape[1], dtype=w.dtype, device=w.device, generator=gen) * 2 - 1
            self._state[name] = _LayerState(mod.weight.shape, w_scale, (g_plus, g_minus), g_prog, nu, calib)
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

    def _read_all(self, t: float, generator: Optional[torch.Generator], reference: bool) -> None:
        c = self.config
        for st in self._state.values():
            gen = self._gen(generator, st.w_scale.device)
            g_read = []
            for g_p, nu in zip(st.g_prog, st.nu):
                g_t = devices.drift_conductance(g_p, nu, t, c.t0) if c.drift else g_p
                g_read.append(devices.read_conductance(g_t, g_p, t, scale=c.read_noise_scale, t_read=c.t_read, generator=gen))
            g_diff = g_read[0] - g_read[1]
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
            st.weight = None if self.explicit else (gain * st.w_scale * g_diff).reshape(st.shape)
        self.time = float(t)

    def effective_weights(self) -> Dict[str, torch.Tensor]:
        """Name → the weight each analog layer realises now (``α·w_scale·(g⁺_r − g⁻_r)``, layer GDC only)."""
        if not self._state:
            raise RuntimeError("call program() before effective_weights()")
        if self.config.drift_compensation == "tile":
            raise ValueError("effective_weights() is undefined with per-tile drift compensation")
        return {f"{n}.weight": (st.gain * st.w_scale * st.g_diff).reshape(st.shape) for n, st in self._state.items()}

    # ------------------------------------------------------------------ forward
    def _matmul(self, st: _LayerState, x2d: torch.Tensor) -> torch.Tensor:
        gain = st.gain if st.gain.dim() == 2 else None
        y = crossbar_matmul(x2d, st.g_diff.to(x2d.dtype), tile_gain=gain, **self._tile_kwargs())
        scale = st.w_scale if gain is not None else st.w_scale * st.gain
        return y * scale

    def _linear(self, name: str, x: torch.Tensor) -> torch.Tensor:
        mod, st = self.layers[name], self._state[name]
        if st.weight is not None:
            return F.linear(x, st.weight.to(x.dtype), mod.bias)
        y = self._matmul(st, x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], -1)
        return y if mod.bias is None else y + mod.bias

    def _conv2d(self, name: str, x: torch.Tensor) -> torch.Tensor:
        mod, st = self.layers[name], self._state[name]
        if st.weight is not None:
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

    @contextlib.contextmanager
    def deployed(self) -> Iterator[nn.Module]:
        """Context in which calling the model runs its analog layers on the crossbars.

        Each selected layer's ``forward`` is overridden on the instance and restored on exit.

        Raises:
            RuntimeError: before :meth:`program`.
        """
        if not self._state:
            raise RuntimeError("call program() before running the simulator")
        patched = []
        try:
            for name, mod in self.layers.items():
                had = "forward" in mod.__dict__
                patched.append((mod, had, mod.__dict__.get("forward")))
                fn = self._linear if isinstance(mod, nn.Linear) else self._conv2d
                object.__setattr__(mod, "forward", functools.partial(fn, name))
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
        return f"PCMSimulator({type(self.model).__name__}, layers={list(self.layers)}, t={self.time}, {self.config})"
