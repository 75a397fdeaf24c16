"""Thin ``nn.Module`` shells: parameters live here, state is returned."""

from .lsnn import LSNN, NEURON_CONSTANTS, LSNNClassifier, truncated_normal_
from .snntorch_compat import AdaptiveLeaky

__all__ = ["LSNN", "LSNNClassifier", "NEURON_CONSTANTS", "truncated_normal_", "AdaptiveLeaky"]
