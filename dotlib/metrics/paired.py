r"""Every metric of several signals against one reference set, with a paired bootstrap over photos.

The study evaluates crops of a few photos; crops of one photo are not independent, so
the unit of resampling is the photo. :class:`PairedBootstrap` keeps, per signal and per
photo, sums that the metrics are functions of:

- per-image metrics (PSNR, SSIM, MSE, LPIPS): the sum of the per-crop values and the
  number of crops (a set's value is the mean over crops, as in the paper's table);
- SWD (:class:`~dotlib.metrics.SlicedWasserstein`): the sum of the crops' projected-patch
  CDFs;
- the detail index (:class:`~dotlib.metrics.detail.DetailFrechet`): the sums of the
  crops' grey band patches and their outer products.

A bootstrap resample draws ``n_photos`` photos with replacement; every signal AND the
reference are re-weighted by the same draw, so a set against itself scores exactly 0 in
every resample, and the difference of two signals is paired (Efron & Tibshirani 1993,
ch. 13: percentile intervals). Resample 0 is the full sample (the reported value).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch

from .detail import DetailFrechet
from .inputs import check_batch, check_pair
from .registry import paired_metrics, per_image_functions
from .sliced_wasserstein import SlicedWasserstein, laplacian_pyramid

__all__ = ["PairedBootstrap"]


class PairedBootstrap:
    """Metrics of signals (image sets aligned with ``reference``) and paired bootstrap intervals.

    Parameters
    ----------
    reference : clean images ``[N, 3, H, W]`` in [0, 1] (the natural side of every comparison).
    photos : length-N names: which photo each crop comes from (the bootstrap unit).
    n_resamples : bootstrap resamples (0: values only, no intervals).
    confidence : coverage of the percentile intervals.
    swd_options, detail_options : passed to :class:`SlicedWasserstein` / :class:`DetailFrechet`.
    lpips : optional per-image metric ``(images, reference) -> [B]`` (e.g. :class:`LPIPS`).
    batch_size : crops measured at once (bounds memory).
    """

    def __init__(self, reference: torch.Tensor, photos: Sequence[str], *, n_resamples: int = 200,
                 confidence: float = 0.95, seed: int = 0, swd_options: dict | None = None,
                 detail_options: dict | None = None,
                 lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 batch_size: int = 16, device: str | torch.device = "cpu"):
        check_batch(reference, "reference")
        if len(photos) != reference.shape[0]:
            raise ValueError(f"photos names {len(photos)} crops but reference holds {reference.shape[0]}")
        if n_resamples < 0 or not 0.0 < confidence < 1.0 or batch_size < 1:
            raise ValueError(f"need n_resamples >= 0, 0 < confidence < 1 and batch_size >= 1, got "
                             f"{n_resamples}, {confidence}, {batch_size}")
        self.reference, self.device = reference, torch.device(device)
        self.names = sorted(set(photos))
        self.photo_index = torch.tensor([self.names.index(name) for name in photos])
        self.n_resamples, self.confidence, self.batch_size, self.lpips = n_resamples, confidence, batch_size, lpips
        rng = np.random.default_rng(seed)
        count = len(self.names)
        draws = [np.ones(count)] + [np.bincount(rng.integers(0, count, count), minlength=count)
                                    for _ in range(n_resamples)]
        self.weights = torch.from_numpy(np.stack(draws)).double()                   # [R + 1, photos]
        self.crops = self._per_photo(torch.ones(reference.shape[0], dtype=torch.float64))   # [photos]
        self.swd = SlicedWasserstein(reference, seed=seed, device=device, **(swd_options or {}))
        self.detail = DetailFrechet(reference, device=device, **(detail_options or {}))
        if self.detail.levels != self.swd.levels:
            raise ValueError("swd_options and detail_options must give the same number of pyramid levels")
        self._totals = self._resampled(self.crops)                                    # crops per resample
        self._reference_swd, self._reference_detail = self._set_sums(reference)
        self._reference_swd_resampled = (self.weights.float() @ self._reference_swd.float().flatten(1)) \
            / self._totals.float()[:, None]
        self.metrics = [name for name in paired_metrics() if name != "lpips" or lpips is not None]
        self.values: dict[str, dict[str, np.ndarray]] = {}

    @property
    def n_photos(self) -> int:
        return len(self.names)

    def _per_photo(self, values: torch.Tensor) -> torch.Tensor:
        """Sum per photo of per-crop tensors ``[N, ...]`` -> ``float64 [photos, ...]``."""
        out = torch.zeros(self.n_photos, *values.shape[1:], dtype=torch.float64)
        return out.index_add_(0, self.photo_index, values.double().cpu())

    def _resampled(self, sums: torch.Tensor) -> torch.Tensor:
        """Weighted per-photo sums ``[photos, ...]`` for every resample: ``[R + 1, ...]``."""
        return torch.einsum("rp,p...->r...", self.weights, sums)

    def _set_sums(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-photo SWD CDF sums ``[photos, levels, dirs, grid]`` and detail sums ``[photos, bands, S]``."""
        cdfs, details = [], []
        for start in range(0, images.shape[0], self.batch_size):
            batch = images[start:start + self.batch_size].to(self.device, torch.float32)
            bands = laplacian_pyramid(batch, self.swd.levels)
            cdfs.append(self.swd.pyramid_cdfs(bands).cpu())
            details.append(self.detail.pyramid_stats(bands).cpu())
        return self._per_photo(torch.cat(cdfs)), self._per_photo(torch.cat(details))

    def add(self, signal: str, images: torch.Tensor, ssim: bool = True) -> dict[str, float]:
        """Measure ``images`` (aligned with the reference) as ``signal``; returns its full-sample values.

        ``ssim=False`` skips SSIM (recorded NaN), the costliest metric on CPU.
        """
        check_pair(images, self.reference)
        if signal in self.values:
            raise ValueError(f"signal {signal!r} was already added")
        functions = {name: function for name, function in per_image_functions().items() if ssim or name != "ssim"}
        if self.lpips is not None:
            functions["lpips"] = lambda batch, clean: self.lpips(batch, clean).double()
        per_crop: dict[str, list[torch.Tensor]] = {name: [] for name in (*per_image_functions(), "lpips")}
        for start in range(0, images.shape[0], self.batch_size):
            batch = images[start:start + self.batch_size].to(self.device, torch.float32)
            clean = self.reference[start:start + self.batch_size].to(self.device, torch.float32)
            for name, function in functions.items():
                per_crop[name].append(function(batch, clean).cpu())
        totals = self._totals
        values = {}
        for name, chunks in per_crop.items():
            if chunks:
                values[name] = (self._resampled(self._per_photo(torch.cat(chunks))) / totals).numpy()
            elif name in self.metrics:
                values[name] = np.full(self.weights.shape[0], np.nan)
        swd_sums, detail_sums = self._set_sums(images)
        own = (self.weights.float() @ swd_sums.float().flatten(1)) / totals.float()[:, None]   # [R + 1, L·D·G]
        shape = (-1, *swd_sums.shape[1:])
        values["swd"] = self.swd.distance(own.view(shape), self._reference_swd_resampled.view(shape)) \
            .mean(dim=-1).numpy()
        values["detail"] = self.detail.distance(self._resampled(detail_sums),
                                                self._resampled(self._reference_detail)).mean(dim=-1).numpy()
        self.values[signal] = values
        return {name: float(array[0]) for name, array in values.items()}

    def _bounds(self, samples: np.ndarray) -> tuple[float, float]:
        if self.n_resamples == 0:
            return float("nan"), float("nan")
        tail = 100.0 * (1.0 - self.confidence) / 2.0
        low, high = np.percentile(samples, [tail, 100.0 - tail])
        return float(low), float(high)

    def summary(self, signal: str) -> dict[str, float]:
        """``{metric: value, metric_sd: bootstrap std over photos}`` of one signal."""
        out = {}
        for name, array in self.values[signal].items():
            out[name] = float(array[0])
            out[f"{name}_sd"] = float(array[1:].std(ddof=1)) if self.n_resamples > 1 else float("nan")
        return out

    def difference(self, signal: str, baseline: str) -> dict[str, float]:
        """``{d_metric, d_metric_lo, d_metric_hi}``: ``signal − baseline`` and its paired interval."""
        for name in (signal, baseline):
            if name not in self.values:
                raise KeyError(f"signal {name!r} was not added; added: {', '.join(self.values)}")
        out = {}
        for name in self.metrics:
            gap = self.values[signal][name] - self.values[baseline][name]
            with np.errstate(invalid="ignore"):
                out[f"d_{name}"] = float(gap[0])
                out[f"d_{name}_lo"], out[f"d_{name}_hi"] = self._bounds(gap[1:])
        return out

    def table(self, baseline: str) -> pd.DataFrame:
        """One row per added signal: values, bootstrap spreads and paired differences to ``baseline``."""
        rows = []
        for signal in self.values:
            rows.append({"signal": signal, "n_photos": self.n_photos, "n_crops": int(self.reference.shape[0]),
                         **self.summary(signal), **self.difference(signal, baseline)})
        return pd.DataFrame(rows)
