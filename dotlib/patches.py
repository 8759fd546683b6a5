"""Overlapping p×p patches of latents, and folding them back by weighted averaging.

A latent ``z`` of shape ``[B, C, H, W]`` has ``(H - p + 1)·(W - p + 1)`` *valid* p×p
patches (no padding: the positions statistics are fitted on and transport moves) and,
after replicate padding by ``p // 2`` on every side, exactly ``H·W`` patches, one
centred on each position (an option of :func:`map_patches`). A patch is flattened
channel-major, i.e. as ``torch.nn.functional.unfold`` orders it: index ``c·p² + i·p + j``.

Folding puts patches back: each position receives the weighted average of the values
that the patches covering it hold there, with weight ``k[i, j]`` for the patch offset
``(i, j)`` of that position,

    z[c, y, x] = Σ_{i,j} k[i, j] · P_{(y-i, x-j)}[c, i, j] / Σ_{i,j} k[i, j]

(sums over the patches that exist). ``k`` is uniform by default or a Gaussian of width
``sigma`` centred on the patch (Adrai et al. 2023, Sec. 4, "weighted folding").
Folding the unchanged patches of ``z`` returns ``z``.

Large latents are processed in chunks of rows (:func:`map_patches`), so memory stays
bounded by ``max_patches`` patches at a time.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from .gaussian import GaussianStats

__all__ = [
    "check_patch_size",
    "extract_patches",
    "fold_patches",
    "folding_kernel",
    "iter_valid_patches",
    "map_patches",
    "valid_patch_stats",
]

#: Default bound on the number of patches (over the batch) held at once.
DEFAULT_MAX_PATCHES = 1 << 16


def check_patch_size(patch_size: int) -> int:
    """Return ``patch_size`` if it is a positive odd integer, else raise ``ValueError``."""
    if isinstance(patch_size, bool) or not isinstance(patch_size, int):
        raise TypeError(f"patch_size must be an int, got {type(patch_size).__name__}")
    if patch_size < 1 or patch_size % 2 == 0:
        raise ValueError(
            f"patch_size must be a positive odd integer (a patch needs a centre pixel), got {patch_size}"
        )
    return patch_size


def _check_latents(latents: torch.Tensor, patch_size: int, pad: bool) -> None:
    if not isinstance(latents, torch.Tensor) or latents.ndim != 4:
        raise ValueError(f"latents must be a tensor [B, C, H, W], got {getattr(latents, 'shape', type(latents))}")
    check_patch_size(patch_size)
    height, width = latents.shape[-2:]
    if not pad and (height < patch_size or width < patch_size):
        raise ValueError(
            f"latent of size {height}x{width} is smaller than a {patch_size}x{patch_size} patch"
        )


def folding_kernel(patch_size: int, sigma: float | None = None, dtype=torch.float32,
                   device=None) -> torch.Tensor:
    """Weights ``[p, p]`` of the patch offsets: ones (``sigma=None``) or ``exp(-r²/(2σ²))``.

    ``r`` is the distance (in latent pixels) from the patch centre. The scale of the
    kernel does not matter, folding divides by the summed weights.
    """
    check_patch_size(patch_size)
    if sigma is None:
        return torch.ones(patch_size, patch_size, dtype=dtype, device=device)
    if not sigma > 0:
        raise ValueError(f"folding sigma must be positive (or None for uniform weights), got {sigma}")
    offsets = torch.arange(patch_size, dtype=torch.float64, device=device) - patch_size // 2
    squared = offsets[:, None] ** 2 + offsets[None, :] ** 2
    return torch.exp(-squared / (2.0 * float(sigma) ** 2)).to(dtype)


def _pad(latents: torch.Tensor, patch_size: int) -> torch.Tensor:
    half = patch_size // 2
    if half == 0:
        return latents
    return F.pad(latents, (half, half, half, half), mode="replicate")


def extract_patches(latents: torch.Tensor, patch_size: int, pad: bool = False) -> torch.Tensor:
    """All overlapping patches: ``[B, C, H, W]`` -> ``[B, L, C·p·p]``.

    ``pad=False``: the valid positions, ``L = (H-p+1)(W-p+1)``, row-major.
    ``pad=True``: replicate padding by ``p // 2`` first, ``L = H·W`` (patch ``l`` is
    centred on position ``(l // W, l % W)``).
    """
    _check_latents(latents, patch_size, pad)
    source = _pad(latents, patch_size) if pad else latents
    return F.unfold(source, kernel_size=patch_size).transpose(1, 2)


def _fold_weighted(patches: torch.Tensor, channels: int, size: tuple[int, int],
                   kernel: torch.Tensor) -> torch.Tensor:
    """Sum of ``kernel``-weighted patches ``[B, L, C·p²]`` on a canvas ``[B, C, *size]``."""
    patch_size = kernel.shape[-1]
    weights = kernel.reshape(1, 1, patch_size * patch_size).repeat(1, channels, 1).reshape(1, 1, -1)
    return F.fold((patches * weights).transpose(1, 2), output_size=size, kernel_size=patch_size)


def _coverage(size: tuple[int, int], kernel: torch.Tensor) -> torch.Tensor:
    """Summed kernel weight received by each position of a canvas ``size``: ``[1, 1, *size]``."""
    patch_size = kernel.shape[-1]
    rows, cols = size[0] - patch_size + 1, size[1] - patch_size + 1
    ones = torch.ones(1, rows * cols, patch_size * patch_size, dtype=kernel.dtype, device=kernel.device)
    return _fold_weighted(ones, 1, size, kernel)


def fold_patches(patches: torch.Tensor, size: tuple[int, int], patch_size: int, channels: int,
                 pad: bool = False, sigma: float | None = None) -> torch.Tensor:
    """Inverse of :func:`extract_patches`: ``[B, L, C·p·p]`` -> ``[B, C, H, W]`` (``size = (H, W)``).

    Each position is the ``folding_kernel(p, sigma)``-weighted average of the patch
    values covering it. With ``pad=True`` the patches are the ``H·W`` padded ones and the
    padding border is cropped off after folding.
    """
    check_patch_size(patch_size)
    height, width = size
    half = patch_size // 2
    canvas = (height + 2 * half, width + 2 * half) if pad else (height, width)
    expected = (canvas[0] - patch_size + 1) * (canvas[1] - patch_size + 1)
    if patches.ndim != 3 or patches.shape[1] != expected or patches.shape[2] != channels * patch_size ** 2:
        raise ValueError(
            f"expected patches [B, {expected}, {channels * patch_size ** 2}] for a {height}x{width} "
            f"latent with {channels} channels (p={patch_size}, pad={pad}), got {tuple(patches.shape)}"
        )
    kernel = folding_kernel(patch_size, sigma, dtype=patches.dtype, device=patches.device)
    folded = _fold_weighted(patches, channels, canvas, kernel) / _coverage(canvas, kernel)
    if pad and half:
        folded = folded[:, :, half:half + height, half:half + width]
    return folded


def _row_chunks(total_rows: int, cols: int, max_patches: int) -> Iterator[tuple[int, int]]:
    rows_per_chunk = max(1, max_patches // max(1, cols))
    for start in range(0, total_rows, rows_per_chunk):
        yield start, min(total_rows, start + rows_per_chunk)


def iter_valid_patches(latents: torch.Tensor, patch_size: int,
                       max_patches: int = DEFAULT_MAX_PATCHES) -> Iterator[torch.Tensor]:
    """The valid patches of :func:`extract_patches` (``pad=False``), image by image, in chunks of rows.

    Yields ``[N, C·p·p]`` blocks (possibly non-contiguous views) of at most
    ``max(max_patches, W-p+1)`` patches; together they are every valid patch of the batch once.
    """
    _check_latents(latents, patch_size, pad=False)
    height, width = latents.shape[-2:]
    rows, cols = height - patch_size + 1, width - patch_size + 1
    for latent in latents:
        for start, stop in _row_chunks(rows, cols, max_patches):
            block = latent[None, :, start:stop + patch_size - 1]
            yield F.unfold(block, kernel_size=patch_size)[0].T


def valid_patch_stats(latents: torch.Tensor, patch_size: int, max_patches: int = DEFAULT_MAX_PATCHES,
                      into: GaussianStats | None = None) -> GaussianStats:
    """Gaussian statistics (float64 sums) of every valid p×p patch of ``latents [B, C, h, w]``: the samples DOT fits.

    The patches are taken by :func:`iter_valid_patches` (no padding: the authors fit on valid
    patches only) and added to ``into`` in place (default: new statistics of dimension C·p²
    on the latents' device), which is returned.
    """
    stats = GaussianStats(latents.shape[1] * patch_size ** 2, latents.device) if into is None else into
    for block in iter_valid_patches(latents, patch_size, max_patches):
        stats.update(block)
    return stats


def map_patches(latents: torch.Tensor, patch_size: int,
                function: Callable[[torch.Tensor], torch.Tensor],
                sigma: float | None = None, max_patches: int = DEFAULT_MAX_PATCHES,
                pad: bool = False) -> torch.Tensor:
    """Move every patch by ``function`` and fold back: ``[B, C, H, W]`` -> ``[B, C, H, W]``.

    ``pad=False`` (default): the ``(H-p+1)(W-p+1)`` valid patches, the positions the
    statistics are fitted on; a position near the border is the average of the fewer
    patches that cover it (a corner, of one). ``pad=True``: replicate padding by ``p // 2``
    first, ``H·W`` patches, one centred on each position; the padded border patches are
    flat along one axis, unlike any fitted patch, and a learned map moves them far (on the
    embedded study they doubled the error of the outer 4 pixels).

    ``function`` receives patches as *columns*, ``[B, C·p·p, N]`` (the layout of
    ``torch.nn.functional.unfold``, so an affine map is one batched ``A @ patches``),
    and returns the moved patches in the same shape. It is called on chunks of rows of
    patches, ``N`` being at most ``max(max_patches // B, patches per row)``. The result
    equals ``fold_patches(g(extract_patches(z, p, pad)), ..., pad=pad, sigma=sigma)``
    with ``g(P) = function(P.transpose(1, 2)).transpose(1, 2)``.
    """
    _check_latents(latents, patch_size, pad=pad)
    batch, channels, height, width = latents.shape
    half = patch_size // 2
    source = _pad(latents, patch_size) if pad else latents
    canvas = tuple(source.shape[-2:])
    rows, cols = canvas[0] - patch_size + 1, canvas[1] - patch_size + 1
    kernel = folding_kernel(patch_size, sigma, dtype=latents.dtype, device=latents.device)
    total = torch.zeros(batch, channels, *canvas, dtype=latents.dtype, device=latents.device)
    for start, stop in _row_chunks(rows, cols, max(1, max_patches // batch)):
        block = source[:, :, start:stop + patch_size - 1]
        moved = function(F.unfold(block, kernel_size=patch_size))
        if sigma is not None:
            moved = moved.reshape(batch, channels, patch_size * patch_size, -1) * kernel.reshape(1, 1, -1, 1)
            moved = moved.reshape(batch, channels * patch_size * patch_size, -1)
        total[:, :, start:stop + patch_size - 1] += F.fold(moved, block.shape[-2:], kernel_size=patch_size)
    folded = total / _coverage(canvas, kernel)
    if pad and half:
        folded = folded[:, :, half:half + height, half:half + width]
    return folded
