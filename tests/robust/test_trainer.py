"""Trainer and checkpoints: bit-identical resume, NaN reporting, best-validation selection,
weights_only loading, atomic writes, LR schedule and periodic attacked validation."""

from __future__ import annotations

import math
import os

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from spikerobust.robust.checkpoint import check_serialisable, load_checkpoint, save_checkpoint
from spikerobust.robust.methods import TrainingMethod, get_method
from spikerobust.robust.trainer import CHECKPOINT_NAME, NonFiniteLossError, evaluate_accuracy, fit

torch.set_num_threads(1)


def data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    centres = 2.0 * torch.randn(3, 4, generator=g)
    return centres[y] + 0.7 * torch.randn(n, 4, generator=g), y


def mlp(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Linear(12, 3))


class Interrupt(Exception):
    pass


class InterruptingLoader:
    """Wraps a loader and raises at a given (epoch, step), like a killed job."""

    def __init__(self, loader, epoch, step):
        self.loader, self.epoch, self.step, self.calls = loader, epoch, step, 0
        self.generator = getattr(loader, "generator", None)  # the same loader, as a killed job would have

    def __iter__(self):
        self.calls += 1
        for i, batch in enumerate(self.loader):
            if self.calls == self.epoch and i + 1 == self.step:
                raise Interrupt()
            yield batch


def loader(x, y, with_generator):
    ds = TensorDataset(x, y)
    if with_generator:
        return DataLoader(ds, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(7))
    return DataLoader(ds, batch_size=16, shuffle=True)


@pytest.mark.parametrize("with_generator", [False, True])
def test_resume_after_interruption_is_bit_identical(tmp_path, with_generator):
    x, y = data()
    val = [data(32, seed=1)]
    kw = dict(epochs=4, lr=1e-2, milestones=[2], seed=3, restore_best=False, progress=False)
    # forward noise draws from the global RNG every step: resume must restore it exactly
    ref = mlp(0)
    res_ref = fit(ref, get_method("forward_noise"), loader(x, y, with_generator), val, checkpoint_dir=tmp_path / "a", **kw)

    model = mlp(0)
    with pytest.raises(Interrupt):
        fit(model, get_method("forward_noise"), InterruptingLoader(loader(x, y, with_generator), 3, 2), val,
            checkpoint_dir=tmp_path / "b", **kw)
    assert load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME)["epoch"] == 2  # two finished epochs kept
    torch.manual_seed(12345)  # a different process state: everything must come from the checkpoint
    resumed = mlp(99)
    res = fit(resumed, get_method("forward_noise"), loader(x, y, with_generator), val,
              checkpoint_dir=tmp_path / "b", **kw)
    for a, b in zip(ref.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    assert res.history == res_ref.history
    assert res.best_epoch == res_ref.best_epoch


def test_entropy_sgd_step_counter_survives_resume(tmp_path):
    x, y = data()
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    method = get_method("entropy_sgd", n_langevin=1)
    fit(mlp(0), method, batches, epochs=2, checkpoint_dir=tmp_path, progress=False)
    fresh = get_method("entropy_sgd", n_langevin=1)
    fit(mlp(0), fresh, batches, epochs=3, checkpoint_dir=tmp_path, progress=False)
    assert method.t == 8 and fresh.t == 12  # 4 steps per epoch


class NaNAt:
    """Batches of ``(x, y)``; at (epoch, step) the inputs are NaN."""

    def __init__(self, x, y, epoch, step):
        self.x, self.y, self.epoch, self.step, self.calls = x, y, epoch, step, 0

    def __iter__(self):
        self.calls += 1
        for i in range(4):
            xb = self.x[16 * i:16 * (i + 1)].clone()
            if self.calls == self.epoch and i + 1 == self.step:
                xb[0, 0] = float("nan")
            yield xb, self.y[16 * i:16 * (i + 1)]


def test_nan_loss_stops_with_epoch_step_and_last_good_checkpoint(tmp_path):
    x, y = data()
    with pytest.raises(NonFiniteLossError) as err:
        fit(mlp(0), "standard", NaNAt(x, y, 2, 3), epochs=3, checkpoint_dir=tmp_path, progress=False)
    msg = str(err.value)
    assert "epoch 2, step 3" in msg
    assert str(tmp_path / CHECKPOINT_NAME) in msg
    ckpt = load_checkpoint(tmp_path / CHECKPOINT_NAME)
    assert ckpt["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    with pytest.raises(NonFiniteLossError, match="epoch 1, step 2; last good checkpoint: none"):
        fit(mlp(0), "standard", NaNAt(x, y, 1, 2), epochs=1, progress=False)


class Scripted(TrainingMethod):
    """Sets the model to a given state at each epoch's (single) step: validation accuracy is known."""

    name = "scripted"

    def __init__(self, states):
        self.states, self.k = states, 0

    def step(self, model, x, y, optimizer):
        model.load_state_dict(self.states[self.k])
        self.k += 1
        optimizer.step()  # no gradients: nothing moves, but the scheduler sees a step
        return {"loss": 0.0}


def test_best_validation_epoch_is_kept():
    # a 2-class linear model on points x = ±1: weight sign decides everything
    xv = torch.tensor([[1.0], [2.0], [-1.0], [-3.0]])
    yv = torch.tensor([1, 1, 0, 0])
    good = {"weight": torch.tensor([[-1.0], [1.0]]), "bias": torch.zeros(2)}      # 4/4 correct
    half = {"weight": torch.tensor([[-1.0], [1.0]]), "bias": torch.tensor([0.0, -2.5])}  # x=1 wrong: 3/4
    bad = {"weight": torch.tensor([[1.0], [-1.0]]), "bias": torch.zeros(2)}       # 0/4
    model = nn.Linear(1, 2)
    res = fit(model, Scripted([half, good, bad]), [(xv, yv)], [(xv, yv)], epochs=3, progress=False)
    assert [h["val_accuracy"] for h in res.history] == [0.75, 1.0, 0.0]
    assert res.best_epoch == 2 and res.best_val_accuracy == 1.0
    assert torch.equal(model.weight, good["weight"]) and torch.equal(model.bias, good["bias"])
    assert evaluate_accuracy(model, [(xv, yv)]) == 1.0


def test_checkpoint_loads_with_weights_only_and_holds_everything(tmp_path):
    x, y = data()
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    model = mlp(0)
    fit(model, get_method("dropout", seed=4), batches, batches, epochs=2, lr=1e-2, milestones=[1],
        checkpoint_dir=tmp_path, progress=False, restore_best=False)
    ckpt = torch.load(tmp_path / CHECKPOINT_NAME, weights_only=True)
    assert {"epoch", "model", "optimizer", "scheduler", "rng", "method", "history", "best"} <= set(ckpt)
    assert ckpt["epoch"] == 2 and ckpt["method_name"] == "dropout"
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt["model"][k], v)
    assert "generator_state" in ckpt["method"]
    assert [h["lr"] for h in ckpt["history"]] == pytest.approx([1e-2, 1e-3])
    assert sorted(os.listdir(tmp_path)) == [CHECKPOINT_NAME, "metrics.jsonl"]  # no temporary file left


def test_finished_run_resumes_to_a_no_op(tmp_path):
    x, y = data()
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    a = mlp(0)
    r1 = fit(a, "standard", batches, batches, epochs=2, checkpoint_dir=tmp_path, progress=False)
    b = mlp(5)
    r2 = fit(b, "standard", batches, batches, epochs=2, checkpoint_dir=tmp_path, progress=False)
    assert r2.history == r1.history
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_attacked_validation_every_k_epochs():
    x, y = data()
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 64, 16)]
    res = fit(mlp(0), "standard", batches, batches, epochs=4, lr=1e-2, attack_every=2,
              attack_kwargs={"epsilon": 0.3, "n_steps": 3}, progress=False)
    att = [h["attacked_accuracy"] for h in res.history]
    assert att[0] is None and att[2] is None
    assert 0.0 <= att[1] <= 1.0 and 0.0 <= att[3] <= 1.0
    assert att[3] <= res.history[3]["val_accuracy"] + 1e-9  # a worst case costs accuracy, never adds much


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"epoch": 1})

    def broken(obj, fh):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(os.listdir(tmp_path)) == ["c.pt"]


def test_only_tensors_and_primitives_are_saved(tmp_path):
    with pytest.raises(ValueError, match=r"checkpoint\['opt'\] holds a SGD"):
        save_checkpoint(tmp_path / "x.pt", {"opt": torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1)})
    check_serialisable({"a": [1, 2.0, None, "s", (torch.ones(1),)]})
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_bad_arguments():
    x, y = data()
    with pytest.raises(ValueError, match="epochs"):
        fit(mlp(0), "standard", [(x, y)], epochs=0)
    with pytest.raises(ValueError, match="unknown training method"):
        fit(mlp(0), "nope", [(x, y)], epochs=1)
    with pytest.raises(ValueError, match="no batch"):
        fit(mlp(0), "standard", [], epochs=1, progress=False)
