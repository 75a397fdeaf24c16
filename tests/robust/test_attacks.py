"""The weight-space sign-PGA (docs/robust-training.md and docs/evaluation.md): box, zero parameters, ascent, objectives, random points."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikerobust.nn import LSNNClassifier
from spikerobust.robust.attacks import (
    OBJECTIVES,
    attack_weights,
    attacked_accuracy,
    pga_attack,
    pga_attack_dataset,
    random_perturbation,
    robustness_loss,
)
from spikerobust.robust.params import select_parameters


def mlp():
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_attack_stays_in_box_and_ascends(objective):
    model = mlp()
    x, y = torch.randn(40, 5), torch.randint(0, 3, (40,))
    params = select_parameters(model)
    eps, eps_c, steps = 0.3, 0.002, 5
    res = pga_attack(model, x, params, epsilon=eps, n_steps=steps, objective=objective, eps_c=eps_c, y=y,
                     generator=torch.Generator().manual_seed(0))
    for n, p in params.items():
        theta = p.detach()
        radius = eps * theta.abs() + eps_c
        # every element inside the box around the start, and the start near θ
        assert ((res.theta_star[n] - res.theta_start[n]).abs() <= radius * (1 + 1e-5) + 1e-7).all()
        assert ((res.theta_start[n] - theta).abs() <= 1e-3 * theta.abs() * res.noise[n].abs() + 1e-7).all()
        assert (res.sign_sum[n].abs() <= steps).all()
    assert res.objective_end > res.objective_start


def test_zero_parameters_unmoved_without_eps_c():
    model = mlp()
    with torch.no_grad():
        model[0].weight[:, :2] = 0.0
        model[2].bias.zero_()
    x, y = torch.randn(20, 5), torch.randint(0, 3, (20,))
    theta = attack_weights(model, x, y, epsilon=0.5, n_steps=4)
    assert torch.count_nonzero(theta["0.weight"][:, :2]) == 0
    assert torch.count_nonzero(theta["2.bias"]) == 0
    moved = attack_weights(model, x, y, epsilon=0.5, n_steps=4, eps_c=0.01)
    assert torch.count_nonzero(moved["2.bias"]) == 3


def test_model_not_mutated_and_mode_restored():
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(12, 5), torch.randint(0, 3, (12,))
    for train in (True, False):
        model.train(train)
        attack_weights(model, x, y, epsilon=0.2, n_steps=2)
        attacked_accuracy(model, (x, y), 0.2, n_steps=2, progress=False)
        assert model.training is train and model[1].training is train
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_objectives_by_hand():
    clean = torch.tensor([[0.0, math.log(3.0)]])  # p = (1/4, 3/4)
    adv = torch.tensor([[0.0, 0.0]])  # q = (1/2, 1/2)
    p, q = torch.tensor([0.25, 0.75]), torch.tensor([0.5, 0.5])
    kl_pq = float((p * (p / q).log()).sum())
    kl_qp = float((q * (q / p).log()).sum())
    m = (p + q) / 2
    js = 0.5 * float((p * (p / m).log()).sum()) + 0.5 * float((q * (q / m).log()).sum())
    assert float(robustness_loss("kl", clean, adv)) == pytest.approx(kl_pq, rel=1e-6)
    assert float(robustness_loss("reverse_kl", clean, adv)) == pytest.approx(kl_qp, rel=1e-6)
    assert float(robustness_loss("js", clean, adv)) == pytest.approx(js, rel=1e-5)
    assert float(robustness_loss("l2", clean, adv)) == pytest.approx(math.log(3.0) ** 2 / 2, rel=1e-6)
    y = torch.tensor([1])
    assert float(robustness_loss("ce", clean, adv, y)) == pytest.approx(math.log(2.0), rel=1e-6)
    assert float(robustness_loss("madry", clean, adv, y)) == pytest.approx(math.log(2.0), rel=1e-6)


def test_bad_input():
    model = mlp()
    x = torch.randn(4, 5)
    with pytest.raises(ValueError, match="objective"):
        attack_weights(model, x, objective="hinge")
    with pytest.raises(ValueError, match="labels"):
        attack_weights(model, x, objective="ce")
    with pytest.raises(ValueError, match="epsilon"):
        attack_weights(model, x, torch.zeros(4, dtype=torch.long), epsilon=-1.0)
    with pytest.raises(ValueError, match="empty"):
        attack_weights(model, x, torch.zeros(4, dtype=torch.long), params={})
    with pytest.raises(ValueError, match=r"\[B, C\]"):
        attack_weights(nn.Sequential(nn.Linear(5, 3), nn.Flatten(0)), x, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="mode"):
        random_perturbation(select_parameters(model), 0.1, mode="sphere")


@pytest.mark.parametrize("mode", ["corner", "uniform"])
def test_random_perturbation_size(mode):
    params = select_parameters(mlp())
    out = random_perturbation(params, 0.2, 0.01, mode=mode, generator=torch.Generator().manual_seed(0))
    ratios = []
    for n, p in params.items():
        delta = (out[n] - p.detach()).abs()
        radius = 0.2 * p.detach().abs() + 0.01
        if mode == "corner":
            torch.testing.assert_close(delta, radius)
        else:
            assert (delta <= radius * (1 + 1e-6)).all()
            ratios.append((delta / radius).flatten())
    if mode == "uniform":  # |U(-1, 1)| is uniform on [0, 1]: mean 1/2 (147 elements)
        assert float(torch.cat(ratios).mean()) == pytest.approx(0.5, abs=0.08)


def test_attack_hurts_more_than_random_on_a_trained_model():
    torch.manual_seed(0)
    n, d = 600, 10
    y = torch.randint(0, 3, (n,))
    centres = torch.randn(3, d) * 2.0
    x = centres[y] + torch.randn(n, d)
    model = nn.Sequential(nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(x[:400]), y[:400]).backward()
        opt.step()
    test = (x[400:], y[400:])
    clean = attacked_accuracy(model, test, 0.0, n_steps=1, progress=False)
    assert clean > 0.9
    eps = 0.5
    pga = attacked_accuracy(model, test, eps, progress=False)
    rnd = attacked_accuracy(model, test, eps, attack="random", progress=False)
    assert pga < rnd - 0.2, (clean, pga, rnd)


def test_lsnn_attack_kl_in_box():
    model = LSNNClassifier(2, 10, 3)
    x = torch.randn(25, 6, 2) * 3
    params = select_parameters(model)
    res = pga_attack(model, x, params, epsilon=0.2, n_steps=3, objective="kl")
    for n, p in params.items():
        assert ((res.theta_star[n] - res.theta_start[n]).abs() <= 0.2 * p.detach().abs() * (1 + 1e-5) + 1e-7).all()
    assert torch.count_nonzero(torch.diagonal(res.theta_star["lsnn.w_rec"])) == 0


def _plain_sign_pga(model, x, params, *, epsilon, n_steps, sigma_init, eps_c, generator, y=None):
    """docs/robust-training.md's loop written out directly: a fresh θ* dict each step, every parameter live."""
    from torch.func import functional_call

    theta = {n: p.detach() for n, p in params.items()}
    with torch.no_grad():
        target = model(x)
    noise = {n: torch.randn(t.shape, generator=generator, dtype=t.dtype) for n, t in theta.items()}
    cur = {n: t + sigma_init * t.abs() * noise[n] for n, t in theta.items()}
    step = {n: (epsilon * t.abs() + eps_c) / n_steps for n, t in theta.items()}
    for _ in range(n_steps):
        leaves = {n: t.clone().requires_grad_(True) for n, t in cur.items()}
        loss = robustness_loss("kl", target, functional_call(model, leaves, (x,), strict=False), y)
        grads = torch.autograd.grad(loss, list(leaves.values()))
        cur = {n: cur[n] + step[n] * torch.sign(g) for n, g in zip(leaves, grads)}
    return cur, noise


def test_in_place_attack_equals_the_plain_loop_and_keeps_the_start():
    """θ* updated in one buffer per tensor (foreach ops), with unattacked trainable tensors frozen,
    equals a plain loop that rebuilds θ* each step with every parameter live; θ*_0 is untouched."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))
    x = torch.randn(30, 5)
    params = select_parameters(model, exclude=["0.bias"])  # 0.bias stays a live, unattacked parameter
    settings = dict(epsilon=0.2, n_steps=4, sigma_init=0.01, eps_c=0.001)
    want, want_noise = _plain_sign_pga(model, x, params, generator=torch.Generator().manual_seed(9), **settings)
    res = pga_attack(model, x, params, objective="kl", generator=torch.Generator().manual_seed(9), **settings)
    for n, p in params.items():
        torch.testing.assert_close(res.noise[n], want_noise[n], rtol=0, atol=0)
        torch.testing.assert_close(res.theta_star[n], want[n], rtol=0, atol=0)
        start = p.detach() + 0.01 * p.detach().abs() * want_noise[n]
        torch.testing.assert_close(res.theta_start[n], start, rtol=0, atol=0)
        # θ* − θ*_0 is step·Σ sign(g_t) (up to the rounding of the additions)
        step = (0.2 * p.detach().abs() + 0.001) / 4
        torch.testing.assert_close(res.theta_star[n] - res.theta_start[n], step * res.sign_sum[n])
    assert model[0].bias.grad is None and all(p.grad is None for p in model.parameters())


# --------------------------------------------------------------------------- one θ* per test set


@pytest.mark.parametrize("objective", ["ce", "kl", "l2"])
def test_one_attack_over_two_batches_equals_the_attack_on_the_concatenated_set(objective):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    x, y = torch.randn(50, 5, dtype=torch.float64), torch.randint(0, 3, (50,))
    params = select_parameters(model)
    settings = dict(epsilon=0.3, n_steps=6, objective=objective, sigma_init=0.01)
    whole = pga_attack(model, x, params, y=y, generator=torch.Generator().manual_seed(4), **settings)
    # unequal batches (30 + 20): each batch's mean objective counts with its share of the samples
    parts = [(x[:30], y[:30]), (x[30:], y[30:])]
    split = pga_attack_dataset(model, parts, params, generator=torch.Generator().manual_seed(4),
                               evaluate_end=True, **settings)
    for n in params:
        assert torch.equal(split.theta_star[n], whole.theta_star[n]), n
        assert not torch.equal(split.theta_star[n], split.theta_start[n])
    assert split.objective_start == pytest.approx(whole.objective_start, rel=1e-12)
    assert split.objective_end == pytest.approx(whole.objective_end, rel=1e-12)
    # one θ* per batch is a different attack
    first_batch_only = pga_attack(model, parts[0][0], params, y=parts[0][1],
                                  generator=torch.Generator().manual_seed(4), **settings)
    assert any(not torch.equal(first_batch_only.theta_star[n], whole.theta_star[n]) for n in params)


def test_attacked_accuracy_uses_one_theta_star_for_the_whole_test_set():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    x, y = torch.randn(60, 5, dtype=torch.float64), torch.randint(0, 3, (60,))
    batches = [(x[:25], y[:25]), (x[25:], y[25:])]
    params = select_parameters(model)
    star = pga_attack_dataset(model, (x, y), params, epsilon=0.5, n_steps=5,
                              generator=torch.Generator().manual_seed(2)).theta_star
    with torch.no_grad():
        expected = (torch.func.functional_call(model, star, (x,)).argmax(-1) == y).double().mean().item()
    got = attacked_accuracy(model, batches, 0.5, n_steps=5, seed=2, progress=False)
    assert got == pytest.approx(expected, abs=1e-12)
    # the random comparison is one random point of the box for the whole set too
    rnd = random_perturbation(params, 0.5, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected_rnd = (torch.func.functional_call(model, rnd, (x,)).argmax(-1) == y).double().mean().item()
    assert attacked_accuracy(model, batches, 0.5, attack="random", seed=2, progress=False) == pytest.approx(
        expected_rnd, abs=1e-12)
