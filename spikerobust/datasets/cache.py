"""One cache-directory helper for every dataset: where preprocessed arrays live and how they are keyed.

The cache directory is, in order of precedence:

1. the ``cache_dir=`` argument of a dataset;
2. the environment variable ``$SPIKEROBUST_CACHE``;
3. ``~/.cache/spikerobust``.

Each preprocessed array set is one ``.npz`` file named ``<prefix>-<key>.npz`` where ``key`` is a
SHA-1 hash of *every* setting that changes the output (the source files' names, sizes and
modification times included), so a changed setting or a changed file never reuses a stale cache.
Files are written atomically (a temporary file in the same folder, then :func:`os.replace`) and read
with ``allow_pickle=False``.

Examples:
    >>> import numpy as np, tempfile
    >>> d = tempfile.mkdtemp()
    >>> key = settings_hash({"a": 1, "b": [1, 2]})
    >>> path = cache_file("demo", key, cache_dir=d)
    >>> save_arrays(path, {"x": np.arange(3)})
    >>> load_arrays(path)["x"].tolist()
    [0, 1, 2]

A dataset does all of this in one call, :func:`cached_arrays`:

    >>> arrays, path = cached_arrays("demo", {"a": 1, "b": [1, 2]}, lambda: {"x": np.arange(3)}, cache_dir=d)
    >>> arrays["x"].tolist(), path == cache_file("demo", key, cache_dir=d)
    ([0, 1, 2], True)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, Union

import numpy as np

__all__ = [
    "CACHE_ENV",
    "cache_root",
    "settings_hash",
    "files_fingerprint",
    "cache_file",
    "save_arrays",
    "load_arrays",
    "cached_arrays",
]

logger = logging.getLogger(__name__)

CACHE_ENV = "SPIKEROBUST_CACHE"

PathLike = Union[str, os.PathLike]


def cache_root(cache_dir: Optional[PathLike] = None) -> Path:
    """The cache directory: ``cache_dir``, else ``$SPIKEROBUST_CACHE``, else ``~/.cache/spikerobust``.

    Args:
        cache_dir: explicit directory (wins over the environment).

    Returns:
        The directory as a :class:`~pathlib.Path` (not created here).
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "spikerobust"


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (os.PathLike,)):
        return os.fspath(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    raise ValueError(f"cache settings must be JSON-like (str, numbers, lists, dicts), got {type(obj).__name__}")


def settings_hash(settings: Mapping[str, Any]) -> str:
    """A stable SHA-1 hex digest of a JSON-like mapping (key order does not matter).

    Args:
        settings: every setting that affects the cached output.

    Returns:
        40 hexadecimal characters.

    Examples:
        >>> settings_hash({"a": 1, "b": 2}) == settings_hash({"b": 2, "a": 1})
        True
        >>> settings_hash({"a": 1}) == settings_hash({"a": 2})
        False
    """
    text = json.dumps(_jsonable(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def files_fingerprint(paths: Iterable[PathLike]) -> list:
    """``[name, size, mtime_ns]`` for each file, so an edited source file changes the cache key.

    Raises:
        ValueError: if a file does not exist (the path is named).
    """
    out = []
    for p in paths:
        p = Path(p)
        try:
            st = p.stat()
        except FileNotFoundError:
            raise ValueError(f"file not found: {p}") from None
        out.append([str(p.resolve()), int(st.st_size), int(st.st_mtime_ns)])
    return out


def cache_file(prefix: str, key: str, cache_dir: Optional[PathLike] = None) -> Path:
    """``<cache_root>/<prefix>-<key>.npz``."""
    return cache_root(cache_dir) / f"{prefix}-{key}.npz"


def save_arrays(path: PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` to ``path`` atomically (temporary file in the same folder, then ``os.replace``).

    Object arrays are refused (they would need pickling): store strings as fixed-width unicode. A
    cache folder that cannot be written (read-only, full) only logs a warning: the caller goes on
    with the arrays it computed.
    """
    from ..robust.checkpoint import atomic_write

    path = Path(path)
    for name, a in arrays.items():
        if np.asarray(a).dtype == object:
            raise ValueError(f"array {name!r} has dtype object; cache arrays must not need pickling")
    try:
        atomic_write(path, lambda fh: np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()}))
    except OSError as err:  # a read-only or full cache folder: the run goes on uncached
        logger.warning("cannot write the cache file %s (%s); continuing without caching", path, err.strerror or err)
        return
    logger.info("cached %s", path)


def load_arrays(path: PathLike) -> Optional[Dict[str, np.ndarray]]:
    """Load a cache file written by :func:`save_arrays`; ``None`` if it is absent or unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except Exception as exc:  # a corrupt cache is rebuilt, never trusted
        logger.warning("ignoring unreadable cache file %s (%s)", path, exc)
        return None


def cached_arrays(
    prefix: str,
    settings: Mapping[str, Any],
    build: Callable[[], Dict[str, np.ndarray]],
    cache_dir: Optional[PathLike] = None,
    use_cache: bool = True,
) -> Tuple[Dict[str, np.ndarray], Path]:
    """The arrays for ``settings``: from the cache when there, else ``build()`` (then cached).

    The file is ``cache_file(prefix, settings_hash(settings), cache_dir)``. With ``use_cache=False``
    the cache is neither read nor written and ``build()`` always runs.

    Args:
        prefix: the dataset's file prefix (``"mitbih"``, ``"fsdd"`` ...).
        settings: every setting that changes the arrays (see :func:`settings_hash`).
        build: computes the arrays when they are not cached.
        cache_dir, use_cache: the dataset's arguments.

    Returns:
        ``(arrays, path)``: the arrays (as built, or as read back) and the cache file's path.
    """
    path = cache_file(prefix, settings_hash(settings), cache_dir)
    arrays = load_arrays(path) if use_cache else None
    if arrays is None:
        arrays = build()
        if use_cache:
            save_arrays(path, arrays)
    return arrays, path
