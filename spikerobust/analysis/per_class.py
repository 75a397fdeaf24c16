"""Per-class figures as arrhythmia work reports them: sensitivity, positive predictive value and
the confusion matrix, for a model as trained and averaged over mismatch draws.

For class ``c`` with true positives ``TP``, false negatives ``FN`` and false positives ``FP``:
sensitivity (recall) ``Se = TP / (TP + FN)`` and positive predictive value (precision)
``PPV = TP / (TP + FP)``; a class never predicted has PPV 0. The counts come from scikit-learn's
:func:`~sklearn.metrics.confusion_matrix` and :func:`~sklearn.metrics.precision_recall_fscore_support`.

Under mismatch (:func:`per_class_under_mismatch`) each draw gives its own confusion matrix and
per-class figures; the result holds their mean over draws (the confusion matrix as mean counts).

Examples:
    >>> import numpy as np
    >>> r = per_class_metrics(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), ["a", "b"])
    >>> r["sensitivity"], r["ppv"], r["confusion"]
    ([0.5, 1.0], [1.0, 0.6666666666666666], [[1, 1], [0, 2]])
"""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

__all__ = ["per_class_metrics", "predictions", "per_class_under_mismatch", "per_class_summary"]

Batch = Tuple[torch.Tensor, torch.Tensor]


def per_class_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[str]) -> dict:
    """Sensitivity, PPV, support and the confusion matrix (rows: true class, columns: predicted).

    Args:
        y_true, y_pred: integer labels ``[N]`` in ``range(len(classes))``.
        classes: class names (their order is the label order).

    Returns:
        ``{"classes", "sensitivity", "ppv", "support", "confusion", "accuracy"}`` (lists, JSON-ready).
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(classes)))
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    ppv, se, _, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    return {"classes": list(classes), "sensitivity": se.tolist(), "ppv": ppv.tolist(),
            "support": support.tolist(), "confusion": cm.tolist(),
            "accuracy": float(np.trace(cm) / max(cm.sum(), 1))}


def predictions(model: nn.Module, batches: Sequence[Batch],
                params: Optional[Mapping[str, torch.Tensor]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """``(y_true, y_pred)`` of ``model`` (optionally with substituted ``params``) over ``batches``.

    The model runs in eval mode under ``torch.no_grad``; its mode is restored afterwards.
    """
    from torch.func import functional_call

    was_training = model.training
    model.eval()
    ys, ps = [], []
    try:
        with torch.no_grad():
            for x, y in batches:
                out = model(x) if params is None else functional_call(model, dict(params), (x,), strict=False)
                ps.append(out.argmax(-1).cpu().numpy())
                ys.append(y.cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(ys), np.concatenate(ps)


def per_class_under_mismatch(model: nn.Module, batches: Sequence[Batch], classes: Sequence[str], level: float,
                             n_draws: int, *, seed: int = 0) -> dict:
    """Mean over ``n_draws`` mismatch draws at ``level`` of :func:`per_class_metrics`.

    The draws are the mismatch module's (every parameter selected by default, ``θ ⊙ (1 + m·N(0, 1))``),
    from a generator seeded with ``seed``.

    Returns:
        ``{"level", "n_draws", "classes", "sensitivity", "ppv", "confusion", "accuracy",
        "sensitivity_std", "ppv_std"}``: means over draws (``confusion`` as mean counts) and the
        standard deviations of the per-class figures.
    """
    from ..robust.mismatch import mismatch_params, resolve_params

    selected = resolve_params(model, None, None, None)
    gen = torch.Generator().manual_seed(int(seed))
    runs: List[dict] = []
    for _ in range(int(n_draws)):
        params = mismatch_params(selected, level, generator=gen)
        runs.append(per_class_metrics(*predictions(model, batches, params), classes))
    se = np.array([r["sensitivity"] for r in runs])
    ppv = np.array([r["ppv"] for r in runs])
    cm = np.array([r["confusion"] for r in runs], dtype=np.float64)
    return {"level": float(level), "n_draws": int(n_draws), "classes": list(classes),
            "sensitivity": se.mean(0).tolist(), "ppv": ppv.mean(0).tolist(),
            "sensitivity_std": se.std(0).tolist(), "ppv_std": ppv.std(0).tolist(),
            "confusion": cm.mean(0).tolist(), "accuracy": float(np.mean([r["accuracy"] for r in runs]))}


def per_class_summary(model: nn.Module, batches: Sequence[Batch], classes: Sequence[str], *,
                      level: float = 0.5, n_draws: int = 100, seed: int = 0) -> Dict[str, dict]:
    """``{"clean": per_class_metrics, "mismatch": per_class_under_mismatch}`` of one model."""
    return {"clean": per_class_metrics(*predictions(model, batches), classes),
            "mismatch": per_class_under_mismatch(model, batches, classes, level, n_draws, seed=seed)}

