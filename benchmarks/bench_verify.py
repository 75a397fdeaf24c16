"""Cost of the interval simulation relative to a plain forward pass of the same batch.

Target (issue 4): the interval pass costs at most 4x the plain forward pass. Measured for the
LSNN (N = 256, T = 100, B = 100, d_in = 2), the Fashion-MNIST CNN (B = 100) and ResNet32 (B = 16), all without
autograd, in float32; the float64 interval pass (what :func:`spikerobust.verify.verified_accuracy`
uses by default) is reported against the float32 forward pass too.

Run::

    python benchmarks/bench_verify.py            # defaults above, one thread
    python benchmarks/bench_verify.py --repeats 5 --threads 1
"""

from __future__ import annotations

import argparse
import time

import torch

from spikerobust.models import get_model, list_models
from spikerobust.nn import LSNNClassifier
from spikerobust.verify import lsnn_interval_simulation, sequential_interval


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_lsnn(args) -> dict:
    torch.manual_seed(0)
    model = LSNNClassifier(2, n_hidden=args.n_hidden, n_classes=4).eval()
    x = torch.randn(args.t_steps, args.batch, 2)
    with torch.no_grad():
        fwd = best_time(lambda: model(x), args.repeats)
    ivl = best_time(lambda: lsnn_interval_simulation(model, x, args.epsilon), args.repeats)
    ivl64 = best_time(lambda: lsnn_interval_simulation(model, x, args.epsilon, dtype=torch.float64), args.repeats)
    ivlc = best_time(lambda: lsnn_interval_simulation(model, x, args.epsilon, neuron_constants=True), args.repeats)
    return {"forward": fwd, "interval": ivl, "interval_f64": ivl64, "interval_constants": ivlc}


def bench_cnn(args) -> dict:
    torch.manual_seed(0)
    if "cnn_fmnist" in list_models():
        model = get_model("cnn_fmnist").eval()
    else:  # pragma: no cover - before the CNN builder exists
        raise SystemExit("cnn_fmnist is not registered")
    x = torch.randn(args.batch, 1, 28, 28)
    with torch.no_grad():
        fwd = best_time(lambda: model(x), args.repeats)
    ivl = best_time(lambda: sequential_interval(model, x, args.epsilon), args.repeats)
    ivl64 = best_time(lambda: sequential_interval(model, x, args.epsilon, dtype=torch.float64), args.repeats)
    return {"forward": fwd, "interval": ivl, "interval_f64": ivl64}


def bench_resnet(args) -> dict:
    torch.manual_seed(0)
    model = get_model("resnet32").eval()
    x = torch.randn(args.resnet_batch, 3, 32, 32)
    with torch.no_grad():
        fwd = best_time(lambda: model(x), args.repeats)
    ivl = best_time(lambda: sequential_interval(model, x, args.epsilon), args.repeats)
    return {"forward": fwd, "interval": ivl}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-hidden", type=int, default=256)
    parser.add_argument("--t-steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--epsilon", "--zeta", dest="epsilon", type=float, default=1e-3,
                        help="relative box size (--zeta: its former name)")
    parser.add_argument("--resnet-batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for name, bench in (("LSNN", bench_lsnn), ("CNN", bench_cnn), ("ResNet32", bench_resnet)):
        r = bench(args)
        fwd = r.pop("forward")
        print(f"{name}: forward {fwd * 1e3:.1f} ms")
        for key, value in r.items():
            print(f"  {key:20s} {value * 1e3:8.1f} ms   ratio {value / fwd:.2f}x  (target <= 4x)")


if __name__ == "__main__":
    main()
