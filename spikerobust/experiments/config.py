"""Configuration of the experiment pipelines, as a dataclass that round-trips through JSON.

A config is built from a task's preset (:mod:`.presets`), then a config file (JSON, or TOML on
Python ≥ 3.11), then ``key=value`` overrides: :func:`make_config` does all three and checks
every field, so a typo or a bad value fails before any training with a message naming the field.

Examples:
    >>> cfg = make_config("ecg", "quick", overrides={"epochs": 3})
    >>> cfg.n_hidden, cfg.epochs, cfg.lr_drop_at, cfg.methods["beta"]
    (64, 3, 0.8, {'method': 'adversarial', 'beta': 0.25, 'n_steps': 3})
    >>> sorted(cfg.methods)[:3]
    ['amp', 'awp', 'beta']
    >>> make_config("ecg", "quick", overrides={"epoch": 3})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown config field 'epoch' (known: ...)
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from ..robust.spec import EVAL_OBJECTIVE, OBJECTIVE_NAMES
from .presets import PAPER_METHODS, PRESETS, preset, preset_methods

__all__ = ["ExperimentConfig", "ReproduceConfig", "make_config", "read_config_file", "parse_methods", "parse_method",
           "parse_set", "build_method", "paper_methods", "TASKS", "EVAL_FIELDS", "CHANGEABLE_FIELDS", "DATA_FIELDS",
           "ATTACK_OBJECTIVES", "check_allow_change", "lr_milestones"]

TASKS = tuple(PRESETS)
#: objectives of the test-time attack a config may name (``"madry"`` is the same as ``"ce"``)
ATTACK_OBJECTIVES = tuple(n for n in OBJECTIVE_NAMES if n != "madry")
#: the task and preset whose settings are :class:`ExperimentConfig`'s field defaults
DEFAULT_TASK, DEFAULT_PRESET = "ecg", "quick"
_DEFAULTS = preset(DEFAULT_TASK, DEFAULT_PRESET)


def paper_methods(task: str = DEFAULT_TASK, preset_name: str = DEFAULT_PRESET) -> Dict[str, dict]:
    """The paper's methods of ``task`` with the kwargs of preset ``preset_name``, by label."""
    return {k: v for k, v in preset_methods(task, preset_name).items() if k in PAPER_METHODS(task)}

#: fields that do not change what is computed (ignored when a resumed run checks its config)
RUNTIME_FIELDS = ("out_dir", "jobs", "progress")
#: fields that decide only the evaluation, not the training (``seeds``: how many models' mismatch draws
#: are pooled; each model's training does not depend on it)
EVAL_FIELDS = ("seeds", "levels", "n_draws", "attack_eps", "attack_objective", "zetas", "landscape_points",
               "landscape_directions", "membrane_samples")
#: fields a resumed run may change deliberately (``--allow-change``): the schedule and the evaluation
CHANGEABLE_FIELDS = ("lr", "epochs", "lr_drop_at") + EVAL_FIELDS
#: fields that decide which samples land in which split
DATA_FIELDS = ("data_dir", "split", "composition", "n_per_class", "n_train", "n_test", "seed")


def check_allow_change(names) -> Tuple[str, ...]:
    """The field names of ``--allow-change`` (a comma string or a sequence), each one checked.

    Raises:
        ValueError: a name that is not a field a resume may change.

    Examples:
        >>> check_allow_change("lr,epochs")
        ('lr', 'epochs')
    """
    if isinstance(names, str):
        names = [names]
    out = tuple(n.strip().replace("-", "_") for item in names or () for n in str(item).split(",") if n.strip())
    for n in out:
        if n not in CHANGEABLE_FIELDS:
            raise ValueError(f"--allow-change: {n!r} cannot change within a run (allowed: {', '.join(CHANGEABLE_FIELDS)}); "
                             "the data, model and method settings need a new run (another --out-dir, or --overwrite)")
    return out


@dataclass
class ExperimentConfig:
    """Everything a pipeline needs. Defaults are the ECG ``quick`` preset, read from :mod:`.presets`.

    Attributes:
        task: ``"ecg"`` (MIT-BIH with ``data_dir``, else synthetic beats), ``"speech"`` (Speech
            Commands or FSDD with ``data_dir``, else synthetic espeak-ng keywords) or ``"fmnist"``
            (Fashion-MNIST IDX files; ``data_dir`` or the Debian package location).
        preset: the preset the config started from (``"quick"`` or ``"paper"``), for the report.
        data_dir: folder of the real data (see ``task``); ``None`` → the offline default.
        split: ECG only: ``"random"`` (the paper's 80/10/10) or ``"record"`` (patient-wise).
        composition: ECG only: which beats make up the data set: ``"random"`` (a seeded random
            choice of ``n_per_class`` beats per class over all records) or ``"paper"`` (the authors'
            peak filter and the first beats of each class in record order; see
            :class:`~spikerobust.datasets.MITBIH`).
        n_per_class: ECG beats per class after balancing (paper 3350).
        n_train, n_test: cap on training / test samples (``None``: all; F-MNIST quick uses a subset).
        augment: speech only: augment the training clips afresh every batch (random time shift up to
            ±100 ms, background noise at the reference's levels); validation and test stay clean.
        standardize: speech only: standardise each MFCC with training statistics (not the paper's).
        n_hidden: LSNN neurons (paper 256); unused by the CNN.
        epochs, lr, lr_drop_at, batch_size: Adam with the learning rate divided by 10 after
            ``round(lr_drop_at · epochs)`` epochs (ECG 150/200, speech 80/100).
        methods: label → ``{"method": registered name, **kwargs}``.
        levels, n_draws: mismatch protocol (docs/evaluation.md).
        attack_eps, attack_objective: relative boxes ε of the test-time weight attack and its
            objective (docs/evaluation.md: CE); ε has the meaning of
            :class:`~spikerobust.robust.spec.AttackSpec`'s ``epsilon``.
        zetas: relative half-widths ε of the verifier's interval box |θ' − θ| ≤ ε|θ|, the same
            box as the attack's (docs/verification.md; the field keeps its name so that saved
            configs load).
        landscape_points, landscape_directions: weight-loss landscape resolution (docs/evaluation.md).
        membrane_samples: test samples whose membrane potentials are histogrammed (LSNN only).
        seed: seed of data splits, initialisation, training and evaluation.
        seeds: models trained per method in ``reproduce`` (the paper pooled 2): seeds ``seed``,
            ``seed + 1``, ...; all on the data split of ``seed``; the mismatch statistics pool the
            draws of all of them, the other measurements are the first model's.
        out_dir: output folder. jobs: methods trained in parallel processes. progress: tqdm bars.
    """

    task: str = DEFAULT_TASK
    preset: str = DEFAULT_PRESET
    data_dir: Optional[str] = None
    split: str = "random"
    composition: str = "random"
    n_per_class: int = _DEFAULTS["n_per_class"]
    n_train: Optional[int] = None
    n_test: Optional[int] = None
    augment: bool = True
    standardize: bool = False
    n_hidden: int = _DEFAULTS["n_hidden"]
    epochs: int = _DEFAULTS["epochs"]
    lr: float = _DEFAULTS["lr"]
    lr_drop_at: float = _DEFAULTS["lr_drop_at"]
    batch_size: int = _DEFAULTS["batch_size"]
    methods: Dict[str, dict] = field(default_factory=paper_methods)
    levels: Tuple[float, ...] = _DEFAULTS["levels"]
    n_draws: int = _DEFAULTS["n_draws"]
    attack_eps: Tuple[float, ...] = _DEFAULTS["attack_eps"]
    attack_objective: str = EVAL_OBJECTIVE
    zetas: Tuple[float, ...] = _DEFAULTS["zetas"]
    landscape_points: int = _DEFAULTS["landscape_points"]
    landscape_directions: int = _DEFAULTS["landscape_directions"]
    membrane_samples: int = 200
    seed: int = 0
    seeds: int = 1
    out_dir: str = "results/reproduce"
    jobs: int = 1
    progress: bool = True

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> "ExperimentConfig":
        """Check every field; raise ``ValueError`` naming the first bad one."""
        def bad(name: str, want: str) -> None:
            raise ValueError(f"config field {name!r} must be {want}, got {getattr(self, name)!r}")

        if self.task not in PRESETS:  # the built-in TASKS and any registered with presets
            bad("task", f"one of {tuple(PRESETS)}")
        if self.preset not in ("quick", "paper"):
            bad("preset", '"quick" or "paper"')
        if self.split not in ("random", "record"):
            bad("split", '"random" or "record"')
        if self.composition not in ("random", "paper"):
            bad("composition", '"random" or "paper"')
        for name in ("n_per_class", "n_hidden", "epochs", "batch_size", "n_draws", "landscape_points",
                     "landscape_directions", "jobs", "seeds"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                bad(name, "an integer >= 1")
        for name in ("n_train", "n_test"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                bad(name, "null or an integer >= 1")
        for name in ("augment", "standardize"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "true or false")
        for name, lo in (("membrane_samples", 0), ("seed", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                bad(name, f"an integer >= {lo}")
        if not isinstance(self.progress, bool):
            bad("progress", "true or false")
        for name in ("data_dir", "out_dir"):
            v = getattr(self, name)
            if not (isinstance(v, str) and v) and not (v is None and name == "data_dir"):
                bad(name, "a folder path" + (" or null" if name == "data_dir" else ""))

        def number(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if not (number(self.lr) and self.lr > 0):
            bad("lr", "a finite number > 0")
        if not (number(self.lr_drop_at) and 0 < self.lr_drop_at <= 1):
            bad("lr_drop_at", "a fraction in (0, 1]")
        for name in ("levels", "attack_eps", "zetas"):
            v = getattr(self, name)
            if isinstance(v, (str, bytes)) or not isinstance(v, (list, tuple)) or not v \
                    or any(not number(x) or x < 0 for x in v):
                bad(name, "a non-empty list of finite numbers >= 0")
            setattr(self, name, tuple(float(x) for x in v))
        if self.landscape_points < 6:
            bad("landscape_points", "an integer >= 6 (the landscape is smoothed over 5 points)")
        if 0.0 not in self.levels:
            bad("levels", "a list containing 0 (the clean accuracy)")
        if self.attack_objective not in ATTACK_OBJECTIVES:
            bad("attack_objective", "one of " + ", ".join(f'"{n}"' for n in ATTACK_OBJECTIVES))
        if not isinstance(self.methods, dict) or not self.methods:
            bad("methods", "a non-empty mapping label → {method: name, kwargs...}")
        for label, kw in self.methods.items():
            if not isinstance(kw, dict):
                raise ValueError(f"config field 'methods': entry {label!r} must be a mapping, got {kw!r}")
            build_method(kw, label)
        return self

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict:
        return asdict(self)

    def compute_dict(self) -> dict:
        """The fields that decide the results (for comparing a resumed run's config)."""
        d = self.to_dict()
        for k in RUNTIME_FIELDS:
            d.pop(k)
        return json.loads(json.dumps(d))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ExperimentConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown config field {unknown[0]!r} (known: {sorted(known)})")
        return cls(**dict(d))

    def save(self, path: Union[str, Path]) -> Path:
        """Write the config as JSON, atomically."""
        from ..robust.checkpoint import atomic_write

        return atomic_write(path, json.dumps(self.to_dict(), indent=1) + "\n")


def lr_milestones(cfg: ExperimentConfig) -> Tuple[int, ...]:
    """The epochs after which the learning rate is divided by 10: ``round(lr_drop_at · epochs)``.

    Empty (a constant rate) when that epoch is 0 or not before the last one.

    Examples:
        >>> lr_milestones(make_config("ecg", "paper"))
        (150,)
    """
    m = int(round(cfg.epochs * cfg.lr_drop_at))
    return (m,) if 1 <= m < cfg.epochs else ()


def build_method(spec: Mapping[str, Any], label: str = ""):
    """The training method of one ``methods`` entry, ``{"method": name, **kwargs}`` (a bare
    ``label`` names the method when ``"method"`` is missing); the config's check builds each one.

    Raises:
        ValueError: an unknown method, a setting the method does not take (the message lists the
            ones it takes) or a bad value, naming the entry.

    Examples:
        >>> build_method({"method": "adversarial", "beta": 0.5, "n_steps": 3}).attack.n_steps
        3
    """
    import inspect

    from ..robust.methods import get_method, list_methods, method_class

    kwargs = dict(spec)
    name = kwargs.pop("method", label)
    label = label or name
    if name not in list_methods():
        raise ValueError(f"config field 'methods': {label!r} names unknown method {name!r} (known: {list_methods()})")
    try:
        return get_method(name, **kwargs)
    except TypeError as err:
        params = inspect.signature(method_class(name)).parameters.values()
        accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = [k for k in kwargs if k not in accepted]
        if unknown and not any(p.kind is p.VAR_KEYWORD for p in params):
            raise ValueError(f"config field 'methods': {label!r} ({name}) has no setting {unknown[0]!r} "
                             f"(value {kwargs[unknown[0]]!r}); {name} takes {', '.join(accepted) or 'no settings'}"
                             ) from None
        raise ValueError(f"config field 'methods': {label!r} ({name}) with {kwargs}: {err}") from None
    except ValueError as err:
        raise ValueError(f"config field 'methods': {label!r} ({name}) with {kwargs}: {err}") from None


#: The pipeline's earlier name.
ReproduceConfig = ExperimentConfig


def read_config_file(path: Union[str, Path]) -> dict:
    """A config file as a dict: ``.json``, or ``.toml`` (Python ≥ 3.11's ``tomllib``).

    Raises:
        ValueError: unreadable file, unknown suffix, or not a mapping at the top level.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist")
    if path.suffix not in (".json", ".toml"):
        raise ValueError(f"config file must end in .json or .toml, got {path.name!r}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"config file {str(path)!r} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"config file {str(path)!r} is not valid JSON: {err.msg} (line {err.lineno}, "
                             f"column {err.colno})") from None
    else:
        try:
            import tomllib
        except ImportError as err:  # pragma: no cover - Python 3.10
            raise ValueError("TOML config files need Python >= 3.11; use JSON") from err
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"config file {str(path)!r} is not valid TOML: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path.name!r} must hold a mapping of fields, got {type(data).__name__}")
    return data


def _value(text: str) -> Any:
    """A ``key=value`` value: JSON when it parses, else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_set(items) -> Dict[str, Any]:
    """``--set key=value`` items (values in JSON, else text; ``-`` in keys read as ``_``) → overrides.

    Raises:
        ValueError: an item without ``=`` or without a key.

    Examples:
        >>> parse_set(["epochs=5", "levels=[0,0.5]", "data-dir=/data/mitbih"])
        {'epochs': 5, 'levels': [0, 0.5], 'data_dir': '/data/mitbih'}
    """
    out: Dict[str, Any] = {}
    for item in items or ():
        key, eq, value = str(item).partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key.strip().replace("-", "_")] = _value(value)
    return out


def parse_methods(spec: str, task: str = "ecg", preset_name: str = "paper") -> Dict[str, dict]:
    """``"standard,beta,fn+beta=forward_noise:beta=0.1;eta=0.3"`` → ``{label: {"method": ..., ...}}``.

    A bare label that is one of the task's paper labels (``standard``, ``forward_noise``,
    ``beta``, ``fn+beta``, ``awp``, ``dropout``, ``amp``) or ``abcd``/``entropy_sgd`` gets the
    kwargs of preset ``preset_name`` (:func:`~.presets.preset_methods`); ``label=method`` names a
    registered method; kwargs follow a colon, separated by ``;``, values in JSON.

    Examples:
        >>> parse_methods("standard,big=adversarial:beta=0.5")
        {'standard': {'method': 'standard'}, 'big': {'method': 'adversarial', 'beta': 0.5}}
    """
    presets = preset_methods(task, preset_name)
    out: Dict[str, dict] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, args = item.partition(":")
        label, eq, method = name.partition("=")
        if eq:
            kwargs = {"method": method}
        elif label in presets:
            kwargs = dict(presets[label])
        else:
            kwargs = {"method": label}
        for kv in filter(None, args.split(";")):
            key, eq, value = kv.partition("=")
            if not eq:
                raise ValueError(f"methods: expected key=value in {item!r}")
            kwargs[key] = _value(value)
        out[label] = kwargs
    if not out:
        raise ValueError(f"config field 'methods': no method in {spec!r}; give a comma list of labels, e.g. "
                         "standard,beta (or omit --methods for the paper's)")
    return out


def parse_method(spec: str, task: str = "ecg", preset_name: str = "paper") -> Tuple[str, dict]:
    """One method of :func:`parse_methods`: ``(label, kwargs)``; a clear error for none or several.

    Examples:
        >>> parse_method("big=adversarial:beta=0.5")
        ('big', {'method': 'adversarial', 'beta': 0.5})
    """
    methods = parse_methods(spec, task, preset_name)
    if len(methods) != 1:
        raise ValueError(f"method: expected one method, got {len(methods)} ({', '.join(methods)}) in {spec!r}")
    return next(iter(methods.items()))


def make_config(task: str, preset_name: str = "quick", *, config_file: Optional[Union[str, Path]] = None,
                overrides: Optional[Mapping[str, Any]] = None) -> ExperimentConfig:
    """Preset → config file → overrides, checked (see the module docstring)."""
    fields_ = preset(task, preset_name)  # checks task and preset
    d: Dict[str, Any] = {"task": task, "preset": preset_name, "methods": paper_methods(task, preset_name)}
    d.update(fields_)
    if config_file is not None:
        d.update(read_config_file(config_file))
    d.update(dict(overrides or {}))
    if d.get("task") != task:
        raise ValueError(f"config field 'task' is {d.get('task')!r} but the command asks for {task!r}")
    if isinstance(d.get("methods"), str):
        d["methods"] = parse_methods(d["methods"], task, preset_name)
    return ExperimentConfig.from_dict(d)
