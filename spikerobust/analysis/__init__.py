"""Analysis helpers: membrane-potential statistics, tables and plots."""

from .plots import plot_membrane_distribution, plot_spike_raster
from .tables import markdown_table

__all__ = ["plot_membrane_distribution", "plot_spike_raster", "markdown_table"]
