"""The F-MNIST CNN's Glorot-normal initialisation: per-layer std equals sqrt(2/(fan_in+fan_out))."""

import math

import torch
from scipy import stats as scipy_stats
from torch import nn

from spikerobust.models.cnn import cnn_fmnist


def test_cnn_weights_are_glorot_normal_and_biases_zero():
    torch.manual_seed(0)
    model = cnn_fmnist()
    bound = 2.0 / scipy_stats.truncnorm(-2, 2).std()  # truncated at ±2 of the unrescaled scale
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(layers) == 5
    for m in layers:
        w = m.weight
        if isinstance(m, nn.Conv2d):
            k = w.shape[2] * w.shape[3]
            fan_in, fan_out = w.shape[1] * k, w.shape[0] * k
        else:
            fan_in, fan_out = w.shape[1], w.shape[0]
        target = math.sqrt(2.0 / (fan_in + fan_out))
        n = w.numel()
        # sampling error of a std: sigma * sqrt((kurtosis - 1) / (4 n)) < sigma / sqrt(2 n)
        assert abs(w.std().item() / target - 1) < 5 / math.sqrt(2 * n), (m, w.std().item(), target)
        assert w.abs().max().item() <= bound * target * (1 + 1e-6)
        assert torch.count_nonzero(m.bias) == 0
