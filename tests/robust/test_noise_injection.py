"""Noise-injection training (docs/robust-training.md forward noise, §6 layer-range noise and 2σ clipping, + robust loss).

The reference updates are computed here by hand with plain autograd on explicitly built noisy
weights (same generator, same draw order), independently of the method's code path.
"""

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call

from spikerobust.robust.adversarial import robust_loss_backward
from spikerobust.robust.methods import get_method, list_methods
from spikerobust.robust.methods.noise_injection import clip_to_sigma, inject_noise
from spikerobust.robust.params import select_parameters


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 3)).double()


def batch(seed=1):
    g = gen(seed)
    return torch.randn(32, 5, dtype=torch.float64, generator=g), torch.randint(0, 3, (32,), generator=g)


def test_registered():
    assert "noise_injection" in list_methods()
    for bad in (dict(mode="x"), dict(eta=-1), dict(beta=-1), dict(clip_sigma=0)):
        with pytest.raises(ValueError):
            get_method("noise_injection", **bad)


def test_relative_noise_statistics():
    w = torch.cat([torch.linspace(-3, 3, 200_000, dtype=torch.float64), torch.zeros(10, dtype=torch.float64)])
    noisy = inject_noise({"w": w}, 0.3, "relative", gen(2))["w"]
    nz = w != 0
    rel = (noisy - w)[nz] / (0.3 * w[nz].abs())  # must be N(0, 1) per element
    n = int(nz.sum())
    assert float(rel.mean()) == pytest.approx(0.0, abs=5 / math.sqrt(n))
    assert float(rel.std()) == pytest.approx(1.0, abs=5 / math.sqrt(2 * n))
    assert float(noisy[~nz].abs().max()) == 0.0  # a zero weight gets no relative noise


def test_layer_range_noise_statistics_per_tensor():
    params = {"a": torch.linspace(-2, 1, 100_000, dtype=torch.float64), "b": torch.full((100_000,), 0.5, dtype=torch.float64)}
    noisy = inject_noise(params, 0.1, "layer_range", gen(3))
    for name, max_abs in (("a", 2.0), ("b", 0.5)):
        d = noisy[name] - params[name]
        assert float(d.std()) == pytest.approx(0.1 * max_abs, rel=5 / math.sqrt(2 * 100_000))
        assert float(d.mean()) == pytest.approx(0.0, abs=5 * 0.1 * max_abs / math.sqrt(100_000))


def test_noise_is_a_constant_for_the_gradient():
    w = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    noisy = inject_noise({"w": w}, 0.5, "relative", gen())["w"]
    (noisy * torch.arange(12.0, dtype=torch.float64).view(4, 3)).sum().backward()
    assert torch.equal(w.grad, torch.arange(12.0, dtype=torch.float64).view(4, 3))


@pytest.mark.parametrize("mode", ["relative", "layer_range"])
def test_step_applies_the_gradient_at_noisy_weights_to_theta(mode):
    model, (x, y) = mlp(), batch()
    ref = mlp()
    lr = 0.05
    method = get_method("noise_injection", eta=0.2, mode=mode, seed=7)
    method.step(model, x, y, torch.optim.SGD(model.parameters(), lr=lr))
    # by hand: same generator and draw order (the selection order), noise as a constant
    g = gen(7)
    params = dict(ref.named_parameters())
    noisy = {}
    for name, p in params.items():
        n = torch.randn(p.shape, dtype=p.dtype, generator=g)
        std = p.detach().abs() if mode == "relative" else p.detach().abs().max()
        noisy[name] = p + 0.2 * std * n
    loss = nn.functional.cross_entropy(functional_call(ref, noisy, (x,)), y)
    grads = torch.autograd.grad(loss, list(params.values()))
    for (name, p), gr in zip(params.items(), grads):
        assert torch.allclose(dict(model.named_parameters())[name], p - lr * gr, atol=1e-12), name


def test_eta_zero_is_standard_training():
    a, b, (x, y) = mlp(), mlp(), batch()
    get_method("noise_injection", eta=0.0).step(a, x, y, torch.optim.SGD(a.parameters(), lr=0.1))
    get_method("standard").step(b, x, y, torch.optim.SGD(b.parameters(), lr=0.1))
    assert all(torch.allclose(p, q, atol=1e-14) for p, q in zip(a.parameters(), b.parameters()))


def test_clip_to_two_sigma_after_the_step():
    a, b, (x, y) = mlp(), mlp(), batch()
    for m in (a, b):
        for p in m.parameters():  # make the tails long so that the clip bites
            p.data.mul_(torch.linspace(0.1, 3, p.numel(), dtype=p.dtype).view(p.shape))
    get_method("noise_injection", eta=0.1, seed=1, clip_sigma=2.0).step(a, x, y, torch.optim.SGD(a.parameters(), lr=0.1))
    get_method("noise_injection", eta=0.1, seed=1).step(b, x, y, torch.optim.SGD(b.parameters(), lr=0.1))
    clipped = 0
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        if pb.dim() >= 2:
            c = 2.0 * float(pb.detach().std(unbiased=False))
            assert torch.allclose(pa, pb.clamp(-c, c), atol=1e-14)
            clipped += int((pb.abs() > c).sum())
        else:
            assert torch.equal(pa, pb), f"bias {name} must not be clipped"
    assert clipped > 0
    w = torch.tensor([[-10.0, 0.0, 1.0, 2.0]])
    clip_to_sigma({"w": w}, 1.0)
    assert float(w.abs().max()) == pytest.approx(float(torch.tensor([-10.0, 0.0, 1.0, 2.0]).std(unbiased=False)))


def test_beta_adds_the_robust_loss_gradient():
    model, ref, (x, y) = mlp(), mlp(), batch()
    lr = 0.1
    method = get_method("noise_injection", eta=0.1, mode="layer_range", beta=0.25, n_steps=3, epsilon=0.1, seed=9)
    metrics = method.step(model, x, y, torch.optim.SGD(model.parameters(), lr=lr))
    assert {"loss", "loss_rob", "loss_clean"} <= set(metrics)
    # by hand: gradient at the noisy weights + C's robust_loss_backward accumulated, same generator
    g = gen(9)
    params = select_parameters(ref)
    noisy = inject_noise(params, 0.1, "layer_range", g)
    nn.functional.cross_entropy(functional_call(ref, noisy, (x,)), y).backward()
    robust_loss_backward(ref, x, beta=0.25, n_steps=3, epsilon=0.1, params=params, generator=g, y=y)
    for (name, p), q in zip(params.items(), model.parameters()):
        assert torch.allclose(q, p - lr * p.grad, atol=1e-10), name
    assert metrics["loss_rob"] > 0


def test_learns_a_separable_task_and_restores_mode():
    torch.manual_seed(0)
    x = torch.randn(400, 5, dtype=torch.float64)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long()
    model = mlp()
    model.eval()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    method = get_method("noise_injection", eta=0.1, mode="layer_range", seed=0)
    for _ in range(60):
        method.step(model, x, y, opt)
    assert not model.training
    assert float((model(x).argmax(1) == y).double().mean()) > 0.9


def test_generator_state_round_trips_for_resumed_runs():
    (x, y) = batch()
    a, b = mlp(), mlp()
    m1 = get_method("noise_injection", eta=0.3, seed=4)
    m1.step(a, x, y, torch.optim.SGD(a.parameters(), lr=0.1))
    state = m1.state_dict()
    m2 = get_method("noise_injection", eta=0.3, seed=4)
    m2.load_state_dict(state)
    b.load_state_dict(a.state_dict())
    m1.step(a, x, y, torch.optim.SGD(a.parameters(), lr=0.1))
    m2.step(b, x, y, torch.optim.SGD(b.parameters(), lr=0.1))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
