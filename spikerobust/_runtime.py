"""Process-level settings for the ``spikerobust`` command (not applied on ``import spikerobust``).

:func:`keep_freed_memory` asks glibc's ``malloc`` to keep freed memory for reuse instead of
handing it back to the kernel. PyTorch on CPU allocates through ``malloc``; by default glibc
returns every freed block above a few MB to the kernel, so the next forward pass's activations
(the LSNN's ``[T, B, N]`` traces, a CNN's feature maps) come back as fresh pages that the kernel
must zero and map. In a robust-training step, which runs ~12 passes, that page-fault time was
20–30 % of the step (``benchmarks/bench_robust_step.py`` reports it). The cost: the process keeps
its peak heap size.

Set ``SPIKEROBUST_KEEP_FREED_MEMORY=0`` to leave the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["keep_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 2**31 - 1) -> bool:
    """Serve blocks below ``mmap_threshold`` bytes from the heap and return heap memory to the
    kernel only above ``trim_threshold`` bytes free. Returns ``True`` if glibc accepted both.

    No effect (returns ``False``) off Linux/glibc or with ``SPIKEROBUST_KEEP_FREED_MEMORY=0``.
    Both values are C ``int``s (glibc caps the mmap threshold at 32 MB on 64-bit systems).

    Raises:
        ValueError: a threshold outside ``1 .. 2**31 - 1``.
    """
    for name, v in (("mmap_threshold", mmap_threshold), ("trim_threshold", trim_threshold)):
        if not 1 <= int(v) <= 2**31 - 1:
            raise ValueError(f"{name} must be in 1 .. 2**31 - 1 (a C int), got {v}")
    if os.environ.get("SPIKEROBUST_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))
