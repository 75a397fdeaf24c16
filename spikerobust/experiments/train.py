"""Training one method: the model file, the data fingerprint, :func:`train_method` and :func:`train_single`.

* :func:`train_method` trains one method on a task (best clean-validation epoch kept; the trainer's
  checkpoints make an interrupted run resumable) and saves a self-describing model file that
  :func:`load_model` reads back with ``weights_only=True``.
* :func:`train_single` builds the config and the task data for one method given as on the command
  line, and trains it: what ``spikerobust train`` and the example scripts share.

Examples:
    >>> from spikerobust.experiments import train_single
    >>> run = train_single("ecg", "beta", overrides={"epochs": 2, "out_dir": "/tmp/b"})  # doctest: +SKIP
    >>> run.info["test_accuracy"], run.write_results()                                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from ..models import get_model
from ..robust.checkpoint import atomic_write, load_checkpoint, lock_folder, save_checkpoint
from ..robust.methods import get_method
from ..robust.trainer import evaluate_accuracy, fit
from .config import EVAL_FIELDS, ExperimentConfig, lr_milestones, make_config, parse_method
from .runfolder import check_allow, check_resumable, claim_folder
from .tasks import TaskData, load_task

__all__ = ["train_method", "train_single", "SingleRun", "save_model", "load_model", "load_model_and_data",
           "recorded_config", "data_fingerprint", "non_finite_names", "MODEL_FORMAT"]

log = logging.getLogger(__name__)

MODEL_FORMAT = "spikerobust.model/1"


def save_model(path: Union[str, Path], model: nn.Module, data: TaskData, cfg: ExperimentConfig, label: str,
               info: Optional[dict] = None) -> Path:
    """Write a model file: builder name and kwargs, state dict, the config, the method, metrics.

    ``world_size`` (the number of data-parallel processes that trained it; ``info["world_size"]``,
    default 1) is kept at the top level as well.
    """
    state = {
        "format": MODEL_FORMAT,
        "model": data.model,
        "model_kwargs": dict(data.model_kwargs),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": json.loads(json.dumps(cfg.to_dict())),
        "label": label,
        "method": dict(cfg.methods.get(label, {})),
        "info": json.loads(json.dumps(info or {}, default=float)),
        "world_size": int((info or {}).get("world_size", 1)),
    }
    return save_checkpoint(path, state)


def non_finite_names(tensors: Mapping[str, torch.Tensor]) -> List[str]:
    """The names of the floating-point tensors that hold NaN or infinity."""
    return [k for k, v in tensors.items() if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def load_model(path: Union[str, Path], *, check_finite: bool = True) -> Tuple[nn.Module, dict]:
    """A model file written by :func:`save_model` (or ``spikerobust train``) → ``(model, meta)``.

    Loads with ``weights_only=True``: a file from someone else cannot run code.

    Args:
        check_finite: refuse a model whose weights hold NaN or infinity (it would give
            believable-looking accuracies: an LSNN that never spikes answers with its readout bias).

    Raises:
        ValueError: a file that is not a spikerobust model file, or one with non-finite weights.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"model file {str(path)!r} does not exist")
    state = load_checkpoint(path)
    if not isinstance(state, dict) or state.get("format") != MODEL_FORMAT:
        raise ValueError(f"{str(path)!r} is not a spikerobust model file (format {MODEL_FORMAT!r}); "
                         "the trainer's checkpoints/last.pt is not one: use the model.pt next to it")
    bad = non_finite_names(state["state_dict"]) if check_finite else []
    if bad:
        raise ValueError(f"model file {str(path)!r} holds non-finite weights (NaN or infinity in {', '.join(bad)}); "
                         "its accuracies would mean nothing: retrain it (e.g. with a lower lr)")
    model = get_model(state["model"], **state["model_kwargs"])
    model.load_state_dict(state["state_dict"])
    model.eval()
    meta = {k: v for k, v in state.items() if k != "state_dict"}
    return model, meta


def recorded_config(meta: dict) -> dict:
    """The settings a model file was trained with, completed for files written by older versions.

    A speech model saved before the ``standardize`` field existed was trained on MFCCs standardised
    with training statistics, so its features are rebuilt that way.
    """
    d = dict(meta["config"])
    if d.get("task") == "speech":
        d.setdefault("standardize", True)
    return d


def load_model_and_data(path: Union[str, Path], overrides: Optional[Mapping[str, Any]] = None, *,
                        resplit: bool = False) -> Tuple[nn.Module, dict, ExperimentConfig, TaskData]:
    """A model file and the data it was trained on: ``(model, meta, cfg, data)``.

    The config is the one the file records (:func:`recorded_config`) with ``overrides`` applied
    (e.g. ``{"data_dir": ...}`` when the data live elsewhere now). The settings that decide the
    split (:data:`~.config.DATA_FIELDS` but ``data_dir``) stay the model's: another value could put
    its training samples into the test split, so it needs ``resplit=True`` (``--resplit``). Data
    that differ from those the model was trained on (its recorded fingerprint) are logged.

    Raises:
        ValueError: the file is not a model file (:func:`load_model`), or ``overrides`` change the
            split without ``resplit``.
    """
    from .config import DATA_FIELDS

    model, meta = load_model(path)
    d = recorded_config(meta)
    over = dict(overrides or {})
    changed = {k: (d.get(k), v) for k, v in over.items() if k in DATA_FIELDS and k != "data_dir" and d.get(k) != v}
    if changed and not resplit:
        fields_ = ", ".join(f"{k}={n!r} (the model was trained with {o!r})" for k, (o, n) in changed.items())
        raise ValueError(f"{fields_}: the data split would change and its test samples may include the model's "
                         "training samples; pass --resplit (resplit=True) to evaluate on a new split anyway")
    if changed:
        log.warning("--resplit: data settings other than the model's (%s); the test split changes and may hold "
                    "samples the model was trained on", ", ".join(changed))
    d.update(over)
    cfg = ExperimentConfig.from_dict(d)
    data = load_task(cfg)
    recorded = meta.get("info", {}).get("data_fingerprint")
    if recorded and not changed and data_fingerprint(data) != recorded:
        log.warning("the data rebuilt from %s's settings differ from those it was trained on (data fingerprint); "
                    "were the data files changed?", path)
    return model, meta, cfg, data


def data_fingerprint(data: TaskData) -> str:
    """SHA-1 of every split's inputs and labels and of the class names: the data a run trained on."""
    h = hashlib.sha1()
    for split in ("train", "val", "test"):
        for t in getattr(data, split):
            h.update(split.encode())
            h.update(str(tuple(t.shape)).encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(json.dumps(list(data.classes)).encode())
    return h.hexdigest()


def _training_settings(cfg: ExperimentConfig, label: str, data: TaskData) -> dict:
    """What decides a method's training: the config less evaluation/runtime fields, plus the data."""
    d = cfg.compute_dict()
    for k in EVAL_FIELDS + ("data_dir",):
        d.pop(k, None)
    d["method"] = d.pop("methods").get(label)
    d["data_fingerprint"] = data_fingerprint(data)
    return d


def train_method(cfg: ExperimentConfig, label: str, data: TaskData, out_dir: Union[str, Path], *,
                 resume: bool = False, progress: Optional[bool] = None,
                 allow_change: Sequence[str] = ()) -> Tuple[nn.Module, dict]:
    """Train ``cfg.methods[label]`` on ``data``; write ``out_dir/model.pt`` (and trainer checkpoints).

    Every method starts from the same initialisation (``cfg.seed``) and sees the same batch order.
    A resumed training must have the settings and data its checkpoint recorded, except the fields
    in ``allow_change`` (see :func:`~spikerobust.robust.trainer.fit`), and the same number of
    processes.

    Inside a process group of ``world_size`` > 1 (``torchrun``, see
    :func:`~spikerobust.robust.distributed.process_group_from_env`) every rank calls this with the
    same data: each trains on its share of every global batch of ``cfg.batch_size`` samples with
    gradients summed across ranks (:func:`~spikerobust.robust.distributed.prepare_data_parallel`),
    rank ``r`` draws its training noise from seed ``cfg.seed + r``, and rank 0 alone writes the
    checkpoints, ``metrics.jsonl`` and ``model.pt``. Every rank returns the same model.

    Returns:
        ``(model, info)`` with the best-validation model in eval mode and its clean accuracies,
        best epoch, per-epoch history and training time.
    """
    if label not in cfg.methods:
        raise ValueError(f"method label {label!r} is not in the config (labels: {sorted(cfg.methods)})")
    from ..robust.distributed import check_same_on_every_rank, env_rank_world, prepare_data_parallel

    progress = cfg.progress if progress is None else progress
    out_dir = Path(out_dir)
    kwargs = dict(cfg.methods[label])
    name = kwargs.pop("method", label)
    rank, world = env_rank_world()
    torch.manual_seed(cfg.seed)
    model = get_model(data.model, **data.model_kwargs)
    method = get_method(name, **kwargs)
    settings = _training_settings(cfg, label, data)
    settings["world_size"] = world
    loader = data.loader(cfg.batch_size, cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(cfg.lr))  # fit's default optimiser
    if world > 1:
        _check_shards(data, cfg.batch_size, world)
        check_same_on_every_rank(settings["data_fingerprint"], "the training data (data fingerprint)")
        ckpt = out_dir / "checkpoints" / "last.pt"
        check_same_on_every_rank(ckpt.stat().st_size if resume and ckpt.is_file() else None,
                                 f"{ckpt} (its size; every rank must see rank 0's run folder to --resume)")
    dp = prepare_data_parallel(model, loader, optimizer, layout="time_first" if data.time_first else "batch_first")
    fitted = fit(model, method, dp.loader, data.batches("val"), epochs=cfg.epochs, optimizer=dp.optimizer,
                 lr=cfg.lr, milestones=lr_milestones(cfg), checkpoint_dir=out_dir / "checkpoints", resume=resume,
                 seed=cfg.seed + rank, progress=progress and rank == 0, settings=settings,
                 allow_change=tuple(allow_change), metrics_path=out_dir / "metrics.jsonl")
    dp.remove()
    model.eval()
    info = {"best_epoch": fitted.best_epoch, "history": fitted.history, "train_s": fitted.train_s,
            "changes": fitted.changes, "data_fingerprint": settings["data_fingerprint"], "world_size": world,
            "val_accuracy": evaluate_accuracy(model, data.batches("val")),
            "test_accuracy": evaluate_accuracy(model, data.batches("test"))}
    if rank == 0:
        save_model(out_dir / "model.pt", model, data, cfg, label, info)
    log.info("%s: clean test accuracy %.2f %% (best epoch %d)", label, 100 * info["test_accuracy"], fitted.best_epoch)
    return model, info


def _check_shards(data: TaskData, batch_size: int, world: int) -> None:
    """Refuse, before training, a batch that ``world`` processes cannot share (one sample each at least)."""
    n = int(data.train[1].shape[0])
    sizes = {min(int(batch_size), n), n % int(batch_size) or min(int(batch_size), n)}
    if min(sizes) < world:
        raise ValueError(f"batch_size={batch_size} on {n} training samples gives a global batch of {min(sizes)} "
                         f"sample(s), fewer than the {world} processes: choose a larger batch_size (or n_train) "
                         "or fewer processes")


@dataclass
class SingleRun:
    """One trained method (:func:`train_single`): its config, data, model and training record."""

    cfg: ExperimentConfig
    data: TaskData
    label: str
    model: nn.Module
    info: dict
    out: Path
    seconds: Dict[str, float] = field(default_factory=dict)

    def results(self, **extra: Any) -> dict:
        """The run's JSON record (config, method, data sizes, training, model file) plus ``extra``."""
        return {"config": self.cfg.to_dict(), "label": self.label, "method": self.cfg.methods[self.label],
                "data": {"description": self.data.description, "sizes": self.data.sizes,
                         "classes": self.data.classes, "composition": self.data.composition},
                "train": self.info, "model_file": str(self.out / "model.pt"), "seconds": self.seconds, **extra}

    def write_results(self, **extra: Any) -> dict:
        """Write :meth:`results` to ``out/results.json`` and return it."""
        results = self.results(**extra)
        atomic_write(self.out / "results.json", json.dumps(results, indent=1, default=float))
        return results


def train_single(task: str, method: str, preset: str = "quick", overrides: Optional[Mapping[str, Any]] = None, *,
                 config_file: Optional[Union[str, Path]] = None, resume: bool = False, overwrite: bool = False,
                 allow_change: Sequence[str] = ()) -> SingleRun:
    """Train one method given as on the command line (``"beta"``, ``"adversarial:beta=0.5"``).

    Settings: the preset, then ``config_file``, then ``overrides`` (``out_dir`` among them); the
    method's kwargs come from ``preset`` (:func:`~.config.parse_method`). Writes
    ``out_dir/config.json``, ``out_dir/model.pt`` and the trainer's checkpoints. A folder that
    holds a run needs ``resume=True`` (same settings but ``allow_change``) or ``overwrite=True``.

    Started by ``torchrun`` (``WORLD_SIZE`` > 1), the processes join one gloo process group
    (``env://``) and train data-parallel (:func:`train_method`); rank 0 alone checks, locks and
    writes the run folder, and a refusal there ends every rank. ``config.json`` holds the config
    fields plus ``world_size``; a config file given back as ``config_file`` may keep that key.

    Examples:
        >>> run = train_single("ecg", "beta", overrides={"epochs": 2, "out_dir": "/tmp/b"})  # doctest: +SKIP
        >>> run.info["test_accuracy"], run.write_results()                                  # doctest: +SKIP
    """
    from ..robust.distributed import process_group_from_env, run_on_rank0

    start = time.perf_counter()
    label, kwargs = parse_method(method, task, preset)
    overrides = {**(overrides or {}), "methods": {label: kwargs}}
    if config_file is not None:
        from .config import read_config_file

        recorded = read_config_file(config_file)
        if "world_size" in recorded:  # a run's config.json given back: its world_size is a record, not a field
            recorded.pop("world_size")
            overrides, config_file = {**recorded, **overrides}, None
    cfg = make_config(task, preset, config_file=config_file, overrides=overrides)
    allow_change = check_allow(allow_change, resume)
    out = Path(cfg.out_dir)
    with process_group_from_env("gloo") as (rank, world), contextlib.ExitStack() as held:
        def claim() -> None:  # rank 0 only: the other ranks never write into the folder
            claim_folder(out, resume, overwrite)
            held.enter_context(lock_folder(out))
            if resume:
                check_resumable(cfg, out, allow_change, world_size=world)
            atomic_write(out / "config.json", json.dumps({**cfg.to_dict(), "world_size": world}, indent=1) + "\n")

        run_on_rank0(claim)
        data = load_task(cfg)
        if rank == 0:
            log.info("%s; sizes %s%s", data.description, data.sizes,
                     f"; {world} processes share every batch of {cfg.batch_size}" if world > 1 else "")
        model, info = train_method(cfg, label, data, out, resume=resume, allow_change=allow_change)
    return SingleRun(cfg, data, label, model, info, out, {"train": time.perf_counter() - start})
