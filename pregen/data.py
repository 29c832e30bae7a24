"""Datasets on the training device: MNIST, CIFAR-10, CIFAR-100, SVHN, digits.

Files are read by torchvision's own dataset classes from a data root (argument, else
`$LCSIM_DATA_ROOT`), in torchvision's layouts:

    ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte   (uncompressed IDX)
    ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}
    ROOT/cifar-100-python/{train,test,meta}
    ROOT/svhn/{train,test}_32x32.mat        (ROOT/{train,test}_32x32.mat is also accepted)
    ROOT/svhn/extra_32x32.mat               (`svhn-extra`: training split = train + extra)

`download=True` lets torchvision fetch them (internet needed; torchvision checks their md5).
Loading checks that the files are present but not their md5 (torchvision would re-hash the
whole dataset on every load); torchvision's parsers still reject malformed files.

MNIST with no root at all uses the real 10,000-digit subset shipped in
`pregen/assets/mnist-10k` (8,000 train / 2,000 test, CC BY-SA 3.0, see its README.md),
decompressed once into `$LCSIM_CACHE_DIR` (default ~/.cache/lcsim).

`digits` is scikit-learn's bundled copy of the UCI optical handwritten digits (1,797 real 8x8
images, 16 grey levels, 10 classes; `sklearn.datasets.load_digits`, no files, no download; a
data root is ignored). It has no official test split, so a fixed 360 (20%) are held out as the
test split (seed 0, the same for every table), leaving 1,437 for training and validation.
Each image is a row of 64 features, stored as uint8 [N, 64, 1, 1] (grey level 0..16), and
standardised per feature with the mean and standard deviation of the training split (after
the validation split; a constant feature gets scale 1), as LCBench's "standardize" does.

Validation comes out of the TRAINING split (a seeded permutation); the test split is never
used for validation. Default validation sizes (`default_val_size`): MNIST 10,000 (of 60,000),
CIFAR-10/100 and SVHN 5,000; a training split smaller than 4x that (e.g. the 8,000-digit
subset, digits, or test fixtures) gives 20% of it to validation (8,000 -> 1,600 val, 6,400
train; digits: 1,437 -> 287 val, 1,150 train).
`val_size=0` keeps the whole training split for training (ESGD's CIFAR-10 protocol: "we do
not split a validation set"); the validation split is then empty, and anything that reads
batches of it gets an `EmptySplitError` naming the cause.

The splits are stored as uint8 tensors [N, C, H, W] on the device; `DeviceData.batches`
shuffles with a torch.Generator, augments (`pregen.augment`: "crop", "flip", "cutout[:N]")
and normalises there. No DataLoader in the hot path. Each dataset has a default augmentation
(`default_augment`: crop + flip for CIFAR, none else); `load_dataset(..., augment=...)`
sets another (`parse_augment("crop,flip,cutout:16" | "none")` reads the CLI's spelling).
(A little over 400 lines: the layouts, the splits and the device batches are one contract.)
"""

from __future__ import annotations

import functools
import gzip
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
from lcsim.pregen.augment import AUGMENT_OPS, augment_batch, check_augment, parse_augment

from lcsim.errors import UserError

__all__ = [
    "AUGMENT_OPS",
    "DATASETS",
    "DatasetNotFoundError",
    "DeviceData",
    "EmptySplitError",
    "check_augment",
    "default_augment",
    "default_val_size",
    "expected_files",
    "load_dataset",
    "parse_augment",
    "shipped_mnist_root",
    "split_indices",
]

DATASETS = ("mnist", "cifar10", "cifar100", "svhn", "svhn-extra", "digits")

# Per-channel mean / std of the full official training sets (pixel values in [0, 1]); fixed
# constants rather than statistics of each split so every run normalises identically.
_STATS = {
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "svhn-extra": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),  # svhn's constants
}
_NUM_CLASSES = {"mnist": 10, "cifar10": 10, "cifar100": 100, "svhn": 10, "svhn-extra": 10,
                "digits": 10}
_AUGMENT = {"mnist": (), "cifar10": ("crop", "flip"), "cifar100": ("crop", "flip"), "svhn": (),
            "svhn-extra": (), "digits": ()}
_DEFAULT_VAL = {"mnist": 10_000, "cifar10": 5_000, "cifar100": 5_000, "svhn": 5_000,
                "svhn-extra": 5_000, "digits": 360}
_DIGITS_TEST = 360  # held-out test examples of the 1,797 digits (20%)
_DIGITS_TEST_SEED = 0  # fixed: every digits table shares one test split
_SMALL_VAL_FRACTION = 0.2  # validation share when the train split is < 4x the default size

_SHIPPED = Path(__file__).parent / "assets" / "mnist-10k"
_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DatasetNotFoundError(UserError, FileNotFoundError):
    """A dataset's files are missing; the message lists the expected files and how to get them."""


class EmptySplitError(UserError, ValueError):
    """Batches of a split that holds no examples were asked for (val_size=0 leaves none)."""


def default_augment(name: str) -> tuple[str, ...]:
    """The dataset's default train-time augmentation (crop + flip for CIFAR, none else)."""
    return _AUGMENT[_check_name(name)]


def default_val_size(name: str, n_train: int) -> int:
    """Number of training examples held out for validation by default."""
    full = _DEFAULT_VAL[_check_name(name)]
    if n_train >= 4 * full:
        return full
    return max(1, int(round(_SMALL_VAL_FRACTION * n_train)))


def _check_name(name: str) -> str:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return name


def _svhn_dir(root: Path) -> Path:
    # Prefer ROOT/svhn so one data root holds every dataset; accept torchvision's bare layout.
    # (svhn-extra reads the same folder.)
    sub = root / "svhn"
    if not sub.is_dir() and (root / "train_32x32.mat").is_file():
        return root
    return sub


def expected_files(name: str, root: str | os.PathLike) -> list[Path]:
    """Every file `load_dataset(name, root)` reads, in torchvision's layout."""
    root = Path(root)
    if _check_name(name) == "digits":
        return []  # bundled with scikit-learn
    if name == "mnist":
        return [root / "MNIST" / "raw" / f for f in _MNIST_FILES]
    if name == "cifar10":
        d = root / torchvision.datasets.CIFAR10.base_folder
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]
        return [d / f for f in names]
    if name == "cifar100":
        d = root / torchvision.datasets.CIFAR100.base_folder
        return [d / f for f in ("train", "test", "meta")]
    d = _svhn_dir(root)
    extra = [d / "extra_32x32.mat"] if name == "svhn-extra" else []
    return [d / "train_32x32.mat", *extra, d / "test_32x32.mat"]


def _not_found(name: str, root: Path, missing: list[Path]) -> DatasetNotFoundError:
    expected = expected_files(name, root)
    if not root.exists():
        where = f"dataset {name!r}: the data root {root} does not exist"
    else:
        where = f"dataset {name!r} not found in data root {root}"
    if len(missing) < len(expected):  # some are there: name only the ones that are not
        files = f"missing: {', '.join(str(p) for p in missing)}"
    else:
        files = f"expected files: {', '.join(str(p) for p in expected)}"
    lines = [
        f"{where};", f"{files}.",
        "Get them with --download (load_dataset(..., download=True); needs internet, torchvision "
        "fetches them into the data root), or copy them there from a machine that has them.",
    ]
    if name == "mnist":
        lines.append("MNIST files must be decompressed (no .gz). Without --data-root / "
                     "$LCSIM_DATA_ROOT, mnist uses the shipped 10k-digit subset.")
    return DatasetNotFoundError("\n".join(lines))


def shipped_mnist_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Root (holding MNIST/raw) of the shipped 10k MNIST subset, decompressed once.

    The cache is `cache_dir`, else `$LCSIM_CACHE_DIR`, else ~/.cache/lcsim. Decompression goes
    to a temp folder renamed into place, so concurrent or killed runs never see half a file.
    """
    base = Path(cache_dir or os.environ.get("LCSIM_CACHE_DIR") or Path.home() / ".cache/lcsim")
    root = base / "mnist-10k"
    raw = root / "MNIST" / "raw"
    if all((raw / f).is_file() for f in _MNIST_FILES):
        return root
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".mnist-10k-", dir=base))
    try:
        (tmp / "MNIST" / "raw").mkdir(parents=True)
        for f in _MNIST_FILES:
            with gzip.open(_SHIPPED / f"{f}.gz", "rb") as src:
                with open(tmp / "MNIST" / "raw" / f, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        shutil.copy(_SHIPPED / "README.md", tmp / "README.md")  # keep the CC BY-SA credit
        try:
            os.rename(tmp, root)
        except OSError:
            # Another process won the race (root now exists) or a stale partial root is there.
            if not all((raw / f).is_file() for f in _MNIST_FILES):
                shutil.rmtree(root, ignore_errors=True)
                os.rename(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


# torchvision's classes, with the per-load md5 check replaced by a presence check (md5 None
# makes torchvision.datasets.utils.check_integrity test existence only).
class _CIFAR10(torchvision.datasets.CIFAR10):
    train_list = [[f, None] for f, _ in torchvision.datasets.CIFAR10.train_list]
    test_list = [[f, None] for f, _ in torchvision.datasets.CIFAR10.test_list]
    meta = {**torchvision.datasets.CIFAR10.meta, "md5": None}


class _CIFAR100(torchvision.datasets.CIFAR100):
    train_list = [[f, None] for f, _ in torchvision.datasets.CIFAR100.train_list]
    test_list = [[f, None] for f, _ in torchvision.datasets.CIFAR100.test_list]
    meta = {**torchvision.datasets.CIFAR100.meta, "md5": None}


class _SVHN(torchvision.datasets.SVHN):
    split_list = {k: [url, f, None]
                  for k, (url, f, _) in torchvision.datasets.SVHN.split_list.items()}


def _read_digits() -> tuple[np.ndarray, ...]:
    """(train_x, train_y, test_x, test_y) of scikit-learn's digits, x uint8 [N, 64, 1, 1]."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.reshape(len(d.images), 64, 1, 1).astype(np.uint8)  # grey levels 0..16
    y = d.target.astype(np.int64)
    tr, te = split_indices(len(y), _DIGITS_TEST, _DIGITS_TEST_SEED)
    return x[tr], y[tr], x[te], y[te]


def _standardize_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature (mean, std) of x [N, F, 1, 1] in DeviceData's units (pixel / 255)."""
    f = x.reshape(len(x), -1).astype(np.float64)
    m, s = f.mean(0), f.std(0)
    s[s == 0] = 1.0  # constant feature: scale 1, as sklearn's StandardScaler does
    return tuple((m / 255).tolist()), tuple((s / 255).tolist())


def _read(name: str, root: Path, download: bool) -> tuple[np.ndarray, ...]:
    """(train_x, train_y, test_x, test_y) as numpy, images uint8 [N, C, H, W]."""
    tv = torchvision.datasets
    if download:  # torchvision's own classes download and verify md5
        if name == "mnist":
            tv.MNIST(root, download=True)
        elif name == "cifar10":
            tv.CIFAR10(root, download=True)
        elif name == "cifar100":
            tv.CIFAR100(root, download=True)
        else:
            splits = ("train", "extra", "test") if name == "svhn-extra" else ("train", "test")
            for split in splits:
                tv.SVHN(root / "svhn", split=split, download=True)
    missing = [p for p in expected_files(name, root) if not p.is_file()]
    if missing:
        raise _not_found(name, root, missing)
    out = []
    for train in (True, False):
        if name == "mnist":
            ds = tv.MNIST(root, train=train)
            x, y = ds.data.numpy()[:, None], ds.targets.numpy()
        elif name in ("cifar10", "cifar100"):
            ds = (_CIFAR10 if name == "cifar10" else _CIFAR100)(root, train=train)
            x, y = ds.data.transpose(0, 3, 1, 2), np.asarray(ds.targets)
        else:
            ds = _SVHN(_svhn_dir(root), split="train" if train else "test")
            x, y = ds.data, ds.labels  # SVHN is already [N, C, H, W], label 10 mapped to 0
            if train and name == "svhn-extra":  # the training split is train + extra
                ex = _SVHN(_svhn_dir(root), split="extra")
                x, y = np.concatenate([x, ex.data]), np.concatenate([y, ex.labels])
        out += [np.ascontiguousarray(x, dtype=np.uint8), np.asarray(y, dtype=np.int64)]
    return tuple(out)


@dataclass(frozen=True, eq=False)
class DeviceData:
    """A dataset's train / validation / test splits as tensors on one device.

    Images are uint8 [N, C, H, W]; labels int64 [N]. `augment` names the train-time
    augmentations (see the module docstring; empty for digits). `mean` / `std` are per channel
    in [0, 1]. The validation split is empty when loaded with val_size=0.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    in_shape: tuple[int, int, int]
    augment: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self):
        object.__setattr__(self, "augment", check_augment(self.augment))

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(x uint8 [N, C, H, W], y int64 [N]) of 'train', 'val' or 'test'."""
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
        return getattr(self, f"{split}_x"), getattr(self, f"{split}_y")

    def to(self, device: str | torch.device) -> DeviceData:
        """A copy with every split on `device`."""
        moved = {f: getattr(self, f).to(device) for f in
                 ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y")}
        return DeviceData(self.name, **moved, num_classes=self.num_classes,
                          in_shape=self.in_shape, augment=self.augment, mean=self.mean,
                          std=self.std)

    @functools.cached_property
    def _scale_shift(self) -> tuple[torch.Tensor, torch.Tensor]:
        # built once per DeviceData, so batches do no host-to-device copies
        std = torch.tensor(self.std, dtype=torch.float32).view(1, -1, 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, -1, 1, 1)
        return (1.0 / (255.0 * std)).to(self.device), (-mean / std).to(self.device)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 [B, C, H, W] -> float32 (x / 255 - mean) / std, on x's device."""
        scale, shift = self._scale_shift
        return torch.addcmul(shift.to(x.device), x.float(), scale.to(x.device))

    def batches(
        self,
        split: str,
        batch_size: int,
        *,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        augment: bool | None = None,
        drop_last: bool = False,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x float32 [B, C, H, W] normalised, y int64 [B]) on the data's device.

        augment=None augments the train split only (with `self.augment`); False never.
        Shuffling and augmentation draw only from `generator` (required for either).
        """
        x_all, y_all = self.split(split)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if x_all.shape[0] == 0:
            raise EmptySplitError(
                f"the {split} split of {self.name} is empty" + (
                    " (loaded with val_size=0, which keeps every training example for "
                    "training): evaluate on 'train' or 'test', or load it with val_size > 0"
                    if split == "val" else ""))
        ops = self.augment if (augment is None and split == "train") or augment else ()
        if (shuffle or ops) and generator is None:
            raise ValueError("shuffle / augmentation need an explicit torch.Generator (seeded)")
        n = x_all.shape[0]
        if shuffle:
            order = torch.randperm(n, generator=generator, device=generator.device)
            order = order.to(x_all.device)
        stop = n - n % batch_size if drop_last else n
        for start in range(0, stop, batch_size):
            if shuffle:
                idx = order[start:start + batch_size]
                x, y = x_all[idx], y_all[idx]
            else:
                x, y = x_all[start:start + batch_size], y_all[start:start + batch_size]
            if ops:
                x = augment_batch(x, ops, generator, self._fill)
            yield self.normalize(x), y

    @functools.cached_property
    def _fill(self) -> torch.Tensor:
        """The mean colour as uint8 [C]: cutout's fill, zero after normalisation."""
        return torch.tensor([round(255 * m) for m in self.mean], dtype=torch.uint8,
                            device=self.device)


def split_indices(n: int, val_size: int, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices) into a training split of n examples, each sorted.

    The validation set is the first val_size entries of a seeded permutation.
    """
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(split_seed)).numpy()
    return np.sort(perm[val_size:]), np.sort(perm[:val_size])


def _resolve_root(name: str, root: str | os.PathLike | None, download: bool) -> Path:
    """The data root: argument, else $LCSIM_DATA_ROOT, else (mnist only) the shipped subset."""
    if root is None:
        root = os.environ.get("LCSIM_DATA_ROOT") or None
    if root is None:
        if name != "mnist":
            raise DatasetNotFoundError(
                f"no data root for {name!r}: pass --data-root DIR (root=...) or set "
                f"$LCSIM_DATA_ROOT; files expected there:\n  "
                + "\n  ".join(str(p) for p in expected_files(name, "DIR"))
                + "\nadd --download to fetch them (needs internet)."
            )
        if download:
            raise ValueError("download=True needs a data root to download into (root=...)")
        root = shipped_mnist_root()
    return Path(root).expanduser()


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    download: bool = False,
    val_size: int | None = None,
    split_seed: int = 0,
    device: str | torch.device = "cpu",
    augment: tuple[str, ...] | None = None,
) -> DeviceData:
    """Load a dataset's splits onto `device` (see the module docstring for roots and sizes).

    `val_size` 0 leaves the validation split empty. `augment`: the train-time ops (None: the
    dataset's default, `default_augment`). Raises DatasetNotFoundError (a FileNotFoundError)
    naming the missing files.
    """
    name = _check_name(name)
    ops = default_augment(name) if augment is None else check_augment(augment)
    if name == "digits":  # bundled with scikit-learn: no root, no download
        root = Path("sklearn.datasets.load_digits")  # named in messages only
        train_x, train_y, test_x, test_y = _read_digits()
    else:
        root = _resolve_root(name, root, download)
        train_x, train_y, test_x, test_y = _read(name, root, download)

    n = len(train_y)
    val_n = default_val_size(name, n) if val_size is None else int(val_size)
    if not 0 <= val_n < n:
        raise ValueError(f"val_size={val_size} must be in [0, {n - 1}] for {name} "
                         f"({n} training examples in {root})")
    tr_idx, val_idx = split_indices(n, val_n, split_seed)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).to(device)

    mean, std = _standardize_stats(train_x[tr_idx]) if name == "digits" else _STATS[name]
    return DeviceData(
        name=name,
        train_x=t(train_x[tr_idx]), train_y=t(train_y[tr_idx]),
        val_x=t(train_x[val_idx]), val_y=t(train_y[val_idx]),
        test_x=t(test_x), test_y=t(test_y),
        num_classes=_NUM_CLASSES[name],
        in_shape=tuple(int(s) for s in train_x.shape[1:]),
        augment=ops,
        mean=mean, std=std,
    )

