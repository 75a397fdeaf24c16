"""Data-parallel training with ``torch.distributed``: one process per device, the global batch split
across ranks, gradients averaged, so every rank holds the same parameters as a single process
that trained on the whole global batch.

Two strategies:

- ``"ddp"``: the model is wrapped in :class:`~torch.nn.parallel.DistributedDataParallel`, whose
  backward hooks average gradients. Use it for methods whose step calls the model once through
  its ordinary ``forward`` (``"standard"``, ``"dropout"``). The wrapper forwards the
  model's auxiliary-loss declaration (:func:`spikerobust.protocol.has_auxiliary_loss`).
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

Under ``torchrun`` (one process per rank, on one machine or several): :func:`process_group_from_env`
joins the group from the ``env://`` variables torchrun sets (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``), and :func:`prepare_data_parallel` sets a model, optimiser and
global-batch loader up for the ``"allreduce"`` strategy with exact weights: rank ``r`` trains on a
contiguous share of ``b_r`` of the ``B`` samples of each global batch (shares differ by at most
one sample, so any batch of at least ``world_size`` samples splits), its gradient is weighted by
``b_r / B`` before the sum over ranks, and an auxiliary loss that is a SUM over the batch (the
LSNN's rate regulariser) is divided by that weight on the rank. The summed gradient is then the
gradient of the single-process loss on the global batch, up to floating-point rounding: a
deterministic method (``"standard"``) trains to the single-process model. Methods whose inner
loops depend on the batch (the weight attack of adversarial training, AWP's perturbation, the
Entropy-SGD chain) run them on each rank's shard, so they are data-parallel variants of the
single-process method, not copies of it; the training loss in the history is rank 0's shard's.
``spikerobust train`` uses this (README, "Runs that span machines"); :func:`run_on_rank0` and
:func:`check_same_on_every_rank` keep every rank's view of the run folder and the data the same.
A resumed run restores rank 0's random state on every rank (the checkpoint holds rank 0's only).

Batches are split along the batch axis of the model's declared input layout
(:func:`spikerobust.protocol.input_layout`: ``[T, B, F]`` for an LSNN, ``[B, ...]`` otherwise);
the former ``time_first=`` arguments still work for one release with a ``DeprecationWarning``.

Equivalence holds for losses that are means over the batch. An LSNN's rate regulariser is a SUM
over the batch (docs/lsnn.md), so under data parallelism it is effectively divided by the number of
ranks; scale ``rate_strength`` by the world size to compensate.

Examples:
    >>> import functools, torch
    >>> from spikerobust.models import get_model
    >>> x, y = torch.randn(40, 64, 2), torch.randint(0, 4, (64,))
    >>> res = fit_data_parallel(functools.partial(get_model, "lsnn_ecg", n_hidden=8), "standard",
    ...                         [(x, y)], world_size=2, epochs=1)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..protocol import TIME_FIRST, batch_dim, has_auxiliary_loss, input_layout, resolve_layout
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
    "env_rank_world",
    "process_group_from_env",
    "run_on_rank0",
    "check_same_on_every_rank",
    "broadcast_parameters",
    "scale_aux_loss_by_share",
    "DataParallelSetup",
    "prepare_data_parallel",
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
    """``DistributedDataParallel`` that exposes the wrapped model's protocol declarations
    (:mod:`spikerobust.protocol`): ``supports_aux_loss`` and ``input_layout``."""

    @property
    def supports_aux_loss(self) -> bool:
        return has_auxiliary_loss(self.module)

    @property
    def input_layout(self) -> str:
        return input_layout(self.module)


def average_gradients_before_step(optimizer: torch.optim.Optimizer, share: Optional[Callable[[], float]] = None):
    """Register a step pre-hook that all-reduces every ``.grad`` of ``optimizer``'s parameters
    across ranks; returns the hook handle (``.remove()`` to undo).

    Args:
        optimizer: the optimiser whose ``step()`` is preceded by the reduction.
        share: ``None`` averages the gradients (equal shards); otherwise a function returning this
            rank's fraction ``b_r / B`` of the current global batch, and the gradients are summed
            with these weights (exact for losses that are batch means, also with unequal shards).
    """

    def hook(opt, args, kwargs):
        world = dist.get_world_size()
        weight = None if share is None else float(share())
        for group in opt.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)  # keep the collective calls aligned across ranks
                if weight is not None:
                    p.grad.mul_(weight)
                dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
                if weight is None:
                    p.grad.div_(world)

    return optimizer.register_step_pre_hook(hook)


def _shard_bounds(b: int, rank: int, world_size: int) -> Tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s contiguous share of ``b`` samples (sizes differ by at most 1)."""
    n, extra = divmod(b, world_size)
    start = rank * n + min(rank, extra)
    return start, start + n + (1 if rank < extra else 0)


def shard_batch(
    x: torch.Tensor,
    y: torch.Tensor,
    rank: int,
    world_size: int,
    *,
    layout: Optional[str] = None,
    uneven: bool = False,
    time_first: Optional[bool] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s contiguous share of a global batch (batch axis 1 if time first, else 0).

    Args:
        layout: ``"time_first"`` (``x`` is ``[T, B, F]``) or ``"batch_first"`` (``[B, ...]``),
            e.g. :func:`spikerobust.protocol.input_layout` of the model.
        uneven: allow a batch size not divisible by ``world_size``: the first ``B mod world_size``
            ranks take one sample more (weight the gradients by the shares, see
            :func:`average_gradients_before_step`).
        time_first: deprecated boolean form of ``layout``.

    Raises:
        ValueError: if the batch size is not divisible by ``world_size`` (without ``uneven``), or
            is smaller than ``world_size`` (a rank would get no sample), or no layout is given.

    Examples:
        >>> x, y = torch.arange(5.0)[:, None], torch.arange(5)
        >>> [shard_batch(x, y, r, 2, layout="batch_first", uneven=True)[1].tolist() for r in range(2)]
        [[0, 1, 2], [3, 4]]
    """
    dim = batch_dim(resolve_layout(layout, time_first, owner="shard_batch"))
    b, world_size = int(y.shape[0]), int(world_size)
    if not uneven and b % world_size:
        raise ValueError(f"the global batch size {b} must be divisible by world_size={world_size}")
    if b < world_size:
        raise ValueError(f"a global batch of {b} sample(s) cannot be split over world_size={world_size} processes "
                         "(every rank needs at least one sample): choose a larger batch_size or fewer processes")
    start, stop = _shard_bounds(b, int(rank), world_size)
    return x.narrow(dim, start, stop - start), y[start:stop]


class ShardedBatches:
    """Iterable over global batches yielding this rank's shard of each (see :func:`shard_batch`).

    ``share`` is the fraction ``b_r / B`` of the global batch in the shard last yielded. The
    wrapped loader's ``generator`` (checkpointed by the trainer, so that a resumed run sees the same
    batch order) and ``sampler`` are passed through, as is its length. ``layout`` (or the deprecated
    ``time_first``) is as in :func:`shard_batch`.
    """

    def __init__(self, batches, rank: int, world_size: int, *, layout: Optional[str] = None,
                 uneven: bool = False, time_first: Optional[bool] = None) -> None:
        self.batches, self.rank, self.world_size = batches, rank, world_size
        self.layout = resolve_layout(layout, time_first, owner="ShardedBatches")
        self.uneven = bool(uneven)
        self.share = 1.0 / int(world_size)

    @property
    def generator(self) -> Optional[torch.Generator]:
        return getattr(self.batches, "generator", None)

    @property
    def sampler(self) -> Any:
        return getattr(self.batches, "sampler", None)

    @property
    def time_first(self) -> bool:
        """Whether the batches are time first (``layout == "time_first"``)."""
        return self.layout == TIME_FIRST

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for x, y in self.batches:
            xs, ys = shard_batch(x, y, self.rank, self.world_size, layout=self.layout, uneven=self.uneven)
            self.share = int(ys.shape[0]) / int(y.shape[0])
            yield xs, ys


def _fit_worker(rank, world_size, model_fn, method, batches, val, fit_kwargs, strategy, layout, seed, out_path):
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
    layout = resolve_layout(layout, None, owner="fit_data_parallel", model=model)
    res = fit(wrapped, method, ShardedBatches(batches, rank, world_size, layout=layout), val,
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
    layout: Optional[str] = None,
    seed: int = 0,
    backend: Optional[str] = None,
    time_first: Optional[bool] = None,
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
        layout: ``"time_first"`` (``x`` is ``[T, B, F]``, shard axis 1) or ``"batch_first"``;
            default: the layout the model declares (:func:`spikerobust.protocol.input_layout`).
        seed: model-initialisation seed (every rank); rank ``r`` trains with RNG seed ``seed + r``.
        backend: ``"gloo"``/``"nccl"`` (default :func:`default_backend`).
        time_first: deprecated boolean form of ``layout``.
        **fit_kwargs: ``epochs``, ``lr`` (Adam), ``milestones``, ``checkpoint_dir``, ``restore_best``...

    Raises:
        ValueError: an unknown strategy or a batch not divisible by ``world_size``.
    """
    if strategy not in ("ddp", "allreduce"):
        raise ValueError(f"strategy must be 'ddp' or 'allreduce', got {strategy!r}")
    if layout is not None or time_first is not None:
        layout = resolve_layout(layout, time_first, owner="fit_data_parallel")
    for x, y in batches:
        if int(y.shape[0]) % int(world_size):
            raise ValueError(f"every global batch size must be divisible by world_size={world_size}, got {y.shape[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "rank0.pt")
        launch(_fit_worker, world_size, (model_fn, method, batches, val_batches, dict(fit_kwargs), strategy,
                                         layout, int(seed), out), backend=backend)
        return load_checkpoint(out)


# --------------------------------------------------------------------------- processes started by torchrun


def env_rank_world() -> Tuple[int, int]:
    """``(rank, world_size)`` of this process: from the initialised process group, else from the
    ``RANK``/``WORLD_SIZE`` variables ``torchrun`` sets, else ``(0, 1)``."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


@contextlib.contextmanager
def process_group_from_env(backend: str = "gloo") -> Iterator[Tuple[int, int]]:
    """Join the process group that ``torchrun`` describes (``env://`` rendezvous) for the block.

    With ``WORLD_SIZE`` unset or 1 (a plain process, or ``torchrun --nproc-per-node 1``) nothing is
    initialised; a group that is already initialised is used as it is and left open.

    Args:
        backend: ``"gloo"`` (CPU tensors; the pipeline trains on the CPU) or ``"nccl"``.

    Yields:
        ``(rank, world_size)``.

    Raises:
        ValueError: ``WORLD_SIZE > 1`` without ``MASTER_ADDR``/``MASTER_PORT`` (not started by torchrun).
    """
    rank, world = env_rank_world()
    if world <= 1 or dist.is_initialized():
        yield rank, world
        return
    missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(k)]
    if missing:
        raise ValueError(f"WORLD_SIZE={world} but {', '.join(missing)} is not set: start the processes with torchrun "
                         "(python -m torch.distributed.run), which sets the env:// rendezvous variables")
    dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world)
    try:
        yield rank, world
    finally:
        dist.destroy_process_group()


def _group_active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def run_on_rank0(fn: Callable[[], Any]) -> Any:
    """Call ``fn`` on rank 0 only; every rank returns its result, or raises if it raised.

    The other ranks wait for rank 0 and receive its outcome, so a refusal on rank 0 (a folder
    holding a run, a locked folder) ends every rank with the same message instead of leaving them
    waiting in the next collective. The result must be picklable. Without a process group ``fn``
    simply runs.

    Raises:
        ValueError: on ranks > 0, when ``fn`` raised a ``ValueError`` on rank 0 (else ``RuntimeError``).
    """
    if not _group_active():
        return fn()
    outcome: List[Any] = [None]
    if dist.get_rank() == 0:
        try:
            outcome[0] = ("ok", fn())
        except BaseException as err:
            dist.broadcast_object_list([("error", type(err).__name__, isinstance(err, ValueError), str(err))], src=0)
            raise
    dist.broadcast_object_list(outcome, src=0)
    if outcome[0][0] == "error":
        _, name, is_value_error, text = outcome[0]
        message = f"rank 0 failed ({name}): {text}"
        raise ValueError(message) if is_value_error else RuntimeError(message)
    return outcome[0][1]


def check_same_on_every_rank(value: Any, what: str) -> None:
    """Raise on every rank unless ``value`` (picklable, compared with ``==``) is the same on all ranks.

    Raises:
        ValueError: naming ``what`` and the ranks that differ from rank 0.
    """
    if not _group_active():
        return
    values: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    differ = [r for r, v in enumerate(values) if v != values[0]]
    if differ:
        raise ValueError(f"{what} differs between ranks: rank(s) {differ} have {values[differ[0]]!r}, "
                         f"rank 0 has {values[0]!r}")


def broadcast_parameters(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers into every rank's ``model`` (in place)."""
    if not _group_active():
        return
    with torch.no_grad():
        for t in model.state_dict().values():
            if torch.is_tensor(t):
                dist.broadcast(t, src=0)


def scale_aux_loss_by_share(model: nn.Module, share: Callable[[], float]):
    """Divide the auxiliary loss that ``model(x, return_aux_loss=True)`` returns by ``share()``.

    An auxiliary loss that is a sum over the batch (the LSNN's rate regulariser, docs/lsnn.md)
    then contributes its full-batch gradient once the ranks' gradients are summed with weights
    ``share`` (:func:`average_gradients_before_step`). A forward hook, so it also applies when a
    method evaluates the model through ``torch.func.functional_call``. Returns the hook handle.
    """

    def hook(module, args, kwargs, output):
        if kwargs.get("return_aux_loss") and isinstance(output, tuple) and len(output) == 2:
            return output[0], output[1] / float(share())
        return output

    return model.register_forward_hook(hook, with_kwargs=True)


@dataclass
class DataParallelSetup:
    """What :func:`prepare_data_parallel` returns: pass ``loader`` and ``optimizer`` to :func:`fit`.

    Attributes:
        loader: this rank's shards of the global batches (:class:`ShardedBatches`).
        optimizer: the optimiser, with the weighted gradient reduction before every ``step()``.
        rank, world_size: this process and the group's size.
        handles: the hooks (``remove()`` them to use the model alone again).
    """

    loader: Any
    optimizer: torch.optim.Optimizer
    rank: int
    world_size: int
    handles: List[Any] = field(default_factory=list)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles.clear()


def prepare_data_parallel(model: nn.Module, loader: Any, optimizer: torch.optim.Optimizer, *,
                          layout: Optional[str] = None, time_first: Optional[bool] = None) -> DataParallelSetup:
    """Set ``model`` and ``optimizer`` up to train on this rank's shards of ``loader``'s global batches.

    Every rank must build the same model and iterate ``loader`` in the same order (same seed); rank
    0's parameters are broadcast once more so that every rank starts from them. Gradients are
    summed across ranks with weights ``b_r / B`` before every optimiser step and an auxiliary loss
    is divided by the same weight (see the module docstring), so that every rank takes the step a
    single process would take on the global batch. Without a process group (one process) the
    loader and optimiser come back unchanged.

    Args:
        model, loader, optimizer: as for :func:`~spikerobust.robust.trainer.fit`.
        layout: the batches' layout (:func:`shard_batch`); default: the model's declared
            :func:`~spikerobust.protocol.input_layout`.
        time_first: deprecated boolean form of ``layout``.

    Examples:
        >>> from torch import nn
        >>> model = nn.Linear(3, 2)
        >>> opt = torch.optim.Adam(model.parameters())
        >>> setup = prepare_data_parallel(model, [(torch.zeros(4, 3), torch.zeros(4).long())], opt)
        >>> setup.world_size, setup.optimizer is opt
        (1, True)
    """
    layout = resolve_layout(layout, time_first, owner="prepare_data_parallel", model=model)
    rank, world = env_rank_world()
    if not _group_active():
        return DataParallelSetup(loader, optimizer, rank, 1)
    broadcast_parameters(model)
    sharded = ShardedBatches(loader, rank, world, layout=layout, uneven=True)
    handles = [average_gradients_before_step(optimizer, share=lambda: sharded.share)]
    if has_auxiliary_loss(model):
        handles.append(scale_aux_loss_by_share(model, lambda: sharded.share))
    return DataParallelSetup(sharded, optimizer, rank, world, handles)
