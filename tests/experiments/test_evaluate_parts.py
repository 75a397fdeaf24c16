"""The evaluation-part registry: the built-in parts in order, a part of one's own, and the checks."""

from __future__ import annotations

import pytest
import torch

from spikerobust.experiments import PARTS, evaluate_model, load_task, make_config
from spikerobust.experiments import evaluate as evaluate_module
from spikerobust.experiments.evaluate import list_parts, register_part
from spikerobust.models import get_model


@pytest.fixture
def tiny():
    cfg = make_config("ecg", "quick", overrides={"n_per_class": 10, "n_hidden": 8, "progress": False})
    data = load_task(cfg)
    torch.manual_seed(0)
    return get_model(data.model, **data.model_kwargs), data, cfg


@pytest.fixture
def fresh_registry(monkeypatch):
    monkeypatch.setattr(evaluate_module, "_PARTS", {k: list(v) for k, v in evaluate_module._PARTS.items()})


def test_builtin_parts_in_the_order_they_run():
    assert PARTS == ("mismatch", "attack", "verify", "landscape", "membrane", "cost") == list_parts()


def test_a_registered_part_runs_after_the_others_and_sees_the_test_batches(tiny, fresh_registry):
    model, data, cfg = tiny
    seen = []

    @register_part("mine")
    def mine(ctx):
        seen.append(ctx)
        return {"n_test": sum(int(y.shape[0]) for _, y in ctx.test), "clean": ctx.results["test_accuracy"]}

    @register_part("mine", key="never")
    def not_applicable(ctx):
        return None  # nothing recorded

    assert list_parts()[-1] == "mine"
    out = evaluate_model(model, data, cfg, parts=["mine"])
    # the clean accuracy, computed here from the model's logits
    with torch.no_grad():
        correct = sum(int((model(x).argmax(-1) == y).sum()) for x, y in data.batches("test"))
    assert out["test_accuracy"] == pytest.approx(correct / data.sizes["test"])
    assert out["mine"] == {"n_test": data.sizes["test"], "clean": out["test_accuracy"]}
    assert "never" not in out and set(out["timings"]) == {"mine"} and out["timings"]["mine"] >= 0
    assert seen[0].label == "" and seen[0].data is data and not seen[0].model.training
    with pytest.raises(ValueError, match="'mine' is taken already"):
        register_part("other", key="mine")(mine)


def test_unknown_part_and_non_finite_weights_are_refused(tiny):
    model, data, cfg = tiny
    with pytest.raises(ValueError, match=r"unknown evaluation part\(s\) \['mismach'\]"):
        evaluate_model(model, data, cfg, parts=["mismach"])
    with torch.no_grad():
        next(model.parameters())[0] = float("nan")
    with pytest.raises(ValueError, match="non-finite weights"):
        evaluate_model(model, data, cfg, parts=[])


def test_membrane_is_skipped_without_samples(tiny):
    model, data, cfg = tiny
    cfg.membrane_samples = 0
    assert "membrane" not in evaluate_model(model, data, cfg, parts=["membrane"])
    cfg.membrane_samples = 3
    out = evaluate_model(model, data, cfg, parts=["membrane"])
    assert sum(out["membrane"]["hist_counts"]) == 3 * 100 * 8  # 3 samples x T = 100 steps x 8 neurons


def test_is_lsnn_model_asks_the_model_protocol_not_the_class():
    """A time-first spiking layer makes an LSNN-like model whatever its class; batch-first spiking
    layers (one step per call) and plain networks do not."""
    from torch import nn

    from spikerobust.experiments.evaluate import is_lsnn_model
    from spikerobust.nn import AdaptiveLeaky, LSNNClassifier

    class OwnRecurrent(nn.Module):  # declares itself, is no LSNN
        input_layout = "time_first"

        def spiking_layers(self):
            return [self]

    assert is_lsnn_model(LSNNClassifier(2, 8, 4))
    assert is_lsnn_model(nn.Sequential(OwnRecurrent(), nn.Linear(2, 2)))
    assert not is_lsnn_model(nn.Sequential(nn.Linear(2, 3), AdaptiveLeaky()))
    assert not is_lsnn_model(nn.Sequential(nn.Linear(2, 2)))
