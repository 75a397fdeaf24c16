"""Weight-loss landscape (docs/evaluation.md, Table S1): flatness by hand on linear and quadratic curves."""

import numpy as np
import pytest
import torch
from torch import nn

from spikerobust.nn import LSNNClassifier
from spikerobust.robust.landscape import LandscapeResult, flatness, loss_landscape, moving_average, plot_landscape


def test_moving_average_valid_by_hand():
    out = moving_average(torch.tensor([0.0, 5.0, 10.0, 0.0, 5.0, 10.0, 20.0]), 5)
    torch.testing.assert_close(out, torch.tensor([4.0, 6.0, 9.0], dtype=torch.float64))


def test_flatness_linear_and_quadratic_by_hand():
    alphas = torch.linspace(-2, 2, 50, dtype=torch.float64)
    assert flatness(alphas, -0.7 * alphas + 2.0) == pytest.approx(0.7, rel=1e-12)
    # α²: the 5-point average adds a constant 2h², so slopes are (α_{i+1}² − α_i²)/h = α_i + α_{i+1}
    a = np.linspace(-2, 2, 50)
    centres = a[2:-2]
    expected = np.mean(np.abs(centres[1:] + centres[:-1]))
    assert flatness(alphas, alphas**2) == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="increasing"):
        flatness(alphas.flip(0), alphas)


def linear_model():
    torch.manual_seed(0)
    return nn.Linear(3, 2).double()


def per_direction_polynomial(model, x, d):
    """Logits along θ + α d are z + α u (the model is affine in its parameters)."""
    with torch.no_grad():
        z = model(x)
        u = x @ d["weight"].T + d["bias"]
    return z, u


def test_landscape_linear_loss_gives_mean_slope():
    model = linear_model()
    x, y = torch.randn(20, 3, dtype=torch.float64), torch.zeros(20, dtype=torch.long)
    mean_logit = lambda logits, y: logits.mean(-1)  # noqa: E731  exactly linear in α
    res = loss_landscape(model, (x, y), loss_fn=mean_logit, progress=False)
    assert res.losses.shape == (5, 50) and len(res.directions) == 5
    for d in res.directions:  # d = 0.2 |θ| ⊙ N(0, I): zero where θ is zero, |d|/|θ| ~ 0.2·|N|
        assert d["weight"].shape == (2, 3)
    slopes = [float(per_direction_polynomial(model, x, d)[1].mean()) for d in res.directions]
    assert res.flatness == pytest.approx(abs(np.mean(slopes)), rel=1e-8)


def test_landscape_quadratic_loss_by_hand():
    model = linear_model()
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.zeros(16, dtype=torch.long)
    res = loss_landscape(model, (x, y), loss_fn=lambda lg, y: (lg**2).mean(-1), n_directions=3, progress=False)
    coef_b = coef_c = 0.0
    for d in res.directions:
        z, u = per_direction_polynomial(model, x, d)
        coef_b += float(2 * (z * u).mean()) / 3
        coef_c += float((u * u).mean()) / 3
    a = np.linspace(-2, 2, 50)
    h = a[1] - a[0]
    centres = a[2:-2]
    # smoothing adds a constant; consecutive differences of B α + C α² over h:
    expected = np.mean(np.abs(coef_b + coef_c * (centres[1:] + centres[:-1])))
    assert res.flatness == pytest.approx(expected, rel=1e-8)
    assert h > 0


def test_landscape_cross_entropy_at_zero_alpha_on_lsnn_and_figure(tmp_path):
    model = LSNNClassifier(2, 8, 3)
    with torch.no_grad():
        model.readout.weight.mul_(50)
    x, y = torch.randn(20, 6, 2) * 3, torch.randint(0, 3, (6,))
    res = loss_landscape(model, (x, y), n_directions=2, n_alphas=11, label="lsnn", progress=False)
    with torch.no_grad():
        clean = float(torch.nn.functional.cross_entropy(model(x), y))
    assert abs(float(res.alphas[5])) < 1e-12
    torch.testing.assert_close(res.losses[:, 5], torch.full((2,), clean, dtype=torch.float64), rtol=1e-5, atol=1e-6)
    other = LandscapeResult(res.alphas, res.losses * 0.5, label="half")
    assert other.flatness == pytest.approx(0.5 * res.flatness)
    fig = plot_landscape({"a": res, "b": other}, tmp_path / "landscape.png")
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 2
    assert (tmp_path / "landscape.png").read_bytes()[:4] == b"\x89PNG"


def test_errors():
    model = linear_model()
    data = (torch.randn(4, 3, dtype=torch.float64), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="n_alphas"):
        loss_landscape(model, data, n_alphas=3, progress=False)
    with pytest.raises(ValueError, match="empty"):
        loss_landscape(model, data, params={}, progress=False)
    with pytest.raises(ValueError, match="alpha_range"):
        loss_landscape(model, data, alpha_range=(1.0, -1.0), progress=False)
