"""Flags every subcommand spells the same way, and the checks behind them.

    --table T        a table to read: directory, shipped name or 'default'
    --out DIR        where outputs go; refuses a folder holding results of other settings
    --force          ... unless given: then the earlier results are removed first
    --device D       one torch device (cpu, cuda, cuda:1); --devices D1,D2 where several fit
    --seed S         documented per command as what it seeds
    --no-progress    no progress bars or log lines

`check_device` turns a CUDA device on a machine without one into a UserError that says how
to run on the CPU. `prepare_out` guards output folders: each records the settings that made
it (`lcsim-run.json`); a re-run with the same settings resumes, other settings are refused
(naming what would be replaced) unless `force`, which removes the listed results first.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lcsim.errors import UserError

__all__ = [
    "OUT_MARKER",
    "add_device",
    "add_devices",
    "add_out",
    "add_progress",
    "add_seed",
    "add_table",
    "check_device",
    "prepare_out",
]

OUT_MARKER = "lcsim-run.json"


def add_table(p: argparse.ArgumentParser, *, default: str | None = "default",
              help: str = "") -> None:
    p.add_argument("--table", default=default, required=default is None,
                   help=help or "table directory, shipped table name, or 'default' "
                                f"(default: {default})")


def add_out(p: argparse.ArgumentParser, *, required: bool = False, help: str = "") -> None:
    p.add_argument("--out", required=required, default=None,
                   help=help or "output directory (re-running the same command resumes)")
    p.add_argument("--force", action="store_true",
                   help="replace the results of other settings found in --out")


def add_device(p: argparse.ArgumentParser, *, default: str | None = "cpu") -> None:
    p.add_argument("--device", default=default,
                   help="torch device: cpu, cuda, cuda:1, ..." + (f" (default {default})"
                                                                 if default else ""))


def add_devices(p: argparse.ArgumentParser, *, default: str = "cpu") -> None:
    p.add_argument("--devices", default=default,
                   help=f"comma-separated torch devices, e.g. cuda:0,cuda:1 (default {default})")


def add_seed(p: argparse.ArgumentParser, what: str, *, default: int | None = 0) -> None:
    p.add_argument("--seed", type=int, default=default, help=f"seeds {what}")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars or log lines")


def check_device(device: str) -> str:
    """`device` if torch can use it here, else a UserError naming what is missing."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise UserError(f"--device {device!r} is not a torch device ({e}); use cpu, cuda or "
                        "cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: no CUDA device is visible on this machine; "
                            "run on the CPU with --device cpu")
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise UserError(f"--device {device}: this machine has {n} CUDA device(s) "
                            f"(cuda:0..cuda:{n - 1})")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {device}: MPS is not available; use --device cpu")
    return device


def check_devices(devices: Iterable[str]) -> tuple[str, ...]:
    return tuple(check_device(d) for d in devices)


def prepare_out(out: str | Path, settings: dict[str, Any], *, force: bool,
                results: Iterable[str] = ()) -> Path:
    """Create or reuse output folder `out` for a run with `settings` (JSON-able).

    Same settings as recorded: reused (the run resumes). A folder with other settings, or
    with files but no record: refused with a UserError listing what would be replaced, unless
    `force`, which first removes `results` (names relative to `out`, the files and folders the
    command writes) and the record. Files the command does not write are never touched.
    """
    d = Path(out)
    if d.exists() and not d.is_dir():
        raise UserError(f"--out {d} is a file; give a directory")
    marker = d / OUT_MARKER
    doc = json.loads(json.dumps(settings, sort_keys=True, default=str))
    if marker.exists():
        try:
            old = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            old = None
        if old == doc:
            return d
    present = sorted(r for r in results if (d / r).exists())
    if present or marker.exists():
        if not force:
            what = ", ".join(present) or OUT_MARKER
            diff = _diff(old if marker.exists() else None, doc)
            raise UserError(f"--out {d} holds results of other settings ({diff}): {what}; "
                            "use a new --out, or --force to replace them")
        for r in present:
            p = d / r
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    d.mkdir(parents=True, exist_ok=True)
    tmp = marker.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
    tmp.replace(marker)
    return d


def _diff(old: dict | None, new: dict) -> str:
    if not isinstance(old, dict):
        return "no record of the settings that made them"
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    shown = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:3])
    return shown + ("; ..." if len(keys) > 3 else "")
