"""Batching time-first samples for the LSNN: ``[T, F]`` samples become one ``[T, B, F]`` batch.

Examples:
    >>> import torch
    >>> batch = [(torch.zeros(100, 2), 0), (torch.ones(100, 2), 3)]
    >>> x, y = time_first_collate(batch)
    >>> tuple(x.shape), y.tolist()
    ((100, 2, 2), [0, 3])

    With a :class:`torch.utils.data.DataLoader`::

        loader = DataLoader(dataset, batch_size=64, shuffle=True, collate_fn=time_first_collate)
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch

__all__ = ["time_first_collate"]


def time_first_collate(batch: Sequence[Tuple[torch.Tensor, int]]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(x [T, F], label)`` pairs into ``x [T, B, F]`` (float32) and ``y [B]`` (int64).

    Args:
        batch: samples from a time-first dataset (all with the same ``T`` and ``F``).

    Returns:
        ``(x, y)`` with ``x`` time-first, ready for :class:`spikerobust.nn.LSNNClassifier`.

    Shape:
        - each sample ``x``: ``[T, F]``
        - output ``x``: ``[T, B, F]``; ``y``: ``[B]``

    Raises:
        ValueError: for an empty batch or samples that are not ``[T, F]`` or differ in shape.
    """
    if len(batch) == 0:
        raise ValueError("batch is empty; expected a list of (x [T, F], label) pairs")
    xs = [torch.as_tensor(b[0]) for b in batch]
    shape = xs[0].shape
    for i, x in enumerate(xs):
        if x.dim() != 2:
            raise ValueError(f"sample {i} has shape {tuple(x.shape)}; expected time-first [T, F]")
        if x.shape != shape:
            raise ValueError(f"sample {i} has shape {tuple(x.shape)}, sample 0 has {tuple(shape)}")
    x = torch.stack(xs, dim=1).to(torch.float32)
    y = torch.as_tensor([int(b[1]) for b in batch], dtype=torch.int64)
    return x, y
