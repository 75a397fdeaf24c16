"""Model-agnostic robustness: parameter selection, mismatch, weight attacks, robust training,
baselines, weight-loss landscapes, PCM simulation and the trainer.

The most used entry points are re-exported here; each lives in a small module of its own. The
defaults (attack size, steps, mismatch levels, draws, learning-rate schedule) are declared once in
:mod:`.spec`, with the attack's settings as one frozen :class:`AttackSpec`; the helpers every module
shares (parameter selection, mode save-restore, batching, seeded draws, functional logits,
accuracy) live in :mod:`.core`.
"""

from .adversarial import robust_loss_backward
from .attacks import attack_weights, attacked_accuracy, random_perturbation
from .core import accuracy
from .landscape import loss_landscape, plot_landscape
from .mismatch import MismatchResult, mismatch_evaluate
from .params import select_parameters
from .spec import AttackSpec
from .stats import mann_whitney
from .trainer import fit

__all__ = [
    "AttackSpec",
    "accuracy",
    "select_parameters",
    "mismatch_evaluate",
    "MismatchResult",
    "attack_weights",
    "attacked_accuracy",
    "random_perturbation",
    "robust_loss_backward",
    "loss_landscape",
    "plot_landscape",
    "mann_whitney",
    "fit",
]
