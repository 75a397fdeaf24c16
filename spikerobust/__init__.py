"""spikerobust: robust spiking neural networks for mismatched neuromorphic hardware.

Sub-packages:

- :mod:`spikerobust.functional`: pure LSNN step functions, surrogate gradients, readouts.
- :mod:`spikerobust.nn`: thin ``nn.Module`` shells (``LSNN``, ``LSNNClassifier``).
- :mod:`spikerobust.models`: registered model builders.
- :mod:`spikerobust.datasets`: ECG, speech and image pipelines.
- :mod:`spikerobust.robust`: mismatch, weight-space attacks, robust training, PCM.
- :mod:`spikerobust.verify`: interval-arithmetic verification.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
