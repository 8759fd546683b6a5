"""Sliced Wasserstein distance between Laplacian-pyramid patches (Karras et al. 2018).

Why written here rather than taken from a package: the study needs the per-image form
below (per-image CDFs that add up), so that a set's distance streams over any number of
images and a bootstrap over photos costs one matrix product per resample; the published
implementations sort whole sets at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .inputs import ImageSet, as_list

__all__ = ["SWDResult", "SlicedWasserstein", "laplacian_pyramid", "swd"]

_BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)


def _blur(images: torch.Tensor) -> torch.Tensor:
    """Separable 5-tap binomial filter [1 4 6 4 1]/16 with reflect padding, per channel.

    Written as shifted sums: on CPU this is about twice as fast as a grouped conv2d.
    """
    height, width = images.shape[-2:]
    padded = F.pad(images, (2, 2, 2, 2), mode="reflect")
    rows = sum(w / 16.0 * padded[..., :, k:k + width] for k, w in enumerate(_BINOMIAL))
    return sum(w / 16.0 * rows[..., k:k + height, :] for k, w in enumerate(_BINOMIAL))


def _expand(coarse: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Upsample by 2 to ``size``: insert zeros between samples, blur with 4x the gain."""
    up = coarse.new_zeros(*coarse.shape[:-2], *size)
    up[..., ::2, ::2] = coarse
    return 4.0 * _blur(up)


def laplacian_pyramid(images: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Laplacian pyramid (Burt & Adelson 1983) of ``[B, C, H, W]``: ``levels`` bands, finest first.

    G₀ = images, G_{k+1} = blur(G_k)[::2, ::2]; band k = G_k - up(G_{k+1}) where ``up``
    inserts zeros and blurs with 4x the gain; the last band is the coarsest Gaussian level.
    """
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    bands = []
    current = images
    for _ in range(levels - 1):
        if min(current.shape[-2:]) < 3:
            raise ValueError(f"images {tuple(images.shape[-2:])} too small for {levels} pyramid levels")
        down = _blur(current)[..., ::2, ::2]
        bands.append(current - _expand(down, current.shape[-2:]))
        current = down
    bands.append(current)
    return bands


@dataclass(frozen=True)
class SWDResult:
    """Sliced Wasserstein distances, raw units (reference-normalised descriptors; printed ×10³).

    ``levels``: one value per pyramid band, finest first; ``mean``: their average;
    ``sd``: bootstrap std of ``mean`` over resampled evaluated images (NaN if not asked).
    """

    levels: tuple[float, ...]
    mean: float
    sd: float = float("nan")


class SlicedWasserstein:
    """Sliced Wasserstein distance between Laplacian-pyramid patches (Karras et al., ICLR 2018).

    For each pyramid band (finest first, down to ``min_size`` pixels, the last band being
    the coarsest Gaussian level, which carries colour), ``patches_per_image`` random
    ``patch_size``² neighbourhoods per image form descriptors of 3·p² values. Descriptors
    are normalised per band and colour channel by the REFERENCE set's mean and standard
    deviation (Karras et al. normalise each set by its own, which makes a flat image's
    near-zero spread explode: a uniform grey crop scored 41 651 ×10⁻³), projected on
    ``directions`` random unit vectors θ (fixed ``seed``), and compared through their
    one-dimensional laws:

        SWD_l = mean_θ ∫ |F_{θ·a}(t) - F_{θ·b}(t)| dt,   SWD = mean_l SWD_l,

    which is the mean over θ of the exact 1-D Wasserstein-1 distance. The integral is taken
    on a grid of ``grid`` points per direction spanning the reference's projections widened
    by half their range on each side; projections beyond it are clipped to its ends (a
    far-off set saturates instead of diverging). A set's CDF is the mean of its images'
    CDFs, so distances stream over images and resample cheaply (:meth:`image_cdfs`,
    :meth:`distance`). Dimensionless; Karras et al. print ×10³.

    The reference should match the evaluated images in content (the clean versions of the
    evaluated images), as FID in restoration papers is computed against the ground truth.
    """

    def __init__(self, reference: ImageSet, levels: int | None = None, patch_size: int = 7,
                 patches_per_image: int = 128, directions: int = 128, grid: int = 128, min_size: int = 16,
                 seed: int = 0, device: str | torch.device = "cpu"):
        if patch_size < 1 or patches_per_image < 1 or directions < 1 or min_size < patch_size or grid < 2:
            raise ValueError("need patch_size, patches_per_image, directions >= 1, grid >= 2 and "
                             "min_size >= patch_size")
        self.patch_size, self.patches_per_image, self.grid = patch_size, patches_per_image, grid
        self.seed, self.device = seed, torch.device(device)
        items = as_list(reference, "reference")
        if levels is None:
            smallest = min(min(im.shape[-2:]) for im in items)
            if smallest < min_size:
                raise ValueError(f"reference images ({smallest} px) are smaller than min_size={min_size}")
            levels = int(math.floor(math.log2(smallest / min_size))) + 1
        self.levels = levels
        generator = torch.Generator().manual_seed(seed + 1)
        dim = 3 * patch_size * patch_size
        theta = torch.randn(levels, dim, directions, generator=generator, dtype=torch.float64)
        self._theta = (theta / theta.norm(dim=1, keepdim=True)).to(self.device, torch.float32)
        bands = self.descriptors(items)
        self._norm = []
        for band in bands:
            std, mean = torch.std_mean(band.transpose(0, 2).reshape(3, -1), dim=1, correction=0)
            self._norm.append((mean, std.clamp_min(1e-12)))
        projected = [self._project(band, level) for level, band in enumerate(bands)]
        lows = torch.stack([p.amin(dim=(0, 2)) for p in projected])   # [levels, dirs]
        highs = torch.stack([p.amax(dim=(0, 2)) for p in projected])
        span = (highs - lows).clamp_min(1e-6)
        steps = torch.linspace(0.0, 1.0, grid, device=self.device)
        self._grid = (lows - 0.5 * span)[..., None] + (2.0 * span)[..., None] * steps   # [levels, dirs, grid]
        self._step = (2.0 * span / (grid - 1)).double()                                 # [levels, dirs]
        self.reference_cdf = self._cdfs(projected).mean(dim=0)                          # [levels, dirs, grid]

    def _corners(self, count: int, indices: Sequence[int] | None = None) -> torch.Tensor:
        """Relative patch corners ``[count, levels, 2, P]`` in [0, 1).

        Each image's corners come from its own generator, seeded by (``seed``, its global
        index); ``indices`` default to ``0 .. count-1``. A set therefore gets the same patches
        however it is batched, streamed or split across processes, and every measurement path
        (in memory, paired bootstrap, streamed) draws the same ones for the same images.
        """
        indices = range(count) if indices is None else indices
        if len(indices) != count:
            raise ValueError(f"got {len(indices)} indices for {count} images")
        shape = (self.levels, 2, self.patches_per_image)
        return torch.stack([torch.rand(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(
            (self.seed * 1_000_003 + int(index)) % (2 ** 63))) for index in indices])

    def _gather(self, bands: list[torch.Tensor], corners: torch.Tensor) -> list[torch.Tensor]:
        """Patches of a pyramid of ``B`` equal-size images: one ``[B, P, 3, p, p]`` per band."""
        p = self.patch_size
        offsets = torch.arange(p, device=self.device)
        out = []
        for level, band in enumerate(bands):
            height, width = band.shape[-2:]
            if height < p or width < p:
                raise ValueError(f"images of {tuple(bands[0].shape[-2:])} are too small for {self.levels} "
                                 f"levels of {p}x{p} patches")
            span = torch.tensor([height - p + 1, width - p + 1], dtype=torch.float64)
            top_left = (corners[:, level] * span[None, :, None]).long().to(self.device)
            rows = top_left[:, 0, :, None, None] + offsets[:, None]   # [B, P, p, 1]
            cols = top_left[:, 1, :, None, None] + offsets[None, :]   # [B, P, 1, p]
            which = torch.arange(band.shape[0], device=self.device)[:, None, None, None]
            out.append(band[which, :, rows, cols].permute(0, 1, 4, 2, 3).to(torch.float32))
        return out

    def descriptors(self, images: ImageSet) -> list[torch.Tensor]:
        """Raw patch descriptors, one ``float32 [N_img, P, 3, p, p]`` tensor per band.

        Patch corners follow each image's position in ``images`` (:meth:`_corners`), so a set
        always gets the same descriptors; images of equal size go through the pyramid as one batch.
        """
        items = as_list(images, "images")
        corners = self._corners(len(items))
        p = self.patch_size
        out = [torch.empty(len(items), self.patches_per_image, 3, p, p, dtype=torch.float32,
                           device=self.device) for _ in range(self.levels)]
        groups: dict[tuple[int, int], list[int]] = {}
        for index, image in enumerate(items):
            groups.setdefault(tuple(image.shape[-2:]), []).append(index)
        for indices in groups.values():
            batch = torch.stack([items[i] for i in indices]).to(self.device, torch.float32)
            bands = laplacian_pyramid(batch, self.levels)
            for level, patches in enumerate(self._gather(bands, corners[indices])):
                out[level][indices] = patches
        return out

    def _project(self, band: torch.Tensor, level: int) -> torch.Tensor:
        """Reference-normalised projections of ``[N_img, P, 3, p, p]`` descriptors: ``[N_img, dirs, P]``.

        θᵀ((d - m) / s) is computed as (θ / s)ᵀ d - (θ / s)ᵀ m, without a normalised copy.
        """
        mean, std = self._norm[level]
        theta = self._theta[level].view(3, -1, self._theta.shape[-1]) / std[:, None, None]
        offset = torch.einsum("ckd,c->d", theta, mean)
        flat = band.reshape(band.shape[0], band.shape[1], -1)                  # [N, P, 3p²]
        return torch.einsum("npk,kd->ndp", flat, theta.reshape(-1, theta.shape[-1])) - offset[:, None]

    def _cdfs(self, projected: list[torch.Tensor]) -> torch.Tensor:
        """Per-image CDFs on the grid: ``float32 [N_img, levels, dirs, grid]``.

        The grid is uniform, so the first grid point at or above a value is found by
        arithmetic (no sort): a histogram over grid cells, then a cumulative sum.
        """
        out = []
        for level, values in enumerate(projected):
            low = self._grid[level][:, :1]
            step = self._grid[level][:, 1:2] - low
            cell = ((values - low) / step).ceil_().clamp_(0, self.grid - 1).long()   # [N, dirs, P]
            histogram = torch.zeros(*values.shape[:2], self.grid, dtype=torch.float32, device=values.device)
            histogram.scatter_add_(2, cell, torch.ones_like(values))
            out.append(histogram.cumsum_(dim=2) / values.shape[-1])
        return torch.stack(out, dim=1)

    def pyramid_cdfs(self, bands: list[torch.Tensor], indices: Sequence[int] | None = None) -> torch.Tensor:
        """:meth:`image_cdfs` of a batch from its :func:`laplacian_pyramid` (``self.levels`` bands).

        Lets a caller that also needs the pyramid (the detail index) compute it once.
        ``indices``: global image indices that fix each image's patch positions (default
        ``0 .. B-1``; a caller measuring a set in batches passes each batch's positions).
        """
        if len(bands) != self.levels:
            raise ValueError(f"expected a pyramid of {self.levels} bands, got {len(bands)}")
        patches = self._gather(bands, self._corners(bands[0].shape[0], indices))
        return self._cdfs([self._project(band, level) for level, band in enumerate(patches)])

    def image_cdfs(self, images: ImageSet) -> torch.Tensor:
        """``float32 [N_img, levels, dirs, grid]``: each image's projected-patch CDFs (a set's is their mean)."""
        bands = self.descriptors(images)
        return self._cdfs([self._project(band, level) for level, band in enumerate(bands)])

    def distance(self, cdf: torch.Tensor, reference_cdf: torch.Tensor | None = None) -> torch.Tensor:
        """SWD per level, ``float64 [..., levels]``, of set CDFs ``[..., levels, dirs, grid]`` to the reference's."""
        reference_cdf = self.reference_cdf if reference_cdf is None else reference_cdf
        gap = (cdf - reference_cdf).abs().sum(dim=-1).double()                 # [..., levels, dirs]
        return (gap * self._step).mean(dim=-1)

    def __call__(self, images: ImageSet, n_bootstrap: int = 0, seed: int = 0) -> SWDResult:
        """SWD of ``images`` to the reference; ``n_bootstrap`` > 0 adds a bootstrap std over images."""
        cdfs = self.image_cdfs(images)
        levels = self.distance(cdfs.mean(dim=0))
        sd = float("nan")
        if n_bootstrap > 0:
            rng = np.random.default_rng(seed)
            counts = np.stack([np.bincount(rng.integers(0, len(cdfs), len(cdfs)), minlength=len(cdfs))
                               for _ in range(n_bootstrap)])
            weights = torch.from_numpy(counts / len(cdfs)).to(self.device, torch.float32)
            resampled = torch.einsum("rn,nldg->rldg", weights, cdfs)
            sd = float(self.distance(resampled).mean(dim=-1).std())
        return SWDResult(levels=tuple(levels.tolist()), mean=float(levels.mean()), sd=sd)


def swd(images_a: ImageSet, images_b: ImageSet, **options) -> SWDResult:
    """One-off :class:`SlicedWasserstein` distance of ``images_a`` to the reference ``images_b``."""
    n_bootstrap = options.pop("n_bootstrap", 0)
    return SlicedWasserstein(images_b, **options)(images_a, n_bootstrap=n_bootstrap)
