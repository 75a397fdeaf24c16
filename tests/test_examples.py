"""The example scripts: every one answers ``--help``, and the task scripts run end to end at a tiny
size on offline data, writing results that agree with their own checkpoint.

For each trained model the checkpoint is loaded back with ``weights_only=True`` and its test
accuracy recomputed here (data rebuilt from the checkpoint's own config, or, for ResNet32, from
fake CIFAR-10 batches whose channel statistics are known by construction); it must equal the
accuracy at mismatch level 0 (or the digital accuracy before PCM) that the script reported.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from spikerobust.experiments import ExperimentConfig, load_model, load_task
from spikerobust.models import get_model

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same'")


def load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_every_example_answers_help(script):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=120,
                          env=env, cwd=EXAMPLES.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:") and "--help" in proc.stdout


def test_new_examples_exist_and_are_listed():
    readme = (EXAMPLES / "README.md").read_text()
    for script in SCRIPTS:
        assert f"{script.name}" in readme, f"{script.name} is missing from examples/README.md"


# --------------------------------------------------------------------------- LSNN / CNN scripts


def check_mismatch(results: dict, levels, draws: int) -> None:
    mm = results["mismatch"]
    assert mm["levels"] == [float(m) for m in levels]
    for m in levels:
        acc = np.array(mm["accuracies"][str(float(m))])
        assert acc.shape == ((1,) if m == 0 else (draws,))
        assert ((acc >= 0) & (acc <= 1)).all()
    for row in mm["summary"]:  # the table's numbers are the statistics of the recorded draws
        acc = np.array(mm["accuracies"][str(row["level"])])
        assert row["mean"] == pytest.approx(acc.mean()) and row["min"] == pytest.approx(acc.min())


def check_checkpoint(out: Path, results: dict) -> None:
    """model.pt loads with weights_only=True and, on the test split rebuilt from its config, has
    the clean accuracy the script reported at m = 0."""
    raw = torch.load(out / "model.pt", weights_only=True)
    model = get_model(raw["model"], **raw["model_kwargs"])
    model.load_state_dict(raw["state_dict"])
    model.eval()
    data = load_task(ExperimentConfig.from_dict(raw["config"]))
    x, y = data.test
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (y.shape[0], len(data.classes))
    acc = float((logits.argmax(1) == y).double().mean())
    assert acc == pytest.approx(results["mismatch"]["accuracies"]["0.0"][0], abs=1e-12)
    assert acc == pytest.approx(results["train"]["test_accuracy"], abs=1e-12)
    assert data.sizes == results["data"]["sizes"]
    again, meta = load_model(out / "model.pt")  # the library's reader gives the very same network
    with torch.no_grad():
        assert torch.equal(again(x), logits)
    assert meta["label"] == results["label"]


def test_train_and_evaluate_ecg_tiny_on_synthetic_beats(tmp_path):
    results = load_example("train_and_evaluate").main([
        "ecg", "--quick", "--set", "n_per_class=12", "--set", "levels=[0,0.3,0.6]", "--set", "n_draws=4",
        "--set", "split=random", "--method", "forward_noise:eta=0.2", "--out-dir", str(tmp_path), "--no-progress"])
    assert json.loads((tmp_path / "results.json").read_text())["mismatch"] == results["mismatch"]
    assert results["method"] == {"method": "forward_noise", "eta": 0.2}
    assert results["config"]["split"] == "random" and results["config"]["n_per_class"] == 12  # --set values
    assert "SYNTHETIC" in results["data"]["description"] and results["data"]["classes"] == ["N", "L", "R", "V"]
    assert "attack" not in results  # the LSNN tasks measure mismatch only unless --parts says more
    check_mismatch(results, [0, 0.3, 0.6], 4)
    check_checkpoint(tmp_path, results)


def test_train_and_evaluate_speech_tiny_on_fsdd(fsdd_dir, tmp_path):
    results = load_example("train_and_evaluate").main([
        "speech", "--data-dir", str(fsdd_dir), "--quick", "--set", "n_train=60", "--set", "n_test=30",
        "--set", "levels=[0,0.5]", "--set", "n_draws=2", "--out-dir", str(tmp_path), "--no-progress"])
    assert results["data"]["classes"] == [str(d) for d in range(10)]
    assert results["data"]["sizes"]["train"] == 60 and results["data"]["sizes"]["test"] == 30
    check_mismatch(results, [0, 0.5], 2)
    check_checkpoint(tmp_path, results)


def test_train_and_evaluate_fmnist_tiny(fmnist_dir, tmp_path):
    results = load_example("train_and_evaluate").main([
        "fmnist", "--data-dir", str(fmnist_dir), "--quick", "--set", "n_train=150", "--set", "n_test=60",
        "--set", "n_draws=2", "--set", "attack_eps=[0,0.05,0.2]", "--out-dir", str(tmp_path), "--no-progress"])
    check_mismatch(results, [0, 0.5], 2)
    check_checkpoint(tmp_path, results)
    assert results["config"]["lr"] == 1e-3 and results["config"]["lr_drop_at"] == 0.75  # the quick preset's
    attack = results["attack"]
    assert sorted(attack) == ["0.0", "0.05", "0.2"]
    assert attack["0.0"] == {"pga": results["test_accuracy"], "random": results["test_accuracy"]}
    assert results["test_accuracy"] == results["train"]["test_accuracy"]
    for a in attack.values():
        for v in a.values():  # 60 test images: whole multiples of 1/60
            assert 0 <= v <= 1 and v * 60 == pytest.approx(round(v * 60))


def test_compare_methods_tiny(tmp_path):
    results = load_example("compare_methods").main([
        "ecg", "--methods", "standard,forward_noise", "--set", "n_per_class=12", "--set", "n_hidden=8",
        "--set", "epochs=1", "--set", "n_draws=3", "--out", str(tmp_path / "r.json")])
    assert json.loads((tmp_path / "r.json").read_text())["results"].keys() == results.keys() == {"standard", "forward_noise"}
    for label, r in results.items():
        levels = [s["level"] for s in r["mismatch"]]
        assert levels == [0.0, 0.3, 0.5, 0.7] and r["mismatch"][0]["std"] == 0  # m = 0 is the clean network
        assert r["mismatch"][0]["mean"] == pytest.approx(r["clean"])
        assert ("attack" in r) == (label == "standard")  # only standard is attacked by default
    assert all(0 <= a <= 1 for a in results["standard"]["attack"].values())


def test_every_example_is_at_most_80_lines():
    long = sorted(p.name for p in SCRIPTS if len(p.read_text().splitlines()) > 80)
    assert not long, f"examples over 80 lines (issue 14): {long}"


# --------------------------------------------------------------------------- ResNet32 on PCM

#: per-channel pixel values of every fake image (each image is a permutation of these), so that the
#: channel statistics of any subset of images are those of these vectors
_PLANES = np.stack([np.arange(1024) % 256, (np.arange(1024) * 7) % 200 + 20, np.full(1024, 90)]).astype(np.uint8)
_PLANES[2, ::2] = 170


def fake_cifar(root: Path, n_per_batch: int, n_test: int) -> Path:
    rng = np.random.default_rng(5)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(n):
        data = np.stack([np.concatenate([rng.permutation(p) for p in _PLANES]) for _ in range(n)])
        return {b"data": data, b"labels": rng.integers(0, 10, n).tolist(), b"batch_label": b"fake"}

    for k in range(1, 6):
        with open(folder / f"data_batch_{k}", "wb") as fh:
            pickle.dump(batch(n_per_batch), fh)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump(batch(n_test), fh)
    return folder


def test_resnet32_pcm_tiny_on_fake_cifar(tmp_path):
    folder = fake_cifar(tmp_path / "data", n_per_batch=8, n_test=12)
    out = tmp_path / "out"
    results = load_example("resnet32_pcm").main([
        "--data-dir", str(tmp_path / "data"), "--quick", "--n-train", "0", "--n-val", "10", "--n-test", "0",
        "--times", "25", "3600", "86400", "--n-reps", "2", "--out-dir", str(out), "--no-progress"])
    assert results["sizes"] == {"train": 30, "val": 10, "test": 12}
    pcm = results["pcm"]
    acc = np.array(pcm["accuracy"])
    assert pcm["times"] == [25.0, 3600.0, 86400.0] and acc.shape == (2, 3)
    assert ((acc >= 0) & (acc <= 1)).all() and np.allclose(acc * 12, np.round(acc * 12))
    assert (out / "pcm.png").exists() and json.loads((out / "results.json").read_text())["pcm"] == pcm

    # the checkpoint, on the test images standardised with the known channel statistics
    state = torch.load(out / "resnet32.pt", weights_only=True)
    model = get_model("resnet32", n_classes=10)
    model.load_state_dict(state)
    model.eval()
    with open(folder / "test_batch", "rb") as fh:
        test = pickle.load(fh)
    x = torch.from_numpy(test[b"data"].reshape(-1, 3, 32, 32).astype(np.float64) / 255.0)
    planes = _PLANES.astype(np.float64) / 255.0
    mean, std = torch.from_numpy(planes.mean(1)), torch.from_numpy(planes.std(1))
    x = ((x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)).float()
    with torch.no_grad():
        digital = float((model(x).argmax(1) == torch.tensor(test[b"labels"])).double().mean())
    assert digital == pytest.approx(pcm["digital"], abs=1e-6)
    assert digital == pytest.approx(results["train"]["test_accuracy"], abs=1e-6)


def test_resnet32_pcm_rejects_clip_in_method(tmp_path):
    fake_cifar(tmp_path, n_per_batch=4, n_test=4)
    with pytest.raises(SystemExit, match="--clip-sigma"):
        load_example("resnet32_pcm").main(["--data-dir", str(tmp_path), "--quick", "--method",
                                           "noise_injection:clip_sigma=2", "--out-dir", str(tmp_path / "o")])
