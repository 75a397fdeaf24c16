"""The robustness tools on networks users build in snnTorch and Norse (docs: README, "Networks from
snnTorch and Norse").

Every training method, mismatch, the weight attack and the loss landscape run on small snnTorch
(``Leaky`` with and without ``init_hidden``, ``RLeaky``, ``Synaptic`` after a ``Conv2d``) and Norse
(``LIFRecurrent``, ``LIFCell`` in ``SequentialState``) networks. The assertions are properties
(weights change, the loss falls on a separable task, m = 0 reproduces the clean accuracy computed
here by a plain forward pass, attacked ≤ clean), never numbers copied from a run.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikerobust.robust import attacked_accuracy, loss_landscape, mismatch_evaluate
from spikerobust.robust.methods import get_method, list_methods
from spikerobust.verify.certify import logit_bounds

snn = pytest.importorskip("snntorch", reason="snntorch is not installed")
from snntorch import utils as snn_utils  # noqa: E402

try:  # Norse is optional: its tests are skipped with a reason when it cannot be imported
    import norse.torch as norse

    NORSE_ERROR = ""
except Exception as exc:  # pragma: no cover - depends on the environment
    norse = None
    NORSE_ERROR = f"norse cannot be imported: {exc!r}"

torch.set_num_threads(1)

T = 6  # time steps
D, H, C = 4, 12, 3


# --------------------------------------------------------------------------- the models
# Every model maps a static batch [B, D] (or [B, 1, 6, 6] for the conv model) to logits [B, C]:
# the input current is repeated over T steps and the logits are the output layer's mean membrane
# potential (snnTorch) or mean output (Norse), the usual readout of both libraries' tutorials.


class SnnLeaky(nn.Module):
    """snnTorch ``Leaky`` layers, explicit state, time loop in forward."""

    def __init__(self):
        super().__init__()
        self.fc1, self.lif1 = nn.Linear(D, H), snn.Leaky(beta=0.8)
        self.fc2, self.lif2 = nn.Linear(H, C), snn.Leaky(beta=0.8, reset_mechanism="none")

    def forward(self, x):
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        out = 0.0
        for _ in range(T):
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            _, mem2 = self.lif2(self.fc2(spk1), mem2)
            out = out + mem2
        return out / T


class SnnLeakyHidden(nn.Module):
    """snnTorch ``Leaky(init_hidden=True)`` in an ``nn.Sequential``: the state lives on the module."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(D, H), snn.Leaky(beta=0.8, init_hidden=True), nn.Linear(H, C))

    def forward(self, x):
        snn_utils.reset(self.net)
        return torch.stack([self.net(x) for _ in range(T)]).mean(0)


class SnnRLeaky(nn.Module):
    """snnTorch ``RLeaky``: recurrent spikes through its own ``nn.Linear``."""

    def __init__(self):
        super().__init__()
        self.fc1, self.rlif = nn.Linear(D, H), snn.RLeaky(beta=0.8, linear_features=H)
        self.fc2 = nn.Linear(H, C)

    def forward(self, x):
        spk, mem = self.rlif.init_rleaky()
        out = 0.0
        for _ in range(T):
            spk, mem = self.rlif(self.fc1(x), spk, mem)
            out = out + self.fc2(spk)
        return out / T


class SnnSynapticConv(nn.Module):
    """snnTorch ``Synaptic`` after an ``nn.Conv2d``, then a dense ``Leaky`` readout."""

    def __init__(self):
        super().__init__()
        self.conv, self.syn = nn.Conv2d(1, 3, 3), snn.Synaptic(alpha=0.7, beta=0.8)
        self.fc, self.lif = nn.Linear(3 * 4 * 4, C), snn.Leaky(beta=0.8, reset_mechanism="none")

    def forward(self, x):
        syn, mem1 = self.syn.init_synaptic()
        mem2 = self.lif.init_leaky()
        out = 0.0
        for _ in range(T):
            spk, syn, mem1 = self.syn(self.conv(x), syn, mem1)
            _, mem2 = self.lif(self.fc(spk.flatten(1)), mem2)
            out = out + mem2
        return out / T


class NorseRecurrent(nn.Module):
    """Norse ``SequentialState(LIFRecurrent, Linear)`` on a time-first sequence."""

    def __init__(self):
        super().__init__()
        self.net = norse.SequentialState(norse.LIFRecurrent(D, H), nn.Linear(H, C))

    def forward(self, x):
        out, _ = self.net(x.unsqueeze(0).expand(T, *x.shape))
        return out.mean(0)


class NorseCell(nn.Module):
    """Norse ``SequentialState(Linear, LIFCell, Linear)`` stepped in a time loop."""

    def __init__(self):
        super().__init__()
        self.net = norse.SequentialState(nn.Linear(D, H), norse.LIFCell(), nn.Linear(H, C))

    def forward(self, x):
        state, out = None, 0.0
        for _ in range(T):
            y, state = self.net(x, state)
            out = out + y
        return out / T


SNNTORCH = {"snntorch_leaky": SnnLeaky, "snntorch_leaky_init_hidden": SnnLeakyHidden, "snntorch_rleaky": SnnRLeaky,
            "snntorch_synaptic_conv": SnnSynapticConv}
NORSE = {"norse_lif_recurrent": NorseRecurrent, "norse_lif_cell": NorseCell}
MODELS = [pytest.param(n, id=n) for n in SNNTORCH] + [
    pytest.param(n, id=n, marks=pytest.mark.skipif(norse is None, reason=NORSE_ERROR or "norse")) for n in NORSE
]


def make(name, seed=0):
    torch.manual_seed(seed)
    model = {**SNNTORCH, **NORSE}[name]()
    if name == "norse_lif_recurrent":  # Norse's default recurrent init is tiny: give the inputs a spiking drive
        with torch.no_grad():
            model.net[0].input_weights.mul_(4.0)
    return model


def toy_data(name, n=48, seed=1):
    """A separable 3-class task: Gaussian blobs (dense models) or a bright quadrant (conv model)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % C
    if name == "snntorch_synaptic_conv":
        x = 0.1 * torch.rand(n, 1, 6, 6, generator=g)
        for i in range(n):
            r, c = divmod(int(y[i]), 2)
            x[i, 0, 3 * r : 3 * r + 3, 3 * c : 3 * c + 3] += 2.0
        return x, y
    centres = 2.0 * torch.randn(C, D, generator=torch.Generator().manual_seed(0)) + 1.0
    return centres[y] + 0.3 * torch.randn(n, D, generator=g), y


def clean_accuracy(model, x, y):
    """Accuracy by a plain forward pass, independent of the robust tools."""
    model.eval()
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    model.train()
    return acc


def method_kwargs(name):
    return {"adversarial": {"n_steps": 2}, "entropy_sgd": {"n_langevin": 2}}.get(name, {})


# --------------------------------------------------------------------------- training


@pytest.mark.parametrize("model_name", MODELS)
@pytest.mark.parametrize("method_name", list_methods())
def test_one_step_of_every_method_changes_the_weights_and_gives_a_finite_loss(model_name, method_name):
    model = make(model_name)
    x, y = toy_data(model_name)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    opt = (torch.optim.SGD if method_name == "abcd" else torch.optim.Adam)(model.parameters(), lr=1e-2)
    try:
        method = get_method(method_name, **method_kwargs(method_name))
    except TypeError:  # a method without that hyper-parameter: defaults
        method = get_method(method_name)
    metrics = method.step(model, x, y, opt)
    assert math.isfinite(metrics["loss"])
    changed = [k for k, v in model.named_parameters() if not torch.equal(v.detach(), before[k])]
    assert changed, f"{method_name} changed no weight of {model_name}"
    assert all(torch.isfinite(v).all() for v in model.parameters())


@pytest.mark.parametrize("model_name", MODELS)
def test_the_loss_falls_on_a_separable_task(model_name):
    model = make(model_name)
    x, y = toy_data(model_name)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    method = get_method("standard")
    with torch.no_grad():
        before = float(F.cross_entropy(model(x), y))
    for _ in range(15):
        method.step(model, x, y, opt)
    with torch.no_grad():
        after = float(F.cross_entropy(model(x), y))
    assert after < 0.8 * before, (before, after)


# --------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize("model_name", MODELS)
def test_mismatch_at_zero_is_the_clean_accuracy_and_attack_does_not_help(model_name):
    model = make(model_name)
    x, y = toy_data(model_name)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(10):
        get_method("standard").step(model, x, y, opt)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    clean = clean_accuracy(model, x, y)

    res = mismatch_evaluate(model, (x, y), levels=(0.0, 0.5), n_draws=4, progress=False)
    assert res.accuracies[0.0].shape == (1,) and res.accuracies[0.5].shape == (4,)
    assert float(res.accuracies[0.0][0]) == pytest.approx(clean, abs=1e-6)
    assert ((res.accuracies[0.5] >= 0) & (res.accuracies[0.5] <= 1)).all()

    attacked = attacked_accuracy(model, (x, y), epsilon=0.5, n_steps=3, progress=False)
    assert 0.0 <= attacked <= clean + 1e-6

    land = loss_landscape(model, (x, y), n_directions=2, n_alphas=5, window=1, progress=False)
    i0 = int(torch.argmin(land.alphas.abs()))
    assert float(land.alphas[i0]) == 0.0
    model.eval()
    with torch.no_grad():
        ce = float(F.cross_entropy(model(x), y))
    assert torch.allclose(land.losses[:, i0].double(), torch.full((2,), ce, dtype=torch.float64), rtol=1e-4)
    assert torch.isfinite(land.losses).all()

    for k, v in model.state_dict().items():  # no tool leaves the model changed
        assert torch.equal(v, state[k]), k


@pytest.mark.parametrize("model_name", MODELS)
def test_the_interval_verifier_refuses_spiking_peer_models_with_a_reason(model_name):
    model = make(model_name)
    x, _ = toy_data(model_name, n=4)
    with pytest.raises(ValueError, match="unsupported model.*not verified"):
        logit_bounds(model, x, epsilon=0.01)


def test_a_sequential_with_an_snntorch_neuron_names_the_layer_it_cannot_bound():
    model = nn.Sequential(nn.Linear(D, H), snn.Leaky(beta=0.8, init_hidden=True), nn.Linear(H, C))
    with pytest.raises(ValueError, match=r"\[1\] Leaky.*spiking neuron layers"):
        logit_bounds(model, torch.randn(2, D), epsilon=0.01)


def test_an_snntorch_network_survives_the_nir_round_trip_with_the_same_spikes(tmp_path):
    """examples/snntorch_nir_ecg.py's network: export, write, read, import; identical spikes and logits."""
    nir = pytest.importorskip("nir", reason="nir is not installed (pip install --no-deps nir nirtorch h5py)")
    pytest.importorskip("nirtorch", reason="nirtorch is not installed")
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "snntorch_nir_ecg", Path(__file__).resolve().parents[2] / "examples" / "snntorch_nir_ecg.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    torch.manual_seed(0)
    model = example.build(n_hidden=12)
    with torch.no_grad():
        model.net[0].weight.mul_(3.0)
    x = torch.randn(20, 5, 2)
    y = torch.arange(5) % 4
    trip = example.round_trip(model, [(x, y)], tmp_path / "net.nir")
    assert (tmp_path / "net.nir").stat().st_size > 0
    assert list(trip["nodes"].values()) == ["Input", "Affine", "LIF", "Affine", "LIF", "Output"]
    assert 0 < trip["hidden_spikes_per_step"] < 1
    assert trip["hidden_spike_agreement"] == 1.0 and trip["output_spike_agreement"] == 1.0
    assert trip["prediction_agreement"] == 1.0
    with torch.no_grad():  # the example's step-wise logits are the model's own forward
        acc = float((model(x).argmax(1) == y).float().mean())
    assert trip["accuracy_original"] == pytest.approx(acc)
    assert nir is not None
