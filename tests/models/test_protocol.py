"""The model protocol (spikerobust.protocol): declarations of the library's models, defaults of plain modules."""

import pytest
import torch
from torch import nn

from spikerobust.models import cnn_fmnist, get_model, resnet32
from spikerobust.nn import LSNN, AdaptiveLeaky, LSNNClassifier
from spikerobust.protocol import (
    LAYOUTS,
    batch_dim,
    check_layout,
    forward_with_auxiliary_loss,
    has_auxiliary_loss,
    input_layout,
    spiking_layers,
    unwrap,
)

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def test_lsnn_classifier_declares_time_first_aux_loss_and_its_layer():
    model = LSNNClassifier(2, n_hidden=8, n_classes=3)
    assert input_layout(model) == "time_first" and batch_dim(model) == 1
    assert has_auxiliary_loss(model)
    assert spiking_layers(model) == [model.lsnn]
    assert spiking_layers(model.lsnn) == [model.lsnn] and input_layout(model.lsnn) == "time_first"


@pytest.mark.parametrize("name", ["lsnn_ecg", "lsnn_speech"])
def test_registered_lsnn_models_time_first(name):
    model = get_model(name, n_hidden=4)
    assert input_layout(model) == "time_first" and len(spiking_layers(model)) == 1


@pytest.mark.parametrize("build", [cnn_fmnist, resnet32])
def test_cnn_and_resnet_declare_batch_first_without_spiking_layers(build):
    model = build()
    assert input_layout(model) == "batch_first" and batch_dim(model) == 0
    assert not has_auxiliary_loss(model)
    assert spiking_layers(model) == []
    assert isinstance(cnn_fmnist(), nn.Sequential)  # still a plain Sequential for layer walkers


def test_plain_module_defaults_and_children_found():
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    assert (input_layout(net), has_auxiliary_loss(net), spiking_layers(net)) == ("batch_first", False, [])
    a, b = LSNN(2, 3), LSNN(3, 2)
    wrapper = nn.Sequential(a, nn.Identity(), nn.Sequential(b))
    assert spiking_layers(wrapper) == [a, b]
    neuron = AdaptiveLeaky(n_hidden=3)
    assert spiking_layers(nn.ModuleList([neuron])) == [neuron]


def test_wrappers_are_looked_through():
    model = LSNNClassifier(2, n_hidden=4, n_classes=2)
    wrapped = nn.DataParallel(model)
    assert unwrap(wrapped) is model
    assert input_layout(wrapped) == "time_first" and has_auxiliary_loss(wrapped)
    assert spiking_layers(wrapped) == [model.lsnn]


def test_bad_layout_is_a_clear_error():
    class Odd(nn.Module):
        input_layout = "channels_last"

    with pytest.raises(ValueError, match="time_first"):
        input_layout(Odd())
    with pytest.raises(ValueError, match="layout"):
        batch_dim("T,B,F")
    assert [check_layout(x) for x in LAYOUTS] == list(LAYOUTS)


def test_forward_with_auxiliary_loss_matches_the_models_own_regulariser():
    torch.manual_seed(0)
    model = LSNNClassifier(2, n_hidden=8, n_classes=3)
    x = torch.randn(15, 4, 2) * 3
    logits, aux = forward_with_auxiliary_loss(model, x)
    spikes = model.lsnn(x)
    # rate regulariser of docs/lsnn.md, recomputed: strength * sum_j (mean rate_j - target)^2
    expected = model.rate_loss(spikes)
    assert torch.allclose(aux, expected) and torch.allclose(logits, model(x))
    lin = nn.Linear(3, 2)
    out, zero = forward_with_auxiliary_loss(lin, torch.ones(5, 3))
    assert torch.equal(out, lin(torch.ones(5, 3))) and zero.item() == 0.0 and zero.dim() == 0


def test_forward_with_auxiliary_loss_functional_params_do_not_mutate():
    lin = nn.Linear(3, 2)
    w = torch.zeros_like(lin.weight)
    out, _ = forward_with_auxiliary_loss(lin, torch.ones(1, 3), {"weight": w})
    assert torch.equal(out[0], lin.bias.detach()) and not torch.equal(lin.weight, w)
