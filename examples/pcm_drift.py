"""Accuracy over time on simulated PCM crossbars: FP baseline vs noise injection vs noise injection + robust loss.

Reproduces, scaled down, the PCM experiment of Büchel et al. (2022, Fig. 4 / docs/pcm.md): three
networks are deployed on the PCM simulator (programming noise, per-device drift, 1/f read noise,
global drift compensation, 256 × 256 tiles) and tested at t = 25 s, 1 h, 1 d, 30 d and 1 y after
programming, over several programming repetitions:

A network is first pretrained with standard training (``--epochs`` epochs); then three copies
are fine-tuned for the same ``--finetune-epochs`` on the same images, so that they have had the
same training budget:

1. ``fp``: the floating-point baseline, fine-tuned with standard training (no noise; with
   ``--no-fp-finetune`` it is the pretrained network itself);
2. ``ni``: fine-tuned with noise injection (``--noise-mode``, ``--eta``) and weights clipped to
   ±``--clip-sigma``·σ after each step;
3. ``ni+rob``: the same noise injection plus the robust loss (β = ``--beta``, attack size
   ``--epsilon``, N_steps = 3) — the paper's method for PCM, which starts from a pretrained model.

The paper uses ResNet32 on CIFAR-10; this script defaults to the F-MNIST CNN (docs/tasks.md), which is
what fits on one CPU core. ``--model resnet32 --dataset cifar10 --data-root DIR`` runs the paper's
pair where CIFAR-10 is available (it is not downloaded here). Default scale (one core, ~10 min):
10 000 training images, 3 pretraining epochs, 1 fine-tuning epoch on 5 000 images, 1 000 test
images, 5 repetitions (paper: full data, 25 repetitions).

Outputs (``--out-dir``): ``pcm_drift.json`` (all accuracies), ``pcm_drift.png`` (plot), the
three checkpoints (reused by ``--reuse``), and the markdown table on stdout.

Run::

    python examples/pcm_drift.py
    python examples/pcm_drift.py --n-reps 25 --n-test 10000 --epochs 10        # closer to the paper
    python examples/pcm_drift.py --model resnet32 --dataset cifar10 --data-root ~/data
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
from tqdm.auto import tqdm

from spikerobust.models import get_model
from spikerobust.robust.methods import get_method
from spikerobust.robust.pcm import (PCM_TIMES, PCMConfig, format_time, pcm_accuracy_over_time, pcm_table,
                                   plot_accuracy_over_time)

MODELS = {"fmnist": "cnn_fmnist", "cifar10": "resnet32"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=("fmnist", "cifar10"), default="fmnist")
    p.add_argument("--model", choices=("cnn_fmnist", "resnet32"), default=None, help="default: by dataset")
    p.add_argument("--data-root", default=None, help="dataset folder (F-MNIST default: /usr/share/datasets/fashion-mnist)")
    p.add_argument("--n-train", type=int, default=10_000, help="training images (seeded subset; 0 = all)")
    p.add_argument("--n-finetune", type=int, default=5_000, help="images per fine-tuning epoch (0 = the training subset)")
    p.add_argument("--n-test", type=int, default=1_000, help="test images (seeded subset; 0 = all)")
    p.add_argument("--epochs", type=int, default=3, help="standard pretraining epochs")
    p.add_argument("--no-fp-finetune", action="store_true", help="use the pretrained network as the FP baseline")
    p.add_argument("--finetune-epochs", type=int, default=1, help="noise-injection fine-tuning epochs")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3, help="pretraining learning rate (Adam; SGD-Nesterov for resnet32)")
    p.add_argument("--lr-finetune", type=float, default=3e-4, help="fine-tuning learning rate")
    p.add_argument("--eta", type=float, default=0.1, help="noise-injection size η")
    p.add_argument("--noise-mode", choices=("layer_range", "relative"), default="layer_range")
    p.add_argument("--clip-sigma", type=float, default=2.0, help="clip weights to ±clip·σ after each fine-tuning step (0: off)")
    p.add_argument("--beta", type=float, default=0.1, help="β_rob (paper: from 0.01-0.1)")
    p.add_argument("--epsilon", type=float, default=0.1, help="attack size ε (paper: from 0.01-0.1)")
    p.add_argument("--attack-steps", type=int, default=3, help="N_steps (paper's PCM runs: 3)")
    p.add_argument("--n-reps", type=int, default=5, help="programming repetitions (paper: 25)")
    p.add_argument("--times", type=float, nargs="+", default=list(PCM_TIMES), help="seconds since programming")
    p.add_argument("--t0", type=float, default=25.0, help="programming reference time (paper's runs: 25 s)")
    p.add_argument("--dac-bits", type=int, default=None, help="simulate an input DAC (e.g. 8; slow on CPU)")
    p.add_argument("--adc-bits", type=int, default=None, help="simulate an output ADC (e.g. 8; slow on CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out-dir", default="results/pcm_drift")
    p.add_argument("--reuse", action="store_true", help="load checkpoints from --out-dir instead of training")
    return p.parse_args(argv)


def load_data(args):
    from spikerobust.datasets.images import CIFAR10, FashionMNIST, channel_stats

    cls = FashionMNIST if args.dataset == "fmnist" else CIFAR10
    if args.dataset == "cifar10" and args.data_root is None:
        raise SystemExit("CIFAR-10 is not bundled: pass --data-root with cifar-10-batches-py")
    train, test = cls(root=args.data_root, split="train"), cls(root=args.data_root, split="test")
    rng = np.random.default_rng(args.seed)

    def subset(ds, n):
        idx = rng.permutation(len(ds.targets))[: n or None]
        return torch.from_numpy(ds.data[idx]), torch.from_numpy(ds.targets[idx])

    x_tr, y_tr = subset(train, args.n_train)
    x_te, y_te = subset(test, args.n_test)
    mean, std = channel_stats(x_tr.numpy())  # per-channel standardisation from the training subset (docs/tasks.md)
    mean, std = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x_tr - mean) / std, y_tr, (x_te - mean) / std, y_te


def make_optimizer(args, model, lr):
    if args.model == "resnet32":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    return torch.optim.Adam(model.parameters(), lr=lr)


def train(model, method, x, y, epochs, n_per_epoch, args, lr, desc):
    opt = make_optimizer(args, model, lr)
    gen = torch.Generator().manual_seed(args.seed + 1)
    model.train()
    n = min(n_per_epoch or len(y), len(y))
    for epoch in range(epochs):
        order = torch.randperm(len(y), generator=gen)[:n]
        losses = []
        for i in tqdm(range(0, n, args.batch_size), desc=f"{desc} {epoch + 1}/{epochs}", leave=False):
            b = order[i:i + args.batch_size]
            losses.append(method.step(model, x[b], y[b], opt)["loss"])
        logging.info("%s epoch %d: mean loss %.4f", desc, epoch + 1, float(np.mean(losses)))
    model.eval()
    return model


@torch.no_grad()
def accuracy(model, x, y, bs=1000):
    return sum(int((model(x[i:i + bs]).argmax(1) == y[i:i + bs]).sum()) for i in range(0, len(y), bs)) / len(y)


def main(argv=None) -> dict:
    args = parse_args(argv)
    args.model = args.model or MODELS[args.dataset]
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.makedirs(args.out_dir, exist_ok=True)
    start = time.time()
    x_tr, y_tr, x_te, y_te = load_data(args)
    n_classes = int(y_tr.max()) + 1

    torch.manual_seed(args.seed)
    base = get_model(args.model, n_classes=n_classes)
    clip = args.clip_sigma if args.clip_sigma > 0 else None
    methods = {
        "fp": get_method("standard"),
        "ni": get_method("noise_injection", eta=args.eta, mode=args.noise_mode, clip_sigma=clip, seed=args.seed),
        "ni+rob": get_method("noise_injection", eta=args.eta, mode=args.noise_mode, clip_sigma=clip, seed=args.seed,
                             beta=args.beta, epsilon=args.epsilon, n_steps=args.attack_steps),
    }
    models, ckpt = {}, lambda k: os.path.join(args.out_dir, f"{args.model}_{k.replace('+', '_')}.pt")
    for key in ("pre", "fp", "ni", "ni+rob"):
        if args.reuse and os.path.exists(ckpt(key)):
            m = get_model(args.model, n_classes=n_classes)
            m.load_state_dict(torch.load(ckpt(key), weights_only=True))
            models[key] = m.eval()
            continue
        if key == "pre":
            models[key] = train(base, get_method("standard"), x_tr, y_tr, args.epochs, 0, args, args.lr, "pretrain")
        elif key == "fp" and args.no_fp_finetune:
            models[key] = models["pre"]
        else:  # fine-tune a copy of the pretrained network
            models[key] = train(copy.deepcopy(models["pre"]), methods[key], x_tr, y_tr, args.finetune_epochs,
                                args.n_finetune, args, args.lr_finetune, key)
        torch.save(models[key].state_dict(), ckpt(key))
    del models["pre"]
    t_train = time.time() - start

    config = PCMConfig(t0=args.t0, dac_bits=args.dac_bits, adc_bits=args.adc_bits)
    results = {}
    for key, m in models.items():
        results[key] = pcm_accuracy_over_time(m, (x_te, y_te), args.times, args.n_reps, config, seed=args.seed + 100, batch_size=500)
    t_total = time.time() - start

    labels = {"fp": "FP baseline", "ni": f"noise injection (η={args.eta})", "ni+rob": f"noise injection + robust loss (β={args.beta})"}
    table = pcm_table({labels[k]: v for k, v in results.items()})
    best = max(results, key=lambda k: float(results[k].mean[-1]))
    print(f"\n{args.model} on {args.dataset}: test accuracy (%) on PCM, mean ± std over {args.n_reps} programmings, "
          f"{len(y_te)} test images\n")
    print(table)
    print(f"\nMost accuracy at {format_time(max(args.times))}: {labels[best]}. "
          f"Training {t_train:.0f} s, total {t_total:.0f} s.")

    fig = plot_accuracy_over_time({labels[k]: v for k, v in results.items()}, os.path.join(args.out_dir, "pcm_drift.png"),
                                  title=f"{args.model} on PCM ({args.dataset})")
    del fig
    out = dict(args=vars(args), table=table, best_at_last_time=best, seconds=dict(train=t_train, total=t_total),
               results={k: dict(times=list(v.times), accuracy=v.accuracy.tolist(), digital=v.digital) for k, v in results.items()})
    with open(os.path.join(args.out_dir, "pcm_drift.json"), "w") as fh:
        json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()
