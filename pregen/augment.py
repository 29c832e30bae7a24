"""Train-time augmentation of uint8 image batches on their device (what `DeviceData` applies).

Ops, applied in this order, each example drawing its own randomness from the batch's seeded
torch.Generator:
- "crop": random crop with 4-pixel zero padding (a translation by up to 4 pixels), the
  standard CIFAR recipe;
- "flip": horizontal flip with probability 1/2;
- "cutout" / "cutout:N": DeVries & Taylor (2017) cutout: one N x N square (default 16, their
  CIFAR-10 size; they used 8 for CIFAR-100 and 20 for SVHN) centred uniformly in the image
  and clipped at its border, set to `fill` (DeviceData passes the dataset's mean colour, which
  is zero after normalisation, as in their code, which masks the normalised image).

A recipe is a tuple of ops (`check_augment`); the command line spells it
`crop,flip,cutout:16` or `none` (`parse_augment`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a batch is augmented: the CLI parses ops without it
    import torch

__all__ = ["AUGMENT_OPS", "CUTOUT_SIZE", "augment_batch", "check_augment", "cutout_size",
           "parse_augment"]

AUGMENT_OPS = ("crop", "flip", "cutout")  # "cutout:N" sets cutout's square size
CUTOUT_SIZE = 16  # DeVries & Taylor's square for CIFAR-10
_CROP_PAD = 4  # pixels of zero padding before the random crop (standard CIFAR recipe)


def check_augment(ops) -> tuple[str, ...]:
    """`ops` as a tuple of valid ops ("crop", "flip", "cutout", "cutout:N"); ValueError naming
    the bad one. Each op at most once."""
    if isinstance(ops, str):
        raise ValueError(f"augment must be a list of ops, got the string {ops!r} (use "
                         "parse_augment for 'crop,flip')")
    out = tuple(ops)
    for op in out:
        name, sep, size = str(op).partition(":")
        if name not in AUGMENT_OPS or (sep and name != "cutout"):
            raise ValueError(f"unknown augmentation {op!r}; choose from crop, flip, cutout, "
                             "cutout:N (N = square size in pixels)")
        if sep and not (size.isdigit() and int(size) >= 1):
            raise ValueError(f"augmentation {op!r}: cutout's size must be a whole number of "
                             "pixels >= 1, e.g. cutout:16")
    names = [str(op).partition(":")[0] for op in out]
    if len(set(names)) != len(names):
        raise ValueError(f"augmentation {list(out)} names an op twice")
    return out


def parse_augment(text: str) -> tuple[str, ...]:
    """'crop,flip,cutout:16' -> ("crop", "flip", "cutout:16"); 'none' -> ()."""
    text = text.strip()
    if text == "none":
        return ()
    return check_augment(tuple(op.strip() for op in text.split(",")))


def cutout_size(ops: tuple[str, ...]) -> int | None:
    """Cutout's square size in pixels, None if `ops` has no cutout."""
    for op in ops:
        name, _, size = op.partition(":")
        if name == "cutout":
            return int(size) if size else CUTOUT_SIZE
    return None


def augment_batch(x: torch.Tensor, ops: tuple[str, ...], g: torch.Generator,
                  fill: torch.Tensor | None = None) -> torch.Tensor:
    """`ops` applied to a uint8 batch [B, C, H, W] (on any device; `g` may be elsewhere).

    `fill` [C] is cutout's colour (zeros if None). Returns a new batch of the same shape.
    """
    import torch

    b, c, h, w = x.shape
    gdev = g.device
    if "crop" in ops:
        p = _CROP_PAD
        padded = torch.nn.functional.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (b,), generator=g, device=gdev).to(x.device)
        dx = torch.randint(0, 2 * p + 1, (b,), generator=g, device=gdev).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        bi = torch.arange(b, device=x.device)[:, None, None, None]
        ci = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[bi, ci, rows, cols]
    if "flip" in ops:
        flip = (torch.rand(b, generator=g, device=gdev) < 0.5).to(x.device)
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    size = cutout_size(ops)
    if size is not None:
        # the square's rows [cy - L//2, cy - L//2 + L), centre cy uniform over the image
        top = torch.randint(0, h, (b,), generator=g, device=gdev).to(x.device) - size // 2
        left = torch.randint(0, w, (b,), generator=g, device=gdev).to(x.device) - size // 2
        r = torch.arange(h, device=x.device)
        q = torch.arange(w, device=x.device)
        rows = (r >= top[:, None]) & (r < top[:, None] + size)  # [B, H]
        cols = (q >= left[:, None]) & (q < left[:, None] + size)  # [B, W]
        mask = (rows[:, :, None] & cols[:, None, :])[:, None]  # [B, 1, H, W]
        fill = torch.zeros(c, dtype=x.dtype) if fill is None else fill
        x = torch.where(mask, fill.to(x.device, x.dtype).view(1, c, 1, 1), x)
    return x
