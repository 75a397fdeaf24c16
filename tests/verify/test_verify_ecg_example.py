"""The verify_ecg example end to end on a tiny synthetic ECG: its table obeys the certificate's
invariants (ζ = 0 verified accuracy equals clean accuracy, no uncertain spike at ζ = 0, verified
accuracy non-increasing in ζ)."""

import importlib.util
import json
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "verify_ecg.py"


def load_example():
    spec = importlib.util.spec_from_file_location("verify_ecg_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_help_runs(capsys):
    with pytest.raises(SystemExit) as exc:
        load_example().main(["--help"])
    assert exc.value.code == 0
    assert "--epsilons" in capsys.readouterr().out


def test_tiny_synthetic_run(tmp_path):
    from spikerobust.robust.methods import list_methods

    if "adversarial" not in list_methods():
        pytest.skip("the adversarial training method is not available")
    out = tmp_path / "table.md"
    load_example().main(
        [
            "--synthetic", "--beats-per-class", "15", "--n-hidden", "8", "--pretrain-epochs", "1",
            "--epochs", "1", "--attack-steps", "1", "--batch-size", "20", "--epsilons", "0", "1e-4", "1e-2",
            "--out", str(out),
        ]
    )
    assert out.read_text().count("\n| ") == 4  # header + 3 ε rows
    results = json.loads(out.with_suffix(".json").read_text())["results"]
    assert len(results) == 2
    for res in results.values():
        rows = res["rows"]
        assert rows[0]["verified"] == pytest.approx(res["test_acc"])
        assert rows[0]["uncertain_spikes"] == 0.0
        assert all(a["verified"] >= b["verified"] for a, b in zip(rows, rows[1:]))
