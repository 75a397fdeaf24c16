"""The one interface every training method implements, and the registry the trainer iterates.

A method owns one optimisation step: it zeroes gradients, computes whatever losses and inner
loops it needs, writes ``.grad`` of the model's parameters and calls ``optimizer.step()``.
It must leave the model in the train/eval mode it found and must not keep references to the
batch. It returns scalar metrics (at least ``"loss"``, the task loss at the clean parameters
where the method computes it).

Examples:
    >>> import torch
    >>> from spikerobust.nn import LSNNClassifier
    >>> model = LSNNClassifier(2, 8, 2)
    >>> opt = torch.optim.Adam(model.parameters(), 1e-3)
    >>> method = get_method("standard")
    >>> metrics = method.step(model, torch.randn(20, 4, 2), torch.tensor([0, 1, 0, 1]), opt)
    >>> sorted(metrics)
    ['loss']
"""

from __future__ import annotations

import inspect
from typing import Callable, Dict, Iterable, Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ..core import rand_like, randn_like
from ..params import select_parameters
from ..spec import AttackSpec

__all__ = ["SeededMixin", "ParameterMethod", "AttackMethod", "hyperparameters", "TrainingMethod", "register_method", "get_method",
           "method_class", "list_methods", "task_loss", "forward_with_aux", "Standard"]

_METHODS: Dict[str, type] = {}


def register_method(name: str) -> Callable[[type], type]:
    """Class decorator registering a :class:`TrainingMethod` under ``name``."""

    def decorator(cls: type) -> type:
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"training method {name!r} is already registered")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return decorator


def method_class(name: str) -> type:
    """The :class:`TrainingMethod` class registered under ``name`` (its signature lists the
    method's hyper-parameters).

    Raises:
        ValueError: for an unknown name (the message lists the registered ones).
    """
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(f"unknown training method {name!r}; registered: {list_methods()}") from None


def get_method(name: str, **kwargs) -> "TrainingMethod":
    """Instantiate the registered method ``name`` with its hyper-parameters."""
    return method_class(name)(**kwargs)


def list_methods() -> list[str]:
    return sorted(_METHODS)


def forward_with_aux(
    model: nn.Module, x: torch.Tensor, params: Optional[Mapping[str, torch.Tensor]] = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and auxiliary loss (an LSNN's rate regulariser; 0 for other models).

    A model opts in with the class attribute ``supports_aux_loss = True`` and a
    ``forward(x, return_aux_loss=True) -> (logits, aux)``.

    With ``params`` the model is evaluated functionally (``torch.func.functional_call``) at those
    tensors (a partial mapping: unnamed parameters keep their values); the model is not mutated.
    """
    supports_aux = bool(getattr(model, "supports_aux_loss", False))
    kwargs = {"return_aux_loss": True} if supports_aux else {}
    out = model(x, **kwargs) if params is None else functional_call(model, dict(params), (x,), kwargs, strict=False)
    if supports_aux:
        return out[0], out[1]
    return out, out.new_zeros(())


def task_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    params: Optional[Mapping[str, torch.Tensor]] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``L_nat = CE(f(x, θ), y) + aux`` (docs/robust-training.md) and the logits."""
    logits, aux = forward_with_aux(model, x, params)
    if logits.dim() != 2 or logits.shape[0] != y.shape[0]:
        raise ValueError(
            f"the model must return logits of shape [B, C] with B = {y.shape[0]}, got {tuple(logits.shape)}"
        )
    return F.cross_entropy(logits, y) + aux, logits


class TrainingMethod:
    """Base class. Subclasses implement :meth:`step`; hyper-parameters are constructor args."""

    name = "base"

    def step(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer) -> Dict[str, float]:
        raise NotImplementedError(f"{type(self).__name__} must implement step()")

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class SeededMixin:
    """A private CPU ``torch.Generator`` created lazily from ``self.seed`` (``None``: global RNG).

    Draws follow the one device rule of :mod:`spikerobust.robust.core`: made on the generator's
    device and moved to the tensor's, so a seed gives the same numbers on CPU and GPU. Its state
    round-trips through :meth:`state_dict` / :meth:`load_state_dict` (tensors only), so a
    checkpointed run resumes with the same draws; a generator saved on another device (by an older
    version) is restored on that device and keeps drawing there.
    """

    seed: Optional[int] = None
    _generator: Optional[torch.Generator] = None

    def generator(self, device: Optional[torch.device] = None) -> Optional[torch.Generator]:
        """The private generator (``None`` without a seed); ``device`` is accepted for compatibility
        and ignored: the generator lives on the CPU."""
        if self.seed is None:
            return None
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(int(self.seed))
        return self._generator

    def randn_like(self, t: torch.Tensor) -> torch.Tensor:
        """Standard normal draws of ``t``'s shape/dtype/device from this method's generator."""
        return randn_like(t, self.generator())

    def rand_like(self, t: torch.Tensor) -> torch.Tensor:
        """Uniform [0, 1) draws of ``t``'s shape/dtype/device from this method's generator."""
        return rand_like(t, self.generator())

    def state_dict(self) -> Dict[str, torch.Tensor]:
        if self._generator is None:
            return {}
        return {"generator_state": self._generator.get_state(), "generator_device": str(self._generator.device)}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        if "generator_state" in state:
            dev = state.get("generator_device", "cpu")
            self._generator = torch.Generator(device=dev)
            self._generator.set_state(state["generator_state"].cpu())


def hyperparameters(cls: type) -> inspect.Signature:
    """The settings a method class takes: its ``__init__``'s, with a trailing ``**kwargs`` replaced
    by the keyword settings of the parent it forwards them to (less those in
    ``cls.fixed_settings``).

    Examples:
        >>> list(hyperparameters(get_method("abcd").__class__).parameters)
        ['n_inner', 'eta_a', 'include', 'exclude', 'seed']
    """
    init = next(c.__dict__["__init__"] for c in cls.__mro__ if "__init__" in c.__dict__)
    params = list(inspect.signature(init).parameters.values())[1:]
    if params and params[-1].kind is inspect.Parameter.VAR_KEYWORD:
        params.pop()
        owner = next(c for c in cls.__mro__ if "__init__" in c.__dict__)
        parent = next((c for c in owner.__mro__[1:] if "__init__" in c.__dict__ and c is not object), None)
        if parent is not None and parent is not TrainingMethod:
            skip = {p.name for p in params} | set(getattr(cls, "fixed_settings", {}))
            params += [q.replace(kind=inspect.Parameter.KEYWORD_ONLY)
                       for q in hyperparameters(parent).parameters.values() if q.name not in skip]
    return inspect.Signature(params)


class ParameterMethod(SeededMixin, TrainingMethod):
    """Base of the methods that act on a selection of parameters: ``include``/``exclude`` globs
    (:func:`~spikerobust.robust.params.select_parameters`) and an optional ``seed``.

    Subclasses take their own settings and forward ``**kwargs`` here; ``inspect.signature`` of a
    subclass lists both (:func:`hyperparameters`), so a config's error can name every setting.

    Args:
        include, exclude: glob patterns of the parameters taking part (default: every trainable
            tensor except normalisation layers).
        seed: seed of the private generator (``None``: the global torch RNG).
    """

    #: settings a subclass fixes: name → value (left out of its signature)
    fixed_settings: Dict[str, object] = {}

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.__signature__ = hyperparameters(cls)

    def __init__(
        self,
        *,
        include: Optional[Iterable[str]] = None,
        exclude: Optional[Iterable[str]] = None,
        seed: Optional[int] = None,
    ) -> None:
        self.include = list(include) if include is not None else None
        self.exclude = list(exclude) if exclude is not None else None
        self.seed = seed
        self._generator = None

    def select(self, model: nn.Module) -> Dict[str, torch.Tensor]:
        """The live parameters taking part (name → tensor)."""
        return select_parameters(model, self.include, self.exclude)


class AttackMethod(ParameterMethod):
    """A :class:`ParameterMethod` that runs the weight attack: it holds an
    :class:`~spikerobust.robust.spec.AttackSpec` (:attr:`attack`) built from the class's
    :attr:`default_attack`, then ``attack``, then the single fields given.

    The fields stay readable as attributes (``method.epsilon``, ``method.n_steps`` ...).

    Args:
        n_steps, epsilon, sigma_init, eps_c, objective, step: fields of the attack
            (:class:`~spikerobust.robust.spec.AttackSpec`), each overriding ``attack``.
        attack: the whole attack (default :attr:`default_attack`).
        include, exclude, seed: as for :class:`ParameterMethod`.
    """

    #: the attack when nothing is given (subclasses override)
    default_attack: AttackSpec = AttackSpec()

    def __init__(
        self,
        *,
        n_steps: Optional[int] = None,
        epsilon: Optional[float] = None,
        sigma_init: Optional[float] = None,
        eps_c: Optional[float] = None,
        objective: Optional[str] = None,
        step: Optional[float] = None,
        attack: Optional[AttackSpec] = None,
        **selection,
    ) -> None:
        super().__init__(**selection)
        self.attack = AttackSpec.build(attack, self.default_attack, n_steps=n_steps, epsilon=epsilon,
                                       sigma_init=sigma_init, eps_c=eps_c, objective=objective, step=step)

    epsilon = property(lambda self: self.attack.epsilon, doc="relative attack box ε")
    n_steps = property(lambda self: self.attack.n_steps, doc="attack sign steps")
    sigma_init = property(lambda self: self.attack.sigma_init, doc="relative size of the random start")
    eps_c = property(lambda self: self.attack.eps_c, doc="constant term of the attack box")
    objective = property(lambda self: self.attack.objective, doc="attack objective")


@register_method("standard")
class Standard(TrainingMethod):
    """Standard training (β_rob = 0): one step on ``L_nat``."""

    def step(self, model, x, y, optimizer):
        optimizer.zero_grad(set_to_none=True)
        loss, _ = task_loss(model, x, y)
        loss.backward()
        optimizer.step()
        return {"loss": float(loss.detach())}
