"""The fused LSNN BPTT against the reference path (autograd through ``lsnn_step_current``).

The reference implementation is the independent second implementation: the fused forward pass
must reproduce its spikes and traces bit for bit, and the hand-written backward pass its
gradients (to rounding) for every input that can require a gradient.
"""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call, grad, vmap

from spikerobust.functional import (
    ATan,
    FastSigmoid,
    LSNNParams,
    from_snntorch,
    lsnn_unroll,
)
from spikerobust.functional.lsnn_fused import (
    fused_unsupported_reason,
    lsnn_unroll_fused,
    resolve_backend,
)
from spikerobust.nn import LSNN, LSNNClassifier

from lsnn_backend_cases import (  # shared with test_lsnn_event.py
    assert_close,
    assert_same_run,
    classifier,
    make_problem,
    run_backend,
)

T, B, D, N = 40, 6, 3, 24
RTOL = {torch.float64: 1e-10, torch.float32: 1e-4}


SIZES = (T, B, D, N)


def _problem(dtype, **kw):
    return make_problem(dtype, SIZES, **kw)


def _assert_close(ref, got, dtype, what=""):
    assert_close(ref, got, RTOL[dtype], what)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n_refr,dt", [(2, 1.0), (4, 1.0), (0, 1.0), (2, 0.5)])
def test_fused_matches_reference_forward_and_gradients(dtype, n_refr, dt):
    problem = _problem(dtype, n_refr=n_refr, dt=dt)
    z_ref, fin_ref, tr_ref, g_ref = run_backend("reference", problem)
    z_fus, fin_fus, tr_fus, g_fus = run_backend("fused", problem)

    # the dynamics are exercised: spikes, refractory blocking and adaptation all happen
    rate = (z_ref * dt).mean().item()
    assert 0.02 < rate < 0.6, rate
    blocked = ((tr_ref.v > tr_ref.threshold) & (z_ref == 0)).sum().item()
    if n_refr > 0:
        assert blocked > 0, "no spike was blocked by refractoriness"
    else:
        assert blocked == 0
    assert tr_ref.threshold.std().item() > 1e-3

    # bit-identical forward, gradients to rounding
    assert_same_run((z_ref, fin_ref, tr_ref, g_ref), (z_fus, fin_fus, tr_fus, g_fus), RTOL[dtype])
    assert torch.all(torch.diagonal(g_fus[2]) == 0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("n_refr,dt", [(2, 1.0), (2, 0.5)])
def test_spike_mask_fused_matches_reference(dtype, n_refr, dt):
    problem = _problem(dtype, n_refr=n_refr, dt=dt, seed=3)
    x, w_in, w_rec, params, state, leaves, weights = problem
    mask = (torch.rand(N, generator=torch.Generator().manual_seed(7)) >= 0.3).to(dtype)
    assert 0 < int(mask.sum()) < N

    ref = run_backend("reference", problem, spike_mask=mask)
    z_free = run_backend("reference", problem)[0]
    # dropped neurons never spike; the mask changes the others' spikes through the recurrence
    assert float(ref[0][..., mask == 0].abs().sum()) == 0.0
    assert not torch.equal(ref[0][..., mask == 1], z_free[..., mask == 1])
    assert_same_run(ref, run_backend("fused", problem, spike_mask=mask), RTOL[dtype])
    # no gradient flows through a dropped neuron's spike: its W_in column only gets gradient
    # through its membrane trace in the loss, which a spike-only loss removes
    z, _, _ = lsnn_unroll_fused(x, params, w_in, w_rec, state, spike_mask=mask)
    g_w_in = torch.autograd.grad((z * weights).sum(), w_in)[0]
    assert float(g_w_in[:, mask == 0].abs().sum()) == 0.0
    assert float(g_w_in[:, mask == 1].abs().sum()) > 0.0


@pytest.mark.parametrize("surrogate", [FastSigmoid(10.0), ATan(2.0)])
def test_other_surrogates(surrogate):
    problem = _problem(torch.float64, surrogate=surrogate, seed=3)
    _, _, _, g_ref = run_backend("reference", problem)
    _, _, _, g_fus = run_backend("fused", problem)
    for a, b in zip(g_ref, g_fus):
        _assert_close(a, b, torch.float64)


def test_python_float_constants_and_partial_requires_grad():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, B, D, generator=g, dtype=torch.float64)
    w_in = torch.randn(D, N, generator=g, dtype=torch.float64).requires_grad_()
    w_rec = 0.4 * torch.randn(N, N, generator=g, dtype=torch.float64)  # no grad
    p = LSNNParams()  # Python floats
    out = {}
    for backend in ("reference", "fused"):
        z, final, _ = lsnn_unroll(x, p, w_in, w_rec, backend=backend)
        (gw,) = torch.autograd.grad((z.sum(1) ** 2).sum() + final.v.sum(), [w_in])
        out[backend] = (z, gw)
    assert torch.equal(out["reference"][0], out["fused"][0])
    assert out["reference"][0].mean() > 0.02
    _assert_close(out["reference"][1], out["fused"][1], torch.float64)


def test_scalar_tensor_constants_get_scalar_gradients():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(T, B, D, generator=g, dtype=torch.float64)
    w_in = torch.randn(D, N, generator=g, dtype=torch.float64)
    w_rec = 0.4 * torch.randn(N, N, generator=g, dtype=torch.float64)
    res = {}
    for backend in ("reference", "fused"):
        consts = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (20.0, 98.0, 2.0, 0.01)]
        p = LSNNParams(*consts)
        z, _, trace = lsnn_unroll(x, p, w_in, w_rec, return_states=True, backend=backend)
        res[backend] = torch.autograd.grad(z.sum() + trace.v.sum(), consts)
    for a, b in zip(res["reference"], res["fused"]):
        assert a.shape == torch.Size([]) and b.shape == torch.Size([])
        _assert_close(a, b, torch.float64)


def test_no_grad_runs_without_graph_and_matches():
    x, w_in, w_rec, params, state, _, _ = _problem(torch.float32)
    with torch.no_grad():
        z_f, fin_f, tr_f = lsnn_unroll_fused(x, params, w_in, w_rec, state, return_states=True)
        z_r, fin_r, tr_r = lsnn_unroll(x, params, w_in, w_rec, state, return_states=True)
    assert not z_f.requires_grad and z_f.grad_fn is None
    assert torch.equal(z_f, z_r)
    for a, b in zip((*fin_f, *tr_f), (*fin_r, *tr_r)):
        assert torch.equal(a, b)


def test_initial_state_is_not_modified():
    x, w_in, w_rec, params, state, _, _ = _problem(torch.float64, state_grad=False)
    before = [s.clone() for s in state]
    z, _, _ = lsnn_unroll_fused(x, params, w_in, w_rec, state)
    z.sum().backward()
    for a, b in zip(before, state):
        assert torch.equal(a, b)


def test_chunked_bptt_equals_one_pass():
    """Carrying the state between two fused calls is the same computation as one reference call."""
    x, w_in, w_rec, params, _, _, weights = _problem(torch.float64, state_grad=False, seed=5)
    leaves = [x, w_in, w_rec]
    z_ref, _, _ = lsnn_unroll(x, params, w_in, w_rec, backend="reference")
    g_ref = torch.autograd.grad((z_ref * weights).sum(), leaves)
    z1, s1, _ = lsnn_unroll_fused(x[:15], params, w_in, w_rec)
    z2, _, _ = lsnn_unroll_fused(x[15:], params, w_in, w_rec, s1)
    z_f = torch.cat([z1, z2])
    g_f = torch.autograd.grad((z_f * weights).sum(), leaves)
    assert torch.equal(z_ref, z_f)
    for a, b in zip(g_ref, g_f):
        _assert_close(a, b, torch.float64)


def test_retain_graph_gives_the_same_gradient_twice_and_no_double_backward():
    x, w_in, w_rec, params, state, _, weights = _problem(torch.float64, state_grad=False)
    z, _, _ = lsnn_unroll_fused(x, params, w_in, w_rec, state)
    loss = (z * weights).sum()
    (g1,) = torch.autograd.grad(loss, [w_rec], retain_graph=True)
    (g2,) = torch.autograd.grad(loss, [w_rec], retain_graph=True)
    assert torch.equal(g1, g2)
    (g,) = torch.autograd.grad(loss, [w_in], create_graph=True)
    with pytest.raises(RuntimeError):
        torch.autograd.grad(g.sum(), [w_in])


def test_dispatch_rules():
    from spikerobust.functional.lsnn_event import numba_available

    p = LSNNParams()
    assert resolve_backend("auto", p) == ("event" if numba_available() else "fused")
    assert resolve_backend("reference", p) == "reference"
    snn_surrogate = pytest.importorskip("snntorch.surrogate")
    wrapped = p._replace(surrogate=from_snntorch(snn_surrogate.fast_sigmoid()))
    assert resolve_backend("auto", wrapped) == "reference"
    assert "derivative" in fused_unsupported_reason(wrapped)
    with pytest.raises(ValueError, match="derivative"):
        resolve_backend("fused", wrapped)
    with pytest.raises(ValueError, match="derivative"):
        lsnn_unroll_fused(torch.zeros(2, 1, 1), wrapped, torch.ones(1, 1), torch.zeros(1, 1))
    with pytest.raises(ValueError, match="backend"):
        resolve_backend("fast", p)
    with pytest.raises(ValueError, match="backend"):
        LSNN(2, 4, backend="fast")
    with pytest.raises(ValueError, match="derivative"):
        LSNN(2, 4, backend="fused", surrogate=snn_surrogate.atan())
    # mixed dtypes are left to the reference path (it promotes like eager PyTorch)
    p64 = LSNNParams(tau_mem=torch.full((3,), 20.0, dtype=torch.float64))
    assert resolve_backend("auto", p64, (torch.zeros(1, 1, 1),)) == "reference"
    assert "backend='auto'" in repr(LSNN(2, 4))


def test_wrapped_snntorch_surrogate_auto_equals_reference():
    snn_surrogate = pytest.importorskip("snntorch.surrogate")
    torch.manual_seed(0)
    model = LSNN(D, N, surrogate=snn_surrogate.fast_sigmoid(slope=25))
    x = torch.randn(T, B, D)
    z_auto = model(x)
    model.backend = "reference"
    assert torch.equal(z_auto, model(x))


def _classifier(backend):
    return classifier(backend, SIZES)


def test_torch_func_grad_falls_back_and_matches_autograd():
    x = 2.0 * torch.randn(T, B, D, dtype=torch.float64)
    y = torch.randint(0, 3, (B,))
    model = _classifier("fused")
    params = {k: v.detach() for k, v in model.named_parameters()}
    seen = []

    def loss_fn(p):
        seen.append(fused_unsupported_reason(model.lsnn.neuron_params()))
        return torch.nn.functional.cross_entropy(functional_call(model, p, (x,)), y)

    g_func = grad(loss_fn)(params)
    assert seen[0] is not None and "torch.func" in seen[0]
    leaves = {k: v.clone().requires_grad_() for k, v in params.items()}
    loss = torch.nn.functional.cross_entropy(functional_call(model, leaves, (x,)), y)  # fused
    g_auto = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))
    for name in params:
        _assert_close(g_auto[name], g_func[name], torch.float64, name)


def test_classifier_training_steps_agree():
    x = 2.0 * torch.randn(T, B, D, dtype=torch.float64)
    y = torch.randint(0, 3, (B,))
    final = {}
    for backend in ("reference", "fused"):
        model = _classifier(backend)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(3):
            opt.zero_grad()
            logits, reg = model(x, return_aux_loss=True)
            (torch.nn.functional.cross_entropy(logits, y) + reg).backward()
            opt.step()
        final[backend] = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for k in final["reference"]:
        torch.testing.assert_close(final["fused"][k], final["reference"][k], rtol=1e-9, atol=1e-12)


def test_vmap_of_grad_gives_per_draw_gradients_of_the_fused_path():
    torch.manual_seed(2)
    model = LSNNClassifier(D, n_hidden=N, n_classes=3).double()  # backend "auto"
    x = 2.0 * torch.randn(T, B, D, dtype=torch.float64)
    y = torch.randint(0, 3, (B,))
    draws = [
        {k: v.detach() * (1 + 0.2 * torch.randn_like(v)) for k, v in model.named_parameters()}
        for _ in range(2)
    ]
    stacked = {k: torch.stack([d[k] for d in draws]) for k in draws[0]}

    def loss_fn(p):
        return torch.nn.functional.cross_entropy(functional_call(model, p, (x,)), y)

    batched = vmap(grad(loss_fn))(stacked)
    for i, d in enumerate(draws):
        leaves = {k: v.clone().requires_grad_() for k, v in d.items()}
        loss = loss_fn(leaves)  # outside transforms: the fused path
        g = dict(zip(leaves, torch.autograd.grad(loss, list(leaves.values()))))
        for name in g:
            _assert_close(g[name], batched[name][i], torch.float64, name)
