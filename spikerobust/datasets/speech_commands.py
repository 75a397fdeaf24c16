"""Google Speech Commands v0.02 keyword spotting (docs/tasks.md): 6 words + silence + unknown.

Layout (the standard archive): ``<root>/<word>/<speaker>_nohash_<n>.wav``, background noise in
``<root>/_background_noise_/*.wav``, and the official ``validation_list.txt`` /
``testing_list.txt``.

Split assignment (:func:`which_set`, the rule of the dataset's README): strip ``_nohash_`` and
what follows from the file name, take the SHA-1 of the rest (the speaker id), read it as an
integer modulo ``2**27 - 1 + 1`` and scale to a percentage in [0, 100]; below 10 is validation, below
20 testing, the rest training. All recordings of a speaker land in the same split. The official
lists were made by this rule; ``split_source="auto"`` uses the list files when they exist and the
hash otherwise.

Classes (label order): ``silence``, ``unknown``, then the words ``yes no up down left right``.
``unknown`` takes a seeded sample of the other words' recordings (``unknown_fraction`` x the number
of target-word recordings of the split); ``silence`` clips (``silence_fraction`` x the same) are
1 s crops of the background-noise files at a random volume in [0, 1] (zeros if there are none).
Clips are padded at the end / cropped to 1 s.

Augmentation (``augment=True``, the default for ``split="train"``; the reference's settings, see
:mod:`~spikerobust.datasets.speech_augment`): each time a word or unknown sample is read it is
shifted in time by up to ``time_shift_ms`` either way, and with probability ``noise_prob`` a
random 1 s crop of a random background file, scaled by a volume uniform in ``[0, noise_volume]``,
is added before the features are computed (so augmented samples are computed on the fly; the
clean features are cached). Silence clips of the training split are redrawn on every read. The
experiment pipeline augments whole batches instead, from :meth:`SpeechCommands.waveforms` and
:meth:`SpeechCommands.noise_clips`.

Examples:
    >>> which_set("yes/0a7c2a8d_nohash_0.wav") == which_set("no/0a7c2a8d_nohash_3.wav")
    True
    >>> ds = SpeechCommands("/data/speech_commands_v0.02", split="test")   # doctest: +SKIP
    >>> x, y = ds[0]; tuple(x.shape), ds.classes[y]                      # doctest: +SKIP
    ((98, 40), 'yes')

References:
    P. Warden (2018), Speech Commands: A Dataset for Limited-Vocabulary Speech Recognition.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Union

import numpy as np
import torch
from tqdm import tqdm

from ._base import ArrayDataset, check_split
from ._download import download_and_extract
from .cache import cache_root, cached_arrays, files_fingerprint
from .speech import SpeechFeatures, load_clips, load_wav, pad_or_crop
from .speech_augment import synthetic_noise_bank, time_shift

__all__ = [
    "SPEECH_COMMANDS_URL",
    "SC_WORDS",
    "MAX_NUM_WAVS_PER_CLASS",
    "which_set",
    "SpeechCommands",
]

logger = logging.getLogger(__name__)

SPEECH_COMMANDS_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
SC_WORDS = ("yes", "no", "up", "down", "left", "right")
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1
BACKGROUND = "_background_noise_"
_VERSION = 1
_SPLIT_NAMES = {"training": "train", "validation": "val", "testing": "test"}


def which_set(filename: str, validation_percentage: float = 10.0, testing_percentage: float = 10.0) -> str:
    """``"training"``, ``"validation"`` or ``"testing"`` for a file, by the hash of its speaker id.

    Args:
        filename: a path or name like ``yes/0a7c2a8d_nohash_0.wav`` (only the base name is used).
        validation_percentage: share of speakers' hash space that is validation.
        testing_percentage: share that is testing (after validation).

    Returns:
        The split name used by the Speech Commands README and list files.
    """
    base = os.path.basename(filename)
    speaker = re.sub(r"_nohash_.*$", "", base)
    digest = int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16)
    percentage = (digest % (MAX_NUM_WAVS_PER_CLASS + 1)) * (100.0 / MAX_NUM_WAVS_PER_CLASS)
    if percentage < validation_percentage:
        return "validation"
    if percentage < validation_percentage + testing_percentage:
        return "testing"
    return "training"


class SpeechCommands(ArrayDataset):
    """Speech Commands v0.02 (6 words + silence + unknown) as ``[98, 40]`` MFCCs.

    Args:
        root: the extracted archive folder; default ``<cache_dir>/speech_commands_v0.02``.
        split: ``"train"``, ``"val"`` (or ``"validation"``) or ``"test"``.
        transform: applied to each feature tensor.
        download: fetch and extract the official archive (2.3 GB) if ``root`` has no word folders.
        words: target words (labels 2, 3, ...).
        silence_fraction, unknown_fraction: sizes of the silence and unknown classes relative to
            the number of target-word recordings in the split.
        split_source: ``"auto"``, ``"lists"`` (official list files) or ``"hash"`` (:func:`which_set`).
        augment: background-noise augmentation on the fly; default ``split == "train"``.
        noise_prob, noise_volume: augmentation probability and maximum volume.
        time_shift_ms: largest random time shift of the augmentation (reference 100 ms).
        features: the front end (default :class:`SpeechFeatures`).
        seed: seed of the unknown/silence sampling and of the augmentation stream.
        cache_dir, use_cache: see :mod:`spikerobust.datasets.cache`.

    Attributes:
        paths: the WAV of each sample (``""`` for silence).

    Shape:
        each sample ``x``: ``[98, 40]``.
    """

    SPLITS = ("train", "val", "test")

    def __init__(
        self,
        root: Optional[Union[str, os.PathLike]] = None,
        split: str = "train",
        transform: Optional[Callable] = None,
        download: bool = False,
        *,
        words: Sequence[str] = SC_WORDS,
        silence_fraction: float = 0.1,
        unknown_fraction: float = 0.1,
        split_source: str = "auto",
        augment: Optional[bool] = None,
        noise_prob: float = 0.8,
        noise_volume: float = 0.1,
        time_shift_ms: float = 100.0,
        features: Optional[SpeechFeatures] = None,
        seed: int = 0,
        cache_dir: Optional[Union[str, os.PathLike]] = None,
        use_cache: bool = True,
    ) -> None:
        super().__init__(transform)
        self.split = check_split(split, self.SPLITS)
        if split_source not in ("auto", "lists", "hash"):
            raise ValueError(f"split_source must be 'auto', 'lists' or 'hash', got {split_source!r}")
        if not (0 <= silence_fraction and 0 <= unknown_fraction and 0 <= noise_prob <= 1 and noise_volume >= 0):
            raise ValueError("silence_fraction, unknown_fraction, noise_volume must be >= 0 and noise_prob in [0, 1]")
        self.features = features if features is not None else SpeechFeatures()
        self.root = Path(root) if root is not None else cache_root(cache_dir) / "speech_commands_v0.02"
        if download and not any(p.is_dir() and p.name in words for p in self.root.glob("*")):
            download_and_extract(SPEECH_COMMANDS_URL, self.root)
        if not self.root.is_dir():
            raise ValueError(f"Speech Commands folder not found: {self.root} (pass download=True?)")
        self.words = tuple(words)
        self.classes = ("silence", "unknown") + self.words
        self.augment = (self.split == "train") if augment is None else bool(augment)
        self.noise_prob, self.noise_volume = float(noise_prob), float(noise_volume)
        if time_shift_ms < 0:
            raise ValueError(f"time_shift_ms must be >= 0, got {time_shift_ms}")
        self.max_shift = int(round(time_shift_ms * self.features.sample_rate / 1000.0))
        self._seed = seed
        self._rng = np.random.default_rng(seed + 7919)
        self._rng_worker: Optional[int] = None

        all_files = self._all_files()
        assigned = self._assign(all_files, split_source)
        rng = np.random.default_rng(seed)
        word_files = [(f, self.classes.index(f.split("/")[0])) for f in assigned if f.split("/")[0] in self.words]
        if not word_files:
            raise ValueError(f"no recordings of {list(self.words)} in split {self.split!r} under {self.root}")
        others = [f for f in assigned if f.split("/")[0] not in self.words]
        n_unknown = min(len(others), int(round(unknown_fraction * len(word_files))))
        unknown = [others[i] for i in np.sort(rng.choice(len(others), size=n_unknown, replace=False))] if n_unknown else []
        n_silence = int(round(silence_fraction * len(word_files)))
        self.paths = [f for f, _ in word_files] + unknown + [""] * n_silence
        self.targets = np.asarray([c for _, c in word_files] + [1] * n_unknown + [0] * n_silence, dtype=np.int64)
        self.noise_files = sorted((self.root / BACKGROUND).glob("*.wav"))
        self._noise: Optional[List[np.ndarray]] = None

        settings = dict(version=_VERSION, paths=self.paths, features=self.features.to_dict(), seed=seed,
                        fingerprint=files_fingerprint([self.root / p for p in self.paths if p] + self.noise_files))
        arrays, self.cache_path = cached_arrays(
            "speech_commands", settings, lambda: {"x": self._compute_clean(np.random.default_rng(seed + 1))},
            cache_dir, use_cache)
        self.data = arrays["x"]

    def _all_files(self) -> List[str]:
        files = []
        for d in sorted(p for p in self.root.iterdir() if p.is_dir() and p.name != BACKGROUND):
            files += [f"{d.name}/{w.name}" for w in sorted(d.glob("*.wav"))]
        if not files:
            raise ValueError(f"no <word>/<file>.wav recordings under {self.root}")
        return files

    def _assign(self, files: List[str], split_source: str) -> List[str]:
        lists = {s: self.root / f"{s}_list.txt" for s in ("validation", "testing")}
        use_lists = split_source == "lists" or (split_source == "auto" and all(p.is_file() for p in lists.values()))
        if use_lists:
            for p in lists.values():
                if not p.is_file():
                    raise ValueError(f"split list not found: {p} (use split_source='hash')")
            listed = {s: set(p.read_text().split()) for s, p in lists.items()}
            which = {f: ("validation" if f in listed["validation"] else "testing" if f in listed["testing"]
                         else "training") for f in files}
        else:
            which = {f: which_set(f) for f in files}
        return [f for f in files if _SPLIT_NAMES[which[f]] == self.split]

    def _noise_clips(self) -> List[np.ndarray]:
        if self._noise is None:
            n = self.features.n_samples
            self._noise = [c for c in (load_wav(p, self.features.sample_rate) for p in self.noise_files) if len(c) >= n]
            if self.noise_files and not self._noise:
                logger.warning("no background-noise file in %s is at least 1 s long", self.root / BACKGROUND)
        return self._noise

    def _noise_crop(self, rng: np.random.Generator) -> np.ndarray:
        clips, n = self._noise_clips(), self.features.n_samples
        if not clips:
            return np.zeros(n, dtype=np.float32)
        clip = clips[rng.integers(len(clips))]
        off = rng.integers(len(clip) - n + 1)
        return clip[off : off + n]

    def _waveform(self, i: int, rng: np.random.Generator, augment: bool) -> np.ndarray:
        n = self.features.n_samples
        if self.paths[i] == "":
            return (rng.uniform(0, 1) * self._noise_crop(rng)).astype(np.float32)
        y = pad_or_crop(load_wav(self.root / self.paths[i], self.features.sample_rate), n, self.features.align)
        if augment and self.max_shift:
            shift = torch.tensor([int(rng.integers(-self.max_shift, self.max_shift + 1))])
            y = time_shift(torch.from_numpy(y)[None], shift)[0].numpy()
        if augment and rng.random() < self.noise_prob:
            y = y + rng.uniform(0, self.noise_volume) * self._noise_crop(rng)
        return y.astype(np.float32)

    def waveforms(self) -> np.ndarray:
        """The clips before the front end, ``[N, n_samples]`` float32; silence clips are zeros (the
        augmentation fills them with background noise). Loaded now, not cached."""
        out = np.zeros((len(self.paths), self.features.n_samples), dtype=np.float32)
        words = [i for i, p in enumerate(self.paths) if p]
        out[words] = load_clips([self.root / self.paths[i] for i in words], self.features)
        return out

    def noise_clips(self, seed: int = 0) -> List[np.ndarray]:
        """The ``_background_noise_`` recordings at least 1 s long; synthetic white and pink noise
        (:func:`~spikerobust.datasets.speech_augment.synthetic_noise_bank`, logged) when there are none."""
        clips = self._noise_clips()
        if clips:
            return list(clips)
        logger.warning("no background-noise recordings under %s: augmenting with synthetic white/pink noise",
                       self.root / BACKGROUND)
        return synthetic_noise_bank(self.features.sample_rate, seed=seed)

    def _compute_clean(self, rng: np.random.Generator) -> np.ndarray:
        if not self.noise_files and (self.targets == 0).any():
            logger.warning("no %s folder in %s: silence clips are zeros", BACKGROUND, self.root)
        out = np.zeros((len(self.paths), self.features.n_frames, self.features.n_features), dtype=np.float32)
        for i in tqdm(range(len(self.paths)), desc=f"Speech Commands {self.split}", unit="clip", leave=False):
            out[i] = self.features(self._waveform(i, rng, augment=False))
        return out

    def __getitem__(self, index: int):
        if not self.augment:
            return super().__getitem__(index)
        info = torch.utils.data.get_worker_info()
        if info is not None and self._rng_worker != info.id:  # one augmentation stream per DataLoader worker
            self._rng = np.random.default_rng([self._seed + 7919, info.seed % 2**32])
            self._rng_worker = info.id
        x = torch.from_numpy(self.features(self._waveform(index, self._rng, augment=True)))
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.targets[index])
