"""The robust loss of docs/robust-training.md (Algorithm 1): its gradient against autograd, β = 0, the method."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from spikerobust.nn import LSNNClassifier
from spikerobust.robust.adversarial import diagonal_jacobian, robust_loss_backward
from spikerobust.robust.attacks import pga_attack
from spikerobust.robust.methods import get_method, list_methods
from spikerobust.robust.params import select_parameters

SETTINGS = dict(n_steps=3, epsilon=0.2, sigma_init=0.05, eps_c=0.01)


def small_model():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4)).double()


def kl(logits_p, logits_q):
    p = F.softmax(logits_p, -1)
    return (p * (F.log_softmax(logits_p, -1) - F.log_softmax(logits_q, -1))).sum(-1).mean()


def reference_gradient(model, x, beta, seed, detach_target=False, jacobian=True):
    """Autograd through θ* written as an explicit element-wise function of θ (signs and R fixed)."""
    params = select_parameters(model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        target = model(x)
    att = pga_attack(model, x, params, objective="kl", target_logits=target, generator=gen, **SETTINGS)
    theta = {n: p.detach().clone().requires_grad_(True) for n, p in params.items()}
    n_steps, eps, sig, eps_c = SETTINGS["n_steps"], SETTINGS["epsilon"], SETTINGS["sigma_init"], SETTINGS["eps_c"]
    theta_star = {}
    for n, t in theta.items():
        if jacobian:
            theta_star[n] = t + sig * t.abs() * att.noise[n] + (eps * t.abs() + eps_c) / n_steps * att.sign_sum[n]
        else:
            theta_star[n] = t + (att.theta_star[n] - t).detach()
    # the explicit function reproduces the attack's θ*
    for n in theta:
        torch.testing.assert_close(theta_star[n].detach(), att.theta_star[n])
    clean = functional_call(model, theta, (x,))
    if detach_target:
        clean = clean.detach()
    adv = functional_call(model, theta_star, (x,))
    loss = beta * kl(clean, adv)
    grads = torch.autograd.grad(loss, list(theta.values()))
    return dict(zip(theta, grads)), float(kl(clean, adv).detach())


def test_gradient_matches_autograd_with_fixed_signs():
    model = small_model()
    x = torch.randn(10, 3, dtype=torch.float64)
    beta = 0.7
    ref, ref_loss = reference_gradient(model, x, beta, seed=3)
    l_rob = robust_loss_backward(model, x, beta=beta, generator=torch.Generator().manual_seed(3), **SETTINGS)
    assert l_rob == pytest.approx(ref_loss, rel=1e-10)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n], rtol=1e-9, atol=1e-12)
    # the test can tell the difference: a detached target, or J = 1, give other gradients
    detached, _ = reference_gradient(model, x, beta, seed=3, detach_target=True)
    no_jac, _ = reference_gradient(model, x, beta, seed=3, jacobian=False)
    for other in (detached, no_jac):
        assert max(float((other[n] - p.grad).abs().max()) for n, p in model.named_parameters()) > 1e-6


def test_gradient_accumulates_and_does_not_zero():
    model = small_model()
    x = torch.randn(8, 3, dtype=torch.float64)
    robust_loss_backward(model, x, beta=0.5, generator=torch.Generator().manual_seed(0), **SETTINGS)
    first = {n: p.grad.clone() for n, p in model.named_parameters()}
    robust_loss_backward(model, x, beta=0.5, generator=torch.Generator().manual_seed(0), **SETTINGS)
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, 2 * first[n])


def test_diagonal_jacobian_by_hand():
    theta = torch.tensor([0.5, -2.0, 0.0, 1.0])
    noise = torch.tensor([1.0, 2.0, 3.0, -1.0])
    ssum = torch.tensor([2.0, -2.0, 2.0, 0.0])
    jac = diagonal_jacobian(theta, noise, ssum, epsilon=0.1, n_steps=2, sigma_init=0.01)
    expected = torch.tensor([1 + 0.01 + 0.1, 1 - (0.02 - 0.1), 1.0, 1 - 0.01])
    torch.testing.assert_close(jac, expected)


def test_beta_zero_equals_hand_computed_cross_entropy_gradient():
    torch.manual_seed(0)
    model = nn.Linear(4, 3).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    # hand: dCE/dz = (softmax(z) - onehot) / B; dW = dz^T x; db = sum dz
    z = x @ w0.T + b0
    dz = (torch.softmax(z, -1) - F.one_hot(y, 3).double()) / 6
    grad_w, grad_b = dz.T @ x, dz.sum(0)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    metrics = get_method("adversarial", beta=0.0, n_steps=2, seed=0).step(model, x, y, opt)
    torch.testing.assert_close(model.weight.detach(), w0 - grad_w)
    torch.testing.assert_close(model.bias.detach(), b0 - grad_b)
    assert metrics["loss"] == pytest.approx(float(F.cross_entropy(z, y)))
    assert metrics["loss_rob"] >= 0


def test_method_equals_natural_plus_robust_backward():
    """The fused step equals L_nat.backward() followed by robust_loss_backward (docs/robust-training.md sum)."""
    model = small_model()
    x = torch.randn(8, 3, dtype=torch.float64)
    y = torch.randint(0, 4, (8,))
    ref = small_model()
    F.cross_entropy(ref(x), y).backward()
    robust_loss_backward(ref, x, beta=0.3, generator=torch.Generator().manual_seed(5), **SETTINGS)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    params0 = {n: p.detach().clone() for n, p in model.named_parameters()}
    get_method("adversarial", beta=0.3, seed=5, **SETTINGS).step(model, x, y, opt)
    for n, p in model.named_parameters():
        torch.testing.assert_close(params0[n] - p.detach(), dict(ref.named_parameters())[n].grad)


def test_lsnn_method_step_reaches_every_parameter_and_keeps_diagonal():
    model = LSNNClassifier(2, 12, 3)
    x = torch.randn(30, 5, 2) * 3
    y = torch.tensor([0, 1, 2, 0, 1])
    assert "adversarial" in list_methods()
    method = get_method("adversarial", beta=0.5, n_steps=2, seed=0)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    metrics = method.step(model, x, y, opt)
    assert set(metrics) == {"loss", "loss_rob"} and math.isfinite(metrics["loss_rob"])
    assert model.training
    for n, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
    assert torch.count_nonzero(torch.diagonal(model.lsnn.w_rec.grad)) == 0


def test_batchnorm_running_stats_untouched_by_robust_loss():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3)).train()
    before = {n: b.clone() for n, b in model.named_buffers()}
    robust_loss_backward(model, torch.randn(16, 4), beta=1.0, n_steps=2)
    for n, b in model.named_buffers():
        assert torch.equal(b, before[n]), n
    assert model[1].weight.grad is not None  # not selected, but gets its ordinary gradient


def test_bad_settings():
    model = small_model()
    x = torch.randn(4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="epsilon"):
        robust_loss_backward(model, x, beta=1.0, epsilon=-0.1)
    with pytest.raises(ValueError, match="objective"):
        robust_loss_backward(model, x, beta=1.0, objective="nope")
    with pytest.raises(ValueError, match="empty"):
        robust_loss_backward(model, x, beta=1.0, params={})
    with pytest.raises(ValueError, match="beta"):
        get_method("adversarial", beta=-1.0)


def burst_task(n, t_steps=50, seed=0):
    """Two input channels, each with a 10-step burst at a random time; the label is the channel
    whose burst is stronger (amplitude 1.0 against 0.6), over Gaussian noise (std 0.2)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = 0.2 * torch.randn(t_steps, n, 2, generator=g)
    t = torch.arange(t_steps).view(t_steps, 1)
    for channel, amp in ((y, 1.0), (1 - y, 0.6)):
        start = torch.randint(5, t_steps - 15, (n,), generator=g)
        x[:, torch.arange(n), channel] += amp * ((t >= start) & (t < start + 10)).float()
    return x, y


def train_on_bursts(method, seed, epochs=10, n_hidden=32):
    torch.manual_seed(seed)
    x, y = burst_task(512, seed=1)
    model = LSNNClassifier(2, n_hidden, 2)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(epochs):
        perm = torch.randperm(512)
        for i in range(0, 512, 64):
            idx = perm[i : i + 64]
            method.step(model, x[:, idx], y[idx], opt)
    return model


@pytest.mark.slow
def test_robust_lsnn_keeps_more_accuracy_under_mismatch():
    """Scaled-down Table 1 on a generated LSNN task (about 3 minutes on one core)."""
    from spikerobust.robust.mismatch import MismatchResult, mismatch_evaluate
    from spikerobust.robust.stats import mann_whitney

    torch.set_num_threads(1)
    test = burst_task(400, seed=2)
    from spikerobust.robust.attacks import attacked_accuracy

    results, attacked = {}, {}
    for name, kwargs in (("standard", {}), ("adversarial", dict(beta=1.0, epsilon=0.3, n_steps=10))):
        runs = []
        for seed in (0, 1):
            method = get_method(name, **({**kwargs, "seed": seed} if kwargs else {}))
            model = train_on_bursts(method, seed)
            if seed == 0:  # Fig. S5: the attack against a random point of the same box
                attacked[name] = {
                    a: attacked_accuracy(model, test, 0.2, attack=a, progress=False) for a in ("pga", "random")
                }
                print(name, "accuracy at eps = 0.2:", attacked[name])
            runs.append(mismatch_evaluate(model, test, levels=(0.0, 0.3, 0.5, 0.7), n_draws=30, seed=seed,
                                          progress=False, label=name))
        results[name] = MismatchResult.pool(*runs)
        print(results[name].to_markdown())
    std, rob = results["standard"], results["adversarial"]
    print("Mann-Whitney at m=0.5:", mann_whitney(rob.accuracies[0.5], std.accuracies[0.5], "greater"))
    assert std.mean(0.0) > 0.85 and rob.mean(0.0) > 0.85
    assert rob.mean(0.5) > std.mean(0.5) + 0.03
    assert mann_whitney(rob.accuracies[0.5], std.accuracies[0.5], "greater").pvalue < 0.01
    assert attacked["standard"]["pga"] < attacked["standard"]["random"] - 0.1
