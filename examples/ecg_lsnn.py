"""Train an LSNN on ECG beats with one training method, then measure its accuracy under mismatch.

The network is the registered ``lsnn_ecg`` model (docs/lsnn.md): the two ECG leads are its input
currents over T = 100 steps, and it classifies each beat as N, L, R or V (docs/tasks.md).

Data:
  * ``--data-dir DIR`` with the MIT-BIH Arrhythmia records (``100.hea`` ...): beats balanced per
    class (``--n-per-class``), split ``--split random`` (the paper's 80/10/10) or ``--split record``
    (patient-wise: no record is shared between training and test, the honest number);
  * no ``--data-dir``: synthetic beats generated in code (``spikerobust.datasets.SyntheticECG``),
    so the script runs offline; these are not recordings, and their accuracies say nothing about
    MIT-BIH.

Training (``spikerobust.experiments.train_method``): Adam, the learning rate divided by 10 after
the preset's fraction of the epochs, the best clean-validation epoch kept. ``--method`` is any registered
method (``spikerobust methods``) or one of the paper's labels (``beta`` = adversarial with the
ECG's β = 0.25, ``fn+beta`` = forward noise + β = 0.1), with optional settings after a colon:
``adversarial:beta=0.5;n_steps=3``. Then the test accuracy under mismatch θ ⊙ (1 + m·N(0, 1)),
mean / std / min over ``--draws`` draws per level m (docs/evaluation.md).

Defaults are the ``quick`` preset (``spikerobust.experiments.PRESETS``; flag help shows its
values): minutes for ``standard`` on one core (measured times in examples/README.md), a few times
more for the robust methods. ``--preset paper`` gives the paper's sizes (256 neurons, 3350 beats
per class, 200 epochs: days on a CPU).

Writes to ``--out-dir``: ``model.pt`` (loadable with ``torch.load(..., weights_only=True)`` or
``spikerobust.experiments.load_model``), ``checkpoints/last.pt`` (to resume with ``--resume``)
and ``results.json``; prints the mismatch table.

Examples:
    python examples/ecg_lsnn.py                                   # synthetic beats, standard training
    python examples/ecg_lsnn.py --data-dir ../shared/data/mitdb --method beta
    python examples/ecg_lsnn.py --data-dir ../shared/data/mitdb --split record --method fn+beta
    python examples/ecg_lsnn.py --method adversarial:beta=0.5 --levels 0 0.3 0.5 0.7 --draws 50
    python examples/ecg_lsnn.py --quick                           # seconds: a smoke test
"""

from __future__ import annotations

import argparse
import logging
import time

import torch

from spikerobust.experiments import PRESETS, train_single
from spikerobust.robust.methods import list_methods
from spikerobust.robust.mismatch import mismatch_evaluate

#: ``--quick``: tiny sizes for a smoke test (explicit flags still win).
QUICK = dict(n_per_class=20, hidden=16, epochs=1, draws=3, levels=[0.0, 0.5])


def parse_args(argv=None) -> argparse.Namespace:
    q, pp = PRESETS["ecg"]["quick"], PRESETS["ecg"]["paper"]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="MIT-BIH records folder (default: synthetic beats)")
    p.add_argument("--split", choices=("random", "record"), default="random",
                   help="MIT-BIH split: random 80/10/10 (the paper's) or by record (patient-wise)")
    p.add_argument("--method", default="standard",
                   help=f"registered method {list_methods()} or paper label (beta, fn+beta), "
                        "optionally with settings: 'adversarial:beta=0.5;n_steps=3'")
    p.add_argument("--preset", choices=("quick", "paper"), default="quick", help="sizes and schedule to start from")
    p.add_argument("--n-per-class", type=int, default=None,
                   help=f"beats per class (quick {q['n_per_class']}, paper {pp['n_per_class']})")
    p.add_argument("--hidden", type=int, default=None,
                   help=f"LSNN neurons (quick {q['n_hidden']}, paper {pp['n_hidden']})")
    p.add_argument("--epochs", type=int, default=None, help=f"quick {q['epochs']}, paper {pp['epochs']}")
    p.add_argument("--lr", type=float, default=None,
                   help=f"Adam learning rate, /10 after {q['lr_drop_at']:g} of the epochs (quick {q['lr']:g})")
    p.add_argument("--batch-size", type=int, default=None, help=f"quick {q['batch_size']}, paper {pp['batch_size']}")
    p.add_argument("--levels", type=float, nargs="+", default=None, help="mismatch levels m (must include 0)")
    p.add_argument("--draws", type=int, default=None,
                   help=f"mismatch draws per level (quick {q['n_draws']}, paper {pp['n_draws']})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--out-dir", default="results/ecg_lsnn")
    p.add_argument("--resume", action="store_true", help="continue training from OUT/checkpoints/last.pt")
    p.add_argument("--quick", action="store_true", help=f"tiny run for a smoke test: {QUICK}")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) is None:
                setattr(args, key, value)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    given = dict(data_dir=args.data_dir, split=args.split, n_per_class=args.n_per_class, n_hidden=args.hidden,
                 epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, levels=args.levels, n_draws=args.draws)
    run = train_single("ecg", args.method, args.preset, {
        **{k: v for k, v in given.items() if v is not None},
        "seed": args.seed, "out_dir": args.out_dir, "progress": not args.no_progress}, resume=args.resume)
    cfg = run.cfg

    mm = mismatch_evaluate(run.model, run.data.batches("test"), levels=cfg.levels, n_draws=cfg.n_draws,
                           seed=cfg.seed, label=run.label, progress=cfg.progress)
    run.seconds["total"] = time.perf_counter() - start
    print(f"\n{run.label} {cfg.methods[run.label]}: clean test accuracy {100 * run.info['test_accuracy']:.2f} % "
          f"(best epoch {run.info['best_epoch']} of {cfg.epochs}); under mismatch, {cfg.n_draws} draws per level:\n")
    print(mm.to_markdown())
    print(f"\ntraining {run.seconds['train']:.0f} s, total {run.seconds['total']:.0f} s; "
          f"written to {run.out}/ (model.pt, results.json)")
    return run.write_results(mismatch=mm.to_dict())


if __name__ == "__main__":
    main()
