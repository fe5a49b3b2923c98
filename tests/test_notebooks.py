"""Every notebook under notebooks/ is executed (small sizes, TORCHNMF_L1_SMALL=1) so none can rot."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _missing(metadata: dict) -> str | None:
    """Why a notebook cannot run in this version (a name or a loss it needs is absent), or None."""
    import torchnmf_l1
    from torchnmf_l1.registry import available_solvers, get_solver

    for name in metadata.get("requires", []):
        if not hasattr(torchnmf_l1, name):
            return f"needs torchnmf_l1.{name}, not in this version"
    handled = set()
    for solver in available_solvers("nmf"):
        handled |= set(getattr(get_solver(solver), "losses", ()))
    for loss in metadata.get("requires_losses", []):
        if loss not in handled:
            return f"needs a solver for loss {loss!r}; registered solvers handle {sorted(handled)}"
    return None


def test_there_are_notebooks():
    names = {p.stem for p in NOTEBOOKS}
    assert {"01_quickstart", "02_hyperspectral_unmixing", "03_faces_cbcl", "04_l1_robustness", "05_topics", "06_differentiable_nmf"} <= names


def test_notebooks_are_up_to_date_with_their_generator(tmp_path):
    nbformat = pytest.importorskip("nbformat")
    import runpy
    import shutil

    shutil.copy(ROOT / "notebooks" / "make_notebooks.py", tmp_path)
    runpy.run_path(str(tmp_path / "make_notebooks.py"), run_name="__main__")
    for path in NOTEBOOKS:
        fresh = nbformat.read(tmp_path / path.name, as_version=4)
        stored = nbformat.read(path, as_version=4)
        assert [c.source for c in fresh.cells] == [c.source for c in stored.cells], f"{path.name}: rerun notebooks/make_notebooks.py"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    nb = nbformat.read(path, as_version=4)
    reason = _missing(nb.metadata.get("torchnmf_l1", {}))
    if reason:
        pytest.skip(f"{path.name}: {reason}")
    monkeypatch.setenv("TORCHNMF_L1_SMALL", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    # the notebook backend, whatever the environment says: figures become image outputs
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    client = nbclient.NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()  # raises CellExecutionError naming the cell on any error or failed assert
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), f"{path.name} shows no figure"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_needs_only_the_installed_package(path):
    nbformat = pytest.importorskip("nbformat")
    source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    # a pip-installed user has the package, not this repository's experiments/ or a sys.path hack
    assert "sys.path" not in source and "from experiments" not in source and "import experiments" not in source
