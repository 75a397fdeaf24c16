"""Free Spoken Digit Dataset (FSDD): spoken digits 0-9 as ``[98, 40]`` MFCC sequences.

Files are named ``{digit}_{speaker}_{index}.wav`` (8 kHz mono). The split is the authors' own:
recordings with ``index`` 0-4 are the test set, 5-49 the training set (300 / 2700 files in
v1.0.10). Waveforms are resampled 8 kHz -> 16 kHz (soxr), centred in a 1 s clip (the recordings
last 0.14-2.28 s; longer ones keep their middle second) and passed through
:class:`~spikerobust.datasets.speech.SpeechFeatures`. Features are cached per split, keyed by the
feature settings and the files' names, sizes and modification times.
For training with augmentation, :meth:`FSDD.waveforms` gives the clips before the front end and
:meth:`FSDD.noise_clips` synthetic background noise (FSDD has no noise recordings).

Examples:
    >>> ds = FSDD("/path/to/fsdd/recordings", split="test")   # doctest: +SKIP
    >>> x, digit = ds[0]; tuple(x.shape)                         # doctest: +SKIP
    (98, 40)

References:
    Z. Jackson et al., Free Spoken Digit Dataset, https://github.com/Jakobovski/free-spoken-digit-dataset
    (CC BY-SA 4.0).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Union

import numpy as np

from ._base import ArrayDataset, check_split
from ._download import download_and_extract
from .cache import cache_root, cached_arrays, files_fingerprint
from .speech import SpeechFeatures, compute_features, load_clips
from .speech_augment import synthetic_noise_bank

__all__ = ["FSDD_URL", "FSDDFile", "fsdd_files", "FSDD"]

logger = logging.getLogger(__name__)

FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz"
_NAME = re.compile(r"^(\d)_([A-Za-z0-9]+)_(\d+)\.wav$")
_VERSION = 1


class FSDDFile(NamedTuple):
    """One recording: its path, digit, speaker and per-speaker index."""

    path: Path
    digit: int
    speaker: str
    index: int


def _recordings_dir(root: Path) -> Path:
    for candidate in (root / "recordings", root / "free-spoken-digit-dataset-1.0.10" / "recordings"):
        if candidate.is_dir():
            return candidate
    return root


def fsdd_files(root: Union[str, os.PathLike], split: str, test_indices: int = 5) -> List[FSDDFile]:
    """The recordings of ``split`` (``"train"``: index >= ``test_indices``; ``"test"``: below), sorted.

    Args:
        root: the ``recordings`` folder, or a folder containing it.
        split: ``"train"`` or ``"test"``.
        test_indices: recordings ``0 .. test_indices - 1`` of each speaker and digit are test.

    Raises:
        ValueError: for an unknown split, a missing folder or one without FSDD recordings.
    """
    split = check_split(split, ("train", "test"))
    folder = _recordings_dir(Path(root))
    if not folder.is_dir():
        raise ValueError(f"FSDD recordings folder not found: {folder}")
    files, ignored = [], []
    for p in sorted(folder.iterdir()):
        m = _NAME.match(p.name)
        if not m:
            if p.suffix.lower() == ".wav":
                ignored.append(p.name)
            continue
        f = FSDDFile(p, int(m.group(1)), m.group(2), int(m.group(3)))
        if (f.index < test_indices) == (split == "test"):
            files.append(f)
    if ignored:
        logger.warning("ignoring %d WAV files not named digit_speaker_index.wav in %s (e.g. %s)",
                       len(ignored), folder, ignored[0])
    if not files:
        raise ValueError(f"no FSDD recordings (digit_speaker_index.wav) for split {split!r} in {folder}")
    return files


class FSDD(ArrayDataset):
    """Free Spoken Digit Dataset as time-first MFCCs ``[98, 40]`` with the digit as label.

    Args:
        root: the ``recordings`` folder or a folder containing it; default
            ``<cache_dir>/free-spoken-digit-dataset-1.0.10``.
        split: ``"train"`` (indices 5-49) or ``"test"`` (indices 0-4).
        transform: applied to each ``x``.
        download: fetch the v1.0.10 archive from GitHub if the folder is missing.
        features: the front end; default :class:`SpeechFeatures` with ``align="center"``.
        cache_dir, use_cache: see :mod:`spikerobust.datasets.cache`.

    Attributes:
        files: the :class:`FSDDFile` of each sample; speakers: speaker of each sample.

    Shape:
        each sample ``x``: ``[features.n_frames, features.n_features]`` (``[98, 40]``).
    """

    SPLITS = ("train", "test")

    def __init__(
        self,
        root: Optional[Union[str, os.PathLike]] = None,
        split: str = "train",
        transform: Optional[Callable] = None,
        download: bool = False,
        *,
        features: Optional[SpeechFeatures] = None,
        cache_dir: Optional[Union[str, os.PathLike]] = None,
        use_cache: bool = True,
    ) -> None:
        super().__init__(transform)
        self.split = check_split(split, self.SPLITS)
        self.features = features if features is not None else SpeechFeatures(align="center")
        base = cache_root(cache_dir)
        self.root = Path(root) if root is not None else base / "free-spoken-digit-dataset-1.0.10"
        if download and not any(_recordings_dir(self.root).glob("*.wav")):
            # the archive unpacks to free-spoken-digit-dataset-1.0.10/recordings
            download_and_extract(FSDD_URL, self.root.parent if root is None else self.root)
        self.files = fsdd_files(self.root, self.split)
        self.classes = tuple(str(d) for d in range(10))
        settings: Dict = dict(version=_VERSION, split=self.split, features=self.features.to_dict(),
                              files=files_fingerprint(f.path for f in self.files))
        arrays, self.cache_path = cached_arrays("fsdd", settings, lambda: {
            "x": compute_features([f.path for f in self.files], self.features, desc=f"FSDD {self.split}"),
            "y": np.asarray([f.digit for f in self.files], dtype=np.int64)}, cache_dir, use_cache)
        self.data, self.targets = arrays["x"], arrays["y"]
        self.speakers = np.asarray([f.speaker for f in self.files])

    def waveforms(self) -> np.ndarray:
        """The clips before the front end, ``[N, features.n_samples]`` float32 (loaded now, not cached)."""
        return load_clips([f.path for f in self.files], self.features)

    def noise_clips(self, seed: int = 0) -> List[np.ndarray]:
        """Background noise for augmentation. FSDD has no noise recordings, so this is synthetic
        white and pink noise (:func:`~spikerobust.datasets.speech_augment.synthetic_noise_bank`)."""
        return synthetic_noise_bank(self.features.sample_rate, seed=seed)
