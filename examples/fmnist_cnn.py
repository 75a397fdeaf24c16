"""The paper's Fashion-MNIST CNN trained with one method: accuracy under mismatch, and the worst-case
weight attack against a random perturbation of the same size.

The network is the registered ``cnn_fmnist`` model (docs/tasks.md): conv 64@4×4 "same" → ReLU →
max-pool 2 → conv 64@4×4 "valid" → ReLU → max-pool 2 → dense 256 → 64 → 10, on images
standardised per channel with training statistics. Training follows docs/tasks.md's schedule, Adam
1e-4 then 1e-5 (after 3/4 of the epochs), scaled down: a seeded subset of ``--n-train`` images
(10 % of it for validation, the best clean-validation epoch kept) and ``--epochs`` epochs.
``--method`` is any registered method (``spikerobust methods``) or one of the paper's labels
(``beta`` = adversarial with β = 0.25, ``fn+beta`` = forward noise η = 0.3 + β = 0.1, ``dropout``
on the dense inputs ...), with optional settings after a colon (``adversarial:beta=0.1``).

Then, on ``--n-test`` test images:
  * the accuracy under mismatch θ ⊙ (1 + m·N(0, 1)), mean / std / min over ``--draws`` draws per
    level (Table 1's protocol, docs/evaluation.md);
  * for each ``--attack-eps`` ζ: the accuracy at the weights found by the sign-PGA attack inside
    the box |δ| ≤ ζ·|θ| (cross-entropy, ``--attack-steps`` steps, one attack per batch of 500)
    against the accuracy at ``--random-draws`` random corners of the same box. The attack finds
    far worse weights than chance does (the paper's Fig. S5 effect).

Data: the Fashion-MNIST IDX files from ``--data-dir``, by default Debian's dataset-fashion-mnist
(``/usr/share/datasets/fashion-mnist``). Defaults are the ``quick`` preset's sizes
(``spikerobust.experiments.PRESETS``; flag help shows them), 10 mismatch draws per level and the
paper's learning rate (docs/tasks.md): minutes for ``standard`` on one core (measured times in examples/README.md).
At this scale 1e-4 leaves the network under-trained (about 75 % clean accuracy; ``--lr 1e-3`` or
more ``--epochs`` get further); ``--preset paper`` uses all 60 000 images, 50 epochs, 100 draws.

Writes ``model.pt`` (``torch.load(..., weights_only=True)`` or
``spikerobust.experiments.load_model``), ``checkpoints/last.pt`` and ``results.json`` to
``--out-dir``; prints both tables.

Examples:
    python examples/fmnist_cnn.py
    python examples/fmnist_cnn.py --method fn+beta --epochs 12
    python examples/fmnist_cnn.py --method awp --n-train 10000 --attack-eps 0.01 0.05 0.1
    python examples/fmnist_cnn.py --preset paper --method beta      # the paper's sizes (hours)
    python examples/fmnist_cnn.py --quick
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import torch

from spikerobust.analysis.tables import markdown_table
from spikerobust.experiments import PRESETS, train_single
from spikerobust.robust.attacks import attacked_accuracy
from spikerobust.robust.methods import list_methods
from spikerobust.robust.mismatch import mismatch_evaluate

#: ``--quick``: tiny sizes for a smoke test (explicit flags still win).
QUICK = dict(n_train=200, n_test=100, epochs=1, lr=1e-3, draws=3, levels=[0.0, 0.5], attack_eps=[0.1], attack_steps=2,
             random_draws=2)


def parse_args(argv=None) -> argparse.Namespace:
    q, pp = PRESETS["fmnist"]["quick"], PRESETS["fmnist"]["paper"]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None,
                   help="Fashion-MNIST IDX folder (default: Debian's dataset-fashion-mnist)")
    p.add_argument("--method", default="standard",
                   help=f"registered method {list_methods()} or paper label (beta, fn+beta), "
                        "optionally with settings: 'adversarial:beta=0.1'")
    p.add_argument("--preset", choices=("quick", "paper"), default="quick", help="sizes to start from")
    p.add_argument("--n-train", type=int, default=None,
                   help=f"training images incl. 10 %% validation (quick {q['n_train']}, paper all)")
    p.add_argument("--n-test", type=int, default=None, help=f"test images (quick {q['n_test']}, paper all)")
    p.add_argument("--epochs", type=int, default=None, help=f"quick {q['epochs']}, paper {pp['epochs']}")
    p.add_argument("--lr", type=float, default=None,
                   help="Adam learning rate, /10 after --lr-drop-at of the epochs (default docs/tasks.md's 1e-4)")
    p.add_argument("--lr-drop-at", type=float, default=0.75, help="fraction of the epochs before the drop")
    p.add_argument("--batch-size", type=int, default=None, help=f"quick {q['batch_size']}, paper {pp['batch_size']}")
    p.add_argument("--levels", type=float, nargs="+", default=None, help="mismatch levels m (must include 0)")
    p.add_argument("--draws", type=int, default=None,
                   help=f"mismatch draws per level (default 10 with --preset quick, paper {pp['n_draws']})")
    p.add_argument("--attack-eps", type=float, nargs="+", default=None, help="attack box sizes ζ (default 0.05 0.1)")
    p.add_argument("--attack-steps", type=int, default=None, help="sign-PGA steps (default 10)")
    p.add_argument("--random-draws", type=int, default=None, help="random corners per ζ (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--out-dir", default="results/fmnist_cnn")
    p.add_argument("--resume", action="store_true", help="continue training from OUT/checkpoints/last.pt")
    p.add_argument("--quick", action="store_true", help=f"tiny run for a smoke test: {QUICK}")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    args.lr = args.lr or 1e-4
    if args.draws is None and args.preset == "quick":
        args.draws = 10  # the CNN's draws cost ~10x an LSNN's on a CPU; 10 keep the default run at minutes
    args.attack_eps = args.attack_eps or [0.05, 0.1]
    args.attack_steps = args.attack_steps or 10
    args.random_draws = args.random_draws or 3
    return args


def attack_vs_random(model, test, args, seed: int, progress: bool) -> dict:
    """ζ → accuracy at the sign-PGA weights, and mean / min accuracy over random box corners."""
    out = {}
    for eps in args.attack_eps:
        pga = attacked_accuracy(model, test, eps, n_steps=args.attack_steps, objective="ce", seed=seed,
                                progress=progress)
        rnd = [attacked_accuracy(model, test, eps, attack="random", random_mode="corner", seed=seed + k,
                                 progress=False) for k in range(args.random_draws)]
        out[str(eps)] = {"pga": pga, "random": rnd, "random_mean": float(np.mean(rnd)),
                         "random_min": float(np.min(rnd))}
    return out


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    given = dict(data_dir=args.data_dir, n_train=args.n_train, n_test=args.n_test, epochs=args.epochs,
                 batch_size=args.batch_size, levels=args.levels, n_draws=args.draws)
    run = train_single("fmnist", args.method, args.preset, {
        **{k: v for k, v in given.items() if v is not None}, "lr": args.lr, "lr_drop_at": args.lr_drop_at,
        "seed": args.seed, "out_dir": args.out_dir, "progress": not args.no_progress}, resume=args.resume)
    cfg, label = run.cfg, run.label

    test = run.data.batches("test")
    mm = mismatch_evaluate(run.model, test, levels=cfg.levels, n_draws=cfg.n_draws, seed=cfg.seed, label=label,
                           progress=cfg.progress)
    run.seconds["mismatch"] = time.perf_counter() - start - run.seconds["train"]
    attack = attack_vs_random(run.model, test, args, cfg.seed, cfg.progress)
    run.seconds["total"] = time.perf_counter() - start

    print(f"\n{label} {cfg.methods[label]}: clean test accuracy {100 * run.info['test_accuracy']:.2f} % "
          f"(best epoch {run.info['best_epoch']} of {cfg.epochs}); under mismatch, {cfg.n_draws} draws per level:\n")
    print(mm.to_markdown())
    rows = [[f"{float(eps):g}", 100 * a["pga"], 100 * a["random_mean"], 100 * a["random_min"]]
            for eps, a in attack.items()]
    print(f"\nWeight attack (sign-PGA, CE, {args.attack_steps} steps) vs random corners of the same box "
          f"({args.random_draws} draws): test accuracy %\n")
    print(markdown_table(["ζ", "attack", "random mean", "random min"], rows))
    print(f"\ntraining {run.seconds['train']:.0f} s, mismatch {run.seconds['mismatch']:.0f} s, "
          f"total {run.seconds['total']:.0f} s; written to {run.out}/ (model.pt, results.json)")
    return run.write_results(mismatch=mm.to_dict(), attack={
        "steps": args.attack_steps, "objective": "ce", "random_draws": args.random_draws, "by_eps": attack})


if __name__ == "__main__":
    main()
