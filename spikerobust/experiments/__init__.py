"""The paper's experiments as pipelines: tasks, presets, configs, training, evaluation, reports.

Examples:
    >>> from spikerobust.experiments import make_config
    >>> make_config("fmnist", "paper").lr
    0.0001
"""

from .config import ExperimentConfig, ReproduceConfig, make_config, parse_method, parse_methods, read_config_file
from .pipeline import (PARTS, SingleRun, evaluate_model, load_model, run_reproduce, save_model, train_method,
                       train_single)
from .presets import EXTRA_METHODS, PAPER_FLATNESS, PAPER_METHODS, PAPER_TABLE1, PRESETS
from .report import make_figures, render_report, write_report
from .tasks import TaskData, load_task

__all__ = ["ExperimentConfig", "ReproduceConfig", "make_config", "parse_method", "parse_methods", "read_config_file",
           "PARTS", "evaluate_model", "load_model", "run_reproduce", "save_model", "train_method", "train_single",
           "SingleRun", "EXTRA_METHODS", "PAPER_FLATNESS", "PAPER_METHODS", "PAPER_TABLE1", "PRESETS", "make_figures",
           "render_report", "write_report", "TaskData", "load_task"]
