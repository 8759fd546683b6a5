r"""Every metric of several signals against the clean set, with a paired bootstrap over photos.

The study evaluates crops of a few photos; crops of one photo are not independent, so
the unit of resampling is the photo. :class:`PairedBootstrap` keeps, per signal and per
photo, sums that the metrics are functions of:

- per-image metrics (mean PSNR, SSIM, MSE, LPIPS): the sum of the per-crop values and the
  number of crops (a set's value is the mean over crops);
- pooled metrics (PSNR as torchmetrics computes it): a function of the set's mean of a
  per-image metric (PSNR of the set's MSE; crops have one size, so the mean of per-crop
  MSEs is the MSE of all pixels);
- SWD (:class:`~dotlib.metrics.SlicedWasserstein`): the sum of the crops' projected-patch
  CDFs;
- the detail index (:class:`~dotlib.metrics.detail.DetailFrechet`): the sums of the
  crops' grey band patches and their outer products.

A bootstrap resample draws ``n_photos`` photos with replacement; every signal AND the
reference are re-weighted by the same draw, so a set against itself scores exactly 0 in
every resample, and the difference of two signals is paired (Efron & Tibshirani 1993,
ch. 13: percentile intervals). Resample 0 is the full sample (the reported value).

Two independent sets of ``n_resamples`` draws are made (two child seeds of ``seed``). The
first gives the reported interval ``d_m_lo``, ``d_m_hi``; the second, ``d_m_lo_rep``,
``d_m_hi_rep``, is a replicate that shows how much the bounds move with the Monte Carlo
draw: a difference whose sign is decided by one set and not by the other is borderline
(:func:`dotlib.tables.findings`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from .detail import DetailFrechet
from .inputs import check_batch, check_pair
from .registry import paired_metrics, per_image_functions, pooled_metrics
from .sliced_wasserstein import SlicedWasserstein, laplacian_pyramid

__all__ = ["PairedBootstrap"]

_ROWS = 256   # resamples whose SWD CDFs are held at once (bounds memory: rows × L·D·G floats)


def _draws(photos: int, n_resamples: int, seed: int) -> torch.Tensor:
    """Photo counts ``float64 [2R + 1, photos]``: the full sample, then two independent sets of
    ``R`` resamples with replacement (child seeds 0 and 1 of ``seed``)."""
    rows = [np.ones(photos)]
    for child in np.random.SeedSequence(seed).spawn(2):
        rng = np.random.default_rng(child)
        rows += [np.bincount(rng.integers(0, photos, photos), minlength=photos) for _ in range(n_resamples)]
    return torch.from_numpy(np.stack(rows)).double()


class PairedBootstrap:
    """Metrics of signals against clean images, with paired bootstrap intervals over photos.

    The same interface as :class:`~dotlib.metrics.StreamingEvaluator` (``update``,
    ``compute``); the reduction differs: a resample re-weights whole photos, so each
    ``update`` carries every signal's whole set, aligned with ``photos`` (sets of a few
    hundred crops; stream larger ones through the streaming evaluator).

    Parameters
    ----------
    calibration : natural images ``[N, 3, H, W]`` in [0, 1] that set SWD's grid and
        normalisation and the pyramid depth (the clean set itself in the study).
    photos : length-N names: which photo each crop comes from (the bootstrap unit).
    baseline : the signal every difference in :meth:`compute` is taken to.
    n_resamples : bootstrap resamples per set of draws (0: values only, no intervals); two
        independent sets are drawn (the interval and its replicate).
    confidence : coverage of the percentile intervals.
    swd_options, detail_options : passed to :class:`SlicedWasserstein` / :class:`DetailFrechet`.
    lpips : optional per-image metric ``(images, reference) -> [B]`` (e.g. :class:`LPIPS`).
    batch_size : crops measured at once (bounds memory).
    """

    def __init__(self, calibration: torch.Tensor, photos: Sequence[str], *, baseline: str = "x_star",
                 n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0,
                 swd_options: dict | None = None, detail_options: dict | None = None,
                 lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 batch_size: int = 16, device: str | torch.device = "cpu"):
        check_batch(calibration, "calibration")
        if n_resamples < 0 or not 0.0 < confidence < 1.0 or batch_size < 1:
            raise ValueError(f"need n_resamples >= 0, 0 < confidence < 1 and batch_size >= 1, got "
                             f"{n_resamples}, {confidence}, {batch_size}")
        self.device, self.baseline, self.reference = torch.device(device), baseline, None
        self.names = sorted(set(photos))
        self.photo_index = torch.tensor([self.names.index(name) for name in photos])
        self.n_resamples, self.confidence, self.batch_size, self.lpips = n_resamples, confidence, batch_size, lpips
        self.weights = _draws(len(self.names), n_resamples, seed)                  # [2R + 1, photos]
        self.crops = self._per_photo(torch.ones(len(photos), dtype=torch.float64))   # [photos]
        self.swd = SlicedWasserstein(calibration, seed=seed, device=device, **(swd_options or {}))
        self.detail = DetailFrechet(calibration, device=device, **(detail_options or {}))
        if self.detail.levels != self.swd.levels:
            raise ValueError("swd_options and detail_options must give the same number of pyramid levels")
        self._totals = self._resampled(self.crops)                                    # crops per resample
        self.metrics = [name for name in paired_metrics() if name != "lpips" or lpips is not None]
        self.values: dict[str, dict[str, np.ndarray]] = {}

    def _set_reference(self, clean: torch.Tensor, indices) -> None:
        """Check one update's clean set and index list; the first one becomes the reference."""
        if clean is not self.reference:   # the reference itself was checked when it was set
            check_batch(clean, "clean")
        count = self.photo_index.shape[0]
        if clean.shape[0] != count or (indices is not None and list(indices) != list(range(count))):
            raise ValueError(f"the paired bootstrap resamples whole photos: each update takes the whole set of "
                             f"{count} crops in order (got {clean.shape[0]} images); stream larger sets through "
                             f"StreamingEvaluator")
        if self.reference is None:
            self.reference = clean
            self._reference_swd, self._reference_detail = self._set_sums(clean)
        elif clean is not self.reference and not torch.equal(clean, self.reference):
            raise ValueError("every update must carry the same clean set (the reference of the differences)")

    def update(self, clean: torch.Tensor, signals: dict[str, torch.Tensor], indices: Sequence[int] | None = None,
               *, ssim: bool = True, intervals: bool = True) -> None:
        """Measure every signal's whole set ``[N, 3, H, W]`` (aligned with ``clean`` and ``photos``).

        ``ssim=False`` skips SSIM (recorded NaN), the costliest metric on CPU.
        ``intervals=False`` measures the full sample only (no spread, no interval; a few
        times faster with thousands of resamples).
        """
        self._set_reference(clean, indices)
        for signal, images in signals.items():
            check_pair(images, clean)
            if signal in self.values:
                raise ValueError(f"signal {signal!r} was already measured")
            self.values[signal] = self._measure(images, ssim, self.weights.shape[0] if intervals else 1)

    def compute(self) -> dict[str, dict[str, float]]:
        """Per signal: every metric, its bootstrap sd over photos (``m_sd``), ``n_photos``,
        ``n_crops``, ``n_resamples`` and, once the baseline is measured, the paired difference
        to it with its interval and replicate (:meth:`difference`)."""
        counts = {"n_photos": self.n_photos, "n_crops": int(self.photo_index.shape[0]),
                  "n_resamples": self.n_resamples}
        with_baseline = self.baseline in self.values
        return {signal: {**self._summary(signal), **counts,
                         **(self.difference(signal, self.baseline) if with_baseline else {})}
                for signal in self.values}

    @property
    def n_photos(self) -> int:
        return len(self.names)

    def _per_photo(self, values: torch.Tensor) -> torch.Tensor:
        """Sum per photo of per-crop tensors ``[N, ...]`` -> ``float64 [photos, ...]``."""
        out = torch.zeros(self.n_photos, *values.shape[1:], dtype=torch.float64)
        return out.index_add_(0, self.photo_index, values.double().cpu())

    def _resampled(self, sums: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """Weighted per-photo sums ``[photos, ...]`` for the first ``rows`` resamples (all): ``[rows, ...]``.

        Row 0, the full sample, is a plain sum, the same whether or not resamples follow.
        """
        return torch.cat([sums.sum(dim=0, keepdim=True), torch.einsum("rp,p...->r...", self.weights[1:rows], sums)])

    def _set_sums(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-photo SWD CDF sums ``[photos, levels, dirs, grid]`` and detail sums ``[photos, bands, S]``."""
        cdfs, details = [], []
        for start in range(0, images.shape[0], self.batch_size):
            batch = images[start:start + self.batch_size].to(self.device, torch.float32)
            bands = laplacian_pyramid(batch, self.swd.levels)
            cdfs.append(self.swd.pyramid_cdfs(bands, range(start, start + batch.shape[0])).cpu())
            details.append(self.detail.pyramid_stats(bands).cpu())
        return self._per_photo(torch.cat(cdfs)), self._per_photo(torch.cat(details))

    def _measure(self, images: torch.Tensor, ssim: bool, rows: int) -> dict[str, np.ndarray]:
        """Every metric of one set for the first ``rows`` resamples (row 0: the full sample)."""
        values = self._per_image(images, ssim, rows)
        for name, pooled in pooled_metrics().items():
            values[name] = pooled.of_mean(values[pooled.source])
        swd_sums, detail_sums = self._set_sums(images)
        values["swd"] = self._swd(swd_sums, rows)
        values["detail"] = self.detail.distance(self._resampled(detail_sums, rows),
                                                self._resampled(self._reference_detail, rows)).mean(dim=-1).numpy()
        return values

    def _per_image(self, images: torch.Tensor, ssim: bool, rows: int) -> dict[str, np.ndarray]:
        """Per-image metrics' set means for the first ``rows`` resamples (NaN for a skipped one)."""
        functions = {name: function for name, function in per_image_functions().items() if ssim or name != "ssim"}
        if self.lpips is not None:
            functions["lpips"] = lambda batch, clean: self.lpips(batch, clean).double()
        per_crop: dict[str, list[torch.Tensor]] = {name: [] for name in functions}
        for start in range(0, images.shape[0], self.batch_size):
            batch = images[start:start + self.batch_size].to(self.device, torch.float32)
            clean = self.reference[start:start + self.batch_size].to(self.device, torch.float32)
            for name, function in functions.items():
                per_crop[name].append(function(batch, clean).cpu())
        values = {name: np.full(rows, np.nan) for name in self.metrics if name in (*per_image_functions(), "lpips")}
        for name, chunks in per_crop.items():
            values[name] = (self._resampled(self._per_photo(torch.cat(chunks)), rows) / self._totals[:rows]).numpy()
        return values

    def _swd(self, swd_sums: torch.Tensor, rows: int) -> np.ndarray:
        """SWD of the first ``rows`` resamples from per-photo CDF sums ``[photos, L, D, G]``.

        A resample's CDF gap to the reference is its weights times the per-photo gap of sums,
        so one product per block of :data:`_ROWS` resamples gives it (float32, bounded memory).
        """
        gap, shape = (swd_sums - self._reference_swd).float().flatten(1), (-1, *swd_sums.shape[1:])
        means = [gap.sum(dim=0, keepdim=True) / float(self._totals[0])]   # the full sample, as without resamples
        means += [weights.float() @ gap / totals.float()[:, None]
                  for weights, totals in zip(self.weights[1:rows].split(_ROWS), self._totals[1:rows].split(_ROWS))]
        return torch.cat([self.swd.distance(mean.view(shape), gap.new_zeros(())) for mean in means]) \
            .mean(dim=-1).numpy()

    def _bounds(self, samples: np.ndarray) -> tuple[float, float]:
        """Percentile interval of ``samples [R]`` (NaN, NaN without resamples)."""
        if samples.shape[0] == 0:
            return float("nan"), float("nan")
        tail = 100.0 * (1.0 - self.confidence) / 2.0
        low, high = np.percentile(samples, [tail, 100.0 - tail])
        return float(low), float(high)

    def _summary(self, signal: str) -> dict[str, float]:
        """``{metric: value, metric_sd: bootstrap std over photos}`` of one signal."""
        out = {}
        for name, array in self.values[signal].items():
            out[name] = float(array[0])
            spread = array[1:self.n_resamples + 1]
            defined = spread.shape[0] > 1 and bool(np.isfinite(spread).all())   # PSNR of x against itself: inf
            out[f"{name}_sd"] = float(spread.std(ddof=1)) if defined else float("nan")
        return out

    def difference(self, signal: str, baseline: str) -> dict[str, float]:
        """``{d_m, d_m_lo, d_m_hi, d_m_lo_rep, d_m_hi_rep}``: ``signal − baseline`` (any two measured
        signals), its paired interval and the replicate interval from the second set of draws."""
        for name in (signal, baseline):
            if name not in self.values:
                raise KeyError(f"signal {name!r} was not measured; measured: {', '.join(self.values)}")
        out = {}
        for name in self.metrics:
            mine, theirs = self.values[signal][name], self.values[baseline][name]
            rows = min(mine.shape[0], theirs.shape[0])   # 1 where either was added without intervals
            gap = mine[:rows] - theirs[:rows]
            with np.errstate(invalid="ignore"):
                out[f"d_{name}"] = float(gap[0])
                out[f"d_{name}_lo"], out[f"d_{name}_hi"] = self._bounds(gap[1:self.n_resamples + 1])
                out[f"d_{name}_lo_rep"], out[f"d_{name}_hi_rep"] = self._bounds(gap[self.n_resamples + 1:])
        return out
