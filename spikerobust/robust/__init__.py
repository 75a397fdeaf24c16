"""Model-agnostic robustness: parameter selection, mismatch, attacks, robust training, PCM."""

from .params import select_parameters

__all__ = ["select_parameters"]
