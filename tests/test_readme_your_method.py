"""The README's "Replay your own method" section runs as written: its module saved as the file
it names, its commands run from that folder with the installed `lcsim`, its Python run there."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _section() -> tuple[str, list[tuple[str, str]]]:
    text = README.read_text()
    m = re.search(r"^## Replay your own method\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README has no section '## Replay your own method'"
    body = m.group(1)
    return body, re.findall(r"```(\w+)\n(.*?)```", body, re.S)


def _installed(name: str) -> bool:
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def test_the_readme_section_runs_as_written(tmp_path):
    body, blocks = _section()
    assert [lang for lang, _ in blocks] == ["python", "bash", "python"]
    (_, module), (_, commands), (_, script) = blocks
    name = re.search(r"Save\s+this\s+as\s+`(\w+)\.py`", body).group(1)
    (tmp_path / f"{name}.py").write_text(module)
    bindir = Path(sys.executable).parent  # the `lcsim` script installed beside this python
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "LCSIM_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)  # "from that folder": no help from the environment
    ran = 0
    for line in filter(None, (c.split("#")[0].strip() for c in commands.splitlines())):
        if "optuna" in line and not _installed("optuna"):
            continue  # the optional extra is not installed here
        r = subprocess.run(line, shell=True, cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, f"{line}\n{r.stderr}"
        assert "speed-up" in r.stdout and "Traceback" not in r.stderr
        ran += 1
    assert ran >= 1  # the optuna line needs the optional extra
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "configs stopped" in r.stdout and "goal reached after" in r.stdout

