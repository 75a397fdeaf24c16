"""The comparison pipeline end to end on a tiny synthetic-ECG configuration.

Asserts relations that must hold whatever the training outcome (m = 0 mismatch accuracy and
ζ = 0 verified accuracy equal the clean accuracy, verified accuracy does not grow with ζ, the
membrane histogram counts every recorded point), a second implementation of the Mann-Whitney
test, model files that reload to the same accuracy, a parallel run that equals the serial one,
and resume: finished methods are not retrained and an interrupted training continues.
"""

import json
from pathlib import Path

import pytest
import torch
from scipy.stats import mannwhitneyu

import spikerobust.experiments.train as train
from spikerobust.experiments import evaluate_model, load_model, load_task, make_config, run_reproduce
from spikerobust.robust.trainer import evaluate_accuracy

TINY = dict(n_per_class=30, n_hidden=16, epochs=2, lr=5e-3, batch_size=40, levels=[0.0, 0.5], n_draws=4,
            attack_eps=[0.0, 0.3], zetas=[0.0, 1e-4, 1e-2], landscape_points=9, landscape_directions=2,
            membrane_samples=10, jobs=1, progress=False,
            methods={"standard": {"method": "standard"}, "beta": {"method": "adversarial", "beta": 0.25, "n_steps": 2}})


def tiny_config(out, **kw):
    return make_config("ecg", "quick", overrides={**TINY, "out_dir": str(out), **kw})


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    cfg = tiny_config(tmp_path_factory.mktemp("reproduce"))
    return cfg, run_reproduce(cfg)


def test_relations_between_measures(tiny_run):
    cfg, res = tiny_run
    assert list(res["methods"]) == ["standard", "beta"]
    for r in res["methods"].values():
        clean = r["test_accuracy"]
        summary = {row["level"]: row for row in r["mismatch"]["summary"]}
        assert summary[0.0]["mean"] == pytest.approx(clean)
        assert len(r["mismatch"]["accuracies"]["0.5"]) == 4
        assert r["attack"]["0.0"] == {"pga": clean, "random": clean}
        ver = [r["verify"][str(z)] for z in cfg.zetas]
        assert ver[0] == pytest.approx(clean)
        assert all(a >= b for a, b in zip(ver, ver[1:]))
        mem = r["membrane"]
        assert mem["near_0.05"] <= mem["near_0.1"] <= mem["near_0.2"]
    n = min(cfg.membrane_samples, res["data"]["sizes"]["test"])
    for r in res["methods"].values():
        assert sum(r["membrane"]["hist_counts"]) == 100 * n * 16  # T x recorded samples x neurons


def test_mann_whitney_matches_scipy(tiny_run):
    _, res = tiny_run
    a = res["methods"]["beta"]["mismatch"]["accuracies"]["0.5"]
    b = res["methods"]["standard"]["mismatch"]["accuracies"]["0.5"]
    ref = mannwhitneyu(a, b, alternative="two-sided")
    assert res["mann_whitney_vs_standard"]["beta"]["0.5"]["p"] == pytest.approx(ref.pvalue)


def test_outputs_written_and_model_files_reload(tiny_run):
    cfg, res = tiny_run
    out = Path(cfg.out_dir)
    report = (out / "report.md").read_text()
    for section in ("## Mismatch", "Paper, ECG LSNN", "## Worst-case weight attack", "## Verified accuracy",
                    "## Flatness", "## Membrane potentials", "SYNTHETIC"):
        assert section in report
    for fig in ("mismatch.png", "attack.png", "verified.png", "landscape.png", "membrane.png"):
        assert (out / fig).stat().st_size > 0 and fig in res["figures"]
    assert json.loads((out / "results.json").read_text())["config"]["n_hidden"] == 16
    assert json.loads((out / "config.json").read_text())["methods"] == TINY["methods"]
    data = load_task(cfg)
    for label, r in res["methods"].items():
        raw = torch.load(out / "methods" / label / "model.pt", weights_only=True)  # a safe load works
        assert raw["label"] == label
        model, meta = load_model(out / "methods" / label / "model.pt")
        assert evaluate_accuracy(model, data.batches("test")) == pytest.approx(r["test_accuracy"])
        assert meta["info"]["best_epoch"] == r["best_epoch"]


def test_load_model_refuses_other_files(tiny_run, tmp_path):
    cfg, _ = tiny_run
    with pytest.raises(ValueError, match="not a spikerobust model file"):
        load_model(Path(cfg.out_dir) / "methods" / "standard" / "checkpoints" / "last.pt")
    with pytest.raises(ValueError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_parallel_run_equals_serial(tiny_run, tmp_path):
    cfg, res = tiny_run
    par = run_reproduce(tiny_config(tmp_path, jobs=2, methods=TINY["methods"]))
    for label in ("standard", "beta"):
        assert par["methods"][label]["test_accuracy"] == res["methods"][label]["test_accuracy"]
        assert par["methods"][label]["mismatch"]["accuracies"] == res["methods"][label]["mismatch"]["accuracies"]


def test_resume_reuses_finished_and_continues_interrupted(tiny_run, tmp_path, monkeypatch):
    cfg, res = tiny_run
    import shutil

    out = tmp_path / "run"
    shutil.copytree(cfg.out_dir, out)
    cfg2 = tiny_config(out)
    # "beta" was interrupted after training but before its model file and results were written
    (out / "methods" / "beta" / "results.json").unlink()
    (out / "methods" / "beta" / "model.pt").unlink()
    trained = []
    real_fit = train.fit

    def spy_fit(model, method, *args, **kwargs):
        trained.append(kwargs["resume"])
        return real_fit(model, method, *args, **kwargs)

    monkeypatch.setattr(train, "fit", spy_fit)
    again = run_reproduce(cfg2, resume=True)
    assert trained == [True]  # only beta went through the trainer, resuming from its checkpoint
    for label in ("standard", "beta"):
        assert again["methods"][label]["test_accuracy"] == res["methods"][label]["test_accuracy"]
        assert again["methods"][label]["mismatch"]["accuracies"] == res["methods"][label]["mismatch"]["accuracies"]
    a, _ = load_model(Path(cfg.out_dir) / "methods" / "beta" / "model.pt")
    b, _ = load_model(out / "methods" / "beta" / "model.pt")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_resume_refuses_a_different_config(tiny_run, tmp_path):
    cfg, _ = tiny_run
    import shutil

    out = tmp_path / "run"
    shutil.copytree(cfg.out_dir, out)
    with pytest.raises(ValueError, match=r"settings differ .*\(n_hidden: \d+ there, 8 now\)"):
        run_reproduce(tiny_config(out, n_hidden=8), resume=True)
    changed = {"standard": {"method": "standard"}, "beta": {"method": "adversarial", "beta": 0.5, "n_steps": 2}}
    with pytest.raises(ValueError, match=r"\(methods\.beta: \{.*'beta': 0\.25.* there, \{.*'beta': 0\.5.* now\)"):
        run_reproduce(tiny_config(out, methods=changed), resume=True)


def test_evaluate_parts_and_errors(tiny_run):
    cfg, res = tiny_run
    model, _ = load_model(Path(cfg.out_dir) / "methods" / "standard" / "model.pt")
    data = load_task(cfg)
    r = evaluate_model(model, data, cfg, parts=["verify"])
    assert set(r) == {"test_accuracy", "timings", "verify"}
    assert r["verify"] == res["methods"]["standard"]["verify"]
    with pytest.raises(ValueError, match="unknown evaluation part"):
        evaluate_model(model, data, cfg, parts=["mismatchh"])
