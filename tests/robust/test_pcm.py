"""PCM simulation (docs/pcm.md): device statistics against the formulas, GDC, tiling, converters, no side effects.

Expected numbers are computed here from docs/pcm.md by hand (plain ``math``/numpy) or by scipy's
folded normal, never read off the implementation. Statistical tolerances are a fixed number of
standard errors of the estimator, with the seeds fixed.
"""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from spikerobust.models import get_model
from spikerobust.robust.pcm import (
    PCM_TIMES,
    PCMAccuracy,
    PCMConfig,
    PCMSimulator,
    crossbar_matmul,
    draw_drift_exponent,
    drift_conductance,
    drift_exponent_stats,
    format_time,
    lsb,
    map_weights,
    pcm_accuracy_over_time,
    pcm_table,
    plot_accuracy_over_time,
    program_conductance,
    programming_noise_std,
    quantize,
    read_conductance,
    read_noise_std,
    tile_readout,
)

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")

N = 200_000  # samples per statistical check
K = 5.0      # tolerance in standard errors


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def sigma_p_us(g):
    """docs/pcm.md by hand: σ_p in µS for normalised g."""
    return 0.26348 + 1.9650 * g - 1.1731 * g * g


def nu_stats_by_hand(g):
    ln = math.log(g)
    return min(max(-0.0155 * ln + 0.0244, 0.049), 0.1), min(max(-0.0125 * ln - 0.0059, 0.008), 0.045)


# ----------------------------------------------------------------------------- device statistics
@pytest.mark.parametrize("g", [0.1, 0.3, 0.5, 0.8, 1.0])
def test_programming_noise_sigma_matches_formula(g):
    expected = sigma_p_us(g) / 25.0
    assert float(programming_noise_std(torch.tensor(g, dtype=torch.float64))) == pytest.approx(expected, rel=1e-12)
    gp = program_conductance(torch.full((N,), g, dtype=torch.float64), generator=gen(1))
    # clamping at 0 is > 5 sigma away for these g, so the sample is normal(g, expected)
    assert float(gp.mean()) == pytest.approx(g, abs=K * expected / math.sqrt(N))
    assert float(gp.std()) == pytest.approx(expected, abs=K * expected / math.sqrt(2 * N))


def test_programming_noise_of_an_empty_device_is_half_normal():
    sigma0 = 0.26348 / 25.0
    gp = program_conductance(torch.zeros(N, dtype=torch.float64), generator=gen(2))
    assert float(gp.min()) >= 0.0
    # E[max(N(0, s), 0)] = s / sqrt(2π); half of the devices stay at exactly zero
    assert float(gp.mean()) == pytest.approx(sigma0 / math.sqrt(2 * math.pi), abs=K * sigma0 * 0.6 / math.sqrt(N))
    assert float((gp == 0).double().mean()) == pytest.approx(0.5, abs=K * 0.5 / math.sqrt(N))


def test_programming_noise_scales_with_g_max_and_switches_off():
    g = torch.tensor([0.2, 0.7])
    assert torch.allclose(programming_noise_std(g, g_max=50.0), programming_noise_std(g) / 2)
    assert torch.equal(program_conductance(g, scale=0.0), g)


@pytest.mark.parametrize("g", [1.0, 0.5, 0.1, 0.01, 1e-3])
def test_drift_exponent_folded_normal_statistics(g):
    mu, sd = nu_stats_by_hand(g)
    mu_t, sd_t = drift_exponent_stats(torch.tensor(g, dtype=torch.float64))
    assert float(mu_t) == pytest.approx(mu, rel=1e-12) and float(sd_t) == pytest.approx(sd, rel=1e-12)
    nu = draw_drift_exponent(torch.full((N,), g, dtype=torch.float64), generator=gen(3))
    assert float(nu.min()) >= 0.0
    folded = stats.foldnorm(c=mu / sd, scale=sd)  # |N(mu, sd)|, an implementation independent of ours
    # closed form of the folded-normal mean as a second check of the reference itself
    closed = sd * math.sqrt(2 / math.pi) * math.exp(-mu**2 / (2 * sd**2)) + mu * (1 - 2 * stats.norm.cdf(-mu / sd))
    assert folded.mean() == pytest.approx(closed, rel=1e-9)
    se_mean = folded.std() / math.sqrt(N)
    assert float(nu.mean()) == pytest.approx(folded.mean(), abs=K * se_mean)
    assert float(nu.std()) == pytest.approx(folded.std(), abs=K * folded.std() / math.sqrt(2 * N) * 1.5)


def test_drift_exponent_mean_is_not_mu_when_folding_matters():
    # g = 1e-3: mu = 0.1 (clipped), sigma = 0.045: the folded mean exceeds mu by ~4e-4 (> 5 SE here)
    g = 1e-3
    mu, sd = nu_stats_by_hand(g)
    nu = draw_drift_exponent(torch.full((4 * N,), g, dtype=torch.float64), generator=gen(4))
    gap = float(nu.mean()) - mu
    assert stats.foldnorm(c=mu / sd, scale=sd).mean() - mu > 3e-4
    assert gap > 3 * sd / math.sqrt(4 * N)


def test_drift_exponent_of_empty_device_uses_the_clip_limits():
    mu, sd = drift_exponent_stats(torch.zeros(3))
    assert torch.allclose(mu, torch.full((3,), 0.1)) and torch.allclose(sd, torch.full((3,), 0.045))
    assert torch.equal(draw_drift_exponent(torch.rand(5), fixed=0.06), torch.full((5,), 0.06))


def test_drift_power_law_by_hand():
    gp = torch.tensor([0.8, 0.3, 0.0], dtype=torch.float64)
    nu = torch.tensor([0.05, 0.1, 0.07], dtype=torch.float64)
    t, t0 = 3600.0, 20.0
    expected = [0.8 * (t / t0) ** -0.05, 0.3 * (t / t0) ** -0.1, 0.0]
    assert drift_conductance(gp, nu, t, t0).tolist() == pytest.approx(expected, rel=1e-12)
    assert torch.equal(drift_conductance(gp, nu, t0, t0), gp)
    with pytest.raises(ValueError, match="t >= t0"):
        drift_conductance(gp, nu, 10.0, t0)


@pytest.mark.parametrize("g", [0.5, 0.05])
@pytest.mark.parametrize("t", [25.0, 3600.0, 365 * 86400.0])
def test_read_noise_sigma_against_t(g, t):
    q_s = min(0.0088 / g**0.65, 0.2)
    rel = q_s * math.sqrt(math.log((t + 250e-9) / (2 * 250e-9)))
    assert float(read_noise_std(torch.tensor(g, dtype=torch.float64), t)) == pytest.approx(rel, rel=1e-12)
    x = torch.full((N,), g, dtype=torch.float64)
    gr = read_conductance(x, x, t, generator=gen(5))  # rel·g is < 1/5 of g: no clamping
    assert float(gr.mean()) == pytest.approx(g, abs=K * rel * g / math.sqrt(N))
    assert float(gr.std()) / g == pytest.approx(rel, abs=K * rel / math.sqrt(2 * N))


def test_read_noise_cap_and_errors():
    t = 86400.0
    assert float(read_noise_std(torch.tensor(1e-3), t)) == pytest.approx(0.2 * math.sqrt(math.log((t + 250e-9) / 500e-9)), rel=1e-6)
    assert float(read_conductance(torch.full((1000,), 1e-3), torch.full((1000,), 1e-3), t, generator=gen()).min()) >= 0
    with pytest.raises(ValueError, match="t > t_read"):
        read_noise_std(torch.tensor(0.5), 1e-7)


# ----------------------------------------------------------------------------- crossbar
def test_map_weights_differential_and_abs_max():
    w = torch.randn(7, 9, dtype=torch.float64, generator=gen(6))
    gp, gm, s = map_weights(w)
    assert float(s) == float(w.abs().max())
    assert float(torch.maximum(gp, gm).max()) == 1.0 and float(torch.minimum(gp, gm).max()) == 0.0
    assert torch.allclose(s * (gp - gm), w, atol=1e-15)
    gp, gm, s = map_weights(w, clip_sigma=1.0)
    assert float(s) == pytest.approx(float(w.std(unbiased=False)), rel=1e-12)
    assert torch.allclose(s * (gp - gm), w.clamp(-float(s), float(s)), atol=1e-15)
    with pytest.raises(ValueError, match="matrix"):
        map_weights(torch.ones(3))


def test_quantize_error_at_most_half_lsb_and_on_grid():
    x = torch.rand(10_000, dtype=torch.float64, generator=gen(7)) * 6 - 3
    for bits, bound in [(8, 3.0), (4, 3.0), (8, 1.5)]:
        q = quantize(x, bound, bits)
        step = bound / (2 ** (bits - 1) - 1)
        assert step == pytest.approx(lsb(bound, bits))
        inside = x.abs() <= bound
        assert float((q - x)[inside].abs().max()) <= step / 2 + 1e-12
        assert torch.allclose(q / step, torch.round(q / step), atol=1e-9)
        assert float(q.abs().max()) <= bound + 1e-12  # clipped to the range
    with pytest.raises(ValueError, match="bits"):
        quantize(x, 1.0, 1)


@pytest.mark.parametrize("tile", [None, 256, 3, (2, 5), (7, 1)])
def test_tiled_matmul_equals_plain_product(tile):
    x = torch.randn(6, 13, dtype=torch.float64, generator=gen(8))
    g = torch.randn(11, 13, dtype=torch.float64, generator=gen(9))
    assert torch.allclose(crossbar_matmul(x, g, tile_size=tile), x @ g.T, atol=1e-12)


def test_tile_readout_is_the_abs_sum_of_each_tile_by_hand():
    x = torch.randn(4, 13, dtype=torch.float64, generator=gen(16))
    g = torch.randn(11, 13, dtype=torch.float64, generator=gen(17))
    out = tile_readout(x, g, tile_size=(3, 5))
    assert out.shape == (4, 3)  # ceil(11 / 3) row bands, ceil(13 / 5) column bands
    for i in range(4):
        for j in range(3):
            rows, cols = slice(3 * i, 3 * i + 3), slice(5 * j, 5 * j + 5)
            assert float(out[i, j]) == pytest.approx(float((x[:, cols] @ g[rows, cols].T).abs().sum()), rel=1e-12)
    assert torch.equal(tile_readout(x, g), (x @ g.T).abs().sum().reshape(1, 1))  # default: one 256 x 256 tile
    with pytest.raises(TypeError, match="tile_sise"):
        crossbar_matmul(x, g, tile_sise=3)  # a misspelt tiling setting is refused, not ignored


# ----------------------------------------------------------------------------- seeded draws and devices
def test_the_draw_is_made_on_the_generators_device_then_moved(monkeypatch):
    """The device rule, checked on a CPU-only machine: a CPU generator draws on the CPU, and the
    draw (not the generator) is moved to the device of the tensor it is for (mocked here)."""
    from types import SimpleNamespace

    from spikerobust.robust.pcm.devices import _standard_normal

    moves = []
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **k: moves.append((self.device, a, k)) or self)
    on_gpu = SimpleNamespace(shape=(3, 4), dtype=torch.float64, device=torch.device("cuda", 0))
    draw = _standard_normal(on_gpu, gen(18))
    assert moves == [(torch.device("cpu"), (torch.device("cuda", 0),), {})]
    assert torch.equal(draw, torch.randn(3, 4, dtype=torch.float64, generator=gen(18)))  # the generator's numbers


def test_a_cpu_generator_serves_conductances_on_another_device():
    g = torch.full((5, 7), 0.5)
    ref = gen(19)
    expected_state = (torch.randn(5, 7, generator=ref), torch.randn(5, 7, generator=ref), ref.get_state())[-1]
    cpu_gen = gen(19)
    g_p = program_conductance(g.to("meta"), generator=cpu_gen)
    nu = draw_drift_exponent(g.to("meta"), generator=cpu_gen)
    assert g_p.device.type == nu.device.type == "meta" and g_p.shape == nu.shape == (5, 7)
    assert torch.equal(cpu_gen.get_state(), expected_state)  # exactly two draws of 35 normals, on the CPU
    # and on the CPU the same generator gives the numbers of docs/pcm.md's formula by hand
    noise = torch.randn(5, 7, generator=gen(20))
    sigma = sigma_p_us(0.5) / 25.0
    assert torch.allclose(program_conductance(g, generator=gen(20)), (0.5 + sigma * noise).clamp(min=0), atol=1e-7)


def test_a_given_cpu_generator_gives_the_numbers_of_the_same_seed():
    """``seed=`` and a CPU generator of that seed passed to ``program`` and ``set_time`` draw one stream."""
    model, x = small_cnn(), small_input()
    seeded = PCMSimulator(model, seed=7).program().set_time(3600.0)(x)
    g = gen(7)
    assert torch.equal(PCMSimulator(model).program(generator=g).set_time(3600.0, generator=g)(x), seeded)


def test_the_package_exports_every_public_name_of_its_modules():
    import spikerobust.robust.pcm as pcm
    from spikerobust.robust.pcm import crossbar, devices, evaluate, simulator

    for mod in (crossbar, devices, evaluate, simulator):
        assert all(getattr(pcm, n) is getattr(mod, n) for n in mod.__all__)
    assert sorted(pcm.__all__) == sorted({n for m in (crossbar, devices, evaluate, simulator) for n in m.__all__})


# ----------------------------------------------------------------------------- simulator
def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(2, 5, 4, padding="same"), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(5, 6, 3, stride=2, padding=1, padding_mode="reflect"), nn.ReLU(),
        nn.Conv2d(6, 4, 2, dilation=2), nn.Flatten(), nn.Linear(4 * 1 * 1, 7), nn.Tanh(), nn.Linear(7, 3),
    ).double().eval()


def small_input():
    return torch.randn(4, 2, 10, 10, dtype=torch.float64, generator=gen(10))


NOISE_FREE_TILED = dict(tile_size=(3, 5), explicit_tiles=True)


@pytest.mark.parametrize("extra", [{}, NOISE_FREE_TILED, dict(drift_compensation="tile", tile_size=4), dict(drift_compensation=None)])
def test_noise_free_at_t0_reproduces_the_digital_network(extra):
    model, x = small_cnn(), small_input()
    sim = PCMSimulator(model, PCMConfig.noise_free(**extra), seed=0).program()
    ref = model(x)
    assert torch.allclose(sim(x), ref, atol=1e-12)
    sim.set_time(sim.config.t0)
    assert torch.allclose(sim(x), ref, atol=1e-12)


def test_noise_free_at_t0_on_the_fmnist_cnn():
    model = get_model("cnn_fmnist").eval()
    x = torch.randn(3, 1, 28, 28, generator=gen(11))
    for cfg in (PCMConfig.noise_free(t0=25.0), PCMConfig.noise_free(explicit_tiles=True)):
        sim = PCMSimulator(model, cfg, seed=1).program().set_time(cfg.t0)
        assert torch.allclose(sim(x), model(x), atol=1e-5)


@pytest.mark.parametrize("mode", ["layer", "tile"])
def test_gdc_exactly_cancels_a_pure_global_drift(mode):
    model, x = small_cnn(), small_input()
    cfg = PCMConfig.noise_free(drift_nu=0.07, drift_compensation=mode, tile_size=(3, 5))
    sim = PCMSimulator(model, cfg, seed=0).program()
    at_t0 = sim(x)
    for t in PCM_TIMES:
        assert torch.allclose(sim.set_time(t)(x), at_t0, rtol=1e-12, atol=1e-12)


def test_without_gdc_a_global_drift_scales_each_layer_output():
    lin = nn.Linear(5, 3).double()
    x = torch.randn(8, 5, dtype=torch.float64, generator=gen(12))
    t, nu = 86400.0, 0.07
    sim = PCMSimulator(lin, PCMConfig.noise_free(drift_nu=nu, drift_compensation=None), seed=0).program().set_time(t)
    c = (t / 20.0) ** -nu  # by hand: every conductance shrinks by (t/t0)^-nu, the bias is digital
    assert torch.allclose(sim(x), c * (x @ lin.weight.T) + lin.bias, atol=1e-12)


def test_tiling_and_fast_path_agree_with_noise_on():
    model, x = small_cnn(), small_input()
    fast = PCMSimulator(model, PCMConfig(), seed=3).program().set_time(86400.0)
    tiled = PCMSimulator(model, PCMConfig(tile_size=(3, 5), explicit_tiles=True), seed=3).program().set_time(86400.0)
    assert tiled.explicit and not fast.explicit
    assert torch.allclose(fast(x), tiled(x), atol=1e-10)
    assert not torch.allclose(fast(x), model(x), atol=1e-3)  # the noise is really there


def test_dac_error_bounded_by_half_lsb_per_input():
    lin = nn.Linear(20, 6).double()
    x = torch.randn(50, 20, dtype=torch.float64, generator=gen(13))
    sim = PCMSimulator(lin, PCMConfig.noise_free(dac_bits=8, tile_size=None), seed=0).program()
    err = (sim(x) - lin(x)).abs().detach()
    s = x.abs().amax(1, keepdim=True)  # per-vector input scale; each input is off by <= s·LSB/2
    bound = (s * lsb(1.0, 8) / 2) @ lin.weight.abs().sum(1, keepdim=True).T
    assert bool((err <= bound + 1e-12).all())
    assert float(err.max()) > 0  # quantisation did something


def test_adc_error_bounded_by_half_lsb_per_tile():
    lin = nn.Linear(20, 6, bias=False).double()
    x = torch.randn(50, 20, dtype=torch.float64, generator=gen(14))
    bound_adc, cols = 40.0, 8
    sim = PCMSimulator(lin, PCMConfig.noise_free(adc_bits=8, adc_bound=bound_adc, tile_size=(4, cols)), seed=0).program()
    w_scale = float(lin.weight.detach().abs().max())
    err = (sim(x) - lin(x)).abs().detach()
    # one ADC conversion per column tile; each off by <= LSB/2 in units of (slice scale · w_scale)
    scales = torch.stack([x[:, j:j + cols].abs().amax(1) for j in range(0, 20, cols)], 1)
    bound = (scales.sum(1, keepdim=True) * w_scale * lsb(bound_adc, 8) / 2).expand_as(err)
    assert bool((err <= bound + 1e-12).all()) and float(err.max()) > 0


def test_model_parameters_and_forward_unchanged_after_use():
    model, x = small_cnn(), small_input()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    sim = PCMSimulator(model, PCMConfig(dac_bits=8, adc_bits=8), seed=0).program().set_time(3600.0)
    sim(x)
    with pytest.raises(KeyError):
        with sim.deployed() as m:
            m(x)
            raise KeyError("boom")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all("forward" not in mod.__dict__ for mod in model.modules())
    assert type(model) is nn.Sequential


def test_seeded_and_reproducible():
    model, x = small_cnn(), small_input()
    a = PCMSimulator(model, seed=5).program().set_time(3600.0)(x)
    b = PCMSimulator(model, seed=5).program().set_time(3600.0)(x)
    c = PCMSimulator(model, seed=6).program().set_time(3600.0)(x)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_errors():
    model = small_cnn()
    sim = PCMSimulator(model, seed=0)
    with pytest.raises(RuntimeError, match="program"):
        sim.set_time(100.0)
    with pytest.raises(ValueError, match="t0"):
        sim.program().set_time(5.0)
    with pytest.raises(ValueError, match="no nn.Linear"):
        PCMSimulator(nn.Sequential(nn.ReLU()))
    for bad in (dict(t0=0), dict(drift_compensation="x"), dict(dac_bits=1), dict(tile_size=0), dict(read_noise_scale=-1)):
        with pytest.raises(ValueError, match="PCMConfig"):
            PCMConfig(**bad)
    grouped = nn.Conv2d(4, 4, 3, groups=2)
    with pytest.raises(ValueError, match="groups"):
        PCMSimulator(grouped, PCMConfig(explicit_tiles=True)).program()(torch.randn(1, 4, 5, 5))


# ----------------------------------------------------------------------------- accuracy over time
def toy_task():
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3)).eval()
    x = torch.randn(300, 6, generator=gen(15))
    return model, x, model(x).argmax(1).detach()


def test_accuracy_over_time_noise_free_global_drift_keeps_digital_accuracy():
    model, x, y = toy_task()
    model.train()
    res = pcm_accuracy_over_time(model, (x, y), n_reps=2, config=PCMConfig.noise_free(drift_nu=0.05),
                                 batch_size=64, progress=False)
    assert model.training  # mode restored
    assert res.digital == 1.0 and res.accuracy.shape == (2, 5)
    assert torch.equal(res.accuracy, torch.ones(2, 5, dtype=torch.float64))
    assert res.std.tolist() == [0.0] * 5


def test_accuracy_over_time_with_noise_is_seeded_and_plots(tmp_path):
    model, x, y = toy_task()
    loader = [(x[:150], y[:150]), (x[150:], y[150:])]
    a = pcm_accuracy_over_time(model, loader, times=(25, 86400), n_reps=3, seed=1, progress=False)
    b = pcm_accuracy_over_time(model, (x, y), times=(86400, 25), n_reps=3, seed=1, progress=False)
    assert torch.equal(a.accuracy, b.accuracy.flip(1))  # same draws whatever the order of times
    assert isinstance(a, PCMAccuracy) and 0 < float(a.accuracy.min()) <= 1
    assert [r["label"] for r in a.rows()] == ["25 s", "1 d"]
    path = tmp_path / "pcm.png"
    fig = plot_accuracy_over_time({"a": a, "b": b}, path, title="t")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(fig.axes) == 1
    with pytest.raises(ValueError, match="t0"):
        pcm_accuracy_over_time(model, (x, y), times=(1.0,), progress=False)
    with pytest.raises(ValueError, match="data"):
        pcm_accuracy_over_time(model, (x, y[:5]), progress=False)


def test_pcm_table_by_hand():
    # columns [0.5, 1, 0.75] and [1, 1, 0.25]: means 0.75; sample stds 0.25 and sqrt(0.375 / 2)
    a = PCMAccuracy((25.0, 86400.0), torch.tensor([[0.5, 1.0], [1.0, 1.0], [0.75, 0.25]], dtype=torch.float64), 0.9)
    b = PCMAccuracy((25.0, 86400.0), torch.tensor([[0.125, 0.5]], dtype=torch.float64))
    assert pcm_table({"a": a, "b": b}).splitlines() == [
        "| model | digital | 25 s | 1 d |",
        "|---|---|---|---|",
        "| a | 90.00 | 75.00 ± 25.00 | 75.00 ± 43.30 |",
        "| b | – | 12.50 ± 0.00 | 50.00 ± 0.00 |",
    ]
    assert pcm_table(b, digits=1).splitlines()[2] == "| model | – | 12.5 ± 0.0 | 50.0 ± 0.0 |"
    with pytest.raises(ValueError, match="share their times"):
        pcm_table({"a": a, "c": PCMAccuracy((25.0,), torch.ones(1, 1))})
    with pytest.raises(ValueError, match="empty"):
        pcm_table({})


def test_format_time():
    assert [format_time(t) for t in PCM_TIMES] == ["25 s", "1 h", "1 d", "30 d", "1 y"]
    assert format_time(90.0) == "90 s"


# ----------------------------------------------------------------------------- the example, tiny
def load_example():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "pcm_drift.py"
    spec = importlib.util.spec_from_file_location("pcm_drift_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_help(capsys):
    with pytest.raises(SystemExit) as exc:
        load_example().main(["--help"])
    assert exc.value.code == 0 and "--noise-mode" in capsys.readouterr().out


def test_example_tiny_run_on_fmnist(fmnist_dir, tmp_path):
    out = load_example().main([
        "--data-root", str(fmnist_dir), "--n-train", "200", "--n-finetune", "100", "--n-test", "100",
        "--epochs", "1", "--attack-steps", "1", "--n-reps", "2", "--times", "25", "3600", "--out-dir", str(tmp_path),
    ])
    assert set(out["results"]) == {"fp", "ni", "ni+rob"}
    for res in out["results"].values():
        acc = np.array(res["accuracy"])
        assert acc.shape == (2, 2) and ((acc >= 0) & (acc <= 1)).all()
        assert np.allclose(acc * 100, np.round(acc * 100))  # 100 test images: whole percents
    assert (tmp_path / "pcm_drift.png").exists() and (tmp_path / "pcm_drift.json").exists()
    assert out["table"].count("\n") == 4  # header, rule, three models
