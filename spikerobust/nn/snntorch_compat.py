"""An adaptive-threshold LIF neuron (the LSNN neuron of docs/lsnn.md) in snnTorch's single-step style.

snnTorch's neurons (``Leaky``, ``RLeaky``, ...) are called once per time step inside the user's
own loop: ``spk, mem = lif(cur, mem)``. snnTorch has no neuron with an adaptive threshold;
:class:`AdaptiveLeaky` is one, with the same calling convention and snnTorch surrogates accepted
as ``surrogate`` (snnTorch's ``spike_grad``). Its dynamics are exactly
:func:`spikerobust.functional.lsnn_step_current` (adaptation, threshold ``A = b0 + beta_adapt * b``, reset by subtraction of ``A``, refractory
period, spike on the scaled voltage ``(v - A) / A``), so a network built from it computes the
same numbers as :class:`spikerobust.nn.LSNN`.

**State.** An adaptive neuron has four state variables, not one: membrane ``v``, last spikes
``z``, adaptation ``b`` and refractory counter ``r``. They travel together as one
:class:`~spikerobust.functional.LSNNState` (a ``NamedTuple``) in the place where snnTorch passes
``mem``::

    state = neuron.init_leaky()            # like snnTorch: empty, sized on the first call
    for t in range(T):
        spk, state = neuron(cur[t], state)  # state.v is the membrane potential ("mem")
    spk, (mem, z, b, r) = neuron(cur[t], state)  # unpacks like a tuple too

**Why not a subclass of** ``snntorch.SpikingNeuron``: its constructor appends every instance to the
class attribute ``SpikingNeuron.instances`` and keeps it alive for the life of the process (the
memory leak snnTorch users report when they build many networks); its hidden-state helpers
(``init_hidden=True``, ``reset_hidden``, ``detach_hidden``) rely on that list and on state stored on
the module. :class:`AdaptiveLeaky` is a plain ``nn.Module`` with the same call convention and
explicit, returned state (spikerobust's house style), so it needs neither; snnTorch itself is
not even imported unless you pass one of its surrogates. :meth:`AdaptiveLeaky.detach` does what
``detach_hidden`` does for truncated BPTT.

Differences from snnTorch's ``Leaky`` to keep in mind: the threshold is adaptive and the spike
condition is ``v > A`` (snnTorch: ``mem > threshold``); constants are time constants in steps
(``tau_mem = 20`` means a decay ``exp(-1/20)`` per step; snnTorch takes the decay ``beta``);
the input current is scaled by ``1 - alpha`` as in docs/lsnn.md.

**Argument names.** They are :class:`~spikerobust.nn.LSNN`'s: ``surrogate``, ``n_hidden`` and
``train_neuron_params``. The earlier names ``spike_grad``, ``n_neurons`` and
``learn_neuron_params`` are still accepted for one release, with a ``DeprecationWarning``.

Shape:
    - ``cur``: ``[B, N]`` (one time step; or any shape the constants broadcast against)
    - ``spk`` and each state tensor: same shape as ``cur``

Examples:
    >>> import torch
    >>> neuron = AdaptiveLeaky()
    >>> state = neuron.init_leaky()
    >>> spk, state = neuron(torch.full((1, 3), 1.0), state)
    >>> spk
    tensor([[1., 1., 1.]])
    >>> round(state.v[0, 0].item(), 5)
    0.04877
"""

from __future__ import annotations

import math
import warnings
from typing import Optional

import torch
from torch import nn

from ..functional.lsnn import LSNNParams, LSNNState, lsnn_step_current, zero_diagonal
from ..functional.surrogate import get_surrogate
from .lsnn import neuron_constants_as_params, register_neuron_constants, truncated_normal_

__all__ = ["AdaptiveLeaky", "RENAMED_ARGUMENTS"]

#: Former argument names of :class:`AdaptiveLeaky` → the current ones (:class:`~spikerobust.nn.LSNN`'s),
#: accepted with a ``DeprecationWarning`` for one release.
RENAMED_ARGUMENTS = {"spike_grad": "surrogate", "n_neurons": "n_hidden", "learn_neuron_params": "train_neuron_params"}


def _deprecated(old: str) -> None:
    warnings.warn(
        f"AdaptiveLeaky: {old!r} is deprecated and will be removed in the next release; use "
        f"{RENAMED_ARGUMENTS[old]!r} (the name spikerobust.nn.LSNN uses)",
        DeprecationWarning,
        stacklevel=3,
    )


class AdaptiveLeaky(nn.Module):
    """Adaptive-threshold LIF neuron (docs/lsnn.md) stepped like an snnTorch neuron.

    Args:
        tau_mem: membrane time constant in steps (20); scalar or per-neuron ``[N]``.
        tau_adapt: adaptation time constant in steps (98).
        beta_adapt: adaptation strength (2.0).
        b0: base threshold (0.01).
        n_refractory: refractory period in steps (2).
        dt: time step (1.0).
        surrogate: surrogate gradient: ``None`` (triangular, gamma 0.3), a name, a
            :class:`~spikerobust.functional.Surrogate`, or an snnTorch surrogate such as
            ``snntorch.surrogate.atan()`` (snnTorch calls it ``spike_grad``).
        n_hidden: number of neurons ``N``; needed for ``recurrent`` and to give scalar constants
            one value per neuron (otherwise they stay scalars and broadcast).
        train_neuron_params: make the four constants trainable ``nn.Parameter``s (else buffers).
        recurrent: add all-to-all recurrent weights ``w_rec`` ``[N, N]`` with a zero diagonal
            (like snnTorch's ``RLeaky(all_to_all=True)``, without bias); the recurrent input is
            ``z_{t-1} @ w_rec``. Requires ``n_hidden``.
        **deprecated: ``spike_grad``, ``n_neurons``, ``learn_neuron_params``: the former names of
            ``surrogate``, ``n_hidden``, ``train_neuron_params`` (:data:`RENAMED_ARGUMENTS`).

    Raises:
        TypeError: for an unknown keyword, or a former name given together with its new one.
        ValueError: for invalid constants, sizes or ``recurrent`` without ``n_hidden``.

    Shape:
        ``cur`` ``[B, N]`` → ``spk`` ``[B, N]`` and an :class:`~spikerobust.functional.LSNNState`
        whose tensors are ``[B, N]``.

    Examples:
        >>> import torch
        >>> import snntorch.surrogate as surrogate
        >>> fc = torch.nn.Linear(4, 8)
        >>> neuron = AdaptiveLeaky(n_hidden=8, surrogate=surrogate.fast_sigmoid(slope=25))
        >>> x = torch.randn(10, 2, 4)
        >>> state = neuron.init_leaky()
        >>> spikes = []
        >>> for t in range(10):
        ...     spk, state = neuron(fc(x[t]), state)
        ...     spikes.append(spk)
        >>> torch.stack(spikes).shape
        torch.Size([10, 2, 8])
    """

    def spiking_layers(self) -> list:
        """``[self]`` (:func:`spikerobust.protocol.spiking_layers`); one step per call, so its input
        ``[B, N]`` is batch first, the protocol's default layout."""
        return [self]

    def __init__(
        self,
        tau_mem=20.0,
        tau_adapt=98.0,
        beta_adapt=2.0,
        b0=0.01,
        n_refractory: int = 2,
        dt: float = 1.0,
        surrogate=None,
        *,
        n_hidden: Optional[int] = None,
        train_neuron_params: bool = False,
        recurrent: bool = False,
        **deprecated,
    ) -> None:
        super().__init__()
        new = {"surrogate": surrogate, "n_hidden": n_hidden, "train_neuron_params": train_neuron_params}
        defaults = {"surrogate": None, "n_hidden": None, "train_neuron_params": False}
        for old, value in deprecated.items():
            if old not in RENAMED_ARGUMENTS:
                raise TypeError(f"AdaptiveLeaky() got an unexpected keyword argument {old!r}")
            name = RENAMED_ARGUMENTS[old]
            if new[name] is not defaults[name]:
                raise TypeError(f"AdaptiveLeaky: pass {name!r} only (not also its former name {old!r})")
            _deprecated(old)
            new[name] = value
        surrogate, n_hidden, train_neuron_params = new["surrogate"], new["n_hidden"], new["train_neuron_params"]
        if n_hidden is not None and int(n_hidden) < 1:
            raise ValueError(f"AdaptiveLeaky: n_hidden must be >= 1, got {n_hidden}")
        if recurrent and n_hidden is None:
            raise ValueError("AdaptiveLeaky: recurrent=True needs n_hidden (the shape [N, N] of w_rec)")
        if int(n_refractory) < 0 or int(n_refractory) != n_refractory:
            raise ValueError(
                f"AdaptiveLeaky: n_refractory must be a non-negative integer, got {n_refractory}"
            )
        if not float(dt) > 0:
            raise ValueError(f"AdaptiveLeaky: dt must be > 0, got {dt}")
        self.n_hidden = None if n_hidden is None else int(n_hidden)
        self.n_refractory = int(n_refractory)
        self.dt = float(dt)
        self.surrogate = get_surrogate(surrogate)
        register_neuron_constants(
            self, dict(tau_mem=tau_mem, tau_adapt=tau_adapt, beta_adapt=beta_adapt, b0=b0), self.n_hidden,
            trainable=train_neuron_params, owner="AdaptiveLeaky",
        )
        if recurrent:
            self.w_rec = nn.Parameter(torch.empty(self.n_hidden, self.n_hidden))
            truncated_normal_(self.w_rec, math.sqrt(1.0 / self.n_hidden))
            with torch.no_grad():
                self.w_rec.fill_diagonal_(0.0)
        else:
            self.register_parameter("w_rec", None)

    def neuron_params(self) -> LSNNParams:
        """The constants as :class:`~spikerobust.functional.LSNNParams` (what the step uses), as
        :meth:`spikerobust.nn.LSNN.neuron_params`."""
        return neuron_constants_as_params(self, self.surrogate)

    def params(self) -> LSNNParams:
        """Deprecated name of :meth:`neuron_params` (kept for one release)."""
        warnings.warn("AdaptiveLeaky.params() is deprecated; use neuron_params() (as spikerobust.nn.LSNN)",
                      DeprecationWarning, stacklevel=2)
        return self.neuron_params()

    @property
    def n_neurons(self) -> Optional[int]:
        """Deprecated name of :attr:`n_hidden` (kept for one release)."""
        _deprecated("n_neurons")
        return self.n_hidden

    @property
    def spike_grad(self):
        """Deprecated name of :attr:`surrogate` (kept for one release)."""
        _deprecated("spike_grad")
        return self.surrogate

    def init_leaky(self) -> LSNNState:
        """An empty state, sized to the input on the first call (snnTorch's ``init_leaky``)."""
        empty = torch.zeros(0, dtype=self.b0.dtype, device=self.b0.device)
        return LSNNState(empty, empty, empty, empty)

    def init_state(self, batch: int, n: Optional[int] = None) -> LSNNState:
        """An all-zero state ``[batch, n]`` (``n`` defaults to ``n_hidden``)."""
        n = self.n_hidden if n is None else int(n)
        if n is None:
            raise ValueError("AdaptiveLeaky.init_state: pass n (this neuron has no n_hidden)")
        zeros = torch.zeros(int(batch), n, dtype=self.b0.dtype, device=self.b0.device)
        return LSNNState(zeros, zeros, zeros, zeros)

    @staticmethod
    def detach(state: LSNNState) -> LSNNState:
        """The state cut from the graph (truncated BPTT; snnTorch's ``detach_hidden``)."""
        return LSNNState(*(s.detach() for s in state))

    def forward(self, cur: torch.Tensor, state: Optional[LSNNState] = None) -> tuple[torch.Tensor, LSNNState]:
        """One time step: input current ``cur`` → ``(spk, new_state)``.

        Args:
            cur: input current of this step ``[B, N]`` (e.g. the output of an ``nn.Linear``).
            state: the previous :class:`~spikerobust.functional.LSNNState`; ``None`` or the
                empty state of :meth:`init_leaky` starts from zeros.

        Returns:
            ``(spk, new_state)``; ``new_state.v`` is the membrane potential.

        Raises:
            ValueError: for a non-floating or non-finite ``cur``, a state of the wrong shape,
                or a neuron count that does not match ``n_hidden``.
        """
        if not isinstance(cur, torch.Tensor) or not cur.is_floating_point():
            raise ValueError(f"AdaptiveLeaky: cur must be a floating-point tensor [B, N], got {cur!r:.60}")
        if cur.dim() < 1:
            raise ValueError("AdaptiveLeaky: cur must have shape [B, N], got a 0-d tensor")
        if self.n_hidden is not None and cur.shape[-1] != self.n_hidden:
            raise ValueError(
                f"AdaptiveLeaky: cur has {cur.shape[-1]} neurons in its last dimension, expected "
                f"n_hidden = {self.n_hidden} (shape [B, {self.n_hidden}])"
            )
        if not bool(torch.isfinite(cur).all()):
            raise ValueError("AdaptiveLeaky: cur contains NaN or inf values")
        if isinstance(state, tuple) and not isinstance(state, LSNNState) and len(state) == 4:
            state = LSNNState(*state)
        if state is None or state.v.numel() == 0:
            zeros = torch.zeros_like(cur)
            state = LSNNState(zeros, zeros, zeros, zeros)
        elif not isinstance(state, LSNNState) or any(s.shape != cur.shape for s in state):
            shapes = [tuple(s.shape) for s in state] if isinstance(state, tuple) else type(state).__name__
            raise ValueError(
                f"AdaptiveLeaky: state must be an LSNNState (v, z, b, r) with tensors shaped like "
                f"cur {tuple(cur.shape)}, got {shapes}"
            )
        n = cur.shape[-1]
        w_rec = cur.new_zeros(n, n) if self.w_rec is None else zero_diagonal(self.w_rec)
        return lsnn_step_current(cur, state, self.neuron_params(), w_rec)

    def extra_repr(self) -> str:
        return (
            f"n_hidden={self.n_hidden}, n_refractory={self.n_refractory}, dt={self.dt}, "
            f"surrogate={self.surrogate!r}, recurrent={self.w_rec is not None}"
        )
