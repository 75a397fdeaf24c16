"""On-the-fly training augmentation of speech clips: a random time shift and background noise.

The keyword-spotting network of the paper was trained with the augmentation of the TensorFlow
``speech_commands`` example, which the authors' code (``jubueche/BPTT-Lipschitzness``) keeps with
its defaults: every training clip is shifted in time by a random amount of up to 100 ms
(``time_shift_ms``), and with probability 0.8 (``background_frequency``) a random 1 s crop of a
random background-noise recording, scaled by a volume uniform in [0, 0.1]
(``background_volume``), is added; the sum is clipped to [-1, 1]. Silence clips get a noise crop
at a volume uniform in [0, 1] and no speech. Validation and test clips are never augmented. (The
TensorFlow example redraws the augmentation for every batch, as we do; a later version of the
authors' code drew it once and saved the augmented training set as arrays.)

:class:`SpeechAugment` draws these settings for a batch with a ``torch.Generator``
(:meth:`SpeechAugment.draw`) and applies them to waveforms (:meth:`SpeechAugment.apply`), so a
seed fixes every draw. :class:`AugmentedSpeechBatches` is the training loader: each epoch a new
shuffled order, each batch freshly augmented and passed through the torch front end
(:class:`~spikerobust.datasets.speech.TorchSpeechFeatures`). The loader's one ``generator`` drives
both the order and the augmentation, so the trainer's checkpoint of it makes a resumed run draw
the same augmentation as an uninterrupted one.

Noise: Speech Commands ships recordings in ``_background_noise_``. FSDD and the synthetic espeak-ng
keywords have none, so :func:`synthetic_noise_bank` makes some: white noise and pink (1/f power)
noise, each scaled to a peak of 1 like a full-scale recording. This synthetic noise is our
substitute, not the paper's.

Time shift convention (the reference's): a shift ``s > 0`` delays the clip (``s`` zeros in front,
the last ``s`` samples dropped), ``s < 0`` advances it (the first ``|s|`` samples dropped, zeros at
the end). Shifts are drawn uniformly from the integers in ``[-S, S]`` with
``S = time_shift_ms * sample_rate / 1000`` (the reference draws from ``[-S, S)``).

Examples:
    >>> import torch
    >>> aug = SpeechAugment([torch.zeros(20000)], background_frequency=0.0, time_shift_ms=0.0)
    >>> click = torch.zeros(1, 16000); click[0, 100] = 1.0
    >>> draws = aug.draw(1, torch.Generator().manual_seed(0))
    >>> bool(torch.equal(aug.apply(click, draws), click))
    True
    >>> time_shift(click, torch.tensor([5]))[0].nonzero().item()
    105
"""

from __future__ import annotations

from typing import Callable, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = [
    "REFERENCE_AUGMENT",
    "time_shift",
    "synthetic_noise",
    "synthetic_noise_bank",
    "AugmentDraws",
    "SpeechAugment",
    "AugmentedSpeechBatches",
]

#: The reference's settings (TensorFlow speech_commands defaults, kept by the authors' code).
REFERENCE_AUGMENT = dict(background_frequency=0.8, background_volume=0.1, time_shift_ms=100.0)


def time_shift(waveforms: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Shift each clip by its number of samples, filling with zeros (see the module docstring).

    Args:
        waveforms: ``[B, L]``.
        shifts: ``[B]`` integers; positive delays, negative advances.

    Returns:
        ``[B, L]``: ``out[b, t] = waveforms[b, t - shifts[b]]`` where that index is in range, else 0.
    """
    if waveforms.dim() != 2 or shifts.shape != waveforms.shape[:1]:
        raise ValueError(f"expected waveforms [B, L] and shifts [B], got {tuple(waveforms.shape)} and "
                         f"{tuple(shifts.shape)}")
    n = waveforms.shape[1]
    out = torch.zeros_like(waveforms)
    for b, s in enumerate(shifts.tolist()):
        if s >= 0:
            out[b, s:] = waveforms[b, : max(n - s, 0)]
        else:
            out[b, : max(n + s, 0)] = waveforms[b, -s:]
    return out


def synthetic_noise(kind: str, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """White or pink noise of ``n_samples``, scaled to a peak of 1 (float32).

    Pink noise is white Gaussian noise whose spectrum is divided by ``sqrt(f)`` (power falling
    as 1/f); the constant component is removed.

    Args:
        kind: ``"white"`` or ``"pink"``.
        n_samples: length.
        rng: the random source.
    """
    white = rng.standard_normal(n_samples)
    if kind == "white":
        y = white
    elif kind == "pink":
        spec = np.fft.rfft(white)
        f = np.arange(len(spec), dtype=np.float64)
        spec[0] = 0.0
        spec[1:] /= np.sqrt(f[1:])
        y = np.fft.irfft(spec, n=n_samples)
    else:
        raise ValueError(f"kind must be 'white' or 'pink', got {kind!r}")
    return (y / np.abs(y).max()).astype(np.float32)


def synthetic_noise_bank(sample_rate: int = 16000, seconds: float = 10.0, per_kind: int = 2,
                         seed: int = 0) -> List[np.ndarray]:
    """Background "recordings" for data without any: ``per_kind`` white and ``per_kind`` pink clips.

    Returns:
        A list of ``2 * per_kind`` float32 clips of ``seconds * sample_rate`` samples (white first).
    """
    rng = np.random.default_rng([seed, 7411])
    n = int(round(seconds * sample_rate))
    return [synthetic_noise(kind, n, rng) for kind in ("white", "pink") for _ in range(per_kind)]


class AugmentDraws(NamedTuple):
    """The random choices for one batch (each ``[B]``).

    Attributes:
        shifts: time shift in samples. noise_index: which noise clip. noise_offset: where its
        crop starts. volume: noise volume (0 for clips drawn without noise).
        silence: clips whose speech is muted (silence class).
    """

    shifts: torch.Tensor
    noise_index: torch.Tensor
    noise_offset: torch.Tensor
    volume: torch.Tensor
    silence: torch.Tensor


class SpeechAugment:
    """Random time shift plus background noise for batches of clips (see the module docstring).

    Args:
        noise: background clips (each at least ``n_samples`` long); may be empty only with
            ``background_frequency = 0``.
        n_samples: clip length (1 s at 16 kHz).
        sample_rate: for converting ``time_shift_ms`` to samples.
        background_frequency: probability that a (non-silence) clip gets noise (reference 0.8).
        background_volume: its volume is uniform in ``[0, background_volume]`` (reference 0.1).
        time_shift_ms: the largest shift either way (reference 100 ms).
        silence_volume: noise volume of silence clips is uniform in ``[0, silence_volume]`` (1.0).
        clip: clip the sum to [-1, 1] as the reference does.

    Shape:
        :meth:`apply`: ``[B, n_samples]`` -> ``[B, n_samples]``.
    """

    def __init__(
        self,
        noise: Sequence[Union[np.ndarray, torch.Tensor]],
        *,
        n_samples: int = 16000,
        sample_rate: int = 16000,
        background_frequency: float = REFERENCE_AUGMENT["background_frequency"],
        background_volume: float = REFERENCE_AUGMENT["background_volume"],
        time_shift_ms: float = REFERENCE_AUGMENT["time_shift_ms"],
        silence_volume: float = 1.0,
        clip: bool = True,
    ) -> None:
        if not 0 <= background_frequency <= 1:
            raise ValueError(f"background_frequency must be in [0, 1], got {background_frequency}")
        if background_volume < 0 or silence_volume < 0 or time_shift_ms < 0:
            raise ValueError("background_volume, silence_volume and time_shift_ms must be >= 0")
        self.noise = [torch.as_tensor(np.asarray(c, dtype=np.float32)) for c in noise]
        short = [i for i, c in enumerate(self.noise) if c.dim() != 1 or c.shape[0] < n_samples]
        if short:
            raise ValueError(f"noise clips must be 1-D with at least {n_samples} samples; clip {short[0]} is not")
        if not self.noise and background_frequency > 0:
            raise ValueError("no noise clips: pass some (e.g. synthetic_noise_bank()) or background_frequency=0")
        self.n_samples, self.sample_rate = int(n_samples), int(sample_rate)
        self.background_frequency, self.background_volume = float(background_frequency), float(background_volume)
        self.silence_volume, self.clip = float(silence_volume), bool(clip)
        self.max_shift = int(round(time_shift_ms * sample_rate / 1000.0))
        self.time_shift_ms = float(time_shift_ms)

    def draw(self, batch_size: int, generator: torch.Generator,
             silence: Optional[torch.Tensor] = None) -> AugmentDraws:
        """Draw shifts, noise crops and volumes for ``batch_size`` clips, in a fixed order.

        Args:
            batch_size: B.
            generator: the random source (the same seed gives the same draws).
            silence: ``[B]`` bool, clips of the silence class (default none).
        """
        b, g = int(batch_size), generator
        shifts = torch.randint(-self.max_shift, self.max_shift + 1, (b,), generator=g)
        k = max(len(self.noise), 1)
        index = torch.randint(0, k, (b,), generator=g)
        lengths = torch.tensor([c.shape[0] for c in self.noise] or [self.n_samples])
        offset = (torch.rand(b, generator=g, dtype=torch.float64) * (lengths[index] - self.n_samples + 1)).long()
        use = torch.rand(b, generator=g, dtype=torch.float64) < self.background_frequency
        volume = torch.rand(b, generator=g, dtype=torch.float64) * self.background_volume * use
        loud = torch.rand(b, generator=g, dtype=torch.float64) * self.silence_volume
        silence = torch.zeros(b, dtype=torch.bool) if silence is None else torch.as_tensor(silence, dtype=torch.bool)
        if silence.any() and not self.noise:
            raise ValueError("silence clips need noise clips")
        volume = torch.where(silence, loud, volume)
        return AugmentDraws(shifts, index, offset, volume.float(), silence)

    def apply(self, waveforms: torch.Tensor, draws: AugmentDraws) -> torch.Tensor:
        """Shift, mute silence clips, add the noise crops at their volumes, clip to [-1, 1]."""
        if waveforms.dim() != 2 or waveforms.shape[1] != self.n_samples:
            raise ValueError(f"waveforms must be [B, {self.n_samples}], got {tuple(waveforms.shape)}")
        x = time_shift(waveforms.float(), draws.shifts)
        x = torch.where(draws.silence[:, None], torch.zeros((), dtype=x.dtype), x)
        if self.noise:
            n = self.n_samples
            crops = torch.stack([self.noise[int(i)][int(o): int(o) + n]
                                 for i, o in zip(draws.noise_index, draws.noise_offset)])
            x = x + draws.volume[:, None] * crops
        return x.clamp(-1.0, 1.0) if self.clip else x

    def __call__(self, waveforms: torch.Tensor, generator: torch.Generator,
                 silence: Optional[torch.Tensor] = None) -> torch.Tensor:
        """:meth:`draw` then :meth:`apply`."""
        return self.apply(waveforms, self.draw(waveforms.shape[0], generator, silence))

    def describe(self) -> str:
        """One line for reports."""
        return (f"time shift up to ±{self.time_shift_ms:g} ms, background noise with probability "
                f"{self.background_frequency:g} at volume U(0, {self.background_volume:g})")

    def __repr__(self) -> str:
        return f"SpeechAugment({self.describe()}, {len(self.noise)} noise clips)"


class AugmentedSpeechBatches:
    """Training batches augmented afresh every epoch: shuffle, augment, compute features.

    Args:
        waveforms: ``[N, n_samples]`` clean training clips.
        labels: ``[N]`` int64.
        augment: the :class:`SpeechAugment`.
        front_end: waveforms ``[B, n_samples]`` -> features ``[B, T, F]`` (a
            :class:`~spikerobust.datasets.speech.TorchSpeechFeatures`).
        batch_size: B. seed: seed of :attr:`generator`.
        silence_label: label of the silence class (muted speech, louder noise), or ``None``.
        feature_transform: applied to the ``[B, T, F]`` features (e.g. standardisation), or ``None``.
        time_first: yield ``[T, B, F]`` (LSNN input) rather than ``[B, T, F]``.

    Attributes:
        generator: the one ``torch.Generator`` of the shuffling and the augmentation (the trainer
            checkpoints it).
    """

    def __init__(self, waveforms: torch.Tensor, labels: torch.Tensor, *, augment: SpeechAugment,
                 front_end: Callable[[torch.Tensor], torch.Tensor], batch_size: int, seed: int,
                 silence_label: Optional[int] = None,
                 feature_transform: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                 time_first: bool = True) -> None:
        if waveforms.shape[0] != labels.shape[0]:
            raise ValueError(f"{waveforms.shape[0]} waveforms but {labels.shape[0]} labels")
        self.waveforms, self.labels = waveforms, labels
        self.augment, self.front_end, self.batch_size = augment, front_end, int(batch_size)
        self.silence_label, self.feature_transform, self.time_first = silence_label, feature_transform, time_first
        self.generator = torch.Generator().manual_seed(int(seed))

    def batch(self, idx: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Augmented features and labels of the clips ``idx`` (draws from :attr:`generator`)."""
        y = self.labels[idx]
        silence = (y == self.silence_label) if self.silence_label is not None else None
        x = self.front_end(self.augment(self.waveforms[idx], self.generator, silence))
        if self.feature_transform is not None:
            x = self.feature_transform(x)
        return (x.permute(1, 0, 2).contiguous() if self.time_first else x), y

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        perm = torch.randperm(self.labels.shape[0], generator=self.generator)
        for i in range(0, self.labels.shape[0], self.batch_size):
            yield self.batch(perm[i : i + self.batch_size])

    def __len__(self) -> int:
        return -(-self.labels.shape[0] // self.batch_size)
