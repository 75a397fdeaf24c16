"""Train ResNet32 on CIFAR-10 as docs/pcm.md prescribes, deploy it on simulated PCM crossbars, and report
its test accuracy over time since programming (``spikerobust pcm`` measures a model already trained).

``fit``: SGD (Nesterov 0.9, weight decay 5e-4, lr 0.05 / 10 at 1/2 and 3/4 of the epochs), weights
clipped to ±``--clip-sigma``·σ after each step (docs/pcm.md), any ``--method`` (e.g.
``noise_injection:eta=0.1;beta=0.1;epsilon=0.1``); ``pcm_accuracy_over_time``: ``--n-reps``
programmings (noise, drift, 1/f read noise, drift compensation) tested at ``--times``. Seeded CIFAR-10
subsets, standardised per channel. Writes ``resnet32.pt`` (a state dict), ``results.json``, ``pcm.png``.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from spikerobust.datasets import CIFAR10
from spikerobust.datasets.images import channel_stats
from spikerobust.experiments import parse_method
from spikerobust.experiments.tasks import ShuffledBatches
from spikerobust.models import get_model
from spikerobust.robust import fit
from spikerobust.robust.methods import get_method
from spikerobust.robust.methods.noise_injection import clip_to_sigma
from spikerobust.robust.pcm import PCM_TIMES, PCMConfig, pcm_accuracy_over_time, pcm_table, plot_accuracy_over_time

QUICK = dict(n_train=60, n_val=20, n_test=20, epochs=1, batch_size=20, n_reps=2, times=[25.0, 86400.0])
DEFAULTS = dict(n_train=4000, n_val=500, n_test=1000, epochs=3, batch_size=128, n_reps=3, times=list(PCM_TIMES))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="folder holding cifar-10-batches-py")
    p.add_argument("--method", default="standard", help="a registered method, e.g. 'noise_injection:eta=0.1'")
    for key, value in DEFAULTS.items():  # --n-train 4000 (0: all), --n-val, --n-test (0: all), ... --times 25 ...
        p.add_argument(f"--{key.replace('_', '-')}", type=float if key == "times" else int, default=value,
                       nargs="+" if key == "times" else None, help=f"default {value}, --quick {QUICK[key]}")
    p.add_argument("--clip-sigma", type=float, default=2.0, help="clip weights to ±clip·σ after each step (0: off)")
    p.add_argument("--out-dir", default="results/resnet32_pcm")
    p.add_argument("--quick", action="store_true", help="tiny run for a smoke test")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    if p.parse_args(argv).quick:
        p.set_defaults(**QUICK)  # explicit flags still win
    args = p.parse_args(argv)
    label, spec = parse_method(args.method, "fmnist")
    if "clip_sigma" in spec:
        raise SystemExit("--method: clip with --clip-sigma (applied after every step, for every method)")
    method, out = get_method(spec["method"], **{k: v for k, v in spec.items() if k != "method"}), Path(args.out_dir)
    data, test_set = CIFAR10(args.data_dir, split="train"), CIFAR10(args.data_dir, split="test")
    rng = np.random.default_rng(0)  # seeded subsets, standardised with the training subset's channel statistics
    idx = rng.permutation(len(data.targets))[: args.n_train or None]
    tr, va, te = idx[args.n_val:], idx[: args.n_val], rng.permutation(len(test_set.targets))[: args.n_test or None]
    mean, std = (torch.as_tensor(s, dtype=torch.float32).view(1, -1, 1, 1) for s in channel_stats(data.data[tr]))
    pair = lambda ds, i: ((torch.from_numpy(ds.data[i]) - mean) / std, torch.from_numpy(ds.targets[i]))  # noqa: E731
    train, val, test = pair(data, tr), pair(data, va), pair(test_set, te)
    torch.manual_seed(0)
    model = get_model("resnet32", n_classes=10)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    if args.clip_sigma > 0:
        opt.register_step_post_hook(lambda *_, p=dict(model.named_parameters()): clip_to_sigma(p, args.clip_sigma))
    batches = lambda x, y, k=500: [(x[i:i + k], y[i:i + k]) for i in range(0, len(y), k)]  # noqa: E731
    milestones = sorted({round(f * args.epochs) for f in (0.5, 0.75)} - {0, args.epochs})
    res = fit(model, method, ShuffledBatches(*train, batch_size=args.batch_size, seed=0, time_first=False), batches(*val),
              epochs=args.epochs, optimizer=opt, milestones=milestones, checkpoint_dir=out, progress=not args.no_progress)
    torch.save(model.eval().state_dict(), out / "resnet32.pt")
    pcm = pcm_accuracy_over_time(model, batches(*test), args.times, args.n_reps, PCMConfig(t0=25.0), progress=False)
    print(f"\nResNet32 {label} {spec}, PCM accuracy (%) over {args.n_reps} programmings\n\n{pcm_table({label: pcm})}")
    plot_accuracy_over_time({f"{label} {spec}": pcm}, out / "pcm.png", title="ResNet32 on PCM (CIFAR-10)")
    results = {"args": vars(args), "label": label, "method": spec,
               "sizes": {k: len(v[1]) for k, v in zip(("train", "val", "test"), (train, val, test))},
               "train": {"best_epoch": res.best_epoch, "test_accuracy": pcm.digital},  # digital: the unperturbed network
               "pcm": {"times": list(pcm.times), "accuracy": pcm.accuracy.tolist(), "digital": pcm.digital}}
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    return results


if __name__ == "__main__":
    main()
