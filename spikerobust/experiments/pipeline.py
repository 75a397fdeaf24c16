"""Train, evaluate, verify and compare: the steps the ``spikerobust`` command chains together.

* :func:`train_method` trains one method on a task (best clean-validation epoch kept; the trainer's
  checkpoints make an interrupted run resumable) and saves a self-describing model file that
  :func:`load_model` reads back with ``weights_only=True``.
* :func:`train_single` builds the config and the task data for one method given as on the command
  line, and trains it: what ``spikerobust train`` and the example scripts share.
* :func:`evaluate_model` measures what the paper reports for one model: clean accuracy, Table 1
  (mismatch mean/std/min per level), worst-case-attack curves against a random perturbation of
  equal size, verified accuracy against ζ, the weight-loss landscape and its flatness, and (LSNN)
  the membrane-potential distribution relative to the threshold. With the mismatch part come
  per-class figures (sensitivity, PPV, confusion matrix; scikit-learn's metrics), clean and as
  the mean over ``n_draws`` draws at m = 0.5.
* :func:`run_reproduce` does both for every method of a config, in parallel processes when
  ``cfg.jobs > 1``, keeping each method's results on disk so that ``resume=True`` redoes nothing
  finished; then Mann-Whitney U tests against standard training and the report
  (:mod:`.report`).

Layout of a run folder::

    config.json  report.md  results.json  *.png  .lock  provenance.json (command, commit, machine, times)
    methods/<label>/model.pt  methods/<label>/results.json  methods/<label>/checkpoints/last.pt
    seeds/seed<s>/methods/<label>/...   (with ``seeds`` > 1: the extra models, seeds seed + 1 ...)

Run folders are protected: a folder that holds a run is only written into with ``resume=True``
(same settings, checked field by field against ``config.json`` and the checkpoint's record of the
settings and data fingerprint; deliberate changes through ``allow_change``) or
``overwrite=True``; while a run trains, its folder's ``.lock`` is held, so a second process
writing into it is refused; pool workers end when the process that started them ends.

Spread sweeps: ``run_reproduce(cfg, only=[label])`` is one job of a sweep whose methods run as
separate jobs (``spikerobust reproduce TASK --out-dir RUN --only LABEL``): the jobs share the run
folder and its ``config.json`` (same settings in every job) and lock only their method folders
(``methods/<label>/.lock``); :func:`assemble_report` (``spikerobust report RUN``) evaluates the
models not yet evaluated and writes the report once every method is there.

Examples:
    >>> from spikerobust.experiments import make_config, run_reproduce
    >>> cfg = make_config("ecg", "quick", overrides={"out_dir": "/tmp/sr"})   # doctest: +SKIP
    >>> results = run_reproduce(cfg)                                           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from ..models import get_model
from ..robust.checkpoint import atomic_write, load_checkpoint, lock_folder, save_checkpoint
from ..robust.methods import get_method
from ..robust.trainer import evaluate_accuracy, fit, refuse_changes, settings_diff
from .config import (CHANGEABLE_FIELDS, EVAL_FIELDS, ExperimentConfig, check_allow_change, lr_milestones, make_config,
                     parse_method)
from .tasks import TaskData, load_task

__all__ = ["train_method", "train_single", "SingleRun", "evaluate_model", "save_model", "load_model",
           "run_reproduce", "assemble_report", "sweep_status", "PARTS", "data_fingerprint",
           "MODEL_FORMAT"]

log = logging.getLogger(__name__)

MODEL_FORMAT = "spikerobust.model/1"
#: mismatch level of the per-class figures (sensitivity, PPV, confusion matrix), next to the clean ones
PER_CLASS_LEVEL = 0.5
#: evaluation parts, in the order they run
PARTS = ("mismatch", "attack", "verify", "landscape", "membrane", "cost")
#: histogram of the scaled voltage (v − A)/A kept in the results (range and bins)
MEMBRANE_RANGE, MEMBRANE_BINS = (-3.0, 3.0), 120


# --------------------------------------------------------------------------- model files


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


def _non_finite(tensors: Mapping[str, torch.Tensor]) -> list:
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
    bad = _non_finite(state["state_dict"]) if check_finite else []
    if bad:
        raise ValueError(f"model file {str(path)!r} holds non-finite weights (NaN or infinity in {', '.join(bad)}); "
                         "its accuracies would mean nothing: retrain it (e.g. with a lower lr)")
    model = get_model(state["model"], **state["model_kwargs"])
    model.load_state_dict(state["state_dict"])
    model.eval()
    meta = {k: v for k, v in state.items() if k != "state_dict"}
    return model, meta


# --------------------------------------------------------------------------- training


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
    dp = prepare_data_parallel(model, loader, optimizer, time_first=data.time_first)
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
    import contextlib

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
    allow_change = _check_allow(allow_change, resume)
    out = Path(cfg.out_dir)
    with process_group_from_env("gloo") as (rank, world), contextlib.ExitStack() as held:
        def claim() -> None:  # rank 0 only: the other ranks never write into the folder
            _claim_folder(out, resume, overwrite)
            held.enter_context(lock_folder(out))
            if resume:
                _check_resumable(cfg, out, allow_change, world_size=world)
            atomic_write(out / "config.json", json.dumps({**cfg.to_dict(), "world_size": world}, indent=1) + "\n")

        run_on_rank0(claim)
        data = load_task(cfg)
        if rank == 0:
            log.info("%s; sizes %s%s", data.description, data.sizes,
                     f"; {world} processes share every batch of {cfg.batch_size}" if world > 1 else "")
        model, info = train_method(cfg, label, data, out, resume=resume, allow_change=allow_change)
    return SingleRun(cfg, data, label, model, info, out, {"train": time.perf_counter() - start})


# --------------------------------------------------------------------------- evaluation


def is_lsnn_model(model: nn.Module) -> bool:
    """Whether ``model`` contains a :class:`~spikerobust.nn.LSNN` layer (membrane analysis, PCM per step)."""
    from ..nn.lsnn import LSNN

    return any(isinstance(m, LSNN) for m in model.modules())


def evaluate_model(model: nn.Module, data: TaskData, cfg: ExperimentConfig, *, label: str = "",
                   parts: Iterable[str] = PARTS, progress: Optional[bool] = None) -> dict:
    """The paper's measurements of one trained model on ``data.test`` (see the module docstring).

    Args:
        parts: a subset of :data:`PARTS`; ``"membrane"`` is skipped for models without an LSNN.

    Returns:
        a JSON-friendly dict with ``test_accuracy`` and one entry per part run, plus ``timings``.
    """
    from ..analysis.membrane import membrane_summary, record_membrane
    from ..analysis.per_class import per_class_summary
    from ..robust.attacks import attacked_accuracy
    from ..robust.landscape import loss_landscape
    from ..robust.mismatch import mismatch_evaluate
    from ..verify import verified_accuracy

    parts = tuple(parts)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise ValueError(f"unknown evaluation part(s) {unknown}; choose from {PARTS}")
    progress = cfg.progress if progress is None else progress
    bad = _non_finite(dict(model.named_parameters()))
    if bad:
        raise ValueError(f"{label or 'model'}: non-finite weights (NaN or infinity in {', '.join(bad)}); "
                         "evaluating it would give meaningless accuracies")
    model.eval()
    test = data.batches("test")
    out: dict = {"test_accuracy": evaluate_accuracy(model, test), "timings": {}}

    def timed(part: str, fn):
        t0 = time.perf_counter()
        out[part] = fn()
        out["timings"][part] = time.perf_counter() - t0
        log.info("%s: %s done in %.1f s", label, part, out["timings"][part])

    if "mismatch" in parts:
        timed("mismatch", lambda: mismatch_evaluate(model, test, levels=cfg.levels, n_draws=cfg.n_draws, seed=cfg.seed,
                                                    label=label, progress=progress).to_dict())
        timed("per_class", lambda: per_class_summary(model, test, data.classes, level=PER_CLASS_LEVEL,
                                                     n_draws=cfg.n_draws, seed=cfg.seed))
    if "attack" in parts:
        def attack():
            res = {}
            for eps in cfg.attack_eps:
                if eps == 0:
                    res[str(eps)] = {"pga": out["test_accuracy"], "random": out["test_accuracy"]}
                    continue
                res[str(eps)] = {kind: attacked_accuracy(model, test, eps, attack=kind, objective=cfg.attack_objective,
                                                         seed=cfg.seed, progress=False)
                                 for kind in ("pga", "random")}
            return res
        timed("attack", attack)
    if "verify" in parts:
        timed("verify", lambda: {str(z): verified_accuracy(model, test, z) for z in cfg.zetas})
    if "landscape" in parts:
        def landscape():
            land = loss_landscape(model, test, n_directions=cfg.landscape_directions, n_alphas=cfg.landscape_points,
                                  seed=cfg.seed, label=label, progress=progress)
            alphas, smooth = land.smoothed
            return {"alphas": alphas.tolist(), "smoothed": smooth.tolist(), "flatness": float(land.flatness)}
        timed("landscape", landscape)
    if "membrane" in parts and is_lsnn_model(model) and cfg.membrane_samples > 0:
        def membrane():
            rec = record_membrane(model, data.head("test", cfg.membrane_samples)[0])
            counts, edges = np.histogram(rec.scaled.clamp(*MEMBRANE_RANGE).flatten().numpy(), bins=MEMBRANE_BINS,
                                         range=MEMBRANE_RANGE)
            return {**membrane_summary(rec), "hist_counts": counts.tolist(), "hist_edges": edges.tolist()}
        timed("membrane", membrane)
    if "cost" in parts:
        from ..analysis.cost import hardware_cost

        timed("cost", lambda: hardware_cost(model, test).to_dict())  # NeuroBench: synaptic ops, sparsity, footprint
    return out


# --------------------------------------------------------------------------- the comparison


def _method_dir(cfg: ExperimentConfig, label: str) -> Path:
    return Path(cfg.out_dir) / "methods" / label.replace("/", "_")


def _run_method(cfg: ExperimentConfig, label: str, data: Optional[TaskData], resume: bool,
                allow_change: Sequence[str] = ()) -> dict:
    """Train (or reuse) and evaluate one method; its results are written to its folder.

    A resume reuses finished results unless ``allow_change`` names a field (then the evaluation is
    redone), and a trained model unless ``allow_change`` names a training field.
    """
    folder = _method_dir(cfg, label)
    results_path = folder / "results.json"
    if resume and results_path.exists() and not allow_change:
        log.info("%s: reusing finished results %s", label, results_path)
        return json.loads(results_path.read_text())
    data = data if data is not None else load_task(cfg)
    model_path = folder / "model.pt"
    if resume and model_path.exists() and not (set(allow_change) - set(EVAL_FIELDS)):
        model, meta = load_model(model_path)
        info = meta["info"]
        log.info("%s: reusing trained model %s", label, model_path)
    else:
        model, info = train_method(cfg, label, data, folder, resume=resume, allow_change=allow_change)
    res = evaluate_model(model, data, cfg, label=label)
    res.update(label=label, method=dict(cfg.methods[label]), val_accuracy=info["val_accuracy"],
               best_epoch=info["best_epoch"], history=info["history"], train_s=info.get("train_s", float("nan")))
    atomic_write(results_path, json.dumps(res, default=float))
    return res


def _worker_init(parent_pid: int) -> None:
    """Pool initializer: the worker ends when the process that started it ends (``kill -9`` included).

    On Linux the kernel sends SIGKILL at the parent's death (``PR_SET_PDEATHSIG``); everywhere a
    daemon thread checks once a second that the parent is still the worker's parent.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    if os.getppid() != parent_pid:  # the parent died before the death signal was armed
        os._exit(1)
    threading.Thread(target=watch, name="parent-alive", daemon=True).start()


def _worker(cfg_dict: dict, label: str, resume: bool, threads: int, allow_change: Sequence[str] = (),
            data_cfg_dict: Optional[dict] = None) -> dict:
    """Run one method in a pool process; ``data_cfg_dict``: build the data from this config instead
    (the extra seeds of a method train on the first seed's data split)."""
    from .._runtime import keep_freed_memory

    keep_freed_memory()
    torch.set_num_threads(threads)
    cfg = ExperimentConfig.from_dict(cfg_dict)
    cfg.progress = False
    tag = label if data_cfg_dict is None else f"{label} seed {cfg.seed}"
    # a worker process runs several methods in turn: label its log lines with the current one
    logging.basicConfig(level=logging.INFO, format=f"%(levelname)s [{tag}] %(message)s", force=True)
    data = None
    if data_cfg_dict is not None:
        data_cfg = ExperimentConfig.from_dict(data_cfg_dict)
        data_cfg.progress = False
        data = load_task(data_cfg)
    return _run_method(cfg, label, data, resume, allow_change)


def _check_allow(allow_change: Sequence[str], resume: bool) -> Tuple[str, ...]:
    names = check_allow_change(allow_change)
    if names and not resume:
        raise ValueError("--allow-change only applies to --resume (a new run takes any settings)")
    return names


#: what makes a folder hold a run
_RUN_FILES = ("config.json", "model.pt", "results.json", "report.md", "checkpoints", "methods")


def _claim_folder(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to write a new run over a folder holding one, unless ``overwrite``."""
    if resume and overwrite:
        raise ValueError("--resume continues the run in the folder and --overwrite replaces it: give one of them")
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} is a file, not a folder")
    held = [n for n in _RUN_FILES if (out / n).exists()]
    if held and not resume and not overwrite:
        raise ValueError(f"{str(out)!r} holds a run ({', '.join(held)}); pass --resume to continue it, --overwrite to "
                         "replace it, or choose another --out-dir")
    if overwrite and held:
        log.warning("--overwrite: replacing the run in %s", out)


def _check_resumable(cfg: ExperimentConfig, out: Path, allow_change: Sequence[str] = (),
                     world_size: Optional[int] = None) -> None:
    """Refuse a resume whose settings differ from ``out/config.json`` (but ``allow_change``), naming each
    field, or (``world_size`` given) that runs on another number of processes than the one recorded there."""
    path = out / "config.json"
    if not path.exists():
        return
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"--resume: {path} is not valid JSON ({err})") from None
    recorded = saved.pop("world_size", None)  # a record of `train`, not a config field
    if world_size is not None and recorded is not None and int(recorded) != int(world_size):
        raise ValueError(f"--resume: {path} records world_size={recorded} processes, this run has {world_size}: "
                         f"resume with {recorded} processes (torchrun --nproc-per-node/--nnodes), or start a new run")
    old = ExperimentConfig.from_dict(saved).compute_dict()
    new = cfg.compute_dict()
    old_m, new_m = old.pop("methods"), new.pop("methods")
    for d in (old, new):
        d.pop("data_dir")  # the data themselves are compared by fingerprint when training resumes
    diff = settings_diff(old, new)
    diff.update({f"methods.{k}": (old_m[k], v) for k, v in new_m.items() if k in old_m and old_m[k] != v})
    refuse_changes(diff, allow_change, str(path), CHANGEABLE_FIELDS)


def run_reproduce(cfg: ExperimentConfig, *, resume: bool = False, overwrite: bool = False,
                  allow_change: Sequence[str] = (), only: Optional[Sequence[str]] = None,
                  command: Optional[str] = None) -> dict:
    """Train and evaluate every method of ``cfg``, compare them, write the run folder.

    A sweep can also be spread over jobs (a scheduler's array, or machines sharing the folder):
    each job runs with the sweep's whole config and ``only`` naming its method(s), and
    :func:`assemble_report` (``spikerobust report RUN``) compares them once all are there.

    Args:
        resume: continue the run in ``cfg.out_dir``: finished methods are read back, a trained
            model is evaluated without retraining, and an interrupted training continues from
            its last finished epoch. The config must match the one saved there.
        overwrite: replace a run already in ``cfg.out_dir`` (without it, and without
            ``resume``, a folder holding a run is refused).
        allow_change: fields (:data:`~.config.CHANGEABLE_FIELDS`) a resume may change; a
            training field retrains from the checkpoints, an evaluation field re-evaluates.
        only: train and evaluate only these labels of ``cfg.methods`` into the shared run folder
            and write no report (see :func:`_reproduce_part`).
        command: the command line that started this, kept in the run folder's ``provenance.json``
            with the commit, the machine and the elapsed time (:mod:`.publish`); ``None``: called
            from Python (``sys.argv`` is kept).

    Returns:
        the results dictionary also written to ``results.json``; with ``only``:
        ``{"methods": {label: results}}`` of those labels.
    """
    start = time.perf_counter()
    allow_change = _check_allow(allow_change, resume)
    out = Path(cfg.out_dir)
    if only is not None:
        return _reproduce_part(cfg, out, list(only), resume, overwrite, allow_change, command)
    _claim_folder(out, resume, overwrite)
    with lock_folder(out):
        return _reproduce_locked(cfg, out, resume, allow_change, start, command)


def _reproduce_locked(cfg: ExperimentConfig, out: Path, resume: bool, allow_change: Tuple[str, ...],
                      start: float, command: Optional[str] = None) -> dict:
    from .publish import finish_invocation, record_invocation

    if resume:
        _check_resumable(cfg, out, allow_change)
    cfg.save(out / "config.json")
    invocation = record_invocation(out, command)
    with contextlib.ExitStack() as held:
        for folder in _sweep_folders(cfg, out, cfg.methods):  # refuse while a job of a spread sweep trains one
            held.enter_context(lock_folder(folder))
        results = _reproduce_all(cfg, out, resume, allow_change, start)
    finish_invocation(out, invocation, time.perf_counter() - start)
    return results


def _reproduce_all(cfg: ExperimentConfig, out: Path, resume: bool, allow_change: Tuple[str, ...],
                   start: float) -> dict:
    from ..robust.stats import mann_whitney
    from .report import write_report

    data = load_task(cfg)
    labels = list(cfg.methods)
    runs: Dict[Tuple[str, int], dict] = {}  # (label, k) -> results of the model with seed seed + k
    jobs = min(int(cfg.jobs), len(labels) * cfg.seeds)
    if jobs > 1:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        log.info("training %d methods x %d seed(s) in %d processes (%d thread(s) each)", len(labels), cfg.seeds,
                 jobs, threads)
        from tqdm import tqdm

        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_worker_init,
                                 initargs=(os.getpid(),)) as pool:
            futures = {}
            for k in range(cfg.seeds):  # every method's first model before any extra seed
                for label in labels:
                    if k == 0:
                        args = (cfg.to_dict(), label, resume, threads, allow_change)
                    else:
                        args = (_seed_config(cfg, out, k).to_dict(), label, resume, threads, allow_change, cfg.to_dict())
                    futures[pool.submit(_worker, *args)] = (label, k)
            bar = tqdm(total=len(futures), desc="models", disable=not cfg.progress)
            for fut in _as_completed(futures):
                runs[futures[fut]] = fut.result()
                bar.update(1)
            bar.close()
    else:
        for label in labels:
            runs[label, 0] = _run_method(cfg, label, data, resume, allow_change)
    methods = {label: runs[label, 0] for label in labels}
    if cfg.seeds > 1:
        methods = _pool_seeds(cfg, out, data, methods, resume, allow_change, runs)

    tests: Dict[str, dict] = {}
    if "standard" in methods and "mismatch" in methods["standard"]:
        base = methods["standard"]["mismatch"]["accuracies"]
        for label, r in methods.items():
            if label == "standard":
                continue
            tests[label] = {}
            for m in cfg.levels:
                if m > 0:
                    mw = mann_whitney(torch.tensor(r["mismatch"]["accuracies"][str(m)]), torch.tensor(base[str(m)]))
                    tests[label][str(m)] = {"U": float(mw.statistic), "p": float(mw.pvalue)}
    results = {"config": cfg.to_dict(),
               "data": {"description": data.description, "sizes": data.sizes, "classes": data.classes,
                        "model": data.model, "model_kwargs": data.model_kwargs, "composition": data.composition},
               "methods": methods, "mann_whitney_vs_standard": tests,
               "elapsed_s": time.perf_counter() - start}
    write_report(results, cfg, out)
    return results


def _sweep_folders(cfg: ExperimentConfig, out: Path, labels: Iterable[str]) -> list:
    """The folders of ``labels``' models: ``methods/<label>`` and, with ``seeds`` > 1, each extra seed's."""
    return [_method_dir(cfg if k == 0 else _seed_config(cfg, out, k), label)
            for label in labels for k in range(cfg.seeds)]


def _reproduce_part(cfg: ExperimentConfig, out: Path, only: Sequence[str], resume: bool, overwrite: bool,
                    allow_change: Tuple[str, ...], command: Optional[str] = None) -> dict:
    """One job of a spread sweep: train and evaluate the labels ``only`` into the run folder ``out``.

    The run folder is shared: its ``config.json`` is written by the first job and every later job
    (and :func:`assemble_report`) must bring the same settings (a resume may change the fields of
    ``allow_change`` in it). The run folder's lock is held only while ``config.json`` is checked (a
    whole ``reproduce`` running in the folder refuses the job); each method's folder
    (``methods/<label>``, and ``seeds/seed<s>/methods/<label>`` with ``seeds`` > 1) is claimed
    like a run folder (``resume``/``overwrite``) and locked for the job, so jobs on different
    methods share the run folder and two jobs on one method do not.
    """
    unknown = [label for label in only if label not in cfg.methods]
    if not only or unknown:
        raise ValueError(f"--only: {'no method given' if not only else f'{unknown} not in the sweep'} "
                         f"(the sweep's methods: {', '.join(cfg.methods)})")
    if resume and overwrite:
        raise ValueError("--resume continues the run in the folder and --overwrite replaces it: give one of them")
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} is a file, not a folder")
    with lock_folder(out, wait=60.0):  # jobs started together take turns at this short check
        if (out / "config.json").exists():
            _check_resumable(cfg, out, allow_change if resume else ())
            if resume and allow_change:
                cfg.save(out / "config.json")
        else:
            cfg.save(out / "config.json")
        from .publish import record_invocation

        record_invocation(out, command, part=only)
    with contextlib.ExitStack() as held:
        for folder in _sweep_folders(cfg, out, only):
            _claim_folder(folder, resume, overwrite)
            held.enter_context(lock_folder(folder))
        data = load_task(cfg)
        methods = {}
        for label in only:
            methods[label] = _run_method(cfg, label, data, resume, allow_change)
            for k in range(1, cfg.seeds):
                _run_method(_seed_config(cfg, out, k), label, data, resume, allow_change)
    log.info("%s: %s done; `spikerobust report %s` writes the report once every method is there", out,
             ", ".join(only), out)
    return {"methods": methods}


def sweep_status(run_dir: Union[str, Path]) -> Tuple[ExperimentConfig, Dict[str, str]]:
    """The sweep in ``run_dir`` and each model's state: ``"evaluated"`` (results.json), ``"trained"``
    (model.pt, not yet evaluated), ``"running"`` (its folder is locked by a job) or ``"missing"``.

    Keys are labels, with ``" (seed s)"`` for the extra seeds' models.

    Raises:
        ValueError: ``run_dir`` holds no ``config.json``.
    """
    from ..robust.checkpoint import FolderLockedError

    out = Path(run_dir)
    path = out / "config.json"
    if not path.is_file():
        raise ValueError(f"{str(out)!r} holds no sweep (no config.json): start one with "
                         "`spikerobust reproduce TASK --out-dir RUN [--only LABEL]`")
    saved = json.loads(path.read_text())
    saved.pop("world_size", None)
    saved["out_dir"] = str(out)  # the folder may have moved (or be mounted elsewhere) since
    cfg = ExperimentConfig.from_dict(saved)
    status: Dict[str, str] = {}
    for label in cfg.methods:
        for k in range(cfg.seeds):
            folder = _method_dir(cfg if k == 0 else _seed_config(cfg, out, k), label)
            key = label if k == 0 else f"{label} (seed {cfg.seed + k})"
            state = ("evaluated" if (folder / "results.json").is_file()
                     else "trained" if (folder / "model.pt").is_file() else "missing")
            if state != "evaluated" and folder.is_dir():
                try:
                    with lock_folder(folder):
                        pass
                except FolderLockedError:
                    state = "running"
            status[key] = state
    return cfg, status


def assemble_report(run_dir: Union[str, Path], *, jobs: Optional[int] = None,
                    progress: Optional[bool] = None, command: Optional[str] = None) -> dict:
    """Write ``report.md``/``results.json`` of a sweep whose methods were trained by separate jobs.

    Models that are trained but not evaluated are evaluated now (in ``jobs`` processes); finished
    results are read back. The comparison is the one :func:`run_reproduce` writes for the same
    config.
    ``command`` is recorded in ``provenance.json`` as :func:`run_reproduce` records it.

    Raises:
        ValueError: naming the methods whose models are missing or still being trained (nothing is
            written then).
    """
    start = time.perf_counter()
    cfg, status = sweep_status(run_dir)
    if jobs is not None:
        cfg.jobs = int(jobs)
    if progress is not None:
        cfg.progress = bool(progress)
    pending = {k: v for k, v in status.items() if v in ("missing", "running")}
    if pending:
        missing = [k for k, v in pending.items() if v == "missing"]
        running = [k for k, v in pending.items() if v == "running"]
        parts = ([f"not trained: {', '.join(missing)}"] if missing else []) + \
                ([f"still running: {', '.join(running)}"] if running else [])
        raise ValueError(f"{str(cfg.out_dir)!r}: the sweep is not complete ({'; '.join(parts)}); train each with "
                         f"`spikerobust reproduce {cfg.task} --out-dir {cfg.out_dir} --only LABEL` (same settings)")
    out = Path(cfg.out_dir)
    with lock_folder(out):
        return _reproduce_locked(cfg, out, True, (), start, command)


def _seed_config(cfg: ExperimentConfig, out: Path, k: int) -> ExperimentConfig:
    """The config of the ``k``-th extra model of every method: seed ``seed + k``, its own folder."""
    from dataclasses import replace

    return replace(cfg, seed=cfg.seed + k, seeds=1, out_dir=str(out / "seeds" / f"seed{cfg.seed + k}"))


def _pool_seeds(cfg: ExperimentConfig, out: Path, data: TaskData, methods: Dict[str, dict], resume: bool,
                allow_change: Sequence[str], done: Optional[Mapping[Tuple[str, int], dict]] = None
                ) -> Dict[str, dict]:
    """Train and evaluate models ``1 .. seeds - 1`` of every method (seed ``seed + k``, on the data
    split of ``seed``, in ``out/seeds/seed<s>``; in this process, unless ``done`` already holds the
    results of ``(label, k)`` from the pool), then pool the mismatch draws of all models, as the
    paper did. Every other measurement stays the first model's; ``seeds`` lists each model's clean
    accuracies and mismatch summary."""
    done = done or {}
    from ..robust.mismatch import MismatchResult

    def as_result(r: dict, label: str) -> MismatchResult:
        levels = tuple(float(m) for m in r["mismatch"]["levels"])
        return MismatchResult(levels, {m: torch.tensor(r["mismatch"]["accuracies"][str(m)], dtype=torch.float64)
                                       for m in levels}, label)

    pooled: Dict[str, dict] = {}
    for label, first in methods.items():
        runs = [first] + [done[label, k] if (label, k) in done
                          else _run_method(_seed_config(cfg, out, k), label, data, resume, allow_change)
                          for k in range(1, cfg.seeds)]
        res = dict(first)
        if all("mismatch" in r for r in runs):
            res["mismatch"] = MismatchResult.pool(*(as_result(r, label) for r in runs), label=label).to_dict()
        res["seeds"] = [{"seed": cfg.seed + k, "test_accuracy": r["test_accuracy"], "val_accuracy": r.get("val_accuracy"),
                         "best_epoch": r.get("best_epoch"), "mismatch_summary": r.get("mismatch", {}).get("summary")}
                        for k, r in enumerate(runs)]
        pooled[label] = res
    return pooled


def _as_completed(futures):
    from concurrent.futures import as_completed

    return as_completed(futures)
