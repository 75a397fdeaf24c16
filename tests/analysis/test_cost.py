"""Hardware-cost metrics (NeuroBench definitions) checked against counts made by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from spikerobust.analysis.cost import footprint, hardware_cost, parameter_count
from spikerobust.nn import LSNNClassifier

torch.set_num_threads(1)


def test_linear_counts_nonzero_input_times_nonzero_weight_and_splits_acs_from_macs():
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [3.0, 4.0, 0.0]]))
    spikes = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    y = torch.tensor([0, 1])
    # sample 1: input 0 reaches 2 non-zero weights, input 2 one -> 3; sample 2: input 1 one, input 2 one -> 2
    cost = hardware_cost(layer, (spikes, y))
    assert cost.effective_acs == pytest.approx(5 / 2) and cost.effective_macs == 0
    assert cost.dense == pytest.approx(2 * 3 * 2 / 2)
    cost = hardware_cost(layer, (0.5 * spikes, y))  # same pattern, not spikes: MACs
    assert cost.effective_macs == pytest.approx(5 / 2) and cost.effective_acs == 0
    # two batches of one sample each give the same per-sample numbers
    cost = hardware_cost(layer, [(spikes[:1], y[:1]), (spikes[1:], y[1:])])
    assert cost.effective_acs == pytest.approx(5 / 2) and cost.n_samples == 2


def test_conv2d_counts_each_nonzero_pixel_once_per_window_it_falls_in():
    conv = nn.Conv2d(1, 1, 2)
    with torch.no_grad():
        conv.weight.fill_(1.0)
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 1] = 1.0  # centre: in all 4 windows
    x[0, 0, 0, 0] = 1.0  # corner: in 1 window
    cost = hardware_cost(conv, (x, torch.tensor([0])))
    assert cost.effective_acs == 5 and cost.dense == 4 * 4


def test_activation_sparsity_parameter_count_and_footprint_by_hand():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2), nn.ReLU())
    x = torch.randn(8, 3)
    model.eval()
    with torch.no_grad():
        act = model(x)
    cost = hardware_cost(model, (x, torch.zeros(8, dtype=torch.long)))
    assert cost.activation_sparsity == pytest.approx(float((act == 0).float().mean()))
    assert cost.parameter_count == parameter_count(model) == 3 * 2 + 2 + 2 + 2
    # float32 weights/biases (12) + running mean/var (4 float32) + num_batches_tracked (one int64)
    assert cost.footprint_bytes == footprint(model) == 12 * 4 + 4 * 4 + 8


def test_lsnn_input_recurrent_and_readout_operations_from_its_spikes():
    torch.manual_seed(0)
    model = LSNNClassifier(2, 5, 3)
    with torch.no_grad():
        model.lsnn.w_in.mul_(8.0)
        model.lsnn.w_in[0, 1] = 0.0  # a zero weight is not an operation
    x = torch.randn(12, 4, 2)
    x[3] = 0.0  # a silent input frame
    with torch.no_grad():
        z = model.lsnn(x)
    assert z.sum() > 0, "the test needs spikes"
    w_in, w_rec, w_out = model.lsnn.w_in, model.lsnn.w_rec, model.readout.weight
    T, B, N = z.shape
    ops_in = sum(int((w_in[i] != 0).sum()) for t in range(T) for b in range(B) for i in range(2) if x[t, b, i] != 0)
    ops_rec = sum(
        sum(1 for k in range(N) if k != j and w_rec[j, k] != 0)
        for t in range(1, T) for b in range(B) for j in range(N) if z[t - 1, b, j] != 0
    )
    rate = z.mean(0)
    ops_out = sum(int((w_out[:, j] != 0).sum()) for b in range(B) for j in range(N) if rate[b, j] != 0)
    cost = hardware_cost(model, (x, torch.zeros(B, dtype=torch.long)))
    kinds = {layer["name"]: (layer["kind"], layer["effective"]) for layer in cost.layers}
    assert kinds["lsnn.w_in"] == ("MAC", pytest.approx(ops_in / B))
    assert kinds["lsnn.w_rec"] == ("AC", pytest.approx(ops_rec / B))
    assert kinds["readout"] == ("MAC", pytest.approx(ops_out / B))
    assert cost.effective_acs == pytest.approx(ops_rec / B)
    assert cost.effective_macs == pytest.approx((ops_in + ops_out) / B)
    assert cost.activation_sparsity == pytest.approx(1.0 - float(z.mean()))
    assert cost.dense == pytest.approx(T * (2 * N + N * N) + N * 3)


def test_snntorch_leaky_spikes_are_counted_as_accumulates():
    snn = pytest.importorskip("snntorch")
    snn_utils = pytest.importorskip("snntorch.utils")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), snn.Leaky(beta=0.9, init_hidden=True), nn.Linear(6, 3))
    x = 2.0 * torch.randn(10, 4)
    with torch.no_grad():
        spk = (net[0](x) - 1.0 > 0).float()  # first step from rest: spike where the current exceeds threshold 1
    snn_utils.reset(net)
    cost = hardware_cost(net, (x, torch.zeros(10, dtype=torch.long)))
    kinds = {layer["name"]: (layer["kind"], layer["effective"]) for layer in cost.layers}
    assert 0 < spk.sum() < spk.numel()
    assert kinds["0"] == ("MAC", pytest.approx(4 * 6))
    assert kinds["2"] == ("AC", pytest.approx(float(spk.sum()) * 3 / 10))
    assert cost.activation_sparsity == pytest.approx(1.0 - float(spk.mean()))


def test_declared_spiking_layer_counts_as_activation():
    """A module declaring itself a spiking layer (spikerobust.protocol) contributes its output's
    first element to the activation sparsity; an undeclared module of the same kind does not."""

    class Spiker(nn.Module):
        def forward(self, x):
            return (x > 0).to(x.dtype), x  # (spikes, state) like a neuron

    class Declared(Spiker):
        def spiking_layers(self):
            return [self]

    x = torch.tensor([[1.0, -1.0, 2.0, -3.0]])  # 2 of 4 spikes are zero
    y = torch.zeros(1, dtype=torch.long)
    assert hardware_cost(nn.Sequential(Declared()), (x, y)).activation_sparsity == 0.5
    assert hardware_cost(nn.Sequential(Spiker()), (x, y)).activation_sparsity == 0.0
