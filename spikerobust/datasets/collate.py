"""Batching: ``[T, F]`` samples become one ``[T, B, F]`` batch, and in-memory tensors are batched in
order or shuffled, for either layout (time-first ``[T, N, F]`` for the LSNN, sample-first
``[N, ...]`` otherwise).

Examples:
    >>> import torch
    >>> batch = [(torch.zeros(100, 2), 0), (torch.ones(100, 2), 3)]
    >>> x, y = time_first_collate(batch)
    >>> tuple(x.shape), y.tolist()
    ((100, 2, 2), [0, 3])

    With a :class:`torch.utils.data.DataLoader`::

        loader = DataLoader(dataset, batch_size=64, shuffle=True, collate_fn=time_first_collate)

    Whole in-memory splits, time-first ``[T, N, F]``:

    >>> x, y = to_time_first(torch.arange(12.0).view(3, 2, 2)), torch.tensor([0, 1, 2])   # [N, T, F] -> [T, N, F]
    >>> [yb.tolist() for _, yb in ordered_batches(x, y, 2, time_first=True)]
    [[0, 1], [2]]
    >>> loader = ShuffledBatches(x, y, batch_size=2, seed=0, time_first=True)
    >>> sorted(v for _, yb in loader for v in yb.tolist()), len(loader)
    ([0, 1, 2], 2)
"""

from __future__ import annotations

from typing import Iterator, List, Optional, Sequence, Tuple

import torch

__all__ = ["time_first_collate", "to_time_first", "take_samples", "ordered_batches", "ShuffledBatches"]

Pair = Tuple[torch.Tensor, torch.Tensor]


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


def to_time_first(x: torch.Tensor) -> torch.Tensor:
    """Samples ``[N, T, F]`` as one contiguous time-first tensor ``[T, N, F]``.

    Shape:
        ``[N, T, F]`` -> ``[T, N, F]``.
    """
    if x.dim() != 3:
        raise ValueError(f"expected samples of shape [N, T, F], got {tuple(x.shape)}")
    return x.permute(1, 0, 2).contiguous()


def take_samples(x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor, *, time_first: bool = False) -> Pair:
    """The samples ``idx`` of ``(x, y)``, in that order: ``x[:, idx]`` if ``time_first`` else ``x[idx]``.

    Shape:
        ``x``: ``[T, N, F]`` (``time_first``) or ``[N, ...]``; ``y``: ``[N]``; returns ``len(idx)`` samples.
    """
    return (x[:, idx] if time_first else x[idx]), y[idx]


def ordered_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, *, time_first: bool = False) -> List[Pair]:
    """``(x, y)`` as a list of consecutive batches of at most ``batch_size`` samples (for evaluation)."""
    n = int(y.shape[0])
    return [take_samples(x, y, torch.arange(i, min(i + int(batch_size), n)), time_first=time_first)
            for i in range(0, n, int(batch_size))]


class ShuffledBatches:
    """Re-iterable shuffled mini-batches of in-memory tensors: a new seeded order every epoch.

    Its ``generator`` (a :class:`torch.Generator` seeded with ``seed``) is the whole state of the
    order, so a trainer that checkpoints it resumes the same sequence of epochs.

    Args:
        x, y: inputs (time-first ``[T, N, F]`` if ``time_first``, else ``[N, ...]``) and labels ``[N]``.
        batch_size: samples per batch (the last one may be smaller).
        seed: seed of the shuffling; ``None``: draw each epoch's order from torch's global generator
            (``torch.randperm(N)``, as a hand-written loop would; ``generator`` is then ``None`` and a
            resumed training does not restore the order).
        time_first: the sample axis of ``x`` is 1 rather than 0.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, seed: Optional[int],
                 time_first: bool = False) -> None:
        self.x, self.y, self.batch_size, self.time_first = x, y, int(batch_size), bool(time_first)
        self.generator = None if seed is None else torch.Generator().manual_seed(int(seed))

    def __iter__(self) -> Iterator[Pair]:
        perm = torch.randperm(self.y.shape[0], generator=self.generator)
        for i in range(0, self.y.shape[0], self.batch_size):
            yield take_samples(self.x, self.y, perm[i : i + self.batch_size], time_first=self.time_first)

    def __len__(self) -> int:
        return -(-self.y.shape[0] // self.batch_size)
