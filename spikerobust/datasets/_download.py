"""Downloading for users (``download=True``): checksums and safe extraction. The tests use local files.

Every download is checked against a checksum: the caller's ``checksum=("md5" | "sha256", hex)``,
else the published one in :data:`KNOWN_CHECKSUMS`; a mismatch deletes the download and raises.
An archive is extracted only if none of its members is an absolute path, leaves the target
folder (``..``), is a link pointing outside it, passes through a link, or is a device file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import Dict, Iterable, Optional, Tuple, Union

from tqdm import tqdm

__all__ = ["download_file", "download_and_extract", "file_digest", "KNOWN_CHECKSUMS"]

logger = logging.getLogger(__name__)

_FMNIST = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

#: Published checksums of the official files (the ones torchvision / torchaudio verify).
KNOWN_CHECKSUMS: Dict[str, Tuple[str, str]] = {
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz": ("md5", "c58f30108f718f92721af3b95e74349a"),
    _FMNIST + "train-images-idx3-ubyte.gz": ("md5", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    _FMNIST + "train-labels-idx1-ubyte.gz": ("md5", "25c81989df183df01b3e8a0aad5dffbe"),
    _FMNIST + "t10k-images-idx3-ubyte.gz": ("md5", "bef4ecab320f06d8554ea6380940ec79"),
    _FMNIST + "t10k-labels-idx1-ubyte.gz": ("md5", "bb300cfdad3c16e7a12a480ee83cd310"),
    "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz":
        ("sha256", "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"),
}

Checksum = Tuple[str, str]


def file_digest(path: Union[str, os.PathLike], algorithm: str = "sha256") -> str:
    """Hex digest of a file (``"md5"`` or ``"sha256"``), read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _expected(url: str, checksum: Optional[Checksum]) -> Optional[Checksum]:
    expected = checksum or KNOWN_CHECKSUMS.get(url)
    if expected is None:
        logger.warning("no published checksum for %s: its integrity cannot be verified", url)
    elif expected[0] not in ("md5", "sha256"):
        raise ValueError(f"checksum algorithm must be 'md5' or 'sha256', got {expected[0]!r}")
    return expected


def _verify(path: Path, url: str, expected: Optional[Checksum], shown: Path) -> None:
    if expected is None:
        return
    algo, want = expected
    got = file_digest(path, algo)
    if got != want.lower():
        raise ValueError(f"checksum mismatch for {url} ({shown}): expected {algo} {want}, got {got}; the file is "
                         "corrupt or not the published one and was deleted; try again")


def download_file(url: str, dest: Union[str, os.PathLike], *, checksum: Optional[Checksum] = None) -> Path:
    """Fetch ``url`` to ``dest`` (temporary file, checksum, then ``os.replace``) with a progress bar.

    Args:
        checksum: ``("md5" | "sha256", hex digest)``; default the published one
            (:data:`KNOWN_CHECKSUMS`), or none (a warning) for a URL without one.

    Raises:
        ValueError: the downloaded file does not match the checksum (nothing is kept).
    """
    dest = Path(dest)
    expected = _expected(url, checksum)
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
        _verify(Path(tmp), url, expected, dest)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return dest


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _inside(root: Path, target: Path) -> bool:
    return target == root or root in target.parents


def _check_names(names: Iterable[str], root: Path) -> None:
    for name in names:
        if name.startswith(("/", "\\")) or os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
            raise ValueError(f"archive member {name!r} is an absolute path; refusing to extract")
        if not _inside(root, (root / name).resolve()):
            raise ValueError(f"archive member {name!r} would be written outside {root}; refusing to extract")


def _check_tar(tf: tarfile.TarFile, root: Path) -> None:
    """Refuse absolute paths, ``..``, links pointing outside ``root``, paths through links, devices."""
    members = tf.getmembers()
    _check_names([m.name for m in members], root)
    links = set()
    for m in members:
        name = posixpath.normpath(m.name)
        parts = name.split("/")
        through = next(("/".join(parts[:i]) for i in range(1, len(parts)) if "/".join(parts[:i]) in links), None)
        if through is not None:
            raise ValueError(f"archive member {m.name!r} passes through the link {through!r}; refusing to extract")
        if m.issym() or m.islnk():
            if posixpath.isabs(m.linkname):
                raise ValueError(f"archive link {m.name!r} points to the absolute path {m.linkname!r}; refusing to extract")
            base = posixpath.dirname(name) if m.issym() else ""
            target = (root / base / m.linkname).resolve()
            if not _inside(root, target):
                raise ValueError(f"archive link {m.name!r} -> {m.linkname!r} points outside {root}; refusing to extract")
            links.add(name)
        elif not (m.isfile() or m.isdir()):
            raise ValueError(f"archive member {m.name!r} is a device or special file; refusing to extract")


def download_and_extract(url: str, root: Union[str, os.PathLike], filename: Optional[str] = None, *,
                         checksum: Optional[Checksum] = None) -> Path:
    """Download an archive (``.tar.gz``/``.tgz``/``.zip``) into ``root``, verify it, extract it there.

    An archive already in ``root`` is verified too (a partial or tampered file is refused).

    Raises:
        ValueError: a checksum mismatch, or a member that is unsafe to extract (see the module).
    """
    root = Path(root)
    archive = root / (filename or url.rstrip("/").split("/")[-1])
    if not archive.is_file():
        download_file(url, archive, checksum=checksum)
    else:
        expected = _expected(url, checksum)
        try:
            _verify(archive, url, expected, archive)
        except ValueError:
            archive.unlink()
            raise
    logger.info("extracting %s", archive)
    real_root = root.resolve()
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as zf:
            _check_names(zf.namelist(), real_root)
            zf.extractall(root)
    else:
        with tarfile.open(archive) as tf:
            _check_tar(tf, real_root)
            if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: the standard library's own guard too
                tf.extractall(root, filter="data")
            else:  # pragma: no cover - older Pythons
                tf.extractall(root)
    return root
