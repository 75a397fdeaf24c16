"""The training loop shared by every method: epochs, learning-rate schedule, best-validation
model selection, periodic attacked validation, atomic checkpoints and resume.

:func:`fit` runs ``method.step(model, x, y, optimizer)`` (any registered
:class:`~spikerobust.robust.methods.TrainingMethod`) over the training batches for each epoch,
steps the scheduler once per epoch, measures the clean validation accuracy (and, every
``attack_every`` epochs, the accuracy under the weight attack of
:func:`~spikerobust.robust.attacks.attacked_accuracy`), keeps a copy of the state dict of the
best clean-validation epoch (the paper's model selection, docs/lsnn.md) and writes
``checkpoint_dir/last.pt`` after every epoch.

Each epoch is logged as one line (``logging`` at INFO, logger ``spikerobust.robust.trainer``)::

    standard  epoch  3/30  loss 0.4123  val 81.25 %  lr 0.01  12.3 s  ETA 5m 12s

and appended to ``metrics.jsonl`` (one JSON object per epoch: the history row plus ``method``,
``epochs``, ``seconds`` and ``eta_s``; NaN written as ``null``), for tools that plot training
curves. A resumed run keeps the lines of the epochs its checkpoint holds and appends the rest.

The checkpoint holds the model, optimiser, scheduler and method states, every global RNG state
(and the training loader's generator, if it has one), the epoch count, the best state and the
history: tensors and primitives only, loaded with ``torch.load(weights_only=True)``
(:mod:`spikerobust.robust.checkpoint`). It is written to a temporary file and renamed, so an
interrupted run restarts from its last finished epoch and, with ``resume=True``, continues with
the very same random draws and data order as an uninterrupted run (bit-identical parameters on
the same machine and library versions).

A NaN or infinite training loss (or non-finite parameters at the end of an epoch) stops the run
with :class:`NonFiniteLossError`, whose message names the epoch, the step and the last good
checkpoint.

Data: the loaders yield ``(x, y)`` with ``x`` time-first ``[T, B, F]`` for an LSNN or images
``[B, C, H, W]`` for a CNN, and integer labels ``y [B]``; batches are moved to the model's device.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    >>> batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    >>> model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    >>> res = fit(model, "standard", batches, batches, epochs=2, lr=1e-2, milestones=[1], progress=False)
    >>> [h["epoch"] for h in res.history], res.history[1]["lr"]
    ([1, 2], 0.001)
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn
from tqdm import tqdm  # not tqdm.auto: its asyncio variant calls iter() on a DataLoader at construction

from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .core import count_correct, first_device
from .methods import TrainingMethod, get_method
from .spec import EVAL_ATTACK, LR, LR_GAMMA, AttackSpec

__all__ = ["fit", "FitResult", "NonFiniteLossError", "ResumeMismatchError", "settings_diff", "refuse_changes",
           "evaluate_accuracy", "unwrap_model", "format_epoch", "CHECKPOINT_NAME"]

logger = logging.getLogger(__name__)

#: File name of the rolling checkpoint inside ``checkpoint_dir``.
CHECKPOINT_NAME = "last.pt"


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN/inf loss or parameters; the message names where and what to resume from."""


class ResumeMismatchError(ValueError):
    """A resumed run's settings differ from those its checkpoint was written with."""


def settings_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> Dict[str, Tuple[Any, Any]]:
    """``{field: (old, new)}`` for every key whose value differs (a missing key reads as ``None``).

    Examples:
        >>> settings_diff({"lr": 0.01, "seed": 0}, {"lr": 0.05, "seed": 0})
        {'lr': (0.01, 0.05)}
    """
    return {k: (old.get(k), new.get(k)) for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)}


def refuse_changes(diff: Mapping[str, Tuple[Any, Any]], allow_change: Sequence[str], where: str,
                   changeable: Sequence[str] = ("lr", "epochs", "lr_drop_at")) -> None:
    """Raise unless every setting in ``diff`` (from :func:`settings_diff`) is in ``allow_change``.

    Args:
        diff: ``{setting: (value in the saved run, value now)}``.
        allow_change: settings allowed to differ on resume.
        where: the file the saved settings come from (named in the message).
        changeable: settings the message suggests passing to ``--allow-change``.

    Raises:
        ResumeMismatchError: naming each refused setting with both values.
    """
    refused = {k: v for k, v in diff.items() if k not in allow_change}
    if refused:
        fields_ = "; ".join(f"{k}: {o!r} there, {n!r} now" for k, (o, n) in refused.items())
        can = [k for k in refused if k in changeable]
        hint = f", or make the change deliberately with --allow-change {','.join(can)}" if can else ""
        raise ResumeMismatchError(
            f"resume: the settings differ from those {where} was written with ({fields_}); resume with the same "
            f"settings or start a new run (another output folder, or --overwrite){hint}")



@dataclass
class FitResult:
    """Outcome of :func:`fit`.

    Attributes:
        history: one dict per epoch: ``epoch`` (1-based), ``train_loss`` (mean of the methods'
            ``"loss"``), ``val_accuracy`` (``nan`` without validation data), ``attacked_accuracy``
            (or ``None``), ``lr`` (the learning rate used during the epoch).
        best_epoch: 1-based epoch with the best clean validation accuracy (the last epoch
            when there is no validation data).
        best_val_accuracy: its accuracy (``nan`` without validation data).
        best_state: a copy of the model's state dict at ``best_epoch``.
        checkpoint_path: ``checkpoint_dir/last.pt`` or ``None``.
        train_s: seconds spent training, summed over every resumed part of the run.
        changes: the deliberate setting changes made when resuming, one dict per resume:
            ``{"after_epoch": k, "fields": {name: [old, new]}}``.
    """

    history: List[Dict[str, Any]]
    best_epoch: int
    best_val_accuracy: float
    best_state: Dict[str, torch.Tensor] = field(repr=False)
    checkpoint_path: Optional[Path] = None
    train_s: float = 0.0
    changes: List[Dict[str, Any]] = field(default_factory=list)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The user's module inside a ``DistributedDataParallel``/``DataParallel`` wrapper (else itself)."""
    if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
        return model.module
    return model


def evaluate_accuracy(model: nn.Module, data: Iterable[Tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Clean accuracy over ``(x, y)`` batches, in eval mode without gradients (mode restored).

    The loop is :func:`spikerobust.robust.core.count_correct`.
    """
    correct, total = count_correct(model, data)
    if total == 0:
        raise ValueError("evaluate_accuracy: the data holds no sample")
    return correct / total


def _is_main_process() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or torch.distributed.get_rank() == 0


def _loader_generator(loader) -> Optional[torch.Generator]:
    g = getattr(loader, "generator", None)
    return g if isinstance(g, torch.Generator) else None


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s" if m else f"{s}s"


def format_epoch(method: str, row: Mapping[str, Any], epochs: int, seconds: float, eta_s: float) -> str:
    """One readable log line for a history ``row``.

    Examples:
        >>> row = {"epoch": 3, "train_loss": 0.41234, "val_accuracy": 0.8125, "attacked_accuracy": None, "lr": 0.01}
        >>> format_epoch("standard", row, 30, 12.3, 312.0)
        'standard  epoch  3/30  loss 0.4123  val 81.25 %  lr 0.01  12.3 s  ETA 5m 12s'
    """
    width = len(str(epochs))
    val = row.get("val_accuracy")
    parts = [f"{method}  epoch {row['epoch']:>{width}}/{epochs}", f"loss {row['train_loss']:.4f}",
             "val –" if val is None or not math.isfinite(val) else f"val {100 * val:.2f} %"]
    if row.get("attacked_accuracy") is not None:
        parts.append(f"attacked {100 * row['attacked_accuracy']:.2f} %")
    parts += [f"lr {row['lr']:g}", f"{seconds:.1f} s", f"ETA {_duration(eta_s)}"]
    return "  ".join(parts)


def _json_safe(value: Any) -> Any:
    """NaN/inf floats as ``None`` (JSON has no NaN), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _restart_metrics(path: Path, start_epoch: int) -> None:
    """Keep the lines of epochs ``<= start_epoch`` (those a resumed checkpoint holds), drop the rest."""
    kept = []
    if start_epoch > 0 and path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if int(json.loads(line)["epoch"]) <= start_epoch:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
    os.replace(tmp, path)


def _params_finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def fit(
    model: nn.Module,
    method: Union[str, TrainingMethod],
    train_loader: Iterable[Tuple[torch.Tensor, torch.Tensor]],
    val_loader: Optional[Iterable[Tuple[torch.Tensor, torch.Tensor]]] = None,
    *,
    epochs: int,
    lr: float = LR,
    milestones: Sequence[int] = (),
    lr_gamma: float = LR_GAMMA,
    optimizer: Optional[torch.optim.Optimizer] = None,
    scheduler: Optional[Any] = None,
    checkpoint_dir: Optional[Union[str, os.PathLike]] = None,
    resume: bool = True,
    attack_every: int = 0,
    attack_kwargs: Optional[Mapping[str, Any]] = None,
    attack: Optional[AttackSpec] = None,
    seed: Optional[int] = None,
    restore_best: bool = True,
    progress: bool = True,
    settings: Optional[Mapping[str, Any]] = None,
    allow_change: Sequence[str] = (),
    metrics_path: Union[str, os.PathLike, None] = "auto",
) -> FitResult:
    """Train ``model`` with ``method`` for ``epochs`` epochs (see the module docstring).

    Args:
        model: any ``nn.Module`` returning logits ``[B, C]`` (possibly DDP-wrapped, see
            :mod:`spikerobust.robust.distributed`).
        method: a :class:`TrainingMethod` or a registered name (default hyper-parameters).
        train_loader: iterable of ``(x, y)`` batches, re-iterated every epoch (a ``DataLoader``;
            its ``sampler.set_epoch`` is called when present).
        val_loader: validation batches for model selection (``None``: keep the last epoch).
        epochs: total number of epochs (a resumed run trains only the missing ones).
        lr, milestones, lr_gamma: default optimiser Adam(lr) with ``MultiStepLR(milestones,
            lr_gamma)`` stepped per epoch; e.g. the reference ECG schedule is ``epochs=200,
            lr=1e-3, milestones=[150]`` (1e-3 then 1e-4).
        optimizer, scheduler: your own instead (the scheduler needs ``step()`` and
            ``state_dict()``; it is stepped once per epoch).
        checkpoint_dir: folder for ``last.pt`` (``None``: no checkpoints).
        resume: continue from ``checkpoint_dir/last.pt`` when it exists.
        attack_every: every k epochs, also measure the validation accuracy under the weight
            attack ``attack`` (0: never; default :data:`~spikerobust.robust.spec.EVAL_ATTACK`,
            ε = 0.1); ``attack_kwargs`` go to
            :func:`~spikerobust.robust.attacks.attacked_accuracy` as well (e.g. ``seed``,
            ``include``, or single attack fields such as ``epsilon``, which override ``attack``).
        seed: seeds Python, NumPy and torch at a fresh start (a resumed run restores the saved
            RNG states instead).
        restore_best: load the best epoch's state into ``model`` at the end.
        progress: tqdm bars over epochs and batches.
        settings: a flat JSON-like record of everything that decides the run (configuration,
            data fingerprint), kept in the checkpoint; a resume whose ``settings`` differ from the
            checkpoint's is refused (:class:`ResumeMismatchError`, naming each differing key)
            unless the key is in ``allow_change``; with ``settings`` the schedule (``lr``,
            ``milestones``, ``epochs``) is held to the same rule. A schedule change (allowed, or
            any without ``settings``) is applied to the restored optimiser and scheduler, and
            every change is recorded in the history row of the first resumed epoch.
        allow_change: keys of ``settings`` (and ``lr``, ``milestones``, ``epochs``) that a
            resume may change deliberately.
        metrics_path: the ``metrics.jsonl`` file (see the module docstring); ``"auto"`` is
            ``checkpoint_dir/metrics.jsonl`` (none without ``checkpoint_dir``), ``None`` writes none.

    Returns:
        :class:`FitResult`.

    Raises:
        ValueError: ``epochs < 1`` or an unknown method name.
        ResumeMismatchError: a resume with other settings than the checkpoint's, not allowed.
        NonFiniteLossError: a NaN/inf loss or parameters.
    """
    if int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if isinstance(method, str):
        method = get_method(method)
    inner = unwrap_model(model)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=float(lr))
    if scheduler is None:
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(milestones), float(lr_gamma))
    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    dev = first_device(inner)
    history: List[Dict[str, Any]] = []
    best_epoch, best_acc, best_state = 0, -math.inf, {}
    start_epoch = 0
    last_good: Optional[Path] = None
    schedule = {"lr": float(lr), "milestones": [int(m) for m in milestones], "epochs": int(epochs)}
    settings = dict(settings or {})
    changes: List[Dict[str, Any]] = []
    pending_change: Optional[Dict[str, Any]] = None
    spent = 0.0
    if ckpt_path is not None and resume and ckpt_path.is_file():
        ckpt = load_checkpoint(ckpt_path, map_location=dev)
        diff = {}
        if settings and ckpt.get("settings") is not None:  # keys on one side only: a field added or removed since
            old = ckpt["settings"]
            diff.update(settings_diff({k: v for k, v in old.items() if k in settings},
                                      {k: v for k, v in settings.items() if k in old}))
        if ckpt.get("schedule") is not None:
            diff.update({k: v for k, v in settings_diff(ckpt["schedule"], schedule).items() if k not in diff})
        if settings:  # the caller opted into the resume contract: refuse what is not allowed
            refuse_changes(diff, tuple(allow_change) + (("milestones",) if {"epochs", "lr_drop_at"} & set(allow_change)
                                                           else ()), str(ckpt_path))
        inner.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scheduler") is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        if hasattr(method, "load_state_dict"):
            method.load_state_dict(ckpt.get("method", {}))
        set_rng_state(ckpt["rng"])
        g = _loader_generator(train_loader)
        if g is not None and ckpt.get("loader_generator") is not None:
            g.set_state(ckpt["loader_generator"].cpu())
        history = list(ckpt["history"])
        best = ckpt["best"]
        best_epoch, best_acc, best_state = int(best["epoch"]), float(best["accuracy"]), dict(best["state"])
        start_epoch = int(ckpt["epoch"])
        last_good = ckpt_path
        spent = float(ckpt.get("train_s", 0.0))
        changes = list(ckpt.get("changes", []))
        old_lr = (ckpt.get("schedule") or {}).get("lr")
        if old_lr is not None and "lr" in diff and float(old_lr) > 0:
            factor = float(lr) / float(old_lr)
            for group in optimizer.param_groups:
                group["lr"] = group["lr"] * factor
                if "initial_lr" in group:
                    group["initial_lr"] = float(lr)
            if hasattr(scheduler, "base_lrs"):
                scheduler.base_lrs = [float(lr) for _ in scheduler.base_lrs]
        if "milestones" in diff and hasattr(scheduler, "milestones"):
            scheduler.milestones = collections.Counter(schedule["milestones"])
        if diff:
            pending_change = {"after_epoch": start_epoch, "fields": {k: [o, n] for k, (o, n) in diff.items()}}
            changes.append(pending_change)
            logger.warning("resumed %s after epoch %d with deliberate changes: %s", ckpt_path, start_epoch,
                           pending_change["fields"])
        logger.info("resumed from %s after epoch %d", ckpt_path, start_epoch)
    elif seed is not None:
        random.seed(int(seed))
        np.random.seed(int(seed) % 2**32)
        torch.manual_seed(int(seed))

    if metrics_path == "auto":
        metrics_path = Path(checkpoint_dir) / "metrics.jsonl" if checkpoint_dir is not None else None
    method_name = str(getattr(method, "name", type(method).__name__))
    if metrics_path is not None and _is_main_process():
        metrics_path = Path(metrics_path)
        _restart_metrics(metrics_path, start_epoch)
    t_start = time.perf_counter()
    epoch_times: List[float] = []
    epoch_bar = tqdm(range(start_epoch, int(epochs)), desc=f"{getattr(method, 'name', 'train')}",
                     disable=not progress, initial=start_epoch, total=int(epochs))
    for epoch in epoch_bar:
        sampler = getattr(train_loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        model.train()
        t_epoch = time.perf_counter()
        epoch_lr = float(optimizer.param_groups[0]["lr"])
        losses = []
        step = -1
        for step, (x, y) in enumerate(tqdm(train_loader, desc=f"epoch {epoch + 1}", leave=False, disable=not progress)):
            try:
                metrics = method.step(model, x.to(dev), y.to(dev), optimizer)
            except RuntimeError as err:  # e.g. Adam's step size overflowing float32 at an absurd lr
                if "overflow" not in str(err):
                    raise
                raise NonFiniteLossError(
                    f"numerical overflow at epoch {epoch + 1}, step {step + 1} ({err}; learning rate "
                    f"{float(optimizer.param_groups[0]['lr']):g}); last good checkpoint: "
                    f"{last_good if last_good is not None else 'none written yet'}") from None
            loss = float(metrics["loss"])
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"non-finite training loss ({loss}) at epoch {epoch + 1}, step {step + 1}; "
                    f"last good checkpoint: {last_good if last_good is not None else 'none written yet'}"
                )
            losses.append(loss)
        if step < 0:
            raise ValueError("train_loader yielded no batch")
        if not _params_finite(inner):
            raise NonFiniteLossError(
                f"non-finite parameters after epoch {epoch + 1}, step {step + 1}; "
                f"last good checkpoint: {last_good if last_good is not None else 'none written yet'}"
            )
        scheduler.step()
        val_acc = evaluate_accuracy(inner, val_loader) if val_loader is not None else math.nan
        attacked = None
        if attack_every and val_loader is not None and (epoch + 1) % int(attack_every) == 0:
            from .attacks import attacked_accuracy

            kw = {"progress": False, **dict(attack_kwargs or {})}
            attacked = attacked_accuracy(inner, val_loader, spec=attack if attack is not None else EVAL_ATTACK, **kw)
        score = val_acc if val_loader is not None else float(epoch)
        if score > best_acc:
            best_epoch, best_acc = epoch + 1, score
            best_state = {k: v.detach().clone() for k, v in inner.state_dict().items()}
        row = {
            "epoch": epoch + 1,
            "train_loss": float(np.mean(losses)),
            "val_accuracy": val_acc,
            "attacked_accuracy": attacked,
            "lr": epoch_lr,
        }
        if pending_change is not None:
            row["changes"] = pending_change["fields"]
            pending_change = None
        history.append(row)
        epoch_times.append(time.perf_counter() - t_epoch)
        eta = float(np.mean(epoch_times)) * (int(epochs) - epoch - 1)
        logger.info("%s", format_epoch(method_name, row, int(epochs), epoch_times[-1], eta))
        if metrics_path is not None and _is_main_process():
            record = {"method": method_name, **row, "epochs": int(epochs), "seconds": epoch_times[-1], "eta_s": eta}
            with open(metrics_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(_json_safe(record), allow_nan=False) + "\n")
        epoch_bar.set_postfix(loss=row["train_loss"], val=val_acc)
        if ckpt_path is not None and _is_main_process():
            g = _loader_generator(train_loader)
            state = {
                "format": 1,
                "epoch": epoch + 1,
                "method_name": str(getattr(method, "name", type(method).__name__)),
                "model": inner.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if hasattr(scheduler, "state_dict") else None,
                "method": method.state_dict() if hasattr(method, "state_dict") else {},
                "rng": rng_state(),
                "loader_generator": g.get_state() if g is not None else None,
                "history": history,
                "best": {"epoch": best_epoch, "accuracy": float(best_acc), "state": best_state},
                "settings": settings,
                "schedule": schedule,
                "changes": changes,
                "train_s": spent + time.perf_counter() - t_start,
            }
            save_checkpoint(ckpt_path, state)
            last_good = ckpt_path
    if not best_state:
        best_state = {k: v.detach().clone() for k, v in inner.state_dict().items()}
    if restore_best:
        inner.load_state_dict(best_state)
    best_val = best_acc if val_loader is not None else math.nan
    return FitResult(history, best_epoch, float(best_val), best_state, ckpt_path, spent + time.perf_counter() - t_start,
                     changes)
