"""The report of a comparison run: ``report.md`` (tables), PNG figures and ``results.json``.

Every table puts the paper's number (Table 1 / Table S1) next to ours where the paper has one,
with a line that says which of our choices differ from the paper's (:func:`differences_from_paper`);
the flatness of Table S1 is printed as the paper's only when ours is computed on the paper's grid
(50 α × 5 directions). Nothing here computes with the paper's numbers. For ECG the data section
lists, per beat class, how many beats come from how many records (what a random beat split
rewards), and a per-class section gives sensitivity, positive predictive value and the confusion
matrix, clean and as the mean over draws at m = 0.5.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np

from ..analysis.tables import markdown_table
from .config import ExperimentConfig, lr_milestones
from .presets import PAPER_FLATNESS, PAPER_TABLE1

__all__ = ["write_report", "render_report", "make_figures", "differences_from_paper", "composition_table",
           "PAPER_GRID"]

#: the paper's weight-loss landscape grid: (points along α, random directions)
PAPER_GRID = (50, 5)

_TITLES = {"ecg": "ECG LSNN", "speech": "speech LSNN", "fmnist": "F-MNIST CNN"}


def _pct(x: float, digits: int = 2) -> str:
    return f"{100 * x:.{digits}f}" if x is not None and math.isfinite(x) else "–"


def _schedule(cfg: ExperimentConfig) -> str:
    m = lr_milestones(cfg)
    return f"÷10 after epoch {m[0]}" if m else "constant"


def differences_from_paper(cfg: ExperimentConfig, data: dict) -> List[str]:
    """Our settings that differ from the paper's, one short phrase each (empty: none we know of).

    Compares the config with the task's ``paper`` preset (sizes, epochs, schedule, draws) and names
    the choices the paper made differently: the ECG beat composition, the patient-wise split, one
    training seed per method where the paper pooled the mismatch draws of two models, synthetic
    data. Empty for a task the paper did not run (a registered task of one's own).
    """
    from .presets import preset

    out: List[str] = []
    if cfg.task not in PAPER_TABLE1:  # a task of one's own: the paper has nothing to differ from
        return out
    ref = preset(cfg.task, "paper")
    for name, what in (("n_hidden", "neurons"), ("epochs", "epochs"), ("n_draws", "mismatch draws"),
                       ("n_per_class", "beats per class"), ("batch_size", "batch size"), ("lr", "learning rate")):
        if name in ref and getattr(cfg, name) != ref[name]:
            out.append(f"{what} {getattr(cfg, name):g} (paper {ref[name]:g})")
    if cfg.n_train is not None or cfg.n_test is not None:
        out.append(f"subsets of the data (n_train {cfg.n_train}, n_test {cfg.n_test})")
    if "SYNTHETIC" in str(data.get("description", "")):
        out.append("synthetic data, not the paper's")
    if cfg.task == "ecg" and "SYNTHETIC" not in str(data.get("description", "")):
        comp = (data.get("composition") or {}).get("composition", cfg.composition)
        if comp != "paper":
            out.append(f'ECG composition "{comp}" (a random choice of beats over all records; the paper took the '
                       "first beats of each class in record order)")
        else:
            lead_in = (data.get("composition") or {}).get("lead_in")
            out.append('ECG composition "paper" with our one assumption: segments start '
                       f"{lead_in} samples before the annotation (the published code's 0 keeps no R beat)")
        if cfg.split == "record":
            out.append("patient-wise split (the paper split beats at random)")
    if cfg.seeds < 2:
        out.append("one model per method (the paper pooled the mismatch draws of two seeds)")
    elif cfg.seeds != 2:
        out.append(f"{cfg.seeds} models per method pooled (the paper pooled two)")
    return out


def composition_table(comp: dict) -> str:
    """Markdown table: per class, beats, records they come from, beats per split, largest records."""
    rows = []
    for name, r in comp["per_class"].items():
        split = " / ".join(str(r["per_split"].get(s, 0)) for s in ("train", "val", "test"))
        largest = ", ".join(f"{rec} ({n})" for rec, n in r["largest"])
        rows.append([name, r["beats"], r["records"], split, largest])
    return markdown_table(["class", "beats", "records", "train / val / test", "largest records (beats)"], rows)


def _per_class_section(methods: Dict[str, dict]) -> List[str]:
    with_pc = {lab: r["per_class"] for lab, r in methods.items() if "per_class" in r}
    if not with_pc:
        return []
    first = next(iter(with_pc.values()))
    classes, level, draws = first["clean"]["classes"], first["mismatch"]["level"], first["mismatch"]["n_draws"]
    lines = [f"## Per-class results: sensitivity (Se) and positive predictive value (PPV), %, clean and mean over "
             f"{draws} draws at m = {level:g}", ""]
    rows = []
    for lab, pc in with_pc.items():
        c, m = pc["clean"], pc["mismatch"]
        for k, name in enumerate(classes):
            rows.append([lab, name, c["support"][k], _pct(c["sensitivity"][k], 1), _pct(c["ppv"][k], 1),
                         _pct(m["sensitivity"][k], 1), _pct(m["ppv"][k], 1)])
    lines += [markdown_table(["method", "class", "test beats", "Se clean", "PPV clean", f"Se m={level:g}",
                              f"PPV m={level:g}"], rows), ""]
    lines += [f"Confusion matrices (rows: true class, columns: predicted; clean / mean over draws at m = {level:g}):", ""]
    for lab, pc in with_pc.items():
        c, m = pc["clean"]["confusion"], pc["mismatch"]["confusion"]
        rows = [[f"{lab}: {name}"] + [f"{c[i][j]} / {m[i][j]:.1f}" for j in range(len(classes))]
                for i, name in enumerate(classes)]
        lines += [markdown_table(["true \\ predicted"] + list(classes), rows), ""]
    return lines


def _figure(figsize=(5, 3.4)):
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.subplots()


#: result key -> (file, one method's curve, axes settings, needs every method), in drawing order
_FIGURES: Dict[str, Tuple[str, Callable, dict, bool]] = {}


def _figure_of(key: str, file: str, *, every: bool = True, **axes) -> Callable:
    """Decorator: the decorated ``plot(ax, label, result)`` draws one method's curve of figure ``file``
    for result ``key`` (drawn when every method has it, or any with ``every=False``); ``axes`` go to
    ``ax.set`` (``{n_draws}`` in the title becomes the config's)."""
    def add(plot: Callable) -> Callable:
        _FIGURES[key] = (file, plot, axes, every)
        return plot

    return add


@_figure_of("mismatch", "mismatch.png", xlabel="mismatch level m", ylabel="test accuracy (%)",
            title="mismatch: mean ± std (min dotted), {n_draws} draws")
def _plot_mismatch(ax, label: str, r: dict) -> None:
    rows = r["summary"]
    m = [row["level"] for row in rows]
    mean = np.array([100 * row["mean"] for row in rows])
    std = np.array([100 * row["std"] if math.isfinite(row["std"]) else 0.0 for row in rows])
    line = ax.plot(m, mean, marker="o", label=label)[0]
    ax.fill_between(m, mean - std, mean + std, alpha=0.15, color=line.get_color())
    ax.plot(m, [100 * row["min"] for row in rows], ls=":", color=line.get_color())


@_figure_of("attack", "attack.png", xlabel="relative attack size ζ", ylabel="test accuracy (%)",
            title="worst-case weight attack (solid) vs random (dashed)")
def _plot_attack(ax, label: str, r: dict) -> None:
    eps = sorted(float(e) for e in r)
    line = ax.plot(eps, [100 * r[str(e)]["pga"] for e in eps], marker="o", label=label)[0]
    ax.plot(eps, [100 * r[str(e)]["random"] for e in eps], ls="--", color=line.get_color())


@_figure_of("verify", "verified.png", xscale="log", xlabel="ζ (weights in [p − ζ|p|, p + ζ|p|])",
            ylabel="verified accuracy (%)", title="interval verification")
def _plot_verify(ax, label: str, r: dict) -> None:
    zs = sorted(float(z) for z in r if float(z) > 0)
    ax.plot(zs, [100 * r[str(z)] for z in zs], marker="o", label=label)


@_figure_of("landscape", "landscape.png", xlabel="α (θ + α·d, d = 0.2|θ| ⊙ N(0, 1))", ylabel="test cross-entropy",
            title="weight-loss landscape (flatness in brackets)")
def _plot_landscape(ax, label: str, r: dict) -> None:
    ax.plot(r["alphas"], r["smoothed"], label=f"{label} ({r['flatness']:.3f})")


@_figure_of("membrane", "membrane.png", every=False, xlabel="(v − A)/A  (0 = threshold; clipped to ±3)",
            ylabel="density", yscale="log", title="membrane potential relative to threshold")
def _plot_membrane(ax, label: str, r: dict) -> None:
    counts, edges = np.asarray(r["hist_counts"], float), np.asarray(r["hist_edges"])
    density = counts / max(counts.sum(), 1) / np.diff(edges)
    ax.stairs(np.maximum(density, 1e-6), edges, label=f"{label} ({100 * r['near_0.1']:.1f}% within 0.1)")


def make_figures(results: dict, cfg: ExperimentConfig, out: Path) -> List[str]:
    """mismatch.png, attack.png, verified.png, landscape.png and (LSNN) membrane.png.

    A figure is drawn when every method has its result (membrane: when any has, since only the
    LSNN methods do), one curve per method.

    Returns:
        The file names written under ``out``.
    """
    methods: Dict[str, dict] = results["methods"]
    names: List[str] = []
    for key, (name, plot, axes, every) in _FIGURES.items():
        have = {label: r[key] for label, r in methods.items() if key in r}
        if not have or (every and len(have) < len(methods)):
            continue
        fig, ax = _figure()
        for label, r in have.items():
            plot(ax, label, r)
        if key == "membrane":
            ax.axvline(0.0, color="k", lw=0.8, ls="--")
        ax.set(**{**axes, "title": axes["title"].format(n_draws=cfg.n_draws)})
        ax.legend(fontsize=7)
        fig.savefig(out / name, dpi=130)
        names.append(name)
    return names


def render_report(results: dict, cfg: ExperimentConfig) -> str:
    """``report.md``: data, training, Table 1 (+ paper), Mann-Whitney, attack, verification,
    flatness (+ paper), membrane potentials, figures."""
    methods: Dict[str, dict] = results["methods"]
    labels = list(methods)
    data = results["data"]
    lines = [f"# spikerobust reproduce {cfg.task} (preset {cfg.preset})", "",
             f"Data: {data['description']}; sizes {data['sizes']}.", ""]
    comp = data.get("composition")
    if comp:
        per_split = f' (records per split: {comp["split_records"]})' if cfg.split == "record" else ""
        lines += [f'Composition "{comp["composition"]}": beats of each class and the records they come from'
                  f"{per_split}. The fewer records a class comes from, the more a random beat split rewards "
                  "recognising the patient.", "", composition_table(comp), ""]
    diffs = differences_from_paper(cfg, data)
    paper_note = ("Differs from the paper: " + "; ".join(diffs) + ".") if diffs else "Same setup as the paper."
    lines += [f"Model: `{data['model']}` {data['model_kwargs']}; {cfg.epochs} epochs, batch {cfg.batch_size}, "
              f"Adam {cfg.lr:g} ({_schedule(cfg)}); seed {cfg.seed}. "
              f"Run time {results.get('elapsed_s', float('nan')) / 60:.1f} min.", ""]
    lines += ["## Training", ""]
    rows = [[lab, str(r["method"]), _pct(r.get("val_accuracy")), _pct(r["test_accuracy"]), r.get("best_epoch", "–"),
             f"{r.get('train_s', float('nan')) / 60:.1f}"] for lab, r in methods.items()]
    lines += [markdown_table(["method", "settings", "val %", "test %", "best epoch", "train min"], rows), ""]
    if any("seeds" in r for r in methods.values()):
        lines += ["The table shows the first model of each method; clean test accuracy % of every model (seed: "
                  "accuracy); the mismatch tables pool their draws, every other section is the first model's:", ""]
        rows = [[lab, ", ".join(f"{s['seed']}: {_pct(s['test_accuracy'])}" for s in r["seeds"])]
                for lab, r in methods.items() if "seeds" in r]
        lines += [markdown_table(["method", "test % per seed"], rows), ""]

    paper = PAPER_TABLE1.get(cfg.task, {})
    if all("mismatch" in r for r in methods.values()):
        pooled = (f" of each of {cfg.seeds} models per method (seeds {cfg.seed}-{cfg.seed + cfg.seeds - 1}), pooled"
                  if cfg.seeds > 1 else "")
        lines += [f"## Mismatch (Table 1 layout): test accuracy %, mean ± std over {cfg.n_draws} draws{pooled}", ""]
        summ = {lab: {row["level"]: row for row in r["mismatch"]["summary"]} for lab, r in methods.items()}
        rows = [[f"{m:g}"] + [f"{_pct(summ[lab][m]['mean'])} ± {_pct(summ[lab][m]['std'] if math.isfinite(summ[lab][m]['std']) else 0.0)}"
                              for lab in labels] for m in cfg.levels]
        lines += [markdown_table(["m"] + labels, rows), "", "Minimum over draws:", ""]
        rows = [[f"{m:g}"] + [_pct(summ[lab][m]["min"]) for lab in labels] for m in cfg.levels]
        lines += [markdown_table(["m"] + labels, rows), ""]
        if paper:
            known = [lab for lab in labels if any(lab in paper[m] for m in paper)]
            if known:
                lines += [f"Paper, {_TITLES[cfg.task]} (Table 1, mean over 100 draws; the paper's models, data and sizes):", ""]
                rows = [[f"{m:g}"] + [f"{paper[m][lab]:.2f}" if lab in paper[m] else "–" for lab in known] for m in sorted(paper)]
                lines += [markdown_table(["m"] + known, rows), "", paper_note, ""]
    if results.get("mann_whitney_vs_standard"):
        levels = [m for m in cfg.levels if m > 0]
        lines += ["Mann-Whitney U test against standard training (two-sided p; ↑ mean above standard's, ↓ below):", ""]

        def cell(lab: str, m: float) -> str:
            mean = {row["level"]: row["mean"] for row in methods[lab]["mismatch"]["summary"]}[m]
            ref = {row["level"]: row["mean"] for row in methods["standard"]["mismatch"]["summary"]}[m]
            p = results["mann_whitney_vs_standard"][lab][str(m)]["p"]
            return f"{p:.2g} {'↑' if mean > ref else '↓' if mean < ref else '='}"

        rows = [[lab] + [cell(lab, m) for m in levels] for lab in results["mann_whitney_vs_standard"]]
        lines += [markdown_table(["method"] + [f"m={m:g}" for m in levels], rows), ""]
    if all("attack" in r for r in methods.values()):
        lines += [f"## Worst-case weight attack (sign-PGA, 10 steps, objective {cfg.attack_objective}) / random "
                  "perturbation of equal size: test accuracy %", ""]
        rows = [[f"{e:g}"] + [f"{_pct(methods[lab]['attack'][str(e)]['pga'], 1)} / {_pct(methods[lab]['attack'][str(e)]['random'], 1)}"
                              for lab in labels] for e in cfg.attack_eps]
        lines += [markdown_table(["ζ"] + labels, rows), ""]
    if all("verify" in r for r in methods.values()):
        lines += ["## Verified accuracy (interval bounds): % of test samples proven correct for every "
                  "weight in [p − ζ|p|, p + ζ|p|]", ""]
        rows = [[lab] + [_pct(methods[lab]["verify"][str(z)]) for z in cfg.zetas] for lab in labels]
        lines += [markdown_table(["method"] + [f"ζ={z:g}" for z in cfg.zetas], rows), ""]
    if all("landscape" in r for r in methods.values()):
        flat = PAPER_FLATNESS.get(cfg.task, {})
        grid = (cfg.landscape_points, cfg.landscape_directions)
        lines += [f"## Flatness of the weight-loss landscape (Table S1; lower is flatter; ours on {grid[0]} α × "
                  f"{grid[1]} directions)", ""]
        rows = [[lab, f"{methods[lab]['landscape']['flatness']:.4f}", f"{flat[lab]:.4f}" if lab in flat else "–"]
                for lab in labels]
        if grid == PAPER_GRID:
            lines += [markdown_table(["method", "ours", "paper"], rows), "", paper_note, ""]
        else:
            lines += [markdown_table(["method", "ours", f"paper, a different grid ({PAPER_GRID[0]} α × {PAPER_GRID[1]} "
                                      "directions): not comparable"], rows), ""]
    mem = {lab: r["membrane"] for lab, r in methods.items() if "membrane" in r}
    if mem:
        lines += ["## Membrane potentials relative to the threshold, u = (v − A)/A (Fig. S10)", "",
                  f"Over the first {min(cfg.membrane_samples, data['sizes']['test'])} test samples, every time step and neuron. Robust networks "
                  "should keep less mass near u = 0, where a small weight change flips a spike.", ""]
        rows = [[lab, _pct(v["near_0.05"]), _pct(v["near_0.1"]), _pct(v["near_0.2"]), f"{v['scaled_std']:.3f}",
                 _pct(v["rate"])] for lab, v in mem.items()]
        lines += [markdown_table(["method", "\\|u\\| < 0.05 (%)", "\\|u\\| < 0.1 (%)", "\\|u\\| < 0.2 (%)", "std(u)", "spikes/step %"], rows), ""]
    if all("cost" in r for r in methods.values()):
        lines += ["## Hardware cost (NeuroBench definitions, per test sample; see spikerobust.analysis.cost)", ""]
        rows = [[lab, f"{c['effective_acs']:,.0f}", f"{c['effective_macs']:,.0f}", f"{c['dense']:,.0f}",
                 f"{c['activation_sparsity']:.3f}", f"{c['parameter_count']:,}", f"{c['footprint_bytes']:,}"]
                for lab, c in ((lab, methods[lab]["cost"]) for lab in labels)]
        lines += [markdown_table(["method", "ACs", "MACs", "dense ops", "activation sparsity", "parameters", "bytes"], rows), ""]
    lines += _per_class_section(methods)
    lines += ["## Figures", ""] + [f"![{Path(p).stem}]({p})" for p in results.get("figures", [])]
    return "\n".join(lines) + "\n"


def write_report(results: dict, cfg: ExperimentConfig, out: Path) -> None:
    """Figures, ``results.json`` and ``report.md`` into ``out``."""
    out = Path(out)
    results["figures"] = make_figures(results, cfg, out)
    from ..robust.checkpoint import atomic_write

    atomic_write(out / "results.json", json.dumps(results, indent=1, default=float))
    atomic_write(out / "report.md", render_report(results, cfg))
