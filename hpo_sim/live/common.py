"""Helpers shared by the population CLIs (ESGD, EPBT): provenance and model factories."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

__all__ = ["provenance", "model_factory"]


def provenance(device: str) -> dict:
    """Code revision, device and library versions stored beside every live result."""
    import numpy
    import torch

    try:
        rev = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ""
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else \
        (platform.processor() or platform.machine())
    return {"code_revision": rev or "unknown", "device": device, "device_name": name,
            "torch": torch.__version__, "numpy": numpy.__version__,
            "python": platform.python_version()}


def model_factory(preset: dict, data):
    """`seed -> nn.Module` from the preset's model: {"named": NAME} or {"space", "config"}."""
    from lcsim.pregen.models import build_model, build_named_model
    from lcsim.tabular.spaces import get_space

    spec = preset["model"]
    if "named" in spec:
        return lambda seed: build_named_model(spec["named"], in_shape=data.in_shape,
                                              num_classes=data.num_classes, seed=seed)
    full = {**get_space(spec["space"]).fixed, **spec["config"]}
    return lambda seed: build_model(spec["space"], full, in_shape=data.in_shape,
                                    num_classes=data.num_classes, seed=seed)
