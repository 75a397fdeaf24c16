"""An snnTorch LIF network on ECG beats, trained robustly (``train_method``: standard, FN + β), measured under
mismatch (``evaluate_model``), exported to NIR and imported back with the same spikes and predictions (docs/nir.md)."""

import argparse
from pathlib import Path

import snntorch as snn
import torch
from snntorch import utils as snn_utils
from torch import nn

from spikerobust.experiments import evaluate_model, load_task, make_config, train_method
from spikerobust.models import list_models, register_model


def run_steps(net: nn.Module, x: torch.Tensor):
    """Hidden (layer "1") and output spikes ``[T, B, ·]`` and the mean output membrane (layer "3"): the logits."""
    hidden = []
    snn_utils.reset(net)
    handle = getattr(net, "1").register_forward_hook(lambda m, i, o: hidden.append(o.detach()))
    steps = [(net(x_t)[0].detach(), getattr(net, "3").mem.clone()) for x_t in x]  # (output spikes, membrane)
    handle.remove()
    return torch.stack(hidden), torch.stack([s for s, _ in steps]), torch.stack([v for _, v in steps]).mean(0)


class SnnEcg(nn.Module):
    """``x [T, B, 2]`` → logits ``[B, 4]``, with NIR's LIF (reset to zero, no reset delay, per-neuron β)."""

    def __init__(self, n_hidden: int = 64, beta: float = 0.9) -> None:
        super().__init__()
        leaky = lambda n, output=False: snn.Leaky(beta=torch.full((n,), beta), threshold=torch.ones(n),  # noqa: E731
                                                  reset_mechanism="zero", reset_delay=False, init_hidden=True, output=output)
        self.net = nn.Sequential(nn.Linear(2, n_hidden), leaky(n_hidden), nn.Linear(n_hidden, 4), leaky(4, output=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return run_steps(self.net, x)[2]


build = SnnEcg


@torch.no_grad()
def round_trip(model: nn.Module, test, nir_path: Path) -> dict:
    """Export to NIR, write, read, import; compare spikes and predictions with the original on ``test`` batches."""
    import nir
    from snntorch import export_nir, import_nir

    x, y = torch.cat([x for x, _ in test], dim=1), torch.cat([y for _, y in test])
    nir.write(str(nir_path), graph := export_nir.export_to_nir(model.net, x[0, :1], ignore_dims=[0]))
    imported = import_nir.import_from_nir(nir.read(str(nir_path)))
    (h_a, o_a, l_a), (h_b, o_b, l_b) = run_steps(model.net, x), run_steps(imported, x)
    agree = lambda u, v: float((u == v).double().mean())  # noqa: E731
    p_a, p_b = l_a.argmax(1), l_b.argmax(1)
    return {"nodes": {k: type(v).__name__ for k, v in graph.nodes.items()}, "hidden_spikes_per_step": float(h_a.mean()),
            "hidden_spike_agreement": agree(h_a, h_b), "output_spike_agreement": agree(o_a, o_b),
            "prediction_agreement": agree(p_a, p_b), "accuracy_original": agree(p_a, y), "accuracy_reimported": agree(p_b, y)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="MIT-BIH records (default: synthetic beats)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out-dir", default="results/snntorch_nir", help="per method: model.pt, metrics and the .nir file")
    args = p.parse_args(argv)
    cfg = make_config("ecg", "quick", overrides={"data_dir": args.data_dir, "epochs": args.epochs, "lr": 5e-3,
                                                 "levels": [0, .3, .5, .7], "methods": "standard,fn+beta"})
    if "snntorch_lif_ecg" not in list_models():  # train_method builds the network by its registered name
        register_model("snntorch_lif_ecg")(build)
    data, results = load_task(cfg), {}
    data.model, data.model_kwargs = "snntorch_lif_ecg", {}
    for label in cfg.methods:  # every method starts from the same network and sees the same batches
        model, _ = train_method(cfg, label, data, Path(args.out_dir) / label, progress=False)
        r = results[label] = evaluate_model(model, data, cfg, label=label, parts=("mismatch",), progress=False)
        r["nir"] = round_trip(model, data.batches("test"), Path(args.out_dir) / label / "model.nir")
        print(f"{label}: mismatch {r['mismatch']['summary']}\nNIR round trip: {r['nir']}")
    return results


if __name__ == "__main__":
    main()
