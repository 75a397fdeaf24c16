"""Cost of the PCM simulation against the plain forward pass (F-MNIST CNN, batch B).

Per repeat (methods interleaved, so a busy machine slows all alike; medians of process CPU time):

* ``digital``: ``model(x)``;
* ``pcm-fast``: :class:`~spikerobust.robust.pcm.PCMSimulator` forward at a set time (no
  converters, per-layer drift compensation: one ``conv2d``/``linear`` per layer with the
  effective weight);
* ``pcm-tiled``: the same devices computed tile by tile (256 × 256, ``explicit_tiles=True``);
* ``pcm-dac-adc``: tiled with 8-bit DAC and ADC;
* ``program+set_time``: one programming plus one ``set_time`` (all device draws and the drift
  compensation readouts), independent of the batch.

Run::

    python benchmarks/bench_pcm.py                 # B = 500
    python benchmarks/bench_pcm.py --batch 100 --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from spikerobust.models import get_model
from spikerobust.robust.pcm import PCMConfig, PCMSimulator


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = get_model("cnn_fmnist").eval()
    x = torch.randn(args.batch, 1, 28, 28)
    sims = {
        "pcm-fast": PCMSimulator(model, PCMConfig(), seed=0),
        "pcm-tiled": PCMSimulator(model, PCMConfig(explicit_tiles=True), seed=0),
        "pcm-dac-adc": PCMSimulator(model, PCMConfig(dac_bits=8, adc_bits=8), seed=0),
    }
    for s in sims.values():
        s.program().set_time(86400.0)
    runs = {"digital": lambda: model(x), **{k: (lambda s=s: s(x)) for k, s in sims.items()},
            "program+set_time": lambda: sims["pcm-fast"].program().set_time(86400.0)}
    times = {k: [] for k in runs}
    with torch.no_grad():
        for fn in runs.values():
            fn()  # warm-up
        for _ in range(args.repeats):
            for k, fn in runs.items():
                t = time.process_time()
                fn()
                times[k].append(time.process_time() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"F-MNIST CNN, batch {args.batch}, {args.threads} thread(s), median CPU s over {args.repeats} repeats")
    print("| method | CPU s | × digital |\n|---|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:.3f} | {v / med['digital']:.2f} |")
    return med


if __name__ == "__main__":
    main()
