"""Models: the CNNs of Choi et al., LCBench's funnel MLP (built from a config), named models.

Paper CNNs (`build_model(space_name, space.full(config), ...)`):
- mnist:   C1-P1-C2-P2-Fc-Softmax.
- cifar10: C1-C2-P1-C3-P2-C4-P3-Fc-Softmax.
Convolutions are stride 1 with 'same' padding (so a filter of 10 after a pool of 3 on 28x28
still builds); pools are max pools with stride = size (floor). The regularizer is applied "in
the standard way": batchnorm after every conv and after Fc, before the activation; dropout
(rate = config `dropout`) after the Fc activation, before the output layer. The output layer
gives logits; the softmax lives in the loss.

LCBench MLP (`lcbench-mlp`, Auto-PyTorch's ShapedMlpNet with mlp_shape "funnel", as LCBench
trained it): `num_layers` Linear layers in all, the output layer included (1 = a linear
model). Widths (`funnel_units`): the first hidden layer has max(max_units, in_features) units,
each next one `step = int((first - num_classes) / (num_layers - 1))` fewer. Each hidden layer
is Linear -> ReLU -> Dropout; dropout shrinks the same way from `max_dropout` at the first
hidden layer (`funnel_dropout`: max_dropout * (1000 - i * int(1000 / (num_layers - 1))) /
1000 at hidden layer i), and as in Auto-PyTorch there is no dropout at all when max_dropout
<= 0.05. No batch norm; torch's default initialisation (Auto-PyTorch's default). The input
is flattened first (digits arrive as [B, 64, 1, 1]).

Named models (`build_named_model`):
- `mnist-cnn`: a fixed small MNIST CNN, the paper's MNIST net with c1=32, c2=64 filters of
  5x5, pools 2/2, fc=256 ReLU units, no dropout (about 0.85 M parameters at 28x28).
- `resnet18-cifar`: torchvision resnet18 with a CIFAR stem (3x3 stride-1 conv1, no maxpool).
- `resnet20`, `resnet32`: the CIFAR ResNets of He et al. (2016, Sec. 4.2): 3x3 conv 16, then
  3 stages of n = 3 / 5 torchvision BasicBlocks with 16/32/64 channels, global average pool,
  linear. Shortcuts are the paper's option A (identity; when the shape changes, stride-2
  subsampling and zero-padded channels), so they add no parameters (0.27 M / 0.46 M).
- `wrn-D-K` (e.g. `wrn-28-10`, `wrn-16-8`): the wide ResNets of Zagoruyko & Komodakis (2016),
  depth D = 6n + 4 with n pre-activation basic blocks (BN-ReLU-conv3x3, twice) per stage,
  widths 16, 16K, 32K, 64K, a 1x1 conv shortcut where the shape changes, BN-ReLU, global
  average pool, linear; no dropout. WRN-28-10 has 36.5 M parameters, WRN-16-4 2.7 M (as
  published); EPBT's Fig. 3 uses WRN-10-12, WRN-16-8, WRN-22-6 and WRN-28-5 (~11 M each).

Every builder takes `seed`; initialisation runs on CPU inside `fork_seeded`, so it never
changes the caller's global RNG state.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torchvision
from lcsim.tabular.spaces import ConfigError
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = [
    "NAMED_MODELS",
    "build_model",
    "build_named_model",
    "count_params",
    "funnel_dropout",
    "funnel_units",
    "forward_flops",
    "fork_seeded",
    "is_named_model",
]

NAMED_MODELS = ("mnist-cnn", "resnet18-cifar", "resnet20", "resnet32")  # + wrn-D-K (any D, K)

_ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh}
MNIST_CNN_CONFIG = {  # the fixed `mnist-cnn`
    "c1_filters": 32, "c2_filters": 64, "fc_units": 256, "filter_size": 5,
    "pool1": 2, "pool2": 2, "dropout": 0.0, "activation": "relu", "regularizer": "none",
}


@contextlib.contextmanager
def fork_seeded(seed: int, device: str | torch.device = "cpu") -> Iterator[None]:
    """Run a block with torch's RNG of `device` (and the CPU) seeded; restore it afterwards.

    Only the CPU generator and, for CUDA, that one device's generator are touched, so other
    GPUs' workers and the caller's global state are unaffected.
    """
    device = torch.device(device)
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] \
        if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for i in cuda:
            torch.cuda.default_generators[i].manual_seed(seed)
        yield


def _conv_block(cin: int, cout: int, k: int, act: str, bn: bool) -> list[nn.Module]:
    # 'same' padding; for an even k the extra row/column goes right/bottom (as padding="same"
    # does, but explicit, which avoids torch's hidden padded copy and its warning)
    layers: list[nn.Module] = []
    if k % 2 == 0:
        lo = (k - 1) // 2
        layers.append(nn.ZeroPad2d((lo, k - 1 - lo, lo, k - 1 - lo)))
    layers.append(nn.Conv2d(cin, cout, k, padding=k // 2 if k % 2 else 0, bias=not bn))
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(_ACTIVATIONS[act]())
    return layers


def _head(features: int, fc: int, num_classes: int, act: str, reg: str,
          rate: float) -> list[nn.Module]:
    bn = reg == "batchnorm"
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(features, fc, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm1d(fc))
    layers.append(_ACTIVATIONS[act]())
    if reg == "dropout" and rate > 0:  # rate 0 adds nothing (and no RNG draws)
        layers.append(nn.Dropout(rate))
    layers.append(nn.Linear(fc, num_classes))
    return layers


def _paper_cnn(space_name: str, cfg: Mapping[str, Any], in_shape: tuple[int, int, int],
               num_classes: int) -> nn.Sequential:
    if space_name not in ("mnist", "cifar10"):
        raise ValueError(f"unknown space {space_name!r}; choose from mnist, cifar10, "
                         "lcbench-mlp")
    act, reg = cfg["activation"], cfg["regularizer"]
    if act not in _ACTIVATIONS:
        raise ValueError(f"activation={act!r} is not one of {sorted(_ACTIVATIONS)}")
    if reg not in ("none", "dropout", "batchnorm"):
        raise ValueError(f"regularizer={reg!r} is not one of none, dropout, batchnorm")
    bn, k = reg == "batchnorm", int(cfg["filter_size"])
    c, h, w = in_shape
    pools = [int(cfg["pool1"]), int(cfg["pool2"])]
    if space_name == "mnist":
        # C1-P1-C2-P2
        plan = [("conv", int(cfg["c1_filters"])), ("pool", pools[0]),
                ("conv", int(cfg["c2_filters"])), ("pool", pools[1])]
    else:
        # C1-C2-P1-C3-P2-C4-P3; P3 has the same size as P2 (Table I fixes both at 2)
        plan = [("conv", int(cfg["c1_filters"])), ("conv", int(cfg["c2_filters"])),
                ("pool", pools[0]), ("conv", int(cfg["c3_filters"])), ("pool", pools[1]),
                ("conv", int(cfg["c4_filters"])), ("pool", pools[1])]
    layers: list[nn.Module] = []
    for kind, v in plan:
        if kind == "conv":
            layers += _conv_block(c, v, k, act, bn)
            c = v
        else:
            if h < v or w < v:
                raise ConfigError(f"{space_name} CNN: a pool of {v} does not fit a {h}x{w} "
                                  f"feature map (input shape {in_shape}); the Table I CNNs "
                                  "need image inputs (e.g. mnist 1x28x28, cifar10 3x32x32)")
            layers.append(nn.MaxPool2d(v))
            h, w = h // v, w // v
    layers += _head(c * h * w, int(cfg["fc_units"]), num_classes, act, reg,
                    float(cfg.get("dropout", 0.0)))
    return nn.Sequential(*layers)


_MIN_DROPOUT = 0.05  # Auto-PyTorch's ShapedMlpNet adds no dropout at or below this max_dropout


def funnel_units(in_features: int, num_classes: int, max_units: int,
                 num_layers: int) -> list[int]:
    """Hidden-layer widths of the funnel MLP (num_layers - 1 of them; see module docstring)."""
    if num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    first = max(in_features, max_units)
    step = max(0, int((first - num_classes) / max(num_layers - 1, 1)))
    return [first - i * step for i in range(num_layers - 1)]


def funnel_dropout(max_dropout: float, num_layers: int) -> list[float]:
    """Dropout rate of each hidden layer: a funnel over 1000 'units' scaled by max_dropout."""
    if max_dropout <= _MIN_DROPOUT:
        return [0.0] * (num_layers - 1)
    return [u / 1000 * max_dropout for u in funnel_units(0, 0, 1000, num_layers)]


def _funnel_mlp(cfg: Mapping[str, Any], in_shape: tuple[int, ...],
                num_classes: int) -> nn.Sequential:
    if cfg.get("mlp_shape", "funnel") != "funnel" or cfg.get("activation", "relu") != "relu":
        raise ValueError(f"lcbench-mlp builds funnel-shaped ReLU MLPs only, got mlp_shape="
                         f"{cfg.get('mlp_shape')!r}, activation={cfg.get('activation')!r}")
    n_in = math.prod(in_shape)
    layers: list[nn.Module] = [nn.Flatten()]
    L, drop = int(cfg["num_layers"]), float(cfg["max_dropout"])
    for units, rate in zip(funnel_units(n_in, num_classes, int(cfg["max_units"]), L),
                           funnel_dropout(drop, L), strict=True):
        layers += [nn.Linear(n_in, units), nn.ReLU()]
        if drop > _MIN_DROPOUT:
            layers.append(nn.Dropout(rate))
        n_in = units
    layers.append(nn.Linear(n_in, num_classes))
    return nn.Sequential(*layers)


def build_model(space_name: str, full_config: Mapping[str, Any], *,
                in_shape: tuple[int, int, int], num_classes: int, seed: int = 0) -> nn.Module:
    """The model of `space_name` for `space.full(config)`, initialised from `seed`."""
    with fork_seeded(seed):
        if space_name == "lcbench-mlp":
            return _funnel_mlp(full_config, tuple(in_shape), num_classes)
        return _paper_cnn(space_name, full_config, tuple(in_shape), num_classes)


class _ShortcutA(nn.Module):
    """He et al. option A: subsample by `stride`, zero-pad the new channels (no parameters)."""

    def __init__(self, stride: int, extra: int):
        super().__init__()
        self.stride, self.extra = stride, extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        lo = self.extra // 2
        return nn.functional.pad(x, (0, 0, 0, 0, lo, self.extra - lo))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 inputs (He et al. 2016, Sec. 4.2), option-A shortcuts."""

    def __init__(self, n: int, num_classes: int, in_channels: int = 3):
        super().__init__()
        block = torchvision.models.resnet.BasicBlock
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        stages, cin = [], 16
        for i, cout in enumerate((16, 32, 64)):
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                down = _ShortcutA(stride, cout - cin) if stride != 1 or cin != cout else None
                stages.append(block(cin, cout, stride=stride, downsample=down))
                cin = cout
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


class _WideBlock(nn.Module):
    """Pre-activation basic block of a wide ResNet: BN-ReLU-conv3x3, BN-ReLU-conv3x3."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.bn1, self.bn2 = nn.BatchNorm2d(cin), nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.shortcut = (nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
                         if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = nn.functional.relu(self.bn1(x))
        y = self.conv2(nn.functional.relu(self.bn2(self.conv1(o))))
        # where the shape changes, the 1x1 conv sees the pre-activated input (as the authors')
        return y + (x if self.shortcut is None else self.shortcut(o))


class WideResNet(nn.Module):
    """WRN-depth-width (Zagoruyko & Komodakis 2016): depth = 6n + 4, widths 16, 16k, 32k, 64k."""

    def __init__(self, depth: int, width: int, num_classes: int, in_channels: int = 3):
        super().__init__()
        if (depth - 4) % 6 or depth < 10 or width < 1:
            raise ValueError(f"wide ResNet depth must be 6n + 4 >= 10 and width >= 1, got "
                             f"wrn-{depth}-{width}")
        n = (depth - 4) // 6
        self.stem = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        blocks, cin = [], 16
        for i, cout in enumerate((16 * width, 32 * width, 64 * width)):
            for j in range(n):
                blocks.append(_WideBlock(cin, cout, 2 if i > 0 and j == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head(self.blocks(self.stem(x))))


def is_named_model(name: str) -> bool:
    """Whether `build_named_model` builds `name` (one of NAMED_MODELS, or a valid wrn-D-K)."""
    wrn = _wrn_shape(name)
    if wrn is not None:
        depth, width = wrn
        return (depth - 4) % 6 == 0 and depth >= 10 and width >= 1
    return name in NAMED_MODELS


def _wrn_shape(name: str) -> tuple[int, int] | None:
    """(depth, width) of a name 'wrn-D-K', None if the name is not of that form."""
    parts = name.split("-")
    if len(parts) == 3 and parts[0] == "wrn" and parts[1].isdigit() and parts[2].isdigit():
        return int(parts[1]), int(parts[2])
    return None


def build_named_model(name: str, *, in_shape: tuple[int, int, int], num_classes: int,
                      seed: int = 0) -> nn.Module:
    """One of NAMED_MODELS (see the module docstring; `wrn-D-K` for any valid D, K),
    initialised from `seed`."""
    c = in_shape[0]
    wrn = _wrn_shape(name)
    with fork_seeded(seed):
        if wrn is not None:
            return WideResNet(*wrn, num_classes, c)
        if name == "mnist-cnn":
            return _paper_cnn("mnist", MNIST_CNN_CONFIG, tuple(in_shape), num_classes)
        if name == "resnet18-cifar":
            m = torchvision.models.resnet18(weights=None, num_classes=num_classes)
            m.conv1 = nn.Conv2d(c, 64, 3, stride=1, padding=1, bias=False)
            nn.init.kaiming_normal_(m.conv1.weight, mode="fan_out", nonlinearity="relu")
            m.maxpool = nn.Identity()
            return m
        if name in ("resnet20", "resnet32"):
            return CifarResNet({"resnet20": 3, "resnet32": 5}[name], num_classes, c)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(NAMED_MODELS)} or "
                     "wrn-D-K (a wide ResNet of depth D = 6n + 4 and width K, e.g. wrn-28-10)")


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def forward_flops(model: nn.Module, in_shape: tuple[int, int, int]) -> int:
    """Forward FLOPs for one example, as torch.utils.flop_counter counts them.

    That counter counts matrix multiplies and convolutions (2 FLOPs per multiply-add);
    activations, pooling and normalisation are not counted. The model runs in eval mode on a
    zero input on its own device; its train/eval mode is restored afterwards.
    """
    p = next(model.parameters(), None)
    x = torch.zeros((1, *in_shape), device=p.device if p is not None else "cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
