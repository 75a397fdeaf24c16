"""A ``reproduce`` sweep spread over jobs: two processes, one method each, train into one run folder
at the same time (each holds its method folder's lock), and ``spikerobust report`` writes the
report one ``reproduce`` of both methods writes; it evaluates a trained model that is not yet
evaluated, and names the methods that are missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from spikerobust.cli import main
from spikerobust.experiments import make_config, run_reproduce

TINY = dict(n_per_class=30, n_hidden=16, epochs=2, lr=5e-3, batch_size=40, levels=[0.0, 0.5], n_draws=4,
            attack_eps=[0.0, 0.3], zetas=[0.0, 1e-4, 1e-2], landscape_points=9, landscape_directions=2,
            membrane_samples=10, jobs=1, progress=False,
            methods={"standard": {"method": "standard"}, "beta": {"method": "adversarial", "beta": 0.25, "n_steps": 2}})
#: what differs between two runs of the same computation
TIMES = {"timings", "train_s", "elapsed_s"}


def same(a, b, where="results"):
    """``a`` equals ``b`` up to rounding, timings left out."""
    if isinstance(a, dict):
        assert set(a) - TIMES == set(b) - TIMES, where
        for k in set(a) - TIMES:
            same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-6, abs=1e-9), where
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    config = tmp / "tiny.json"
    config.write_text(json.dumps(TINY))
    run = tmp / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    jobs = [subprocess.Popen([sys.executable, "-m", "spikerobust.cli", "reproduce", "ecg", "--config", str(config),
                              "--out-dir", str(run), "--only", label, "--no-progress"],
                             cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for label in ("standard", "beta")]  # at the same time, into one folder
    for job in jobs:
        stdout, stderr = job.communicate(timeout=600)
        assert job.returncode == 0, stderr[-3000:]
    torch.set_num_threads(1)
    ref = tmp / "ref"
    run_reproduce(make_config("ecg", "quick", overrides={**TINY, "out_dir": str(ref)}))
    return run, ref


def test_jobs_write_no_report_and_report_equals_one_reproduce(sweep, capsys):
    run, ref = sweep
    assert not (run / "report.md").exists() and not (run / "results.json").exists()
    for label in ("standard", "beta"):
        assert (run / "methods" / label / "model.pt").is_file() and (run / "methods" / label / "results.json").is_file()
    assert main(["report", str(run), "--no-progress"]) == 0
    res = json.loads((run / "results.json").read_text())
    want = json.loads((ref / "results.json").read_text())
    assert list(res["methods"]) == ["standard", "beta"]
    same(res["methods"], want["methods"])
    same(res["mann_whitney_vs_standard"], want["mann_whitney_vs_standard"])
    report = (run / "report.md").read_text()
    assert "standard" in report and "beta" in report and report in capsys.readouterr().out


def test_report_evaluates_a_trained_model_and_names_missing_methods(sweep, tmp_path):
    run, ref = sweep
    partial = tmp_path / "partial"
    shutil.copytree(run, partial)
    for name in ("report.md", "results.json"):  # the copy is of the jobs' folder, before any report
        (partial / name).unlink(missing_ok=True)
    (partial / "methods" / "standard" / "results.json").unlink()  # trained, not evaluated
    shutil.rmtree(partial / "methods" / "beta")  # never trained
    with pytest.raises(ValueError, match=r"not trained: beta"):
        main(["report", str(partial)])
    assert not (partial / "report.md").exists()
    shutil.copytree(run / "methods" / "beta", partial / "methods" / "beta")
    assert main(["report", str(partial), "--no-progress"]) == 0
    want = json.loads((ref / "methods" / "standard" / "results.json").read_text())
    same(json.loads((partial / "methods" / "standard" / "results.json").read_text()), want)


def test_a_job_refuses_other_settings_or_a_method_outside_the_sweep(sweep, tmp_path):
    run, _ = sweep
    config = tmp_path / "other.json"
    config.write_text(json.dumps({**TINY, "lr": 1e-3}))
    with pytest.raises(ValueError, match="lr"):
        main(["reproduce", "ecg", "--config", str(config), "--out-dir", str(run), "--only", "beta", "--no-progress"])
    config.write_text(json.dumps(TINY))
    with pytest.raises(ValueError, match="not in the sweep"):
        main(["reproduce", "ecg", "--config", str(config), "--out-dir", str(run), "--only", "awp", "--no-progress"])
    with pytest.raises(ValueError, match="holds a run"):  # the method is done: --resume or --overwrite
        main(["reproduce", "ecg", "--config", str(config), "--out-dir", str(run), "--only", "beta", "--no-progress"])
