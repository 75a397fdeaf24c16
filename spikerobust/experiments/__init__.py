"""The paper's experiments as pipelines: tasks (:mod:`.tasks`), presets, configs, training
(:mod:`.train`), evaluation (:mod:`.evaluate`), the comparison over methods (:mod:`.orchestrate`)
and reports.

Examples:
    >>> from spikerobust.experiments import make_config
    >>> make_config("fmnist", "paper").lr
    0.0001
"""

from .config import ExperimentConfig, ReproduceConfig, make_config, parse_method, parse_methods, read_config_file
from .evaluate import PARTS, evaluate_model
from .orchestrate import run_reproduce
from .presets import EXTRA_METHODS, PAPER_FLATNESS, PAPER_METHODS, PAPER_TABLE1, PRESETS
from .report import make_figures, render_report, write_report
from .tasks import TaskData, load_task
from .train import SingleRun, load_model, load_model_and_data, save_model, train_method, train_single

__all__ = ["ExperimentConfig", "ReproduceConfig", "make_config", "parse_method", "parse_methods", "read_config_file",
           "PARTS", "evaluate_model", "load_model", "load_model_and_data", "run_reproduce", "save_model", "train_method", "train_single",
           "SingleRun", "EXTRA_METHODS", "PAPER_FLATNESS", "PAPER_METHODS", "PAPER_TABLE1", "PRESETS", "make_figures",
           "render_report", "write_report", "TaskData", "load_task"]
