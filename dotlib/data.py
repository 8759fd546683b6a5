"""Images: the embedded photographs shipped inside installed packages, and user folders.

Nothing here downloads. The embedded photos are the colour and grey photographs that
scikit-image, scikit-learn and matplotlib ship in their wheels. They are split
*by photo* (never by crop) into four disjoint roles:

``train``   photos the embedded VAE and the embedded restorers are trained on;
``target``  natural-image statistics of DOT (the ``p_x`` side);
``source``  restorations whose statistics form the ``p_x*`` side (unpaired with target);
``eval``    photos the study measures on, never seen by any fitted or trained part.

All images are ``float32`` tensors ``[3, H, W]`` (or batches ``[B, 3, H, W]``) in [0, 1].
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image

__all__ = [
    "EMBEDDED_PHOTOS",
    "SPLITS",
    "ImageFolder",
    "crop_batch",
    "embedded_crops",
    "load_image",
    "load_photo",
    "matched_crops",
    "PHOTO_POOL",
    "photo_crops",
    "photo_folds",
    "photo_half",
    "photo_pool",
    "split_photos",
    "to_tensor",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


@dataclass(frozen=True)
class Photo:
    """An image file inside an installed package."""

    package: str
    relative_path: str
    description: str

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(
                f"package {self.package!r} is not installed; it ships the embedded photo "
                f"{self.relative_path!r}. Install it with `make setup` (or pip install {self.package})."
            )
        return Path(spec.origin).parent / self.relative_path


_SK = "skimage"
EMBEDDED_PHOTOS: dict[str, Photo] = {
    # colour photographs of everyday scenes
    "astronaut": Photo(_SK, "data/astronaut.png", "portrait of astronaut Eileen Collins, 512x512"),
    "coffee": Photo(_SK, "data/coffee.png", "cup of coffee on a table, 400x600"),
    "chelsea": Photo(_SK, "data/chelsea.png", "a cat, 300x451"),
    "rocket": Photo(_SK, "data/rocket.jpg", "rocket on its launch pad, 427x640"),
    "motorcycle_left": Photo(_SK, "data/motorcycle_left.png", "stereo pair, left view"),
    "motorcycle_right": Photo(_SK, "data/motorcycle_right.png", "stereo pair, right view"),
    "china": Photo("sklearn", "datasets/images/china.jpg", "a temple among trees, 427x640"),
    "flower": Photo("sklearn", "datasets/images/flower.jpg", "a flower close-up, 427x640"),
    "grace_hopper": Photo("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "portrait, 600x512"),
    "present": Photo("matplotlib", "mpl-data/sample_data/Minduka_Present_Blue_Pack.png", "a wrapped present, 128x128"),
    # colour photographs of scientific subjects (texture and colour variety for training)
    "retina": Photo(_SK, "data/retina.jpg", "fundus photograph of a retina"),
    "ihc": Photo(_SK, "data/ihc.png", "immunohistochemistry microscopy"),
    "hubble": Photo(_SK, "data/hubble_deep_field.jpg", "Hubble deep field"),
    # grey photographs (converted to RGB; texture variety for training)
    "camera": Photo(_SK, "data/camera.png", "cameraman, grey"),
    "coins": Photo(_SK, "data/coins.png", "coins, grey"),
    "moon": Photo(_SK, "data/moon.png", "lunar surface, grey"),
    "grass": Photo(_SK, "data/grass.png", "grass texture, grey"),
    "gravel": Photo(_SK, "data/gravel.png", "gravel texture, grey"),
    "brick": Photo(_SK, "data/brick.png", "brick wall texture, grey"),
}

#: Disjoint by photo. The motorcycle stereo pair (nearly the same picture) stays together.
SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "motorcycle_left", "motorcycle_right", "grace_hopper", "present",
        "retina", "ihc", "hubble", "camera", "coins", "moon", "grass", "gravel", "brick",
    ),
    "target": ("astronaut", "coffee"),
    "source": ("chelsea", "rocket"),
    "eval": ("china", "flower"),
}


#: The study's own photographs (Debian wallpaper packages, processed to 512² PNG; see
#: ``dotlib/photos/ATTRIBUTION.md``): evaluation-only, never seen by a trained component.
PHOTO_DIR = Path(__file__).resolve().parent / "photos"


def _wallpapers() -> dict[str, Photo]:
    manifest = PHOTO_DIR / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} is missing: the study's photographs ship with dotlib "
                                f"(reinstall it, or run tools/make_photos.py to rebuild them)")
    entries = json.loads(manifest.read_text(encoding="utf-8"))
    return {entry["name"]: Photo("dotlib", f"photos/{entry['file']}",
                                 f"{entry['description']} ({entry['author']}, {entry['license']})")
            for entry in entries}


EMBEDDED_PHOTOS.update(_wallpapers())

#: The photos the study measures on (crops cross-fitted over folds, see ``photo_folds``):
#: every photo no trained component (embedded VAE, restorers) has seen. The package
#: photos of the former ``target``/``source``/``eval`` roles plus the wallpapers.
PHOTO_POOL: tuple[str, ...] = tuple(sorted(
    SPLITS["target"] + SPLITS["source"] + SPLITS["eval"] + tuple(_wallpapers())))


def to_tensor(image: Image.Image | np.ndarray) -> torch.Tensor:
    """PIL image or ``uint8``/float array ``[H, W(, C)]`` -> ``float32 [3, H, W]`` in [0, 1].

    Grey images are repeated to three channels; an alpha channel is composited on white.
    """
    if isinstance(image, Image.Image):
        if image.mode in ("RGBA", "LA", "P"):
            image = image.convert("RGBA")
            background = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(background, image)
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an image [H, W], [H, W, 3] or [H, W, 4], got shape {array.shape}")
    array = array[:, :, :3]
    if array.dtype == np.uint8:
        array = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        array = array.astype(np.float32) / 65535.0
    else:
        array = array.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1))).clamp_(0.0, 1.0)


def load_image(path: str | Path) -> torch.Tensor:
    """Read an image file as ``float32 [3, H, W]`` in [0, 1] (grey and RGBA become RGB)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    with Image.open(path) as image:
        image.load()
        return to_tensor(image)


def load_photo(name: str) -> torch.Tensor:
    """One embedded photo by name (see ``EMBEDDED_PHOTOS``) as ``float32 [3, H, W]``."""
    if name not in EMBEDDED_PHOTOS:
        raise KeyError(f"unknown embedded photo {name!r}; known: {', '.join(sorted(EMBEDDED_PHOTOS))}")
    path = EMBEDDED_PHOTOS[name].path()
    if not path.is_file():
        raise FileNotFoundError(
            f"embedded photo {name!r} should be at {path} but is missing; reinstall "
            f"{EMBEDDED_PHOTOS[name].package} (make setup)."
        )
    return load_image(path)


def split_photos(split: str) -> list[str]:
    """Names of the photos of one split (``train``, ``target``, ``source``, ``eval``)."""
    if split not in SPLITS:
        raise KeyError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    return list(SPLITS[split])


def _fit_for_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """Upscale (bicubic) an image whose short side is below ``size`` so a crop fits."""
    height, width = image.shape[-2:]
    if min(height, width) >= size:
        return image
    scale = size / min(height, width)
    new_size = (max(size, round(height * scale)), max(size, round(width * scale)))
    resized = torch.nn.functional.interpolate(
        image[None], size=new_size, mode="bicubic", align_corners=False, antialias=True
    )
    return resized[0].clamp(0.0, 1.0)


def crop_batch(images: Sequence[torch.Tensor], size: int, n: int, seed: int) -> torch.Tensor:
    """``n`` deterministic random ``size``-square crops, taken round-robin over ``images``.

    Returns ``float32 [n, 3, size, size]``. Images smaller than ``size`` are upscaled first.
    """
    if n < 1 or size < 1:
        raise ValueError(f"need n >= 1 and size >= 1, got n={n}, size={size}")
    if not images:
        raise ValueError("no images to crop from")
    generator = torch.Generator().manual_seed(seed)
    fitted = [_fit_for_crop(image, size) for image in images]
    out = torch.empty(n, 3, size, size, dtype=torch.float32)
    for index in range(n):
        image = fitted[index % len(fitted)]
        height, width = image.shape[-2:]
        top = int(torch.randint(0, height - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - size + 1, (1,), generator=generator))
        out[index] = image[:, top:top + size, left:left + size]
    return out


def embedded_crops(split: str, size: int = 256, n: int = 16, seed: int = 0) -> torch.Tensor:
    """``n`` crops ``[n, 3, size, size]`` from the embedded photos of ``split``, deterministic by seed."""
    return crop_batch([load_photo(name) for name in split_photos(split)], size, n, seed)


def photo_half(image: torch.Tensor, half: int) -> torch.Tensor:
    """The first (``half=0``) or second (``half=1``) half of ``[3, H, W]``, cut across its longer side."""
    if half not in (0, 1):
        raise ValueError(f"half must be 0 or 1, got {half}")
    height, width = image.shape[-2:]
    if width >= height:
        middle = width // 2
        return image[:, :, :middle] if half == 0 else image[:, :, middle:]
    middle = height // 2
    return image[:, :middle] if half == 0 else image[:, middle:]


def matched_crops(splits: Sequence[str], half: int, size: int = 256, n: int = 16, seed: int = 0) -> torch.Tensor:
    """``n`` crops from one half of every photo of ``splits`` (see ``photo_half``).

    Target crops from half 0 and source crops from half 1 of the same photos are
    content-matched (same scenes, colours, light) yet share no pixel: the unpaired
    few-shot setting without the content gap of fitting on different photos. A half
    whose short side is below ``size`` is upscaled (bicubic) to fit the crop.
    """
    names = [name for split in splits for name in split_photos(split)]
    return crop_batch([photo_half(load_photo(name), half) for name in names], size, n, seed)


def photo_crops(image: torch.Tensor, size: int, max_crops: int | None = None) -> torch.Tensor:
    """Non-overlapping ``size``² crops of ``[3, H, W]`` on a centred grid: ``[k, 3, size, size]``.

    The grid holds ``floor(H / size) × floor(W / size)`` crops; with ``max_crops`` that many
    are taken, evenly spread over the grid in row-major order. Nothing is upscaled: an
    image smaller than ``size`` raises ``ValueError``.
    """
    height, width = image.shape[-2:]
    rows, cols = height // size, width // size
    if rows == 0 or cols == 0:
        raise ValueError(f"a {height}x{width} photo is smaller than a {size}x{size} crop; "
                         f"use a smaller crop size (photos are never upscaled)")
    if max_crops is not None and max_crops < 1:
        raise ValueError(f"max_crops must be >= 1 or None, got {max_crops}")
    top, left = (height - rows * size) // 2, (width - cols * size) // 2
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    if max_crops is not None and max_crops < len(cells):
        cells = [cells[int(i)] for i in np.linspace(0, len(cells) - 1, max_crops).round()]
    return torch.stack([image[:, top + r * size:top + (r + 1) * size, left + c * size:left + (c + 1) * size]
                        for r, c in cells])


def photo_pool(size: int = 256, crops_per_photo: int = 2,
               names: Sequence[str] = PHOTO_POOL) -> tuple[torch.Tensor, list[str]]:
    """Crops of the study's photos: ``(float32 [N, 3, size, size], photo name of each crop)``.

    Each photo gives up to ``crops_per_photo`` non-overlapping crops (:func:`photo_crops`);
    a photo too small for one crop raises (never upscaled). Order: by photo name.
    """
    crops, owners = [], []
    for name in names:
        taken = photo_crops(load_photo(name), size, crops_per_photo)
        crops.append(taken)
        owners += [name] * taken.shape[0]
    return torch.cat(crops), owners


def photo_folds(names: Sequence[str], n_folds: int, seed: int = 0) -> list[list[str]]:
    """Split photo names into ``n_folds`` disjoint folds (shuffled by ``seed``, dealt round-robin).

    Cross-fitting: each fold is evaluated with statistics fitted on the other folds' photos.
    """
    unique = sorted(set(names))
    if not 2 <= n_folds <= len(unique):
        raise ValueError(f"n_folds must be between 2 and the number of photos ({len(unique)}), got {n_folds}")
    order = torch.randperm(len(unique), generator=torch.Generator().manual_seed(seed)).tolist()
    return [sorted(unique[i] for i in order[fold::n_folds]) for fold in range(n_folds)]


class ImageFolder(torch.utils.data.Dataset):
    """Every image under ``root`` (recursive, sorted), e.g. an ImageNet or DIV2K folder.

    Items are ``float32 [3, H, W]`` in [0, 1]; grey and RGBA are converted to RGB. With
    ``resize`` the short side is scaled to that many pixels (bicubic, antialiased); with
    ``crop`` a centre square of that side is taken (after ``resize``).
    """

    def __init__(self, root: str | Path, resize: int | None = None, crop: int | None = None,
                 limit: int | None = None):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist")
        files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(
                f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {self.root}"
            )
        self.files = files[:limit] if limit is not None else files
        self.resize, self.crop = resize, crop

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = load_image(self.files[index])
        if self.resize is not None:
            height, width = image.shape[-2:]
            scale = self.resize / min(height, width)
            size = (max(1, round(height * scale)), max(1, round(width * scale)))
            image = torch.nn.functional.interpolate(
                image[None], size=size, mode="bicubic", align_corners=False, antialias=True
            )[0].clamp(0.0, 1.0)
        if self.crop is not None:
            image = _fit_for_crop(image, self.crop)
            height, width = image.shape[-2:]
            top, left = (height - self.crop) // 2, (width - self.crop) // 2
            image = image[:, top:top + self.crop, left:left + self.crop]
        return image

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self[index] for index in range(len(self)))
