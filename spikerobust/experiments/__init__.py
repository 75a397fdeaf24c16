"""The paper's protocols as runnable pipelines, configured by dataclasses."""

from .config import QUICK, ReproduceConfig
from .reproduce import load_task, run_reproduce

__all__ = ["ReproduceConfig", "QUICK", "run_reproduce", "load_task"]
