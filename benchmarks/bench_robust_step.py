"""Benchmark: one robust-training step (N_steps = 10) vs one standard step (target <= 12x).

Both steps go through the registered methods ("adversarial" and "standard") with Adam, on the
LSNN (N = 256, T = 100, ECG batch of 100) and the F-MNIST CNN (batch of 100).

Usage::

    python benchmarks/bench_robust_step.py --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

#: process CPU time: on a shared machine it is far less disturbed by other jobs than wall-clock
#: time (run with --threads 1 so CPU time is the single thread's time); --wall switches.
CLOCK = time.process_time

import torch

from spikerobust.models import get_model
from spikerobust.robust.methods import get_method


def median_time(method, model, x, y, opt, repeats):
    method.step(model, x, y, opt)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = CLOCK()
        method.step(model, x, y, opt)
        if x.is_cuda:
            torch.cuda.synchronize()
        times.append(CLOCK() - t0)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default="lsnn,cnn")
    parser.add_argument("--wall", action="store_true", help="time with the wall clock instead of process CPU time")
    args = parser.parse_args()
    global CLOCK
    if args.wall or args.device != "cpu":
        CLOCK = time.perf_counter
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Using padding='same'")
    dev = torch.device(args.device)
    cases = []
    if "lsnn" in args.models:
        cases.append(("LSNN N=256 T=100", get_model("lsnn_ecg", n_hidden=256),
                      torch.randn(100, args.batch, 2) * 2, torch.randint(0, 4, (args.batch,))))
    if "cnn" in args.models:
        cases.append(("CNN F-MNIST", get_model("cnn_fmnist"), torch.randn(args.batch, 1, 28, 28),
                      torch.randint(0, 10, (args.batch,))))
    for name, model, x, y in cases:
        model, x, y = model.to(dev).train(), x.to(dev), y.to(dev)
        opt = torch.optim.Adam(model.parameters(), 1e-4)
        t_std = median_time(get_method("standard"), model, x, y, opt, args.repeats)
        t_rob = median_time(get_method("adversarial", beta=0.25, n_steps=args.n_steps, seed=0), model, x, y, opt,
                            args.repeats)
        print(f"{name}, batch {args.batch}: standard step {t_std * 1e3:.1f} ms, robust step (N_steps={args.n_steps}) "
              f"{t_rob * 1e3:.1f} ms -> ratio {t_rob / t_std:.2f}x")


if __name__ == "__main__":
    main()
