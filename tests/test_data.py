"""lcsim.pregen.data: torchvision formats, splits, the shipped subset, errors, device batching."""

import itertools

import numpy as np
import pytest
import torch
import torchvision
from lcsim.pregen.augment import augment_batch
from lcsim.pregen.data import (
    DATASETS,
    DatasetNotFoundError,
    default_val_size,
    expected_files,
    load_dataset,
    shipped_mnist_root,
)

FILE_DATASETS = [n for n in DATASETS if n != "digits"]  # read from files by torchvision


def _torchvision_splits(name, root):
    """(train_x [N,C,H,W], train_y, test_x, test_y) read by torchvision's plain classes."""
    tv = torchvision.datasets
    if name == "mnist":
        tr, te = tv.MNIST(root, train=True), tv.MNIST(root, train=False)
        return tr.data[:, None], tr.targets, te.data[:, None], te.targets
    if name.startswith("svhn"):
        # torchvision checks the real md5, so read the same .mat files through its parser
        # with the check relaxed only for the tiny fixture
        class S(tv.SVHN):
            def _check_integrity(self):
                return True

        tr, te = S(root / "svhn", split="train"), S(root / "svhn", split="test")
        x, y = torch.from_numpy(tr.data), torch.from_numpy(tr.labels)
        if name == "svhn-extra":  # the training split is train + extra
            ex = S(root / "svhn", split="extra")
            x, y = torch.cat([x, torch.from_numpy(ex.data)]), torch.cat(
                [y, torch.from_numpy(ex.labels)])
        return x, y, torch.from_numpy(te.data), torch.from_numpy(te.labels)
    cls = tv.CIFAR10 if name == "cifar10" else tv.CIFAR100

    class C(cls):
        def _check_integrity(self):
            return True

        def _load_meta(self):
            pass

    tr, te = C(root, train=True), C(root, train=False)
    return (torch.from_numpy(tr.data).permute(0, 3, 1, 2), torch.tensor(tr.targets),
            torch.from_numpy(te.data).permute(0, 3, 1, 2), torch.tensor(te.targets))


@pytest.mark.parametrize("name", FILE_DATASETS)
def test_each_torchvision_format_loads_from_the_fixtures(name, tiny_data_root):
    d = load_dataset(name, tiny_data_root)
    tr_x, tr_y, te_x, te_y = _torchvision_splits(name, tiny_data_root)
    assert d.train_x.dtype == torch.uint8 and d.train_y.dtype == torch.int64
    assert d.in_shape == tuple(tr_x.shape[1:])
    assert d.num_classes == (100 if name == "cifar100" else 10)
    # test split is the test files, untouched; train + val is exactly the training files
    assert torch.equal(d.test_x, te_x) and torch.equal(d.test_y, te_y.long())
    assert len(d.train_y) + len(d.val_y) == len(tr_y)
    seen = torch.cat([d.train_x, d.val_x]).flatten(1)
    assert sorted(map(bytes, seen.numpy())) == sorted(map(bytes, tr_x.flatten(1).numpy()))
    assert 0 <= int(d.train_y.min()) and int(d.train_y.max()) < d.num_classes


def test_svhn_label_10_means_digit_0(tiny_svhn_root):
    d = load_dataset("svhn", tiny_svhn_root)
    labels = torch.cat([d.train_y, d.val_y, d.test_y])
    assert int(labels.max()) <= 9 and (labels == 0).any()


def test_validation_comes_from_training_split_with_documented_sizes(tiny_mnist_root):
    d = load_dataset("mnist", tiny_mnist_root)
    assert len(d.val_y) == default_val_size("mnist", 256) == round(0.2 * 256)
    assert default_val_size("mnist", 60_000) == 10_000
    assert default_val_size("cifar10", 50_000) == default_val_size("svhn", 73_257) == 5_000
    assert default_val_size("mnist", 8_000) == 1_600
    assert len(load_dataset("mnist", tiny_mnist_root, val_size=30).val_y) == 30


def test_split_is_seeded(tiny_mnist_root):
    a = load_dataset("mnist", tiny_mnist_root, split_seed=1)
    b = load_dataset("mnist", tiny_mnist_root, split_seed=1)
    c = load_dataset("mnist", tiny_mnist_root, split_seed=2)
    assert torch.equal(a.val_x, b.val_x) and torch.equal(a.train_y, b.train_y)
    assert not torch.equal(a.val_x, c.val_x)


@pytest.mark.parametrize("name", FILE_DATASETS)
def test_missing_dataset_names_files_folder_and_download(name, tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset(name, tmp_path)
    assert isinstance(err.value, FileNotFoundError)
    msg = str(err.value)
    assert str(tmp_path) in msg and "--download" in msg
    for path in expected_files(name, tmp_path):
        assert str(path) in msg


def test_partly_missing_dataset_names_the_missing_file(tiny_cifar10_root, tmp_path):
    import shutil

    shutil.copytree(tiny_cifar10_root, tmp_path / "r")
    (tmp_path / "r" / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match="missing: .*data_batch_3"):
        load_dataset("cifar10", tmp_path / "r")


def test_no_root_for_cifar_says_how_to_give_one():
    with pytest.raises(DatasetNotFoundError, match="LCSIM_DATA_ROOT"):
        load_dataset("cifar10")


def test_env_data_root_is_used(tiny_cifar10_root, monkeypatch):
    monkeypatch.setenv("LCSIM_DATA_ROOT", str(tiny_cifar10_root))
    assert load_dataset("cifar10").name == "cifar10"


def test_bad_arguments_name_the_value(tiny_mnist_root):
    with pytest.raises(ValueError, match="'imagenet'"):
        load_dataset("imagenet", tiny_mnist_root)
    with pytest.raises(ValueError, match="val_size=256"):
        load_dataset("mnist", tiny_mnist_root, val_size=256)


def test_shipped_mnist_subset_decompresses_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LCSIM_CACHE_DIR", str(tmp_path))
    d = load_dataset("mnist")
    assert (len(d.train_y), len(d.val_y), len(d.test_y)) == (6_400, 1_600, 2_000)
    assert sorted(torch.bincount(torch.cat([d.train_y, d.val_y])).tolist())[0] > 600
    raw = tmp_path / "mnist-10k" / "MNIST" / "raw"
    stamp = (raw / "train-images-idx3-ubyte").stat().st_mtime_ns
    assert shipped_mnist_root() == tmp_path / "mnist-10k"
    assert (raw / "train-images-idx3-ubyte").stat().st_mtime_ns == stamp
    assert "Attribution-Share Alike" in (tmp_path / "mnist-10k" / "README.md").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_batches_cover_each_example_once_normalised(tiny_mnist_data):
    d = tiny_mnist_data
    g = torch.Generator().manual_seed(0)
    xs, ys = zip(*d.batches("train", 64, shuffle=True, generator=g), strict=True)
    assert [len(y) for y in ys] == [64, 64, 64, 13]
    assert torch.equal(torch.cat(ys).sort().values, d.train_y.sort().values)
    x0, _ = next(d.batches("train", 8))  # MNIST: no augmentation, no shuffle
    expected = (d.train_x[:8].float() / 255 - d.mean[0]) / d.std[0]
    torch.testing.assert_close(x0, expected)
    assert [len(y) for _, y in d.batches("val", 20, drop_last=True)] == [20, 20]


def test_batch_order_follows_the_generator_only(tiny_mnist_data):
    def order(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.cat([y for _, y in tiny_mnist_data.batches("train", 50, shuffle=True,
                                                                 generator=g)])
    assert torch.equal(order(3), order(3))
    assert not torch.equal(order(3), order(4))
    with pytest.raises(ValueError, match="Generator"):
        next(tiny_mnist_data.batches("train", 50, shuffle=True))


def test_cifar_augmentation_is_a_padded_crop_and_maybe_a_flip(tiny_cifar10_root):
    d = load_dataset("cifar10", tiny_cifar10_root)
    assert d.augment == ("crop", "flip")
    x = d.train_x[:12]
    out = augment_batch(x, d.augment, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    shifts, flips = set(), 0
    for i in range(len(x)):
        found = [(dy, dx, f) for dy, dx, f in itertools.product(range(9), range(9), (0, 1))
                 if torch.equal(out[i], (lambda c: c.flip(2) if f else c)(
                     padded[i, :, dy:dy + 32, dx:dx + 32]))]
        assert found, f"image {i} is not a crop/flip of the padded original"
        shifts.add(found[0][:2])
        flips += found[0][2]
    assert len(shifts) > 1 and 0 < flips < len(x)  # it really is random


def test_digits_are_not_augmented(tiny_svhn_root):
    d = load_dataset("svhn", tiny_svhn_root)
    g = torch.Generator().manual_seed(0)
    x, _ = next(d.batches("train", 8, generator=g))
    torch.testing.assert_close(x, d.normalize(d.train_x[:8]))


def test_data_can_move_devices(tiny_mnist_data):
    moved = tiny_mnist_data.to("cpu")
    assert moved.device == torch.device("cpu")
    assert np.array_equal(moved.val_y, tiny_mnist_data.val_y)


@pytest.mark.parametrize("name", ["mnist", "cifar10"])
def test_normalisation_matches_torchvision_transforms(name, tiny_data_root):
    from torchvision import transforms

    d = load_dataset(name, tiny_data_root)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize(d.mean, d.std)])
    if name == "mnist":
        ds = torchvision.datasets.MNIST(tiny_data_root, train=False, transform=tf)
    else:
        from lcsim.pregen.data import _CIFAR10

        ds = _CIFAR10(tiny_data_root, train=False, transform=tf)
    x, y = next(d.batches("test", 8))
    torch.testing.assert_close(x, torch.stack([ds[i][0] for i in range(8)]))
    assert y.tolist() == [ds[i][1] for i in range(8)]


def test_a_partial_cache_is_repaired(tmp_path):
    raw = tmp_path / "mnist-10k" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(b"half a file from a killed run")
    root = shipped_mnist_root(tmp_path)
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == sorted(
        ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
         "t10k-labels-idx1-ubyte"])
    assert (raw / "train-images-idx3-ubyte").stat().st_size == 16 + 8_000 * 28 * 28


def test_svhn_extra_trains_on_train_plus_extra(tiny_svhn_root):
    plain = load_dataset("svhn", tiny_svhn_root, val_size=0)
    both = load_dataset("svhn-extra", tiny_svhn_root, val_size=0)
    assert (len(plain.train_y), len(both.train_y)) == (120, 180)  # + the 60 extra images
    assert torch.equal(both.test_x, plain.test_x)  # the test split is SVHN's test split
    assert set(map(bytes, plain.train_x.flatten(1).numpy())) < set(
        map(bytes, both.train_x.flatten(1).numpy()))
    assert both.augment == () and both.num_classes == 10 and int(both.train_y.max()) <= 9
    assert expected_files("svhn-extra", tiny_svhn_root)[1].name == "extra_32x32.mat"


def test_svhn_extra_without_the_extra_file_names_it(tiny_svhn_root, tmp_path):
    import shutil

    shutil.copytree(tiny_svhn_root, tmp_path / "r")
    (tmp_path / "r" / "svhn" / "extra_32x32.mat").unlink()
    assert len(load_dataset("svhn", tmp_path / "r").test_y) == 40  # plain SVHN still loads
    with pytest.raises(DatasetNotFoundError, match="missing: .*extra_32x32.mat"):
        load_dataset("svhn-extra", tmp_path / "r")


def test_val_size_zero_keeps_every_training_example(tiny_mnist_root):
    from lcsim.pregen.data import EmptySplitError

    from lcsim.errors import UserError

    d = load_dataset("mnist", tiny_mnist_root, val_size=0)
    assert (len(d.train_y), len(d.val_y)) == (256, 0) and d.val_x.shape == (0, 1, 28, 28)
    # training batches are fine; anything that evaluates on the empty split is told why
    assert sum(len(y) for _, y in d.batches("train", 100)) == 256
    with pytest.raises(EmptySplitError, match="val split of mnist is empty.*val_size=0"):
        next(d.batches("val", 100))
    assert issubclass(EmptySplitError, UserError)
    with pytest.raises(ValueError, match=r"val_size=-1 must be in \[0, 255\]"):
        load_dataset("mnist", tiny_mnist_root, val_size=-1)


def test_training_without_a_validation_split_records_nan_validation(tiny_mnist_root):
    from lcsim.pregen.models import build_model
    from lcsim.pregen.trainer import TrainSpec, evaluate, train

    from lcsim.errors import UserError

    d = load_dataset("mnist", tiny_mnist_root, val_size=0)
    cfg = {"c1_filters": 4, "c2_filters": 4, "fc_units": 8, "filter_size": 3, "pool1": 2,
           "pool2": 2, "dropout": 0.0, "activation": "relu", "regularizer": "none"}
    model = build_model("mnist", cfg, in_shape=d.in_shape, num_classes=10)
    res = train(model, d, TrainSpec(epochs=2, batch_size=64), device="cpu")
    assert res.status == "complete" and len(res.epochs) == 2
    assert all(np.isnan(r.val_accuracy) and np.isnan(r.val_loss) for r in res.epochs)
    assert np.isfinite(res.epochs[-1].train_loss)
    with pytest.raises(UserError, match="empty"):
        evaluate(model, d, "val")
