"""Verified accuracy on an LSNN (tensor pair and DataLoader inputs) and is_verified's rule and errors."""

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from spikerobust.datasets.collate import time_first_collate
from spikerobust.nn import LSNNClassifier
from spikerobust.verify import is_verified, lsnn_logit_bounds, verified_accuracy


def test_is_verified_needs_strict_separation_from_every_other_class():
    lower = torch.tensor([[2.0, 0.0, 1.0], [2.0, 0.0, 1.0], [2.0, 0.0, 2.0], [0.0, 1.0, 0.0]])
    upper = torch.tensor([[3.0, 1.0, 1.9], [3.0, 1.0, 2.5], [3.0, 1.0, 2.5], [0.5, 2.0, 0.5]])
    # 0: 2 > max(1, 1.9) yes; 1: 2 > 2.5 no; 2: lower ties (2 vs 2) and overlap -> no; 3: label 1, 1 > 0.5 yes
    assert is_verified(lower, upper, torch.tensor([0, 0, 0, 1])).tolist() == [True, False, False, True]
    # touching intervals (lower_y == upper_c) are not disjoint
    assert not bool(is_verified(torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 1.0]]), torch.tensor([0]))[0])


def test_is_verified_errors():
    lo = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"\[B\]"):
        is_verified(lo, lo, torch.tensor([0]))
    with pytest.raises(ValueError, match="labels"):
        is_verified(lo, lo, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"\[B, C\]"):
        is_verified(lo, torch.zeros(2, 4), torch.tensor([0, 1]))


def test_lsnn_verified_accuracy_matches_the_bounds_and_decreases_with_epsilon():
    torch.manual_seed(0)
    model = LSNNClassifier(2, n_hidden=16, n_classes=3)
    with torch.no_grad():
        model.readout.weight.normal_(0.0, 1.0)
    x = 2.0 * torch.randn(30, 10, 2)
    logits = model.double()(x.double())
    y = logits.argmax(dim=1)  # every sample correct at ε = 0 (ties have probability 0)
    accs = [verified_accuracy(model, (x, y), z, batch_size=4) for z in (0.0, 1e-3, 1e-2, 1e-1)]
    assert accs[0] == 1.0
    assert all(a >= b for a, b in zip(accs, accs[1:]))
    lo, hi = lsnn_logit_bounds(model, x.double(), 1e-2)
    assert accs[2] == pytest.approx(float(is_verified(lo, hi, y).double().mean()))
    loader = DataLoader(TensorDataset(x.transpose(0, 1), y), batch_size=3, collate_fn=time_first_collate)
    assert verified_accuracy(model, loader, 1e-2) == pytest.approx(accs[2])


def test_data_errors():
    model = LSNNClassifier(2, n_hidden=4, n_classes=2)
    with pytest.raises(ValueError, match="samples"):
        verified_accuracy(model, (torch.randn(10, 3, 2), torch.zeros(4, dtype=torch.long)), 0.1)
    with pytest.raises(ValueError, match="no samples"):
        verified_accuracy(model, [], 0.1)
