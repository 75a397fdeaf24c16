"""PCM crossbars for any weight tensor: the LSNN's w_in, w_rec (read at every time step) and readout,
and tensors used functionally. Checked against the plain model and drift factors computed by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.func import functional_call

from spikerobust.nn import LSNNClassifier
from spikerobust.robust.pcm import PCMConfig, PCMSimulator, pcm_accuracy_over_time

torch.set_num_threads(1)

YEAR = 365 * 86400.0
OFF = dict(prog_noise_scale=0.0, read_noise_scale=0.0)


def lsnn(seed=0):
    torch.manual_seed(seed)
    model = LSNNClassifier(3, 16, 4).double().eval()
    with torch.no_grad():
        model.lsnn.w_in.mul_(4.0)  # enough input drive for spikes
        model.readout.weight.mul_(100.0)
    return model


def inputs(seed=1):
    return torch.randn(30, 6, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_lsnn_weights_and_readout_are_mapped():
    assert PCMSimulator(lsnn()).tensor_names() == ["readout.weight", "lsnn.w_in", "lsnn.w_rec"]


@pytest.mark.parametrize("tiles", [False, True], ids=["fast", "explicit_tiles"])
def test_without_noise_and_drift_the_pcm_lsnn_is_the_plain_model(tiles):
    model, x = lsnn(), inputs()
    cfg = PCMConfig(drift=False, explicit_tiles=tiles, tile_size=(8, 2), **OFF)  # several tiles per matrix
    sim = PCMSimulator(model, cfg, seed=0).program().set_time(YEAR)
    with torch.no_grad():
        z_ref = model.lsnn(x)
        with sim.deployed() as m:
            z = m.lsnn(x)
        assert z_ref.sum() > 0
        assert torch.equal(z, z_ref)
        assert torch.allclose(sim(x), model(x), atol=1e-10)
    assert "forward" not in model.lsnn.__dict__ and "forward" not in model.readout.__dict__  # restored


def test_global_drift_lowers_the_weights_by_the_power_law_and_compensation_restores_them():
    model, x = lsnn(), inputs()
    nu, t = 0.05, 3600.0
    cfg = PCMConfig(drift_nu=nu, drift_compensation=None, **OFF)
    factor = (t / cfg.t0) ** (-nu)  # g(t) = g(t0) (t/t0)^-ν for every device
    sim = PCMSimulator(model, cfg, seed=0).program().set_time(t)
    eff = sim.effective_weights()
    w_rec = model.lsnn.w_rec.detach() - torch.diag_embed(torch.diagonal(model.lsnn.w_rec.detach()))
    assert torch.allclose(eff["lsnn.w_in"], factor * model.lsnn.w_in.detach(), rtol=1e-10)
    assert torch.allclose(eff["lsnn.w_rec"], factor * w_rec, rtol=1e-10, atol=1e-12)
    assert torch.allclose(eff["readout.weight"], factor * model.readout.weight.detach(), rtol=1e-10)
    with torch.no_grad():
        with sim.deployed() as m:
            z_drift = m.lsnn(x)
        z_ref = model.lsnn(x)
        # a smaller input current: fewer spikes, and the readout scaled by the factor on top
        assert z_drift.sum() < z_ref.sum()
        out_drift = (sim(x) - model.readout.bias).abs().mean()
        assert out_drift < (model(x) - model.readout.bias).abs().mean()
    comp = PCMSimulator(model, cfg.replace(drift_compensation="layer"), seed=0).program().set_time(t)
    with torch.no_grad():
        assert torch.allclose(comp(x), model(x), atol=1e-9)


def test_read_noise_is_drawn_at_every_time_step():
    model, x = lsnn(), inputs()
    cfg = PCMConfig(prog_noise_scale=0.0, drift=False, read_noise_scale=30.0, drift_compensation=None)
    once = PCMSimulator(model, cfg.replace(lsnn_reads="once"), seed=0).program().set_time(3600.0)
    step = PCMSimulator(model, cfg, seed=0).program().set_time(3600.0)
    reads = []
    original = step._read
    step._read = lambda st, t, gen: reads.append(st.param) or original(st, t, gen)
    with torch.no_grad():
        # "once": the network equals the plain model evaluated at the frozen effective weights
        frozen = functional_call(model, once.effective_weights(), (x,))
        assert torch.allclose(once(x), frozen, atol=1e-10)
        step(x)
    assert reads == ["lsnn.w_in", "lsnn.w_rec"] * (x.shape[0] - 1)  # a fresh read per step after the first


def test_any_functional_weight_tensor_can_be_mapped():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 3, dtype=torch.float64))

        def forward(self, x):
            return x @ self.w

    model, x = Functional(), torch.randn(5, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match="no nn.Linear"):
        PCMSimulator(model)
    with pytest.raises(ValueError, match="matches no parameter"):
        PCMSimulator(model, tensors=["nothing*"])
    nu, t = 0.03, 86400.0
    sim = PCMSimulator(model, PCMConfig(drift_nu=nu, drift_compensation=None, **OFF), tensors=["w"]).program()
    with torch.no_grad():
        assert torch.allclose(sim(x), model(x), atol=1e-12)
        sim.set_time(t)
        assert torch.allclose(sim(x), (t / 20.0) ** (-nu) * model(x), atol=1e-12)


def test_pcm_accuracy_over_time_takes_time_first_lsnn_data():
    model, x = lsnn(), inputs()
    y = model(x).argmax(1)  # the digital model is right on every sample
    res = pcm_accuracy_over_time(model, (x, y), times=(20.0, YEAR), n_reps=2, config=PCMConfig(drift=False, **OFF),
                                 progress=False)
    assert res.digital == 1.0 and torch.equal(res.accuracy, torch.ones(2, 2, dtype=torch.float64))
