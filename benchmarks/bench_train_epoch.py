"""Seconds per training epoch of ``spikerobust train`` with a chosen LSNN backend, projected to a run.

Runs ``spikerobust train`` in this process with every LSNN set to ``backend="auto"`` resolved as
``--backend`` (``event``, ``fused`` or ``reference``; the dispatch falls back exactly as for an
explicit backend), and reports the process CPU time and the wall-clock time spent in the trainer
(:func:`spikerobust.robust.trainer.fit`: the epochs and their validation passes, not the data
loading), per epoch and projected to ``--project`` epochs. On a machine shared with other jobs
the CPU time is the fairer measure; the wall-clock time is what a user waits on an idle machine
only when the two agree.

Run::

    python benchmarks/bench_train_epoch.py --backend fused -- ecg --preset paper --method fn+beta \\
        --data-dir ../shared/data/mitdb --set epochs=1 --out-dir /tmp/epoch-fused --overwrite --no-progress
    python benchmarks/bench_train_epoch.py --backend event -- ecg --preset paper --method fn+beta \\
        --data-dir ../shared/data/mitdb --set epochs=1 --out-dir /tmp/epoch-event --overwrite --no-progress
"""

from __future__ import annotations

import argparse
import time

import torch


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["event", "fused", "reference"], required=True)
    parser.add_argument("--project", type=int, default=200, help="epochs to project to (200)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: as is)")
    parser.add_argument("train_args", nargs=argparse.REMAINDER, help="arguments of 'spikerobust train'")
    args = parser.parse_args(argv)
    train_args = [a for a in args.train_args if a != "--"]
    if args.threads:
        torch.set_num_threads(args.threads)

    from spikerobust import cli
    from spikerobust.experiments import train as pipeline  # the module whose fit trains
    from spikerobust.functional import lsnn_fused

    resolve = lsnn_fused.resolve_backend

    def forced(backend, params, tensors=(), *, n=None):
        return resolve(args.backend if backend == "auto" else backend, params, tensors, n=n)

    lsnn_fused.resolve_backend = forced
    fit = pipeline.fit
    spent = {}

    def timed_fit(*a, **kw):
        c0, t0 = time.process_time(), time.perf_counter()
        try:
            return fit(*a, **kw)
        finally:
            spent["cpu"], spent["wall"] = time.process_time() - c0, time.perf_counter() - t0
            spent["epochs"] = kw.get("epochs")

    pipeline.fit = timed_fit
    try:
        cli.main(["train", *train_args])
    finally:
        pipeline.fit, lsnn_fused.resolve_backend = fit, resolve
    epochs = spent.get("epochs") or 1
    cpu, wall = spent["cpu"] / epochs, spent["wall"] / epochs
    print(
        f"# backend={args.backend} threads={torch.get_num_threads()}: {epochs} epoch(s); per epoch "
        f"{cpu:.1f} s CPU, {wall:.1f} s wall; projected to {args.project} epochs: "
        f"{cpu * args.project / 3600:.2f} h CPU, {wall * args.project / 3600:.2f} h wall"
    )


if __name__ == "__main__":
    main()
