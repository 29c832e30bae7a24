"""lcsim.pregen.augment: cutout (shape, size, seeded, only where requested), the ops' spelling,
and augmentation as a switch of the data (on tiny real-format CIFAR-10 files)."""

from __future__ import annotations

import pytest
import torch
from lcsim.pregen.augment import augment_batch, check_augment, cutout_size, parse_augment
from lcsim.pregen.data import load_dataset


def _batch(n=16, c=3, h=32, w=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 255, (n, c, h, w), generator=g, dtype=torch.uint8)


def _squares(x, out, fill):
    """Per image, the boolean [H, W] mask of pixels cutout set to `fill` (all channels)."""
    changed = (out != x).any(1)
    is_fill = (out == fill.view(1, -1, 1, 1)).all(1)
    assert not (changed & ~is_fill).any(), "cutout changed pixels to something but the fill"
    return is_fill & changed


@pytest.mark.parametrize("size", [16, 8, 5])
def test_cutout_is_one_square_of_the_given_size_clipped_at_the_border(size):
    x = _batch()
    fill = torch.tensor([125, 123, 114], dtype=torch.uint8)
    out = augment_batch(x, (f"cutout:{size}",), torch.Generator().manual_seed(1), fill)
    assert out.shape == x.shape and out.dtype == torch.uint8
    masks = _squares(x, out, fill)
    clipped = 0
    for m in masks:
        rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
        assert len(rows) and len(cols)
        # a full rectangle of <= size x size pixels, size x size unless clipped at the border
        assert m.sum() == len(rows) * len(cols)
        assert len(rows) <= size and len(cols) <= size
        assert rows.max() - rows.min() + 1 == len(rows)
        inside = 0 < rows.min() and rows.max() < 31 and 0 < cols.min() and cols.max() < 31
        if inside:
            assert (len(rows), len(cols)) == (size, size)
        else:
            clipped += 1
    assert 0 < clipped < len(x) or size <= 5  # centres are uniform over the image


def test_cutout_default_size_is_devries_and_taylors_16():
    assert cutout_size(("crop", "cutout")) == 16 and cutout_size(("cutout:20",)) == 20
    assert cutout_size(("crop", "flip")) is None


def test_cutout_is_seeded_by_the_generator_alone():
    x = _batch()

    def run(seed):
        return augment_batch(x, ("cutout",), torch.Generator().manual_seed(seed))

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_cutout_only_where_requested(tiny_cifar10_root):
    fill_mean = load_dataset("cifar10", tiny_cifar10_root, augment=("cutout",))
    plain = load_dataset("cifar10", tiny_cifar10_root, augment=())
    g = torch.Generator().manual_seed(0)
    x, _ = next(plain.batches("train", 8, generator=g))
    torch.testing.assert_close(x, plain.normalize(plain.train_x[:8]))  # no augmentation
    x, _ = next(fill_mean.batches("train", 8, generator=torch.Generator().manual_seed(0)))
    raw = fill_mean.normalize(fill_mean.train_x[:8])
    hit = (x != raw).any(1)
    assert hit.any(dim=(1, 2)).all()  # every image got its square ...
    # ... filled with the mean colour, i.e. about zero after normalisation
    assert x.permute(0, 2, 3, 1)[hit].abs().max() < 0.02
    # evaluation batches and the other splits are never augmented
    v, _ = next(fill_mean.batches("val", 8))
    torch.testing.assert_close(v, fill_mean.normalize(fill_mean.val_x[:8]))
    t, _ = next(fill_mean.batches("train", 8, augment=False))
    torch.testing.assert_close(t, fill_mean.normalize(fill_mean.train_x[:8]))


def test_crop_flip_cutout_compose_in_that_order():
    x = _batch(n=4)
    ops = ("crop", "flip", "cutout:8")
    a = augment_batch(x, ops, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    b = augment_batch(augment_batch(x, ("crop", "flip"), g), ("cutout:8",), g)
    assert torch.equal(a, b)


@pytest.mark.parametrize("text, ops", [("none", ()), ("crop,flip", ("crop", "flip")),
                                       (" crop , cutout:16 ", ("crop", "cutout:16"))])
def test_parse_augment_reads_the_cli_spelling(text, ops):
    assert parse_augment(text) == ops


@pytest.mark.parametrize("ops, message", [
    (("crop", "rotate"), "unknown augmentation 'rotate'"),
    (("cutout:0",), "cutout's size"),
    (("cutout:x",), "cutout's size"),
    (("flip:3",), "unknown augmentation 'flip:3'"),
    (("crop", "crop"), "twice"),
    ("crop,flip", "the string"),
])
def test_bad_ops_are_named(ops, message):
    with pytest.raises(ValueError, match=message):
        check_augment(ops)


def test_dataset_default_and_override(tiny_cifar10_root):
    assert load_dataset("cifar10", tiny_cifar10_root).augment == ("crop", "flip")
    d = load_dataset("cifar10", tiny_cifar10_root, augment=("crop", "flip", "cutout:16"))
    assert d.augment == ("crop", "flip", "cutout:16") and d.to("cpu").augment == d.augment
    with pytest.raises(ValueError, match="rotate"):
        load_dataset("cifar10", tiny_cifar10_root, augment=("rotate",))
