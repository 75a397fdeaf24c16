"""Every numbered tutorial executes top to bottom, quietly (no error, no warning), and is stored without outputs."""

from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("[0-9][0-9]_*.ipynb"))


def test_tutorials_numbered_without_gaps():
    numbers = [int(p.name[:2]) for p in TUTORIALS]
    assert numbers == list(range(1, len(TUTORIALS) + 1)), [p.name for p in TUTORIALS]


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_stored_without_outputs(path):
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: a code cell keeps its output"


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_executes(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    # the kernel is its own process: one intra-op thread there too (see conftest), or on a busy
    # 2-core machine its OpenMP threads wait on each other and a 40 s notebook takes over 10 min
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors
    # a reader should see no warning: nothing on stderr (Python warnings, tqdm bars and its
    # widget notice all go there) and no warning text in any printed output
    stderr = [o["text"] for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stderr"]
    assert not stderr, f"{path.name} writes to stderr:\n" + "".join(stderr)[:2000]
    printed = [
        o["text"] if o.get("output_type") == "stream" else o.get("data", {}).get("text/plain", "")
        for o in outputs
        if o.get("output_type") in ("stream", "execute_result", "display_data")
    ]
    noisy = [t for t in printed if "Warning" in t or "<torch._C.Generator" in t]
    assert not noisy, f"{path.name} prints a warning or a stray repr:\n" + "".join(noisy)[:2000]
