"""Thin ``nn.Module`` shells: parameters live here, state is returned."""

from .lsnn import LSNN, NEURON_CONSTANTS, LSNNClassifier, truncated_normal_

__all__ = ["LSNN", "LSNNClassifier", "NEURON_CONSTANTS", "truncated_normal_"]
