"""The ``reproduce`` pipeline: train, attack, verify and report, as in the paper's ECG experiment.

For every training method of the config (standard, the robust loss, forward noise, ...) it

1. trains an LSNN classifier on the ECG task and keeps the best clean-validation model,
2. measures test accuracy under device mismatch (SPEC §4, Table 1 layout) and compares the
   methods with a Mann-Whitney U test,
3. attacks the weights with the sign-PGA and with a random perturbation of equal size
   (the paper's Fig. S5 comparison),
4. certifies test samples with interval arithmetic for every ζ (SPEC §5),
5. measures the weight-loss landscape and its flatness number (Table S1),

and writes ``report.md``, ``results.json``, PNG figures and the trained checkpoints to
``out_dir``. Results are computed, never copied: a shortfall against the paper shows.

Examples:
    >>> from spikerobust.experiments import ReproduceConfig, run_reproduce
    >>> cfg = ReproduceConfig(task="ecg-synthetic", out_dir="/tmp/sr")   # doctest: +SKIP
    >>> results = run_reproduce(cfg)                                      # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import torch

from ..analysis.tables import markdown_table
from ..models import get_model
from ..robust.attacks import attacked_accuracy
from ..robust.landscape import loss_landscape
from ..robust.methods import get_method
from ..robust.mismatch import mismatch_evaluate
from ..robust.stats import mann_whitney
from ..robust.trainer import fit
from ..verify import verified_accuracy
from .config import ReproduceConfig

__all__ = ["run_reproduce", "load_task"]

log = logging.getLogger(__name__)

TASKS = ("ecg-synthetic", "ecg", "ecg-records")


def _to_tensors(ds) -> Tuple[torch.Tensor, torch.Tensor]:
    """A time-first dataset as ``x [T, N, F]`` float32 and ``y [N]`` int64."""
    x = torch.from_numpy(np.asarray(ds.data, dtype=np.float32)).permute(1, 0, 2).contiguous()
    return x, torch.from_numpy(np.asarray(ds.targets, dtype=np.int64))


def load_task(cfg: ReproduceConfig) -> Dict[str, object]:
    """The train/val/test splits of ``cfg.task`` as time-first tensors, plus a description."""
    from ..datasets import MITBIH, SyntheticECG

    if cfg.task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {cfg.task!r}")
    if cfg.task == "ecg-synthetic":
        kw = dict(beats_per_class=cfg.beats_per_class, seed=cfg.seed)
        splits = {s: SyntheticECG(split=s, **kw) for s in ("train", "val", "test")}
        desc = f"SYNTHETIC ECG beats (generated, not recorded), {cfg.beats_per_class} per class, 80/10/10 split"
    else:
        if not cfg.data_root or not (Path(cfg.data_root) / "100.hea").exists():
            raise ValueError(
                f"task {cfg.task!r} needs data_root, a folder with the MIT-BIH records (e.g. 100.hea); got {cfg.data_root!r}"
            )
        mode = "record" if cfg.task == "ecg-records" else "random"
        kw = dict(beats_per_class=cfg.beats_per_class, seed=cfg.seed, split_mode=mode)
        splits = {s: MITBIH(cfg.data_root, split=s, **kw) for s in ("train", "val", "test")}
        desc = (f"MIT-BIH Arrhythmia (PhysioNet mitdb 1.0.0), beats N/L/R/V, {cfg.beats_per_class} per class, "
                f"{'patient-wise (record) split' if mode == 'record' else 'random 80/10/10 split (the paper)'}")
    out = {name: _to_tensors(ds) for name, ds in splits.items()}
    out["description"] = desc
    out["classes"] = list(splits["train"].classes)
    out["sizes"] = {name: len(ds) for name, ds in splits.items()}
    return out


def _batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator):
    perm = torch.randperm(y.shape[0], generator=generator)
    for i in range(0, y.shape[0], batch_size):
        idx = perm[i : i + batch_size]
        yield x[:, idx], y[idx]


class _Loader:
    """Re-iterable shuffled mini-batches of time-first tensors (a new order every epoch)."""

    def __init__(self, x, y, batch_size, seed):
        self.x, self.y, self.batch_size = x, y, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        return _batches(self.x, self.y, self.batch_size, self.generator)

    def __len__(self):
        return -(-self.y.shape[0] // self.batch_size)


def _accuracy(model, x, y) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _figures(results: dict, cfg: ReproduceConfig, out: Path) -> list:
    from matplotlib.figure import Figure

    paths = []
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax1, ax2, ax3 = fig.subplots(1, 3)
    for name, r in results["methods"].items():
        rows = r["mismatch"]["summary"]
        m = [row["level"] for row in rows]
        mean = np.array([100 * row["mean"] for row in rows])
        std = np.array([100 * row["std"] if np.isfinite(row["std"]) else 0.0 for row in rows])
        line = ax1.plot(m, mean, marker="o", label=name)[0]
        ax1.fill_between(m, mean - std, mean + std, alpha=0.2, color=line.get_color())
        ax1.plot(m, [100 * row["min"] for row in rows], ls=":", color=line.get_color())
        ax2.plot(cfg.zetas[1:] if len(cfg.zetas) > 1 else cfg.zetas,
                 [100 * r["verified"][str(z)] for z in (cfg.zetas[1:] if len(cfg.zetas) > 1 else cfg.zetas)],
                 marker="o", label=name)
        land = r["landscape"]
        ax3.plot(land["alphas"], land["smoothed"], label=name)
    ax1.set(xlabel="mismatch level m", ylabel="test accuracy (%)", title="mismatch (mean ± std, min dotted)")
    ax2.set(xscale="log", xlabel="ζ (relative weight interval)", ylabel="verified accuracy (%)", title="interval verification")
    ax3.set(xlabel="α", ylabel="test CE", title="weight-loss landscape")
    ax1.legend(fontsize=8)
    path = out / "summary.png"
    fig.savefig(path, dpi=120)
    paths.append(path.name)
    return paths


def run_reproduce(cfg: ReproduceConfig, *, progress: bool = True) -> dict:
    """Run the pipeline of the module docstring and write its outputs to ``cfg.out_dir``.

    Returns:
        the results dictionary also written to ``results.json``.
    """
    start = time.perf_counter()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    data = load_task(cfg)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = data["train"], data["val"], data["test"]
    n_classes = len(data["classes"])
    results = {"config": cfg.to_dict(), "data": {"description": data["description"], "sizes": data["sizes"],
                                               "classes": data["classes"]}, "methods": {}}
    models = {}
    for name, kwargs in cfg.methods.items():
        log.info("training %s %s", name, kwargs)
        torch.manual_seed(cfg.seed)
        model = get_model("lsnn_ecg", n_hidden=cfg.n_hidden, n_classes=n_classes)
        kwargs = dict(kwargs)
        method = get_method(kwargs.pop("method", name), **kwargs)
        milestone = max(1, int(round(cfg.epochs * (1 - cfg.lr_drop_fraction))))
        fitted = fit(
            model, method, _Loader(x_tr, y_tr, cfg.batch_size, cfg.seed), [(x_va, y_va)],
            epochs=cfg.epochs, lr=cfg.lr, milestones=(milestone,), checkpoint_dir=out / "checkpoints" / name,
            seed=cfg.seed, progress=progress,
        )
        model.eval()
        t0 = time.perf_counter()
        timings = {}
        r = {"kwargs": kwargs, "val_accuracy": _accuracy(model, x_va, y_va), "test_accuracy": _accuracy(model, x_te, y_te),
             "best_epoch": fitted.best_epoch, "history": fitted.history}
        log.info("%s: clean test accuracy %.2f %%", name, 100 * r["test_accuracy"])
        mm = mismatch_evaluate(model, (x_te, y_te), levels=cfg.levels, n_draws=cfg.n_draws, seed=cfg.seed,
                               label=name, progress=progress)
        timings["mismatch_s"] = time.perf_counter() - t0
        r["mismatch"] = mm.to_dict()
        r["_mm"] = mm
        r["attack"] = {}
        for eps in cfg.attack_eps:
            r["attack"][str(eps)] = {
                kind: attacked_accuracy(model, (x_te, y_te), eps, attack=kind, seed=cfg.seed, progress=False)
                for kind in ("pga", "random")
            }
        timings["attack_s"] = time.perf_counter() - t0 - sum(timings.values())
        r["verified"] = {str(z): verified_accuracy(model, (x_te, y_te), z) for z in cfg.zetas}
        land = loss_landscape(model, (x_te, y_te), n_directions=cfg.landscape_directions,
                              n_alphas=cfg.landscape_points, seed=cfg.seed, label=name, progress=progress)
        timings["verify_and_landscape_s"] = time.perf_counter() - t0 - sum(timings.values())
        r["timings"] = timings
        log.info("%s: evaluation times %s", name, {k: round(v, 1) for k, v in timings.items()})
        alphas, smooth = land.smoothed
        r["landscape"] = {"alphas": alphas.tolist(), "smoothed": smooth.tolist(), "flatness": land.flatness}
        results["methods"][name] = r
        models[name] = model

    # Mann-Whitney U between every robust method and standard training, at every level > 0
    tests = {}
    if "standard" in results["methods"]:
        base = results["methods"]["standard"]["_mm"]
        for name, r in results["methods"].items():
            if name == "standard":
                continue
            tests[name] = {}
            for m in cfg.levels:
                if m > 0:
                    mw = mann_whitney(r["_mm"].accuracies[m], base.accuracies[m])
                    tests[name][str(m)] = {"U": float(mw.statistic), "p": float(mw.pvalue)}
    results["mann_whitney_vs_standard"] = tests
    for r in results["methods"].values():
        r.pop("_mm")
    results["figures"] = _figures(results, cfg, out)
    results["elapsed_s"] = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    (out / "report.md").write_text(render_report(results, cfg))
    return results


def render_report(results: dict, cfg: ReproduceConfig) -> str:
    """The markdown report: data, clean accuracy, Table 1, attack vs random, verified accuracy, flatness."""
    methods = results["methods"]
    lines = [f"# spikerobust reproduce: {cfg.task}", "", f"Data: {results['data']['description']}; "
             f"sizes {results['data']['sizes']}.", f"LSNN with {cfg.n_hidden} neurons, {cfg.epochs} epochs, "
             f"batch {cfg.batch_size}, Adam {cfg.lr:g}.", ""]
    lines += ["## Mismatch (test accuracy %, mean / std / min over draws; SPEC §4, Table 1 layout)", ""]
    header = ["m"] + [f"{n} mean" for n in methods] + [f"{n} min" for n in methods]
    rows = []
    for i, m in enumerate(cfg.levels):
        row = [f"{m:g}"]
        row += [f"{100 * r['mismatch']['summary'][i]['mean']:.2f} ± {100 * np.nan_to_num(r['mismatch']['summary'][i]['std']):.2f}"
                for r in methods.values()]
        row += [f"{100 * r['mismatch']['summary'][i]['min']:.2f}" for r in methods.values()]
        rows.append(row)
    lines += [markdown_table(header, rows), ""]
    if results.get("mann_whitney_vs_standard"):
        lines += ["Mann-Whitney U against standard training (two-sided p-values):", ""]
        hdr = ["method"] + [f"m={m:g}" for m in cfg.levels if m > 0]
        rows = [[n] + [f"{v[str(m)]['p']:.2g}" for m in cfg.levels if m > 0] for n, v in results["mann_whitney_vs_standard"].items()]
        lines += [markdown_table(hdr, rows), ""]
    lines += ["## Weight attack vs random perturbation of equal size (test accuracy %)", ""]
    hdr = ["method"] + [f"ζ={e:g} PGA / random" for e in cfg.attack_eps]
    rows = [[n] + [f"{100 * r['attack'][str(e)]['pga']:.1f} / {100 * r['attack'][str(e)]['random']:.1f}" for e in cfg.attack_eps]
            for n, r in methods.items()]
    lines += [markdown_table(hdr, rows), ""]
    lines += ["## Verified accuracy (interval arithmetic, SPEC §5; %)", ""]
    hdr = ["method", "clean test"] + [f"ζ={z:g}" for z in cfg.zetas]
    rows = [[n, f"{100 * r['test_accuracy']:.2f}"] + [f"{100 * r['verified'][str(z)]:.2f}" for z in cfg.zetas]
            for n, r in methods.items()]
    lines += [markdown_table(hdr, rows), ""]
    lines += ["## Flatness of the weight-loss landscape (Table S1; lower is flatter)", ""]
    lines += [markdown_table(["method", "flatness"], [[n, f"{r['landscape']['flatness']:.4f}"] for n, r in methods.items()]), ""]
    lines += ["Paper (ECG LSNN, Table S1): standard 0.1605, β 0.0879, forward noise 0.0180.", ""]
    lines += [f"![summary]({p})" for p in results.get("figures", [])]
    lines += ["", f"Run time: {results.get('elapsed_s', float('nan')) / 60:.1f} min."]
    return "\n".join(lines) + "\n"
