"""Train one network by one method, then measure it: the Python API behind ``spikerobust train`` +
``spikerobust evaluate``, for scripts and notebooks that want the model and the numbers in hand.

TASK: ``ecg`` (the ``lsnn_ecg`` LSNN on MIT-BIH beats with ``--data-dir``, else synthetic beats that
say nothing about MIT-BIH), ``speech`` (``lsnn_speech`` on Speech Commands / FSDD MFCCs, else
synthetic espeak-ng keywords) or ``fmnist`` (the paper's CNN on Fashion-MNIST); docs/tasks.md.
``train_single`` trains with the preset's sizes and Adam schedule (``lr_milestones``), keeps the
best validation epoch and writes ``model.pt`` (``torch.load(..., weights_only=True)``, or
``load_model``); ``evaluate_model`` measures accuracy under mismatch θ ⊙ (1 + m·N(0, 1)) and
(``attack``, default for the CNN) sign-PGA weight attack vs a random corner of the box
|θ' − θ| ≤ ζ|θ| (docs/evaluation.md). ``--method``: a registered method or a paper label
(``beta``, ``fn+beta``), settings after a colon; ``--set`` changes any config field.

Examples:
    python examples/train_and_evaluate.py ecg --quick               # synthetic beats, seconds
    python examples/train_and_evaluate.py ecg --data-dir ../shared/data/mitdb --set split=record --method fn+beta
    python examples/train_and_evaluate.py speech --data-dir ../shared/data/fsdd/recordings --method beta
    python examples/train_and_evaluate.py fmnist --method adversarial:beta=0.1 --set n_draws=10
"""

from __future__ import annotations

import argparse
import json
import logging

import torch

from spikerobust.analysis.tables import markdown_table
from spikerobust.experiments import evaluate_model, train_single

QUICK = {"ecg": dict(n_per_class=20, n_hidden=16), "speech": dict(n_train=100, n_test=50, n_hidden=16),
         "fmnist": dict(n_train=200, n_test=100, attack_eps=[0.0, 0.1])}


def json_or_word(value: str):  # a --set value: JSON (5, [0,0.5], true), else a bare word (record)
    try:
        return json.loads(value)
    except ValueError:
        return value


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=sorted(QUICK))
    p.add_argument("--data-dir", default=None, help="real data folder (default: the task's offline data)")
    p.add_argument("--method", default="standard", help="method or paper label, e.g. 'adversarial:beta=0.5'")
    p.add_argument("--preset", choices=("quick", "paper"), default="quick", help="sizes and schedule to start from")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config field, e.g. epochs=5")
    p.add_argument("--parts", default=None, help="evaluation parts, e.g. mismatch,attack,landscape")
    p.add_argument("--out-dir", default=None, help="default results/TASK")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--resume", action="store_true", help="continue training from OUT/checkpoints/last.pt")
    p.add_argument("--quick", action="store_true", help="tiny run for a smoke test: 1 epoch, 3 draws at m = 0, 0.5")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quick = {**QUICK[args.task], "epochs": 1, "n_draws": 3, "levels": [0.0, 0.5]} if args.quick else {}
    given = dict(kv.split("=", 1) for kv in args.set)
    overrides = {**quick, **{k: json_or_word(v) for k, v in given.items()}, "data_dir": args.data_dir,
                 "out_dir": args.out_dir or f"results/{args.task}", "progress": not args.no_progress}
    run = train_single(args.task, args.method, args.preset, overrides, resume=args.resume)
    parts = (args.parts or ("mismatch,attack" if args.task == "fmnist" else "mismatch")).split(",")
    ev = evaluate_model(run.model, run.data, run.cfg, label=run.label, parts=parts)

    print(f"\n{run.label} {run.cfg.methods[run.label]}: clean test accuracy {100 * ev['test_accuracy']:.2f} % "
          f"(best epoch {run.info['best_epoch']} of {run.cfg.epochs})\n")
    if "mismatch" in ev:
        rows = [[r["level"], 100 * r["mean"], 100 * r["std"], 100 * r["min"]] for r in ev["mismatch"]["summary"]]
        print(f"mismatch, {run.cfg.n_draws} draws per level (%)\n{markdown_table(['m', 'mean', 'std', 'min'], rows)}\n")
    if "attack" in ev:
        rows = [[float(z), 100 * a["pga"], 100 * a["random"]] for z, a in ev["attack"].items()]
        print(f"weight attack vs random corner (%)\n{markdown_table(['ζ', 'attack', 'random'], rows)}\n")
    print(f"training {run.seconds['train']:.0f} s; written to {run.out}/ (model.pt, results.json)")
    return run.write_results(**ev)


if __name__ == "__main__":
    main()
