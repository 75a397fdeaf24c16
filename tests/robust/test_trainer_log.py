"""The trainer's readable log: one formatted line per epoch and ``metrics.jsonl`` matching the history."""

from __future__ import annotations

import json
import logging

import torch
from torch import nn

from spikerobust.robust.trainer import fit

torch.set_num_threads(1)


def task():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, 4, generator=g), torch.arange(48) % 2
    x[y == 1] += 1.5
    return [(x[i:i + 16], y[i:i + 16]) for i in range(0, 48, 16)]


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_metrics_jsonl_has_one_line_per_epoch_with_the_history_values(tmp_path, caplog):
    batches = task()
    with caplog.at_level(logging.INFO, logger="spikerobust.robust.trainer"):
        res = fit(model(), "standard", batches, batches, epochs=3, lr=1e-2, milestones=[2], checkpoint_dir=tmp_path,
                  progress=False)
    rows = read(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    for r, h in zip(rows, res.history):
        assert r["method"] == "standard" and r["epochs"] == 3
        for key in ("train_loss", "val_accuracy", "lr", "attacked_accuracy"):
            assert r[key] == h[key], key
        assert r["seconds"] >= 0 and r["eta_s"] >= 0
    assert rows[-1]["eta_s"] == 0
    lines = [rec.getMessage() for rec in caplog.records if "epoch" in rec.getMessage() and "loss" in rec.getMessage()]
    assert len(lines) == 3
    for i, (line, h) in enumerate(zip(lines, res.history), 1):
        assert line.startswith(f"standard  epoch {i}/3") and "{" not in line
        assert f"loss {h['train_loss']:.4f}" in line and f"val {100 * h['val_accuracy']:.2f} %" in line
        assert f"lr {h['lr']:g}" in line and "ETA" in line


def test_a_resumed_run_keeps_the_checkpointed_lines_and_drops_an_unfinished_one(tmp_path):
    batches = task()
    fit(model(), "standard", batches, batches, epochs=2, lr=1e-2, checkpoint_dir=tmp_path, progress=False)
    with open(tmp_path / "metrics.jsonl", "a") as fh:  # an epoch logged but never checkpointed
        fh.write(json.dumps({"epoch": 3, "train_loss": 123.0}) + "\n")
    res = fit(model(), "standard", batches, batches, epochs=4, lr=1e-2, checkpoint_dir=tmp_path, progress=False)
    rows = read(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert [r["train_loss"] for r in rows] == [h["train_loss"] for h in res.history]


def test_no_validation_data_writes_null_not_nan(tmp_path):
    batches = task()
    fit(model(), "standard", batches, None, epochs=1, checkpoint_dir=tmp_path, progress=False)
    text = (tmp_path / "metrics.jsonl").read_text()
    assert "NaN" not in text and read(tmp_path / "metrics.jsonl")[0]["val_accuracy"] is None
