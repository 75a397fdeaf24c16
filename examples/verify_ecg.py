"""Verified accuracy against the weight-box size ε for a standard and a robust-trained ECG LSNN.

Two LSNNs classify N, L, R, V beats (docs/tasks.md) from one shared standard-trained start
(``--pretrain-epochs``), then train ``--epochs`` more each with the standard or the robust loss
(β_rob = 0.25 for ECG, docs/robust-training.md). Interval bound propagation certifies the test set
(docs/verification.md): a beat counts when every network with |p' − p| ≤ ε|p| on every weight and
bias classifies it correctly (Fig. S9: the robust network keeps more as ε grows). ~10 min on one
core with ``load_task``, ``fit`` (best validation epoch kept), ``lsnn_interval_simulation``.

Examples:
    python examples/verify_ecg.py --epochs 10 --out results.md      # MIT-BIH from ../shared/data/mitdb
    python examples/verify_ecg.py --synthetic                       # synthetic ECG (no data needed)
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch

from spikerobust.analysis.tables import markdown_table
from spikerobust.experiments import load_task, make_config
from spikerobust.models import get_model
from spikerobust.robust import fit
from spikerobust.robust.methods import get_method
from spikerobust.verify import SpikeStatus, is_verified, lsnn_interval_simulation


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=str(Path(__file__).parents[2] / "shared/data/mitdb"), help="MIT-BIH records")
    p.add_argument("--synthetic", action="store_true", help="synthetic ECG beats instead of MIT-BIH")
    p.add_argument("--beats-per-class", type=int, default=750, help="balanced beats per class (80/10/10 split)")
    p.add_argument("--n-hidden", type=int, default=128, help="LSNN neurons (paper: 256)")
    p.add_argument("--pretrain-epochs", type=int, default=25, help="shared standard training before the two runs")
    p.add_argument("--epochs", type=int, default=5, help="training epochs per model after the shared pretraining")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, nargs=2, default=[1e-2, 2e-3], help="Adam rates: pretraining, the two runs")
    p.add_argument("--beta", type=float, default=0.25, help="β_rob of the robust loss (paper, ECG: 0.25)")
    p.add_argument("--attack-steps", type=int, default=5, help="adversary sign steps per training step (paper: 10)")
    p.add_argument("--epsilons", type=float, nargs="+", default=[0.0, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3], help="box sizes ε")
    p.add_argument("--neuron-constants", action="store_true", help="also put τ_mem, τ_adapt, b0, β_adapt in the box")
    p.add_argument("--out", default=None, help="write the table (markdown) and a .json next to it")
    args = p.parse_args(argv)
    cfg = make_config("ecg", "quick", overrides=dict(data_dir=None if args.synthetic else args.data_root, progress=False,
                      n_per_class=args.beats_per_class, n_hidden=args.n_hidden, batch_size=args.batch_size))
    data = load_task(cfg)
    train = lambda model, method, epochs, lr: fit(model, method, data.loader(cfg.batch_size, cfg.seed),  # noqa: E731
                                                  data.batches("val"), epochs=epochs, lr=lr, seed=cfg.seed, progress=False)
    torch.manual_seed(cfg.seed)
    base = get_model(data.model, **data.model_kwargs)
    if args.pretrain_epochs > 0:
        train(base, get_method("standard"), args.pretrain_epochs, args.lr[0])
    x, y, results = data.test[0].double(), data.test[1], {}
    for label, method in {"standard": get_method("standard"), f"robust (β={args.beta:g})": get_method(
            "adversarial", beta=args.beta, n_steps=args.attack_steps, seed=cfg.seed)}.items():
        train(model := copy.deepcopy(base), method, args.epochs, args.lr[1])  # one starting point for both
        results[label] = {"test_acc": (model.eval().double()(x).argmax(1) == y).double().mean().item(), "rows": []}
        for eps in args.epsilons:
            res = lsnn_interval_simulation(model, x, eps, neuron_constants=args.neuron_constants, dtype=torch.float64)
            ok, unsure = is_verified(res.logits.lower, res.logits.upper, y), res.spike_status == SpikeStatus.UNCERTAIN
            results[label]["rows"].append({"epsilon": eps, "verified": ok.double().mean().item(),
                                           "uncertain_spikes": unsure.double().mean().item()})
    rows = [[f"{z:g}", *[f"{100 * r['rows'][i]['verified']:.1f} ({100 * r['rows'][i]['uncertain_spikes']:.1f})"
                         for r in results.values()]] for i, z in enumerate(args.epsilons)]
    table = (f"Verified test accuracy (%) on {data.description}; LSNN N = {args.n_hidden}; box ±ε|p|; in brackets: "
             f"% of spikes left uncertain.\n\n{markdown_table(['ε', *results], rows)}\n\nclean test accuracy "
             "(float64): " + ", ".join(f"{k} {100 * v['test_acc']:.1f}%" for k, v in results.items()))
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
        Path(args.out).with_suffix(".json").write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
