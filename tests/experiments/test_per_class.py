"""Per-class sensitivity / PPV / confusion matrix (spikerobust.analysis.per_class)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spikerobust.analysis.per_class import per_class_metrics, per_class_under_mismatch, predictions


def test_per_class_metrics_by_hand():
    # true:  N N N L L R V V ; predicted: N L N L L N V R
    y = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    p = np.array([0, 1, 0, 1, 1, 0, 3, 2])
    r = per_class_metrics(y, p, ["N", "L", "R", "V"])
    # Se = TP / (TP + FN): N 2/3, L 2/2, R 0/1, V 1/2; PPV = TP / (TP + FP): N 2/3, L 2/3, R 0/1, V 1/1
    assert r["sensitivity"] == pytest.approx([2 / 3, 1.0, 0.0, 0.5])
    assert r["ppv"] == pytest.approx([2 / 3, 2 / 3, 0.0, 1.0])
    assert r["support"] == [3, 2, 1, 2]
    assert r["confusion"] == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 1, 1]]
    assert r["accuracy"] == pytest.approx(5 / 8)


def test_a_class_never_predicted_has_ppv_zero():
    r = per_class_metrics(np.array([0, 1]), np.array([0, 0]), ["a", "b"])
    assert r["ppv"] == [0.5, 0.0] and r["sensitivity"] == [1.0, 0.0]


def _model_and_batches():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
    x = torch.randn(60, 5)
    y = model(x).argmax(-1).detach()  # labels the clean model gets right
    y[:10] = (y[:10] + 1) % 3          # ... except the first ten
    return model, [(x[:25], y[:25]), (x[25:], y[25:])]


def test_predictions_and_clean_figures_agree_with_accuracy():
    model, batches = _model_and_batches()
    yt, yp = predictions(model, batches)
    assert (yt != yp).sum() == 10
    r = per_class_metrics(yt, yp, ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(50 / 60)
    assert model.training  # mode restored


def test_mismatch_level_zero_equals_the_clean_figures():
    model, batches = _model_and_batches()
    clean = per_class_metrics(*predictions(model, batches), ["a", "b", "c"])
    mm = per_class_under_mismatch(model, batches, ["a", "b", "c"], 0.0, 3, seed=1)
    assert mm["sensitivity"] == pytest.approx(clean["sensitivity"])
    assert mm["ppv"] == pytest.approx(clean["ppv"])
    assert np.allclose(mm["confusion"], clean["confusion"])
    assert mm["sensitivity_std"] == pytest.approx([0.0, 0.0, 0.0])


def test_mismatch_mean_confusion_keeps_the_class_supports():
    model, batches = _model_and_batches()
    mm = per_class_under_mismatch(model, batches, ["a", "b", "c"], 0.5, 4, seed=0)
    yt = np.concatenate([b[1].numpy() for b in batches])
    assert np.allclose(np.sum(mm["confusion"], axis=1), np.bincount(yt, minlength=3))
    # the mean of per-draw accuracies is the trace of the mean confusion matrix over N
    assert mm["accuracy"] == pytest.approx(np.trace(mm["confusion"]) / len(yt))
