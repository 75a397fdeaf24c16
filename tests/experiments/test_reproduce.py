"""The reproduce pipeline end to end on a tiny synthetic-ECG configuration.

Asserts relations that must hold whatever the training outcome: the m = 0 mismatch accuracy is
the clean test accuracy, verified accuracy at ζ = 0 equals it and never exceeds it, verified
accuracy does not increase with ζ, and the outputs a user relies on are written.
"""

import json

import pytest

from spikerobust.cli import _parse_methods, main
from spikerobust.experiments import ReproduceConfig, run_reproduce


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    cfg = ReproduceConfig(
        task="ecg-synthetic", beats_per_class=30, n_hidden=16, epochs=2, lr=5e-3, batch_size=40,
        methods={"standard": {}, "adversarial": {"beta": 0.25, "n_steps": 2}},
        levels=(0.0, 0.5), n_draws=3, attack_eps=(0.3,), zetas=(0.0, 1e-4, 1e-2),
        landscape_points=11, landscape_directions=2, out_dir=str(out), seed=0,
    )
    return cfg, run_reproduce(cfg, progress=False)


def test_relations_between_measures(tiny_run):
    cfg, res = tiny_run
    assert set(res["methods"]) == {"standard", "adversarial"}
    for r in res["methods"].values():
        clean = r["test_accuracy"]
        summary = {row["level"]: row for row in r["mismatch"]["summary"]}
        assert summary[0.0]["mean"] == pytest.approx(clean)
        assert len(r["mismatch"]["accuracies"]["0.5"]) == 3
        ver = [r["verified"][str(z)] for z in cfg.zetas]
        assert ver[0] == pytest.approx(clean)
        assert all(a >= b for a, b in zip(ver, ver[1:]))
        assert 0.0 <= r["attack"]["0.3"]["pga"] <= 1.0


def test_outputs_written(tiny_run):
    cfg, res = tiny_run
    from pathlib import Path

    out = Path(cfg.out_dir)
    report = (out / "report.md").read_text()
    assert "SYNTHETIC" in report and "## Mismatch" in report and "## Verified accuracy" in report
    assert json.loads((out / "results.json").read_text())["config"]["n_hidden"] == 16
    assert (out / "summary.png").stat().st_size > 0
    assert (out / "checkpoints" / "standard" / "last.pt").exists()


def test_cli_parsing_and_errors(tmp_path):
    assert _parse_methods("standard,adversarial:beta=0.5;n_steps=3") == {
        "standard": {}, "adversarial": {"beta": 0.5, "n_steps": 3}}
    assert _parse_methods("fn+b=forward_noise:beta=0.1") == {"fn+b": {"method": "forward_noise", "beta": 0.1}}
    with pytest.raises(SystemExit):
        _parse_methods("adversarial:beta")
    with pytest.raises(ValueError, match="data_root"):
        main(["reproduce", "--task", "ecg", "--data-root", str(tmp_path), "--out-dir", str(tmp_path / "o")])
