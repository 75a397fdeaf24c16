"""Mismatch (docs/evaluation.md, Eq. 1): draws, batched == looped evaluation, Table-1 summary, errors."""

import math

import pytest
import torch
from torch import nn

from spikerobust.models import get_model
from spikerobust.nn import LSNNClassifier
from spikerobust.robust.mismatch import (
    MismatchResult,
    draw_mismatch,
    evaluate_stacked,
    mismatch_evaluate,
    mismatch_params,
)
from spikerobust.robust.params import select_parameters
from spikerobust.robust.stats import mann_whitney

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def test_draws_are_relative_gaussian_per_element():
    theta = {"w": torch.linspace(-2, 2, 101).repeat(40, 1), "b": torch.full((7,), 3.0)}
    theta["w"][theta["w"] == 0] = 1.0
    draws = draw_mismatch(theta, 0.3, 50, generator=torch.Generator().manual_seed(0))
    assert draws["w"].shape == (50, 40, 101) and draws["b"].shape == (50, 7)
    rel = (draws["w"] / theta["w"] - 1.0) / 0.3  # must be N(0, 1), independent per element
    assert float(rel.mean()) == pytest.approx(0.0, abs=0.01)
    assert float(rel.std()) == pytest.approx(1.0, abs=0.01)
    flat = rel.reshape(50, -1)
    corr = torch.corrcoef(torch.stack([flat[:, :-1].reshape(-1), flat[:, 1:].reshape(-1)]))[0, 1]
    assert abs(float(corr)) < 0.01


def test_draws_reproducible_and_prefix_stable():
    theta = {"w": torch.randn(5, 5)}
    a = draw_mismatch(theta, 0.2, 6, generator=torch.Generator().manual_seed(4))
    b = draw_mismatch(theta, 0.2, 3, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a["w"][:3], b["w"])
    c = draw_mismatch(theta, 0.2, 3, generator=torch.Generator().manual_seed(5))
    assert not torch.equal(c["w"], b["w"])
    assert torch.equal(mismatch_params(theta, 0.0)["w"], theta["w"])


def loop_accuracies(model, x, y, stacked):
    """Second implementation: one plain forward per draw with the weights copied in."""
    accs = []
    k = next(iter(stacked.values())).shape[0]
    for i in range(k):
        clone = __import__("copy").deepcopy(model).eval()
        with torch.no_grad():
            for n, t in stacked.items():
                dict(clone.named_parameters())[n].copy_(t[i])
            accs.append(float((clone(x).argmax(-1) == y).double().mean()))
    return torch.tensor(accs, dtype=torch.float64)


def test_cnn_vmap_equals_loop_and_copy():
    model = get_model("cnn_fmnist")
    x, y = torch.randn(12, 1, 28, 28), torch.randint(0, 10, (12,))
    stacked = draw_mismatch(select_parameters(model), 0.5, 4, generator=torch.Generator().manual_seed(0))
    c_vmap, _, n = evaluate_stacked(model.eval(), [(x, y)], stacked, vectorize=True)
    c_loop, _, _ = evaluate_stacked(model, [(x, y)], stacked, vectorize=False)
    assert torch.equal(c_vmap, c_loop)
    torch.testing.assert_close(c_vmap.double() / n, loop_accuracies(model, x, y, stacked))


def test_resnet32_batchnorm_eval_under_vmap():
    model = get_model("resnet32")
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        model.train()(x * 2 + 1)  # non-trivial running statistics
    model.eval()
    y = model(x).argmax(-1)  # labels = clean predictions, so accuracy at m = 0 is 1
    stacked = draw_mismatch(select_parameters(model), 0.3, 3, generator=torch.Generator().manual_seed(1))
    c_vmap, ce_vmap, n = evaluate_stacked(model, [(x, y)], stacked, vectorize=True, with_loss=True)
    c_loop, ce_loop, _ = evaluate_stacked(model, [(x, y)], stacked, vectorize=False, with_loss=True)
    assert torch.equal(c_vmap, c_loop)
    torch.testing.assert_close(ce_vmap, ce_loop, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(c_loop.double() / n, loop_accuracies(model, x, y, stacked))
    res = mismatch_evaluate(model, (x, y), levels=(0.0,), progress=False)
    assert float(res.accuracies[0.0][0]) == 1.0


def test_lsnn_vmap_equals_loop():
    model = LSNNClassifier(2, 16, 3)
    with torch.no_grad():
        model.readout.weight.mul_(100)
    x, y = torch.randn(30, 10, 2) * 3, torch.randint(0, 3, (10,))
    stacked = draw_mismatch(select_parameters(model), 0.5, 4, generator=torch.Generator().manual_seed(0))
    c_loop, _, n = evaluate_stacked(model, [(x, y)], stacked, vectorize=False)
    torch.testing.assert_close(c_loop.double() / n, loop_accuracies(model, x, y, stacked))
    try:
        c_vmap, _, _ = evaluate_stacked(model, [(x, y)], stacked, vectorize=True)
    except RuntimeError as err:
        if "setup_context" in str(err):
            pytest.skip("the LSNN's surrogate autograd.Function does not support functorch yet (vmap)")
        raise
    assert torch.equal(c_vmap, c_loop)
    auto = mismatch_evaluate(model, (x, y), levels=(0.5,), n_draws=4, chunk_size=3, progress=False)
    loop = mismatch_evaluate(model, (x, y), levels=(0.5,), n_draws=4, vectorize=False, progress=False)
    assert torch.equal(auto.accuracies[0.5], loop.accuracies[0.5])


def test_evaluate_levels_draws_and_clean_accuracy():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)).train()
    x, y = torch.randn(50, 4), torch.randint(0, 3, (50,))
    batches = [(x[:20], y[:20]), (x[20:], y[20:])]
    res = mismatch_evaluate(model, batches, levels=(0, 0.1, 0.7), n_draws=7, chunk_size=3, progress=False)
    assert model.training  # mode restored
    assert [r.numel() for r in res.accuracies.values()] == [1, 7, 7]
    with torch.no_grad():
        clean = float((model.eval()(x).argmax(-1) == y).double().mean())
    assert float(res.accuracies[0.0][0]) == clean
    # same seed → same numbers; chunking does not change the draws
    again = mismatch_evaluate(model, batches, levels=(0, 0.1, 0.7), n_draws=7, chunk_size=7, progress=False)
    assert all(torch.equal(res.accuracies[m], again.accuracies[m]) for m in res.levels)


def test_table_by_hand():
    acc = {0.0: torch.tensor([0.9]), 0.5: torch.tensor([0.8, 0.6, 0.7])}
    res = MismatchResult((0.0, 0.5), acc)
    lines = res.to_markdown().splitlines()
    assert lines[2] == "| 0 | 90.00 | 0.00 | 90.00 |"
    assert lines[3] == "| 0.5 | 70.00 | 10.00 | 60.00 |"  # sample std of (80, 60, 70) = 10
    pooled = MismatchResult.pool(res, res)
    assert pooled.accuracies[0.5].numel() == 6 and pooled.mean(0.5) == pytest.approx(0.7)


def test_mann_whitney_by_hand():
    # fully separated samples of size 3: U = 0 for the lower one, exact two-sided p = 2 / C(6, 3) = 0.1
    res = mann_whitney([0.1, 0.2, 0.3], [0.4, 0.5, 0.6])
    assert res.statistic == 0.0 and res.pvalue == pytest.approx(2 / math.comb(6, 3))
    assert mann_whitney(torch.tensor([0.4, 0.5, 0.6]), [0.1, 0.2, 0.3], "greater").pvalue == pytest.approx(0.05)


def test_errors():
    model = nn.Sequential(nn.Linear(4, 3))
    data = (torch.randn(5, 4), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="level"):
        mismatch_evaluate(model, data, levels=(0.1, -0.2), progress=False)
    with pytest.raises(ValueError, match="empty"):
        mismatch_evaluate(model, data, params={}, progress=False)
    with pytest.raises(ValueError, match="empty"):
        mismatch_evaluate(model, data, exclude=["*"], progress=False)
    with pytest.raises(ValueError, match=r"\[B, C\]"):
        mismatch_evaluate(nn.Sequential(nn.Linear(4, 3), nn.Flatten(0)), data, progress=False)
    with pytest.raises(ValueError, match=r"\[B, C\]"):
        mismatch_evaluate(model, (torch.randn(5, 4), torch.zeros(6, dtype=torch.long)), progress=False)
    with pytest.raises(ValueError, match="n_draws"):
        mismatch_evaluate(model, data, n_draws=0, progress=False)
    with pytest.raises(ValueError, match="acc_a"):
        mann_whitney([], [0.1])
