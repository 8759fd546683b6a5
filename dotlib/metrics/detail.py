r"""Detail index: Fréchet distance of grey Laplacian-band patches, relative to the reference.

A weight-free perceptual index that sees detail and not colour. Images are turned grey
(luma, ITU-R BT.601 weights), decomposed into a Laplacian pyramid
(:func:`~dotlib.metrics.sliced_wasserstein.laplacian_pyramid`), and the coarsest level,
which carries colour and brightness, is dropped. In each remaining band ``l`` every
``p×p`` patch (all valid positions) is a sample; a Gaussian
:math:`\mathcal N(\mu_l, \Sigma_l)` is fitted per set, and

.. math::
    \mathrm{detail}(a, b) = \frac{1}{L} \sum_l
        \frac{W_2^2\big(\mathcal N(\mu_{a,l}, \Sigma_{a,l}), \mathcal N(\mu_{b,l}, \Sigma_{b,l})\big)}
             {\operatorname{tr} \Sigma_{b,l}},

``b`` being the reference (natural images). Dividing by the reference's band energy makes
the index dimensionless: 0 for the same detail statistics, 1 for an image with no
detail at all (a flat image has :math:`\Sigma_{a,l} = 0`); blur lies between, noise or
ringing can exceed 1. It is SWD's complement: SWD's coarsest band carries colour, this
index carries none (colour transfer leaves it unchanged).

Statistics are sums (count, :math:`\sum v`, :math:`\sum v v^\top`, float64) per image, so
sets merge by addition: a bootstrap over photos re-weights per-photo sums
(:mod:`dotlib.metrics.paired`), which is why the covariance is rebuilt from raw moments,
:math:`(\sum v v^\top - n \bar v \bar v^\top) / (n - 1)`, rather than merged as
:class:`~dotlib.gaussian.GaussianStats`. Raw moments lose digits when
:math:`\|\bar v\|^2 \gg \operatorname{tr}\Sigma`; band-pass patches have a mean near 0, so
little is lost here. The Gaussians are 25-dimensional and many (bands × resamples), so
the distance is :func:`dotlib.gaussian.frechet`, batched.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..gaussian import frechet
from .inputs import check_batch
from .sliced_wasserstein import laplacian_pyramid

__all__ = ["DetailFrechet", "grey"]

LUMA = (0.299, 0.587, 0.114)
_CHUNK = 4096  # patches per float32 product; their sums are accumulated in float64


def grey(images: torch.Tensor) -> torch.Tensor:
    """Luma of ``[B, 3, H, W]`` (or of each band of a colour pyramid): ``[B, 1, H, W]``."""
    weights = torch.tensor(LUMA, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


class DetailFrechet:
    """The detail index of image sets against one reference set (see the module notes).

    ``levels``: pyramid levels including the dropped coarsest one (default: down to
    ``min_size`` pixels, as :class:`~dotlib.metrics.SlicedWasserstein`); ``patch_size``:
    side of the grey patches (25 dimensions at 5); ``max_patches``: per image and band,
    patches are taken on a regular sub-grid (stride ``ceil(sqrt(h·w / max_patches))``), so
    the finest bands of large images cost no more than this many.
    """

    def __init__(self, reference: torch.Tensor, levels: int | None = None, patch_size: int = 5,
                 min_size: int = 16, max_patches: int = 16384, device: str | torch.device = "cpu"):
        check_batch(reference, "reference")
        if patch_size < 1 or min_size < patch_size:
            raise ValueError(f"need patch_size >= 1 and min_size >= patch_size, got {patch_size}, {min_size}")
        if levels is None:
            smallest = min(reference.shape[-2:])
            if smallest < min_size:
                raise ValueError(f"reference images ({smallest} px) are smaller than min_size={min_size}")
            levels = int(math.floor(math.log2(smallest / min_size))) + 1
        if levels < 2:
            raise ValueError(f"the detail index needs at least 2 pyramid levels (one band besides the "
                             f"coarsest), got {levels}")
        if max_patches < 1:
            raise ValueError(f"max_patches must be >= 1, got {max_patches}")
        self.levels, self.patch_size, self.device = levels, patch_size, torch.device(device)
        self.max_patches = max_patches
        self.dim = patch_size * patch_size
        self.reference_stats = self.image_stats(reference).sum(dim=0)

    @property
    def bands(self) -> int:
        """Number of bands compared (the pyramid's levels less the coarsest)."""
        return self.levels - 1

    def pyramid_stats(self, bands: list[torch.Tensor]) -> torch.Tensor:
        """Per-image sums ``float64 [B, bands, 1 + D + D²]`` from a colour pyramid of ``self.levels`` bands."""
        if len(bands) != self.levels:
            raise ValueError(f"expected a pyramid of {self.levels} bands, got {len(bands)}")
        batch = bands[0].shape[0]
        out = torch.empty(batch, self.bands, 1 + self.dim + self.dim ** 2, dtype=torch.float64, device=self.device)
        for level, band in enumerate(bands[:-1]):
            luma = grey(band.to(self.device))
            if min(luma.shape[-2:]) < self.patch_size:
                raise ValueError(f"band {level} ({tuple(luma.shape[-2:])}) is smaller than a "
                                 f"{self.patch_size}x{self.patch_size} patch")
            stride = max(1, math.ceil(math.sqrt(luma.shape[-2] * luma.shape[-1] / self.max_patches)))
            patches = F.unfold(luma.float(), self.patch_size, stride=stride)            # [B, D, L]
            ones = patches.new_ones(batch, 1, patches.shape[-1])
            augmented = torch.cat([ones, patches], dim=1)                               # [B, 1 + D, L]
            gram = torch.zeros(batch, self.dim + 1, self.dim + 1, dtype=torch.float64, device=self.device)
            for chunk in augmented.split(_CHUNK, dim=-1):   # float32 products, float64 sums of chunks
                gram += torch.bmm(chunk, chunk.transpose(1, 2)).double()
            out[:, level, :1 + self.dim] = gram[:, 0]                                   # count, sums
            out[:, level, 1 + self.dim:] = gram[:, 1:, 1:].flatten(1)
        return out

    def image_stats(self, images: torch.Tensor) -> torch.Tensor:
        """Per-image sums ``float64 [B, bands, 1 + D + D²]`` of ``images [B, 3, H, W]``."""
        check_batch(images, "images")
        return self.pyramid_stats(laplacian_pyramid(images.to(self.device, torch.float32), self.levels))

    def _gaussian(self, stats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        count = stats[..., :1]
        mean = stats[..., 1:1 + self.dim] / count
        second = stats[..., 1 + self.dim:].reshape(*stats.shape[:-1], self.dim, self.dim)
        outer = mean[..., :, None] * mean[..., None, :]
        cov = (second - count[..., None] * outer) / (count[..., None] - 1.0)
        return mean, 0.5 * (cov + cov.transpose(-1, -2))

    def distance(self, stats: torch.Tensor, reference_stats: torch.Tensor | None = None) -> torch.Tensor:
        """Index per band, ``float64 [..., bands]``, of summed statistics ``[..., bands, S]`` to the reference's."""
        reference_stats = self.reference_stats if reference_stats is None else reference_stats
        mean_a, cov_a = self._gaussian(stats)
        mean_b, cov_b = self._gaussian(reference_stats)
        energy = cov_b.diagonal(dim1=-2, dim2=-1).sum(-1).clamp_min(1e-30)
        identical = (stats == reference_stats).all(dim=-1)   # a set against itself: 0, not rounding noise
        return torch.where(identical, 0.0, frechet(mean_a, cov_a, mean_b, cov_b) / energy)

    def __call__(self, images: torch.Tensor) -> float:
        """The index of the set ``images [B, 3, H, W]`` (mean over bands)."""
        return float(self.distance(self.image_stats(images).sum(dim=0)).mean())
