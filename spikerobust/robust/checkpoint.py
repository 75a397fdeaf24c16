"""Checkpoints that load with ``torch.load(..., weights_only=True)``, written atomically.

A checkpoint is a nested structure of tensors and primitives only (dict, list, tuple, str, int,
float, bool, None, and the ``collections.Counter`` of PyTorch's ``MultiStepLR`` state): no
pickled objects, so loading never executes code. :func:`save_checkpoint` checks this before
writing, writes to a temporary file in the same folder, flushes it to disk and renames it over
the target (``os.replace``), so a crash leaves either the old or the new file, never a torn one.

RNG states (Python ``random``, NumPy, torch CPU and CUDA) are captured as tensors/primitives by
:func:`rng_state` and restored by :func:`set_rng_state`.

:func:`atomic_write` is the package's one atomic file writer (checkpoints, model files, configs,
results and reports): temporary file, fsync, rename, fsync of the folder, permissions as for a
plain ``open`` (``0666`` less the umask). :func:`lock_folder` holds an exclusive ``flock`` on a
folder's ``.lock`` file so that two processes never write a run into the same folder.

Examples:
    >>> import tempfile, os, torch
    >>> d = tempfile.mkdtemp()
    >>> path = save_checkpoint(os.path.join(d, "last.pt"), {"epoch": 3, "w": torch.ones(2)})
    >>> load_checkpoint(path)["epoch"]
    3
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import random
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterator, Optional, Union

import numpy as np
import torch

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "check_serialisable", "atomic_write",
           "lock_folder", "FolderLockedError"]

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


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory file descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems that refuse fsync on a folder
        pass
    finally:
        os.close(fd)


def atomic_write(path: Union[str, os.PathLike], data: Union[bytes, str, Callable[[BinaryIO], None]]) -> Path:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, never a torn one.

    A temporary file in the same folder is written, flushed and fsynced, given the permissions a
    plain ``open`` would (``0666`` less the umask, not ``mkstemp``'s ``0600``), renamed over
    ``path`` with ``os.replace``, and the folder is fsynced so that the rename survives a crash.

    Args:
        path: the target file; its folder is created if missing.
        data: bytes, text (written as UTF-8) or a function that writes to a binary file handle.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Examples:
        >>> import tempfile, os
        >>> p = atomic_write(os.path.join(tempfile.mkdtemp(), "a.txt"), "hello")
        >>> p.read_text(), oct(p.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
        ('hello', True)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)
    return path


def save_checkpoint(path: Union[str, os.PathLike], state: Dict[str, Any]) -> Path:
    """Atomically write ``state`` to ``path`` (:func:`atomic_write`).

    Raises:
        ValueError: if ``state`` holds anything but tensors and primitives.
    """
    check_serialisable(state)
    return atomic_write(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: Union[str, os.PathLike], map_location: Optional[Union[str, torch.device]] = "cpu") -> Dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with errors that name the file.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a file that is not a PyTorch checkpoint, or one holding Python objects other
            than tensors and primitives (refused: unpickling them could run code).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        import re

        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        detail = f"it names {found.group(1)}" if found else ""
        raise ValueError(f"refused to load {str(path)!r}: it holds Python objects other than tensors and primitives, "
                         f"and unpickling them could run code{f' ({detail})' if detail else ''}") from None
    except (RuntimeError, KeyError, EOFError, OSError, ValueError, AttributeError, TypeError) as err:
        why = ("unrecognised file format" if isinstance(err, KeyError)
               else f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no detail'}")
        raise ValueError(f"{str(path)!r} is not a readable PyTorch checkpoint ({why})") from None


class FolderLockedError(RuntimeError):
    """Another process holds the folder's lock (:func:`lock_folder`)."""


@contextlib.contextmanager
def lock_folder(folder: Union[str, os.PathLike], wait: float = 0.0) -> Iterator[Path]:
    """Hold an exclusive lock on ``folder/.lock`` (``fcntl.flock``) for the ``with`` block.

    The kernel releases the lock when the process ends, however it ends (``kill -9`` included).
    Where ``fcntl`` does not exist (Windows) the block runs unlocked.

    Args:
        wait: seconds to keep trying while another process holds the lock (for short critical
            sections that several jobs enter at once); 0 refuses at once.

    Raises:
        FolderLockedError: another process holds the lock (its pid is named when known).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OSError(err.errno, f"cannot create the run folder ({err.strerror})", str(folder)) from None
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield folder
        return
    path = folder / ".lock"
    fh = open(path, "a+")
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
            fh.seek(0)
            pid = fh.read().strip()
            raise FolderLockedError(f"run folder {str(folder)!r} is in use by another process"
                                    f"{f' (pid {pid})' if pid else ''}; wait for it to finish or use another "
                                    "--out-dir") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield folder
    finally:
        fh.close()


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
