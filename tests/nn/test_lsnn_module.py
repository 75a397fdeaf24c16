"""LSNN / LSNNClassifier modules: gradients, zero diagonal, round trips, dtypes, learning, errors."""

import io
import math

import pytest
import torch
import torch.nn.functional as F
from scipy import stats as scipy_stats

from spikerobust.datasets import burst_task
from spikerobust.functional import LSNNParams
from spikerobust.nn import LSNN, LSNNClassifier, truncated_normal_
from spikerobust.nn.lsnn import TRUNC2_STD


def _burst_task(n, seed=0):
    return burst_task(n, 40, seed=seed)


def test_reference_initialisation_statistics():
    torch.manual_seed(0)
    m = LSNNClassifier(40, n_hidden=256, n_classes=8)
    w_in, w_rec, w_out = m.lsnn.w_in, m.lsnn.w_rec, m.readout.weight
    # the reference divides a N(0,1) truncated at ±2 by its std (0.8796): std exactly the scale,
    # values within ±2 * scale / 0.8796
    trunc_std = scipy_stats.truncnorm(-2, 2).std()
    s_in, s_rec = math.sqrt(2 / (40 + 256)), math.sqrt(1 / 256)
    assert w_in.abs().max() <= 2 * s_in / trunc_std + 1e-7 and w_rec.abs().max() <= 2 * s_rec / trunc_std + 1e-7
    assert w_in.std().item() == pytest.approx(s_in, rel=0.05)
    off = w_rec[~torch.eye(256, dtype=torch.bool)]
    assert off.std().item() == pytest.approx(s_rec, rel=0.02)
    assert torch.count_nonzero(torch.diagonal(w_rec)) == 0
    # the readout keeps the reference's plain 0.01 * truncated normal (std 0.01 * 0.8796)
    assert w_out.abs().max() <= 0.02 + 1e-7 and torch.count_nonzero(m.readout.bias) == 0


def test_initialisation_std_equals_the_target_within_sampling_error():
    torch.manual_seed(1)
    d_in, n = 300, 1200
    layer = LSNN(d_in, n)
    trunc_std = scipy_stats.truncnorm(-2, 2).std()
    assert TRUNC2_STD == pytest.approx(trunc_std, rel=1e-12)
    for w, target in ((layer.w_in, math.sqrt(2 / (d_in + n))),
                      (layer.w_rec[~torch.eye(n, dtype=torch.bool)], math.sqrt(1 / n))):
        k = w.numel()
        # std of a sample std: sigma * sqrt((kurtosis - 1) / (4 k)); the truncated normal's kurtosis is < 3
        tol = 5 * math.sqrt(2 / (4 * k))
        assert abs(w.std().item() / target - 1) < tol, (k, w.std().item(), target)
        assert abs(w.mean().item()) < 5 * target / math.sqrt(k)
    out = torch.empty(500, 1000)
    truncated_normal_(out, 0.01, exact_std=False)  # the readout's convention
    assert abs(out.std().item() / (0.01 * trunc_std) - 1) < 5 * math.sqrt(2 / (4 * out.numel()))


@pytest.mark.parametrize("backend", ["reference", "fused", "auto"])
def test_neuron_mask_a_spike_dropped_at_t_changes_v_at_t_plus_1_by_hand(backend):
    # 2 neurons, d_in = 1: x = (1, 0); W_in = (1, 0); W_rec[0, 1] = 0.5 (neuron 0 drives neuron 1)
    layer = LSNN(1, 2, backend=backend).double()
    with torch.no_grad():
        layer.w_in.copy_(torch.tensor([[1.0, 0.0]]))
        layer.w_rec.copy_(torch.tensor([[0.0, 0.5], [0.0, 0.0]]))
    x = torch.tensor([[[1.0]], [[0.0]]], dtype=torch.float64)
    # the constants are stored in float32 and then cast: compare to float32 rounding
    alpha, rho, b0, beta = math.exp(-1 / 20), math.exp(-1 / 98), 0.01, 2.0
    v0_1 = (1 - alpha) * 1.0  # 0.04877 > b0: neuron 0 spikes at t = 1
    # no mask: at t = 2 neuron 0 adapts and resets, neuron 1 receives 0.5 through W_rec and spikes
    a0_2 = b0 + beta * (1 - rho)
    z, tr = layer(x, return_states=True)
    assert z[:, 0].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert tr.v[1, 0].tolist() == pytest.approx([alpha * v0_1 - a0_2, (1 - alpha) * 0.5], rel=1e-7, abs=1e-12)
    assert tr.threshold[1, 0].tolist() == pytest.approx([a0_2, b0], rel=1e-7, abs=1e-12)
    # neuron 0 dropped: its spike at t = 1 is gone, so at t = 2 it neither resets nor adapts and
    # neuron 1 gets no recurrent input
    layer.neuron_mask = torch.tensor([0.0, 1.0])
    z, tr = layer(x, return_states=True)
    assert z.abs().sum().item() == 0.0
    assert tr.v[0, 0].tolist() == pytest.approx([v0_1, 0.0], rel=1e-7, abs=1e-12)
    assert tr.v[1, 0].tolist() == pytest.approx([alpha * v0_1, 0.0], rel=1e-7, abs=1e-12)
    assert tr.threshold[1, 0].tolist() == pytest.approx([b0, b0], rel=1e-7, abs=1e-12)
    layer.neuron_mask = None
    assert torch.equal(layer(x)[:, 0], torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64))


def test_neuron_mask_is_not_state_and_is_checked():
    layer = LSNN(2, 4)
    layer.neuron_mask = torch.ones(4)
    assert "neuron_mask" not in layer.state_dict()
    layer.neuron_mask = torch.ones(3)
    with pytest.raises(ValueError, match="neuron_mask"):
        layer(torch.zeros(5, 1, 2))


def test_gradients_reach_every_parameter_and_diagonal_stays_zero():
    torch.manual_seed(0)
    m = LSNNClassifier(2, n_hidden=32, n_classes=2)
    x, y = _burst_task(16)
    for opt in (torch.optim.Adam(m.parameters(), 1e-2), torch.optim.AdamW(m.parameters(), 1e-2, weight_decay=0.1),
                torch.optim.SGD(m.parameters(), 0.5, momentum=0.9)):
        for _ in range(3):
            logits, reg = m(x, return_aux_loss=True)
            loss = F.cross_entropy(logits, y) + reg
            opt.zero_grad()
            loss.backward()
            for name, p in m.named_parameters():
                assert p.grad is not None and p.grad.abs().sum() > 0, name
            assert torch.count_nonzero(torch.diagonal(m.lsnn.w_rec.grad)) == 0
            opt.step()
        assert torch.count_nonzero(torch.diagonal(m.lsnn.w_rec)) == 0


def test_diagonal_ignored_even_if_set():
    """A nonzero diagonal (e.g. from an additive perturbation) never enters the dynamics."""
    torch.manual_seed(1)
    m = LSNN(2, 8)
    x = torch.rand(30, 4, 2)
    z0 = m(x)
    with torch.no_grad():
        m.w_rec.fill_diagonal_(5.0)
    assert torch.equal(m(x), z0)


def test_trainable_neuron_constants_receive_gradients():
    torch.manual_seed(0)
    m = LSNNClassifier(2, n_hidden=16, n_classes=2, train_neuron_params=True)
    names = {n for n, _ in m.named_parameters()}
    assert {"lsnn.tau_mem", "lsnn.tau_adapt", "lsnn.beta_adapt", "lsnn.b0"} <= names
    assert m.lsnn.tau_mem.shape == (16,)
    x, y = _burst_task(16)
    F.cross_entropy(m(x), y).backward()
    for n in ("tau_mem", "tau_adapt", "beta_adapt", "b0"):
        assert getattr(m.lsnn, n).grad.abs().sum() > 0, n


def test_per_neuron_constants_and_validation():
    layer = LSNN(2, 3, LSNNParams(tau_mem=torch.tensor([10.0, 20.0, 30.0])))
    assert layer.tau_mem.tolist() == [10.0, 20.0, 30.0]
    assert layer.b0.tolist() == pytest.approx([0.01] * 3)
    with pytest.raises(ValueError, match="tau_mem"):
        LSNN(2, 3, LSNNParams(tau_mem=torch.tensor([10.0, 20.0])))
    with pytest.raises(ValueError, match="b0"):
        LSNN(2, 3, LSNNParams(b0=0.0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_state_dict_round_trip_bit_identical(dtype):
    torch.manual_seed(0)
    m = LSNNClassifier(2, n_hidden=16, n_classes=3, train_neuron_params=(dtype == torch.float64)).to(dtype)
    x = torch.rand(50, 5, 2, dtype=dtype)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    m2 = LSNNClassifier(2, n_hidden=16, n_classes=3, train_neuron_params=(dtype == torch.float64)).to(dtype)
    m2.load_state_dict(torch.load(buf, weights_only=True))
    out1, out2 = m(x), m2(x)
    assert out1.dtype == dtype
    assert torch.equal(out1, out2)


def test_traces_shapes_and_threshold_relation():
    torch.manual_seed(0)
    layer = LSNN(3, 7)
    x = torch.rand(20, 4, 3)
    z, tr = layer(x, return_states=True)
    assert z.shape == tr.v.shape == tr.b.shape == tr.threshold.shape == (20, 4, 7)
    assert torch.allclose(tr.threshold, layer.b0 + layer.beta_adapt * tr.b)
    assert torch.equal(z, layer(x))


def test_learns_temporal_burst_task():
    torch.manual_seed(0)
    x, y = _burst_task(512, seed=1)
    xt, yt = _burst_task(256, seed=2)
    m = LSNNClassifier(2, n_hidden=32, n_classes=2)
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    acc = 0.0
    for _epoch in range(5):
        for i in range(0, 512, 64):
            logits, reg = m(x[:, i : i + 64], return_aux_loss=True)
            loss = F.cross_entropy(logits, y[i : i + 64]) + reg
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = (m(xt).argmax(1) == yt).float().mean().item()
        if acc > 0.9:
            break
    assert acc > 0.9


@pytest.mark.parametrize(
    "x, match",
    [
        (torch.zeros(10, 2), "rank 2"),
        (torch.zeros(10, 4, 3), "expected d_in = 2"),
        (torch.zeros(10, 4, 2, dtype=torch.long), "floating dtype"),
        (torch.zeros(0, 4, 2), "T = 0"),
        (torch.full((10, 4, 2), float("nan")), "NaN"),
        (torch.full((10, 4, 2), float("inf")), "inf"),
        (torch.zeros(10, 4, 2, dtype=torch.float64), "dtype"),
        (torch.zeros(10, 4, 2, device="meta"), "meta"),
        ([[1.0, 2.0]], "torch.Tensor"),
    ],
)
def test_bad_input_raises_value_error(x, match):
    m = LSNNClassifier(2, n_hidden=4, n_classes=2)
    with pytest.raises(ValueError, match=match):
        m(x)


def test_n_classes_required():
    with pytest.raises(ValueError, match="n_classes"):
        LSNNClassifier(2, 8)


@pytest.mark.parametrize("backend", ["reference", "fused", "event"])
def test_final_state_continues_a_split_sequence(backend):
    """Two halves with the final state carried over spike exactly like one run of the whole sequence."""
    torch.manual_seed(1)
    layer = LSNN(3, 24, backend=backend)
    x = 2.0 * torch.randn(60, 5, 3)
    with torch.no_grad():
        whole, trace, final = layer(x, return_states=True, return_final_state=True)
        first, state = layer(x[:23], return_final_state=True)
        second, state2 = layer(x[23:], state, return_final_state=True)
    assert 0.02 < whole.mean().item() < 0.5  # spiking, so adaptation and refractoriness carry over
    assert state.r.max() > 0 and state.b.abs().max() > 0  # the cut falls where the state is not zero
    assert torch.equal(torch.cat([first, second]), whole)
    assert torch.equal(trace.v[-1], final.v) and torch.equal(whole[-1], final.z)
    for a, b in zip(state2, final):
        assert torch.equal(a, b)
    cold = layer(x[23:])  # without the state the second half starts from rest and differs
    assert not torch.equal(cold, second)


def test_return_order_and_gradient_through_the_carried_state():
    torch.manual_seed(2)
    layer = LSNN(2, 8)
    x = torch.randn(30, 3, 2)
    z, trace, final = layer(x, return_states=True, return_final_state=True)
    assert z.shape == trace.v.shape == (30, 3, 8) and final.v.shape == (3, 8)
    z_only, final_only = layer(x, return_final_state=True)
    assert torch.equal(z_only, z) and torch.equal(final_only.v, final.v)
    assert isinstance(layer(x), torch.Tensor)
    # truncated BPTT is opt-in: an undetached state lets the second piece's loss reach the first piece
    x1 = x[:10].clone().requires_grad_(True)
    _, s = layer(x1, return_final_state=True)
    layer(x[10:], s).sum().backward()
    assert x1.grad is not None and x1.grad.abs().sum() > 0
