"""The run folder: its layout, the claim on it, and the checks a resume must pass.

Layout (see :mod:`.orchestrate`)::

    config.json  report.md  results.json  *.png  .lock  provenance.json
    methods/<label>/model.pt  methods/<label>/results.json  methods/<label>/checkpoints/last.pt
    seeds/seed<s>/methods/<label>/...   (with ``seeds`` > 1: the extra models, seeds seed + 1 ...)

A folder that holds a run (:data:`RUN_FILES`) is only written into with ``resume=True`` (same
settings as its ``config.json``, but the fields of ``allow_change``) or ``overwrite=True``.

Examples:
    >>> from spikerobust.experiments import make_config
    >>> cfg = make_config("ecg", "quick", overrides={"out_dir": "run", "seeds": 3})
    >>> [str(model_config(cfg, Path("run"), k).out_dir) for k in range(3)]
    ['run', 'run/seeds/seed1', 'run/seeds/seed2']
    >>> method_dir(cfg, "fn/beta").as_posix()
    'run/methods/fn_beta'
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Optional, Sequence, Tuple

from ..robust.trainer import refuse_changes, settings_diff
from .config import CHANGEABLE_FIELDS, ExperimentConfig, check_allow_change

__all__ = ["RUN_FILES", "method_dir", "model_config", "check_allow", "claim_folder", "check_resumable"]

log = logging.getLogger(__name__)

#: what makes a folder hold a run
RUN_FILES = ("config.json", "model.pt", "results.json", "report.md", "checkpoints", "methods")


def method_dir(cfg: ExperimentConfig, label: str) -> Path:
    """The folder of method ``label``'s model in ``cfg.out_dir`` (``/`` in a label becomes ``_``)."""
    return Path(cfg.out_dir) / "methods" / label.replace("/", "_")


def model_config(cfg: ExperimentConfig, out: Path, k: int) -> ExperimentConfig:
    """The config of every method's ``k``-th model: ``cfg`` itself for ``k = 0``, else seed
    ``seed + k`` in its own folder ``out/seeds/seed<seed + k>`` (trained on the data of ``seed``)."""
    if k == 0:
        return cfg
    return replace(cfg, seed=cfg.seed + k, seeds=1, out_dir=str(out / "seeds" / f"seed{cfg.seed + k}"))


def check_allow(allow_change: Sequence[str], resume: bool) -> Tuple[str, ...]:
    """The checked ``allow_change`` field names; refused without ``resume``."""
    names = check_allow_change(allow_change)
    if names and not resume:
        raise ValueError("--allow-change only applies to --resume (a new run takes any settings)")
    return names


def claim_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to write a new run over a folder holding one, unless ``overwrite``."""
    if resume and overwrite:
        raise ValueError("--resume continues the run in the folder and --overwrite replaces it: give one of them")
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} is a file, not a folder")
    held = [n for n in RUN_FILES if (out / n).exists()]
    if held and not resume and not overwrite:
        raise ValueError(f"{str(out)!r} holds a run ({', '.join(held)}); pass --resume to continue it, --overwrite to "
                         "replace it, or choose another --out-dir")
    if overwrite and held:
        log.warning("--overwrite: replacing the run in %s", out)


def check_resumable(cfg: ExperimentConfig, out: Path, allow_change: Sequence[str] = (),
                    world_size: Optional[int] = None) -> None:
    """Refuse a resume whose settings differ from ``out/config.json`` (but ``allow_change``), naming each
    field, or (``world_size`` given) that runs on another number of processes than the one recorded there."""
    path = out / "config.json"
    if not path.exists():
        return
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"--resume: {path} is not valid JSON ({err})") from None
    recorded = saved.pop("world_size", None)  # a record of `train`, not a config field
    if world_size is not None and recorded is not None and int(recorded) != int(world_size):
        raise ValueError(f"--resume: {path} records world_size={recorded} processes, this run has {world_size}: "
                         f"resume with {recorded} processes (torchrun --nproc-per-node/--nnodes), or start a new run")
    old = ExperimentConfig.from_dict(saved).compute_dict()
    new = cfg.compute_dict()
    old_m, new_m = old.pop("methods"), new.pop("methods")
    for d in (old, new):
        d.pop("data_dir")  # the data themselves are compared by fingerprint when training resumes
    diff = settings_diff(old, new)
    diff.update({f"methods.{k}": (old_m[k], v) for k, v in new_m.items() if k in old_m and old_m[k] != v})
    refuse_changes(diff, allow_change, str(path), CHANGEABLE_FIELDS)

