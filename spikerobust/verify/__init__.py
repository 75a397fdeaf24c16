"""Interval-arithmetic verification under relative parameter boxes (docs/verification.md).

Every parameter ``p`` is boxed in ``[p - ε|p|, p + ε|p|]``; ``epsilon`` is the relative box size
(``zeta``, its former name here, is still accepted for one release with a ``DeprecationWarning``).

- :class:`Interval`: element-wise bounds, checked ``lower <= upper``.
- :mod:`~spikerobust.verify.rules`: one plain function per operation (``rules.matmul``,
  ``rules.batch_norm`` ...), shared by both verifiers below.
- :func:`lsnn_interval_simulation` / :func:`lsnn_logit_bounds`: the LSNN dynamics on intervals,
  with per-neuron, per-step spike status (certain / impossible / uncertain).
- :func:`sequential_logit_bounds`: conv/dense ``nn.Sequential`` networks and ResNet32 with
  interval weights.
- :func:`logit_bounds`, :func:`is_verified`, :func:`verified_accuracy`: certificates, for any
  supported model (chosen through :mod:`spikerobust.protocol`).

Examples:
    >>> import torch
    >>> from spikerobust.nn import LSNNClassifier
    >>> from spikerobust.verify import verified_accuracy
    >>> model = LSNNClassifier(2, n_hidden=8, n_classes=2)
    >>> x, y = torch.randn(20, 6, 2), torch.zeros(6, dtype=torch.long)
    >>> 0.0 <= verified_accuracy(model, (x, y), epsilon=1e-4) <= 1.0
    True
"""

from . import rules
from .certify import is_verified, logit_bounds, verified_accuracy
from .feedforward import layer_interval, register_layer, sequential_interval, sequential_logit_bounds, supported_layers
from .interval import Interval, as_interval, check_epsilon, relative_interval
from .lsnn import LSNNIntervalResult, SpikeStatus, lsnn_interval_simulation, lsnn_logit_bounds, spike_status
from .registry import get_rule, interval_propagate, list_rules, register_rule

__all__ = [
    "Interval",
    "as_interval",
    "relative_interval",
    "check_epsilon",
    "rules",
    "register_rule",
    "get_rule",
    "list_rules",
    "interval_propagate",
    "SpikeStatus",
    "LSNNIntervalResult",
    "lsnn_interval_simulation",
    "lsnn_logit_bounds",
    "spike_status",
    "register_layer",
    "supported_layers",
    "layer_interval",
    "sequential_interval",
    "sequential_logit_bounds",
    "logit_bounds",
    "is_verified",
    "verified_accuracy",
]
