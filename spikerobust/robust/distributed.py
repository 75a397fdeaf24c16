"""Data-parallel training with ``torch.distributed``: one process per device, the global batch split
across ranks, gradients averaged, so every rank holds the same parameters as a single process
that trained on the whole global batch.

Two strategies:

- ``"ddp"``: the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, whose
  backward hooks average gradients. Use it for methods whose step calls the model once through
  its ordinary ``forward`` (``"standard"``, ``"dropout"``). The wrapper forwards the
  ``supports_aux_loss`` flag of an :class:`~spikerobust.nn.LSNNClassifier`.
- ``"allreduce"``: the model stays unwrapped and a step pre-hook on the optimiser averages every
  ``.grad`` across ranks just before ``optimizer.step()``. This serves EVERY method, including
  those that evaluate the model through ``torch.func.functional_call`` or take several backward
  passes (adversarial, forward noise, AWP, AMP, Entropy-SGD): their inner loops (attacks, Langevin
  chains) run on each rank's shard, only the final gradient is averaged. ABCD, whose inner
  optimiser steps change the parameters in place, is averaged step by step as well.

Backends: gloo on CPU, NCCL when CUDA is available (rank ``r`` uses ``cuda:r``). :func:`launch`
starts the processes with ``torch.multiprocessing.spawn`` on ``MASTER_ADDR=127.0.0.1`` and a free
port.

Randomness per rank: :func:`fit_data_parallel` seeds every rank with the same seed before
building the model (DDP also broadcasts rank 0's parameters), then seeds the training RNG of rank
``r`` with ``seed + r``, so methods drawing from the global generator (forward noise, dropout,
attack starts with ``seed=None``) use DIFFERENT draws on each rank, like more samples of the
noise. Give the method a ``seed=`` to make every rank draw the same noise (then a run matches a
single process exactly). Checkpoints are written by rank 0 only and hold rank 0's RNG state.

Equivalence holds for losses that are means over the batch. An LSNN's rate regulariser is a SUM
over the batch (docs/lsnn.md), so under data parallelism it is effectively divided by the number of
ranks; scale ``rate_strength`` by the world size to compensate.

Examples:
    >>> import functools, torch
    >>> from spikerobust.models import get_model
    >>> x, y = torch.randn(40, 64, 2), torch.randint(0, 4, (64,))
    >>> res = fit_data_parallel(functools.partial(get_model, "lsnn_ecg", n_hidden=8), "standard",
    ...                         [(x, y)], world_size=2, epochs=1, time_first=True)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
import tempfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import load_checkpoint, save_checkpoint

__all__ = [
    "find_free_port",
    "default_backend",
    "launch",
    "DDP",
    "average_gradients_before_step",
    "shard_batch",
    "ShardedBatches",
    "fit_data_parallel",
]


def find_free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def default_backend() -> str:
    """``"nccl"`` when CUDA is available, else ``"gloo"``."""
    return "nccl" if torch.cuda.is_available() else "gloo"


def _worker(rank, fn, world_size, backend, addr, port, args):
    os.environ["MASTER_ADDR"] = addr
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    if backend == "nccl":
        torch.cuda.set_device(rank)
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    try:
        fn(rank, world_size, *args)
    finally:
        dist.destroy_process_group()


def launch(
    fn: Callable[..., Any],
    world_size: int = 2,
    args: Sequence[Any] = (),
    *,
    backend: Optional[str] = None,
    master_addr: str = "127.0.0.1",
    port: Optional[int] = None,
) -> None:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` processes with an initialised process group.

    ``fn`` and ``args`` must be picklable (a module-level function; ``functools.partial`` of one).

    Raises:
        ValueError: ``world_size < 1``, or NCCL with fewer GPUs than ranks.
    """
    if int(world_size) < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    backend = backend or default_backend()
    if backend == "nccl" and torch.cuda.device_count() < int(world_size):
        raise ValueError(f"backend 'nccl' needs one GPU per rank: {world_size} ranks, {torch.cuda.device_count()} GPUs")
    port = int(port) if port is not None else find_free_port()
    mp.spawn(_worker, args=(fn, int(world_size), backend, master_addr, port, tuple(args)), nprocs=int(world_size), join=True)


class DDP(DistributedDataParallel):
    """``DistributedDataParallel`` that exposes the wrapped model's ``supports_aux_loss`` flag."""

    @property
    def supports_aux_loss(self) -> bool:
        return bool(getattr(self.module, "supports_aux_loss", False))


def average_gradients_before_step(optimizer: torch.optim.Optimizer):
    """Register a step pre-hook that all-reduces (averages) every ``.grad`` of ``optimizer``'s
    parameters across ranks; returns the hook handle (``.remove()`` to undo)."""

    def hook(opt, args, kwargs):
        world = dist.get_world_size()
        for group in opt.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)  # keep the collective calls aligned across ranks
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                p.grad.div_(world)

    return optimizer.register_step_pre_hook(hook)


def shard_batch(
    x: torch.Tensor, y: torch.Tensor, rank: int, world_size: int, *, time_first: bool
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s contiguous share of a global batch (batch axis 1 if ``time_first`` else 0).

    Raises:
        ValueError: if the batch size is not divisible by ``world_size``.
    """
    b = int(y.shape[0])
    if b % int(world_size):
        raise ValueError(f"the global batch size {b} must be divisible by world_size={world_size}")
    n = b // int(world_size)
    sl = slice(rank * n, (rank + 1) * n)
    return (x[:, sl] if time_first else x[sl]), y[sl]


class ShardedBatches:
    """Iterable over global batches yielding this rank's shard of each (see :func:`shard_batch`)."""

    def __init__(self, batches, rank: int, world_size: int, *, time_first: bool) -> None:
        self.batches, self.rank, self.world_size, self.time_first = batches, rank, world_size, time_first

    def __iter__(self):
        for x, y in self.batches:
            yield shard_batch(x, y, self.rank, self.world_size, time_first=self.time_first)


def _fit_worker(rank, world_size, model_fn, method, batches, val, fit_kwargs, strategy, time_first, seed, out_path):
    from .methods import get_method
    from .trainer import fit

    torch.manual_seed(int(seed))
    model = model_fn()
    if dist.get_backend() == "nccl":
        model = model.to(f"cuda:{rank}")
    method = get_method(method) if isinstance(method, str) else method
    optimizer = torch.optim.Adam(model.parameters(), lr=float(fit_kwargs.pop("lr", 1e-3)))
    if strategy == "ddp":
        wrapped = DDP(model, device_ids=[rank] if dist.get_backend() == "nccl" else None)
    else:
        wrapped = model
        average_gradients_before_step(optimizer)
    res = fit(wrapped, method, ShardedBatches(batches, rank, world_size, time_first=time_first), val,
              optimizer=optimizer, seed=int(seed) + rank, progress=False, **fit_kwargs)
    if rank == 0:
        save_checkpoint(out_path, {"model": {k: v.cpu() for k, v in model.state_dict().items()},
                                   "history": res.history, "best_epoch": res.best_epoch})


def fit_data_parallel(
    model_fn: Callable[[], nn.Module],
    method: Union[str, Any],
    batches: List[Tuple[torch.Tensor, torch.Tensor]],
    val_batches: Optional[List[Tuple[torch.Tensor, torch.Tensor]]] = None,
    *,
    world_size: int = 2,
    strategy: str = "ddp",
    time_first: bool = False,
    seed: int = 0,
    backend: Optional[str] = None,
    **fit_kwargs: Any,
) -> Dict[str, Any]:
    """Train with :func:`~spikerobust.robust.trainer.fit` in ``world_size`` processes on shards of
    each global batch; returns rank 0's ``{"model": state_dict, "history", "best_epoch"}``.

    Args:
        model_fn: picklable builder of the model (e.g. ``functools.partial(get_model, "lsnn_ecg")``).
        method: registered method name or a picklable :class:`TrainingMethod`.
        batches: the GLOBAL training batches ``(x, y)`` (each batch size divisible by ``world_size``).
        val_batches: validation batches (evaluated whole on every rank).
        world_size: number of processes.
        strategy: ``"ddp"`` or ``"allreduce"`` (see the module docstring).
        time_first: ``x`` is ``[T, B, F]`` (shard axis 1) rather than ``[B, ...]``.
        seed: model-initialisation seed (every rank); rank ``r`` trains with RNG seed ``seed + r``.
        backend: ``"gloo"``/``"nccl"`` (default :func:`default_backend`).
        **fit_kwargs: ``epochs``, ``lr`` (Adam), ``milestones``, ``checkpoint_dir``, ``restore_best``...

    Raises:
        ValueError: an unknown strategy or a batch not divisible by ``world_size``.
    """
    if strategy not in ("ddp", "allreduce"):
        raise ValueError(f"strategy must be 'ddp' or 'allreduce', got {strategy!r}")
    for x, y in batches:
        if int(y.shape[0]) % int(world_size):
            raise ValueError(f"every global batch size must be divisible by world_size={world_size}, got {y.shape[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rank0.pt")
        launch(_fit_worker, world_size, (model_fn, method, batches, val_batches, dict(fit_kwargs), strategy,
                                         bool(time_first), int(seed), out), backend=backend)
        return load_checkpoint(out)
