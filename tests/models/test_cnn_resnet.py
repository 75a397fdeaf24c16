"""The F-MNIST CNN (docs/tasks.md) and ResNet32 (docs/pcm.md): sizes and parameter counts computed by hand."""

import pytest
import torch
from torch import nn

from spikerobust.models import get_model, list_models
from spikerobust.robust.params import select_parameters

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_registered():
    assert {"cnn_fmnist", "resnet32", "lsnn_ecg"} <= set(list_models())


def test_cnn_parameter_count_by_hand():
    conv1 = 1 * 64 * 4 * 4 + 64
    conv2 = 64 * 64 * 4 * 4 + 64
    dense = (1600 * 256 + 256) + (256 * 64 + 64) + (64 * 10 + 10)
    assert n_params(get_model("cnn_fmnist")) == conv1 + conv2 + dense == 493642


def test_cnn_is_flat_sequential_of_standard_layers():
    model = get_model("cnn_fmnist")
    assert isinstance(model, nn.Sequential)
    kinds = [type(m) for m in model]
    assert kinds == [nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Conv2d, nn.ReLU, nn.MaxPool2d, nn.Flatten,
                     nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    assert not any(isinstance(m, nn.Dropout) for m in model)


def test_cnn_spatial_sizes_same_then_valid_give_1600():
    model = get_model("cnn_fmnist")
    x = torch.randn(3, 1, 28, 28)
    sizes = []
    for layer in model:
        x = layer(x)
        sizes.append(tuple(x.shape[1:]))
    # same conv keeps 28; pool 14; valid 4x4: 14-4+1 = 11; pool (floor) 5; 64*5*5 = 1600
    assert sizes[0] == (64, 28, 28)
    assert sizes[2] == (64, 14, 14)
    assert sizes[3] == (64, 11, 11)
    assert sizes[5] == (64, 5, 5)
    assert sizes[6] == (1600,)
    assert sizes[-1] == (10,)


def test_cnn_dropout_on_dense_inputs():
    model = get_model("cnn_fmnist", dropout=0.3)
    idx = [i for i, m in enumerate(model) if isinstance(m, nn.Dropout)]
    assert len(idx) == 3
    for i in idx:
        assert isinstance(model[i + 1], nn.Linear) and model[i].p == 0.3
    assert n_params(model) == 493642
    model.eval()
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_cnn_bad_dropout(bad):
    with pytest.raises(ValueError, match="dropout"):
        get_model("cnn_fmnist", dropout=bad)


def test_resnet32_parameter_count_by_hand():
    def conv(ci, co):
        return ci * co * 9

    def bn(c):
        return 2 * c

    total = conv(3, 16) + bn(16)
    c_in = 16
    for width in (16, 32, 64):
        for _ in range(5):
            total += conv(c_in, width) + bn(width) + conv(width, width) + bn(width)
            c_in = width
    total += 64 * 10 + 10
    model = get_model("resnet32")
    assert n_params(model) == total == 464154  # the well-known "0.46 M"
    n_conv = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    n_lin = sum(isinstance(m, nn.Linear) for m in model.modules())
    assert n_conv + n_lin == 32


def test_resnet32_shapes_and_option_a_shortcut():
    model = get_model("resnet32").eval()
    assert model(torch.randn(4, 3, 32, 32)).shape == (4, 10)
    block = model.stages[1][0]
    x = torch.randn(2, 16, 32, 32)
    sc = block.shortcut(x)
    assert sc.shape == (2, 32, 16, 16)
    assert torch.equal(sc[:, 8:24], x[:, :, ::2, ::2])
    assert torch.count_nonzero(sc[:, :8]) == 0 and torch.count_nonzero(sc[:, 24:]) == 0


def test_resnet32_default_selection_excludes_batchnorm():
    model = get_model("resnet32")
    sel = select_parameters(model)
    assert not any("bn" in n for n in sel)
    assert sum(v.numel() for v in sel.values()) == 464154 - sum(
        p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()
    )
