"""The ``spikerobust`` command.

Examples:
    spikerobust reproduce --quick                       # synthetic ECG, a few minutes on 2 CPU cores
    spikerobust reproduce --task ecg --data-root ../shared/data/mitdb --quick
    spikerobust models                                  # registered model builders
    spikerobust methods                                 # registered training methods
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

__all__ = ["main"]


def _parse_methods(spec: str) -> dict:
    """``"standard,adversarial:beta=0.25,fn+b=forward_noise:beta=0.1"`` → ``{label: kwargs}``.

    ``label=method`` runs a registered method under another label (its kwargs get ``"method"``).
    """
    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, args = item.partition(":")
        label, eq, method = name.partition("=")
        kwargs = {"method": method} if eq else {}
        name = label if eq else name
        for kv in filter(None, args.split(";")):
            key, eq, value = kv.partition("=")
            if not eq:
                raise SystemExit(f"--methods: expected key=value in {item!r}")
            kwargs[key] = json.loads(value)
        out[name] = kwargs
    return out


def _floats(spec: str) -> tuple:
    return tuple(float(v) for v in spec.split(",") if v.strip())


def _reproduce(args: argparse.Namespace) -> int:
    from .experiments import QUICK, ReproduceConfig, run_reproduce

    cfg = ReproduceConfig()
    if args.quick:
        for key, value in QUICK.items():
            setattr(cfg, key, value)
    for key in ("task", "data_root", "beats_per_class", "n_hidden", "epochs", "lr", "batch_size", "n_draws",
                "out_dir", "seed"):
        value = getattr(args, key)
        if value is not None:
            setattr(cfg, key, value)
    if args.methods:
        cfg.methods = _parse_methods(args.methods)
    for key in ("levels", "attack_eps", "zetas"):
        value = getattr(args, key)
        if value:
            setattr(cfg, key, _floats(value))
    run_reproduce(cfg, progress=not args.no_progress)
    print((Path(cfg.out_dir) / "report.md").read_text())
    print(f"written to {cfg.out_dir}/ (report.md, results.json, summary.png, checkpoints/)")
    return 0


def _list_models(args: argparse.Namespace) -> int:
    from .models import list_models

    print("\n".join(list_models()))
    return 0


def _list_methods(args: argparse.Namespace) -> int:
    from .robust.methods import list_methods

    print("\n".join(list_methods()))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="spikerobust", description="Robust spiking networks: train, attack, verify, report.")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="train standard and robust LSNNs on ECG, then mismatch, attack, verify, report")
    rep.add_argument("--task", choices=["ecg-synthetic", "ecg", "ecg-records"], default=None,
                     help="ecg-synthetic (default; generated beats, needs no data), ecg (MIT-BIH, random split), "
                          "ecg-records (MIT-BIH, patient-wise split)")
    rep.add_argument("--data-root", default=None, help="folder with the MIT-BIH records (NNN.hea/.dat/.atr)")
    rep.add_argument("--quick", action="store_true", help="scaled-down settings that run in minutes on a laptop CPU")
    rep.add_argument("--beats-per-class", type=int, default=None)
    rep.add_argument("--n-hidden", type=int, default=None)
    rep.add_argument("--epochs", type=int, default=None)
    rep.add_argument("--lr", type=float, default=None)
    rep.add_argument("--batch-size", type=int, default=None)
    rep.add_argument("--n-draws", type=int, default=None, help="mismatch draws per level (paper: 100)")
    rep.add_argument("--methods", default=None,
                     help='comma list, kwargs after a colon, ";" between kwargs, optional label=: '
                          '"standard,adversarial:beta=0.25,forward_noise,fn+beta=forward_noise:beta=0.1"')
    rep.add_argument("--levels", default=None, help="mismatch levels, e.g. 0,0.1,0.2,0.3,0.5,0.7")
    rep.add_argument("--attack-eps", default=None, help="relative attack sizes, e.g. 0.05,0.1,0.2")
    rep.add_argument("--zetas", default=None, help="interval half-widths, e.g. 0,1e-5,1e-4,1e-3")
    rep.add_argument("--out-dir", default=None, help="output folder (default results/reproduce)")
    rep.add_argument("--seed", type=int, default=None)
    rep.add_argument("--no-progress", action="store_true")
    rep.set_defaults(func=_reproduce)
    sub.add_parser("models", help="list registered models").set_defaults(func=_list_models)
    sub.add_parser("methods", help="list registered training methods").set_defaults(func=_list_methods)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
