"""The Interval type: ordering check with a clear message, centre/radius helpers, relative boxes."""

import pytest
import torch

from spikerobust.verify import Interval, as_interval, relative_interval


def test_centre_radius_width_by_hand():
    iv = Interval(torch.tensor([-1.0, 2.0, 0.5]), torch.tensor([3.0, 2.0, 1.5]))
    assert torch.equal(iv.centre, torch.tensor([1.0, 2.0, 1.0]))
    assert torch.equal(iv.radius, torch.tensor([2.0, 0.0, 0.5]))
    assert torch.equal(iv.width, torch.tensor([4.0, 0.0, 1.0]))
    lo, hi = iv
    assert torch.equal(lo, iv.lower) and torch.equal(hi, iv.upper)


def test_lower_above_upper_is_rejected_with_count_and_max_violation():
    with pytest.raises(ValueError, match=r"lower > upper at 2 of 4 elements \(max violation lower - upper = 3\)"):
        Interval(torch.tensor([0.0, 5.0, 1.0, 2.0]), torch.tensor([1.0, 2.0, 1.0, 1.5]))


def test_nan_bounds_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        Interval(torch.tensor([float("nan")]), torch.tensor([1.0]))


def test_shape_and_type_errors_name_the_problem():
    with pytest.raises(ValueError, match="shape"):
        Interval(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="tensors"):
        Interval([0.0], torch.zeros(1))
    with pytest.raises(ValueError, match="dtype"):
        Interval(torch.zeros(2), torch.zeros(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="radius"):
        Interval.from_centre_radius(torch.zeros(2), torch.tensor([1.0, -1.0]))


def test_relative_interval_is_p_plus_minus_epsilon_abs_p():
    p = torch.tensor([2.0, -4.0, 0.0])
    iv = relative_interval(p, 0.25)
    assert torch.equal(iv.lower, torch.tensor([1.5, -5.0, 0.0]))
    assert torch.equal(iv.upper, torch.tensor([2.5, -3.0, 0.0]))
    assert torch.equal(iv.centre, p) and iv.rel == 0.25
    for bad in (-0.1, float("nan"), float("inf"), "x"):
        with pytest.raises(ValueError, match="epsilon"):
            relative_interval(p, bad)
    with pytest.warns(DeprecationWarning, match="zeta"):
        old = relative_interval(p, zeta=0.25)
    assert torch.equal(old.lower, iv.lower) and torch.equal(old.upper, iv.upper)


def test_point_contains_and_subset():
    x = torch.tensor([1.0, -2.0])
    iv = as_interval(x)
    assert torch.equal(iv.lower, x) and torch.equal(iv.upper, x) and torch.equal(iv.radius, torch.zeros(2))
    big = Interval(torch.tensor([0.0, -3.0]), torch.tensor([1.0, 0.0]))
    assert iv.is_subset_of(big) and not big.is_subset_of(iv)
    assert big.contains(torch.tensor([0.5, 0.1])).tolist() == [True, False]
    with pytest.raises(ValueError, match="Interval, a torch.Tensor or a number"):
        as_interval("3.0")
    assert as_interval(3.0).lower.item() == 3.0 and as_interval(3.0).rel == 0.0


def test_abs_centre_is_cached_and_equals_abs_of_the_centre():
    iv = relative_interval(torch.tensor([-2.0, 3.0]), 0.1)
    assert torch.equal(iv.abs_centre, torch.tensor([2.0, 3.0]))
    assert iv.abs_centre is iv.abs_centre
