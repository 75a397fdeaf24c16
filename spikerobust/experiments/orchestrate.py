"""Orchestration: every method of a config trained and evaluated (in a process pool, over seeds,
resumable), spread sweeps, and the comparison and report.

* :func:`run_reproduce` trains (:mod:`.train`) and evaluates (:mod:`.evaluate`) every method of a
  config, in parallel processes when ``cfg.jobs > 1``, keeping each method's results on disk so
  that ``resume=True`` redoes nothing finished; then Mann-Whitney U tests against standard
  training and the report (:mod:`.report`). With ``seeds`` > 1 every method also trains models
  with seeds ``seed + 1 ...`` (on the data split of ``seed``) whose mismatch draws are pooled.

Layout of a run folder (:mod:`.runfolder`)::

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
import json
import logging
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from ..robust.checkpoint import atomic_write, lock_folder
from .config import EVAL_FIELDS, ExperimentConfig
from .evaluate import evaluate_model
from .runfolder import check_allow, check_resumable, claim_folder, method_dir, model_config
from .tasks import TaskData, load_task
from .train import load_model, train_method

__all__ = ["run_reproduce", "assemble_report", "sweep_status"]

log = logging.getLogger(__name__)


def _run_method(cfg: ExperimentConfig, label: str, data: Optional[TaskData], resume: bool,
                allow_change: Sequence[str] = ()) -> dict:
    """Train (or reuse) and evaluate one method; its results are written to its folder.

    A resume reuses finished results unless ``allow_change`` names a field (then the evaluation is
    redone), and a trained model unless ``allow_change`` names a training field.
    """
    folder = method_dir(cfg, label)
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
    allow_change = check_allow(allow_change, resume)
    out = Path(cfg.out_dir)
    if only is not None:
        return _reproduce_part(cfg, out, list(only), resume, overwrite, allow_change, command)
    claim_folder(out, resume, overwrite)
    with lock_folder(out):
        return _reproduce_locked(cfg, out, resume, allow_change, start, command)


def _reproduce_locked(cfg: ExperimentConfig, out: Path, resume: bool, allow_change: Tuple[str, ...],
                      start: float, command: Optional[str] = None) -> dict:
    from .publish import finish_invocation, record_invocation

    if resume:
        check_resumable(cfg, out, allow_change)
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
                    args = (model_config(cfg, out, k).to_dict(), label, resume, threads, allow_change)
                    if k > 0:  # the extra seeds train on the data split of the first
                        args += (cfg.to_dict(),)
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
    return [method_dir(model_config(cfg, out, k), label)
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
            check_resumable(cfg, out, allow_change if resume else ())
            if resume and allow_change:
                cfg.save(out / "config.json")
        else:
            cfg.save(out / "config.json")
        from .publish import record_invocation

        record_invocation(out, command, part=only)
    with contextlib.ExitStack() as held:
        for folder in _sweep_folders(cfg, out, only):
            claim_folder(folder, resume, overwrite)
            held.enter_context(lock_folder(folder))
        data = load_task(cfg)
        methods = {}
        for label in only:
            methods[label] = _run_method(cfg, label, data, resume, allow_change)
            _extra_seeds(cfg, out, data, label, resume, allow_change)
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
            folder = method_dir(model_config(cfg, out, k), label)
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


def _pool_seeds(cfg: ExperimentConfig, out: Path, data: TaskData, methods: Dict[str, dict], resume: bool,
                allow_change: Sequence[str], done: Optional[Mapping[Tuple[str, int], dict]] = None
                ) -> Dict[str, dict]:
    """Train and evaluate models ``1 .. seeds - 1`` of every method (seed ``seed + k``, on the data
    split of ``seed``, in ``out/seeds/seed<s>``; in this process, unless ``done`` already holds the
    results of ``(label, k)`` from the pool), then pool the mismatch draws of all models, as the
    paper did. Every other measurement stays the first model's; ``seeds`` lists each model's clean
    accuracies and mismatch summary."""
    from ..robust.mismatch import MismatchResult

    def as_result(r: dict, label: str) -> MismatchResult:
        levels = tuple(float(m) for m in r["mismatch"]["levels"])
        return MismatchResult(levels, {m: torch.tensor(r["mismatch"]["accuracies"][str(m)], dtype=torch.float64)
                                       for m in levels}, label)

    pooled: Dict[str, dict] = {}
    for label, first in methods.items():
        runs = [first] + _extra_seeds(cfg, out, data, label, resume, allow_change, done)
        res = dict(first)
        if all("mismatch" in r for r in runs):
            res["mismatch"] = MismatchResult.pool(*(as_result(r, label) for r in runs), label=label).to_dict()
        res["seeds"] = [{"seed": cfg.seed + k, "test_accuracy": r["test_accuracy"], "val_accuracy": r.get("val_accuracy"),
                         "best_epoch": r.get("best_epoch"), "mismatch_summary": r.get("mismatch", {}).get("summary")}
                        for k, r in enumerate(runs)]
        pooled[label] = res
    return pooled


def _extra_seeds(cfg: ExperimentConfig, out: Path, data: TaskData, label: str, resume: bool,
                 allow_change: Sequence[str], done: Optional[Mapping[Tuple[str, int], dict]] = None) -> List[dict]:
    """The results of ``label``'s models ``1 .. seeds - 1`` (seed ``seed + k``, on the data split of
    ``seed``, in ``out/seeds/seed<s>``): from ``done`` where the pool already ran ``(label, k)``,
    else trained (or reused, with ``resume``) and evaluated in this process."""
    done = done or {}
    return [done[label, k] if (label, k) in done
            else _run_method(model_config(cfg, out, k), label, data, resume, allow_change)
            for k in range(1, cfg.seeds)]


def _as_completed(futures):
    from concurrent.futures import as_completed

    return as_completed(futures)
