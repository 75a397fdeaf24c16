"""The paper's three tasks as in-memory train/validation/test tensors, with their model.

===========  ==================================================  ==========================
task         data (``data_dir``)                                 model
===========  ==================================================  ==========================
``ecg``      MIT-BIH records (``NNN.hea``) → beats N/L/R/V;       ``lsnn_ecg`` (d_in 2)
             none → synthetic beats generated in code
``speech``   Speech Commands v0.02 (word folders) or FSDD         ``lsnn_speech`` (d_in 40)
             (``recordings``); none → espeak-ng keywords
``fmnist``   Fashion-MNIST IDX files (default: the Debian         ``cnn_fmnist``
             package's ``/usr/share/datasets/fashion-mnist``)
===========  ==================================================  ==========================

The tasks are registered loaders ``cfg -> TaskData`` (:func:`register_task`, :func:`list_tasks`);
:func:`load_task` calls the one named by ``cfg.task``. A loader builds its splits sample-first
``[N, ...]`` and states the layout once: LSNN inputs are time-first ``[T, N, F]``
(``TaskData.time_first``, made with :func:`~spikerobust.datasets.to_time_first`), images
``[N, C, H, W]``; :meth:`TaskData.batches` and :meth:`TaskData.loader` batch either layout with
:mod:`spikerobust.datasets`' helpers.
Images are standardised per channel with training statistics. Speech features are the raw MFCCs,
as in the paper (``standardize=True`` standardises each one with training statistics), and the
speech training clips are augmented afresh for every batch (``augment=True``, the default: a random
time shift of up to ±100 ms and background noise at the reference's levels, see
:mod:`spikerobust.datasets.speech_augment`; Speech Commands' own noise recordings, synthetic white
and pink noise for FSDD and the synthetic keywords); ``train`` then holds the clean training
features, and only :meth:`TaskData.loader` augments.

Examples:
    >>> from spikerobust.experiments import make_config, load_task
    >>> data = load_task(make_config("ecg", "quick", overrides={"n_per_class": 10}))
    >>> data.sizes, data.train[0].shape[0], data.time_first
    ({'train': 32, 'val': 4, 'test': 4}, 100, True)
    >>> list_tasks()
    ['ecg', 'fmnist', 'speech']

    A task of one's own (its config still needs a preset of that name, :mod:`.presets`)::

        @register_task("mytask")
        def load_mytask(cfg):
            return TaskData(train, val, test, time_first=False, classes=[...], description="...",
                            model="cnn_fmnist", model_kwargs={})
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np
import torch

from ..datasets.collate import ShuffledBatches, ordered_batches, take_samples, to_time_first
from ..datasets.transforms import BatchStandardize
from .config import ExperimentConfig

__all__ = ["TaskData", "load_task", "register_task", "list_tasks", "ShuffledBatches"]

Pair = Tuple[torch.Tensor, torch.Tensor]


@dataclass
class TaskData:
    """A task's splits and what the pipeline needs to know about them.

    Attributes:
        train, val, test: ``(x, y)`` tensors (float32 inputs, int64 labels).
        time_first: ``x`` is ``[T, N, F]`` (LSNN) rather than ``[N, ...]``.
        classes: class names. description: where the data came from, for the report.
        model: registered model name. model_kwargs: its constructor arguments.
        composition: ECG only: which beats the data holds (see :func:`_ecg_composition`), else ``None``.
        train_loader_factory: ``(batch_size, seed) -> loader`` that :meth:`loader` returns instead
            of shuffled ``train`` batches (speech augmentation), or ``None``.
    """

    train: Pair
    val: Pair
    test: Pair
    time_first: bool
    classes: List[str]
    description: str
    model: str
    model_kwargs: dict
    train_loader_factory: Optional[Callable[[int, int], Iterable[Pair]]] = None
    composition: Optional[dict] = None

    @property
    def sizes(self) -> Dict[str, int]:
        return {name: int(getattr(self, name)[1].shape[0]) for name in ("train", "val", "test")}

    def batches(self, split: str, batch_size: int = 500) -> List[Pair]:
        """The split as a list of ``(x, y)`` batches in order (for evaluation)."""
        return ordered_batches(*getattr(self, split), batch_size, time_first=self.time_first)

    def loader(self, batch_size: int, seed: int) -> Iterable[Pair]:
        """Re-iterable shuffled training batches (a new order every epoch, seeded; augmented when the
        task has a ``train_loader_factory``)."""
        if self.train_loader_factory is not None:
            return self.train_loader_factory(batch_size, seed)
        return ShuffledBatches(*self.train, batch_size=batch_size, seed=seed, time_first=self.time_first)

    def head(self, split: str, n: int) -> Pair:
        """The first ``n`` samples of a split."""
        x, y = getattr(self, split)
        return take_samples(x, y, torch.arange(min(n, y.shape[0])), time_first=self.time_first)


# --------------------------------------------------------------------------- the registry

TaskLoader = Callable[[ExperimentConfig], TaskData]
_TASKS: Dict[str, TaskLoader] = {}


def register_task(name: str, loader: Optional[TaskLoader] = None, *, presets: Optional[Mapping[str, Mapping]] = None,
                  beta: Optional[Tuple[float, float]] = None, overwrite: bool = False):
    """Register ``loader`` (``cfg -> TaskData``) as task ``name``; without ``loader``, a decorator.

    A task without presets also gets them (:func:`~spikerobust.experiments.presets.register_presets`:
    ``presets`` and ``beta``, or the defaults), so that ``make_config(name, ...)`` works.

    Raises:
        ValueError: ``name`` is registered already (pass ``overwrite=True`` to replace it).
    """
    from .presets import PRESETS, register_presets

    def add(fn: TaskLoader) -> TaskLoader:
        if name in _TASKS and not overwrite:
            raise ValueError(f"task {name!r} is registered already; pass overwrite=True to replace it")
        if presets is not None or beta is not None or name not in PRESETS:
            kw = {} if beta is None else {"beta": beta}
            register_presets(name, presets, overwrite=True, **kw)
        _TASKS[name] = fn
        return fn

    return add if loader is None else add(loader)


def list_tasks() -> List[str]:
    """The registered task names, sorted."""
    return sorted(_TASKS)


def load_task(cfg: ExperimentConfig) -> TaskData:
    """The splits of ``cfg.task`` (see the module docstring).

    Raises:
        ValueError: an unknown task or a ``data_dir`` that does not hold the task's data.
    """
    if cfg.task not in _TASKS:
        raise ValueError(f"task must be one of {list_tasks()}, got {cfg.task!r}")
    return _TASKS[cfg.task](cfg)


# --------------------------------------------------------------------------- split helpers (sample-first)


def _arrays(ds) -> Pair:
    x = torch.from_numpy(np.ascontiguousarray(np.asarray(ds.data, dtype=np.float32)))
    return x, torch.from_numpy(np.asarray(ds.targets, dtype=np.int64))


def _subset(pair: Pair, n: Optional[int], seed: int) -> Pair:
    """At most ``n`` samples of sample-first ``pair``, a seeded random choice kept in original order."""
    x, y = pair
    if n is None or n >= y.shape[0]:
        return pair
    idx = torch.randperm(y.shape[0], generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return take_samples(x, y, idx)


def _split_off(pair: Pair, fraction: float, seed: int) -> Tuple[Pair, Pair]:
    """A seeded random ``fraction`` of sample-first ``pair`` as validation, the rest as training."""
    n = pair[1].shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
    n_val = max(1, int(round(fraction * n)))
    val, train = perm[:n_val].sort().values, perm[n_val:].sort().values
    return take_samples(*pair, train), take_samples(*pair, val)


def _time_first_splits(splits: Dict[str, Pair], transform: Optional[BatchStandardize] = None) -> Dict[str, Pair]:
    """Sample-first ``[N, T, F]`` splits as time-first ``[T, N, F]`` (then ``transform``ed)."""
    out = {s: (to_time_first(x), y) for s, (x, y) in splits.items()}
    return out if transform is None else {s: (transform(x), y) for s, (x, y) in out.items()}


# --------------------------------------------------------------------------- the paper's tasks


@register_task("ecg")
def _load_ecg(cfg: ExperimentConfig) -> TaskData:
    from ..datasets import MITBIH, SyntheticECG

    if cfg.data_dir is None:
        kw = dict(beats_per_class=cfg.n_per_class, seed=cfg.seed)
        sets = {s: SyntheticECG(split=s, **kw) for s in ("train", "val", "test")}
        desc = f"SYNTHETIC ECG beats (generated in code, not recorded), {cfg.n_per_class} per class, 80/10/10 split"
        composition = None
    else:
        root = Path(cfg.data_dir)
        if not (root / "100.hea").exists():
            raise ValueError(f"data_dir for task 'ecg' must hold the MIT-BIH records (e.g. 100.hea); got {str(root)!r}")
        kw = dict(beats_per_class=cfg.n_per_class, seed=cfg.seed, split_mode=cfg.split,
                  composition=cfg.composition)
        sets = {s: MITBIH(root, split=s, **kw) for s in ("train", "val", "test")}
        desc = (f"MIT-BIH Arrhythmia (PhysioNet mitdb 1.0.0), beats N/L/R/V, {cfg.n_per_class} per class, "
                + _composition_text(cfg.composition, sets["train"].lead_in) + ", "
                + ("patient-wise split (no record shared between splits)" if cfg.split == "record"
                   else "random stratified 80/10/10 split"))
        composition = _ecg_composition(sets, cfg.composition)
    splits = {s: _arrays(ds) for s, ds in sets.items()}
    splits["train"] = _subset(splits["train"], cfg.n_train, cfg.seed)
    splits["test"] = _subset(splits["test"], cfg.n_test, cfg.seed)
    splits = _time_first_splits(splits)
    classes = list(sets["train"].classes)
    return TaskData(splits["train"], splits["val"], splits["test"], True, classes, desc, "lsnn_ecg",
                    {"n_hidden": cfg.n_hidden, "n_classes": len(classes)}, composition=composition)


def _ecg_composition(sets: dict, composition: str) -> dict:
    """Per class: beats, the number of records they come from, beats per split and the three
    records that give the most (before any ``n_train``/``n_test`` cap)."""
    first = sets["train"]
    per_class = {}
    for c, name in enumerate(first.classes):
        recs = np.concatenate([np.asarray(ds.records)[np.asarray(ds.targets) == c] for ds in sets.values()])
        names, counts = np.unique(recs, return_counts=True)
        order = np.argsort(-counts, kind="stable")[:3]
        per_class[str(name)] = {
            "beats": int(counts.sum()), "records": int(len(names)),
            "per_split": {s: int((np.asarray(ds.targets) == c).sum()) for s, ds in sets.items()},
            "largest": [[str(names[i]), int(counts[i])] for i in order]}
    return {"composition": composition, "lead_in": int(getattr(first, "lead_in", 0)),
            "split_records": {s: len(v) for s, v in first.split_records.items()}, "per_class": per_class}


def _composition_text(composition: str, lead_in: int) -> str:
    """One phrase for the report: how the ECG beats were chosen."""
    if composition == "paper":
        return (f"composition \"paper\" (the authors' rule: peak of lead 0 30-70 samples into a segment that "
                f"starts {lead_in} samples (360 Hz) before the beat's annotation, first beats of each class in "
                "record order; leads as stored; paced records included)")
    return "composition \"random\" (a seeded random choice per class over the non-paced records; MLII + V1-like lead)"


@register_task("speech")
def _load_speech(cfg: ExperimentConfig) -> TaskData:
    from ..datasets import FSDD, SpeechCommands, SyntheticKeywords, espeak_available

    fsdd = False
    if cfg.data_dir is None:
        ok, why = espeak_available()
        if not ok:
            raise ValueError(f"task 'speech' without data_dir uses synthetic espeak-ng keywords, and espeak-ng is not "
                             f"usable ({why}): pip install 'spikerobust[tts]' (espeakng-loader), or set data_dir to "
                             "Speech Commands v0.02 or FSDD recordings")
        sets = {s: SyntheticKeywords(split=s, seed=cfg.seed) for s in ("train", "val", "test")}
        splits = {s: _arrays(ds) for s, ds in sets.items()}
        desc = ("SYNTHETIC keywords (espeak-ng speech with noise, not recorded): 6 words + silence + unknown, "
                "voices disjoint between splits, 98×40 MFCCs")
        noise_desc = "synthetic white and pink noise"
    else:
        root = Path(cfg.data_dir)
        if (root / "yes").is_dir() or (root / "_background_noise_").is_dir():
            sets = {s: SpeechCommands(root, split=s, augment=False) for s in ("train", "val", "test")}
            splits = {s: _arrays(ds) for s, ds in sets.items()}
            desc = "Google Speech Commands v0.02: 6 words + silence + unknown, hash split, 98×40 MFCCs"
            noise_desc = ("the _background_noise_ recordings" if sets["train"].noise_files
                          else "synthetic white and pink noise (no _background_noise_ recordings found)")
        elif (root / "recordings").is_dir() or any(root.glob("[0-9]_*_*.wav")):
            sets = {s: FSDD(root, split=s) for s in ("train", "test")}
            train, val = _split_off(_arrays(sets["train"]), 0.1, cfg.seed)
            splits = {"train": train, "val": val, "test": _arrays(sets["test"])}
            desc = ("Free Spoken Digit Dataset: digits 0-9, the authors' split (recordings 0-4 of each speaker "
                    "and digit are test), 10 % of training as validation, 98×40 MFCCs")
            noise_desc = "synthetic white and pink noise (FSDD has no noise recordings)"
            fsdd = True
        else:
            raise ValueError(f"data_dir for task 'speech' must be a Speech Commands folder (word folders such as "
                             f"'yes') or FSDD ('recordings' or N_speaker_i.wav files); got {str(root)!r}")
    # statistics of the whole time-first training split (before any n_train cap)
    standardise = BatchStandardize.fit(to_time_first(splits["train"][0]), axis=-1, min_std=1e-6) \
        if cfg.standardize else None
    if standardise is not None:
        desc += ", standardised per feature with training statistics (not the paper's)"
    factory = None
    if cfg.augment:
        factory = _speech_augmentation(cfg, sets["train"], splits["train"][1], standardise, fsdd=fsdd)
        desc += (f"; training clips augmented afresh every batch ({factory.augment.describe()}; noise: {noise_desc})"
                 "; validation and test clean")
    else:
        desc += "; no augmentation"
    splits["train"] = _subset(splits["train"], cfg.n_train, cfg.seed)
    splits["test"] = _subset(splits["test"], cfg.n_test, cfg.seed)
    splits = _time_first_splits(splits, standardise)
    classes = list(sets["train"].classes)
    return TaskData(splits["train"], splits["val"], splits["test"], True, classes, desc,
                    "lsnn_speech", {"n_hidden": cfg.n_hidden, "n_classes": len(classes), "d_in": 40},
                    train_loader_factory=factory)


class _SpeechLoaderFactory:
    """``(batch_size, seed) -> AugmentedSpeechBatches`` over the training clips (see :func:`_load_speech`)."""

    def __init__(self, waveforms, labels, augment, front_end, silence_label, standardise) -> None:
        self.waveforms, self.labels, self.augment = waveforms, labels, augment
        self.front_end, self.silence_label, self.standardise = front_end, silence_label, standardise

    def __call__(self, batch_size: int, seed: int):
        from ..datasets import AugmentedSpeechBatches

        return AugmentedSpeechBatches(self.waveforms, self.labels, augment=self.augment, front_end=self.front_end,
                                      batch_size=batch_size, seed=seed, silence_label=self.silence_label,
                                      feature_transform=self.standardise, time_first=True)


def _speech_augmentation(cfg: ExperimentConfig, train_set, train_labels: torch.Tensor,
                         standardise: Optional[BatchStandardize], *, fsdd: bool) -> _SpeechLoaderFactory:
    """The augmenting loader factory for the training clips, aligned with the training features."""
    from ..datasets import SpeechAugment, SpeechCommands, TorchSpeechFeatures

    pair = (torch.from_numpy(train_set.waveforms()), torch.from_numpy(np.asarray(train_set.targets, dtype=np.int64)))
    if fsdd:  # the same seeded draw as the features' validation split
        pair, _ = _split_off(pair, 0.1, cfg.seed)
    if not torch.equal(pair[1], train_labels):
        raise RuntimeError("speech augmentation: training clips and features are not aligned")
    pair = _subset(pair, cfg.n_train, cfg.seed)
    feats = train_set.features
    augment = SpeechAugment(train_set.noise_clips(seed=cfg.seed), n_samples=feats.n_samples,
                            sample_rate=feats.sample_rate)
    silence = 0 if isinstance(train_set, SpeechCommands) else None
    # float32: 2-3x faster than float64 and within about 1e-3 of the librosa features (|x| up to ~200)
    front_end = TorchSpeechFeatures(feats, dtype=torch.float32)
    return _SpeechLoaderFactory(pair[0], pair[1], augment, front_end, silence, standardise)


@register_task("fmnist")
def _load_fmnist(cfg: ExperimentConfig) -> TaskData:
    from ..datasets import FashionMNIST

    try:
        sets = {s: FashionMNIST(cfg.data_dir, split=s) for s in ("train", "test")}
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        if isinstance(err, FileNotFoundError) or "not found" in str(err):
            raise ValueError(f"task 'fmnist' needs the Fashion-MNIST IDX files: set data_dir (--data-dir) or "
                             f"install Debian's dataset-fashion-mnist ({err})") from err
        raise ValueError(f"task 'fmnist': {err}") from err  # files found but unreadable: say what is wrong
    train, val = _split_off(_subset(_arrays(sets["train"]), cfg.n_train, cfg.seed), 0.1, cfg.seed)
    test = _subset(_arrays(sets["test"]), cfg.n_test, cfg.seed)
    norm = BatchStandardize.fit(train[0], axis=1)  # per channel, training statistics
    n = "all" if cfg.n_train is None else cfg.n_train
    desc = (f"Fashion-MNIST ({n} training images, 10 % of them for validation; "
            f"{test[1].shape[0]} test images), standardised per channel")
    train, val, test = ((norm(x), y) for x, y in (train, val, test))
    return TaskData(train, val, test, False, list(sets["train"].classes), desc, "cnn_fmnist", {})
