"""Analysis helpers: membrane-potential statistics, tables and plots."""

from .membrane import (MembraneRecord, membrane_summary, near_threshold_fraction,
                       plot_membrane_comparison, record_membrane)
from .plots import plot_membrane_distribution, plot_spike_raster
from .tables import markdown_table

__all__ = ["MembraneRecord", "record_membrane", "near_threshold_fraction", "membrane_summary",
           "plot_membrane_comparison", "plot_membrane_distribution", "plot_spike_raster", "markdown_table"]
