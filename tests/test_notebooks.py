"""Every notebook in analysis/notebooks runs headless, end to end, without an error."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NB_DIR = Path(__file__).resolve().parents[1] / "analysis" / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
# The live notebooks train tiny populations / comparisons: 10-16 s of CPU each, over a minute
# together, so they run with -m slow; the Choi notebook (replays on the table) runs by default.
LIVE = {"alrs", "esgd", "epbt"}
CASES = [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.stem in LIVE else [])
         for p in NOTEBOOKS]


def test_every_paper_has_a_notebook():
    assert {p.stem for p in NOTEBOOKS} >= {"choi", "alrs", "esgd", "epbt"}


def test_notebooks_are_stored_without_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code, f"{path.name} has no code cell"
        assert all(not c.outputs and c.execution_count is None for c in code), path.name


@pytest.mark.parametrize("path", CASES)
def test_notebook_runs(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("LCSIM_NOTEBOOK_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("LCSIM_CACHE_DIR", str(tmp_path / "cache"))  # shipped-table cache
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    # CellExecutionError (with the failing cell's traceback) on the first error
    NotebookClient(nb, kernel_name="python3", timeout=600,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if "image/png" in o.get("data", {})]
    assert images, f"{path.name} drew no figure"
