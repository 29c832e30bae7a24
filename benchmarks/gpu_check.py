"""One call on a one-GPU machine: GPU tests, throughput ratios, fp32 vs bf16, a table slice.

    python benchmarks/gpu_check.py OUTDIR                # on the GPU box, < 8 minutes
    python benchmarks/gpu_check.py OUTDIR --dry-run      # the same steps on the CPU, toy sizes

Steps, each a subprocess with its own time limit inside one hard budget (--budget, 450 s):
1. env: torch, CUDA device, nvidia-smi, lcsim's code revision;
2. gpu-tests: `pytest -m gpu` over the test files that hold GPU-marked tests;
3. pregen-throughput: `benchmarks/pregen_throughput.py`, a naive per-config DataLoader loop
   vs `lcsim pregen run` (4 workers, bf16, channels_last), with the ratio (goal >= 10x);
4. population-throughput: `benchmarks/population_throughput.py` (goal >= 4x);
5. fp32-vs-bf16: `benchmarks/bf16_vs_fp32.py`, the same Sobol sample trained both ways;
6. pregen-mnist10k: `lcsim pregen run` of --index-range of the real MNIST-10k table (the
   full 8,000-digit training split, T = 20) for the time left; at its deadline it gets
   SIGTERM, a clean stop (nothing partial; the same command resumes). Then `lcsim table
   validate` and `info`, and OUTDIR/table/README.md says which ids exist, on what device.

Writes OUTDIR/summary.md + summary.json (each step: status, seconds, its key lines; the
same table is printed last), OUTDIR/logs/<step>.log, OUTDIR/figures/fp32_vs_bf16.png,
OUTDIR/fp32_vs_bf16.json, OUTDIR/table/ (the shards).

The lent GPU machine has no internet, smac or dask. No step needs smac or dask (--dry-run
hides both to prove it). The MNIST-10k subset ships in the repository
(pregen/assets/mnist-10k), so the working tree carries it; --data-root takes a carried copy
instead (an ignored folder named in `carry`, e.g. carry/mnist-10k). lcsim need not be
installed: if `import lcsim` fails, the steps get the checkout on PYTHONPATH through a
folder of symlinks (OUTDIR/_site). Sizes were chosen without a GPU at hand (none was lent
when this was written): the first run on one may need --budget or step sizes adjusted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

# step: (argv on the GPU, argv with --dry-run, time cap in s on the GPU, cap with --dry-run,
# what to quote in the summary: lines containing any of these)
STEPS = ("env", "gpu-tests", "pregen-throughput", "population-throughput", "fp32-vs-bf16",
         "pregen-mnist10k")
QUOTE = {"env": ("torch", "device", "revision", "NVIDIA-SMI", "MiB"),
         "gpu-tests": ("passed", "failed", "skipped", "error"),
         "pregen-throughput": ("configs/h", "ratio"),
         "population-throughput": ("ratio",),
         "fp32-vs-bf16": ("|fp32 - bf16|",),
         "pregen-mnist10k": ("pregen:", "valid;", "configs    ", "final acc", "stopped by",
                             "ids present")}

_ENV_PROBE = r"""
import subprocess, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "available",
      torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0), "capability",
          torch.cuda.get_device_capability(0))
from lcsim.provenance import code_revision, package_version
print("lcsim", package_version(), "revision", code_revision())
try:
    print(subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20).stdout)
except (OSError, subprocess.SubprocessError) as e:
    print("no nvidia-smi:", e)
"""


def step_argv(name: str, a: argparse.Namespace, out: Path) -> list[str]:
    dry, bench = a.dry_run, REPO / "benchmarks"
    dev = "cpu" if dry else "cuda"
    data = ["--data-root", a.data_root] if a.data_root else []
    if name == "env":
        return [PY, "-c", _ENV_PROBE]
    if name == "gpu-tests":
        files = sorted(str(p) for p in (REPO / "tests").glob("test_*.py")
                       if "pytest.mark.gpu" in p.read_text())
        return [PY, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
                "--rootdir", str(REPO), *files]
    if name == "pregen-throughput":
        size = (["--n-configs", "2", "--n-train", "64", "--n-val", "32", "--workers", "1"]
                if dry else ["--n-configs", "16", "--n-train", "6400", "--n-val", "1600",
                             "--workers", "4"])
        return [PY, str(bench / "pregen_throughput.py"), "--device", dev, "--epochs", "1",
                *size]
    if name == "population-throughput":
        size = (["--models", "mnist-cnn", "--members", "2", "--batch", "8", "--steps", "1",
                 "--warmup", "0"] if dry else ["--members", "16", "--batch", "128"])
        return [PY, str(bench / "population_throughput.py"), "--device", dev, *size]
    if name == "fp32-vs-bf16":
        size = (["--n-configs", "2", "--epochs", "1", "--max-train", "64", "--val-size",
                 "32"] if dry else ["--n-configs", "12", "--epochs", "5"])
        return [PY, str(bench / "bf16_vs_fp32.py"), "--device", dev, *size, *data,
                "--figure", str(out / "figures" / "fp32_vs_bf16.png"),
                "--json", str(out / "fp32_vs_bf16.json")]
    if name == "pregen-mnist10k":
        size = (["--devices", "cpu", "--epochs", "2", "--max-train", "64", "--val-size", "32"]
                if dry else ["--devices", "cuda:0", "--workers-per-device", "4",
                             "--epochs", "20"])
        return [PY, "-m", "lcsim", "pregen", "run", "--space", "mnist", "--dataset", "mnist",
                *data, "--n-configs", "20000", "--index-range", a.index_range, *size,
                "--out", str(out / "table"), "--no-progress", "--notes",
                "MNIST-10k table (shipped 10,000-digit subset, full training split), "
                "started by benchmarks/gpu_check.py" + (" --dry-run (toy sizes)" if dry else "")]
    raise ValueError(name)


CAPS = {  # seconds: (GPU, dry run); dry-run caps leave room for a loaded shared CPU
    "env": (30, 30), "gpu-tests": (90, 60), "pregen-throughput": (150, 60),
    "population-throughput": (60, 50), "fp32-vs-bf16": (60, 50), "pregen-mnist10k": (0, 40),
}
_RESERVE = 20  # s kept for validating the table and writing the summary


def importable_env(out: Path, dry: bool) -> dict[str, str]:
    """Environment for the steps: lcsim importable, unbuffered output, and (dry run) smac
    and dask hidden, as on the GPU machine."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    paths = []
    if dry:
        hide = out / "_hidden"
        for mod in ("smac", "dask", "distributed"):
            (hide / mod).mkdir(parents=True, exist_ok=True)
            (hide / mod / "__init__.py").write_text(
                f"raise ImportError('{mod} is hidden by gpu_check --dry-run: the GPU machine "
                "has none')\n")
        paths.append(str(hide))
    probe = subprocess.run([PY, "-c", "import lcsim.pregen.runner"], env=env, cwd=out,
                           capture_output=True)
    if probe.returncode != 0:  # not installed: the checkout through a folder of symlinks
        site = out / "_site"
        pkg = site / "lcsim"
        pkg.mkdir(parents=True, exist_ok=True)
        for f in (REPO / "lcsim").iterdir():
            if f.suffix == ".py" and not (pkg / f.name).exists():
                (pkg / f.name).symlink_to(f)
        for sub in ("pregen", "tabular", "hpo_sim", "analysis"):
            if not (pkg / sub).exists():
                (pkg / sub).symlink_to(REPO / sub, target_is_directory=True)
        paths.append(str(site))
    if paths:
        env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(
            os.pathsep)
    return env


def run_step(name: str, argv: list[str], env: dict, log: Path, limit: float,
             stop_gently: bool = False) -> dict:
    """Run one step with a time limit; at the limit SIGTERM (the step's own clean stop, if
    it has one), then SIGKILL to its process group 30 s later. Steps run in OUTDIR, not in
    the checkout, whose top-level lcsim/ folder would shadow the importable package."""
    cwd = log.parent.parent
    t0 = time.monotonic()
    with open(log, "w") as f:
        f.write("$ " + " ".join("<script>" if "\n" in x else x for x in argv) + "\n")
        f.flush()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=f, stderr=subprocess.STDOUT,
                                start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=max(1.0, limit))
        except subprocess.TimeoutExpired:
            timed_out = True
            os.kill(proc.pid, signal.SIGTERM) if stop_gently else os.killpg(proc.pid,
                                                                              signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    text = log.read_text(errors="replace")
    quote = [ln.strip() for ln in text.splitlines()[1:]
             if any(k in ln for k in QUOTE.get(name, ())) and len(ln) < 300][-6:]
    if timed_out:
        status = "stopped at its time budget" if stop_gently else "timed out"
    else:
        status = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    return {"step": name, "status": status, "seconds": round(time.monotonic() - t0, 1),
            "returncode": proc.returncode, "limit_s": round(limit, 1), "log": str(log),
            "quote": quote}


def table_readme(table: Path, a: argparse.Namespace, env: dict) -> list[str]:
    """Validate the table slice, record `table info`, and write its README.md."""
    lines = []
    if not (table / "meta.json").exists():
        return ["no table was started"]
    for cmd in (["table", "validate", "--table", str(table)],
                ["table", "info", "--table", str(table)]):
        r = subprocess.run([PY, "-m", "lcsim", *cmd], cwd=table.parent, env=env,
                           capture_output=True, text=True, timeout=120)
        lines += (r.stdout + r.stderr).strip().splitlines()
    ids = _held(table, env)
    meta = json.loads((table / "meta.json").read_text())
    (table / "README.md").write_text(
        "# mnist-10k (GPU): the start of a full-data MNIST table\n\n"
        f"Made by `benchmarks/gpu_check.py` ({'--dry-run, toy sizes' if a.dry_run else 'GPU'}"
        f") with `lcsim pregen run --index-range {a.index_range}` on {meta.get('device')}, "
        f"code {meta.get('code_revision')}, {meta.get('created')}.\n\n"
        f"Config ids present ({len(ids)}): {_ranges(ids) or 'none'}. Order of training: "
        f"{meta.get('order')} (with several workers a run stopped at its time budget leaves a "
        "scattered set); re-running the same command (same --out) resumes the range.\n\n"
        f"Data: {meta.get('data_source')}; {meta.get('n_train')} train / {meta.get('n_val')} "
        f"validation digits, T = {meta.get('epochs')}; everything else in meta.json.\n")
    return lines + [f"config ids present: {_ranges(ids) or 'none'}"]


def _held(table: Path, env: dict) -> list[int]:
    r = subprocess.run([PY, "-c", "import sys; from lcsim.tabular.writer import held_ids; "
                        "print(*sorted(held_ids(sys.argv[1])))", str(table)], cwd=table.parent,
                       env=env, capture_output=True, text=True, timeout=60)
    return [int(v) for v in r.stdout.split()]


def _ranges(ids: list[int]) -> str:
    out, i = [], 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ", ".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--dry-run", action="store_true",
                    help="the same steps on the CPU at toy sizes (under a minute)")
    ap.add_argument("--budget", type=float, default=None,
                    help="hard total seconds (default 450 on the GPU; 200 with --dry-run, "
                         "which needs about 30 s of an idle 2-core CPU)")
    ap.add_argument("--index-range", default=None,
                    help="ids of the MNIST-10k table to train (default 0:256; dry: 0:2)")
    ap.add_argument("--data-root", help="MNIST root (default: the shipped 10k subset)")
    a = ap.parse_args(argv)
    a.budget = a.budget or (200.0 if a.dry_run else 450.0)
    a.index_range = a.index_range or ("0:2" if a.dry_run else "0:256")
    t0 = time.monotonic()
    out = a.outdir.resolve()
    for sub in ("logs", "figures"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    env = importable_env(out, a.dry_run)
    if a.dry_run:
        env.setdefault("OMP_NUM_THREADS", "1")
    results = []
    for k, name in enumerate(STEPS):
        left = a.budget - (time.monotonic() - t0) - _RESERVE
        cap = CAPS[name][1 if a.dry_run else 0]
        last = k == len(STEPS) - 1
        limit = left if last and not a.dry_run else min(cap, left)
        if limit < 5:
            results.append({"step": name, "status": "skipped (budget spent)", "seconds": 0,
                            "quote": []})
            continue
        results.append(run_step(name, step_argv(name, a, out), env, out / "logs" /
                                f"{name}.log", limit, stop_gently=last))
        print(f"[{time.monotonic() - t0:6.1f}s] {name}: {results[-1]['status']}", flush=True)
    table_lines = table_readme(out / "table", a, env)
    results[-1]["quote"] = results[-1].get("quote", []) + [
        ln for ln in table_lines if any(k in ln for k in QUOTE["pregen-mnist10k"])]
    total = time.monotonic() - t0
    doc = {"dry_run": a.dry_run, "budget_s": a.budget, "total_s": round(total, 1),
           "steps": results}
    (out / "summary.json").write_text(json.dumps(doc, indent=1))
    md = [f"# gpu_check{' --dry-run' if a.dry_run else ''}: {total:.0f} s of {a.budget:.0f}",
          "", "| step | status | s |", "| --- | --- | --- |"]
    md += [f"| {r['step']} | {r['status']} | {r['seconds']} |" for r in results]
    for r in results:
        md += ["", f"## {r['step']}", *[f"    {q}" for q in r["quote"]]]
    (out / "summary.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    ok = {"ok", "stopped at its time budget"}
    return 0 if all(r["status"] in ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
