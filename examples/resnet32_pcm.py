"""Train ResNet32 on CIFAR-10 as docs/pcm.md prescribes, deploy it on simulated PCM crossbars, and report
its test accuracy over time since programming.

The network is the registered ``resnet32`` model (CIFAR-style, [5, 5, 5] blocks, widths 16/32/64,
option-A shortcuts). Training (``spikerobust.robust.fit``): SGD with Nesterov momentum 0.9 and
weight decay 5e-4, the learning rate divided by 10 at ``--milestones`` (fractions of the epochs),
every weight tensor clipped to ±``--clip-sigma``·σ of itself after each optimiser step (docs/pcm.md:
2σ), the best clean-validation epoch kept. ``--method`` is any registered method
(``spikerobust methods``) with optional settings after a colon, e.g. ``noise_injection:eta=0.1``
(hardware-aware training) or ``noise_injection:eta=0.1;beta=0.1;epsilon=0.1`` (noise injection
plus the robust loss); clipping is this script's ``--clip-sigma``, for every method.

Deployment (``spikerobust.robust.pcm``, docs/pcm.md): programming noise, conductance drift, 1/f read
noise and global drift compensation on 256 × 256 tiles; for each of ``--n-reps`` programmings the
test accuracy at t = 25 s, 1 h, 1 d, 30 d and 1 y (``--times``). To compare FP training, noise
injection and noise injection + robust loss fine-tuned from one pretrained network, use
``examples/pcm_drift.py --model resnet32 --dataset cifar10``.

Data: CIFAR-10's python batches in ``--data-dir/cifar-10-batches-py`` (``--download`` fetches
them; this machine has no copy), a seeded subset of ``--n-train`` training images (``--n-val``
of them held out for validation) and ``--n-test`` test images, standardised per channel with the
training subset's statistics; no augmentation. Defaults (4000 images, 3 epochs, 1000 test images,
3 programmings) take minutes on one core (measured times in examples/README.md); the paper trains
on all 50 000 images for far longer and uses 25 programmings.

Writes to ``--out-dir``: ``resnet32.pt`` (a state dict: ``torch.load(..., weights_only=True)``),
``checkpoints/last.pt`` (``--resume``), ``results.json`` and ``pcm.png``; prints the table.

Examples:
    python examples/resnet32_pcm.py --data-dir ~/data
    python examples/resnet32_pcm.py --data-dir ~/data --method noise_injection:eta=0.1 --epochs 10
    python examples/resnet32_pcm.py --data-dir ~/data --n-train 0 --n-test 0 --epochs 100 --n-reps 25
    python examples/resnet32_pcm.py --data-dir ~/data --quick
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from spikerobust.datasets import CIFAR10
from spikerobust.datasets.images import channel_stats
from spikerobust.experiments import parse_method
from spikerobust.experiments.tasks import ShuffledBatches
from spikerobust.models import get_model
from spikerobust.robust.methods import get_method, list_methods
from spikerobust.robust.methods.noise_injection import clip_to_sigma
from spikerobust.robust.pcm import PCM_TIMES, PCMConfig, pcm_accuracy_over_time, pcm_table, plot_accuracy_over_time
from spikerobust.robust.trainer import evaluate_accuracy, fit

#: ``--quick``: tiny sizes for a smoke test (explicit flags still win).
QUICK = dict(n_train=60, n_val=20, n_test=20, epochs=1, batch_size=20, n_reps=2, times=[25.0, 86400.0])
DEFAULTS = dict(n_train=4000, n_val=500, n_test=1000, epochs=3, batch_size=128, n_reps=3, times=list(PCM_TIMES))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="folder holding cifar-10-batches-py")
    p.add_argument("--download", action="store_true", help="fetch CIFAR-10 into --data-dir if missing")
    p.add_argument("--method", default="standard",
                   help=f"registered method {list_methods()} with optional settings, e.g. 'noise_injection:eta=0.1'")
    p.add_argument("--n-train", type=int, default=None,
                   help=f"training images, validation included (default {DEFAULTS['n_train']}; 0 = all 50 000)")
    p.add_argument("--n-val", type=int, default=None, help=f"of which validation (default {DEFAULTS['n_val']})")
    p.add_argument("--n-test", type=int, default=None, help=f"test images (default {DEFAULTS['n_test']}; 0 = all)")
    p.add_argument("--epochs", type=int, default=None, help=f"default {DEFAULTS['epochs']}")
    p.add_argument("--batch-size", type=int, default=None, help=f"default {DEFAULTS['batch_size']} (docs/pcm.md: 256)")
    p.add_argument("--lr", type=float, default=0.05, help="SGD learning rate")
    p.add_argument("--milestones", type=float, nargs="*", default=[0.5, 0.75],
                   help="fractions of the epochs after which the learning rate is divided by 10")
    p.add_argument("--clip-sigma", type=float, default=2.0, help="clip weights to ±clip·σ after each step (0: off)")
    p.add_argument("--n-reps", type=int, default=None,
                   help=f"PCM programmings (default {DEFAULTS['n_reps']}, paper 25)")
    p.add_argument("--times", type=float, nargs="+", default=None,
                   help="seconds since programming (default 25 s … 1 y)")
    p.add_argument("--t0", type=float, default=25.0, help="programming reference time (the paper's runs: 25 s)")
    p.add_argument("--dac-bits", type=int, default=None, help="input DAC resolution (e.g. 8; slow on CPU)")
    p.add_argument("--adc-bits", type=int, default=None, help="output ADC resolution (e.g. 8; slow on CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--out-dir", default="results/resnet32_pcm")
    p.add_argument("--resume", action="store_true", help="continue training from OUT/checkpoints/last.pt")
    p.add_argument("--quick", action="store_true", help=f"tiny run for a smoke test: {QUICK}")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    args = p.parse_args(argv)
    for key in DEFAULTS:
        if getattr(args, key) is None:
            setattr(args, key, (QUICK if args.quick else DEFAULTS)[key])
    return args


def load_cifar(args):
    """Standardised ``(x, y)`` training, validation and test tensors (seeded subsets)."""
    train, test = (CIFAR10(args.data_dir, split=s, download=args.download) for s in ("train", "test"))
    rng = np.random.default_rng(args.seed)
    idx = rng.permutation(len(train.targets))[: args.n_train or None]
    if not 0 < args.n_val < len(idx):
        raise SystemExit(f"--n-val must be in [1, {len(idx) - 1}] for {len(idx)} training images, got {args.n_val}")
    tr, va = idx[args.n_val:], idx[: args.n_val]
    te = rng.permutation(len(test.targets))[: args.n_test or None]
    mean, std = (torch.as_tensor(s, dtype=torch.float32).view(1, -1, 1, 1) for s in channel_stats(train.data[tr]))

    def pair(ds, i):
        return (torch.from_numpy(ds.data[i]) - mean) / std, torch.from_numpy(ds.targets[i])

    return pair(train, tr), pair(train, va), pair(test, te)


def batches(pair, size: int = 500):
    x, y = pair
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(y), size)]


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    label, spec = parse_method(args.method, "fmnist")
    kwargs = dict(spec)
    if "clip_sigma" in kwargs:
        raise SystemExit("--method: clip with --clip-sigma (applied after every step, for every method)")
    method = get_method(kwargs.pop("method", label), **kwargs)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    train, val, test = load_cifar(args)
    print(f"CIFAR-10: {len(train[1])} training, {len(val[1])} validation, {len(test[1])} test images")
    torch.manual_seed(args.seed)
    model = get_model("resnet32", n_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    if args.clip_sigma > 0:
        params = dict(model.named_parameters())
        opt.register_step_post_hook(lambda *_: clip_to_sigma(params, args.clip_sigma))
    milestones = sorted({m for m in (int(round(f * args.epochs)) for f in args.milestones) if 1 <= m < args.epochs})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, 0.1)
    res = fit(model, method, ShuffledBatches(*train, batch_size=args.batch_size, seed=args.seed, time_first=False),
              batches(val), epochs=args.epochs, optimizer=opt, scheduler=sched, checkpoint_dir=out / "checkpoints",
              resume=args.resume, seed=args.seed, progress=not args.no_progress)
    model.eval()
    torch.save(model.state_dict(), out / "resnet32.pt")
    t_train = time.perf_counter() - start

    config = PCMConfig(t0=args.t0, dac_bits=args.dac_bits, adc_bits=args.adc_bits)
    pcm = pcm_accuracy_over_time(model, batches(test), args.times, args.n_reps, config, seed=args.seed + 100,
                                 progress=not args.no_progress)
    elapsed = time.perf_counter() - start
    name = f"{label} {spec}"
    print(f"\nResNet32, {name}: validation {100 * res.best_val_accuracy:.2f} % (best epoch {res.best_epoch} of "
          f"{args.epochs}); test accuracy (%) on PCM, mean ± std over {args.n_reps} programmings, "
          f"{len(test[1])} test images\n")
    print(pcm_table({label: pcm}))
    print(f"\ntraining {t_train:.0f} s, total {elapsed:.0f} s; written to {out}/ (resnet32.pt, results.json, pcm.png)")
    plot_accuracy_over_time({name: pcm}, out / "pcm.png", title="ResNet32 on PCM (CIFAR-10)")

    results = {"args": vars(args), "label": label, "method": spec,
               "sizes": {"train": len(train[1]), "val": len(val[1]), "test": len(test[1])},
               "train": {"best_epoch": res.best_epoch, "val_accuracy": res.best_val_accuracy, "history": res.history,
                         "test_accuracy": evaluate_accuracy(model, batches(test))},
               "pcm": {"times": list(pcm.times), "accuracy": pcm.accuracy.tolist(), "digital": pcm.digital,
                       "rows": pcm.rows()},
               "model_file": str(out / "resnet32.pt"), "seconds": {"train": t_train, "total": elapsed}}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    return results


if __name__ == "__main__":
    main()
