"""Synthetic keyword spotting with espeak-ng: the Speech Commands words spoken by many voices, offline.

Nothing here is a human recording. The espeak-ng engine (the shared library shipped by the pip
package ``espeakng-loader``, or a system ``libespeak-ng`` such as Debian's ``espeak-ng``) is
driven through :mod:`ctypes` in synchronous mode, so no audio device and no network are needed.

Each clip: a word spoken by one voice (an English accent plus a voice variant, e.g. ``en-us+m3``)
at a random rate (``rate_range`` words per minute) and pitch (``pitch_range``, 0-99), resampled
22 050 -> 16 000 Hz, placed at a random offset in a 1 s clip, and mixed with noise (white noise
plus a random-walk "brown" component) at a signal-to-noise ratio drawn from ``snr_db_range``.
Classes are those of :class:`~spikerobust.datasets.speech_commands.SpeechCommands`: ``silence``
(noise only), ``unknown`` (other Speech Commands words) and the six target words.

Voices are split, not clips: :func:`voice_split` assigns each voice to train / val / test by the
SHA-1 of its name (15 % val, 15 % test), so the test set is spoken by voices never heard in
training. Features are cached, keyed by every setting and the engine's version, with the clips
themselves (float16) for training with augmentation (:meth:`SyntheticKeywords.waveforms`; the
background noise of the augmentation is synthetic white and pink noise,
:meth:`SyntheticKeywords.noise_clips`, as there are no noise recordings).

Examples:
    >>> ok, reason = espeak_available()
    >>> ds = SyntheticKeywords(split="test", clips_per_voice=2)          # doctest: +SKIP
    >>> x, y = ds[0]; tuple(x.shape)                                      # doctest: +SKIP
    (98, 40)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import logging
import os
import threading
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from tqdm import tqdm

from ._base import ArrayDataset, check_split
from .cache import cached_arrays
from .speech import SpeechFeatures, pad_or_crop
from .speech_augment import synthetic_noise_bank
from .speech_commands import SC_WORDS

__all__ = [
    "UNKNOWN_WORDS",
    "DEFAULT_VOICES",
    "espeak_available",
    "EspeakEngine",
    "get_engine",
    "voice_split",
    "SyntheticKeywords",
]

logger = logging.getLogger(__name__)

UNKNOWN_WORDS = ("bed", "bird", "cat", "dog", "go", "happy", "house", "marvin", "nine", "off", "on", "one",
                 "seven", "sheila", "six", "stop", "three", "tree", "two", "wow", "zero", "eight", "five",
                 "four", "forward", "backward", "follow", "learn", "visual")
_ACCENTS = ("en-us", "en", "en-GB-scotland", "en-GB-x-rp", "en-029", "en-US-nyc", "en-GB-x-gbclan",
            "en-GB-x-gbcwmd")
_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "f1", "f2", "f3", "f4", "klatt", "klatt2")
#: accent x variant, 96 voices.
DEFAULT_VOICES: Tuple[str, ...] = tuple(f"{a}+{v}" for a in _ACCENTS for v in _VARIANTS)
_VERSION = 2  # 2: the clips are cached too

# espeak-ng C API constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_ESPEAK_RATE, _ESPEAK_PITCH = 1, 3
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def _locate() -> Tuple[Optional[str], Optional[str], str]:
    """(library path, data path or None for the library's default, where it came from)."""
    try:
        import espeakng_loader

        return espeakng_loader.get_library_path(), espeakng_loader.get_data_path(), "espeakng-loader"
    except Exception:  # not installed, or a broken install: try the system library
        pass
    lib = ctypes.util.find_library("espeak-ng")
    return lib, None, "system libespeak-ng"


class EspeakEngine:
    """A thin ctypes wrapper of libespeak-ng in synchronous mode (one per process, see :func:`get_engine`)."""

    def __init__(self) -> None:
        lib_path, data_path, source = _locate()
        if not lib_path:
            raise RuntimeError("espeak-ng not found: `pip install espeakng-loader` or install Debian's espeak-ng")
        self._lib = ctypes.CDLL(lib_path)
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self._lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                           ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self._lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self._lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.sample_rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode() if data_path else None, 0)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({source}: {lib_path})")
        self._chunks: List[np.ndarray] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: ctypes must not free it
        self._lib.espeak_SetSynthCallback(self._callback)
        self._lock = threading.Lock()
        info = ctypes.c_char_p()
        self._lib.espeak_Info.restype = ctypes.c_char_p
        self._lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
        self.version = (self._lib.espeak_Info(ctypes.byref(info)) or b"?").decode()
        self.source = source
        self._warned = False

    def _collect(self, wav, n, events) -> int:
        if n > 0 and wav:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    def _synth_here(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        if self._lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        self._lib.espeak_SetParameter(_ESPEAK_RATE, int(rate), 0)
        self._lib.espeak_SetParameter(_ESPEAK_PITCH, int(pitch), 0)
        self._chunks = []
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        self._lib.espeak_Synth(buf, len(buf), 0, _POS_CHARACTER, 0, 0, None, None)
        self._lib.espeak_Synchronize()
        chunks, self._chunks = self._chunks, []
        if not chunks:
            raise ValueError(f"espeak-ng produced no audio for {text!r} with voice {voice!r}")
        return np.concatenate(chunks).astype(np.float32) / 32768.0

    def _synth_forked(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: synthesize from the pristine engine state, send, exit at once
            os.close(read_fd)
            code = 0
            try:
                try:
                    payload = b"0" + self._synth_here(text, voice, rate, pitch).tobytes()
                except BaseException as exc:  # reported to the parent as a ValueError
                    payload = b"1" + str(exc).encode("utf-8", "replace")
                with os.fdopen(write_fd, "wb") as fh:
                    fh.write(payload)
            except BaseException:
                code = 1
            os._exit(code)
        os.close(write_fd)
        with os.fdopen(read_fd, "rb") as fh:
            payload = fh.read()
        _, status = os.waitpid(pid, 0)
        if not payload or status != 0:
            raise RuntimeError(f"espeak-ng child process failed (status {status}) for {text!r}")
        if payload[:1] == b"1":
            raise ValueError(payload[1:].decode("utf-8", "replace"))
        return np.frombuffer(payload[1:], dtype=np.float32).copy()

    def synthesize(self, text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50) -> np.ndarray:
        """Speak ``text``; returns float32 samples in [-1, 1] at :attr:`sample_rate`.

        espeak-ng keeps internal state from one utterance to the next, so the same call twice in
        one process gives slightly different audio. Where ``os.fork`` exists each utterance is
        therefore synthesized in a forked child from the engine's untouched initial state, which
        makes the output a pure function of the arguments (about 40 ms per call). Elsewhere it is
        synthesized in-process (not bit-reproducible; logged once).

        Raises:
            ValueError: for an unknown voice or if nothing was synthesized.
        """
        with self._lock:
            if hasattr(os, "fork"):
                return self._synth_forked(text, voice, rate, pitch)
            if not self._warned:
                logger.warning("os.fork unavailable: espeak-ng output is not bit-reproducible here")
                self._warned = True
            return self._synth_here(text, voice, rate, pitch)


_ENGINE: Optional[EspeakEngine] = None
_ENGINE_LOCK = threading.Lock()


def get_engine() -> EspeakEngine:
    """The process-wide :class:`EspeakEngine` (created on first use)."""
    global _ENGINE
    with _ENGINE_LOCK:
        if _ENGINE is None:
            _ENGINE = EspeakEngine()
        return _ENGINE


def espeak_available() -> Tuple[bool, str]:
    """``(True, description)`` if espeak-ng can synthesize here, else ``(False, reason)``."""
    try:
        eng = get_engine()
        eng.synthesize("yes")
        return True, f"espeak-ng {eng.version} via {eng.source}"
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"


def voice_split(voice: str, val_percentage: float = 15.0, test_percentage: float = 15.0) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for a voice name, from the SHA-1 of the name."""
    pct = int(hashlib.sha1(voice.encode()).hexdigest(), 16) % 10000 / 100.0
    if pct < val_percentage:
        return "val"
    if pct < val_percentage + test_percentage:
        return "test"
    return "train"


def _noise(n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    brown = np.cumsum(rng.standard_normal(n))
    brown -= np.linspace(brown[0], brown[-1], n)  # remove the drift
    brown /= brown.std() + 1e-12
    mix = rng.uniform(0, 1)
    out = mix * white + (1 - mix) * brown
    return out / (out.std() + 1e-12)


class SyntheticKeywords(ArrayDataset):
    """Synthetic (espeak-ng) keyword spotting: 6 words + silence + unknown as ``[98, 40]`` MFCCs.

    Args:
        root: unused (nothing is read); kept for the common signature.
        split: ``"train"``, ``"val"`` or ``"test"``; each uses its own voices (:func:`voice_split`).
        transform: applied to each ``x``.
        download: unused (everything is generated offline).
        words: target words (labels 2, 3, ...).
        voices: candidate voices; default :data:`DEFAULT_VOICES` (96).
        clips_per_voice: clips of each class per voice.
        rate_range, pitch_range: ranges of espeak rate (words/min) and pitch (0-99).
        snr_db_range: signal-to-noise ratio range of the added noise.
        features: the front end (default :class:`SpeechFeatures`).
        seed: seed of everything random.
        cache_dir, use_cache: see :mod:`spikerobust.datasets.cache`.

    Shape:
        each sample ``x``: ``[98, 40]``.
    """

    SPLITS = ("train", "val", "test")

    def __init__(
        self,
        root=None,
        split: str = "train",
        transform: Optional[Callable] = None,
        download: bool = False,
        *,
        words: Sequence[str] = SC_WORDS,
        voices: Sequence[str] = DEFAULT_VOICES,
        clips_per_voice: int = 3,
        rate_range: Tuple[int, int] = (120, 230),
        pitch_range: Tuple[int, int] = (20, 80),
        snr_db_range: Tuple[float, float] = (5.0, 30.0),
        features: Optional[SpeechFeatures] = None,
        seed: int = 0,
        cache_dir: Optional[Union[str, os.PathLike]] = None,
        use_cache: bool = True,
    ) -> None:
        super().__init__(transform)
        self.split = check_split(split, self.SPLITS)
        if clips_per_voice < 1:
            raise ValueError(f"clips_per_voice must be >= 1, got {clips_per_voice}")
        self.words = tuple(words)
        self.classes = ("silence", "unknown") + self.words
        self.features = features if features is not None else SpeechFeatures()
        self.voices = tuple(v for v in voices if voice_split(v) == self.split)
        if not self.voices:
            raise ValueError(f"none of the {len(voices)} voices falls in split {self.split!r}; pass more voices")
        engine = get_engine()
        settings: Dict = dict(version=_VERSION, split=self.split, words=list(self.words), voices=list(self.voices),
                              clips=clips_per_voice, rate=list(rate_range), pitch=list(pitch_range),
                              snr=list(snr_db_range), features=self.features.to_dict(), seed=seed,
                              engine=engine.version)
        arrays, self.cache_path = cached_arrays(
            "keywords_tts", settings,
            lambda: self._generate(engine, clips_per_voice, rate_range, pitch_range, snr_db_range, seed),
            cache_dir, use_cache)
        self.data, self.targets = arrays["x"], arrays["y"]
        self.clip_voices, self.clip_words = arrays["voice"], arrays["word"]
        self._wav = arrays["wav"]

    def waveforms(self) -> np.ndarray:
        """The clips before the front end (speech plus its noise), ``[N, n_samples]`` float32 (stored
        as float16, so within about 5e-4 of the clips the cached features were computed from)."""
        return self._wav.astype(np.float32)

    def noise_clips(self, seed: int = 0) -> List[np.ndarray]:
        """Synthetic white and pink background noise for augmentation
        (:func:`~spikerobust.datasets.speech_augment.synthetic_noise_bank`)."""
        return synthetic_noise_bank(self.features.sample_rate, seed=seed)

    def _generate(self, engine, clips, rate_range, pitch_range, snr_range, seed) -> Dict[str, np.ndarray]:
        import librosa

        rng = np.random.default_rng([seed, ["train", "val", "test"].index(self.split)])
        n = self.features.n_samples
        jobs = [(v, c) for v in self.voices for c in range(len(self.classes)) for _ in range(clips)]
        xs = np.zeros((len(jobs), self.features.n_frames, self.features.n_features), dtype=np.float32)
        wavs = np.zeros((len(jobs), n), dtype=np.float16)
        ys, vs, ws = [], [], []
        for i, (voice, label) in enumerate(tqdm(jobs, desc=f"espeak-ng {self.split}", unit="clip", leave=False)):
            noise = _noise(n, rng)
            if label == 0:
                word, y = "", 0.05 * rng.uniform(0, 1) * noise
            else:
                word = self.classes[label] if label >= 2 else str(rng.choice(UNKNOWN_WORDS))
                speech = engine.synthesize(word, voice, int(rng.integers(*rate_range)), int(rng.integers(*pitch_range)))
                speech = librosa.resample(speech, orig_sr=engine.sample_rate, target_sr=self.features.sample_rate)
                if len(speech) < n:
                    off = int(rng.integers(0, n - len(speech) + 1))
                    speech = np.pad(speech, (off, n - len(speech) - off))
                else:
                    speech = pad_or_crop(speech, n, "center")
                speech = speech / (np.abs(speech).max() + 1e-9) * rng.uniform(0.3, 0.9)
                snr = rng.uniform(*snr_range)
                y = speech + noise * np.sqrt(np.mean(speech ** 2) / 10 ** (snr / 10))
            xs[i] = self.features(y.astype(np.float32))
            wavs[i] = y
            ys.append(label)
            vs.append(voice)
            ws.append(word)
        return {"x": xs, "y": np.asarray(ys, dtype=np.int64), "voice": np.asarray(vs, dtype="<U32"),
                "word": np.asarray(ws, dtype="<U16"), "wav": wavs}
