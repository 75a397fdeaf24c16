"""Which parameters are perturbed: the selection shared by mismatch, attacks, methods and PCM.

Default (docs/robust-training.md, notation): every trainable tensor, except the affine parameters of normalisation
layers (BatchNorm/LayerNorm/GroupNorm/InstanceNorm); running statistics are buffers and never
selected. ``include``/``exclude`` are lists of glob patterns over parameter names
(``"lsnn.*"``, ``"*.bias"``); buffers (e.g. an LSNN's neuron constants) can be selected by name
with ``include_buffers``.

Examples:
    >>> from spikerobust.nn import LSNNClassifier
    >>> sorted(select_parameters(LSNNClassifier(2, 8, 4)))
    ['lsnn.w_in', 'lsnn.w_rec', 'readout.bias', 'readout.weight']
    >>> sorted(select_parameters(LSNNClassifier(2, 8, 4), include_buffers=["lsnn.tau_mem"]))
    ['lsnn.tau_mem', 'lsnn.w_in', 'lsnn.w_rec', 'readout.bias', 'readout.weight']
"""

from __future__ import annotations

from fnmatch import fnmatch
from typing import Dict, Iterable, Optional

import torch
from torch import nn

__all__ = ["select_parameters", "NORM_LAYERS"]

NORM_LAYERS = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
)


def _norm_param_names(model: nn.Module) -> set[str]:
    names = set()
    for mod_name, mod in model.named_modules():
        if isinstance(mod, NORM_LAYERS):
            for p_name, _ in mod.named_parameters(recurse=False):
                names.add(f"{mod_name}.{p_name}" if mod_name else p_name)
    return names


def select_parameters(
    model: nn.Module,
    include: Optional[Iterable[str]] = None,
    exclude: Optional[Iterable[str]] = None,
    *,
    include_norm: bool = False,
    include_buffers: Optional[Iterable[str]] = None,
) -> Dict[str, torch.Tensor]:
    """Name → tensor of the parameters to perturb (the live tensors, not copies).

    Args:
        model: any ``nn.Module``.
        include: glob patterns; when given, only matching trainable parameters are kept.
        exclude: glob patterns removed from the selection.
        include_norm: keep normalisation-layer affine parameters (default: excluded).
        include_buffers: buffer names (globs) to add, e.g. ``["lsnn.tau_mem"]``.

    Raises:
        ValueError: if the selection is empty or a pattern matches nothing.
    """
    norm = set() if include_norm else _norm_param_names(model)
    selected: Dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad or name in norm:
            continue
        if include is not None and not any(fnmatch(name, pat) for pat in include):
            continue
        if exclude is not None and any(fnmatch(name, pat) for pat in exclude):
            continue
        selected[name] = p
    if include_buffers:
        buffers = dict(model.named_buffers())
        for pat in include_buffers:
            hits = [n for n in buffers if fnmatch(n, pat)]
            if not hits:
                raise ValueError(f"include_buffers pattern {pat!r} matches no buffer; buffers: {sorted(buffers)}")
            for n in hits:
                if buffers[n].is_floating_point():
                    selected[n] = buffers[n]
    if not selected:
        raise ValueError(
            f"the parameter selection is empty (include={include}, exclude={exclude}); "
            f"trainable parameters: {[n for n, p in model.named_parameters() if p.requires_grad]}"
        )
    return selected
