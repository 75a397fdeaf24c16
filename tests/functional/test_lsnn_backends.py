"""What every hand-written LSNN backend ("fused", "event") must do alike, against the reference path."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch.func import functional_call, vmap

from spikerobust.nn import LSNN, LSNNClassifier

from lsnn_backend_cases import assert_close, functional_call_gradients

SIZES = (30, 11, 3, 20)  # (T, B, d_in, N): B = 11, more samples than the event backward's chunks
needs_numba = pytest.mark.skipif(importlib.util.find_spec("numba") is None, reason="the event backend needs numba")


@pytest.mark.parametrize("backend", ["fused", pytest.param("event", marks=needs_numba)])
def test_functional_call_gradients_match_reference(backend):
    # as the weight attack, the robust loss and the mismatch draws call the model
    ref, got = (functional_call_gradients(b, SIZES) for b in ("reference", backend))
    assert set(got) >= {"lsnn.w_in", "lsnn.w_rec", "lsnn.tau_mem", "lsnn.b0", "readout.weight"}
    for name in ref:
        assert ref[name].abs().max() > 0, name
        assert_close(ref[name], got[name], 1e-10, name)


@pytest.mark.parametrize("backend", ["fused", pytest.param("event", marks=needs_numba)])
def test_vmap_over_parameter_draws_falls_back_to_the_reference_path(backend):
    # vmap (the batched mismatch draws) cannot enter a hand-written autograd.Function: the model
    # runs the reference path under it, and a plain loop (the backend, no graph) agrees with both
    torch.manual_seed(1)
    t_steps, batch, d_in, n = SIZES
    model = LSNNClassifier(d_in, n_hidden=n, n_classes=3, backend=backend)
    x = 2.0 * torch.randn(t_steps, batch, d_in)
    draws = [
        {k: v.detach() * (1 + 0.2 * torch.randn_like(v)) for k, v in model.named_parameters()}
        for _ in range(3)
    ]
    stacked = {k: torch.stack([d[k] for d in draws]) for k in draws[0]}
    with torch.no_grad():
        batched = vmap(lambda p: functional_call(model, p, (x,)))(stacked)
        looped = torch.stack([functional_call(model, d, (x,)) for d in draws])
        model.lsnn.backend = "reference"
        looped_ref = torch.stack([functional_call(model, d, (x,)) for d in draws])
    assert torch.equal(looped, looped_ref)
    torch.testing.assert_close(batched, looped, rtol=1e-5, atol=1e-6)
    assert f"backend='{backend}'" in repr(LSNN(2, 4, backend=backend))
