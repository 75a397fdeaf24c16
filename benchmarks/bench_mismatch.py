"""Benchmark: 100 mismatch draws vs one clean evaluation of the same test set (target <= 20x).

A plain loop over draws costs about 100x one clean evaluation. ``mismatch_evaluate`` evaluates a
chunk of draws in one ``torch.func.vmap`` call; this script times both paths and prints the ratios.

Models: the LSNN (N = 256) on a synthetic ECG-sized test set (1340 beats, T = 100, 2 leads) and
the F-MNIST CNN on random 28x28 images. Data are random: timing does not depend on accuracy.

``--lsnn-backends event,fused`` times the LSNN loop once per backend in the same run (the event
kernels against the fused backend's forward loop, the loop's backend before issue 12) and prints
their ratio; ``vmap`` always runs the reference path (``torch.func`` transform).

Usage::

    python benchmarks/bench_mismatch.py --draws 100 --threads 1
    python benchmarks/bench_mismatch.py --models lsnn --modes loop --lsnn-backends event,fused
"""

from __future__ import annotations

import argparse
import time
import warnings

#: process CPU time: on a shared machine it is far less disturbed by other jobs than wall-clock
#: time (run with --threads 1 so CPU time is the single thread's time); --wall switches.
CLOCK = time.process_time

import torch

from spikerobust.models import get_model
from spikerobust.robust.mismatch import mismatch_evaluate


def timed(fn, repeats=1):
    best = float("inf")
    for _ in range(repeats):
        t0 = CLOCK()
        fn()
        best = min(best, CLOCK() - t0)
    return best


def bench(name, model, batches, draws, chunk_size, modes, backends=(None,)):
    model.eval()
    results = {}
    for backend in backends:
        if backend is not None:
            model.lsnn.backend = backend
        results[backend] = _bench(f"{name}" + ("" if backend is None else f" [backend {backend}]"),
                                  model, batches, draws, chunk_size, modes)
    if len(backends) > 1:
        first = backends[0]
        for other in backends[1:]:
            for mode, t in results[first].items():
                if mode in results[other]:
                    label = {True: "vmap", False: "loop"}[mode]
                    print(f"{name}: {label} {other} / {first} = {results[other][mode] / t:.2f}x")


def _bench(name, model, batches, draws, chunk_size, modes):
    out = {}

    def clean():
        with torch.no_grad():
            for x, _ in batches:
                model(x)

    clean()  # warm-up
    t_clean = timed(clean, repeats=3)
    print(f"{name}: clean evaluation of the test set {t_clean * 1e3:.1f} ms")
    for mode in modes:
        try:
            t = timed(lambda: mismatch_evaluate(model, batches, levels=(0.3,), n_draws=draws, chunk_size=chunk_size,
                                                vectorize=mode, progress=False))
        except RuntimeError as err:
            print(f"{name}: vmap unavailable for this model ({str(err)[:100]}...)")
            continue
        ratio = t / t_clean * (100.0 / draws)
        label = {True: "vmap", False: "loop"}.get(mode, str(mode))
        print(f"{name}: {draws} draws [{label}, chunk {chunk_size}] {t:.2f} s -> 100 draws = {ratio:.1f}x clean")
        out[mode] = t
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--chunk-size", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ecg-samples", type=int, default=1340)
    parser.add_argument("--ecg-batch", type=int, default=1340)
    parser.add_argument("--cnn-samples", type=int, default=1000)
    parser.add_argument("--cnn-batch", type=int, default=1000)
    parser.add_argument("--modes", default="vmap,loop", help="comma list of vmap, loop")
    parser.add_argument("--models", default="lsnn,cnn")
    parser.add_argument("--lsnn-backends", default=None,
                        help="comma list of LSNN backends to time in turn, e.g. event,fused (default: the model's auto)")
    parser.add_argument("--wall", action="store_true", help="time with the wall clock instead of process CPU time")
    args = parser.parse_args()
    global CLOCK
    if args.wall or args.device != "cpu":
        CLOCK = time.perf_counter
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Using padding='same'")
    modes = [{"vmap": True, "loop": False}[m] for m in args.modes.split(",")]
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    if "lsnn" in args.models:
        model = get_model("lsnn_ecg", n_hidden=256).to(dev)
        x = torch.randn(100, args.ecg_samples, 2, generator=g) * 2
        y = torch.randint(0, 4, (args.ecg_samples,), generator=g)
        batches = [(x[:, i : i + args.ecg_batch].to(dev), y[i : i + args.ecg_batch].to(dev))
                   for i in range(0, args.ecg_samples, args.ecg_batch)]
        backends = tuple(args.lsnn_backends.split(",")) if args.lsnn_backends else (None,)
        bench(f"LSNN N=256, {args.ecg_samples} ECG-sized samples", model, batches, args.draws, args.chunk_size, modes,
              backends)
    if "cnn" in args.models:
        model = get_model("cnn_fmnist").to(dev)
        x = torch.randn(args.cnn_samples, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (args.cnn_samples,), generator=g)
        batches = [(x[i : i + args.cnn_batch].to(dev), y[i : i + args.cnn_batch].to(dev))
                   for i in range(0, args.cnn_samples, args.cnn_batch)]
        bench(f"CNN, {args.cnn_samples} F-MNIST-sized images", model, batches, args.draws, args.chunk_size, modes)


if __name__ == "__main__":
    main()
