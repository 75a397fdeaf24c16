"""check_finite: every kind of non-finite entry, anywhere in the tensor, named in the error."""

import pytest
import torch

from spikerobust._checks import check_finite


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64])
@pytest.mark.parametrize("bad,word", [(float("nan"), "NaN"), (float("inf"), "inf"), (float("-inf"), "inf")])
@pytest.mark.parametrize("where", [0, 17, -1])
def test_one_non_finite_entry_is_found_and_named(dtype, bad, word, where):
    x = torch.randn(5, 4, 3).to(dtype)
    check_finite(x, "x")  # finite: no error
    x.view(-1)[where] = bad
    with pytest.raises(ValueError, match=f"x contains {word} values"):
        check_finite(x, "x")


def test_nan_beside_inf_is_reported_as_nan():
    x = torch.zeros(10)
    x[2], x[8] = float("inf"), float("nan")
    with pytest.raises(ValueError, match="NaN"):
        check_finite(x, "batch")


@pytest.mark.parametrize("t", [torch.empty(0, 3), torch.arange(6), torch.ones(3, dtype=torch.bool)])
def test_empty_integer_and_boolean_tensors_pass(t):
    check_finite(t, "x")


def test_largest_finite_values_pass():
    check_finite(torch.tensor([torch.finfo(torch.float32).max, torch.finfo(torch.float32).min]), "x")
