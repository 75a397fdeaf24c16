"""Model-agnostic robustness: parameter selection, mismatch, weight attacks, robust training,
baselines, weight-loss landscapes, PCM simulation and the trainer.

The most used entry points are re-exported here; each lives in a small module of its own.
"""

from .adversarial import robust_loss_backward
from .attacks import attack_weights, attacked_accuracy, random_perturbation
from .landscape import loss_landscape, plot_landscape
from .mismatch import MismatchResult, mismatch_evaluate
from .params import select_parameters
from .stats import mann_whitney
from .trainer import fit

__all__ = [
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
