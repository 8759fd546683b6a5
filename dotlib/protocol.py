r"""How an evaluated image and its degraded input are prepared: the authors' protocol or dotlib's.

:func:`prepare` is the one place that turns a photo file into ``(x, y)`` for a task:

``protocol="authors"`` follows the authors' data code (``dmax/data``, read at commit
``2ea7ce7``):

- x: the photo as floats in [0, 1] (``to_tensor``), a centre square of its short side
  ("centre crop of the long edge"), resized to ``size``² by bilinear interpolation *without*
  antialiasing (``Resize((size, size), antialias=False)``);
- y, applied to x in the authors' order: ×4 downsampling by antialiased bilinear
  interpolation (``F.resize(x, [h // 4, w // 4], antialias=True)``), then JPEG through
  torchvision's encoder from ``(x · 255).byte()`` (truncation, not rounding), then additive
  Gaussian noise σ/255, unclipped.

``protocol="dotlib"`` is this project's: the short side resized to ``size`` by antialiased
bicubic interpolation, then a centre crop (:func:`dotlib.data.resize_and_crop`), and the
degradations of :mod:`dotlib.degradations` (bicubic ×4, Pillow's JPEG after rounding).

A degraded input can also be read from a file (:func:`paired`: the Swin2SR release's
compressed-SR pairs, DDRM's saved inputs) instead of being made from x. The authors'
``RestorationDataset`` then takes a centre square of both files, reads the ratio of their sides
as the scale ``r`` (rounded down) and resizes y to ``(size / r)²`` as it resizes x; dotlib's
protocol prepares y as its x, at ``size / r``.

A protocol also fixes how the table's y row is upsampled (:func:`y_upsampling`: the authors'
bilinear, dotlib's bicubic) and whether a published restorer sees whole images (the authors)
or 256-px blended tiles (dotlib; :func:`restorer_tile`).

Why written here rather than imported: the authors' code is not a package on a registry, and
its dataset classes need ImageNet's folder layout; the conventions above are few and each is
one torchvision call. Parity with their code is measured by hand (``benchmarks/`` records
the command and the numbers), and the conventions are tested against torchvision directly.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from torchvision.io import decode_jpeg, encode_jpeg

from .data import ImageFolder, load_image, resize_and_crop
from .degradations import degrade, get_degradation

__all__ = ["PROTOCOLS", "PreparedFolder", "authors_clean", "authors_degrade", "check_protocol", "clean", "degraded",
           "paired", "prepare", "restorer_tile", "y_upsampling"]

PROTOCOLS = ("authors", "dotlib")

#: How y is shown at the clean size (the table's y row): the authors upsample bilinearly.
_Y_UPSAMPLING = {"authors": "bilinear", "dotlib": "bicubic"}

#: Tile side (input pixels) of a published restorer: the authors run whole images (None).
_RESTORER_TILE = {"authors": None, "dotlib": 256}

#: The authors' degradation steps per task, in their order (``dmax/data/__init__.py``).
_AUTHORS_STEPS = {"sr4": ("down4",), "jpeg10": ("jpeg10",), "awgn50": ("noise50",),
                  "sr4_jpeg10": ("down4", "jpeg10"), "sr4_awgn50": ("down4", "noise50")}


def authors_clean(photo: torch.Tensor, size: int) -> torch.Tensor:
    """x as the authors build it from ``photo [3, H, W]`` in [0, 1]: centre square of the short
    side, then ``size``² by bilinear interpolation without antialiasing: ``float32 [3, size, size]``."""
    square = TF.center_crop(photo, [min(photo.shape[-2:])] * 2)
    return TF.resize(square, [size, size], interpolation=TF.InterpolationMode.BILINEAR, antialias=False)


def _jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """The authors' JPEG: encode ``(image · 255).byte()`` (truncated) with torchvision, decode, /255."""
    return decode_jpeg(encode_jpeg((image * 255).byte(), quality=quality)).float() / 255.0


def authors_degrade(task: str, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """y of ``x [3, H, W]`` by the authors' steps for ``task`` (noise from a generator seeded by ``seed``)."""
    get_degradation(task)   # a known task, or a ValueError naming the known ones
    y = x.to(torch.float32)
    for step in _AUTHORS_STEPS[task]:
        if step == "down4":
            height, width = y.shape[-2:]
            y = TF.resize(y, [height // 4, width // 4], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        elif step == "jpeg10":
            y = _jpeg(y, 10)
        else:
            noise = torch.randn(y.shape, generator=torch.Generator().manual_seed(int(seed)))
            y = y + noise * (50.0 / 255.0)
    return y


def clean(image: torch.Tensor, protocol: str, size: int) -> torch.Tensor:
    """x of a photo ``image [3, H, W]`` in [0, 1] as ``protocol`` builds it: ``float32 [3, size, size]``."""
    return authors_clean(image, size) if protocol == "authors" else resize_and_crop(image, size, size)


def degraded(task: str, x: torch.Tensor, protocol: str, seed: int) -> torch.Tensor:
    """y of ``x [3, H, W]`` for ``task`` as ``protocol`` builds it, noise seeded by ``seed``."""
    return authors_degrade(task, x, seed) if protocol == "authors" else degrade(task, x[None], seed)[0]


def paired(y_photo: torch.Tensor, clean_side: int, task: str, protocol: str, size: int,
           clean_size_allowed: bool = False) -> torch.Tensor:
    """y read from a file, ``y_photo [3, h, w]``, prepared as ``protocol`` prepares the photo it pairs
    with (``clean_side``: that photo's short side in pixels): ``float32 [3, size / r, size / r]``,
    ``r = ⌊clean_side / min(h, w)⌋``. ``r`` must be ``task``'s scale, or 1 (y at the clean size)
    when ``clean_size_allowed`` (precomputed restorations do not read y)."""
    side = min(y_photo.shape[-2:])
    ratio = max(1, int(clean_side / side))
    scale = get_degradation(task).scale
    if ratio != scale and not (ratio == 1 and clean_size_allowed):
        raise ValueError(f"a paired degraded image of short side {side} px is 1/{ratio} of its clean photo's "
                         f"{clean_side} px, but task {task!r} degrades by {scale}: pair each photo with its "
                         f"input at 1/{scale} of its size")
    return clean(y_photo, protocol, size // ratio)


def y_upsampling(protocol: str) -> str:
    """The interpolation that shows y at the clean size under ``protocol``: bilinear or bicubic."""
    return _Y_UPSAMPLING[check_protocol(protocol)]


def restorer_tile(protocol: str) -> int | None:
    """A published restorer's tile side under ``protocol``; None: whole images (tiles only when the
    device runs out of memory, reported; :class:`dotlib.restorers.SpandrelRestorer`)."""
    return _RESTORER_TILE[check_protocol(protocol)]


def check_protocol(protocol: str) -> str:
    """``protocol`` if it is one of :data:`PROTOCOLS`, else a ``ValueError`` naming them."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return protocol


def prepare(path: str | Path, task: str, protocol: str = "authors", size: int = 512,
            seed: int = 0, degraded_path: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)`` of one photo file for ``task``: x ``float32 [3, size, size]`` in [0, 1] and y at
    its own resolution (``size / 4`` for the ×4 tasks), both as ``protocol`` builds them; y read
    from ``degraded_path`` (:func:`paired`) when given, else made from x (noise seeded by ``seed``)."""
    check_protocol(protocol)
    if not isinstance(size, int) or isinstance(size, bool) or size < 8:
        raise ValueError(f"size must be an integer >= 8 pixels, got {size!r}")
    get_degradation(task)
    photo = load_image(path)
    x = clean(photo, protocol, size)
    if degraded_path is not None:
        return x, paired(load_image(degraded_path), min(photo.shape[-2:]), task, protocol, size)
    return x, degraded(task, x, protocol, seed)


class PreparedFolder(torch.utils.data.Dataset):
    """Every image under ``root`` (:class:`dotlib.data.ImageFolder`'s listing) as x of ``protocol``
    at ``size``²: items ``float32 [3, size, size]``; ``files`` lists the paths."""

    def __init__(self, root: str | Path, protocol: str, size: int):
        self.folder, self.protocol, self.size = ImageFolder(root), check_protocol(protocol), size

    @property
    def files(self) -> list[Path]:
        return self.folder.files

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> torch.Tensor:
        return clean(self.folder[index], self.protocol, self.size)
