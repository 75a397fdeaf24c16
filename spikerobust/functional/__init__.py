"""Pure functions: LSNN dynamics, surrogate gradients, readouts. No modules, no I/O."""

from . import surrogate
from .lsnn import (
    LSNNLayer,
    LSNNParams,
    LSNNState,
    LSNNTrace,
    decay,
    initial_state,
    lsnn_step,
    lsnn_step_current,
    lsnn_unroll,
    zero_diagonal,
)
from .lsnn_event import lsnn_unroll_event
from .lsnn_fused import lsnn_unroll_fused
from .readout import rate_regulariser, time_average_readout, time_mean
from .surrogate import (
    ATan,
    FastSigmoid,
    Surrogate,
    Triangle,
    from_snntorch,
    get_surrogate,
    has_closed_form_derivative,
    heaviside,
)

__all__ = [
    "LSNNLayer",
    "LSNNParams",
    "LSNNState",
    "LSNNTrace",
    "decay",
    "initial_state",
    "lsnn_step",
    "lsnn_step_current",
    "lsnn_unroll",
    "lsnn_unroll_event",
    "lsnn_unroll_fused",
    "zero_diagonal",
    "time_average_readout",
    "time_mean",
    "rate_regulariser",
    *surrogate.__all__,
]
