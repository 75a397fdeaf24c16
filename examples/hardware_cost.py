"""Hardware cost (NeuroBench definitions) of the ECG LSNN and the Fashion-MNIST CNN on their test sets.

Synaptic operations per sample (accumulates from spikes, multiply-accumulates for non-binary
inputs), activation sparsity, parameter count and footprint; see ``spikerobust.analysis.cost``.
A model file (``spikerobust train`` output) is measured as trained; without one, a freshly
initialised model of the task's default size is measured (its spike counts are those of an
untrained network).

Examples:
    python examples/hardware_cost.py --task ecg --data-dir /work/shared/data/mitdb
    python examples/hardware_cost.py --task ecg --model runs/standard/model.pt
    python examples/hardware_cost.py --task fmnist --fmnist-dir /usr/share/datasets/fashion-mnist
"""

from __future__ import annotations

import argparse

import torch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("ecg", "fmnist"), default="ecg")
    parser.add_argument("--model", default=None, help="a model file; default: a freshly initialised model")
    parser.add_argument("--data-dir", default=None, help="MIT-BIH folder (ecg) or Fashion-MNIST IDX folder (fmnist)")
    parser.add_argument("--n-test", type=int, default=None, help="measure on the first N test samples only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--preset", default="quick", help="preset deciding the fresh model's size and the data (quick, paper)")
    parser.add_argument("--quick", action="store_true", help="100 test samples")
    args = parser.parse_args(argv)

    from spikerobust.analysis.cost import hardware_cost
    from spikerobust.experiments import ExperimentConfig, load_model, load_task
    from spikerobust.experiments.config import make_config
    from spikerobust.models import get_model

    if args.model:
        model, meta = load_model(args.model)
        cfg = ExperimentConfig.from_dict(dict(meta["config"], **({"data_dir": args.data_dir} if args.data_dir else {})))
        what = f"trained model {args.model}"
    else:
        over = {"data_dir": args.data_dir} if args.data_dir else {}
        cfg = make_config(args.task, args.preset, overrides=over)
        model = None
    data = load_task(cfg)
    if model is None:
        torch.manual_seed(args.seed)
        model = get_model(data.model, **data.model_kwargs)
        what = f"freshly initialised {data.model} {data.model_kwargs} (seed {args.seed})"
    n = 100 if args.quick else args.n_test
    test = data.batches("test")
    if n is not None:
        kept, left = [], n
        for x, y in test:
            b = y.shape[0]
            take = min(b, left)
            kept.append((x[:, :take] if data.time_first else x[:take], y[:take]))
            left -= take
            if left <= 0:
                break
        test = kept
    cost = hardware_cost(model, test)
    print(f"{what} on {data.description}, {cost.n_samples} test samples")
    print(cost.to_markdown())
    print("| layer | kind | effective / sample | dense / sample |\n|---|---|---|---|")
    for layer in cost.layers:
        print(f"| {layer['name']} | {layer['kind']} | {layer['effective']:,.0f} | {layer['dense']:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
