"""Packaging: everything installs under `lcsim`, and the package list in pyproject is whole."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _fresh_python(code: str, cwd: Path) -> str:
    """stdout of `code` in a fresh interpreter outside the checkout (sys.path[0] must not be
    the repository root)."""
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_stage_packages_import_only_under_the_lcsim_namespace(tmp_path):
    code = ("import importlib.util as u, lcsim.tabular, lcsim.hpo_sim.replay\n"
            "print([n for n in ('analysis', 'tabular', 'pregen', 'hpo_sim') "
            "if u.find_spec(n) is not None])")
    assert _fresh_python(code, tmp_path) == "[]"


def test_lcsim_help_imports_no_torch(tmp_path):
    # every `lcsim live` method registers its command: its package must stay light
    code = ("import sys, lcsim.cli\n"
            "lcsim.cli.build_parser()\n"
            "print('torch' in sys.modules)")
    assert _fresh_python(code, tmp_path) == "False"


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


def test_every_module_over_400_lines_says_why_in_its_docstring():
    import ast

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    unexplained = []
    for folder in cfg["package-dir"].values():
        for p in (ROOT / folder).rglob("*.py"):
            text = p.read_text()
            if text.count("\n") > 400 and "400 lines" not in (ast.get_docstring(
                    ast.parse(text)) or ""):
                unexplained.append(str(p.relative_to(ROOT)))
    assert unexplained == []
