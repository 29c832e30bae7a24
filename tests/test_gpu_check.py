"""benchmarks/gpu_check.py --dry-run: every step of the GPU check runs on the CPU at toy
sizes, without smac or dask (hidden, as on the GPU machine), and writes its outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lcsim.tabular.validate import validate_table

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_runs_every_step_and_writes_its_outputs(tmp_path):
    out = tmp_path / "check"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), str(out),
                        "--dry-run"], cwd=REPO, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    doc = json.loads((out / "summary.json").read_text())
    steps = {s["step"]: s for s in doc["steps"]}
    assert list(steps) == ["env", "gpu-tests", "pregen-throughput", "population-throughput",
                           "fp32-vs-bf16", "pregen-mnist10k"]
    assert all(s["status"] == "ok" for s in steps.values()), steps
    assert any("ratio lcsim / naive" in q for q in steps["pregen-throughput"]["quote"])
    assert any("ratio batched/sequential" in q for q in steps["population-throughput"]["quote"])
    assert any("|fp32 - bf16|" in q for q in steps["fp32-vs-bf16"]["quote"])
    for name in steps:
        assert (out / "logs" / f"{name}.log").stat().st_size > 0
    assert "smac is hidden" in (out / "_hidden" / "smac" / "__init__.py").read_text()
    png = (out / "figures" / "fp32_vs_bf16.png").read_bytes()
    assert png[:4] == b"\x89PNG"
    rows = json.loads((out / "fp32_vs_bf16.json").read_text())["rows"]
    assert len(rows) == 2 and all(len(r["fp32"]) == len(r["bf16"]) == 1 for r in rows)
    rep = validate_table(out / "table")
    assert rep.ok and rep.n_configs >= 1, rep.errors
    readme = (out / "table" / "README.md").read_text()
    assert "Config ids present" in readme and "--index-range 0:2" in readme
    assert "| pregen-mnist10k | ok |" in (out / "summary.md").read_text()
