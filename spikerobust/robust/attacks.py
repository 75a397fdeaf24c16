r"""Adversarial attack in weight space: the sign-PGA of docs/robust-training.md and docs/evaluation.md, and a random perturbation of equal size.

Starting from a random point near the clean parameters,

.. math::
    \theta^*_0 = \theta + \sigma_{init} |\theta| \odot R, \quad R \sim \mathcal{N}(0, I), \qquad
    \mathrm{step} = (\epsilon |\theta| + \epsilon_c) / N_{steps},

the attack takes ``N_steps`` signed gradient-ascent steps
:math:`\theta^*_{t+1} = \theta^*_t + \mathrm{step} \odot \mathrm{sign}(\nabla_{\theta^*} L)` on an objective
``L``. The steps keep every element inside the relative box
:math:`|\theta^* - \theta^*_0| \le \epsilon|\theta| + \epsilon_c` (no further projection, as in the
reference); parameters equal to zero are never moved when ``eps_c = 0``. The settings (ε, N_steps,
σ_init, ε_c, objective, step) form one :class:`~spikerobust.robust.spec.AttackSpec`; every
function below takes ``spec=`` and, for convenience, the same fields as keywords, which override it.

Objectives (``logits_clean`` = f(X, θ), the target; ``logits_adv`` = f(X, θ*)):

- ``"kl"``: KL(softmax f(X, θ) ‖ softmax f(X, θ*)), batch mean (the paper's L_rob);
- ``"reverse_kl"``: KL(softmax f(X, θ*) ‖ softmax f(X, θ));
- ``"js"``: Jensen-Shannon divergence, ½KL(p‖M) + ½KL(q‖M), M = (p + q)/2;
- ``"l2"``: mean squared difference of the logits;
- ``"ce"`` / ``"madry"``: cross-entropy of f(X, θ*) against the labels (needs ``y``).

The model is never modified (:func:`torch.func.functional_call`); running statistics of
normalisation layers are not updated by the attack's forward passes; the train/eval mode is
restored.

Examples:
    >>> import torch
    >>> from torch import nn
    >>> model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> x, y = torch.randn(32, 4), torch.randint(0, 3, (32,))
    >>> theta_star = attack_weights(model, x, y, AttackSpec(epsilon=0.1, n_steps=5, sigma_init=0.0))
    >>> w = model[0].weight
    >>> bool(((theta_star["0.weight"] - w).abs() <= 0.1 * w.abs() * (1 + 1e-5)).all())
    True
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, Mapping, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .core import (Data, as_batches, buffer_copies, count_correct, functional_logits, model_mode, rand_like,
                   randn_like, resolve_params, seeded_generator)
from .spec import EVAL_ATTACK, AttackSpec

__all__ = [
    "AttackSpec",
    "OBJECTIVES",
    "robustness_loss",
    "AttackResult",
    "pga_attack",
    "pga_attack_dataset",
    "step_size",
    "attack_weights",
    "random_perturbation",
    "perturbed_accuracy",
    "attacked_accuracy",
    "functional_logits",
    "buffer_copies",
]


def _kl(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) from log-probabilities ``[B, C]``, mean over the batch."""
    return (logp.exp() * (logp - logq)).sum(-1).mean()


def _obj_kl(clean, adv, y):
    return _kl(F.log_softmax(clean, -1), F.log_softmax(adv, -1))


def _obj_reverse_kl(clean, adv, y):
    return _kl(F.log_softmax(adv, -1), F.log_softmax(clean, -1))


def _obj_js(clean, adv, y):
    logp, logq = F.log_softmax(clean, -1), F.log_softmax(adv, -1)
    logm = torch.logsumexp(torch.stack([logp, logq]), 0) - torch.log(torch.tensor(2.0, dtype=logp.dtype))
    return 0.5 * _kl(logp, logm) + 0.5 * _kl(logq, logm)


def _obj_l2(clean, adv, y):
    return ((clean - adv) ** 2).mean()


def _obj_ce(clean, adv, y):
    if y is None:
        raise ValueError("objective 'ce'/'madry' needs the labels y of shape [B]")
    return F.cross_entropy(adv, y)


#: name → ``loss(logits_clean, logits_adv, y)``.
OBJECTIVES: Dict[str, Callable] = {
    "kl": _obj_kl,
    "reverse_kl": _obj_reverse_kl,
    "js": _obj_js,
    "l2": _obj_l2,
    "ce": _obj_ce,
    "madry": _obj_ce,
}


def robustness_loss(
    objective: str,
    logits_clean: Optional[torch.Tensor],
    logits_adv: torch.Tensor,
    y: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """The objective ``objective`` between clean and perturbed logits (see the module docstring).

    Shape:
        logits ``[B, C]``, ``y`` ``[B]`` → scalar.

    Examples:
        >>> import torch
        >>> a = torch.tensor([[1.0, 2.0, 0.5]])
        >>> float(robustness_loss("kl", a, a))
        0.0
    """
    try:
        fn = OBJECTIVES[objective]
    except KeyError:
        raise ValueError(f"unknown objective {objective!r}; expected one of {sorted(OBJECTIVES)}") from None
    return fn(logits_clean, logits_adv, y)


class AttackResult(NamedTuple):
    """Outcome of :func:`pga_attack`.

    Attributes:
        theta_star: name → the attacked tensor θ* (detached).
        theta_start: name → the random start θ*_0 (detached).
        noise: name → the standard normal draw ``R`` of the random start.
        sign_sum: name → ``Σ_t sign(g_t)`` over the steps (for the diagonal Jacobian).
        objective_start: the objective at θ*_0.
        objective_end: the objective at the returned θ* (NaN when not evaluated).
    """

    theta_star: Dict[str, torch.Tensor]
    theta_start: Dict[str, torch.Tensor]
    noise: Dict[str, torch.Tensor]
    sign_sum: Dict[str, torch.Tensor]
    objective_start: float
    objective_end: float



def pga_attack(
    model: nn.Module,
    x: torch.Tensor,
    params: Mapping[str, torch.Tensor],
    spec: Optional[AttackSpec] = None,
    *,
    y: Optional[torch.Tensor] = None,
    target_logits: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    evaluate_end: bool = True,
    **fields: Any,
) -> AttackResult:
    """Sign-PGA in weight space (docs/robust-training.md) on one batch, in the model's current train/eval mode.

    Args:
        model: any ``nn.Module`` returning logits ``[B, C]``.
        x: a batch in the model's input layout.
        params: name → the clean tensors θ to attack (the rest stays fixed).
        spec: the attack (default ``AttackSpec()``: ε = 0.1,
            10 steps, σ_init = 1e-3, ε_c = 0, objective ``"kl"``).
        y: labels ``[B]`` (needed for ``"ce"``/``"madry"``).
        target_logits: f(X, θ) for the divergence objectives (computed when omitted); treated as
            a constant during the attack.
        generator: random generator for ``R`` (drawn on its device, moved to θ's).
        evaluate_end: spend one more forward pass on the objective at the final θ*
            (``objective_end``); otherwise ``objective_end`` is NaN.
        **fields: ``epsilon``, ``n_steps``, ``objective``, ``sigma_init``, ``eps_c``, ``step``:
            override those fields of ``spec``.

    Returns:
        :class:`AttackResult`.
    """
    spec = AttackSpec.build(spec, where="pga_attack", **fields)
    return _sign_pga(model, [(x, y)], params, spec, targets=None if target_logits is None else [target_logits],
                     generator=generator, evaluate_end=evaluate_end, move=False)


def pga_attack_dataset(
    model: nn.Module,
    data: Data,
    params: Mapping[str, torch.Tensor],
    spec: Optional[AttackSpec] = None,
    *,
    generator: Optional[torch.Generator] = None,
    evaluate_end: bool = False,
    **fields: Any,
) -> AttackResult:
    """Sign-PGA for ONE θ* over a whole data set given in batches (the paper's test-time attack).

    At every sign step the gradient of the objective on the whole set is accumulated batch by
    batch: each batch's (batch-mean) objective is weighted by its share ``B_b / N`` of the ``N``
    samples, so the summed gradient is the gradient of the objective over the concatenated set
    (and θ* is the same as attacking the concatenated set in one batch, up to rounding). One
    random start, one θ*; the cost is that of attacking every batch separately.

    Args:
        model: any ``nn.Module`` returning logits ``[B, C]``.
        data: ``(x, y)`` or an iterable of ``(x, y)`` batches; each batch is moved to the device
            of ``params`` when used.
        params: name → the clean tensors θ to attack.
        spec: the attack (default :data:`~spikerobust.robust.spec.EVAL_ATTACK`, objective ``"ce"``).
        generator: as in :func:`pga_attack`.
        evaluate_end: also evaluate the objective at the final θ* (one more pass over the data).
        **fields: ``epsilon``, ``n_steps``, ``objective``, ``sigma_init``, ``eps_c``, ``step``:
            override those fields of ``spec``.

    Returns:
        :class:`AttackResult`; ``objective_start``/``objective_end`` are over the whole set.
    """
    spec = AttackSpec.build(spec, EVAL_ATTACK, where="pga_attack_dataset", **fields)
    return _sign_pga(model, as_batches(data), params, spec, targets=None, generator=generator,
                     evaluate_end=evaluate_end, move=True)


def _sign_pga(model, batches, params, spec: AttackSpec, *, targets, generator, evaluate_end, move) -> AttackResult:
    """The sign-PGA loop over a list of ``(x, y)`` batches (one θ* for all of them)."""
    theta = {n: p.detach() for n, p in params.items()}
    if not theta:
        raise ValueError("params: the parameter selection is empty")
    objective, n_steps = spec.objective, spec.n_steps
    if move:
        dev = next(iter(theta.values())).device
        batches = [(x.to(dev), None if y is None else y.to(dev)) for x, y in batches]
    n_total = sum(int(x.shape[0]) for x, _ in batches) if len(batches) > 1 else None
    weights = [None] * len(batches) if n_total is None else [int(x.shape[0]) / n_total for x, _ in batches]
    if targets is None:
        with torch.no_grad():
            targets = [functional_logits(model, x, theta, y) for x, y in batches]
    targets = [t.detach() for t in targets]
    noise = {n: randn_like(t, generator) for n, t in theta.items()}
    start = {n: t + spec.sigma_init * t.abs() * noise[n] for n, t in theta.items()}
    step = {n: step_size(spec, t) for n, t in theta.items()}
    sign_sum = {n: torch.zeros_like(t) for n, t in theta.items()}
    names = list(theta)
    # θ*_t lives in one buffer per tensor, updated in place (``start`` is returned untouched)
    current = {n: start[n].clone() for n in names} if n_steps > 0 else dict(start)
    # trainable tensors outside the selection enter the attack's forward passes detached: the
    # attack differentiates with respect to θ* only, so no graph is recorded for them
    frozen = {
        n: p.detach() for n, p in model.named_parameters() if p.requires_grad and n not in theta
    }

    def objective_at(point, x, y, target, w):
        loss = robustness_loss(objective, target, functional_logits(model, x, point, y), y)
        return loss if w is None else loss * w

    obj_start = None
    for _ in range(n_steps):
        total: Dict[str, torch.Tensor] = {}
        value = 0.0
        for (x, y), target, w in zip(batches, targets, weights):
            leaves = {n: current[n].detach().requires_grad_(True) for n in names}
            with torch.enable_grad():
                loss = objective_at({**frozen, **leaves}, x, y, target, w)
                grads = torch.autograd.grad(loss, [leaves[n] for n in names], allow_unused=True)
            value += float(loss.detach())
            del loss, leaves  # the pass's graph is freed before the next one is built
            for n, g in zip(names, grads):
                if g is not None:
                    total[n] = g if n not in total else total[n].add_(g)
            del grads
        if obj_start is None:
            obj_start = value
        used = [n for n in names if n in total]
        if not used:
            continue
        signs = torch._foreach_sign([total[n] for n in used])
        del total
        torch._foreach_add_([sign_sum[n] for n in used], signs)
        # θ*_{t+1} = θ*_t + step ⊙ sign(g_t); step ⊙ sign is exact, so this rounds as ``θ*_t + step * s``
        torch._foreach_addcmul_([current[n] for n in used], [step[n] for n in used], signs)
    obj = float("nan")
    if evaluate_end or obj_start is None:
        with torch.no_grad():
            obj = sum(float(objective_at(current, x, y, t, w)) for (x, y), t, w in zip(batches, targets, weights))
    if obj_start is None:
        obj_start = obj
    return AttackResult(
        {n: t.detach() for n, t in current.items()}, start, noise, sign_sum, obj_start, obj
    )


def step_size(spec: AttackSpec, theta: torch.Tensor) -> torch.Tensor:
    """The element-wise size of one sign step for the clean tensor ``theta``.

    ``(ε|θ| + ε_c) / N_steps`` (``spec.step`` unset), else ``step·|θ| + ε_c / N_steps``.

    Examples:
        >>> import torch
        >>> step_size(AttackSpec(epsilon=0.2, n_steps=4), torch.tensor([1.0, -2.0]))
        tensor([0.0500, 0.1000])
    """
    n = max(spec.n_steps, 1)
    if spec.step is None:
        return (spec.epsilon * theta.abs() + spec.eps_c) / n
    return spec.step * theta.abs() + spec.eps_c / n


def attack_weights(
    model: nn.Module,
    x: torch.Tensor,
    y: Optional[torch.Tensor] = None,
    spec: Optional[AttackSpec] = None,
    *,
    params: Optional[Mapping[str, torch.Tensor]] = None,
    include: Optional[Iterable[str]] = None,
    exclude: Optional[Iterable[str]] = None,
    generator: Optional[torch.Generator] = None,
    train_mode: bool = False,
    **fields: Any,
) -> Dict[str, torch.Tensor]:
    """Worst-case parameters θ* for the batch ``(x, y)``: the test-time attack of docs/evaluation.md.

    Runs in eval mode (``train_mode=False``) and restores the model's mode.

    Args:
        model, x, y: the model and a batch; ``y`` is needed for ``"ce"``/``"madry"``.
        spec: the attack (default :data:`~spikerobust.robust.spec.EVAL_ATTACK`, objective ``"ce"``).
        params: explicit selection (default :func:`select_parameters` with ``include``/``exclude``).
        generator: random generator for the start.
        train_mode: run the attack with the model in training mode instead.
        **fields: ``epsilon``, ``n_steps``, ``objective``, ``sigma_init``, ``eps_c``, ``step``:
            override those fields of ``spec``.

    Returns:
        name → θ* (detached); pass it to ``functional_call`` or :func:`perturbed_accuracy`.
    """
    spec = AttackSpec.build(spec, EVAL_ATTACK, where="attack_weights", **fields)
    selected = resolve_params(model, params, include, exclude)
    with model_mode(model, train_mode):
        return pga_attack(model, x, selected, spec, y=y, generator=generator).theta_star


def random_perturbation(
    params: Mapping[str, torch.Tensor],
    epsilon: float,
    eps_c: float = 0.0,
    *,
    mode: str = "corner",
    generator: Optional[torch.Generator] = None,
) -> Dict[str, torch.Tensor]:
    """A random point of the attack's box ``|θ' − θ| ≤ ε|θ| + ε_c``, for comparison with the attack.

    Args:
        params: name → clean tensor θ.
        epsilon, eps_c: the box, as for the attack.
        mode: ``"corner"`` (default): every element moves by exactly ``±(ε|θ| + ε_c)`` with a
            random sign: a random vertex of the box, the same size (every norm) as a sign-PGA
            whose steps all agree. ``"uniform"``: every element moves by ``U(−1, 1)·(ε|θ| + ε_c)``,
            a uniform point inside the box.
        generator: random generator.

    Returns:
        name → perturbed tensor (detached).
    """
    if mode not in ("corner", "uniform"):
        raise ValueError(f"mode must be 'corner' or 'uniform', got {mode!r}")
    box = AttackSpec(epsilon=epsilon, eps_c=eps_c)  # checks both
    out = {}
    for n, p in params.items():
        p = p.detach()
        u = rand_like(p, generator)
        direction = torch.where(u < 0.5, -1.0, 1.0).to(p.dtype) if mode == "corner" else 2.0 * u - 1.0
        out[n] = p + (box.epsilon * p.abs() + box.eps_c) * direction
    return out


def perturbed_accuracy(model: nn.Module, data: Data, theta: Mapping[str, torch.Tensor]) -> float:
    """Accuracy of ``model`` at parameters ``theta`` (partial mapping) on ``data``, in eval mode."""
    correct, total = count_correct(model, data, theta)
    return correct / total


def attacked_accuracy(
    model: nn.Module,
    data: Data,
    epsilon: Optional[float] = None,
    *,
    spec: Optional[AttackSpec] = None,
    attack: str = "pga",
    random_mode: str = "corner",
    params: Optional[Mapping[str, torch.Tensor]] = None,
    include: Optional[Iterable[str]] = None,
    exclude: Optional[Iterable[str]] = None,
    seed: int = 0,
    generator: Optional[torch.Generator] = None,
    progress: bool = True,
    per_batch: bool = False,
    **fields: Any,
) -> float:
    """Test accuracy under the weight attack (or a random perturbation of equal size).

    As in the paper, ONE attacked parameter set θ* is computed for the whole of ``data``
    (:func:`pga_attack_dataset`: the objective's gradient over all batches at every sign step,
    eval mode), and every sample is classified at that θ*; likewise one random point of the box
    for ``attack="random"``. ``per_batch=True`` gives the older behaviour instead: a separate θ*
    (or random point) per batch, each computed on that batch.

    Args:
        model: any ``nn.Module`` returning logits ``[B, C]``.
        data: ``(x, y)`` or an iterable of batches (the test set).
        epsilon: relative box ε of the attack (0 gives the clean accuracy up to the random
            start); overrides ``spec.epsilon``.
        spec: the attack (default :data:`~spikerobust.robust.spec.EVAL_ATTACK`: ε = 0.1,
            10 steps, objective ``"ce"``).
        attack: ``"pga"`` or ``"random"`` (:func:`random_perturbation` with ``random_mode``).
        params, include, exclude: the attacked parameters.
        seed, generator: randomness of the starts / random points.
        progress: tqdm bar over batches.
        per_batch: one θ* per batch instead of one for the whole set.
        **fields: ``n_steps``, ``objective``, ``sigma_init``, ``eps_c``, ``step``: override those
            fields of ``spec``.

    Returns:
        accuracy in ``[0, 1]``.
    """
    if attack not in ("pga", "random"):
        raise ValueError(f"attack must be 'pga' or 'random', got {attack!r}")
    spec = AttackSpec.build(spec, EVAL_ATTACK, where="attacked_accuracy", epsilon=epsilon, **fields)
    selected = resolve_params(model, params, include, exclude)
    generator = seeded_generator(seed, generator)
    batches = as_batches(data)

    def draw(part) -> Dict[str, torch.Tensor]:
        if attack == "pga":
            return _sign_pga(model, part, selected, spec, targets=None, generator=generator, evaluate_end=False,
                             move=True).theta_star
        return random_perturbation(selected, spec.epsilon, spec.eps_c, mode=random_mode, generator=generator)

    correct = total = 0
    with model_mode(model, False):
        theta = None if per_batch else draw(batches)
        for x, y in tqdm(batches, desc=f"{attack} eps={spec.epsilon:g}", disable=not progress):
            if per_batch:
                theta = draw([(x, y)])
            c, n = count_correct(model, (x, y), theta)
            correct, total = correct + c, total + n
    return correct / total
