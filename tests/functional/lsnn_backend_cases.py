"""Problems and checks shared by the tests of the hand-written LSNN backends ("fused", "event").

Each backend is compared with the reference path (autograd through ``lsnn_step_current``), the
independent second implementation, on the same random problem: every input that can carry a
gradient does, and the loss reads the spikes, the traces and the final state.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch.func import functional_call

from spikerobust.functional import LSNNParams, LSNNState, Triangle, lsnn_unroll
from spikerobust.nn import LSNNClassifier

#: names of the leaves of :func:`make_problem`, in order (the initial state's last when it has a gradient)
LEAF_NAMES = ["x", "w_in", "w_rec", "tau_mem", "tau_adapt", "beta_adapt", "b0", "v0", "z0", "b_0"]


def make_problem(dtype, sizes, *, n_refr=2, dt=1.0, scale=1.5, t_steps=None, surrogate=None, seed=0,
                 state_grad=True):
    """``(x, w_in, w_rec, params, state, leaves, weights)``: per-neuron constants, a random initial
    state and loss weights; ``sizes = (T, B, d_in, N)`` (``t_steps`` overrides ``T``). Inputs of
    ``scale`` <= 0.05 start from rest (silent networks)."""
    t_default, batch, d_in, n = sizes
    t_steps = t_default if t_steps is None else t_steps
    g = torch.Generator().manual_seed(seed)
    kw = dict(dtype=dtype)
    x = (scale * torch.randn(t_steps, batch, d_in, generator=g, **kw)).requires_grad_()
    w_in = torch.randn(d_in, n, generator=g, **kw).requires_grad_()
    w_rec = (0.4 * torch.randn(n, n, generator=g, **kw)).requires_grad_()
    consts = {
        "tau_mem": 15.0 + 10.0 * torch.rand(n, generator=g, **kw),
        "tau_adapt": 60.0 + 60.0 * torch.rand(n, generator=g, **kw),
        "beta_adapt": 1.0 + 2.0 * torch.rand(n, generator=g, **kw),
        "b0": 0.01 + 0.02 * torch.rand(n, generator=g, **kw),
    }
    consts = {k: v.requires_grad_() for k, v in consts.items()}
    spiking = scale > 0.05
    state = LSNNState(
        0.02 * torch.randn(batch, n, generator=g, **kw) * spiking,
        (torch.rand(batch, n, generator=g) < 0.2).to(dtype) * spiking,
        0.05 * torch.rand(batch, n, generator=g, **kw),
        torch.zeros(batch, n, **kw),
    )
    if state_grad:
        state = LSNNState(*(s.clone().requires_grad_() for s in state[:3]), state.r)
    params = LSNNParams(**consts, n_refractory=n_refr, dt=dt, surrogate=surrogate or Triangle(0.3))
    leaves = [x, w_in, w_rec, *consts.values()] + (list(state[:3]) if state_grad else [])
    weights = torch.randn(t_steps, batch, n, generator=g, **kw)
    return x, w_in, w_rec, params, state, leaves, weights


def problem_loss(z, final, trace, weights):
    """A loss in which the spikes, the final state and the traces all carry gradient."""
    return (
        (z * weights).sum()
        + 0.3 * (trace.v ** 2).sum()
        + 2.0 * trace.threshold.sum()
        + final.v.sum()
        - 0.7 * final.b.sum()
        + (final.z * weights[-1]).sum()
    )


def run_backend(backend, problem, **kw):
    """``(spikes, final state, trace, gradients of the leaves)`` of ``problem`` on ``backend``."""
    x, w_in, w_rec, params, state, leaves, weights = problem
    z, final, trace = lsnn_unroll(x, params, w_in, w_rec, state, return_states=True, backend=backend, **kw)
    grads = torch.autograd.grad(problem_loss(z, final, trace, weights), leaves)
    return z.detach(), final, trace, grads


def assert_close(ref, got, rtol, what=""):
    """Largest difference relative to the largest reference entry, at most ``rtol``."""
    scale = ref.abs().max().clamp_min(1e-30)
    err = ((ref - got).abs().max() / scale).item()
    assert err <= rtol, f"{what}: relative error {err:.2e} > {rtol:.0e}"


def classifier(backend, sizes, n_classes=3):
    """A float64 :class:`LSNNClassifier` (seed 0, neuron constants trained) of ``sizes`` ``(T, B, d_in, N)``."""
    torch.manual_seed(0)
    return LSNNClassifier(sizes[2], n_hidden=sizes[3], n_classes=n_classes, backend=backend,
                          train_neuron_params=True).double()


def functional_call_gradients(backend, sizes) -> Dict[str, torch.Tensor]:
    """Gradients of cross-entropy plus rate regulariser with respect to every parameter, taken
    through ``torch.func.functional_call`` with parameters scaled by 1.1 (as the weight attack
    and the mismatch draws call the model)."""
    t_steps, batch, d_in, _ = sizes
    g = torch.Generator().manual_seed(5)
    x = 2.0 * torch.randn(t_steps, batch, d_in, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (batch,), generator=g)
    model = classifier(backend, sizes)
    params = {k: (1.1 * v).detach().requires_grad_() for k, v in model.named_parameters()}
    logits, reg = functional_call(model, params, (x,), {"return_aux_loss": True})
    loss = torch.nn.functional.cross_entropy(logits, y) + reg
    return dict(zip(params, torch.autograd.grad(loss, list(params.values()))))


def assert_same_run(ref, got, rtol, *, nonzero=True):
    """Spikes, traces and final state bit for bit; every leaf's gradient to ``rtol`` (and, with
    ``nonzero``, non-zero in the reference: else the comparison would be vacuous)."""
    z_ref, fin_ref, tr_ref, g_ref = ref
    z_got, fin_got, tr_got, g_got = got
    assert torch.equal(z_ref, z_got)
    for a, b in zip((*tr_ref, *fin_ref), (*tr_got, *fin_got)):
        assert torch.equal(a, b)
    for name, a, b in zip(LEAF_NAMES, g_ref, g_got):
        if nonzero:
            assert a.abs().max() > 0, f"reference gradient of {name} is zero: test would be vacuous"
        assert_close(a, b, rtol, name)
