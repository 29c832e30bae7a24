"""What produced an artifact: code revision, package and library versions, device, time.

One builder for every artifact lcsim writes (table metadata, replay outputs, live results),
so they all answer "which code, on what, when" the same way:

    provenance(device="cuda:0") -> {"lcsim": "0.1.0", "code_revision": "git:1d06b70-dirty",
        "versions": {...}, "device": "cuda:0", "device_name": "cuda:0 (NVIDIA H200)",
        "host": ..., "created": "2026-11-29T10:00:00+00:00"}

`code_revision` is `git describe --always --dirty` of the checkout when lcsim runs from one
(an editable install), else "lcsim <version>" (an installed release has no revision).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _ilm
import os
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

__all__ = ["code_revision", "device_name", "library_versions", "package_version", "provenance"]

_LIBRARIES = ("torch", "torchvision", "numpy", "pandas", "pyarrow", "scipy", "scikit-learn",
              "smac")


def package_version() -> str:
    try:
        return _ilm.version("lcsim")
    except _ilm.PackageNotFoundError:
        return "unknown"


def _version(dist: str) -> str | None:
    try:
        return _ilm.version(dist)
    except _ilm.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str | None]:
    return {**{d: _version(d) for d in _LIBRARIES}, "python": platform.python_version()}


@lru_cache(maxsize=1)
def code_revision() -> str:
    """'git:<describe>[-dirty]' from a checkout that tracks this package, else 'lcsim <ver>'."""
    here = Path(__file__).resolve().parent
    try:
        # only a checkout that tracks this very file counts (a venv inside some other
        # repository must not lend its revision to an installed lcsim)
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", Path(__file__).name],
                                 cwd=here, capture_output=True, text=True, timeout=5)
        if tracked.returncode == 0:
            out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=here,
                                 capture_output=True, text=True, timeout=5)
            if out.returncode == 0 and out.stdout.strip():
                return "git:" + out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return f"lcsim {package_version()}"


def device_name(device: str) -> str:
    """Human-readable name of a torch device: 'cuda:0 (NVIDIA H200)', 'cpu (model, N cores)'."""
    if str(device).startswith("cuda"):
        import torch

        d = torch.device(device)
        return f"{d} ({torch.cuda.get_device_name(d)})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    return f"cpu ({cpu}, {os.cpu_count()} logical cores)"


def provenance(device: str | None = None, **extra: Any) -> dict[str, Any]:
    """The provenance dict stored in every artifact; `extra` keys are added as they are."""
    out: dict[str, Any] = {
        "lcsim": package_version(),
        "code_revision": code_revision(),
        "versions": library_versions(),
        "host": platform.node(),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    if device is not None:
        out["device"] = str(device)
        out["device_name"] = device_name(str(device))
    out.update(extra)
    return out
