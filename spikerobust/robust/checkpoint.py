"""Checkpoints that load with ``torch.load(..., weights_only=True)``, written atomically.

A checkpoint is a nested structure of tensors and primitives only (dict, list, tuple, str, int,
float, bool, None, and the ``collections.Counter`` of PyTorch's ``MultiStepLR`` state): no
pickled objects, so loading never executes code. :func:`save_checkpoint` checks this before
writing, writes to a temporary file in the same folder, flushes it to disk and renames it over
the target (``os.replace``), so a crash leaves either the old or the new file, never a torn one.

RNG states (Python ``random``, NumPy, torch CPU and CUDA) are captured as tensors/primitives by
:func:`rng_state` and restored by :func:`set_rng_state`.

Examples:
    >>> import tempfile, os, torch
    >>> d = tempfile.mkdtemp()
    >>> path = save_checkpoint(os.path.join(d, "last.pt"), {"epoch": 3, "w": torch.ones(2)})
    >>> load_checkpoint(path)["epoch"]
    3
"""

from __future__ import annotations

import collections
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "check_serialisable"]

_PRIMITIVES = (str, int, float, bool, type(None))


def check_serialisable(obj: Any, where: str = "checkpoint") -> None:
    """Raise ``ValueError`` naming the first element that ``weights_only`` loading would refuse."""
    if isinstance(obj, (torch.Tensor,) + _PRIMITIVES) or isinstance(obj, torch.Size):
        return
    if isinstance(obj, (dict, collections.OrderedDict, collections.Counter)):
        for k, v in obj.items():
            if not isinstance(k, _PRIMITIVES):
                raise ValueError(f"{where}: key {k!r} of type {type(k).__name__} is not a primitive")
            check_serialisable(v, f"{where}[{k!r}]")
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_serialisable(v, f"{where}[{i}]")
        return
    raise ValueError(
        f"{where} holds a {type(obj).__name__}; checkpoints may only hold tensors and primitives "
        f"(dict/list/tuple/str/int/float/bool/None) so that torch.load(weights_only=True) works"
    )


def save_checkpoint(path: Union[str, os.PathLike], state: Dict[str, Any]) -> Path:
    """Atomically write ``state`` to ``path`` (temporary file, fsync, ``os.replace``).

    Raises:
        ValueError: if ``state`` holds anything but tensors and primitives.
    """
    check_serialisable(state)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def load_checkpoint(path: Union[str, os.PathLike], map_location: Optional[Union[str, torch.device]] = "cpu") -> Dict[str, Any]:
    """``torch.load(path, weights_only=True)``; raises ``FileNotFoundError`` naming the path."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return torch.load(path, map_location=map_location, weights_only=True)


def rng_state() -> Dict[str, Any]:
    """The global RNG states as tensors/primitives (Python, NumPy, torch CPU, every CUDA device)."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [str(np_state[0]), torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Restore the states captured by :func:`rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
