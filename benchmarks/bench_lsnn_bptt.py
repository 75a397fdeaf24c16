"""BPTT throughput of the LSNN layer against Norse, snnTorch and the matrix-product floor.

One training step's worth of work (forward pass over ``T`` steps, then ``loss.backward()``) for a
recurrent layer of ``N`` neurons fed ``d_in`` input features, batch ``B``. Measured in the same
run, with the same thread count, methods interleaved within every repeat (so a busy machine slows
all of them alike); the median over repeats is reported:

* ``ours-event``: :class:`spikerobust.nn.LSNN` with ``backend="event"`` (numba kernels that
  compute on spikes: :mod:`spikerobust.functional.lsnn_event`);
* ``ours-fused``: :class:`spikerobust.nn.LSNN` with ``backend="fused"`` (hand-written backward);
* ``ours-reference``: the same layer with ``backend="reference"`` (autograd through the loop);
* ``norse``: ``norse.torch.LSNNRecurrent`` (skipped with a message if Norse is not importable);
* ``snntorch``: an ``nn.Linear`` input projection and an ``snntorch.RLeaky`` (all-to-all
  recurrence) stepped ``T`` times in snnTorch's single-step style;
* ``floor``: the same count of matrix products with no neuron logic and no autograd: the input
  projection, ``T`` recurrent products forward, ``T`` backward, the recurrent-weight gradient as
  one product over all steps, and the two input-projection gradients.

Spike-rate sweep (``--rates``): the event backend's work grows with the spike rate, so for each
target rate the input of ``ours-*`` and ``snntorch`` is scaled (bisection on the input scale of a
no-grad forward pass) until the layer spikes at about that rate; the rate actually measured on the
warm-up run is printed. The floor does the same dense work at every rate.

A trained network (``--model RUN/methods/<label>/model.pt``): its own LSNN (copies with each
backend) on the first ``B`` samples of its own data (``--split``, the test split by default), where
rate and surrogate support are those training produced (the issue's premise: trained ECG networks
spike in a few per cent of (neuron, step) pairs, and the triangle's support covers 7-14 %); the
printed support is the fraction with ``|(v - A) / A| < 1``. With ``--rates`` too, that input is
scaled to each rate (a sweep at the trained weights, whose supports stay far smaller than a fresh
layer's at the same rate). Norse keeps its own input, the floor does the same products at the same
shapes.

Both the process CPU time and the wall-clock time of each run are recorded (medians). On a
machine shared with other jobs the CPU time is the fairer measure (it does not count the time the
process waits for a core); with one thread the two agree on an idle machine. The samples/s column
is ``B`` divided by the CPU time. Spike rate: mean spikes per neuron and step of the warm-up run
(computed there only: the timed runs do the training step's work and nothing else).

Targets: issue 2, ours (fused) faster than both peers and within 3x of the floor; issue 12, at
spike rates up to 10 % the event backend at most 0.5x the floor and 3x faster than Norse.
The allocator keeps freed memory (as the ``spikerobust`` command does) unless
``--default-malloc``.

Run::

    python benchmarks/bench_lsnn_bptt.py                       # B=100 T=100 N=256, d_in 2 and 40
    python benchmarks/bench_lsnn_bptt.py --repeats 9 --threads 2
    python benchmarks/bench_lsnn_bptt.py --methods ours-fused floor --d-in 40
    python benchmarks/bench_lsnn_bptt.py --rates 0.01 0.05 0.1 0.2 --methods ours-event ours-fused norse floor
    python benchmarks/bench_lsnn_bptt.py --model RUN/methods/standard/model.pt --data-dir ../shared/data/mitdb \
        --methods ours-event ours-fused norse floor [--rates 0.01 0.05 0.1 0.2]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from typing import Callable, Optional

import torch
from torch import nn

from spikerobust.nn import LSNN

METHODS = ("ours-event", "ours-fused", "ours-reference", "norse", "snntorch", "floor")


def _zero_grads(params) -> None:
    for p in params:
        p.grad = None


def _input(d_in: int, args) -> torch.Tensor:
    g = torch.Generator().manual_seed(args.seed + d_in)
    return args.scale * torch.randn(args.steps, args.batch, d_in, dtype=args.dtype, generator=g)


def _layer(backend: str, d_in: int, args) -> LSNN:
    torch.manual_seed(args.seed)
    return LSNN(d_in, args.hidden, backend=backend).to(args.dtype)


def calibrate_scale(d_in: int, rate: float, args) -> float:
    """Input scale at which the layer spikes at about ``rate`` (bisection in log scale): the seeded
    fresh layer on standard-normal input, or with ``--model`` the trained layer on its own data."""
    if args.trained is not None:
        layer, x = args.trained
    else:
        layer = _layer("event", d_in, args)
        g = torch.Generator().manual_seed(args.seed + d_in)
        x = torch.randn(args.steps, args.batch, d_in, dtype=args.dtype, generator=g)
    lo, hi = -6.0, 10.0  # log2 of the scale
    with torch.no_grad():
        for _ in range(20):
            mid = 0.5 * (lo + hi)
            if float(layer(2.0 ** mid * x).mean()) < rate:
                lo = mid
            else:
                hi = mid
    return 2.0 ** (0.5 * (lo + hi))


def make_ours(backend: str, d_in: int, args) -> Callable[[], float]:
    if getattr(args, "trained", None) is not None:  # --model: copies of the trained layer, real inputs
        layer, x = copy.deepcopy(args.trained[0]), args.scale * args.trained[1]
        layer.backend = backend
    else:
        layer = _layer(backend, d_in, args)
        x = _input(d_in, args)

    def run(rate: bool = False) -> float:
        _zero_grads(layer.parameters())
        z = layer(x)
        z.sum().backward()
        return float(z.detach().mean()) if rate else 0.0  # the rate outside the timed runs

    return run


def make_norse(d_in: int, args) -> Optional[Callable[[], float]]:
    try:
        from norse.torch import LSNNRecurrent
    except Exception as err:  # pragma: no cover - depends on the environment
        print(f"# norse skipped: cannot import norse.torch.LSNNRecurrent ({type(err).__name__}: {err})")
        return None
    layer = LSNNRecurrent(d_in, args.hidden).to(args.dtype)
    # Norse's default parameters are in SI units with dt = 1 ms; scale the input so it spikes.
    x = 5.0 * torch.randn(args.steps, args.batch, d_in, dtype=args.dtype)

    def run(rate: bool = False) -> float:
        _zero_grads(layer.parameters())
        z, _ = layer(x)
        z.sum().backward()
        return float(z.detach().mean()) if rate else 0.0  # the rate outside the timed runs

    return run


def make_snntorch(d_in: int, args) -> Optional[Callable[[], float]]:
    try:
        import snntorch as snn
    except Exception as err:  # pragma: no cover - depends on the environment
        print(f"# snntorch skipped: cannot import snntorch ({type(err).__name__}: {err})")
        return None
    fc = nn.Linear(d_in, args.hidden, bias=False).to(args.dtype)
    lif = snn.RLeaky(beta=0.95, linear_features=args.hidden, all_to_all=True).to(args.dtype)
    x = _input(d_in, args)
    params = list(fc.parameters()) + list(lif.parameters())

    def run(rate: bool = False) -> float:
        _zero_grads(params)
        cur = fc(x)
        spk, mem = lif.init_rleaky()
        out = []
        for t in range(args.steps):
            spk, mem = lif(cur[t], spk, mem)
            out.append(spk)
        z = torch.stack(out)
        z.sum().backward()
        return float(z.detach().mean()) if rate else 0.0  # the rate outside the timed runs

    return run


def make_floor(d_in: int, args) -> Callable[[], float]:
    t_steps, batch, n = args.steps, args.batch, args.hidden
    g = torch.Generator().manual_seed(0)
    x = torch.randn(t_steps, batch, d_in, dtype=args.dtype, generator=g)
    w_in = torch.randn(d_in, n, dtype=args.dtype, generator=g)
    w_rec = torch.randn(n, n, dtype=args.dtype, generator=g) / n
    spikes = (torch.rand(t_steps, batch, n, generator=g) < 0.05).to(args.dtype)
    grad_out = torch.randn(t_steps, batch, n, dtype=args.dtype, generator=g)

    def run(rate: bool = False) -> float:
        with torch.no_grad():
            c = (x.reshape(-1, d_in) @ w_in).reshape(t_steps, batch, n)
            cur = torch.empty_like(c)
            for t in range(t_steps):  # forward: T recurrent products
                prev = spikes[t - 1] if t > 0 else spikes[0]
                torch.addmm(c[t], prev, w_rec, out=cur[t])
            g_prev = torch.empty_like(c)
            for t in range(t_steps - 1, -1, -1):  # backward: T products with W_rec^T
                torch.mm(grad_out[t], w_rec.t(), out=g_prev[t])
            g_rec = spikes.reshape(-1, n).t() @ grad_out.reshape(-1, n)  # dW_rec, all steps
            flat = grad_out.reshape(-1, n)
            g_in = x.reshape(-1, d_in).t() @ flat  # dW_in
            g_x = flat @ w_in.t()  # dx
        return float(cur[0, 0, 0] + g_prev[0, 0, 0] + g_rec[0, 0] + g_in[0, 0] + g_x[0, 0]) if rate else 0.0

    return run


def load_trained(args) -> tuple:
    """``(layer, x)`` of ``--model``: its LSNN and the first ``--batch`` samples of the split
    ``--split`` of the data it was trained on (time first), read from ``--data-dir`` when given,
    else from where the model file says."""
    from spikerobust.experiments.train import load_model_and_data

    model, _, _, data = load_model_and_data(args.model, {"data_dir": args.data_dir} if args.data_dir else None)
    layer = getattr(model, "lsnn", None)
    if layer is None:
        raise ValueError(f"--model {args.model}: {type(model).__name__} has no LSNN layer (.lsnn)")
    x, _ = data.head(args.split, args.batch)  # time first, as the LSNN tasks store their inputs
    return layer.to(args.dtype).train(), x.to(args.dtype).contiguous()


def surrogate_support(layer, x) -> float:
    """Fraction of (sample, neuron, step) with ``|(v - A) / A| < 1`` (the triangle's support,
    refractory steps included), from a reference forward pass."""
    with torch.no_grad():
        _, trace = layer(x, return_states=True)
    return float((((trace.v - trace.threshold) / trace.threshold).abs() < 1).double().mean())


def build(method: str, d_in: int, args) -> Optional[Callable[[], float]]:
    if method == "ours-event":
        return make_ours("event", d_in, args)
    if method == "ours-fused":
        return make_ours("fused", d_in, args)
    if method == "ours-reference":
        return make_ours("reference", d_in, args)
    if method == "norse":
        return make_norse(d_in, args)
    if method == "snntorch":
        return make_snntorch(d_in, args)
    return make_floor(d_in, args)


def measure(d_in: int, args) -> dict:
    torch.manual_seed(args.seed)
    runners = {m: build(m, d_in, args) for m in args.methods}
    runners = {m: r for m, r in runners.items() if r is not None}
    rates = {m: r(rate=True) for m, r in runners.items()}  # warm-up (and firing rate)
    wall = {m: [] for m in runners}
    cpu = {m: [] for m in runners}
    for _ in range(args.repeats):
        for m, run in runners.items():
            c0, t0 = time.process_time(), time.perf_counter()
            run()
            wall[m].append(time.perf_counter() - t0)
            cpu[m].append(time.process_time() - c0)
    return {
        m: (statistics.median(cpu[m]), statistics.median(wall[m]), rates[m]) for m in runners
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=100, help="batch size B (100)")
    parser.add_argument("--steps", type=int, default=100, help="time steps T (100)")
    parser.add_argument("--hidden", type=int, default=256, help="neurons N (256)")
    parser.add_argument("--d-in", type=int, nargs="+", default=[2, 40], help="input sizes (2 40)")
    parser.add_argument("--rates", type=float, nargs="+", default=None,
                        help="target spike rates of the sweep, e.g. 0.01 0.05 0.1 0.2 (default: "
                             "unscaled standard-normal input)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats; the median is reported")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (1)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None,
                        help="a trained model file (spikerobust train/reproduce: RUN/methods/<label>/model.pt): "
                             "measure its LSNN on its own data (with --rates: scaled to each rate)")
    parser.add_argument("--data-dir", default=None, help="with --model: where its data are (default: as recorded)")
    parser.add_argument("--split", choices=["train", "val", "test"], default="test", help="with --model (test)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's allocator settings alone (default: keep freed memory, "
                             "as the spikerobust command does)")
    args = parser.parse_args(argv)
    args.dtype = getattr(torch, args.dtype)
    torch.set_num_threads(args.threads)
    if not args.default_malloc:
        from spikerobust._runtime import keep_freed_memory

        keep_freed_memory()

    print(
        f"# torch {torch.__version__}, threads = {torch.get_num_threads()}, dtype = {args.dtype}, "
        f"B = {args.batch}, T = {args.steps}, N = {args.hidden}, median of {args.repeats}, "
        f"keep freed memory: {not args.default_malloc}"
    )
    print(
        f"{'d_in':>4} | {'target':>6} | {'scale':>6} | {'method':<15} | {'cpu ms':>8} | "
        f"{'wall ms':>8} | {'samples/s':>9} | {'spike rate':>10}"
    )
    print("-" * 92)
    results = {}
    args.trained = None
    if args.model is not None:  # the trained layer on its own data (scaled to each rate with --rates)
        args.trained = load_trained(args)
        layer, x = args.trained
        args.steps, args.batch, args.hidden, args.d_in = x.shape[0], x.shape[1], layer.n_hidden, [x.shape[2]]
        print(f"# --model {args.model}: {args.split} inputs [T, B, d_in] = {list(x.shape)}, N = {layer.n_hidden}, "
              f"surrogate support {100 * surrogate_support(layer, x):.1f} % of (sample, neuron, step)")
    for d_in in args.d_in:
        for target in args.rates or [None]:
            args.scale = 1.0 if target is None else calibrate_scale(d_in, target, args)
            if args.trained is not None and target is not None:
                layer, x = args.trained
                print(f"# rate ~{target:.2f}: the trained layer's input x {args.scale:.2f}, surrogate support "
                      f"{100 * surrogate_support(layer, args.scale * x):.1f} %")
            res = measure(d_in, args)
            results[(d_in, target)] = res
            tgt = "-" if target is None else f"{target:.2f}"
            for m, (cpu, wall, rate) in res.items():
                rate_s = f"{rate:10.3f}" if m != "floor" else f"{'-':>10}"
                print(
                    f"{d_in:>4} | {tgt:>6} | {args.scale:6.2f} | {m:<15} | {1e3 * cpu:8.1f} | "
                    f"{1e3 * wall:8.1f} | {args.batch / cpu:9.0f} | {rate_s}"
                )
    print()
    print("# time ratios, CPU time (wall-clock in brackets); < 1: the first is faster")
    pairs = (("ours-event", "floor"), ("ours-event", "ours-fused"), ("ours-event", "norse"),
             ("ours-fused", "floor"), ("ours-fused", "norse"), ("ours-fused", "snntorch"),
             ("ours-fused", "ours-reference"))
    for (d_in, target), res in results.items():
        parts = [f"d_in={d_in}" + ("" if target is None else f" rate~{target:.2f}") + ":"]
        for a, b in pairs:
            if a in res and b in res:
                parts.append(
                    f"{a.replace('ours-', '')}/{b.replace('ours-', '')} = "
                    f"{res[a][0] / res[b][0]:.2f} ({res[a][1] / res[b][1]:.2f})"
                )
        print("  ".join(parts))


if __name__ == "__main__":
    main()
