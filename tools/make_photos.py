#!/usr/bin/env python3
"""Rebuild the evaluation photographs in ``dotlib/photos/`` from two Debian packages.

Provenance record, not part of the build: it documents how the committed PNGs
were made and reproduces them byte for byte (checked with Debian 12 "bookworm"
packages and Pillow 13; another Pillow or zlib may encode the same pixels into
different PNG bytes). Needs ``apt-get`` and ``dpkg`` (a Debian or Ubuntu host
whose apt sources carry the packages) and Pillow.

Steps:

1. ``apt-get download`` the two packages in ``PACKAGES`` into a work directory
   and unpack each with ``dpkg -x``;
2. for every ``(package, path inside the package, output name)`` in ``SOURCES``:
   convert to RGB, downscale with Lanczos (``Image.resize(..., Image.LANCZOS)``,
   never upscaling) so that the short side is 512 px, take the centred 512x512
   square and save it as an 8-bit RGB PNG (``optimize=True``) named
   ``<output name>.png``.

Authors and licences of each photo are in ``dotlib/photos/ATTRIBUTION.md``
and ``dotlib/photos/manifest.json``.

Usage::

    python tools/make_photos.py                  # (re)write dotlib/photos/*.png
    python tools/make_photos.py --check          # compare with the committed PNGs
    python tools/make_photos.py --out /tmp/p --workdir /tmp/wallpapers
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SIZE = 512

_KDE, _LOMIRI = "plasma-workspace-wallpapers", "lomiri-wallpapers-20.04"
#: Debian packages and the versions (Debian 12) the committed PNGs were made from.
PACKAGES: dict[str, str] = {_KDE: "4:5.27.5-2", _LOMIRI: "20.04.0-2"}


def _kde(wallpaper: str) -> str:
    """Path of a KDE wallpaper's largest image (the other sizes are symlinks to it)."""
    return f"usr/share/wallpapers/{wallpaper}/contents/images/2560x1600.jpg"


#: (package, path inside the package, output name): the real photographs only.
SOURCES: list[tuple[str, str, str]] = [
    (_KDE, _kde("FallenLeaf"), "autumn_maple_leaf"),
    (_KDE, _kde("Path"), "forest_path"),
    (_KDE, _kde("Kite"), "kite_blue_sky"),
    (_KDE, _kde("summer_1am"), "lake_reeds_dusk"),
    (_KDE, _kde("ColdRipple"), "misty_jetty_monochrome"),
    (_KDE, _kde("DarkestHour"), "misty_lake_blue_hour"),
    (_KDE, _kde("OneStandsOut"), "moss_closeup"),
    (_LOMIRI, "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg", "nuthatch_tree_trunk"),
    (_KDE, _kde("EveningGlow"), "rowing_boats_sunset"),
    (_KDE, _kde("ColorfulCups"), "stacked_plastic_cups"),
    (_KDE, _kde("Grey"), "wavy_facade_monochrome"),
    (_KDE, _kde("BytheWater"), "wooden_deck_lakeside"),
]


def fetch_packages(workdir: Path) -> dict[str, Path]:
    """Download and unpack every package of ``PACKAGES`` under ``workdir``; return each root.

    A package already unpacked there (``workdir/<package>/usr`` exists) is reused.
    """
    roots: dict[str, Path] = {}
    for package, expected in PACKAGES.items():
        root = workdir / package
        if not (root / "usr").is_dir():
            subprocess.run(["apt-get", "download", package], cwd=workdir, check=True)
            deb = max(workdir.glob(f"{package}_*.deb"))
            version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True,
                                     capture_output=True, text=True).stdout.strip()
            if version != expected:
                print(f"warning: {package} {version} downloaded; the committed PNGs come from "
                      f"{expected}", file=sys.stderr)
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        roots[package] = root
    return roots


def square_crop(image: Image.Image, size: int = SIZE) -> Image.Image:
    """RGB, Lanczos-downscaled to short side ``size`` (never upscaled), centred ``size``² square."""
    image = image.convert("RGB")
    width, height = image.size
    short = min(width, height)
    if short < size:
        raise ValueError(f"image {width}x{height} is smaller than {size} px on its short side")
    new = (round(width * size / short), round(height * size / short))
    if new != image.size:
        image = image.resize(new, Image.LANCZOS)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return image.crop((left, top, left + size, top + size))


def main(argv: list[str] | None = None) -> int:
    """Write (or, with ``--check``, compare) every PNG of ``SOURCES``; 0 when all match."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dotlib" / "photos",
                        help="folder for the PNGs (default: dotlib/photos)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="download/unpack folder, kept and reused (default: a temporary one)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; compare with the PNGs already in --out")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        roots = fetch_packages(workdir)
        args.out.mkdir(parents=True, exist_ok=True)
        differ = 0
        for package, source, name in SOURCES:
            with Image.open(roots[package] / source) as image:
                photo = square_crop(image)
            target = args.out / f"{name}.png"
            if args.check:
                scratch = Path(tmp) / f"{name}.png"
                photo.save(scratch, optimize=True)
                same = target.is_file() and target.read_bytes() == scratch.read_bytes()
                differ += not same
                print(f"{'same' if same else 'DIFFERS'}  {target}")
            else:
                photo.save(target, optimize=True)
                print(f"wrote  {target}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
