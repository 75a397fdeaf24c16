"""Verified accuracy against the weight-box size ζ for a standard and a robust-trained ECG LSNN.

Trains two LSNN classifiers on MIT-BIH beats (N, L, R, V; docs/tasks.md) from the same initialisation —
one with standard training, one with the adversarial robust loss (docs/robust-training.md, β_rob = 0.25 for
ECG) — then certifies the test set with interval bound propagation (docs/verification.md): a beat counts when
every network with ``|p' - p| <= ζ|p|`` for every weight and bias classifies it correctly. The
paper's claim (Fig. S9): the robust-trained network keeps a higher verified accuracy as ζ grows.

This is a scaled-down run (one CPU core, ~10 minutes): fewer neurons, beats and epochs than the
paper (N = 256, 13 400 beats, 150 + 50 epochs), and fewer attack steps per training step. To fit
the budget both models start from one shared standard-trained network (``--pretrain-epochs``) and
then train ``--epochs`` more epochs each, one with the standard loss and one with the robust loss
(the paper trains the ECG models from scratch; it fine-tunes from a pretrained model only for
PCM). The model with the best clean validation accuracy of each run is kept (docs/lsnn.md).

Run::

    python examples/verify_ecg.py                       # MIT-BIH from ../shared/data/mitdb
    python examples/verify_ecg.py --synthetic           # synthetic ECG (no data needed)
    python examples/verify_ecg.py --n-hidden 128 --epochs 10 --out results.md
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import time

import numpy as np
import torch

from spikerobust.nn import LSNNClassifier
from spikerobust.robust.methods import get_method, list_methods
from spikerobust.verify import SpikeStatus, is_verified, lsnn_interval_simulation

ZETAS = (0.0, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3)
DEFAULT_ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mitdb")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=DEFAULT_ROOT, help="folder with the MIT-BIH NNN.hea/.dat/.atr records")
    p.add_argument("--synthetic", action="store_true", help="use the synthetic ECG generator instead of MIT-BIH")
    p.add_argument("--beats-per-class", type=int, default=750, help="balanced beats per class before the 80/10/10 split")
    p.add_argument("--split-mode", choices=("random", "record"), default="random", help="random (paper) or patient-wise")
    p.add_argument("--n-hidden", type=int, default=128, help="LSNN neurons (paper: 256)")
    p.add_argument("--pretrain-epochs", type=int, default=25, help="shared standard training before the two runs")
    p.add_argument("--epochs", type=int, default=5, help="training epochs per model after the shared pretraining")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate of the pretraining")
    p.add_argument("--lr-finetune", type=float, default=2e-3, help="Adam learning rate of the two runs")
    p.add_argument("--beta", type=float, default=0.25, help="β_rob of the robust loss (paper, ECG: 0.25)")
    p.add_argument("--attack-steps", type=int, default=5, help="adversary sign steps per training step (paper: 10)")
    p.add_argument("--zetas", type=float, nargs="+", default=list(ZETAS), help="relative box half-widths to certify")
    p.add_argument("--neuron-constants", action="store_true", help="also put τ_mem, τ_adapt, b0, β_adapt in the box")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=None, help="write the table (markdown) and a .json next to it")
    return p.parse_args(argv)


def load_data(args):
    """``{split: (x [T, B, 2], y [B])}`` and a description of the source."""
    if args.synthetic:
        from spikerobust.datasets import SyntheticECG

        make = lambda split: SyntheticECG(split=split, beats_per_class=args.beats_per_class, seed=args.seed)  # noqa: E731
        source = f"synthetic ECG, {args.beats_per_class} beats/class"
    else:
        from spikerobust.datasets import MITBIH

        make = lambda split: MITBIH(  # noqa: E731
            args.data_root, split=split, beats_per_class=args.beats_per_class, split_mode=args.split_mode, seed=args.seed
        )
        source = f"MIT-BIH ({args.split_mode} split), {args.beats_per_class} beats/class"
    out = {}
    for split in ("train", "val", "test"):
        ds = make(split)
        x = torch.as_tensor(np.asarray(ds.data), dtype=torch.float32).transpose(0, 1).contiguous()
        out[split] = (x, torch.as_tensor(np.asarray(ds.targets), dtype=torch.long))
    return out, source


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(dim=1) == y).float().mean())


def train(model, method, data, epochs, lr, batch_size, seed, label):
    """Train ``model`` with ``method``; keep the state with the best clean validation accuracy."""
    x, y = data["train"]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    best, best_state = -1.0, None
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(y.shape[0], generator=g)
        t0, losses = time.perf_counter(), []
        for start in range(0, len(perm), batch_size):
            idx = perm[start : start + batch_size]
            losses.append(method.step(model, x[:, idx], y[idx], opt)["loss"])
        model.eval()
        val = accuracy(model, *data["val"])
        logging.info("%s epoch %d: loss %.4f, val acc %.4f (%.0f s)", label, epoch + 1, np.mean(losses), val, time.perf_counter() - t0)
        if val > best:
            best, best_state = val, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return best


def certify(model, x, y, zetas, neuron_constants):
    """Verified accuracy and fraction of uncertain spikes per ζ (float64)."""
    rows = []
    for zeta in zetas:
        res = lsnn_interval_simulation(model, x, zeta, neuron_constants=neuron_constants, dtype=torch.float64)
        ok = is_verified(res.logits.lower, res.logits.upper, y)
        unc = float((res.spike_status == SpikeStatus.UNCERTAIN).float().mean())
        rows.append({"zeta": zeta, "verified": float(ok.float().mean()), "uncertain_spikes": unc})
    return rows


def robust_method(args):
    if "adversarial" not in list_methods():
        raise SystemExit(
            f"the 'adversarial' training method is not registered (have: {list_methods()}); "
            f"it comes with spikerobust.robust.methods.adversarial"
        )
    try:
        return get_method("adversarial", beta=args.beta, n_steps=args.attack_steps, seed=args.seed)
    except TypeError:
        logging.warning("the adversarial method takes no n_steps argument; using its default number of steps")
        return get_method("adversarial", beta=args.beta)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    data, source = load_data(args)
    x_te, y_te = data["test"]
    methods = {"standard": get_method("standard"), f"robust (β={args.beta:g})": robust_method(args)}
    torch.manual_seed(args.seed)
    base = LSNNClassifier(2, n_hidden=args.n_hidden, n_classes=4)
    t0 = time.perf_counter()
    if args.pretrain_epochs > 0:
        train(base, get_method("standard"), data, args.pretrain_epochs, args.lr, args.batch_size, args.seed, "pretrain")
    pretrain_seconds = time.perf_counter() - t0
    results = {}
    for label, method in methods.items():
        model = copy.deepcopy(base)  # same starting point for both models
        t0 = time.perf_counter()
        val = train(model, method, data, args.epochs, args.lr_finetune, args.batch_size, args.seed + 1, label)
        rows = certify(model, x_te.double(), y_te, args.zetas, args.neuron_constants)
        results[label] = {
            "val_acc": val,
            "test_acc": accuracy(copy.deepcopy(model).double(), x_te.double(), y_te),  # what is certified
            "rows": rows,
            "seconds": time.perf_counter() - t0,
            "method": repr(method),
        }
    lines = [
        f"Verified test accuracy (%) on {source}; LSNN N = {args.n_hidden}, {args.pretrain_epochs} shared "
        f"standard epochs then {args.epochs} epochs per method, "
        f"{y_te.numel()} test beats; box ±ζ|p| on every weight and bias"
        + (" and neuron constant" if args.neuron_constants else "")
        + "; in brackets: % of (step, neuron, beat) spikes left uncertain.",
        "",
        "| ζ | " + " | ".join(results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for i, zeta in enumerate(args.zetas):
        cells = [f"{100 * r['rows'][i]['verified']:.1f} ({100 * r['rows'][i]['uncertain_spikes']:.1f})" for r in results.values()]
        lines.append(f"| {zeta:g} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("clean test accuracy (float64): " + ", ".join(f"{k} {100 * v['test_acc']:.1f}%" for k, v in results.items()))
    lines.append(
        f"time: shared pretraining {pretrain_seconds:.0f} s; training + certification: "
        + ", ".join(f"{k} {v['seconds']:.0f} s" for k, v in results.items())
    )
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
        with open(os.path.splitext(args.out)[0] + ".json", "w") as f:
            json.dump({"args": vars(args), "source": source, "results": results}, f, indent=2)


if __name__ == "__main__":
    main()
