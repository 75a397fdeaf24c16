"""AdaptiveLeaky: snnTorch-style single-step neuron with the dynamics of docs/lsnn.md."""

from __future__ import annotations

import gc
import math

import pytest
import torch

from spikerobust.functional import LSNNParams, LSNNState, initial_state, lsnn_step_current, lsnn_unroll
from spikerobust.nn import AdaptiveLeaky

T, B, N = 60, 4, 10


def _constants(n, g):
    return dict(
        tau_mem=15.0 + 10.0 * torch.rand(n, generator=g),
        tau_adapt=50.0 + 80.0 * torch.rand(n, generator=g),
        beta_adapt=1.0 + 2.0 * torch.rand(n, generator=g),
        b0=0.01 + 0.02 * torch.rand(n, generator=g),
    )


def test_steps_equal_lsnn_step_current_exactly():
    g = torch.Generator().manual_seed(0)
    consts = _constants(N, g)
    neuron = AdaptiveLeaky(**consts, n_refractory=3, n_hidden=N)
    cur = 0.8 * torch.randn(T, B, N, generator=g)
    params = LSNNParams(**consts, n_refractory=3)
    ref_state = initial_state(B, N)
    state = neuron.init_leaky()
    spikes, mems = [], []
    for t in range(T):
        spk, state = neuron(cur[t], state)
        z_ref, ref_state = lsnn_step_current(cur[t], ref_state, params, torch.zeros(N, N))
        assert torch.equal(spk, z_ref)
        for a, b in zip(state, ref_state):
            assert torch.equal(a, b)
        spikes.append(spk)
        mems.append(state.v)
    spikes = torch.stack(spikes)
    assert 0.02 < spikes.mean().item() < 0.6  # the neuron does spike, and refractoriness matters
    # a second, independent route: the unrolled layer with W_in = identity (x_t W_in = cur_t)
    z_unroll, _, trace = lsnn_unroll(cur, params, torch.eye(N), torch.zeros(N, N), return_states=True)
    assert torch.equal(spikes, z_unroll)
    assert torch.equal(torch.stack(mems), trace.v)


def test_recurrent_variant_equals_the_lsnn_layer():
    torch.manual_seed(3)
    neuron = AdaptiveLeaky(n_hidden=N, recurrent=True)
    with torch.no_grad():
        neuron.w_rec.add_(torch.eye(N))  # a non-zero diagonal must be ignored, as in LSNN
    cur = torch.randn(T, B, N)
    state = neuron.init_leaky()
    spikes = []
    for t in range(T):
        spk, state = neuron(cur[t], state)
        spikes.append(spk)
    with torch.no_grad():
        z_ref, final, _ = lsnn_unroll(cur, neuron.neuron_params(), torch.eye(N), neuron.w_rec)
    assert torch.equal(torch.stack(spikes), z_ref)
    assert torch.equal(state.v, final.v)
    assert torch.stack(spikes).mean() > 0.02


def test_hand_computed_first_steps():
    # docs/lsnn.md by hand, N = 1, current 1 then 0: v1 = 1 - e^{-1/20}, spike; b2 = 1 - e^{-1/98}
    neuron = AdaptiveLeaky()
    spk, s = neuron(torch.ones(1, 1), neuron.init_leaky())
    alpha, rho = math.exp(-1 / 20), math.exp(-1 / 98)
    assert spk.item() == 1.0 and s.r.item() == 1.0
    assert s.v.item() == pytest.approx(1 - alpha, rel=1e-6)
    spk, s = neuron(torch.zeros(1, 1), s)
    a2 = 0.01 + 2.0 * (1 - rho)
    assert spk.item() == 0.0 and s.r.item() == 0.0
    assert s.b.item() == pytest.approx(1 - rho, rel=1e-5)  # float32: 1 - rho loses digits
    assert s.v.item() == pytest.approx(alpha * (1 - alpha) - a2, rel=1e-5)


def test_snntorch_surrogate_drives_the_gradient():
    surrogate = pytest.importorskip("snntorch.surrogate")
    slope = 5.0
    neuron = AdaptiveLeaky(surrogate=surrogate.fast_sigmoid(slope=slope))
    cur = torch.tensor([[0.3]], requires_grad=True)
    spk, state = neuron(cur, neuron.init_leaky())
    spk.sum().backward()
    # v = (1 - alpha) cur, A = b0, s = (v - A)/A; snnTorch's fast sigmoid: 1/(slope |s| + 1)^2
    alpha, b0 = math.exp(-1 / 20), 0.01
    s = ((1 - alpha) * 0.3 - b0) / b0
    expected = (1.0 / (slope * abs(s) + 1.0) ** 2) * (1 - alpha) / b0
    assert cur.grad.item() == pytest.approx(expected, rel=1e-5)


def test_tuple_state_and_unpacking_and_detach():
    neuron = AdaptiveLeaky()
    cur = torch.randn(B, N, requires_grad=True)
    spk, (mem, z, b, r) = neuron(cur, None)
    assert mem.shape == (B, N) and torch.equal(z, spk)
    spk2, state2 = neuron(cur, (mem, z, b, r))  # a plain tuple works as state
    detached = AdaptiveLeaky.detach(state2)
    assert all(not s.requires_grad for s in detached)
    assert state2.v.requires_grad


def test_learnable_constants_receive_gradients_and_state_dict_round_trip():
    torch.manual_seed(0)
    neuron = AdaptiveLeaky(n_hidden=N, train_neuron_params=True, recurrent=True)
    assert {n for n, _ in neuron.named_parameters()} == {"tau_mem", "tau_adapt", "beta_adapt", "b0", "w_rec"}
    cur = torch.randn(20, B, N)
    state = neuron.init_leaky()
    total = 0.0
    for t in range(20):
        spk, state = neuron(cur[t], state)
        total = total + spk.sum() + state.v.sum()
    total.backward()
    for name, p in neuron.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert torch.all(torch.diagonal(neuron.w_rec.grad) == 0)
    clone = AdaptiveLeaky(n_hidden=N, train_neuron_params=True, recurrent=True)
    clone.load_state_dict(neuron.state_dict())
    a, _ = neuron(cur[0], None)
    b, _ = clone(cur[0], None)
    assert torch.equal(a, b)


def test_no_class_level_instance_registry():
    import weakref

    neuron = AdaptiveLeaky()
    ref = weakref.ref(neuron)
    del neuron
    gc.collect()
    assert ref() is None  # nothing keeps the instance alive (snnTorch's SpikingNeuron.instances does)


def test_bad_input_raises():
    neuron = AdaptiveLeaky(n_hidden=N)
    with pytest.raises(ValueError, match="n_hidden"):
        neuron(torch.zeros(B, N + 1))
    with pytest.raises(ValueError, match="floating"):
        neuron(torch.zeros(B, N, dtype=torch.long))
    with pytest.raises(ValueError, match="NaN"):
        neuron(torch.full((B, N), float("nan")))
    with pytest.raises(ValueError, match="state"):
        neuron(torch.zeros(B, N), initial_state(B + 1, N))
    with pytest.raises(ValueError, match="recurrent"):
        AdaptiveLeaky(recurrent=True)
    with pytest.raises(ValueError, match="tau_mem"):
        AdaptiveLeaky(tau_mem=-1.0)
    with pytest.raises(ValueError, match="b0"):
        AdaptiveLeaky(b0=torch.ones(3), n_hidden=N)
    with pytest.raises(ValueError, match="n_refractory"):
        AdaptiveLeaky(n_refractory=-1)


def test_argument_names_are_the_lsnn_layers():
    """AdaptiveLeaky and LSNN share their argument names (surrogate, n_hidden, train_neuron_params)."""
    import inspect

    from spikerobust.nn import LSNN

    shared = {"surrogate", "n_hidden", "train_neuron_params"}
    assert shared <= set(inspect.signature(AdaptiveLeaky).parameters)
    assert shared <= set(inspect.signature(LSNN).parameters)


@pytest.mark.parametrize("old, new, value", [
    ("spike_grad", "surrogate", "fast_sigmoid"),
    ("n_neurons", "n_hidden", N),
    ("learn_neuron_params", "train_neuron_params", True),
])
def test_former_argument_names_warn_and_act_like_the_new_ones(old, new, value):
    torch.manual_seed(0)
    current = AdaptiveLeaky(**{new: value}, recurrent=old == "n_neurons")
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning, match=f"'{old}'.*'{new}'"):
        legacy = AdaptiveLeaky(**{old: value}, recurrent=old == "n_neurons")
    assert legacy.n_hidden == current.n_hidden and legacy.surrogate == current.surrogate
    assert dict(legacy.named_parameters()).keys() == dict(current.named_parameters()).keys()
    for (k, a), (_, b) in zip(legacy.state_dict().items(), current.state_dict().items()):
        assert torch.equal(a, b), k
    cur = torch.randn(B, N)
    assert torch.equal(legacy(cur)[0], current(cur)[0])


def test_former_attribute_and_method_names_warn():
    neuron = AdaptiveLeaky(n_hidden=N, surrogate="atan")
    with pytest.warns(DeprecationWarning, match="n_hidden"):
        assert neuron.n_neurons == N
    with pytest.warns(DeprecationWarning, match="surrogate"):
        assert neuron.spike_grad is neuron.surrogate
    with pytest.warns(DeprecationWarning, match="neuron_params"):
        assert neuron.params() == neuron.neuron_params()


def test_former_and_new_name_together_or_unknown_keyword_raise():
    with pytest.raises(TypeError, match="n_hidden"):
        AdaptiveLeaky(n_hidden=N, n_neurons=N)
    with pytest.raises(TypeError, match="unexpected keyword argument 'n_neuron'"):
        AdaptiveLeaky(n_neuron=N)
