"""seeds > 1 in reproduce: extra models on the same data, mismatch draws pooled."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from spikerobust.experiments import make_config, run_reproduce

TINY = dict(n_per_class=10, n_hidden=8, epochs=1, lr=5e-3, batch_size=16, levels=[0.0, 0.5], n_draws=3,
            attack_eps=[0.0], zetas=[0.0], landscape_points=6, landscape_directions=1, membrane_samples=0,
            jobs=1, progress=False, methods={"standard": {"method": "standard"}})


def test_two_seeds_pool_the_draws_of_both_models(tmp_path):
    cfg = make_config("ecg", "quick", overrides={**TINY, "seeds": 2, "out_dir": str(tmp_path)})
    res = run_reproduce(cfg)
    first = json.loads((tmp_path / "methods" / "standard" / "results.json").read_text())
    second = json.loads((tmp_path / "seeds" / "seed1" / "methods" / "standard" / "results.json").read_text())
    pooled = res["methods"]["standard"]["mismatch"]["accuracies"]
    for m in ("0.0", "0.5"):
        assert pooled[m] == first["mismatch"]["accuracies"][m] + second["mismatch"]["accuracies"][m]
    assert len(pooled["0.5"]) == 6
    row = {r["level"]: r for r in res["methods"]["standard"]["mismatch"]["summary"]}
    assert row[0.5]["mean"] == pytest.approx(sum(pooled["0.5"]) / 6)
    assert [s["seed"] for s in res["methods"]["standard"]["seeds"]] == [0, 1]
    assert res["methods"]["standard"]["seeds"][1]["test_accuracy"] == second["test_accuracy"]
    # the second model trained with seed 1 (its model file's config) on the first model's data split
    import torch

    raw = torch.load(tmp_path / "seeds" / "seed1" / "methods" / "standard" / "model.pt", weights_only=True)
    assert raw["config"]["seed"] == 1
    assert raw["info"]["data_fingerprint"] == first_fp(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "of each of 2 models per method (seeds 0-1), pooled" in report
    assert "test % per seed" in report


def first_fp(out: Path) -> str:
    import torch

    return torch.load(out / "methods" / "standard" / "model.pt", weights_only=True)["info"]["data_fingerprint"]


def test_paper_preset_pools_two_seeds():
    assert make_config("ecg", "paper").seeds == 2
    assert make_config("ecg", "quick").seeds == 1


def test_parallel_seeds_equal_the_serial_ones(tmp_path):
    """With jobs > 1 the extra seeds run in the pool too, on the first seed's data: same results as one process."""
    serial = run_reproduce(make_config("ecg", "quick", overrides={**TINY, "seeds": 2, "out_dir": str(tmp_path / "s")}))
    par = run_reproduce(make_config("ecg", "quick", overrides={**TINY, "seeds": 2, "jobs": 2,
                                                              "out_dir": str(tmp_path / "p")}))
    for key in ("test_accuracy", "seeds"):
        assert par["methods"]["standard"][key] == serial["methods"]["standard"][key]
    assert par["methods"]["standard"]["mismatch"]["accuracies"] == serial["methods"]["standard"]["mismatch"]["accuracies"]
    raw = torch.load(tmp_path / "p" / "seeds" / "seed1" / "methods" / "standard" / "model.pt", weights_only=True)
    assert raw["config"]["seed"] == 1 and raw["info"]["data_fingerprint"] == first_fp(tmp_path / "s")
