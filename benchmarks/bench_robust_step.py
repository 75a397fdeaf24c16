"""Benchmark: one robust-training step (N_steps = 10) vs one standard step (target <= 12x).

Both steps go through the registered methods ("adversarial" and "standard") with Adam, on the
LSNN (N = 256, T = 100, ECG batch of 100) and the F-MNIST CNN (batch of 100).

The repeats alternate one standard and one robust step, so that a change of load on a shared
machine affects both alike. Besides the median process CPU time of each step, the line reports its
split into user and system time and the minor page faults: most of the system time is the
kernel supplying fresh pages for tensors whose memory the C allocator (glibc) returned to the OS
after the previous pass. That cost is the allocator's, not the step's arithmetic; with glibc it
disappears when freed memory is kept, which the ``spikerobust`` command and this benchmark do by
default (:func:`spikerobust._runtime.keep_freed_memory`; ``--default-malloc`` measures without).

``--lsnn-backends event,fused`` runs the LSNN's steps once per backend, all alternating in the
same run, and prints the robust step's ratio between them (issue 12: event >= 3x faster than
fused). ``--thread-sweep 1,2`` alternates ``torch.set_num_threads`` between the listed counts
step by step and reports wall-clock medians (the speed-up of a second thread is a wall-clock
quantity; on a loaded machine it is only indicative), the quartiles of the robust step's times,
and a machine reference timed in the same rounds: fixed matrix products (MKL, perfectly parallel)
whose own speed-up says how much of a second core the machine gave during the run.

Usage::

    python benchmarks/bench_robust_step.py --repeats 5 --threads 1
    python benchmarks/bench_robust_step.py --models lsnn --lsnn-backends event,fused
    python benchmarks/bench_robust_step.py --models lsnn --lsnn-backends event --thread-sweep 1,2
    python benchmarks/bench_robust_step.py --models lsnn --lsnn-backends event,fused \
        --model RUN/methods/standard/model.pt --data-dir ../shared/data/mitdb

``--model``: the LSNN case is a trained network on its own training data (its operating point:
the spike rate and the surrogate's support that training produced) instead of a fresh one.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

try:
    import resource
except ImportError:  # not on Windows
    resource = None

#: process CPU time: on a shared machine it is far less disturbed by other jobs than wall-clock
#: time (run with --threads 1 so CPU time is the single thread's time); --wall switches.
CLOCK = time.process_time

import torch

from spikerobust.models import get_model
from spikerobust.robust.methods import get_method


def _usage():
    if resource is None:
        return 0.0, 0.0, 0
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_minflt


def timed_step(method, model, x, y, opt):
    """(clock seconds, user seconds, system seconds, minor page faults) of one step."""
    u0, s0, f0 = _usage()
    t0 = CLOCK()
    method.step(model, x, y, opt)
    if x.is_cuda:
        torch.cuda.synchronize()
    t = CLOCK() - t0
    u1, s1, f1 = _usage()
    return t, u1 - u0, s1 - s0, f1 - f0


def step_samples(methods, model, x, y, opt, repeats, setups=None):
    """Per method, the :func:`timed_step` tuples of ``repeats`` alternating rounds (after one
    warm-up step each).

    ``setups`` (one callable per method, or ``None``) runs untimed before each of its steps
    (e.g. choosing the LSNN backend or the thread count)."""
    setups = setups or [None] * len(methods)
    for method, setup in zip(methods, setups):
        if setup is not None:
            setup()
        method.step(model, x, y, opt)  # warm-up
    samples = [[] for _ in methods]
    for _ in range(repeats):
        for method, setup, out in zip(methods, setups, samples):
            if setup is not None:
                setup()
            out.append(timed_step(method, model, x, y, opt))
    return samples


def median_times(methods, model, x, y, opt, repeats, setups=None):
    """Per method, the medians of :func:`timed_step` over ``repeats`` alternating rounds
    (:func:`step_samples`)."""
    return medians(step_samples(methods, model, x, y, opt, repeats, setups))


def medians(samples):
    """Per method, the median of each field of its :func:`timed_step` tuples."""
    return [tuple(statistics.median(col) for col in zip(*out)) for out in samples]


class MachineReference:
    """A fixed, perfectly parallel workload timed like a step (the ``--thread-sweep`` reference):
    ``n x n`` float32 matrix products (MKL), whose speed-up from a second thread says how much of
    a second core the machine gave during the run. On a virtual machine shared with other guests
    that share varies from hour to hour, and no code can scale beyond it."""

    def __init__(self, n: int = 1024, reps: int = 2, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.a = torch.randn(n, n, generator=g)
        self.b = torch.randn(n, n, generator=g)
        self.out = torch.empty(n, n)
        self.reps = reps

    def step(self, model, x, y, opt):  # the signature of a method's step; only the product runs
        for _ in range(self.reps):
            torch.mm(self.a, self.b, out=self.out)


def _setter(model, backend=None, threads=None):
    def setup():
        if backend is not None:
            model.lsnn.backend = backend
        if threads is not None:
            torch.set_num_threads(threads)
    return setup


def lsnn_backend_table(model, x, y, opt, args):
    """Standard and robust steps for every (backend, thread count), alternating in one run."""
    global CLOCK
    backends = args.lsnn_backends.split(",") if args.lsnn_backends else [None]
    threads = [int(t) for t in args.thread_sweep.split(",")] if args.thread_sweep else [None]
    if args.thread_sweep:
        CLOCK = time.perf_counter  # a second thread shortens wall-clock time, not CPU time
    combos = [(b, t) for b in backends for t in threads]
    methods, setups = [], []
    for b, t in combos:
        methods += [get_method("standard"), get_method("adversarial", beta=0.25, n_steps=args.n_steps, seed=0)]
        setups += [_setter(model, b, t)] * 2
    if args.thread_sweep:  # the machine's own speed-up, timed in the same rounds
        reference = MachineReference()
        for t in threads:
            methods.append(reference)
            setups.append(_setter(model, None, t))
    samples = step_samples(methods, model, x, y, opt, args.repeats, setups)
    res = medians(samples)
    clock = "wall" if CLOCK is time.perf_counter else "CPU"
    robust, robust_samples = {}, {}
    for i, (b, t) in enumerate(combos):
        (t_std, _, _, _), (t_rob, u_rob, s_rob, _) = res[2 * i], res[2 * i + 1]
        robust[(b, t)] = t_rob
        robust_samples[(b, t)] = [row[0] for row in samples[2 * i + 1]]
        print(f"LSNN N=256 T=100, batch {args.batch}, backend {b or 'auto'}, threads {t or args.threads}: "
              f"standard {t_std * 1e3:.1f} ms, robust (N_steps={args.n_steps}) {t_rob * 1e3:.1f} ms {clock} "
              f"(user/system {u_rob * 1e3:.0f}/{s_rob * 1e3:.0f} ms) -> ratio {t_rob / t_std:.2f}x")
    for t in threads:
        for b in backends[1:]:
            print(f"  robust step, threads {t or args.threads}: {b} / {backends[0]} = "
                  f"{robust[(b, t)] / robust[(backends[0], t)]:.2f}x ({clock} time)")
    if not args.thread_sweep:
        return
    ref = {t: [row[0] for row in samples[2 * len(combos) + j]] for j, t in enumerate(threads)}
    for t in threads:
        print(f"  spread over the {args.repeats} rounds, threads {t}: "
              + ", ".join(f"robust {b or 'auto'} {_quartiles(robust_samples[(b, t)])} ms" for b in backends)
              + f", reference {_quartiles(ref[t])} ms")
    for t in threads[1:]:
        r_ref = statistics.median(ref[threads[0]]) / statistics.median(ref[t])
        print(f"  machine reference (1024^2 float32 products): threads {threads[0]} / threads {t} = {r_ref:.2f}x")
        for b in backends:
            r = robust[(b, threads[0])] / robust[(b, t)]
            print(f"  robust step, backend {b or 'auto'}: threads {threads[0]} / threads {t} = {r:.2f}x "
                  f"({clock} time; {r / r_ref:.2f} of the reference's speed-up)")


def _quartiles(values) -> str:
    """``"q1 / median / q3"`` of seconds, in milliseconds."""
    q1, q2, q3 = statistics.quantiles(values, n=4) if len(values) > 1 else (values[0],) * 3
    return f"{q1 * 1e3:.0f} / {q2 * 1e3:.0f} / {q3 * 1e3:.0f}"


def trained_case(args):
    """``(model, x, y)`` of ``--model``: the trained classifier and the first ``--batch`` samples of
    the training split of its own data (``--data-dir``, else where the model file says)."""
    from spikerobust.experiments.train import load_model_and_data

    model, _, _, data = load_model_and_data(args.model, {"data_dir": args.data_dir} if args.data_dir else None)
    if getattr(model, "lsnn", None) is None:
        raise ValueError(f"--model {args.model}: {type(model).__name__} has no LSNN layer (.lsnn)")
    x, y = data.head("train", args.batch)  # time first, as the LSNN tasks store their inputs
    return model, x.contiguous(), y


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default="lsnn,cnn")
    parser.add_argument("--lsnn-backends", default=None, help="comma list, e.g. event,fused: LSNN steps per backend")
    parser.add_argument("--thread-sweep", default=None, help="comma list of thread counts alternated, e.g. 1,2 (wall clock)")
    parser.add_argument("--wall", action="store_true", help="time with the wall clock instead of process CPU time")
    parser.add_argument("--model", default=None,
                        help="LSNN case: a trained model file (RUN/methods/<label>/model.pt) on the first batch "
                             "of its own training data, instead of a fresh network on random input")
    parser.add_argument("--data-dir", default=None, help="with --model: where its data are (default: as recorded)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's allocator as it is (by default the allocator keeps freed memory, "
                             "as the spikerobust command does: spikerobust._runtime.keep_freed_memory)")
    args = parser.parse_args()
    if not args.default_malloc:
        from spikerobust._runtime import keep_freed_memory

        print(f"allocator keeps freed memory: {keep_freed_memory()}")
    global CLOCK
    if args.wall or args.device != "cpu":
        CLOCK = time.perf_counter
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message="Using padding='same'")
    dev = torch.device(args.device)
    cases = []
    if "lsnn" in args.models and args.model is not None:
        model, x, y = trained_case(args)
        print(f"# --model {args.model}: training inputs [T, B, d_in] = {list(x.shape)}")
        cases.append(("LSNN N=256 T=100", model, x, y))
    elif "lsnn" in args.models:
        cases.append(("LSNN N=256 T=100", get_model("lsnn_ecg", n_hidden=256),
                      torch.randn(100, args.batch, 2) * 2, torch.randint(0, 4, (args.batch,))))
    if "cnn" in args.models:
        cases.append(("CNN F-MNIST", get_model("cnn_fmnist"), torch.randn(args.batch, 1, 28, 28),
                      torch.randint(0, 10, (args.batch,))))
    for name, model, x, y in cases:
        model, x, y = model.to(dev).train(), x.to(dev), y.to(dev)
        opt = torch.optim.Adam(model.parameters(), 1e-4)
        if name.startswith("LSNN") and (args.lsnn_backends or args.thread_sweep):
            lsnn_backend_table(model, x, y, opt, args)
            continue
        methods = [get_method("standard"), get_method("adversarial", beta=0.25, n_steps=args.n_steps, seed=0)]
        (t_std, u_std, s_std, f_std), (t_rob, u_rob, s_rob, f_rob) = median_times(
            methods, model, x, y, opt, args.repeats
        )
        print(f"{name}, batch {args.batch}: standard step {t_std * 1e3:.1f} ms, robust step (N_steps={args.n_steps}) "
              f"{t_rob * 1e3:.1f} ms -> ratio {t_rob / t_std:.2f}x")
        if resource is not None:
            print(f"    user/system ms (minor faults): standard {u_std * 1e3:.0f}/{s_std * 1e3:.0f} ({f_std:.0f}), "
                  f"robust {u_rob * 1e3:.0f}/{s_rob * 1e3:.0f} ({f_rob:.0f}); user-time ratio "
                  f"{u_rob / max(u_std, 1e-9):.2f}x")


if __name__ == "__main__":
    main()
