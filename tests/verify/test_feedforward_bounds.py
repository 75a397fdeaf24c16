"""Feed-forward (conv/dense nn.Sequential) bounds: soundness by sampling in float64, ε = 0 exactness,
monotonicity, unsupported layers named, and the paper's CNN from the model registry."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call

from spikerobust.verify import is_verified, logit_bounds, sequential_interval, verified_accuracy

D = torch.float64
pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning")


def small_cnn(seed):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 4, kernel_size=4, padding="same"),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 5, kernel_size=3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(5 * 2 * 2, 16),
        nn.ReLU(),
        nn.Linear(16, 3),
    ).to(D).eval()


def sample_params(model, epsilon, g, corners):
    out = {}
    for name, p in model.named_parameters():
        p = p.detach()
        if corners:
            u = torch.randint(0, 2, p.shape, generator=g, dtype=D) * 2 - 1
        else:
            u = torch.rand(p.shape, generator=g, dtype=D) * 2 - 1
        out[name] = p + u * (epsilon * p.abs())
    return out


def assert_samples_inside(model, x, epsilon, seed, corners, n=20):
    """Every network drawn from the ε-box (uniformly, or at its corners) gives logits inside the
    bounds of ``sequential_interval``; returns the bounds."""
    out = sequential_interval(model, x, epsilon)
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        y = functional_call(model, sample_params(model, epsilon, g, corners), (x,))
        assert bool(out.contains(y, atol=1e-10).all())
    return out


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), epsilon=st.sampled_from([1e-3, 1e-2, 1e-1]), corners=st.booleans())
def test_every_sampled_cnn_lies_inside_the_bounds(seed, epsilon, corners):
    model = small_cnn(seed)
    out = assert_samples_inside(model, torch.randn(6, 1, 12, 12, dtype=D), epsilon, seed, corners)
    assert bool((out.upper > out.lower).any())  # not vacuous: the box moves the logits


def test_zero_epsilon_equals_the_forward_pass_exactly():
    model = small_cnn(0).float()
    x = torch.randn(4, 1, 12, 12)
    lo, hi = logit_bounds(model, x, 0.0)
    ref = model(x)
    assert torch.equal(lo, ref) and torch.equal(hi, ref)


def test_bounds_are_monotone_in_epsilon():
    model = small_cnn(1)
    x = torch.randn(4, 1, 12, 12, dtype=D)
    prev = None
    for epsilon in [0.0, 1e-4, 1e-3, 1e-2, 1e-1]:
        cur = sequential_interval(model, x, epsilon)
        if prev is not None:
            assert prev.is_subset_of(cur, atol=1e-12)
        prev = cur


def test_unsupported_layer_is_named():
    model = nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"unsupported layer \[1\] Tanh"):
        logit_bounds(model, torch.randn(2, 3), 0.1)
    with pytest.raises(ValueError, match="padding_mode"):
        logit_bounds(nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, padding_mode="reflect")), torch.randn(1, 1, 5, 5), 0.1)


def test_paper_cnn_from_the_registry():
    models = pytest.importorskip("spikerobust.models")
    if "cnn_fmnist" not in models.list_models():
        pytest.skip("cnn_fmnist is not registered")
    torch.manual_seed(0)
    model = models.get_model("cnn_fmnist").to(D).eval()
    x = torch.randn(2, 1, 28, 28, dtype=D)
    lo, hi = logit_bounds(model, x, 0.0)
    assert torch.equal(lo, model(x)) and torch.equal(hi, model(x))
    out = sequential_interval(model, x, 1e-3)
    g = torch.Generator().manual_seed(0)
    for corners in (True, False):
        y = functional_call(model, sample_params(model, 1e-3, g, corners), (x,))
        assert bool(out.contains(y, atol=1e-10).all())


def test_verified_accuracy_counts_samples_by_hand():
    # a linear model with a known margin: logits = x (identity weights), epsilon = 0.1 -> radius 0.1|x|
    model = nn.Sequential(nn.Linear(2, 2, bias=False)).to(D)
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(2, dtype=D))
    x = torch.tensor([[1.0, 0.0], [1.0, 0.95], [0.0, 2.0], [0.3, 0.2]], dtype=D)
    y = torch.tensor([0, 0, 1, 1])
    # sample 0: [0.9, 1.1] vs [0, 0] -> verified; 1: [0.9, 1.1] vs [0.855, 1.045] -> no;
    # 2: label 1 [1.8, 2.2] vs 0 -> yes; 3: misclassified -> no
    lo, hi = logit_bounds(model, x, 0.1)
    assert is_verified(lo, hi, y).tolist() == [True, False, True, False]
    assert verified_accuracy(model, (x, y), 0.1, batch_size=3) == 0.5
    assert verified_accuracy(model, [(x[:2], y[:2]), (x[2:], y[2:])], 0.1) == 0.5
    assert verified_accuracy(model, (x, y), 0.0) == 0.75


def small_resnet(seed):
    from spikerobust.models.resnet import ResNetCIFAR

    torch.manual_seed(seed)
    model = ResNetCIFAR(blocks=(1, 2), widths=(4, 8), n_classes=3, in_channels=2).to(D)
    with torch.no_grad():  # evaluation-mode statistics that are not the identity
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_(1.0, 0.5)  # some γ < 0 too
                m.bias.normal_(0.0, 0.2)
    return model.eval()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), epsilon=st.sampled_from([1e-3, 1e-2, 5e-2]), corners=st.booleans())
def test_every_sampled_resnet_lies_inside_the_bounds(seed, epsilon, corners):
    # conv, batch norm (γ, β boxed; running statistics exact), the residual sum, the option-A
    # shortcut (stride 2 and zero-padded channels), global average pooling, the classifier
    model = small_resnet(seed)
    out = assert_samples_inside(model, torch.randn(3, 2, 8, 8, dtype=D), epsilon, seed, corners)
    assert bool((out.width > 0).all())  # not vacuous: every logit is uncertain inside the box


def test_resnet32_is_verifiable_and_exact_at_zero_epsilon():
    from spikerobust.models import resnet32

    torch.manual_seed(0)
    model = resnet32().to(D).eval()
    x = torch.randn(2, 3, 32, 32, dtype=D)
    lo, hi = logit_bounds(model, x, 0.0)
    assert torch.equal(lo, model(x)) and torch.equal(hi, model(x))
    lo, hi = logit_bounds(model, x, 1e-4)
    assert bool((lo <= model(x)).all() and (model(x) <= hi).all() and (lo < hi).all())
    assert 0.0 <= verified_accuracy(model, (x, torch.tensor([0, 1])), 1e-4) <= 1.0
