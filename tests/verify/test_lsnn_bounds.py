"""LSNN interval simulation: soundness by sampling the box (uniform and corners) against the exact
network in float64, exactness at ε = 0, monotonicity in ε, and the spike status."""

import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch.func import functional_call

from spikerobust.nn import LSNNClassifier
from spikerobust.verify import SpikeStatus, lsnn_interval_simulation, lsnn_logit_bounds, logit_bounds

D = torch.float64
WEIGHTS = ("lsnn.w_in", "lsnn.w_rec", "readout.weight", "readout.bias")
CONSTANTS = ("lsnn.tau_mem", "lsnn.tau_adapt", "lsnn.b0", "lsnn.beta_adapt")


def make(seed, n=12, d_in=2, c=3, t=25, b=4, dtype=D):
    torch.manual_seed(seed)
    model = LSNNClassifier(d_in, n_hidden=n, n_classes=c).to(dtype)
    with torch.no_grad():  # a readout large enough that spike changes move the logits visibly
        model.readout.weight.normal_(0.0, 1.0)
        model.readout.bias.normal_(0.0, 0.1)
    x = 2.0 * torch.randn(t, b, d_in, dtype=dtype)
    return model, x


def perturbed(model, epsilon, g, corners, names):
    state = dict(model.named_parameters()) | dict(model.named_buffers())
    out = {}
    for name in names:
        p = state[name].detach()
        if corners:
            u = torch.randint(0, 2, p.shape, generator=g, dtype=D) * 2 - 1
        else:
            u = torch.rand(p.shape, generator=g, dtype=D) * 2 - 1
        out[name] = p + u * (epsilon * p.abs())
    return out


def run_exact(model, x, params):
    return functional_call(model, params, (x,), {"return_spikes": True}, strict=False)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    epsilon=st.sampled_from([2e-3, 1e-2, 5e-2]),
    corners=st.booleans(),
    constants=st.booleans(),
)
def test_every_sampled_network_lies_inside_the_bounds(seed, epsilon, corners, constants):
    model, x = make(seed)
    res = lsnn_interval_simulation(model, x, epsilon, neuron_constants=constants)
    names = WEIGHTS + (CONSTANTS if constants else ())
    g = torch.Generator().manual_seed(seed)
    nominal_spikes = model(x, return_spikes=True)[1]
    for _ in range(15):
        logits, spikes = run_exact(model, x, perturbed(model, epsilon, g, corners, names))
        assert bool(res.logits.contains(logits, atol=1e-9).all()), (logits, res.logits)
        assert bool(res.spikes.contains(spikes).all())
    # not vacuous: spikes occur, some are uncertain (at the smallest box some networks have none,
    # e.g. seed 196 at 2e-3, so only asserted from 1e-2), and certain ones match the nominal network
    status = res.spike_status
    assert bool((nominal_spikes > 0).any())
    assert epsilon < 1e-2 or bool((status == SpikeStatus.UNCERTAIN).any())
    assert bool((nominal_spikes[status == SpikeStatus.CERTAIN] == 1).all())
    assert bool((nominal_spikes[status == SpikeStatus.IMPOSSIBLE] == 0).all())


def test_sampled_spike_trains_do_change_inside_the_box():
    # the soundness test above exercises networks whose spikes differ from the nominal ones
    model, x = make(3)
    g = torch.Generator().manual_seed(0)
    nominal = model(x, return_spikes=True)[1]
    res = lsnn_interval_simulation(model, x, 1e-2)
    changed = 0
    for _ in range(10):
        logits, spikes = run_exact(model, x, perturbed(model, 1e-2, g, True, WEIGHTS))
        changed += int(not torch.equal(spikes, nominal))
        assert bool(res.logits.contains(logits, atol=1e-9).all())
    assert changed > 0


def test_deep_copy_with_perturbed_weights_agrees_with_functional_call():
    # second way of building the exact network: a perturbed deep copy
    model, x = make(11)
    g = torch.Generator().manual_seed(1)
    params = perturbed(model, 5e-3, g, True, WEIGHTS + CONSTANTS)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for name, value in params.items():
            twin.get_parameter(name).copy_(value) if name in dict(twin.named_parameters()) else twin.get_buffer(name).copy_(value)
    res = lsnn_interval_simulation(model, x, 5e-3, neuron_constants=True)
    assert bool(res.logits.contains(twin(x), atol=1e-9).all())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_epsilon_equals_the_forward_pass_exactly(dtype):
    model, x = make(5, n=32, dtype=dtype)
    res = lsnn_interval_simulation(model, x, 0.0, neuron_constants=True)
    logits, spikes = model(x, return_spikes=True)
    assert torch.equal(res.logits.lower, logits) and torch.equal(res.logits.upper, logits)
    assert torch.equal(res.spikes.lower, spikes) and torch.equal(res.spikes.upper, spikes)
    assert not bool((res.spike_status == SpikeStatus.UNCERTAIN).any())
    assert torch.equal(res.spike_status, spikes.to(torch.int8))


def test_bounds_are_monotone_in_epsilon():
    # every rule used is inclusion-monotone (module docstrings), so a larger box gives nested bounds
    model, x = make(7, n=24)
    prev, prev_unc = None, None
    for epsilon in [0.0, 1e-4, 1e-3, 5e-3, 2e-2, 1e-1]:
        res = lsnn_interval_simulation(model, x, epsilon, neuron_constants=True)
        unc = res.spike_status == SpikeStatus.UNCERTAIN
        if prev is not None:
            assert prev.is_subset_of(res.logits, atol=1e-12)
            assert bool((unc | ~prev_unc).all())  # uncertain at ε1 stays uncertain at ε2
        prev, prev_unc = res.logits, unc
    assert bool(unc.any())


def test_diagonal_of_w_rec_is_ignored_like_the_forward_pass():
    model, x = make(2)
    base = lsnn_logit_bounds(model, x, 1e-2)
    with torch.no_grad():
        model.lsnn.w_rec.fill_diagonal_(5.0)
    again = lsnn_logit_bounds(model, x, 1e-2)
    assert torch.equal(base[0], again[0]) and torch.equal(base[1], again[1])


def test_hand_computed_single_neuron_step():
    # N = 1, W_in = 1 ± ε, x_1 = 1: v_1 = (1 - α)(1 ± ε), A_1 = b0 = 0.01 -> a certain spike;
    # the readout 1 ± ε with bias 0 gives logit = rate * w in [(1/T)(1 - ε), (1/T)(1 + ε)] over T = 1.
    model = LSNNClassifier(1, n_hidden=1, n_classes=1).to(D)
    epsilon = 0.1
    with torch.no_grad():
        model.lsnn.w_in.fill_(1.0)
        model.lsnn.w_rec.zero_()
        model.readout.weight.fill_(1.0)
        model.readout.bias.zero_()
    res = lsnn_interval_simulation(model, torch.ones(1, 1, 1, dtype=D), epsilon, return_states=True)
    alpha = torch.exp(torch.tensor(-1.0 / 20.0, dtype=D))
    assert torch.allclose(res.v.lower, (1 - alpha) * 0.9) and torch.allclose(res.v.upper, (1 - alpha) * 1.1)
    assert torch.allclose(res.threshold.lower, torch.tensor(0.01, dtype=D))
    assert res.spike_status.item() == SpikeStatus.CERTAIN
    assert torch.allclose(res.logits.lower, torch.tensor(0.9, dtype=D)) and torch.allclose(res.logits.upper, torch.tensor(1.1, dtype=D))


def test_input_errors_are_clear():
    model, x = make(0)
    with pytest.raises(ValueError, match="epsilon"):
        lsnn_logit_bounds(model, x, -1.0)
    with pytest.raises(ValueError, match=r"\[T, B, 2\]"):
        lsnn_logit_bounds(model, x[0], 0.1)
    with pytest.raises(ValueError, match="epsilon must be < 1"):
        lsnn_logit_bounds(model, x, 1.5, neuron_constants=True)
    with pytest.raises(ValueError, match="unsupported model"):
        logit_bounds(torch.nn.GRU(2, 3), x, 0.1)


def test_membrane_exactly_at_threshold_is_no_spike_and_impossible_at_zero_epsilon():
    # v_1 = (1 - α) x W_in; choose x (float64) so that v_1 == A_1 = b0 exactly: H(0) = 0, no spike.
    model = LSNNClassifier(1, n_hidden=1, n_classes=1).to(D)
    with torch.no_grad():
        model.lsnn.w_in.fill_(1.0)
        model.lsnn.w_rec.zero_()
    one_m_alpha = 1.0 - torch.exp(-1.0 / model.lsnn.tau_mem.double())
    b0 = model.lsnn.b0.double()
    x = b0 / one_m_alpha
    for _ in range(8):  # step x by one ulp until the product hits b0 exactly
        prod = one_m_alpha * (x * 1.0)
        if torch.equal(prod, b0):
            break
        x = torch.nextafter(x, torch.tensor(float("inf"), dtype=D) if bool(prod < b0) else torch.tensor(-float("inf"), dtype=D))
    assert torch.equal(one_m_alpha * x, b0), "could not place v exactly on the threshold"
    xs = x.reshape(1, 1, 1)
    _, spikes = model(xs, return_spikes=True)
    assert spikes.item() == 0.0  # the forward pass: H(0) = 0
    res = lsnn_interval_simulation(model, xs, 0.0)
    assert res.spike_status.item() == SpikeStatus.IMPOSSIBLE
    # any positive ε lets W_in grow, so the spike becomes possible but not certain
    assert lsnn_interval_simulation(model, xs, 1e-9).spike_status.item() == SpikeStatus.UNCERTAIN


def test_constant_products_by_hand():
    # the neuron-constant products of the simulation are rules.mul/rules.sub on intervals
    from spikerobust.verify.interval import Interval
    from spikerobust.verify.rules import mul, sub

    def iv(lo, hi):
        return Interval(torch.tensor(lo, dtype=D), torch.tensor(hi, dtype=D))

    c = iv([2.0, 2.0], [3.0, 3.0])  # c ∈ [2, 3]
    x = iv([-1.0, 1.0], [-0.5, 4.0])  # x ∈ [-1, -0.5] and [1, 4]
    out = mul(c, x)  # c x: [-3, -1] and [2, 12]
    assert out.lower.tolist() == [-3.0, 2.0] and out.upper.tolist() == [-1.0, 12.0]
    beta, b = iv([-2.0, 1.0], [-1.0, 2.0]), iv([1.0, 1.0], [3.0, 3.0])
    out = mul(beta, b)  # [-2, -1]·[1, 3] = [-6, -1];  [1, 2]·[1, 3] = [1, 6]
    assert out.lower.tolist() == [-6.0, 1.0] and out.upper.tolist() == [-1.0, 6.0]
    out = sub(1.0, iv([0.2], [0.5]))
    assert out.lower.tolist() == [0.5] and out.upper.tolist() == [0.8]


def test_epsilon_and_the_deprecated_zeta_give_the_same_bounds():
    model, x = make(4)
    new = lsnn_logit_bounds(model, x, epsilon=1e-3)
    with pytest.warns(DeprecationWarning, match="zeta"):
        old = lsnn_logit_bounds(model, x, zeta=1e-3)
    assert torch.equal(new[0], old[0]) and torch.equal(new[1], old[1])
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError, match="both"):
        lsnn_logit_bounds(model, x, 1e-3, zeta=1e-3)


def test_model_found_through_the_protocol():
    # an LSNN classifier under another name: one declared spiking layer and a readout
    model, x = make(6)

    class Renamed(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.core, self.readout = inner.lsnn, inner.readout

        def spiking_layers(self):
            return [self.core]

    a, b = lsnn_logit_bounds(model, x, 1e-3), logit_bounds(Renamed(model), x, 1e-3)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="one LSNN spiking layer"):
        lsnn_logit_bounds(model.lsnn, x, 1e-3)
