"""Accuracy over time on simulated PCM crossbars: FP baseline vs noise injection vs noise injection + robust loss.

The PCM experiment of Büchel et al. (2022, Fig. 4; docs/pcm.md), scaled down to the F-MNIST CNN
(~10 min on one core): one standard-trained network (``--epochs``) is copied and each copy
fine-tuned alike (``--finetune-epochs`` on ``--n-finetune`` images): ``fp`` with the standard loss,
``ni`` with noise injection (weights clipped to ±``--clip-sigma``·σ), ``ni+rob`` with the robust
loss added, the paper's method for PCM. Each is programmed ``--n-reps`` times onto the simulator
(programming noise, drift, 1/f read noise, drift compensation) and tested at ``--times`` after
programming, with ``load_task``, ``fit``, ``get_method`` and ``pcm_accuracy_over_time``. ResNet32
on CIFAR-10 (trained from scratch with any method): ``resnet32_pcm.py``. Writes ``pcm_drift.json``
and ``pcm_drift.png`` to ``--out-dir``.

Examples:
    python examples/pcm_drift.py --n-reps 25 --n-test 10000 --epochs 10        # closer to the paper
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch

from spikerobust.experiments import load_task, make_config
from spikerobust.models import get_model
from spikerobust.robust import fit
from spikerobust.robust.methods import get_method
from spikerobust.robust.pcm import PCM_TIMES, PCMConfig, pcm_accuracy_over_time, pcm_table, plot_accuracy_over_time


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=None, help="Fashion-MNIST IDX folder (default: Debian's)")
    p.add_argument("--n-train", type=int, default=10_000, help="training images, 10 %% of them for validation")
    p.add_argument("--n-finetune", type=int, default=5_000, help="images per fine-tuning epoch")
    p.add_argument("--n-test", type=int, default=1_000, help="test images")
    p.add_argument("--epochs", type=int, default=3, help="standard pretraining epochs")
    p.add_argument("--finetune-epochs", type=int, default=1, help="fine-tuning epochs")
    p.add_argument("--lr", type=float, nargs=2, default=[1e-3, 3e-4], help="Adam rates: pretraining, fine-tuning")
    p.add_argument("--eta", type=float, default=0.1, help="noise-injection size η")
    p.add_argument("--noise-mode", choices=("layer_range", "relative"), default="layer_range")
    p.add_argument("--clip-sigma", type=float, default=2.0, help="clip weights to ±clip·σ after each step (0: off)")
    p.add_argument("--beta", type=float, default=0.1, help="β_rob (paper: from 0.01-0.1)")
    p.add_argument("--epsilon", type=float, default=0.1, help="attack size ε (paper: from 0.01-0.1)")
    p.add_argument("--attack-steps", type=int, default=3, help="N_steps (paper's PCM runs: 3)")
    p.add_argument("--n-reps", type=int, default=5, help="programming repetitions (paper: 25)")
    p.add_argument("--times", type=float, nargs="+", default=list(PCM_TIMES), help="seconds since programming")
    p.add_argument("--out-dir", default="results/pcm_drift")
    args = p.parse_args(argv)
    cfg = make_config("fmnist", "quick", overrides=dict(data_dir=args.data_root, n_train=args.n_train,
                                                       n_test=args.n_test, batch_size=100, progress=False))
    data, out = load_task(cfg), Path(args.out_dir)
    finetune_batches = data.batches("train", cfg.batch_size)[: max(1, args.n_finetune // cfg.batch_size)]
    torch.manual_seed(cfg.seed)
    pre = get_model(data.model, **data.model_kwargs)
    fit(pre, "standard", data.loader(cfg.batch_size, cfg.seed), data.batches("val"), epochs=args.epochs, lr=args.lr[0],
        seed=cfg.seed, progress=False)
    ni = dict(eta=args.eta, mode=args.noise_mode, clip_sigma=args.clip_sigma or None, seed=cfg.seed)
    labels = {"fp": "FP baseline", "ni": f"noise injection (η={args.eta})", "ni+rob": f"+ robust loss (β={args.beta})"}
    methods = {"fp": get_method("standard"), "ni": get_method("noise_injection", **ni), "ni+rob": get_method(
        "noise_injection", **ni, beta=args.beta, epsilon=args.epsilon, n_steps=args.attack_steps)}
    results = {}
    for key, method in methods.items():
        model = copy.deepcopy(pre)  # every model starts from the one pretrained network
        fit(model, method, finetune_batches, epochs=args.finetune_epochs, lr=args.lr[1], seed=cfg.seed, progress=False)
        results[labels[key]] = pcm_accuracy_over_time(model.eval(), data.test, args.times, args.n_reps, PCMConfig(t0=25.0),
                                                      seed=cfg.seed + 100, batch_size=500, progress=False)
    print(f"\nF-MNIST CNN on PCM, {args.n_reps} programmings, accuracy (%)\n\n{(table := pcm_table(results))}")
    out.mkdir(parents=True, exist_ok=True)
    plot_accuracy_over_time(results, out / "pcm_drift.png", title="cnn_fmnist on PCM (fmnist)")
    record = dict(args=vars(args), table=table, results={k: dict(times=list(v.times), accuracy=v.accuracy.tolist(),
                  digital=v.digital) for k, v in zip(methods, results.values())})
    (out / "pcm_drift.json").write_text(json.dumps(record, indent=1))
    return record


if __name__ == "__main__":
    main()
