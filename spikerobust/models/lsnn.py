"""LSNN builders for the paper's two spiking tasks (docs/lsnn.md and docs/tasks.md)."""

from __future__ import annotations

from ..nn import LSNNClassifier
from .registry import register_model

__all__ = ["lsnn_ecg", "lsnn_speech"]


@register_model("lsnn_ecg")
def lsnn_ecg(n_hidden: int = 256, n_classes: int = 4, **kwargs) -> LSNNClassifier:
    """ECG beat classifier: 2 leads as input currents, T = 100, classes N/L/R/V."""
    return LSNNClassifier(2, n_hidden=n_hidden, n_classes=n_classes, **kwargs)


@register_model("lsnn_speech")
def lsnn_speech(n_hidden: int = 256, n_classes: int = 8, d_in: int = 40, **kwargs) -> LSNNClassifier:
    """Keyword-spotting classifier: 40 MFCCs × 98 frames; 6 words + silence + unknown."""
    return LSNNClassifier(d_in, n_hidden=n_hidden, n_classes=n_classes, **kwargs)
