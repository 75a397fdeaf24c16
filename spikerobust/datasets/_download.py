"""Downloading for users (``download=True``); never called by the tests."""

from __future__ import annotations

import logging
import os
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Optional, Union

from tqdm.auto import tqdm

__all__ = ["download_file", "download_and_extract"]

logger = logging.getLogger(__name__)


def download_file(url: str, dest: Union[str, os.PathLike]) -> Path:
    """Fetch ``url`` to ``dest`` (temporary file then ``os.replace``) with a tqdm progress bar."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    logger.info("downloading %s -> %s", url, dest)
    try:
        with urllib.request.urlopen(url) as resp, os.fdopen(fd, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, leave=False) as bar:
                while True:
                    chunk = resp.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
                    bar.update(len(chunk))
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return dest


def _safe_members(names, root: Path):
    root = root.resolve()
    for name in names:
        target = (root / name).resolve()
        if root != target and root not in target.parents:
            raise ValueError(f"archive member {name!r} would be written outside {root}")


def download_and_extract(url: str, root: Union[str, os.PathLike], filename: Optional[str] = None) -> Path:
    """Download an archive (``.tar.gz``/``.tgz``/``.zip``) into ``root`` and extract it there."""
    root = Path(root)
    archive = root / (filename or url.rstrip("/").split("/")[-1])
    if not archive.is_file():
        download_file(url, archive)
    logger.info("extracting %s", archive)
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            _safe_members(zf.namelist(), root)
            zf.extractall(root)
    else:
        with tarfile.open(archive) as tf:
            _safe_members(tf.getnames(), root)
            tf.extractall(root)
    return root
