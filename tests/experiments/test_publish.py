"""``spikerobust publish`` and the consistency checks, on a tiny run made by ``spikerobust reproduce``.

Asserts what the run folder records (the command as typed, ``git rev-parse HEAD`` asked here
independently, the CPU model read here from ``/proc/cpuinfo``, torch's version), what is
published (the run's files byte for byte, the report headed by that record and each model's
stage times, no model file), the refusals a user relies on, and that the checkers find a number
edited in a report or quoted wrongly in a README.
"""

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from spikerobust.cli import main
from spikerobust.experiments.publish import check_published, check_readme, publish_run

REPO = Path(__file__).resolve().parents[2]
METHODS = {"standard": {"method": "standard"}, "beta": {"method": "adversarial", "beta": 0.25, "n_steps": 2}}
TINY = ["--set", "n_per_class=30", "--set", "n_hidden=16", "--epochs", "2", "--set", "lr=5e-3", "--set",
        "batch_size=40", "--levels", "0,0.5", "--n-draws", "4", "--attack-eps", "0,0.3", "--zetas", "0,1e-4,1e-2",
        "--set", "landscape_points=9", "--set", "landscape_directions=2", "--set", "membrane_samples=10",
        "--jobs", "1", "--set", f"methods={json.dumps(METHODS)}", "--no-progress"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("publish") / "run"
    argv = ["reproduce", "ecg", *TINY, "--out-dir", str(out)]
    assert main(argv) == 0
    return out, argv


@pytest.fixture(scope="module")
def published(run, tmp_path_factory):
    out, _ = run
    dest = tmp_path_factory.mktemp("repo") / "docs" / "results" / "tiny"
    assert main(["publish", str(out), str(dest)]) == 0
    return dest


def _head_commit() -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    pytest.skip("no model name in /proc/cpuinfo")


def test_reproduce_records_command_commit_and_machine(run):
    out, argv = run
    (entry,) = json.loads((out / "provenance.json").read_text())
    assert entry["command"] == shlex.join(["spikerobust", *argv])
    assert entry["commit"] == _head_commit()
    assert entry["machine"]["cpu"] == _cpu_model()
    assert entry["machine"]["cores"] == os.cpu_count() and entry["machine"]["torch"] == torch.__version__
    assert entry["elapsed_s"] > 0


def test_publish_copies_the_run_without_models(run, published):
    out, argv = run
    names = {p.name for p in published.iterdir()}
    figures = {p.name for p in out.glob("*.png")}
    assert figures and names == {"report.md", "results.json", "config.json", "provenance.json"} | figures
    for name in ("results.json", "config.json", "provenance.json", *figures):
        assert (published / name).read_bytes() == (out / name).read_bytes()
    assert not [p for p in published.rglob("*") if p.suffix == ".pt"]
    report = (published / "report.md").read_text()
    assert report.endswith((out / "report.md").read_text())


def test_published_report_is_headed_by_how_it_was_made(run, published):
    out, argv = run
    header = (published / "report.md").read_text().split("\n---\n")[0]
    assert f"`{shlex.join(['spikerobust', *argv])}`" in header
    assert f"commit `{_head_commit()}`" in header
    assert _cpu_model() in header and f"{os.cpu_count()} cores" in header and f"torch {torch.__version__}" in header
    results = json.loads((out / "results.json").read_text())
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in header.splitlines() if line.startswith("| ")}
    for label, r in results["methods"].items():  # every stage of the tiny run takes under 2 minutes
        assert rows[label][0] == f"{r['train_s']:.1f} s"
        assert rows[label][1] == f"{r['timings']['mismatch']:.1f} s"
    assert f"Total elapsed (the invocation that wrote the report): {results['elapsed_s']:.1f} s" in header


def test_checker_accepts_the_published_run_and_finds_an_edited_number(published, tmp_path):
    assert check_published(published) == []
    results = json.loads((published / "results.json").read_text())
    beta = {row["level"]: row for row in results["methods"]["beta"]["mismatch"]["summary"]}[0.5]
    printed = f"{100 * beta['mean']:.2f} ± {100 * beta['std']:.2f}"
    edited = tmp_path / "edited"
    shutil.copytree(published, edited)
    report = (edited / "report.md").read_text()
    lines = report.splitlines()
    k = next(k for k, line in enumerate(lines) if line.startswith("| m | standard | beta |"))
    row = next(k + j for j, line in enumerate(lines[k:]) if line.startswith("| 0.5 |"))
    cells = lines[row].split("|")
    assert cells[3].strip() == printed  # the beta column
    wrong = f"{100 * beta['mean'] + 1:.2f} ± {100 * beta['std']:.2f}"
    lines[row] = "|".join(cells[:3] + [f" {wrong} "] + cells[4:])
    (edited / "report.md").write_text("\n".join(lines) + "\n")
    problems = check_published(edited)
    assert len(problems) == 1 and "beta at m = 0.5" in problems[0] and wrong in problems[0]

    (edited / "report.md").write_text(report)
    (edited / "model.pt").write_bytes(b"")
    assert check_published(edited) == ["model.pt: a model file or checkpoint is published"]


def test_readme_quotes_are_checked(published):
    root = published.parents[2]
    results = json.loads((published / "results.json").read_text())
    r = results["methods"]["standard"]
    mean = {row["level"]: row["mean"] for row in r["mismatch"]["summary"]}[0.5]
    readme = root / "README.md"

    def write(cells):
        readme.write_text("# x\n\n## Results at the paper's size\n\nSee [the run](docs/results/tiny/).\n\n"
                          "| method | clean % | m = 0.5 % | m = 0.5, paper |\n|---|---|---|---|\n"
                          f"| standard | {cells[0]} | {cells[1]} | {cells[2]} |\n\n## Next\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")

    write([f"{100 * r['test_accuracy']:.2f}", f"{100 * mean:.1f}", "76.55"])
    assert check_readme(readme, root) == []
    write([f"{100 * r['test_accuracy'] + 0.5:.2f}", f"{100 * mean:.1f}", "76.50"])
    problems = check_readme(readme, root)
    assert len(problems) == 2 and "'clean %'" in problems[0] and "76.55" in problems[1]
    readme.write_text("# x\n\n## Other\n\n| standard | 1 |\n|---|---|\n")
    assert check_readme(readme, root) == []


def test_refusals(run, tmp_path, capsys):
    out, _ = run
    unfinished = tmp_path / "unfinished"
    shutil.copytree(out, unfinished)
    (unfinished / "results.json").unlink()
    with pytest.raises(ValueError, match="not a finished run: results.json missing"):
        publish_run(unfinished, tmp_path / "a")
    with pytest.raises(SystemExit) as exit_:
        main(["publish", str(unfinished), str(tmp_path / "a")], raise_errors=False)
    assert exit_.value.code == 2 and "spikerobust publish: error:" in capsys.readouterr().err
    with pytest.raises(ValueError, match="contain one another"):
        publish_run(out, out / "published")
    dest = tmp_path / "dest"
    publish_run(out, dest)
    with pytest.raises(ValueError, match="not empty: pass --overwrite"):
        publish_run(out, dest)
    (dest / "stale.png").write_bytes(b"")
    publish_run(out, dest, overwrite=True)
    assert not (dest / "stale.png").exists() and check_published(dest) == []


def test_run_that_predates_the_recording_needs_its_command(run, tmp_path):
    out, _ = run
    old = tmp_path / "old"
    shutil.copytree(out, old)
    (old / "provenance.json").unlink()
    with pytest.raises(ValueError, match="records no command.*--command"):
        publish_run(old, tmp_path / "a")
    publish_run(old, tmp_path / "b", command="spikerobust reproduce ecg --preset paper", commit="db1ec14")
    header = (tmp_path / "b" / "report.md").read_text()
    assert "Command: `spikerobust reproduce ecg --preset paper` on commit `db1ec14`" in header
    assert "the machine that published it" in header and check_published(tmp_path / "b") == []


def test_resume_adds_an_invocation(run, tmp_path):
    out, _ = run
    again = tmp_path / "again"
    shutil.copytree(out, again)
    argv = ["reproduce", "ecg", *TINY, "--out-dir", str(again), "--resume"]
    assert main(argv) == 0
    entries = json.loads((again / "provenance.json").read_text())
    assert [e["command"] for e in entries][1] == shlex.join(["spikerobust", *argv])
    publish_run(again, tmp_path / "pub")
    assert f"Continued with: `{shlex.join(['spikerobust', *argv])}`" in (tmp_path / "pub" / "report.md").read_text()


def test_pooled_seeds_m0_is_the_mean_of_the_models_clean_accuracies(published, tmp_path):
    """With two seeds pooled, Table 1's m = 0 row is the mean of the two models' clean accuracies,
    not the first model's; the checker accepts that and still flags a pooled mean that is neither."""
    edited = tmp_path / "pooled"
    shutil.copytree(published, edited)
    results = json.loads((edited / "results.json").read_text())
    std = results["methods"]["standard"]
    first = std["test_accuracy"]
    second = first - 0.02  # a second model two points worse: the pooled clean mean is one point lower
    std["seeds"] = [{"seed": 0, "test_accuracy": first}, {"seed": 1, "test_accuracy": second}]
    row0 = next(s for s in std["mismatch"]["summary"] if float(s["level"]) == 0.0)
    lines = (edited / "report.md").read_text().splitlines()
    k = next(k for k, line in enumerate(lines) if line.startswith("| m | standard | beta |"))
    row = next(k + j for j, line in enumerate(lines[k:]) if line.startswith("| 0 |"))

    def write_m0(mean):  # the pooled m = 0 mean, in results.json and printed in report.md's Table 1
        row0["mean"] = mean
        (edited / "results.json").write_text(json.dumps(results))
        cells = lines[row].split("|")
        cells[2] = f" {100 * mean:.2f} ± {100 * row0['std']:.2f} "
        lines[row] = "|".join(cells)
        (edited / "report.md").write_text("\n".join(lines) + "\n")

    write_m0((first + second) / 2)
    assert check_published(edited) == []

    write_m0(first - 0.05)  # neither the first model's nor the mean of both
    assert check_published(edited) == [
        "results.json: standard's m = 0 mean differs from its clean test accuracy (mean over its 2 models)"]
