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
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

from .validate import check_values

__all__ = [
    "EMBEDDED_PHOTOS",
    "SPLITS",
    "ImageFolder",
    "crop_batch",
    "embedded_crops",
    "image_files",
    "resize_and_crop",
    "load_image",
    "load_photo",
    "MatchedFolder",
    "PHOTO_POOL",
    "photo_crops",
    "photo_folds",
    "photo_pool",
    "split_photos",
    "to_tensor",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


def image_files(folder: str | Path) -> list[Path]:
    """The image files under ``folder``, as :class:`ImageFolder` reads them: recursive, the
    :data:`IMAGE_SUFFIXES` (any case), hidden files and folders skipped; sorted."""
    folder = Path(folder)
    return sorted(path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
                  and not any(part.startswith(".") for part in path.relative_to(folder).parts))


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
    """PIL image or array ``[H, W(, C)]`` -> ``float32 [3, H, W]`` in [0, 1], at the image's true scale.

    8-bit images (and ``uint8`` arrays) are divided by 255, 16-bit ones (PIL modes ``I;16``
    and ``I``, ``uint16`` arrays) by 65535; float images (mode ``F``, float arrays) are kept
    as they are and must lie in [0, 1] (else ``ValueError``). Grey images are repeated to
    three channels; an alpha channel is composited on white.
    """
    if isinstance(image, Image.Image):
        array = _pil_array(image)
    else:
        array = np.asarray(image)
    return _array_to_tensor(array)


_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "P", "PA")


def _pil_array(image: Image.Image) -> np.ndarray:
    """The pixels of a PIL image as ``uint8``, ``uint16`` or ``float32`` (``I`` mode checked as 16-bit)."""
    if image.mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16)
    if image.mode == "I":
        array = np.asarray(image)
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise ValueError(f"a 32-bit integer image with values in [{array.min()}, {array.max()}]: "
                             f"only 16-bit values (0 to 65535) have a known scale")
        return array.astype(np.uint16)
    if image.mode == "F":
        return np.asarray(image, dtype=np.float32)
    if image.mode in _ALPHA_MODES:
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("RGB"))


def _array_to_tensor(array: np.ndarray) -> torch.Tensor:
    """``[H, W]`` or ``[H, W, 1|2|3|4]`` (grey, grey+alpha, RGB, RGBA) -> ``float32 [3, H, W]`` in [0, 1]."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an image [H, W] or [H, W, C] with C in 1 to 4, got shape {array.shape}")
    if array.dtype == np.uint8:
        values = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        values = array.astype(np.float32) / 65535.0
    elif np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float32)
        check_values(torch.from_numpy(values), "a float image")
    else:
        raise TypeError(f"image arrays must be uint8, uint16 or float, got {array.dtype}: the scale of "
                        f"other types is unknown")
    if values.shape[2] in (2, 4):  # composite the alpha channel on white
        alpha = values[:, :, -1:]
        values = values[:, :, :-1] * alpha + (1.0 - alpha)
    if values.shape[2] == 1:
        values = np.repeat(values, 3, axis=2)
    return torch.from_numpy(np.ascontiguousarray(values.transpose(2, 0, 1))).clamp_(0.0, 1.0)


#: EXIF orientation (tag 0x0112) -> the transform that shows the image upright (as PIL.ImageOps.exif_transpose).
_ORIENTATIONS: dict[int, Callable[[torch.Tensor], torch.Tensor]] = {
    2: lambda x: x.flip(-1),
    3: lambda x: x.flip(-2, -1),
    4: lambda x: x.flip(-2),
    5: lambda x: x.transpose(-2, -1),
    6: lambda x: x.rot90(-1, (-2, -1)),
    7: lambda x: x.transpose(-2, -1).flip(-2, -1),
    8: lambda x: x.rot90(1, (-2, -1)),
}
_ORIENTATION_TAG = 0x0112


def _upright(image: torch.Tensor, orientation: int) -> torch.Tensor:
    """``[3, H, W]`` turned by its EXIF ``orientation`` (1 or unknown: unchanged)."""
    transform = _ORIENTATIONS.get(int(orientation))
    return image if transform is None else transform(image).contiguous()


def _holds_16_bit_colour(image: Image.Image) -> bool:
    """Whether PIL would reduce this (not yet loaded) PNG or TIFF's 16-bit colour channels to 8 bits."""
    return image.format in ("PNG", "TIFF") and not image.mode.startswith("I") and any(
        ";16" in str(tile.args) for tile in getattr(image, "tile", ()) or ())


def _read_png16(path: Path) -> np.ndarray:
    """A 16-bit PNG (any colour type) as ``uint16 [H, W, C]``, decoded by torchvision (PIL keeps 8 bits)."""
    with warnings.catch_warnings():  # torchvision 0.29 announces a move of its decoders to torchcodec
        warnings.simplefilter("ignore", DeprecationWarning)
        from torchvision.io import ImageReadMode, decode_png, read_file

        pixels = decode_png(read_file(str(path)), mode=ImageReadMode.UNCHANGED)
    return pixels.permute(1, 2, 0).numpy().astype(np.uint16)


def _read_tiff(path: Path) -> tuple[np.ndarray, int]:
    """A TIFF PIL cannot read exactly (float or 16-bit colour) via tifffile: ``(array [H, W(, C)], orientation)``."""
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        series = tiff.series[0]
        array, axes = series.asarray(), series.axes
        tag = tiff.pages[0].tags.get("Orientation")
    if axes in ("SYX", "CYX"):
        array = np.moveaxis(array, 0, -1)
    elif axes not in ("YX", "YXS", "YXC"):
        raise ValueError(f"TIFF with axes {axes!r} (several pages or planes): only one image is supported")
    return array, int(tag.value) if tag is not None else 1


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _read_image(path: Path) -> torch.Tensor:
    try:
        with Image.open(path) as image:
            if not _holds_16_bit_colour(image):
                image.load()
                return to_tensor(ImageOps.exif_transpose(image))
            orientation = image.getexif().get(_ORIENTATION_TAG, 1)
            image_format = image.format
    except Image.UnidentifiedImageError:
        if not _is_tiff(path):
            raise
        image_format = "TIFF"  # e.g. a float RGB TIFF, which PIL cannot open
    if image_format == "PNG":
        return _upright(_array_to_tensor(_read_png16(path)), orientation)
    if image_format == "TIFF":
        array, orientation = _read_tiff(path)
        return _upright(_array_to_tensor(array), orientation)
    raise ValueError(f"16-bit colour {image_format} images are read at 8 bits by PIL; convert it to a "
                     f"16-bit PNG or TIFF")


_READ_ERRORS = (OSError, SyntaxError, EOFError, ValueError, TypeError, RuntimeError, struct.error,
                zlib.error, Image.DecompressionBombError)


def load_image(path: str | Path) -> torch.Tensor:
    """Read an image file as ``float32 [3, H, W]`` in [0, 1], upright (EXIF orientation applied).

    8- and 16-bit files are scaled by their bit depth (16-bit PNG and TIFF keep all 16 bits);
    float TIFFs are kept as they are and must lie in [0, 1]; grey and RGBA become RGB (alpha
    on white). A corrupt, truncated or unreadable file raises ``ValueError`` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    try:
        return _read_image(path)
    except FileNotFoundError:
        raise
    except _READ_ERRORS as error:
        raise ValueError(f"cannot read the image file {path}: {error}") from error


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
    """``image`` itself if a ``size`` crop fits in it; photos are never upscaled (``ValueError``)."""
    height, width = image.shape[-2:]
    if min(height, width) < size:
        raise ValueError(f"a {height}x{width} image is smaller than a {size}x{size} crop; use a smaller "
                         f"crop size (images are never upscaled)")
    return image


def crop_batch(images: Sequence[torch.Tensor], size: int, n: int, seed: int) -> torch.Tensor:
    """``n`` deterministic random ``size``-square crops, taken round-robin over ``images``.

    Returns ``float32 [n, 3, size, size]``. An image smaller than ``size`` raises ``ValueError``.
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


def resize_and_crop(image: torch.Tensor, resize: int | None, crop: int | None) -> torch.Tensor:
    """dotlib's preparation of ``image [3, H, W]``: the short side scaled to ``resize`` pixels
    (bicubic, antialiased, clamped to [0, 1]), then a centre ``crop``² square; None skips either."""
    if resize is not None:
        height, width = image.shape[-2:]
        scale = resize / min(height, width)
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        image = torch.nn.functional.interpolate(
            image[None], size=size, mode="bicubic", align_corners=False, antialias=True
        )[0].clamp(0.0, 1.0)
    if crop is not None:
        image = _fit_for_crop(image, crop)
        height, width = image.shape[-2:]
        top, left = (height - crop) // 2, (width - crop) // 2
        image = image[:, top:top + crop, left:left + crop]
    return image


class ImageFolder(torch.utils.data.Dataset):
    """Every image under ``root`` (recursive, sorted), e.g. an ImageNet or DIV2K folder.

    Items are ``float32 [3, H, W]`` in [0, 1] (see :func:`load_image`); grey and RGBA are
    converted to RGB. Hidden files and folders (``.ipynb_checkpoints``, ``._x.jpg``) are
    skipped. With ``resize`` the short side is scaled to that many pixels (bicubic,
    antialiased); with ``crop`` a centre square of that side is taken (after ``resize``);
    ``limit`` keeps the first images only. All three must be positive integers or None.
    """

    def __init__(self, root: str | Path, resize: int | None = None, crop: int | None = None,
                 limit: int | None = None):
        for name, value, unit in (("resize", resize, "pixels"), ("crop", crop, "pixels"), ("limit", limit, "images")):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < 1):
                raise ValueError(f"ImageFolder {name} must be a positive integer ({unit}) or None, got {value!r}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist")
        files = image_files(self.root)
        if not files:
            raise FileNotFoundError(
                f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {self.root}"
            )
        self.files = files[:limit] if limit is not None else files
        self.resize, self.crop = resize, crop

    def __len__(self) -> int:
        return len(self.files)

    def keys(self) -> list[str]:
        """Each file's path under :attr:`root` without its suffix (``sub/name``): how folders pair
        images by name. ``ValueError`` naming both files when two share a key (``a.png`` and ``a.jpg``)."""
        seen: dict[str, Path] = {}
        for file in self.files:
            key = file.relative_to(self.root).with_suffix("").as_posix()
            if key in seen:
                raise ValueError(f"{seen[key]} and {file} have the same name; images are paired by name, "
                                 f"so keep one of them")
            seen[key] = file
        return list(seen)

    def __getitem__(self, index: int) -> torch.Tensor:
        return resize_and_crop(load_image(self.files[index]), self.resize, self.crop)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return (self[index] for index in range(len(self)))


class MatchedFolder:
    """The images of ``folder`` matched to input files by name: the file of the same name, else
    the only one of the same stem (``x.jpg`` -> ``x.png``). Precomputed restorations and paired
    degraded inputs are read this way; ``role`` names the folder and ``item`` its files in errors."""

    def __init__(self, folder: str | Path, role: str, item: str):
        self.folder, self.role, self.item = Path(folder).expanduser(), role, item
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{role} {self.folder} does not exist")
        self.files = image_files(self.folder)
        if not self.files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {role} {self.folder}")
        self._by_name: dict[str, list[Path]] = {}
        self._by_stem: dict[str, list[Path]] = {}
        for path in self.files:
            self._by_name.setdefault(path.name, []).append(path)
            self._by_stem.setdefault(path.stem, []).append(path)

    def check(self, names: list[str]) -> None:
        """``FileNotFoundError`` unless every input of ``names`` has its file here (run before any work,
        so that a long run does not stop at the first gap); the message counts and names them."""
        missing = [Path(name).name for name in names
                   if Path(name).name not in self._by_name and Path(name).stem not in self._by_stem]
        if missing:
            shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise FileNotFoundError(f"{self.role} {self.folder} holds no {self.item} for {len(missing)} of the "
                                    f"{len(names)} inputs of this run ({shown}); write one image per input, "
                                    f"with the input's file stem, before starting")

    def find(self, name: str | Path) -> Path:
        """The file matched to the input named ``name``: same file name, else same stem (unique)."""
        name = Path(name)
        for matches in (self._by_name.get(name.name, []), self._by_stem.get(name.stem, [])):
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise ValueError(f"{self.role} {self.folder} holds {len(matches)} files for input "
                                 f"{name.name!r} ({', '.join(str(m.relative_to(self.folder)) for m in matches)}); "
                                 f"keep one")
        raise FileNotFoundError(f"{self.role} {self.folder} holds no {self.item} for input {name.name!r} "
                                f"(no file named {name.name!r} or with stem {name.stem!r})")
