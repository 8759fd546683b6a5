r"""Index validity: does a perception index rate clean images closest to natural ones, and
rate known distortions as worse, the stronger the worse?

A set-level perception index :math:`d(S, R)` is used in the study to say that one set of
images is "closer to natural" than another. That claim needs two things of the index,
measured here on images the caller chooses (photos the index was never tuned on):

- **a floor**: clean images, scored against a reference of *other* crops of the same
  photos (a set is never its own reference when the index is used), should score lowest;
- **monotonicity**: growing blur and growing noise should score higher and higher.

An index with both may carry a claim, limited to what it sees: the distortions it rates no
worse than clean (a blind spot, e.g. colour for an index of grey detail) are listed with it.

:func:`index_validity` distorts ``clean`` in fixed, documented ways (the rows of
:data:`DISTORTIONS`) and scores each distorted set against ``reference`` with every index.
:func:`validity_checks` reads those two properties off the table, and
:func:`cannot_see` lists, per index, the distortions it rates no worse than clean. Nothing
here is tuned: the strengths are round numbers fixed before any index was measured.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import pandas as pd
import torch
import torchvision.transforms.functional as TF

from .detail import DetailFrechet
from .inputs import check_batch
from .sliced_wasserstein import SlicedWasserstein

__all__ = ["BLUR_SIGMAS", "DISTORTIONS", "NOISE_SIGMAS", "cannot_see", "distort", "index_validity",
           "held_out_sets", "pool_sets", "validity_checks", "weight_free_indices"]

#: Gaussian blur σ in pixels, growing.
BLUR_SIGMAS = {"blur1": 0.7, "blur2": 1.4, "blur3": 2.8}
#: AWGN σ in [0, 1] intensity units (5, 15 and 40 of 255), growing; clipped to [0, 1].
NOISE_SIGMAS = {"noise1": 5 / 255, "noise2": 15 / 255, "noise3": 40 / 255}
#: A global colour cast: per-channel gain and offset (R, G, B).
COLOUR_GAIN, COLOUR_OFFSET = (1.1, 1.0, 0.9), (0.03, 0.0, -0.03)
#: The rows of :func:`index_validity`, in order.
DISTORTIONS = ("clean", *BLUR_SIGMAS, *NOISE_SIGMAS, "jpeg10", "jpeg30", "bicubic4", "vae", "colour")

Index = Callable[[torch.Tensor], float]


def _blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    size = 2 * math.ceil(3.0 * sigma) + 1
    return TF.gaussian_blur(images, [size, size], [sigma, sigma]).clamp(0.0, 1.0)


def _bicubic(images: torch.Tensor, factor: int) -> torch.Tensor:
    from ..degradations import Downsample
    from ..pipeline import upsampled

    return upsampled(Downsample(factor)(images, torch.Generator()), tuple(images.shape[-2:]))


def _colour(images: torch.Tensor) -> torch.Tensor:
    gain = images.new_tensor(COLOUR_GAIN).view(1, 3, 1, 1)
    offset = images.new_tensor(COLOUR_OFFSET).view(1, 3, 1, 1)
    return (images * gain + offset).clamp(0.0, 1.0)


def distort(name: str, images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``images [N, 3, H, W]`` in [0, 1] under the distortion ``name`` of :data:`DISTORTIONS`.

    ``jpeg<q>``: Pillow JPEG at quality q (:class:`dotlib.degradations.JPEG`); ``bicubic4``:
    down ×4 and back up, bicubic; ``vae``: the embedded VAE's reconstruction D(E(x)).
    """
    from ..degradations import JPEG

    check_batch(images, "images")
    if name == "clean":
        return images.clone()
    if name in BLUR_SIGMAS:
        return _blur(images, BLUR_SIGMAS[name])
    if name in NOISE_SIGMAS:
        noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))
        return (images + NOISE_SIGMAS[name] * noise.to(images)).clamp(0.0, 1.0)
    if name in ("jpeg10", "jpeg30"):
        return JPEG(int(name[4:]), 0.0)(images, torch.Generator())
    if name == "bicubic4":
        return _bicubic(images, 4)
    if name == "vae":
        from ..encoders import load_encoder

        return load_encoder("embedded").round_trip(images).clamp(0.0, 1.0)
    if name == "colour":
        return _colour(images)
    raise ValueError(f"unknown distortion {name!r}; known: {', '.join(DISTORTIONS)}")


def weight_free_indices(reference: torch.Tensor, seed: int = 0) -> dict[str, Index]:
    """The study's weight-free indices against ``reference``: ``{"swd": ..., "detail": ...}``."""
    swd = SlicedWasserstein(reference, seed=seed)
    detail = DetailFrechet(reference, levels=swd.levels)
    return {"swd": lambda images: swd(images).mean, "detail": detail}


def index_validity(clean: torch.Tensor, reference: torch.Tensor,
                   indices: Mapping[str, Index] | None = None, seed: int = 0) -> pd.DataFrame:
    """Every index of every distortion of ``clean``, scored against ``reference``.

    ``clean`` and ``reference``: float ``[N, 3, H, W]`` and ``[M, 3, H', W']`` in [0, 1], the
    images to distort and *other* crops of the same photos. ``indices``: name -> callable
    scoring a set ``[N, 3, H, W]`` against the reference, lower = closer to natural
    (default :func:`weight_free_indices`). Returns a DataFrame indexed by distortion
    (:data:`DISTORTIONS`), one column per index, raw units.
    """
    check_batch(clean, "clean")
    check_batch(reference, "reference")
    indices = weight_free_indices(reference, seed) if indices is None else indices
    rows = {}
    for name in DISTORTIONS:
        distorted = distort(name, clean, seed)
        rows[name] = {index: float(score(distorted)) for index, score in indices.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "distortion"
    return frame


def validity_checks(frame: pd.DataFrame) -> pd.DataFrame:
    """Per index (rows): ``clean_lowest`` (every distortion scores above clean),
    ``monotone_blur`` and ``monotone_noise`` (clean < strength 1 < 2 < 3), and ``valid``
    (both monotone: the index may carry a claim of "closer to natural", limited to what it
    sees; a distortion it rates no worse than clean, e.g. a colour cast for an index of grey
    detail, is listed by :func:`cannot_see` and clears ``clean_lowest``)."""
    out = {}
    for index in frame.columns:
        values = frame[index]
        chain = lambda names: all(a < b for a, b in zip(values[["clean", *names]], values[list(names)]))
        checks = {"clean_lowest": bool((values.drop("clean") > values["clean"]).all()),
                  "monotone_blur": chain(tuple(BLUR_SIGMAS)), "monotone_noise": chain(tuple(NOISE_SIGMAS))}
        out[index] = {**checks, "valid": checks["monotone_blur"] and checks["monotone_noise"]}
    return pd.DataFrame.from_dict(out, orient="index")


def cannot_see(frame: pd.DataFrame) -> dict[str, list[str]]:
    """Per index, the distortions it scores no higher than the clean images (it cannot see them)."""
    return {index: [name for name in frame.index if name != "clean" and frame.at[name, index] <= frame.at["clean", index]]
            for index in frame.columns}


def pool_sets(size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """The study's photo pool as ``(clean, reference)``: the first ``size``² crop of every photo
    with two crops, and its second crop (other content of the same photos), ``[N, 3, size, size]`` each."""
    from ..data import photo_pool

    crops, photos = photo_pool(size, 2)
    first = {name: photos.index(name) for name in photos if photos.count(name) == 2}
    return crops[list(first.values())], crops[[index + 1 for index in first.values()]]


def held_out_sets(size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The eval photos (never fitted, trained or tuned on) as ``(clean, reference)``: their
    disjoint ``size``² tiles split like a checkerboard, odd squares to distort and even squares
    as the reference, ``[N, 3, size, size]`` and ``[M, 3, size, size]``."""
    from ..data import load_photo, split_photos

    squares: dict[int, list[torch.Tensor]] = {0: [], 1: []}
    for name in split_photos("eval"):
        photo = load_photo(name)
        for i in range(photo.shape[1] // size):
            for j in range(photo.shape[2] // size):
                squares[(i + j) % 2].append(photo[:, size * i:size * (i + 1), size * j:size * (j + 1)])
    if not squares[1]:
        raise ValueError(f"the eval photos hold no {size}² tile pair; use a smaller size")
    return torch.stack(squares[1]), torch.stack(squares[0])
