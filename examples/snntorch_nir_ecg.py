"""An snnTorch LIF network on the ECG task: robust training, mismatch, and a NIR round trip.

1. Build an snnTorch network for the ECG beats (2 leads as input currents, T = 100 steps):
   ``Linear(2, H) → Leaky → Linear(H, 4) → Leaky``; the logits are the output layer's mean
   membrane potential.
2. Train it twice with spikerobust's trainer: standard and forward noise + β (the paper's FN + β).
3. Compare the mismatch tables (m = 0.3, 0.5, 0.7).
4. Export both networks with snnTorch's NIR exporter (``snntorch.export_nir.export_to_nir``),
   write and read the ``.nir`` file, import the graph back (``snntorch.import_nir.import_from_nir``)
   and check that the re-imported network gives the same spikes and predictions on the test set.

What NIR can express decides the neurons: NIR's ``LIF`` node resets the membrane to ``v_reset``
after a spike, and snnTorch imports it as ``Leaky(reset_mechanism="zero", reset_delay=False)`` with
one threshold for the layer. The network is therefore built with exactly those settings (and
per-neuron ``beta``/``threshold`` tensors, which the exporter needs to give the nodes a shape); with
snnTorch's default subtractive reset the re-imported network would compute something else.
spikerobust's LSNN has an adaptive threshold, which NIR has no node for (see docs/nir.md).

Needs ``nir`` and ``nirtorch`` (``pip install --no-deps nir nirtorch h5py``, so that the pinned
torch stays).

Examples:
    python examples/snntorch_nir_ecg.py --data-dir /work/shared/data/mitdb
    python examples/snntorch_nir_ecg.py --quick              # synthetic beats, 2 epochs, seconds
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch import nn


def build(n_hidden: int = 64, beta: float = 0.9, n_in: int = 2, n_classes: int = 4) -> nn.Module:
    """The snnTorch network, time loop in forward: ``x [T, B, 2]`` → logits ``[B, 4]``."""
    import snntorch as snn
    from snntorch import utils as snn_utils

    def leaky(n: int, output: bool = False):
        return snn.Leaky(beta=torch.full((n,), beta), threshold=torch.ones(n), reset_mechanism="zero",
                         reset_delay=False, init_hidden=True, output=output)

    class SnnEcg(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(n_in, n_hidden), leaky(n_hidden), nn.Linear(n_hidden, n_classes),
                                     leaky(n_classes, output=True))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            snn_utils.reset(self.net)
            mems = []
            for t in range(x.shape[0]):
                _, mem = self.net(x[t])
                mems.append(mem)
            return torch.stack(mems).mean(0)

    return SnnEcg()


def run_steps(step_fn, x: torch.Tensor, hidden: nn.Module, out_layer: nn.Module):
    """Hidden spikes, output spikes ``[T, B, ·]`` and logits (mean output membrane) of a per-step network."""
    rec = []
    handle = hidden.register_forward_hook(lambda m, i, o: rec.append((o[0] if isinstance(o, tuple) else o).detach()))
    outs, mems = [], []
    try:
        for t in range(x.shape[0]):
            out = step_fn(x[t])
            outs.append(out[0] if isinstance(out, tuple) else out)
            mems.append(out_layer.mem.detach().clone())
    finally:
        handle.remove()
    return torch.stack(rec), torch.stack(outs), torch.stack(mems).mean(0)


def round_trip(model: nn.Module, test, nir_path: Path) -> dict:
    """Export to NIR, write, read, import; compare spikes and predictions with the original."""
    import nir
    from snntorch import utils as snn_utils
    from snntorch.export_nir import export_to_nir
    from snntorch.import_nir import import_from_nir

    net = model.net
    graph = export_to_nir(net, test[0][0][0, :1], ignore_dims=[0])
    nir.write(str(nir_path), graph)
    imported = import_from_nir(nir.read(str(nir_path)))
    nodes = {k: type(v).__name__ for k, v in graph.nodes.items()}
    same_hidden = same_out = total_h = total_o = same_pred = correct_a = correct_b = n = 0
    with torch.no_grad():
        for x, y in test:
            snn_utils.reset(net)
            h_a, o_a, logit_a = run_steps(lambda xt: net(xt), x, net[1], net[3])
            snn_utils.reset(imported)
            state = [None]

            def step(xt):
                out, state[0] = imported(xt, state[0])
                return out

            h_b, o_b, logit_b = run_steps(step, x, getattr(imported, "1"), getattr(imported, "3"))
            same_hidden += int((h_a == h_b).sum())
            total_h += h_a.numel()
            same_out += int((o_a == o_b).sum())
            total_o += o_a.numel()
            same_pred += int((logit_a.argmax(1) == logit_b.argmax(1)).sum())
            correct_a += int((logit_a.argmax(1) == y).sum())
            correct_b += int((logit_b.argmax(1) == y).sum())
            n += y.shape[0]
    return {"nodes": nodes, "hidden_spike_agreement": same_hidden / total_h, "output_spike_agreement": same_out / total_o,
            "prediction_agreement": same_pred / n, "accuracy_original": correct_a / n, "accuracy_reimported": correct_b / n,
            "hidden_spikes_per_step": float(h_a.mean())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=None, help="MIT-BIH records (default: synthetic beats)")
    parser.add_argument("--n-hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--n-draws", type=int, default=30, help="mismatch draws per level")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", default=None, help="where to write the .nir files and results.json")
    parser.add_argument("--quick", action="store_true", help="2 epochs, 5 draws, 200 beats per class")
    args = parser.parse_args(argv)

    from spikerobust.experiments import load_task
    from spikerobust.experiments.config import make_config
    from spikerobust.robust import fit, mismatch_evaluate
    from spikerobust.robust.methods import get_method

    over = {"data_dir": args.data_dir} if args.data_dir else {}
    if args.quick:
        over["n_per_class"] = 200
        args.epochs, args.n_draws = 2, 5
    cfg = make_config("ecg", "quick", overrides=over)
    data = load_task(cfg)
    test = data.batches("test")
    out_dir = Path(args.out_dir) if args.out_dir else Path(tempfile.mkdtemp(prefix="snntorch_nir_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"data: {data.description}; sizes {data.sizes}")
    methods = {"standard": get_method("standard"),
               "fn+beta": get_method("forward_noise", eta=0.3, beta=0.1, n_steps=3, seed=args.seed)}
    levels = (0.0, 0.3, 0.5, 0.7)
    results = {}
    for label, method in methods.items():
        torch.manual_seed(args.seed)
        model = build(args.n_hidden)
        t0 = time.perf_counter()
        res = fit(model, method, data.loader(cfg.batch_size, args.seed), data.batches("val"), epochs=args.epochs,
                  lr=args.lr, milestones=[int(0.8 * args.epochs)], seed=args.seed, progress=False)
        train_s = time.perf_counter() - t0
        mm = mismatch_evaluate(model, test, levels=levels, n_draws=args.n_draws, seed=args.seed, progress=False)
        trip = round_trip(model, test, out_dir / f"{label.replace('+', '_')}.nir")
        results[label] = {"best_epoch": res.best_epoch, "train_s": train_s, "mismatch": mm.summary(), "nir": trip}
        print(f"{label}: trained {args.epochs} epochs in {train_s:.0f} s (best epoch {res.best_epoch}); NIR nodes "
              f"{list(trip['nodes'].values())}")
    print(f"\nMismatch: test accuracy %, mean ± std (min) over {args.n_draws} draws")
    print("| m | " + " | ".join(results) + " |\n|---|" + "---|" * len(results))
    for k, m in enumerate(levels):
        cells = [f"{100 * r['mismatch'][k]['mean']:.2f} ± {100 * r['mismatch'][k]['std']:.2f} "
                 f"({100 * r['mismatch'][k]['min']:.2f})" for r in results.values()]
        print(f"| {m:g} | " + " | ".join(cells) + " |")
    print("\nNIR round trip (export → .nir file → import), on the test set:")
    print("| network | hidden spikes equal | output spikes equal | predictions equal | acc. original | acc. re-imported |")
    print("|---|---|---|---|---|---|")
    for label, r in results.items():
        t = r["nir"]
        print(f"| {label} | {100 * t['hidden_spike_agreement']:.2f} % | {100 * t['output_spike_agreement']:.2f} % | "
              f"{100 * t['prediction_agreement']:.2f} % | {100 * t['accuracy_original']:.2f} % | "
              f"{100 * t['accuracy_reimported']:.2f} % |")
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=float))
    print(f"\nwritten to {out_dir}/ (standard.nir, fn_beta.nir, results.json)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
