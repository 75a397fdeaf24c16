"""Reliability of the run folder and the command: resume contract, no destroyed results, locks,
workers that end with their parent, broken models refused, configuration checked up front, and
one clean error line for every failure a user can cause."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from spikerobust.cli import main
from spikerobust.experiments import load_model, make_config, run_reproduce
from spikerobust.robust.checkpoint import FolderLockedError, atomic_write, load_checkpoint, lock_folder
from spikerobust.robust.trainer import ResumeMismatchError, fit

TINY = ["--set", "n_per_class=20", "--set", "n_hidden=12", "--set", "batch_size=40", "--set", "lr_drop_at=1",
        "--no-progress"]


def _train(out, *extra):
    return main(["train", "ecg", "--method", "standard", "--out-dir", str(out), *TINY, *extra])


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory):
    """A finished one-epoch run at lr 0.01 (copied by the tests that change it)."""
    out = tmp_path_factory.mktemp("run") / "r"
    assert _train(out, "--epochs", "1", "--set", "lr=0.01") == 0
    return out


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


# ----------------------------------------------------------------------------- 1. resume contract


def test_resume_with_other_settings_names_each_field(one_epoch, tmp_path):
    out = _copy(one_epoch, tmp_path / "r")
    with pytest.raises(ResumeMismatchError) as err:
        _train(out, "--epochs", "2", "--set", "lr=0.05", "--resume")
    assert "epochs: 1 there, 2 now" in str(err.value) and "lr: 0.01 there, 0.05 now" in str(err.value)
    assert "--allow-change epochs,lr" in str(err.value)
    with pytest.raises(ResumeMismatchError, match="n_per_class: 20 there, 30 now") as err:
        _train(out, "--epochs", "1", "--set", "lr=0.01", "--set", "n_per_class=30", "--resume")
    assert "--allow-change" not in str(err.value)  # the data cannot change within a run
    with pytest.raises(ValueError, match="'seed' cannot change within a run"):
        _train(out, "--epochs", "1", "--resume", "--allow-change", "seed")
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 1  # nothing was trained or rewritten
    assert json.loads((out / "config.json").read_text())["lr"] == 0.01


def test_deliberate_change_is_applied_and_recorded(one_epoch, tmp_path):
    out = _copy(one_epoch, tmp_path / "r")
    first = load_checkpoint(out / "checkpoints" / "last.pt")
    assert _train(out, "--epochs", "2", "--set", "lr=0.05", "--resume", "--allow-change", "lr,epochs") == 0
    _, meta = load_model(out / "model.pt")
    hist = meta["info"]["history"]
    assert [h["lr"] for h in hist] == [0.01, 0.05]  # the new lr is used, not the optimiser's old one
    assert hist[1]["changes"] == {"epochs": [1, 2], "lr": [0.01, 0.05]} and "changes" not in hist[0]
    assert meta["info"]["changes"] == [{"after_epoch": 1, "fields": {"epochs": [1, 2], "lr": [0.01, 0.05]}}]
    # train_s counts the whole run, not only the resumed epoch
    assert meta["info"]["train_s"] > first["train_s"] > 0


def test_resume_refuses_other_data(tmp_path):
    x, y = torch.randn(32, 3), torch.randint(0, 2, (32,))
    batches = [(x[:16], y[:16]), (x[16:], y[16:])]
    fit(torch.nn.Linear(3, 2), "standard", batches, epochs=1, checkpoint_dir=tmp_path, progress=False,
        settings={"seed": 0, "data_fingerprint": "aaa"})
    with pytest.raises(ResumeMismatchError, match="data_fingerprint: 'aaa' there, 'bbb' now"):
        fit(torch.nn.Linear(3, 2), "standard", batches, epochs=1, checkpoint_dir=tmp_path, progress=False,
            settings={"seed": 0, "data_fingerprint": "bbb"})


# ----------------------------------------------------------------------------- 2. never destroy a result


def test_a_run_folder_needs_resume_or_overwrite(one_epoch, tmp_path):
    out = _copy(one_epoch, tmp_path / "r")
    before = (out / "model.pt").read_bytes()
    with pytest.raises(ValueError, match="holds a run .*--resume .*--overwrite"):
        _train(out, "--epochs", "1")
    assert (out / "model.pt").read_bytes() == before
    cfg = make_config("ecg", "quick", overrides={"out_dir": str(out), "n_per_class": 20, "n_hidden": 12,
                                                 "methods": "standard", "progress": False})
    with pytest.raises(ValueError, match="holds a run"):
        run_reproduce(cfg)
    assert _train(out, "--epochs", "1", "--set", "seed=3", "--overwrite") == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 3


def test_files_are_written_atomically_and_readable(one_epoch, tmp_path):
    mode = 0o666 & ~_umask()
    for name in ("model.pt", "config.json", "checkpoints/last.pt"):
        assert (one_epoch / name).stat().st_mode & 0o777 == mode, name
    path = atomic_write(tmp_path / "a" / "b.txt", "new")
    assert path.read_text() == "new" and sorted(os.listdir(tmp_path / "a")) == ["b.txt"]  # no temporary left


def _umask():
    m = os.umask(0o022)
    os.umask(m)
    return m


# ----------------------------------------------------------------------------- 3. locks and orphans


def test_a_locked_run_folder_refuses_a_second_writer(tmp_path):
    out = tmp_path / "r"
    with lock_folder(out):
        with pytest.raises(FolderLockedError, match=f"{out}.* in use by another process \\(pid {os.getpid()}\\)"):
            _train(out, "--epochs", "1")
    assert not (out / "config.json").exists()
    assert _train(out, "--epochs", "1") == 0  # released


WORKER_PARENT = textwrap.dedent("""
    import os, signal, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context
    from spikerobust.experiments.orchestrate import _worker_init
    pool = ProcessPoolExecutor(1, mp_context=get_context("spawn"), initializer=_worker_init,
                               initargs=(os.getpid(),))
    pid = pool.submit(os.getpid).result()
    pool.submit(time.sleep, 300)
    print(pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def _alive(pid):
    try:
        with open(f"/proc/{pid}/status") as fh:
            return "\nState:\tZ" not in fh.read()
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_workers_die_with_their_parent():
    proc = subprocess.run([sys.executable, "-c", WORKER_PARENT], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pid = int(proc.stdout.split()[0])
    for _ in range(100):  # a poll, not a timing assertion: the worker must end at some point
        if not _alive(pid):
            break
        time.sleep(0.1)
    alive = _alive(pid)
    if alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "the pool worker outlived its parent"


# ----------------------------------------------------------------------------- 4. broken models, leaking splits


def _nan_copy(src, dst):
    state = torch.load(src, weights_only=True)
    name = next(k for k, v in state["state_dict"].items() if v.is_floating_point())
    state["state_dict"][name] = torch.full_like(state["state_dict"][name], float("nan"))
    torch.save(state, dst)
    return name


def test_a_model_with_nan_weights_is_refused(one_epoch, tmp_path):
    name = _nan_copy(one_epoch / "model.pt", tmp_path / "nan.pt")
    with pytest.raises(ValueError, match=f"non-finite weights \\(NaN or infinity in {name}"):
        load_model(tmp_path / "nan.pt")
    for cmd in (["verify", str(tmp_path / "nan.pt"), "--zetas", "1e-4"],
                ["evaluate", str(tmp_path / "nan.pt"), "--parts", "mismatch", "--n-draws", "1"]):
        with pytest.raises(ValueError, match="non-finite weights"):
            main(cmd + ["--no-progress"])


def test_evaluate_keeps_the_models_split_unless_asked(one_epoch, caplog):
    with pytest.raises(ValueError, match=r"seed=5 \(the model was trained with 0\).*--resplit"):
        main(["verify", str(one_epoch / "model.pt"), "--zetas", "0", "--set", "seed=5", "--no-progress"])
    with pytest.raises(ValueError, match=r"n_per_class=30 \(the model was trained with 20\)"):
        main(["verify", str(one_epoch / "model.pt"), "--zetas", "0", "--set", "n_per_class=30", "--no-progress"])
    assert main(["verify", str(one_epoch / "model.pt"), "--zetas", "0", "--set", "seed=5", "--resplit",
                 "--no-progress"]) == 0
    assert "data settings other than the model's (seed)" in caplog.text and "test split changes" in caplog.text


# ----------------------------------------------------------------------------- 5. settings checked up front


@pytest.mark.parametrize("argv, message", [
    (["--methods", "standard,b=adversarial:betta=0.1"], "'b' \\(adversarial\\) has no setting 'betta' \\(value 0.1\\); "
                                                        "adversarial takes beta, n_steps"),
    (["--methods", "standard,b=adversarial:beta=-1"], "'b' \\(adversarial\\) with \\{'beta': -1\\}: beta must be >= 0"),
    (["--methods", ""], "field 'methods': no method in ''"),
    (["--set", "landscape_points=5"], "'landscape_points' must be an integer >= 6 .*got 5"),
    (["--set", "seed=abc"], "'seed' must be an integer >= 0, got 'abc'"),
    (["--set", "seed=1.5"], "'seed' must be an integer >= 0, got 1.5"),
    (["--set", "seed=-1"], "'seed' must be an integer >= 0, got -1"),
    (["--set", "lr_drop_at=x"], "'lr_drop_at' must be a fraction in \\(0, 1\\], got 'x'"),
    (["--set", 'levels=["a"]'], "'levels' must be a non-empty list of finite numbers >= 0, got \\['a'\\]"),
    (["--levels", "0,a"], "--levels: expected a comma list of numbers, got '0,a'"),
    (["--set", "preset=foo"], "'preset' must be \"quick\" or \"paper\", got 'foo'"),
    (["--set", "progress=maybe"], "'progress' must be true or false, got 'maybe'"),
    (["--set", "membrane_samples=true"], "'membrane_samples' must be an integer >= 0, got True"),
])
def test_reproduce_settings_fail_before_any_data(argv, message, tmp_path, monkeypatch):
    from spikerobust.experiments import orchestrate

    monkeypatch.setattr(orchestrate, "load_task", lambda cfg: pytest.fail("data loaded before the settings were checked"))
    with pytest.raises(ValueError, match=message):
        main(["reproduce", "ecg", "--out-dir", str(tmp_path / "o"), *argv])
    assert not (tmp_path / "o").exists()


def test_evaluate_parts_checked_before_the_model_loads(tmp_path):
    missing = str(tmp_path / "none.pt")
    with pytest.raises(ValueError, match="--parts: no part given"):
        main(["evaluate", missing, "--parts", ""])
    with pytest.raises(ValueError, match=r"--parts: unknown part\(s\) \['mismach'\]"):
        main(["evaluate", missing, "--parts", "mismach"])


def test_an_unwritable_cache_only_warns(tmp_path, monkeypatch, caplog):
    from spikerobust.datasets import SyntheticECG

    (tmp_path / "file").write_text("")
    monkeypatch.setenv("SPIKEROBUST_CACHE", str(tmp_path / "file" / "cache"))
    ds = SyntheticECG(split="train", beats_per_class=20)
    assert len(ds) > 0 and "continuing without caching" in caplog.text


# ----------------------------------------------------------------------------- 6. the error contract


def _fails(argv, capsys):
    """Run the command as from a shell: its exit status and the lines it printed on stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(argv, raise_errors=False)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if not ln.startswith(("INFO ", "WARNING "))]
    assert "Traceback" not in err and len(lines) == 1, err
    return exc.value.code, lines[0]


def _gz_fmnist(folder):
    import gzip

    import numpy as np

    def idx(arr):
        return bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape) + arr.tobytes()

    folder.mkdir()
    for prefix in ("train", "t10k"):
        images = gzip.compress(idx(np.zeros((20, 28, 28), np.uint8)))
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(images[: len(images) // 2] if prefix == "t10k" else images)
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx(np.arange(20, dtype=np.uint8) % 10)))
    return folder / "t10k-images-idx3-ubyte.gz"


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_every_user_error_is_one_line_with_a_status(tmp_path, capsys):
    tiny = ["--set", "n_per_class=20", "--set", "n_hidden=12", "--epochs", "1", "--no-progress"]
    (tmp_path / "bad.json").write_text('{"epochs": 3,}')
    (tmp_path / "bad.toml").write_text("epochs = = 3")
    (tmp_path / "afile").write_text("")
    (tmp_path / "text.pt").write_text("hello")
    marker = tmp_path / "ran"
    torch.save({"format": "spikerobust.model/1", "x": _Evil(marker)}, tmp_path / "evil.pt")
    truncated = _gz_fmnist(tmp_path / "fm")
    cases = [
        (["train", "ecg", "--config", str(tmp_path / "bad.json"), *tiny], 2, "bad.json' is not valid JSON"),
        (["train", "ecg", "--config", str(tmp_path / "bad.toml"), *tiny], 2, "bad.toml' is not valid TOML"),
        (["train", "ecg", "--out-dir", str(tmp_path / "afile"), *tiny], 2, "afile' is a file, not a folder"),
        (["train", "ecg", "--out-dir", str(tmp_path / "afile" / "sub"), *tiny], 1,
         "afile/sub: cannot create the run folder"),
        (["evaluate", str(tmp_path / "text.pt")], 2, "text.pt' is not a readable PyTorch checkpoint"),
        (["verify", str(tmp_path / "evil.pt")], 2, "refused to load .*evil.pt'.*could run code"),
        (["train", "fmnist", "--data-dir", str(tmp_path / "fm"), "--out-dir", str(tmp_path / "f"), "--epochs", "1",
          "--no-progress"], 2, f"task 'fmnist': .*cannot read IDX file {truncated}"),  # found, not "needs the files"
        (["train", "ecg", "--out-dir", str(tmp_path / "o"), "--set", "lr=1e38", *tiny], 1,
         "numerical overflow at epoch 1, step 1 .*learning rate 1e\\+38"),
    ]
    import re

    for argv, status, message in cases:
        code, line = _fails(argv, capsys)
        assert code == status and line.startswith(f"spikerobust {argv[0]}: error: "), (argv, code, line)
        assert re.search(message, line), (message, line)
        assert "weights_only=False" not in line
    assert not marker.exists()
    with pytest.raises(ValueError, match="not valid JSON"):  # --debug: the exception and its traceback
        main(["train", "ecg", "--config", str(tmp_path / "bad.json"), "--debug"], raise_errors=False)


# ----------------------------------------------------------------------------- 10, 11. silent wrong results, cosmetics


def _record_without_class_r(folder):
    """One record with N, V and L beats (the tiny record of tests/datasets/test_ecg_tiny.py, R → N)."""
    import numpy as np

    wfdb = pytest.importorskip("wfdb")
    beats = [200, 500, 1100, 1450, 1700]
    mlii = np.zeros(1800)
    for a, nxt in zip(beats[:-1], beats[1:]):
        mlii[a + 4], mlii[nxt - 25] = 100.0, 200.0
    sig = np.stack([np.arange(3600, dtype=float), np.repeat(mlii, 2)], axis=1).astype(np.int64)
    wfdb.wrsamp("900", fs=360, units=["mV", "mV"], sig_name=["V1", "MLII"], d_signal=sig, fmt=["16", "16"],
                adc_gain=[1.0, 1.0], baseline=[0, 0], write_dir=str(folder))
    ann = [(400, "N"), (1000, "V"), (1700, "+"), (2200, "L"), (2900, "N"), (3400, "N")]
    wfdb.wrann("900", "atr", np.array([a for a, _ in ann]), symbol=[c for _, c in ann], write_dir=str(folder))


def test_an_mitbih_folder_missing_a_class_names_it(tmp_path):
    from spikerobust.datasets import MITBIH

    _record_without_class_r(tmp_path)
    with pytest.raises(ValueError, match="no beat of class R in the records used"):
        MITBIH(tmp_path, split="train", records=["900"], beats_per_class=1, cache_dir=tmp_path / "c")


def test_mismatch_and_model_arguments_are_checked():
    from spikerobust.nn.lsnn import LSNNClassifier
    from spikerobust.robust.mismatch import mismatch_evaluate

    model, x = torch.nn.Linear(3, 4), torch.randn(8, 3)
    for label in (7, -1):
        with pytest.raises(ValueError, match=f"label {label} in batch 0 is outside the model's 4 classes"):
            mismatch_evaluate(model, (x, torch.full((8,), label)), levels=(0, 0.1), n_draws=2, progress=False)
    with pytest.raises(ValueError, match="n_draws must be an integer >= 1, got 2.5"):
        mismatch_evaluate(model, (x, torch.zeros(8, dtype=torch.long)), levels=(0, 0.1), n_draws=2.5, progress=False)
    with pytest.raises(ValueError, match="d_in must be a positive integer, got 2.5"):
        LSNNClassifier(d_in=2.5, n_hidden=4, n_classes=2)


NO_PROGRESS = textwrap.dedent("""
    import sys
    import spikerobust.cli as cli

    def fake_train(args):  # what a dataset does: a bar without a disable= argument
        from tqdm.auto import tqdm
        print("disabled" if tqdm(range(2), desc="MIT-BIH records").disable else "enabled")
        return 0

    cli._train = fake_train
    sys.exit(cli.main(["train", "ecg", *sys.argv[1:]], raise_errors=False))
""")


def test_no_progress_turns_off_the_datasets_bars_too():
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    for flags, want in (([], "enabled"), (["--no-progress"], "disabled")):
        proc = subprocess.run([sys.executable, "-c", NO_PROGRESS, *flags], capture_output=True, text=True, env=env,
                              timeout=120)
        assert proc.returncode == 0 and proc.stdout.split() == [want], (proc.stdout, proc.stderr)
