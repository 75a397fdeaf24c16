"""Compare training methods under device mismatch with the library's building blocks, in one loop
you can change: the paper's acceptance experiment, scaled down (``spikerobust reproduce`` runs the
full comparison with every measurement and a report).

``make_config`` + ``load_task`` give the task's data (``ecg``: synthetic beats, or MIT-BIH with
``--data-dir``; ``speech``; ``fmnist``: the paper's CNN). Every method (``--methods``: registered
names or paper labels such as ``beta``, ``fn+beta``) trains the same initial model on the same
batches with ``fit`` (Adam, ``lr_milestones``, best validation epoch kept); ``mismatch_evaluate``
measures it under θ ⊙ (1 + m·N(0, 1)) (docs/evaluation.md), and ``attacked_accuracy`` the
standard model (all with ``--attack-all``) under sign-PGA vs a random corner of the same box.

Examples:
    python examples/compare_methods.py ecg
    python examples/compare_methods.py fmnist --set n_train=1000 --set epochs=4
    python examples/compare_methods.py ecg --methods standard,forward_noise --set epochs=2 --set n_draws=5
"""

from __future__ import annotations

import argparse
import json
import logging

import torch

from spikerobust.analysis.tables import markdown_table
from spikerobust.experiments import load_task, make_config, parse_methods
from spikerobust.experiments.config import lr_milestones
from spikerobust.models import get_model
from spikerobust.robust import attacked_accuracy, fit, mismatch_evaluate
from spikerobust.robust.methods import get_method
from spikerobust.robust.trainer import evaluate_accuracy


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("task", choices=("ecg", "speech", "fmnist"))
    ap.add_argument("--methods", default="standard,beta,forward_noise,fn+beta", help="comma list of labels")
    ap.add_argument("--data-dir", default=None, help="real data folder (default: the task's offline data)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config field (JSON value)")
    ap.add_argument("--attack-eps", type=float, default=0.1, help="attack box size ζ")
    ap.add_argument("--attack-all", action="store_true", help="attack every method, not only standard")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--progress", action="store_true", help="tqdm bars")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    sets = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    cfg = make_config(args.task, "quick", overrides={"levels": [0.0, 0.3, 0.5, 0.7], **sets, "data_dir": args.data_dir,
                                                     "methods": parse_methods(args.methods, args.task, "quick")})
    data = load_task(cfg)
    val, test = data.batches("val"), data.batches("test")
    results, rows = {}, []
    for label, kwargs in cfg.methods.items():
        kwargs = dict(kwargs)
        torch.manual_seed(cfg.seed)  # the same initial model for every method
        model = get_model(data.model, **data.model_kwargs)
        res = fit(model, get_method(kwargs.pop("method"), **kwargs), data.loader(cfg.batch_size, cfg.seed), val,
                  epochs=cfg.epochs, lr=cfg.lr, milestones=lr_milestones(cfg), seed=cfg.seed, progress=args.progress)
        mm = mismatch_evaluate(model, test, levels=cfg.levels, n_draws=cfg.n_draws, seed=cfg.seed, label=label)
        r = results[label] = {"clean": evaluate_accuracy(model, test), "best_epoch": res.best_epoch,
                              "train_s": res.train_s, "mismatch": mm.summary()}
        if label == "standard" or args.attack_all:
            r["attack"] = {kind: attacked_accuracy(model, test, args.attack_eps, attack=kind, seed=cfg.seed)
                           for kind in ("pga", "random")}
        rows.append([label, 100 * r["clean"], *[f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f} ({100 * s['min']:.1f})"
                                                for s in mm.summary()], r["train_s"]])
    print(f"\n{data.description}\n" + markdown_table(
        ["method", "clean", *[f"m={m:g} mean ± std (min)" for m in cfg.levels], "train s"], rows, ".1f"))
    for label, r in results.items():
        if "attack" in r:
            print(f"{label}: weight attack ζ={args.attack_eps:g}: sign-PGA {100 * r['attack']['pga']:.1f} % vs "
                  f"random box corner {100 * r['attack']['random']:.1f} %")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"config": cfg.to_dict(), "results": results}, fh, indent=1, default=float)
    return results


if __name__ == "__main__":
    main()
