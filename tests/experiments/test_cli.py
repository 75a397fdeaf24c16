"""The ``spikerobust`` command: train → evaluate / verify / pcm on the model file, and its errors."""

import json
import subprocess
import sys

import pytest
import torch

from spikerobust.cli import main
from spikerobust.experiments import load_model

TINY = ["--set", "n_per_class=20", "--set", "n_hidden=12", "--epochs", "1", "--set", "batch_size=40", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    assert main(["train", "ecg", "--method", "beta:n_steps=2", "--out-dir", str(out), *TINY]) == 0
    return out


def test_train_writes_a_self_describing_model(trained):
    model, meta = load_model(trained / "model.pt")
    assert meta["label"] == "beta" and meta["method"] == {"method": "adversarial", "beta": 0.25, "n_steps": 2}
    assert meta["model"] == "lsnn_ecg" and model.lsnn.n_hidden == 12
    assert json.loads((trained / "config.json").read_text())["n_hidden"] == 12


def test_evaluate_report(trained, tmp_path):
    out = tmp_path / "ev"
    assert main(["evaluate", str(trained / "model.pt"), "--parts", "mismatch,attack,membrane", "--n-draws", "2",
                 "--levels", "0,0.5", "--attack-eps", "0,0.2", "--out-dir", str(out), "--no-progress"]) == 0
    res = json.loads((out / "results.json").read_text())["methods"]["beta"]
    _, meta = load_model(trained / "model.pt")
    assert res["mismatch"]["summary"][0]["mean"] == pytest.approx(meta["info"]["test_accuracy"])
    assert len(res["mismatch"]["accuracies"]["0.5"]) == 2 and "verify" not in res
    report = (out / "report.md").read_text()
    assert "## Mismatch" in report and "## Membrane potentials" in report and "## Verified" not in report


def test_verify_prints_table(trained, capsys):
    assert main(["verify", str(trained / "model.pt"), "--zetas", "0,1e-3", "--no-progress"]) == 0
    text = capsys.readouterr().out
    _, meta = load_model(trained / "model.pt")
    assert f"| 0 | {100 * meta['info']['test_accuracy']:.2f} |" in text


def test_pcm_runs_an_lsnn(trained, tmp_path):
    out = tmp_path / "pcm"
    assert main(["pcm", str(trained / "model.pt"), "--times", "25,86400", "--reps", "1", "--no-progress",
                 "--out-dir", str(out)]) == 0
    res = json.loads((out / "pcm.json").read_text())
    _, meta = load_model(trained / "model.pt")
    assert res["digital"] == pytest.approx(meta["info"]["test_accuracy"])
    acc = torch.tensor(res["accuracy"])
    assert acc.shape == (1, 2) and bool(((acc >= 0) & (acc <= 1)).all())


def test_fmnist_train_then_pcm(fmnist_dir, tmp_path):
    out = tmp_path / "cnn"
    assert main(["train", "fmnist", "--data-dir", str(fmnist_dir), "--set", "n_train=300", "--set", "n_test=100",
                 "--epochs", "1", "--out-dir", str(out), "--no-progress"]) == 0
    assert main(["pcm", str(out / "model.pt"), "--times", "25,86400", "--reps", "2", "--no-progress"]) == 0
    res = json.loads((out / "pcm" / "pcm.json").read_text())
    _, meta = load_model(out / "model.pt")
    assert res["digital"] == pytest.approx(meta["info"]["test_accuracy"])
    acc = torch.tensor(res["accuracy"])
    assert acc.shape == (2, 2) and bool(((acc >= 0) & (acc <= 1)).all())
    assert (out / "pcm" / "pcm.png").stat().st_size > 0


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="MIT-BIH records"):
        main(["reproduce", "ecg", "--data-dir", str(tmp_path), "--out-dir", str(tmp_path / "o"), "--no-progress"])
    with pytest.raises(ValueError, match="--set expects key=value"):
        main(["train", "ecg", "--set", "epochs"])
    with pytest.raises(ValueError, match="unknown config field 'epoch'"):
        main(["train", "ecg", "--set", "epoch=3"])
    with pytest.raises(ValueError, match="one method"):
        main(["train", "ecg", "--method", "standard,beta"])


def test_help_of_every_subcommand():
    for args in ([], ["reproduce"], ["train"], ["evaluate"], ["verify"], ["pcm"]):
        proc = subprocess.run([sys.executable, "-m", "spikerobust.cli", *args, "--help"], capture_output=True, text=True)
        assert proc.returncode == 0 and "usage: spikerobust" in proc.stdout


def test_old_speech_model_files_keep_their_standardised_features():
    from spikerobust.experiments.train import recorded_config

    # written before 'standardize' existed: those models were trained on standardised MFCCs
    assert recorded_config({"config": {"task": "speech"}})["standardize"] is True
    assert recorded_config({"config": {"task": "speech", "standardize": False}})["standardize"] is False
    assert "standardize" not in recorded_config({"config": {"task": "ecg"}})
