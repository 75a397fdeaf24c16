r"""The package's default settings, each declared once, and the frozen attack specification.

One vocabulary (docs/robust-training.md, docs/evaluation.md):

- ``epsilon`` (ε) is always the RELATIVE box of the weight attack, ``|θ* − θ*_0| ≤ ε|θ| + ε_c``;
- ``eps_c`` (ε_c) is the box's constant (absolute) term;
- ``step`` is the relative size of one sign step, ``(ε|θ| + ε_c) / N_steps`` element-wise by
  default (``step=None``); an explicit ``step`` gives steps of ``step·|θ| + ε_c/N_steps``;
- ``n_steps`` (N_steps) and ``sigma_init`` (σ_init, the relative size of the random start);
- mismatch ``levels`` (m) and ``n_draws`` are the Monte-Carlo protocol of docs/evaluation.md.

Every other module refers to the constants below instead of repeating the numbers.

Examples:
    >>> spec = AttackSpec()
    >>> spec.epsilon, spec.n_steps, spec.sigma_init, spec.objective, spec.step_size
    (0.1, 10, 0.001, 'kl', 0.01)
    >>> AttackSpec(epsilon=0.2, n_steps=4).step_size
    0.05
    >>> AttackSpec(n_steps=-1)
    Traceback (most recent call last):
    ...
    ValueError: n_steps must be an integer >= 0, got -1
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

__all__ = [
    "EPSILON",
    "N_STEPS",
    "SIGMA_INIT",
    "EPS_C",
    "OBJECTIVE",
    "EVAL_OBJECTIVE",
    "OBJECTIVE_NAMES",
    "PCM_N_STEPS",
    "MISMATCH_LEVELS",
    "N_DRAWS",
    "CHUNK_SIZE",
    "LR",
    "LR_GAMMA",
    "AttackSpec",
    "EVAL_ATTACK",
    "non_negative",
    "at_least",
]

#: Relative attack box ε of the robust loss and of the attacked validation (docs/robust-training.md).
EPSILON = 0.1
#: Sign steps N_steps of the attack (docs/robust-training.md).
N_STEPS = 10
#: Relative size σ_init of the attack's random start.
SIGMA_INIT = 1e-3
#: Constant term ε_c of the attack box.
EPS_C = 0.0
#: Objective of the robust loss: KL(softmax f(X, θ) ‖ softmax f(X, θ*)).
OBJECTIVE = "kl"
#: Objective of the test-time attack (docs/evaluation.md: the cross-entropy against the labels).
EVAL_OBJECTIVE = "ce"
#: Names of the attack objectives (:data:`spikerobust.robust.attacks.OBJECTIVES` implements them).
OBJECTIVE_NAMES: Tuple[str, ...] = ("kl", "reverse_kl", "js", "l2", "ce", "madry")
#: Attack steps of the robust loss in the PCM experiments (docs/pcm.md).
PCM_N_STEPS = 3
#: Mismatch levels m of the paper's Table 1 (docs/evaluation.md).
MISMATCH_LEVELS: Tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7)
#: Mismatch draws per non-zero level (docs/evaluation.md: 100).
N_DRAWS = 100
#: Parameter sets evaluated per vectorised call by mismatch and the landscape (bounds memory).
CHUNK_SIZE = 10
#: Default Adam learning rate of :func:`~spikerobust.robust.trainer.fit` (docs/lsnn.md: 1e-3).
LR = 1e-3
#: Factor of each learning-rate drop (docs/lsnn.md: 1e-3 then 1e-4).
LR_GAMMA = 0.1


def non_negative(name: str, value: Any) -> float:
    """``value`` as a float, checked ``>= 0`` (NaN refused); the message names the setting.

    Examples:
        >>> non_negative("beta", 0.25)
        0.25
    """
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}") from None
    if not v >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return v


def at_least(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int, checked to be a whole number ``>= minimum``; the message names the setting.

    Examples:
        >>> at_least("n_inner", 2, 1)
        2
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class AttackSpec:
    """What the sign-PGA weight attack does (docs/robust-training.md, Algorithm 1).

    Used by :func:`~spikerobust.robust.attacks.pga_attack`, the robust loss
    (:func:`~spikerobust.robust.adversarial.robust_loss_backward`),
    :func:`~spikerobust.robust.attacks.attacked_accuracy`, the training methods and
    :func:`~spikerobust.robust.trainer.fit`.

    Attributes:
        epsilon: relative box ε: ``|θ* − θ*_0| ≤ ε|θ| + ε_c``.
        n_steps: sign steps N_steps (0: only the random start).
        sigma_init: relative size σ_init of the random start ``θ + σ_init|θ| ⊙ R``.
        eps_c: constant (absolute) term ε_c of the box.
        objective: one of :data:`OBJECTIVE_NAMES`.
        step: relative size of one sign step; ``None`` (default): ``ε / N_steps``, so that the
            steps fill the box exactly.

    Raises:
        ValueError: a negative size, a non-integer or negative ``n_steps``, an unknown objective.
    """

    epsilon: float = EPSILON
    n_steps: int = N_STEPS
    sigma_init: float = SIGMA_INIT
    eps_c: float = EPS_C
    objective: str = OBJECTIVE
    step: Optional[float] = None

    def __post_init__(self) -> None:
        for name in ("epsilon", "sigma_init", "eps_c"):
            object.__setattr__(self, name, non_negative(name, getattr(self, name)))
        object.__setattr__(self, "n_steps", at_least("n_steps", self.n_steps, 0))
        if self.step is not None:
            object.__setattr__(self, "step", non_negative("step", self.step))
        if self.objective not in OBJECTIVE_NAMES:
            raise ValueError(f"unknown objective {self.objective!r}; expected one of {sorted(OBJECTIVE_NAMES)}")

    @property
    def step_size(self) -> float:
        """Relative size of one sign step: ``step``, or ``ε / N_steps`` (0 without steps)."""
        if self.step is not None:
            return self.step
        return self.epsilon / self.n_steps if self.n_steps > 0 else 0.0

    def replace(self, **changes: Any) -> "AttackSpec":
        """A copy with some fields changed (``None`` values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **changes) if changes else self

    def to_dict(self) -> dict:
        """The fields, JSON-friendly."""
        return dataclasses.asdict(self)

    @classmethod
    def build(
        cls,
        spec: Optional["AttackSpec"] = None,
        defaults: Optional["AttackSpec"] = None,
        *,
        where: str = "",
        **fields: Any,
    ) -> "AttackSpec":
        """``spec`` (else ``defaults``, else ``AttackSpec()``) with the fields given as keywords.

        Keyword arguments set to ``None`` are ignored, so a function can forward its optional
        keywords unchanged; an unknown keyword is a ``TypeError`` naming ``where``. ``spec`` may
        also be a mapping of fields (as a JSON config writes it), applied over ``defaults``.

        Examples:
            >>> AttackSpec.build(None, n_steps=3, epsilon=None).n_steps
            3
            >>> AttackSpec.build({"epsilon": 0.2}, AttackSpec(n_steps=3)).n_steps
            3
        """
        if isinstance(spec, Mapping):
            fields = {**dict(spec), **{k: v for k, v in fields.items() if v is not None}}
            spec = None
        base = spec if spec is not None else (defaults if defaults is not None else cls())
        if not isinstance(base, AttackSpec):
            raise TypeError(f"spec must be an AttackSpec, got {type(base).__name__}")
        unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"{where or 'AttackSpec'}: unknown attack setting {unknown[0]!r}")
        return base.replace(**fields)


#: The test-time attack of docs/evaluation.md: the default box and steps, objective the cross-entropy.
EVAL_ATTACK = AttackSpec(objective=EVAL_OBJECTIVE)
