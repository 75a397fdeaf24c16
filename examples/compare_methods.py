"""Compare training methods under device mismatch: the paper's acceptance experiment, scaled down.

For each task, every method trains the same model from the same seed (``spikerobust.robust.fit``,
best clean validation epoch kept), then the test accuracy is measured under mismatch
θ ⊙ (1 + m·N(0, 1)) at m ∈ --levels (mean / std / min over --draws draws, docs/evaluation.md), and for
the standard model the accuracy under the sign-PGA weight attack versus a random corner of the
same box (the paper's Fig. S5 effect).

Tasks:
  lsnn    LSNN (N = --hidden) on the synthetic N/L/R/V ECG beats generated in code
          (``spikerobust.datasets.ecg_synthetic``: [T=100, B, 2] currents, 4 classes);
  fmnist  the paper's F-MNIST CNN (``cnn_fmnist``) on a subset of Fashion-MNIST read from the
          IDX files (/usr/share/datasets/fashion-mnist, or $FASHION_MNIST_DIR).

Methods (--methods, comma separated): standard, adversarial (β = --beta), forward_noise
(η = 0.3), forward_noise_beta (η = 0.3 plus β = --beta-fn), awp, dropout, amp, abcd, entropy_sgd.

Each default command (``--task lsnn`` / ``--task fmnist``) takes about 10 minutes on one core.

Examples:
    python examples/compare_methods.py --task lsnn
    python examples/compare_methods.py --task fmnist --n-train 1000 --epochs 4
    python examples/compare_methods.py --task lsnn --methods standard,forward_noise --epochs 2 --draws 5
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Dict, List, Tuple

import numpy as np
import torch

from spikerobust.models import get_model
from spikerobust.robust.attacks import attacked_accuracy
from spikerobust.robust.methods import get_method
from spikerobust.robust.mismatch import mismatch_evaluate
from spikerobust.robust.trainer import evaluate_accuracy, fit

Batches = List[Tuple[torch.Tensor, torch.Tensor]]


def batches(x: torch.Tensor, y: torch.Tensor, size: int, *, time_first: bool, shuffle_seed=None) -> Batches:
    n = y.shape[0]
    idx = torch.arange(n) if shuffle_seed is None else torch.randperm(n, generator=torch.Generator().manual_seed(shuffle_seed))
    out = []
    for i in range(0, n, size):
        j = idx[i : i + size]
        out.append(((x[:, j] if time_first else x[j]), y[j]))
    return out


class Shuffled:
    """Re-shuffles ``(x, y)`` every epoch from the global torch RNG (checkpointed by the trainer)."""

    def __init__(self, x, y, size, time_first):
        self.x, self.y, self.size, self.time_first = x, y, size, time_first

    def __iter__(self):
        perm = torch.randperm(self.y.shape[0])
        for i in range(0, len(perm), self.size):
            j = perm[i : i + self.size]
            yield (self.x[:, j] if self.time_first else self.x[j]), self.y[j]


def lsnn_data(args):
    from spikerobust.datasets.ecg_synthetic import SyntheticECG

    def load(split):
        ds = SyntheticECG(split=split, beats_per_class=args.beats_per_class, seed=args.seed)
        x = torch.from_numpy(np.ascontiguousarray(ds.data)).float().permute(1, 0, 2).contiguous()  # [T, B, 2]
        return x, torch.from_numpy(ds.targets).long()

    return load("train"), load("val"), load("test"), True


def fmnist_data(args):
    from spikerobust.datasets.images import FashionMNIST, channel_stats

    train, test = FashionMNIST(split="train"), FashionMNIST(split="test")
    g = np.random.default_rng(args.seed)
    idx = g.permutation(len(train.targets))
    tr, va = idx[: args.n_train], idx[args.n_train : args.n_train + args.n_val]
    te = g.permutation(len(test.targets))[: args.n_test]
    mean, std = channel_stats(train.data[tr])
    m = torch.as_tensor(np.asarray(mean), dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.as_tensor(np.asarray(std), dtype=torch.float32).view(1, -1, 1, 1)

    def prep(data, targets, i):
        return (torch.from_numpy(data[i]).float() - m) / s, torch.from_numpy(targets[i]).long()

    return prep(train.data, train.targets, tr), prep(train.data, train.targets, va), prep(test.data, test.targets, te), False


def make_method(name: str, args):
    if name == "adversarial":
        return get_method("adversarial", beta=args.beta, n_steps=args.n_steps)
    if name == "forward_noise_beta":
        return get_method("forward_noise", eta=0.3, beta=args.beta_fn, n_steps=args.n_steps)
    return get_method(name)


def make_model(args):
    if args.task == "lsnn":
        return get_model("lsnn_ecg", n_hidden=args.hidden, n_classes=4)
    return get_model("cnn_fmnist")


def run_task(args) -> Dict[str, dict]:
    (xtr, ytr), (xva, yva), (xte, yte), tf = (lsnn_data if args.task == "lsnn" else fmnist_data)(args)
    logging.info("%s: train %d, val %d, test %d", args.task, len(ytr), len(yva), len(yte))
    val = batches(xva, yva, 500, time_first=tf)
    test = batches(xte, yte, 500, time_first=tf)
    results = {}
    for name in args.methods.split(","):
        torch.manual_seed(args.seed)
        model = make_model(args)
        method = make_method(name, args)
        t0 = time.time()
        ckpt = None if args.checkpoint_dir is None else f"{args.checkpoint_dir}/{args.task}_{name}"
        res = fit(model, method, Shuffled(xtr, ytr, args.batch, tf), val, epochs=args.epochs, lr=args.lr,
                  milestones=[int(args.epochs * 0.75)] if args.epochs >= 4 else [], checkpoint_dir=ckpt,
                  seed=args.seed, progress=args.progress)
        train_s = time.time() - t0
        clean = evaluate_accuracy(model, test)
        mm = mismatch_evaluate(model, test, levels=args.levels, n_draws=args.draws, seed=args.seed + 1,
                               label=name, progress=False)
        row = {"clean": clean, "best_epoch": res.best_epoch, "val": res.best_val_accuracy, "train_s": train_s,
               "mismatch": {str(r["level"]): {k: r[k] for k in ("mean", "std", "min")} for r in mm.summary()}}
        if name == "standard" or args.attack_all:
            row["attack"] = {}
            for eps in args.attack_eps:
                pga = attacked_accuracy(model, test, eps, n_steps=10, objective="ce", seed=args.seed, progress=False)
                rnd = [attacked_accuracy(model, test, eps, attack="random", seed=args.seed + k, progress=False)
                       for k in range(args.random_draws)]
                row["attack"][str(eps)] = {"pga": pga, "random_mean": float(np.mean(rnd)), "random_min": float(np.min(rnd))}
        results[name] = row
        logging.info("%s: %s", name, json.dumps(row))
    return results


def table(task: str, results: Dict[str, dict], levels) -> str:
    head = "| method | clean | " + " | ".join(f"m={m:g} mean ± std (min)" for m in levels) + " | train s |"
    lines = [f"### {task}", head, "|" + "---|" * (len(levels) + 3)]
    for name, r in results.items():
        cells = []
        for m in levels:
            s = r["mismatch"][str(float(m))]
            cells.append(f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f} ({100 * s['min']:.1f})")
        lines.append(f"| {name} | {100 * r['clean']:.1f} | " + " | ".join(cells) + f" | {r['train_s']:.0f} |")
    for name, r in results.items():
        for eps, a in r.get("attack", {}).items():
            lines.append(f"\n{name}: weight attack ε={eps}: PGA (CE, 10 steps) {100 * a['pga']:.1f} % vs random "
                         f"box corner {100 * a['random_mean']:.1f} % (min {100 * a['random_min']:.1f} %)")
    return "\n".join(lines)


def main(argv=None) -> Dict[str, dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", choices=("lsnn", "fmnist"), default="lsnn")
    ap.add_argument("--methods", default="standard,adversarial,forward_noise,forward_noise_beta")
    ap.add_argument("--epochs", type=int, default=None, help="default: lsnn 15, fmnist 4")
    ap.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: lsnn 1e-2, fmnist 1e-3), x0.1 at 3/4 of the epochs")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--hidden", type=int, default=64, help="LSNN neurons")
    ap.add_argument("--beats-per-class", type=int, default=250, help="synthetic ECG beats per class (80/10/10 split)")
    ap.add_argument("--n-train", type=int, default=1000, help="F-MNIST training subset")
    ap.add_argument("--n-val", type=int, default=500)
    ap.add_argument("--n-test", type=int, default=500)
    ap.add_argument("--beta", type=float, default=0.25, help="beta_rob of 'adversarial'")
    ap.add_argument("--beta-fn", type=float, default=0.1, help="beta_rob of 'forward_noise_beta'")
    ap.add_argument("--n-steps", type=int, default=3,
                    help="attack steps of the robust loss (default 10, the paper's ResNet setting 3; 3 keeps "
                         "each task near 10 min on one core)")
    ap.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.3, 0.5, 0.7])
    ap.add_argument("--draws", type=int, default=None, help="mismatch draws per level (default: lsnn 50, fmnist 10)")
    ap.add_argument("--attack-eps", type=float, nargs="+", default=[0.1])
    ap.add_argument("--random-draws", type=int, default=5)
    ap.add_argument("--attack-all", action="store_true", help="attack every method, not only standard")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkpoint-dir", default=None)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--progress", action="store_true", help="tqdm bars")
    args = ap.parse_args(argv)
    fm = args.task == "fmnist"
    args.epochs = args.epochs or (4 if fm else 15)
    args.lr = args.lr or (1e-3 if fm else 1e-2)
    args.draws = args.draws or (10 if fm else 50)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.time()
    results = run_task(args)
    print(table(args.task, results, args.levels))
    print(f"\ntotal {time.time() - t0:.0f} s")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"args": vars(args), "results": results}, fh, indent=1)
    return results


if __name__ == "__main__":
    main()
