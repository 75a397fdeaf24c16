"""The names of the former ``pipeline`` module, kept so that ``from spikerobust.experiments.pipeline
import X`` works: the code lives in :mod:`.train` (training, model files, the data fingerprint),
:mod:`.evaluate` (the evaluation parts) and :mod:`.orchestrate` (the comparison over methods and
seeds, spread sweeps, the report); the run folder's layout and checks are in :mod:`.runfolder`.

Examples:
    >>> from spikerobust.experiments import pipeline, train
    >>> pipeline.train_method is train.train_method
    True
"""

from __future__ import annotations

from .evaluate import MEMBRANE_BINS, MEMBRANE_RANGE, PARTS, PER_CLASS_LEVEL, evaluate_model, is_lsnn_model
from .orchestrate import assemble_report, run_reproduce, sweep_status
from .train import MODEL_FORMAT, SingleRun, data_fingerprint, load_model, save_model, train_method, train_single

__all__ = ["train_method", "train_single", "SingleRun", "evaluate_model", "save_model", "load_model",
           "run_reproduce", "assemble_report", "sweep_status", "PARTS", "data_fingerprint",
           "MODEL_FORMAT", "is_lsnn_model", "PER_CLASS_LEVEL", "MEMBRANE_RANGE", "MEMBRANE_BINS"]
