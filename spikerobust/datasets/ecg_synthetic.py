"""A **synthetic** ECG beat set that needs no files: N/L/R/V-like beats for demos and offline runs.

Nothing here is a real recording. Two-lead strips are drawn at 360 Hz as sums of Gaussian waves
(P, Q, R, S, T; a McSharry-style construction), with the morphology of each class built in:

- ``N`` normal: P wave, narrow QRS (about 80 ms), upright T;
- ``L`` LBBB-like: P wave, broad notched R (two humps, about 150 ms), discordant (inverted) T;
- ``R`` RBBB-like: P wave, rSR' (small r, S, tall late R'), about 130 ms;
- ``V`` PVC-like: **no P wave**, wide bizarre QRS (about 170 ms), large opposite T, premature.

Strips have heart-rate variability (a per-strip rate of 55-100 bpm, respiratory modulation and
jitter), per-beat amplitude/width jitter, white noise and baseline wander. They are annotated and
pass through the *same* :func:`~spikerobust.datasets.ecg.extract_beats` as MIT-BIH, so samples
are ``[100, 2]`` float32, z-scored per lead and centred on the main peak of lead 0.

The generated beats are cached like the real datasets (keyed by every setting), so the three
splits of one configuration are generated once.

Examples:
    >>> ds = SyntheticECG(split="train", beats_per_class=50, seed=0)
    >>> x, y = ds[0]
    >>> tuple(x.shape), ds.classes
    ((100, 2), ('N', 'L', 'R', 'V'))
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ._base import ArrayDataset, check_split, stratified_split_indices
from .cache import cached_arrays
from .ecg import extract_beats

__all__ = ["SYNTHETIC_MORPHOLOGY", "synthetic_ecg_strip", "SyntheticECG"]

_VERSION = 1

# (centre [s from the R peak], amplitude lead 0 [mV], amplitude lead 1 [mV], width sigma [s])
Wave = Tuple[float, float, float, float]
SYNTHETIC_MORPHOLOGY: Dict[str, List[Wave]] = {
    "N": [(-0.20, 0.15, 0.10, 0.025), (-0.025, -0.10, 0.05, 0.008), (0.0, 1.00, 0.30, 0.010),
          (0.025, -0.25, -0.80, 0.009), (0.26, 0.30, 0.20, 0.045)],
    "L": [(-0.20, 0.12, 0.08, 0.025), (-0.025, 0.75, -0.50, 0.018), (0.030, 0.85, -0.70, 0.018),
          (0.30, -0.30, 0.30, 0.055)],
    "R": [(-0.20, 0.15, 0.10, 0.025), (-0.025, 0.35, 0.30, 0.008), (0.005, -0.35, -0.50, 0.010),
          (0.045, 0.60, 0.90, 0.014), (0.30, 0.20, -0.20, 0.050)],
    "V": [(-0.03, 0.60, -0.60, 0.030), (0.03, 1.30, -1.00, 0.035), (0.10, -0.40, 0.40, 0.030),
          (0.33, -0.55, 0.45, 0.065)],
}


def synthetic_ecg_strip(
    labels: Sequence[str],
    rng: np.random.Generator,
    *,
    fs: float = 360.0,
    heart_rate: float = 70.0,
    noise_std: float = 0.03,
    wander_amp: float = 0.15,
    jitter: float = 0.08,
) -> Tuple[np.ndarray, np.ndarray, List[str]]:
    """Draw one synthetic two-lead strip with one beat per entry of ``labels``.

    Args:
        labels: beat classes (keys of :data:`SYNTHETIC_MORPHOLOGY`), in order.
        rng: random generator (all randomness comes from it).
        fs: sampling rate in Hz.
        heart_rate: mean rate in beats per minute (RR = 60 / rate, with variability).
        noise_std: white-noise standard deviation in mV.
        wander_amp: baseline-wander amplitude in mV (sum of two slow sinusoids, 0.1-0.5 Hz).
        jitter: relative per-beat jitter of amplitudes and widths.

    Returns:
        ``(signal [L, 2], r_peak_samples [n], symbols)``; V beats come early (premature, RR x 0.7).

    Shape:
        ``signal``: ``[L, 2]`` in mV at ``fs``.
    """
    unknown = set(labels) - set(SYNTHETIC_MORPHOLOGY)
    if unknown:
        raise ValueError(f"unknown synthetic beat labels {sorted(unknown)}; expected {sorted(SYNTHETIC_MORPHOLOGY)}")
    rr0 = 60.0 / heart_rate
    resp_f = rng.uniform(0.15, 0.35)
    t_peak, peaks = 0.8, []
    for i, lab in enumerate(labels):
        rr = rr0 * (1 + 0.05 * np.sin(2 * np.pi * resp_f * t_peak) + 0.03 * rng.standard_normal())
        if lab == "V":
            rr *= 0.7  # premature ventricular beat
        if i > 0:
            t_peak += rr
        peaks.append(t_peak)
        if lab == "V":
            t_peak += 0.35 * rr0  # compensatory pause
    duration = t_peak + 1.0
    t = np.arange(int(duration * fs)) / fs
    sig = np.zeros((len(t), 2))
    for tp, lab in zip(peaks, labels):
        for centre, a0, a1, width in SYNTHETIC_MORPHOLOGY[lab]:
            w = width * (1 + jitter * rng.standard_normal())
            g = 1 + jitter * rng.standard_normal()
            c = tp + centre + 0.004 * rng.standard_normal()
            lo, hi = np.searchsorted(t, [c - 5 * abs(w), c + 5 * abs(w)])
            bump = np.exp(-0.5 * ((t[lo:hi] - c) / w) ** 2)
            sig[lo:hi, 0] += g * a0 * bump
            sig[lo:hi, 1] += g * a1 * bump
    for lead in range(2):
        for _ in range(2):
            f = rng.uniform(0.1, 0.5)
            sig[:, lead] += wander_amp / 2 * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    sig += noise_std * rng.standard_normal(sig.shape)
    r_samples = np.round(np.asarray(peaks) * fs).astype(np.int64)
    return sig, r_samples, list(labels)


class SyntheticECG(ArrayDataset):
    """Synthetic (generated, not recorded) N/L/R/V beats in the MIT-BIH format ``[100, 2]``.

    N, L and R strips have one dominant morphology with occasional (10 %) V ectopics; V strips
    are bigeminy (N, V, N, V, ...). Beats are extracted like MIT-BIH, balanced to
    ``beats_per_class`` and split 80/10/10 (stratified, seeded).

    Args:
        root: unused (nothing is read); kept for the common dataset signature.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        transform: applied to each ``x``.
        download: unused.
        beats_per_class: beats per class before splitting.
        beats_per_strip: beats per generated strip.
        fractions: train/val/test fractions.
        seed: seed of everything.
        noise_std, wander_amp: noise levels in mV (see :func:`synthetic_ecg_strip`).
        window, downsample, crop_source: as for :class:`~spikerobust.datasets.ecg.MITBIH`.
        cache_dir, use_cache: see :mod:`spikerobust.datasets.cache`.

    Shape:
        each sample ``x``: ``[window, 2]``.
    """

    SPLITS = ("train", "val", "test", "all")

    def __init__(
        self,
        root=None,
        split: str = "train",
        transform: Optional[Callable] = None,
        download: bool = False,
        *,
        beats_per_class: int = 500,
        beats_per_strip: int = 20,
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        seed: int = 0,
        noise_std: float = 0.03,
        wander_amp: float = 0.15,
        window: int = 100,
        downsample: int = 2,
        crop_source: str = "record",
        cache_dir=None,
        use_cache: bool = True,
    ) -> None:
        super().__init__(transform)
        self.split = check_split(split, self.SPLITS)
        if beats_per_class < 1 or beats_per_strip < 4:
            raise ValueError(f"beats_per_class must be >= 1 and beats_per_strip >= 4, got "
                             f"{beats_per_class}, {beats_per_strip}")
        self.classes = ("N", "L", "R", "V")
        settings = dict(version=_VERSION, beats_per_class=beats_per_class, beats_per_strip=beats_per_strip,
                        seed=seed, noise_std=noise_std, wander_amp=wander_amp, window=window,
                        downsample=downsample, crop_source=crop_source)
        arrays, self.cache_path = cached_arrays(
            "synthetic_ecg", settings, lambda: self._generate(beats_per_class, beats_per_strip, seed, noise_std,
                                                              wander_amp, window, downsample, crop_source),
            cache_dir, use_cache)
        x_all, y_all = arrays["x"], arrays["y"]
        if self.split == "all":
            idx = np.arange(len(y_all))
        else:
            parts = dict(zip(("train", "val", "test"), stratified_split_indices(y_all, fractions, seed)))
            idx = parts[self.split]
        idx = idx[np.random.default_rng(seed + 1).permutation(len(idx))]
        self.data, self.targets = x_all[idx], y_all[idx]

    def _generate(self, beats_per_class, beats_per_strip, seed, noise_std, wander_amp, window, downsample,
                  crop_source):
        rng = np.random.default_rng(seed)
        xs, ys = [], []
        counts = np.zeros(4, dtype=np.int64)
        strip_kind = 0
        while counts.min() < beats_per_class:
            kind = self.classes[strip_kind % 4]
            strip_kind += 1
            if counts[self.classes.index(kind)] >= beats_per_class:
                continue
            if kind == "V":
                labels = ["N" if i % 2 == 0 else "V" for i in range(beats_per_strip)]
            else:
                labels = [("V" if rng.random() < 0.1 and 0 < i < beats_per_strip - 1 else kind)
                          for i in range(beats_per_strip)]
            sig, peaks, syms = synthetic_ecg_strip(labels, rng, heart_rate=rng.uniform(55, 100),
                                                   noise_std=noise_std, wander_amp=wander_amp)
            x, y, _ = extract_beats(sig, peaks, syms, self.classes, downsample=downsample,
                                    window=window, crop_source=crop_source)
            xs.append(x)
            ys.append(y)
            counts += np.bincount(y, minlength=4)
        x_all, y_all = np.concatenate(xs), np.concatenate(ys)
        keep = np.sort(np.concatenate([
            rng.choice(np.flatnonzero(y_all == c), size=beats_per_class, replace=False) for c in range(4)
        ]))
        return {"x": x_all[keep], "y": y_all[keep]}

    def __repr__(self) -> str:
        return "Synthetic" + super().__repr__()[len("Synthetic"):] + "  # synthetic beats, not recordings"
