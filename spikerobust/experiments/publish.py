"""Publish a finished run folder, and check that published numbers agree with each other.

* :func:`record_invocation` / :func:`finish_invocation` keep ``provenance.json`` in a run folder
  (written by ``reproduce`` and ``report``): one entry per invocation with the exact command line,
  the commit of the code that ran (``git rev-parse HEAD`` of the package's checkout; ``"unknown"``
  outside one), whether the package's tracked files differed from it, the machine, the start time
  and (once it finished) the elapsed seconds.
* :func:`publish_run` (``spikerobust publish RUN DEST``) copies ``report.md``, ``results.json``,
  ``config.json``, ``provenance.json`` and the run's PNG figures into ``DEST`` (never model files
  or checkpoints) and heads the published ``report.md`` with the command, commit, machine and the
  time each stage took.
* :func:`check_published` and :func:`check_readme` return the disagreements between a published
  folder's ``results.json`` and its ``report.md`` (Table 1 and the training table, as printed), and
  between the README's "Results at the paper's size" section and the folders it links to.

README convention checked by :func:`check_readme`: in that section every table is tied to the
last ``docs/results/<name>`` link written before it; its first column holds method labels as in
``results.json`` (``standard``, ``fn+beta`` ...), and every column with numbers is either a
clean column (header contains ``clean``) or a mismatch column (header contains ``m = 0.5`` or
``m=0.5``); a header that contains ``paper`` holds the paper's Table 1 value, any other one ours
(mean, optionally ``± std``), compared with as many decimals as the cell prints.

Examples:
    >>> from spikerobust.experiments.publish import publish_run, check_published   # doctest: +SKIP
    >>> dest = publish_run("runs/table1", "docs/results/ecg-paper")                # doctest: +SKIP
    >>> check_published(dest)                                                       # doctest: +SKIP
    []
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

__all__ = ["PROVENANCE", "PUBLISHED_FILES", "machine_info", "code_commit", "record_invocation",
           "finish_invocation", "publish_run", "published_header", "check_published", "check_readme",
           "README_SECTION"]

#: the run folder's record of its invocations
PROVENANCE = "provenance.json"
#: the files copied besides the PNG figures (provenance.json only when the run recorded one)
PUBLISHED_FILES = ("report.md", "results.json", "config.json", PROVENANCE)
#: the README section whose numbers :func:`check_readme` checks
README_SECTION = "Results at the paper's size"
#: the line that opens the header written by :func:`publish_run`
HEADER_MARK = "<!-- published by spikerobust publish -->"

_PACKAGE = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- recording


def machine_info() -> dict:
    """This machine: CPU model (``/proc/cpuinfo``), logical cores, torch, Python and OS versions."""
    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable, "torch": torch.__version__,
            "python": platform.python_version(), "os": f"{platform.system()} {platform.release()}"}


def _git(*args: str) -> Optional[str]:
    try:
        done = subprocess.run(["git", *args], cwd=_PACKAGE, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def code_commit() -> Tuple[str, Optional[bool]]:
    """``(commit, dirty)`` of the checkout the package runs from: ``git rev-parse HEAD`` and whether
    tracked files of the package differ from it; ``("unknown", None)`` outside a git checkout."""
    commit = _git("rev-parse", "HEAD")
    if not commit:
        return "unknown", None
    status = _git("status", "--porcelain", "--untracked-files=no", "--", str(_PACKAGE))
    return commit, (bool(status) if status is not None else None)


def _read_provenance(run_dir: Path) -> List[dict]:
    path = run_dir / PROVENANCE
    if not path.is_file():
        return []
    try:
        entries = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from None
    return list(entries) if isinstance(entries, list) else []


def _write_provenance(run_dir: Path, entries: List[dict]) -> None:
    from ..robust.checkpoint import atomic_write

    atomic_write(run_dir / PROVENANCE, json.dumps(entries, indent=1) + "\n")


def record_invocation(run_dir: Union[str, Path], command: Optional[str], part: Optional[Sequence[str]] = None) -> int:
    """Append this invocation to ``run_dir/provenance.json``; the caller holds the folder's lock.

    Args:
        command: the command line as typed (``spikerobust reproduce ...``); ``None`` when called
            from Python (the process's ``sys.argv`` is kept instead).
        part: the labels of a spread sweep's job (``--only``), if it is one.

    Returns:
        the entry's index, for :func:`finish_invocation`.
    """
    run_dir = Path(run_dir)
    commit, dirty = code_commit()
    entry = {"command": command, "argv": None if command else list(sys.argv), "commit": commit, "dirty": dirty,
             "machine": machine_info(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
             "elapsed_s": None}
    if part:
        entry["only"] = list(part)
    entries = _read_provenance(run_dir) + [entry]
    _write_provenance(run_dir, entries)
    return len(entries) - 1


def finish_invocation(run_dir: Union[str, Path], index: int, elapsed_s: float) -> None:
    """Record the elapsed seconds of entry ``index`` of ``run_dir/provenance.json``."""
    run_dir = Path(run_dir)
    entries = _read_provenance(run_dir)
    if 0 <= index < len(entries):
        entries[index]["elapsed_s"] = float(elapsed_s)
        _write_provenance(run_dir, entries)


# --------------------------------------------------------------------------- publishing


def _duration(s: Optional[float]) -> str:
    if s is None or not isinstance(s, (int, float)) or s != s:
        return "–"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def _models(run_dir: Path, results: dict) -> List[Tuple[str, dict]]:
    """``(name, results)`` of every model: each method's first, then the extra seeds' from their folders."""
    out = [(label, r) for label, r in results["methods"].items()]
    for label, r in results["methods"].items():
        for s in r.get("seeds", [])[1:]:
            path = run_dir / "seeds" / f"seed{s['seed']}" / "methods" / label.replace("/", "_") / "results.json"
            if path.is_file():
                out.append((f"{label} (seed {s['seed']})", json.loads(path.read_text())))
    return out


def _stage_table(run_dir: Path, results: dict) -> List[str]:
    from ..analysis.tables import markdown_table

    models = _models(run_dir, results)
    parts = list(dict.fromkeys(p for _, r in models for p in r.get("timings", {})))  # in the order they ran
    rows, totals = [], [0.0] * (len(parts) + 2)
    for name, r in models:
        values = [r.get("train_s")] + [r.get("timings", {}).get(p) for p in parts]
        known = [v for v in values if isinstance(v, (int, float))]
        values.append(sum(known))
        for k, v in enumerate(values):
            totals[k] += v if isinstance(v, (int, float)) else 0.0
        rows.append([name] + [_duration(v) for v in values])
    rows.append(["**all models**"] + [_duration(v) for v in totals])
    return [markdown_table(["model", "training"] + [f"eval: {p}" for p in parts] + ["model total"], rows)]


def published_header(run_dir: Union[str, Path], *, command: Optional[str] = None,
                     commit: Optional[str] = None) -> str:
    """The markdown block that heads a published ``report.md`` (see :func:`publish_run`)."""
    run_dir = Path(run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    entries = _read_provenance(run_dir)
    if command is not None:
        entries = [{"command": command, "commit": commit or "unknown", "dirty": None, "machine": None,
                    "started": None, "elapsed_s": None, "given": True}] + entries
    elif commit is not None:
        raise ValueError("--commit names the commit of --command's invocation: give --command too")
    if not entries:
        raise ValueError(f"{str(run_dir)!r} records no command ({PROVENANCE} is missing: the run predates the "
                         "recording): pass the command that made it with --command and its commit with --commit")
    machines = list({json.dumps(e["machine"], sort_keys=True): e["machine"] for e in entries if e.get("machine")}.values())
    where = "the machine that ran it" if len(machines) == 1 else "the machines that ran it, one line each"
    if not machines:
        machines, where = [machine_info()], "the machine that published it; the run recorded none"
    lines = [HEADER_MARK, "", "## How this run was made", ""]
    for k, e in enumerate(entries):
        text = e.get("command") or f"{shlex.join(e.get('argv') or [])} (run_reproduce called from Python)"
        what = "Command" if k == 0 else "Continued with"
        if e.get("only"):
            what += f" (job for {', '.join(e['only'])})"
        state = {True: ", with uncommitted changes to the package", False: "", None: ""}[e.get("dirty")]
        when = f", started {e['started']}" if e.get("started") else ""
        took = f", took {_duration(e['elapsed_s'])}" if e.get("elapsed_s") is not None else ""
        given = " (given to `spikerobust publish`, not recorded by the run)" if e.get("given") else ""
        lines.append(f"- {what}: `{text}` on commit `{e.get('commit', 'unknown')}`{state}{when}{took}{given}")
    if "--resume" in (entries[0].get("command") or ""):
        lines.append("- The invocation that started the run was not recorded (it predates the recording).")
    for machine in machines:
        usable = machine.get("usable_cores")
        cores = f"{machine['cores']} cores" + ("" if usable in (None, machine["cores"]) else f" ({usable} usable)")
        lines.append(f"- Machine ({where}): {machine['cpu']}, {cores}, torch {machine['torch']}, "
                     f"Python {machine.get('python', '?')}, {machine.get('os', '?')}")
    lines += [f"- Total elapsed (the invocation that wrote the report): {_duration(results.get('elapsed_s'))}; "
              f"{results['config'].get('jobs', 1)} model(s) trained at a time, so the sums below can exceed it."
              + _all_invocations(entries),
              "", "Time each stage took, per model (training: `train_s`; evaluation: `timings`):", ""]
    lines += _stage_table(run_dir, results)
    lines += ["", "---", ""]
    return "\n".join(lines) + "\n"


def _all_invocations(entries: List[dict]) -> str:
    took = [e["elapsed_s"] for e in entries if isinstance(e.get("elapsed_s"), (int, float))]
    if len(entries) < 2:
        return ""
    unknown = len(entries) - len(took)
    return (f" All {len(entries)} invocations: {_duration(sum(took))}"
            + (f" plus {unknown} whose time was not recorded (interrupted, a job of a spread sweep, or given)"
               if unknown else "") + ".")


def _check_finished(run_dir: Path) -> dict:
    if not run_dir.is_dir():
        raise ValueError(f"run folder {str(run_dir)!r} does not exist")
    missing = [n for n in ("results.json", "report.md", "config.json") if not (run_dir / n).is_file()]
    if missing:
        raise ValueError(f"{str(run_dir)!r} is not a finished run: {', '.join(missing)} missing (a run writes "
                         "results.json and report.md when every method is trained and evaluated; a spread sweep "
                         "needs `spikerobust report RUN` first)")
    results = json.loads((run_dir / "results.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    absent = [lab for lab in config.get("methods", {}) if lab not in results.get("methods", {})]
    if absent:
        raise ValueError(f"{str(run_dir)!r}: results.json lacks method(s) {', '.join(absent)} of config.json: "
                         "the report is older than the run's settings; finish the run (--resume) first")
    return results


def publish_run(run_dir: Union[str, Path], dest: Union[str, Path], *, command: Optional[str] = None,
                commit: Optional[str] = None, overwrite: bool = False) -> Path:
    """Copy a finished run's report, results, config, provenance and figures into ``dest``.

    Model files and checkpoints are never copied. The published ``report.md`` is the run's, headed
    by the command(s) that made it, the commit, the machine and a table of the time each stage
    took (:func:`published_header`).

    Args:
        command: the command that started the run, for a run that did not record it (its commit
            in ``commit``); it is listed before any recorded invocation.
        overwrite: replace a run already published in ``dest`` (default: refuse a non-empty ``dest``).

    Returns:
        ``dest``.

    Raises:
        ValueError: an unfinished run (naming the missing files), no recorded or given command,
            ``dest`` inside the run folder (or the other way round), or a non-empty ``dest``
            without ``overwrite``.
    """
    from ..robust.checkpoint import atomic_write

    run_dir, dest = Path(run_dir), Path(dest)
    results = _check_finished(run_dir)
    a, b = run_dir.resolve(), dest.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise ValueError(f"destination {str(dest)!r} and run folder {str(run_dir)!r} contain one another: "
                         "publish into a separate folder (e.g. docs/results/NAME)")
    if dest.exists() and not dest.is_dir():
        raise ValueError(f"destination {str(dest)!r} is a file, not a folder")
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        raise ValueError(f"destination {str(dest)!r} is not empty: pass --overwrite to replace what is published there")
    header = published_header(run_dir, command=command, commit=commit)
    figures = sorted(p.name for p in run_dir.glob("*.png") if p.is_file())
    missing = [f for f in results.get("figures", []) if f not in figures]
    if missing:
        raise ValueError(f"{str(run_dir)!r}: figure(s) {', '.join(missing)} named in results.json are missing")
    dest.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for old in list(dest.glob("*.png")) + [dest / n for n in PUBLISHED_FILES]:
            if old.is_file():
                old.unlink()
    for name in PUBLISHED_FILES[1:]:
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, dest / name)
    for name in figures:
        shutil.copyfile(run_dir / name, dest / name)
    atomic_write(dest / "report.md", header + (run_dir / "report.md").read_text())
    return dest


# --------------------------------------------------------------------------- checking


def _cells(line: str) -> List[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _tables(lines: Sequence[str]) -> List[Tuple[int, List[str], List[List[str]]]]:
    """Markdown tables in ``lines``: ``(line index of the header, header cells, body rows)``."""
    out, i = [], 0
    while i < len(lines) - 1:
        if lines[i].lstrip().startswith("|") and re.fullmatch(r"\s*\|(\s*:?-+:?\s*\|)+\s*", lines[i + 1]):
            j, rows = i + 2, []
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                rows.append(_cells(lines[j]))
                j += 1
            out.append((i, _cells(lines[i]), rows))
            i = j
        else:
            i += 1
    return out


def _table_after(lines: Sequence[str], heading: str):
    for k, line in enumerate(lines):
        if line.startswith(heading):
            found = _tables(lines[k + 1:])
            return found[0] if found else None
    return None


def _printed(x: float, decimals: int = 2) -> str:
    return f"{100 * x:.{decimals}f}"


def check_published(folder: Union[str, Path]) -> List[str]:
    """Disagreements in a published folder (empty list: none).

    Checks that ``results.json``, ``report.md`` and ``config.json`` are there, that no model file
    or checkpoint is, that each figure ``results.json`` names is there, that ``config.json`` is
    ``results.json``'s config, and that the report prints ``results.json``'s numbers: the training
    table's clean test accuracy and every cell (mean ± std) of the Table 1 mismatch table, each
    method's clean accuracy and m = 0.5 mean among them, rounded as the report prints them.
    """
    folder = Path(folder)
    problems = [f"{n} missing" for n in ("results.json", "report.md", "config.json") if not (folder / n).is_file()]
    if problems:
        return problems
    problems += [f"{p.relative_to(folder)}: a model file or checkpoint is published" for p in folder.rglob("*")
                 if p.suffix in (".pt", ".pth", ".ckpt") or p.name == "checkpoints"]
    results = json.loads((folder / "results.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    config.pop("world_size", None)
    if config != results.get("config"):
        diff = sorted(k for k in set(config) | set(results.get("config", {}))
                      if config.get(k) != results.get("config", {}).get(k))
        problems.append(f"config.json differs from results.json's config ({', '.join(diff)})")
    problems += [f"figure {f} missing" for f in results.get("figures", []) if not (folder / f).is_file()]
    lines = (folder / "report.md").read_text().splitlines()
    if HEADER_MARK not in lines:
        problems.append("report.md has no publishing header (command, commit, machine, times)")
    methods = results["methods"]
    training = _table_after(lines, "## Training")
    if training is None:
        problems.append("report.md has no training table")
    else:
        _, head, rows = training
        col = head.index("test %") if "test %" in head else None
        by_label = {r[0]: r for r in rows}
        for lab, r in methods.items():
            if lab not in by_label or col is None:
                problems.append(f"training table: no test % of {lab}")
            elif by_label[lab][col] != _printed(r["test_accuracy"]):
                problems.append(f"training table: {lab} test % is {by_label[lab][col]}, results.json "
                                f"{_printed(r['test_accuracy'])}")
    if all("mismatch" in r for r in methods.values()):
        table = _table_after(lines, "## Mismatch (Table 1 layout)")
        if table is None:
            problems.append("report.md has no Table 1 (mismatch) table")
            return problems
        _, head, rows = table
        by_level = {float(r[0]): r for r in rows}
        for lab, r in methods.items():
            if lab not in head:
                problems.append(f"Table 1: no column for {lab}")
                continue
            j = head.index(lab)
            summary = {float(s["level"]): s for s in r["mismatch"]["summary"]}
            # m = 0 is the clean accuracy: the model's, or with pooled seeds the mean over the models
            clean = [s["test_accuracy"] for s in r.get("seeds") or []] or [r["test_accuracy"]]
            if 0.0 in summary and _printed(summary[0.0]["mean"]) != _printed(sum(clean) / len(clean)):
                problems.append(f"results.json: {lab}'s m = 0 mean differs from its clean test accuracy"
                                + (f" (mean over its {len(clean)} models)" if len(clean) > 1 else ""))
            for m, s in summary.items():
                std = s["std"] if s["std"] == s["std"] and abs(s["std"]) != float("inf") else 0.0
                want = f"{_printed(s['mean'])} ± {_printed(std)}"
                got = by_level[m][j] if m in by_level else None
                if got != want:
                    problems.append(f"Table 1: {lab} at m = {m:g} is {got!r} in report.md, {want!r} in results.json")
    return problems


def _section(text: str, title: str) -> Optional[List[str]]:
    lines = text.splitlines()
    for k, line in enumerate(lines):
        m = re.match(r"(#+)\s+(.*)", line)
        if m and title.lower() in m.group(2).lower():
            level, end = len(m.group(1)), len(lines)
            for j in range(k + 1, len(lines)):
                n = re.match(r"(#+)\s", lines[j])
                if n and len(n.group(1)) <= level:
                    end = j
                    break
            return lines[k + 1:end]
    return None


def _number(cell: str) -> Optional[Tuple[str, Optional[str]]]:
    """``(mean, std)`` as printed in a cell (``"94.86"``, ``"94.9 ± 1.2"``, ``"**94.86 %**"``); None: no number."""
    nums = re.findall(r"-?\d+(?:\.\d+)?", cell.replace(",", ""))
    if not nums:
        return None
    return nums[0], (nums[1] if "±" in cell and len(nums) > 1 else None)


def _decimals(s: str) -> int:
    return len(s.split(".")[1]) if "." in s else 0


def check_readme(readme: Union[str, Path], root: Union[str, Path]) -> List[str]:
    """Disagreements between the README's "Results at the paper's size" section and the published runs.

    Args:
        readme: the README file.
        root: the folder the README's links are relative to (the repository root).

    Returns:
        one line per number that differs from its source, per table tied to no published folder,
        and per column whose numbers the checker cannot place (see the module docstring); empty
        when the section is absent.
    """
    from .presets import PAPER_TABLE1

    section = _section(Path(readme).read_text(), README_SECTION)
    if section is None:
        return []
    problems: List[str] = []
    for start, head, rows in _tables(section):
        links = re.findall(r"docs/results/([\w.+-]+)", "\n".join(section[:start]))
        if not links:
            problems.append(f"table {' | '.join(head)!r}: no docs/results/NAME link before it")
            continue
        folder = Path(root) / "docs" / "results" / links[-1]
        if not (folder / "results.json").is_file():
            problems.append(f"table {' | '.join(head)!r}: {folder} holds no results.json")
            continue
        results = json.loads((folder / "results.json").read_text())
        task, methods = results["config"]["task"], results["methods"]
        for row in rows:
            lab = row[0].strip("*` ")
            for h, cell in zip(head[1:], row[1:]):
                value = _number(cell)
                if value is None:
                    continue
                level = re.search(r"m\s*=\s*([0-9.]+)", h)
                m = float(level.group(1)) if level else 0.0 if "clean" in h.lower() else None
                where = f"{links[-1]}, {lab}, column {h!r}"
                if m is None:
                    problems.append(f"{where}: a column the checker cannot place (clean or m = LEVEL)")
                    continue
                if "paper" in h.lower():
                    ref = PAPER_TABLE1.get(task, {}).get(m, {}).get(lab)
                    want = None if ref is None else f"{ref:.{_decimals(value[0])}f}"
                    std_want = None
                elif lab not in methods:
                    problems.append(f"{where}: {lab!r} is not a method of results.json ({', '.join(methods)})")
                    continue
                elif "clean" in h.lower() and not level:
                    want, std_want = _printed(methods[lab]["test_accuracy"], _decimals(value[0])), None
                else:
                    summ = {float(s["level"]): s for s in methods[lab].get("mismatch", {}).get("summary", [])}
                    if m not in summ:
                        problems.append(f"{where}: results.json has no mismatch level {m:g}")
                        continue
                    want = _printed(summ[m]["mean"], _decimals(value[0]))
                    std_want = None if value[1] is None else _printed(summ[m]["std"], _decimals(value[1]))
                if want != value[0] or (value[1] is not None and std_want is not None and std_want != value[1]):
                    problems.append(f"{where}: README says {cell!r}, the source {want}"
                                    f"{'' if std_want is None else f' ± {std_want}'}")
    return problems
