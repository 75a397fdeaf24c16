"""Membrane-potential records: traces agree with an independent step-by-step run, errors are clear."""

import doctest

import pytest
import torch

import spikerobust.analysis.membrane as membrane
from spikerobust.analysis import near_threshold_fraction, plot_membrane_comparison, record_membrane
from spikerobust.analysis.membrane import MembraneRecord
from spikerobust.functional.lsnn import initial_state, lsnn_step
from spikerobust.nn import LSNNClassifier


def test_record_matches_step_by_step_and_batches():
    torch.manual_seed(0)
    model = LSNNClassifier(2, 12, 3).double()
    x = torch.randn(25, 7, 2, dtype=torch.float64) * 3
    rec = record_membrane(model, x, batch_size=3)  # three chunks, concatenated
    p = model.lsnn.neuron_params()
    state = initial_state(7, 12, dtype=torch.float64)
    for t in range(25):
        z, state = lsnn_step(x[t], state, p, model.lsnn.w_in, model.lsnn.w_rec)
        thr = p.b0 + p.beta_adapt * state.b
        torch.testing.assert_close(rec.v[t], state.v)
        torch.testing.assert_close(rec.threshold[t], thr)
        torch.testing.assert_close(rec.spikes[t], z)
    u = (rec.v - rec.threshold) / rec.threshold
    torch.testing.assert_close(rec.scaled, u)


def test_near_threshold_fraction_by_hand():
    v = torch.tensor([1.0, 1.05, 0.5, 1.3]).view(1, 1, 4)
    rec = MembraneRecord(v, torch.ones_like(v), torch.zeros_like(v))
    # scaled = 0, 0.05, -0.5, 0.3 → 2 of 4 within 0.1, 3 of 4 within 0.4
    assert near_threshold_fraction(rec, 0.1) == 0.5
    assert near_threshold_fraction(rec, 0.4) == 0.75
    with pytest.raises(ValueError, match="delta"):
        near_threshold_fraction(rec, 0.0)


def test_errors_and_plot():
    with pytest.raises(ValueError, match="declares no spiking layer"):
        record_membrane(torch.nn.Linear(2, 2), torch.randn(3, 2, 2))
    with pytest.raises(ValueError, match=r"\[T, B, d_in\]"):
        record_membrane(LSNNClassifier(2, 4, 2), torch.randn(3, 2))
    with pytest.raises(ValueError, match="empty"):
        plot_membrane_comparison({})
    rec = record_membrane(LSNNClassifier(2, 4, 2), torch.randn(10, 3, 2))
    fig = plot_membrane_comparison({"a": rec, "b": rec})
    assert len(fig.axes[0].patches) == 2


def test_docstring_examples():
    assert doctest.testmod(membrane).failed == 0


def test_layer_found_through_the_model_protocol():
    """A model the library does not know, holding an LSNN as a child: its declared spiking layer is recorded."""
    from spikerobust.nn import LSNN

    class Wrapper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(LSNN(2, 5))

    torch.manual_seed(1)
    model, x = Wrapper(), torch.randn(12, 3, 2)
    rec = record_membrane(model, x)
    z, trace = model.body[0](x, return_states=True)
    assert torch.equal(rec.spikes, z) and torch.equal(rec.v, trace.v)
    model.body.append(LSNN(5, 5))
    with pytest.raises(ValueError, match="2 LSNN layers"):
        record_membrane(model, x)
