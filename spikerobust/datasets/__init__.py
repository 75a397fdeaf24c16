"""Datasets: MIT-BIH ECG beats, synthetic ECG, speech (features, Speech Commands, FSDD, espeak-ng
keywords) and images (Fashion-MNIST, CIFAR-10).

Every dataset looks like torchvision's (``root``, ``split``, ``transform``, ``download``), returns
``(x, label)`` with ``x`` a float32 tensor, time-first ``[T, features]`` for the SNN tasks and
``[C, H, W]`` for images, and caches its preprocessed arrays (see :mod:`.cache`: the folder is
``cache_dir=``, else ``$SPIKEROBUST_CACHE``, else ``~/.cache/spikerobust``). Batch the time-first
sets with :func:`time_first_collate` to get ``[T, B, F]``; whole in-memory splits are made time-first
with :func:`to_time_first`, standardised with :class:`BatchStandardize` and batched with
:class:`ShuffledBatches` (training) or :func:`ordered_batches` (evaluation).

Examples:
    >>> from torch.utils.data import DataLoader
    >>> from spikerobust.datasets import SyntheticECG, time_first_collate
    >>> loader = DataLoader(SyntheticECG(beats_per_class=20), batch_size=8, collate_fn=time_first_collate)
    >>> x, y = next(iter(loader))
    >>> tuple(x.shape), tuple(y.shape)
    ((100, 8, 2), (8,))
"""

from .cache import cache_root, settings_hash
from .collate import ShuffledBatches, ordered_batches, take_samples, time_first_collate, to_time_first
from .ecg import MITBIH, extract_beats, read_record_beats, select_leads
from .ecg_synthetic import SyntheticECG, synthetic_ecg_strip
from .fsdd import FSDD, fsdd_files
from .images import CIFAR10, FashionMNIST, Standardize, channel_stats, read_idx
from .keywords_tts import SyntheticKeywords, espeak_available
from .speech import SpeechFeatures, TorchSpeechFeatures, load_clips, load_wav, pad_or_crop
from .speech_augment import AugmentedSpeechBatches, SpeechAugment, synthetic_noise_bank, time_shift
from .speech_commands import SpeechCommands, which_set
from .toy import burst_task
from .transforms import BatchStandardize, FeatureStandardize, feature_stats

__all__ = [
    "burst_task",
    "cache_root",
    "settings_hash",
    "time_first_collate",
    "to_time_first",
    "take_samples",
    "ordered_batches",
    "ShuffledBatches",
    "MITBIH",
    "extract_beats",
    "read_record_beats",
    "select_leads",
    "SyntheticECG",
    "synthetic_ecg_strip",
    "SpeechFeatures",
    "TorchSpeechFeatures",
    "load_clips",
    "load_wav",
    "SpeechAugment",
    "AugmentedSpeechBatches",
    "synthetic_noise_bank",
    "time_shift",
    "pad_or_crop",
    "SpeechCommands",
    "which_set",
    "FSDD",
    "fsdd_files",
    "SyntheticKeywords",
    "espeak_available",
    "FashionMNIST",
    "CIFAR10",
    "Standardize",
    "channel_stats",
    "read_idx",
    "FeatureStandardize",
    "BatchStandardize",
    "feature_stats",
]
