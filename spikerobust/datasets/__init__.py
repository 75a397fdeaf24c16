"""Datasets: MIT-BIH ECG beats, synthetic ECG, speech (features, Speech Commands, FSDD, espeak-ng
keywords) and images (Fashion-MNIST, CIFAR-10).

Every dataset looks like torchvision's (``root``, ``split``, ``transform``, ``download``), returns
``(x, label)`` with ``x`` a float32 tensor, time-first ``[T, features]`` for the SNN tasks and
``[C, H, W]`` for images, and caches its preprocessed arrays (see :mod:`.cache`). Batch the
time-first sets with :func:`time_first_collate` to get ``[T, B, F]``.
"""

from .cache import cache_root, settings_hash
from .collate import time_first_collate
from .ecg import MITBIH, extract_beats, read_record_beats, select_leads
from .ecg_synthetic import SyntheticECG, synthetic_ecg_strip

__all__ = [
    "cache_root",
    "settings_hash",
    "time_first_collate",
    "MITBIH",
    "extract_beats",
    "read_record_beats",
    "select_leads",
    "SyntheticECG",
    "synthetic_ecg_strip",
]
