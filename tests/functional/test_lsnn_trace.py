"""The LSNN dynamics pinned by numbers derived by hand from docs/lsnn.md."""

import math

import pytest
import torch

from spikerobust.functional import LSNNParams, initial_state, lsnn_step, lsnn_unroll

ALPHA = math.exp(-1 / 20)
RHO = math.exp(-1 / 98)
B0, BETA = 0.01, 2.0


def test_first_steps_by_hand():
    """N = 1, W_in = 1, x = [1, 1, 1, 0]: spike, refractory block, spike, threshold jump."""
    x = torch.tensor([1.0, 1.0, 1.0, 0.0], dtype=torch.float64).view(4, 1, 1)
    w_in = torch.ones(1, 1, dtype=torch.float64)
    w_rec = torch.zeros(1, 1, dtype=torch.float64)
    z, _, tr = lsnn_unroll(x, LSNNParams(), w_in, w_rec, return_states=True)

    # t = 1: nothing before; v1 = (1 - alpha) * 1 = 0.04877 > A1 = b0 = 0.01 -> spike, r1 = 1
    v1 = 1 - ALPHA
    assert tr.v[0, 0, 0].item() == pytest.approx(v1, abs=1e-15)
    assert tr.threshold[0, 0, 0].item() == pytest.approx(B0, abs=1e-15)
    assert z[0, 0, 0].item() == 1.0
    # t = 2: b2 = 1 - rho, A2 = b0 + beta (1 - rho) = 0.030305; reset by A2;
    # v2 = alpha v1 + (1 - alpha) - A2 = 0.06486 > A2, but r1 = 1 blocks the spike; r2 = 0
    b2 = 1 - RHO
    a2 = B0 + BETA * b2
    v2 = ALPHA * v1 + (1 - ALPHA) - a2
    assert a2 == pytest.approx(0.030305, abs=1e-6)
    assert tr.b[1, 0, 0].item() == pytest.approx(b2, abs=1e-15)
    assert tr.threshold[1, 0, 0].item() == pytest.approx(a2, abs=1e-15)
    assert tr.v[1, 0, 0].item() == pytest.approx(v2, abs=1e-15)
    assert v2 > a2 and z[1, 0, 0].item() == 0.0
    # t = 3: b3 = rho b2 (no spike at t = 2), A3 = b0 + beta rho b2; no reset; spike again
    b3 = RHO * b2
    a3 = B0 + BETA * b3
    v3 = ALPHA * v2 + (1 - ALPHA)
    assert tr.threshold[2, 0, 0].item() == pytest.approx(a3, abs=1e-15)
    assert tr.v[2, 0, 0].item() == pytest.approx(v3, abs=1e-15)
    assert z[2, 0, 0].item() == 1.0
    # t = 4: threshold jumps again, b4 = rho b3 + (1 - rho); reset subtracts A4; x = 0
    b4 = RHO * b3 + (1 - RHO)
    a4 = B0 + BETA * b4
    v4 = ALPHA * v3 - a4
    assert tr.threshold[3, 0, 0].item() == pytest.approx(a4, abs=1e-15)
    assert tr.v[3, 0, 0].item() == pytest.approx(v4, abs=1e-15)
    assert v4 > a4 and z[3, 0, 0].item() == 0.0  # above threshold, but blocked: r3 = 1


def _scalar_reference(x, w_in, w_rec, tau_mem, tau_adapt, beta, b0, n_refr, steps):
    """Second implementation: plain Python floats, one neuron at a time, straight from docs/lsnn.md."""
    n = len(w_in[0])
    d = len(w_in)
    alpha = [math.exp(-1 / tau_mem[i]) for i in range(n)]
    rho = [math.exp(-1 / tau_adapt[i]) for i in range(n)]
    v = [0.0] * n
    z = [0.0] * n
    b = [0.0] * n
    r = [0.0] * n
    out = []
    for t in range(steps):
        z_prev = list(z)
        new_z = []
        for i in range(n):
            b[i] = rho[i] * b[i] + (1 - rho[i]) * z_prev[i]
            a = b0[i] + beta[i] * b[i]
            cur = sum(x[t][k] * w_in[k][i] for k in range(d))
            cur += sum(z_prev[j] * w_rec[j][i] for j in range(n) if j != i)
            v[i] = alpha[i] * v[i] + (1 - alpha[i]) * cur - z_prev[i] * a
            spike = 1.0 if ((v[i] - a) / a > 0 and r[i] <= 0) else 0.0
            r[i] = min(max(r[i] + n_refr * spike - 1, 0), n_refr)
            new_z.append(spike)
        z = new_z
        out.append(list(z))
    return out


@pytest.mark.parametrize("n_refr", [0, 1, 2, 5])
def test_matches_scalar_reference_with_recurrence_and_per_neuron_constants(n_refr):
    g = torch.Generator().manual_seed(3)
    t_steps, d, n = 60, 2, 4
    x = torch.rand(t_steps, 1, d, generator=g, dtype=torch.float64) * 0.5
    w_in = torch.randn(d, n, generator=g, dtype=torch.float64)
    w_rec = torch.randn(n, n, generator=g, dtype=torch.float64) * 2  # diagonal ignored
    tau_mem = torch.tensor([20.0, 10.0, 30.0, 5.0], dtype=torch.float64)
    tau_adapt = torch.tensor([98.0, 50.0, 200.0, 20.0], dtype=torch.float64)
    beta = torch.tensor([2.0, 0.0, 1.0, 3.0], dtype=torch.float64)
    b0 = torch.tensor([0.01, 0.05, 0.02, 0.01], dtype=torch.float64)
    params = LSNNParams(tau_mem, tau_adapt, beta, b0, n_refr)
    z, _, _ = lsnn_unroll(x, params, w_in, w_rec)
    ref = _scalar_reference(
        x[:, 0].tolist(), w_in.tolist(), w_rec.tolist(), tau_mem.tolist(), tau_adapt.tolist(),
        beta.tolist(), b0.tolist(), n_refr, t_steps,
    )
    assert z[:, 0].tolist() == ref
    assert 0 < sum(map(sum, ref)) < t_steps * n  # spikes happen, and not always


def test_step_and_unroll_agree():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(30, 3, 2, generator=g)
    w_in = torch.randn(2, 5, generator=g)
    w_rec = torch.randn(5, 5, generator=g)
    p = LSNNParams()
    z_unroll, final, _ = lsnn_unroll(x, p, w_in, w_rec)
    s = initial_state(3, 5)
    for t in range(30):
        z_t, s = lsnn_step(x[t], s, p, w_in, w_rec)
        assert torch.equal(z_t, z_unroll[t])
    for a, b in zip(s, final):
        assert torch.equal(a, b)


def test_refractory_period_blocks_exactly_n_minus_one_steps():
    """Constant strong drive: with n_refr = k, spikes are exactly k steps apart (r goes k-1 ... 0)."""
    x = torch.full((40, 1, 1), 50.0)
    for k in (1, 2, 4):
        p = LSNNParams(beta_adapt=0.0, n_refractory=k)
        z, _, _ = lsnn_unroll(x, p, torch.ones(1, 1), torch.zeros(1, 1))
        times = torch.nonzero(z[:, 0, 0]).flatten().tolist()
        assert times[0] == 0
        assert all(b - a == k for a, b in zip(times, times[1:])), (k, times)
