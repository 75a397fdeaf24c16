"""Configuration of the ``reproduce`` pipeline, as a dataclass (serialisable to JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, Optional, Tuple

__all__ = ["ReproduceConfig", "DEFAULT_METHODS", "QUICK"]

#: method name → constructor kwargs (SPEC §2–§3 values for the ECG LSNN).
DEFAULT_METHODS: Dict[str, dict] = {
    "standard": {},
    "adversarial": {"beta": 0.25},
    "forward_noise": {"eta": 0.3},
}


@dataclass
class ReproduceConfig:
    """Everything the ``reproduce`` pipeline needs; the defaults are the paper's ECG protocol
    (SPEC §1, §4, §7), which takes days on a laptop CPU: :data:`QUICK` scales it down.

    Attributes:
        task: ``"ecg-synthetic"`` (generated, needs nothing), ``"ecg"`` (MIT-BIH WFDB records in
            ``data_root``) or ``"ecg-records"`` (MIT-BIH, patient-wise split).
        data_root: folder of the MIT-BIH records (``NNN.hea/.dat/.atr``) for the ``ecg`` tasks.
        beats_per_class: class balancing (paper: 3350).
        n_hidden: LSNN neurons (paper: 256).
        epochs: training epochs; the learning rate drops 10× for the last ``lr_drop_fraction``.
        lr, batch_size: Adam learning rate and mini-batch (paper: 1e-3, 100).
        methods: label → constructor kwargs of the registered method of that name; a
            ``"method"`` key picks another registered method, e.g.
            ``{"fn+beta": {"method": "forward_noise", "beta": 0.1}}``.
        levels, n_draws: mismatch protocol (SPEC §4).
        attack_eps: relative attack sizes for the attacked-vs-random comparison.
        zetas: interval half-widths for verified accuracy (SPEC §5).
        landscape_points, landscape_directions: weight-loss landscape resolution.
        out_dir: where ``report.md``, ``results.json``, figures and checkpoints go.
        seed: seed of data, initialisation and evaluation.
    """

    task: str = "ecg-synthetic"
    data_root: Optional[str] = None
    beats_per_class: int = 3350
    n_hidden: int = 256
    epochs: int = 200
    lr: float = 1e-3
    lr_drop_fraction: float = 0.25
    batch_size: int = 100
    methods: Dict[str, dict] = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_METHODS.items()})
    levels: Tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7)
    n_draws: int = 100
    attack_eps: Tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
    zetas: Tuple[float, ...] = (0.0, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3)
    landscape_points: int = 50
    landscape_directions: int = 5
    out_dir: str = "results/reproduce"
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


#: A scaled-down setting that runs in minutes on two CPU cores: fewer beats, neurons, epochs and
#: draws, and a larger learning rate and smaller batch to make up for the fewer epochs.
QUICK = dict(beats_per_class=400, n_hidden=64, epochs=15, lr=1e-2, batch_size=32, n_draws=30,
             attack_eps=(0.1, 0.3), zetas=(0.0, 1e-5, 1e-4, 1e-3), landscape_points=25, landscape_directions=3)
