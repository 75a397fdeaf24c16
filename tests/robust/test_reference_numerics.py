"""Numbers of the attack, the robust loss, mismatch and the methods against a second, independent
implementation written here from docs/robust-training.md and docs/evaluation.md.

The reference below never calls the package: it writes the two-layer MLP as an explicit function
``f(x, θ) = tanh(x W1ᵀ + b1) W2ᵀ + b2``, draws its random numbers from a generator seeded like the
package's (one CPU generator, draws in parameter order), and runs Algorithm 1 with plain tensor
operations. Long experiments resume against the package's numbers, so a refactoring must keep
them: every comparison is to within rounding (float64).
"""

import inspect
import math

import pytest
import torch
from torch import nn

from spikerobust.robust.adversarial import robust_loss_backward
from spikerobust.robust.attacks import OBJECTIVES, attacked_accuracy, pga_attack, pga_attack_dataset
from spikerobust.robust.core import randn_like
from spikerobust.robust.methods import get_method
from spikerobust.robust.methods.forward_noise import ForwardNoise
from spikerobust.robust.methods.noise_injection import NoiseInjection, inject_noise
from spikerobust.robust.mismatch import DEFAULT_LEVELS, mismatch_evaluate
from spikerobust.robust.landscape import loss_landscape
from spikerobust.robust.spec import (CHUNK_SIZE, EPSILON, LR, LR_GAMMA, MISMATCH_LEVELS, N_DRAWS, N_STEPS,
                                     OBJECTIVE_NAMES, PCM_N_STEPS, SIGMA_INIT, AttackSpec)
from spikerobust.robust.trainer import fit

NAMES = ("0.weight", "0.bias", "2.weight", "2.bias")
TOL = dict(rtol=0, atol=1e-12)


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def data(seed=1, n=24):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def theta_of(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


# --------------------------------------------------------------------------- the reference


def f(x, th):
    return torch.tanh(x @ th["0.weight"].T + th["0.bias"]) @ th["2.weight"].T + th["2.bias"]


def kl(clean, adv):
    p = torch.softmax(clean, -1)
    return (p * (torch.log_softmax(clean, -1) - torch.log_softmax(adv, -1))).sum(-1).mean()


def ce(logits, y):
    return -torch.log_softmax(logits, -1).gather(1, y[:, None]).mean()


def ref_attack(th, x, y, *, eps, n, sigma, eps_c=0.0, objective="kl", gen=None):
    """Algorithm 1's sign-PGA: returns (θ*, R, Σ sign g)."""
    r = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in th.items()}
    cur = {k: v + sigma * v.abs() * r[k] for k, v in th.items()}
    size = {k: (eps * v.abs() + eps_c) / max(n, 1) for k, v in th.items()}
    s = {k: torch.zeros_like(v) for k, v in th.items()}
    target = f(x, th)
    for _ in range(n):
        leaves = {k: v.clone().requires_grad_(True) for k, v in cur.items()}
        loss = kl(target, f(x, leaves)) if objective == "kl" else ce(f(x, leaves), y)
        grads = torch.autograd.grad(loss, list(leaves.values()))
        for k, g in zip(leaves, grads):
            cur[k] = cur[k] + size[k] * torch.sign(g)
            s[k] = s[k] + torch.sign(g)
    return cur, r, s


def ref_robust_grad(th, x, beta, r, s, *, eps, n, sigma, eps_c=0.0, target_from=None):
    """∇_θ β·KL(f(x, θ) ‖ f(x, θ*(θ))) with θ* the element-wise function of θ (signs and R fixed)."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in th.items()}
    star = {k: t + sigma * t.abs() * r[k] + (eps * t.abs() + eps_c) / n * s[k] for k, t in leaves.items()}
    loss = beta * kl(f(x, leaves), f(x, star))
    value = float(kl(f(x, th), f(x, {k: v.detach() for k, v in star.items()})))
    return dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())))), value


def grad_ce_at(th, x, y, point):
    """∇_θ CE(f(x, point(θ)), y) for ``point`` a function of the θ leaves."""
    leaves = {k: v.clone().requires_grad_(True) for k, v in th.items()}
    loss = ce(f(x, point(leaves)), y)
    return dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values())))), float(loss.detach())


def sgd(th, grads, lr):
    return {k: v - lr * grads[k] for k, v in th.items()}


def assert_params(model, expected, tol=TOL):
    for k, v in model.named_parameters():
        torch.testing.assert_close(v.detach(), expected[k], **tol)


# --------------------------------------------------------------------------- attack and robust loss


@pytest.mark.parametrize("objective", ["kl", "ce"])
def test_attack_matches_reference(objective):
    model, (x, y) = mlp(), data()
    th = theta_of(model)
    spec = AttackSpec(epsilon=0.2, n_steps=4, sigma_init=0.05, eps_c=0.01, objective=objective)
    res = pga_attack(model, x, dict(model.named_parameters()), spec, y=y, generator=torch.Generator().manual_seed(3))
    star, r, s = ref_attack(th, x, y, eps=0.2, n=4, sigma=0.05, eps_c=0.01, objective=objective,
                            gen=torch.Generator().manual_seed(3))
    for k in NAMES:
        torch.testing.assert_close(res.noise[k], r[k], **TOL)
        torch.testing.assert_close(res.sign_sum[k], s[k], **TOL)
        torch.testing.assert_close(res.theta_star[k], star[k], **TOL)


def test_keywords_and_spec_give_the_same_attack():
    model, (x, _) = mlp(), data()
    params = dict(model.named_parameters())
    a = pga_attack(model, x, params, AttackSpec(n_steps=3, epsilon=0.3), generator=torch.Generator().manual_seed(0))
    b = pga_attack(model, x, params, n_steps=3, epsilon=0.3, generator=torch.Generator().manual_seed(0))
    for k in NAMES:
        assert torch.equal(a.theta_star[k], b.theta_star[k])


def test_dataset_attack_equals_the_attack_on_the_concatenated_set():
    model, (x, y) = mlp(), data()
    star, _, _ = ref_attack(theta_of(model), x, y, eps=0.1, n=5, sigma=1e-3, objective="ce",
                            gen=torch.Generator().manual_seed(7))
    res = pga_attack_dataset(model, [(x[:10], y[:10]), (x[10:], y[10:])], dict(model.named_parameters()),
                             AttackSpec(n_steps=5, objective="ce"), generator=torch.Generator().manual_seed(7))
    for k in NAMES:
        torch.testing.assert_close(res.theta_star[k], star[k], rtol=0, atol=1e-10)


def test_attacked_accuracy_matches_reference():
    model, (x, y) = mlp(), data()
    star, _, _ = ref_attack(theta_of(model), x, y, eps=0.5, n=N_STEPS, sigma=SIGMA_INIT, objective="ce",
                            gen=torch.Generator().manual_seed(2))
    expected = float((f(x, star).argmax(-1) == y).double().mean())
    assert attacked_accuracy(model, (x, y), 0.5, seed=2, progress=False) == expected


def test_robust_loss_gradient_matches_reference():
    model, (x, _) = mlp(), data()
    th = theta_of(model)
    kw = dict(eps=0.2, n=3, sigma=0.05, eps_c=0.01)
    _, r, s = ref_attack(th, x, None, **kw, gen=torch.Generator().manual_seed(4))
    want, want_l = ref_robust_grad(th, x, 0.7, r, s, **kw)
    l_rob = robust_loss_backward(model, x, beta=0.7, spec=AttackSpec(epsilon=0.2, n_steps=3, sigma_init=0.05,
                                                                     eps_c=0.01),
                                 generator=torch.Generator().manual_seed(4))
    assert math.isclose(l_rob, want_l, rel_tol=0, abs_tol=1e-12)
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.grad, want[k], **TOL)


# --------------------------------------------------------------------------- methods (two SGD steps each)


def run_method(method, steps=2, lr=0.1):
    model, (x, y) = mlp(), data()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        method.step(model, x, y, opt)
    return model


def test_adversarial_method_matches_reference():
    model = run_method(get_method("adversarial", beta=0.3, n_steps=3, seed=5))
    th, (x, y) = theta_of(mlp()), data()
    gen = torch.Generator().manual_seed(5)
    for _ in range(2):
        g_nat, _ = grad_ce_at(th, x, y, lambda t: t)
        _, r, s = ref_attack(th, x, y, eps=EPSILON, n=3, sigma=SIGMA_INIT, gen=gen)
        g_rob, _ = ref_robust_grad(th, x, 0.3, r, s, eps=EPSILON, n=3, sigma=SIGMA_INIT)
        th = sgd(th, {k: g_nat[k] + g_rob[k] for k in th}, 0.1)
    assert_params(model, th)


@pytest.mark.parametrize("beta", [0.0, 0.2])
def test_forward_noise_matches_reference(beta):
    model = run_method(get_method("forward_noise", eta=0.3, beta=beta, n_steps=2, seed=6))
    th, (x, y) = theta_of(mlp()), data()
    gen = torch.Generator().manual_seed(6)
    for _ in range(2):
        r = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in th.items()}
        g, _ = grad_ce_at(th, x, y, lambda t: {k: v + (0.3 * v.abs() * r[k]).detach() for k, v in t.items()})
        if beta:
            _, r2, s = ref_attack(th, x, y, eps=EPSILON, n=2, sigma=SIGMA_INIT, gen=gen)
            g_rob, _ = ref_robust_grad(th, x, beta, r2, s, eps=EPSILON, n=2, sigma=SIGMA_INIT)
            g = {k: g[k] + g_rob[k] for k in th}
        th = sgd(th, g, 0.1)
    assert_params(model, th)


def test_noise_injection_layer_range_with_clip_matches_reference():
    model = run_method(get_method("noise_injection", eta=0.2, mode="layer_range", clip_sigma=1.5, seed=8))
    th, (x, y) = theta_of(mlp()), data()
    gen = torch.Generator().manual_seed(8)
    for _ in range(2):
        r = {k: torch.randn(v.shape, generator=gen, dtype=v.dtype) for k, v in th.items()}
        g, _ = grad_ce_at(th, x, y, lambda t: {k: v + (0.2 * v.abs().max() * r[k]).detach() for k, v in t.items()})
        th = sgd(th, g, 0.1)
        for k, v in th.items():
            if v.dim() >= 2:
                c = 1.5 * v.std(unbiased=False)
                th[k] = v.clamp(-c, c)
    assert_params(model, th)


def test_awp_matches_reference():
    torch.manual_seed(0)  # AWP draws its (unused, σ_init = 0) start noise from the global RNG
    model = run_method(get_method("awp", n_steps=4))
    th, (x, y) = theta_of(mlp()), data()
    for _ in range(2):
        raw, _, _ = ref_attack(th, x, y, eps=0.2, n=4, sigma=0.0, objective="ce")
        star = {k: th[k] + 0.1 * (raw[k] - th[k]) for k in th}
        g, _ = grad_ce_at(th, x, y, lambda t: {k: v + (star[k] - v).detach() for k, v in t.items()})
        th = sgd(th, g, 0.1)
    assert_params(model, th, dict(rtol=0, atol=1e-10))


def test_forward_noise_is_noise_injection_with_its_defaults():
    fn = ForwardNoise(seed=1)
    ni = NoiseInjection(eta=0.3, mode="relative", n_steps=N_STEPS, seed=1)
    assert isinstance(fn, NoiseInjection) and fn.attack == ni.attack == AttackSpec()
    a, b = run_method(fn), run_method(ni)
    for (k, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), k


# --------------------------------------------------------------------------- mismatch


def test_mismatch_matches_reference():
    model, (x, y) = mlp(), data()
    th = theta_of(model)
    res = mismatch_evaluate(model, [(x[:10], y[:10]), (x[10:], y[10:])], levels=(0.0, 0.4), n_draws=5,
                            seed=3, chunk_size=2, progress=False)
    gen = torch.Generator().manual_seed(3)
    want = []
    for _ in range(5):
        draw = {k: v * (1.0 + 0.4 * torch.randn(v.shape, generator=gen, dtype=v.dtype)) for k, v in th.items()}
        want.append(float((f(x, draw).argmax(-1) == y).double().mean()))
    assert res.accuracies[0.0].tolist() == [float((f(x, th).argmax(-1) == y).double().mean())]
    torch.testing.assert_close(res.accuracies[0.4], torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- one vocabulary, one declaration


def test_defaults_are_declared_once():
    assert AttackSpec() == AttackSpec(epsilon=EPSILON, n_steps=N_STEPS, sigma_init=SIGMA_INIT, eps_c=0.0,
                                      objective="kl")
    assert AttackSpec().step_size == EPSILON / N_STEPS
    assert get_method("adversarial").attack == AttackSpec()
    assert get_method("noise_injection").n_steps == PCM_N_STEPS
    assert get_method("awp").attack == AttackSpec(epsilon=0.2, sigma_init=0.0, objective="ce")
    assert DEFAULT_LEVELS == MISMATCH_LEVELS
    assert inspect.signature(mismatch_evaluate).parameters["n_draws"].default == N_DRAWS
    for fn in (mismatch_evaluate, loss_landscape):
        assert inspect.signature(fn).parameters["chunk_size"].default == CHUNK_SIZE
    sig = inspect.signature(fit).parameters
    assert (sig["lr"].default, sig["lr_gamma"].default) == (LR, LR_GAMMA)
    assert tuple(OBJECTIVES) == OBJECTIVE_NAMES


def test_attack_spec_checks_its_fields():
    for bad in (dict(epsilon=-0.1), dict(n_steps=-1), dict(n_steps=2.5), dict(sigma_init=-1), dict(eps_c=-1),
                dict(objective="nope"), dict(step=-0.1)):
        with pytest.raises(ValueError, match=list(bad)[0] if "objective" not in bad else "objective"):
            AttackSpec(**bad)
    with pytest.raises(TypeError, match="unknown attack setting 'n_step'"):
        pga_attack_dataset(mlp(), data(), {"0.bias": torch.zeros(7)}, n_step=3)


def test_explicit_step_moves_each_element_by_n_steps_steps():
    model, (x, y) = mlp(), data()
    spec = AttackSpec(epsilon=0.5, n_steps=4, sigma_init=0.0, step=0.01)
    res = pga_attack(model, x, dict(model.named_parameters()), spec, y=y)
    for k, p in model.named_parameters():  # every step moves by exactly 0.01|θ|: |Δ| = 0.01|θ|·|Σ sign|
        torch.testing.assert_close((res.theta_star[k] - p.detach()).abs(), 0.01 * p.detach().abs() * res.sign_sum[k].abs())


def test_methods_keep_their_attack_settings_readable():
    m = get_method("adversarial", n_steps=3, epsilon=0.2, attack=AttackSpec(sigma_init=0.0, objective="js"))
    assert (m.n_steps, m.epsilon, m.sigma_init, m.objective) == (3, 0.2, 0.0, "js")


# --------------------------------------------------------------------------- the one device rule


def test_draws_are_made_on_the_generators_device():
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    t = torch.zeros(5, dtype=torch.float64)
    assert torch.equal(randn_like(t, g1), torch.randn(5, generator=g2, dtype=torch.float64))


def test_a_cpu_generator_serves_parameters_on_another_device():
    # the meta device stands in for CUDA on a CPU-only machine: the draw is made on the CPU
    # generator (its stream advances by exactly the tensor's size) and moved to the tensor's device
    g, ref = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    noisy = inject_noise({"w": torch.ones(3, 4, device="meta")}, 0.1, "relative", g)
    assert noisy["w"].device.type == "meta"
    torch.randn(12, generator=ref)
    assert torch.equal(torch.randn(5, generator=g), torch.randn(5, generator=ref))
    method = get_method("noise_injection", seed=0)
    assert method.generator("cuda").device.type == "cpu"  # the device argument is ignored


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_generator_with_cuda_parameters_everywhere():
    params = {"w": torch.ones(3, 4, device="cuda")}
    noisy = inject_noise(params, 0.1, "relative", torch.Generator().manual_seed(0))
    cpu = inject_noise({"w": torch.ones(3, 4)}, 0.1, "relative", torch.Generator().manual_seed(0))
    torch.testing.assert_close(noisy["w"].cpu(), cpu["w"])
    model = mlp().cuda()
    x, y = (t.cuda() for t in data())
    method = get_method("forward_noise", beta=0.1, n_steps=2, seed=0)
    method.step(model, x, y, torch.optim.SGD(model.parameters(), lr=0.1))
    assert method.generator().device.type == "cpu"
