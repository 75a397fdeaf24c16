"""Keyword spotting with an LSNN trained by one method, then its accuracy under mismatch.

The network is the registered ``lsnn_speech`` model: 40 MFCCs per 10 ms frame are its input
currents over 98 frames (STFT window 480, hop 160, 512-point FFT, 40 mel bands 125–3800 Hz, log,
DCT to 40 coefficients), raw as in the paper (``--standardize`` standardises each coefficient with
training statistics). Training clips are augmented afresh for every batch as the paper's reference
code does (``spikerobust.datasets.speech_augment``): a random time shift of up to ±100 ms and, with
probability 0.8, background noise at a volume uniform in [0, 0.1] (Speech Commands' noise
recordings; synthetic white and pink noise for FSDD and the synthetic keywords). ``--no-augment``
trains on the clean features; validation and test clips are always clean.

Data (``--data-dir``, recognised by its layout):
  * Google Speech Commands v0.02 (word folders ``yes``, ``no`` ...): yes/no/up/down/left/right +
    silence + unknown, the standard hash split (the paper's task);
  * the Free Spoken Digit Dataset (a ``recordings`` folder or ``N_speaker_i.wav`` files, e.g.
    ``../shared/data/fsdd/recordings``): digits 0-9, the authors' split, 10 % of training for
    validation;
  * no ``--data-dir``: synthetic keywords spoken by espeak-ng with noise
    (``spikerobust.datasets.SyntheticKeywords``; voices disjoint between splits). Generating them
    takes about 2 minutes the first time, then they are cached. They are not recordings.

Training (``spikerobust.experiments.train_method``): Adam, the learning rate divided by 10 after
the preset's fraction of the epochs, the best clean-validation epoch kept. ``--method`` is any registered
method (``spikerobust methods``) or one of the paper's labels (``beta`` = adversarial with the
speech task's β = 0.5, ``fn+beta``), with optional settings after a colon
(``forward_noise:eta=0.2``). Then the test accuracy under mismatch θ ⊙ (1 + m·N(0, 1)), mean /
std / min over ``--draws`` draws per level (docs/evaluation.md).

Defaults are the ``quick`` preset (``spikerobust.experiments.PRESETS``; flag help shows its
values): minutes for
``standard`` on FSDD on one core (see examples/README.md for measured times); ``--preset paper``
gives the paper's 256 neurons and 100 epochs.

Writes ``model.pt`` (``torch.load(..., weights_only=True)`` or
``spikerobust.experiments.load_model``), ``checkpoints/last.pt`` and ``results.json`` to
``--out-dir``; prints the mismatch table.

Examples:
    python examples/speech_lsnn.py --data-dir ../shared/data/fsdd/recordings
    python examples/speech_lsnn.py --data-dir ../shared/data/fsdd/recordings --method beta --epochs 20
    python examples/speech_lsnn.py --data-dir ~/data/speech_commands_v0.02 --preset paper --method fn+beta
    python examples/speech_lsnn.py                         # synthetic espeak-ng keywords, offline
    python examples/speech_lsnn.py --data-dir ../shared/data/fsdd/recordings --quick
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
QUICK = dict(n_train=100, n_test=50, hidden=16, epochs=1, draws=3, levels=[0.0, 0.5])


def parse_args(argv=None) -> argparse.Namespace:
    q, pp = PRESETS["speech"]["quick"], PRESETS["speech"]["paper"]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None,
                   help="Speech Commands or FSDD folder (default: synthetic espeak-ng keywords)")
    p.add_argument("--method", default="standard",
                   help=f"registered method {list_methods()} or paper label (beta, fn+beta), "
                        "optionally with settings: 'forward_noise:eta=0.2'")
    p.add_argument("--preset", choices=("quick", "paper"), default="quick", help="sizes and schedule to start from")
    p.add_argument("--n-train", type=int, default=None, help="cap on training clips (default: all)")
    p.add_argument("--n-test", type=int, default=None, help="cap on test clips (default: all)")
    p.add_argument("--hidden", type=int, default=None,
                   help=f"LSNN neurons (quick {q['n_hidden']}, paper {pp['n_hidden']})")
    p.add_argument("--epochs", type=int, default=None, help=f"quick {q['epochs']}, paper {pp['epochs']}")
    p.add_argument("--lr", type=float, default=None,
                   help=f"Adam learning rate, /10 after {q['lr_drop_at']:g} of the epochs (quick {q['lr']:g})")
    p.add_argument("--batch-size", type=int, default=None, help=f"quick {q['batch_size']}, paper {pp['batch_size']}")
    p.add_argument("--levels", type=float, nargs="+", default=None, help="mismatch levels m (must include 0)")
    p.add_argument("--draws", type=int, default=None,
                   help=f"mismatch draws per level (quick {q['n_draws']}, paper {pp['n_draws']})")
    p.add_argument("--no-augment", action="store_true",
                   help="train on the clean features (default: time shift and background noise every batch)")
    p.add_argument("--standardize", action="store_true",
                   help="standardise each MFCC with training statistics (not the paper's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--out-dir", default="results/speech_lsnn")
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
    given = dict(data_dir=args.data_dir, n_train=args.n_train, n_test=args.n_test, n_hidden=args.hidden,
                 epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, levels=args.levels, n_draws=args.draws)
    run = train_single("speech", args.method, args.preset, {
        **{k: v for k, v in given.items() if v is not None},
        "augment": not args.no_augment, "standardize": args.standardize,
        "seed": args.seed, "out_dir": args.out_dir, "progress": not args.no_progress}, resume=args.resume)
    cfg = run.cfg
    print(f"classes {run.data.classes}")

    mm = mismatch_evaluate(run.model, run.data.batches("test"), levels=cfg.levels, n_draws=cfg.n_draws,
                           seed=cfg.seed, label=run.label, progress=cfg.progress)
    run.seconds["total"] = time.perf_counter() - start
    print(f"\n{run.label} {cfg.methods[run.label]}: clean test accuracy {100 * run.info['test_accuracy']:.2f} % "
          f"(chance {100 / len(run.data.classes):.1f} %, best epoch {run.info['best_epoch']} of {cfg.epochs}); "
          f"under mismatch, {cfg.n_draws} draws per level:\n")
    print(mm.to_markdown())
    print(f"\ndata + training {run.seconds['train']:.0f} s, total {run.seconds['total']:.0f} s; "
          f"written to {run.out}/ (model.pt, results.json)")
    return run.write_results(mismatch=mm.to_dict())


if __name__ == "__main__":
    main()
