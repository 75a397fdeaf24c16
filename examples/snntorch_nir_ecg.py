"""An snnTorch LIF network on the ECG task: robust training, mismatch, and a NIR round trip.

``Linear(2, H) → Leaky → Linear(H, 4) → Leaky`` (logits: mean output membrane) is trained on the
beats of ``load_task`` by spikerobust's ``fit``, standard and FN + β, measured by ``mismatch_evaluate``,
then sent through NIR (``export_to_nir``, a ``.nir`` file, ``import_from_nir``): the re-imported network
must give the same spikes and predictions. NIR's ``LIF`` resets to ``v_reset`` (snnTorch:
``Leaky(reset_mechanism="zero", reset_delay=False)``), so the network is built so (docs/nir.md).
"""

import argparse
import json
import tempfile
from pathlib import Path

import snntorch as snn
import torch
from snntorch import utils as snn_utils
from torch import nn

from spikerobust.experiments import load_task, make_config, parse_methods
from spikerobust.experiments.config import lr_milestones
from spikerobust.robust import fit, mismatch_evaluate
from spikerobust.robust.methods import get_method


class SnnEcg(nn.Module):
    """``x [T, B, 2]`` → logits ``[B, 4]`` (the output layer's mean membrane), with NIR's LIF settings."""

    def __init__(self, n_hidden: int = 64, beta: float = 0.9, n_in: int = 2, n_classes: int = 4) -> None:
        super().__init__()
        leaky = lambda n, output=False: snn.Leaky(beta=torch.full((n,), beta), threshold=torch.ones(n),  # noqa: E731
                                                  reset_mechanism="zero", reset_delay=False, init_hidden=True, output=output)
        self.net = nn.Sequential(nn.Linear(n_in, n_hidden), leaky(n_hidden), nn.Linear(n_hidden, n_classes),
                                 leaky(n_classes, output=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        snn_utils.reset(self.net)
        return torch.stack([self.net(x_t)[1] for x_t in x]).mean(0)


build = SnnEcg


def run_steps(net, x: torch.Tensor, hidden: nn.Module, out_layer: nn.Module, stateful: bool = False):
    """Hidden and output spikes ``[T, B, ·]`` and predictions (mean output membrane) of a per-step network."""
    state, rec, outs, mems = None, [], [], []
    snn_utils.reset(net)
    handle = hidden.register_forward_hook(lambda m, i, o: rec.append((o[0] if isinstance(o, tuple) else o).detach()))
    for x_t in x:
        out, state = net(x_t, state) if stateful else (net(x_t), None)
        outs.append(out[0] if isinstance(out, tuple) else out)
        mems.append(out_layer.mem.detach().clone())
    handle.remove()
    return torch.stack(rec), torch.stack(outs), torch.stack(mems).mean(0).argmax(1)


def round_trip(model: nn.Module, test, nir_path: Path) -> dict:
    """Export to NIR, write, read, import; compare spikes and predictions with the original on ``test`` batches."""
    import nir
    from snntorch.export_nir import export_to_nir
    from snntorch.import_nir import import_from_nir

    x, y, net = torch.cat([x for x, _ in test], dim=1), torch.cat([y for _, y in test]), model.net
    nir.write(str(nir_path), graph := export_to_nir(net, x[0, :1], ignore_dims=[0]))
    imported = import_from_nir(nir.read(str(nir_path)))
    h_a, o_a, p_a = run_steps(net, x, net[1], net[3])
    h_b, o_b, p_b = run_steps(imported, x, getattr(imported, "1"), getattr(imported, "3"), True)
    agree = lambda u, v: float((u == v).double().mean())  # noqa: E731
    return {"nodes": {k: type(v).__name__ for k, v in graph.nodes.items()}, "hidden_spike_agreement": agree(h_a, h_b),
            "output_spike_agreement": agree(o_a, o_b), "prediction_agreement": agree(p_a, p_b),
            "accuracy_original": agree(p_a, y), "accuracy_reimported": agree(p_b, y),
            "hidden_spikes_per_step": float(h_a.mean())}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=None, help="MIT-BIH records (default: synthetic beats)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out-dir", default=None, help="where to write the .nir files and results.json")
    p.add_argument("--quick", action="store_true", help="2 epochs, 5 draws, 200 beats per class")
    args = p.parse_args(argv)
    quick = {"n_per_class": 200, "epochs": 2, "n_draws": 5} if args.quick else {}
    cfg = make_config("ecg", "quick", overrides={"data_dir": args.data_dir, "epochs": args.epochs, "lr": 5e-3, **quick,
                      "levels": [0, .3, .5, .7], "methods": parse_methods("standard,fn+beta", "ecg", "quick")})
    data, out, results = load_task(cfg), Path(args.out_dir or tempfile.mkdtemp(prefix="snntorch_nir_")), {}
    out.mkdir(parents=True, exist_ok=True)
    for label, kwargs in cfg.methods.items():
        kwargs, test = dict(kwargs), data.batches("test")
        torch.manual_seed(cfg.seed)  # both networks start alike
        fit(model := SnnEcg(), get_method(kwargs.pop("method"), **kwargs), data.loader(cfg.batch_size, cfg.seed),
            data.batches("val"), epochs=cfg.epochs, lr=cfg.lr, milestones=lr_milestones(cfg), seed=cfg.seed, progress=False)
        mm = mismatch_evaluate(model, test, levels=cfg.levels, n_draws=cfg.n_draws, seed=cfg.seed, progress=False)
        trip = round_trip(model, test, out / f"{label.replace('+', '_')}.nir")
        results[label] = {"mismatch": mm.summary(), "nir": trip}
        print(f"{label}: accuracy %, mean (min) of {cfg.n_draws} draws: " + ", ".join(
            f"m = {r['level']:g}: {100 * r['mean']:.1f} ({100 * r['min']:.1f})" for r in mm.summary()) + "; NIR round trip: "
            + ", ".join(f"{k} {100 * v:.1f} %" for k, v in trip.items() if k.endswith(("agreement", "reimported"))))
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    return results


if __name__ == "__main__":
    main()
