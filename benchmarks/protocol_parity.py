"""Parity of ``dotlib.protocol.prepare(protocol="authors")`` with the authors' own data code.

Run by hand with a checkout of the authors' repository (nothing of it is copied here):

    git clone https://github.com/theoad/dot-dmax /tmp/dot-dmax   # commit 2ea7ce7
    .venv/bin/python benchmarks/protocol_parity.py /tmp/dot-dmax [PHOTO ...]

Without photos it writes 15 test photos at ImageNet-like sizes (500×375, 375×500 and
2560×1600 JPEGs of images from scikit-image and matplotlib that the project's pool does not
use). For every task it builds x and y with the authors' ``CenterCropLongEdge``,
``Resize((512, 512), antialias=False)``, ``Downsample``, ``Jpeg`` and ``AddNoise`` (same noise
draw) and with ``prepare``, and prints the worst PSNR over the photos; then the same for
``protocol="dotlib"``, which differs on purpose.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import tempfile
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms import Resize
from torchvision.transforms.functional import to_tensor

from dotlib.protocol import prepare

TASKS = {"sr4": ("Downsample", 4), "jpeg10": ("Jpeg", 10), "awgn50": ("AddNoise", 50),
         "sr4_jpeg10": ("Downsample", 4, "Jpeg", 10), "sr4_awgn50": ("Downsample", 4, "AddNoise", 50)}


def authors_transforms(checkout: Path):
    spec = importlib.util.spec_from_file_location("authors_transforms", checkout / "dmax/data/transforms.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_photos(folder: Path) -> list[Path]:
    import matplotlib
    import skimage

    sources = [Path(skimage.__file__).parent / "data" / name for name in ("motorcycle_left.png", "hubble_deep_field.jpg",
                                                                         "retina.jpg", "color.png")]
    sources.append(Path(matplotlib.__file__).parent / "mpl-data/sample_data/grace_hopper.jpg")
    paths = []
    for i, source in enumerate(sources):
        image = Image.open(source).convert("RGB")
        for j, size in enumerate(((500, 375), (375, 500), (2560, 1600))):
            paths.append(folder / f"photo{i}_{j}.jpg")
            image.resize(size, Image.BICUBIC).save(paths[-1], quality=92)
    return paths


def theirs(module, path: Path, task: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.nn.Sequential(module.CenterCropLongEdge(), Resize((512, 512), antialias=False))(
        to_tensor(Image.open(path).convert("RGB")))
    y, steps = x.clone(), TASKS[task]
    for name, value in zip(steps[::2], steps[1::2]):
        step = getattr(module, name)(value)
        if name == "AddNoise":   # their draw is torch.randn_like; the same draw as prepare's, to compare arithmetic
            y = y + torch.randn(y.shape, generator=torch.Generator().manual_seed(seed)) * step.sigma
        else:
            y = step(y)
    return x, y


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    error = float((a.double() - b.double()).square().mean())
    return math.inf if error == 0 else -10.0 * math.log10(error)


def main(argv: list[str]) -> None:
    module = authors_transforms(Path(argv[0]))
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(p) for p in argv[1:]] or test_photos(Path(folder))
        for protocol in ("authors", "dotlib"):
            for task in TASKS:
                worst_x = worst_y = math.inf
                for path in paths:
                    x, y = prepare(path, task, protocol, 512, seed=3)
                    x_theirs, y_theirs = theirs(module, path, task, 3)
                    worst_x, worst_y = min(worst_x, psnr(x, x_theirs)), min(worst_y, psnr(y, y_theirs))
                print(f"protocol {protocol:7s} {task:10s} {len(paths)} photos: worst x {worst_x:.1f} dB, "
                      f"worst y {worst_y:.1f} dB")


if __name__ == "__main__":
    main(sys.argv[1:])
