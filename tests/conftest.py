"""Shared fixtures: tiny datasets in the real on-disk formats torchvision reads.

Each `tiny_*_root` fixture is a data root (session scoped, read-only by convention) that
`pregen.data.load_dataset(name, root)` and torchvision's own classes load:

    tiny_mnist_root     ROOT/MNIST/raw/*-ubyte (IDX)             256 train / 64 test
    tiny_cifar10_root   ROOT/cifar-10-batches-py/ (pickles)      5 x 24 train / 40 test
    tiny_cifar100_root  ROOT/cifar-100-python/ (pickles)         120 train / 40 test
    tiny_svhn_root      ROOT/svhn/{train,extra,test}_32x32.mat   120 train / 60 extra / 40 test
    tiny_data_root      all four in one root
    tiny_mnist10_root   ROOT/MNIST/raw/*-ubyte, 10x10 pixels     80 train / 8 test

The images are learnable: class k is a bright square at a class-specific place (and, for
colour images, in a class-specific channel) over uniform noise, so a small CNN fits them in
a few epochs. `make_tiny_dataset(name, root, n_train, n_test, seed)` writes more.
`tiny_mnist_data` is the tiny MNIST loaded on the CPU (default validation split).

For the live methods (population, ESGD, EPBT), smaller still and built in memory:

    tiny_images       DeviceData, 3 classes of 1x8x8 images: 96 train / 48 val / 48 test
    bn_net            `bn_net(seed, dropout=0.0, dtype=torch.float32)`: the tiny batch-norm
                      CNN for those images (a model factory: seed -> nn.Module)
    random_batches    `random_batches(n, P, B=5, seed=0)`: n float64 batches (x, y) of
                      random 1x8x8 images, [P, B, ...] per member or [B, ...] if P is None
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io


def _images(n: int, classes: int, shape: tuple[int, int, int], rng: np.random.Generator):
    """uint8 images [n, C, H, W] and int64 labels [n]: a per-class square over noise."""
    c, h, w = shape
    y = np.arange(n) % classes
    rng.shuffle(y)
    x = rng.integers(0, 60, size=(n, c, h, w), dtype=np.uint8)
    for i, k in enumerate(y):
        cell = k % 10
        r0, c0 = 2 + (cell // 5) * (h // 2), 1 + (cell % 5) * (w // 5)
        ch = (k // 10) % c if c > 1 else 0
        x[i, ch, r0:r0 + 6, c0:c0 + 4] = 250
    return x, y.astype(np.int64)


def _write_idx(path: Path, arr: np.ndarray) -> None:
    # IDX: two zero bytes, type 0x08 (ubyte), number of dims, big-endian int32 dims, data
    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 0x08, arr.ndim))
        f.write(struct.pack(f">{arr.ndim}I", *arr.shape))
        f.write(arr.astype(np.uint8).tobytes())


def _write_pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def make_tiny_dataset(name: str, root: Path, n_train: int = 120, n_test: int = 40,
                      seed: int = 0) -> Path:
    """Write a tiny `name` dataset under data root `root` in torchvision's layout (SVHN also
    gets its extra split, n_train // 2 images: what `svhn-extra` adds to training)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    if name == "mnist":
        raw = root / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        for prefix, n in (("train", n_train), ("t10k", n_test)):
            x, y = _images(n, 10, (1, 28, 28), rng)
            _write_idx(raw / f"{prefix}-images-idx3-ubyte", x[:, 0])
            _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
    elif name in ("cifar10", "cifar100"):
        classes = 10 if name == "cifar10" else 100
        d = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
        d.mkdir(parents=True, exist_ok=True)
        x, y = _images(n_train, classes, (3, 32, 32), rng)
        xt, yt = _images(n_test, classes, (3, 32, 32), rng)

        def entry(x, y):  # rows of 3072 bytes: R plane, G plane, B plane (the real layout)
            key = "labels" if name == "cifar10" else "fine_labels"
            out = {"data": x.reshape(len(x), -1), key: [int(v) for v in y]}
            if name == "cifar100":
                out["coarse_labels"] = [int(v) // 5 for v in y]
            return out

        if name == "cifar10":
            for i, part in enumerate(np.array_split(np.arange(n_train), 5)):
                _write_pickle(d / f"data_batch_{i + 1}", entry(x[part], y[part]))
            _write_pickle(d / "test_batch", entry(xt, yt))
            _write_pickle(d / "batches.meta", {"label_names": [f"c{k}" for k in range(10)]})
        else:
            _write_pickle(d / "train", entry(x, y))
            _write_pickle(d / "test", entry(xt, yt))
            _write_pickle(d / "meta", {"fine_label_names": [f"f{k}" for k in range(100)],
                                       "coarse_label_names": [f"g{k}" for k in range(20)]})
    elif name == "svhn":
        d = root / "svhn"
        d.mkdir(parents=True, exist_ok=True)
        for split, n in (("train", n_train), ("extra", n_train // 2), ("test", n_test)):
            x, y = _images(n, 10, (3, 32, 32), rng)
            # the real .mat layout: X [32, 32, 3, N], y [N, 1] with digit 0 stored as 10
            y_mat = np.where(y == 0, 10, y).astype(np.uint8)[:, None]
            scipy.io.savemat(d / f"{split}_32x32.mat",
                             {"X": x.transpose(2, 3, 1, 0), "y": y_mat})
    else:
        raise ValueError(f"unknown tiny dataset {name!r}")
    return root


def pytest_configure(config):
    # Tiny tensors gain nothing from intra-op threads and a loaded 2-core machine loses a lot
    # to oversubscription (171 s -> 69 s for the default suite, measured).
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch, tmp_path_factory):
    # Tests must not pick up a developer's real data root, nor write caches into the package
    # data folder or the user's cache.
    monkeypatch.delenv("LCSIM_DATA_ROOT", raising=False)
    monkeypatch.setenv("LCSIM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "lcsim-cache"))


@pytest.fixture(scope="session")
def tiny_mnist_root(tmp_path_factory) -> Path:
    return make_tiny_dataset("mnist", tmp_path_factory.mktemp("tiny_mnist"), 256, 64)


@pytest.fixture(scope="session")
def tiny_cifar10_root(tmp_path_factory) -> Path:
    return make_tiny_dataset("cifar10", tmp_path_factory.mktemp("tiny_cifar10"))


@pytest.fixture(scope="session")
def tiny_cifar100_root(tmp_path_factory) -> Path:
    return make_tiny_dataset("cifar100", tmp_path_factory.mktemp("tiny_cifar100"))


@pytest.fixture(scope="session")
def tiny_svhn_root(tmp_path_factory) -> Path:
    return make_tiny_dataset("svhn", tmp_path_factory.mktemp("tiny_svhn"))


@pytest.fixture(scope="session")
def tiny_data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_all")
    make_tiny_dataset("mnist", root, 256, 64)
    for name in ("cifar10", "cifar100", "svhn"):
        make_tiny_dataset(name, root)
    return root


def make_tiny_mnist10(root: Path, n_train: int = 80, n_test: int = 8, size: int = 10) -> Path:
    """Learnable 10x10 digits in MNIST's IDX files (class k: a bright bar at a class-specific
    place over noise). 10x10 keeps the heaviest configs of the MNIST space (up to 350 filters
    of 10x10) cheap on one CPU core, for table-generation runs."""
    rng = np.random.default_rng(0)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 10
        rng.shuffle(y)
        x = rng.integers(0, 60, size=(n, size, size), dtype=np.uint8)
        for i, k in enumerate(y):
            r, c = (k // 5) * (size // 2), (k % 5) * 2
            x[i, r:r + size // 2, c:c + 2] = 250
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", x)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y)
    return root


@pytest.fixture(scope="session")
def tiny_mnist10_root(tmp_path_factory) -> Path:
    return make_tiny_mnist10(tmp_path_factory.mktemp("tiny10"))


@pytest.fixture(scope="session")
def tiny_mnist_data(tiny_mnist_root):
    """Tiny MNIST as DeviceData on the CPU: 205 train / 51 val / 64 test."""
    from lcsim.pregen.data import load_dataset

    return load_dataset("mnist", tiny_mnist_root)


def make_tiny_images(n_train: int = 96, n_val: int = 48, n_test: int = 48, seed: int = 0):
    """3 classes of 1x8x8 uint8 images: class c has a bright band in rows 3c..3c+1."""
    import torch
    from lcsim.pregen.data import DeviceData

    g = torch.Generator().manual_seed(seed)

    def split(n):
        y = torch.randint(0, 3, (n,), generator=g)
        x = torch.randint(0, 90, (n, 1, 8, 8), generator=g, dtype=torch.int64)
        for i, c in enumerate(y.tolist()):
            x[i, 0, 3 * c:3 * c + 2] += 150
        return x.clamp(0, 255).to(torch.uint8), y

    (trx, tr_y), (vx, vy), (tx, ty) = split(n_train), split(n_val), split(n_test)
    return DeviceData("tiny", trx, tr_y, vx, vy, tx, ty, num_classes=3, in_shape=(1, 8, 8),
                      augment=(), mean=(0.3,), std=(0.3,))


def make_bn_net(seed: int = 0, *, dropout: float = 0.0, dtype=None):
    """Conv (no bias) - BatchNorm - ReLU - MaxPool - Linear for 1x8x8 images, 3 classes,
    initialised from `seed` without touching the global RNG. No conv bias before BN: its
    true gradient is 0, and Adam would turn float noise in it into full-size steps."""
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = [nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                  nn.MaxPool2d(2), nn.Flatten()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(64, 3))
        return nn.Sequential(*layers).to(dtype or torch.float32)


def make_random_batches(n: int, P: int | None, B: int = 5, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    lead = (P, B) if P else (B,)
    return [(torch.randn(*lead, 1, 8, 8, generator=g, dtype=torch.float64),
             torch.randint(0, 3, lead, generator=g)) for _ in range(n)]


@pytest.fixture(scope="session")
def tiny_images():
    return make_tiny_images()


@pytest.fixture(scope="session")
def bn_net():
    return make_bn_net


@pytest.fixture(scope="session")
def random_batches():
    return make_random_batches


@pytest.fixture(scope="session", name="make_tiny_dataset")
def _make_tiny_dataset_fixture():
    """The writer itself, for tests that need other sizes or seeds."""
    return make_tiny_dataset


@pytest.fixture
def user_error(capsys):
    """`user_error("table info")`: the line `lcsim table info: error: ...` that a CLI user
    error printed last on stderr (argparse's usage lines may precede it), checked to come
    without a traceback."""

    def read(command: str) -> str:
        err = capsys.readouterr().err
        assert "Traceback" not in err
        line = err.strip().splitlines()[-1]
        assert line.startswith(f"lcsim {command}: error: "), err
        return line

    return read
