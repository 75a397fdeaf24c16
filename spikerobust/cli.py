"""The ``spikerobust`` command: train, evaluate, verify, deploy on PCM, and reproduce the paper.

Examples:
    spikerobust reproduce ecg                                  # quick preset, synthetic ECG, minutes on 2 cores
    spikerobust reproduce ecg --data-dir ../shared/data/mitdb  # the real MIT-BIH records
    spikerobust reproduce ecg --preset paper --data-dir DIR    # the paper's sizes: 14 models, ~15 h on 2 cores
    spikerobust reproduce ecg --resume --out-dir results/ecg   # continue an interrupted run
    spikerobust reproduce ecg --out-dir RUN --only beta        # one job of a spread sweep (one per method)
    spikerobust report RUN                                     # then: evaluate what is missing, write the report
    spikerobust publish RUN docs/results/ecg-paper             # a finished run's report, results, figures (no models)
    spikerobust reproduce fmnist --methods standard,beta,abcd,entropy_sgd
    spikerobust train ecg --method beta --set epochs=5 --out-dir runs/beta
    torchrun --nproc-per-node 4 -m spikerobust.cli train ecg --method standard --out-dir runs/std  # data-parallel
    spikerobust evaluate runs/beta/model.pt --parts mismatch,attack
    spikerobust verify runs/beta/model.pt --zetas 0,1e-5,1e-4
    spikerobust pcm runs/fmnist/model.pt --reps 5
    spikerobust models | spikerobust methods

Configuration: a task's preset (``--preset quick|paper``), then ``--config FILE`` (JSON or TOML
with the fields of :class:`spikerobust.experiments.ExperimentConfig`), then ``--set key=value``
(values in JSON, e.g. ``--set levels=[0,0.5]``), then the named flags. Every setting is checked
before any data loads.

Run folders: a folder that holds a run is only written into with ``--resume`` (the same settings;
a deliberate change such as a lower learning rate goes through ``--allow-change lr`` and is
recorded in the training history) or ``--overwrite``; one process at a time (a lock file).
``evaluate``/``verify``/``pcm`` rebuild the data split from the model file's settings; another
seed or split needs ``--resplit``.

Errors: a failure you can cause ends with one line ``spikerobust CMD: error: ...`` naming the
file or field, exit status 2 (a setting or input to fix) or 1 (the run failed); ``--debug``
shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["main"]

log = logging.getLogger("spikerobust")


def _set_values(args: argparse.Namespace) -> dict:
    """The command's ``--set`` pairs, parsed once (:func:`~spikerobust.experiments.config.parse_set`)."""
    from .experiments.config import parse_set

    if "_set_values" not in vars(args):
        args._set_values = parse_set(getattr(args, "set", None))
    return args._set_values


def _floats(spec: str, name: str = "value") -> list:
    try:
        return [float(v) for v in spec.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--{name.replace('_', '-')}: expected a comma list of numbers, got {spec!r}") from None


def _overrides(args: argparse.Namespace) -> dict:
    """``--set`` pairs, then the named flags that were given."""
    d = dict(_set_values(args))
    for key in ("data_dir", "split", "epochs", "n_draws", "seed", "jobs", "out_dir"):
        value = getattr(args, key, None)
        if value is not None:
            d[key] = value
    if getattr(args, "methods", None) is not None:
        d["methods"] = args.methods
    for key in ("levels", "attack_eps", "zetas"):
        value = getattr(args, key, None)
        if value is not None:
            d[key] = _floats(value, key)
    if getattr(args, "no_progress", False):
        d["progress"] = False
    return d


def _writable_folder(out: Path) -> None:
    """Create ``out`` (or check it) before any work, with errors that name it."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"output folder {str(out)!r} is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, f"cannot create the output folder ({err.strerror})", str(out)) from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise PermissionError(13, "the output folder is not writable", str(out))


def _config(args: argparse.Namespace, **extra):
    from .experiments import make_config

    over = _overrides(args)
    over.update(extra)
    return make_config(args.task, args.preset, config_file=args.config, overrides=over)


def _reproduce(args: argparse.Namespace) -> int:
    from .experiments import run_reproduce

    extra = {} if args.jobs is not None or "jobs" in _set_values(args) else {"jobs": min(2, os.cpu_count() or 1)}
    if args.out_dir is None and "out_dir" not in _set_values(args):
        extra["out_dir"] = f"results/reproduce-{args.task}-{args.preset}"
    cfg = _config(args, **extra)
    if args.only is not None:  # one job of a sweep spread over jobs or machines
        only = [s.strip() for s in args.only.split(",") if s.strip()]
        res = run_reproduce(cfg, resume=args.resume, overwrite=args.overwrite, allow_change=args.allow_change,
                            only=only, command=args.command_line)
        for label, r in res["methods"].items():
            print(f"{label}: clean test {100 * r['test_accuracy']:.2f} %, written to "
                  f"{Path(cfg.out_dir) / 'methods' / label}/")
        print(f"when every method of the sweep is there: spikerobust report {cfg.out_dir}")
        return 0
    run_reproduce(cfg, resume=args.resume, overwrite=args.overwrite, allow_change=args.allow_change,
                  command=args.command_line)
    return _show_report(Path(cfg.out_dir), "report.md, results.json, config.json, *.png, methods/<label>/model.pt")


def _show_report(out: Path, written: str = "") -> int:
    """Print ``out/report.md`` and what was written to ``out``; the command's exit status (0)."""
    print((out / "report.md").read_text())
    print(f"written to {out}/" + (f" ({written})" if written else ""))
    return 0


def _report(args: argparse.Namespace) -> int:
    from .experiments.orchestrate import assemble_report

    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs: expected an integer >= 1, got {args.jobs}")
    assemble_report(args.run_dir, jobs=args.jobs, progress=False if args.no_progress else None,
                    command=args.command_line)
    return _show_report(Path(args.run_dir), "report.md, results.json, *.png")


def _publish(args: argparse.Namespace) -> int:
    from .experiments.publish import check_published, publish_run

    dest = publish_run(args.run_dir, args.dest, command=args.run_command, commit=args.commit,
                       overwrite=args.overwrite)
    problems = check_published(dest)
    if problems:
        raise RuntimeError(f"{dest}: the published files disagree: {'; '.join(problems)}")
    print(f"published {args.run_dir} to {dest}/: " + ", ".join(sorted(p.name for p in Path(dest).iterdir())))
    return 0


def _train(args: argparse.Namespace) -> int:
    from .experiments import parse_method, train_single

    over = _overrides(args)
    if args.out_dir is None and "out_dir" not in _set_values(args):
        over["out_dir"] = f"runs/{args.task}-{parse_method(args.method, args.task, args.preset)[0]}"
    from .robust.distributed import env_rank_world

    rank, world = env_rank_world()  # under torchrun: rank 0 logs, prints and writes the run folder
    if rank > 0:
        logging.getLogger().setLevel(logging.WARNING)
    run = train_single(args.task, args.method, args.preset, over, config_file=args.config, resume=args.resume,
                       overwrite=args.overwrite, allow_change=args.allow_change)
    if rank > 0:
        return 0
    info = run.info
    if world > 1:
        print(f"{run.label}: trained by {world} processes (data-parallel, gloo)")
    print(f"{run.label}: clean validation {100 * info['val_accuracy']:.2f} %, test {100 * info['test_accuracy']:.2f} % "
          f"(best epoch {info['best_epoch']}); model written to {run.out / 'model.pt'}")
    return 0


def _loaded(args: argparse.Namespace):
    """The model file's model and config (with --data-dir / --set applied) and its task data
    (:func:`~spikerobust.experiments.train.load_model_and_data`)."""
    from .experiments.train import load_model_and_data

    return load_model_and_data(args.model, _overrides(args), resplit=args.resplit)


def _evaluate(args: argparse.Namespace) -> int:
    from .experiments.evaluate import evaluate_model, list_parts
    from .experiments.report import write_report

    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in list_parts()]
    if not parts or unknown:
        raise ValueError(f"--parts: {'no part given' if not parts else f'unknown part(s) {unknown}'} "
                         f"(choose from {', '.join(list_parts())})")
    out = Path(args.out_dir or Path(args.model).parent / "evaluation")
    _writable_folder(out)
    model, meta, cfg, data = _loaded(args)
    label = meta["label"]
    res = evaluate_model(model, data, cfg, label=label, parts=parts)
    res.update(label=label, method=meta["method"], val_accuracy=meta["info"].get("val_accuracy"),
               best_epoch=meta["info"].get("best_epoch", "–"), train_s=meta["info"].get("train_s", float("nan")))
    results = {"config": cfg.to_dict(), "model_file": str(args.model),
               "data": {"description": data.description, "sizes": data.sizes, "classes": data.classes,
                        "model": data.model, "model_kwargs": data.model_kwargs},
               "methods": {label: res}, "mann_whitney_vs_standard": {}}
    write_report(results, cfg, out)
    return _show_report(out)


def _verify(args: argparse.Namespace) -> int:
    from .analysis.tables import markdown_table
    from .verify import verified_accuracy

    model, meta, cfg, data = _loaded(args)
    test = data.batches("test")
    rows = [[f"{z:g}", f"{100 * verified_accuracy(model, test, z):.2f}"] for z in cfg.zetas]
    print(f"{meta['label']} on {data.description}: verified test accuracy (%), {data.sizes['test']} samples")
    print(markdown_table(["ζ", "verified %"], rows))
    return 0


def _pcm(args: argparse.Namespace) -> int:
    from .analysis.tables import markdown_table
    from .experiments.evaluate import is_lsnn_model
    from .robust.checkpoint import atomic_write
    from .robust.pcm import pcm_accuracy_over_time, plot_accuracy_over_time

    times = _floats(args.times, "times")
    if not times or any(not math.isfinite(t) or t < 0 for t in times):
        raise ValueError(f"--times: expected finite seconds >= 0, got {args.times!r}")
    if args.reps < 1:
        raise ValueError(f"--reps: expected an integer >= 1, got {args.reps}")
    out = Path(args.out_dir or Path(args.model).parent / "pcm")
    _writable_folder(out)
    model, meta, cfg, data = _loaded(args)
    if is_lsnn_model(model):  # w_in and w_rec are read from the crossbars at every time step (spikerobust.robust.pcm)
        log.info("pcm: LSNN model: w_in, w_rec and the readout on crossbars, read noise drawn at every time step")
    res = pcm_accuracy_over_time(model, data.batches("test"), times=times, n_reps=args.reps, seed=cfg.seed,
                                 progress=cfg.progress)
    rows = [[r["label"], f"{r['mean']:.2f} ± {r['std']:.2f}"] for r in res.rows()]
    print(f"{meta['label']}: digital {100 * res.digital:.2f} %; on PCM ({args.reps} programming repetitions):")
    print(markdown_table(["time", "accuracy %"], rows))
    plot_accuracy_over_time({meta["label"]: res}, out / "pcm.png")
    atomic_write(out / "pcm.json", json.dumps({"times": times, "accuracy": res.accuracy.tolist(),
                                              "digital": res.digital}, indent=1))
    print(f"written to {out}/ (pcm.json, pcm.png)")
    return 0


def _list_models(args: argparse.Namespace) -> int:
    from .models import list_models

    print("\n".join(list_models()))
    return 0


def _list_methods(args: argparse.Namespace) -> int:
    from .robust.methods import list_methods

    print("\n".join(list_methods()))
    return 0


def _config_flags(p: argparse.ArgumentParser, *, task: bool = True) -> None:
    if task:
        p.add_argument("task", choices=["ecg", "speech", "fmnist"],
                       help="ecg: LSNN on MIT-BIH beats (synthetic beats without --data-dir); speech: LSNN on "
                            "Speech Commands or FSDD (synthetic espeak-ng keywords without --data-dir); "
                            "fmnist: the paper's CNN on Fashion-MNIST")
        p.add_argument("--preset", choices=["quick", "paper"], default="quick",
                       help="quick (default): minutes on 2 CPU cores; paper: the paper's sizes and epochs")
        p.add_argument("--config", default=None, help="JSON or TOML file of config fields (after the preset)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field (JSON value), repeatable: --set epochs=5 --set levels=[0,0.5]")
    p.add_argument("--data-dir", default=None, help="real data: MIT-BIH records, Speech Commands/FSDD, Fashion-MNIST IDX")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    if not task:
        p.add_argument("--resplit", action="store_true",
                       help="accept data settings (e.g. --set seed=N) other than the model's: the test split changes "
                            "and may hold training samples")


def _run_folder_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out-dir (default: refuse)")
    p.add_argument("--allow-change", action="append", default=[], metavar="FIELD[,FIELD]",
                   help="with --resume: let these settings differ from the run's (lr, epochs, lr_drop_at or an "
                        "evaluation setting); the change is recorded in the training history")


def main(argv: Optional[Sequence[str]] = None, *, raise_errors: Optional[bool] = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    Every error a user can cause ends with one line ``spikerobust <cmd>: error: ...`` on stderr
    and exit status 2 (a setting or input to fix) or 1 (the run failed: disk, numerics, a locked
    folder); ``--debug`` shows the traceback instead. ``raise_errors`` (default: when ``argv`` is
    given, as in tests) lets the exception through.
    """
    parser = argparse.ArgumentParser(prog="spikerobust", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    rep = sub.add_parser("reproduce", help="the paper's comparison on one task: train every method, then mismatch, "
                                           "attack, verification, flatness, membrane potentials → report")
    _config_flags(rep)
    rep.add_argument("--split", choices=["random", "record"], default=None,
                     help="ECG: random 80/10/10 (the paper) or patient-wise (record)")
    rep.add_argument("--methods", default=None,
                     help="comma list of labels (standard, forward_noise, beta, fn+beta, awp, dropout, amp, abcd, "
                          "entropy_sgd) or label=method:key=value;key=value (default: the paper's seven)")
    rep.add_argument("--epochs", type=int, default=None)
    rep.add_argument("--n-draws", type=int, default=None, help="mismatch draws per level (paper: 100)")
    rep.add_argument("--levels", default=None, help="mismatch levels, e.g. 0,0.1,0.2,0.3,0.5,0.7")
    rep.add_argument("--attack-eps", default=None, help="attack sizes ζ, e.g. 0,0.01,0.05,0.1,0.2,0.5")
    rep.add_argument("--zetas", default=None, help="interval half-widths, e.g. 0,1e-5,1e-4,1e-3")
    rep.add_argument("--seed", type=int, default=None)
    rep.add_argument("--jobs", type=int, default=None, help="methods trained in parallel processes (default: 2 on ≥ 2 cores)")
    rep.add_argument("--out-dir", default=None, help="run folder (default results/reproduce-TASK-PRESET)")
    rep.add_argument("--resume", action="store_true", help="continue the run in --out-dir; finished methods are kept")
    rep.add_argument("--only", default=None, metavar="LABEL[,LABEL]",
                     help="one job of a sweep spread over jobs or machines: train and evaluate only these methods "
                          "of the sweep into --out-dir (shared; same settings in every job), no report; then "
                          "`spikerobust report OUT`")
    _run_folder_flags(rep)
    rep.set_defaults(func=_reproduce)

    rp = sub.add_parser("report", help="assemble report.md/results.json of a sweep whose methods ran as separate "
                                       "jobs (reproduce --only): evaluates what is not yet evaluated")
    rp.add_argument("run_dir", help="the sweep's run folder (--out-dir of its jobs)")
    rp.add_argument("--jobs", type=int, default=None, help="models evaluated in parallel processes "
                                                             "(default: the sweep's config)")
    rp.add_argument("--no-progress", action="store_true", help="no progress bars")
    rp.set_defaults(func=_report)

    pb = sub.add_parser("publish", help="copy a finished run's report.md, results.json, config.json and figures "
                                        "(never model files) into DEST, the report headed by the command, commit, "
                                        "machine and the time each stage took")
    pb.add_argument("run_dir", help="a finished run folder (with results.json and report.md)")
    pb.add_argument("dest", help="where to publish, e.g. docs/results/ecg-paper")
    pb.add_argument("--command", dest="run_command", default=None, metavar="TEXT",
                    help="the command that started the run, for a run that did not record it (provenance.json)")
    pb.add_argument("--commit", default=None, help="the commit --command ran on")
    pb.add_argument("--overwrite", action="store_true", help="replace what is published in DEST (default: refuse)")
    pb.set_defaults(func=_publish)

    tr = sub.add_parser("train", help="train one method on a task; writes OUT/model.pt")
    _config_flags(tr)
    tr.add_argument("--method", default="standard",
                    help="a label (standard, beta, fn+beta, ...) or label=method:key=value;... (default standard)")
    tr.add_argument("--split", choices=["random", "record"], default=None)
    tr.add_argument("--epochs", type=int, default=None)
    tr.add_argument("--seed", type=int, default=None)
    tr.add_argument("--out-dir", default=None, help="default runs/TASK-LABEL")
    tr.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    _run_folder_flags(tr)
    tr.set_defaults(func=_train)

    ev = sub.add_parser("evaluate", help="mismatch table, attack curves, verification, landscape, membrane "
                                         "potentials of a trained model")
    ev.add_argument("model", help="a model.pt written by train or reproduce")
    _config_flags(ev, task=False)
    ev.add_argument("--parts", default="mismatch,attack,landscape,membrane,cost",
                    help="comma list of mismatch, attack, verify, landscape, membrane, cost (synaptic ops, "
                         "activation sparsity, parameters, footprint)")
    ev.add_argument("--n-draws", type=int, default=None)
    ev.add_argument("--levels", default=None)
    ev.add_argument("--attack-eps", default=None)
    ev.add_argument("--out-dir", default=None, help="default: MODEL's folder/evaluation")
    ev.set_defaults(func=_evaluate)

    ve = sub.add_parser("verify", help="verified test accuracy under weight intervals (docs/verification.md)")
    ve.add_argument("model")
    _config_flags(ve, task=False)
    ve.add_argument("--zetas", default=None, help="e.g. 0,1e-5,5e-5,1e-4 (default: the config's)")
    ve.set_defaults(func=_verify)

    pc = sub.add_parser("pcm", help="accuracy over time on simulated PCM crossbars (docs/pcm.md; CNN and LSNN models)")
    pc.add_argument("model")
    _config_flags(pc, task=False)
    pc.add_argument("--times", default="25,3600,86400,2592000,31536000", help="seconds since programming")
    pc.add_argument("--reps", type=int, default=25, help="programming repetitions (paper 25)")
    pc.add_argument("--out-dir", default=None, help="default: MODEL's folder/pcm")
    pc.set_defaults(func=_pcm)

    sub.add_parser("models", help="list registered models").set_defaults(func=_list_models)
    sub.add_parser("methods", help="list registered training methods").set_defaults(func=_list_methods)
    for p in sub.choices.values():
        p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["spikerobust", *(sys.argv[1:] if argv is None else argv)])  # as typed
    if getattr(args, "no_progress", False):
        # every bar, the datasets' (MIT-BIH records, FSDD files) and the pool workers' included; tqdm reads
        # TQDM_* defaults when it is first imported, which in the command happens after this line
        os.environ["TQDM_DISABLE"] = "1"
    from ._runtime import keep_freed_memory

    keep_freed_memory()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if raise_errors is None:
        raise_errors = argv is not None  # called from Python (tests): let the caller see the exception
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if args.debug or raise_errors:
            raise
        parser.exit(130, f"spikerobust {args.command}: interrupted\n")
    except Exception as err:  # noqa: BLE001 - the error contract: one line, no traceback
        if args.debug or raise_errors:
            raise
        status, text = _error_line(err)
        parser.exit(status, f"spikerobust {args.command}: error: {text}\n")


def _error_line(err: BaseException) -> "tuple[int, str]":
    """The exit status (2: a setting or input the user can fix, 1: the run failed) and one line."""
    if isinstance(err, OSError):  # a file system error: name the file
        where = f"{err.filename}: " if err.filename else ""
        return 1, f"{where}{err.strerror or err}" + (f" (also {err.filename2})" if err.filename2 else "")
    first = (str(err).strip().splitlines() or [""])[0]
    if isinstance(err, ValueError):
        return 2, first
    if isinstance(err, (FloatingPointError, RuntimeError)) and first:
        return 1, first
    return 1, f"{type(err).__name__}: {first} (run again with --debug for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
