"""Presets against the paper's protocols (docs/), config files and overrides, and clear errors for bad fields."""

import doctest

import pytest

import spikerobust.experiments.config as config_module
from spikerobust.experiments import ExperimentConfig, make_config, parse_method, parse_methods
from spikerobust.experiments.config import lr_milestones as _milestones


def test_paper_presets_follow_spec():
    ecg = make_config("ecg", "paper")
    # docs/lsnn.md and docs/tasks.md: 3350 beats per class, N = 256, Adam 1e-3 for 150 epochs then 1e-4 for 50, batch 100
    assert (ecg.n_per_class, ecg.n_hidden, ecg.epochs, ecg.lr, ecg.batch_size) == (3350, 256, 200, 1e-3, 100)
    assert _milestones(ecg) == (150,)
    speech = make_config("speech", "paper")  # 80 + 20 epochs
    assert (speech.epochs, _milestones(speech), speech.n_hidden) == (100, (80,), 256)
    fm = make_config("fmnist", "paper")  # Adam 1e-4 then 1e-5
    assert fm.lr == 1e-4 and len(_milestones(fm)) == 1
    for cfg in (ecg, speech, fm):  # docs/evaluation.md and docs/verification.md protocols
        assert cfg.levels == (0.0, 0.1, 0.2, 0.3, 0.5, 0.7) and cfg.n_draws == 100
        assert cfg.attack_eps == (0.0, 0.005, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5)
        assert cfg.zetas == (0.0, 1e-5, 5e-5, 1e-4, 5e-4, 1e-3)
        assert (cfg.landscape_directions, cfg.landscape_points) == (5, 50)
        assert list(cfg.methods) == ["standard", "forward_noise", "beta", "fn+beta", "awp", "dropout", "amp"]
    # docs/robust-training.md: β_rob ECG 0.25 (0.1 with forward noise), speech 0.5, CNN 0.25 (0.1); η = 0.3
    assert ecg.methods["beta"] == {"method": "adversarial", "beta": 0.25}
    assert ecg.methods["fn+beta"] == {"method": "forward_noise", "eta": 0.3, "beta": 0.1}
    assert speech.methods["beta"]["beta"] == 0.5 and fm.methods["fn+beta"]["beta"] == 0.1


def test_quick_preset_uses_fewer_attack_steps():
    quick = make_config("ecg", "quick")
    assert quick.methods["beta"] == {"method": "adversarial", "beta": 0.25, "n_steps": 3}
    assert quick.methods["awp"]["n_steps"] == 3 and "n_steps" not in quick.methods["forward_noise"]
    assert "n_steps" not in make_config("ecg", "paper").methods["awp"]


def test_file_then_overrides(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('epochs = 7\nn_hidden = 32\nmethods = "standard,beta"\n')
    cfg = make_config("ecg", "quick", config_file=toml, overrides={"n_hidden": 8})
    assert (cfg.epochs, cfg.n_hidden) == (7, 8)
    assert cfg.methods == {"standard": {"method": "standard"},
                           "beta": {"method": "adversarial", "beta": 0.25, "n_steps": 3}}
    js = tmp_path / "c.json"
    js.write_text('{"levels": [0, 0.3]}')
    assert make_config("ecg", "quick", config_file=js).levels == (0.0, 0.3)
    assert ExperimentConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("field, value, message", [
    ("epochs", 0, "'epochs' must be an integer >= 1"),
    ("levels", [0.1, -0.5], "'levels' must be a non-empty list"),
    ("levels", [0.1, 0.5], "containing 0"),
    ("lr", float("nan"), "'lr' must be a finite number"),
    ("split", "patient", "'split' must be"),
    ("methods", {"x": {"method": "nonsense"}}, "unknown method 'nonsense'"),
    ("attack_objective", "hinge", "'attack_objective'"),
    ("n_test", 0, "'n_test' must be null or an integer"),
])
def test_bad_fields_name_themselves(field, value, message):
    with pytest.raises(ValueError, match=message):
        make_config("ecg", "quick", overrides={field: value})


def test_other_errors(tmp_path):
    with pytest.raises(ValueError, match="task must be one of"):
        make_config("cifar", "quick")
    with pytest.raises(ValueError, match="preset must be one of"):
        make_config("ecg", "slow")
    bad = tmp_path / "c.yaml"
    bad.write_text("epochs: 3")
    with pytest.raises(ValueError, match=r"\.json or \.toml"):
        make_config("ecg", "quick", config_file=bad)
    with pytest.raises(ValueError, match="does not exist"):
        make_config("ecg", "quick", config_file=tmp_path / "none.json")
    with pytest.raises(ValueError, match="'task' is 'speech'"):
        make_config("ecg", "quick", overrides={"task": "speech"})


def test_parse_methods():
    assert parse_methods("standard,fn+beta", "speech") == {
        "standard": {"method": "standard"}, "fn+beta": {"method": "forward_noise", "eta": 0.3, "beta": 0.5}}
    assert parse_methods("beta:n_steps=3;epsilon=0.2") == {
        "beta": {"method": "adversarial", "beta": 0.25, "n_steps": 3, "epsilon": 0.2}}
    assert parse_methods("abcd,x=awp:gamma=0.5") == {"abcd": {"method": "abcd"}, "x": {"method": "awp", "gamma": 0.5}}
    with pytest.raises(ValueError, match="key=value"):
        parse_methods("beta:n_steps")
    with pytest.raises(ValueError, match="no method"):
        parse_methods(" , ")


def test_parse_method_takes_the_preset_kwargs_and_exactly_one_method():
    # the paper preset keeps the method's own N_steps (docs/robust-training.md: 10); quick shortens the attack to 3
    assert parse_method("beta", "ecg", "paper") == ("beta", {"method": "adversarial", "beta": 0.25})
    assert parse_method("beta", "ecg", "quick") == ("beta", {"method": "adversarial", "beta": 0.25, "n_steps": 3})
    with pytest.raises(ValueError, match="expected one method, got 2"):
        parse_method("standard,beta")


def test_docstring_examples():
    assert doctest.testmod(config_module).failed == 0


def test_defaults_are_read_from_the_quick_ecg_preset_and_spec():
    from spikerobust.experiments.presets import preset
    from spikerobust.robust.spec import EVAL_OBJECTIVE

    quick, cfg = preset("ecg", "quick"), ExperimentConfig()
    for name, value in quick.items():
        assert getattr(cfg, name) == value, name
    assert cfg.attack_objective == EVAL_OBJECTIVE
    assert cfg == make_config("ecg", "quick")


def test_a_saved_run_config_loads(tmp_path):
    # a config.json as earlier versions wrote it: every field, methods with their flat kwargs
    # (AMP's old epsilon included), attack_eps and zetas under their old names
    import json
    import warnings

    saved = make_config("ecg", "quick").to_dict()
    saved["methods"] = {"beta": {"method": "adversarial", "beta": 0.25, "n_steps": 3, "epsilon": 0.1,
                                 "sigma_init": 0.001, "eps_c": 0.0, "objective": "kl"},
                        "fn+beta": {"method": "forward_noise", "eta": 0.3, "beta": 0.1, "n_steps": 3},
                        "awp": {"method": "awp", "n_steps": 3, "epsilon": 0.2, "gamma": 0.1},
                        "pcm": {"method": "noise_injection", "eta": 0.05, "mode": "layer_range", "beta": 0.1,
                                "clip_sigma": 2.0},
                        "amp": {"method": "amp", "epsilon": 0.5}}
    saved["attack_eps"], saved["zetas"] = [0.0, 0.1], [0.0, 1e-4]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(saved))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cfg = ExperimentConfig.from_dict(config_module.read_config_file(path))
    assert cfg.attack_eps == (0.0, 0.1) and cfg.zetas == (0.0, 1e-4)
    assert config_module.build_method(cfg.methods["fn+beta"]).n_steps == 3
    with pytest.warns(DeprecationWarning, match="radius"):
        assert config_module.build_method(cfg.methods["amp"]).radius == 0.5


def test_build_method_names_a_setting_the_method_does_not_take():
    with pytest.raises(ValueError, match=r"'x' \(adversarial\) has no setting 'n_step' .* takes beta, n_steps"):
        config_module.build_method({"method": "adversarial", "n_step": 3}, "x")
    with pytest.raises(ValueError, match="'y' .* n_steps must be an integer >= 0"):
        config_module.build_method({"method": "adversarial", "n_steps": -2}, "y")


def test_parse_set_reads_json_values_once():
    assert config_module.parse_set(["epochs=5", "levels=[0, 0.5]", "out-dir=runs/a", "methods=standard,beta"]) == {
        "epochs": 5, "levels": [0, 0.5], "out_dir": "runs/a", "methods": "standard,beta"}
    with pytest.raises(ValueError, match="key=value"):
        config_module.parse_set(["epochs"])


def test_a_method_attack_can_be_written_as_a_mapping():
    cfg = make_config("ecg", "quick", overrides={"methods": {"b": {"method": "adversarial", "beta": 0.5,
                                                                   "attack": {"epsilon": 0.2, "n_steps": 2}}}})
    method = config_module.build_method(cfg.methods["b"])
    assert (method.epsilon, method.n_steps, method.sigma_init) == (0.2, 2, 1e-3)
    with pytest.raises(ValueError, match="unknown attack setting 'eps'"):
        make_config("ecg", "quick", overrides={"methods": {"b": {"method": "adversarial", "attack": {"eps": 0.2}}}})
