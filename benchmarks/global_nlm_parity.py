"""Parity of ``dotlib.global_nlm`` (restorer ``global_nlm``) with the authors' non-local means.

Run by hand with a checkout of the authors' repository (nothing of it is copied here):

    git clone https://github.com/theoad/dot-dmax /tmp/dot-dmax   # commit 2ea7ce7
    .venv/bin/python benchmarks/global_nlm_parity.py /tmp/dot-dmax

Their ``dmax/models/nlm.py`` and ``dmax/utils/tile.py`` are loaded from the checkout (their
package ``__init__`` needs Google-Drive clients, so the two files are loaded on their own).
On three photos from scikit-image and matplotlib (images the project's pool does not use),
prepared as the authors do for AWGN σ = 50 at 512² (``prepare(..., protocol="authors")``), it
prints the largest absolute difference between the two outputs, both PSNRs against x, and
the seconds each took, measured in this one run.
"""

from __future__ import annotations

import importlib.util
import math
import sys
import tempfile
import time
import types
from pathlib import Path

import torch
from PIL import Image

from dotlib.global_nlm import global_nlm
from dotlib.protocol import prepare

SIGMA = 50.0 / 255.0


def authors_nlm(checkout: Path):
    """The authors' ``NLM`` class, from their two files only."""
    for package in ("dmax", "dmax.utils"):
        sys.modules.setdefault(package, types.ModuleType(package))
    for name, relative in (("dmax.utils.tile", "dmax/utils/tile.py"), ("authors_nlm", "dmax/models/nlm.py")):
        spec = importlib.util.spec_from_file_location(name, checkout / relative)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules["authors_nlm"].NLM


def photos(folder: Path) -> list[Path]:
    import matplotlib
    import skimage

    sources = [Path(skimage.__file__).parent / "data" / "motorcycle_left.png",
               Path(skimage.__file__).parent / "data" / "retina.jpg",
               Path(matplotlib.__file__).parent / "mpl-data/sample_data/grace_hopper.jpg"]
    paths = []
    for index, source in enumerate(sources):
        paths.append(folder / f"photo{index}.jpg")
        Image.open(source).convert("RGB").resize((500, 375), Image.BICUBIC).save(paths[-1], quality=92)
    return paths


def psnr(image: torch.Tensor, clean: torch.Tensor) -> float:
    return -10.0 * math.log10(float(((image.clamp(0, 1) - clean) ** 2).mean()))


def main(checkout: str) -> None:
    torch.set_num_threads(1)
    theirs = authors_nlm(Path(checkout))(SIGMA, patch_size=5, patch_distance=32)
    with tempfile.TemporaryDirectory() as folder:
        for path in photos(Path(folder)):
            x, y = prepare(path, "awgn50", protocol="authors", size=512, seed=0)
            began = time.perf_counter()
            reference = theirs(y[None])[0]
            their_seconds = time.perf_counter() - began
            began = time.perf_counter()
            ours = global_nlm(y[None], SIGMA)[0]
            our_seconds = time.perf_counter() - began
            print(f"{path.name}: max |dotlib - authors| = {float((ours - reference).abs().max()):.2e}; "
                  f"PSNR y {psnr(y, x):.2f} dB, authors {psnr(reference, x):.4f} dB, dotlib {psnr(ours, x):.4f} dB; "
                  f"seconds (1 thread) authors {their_seconds:.1f}, dotlib {our_seconds:.1f}, "
                  f"ratio {our_seconds / their_seconds:.2f}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
