"""Packaging: everything installs under `lcsim`, and the package list in pyproject is whole."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_stage_packages_import_only_under_the_lcsim_namespace(tmp_path):
    # a fresh interpreter outside the checkout: sys.path[0] must not be the repository root
    code = ("import importlib.util as u, lcsim.tabular, lcsim.hpo_sim.replay\n"
            "print([n for n in ('analysis', 'tabular', 'pregen', 'hpo_sim') "
            "if u.find_spec(n) is not None])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_pyproject_lists_every_package_folder():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(cfg["packages"])
    mapping = cfg["package-dir"]
    on_disk = set()
    for pkg, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder).parts
            on_disk.add(".".join((pkg, *rel)))
    assert on_disk - listed == set(), "folders with __init__.py missing from pyproject"
    assert listed - on_disk == set(), "pyproject lists packages that do not exist"


def test_tabular_does_not_import_pregen():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "tabular").rglob("*.py")
                 if "lcsim.pregen" in p.read_text() or "from pregen" in p.read_text()]
    assert offenders == []
