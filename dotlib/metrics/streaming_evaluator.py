r"""Every study metric of many signals, streamed over batches of an image folder of any size.

:class:`StreamingEvaluator` is the bounded-memory counterpart of
:class:`~dotlib.metrics.paired.PairedBootstrap`, with the same interface (``update``,
``compute``) and another reduction (streamed totals instead of sums per photo): it is
given, batch after batch, the clean images and every signal computed from them (x*, each
x̂α, ...), with the images' global indices, and keeps only the accumulators of
:mod:`dotlib.metrics.streaming` — per signal: per-image means (PSNR, SSIM, MSE, LPIPS),
their per-image differences to a baseline signal (x*), the SWD CDF sum, the detail-index
band sums, and where Inception weights exist the FID Gaussian, the KID sample and the IS
splits. The clean images get the same set-level accumulators (the reference). Host and
device memory depend on the number of signals and the settings, not on the number of
images.

Paired differences: for per-image metrics the difference to the baseline is averaged
per image, with a normal 95 % interval mean ± 1.96·sd/√n (thousands of independent
images, so the central limit theorem applies; the embedded study, with few photos,
uses a bootstrap over photos instead). A pooled metric (PSNR of the set's MSE, as
torchmetrics computes it) gets the delta-method interval: with per-image values
:math:`a_i` (signal) and :math:`b_i` (baseline) of its source metric and
:math:`f` its function of the mean, :math:`f(\bar a) - f(\bar b) \pm 1.96\,
\mathrm{sd}_i\big(f'(\bar a) a_i - f'(\bar b) b_i\big)/\sqrt n`. Other set-level indices
get no interval here.

SWD's normalisation and grid (:class:`~dotlib.metrics.SlicedWasserstein`) and the detail
index's pyramid depth come from ``calibration``, a small set of natural images (the
fitting images in the study); the reference law itself is the streamed clean set.
SWD patch positions are drawn per global image index, so results do not depend on the
batching or the number of processes.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch

from .detail import DetailFrechet
from .inception import CleanFeatures
from ..validate import check_values_at_once, values_checked
from .inputs import ImageSet, as_list, check_layout
from .sliced_wasserstein import SlicedWasserstein, laplacian_pyramid
from .registry import per_image_functions, pooled_metrics
from .streaming import BandSums, FeatureGaussian, FeatureSample, PerImageMeans, SetCDF, SplitScores

__all__ = ["StreamingEvaluator"]

Z_95 = 1.959963984540054


def _normal_bounds(metric: str, value: float, sd: float, count: int) -> dict[str, float]:
    """Normal 95 % interval of a mean difference (``sd`` over images, ``count`` images)."""
    half = Z_95 * sd / math.sqrt(count) if count > 1 and math.isfinite(sd) else math.nan
    return {f"d_{metric}_lo": value - half, f"d_{metric}_hi": value + half}


def _delta_method(pooled, signal: "_SignalState", baseline: "_SignalState") -> tuple[float, float]:
    """``f(ā) − f(b̄)`` and the sd over images of ``f'(ā)·a_i − f'(b̄)·b_i`` (see the module notes),
    from the streamed sums Σa, Σa², Σb, Σb² and Σ(a − b)². The value uses the pixel-weighted
    means (the signals' own pooled values); the sd weights images equally, which is the same
    when every image has one size and an approximation otherwise."""
    row = signal.per_image.names.index(pooled.source)
    count, sum_a, squares_a = signal.per_image.state[row].tolist()
    _, sum_b, squares_b = baseline.per_image.state[row].tolist()
    squares_gap = signal.difference.state[row, 2].item()
    mean_a, mean_b = sum_a / count, sum_b / count
    cross = 0.5 * (squares_a + squares_b - squares_gap)                          # Σ a·b
    slope_a, slope_b = float(pooled.slope(mean_a)), float(pooled.slope(mean_b))
    second = (slope_a ** 2 * squares_a - 2 * slope_a * slope_b * cross + slope_b ** 2 * squares_b) / count
    first = slope_a * mean_a - slope_b * mean_b
    variance = (second - first ** 2) * count / (count - 1) if count > 1 else math.nan
    pooled_a, pooled_b = (state.pooled.weighted_means()[pooled.source] for state in (signal, baseline))
    value = float(pooled.of_mean(pooled_a)) - float(pooled.of_mean(pooled_b))   # the rows' own values
    if count < 2 or not math.isfinite(variance):   # e.g. a perfect set: MSE 0, PSNR inf
        return value, math.nan
    return value, math.sqrt(max(variance, 0.0))


class _SignalState:
    """The accumulators of one signal (or of the clean reference)."""

    def __init__(self, evaluator: "StreamingEvaluator"):
        device = evaluator.device
        self.per_image = PerImageMeans(evaluator.per_image_names, device)
        self.pooled = PerImageMeans(evaluator.pooled_sources, device)   # pixel-weighted
        self.difference = PerImageMeans(evaluator.per_image_names, device)
        self.swd = SetCDF(evaluator.swd)
        self.detail = BandSums(evaluator.detail)
        self.fid = FeatureGaussian(evaluator.feature_dim, device) if evaluator.features is not None else None
        self.kid = FeatureSample(evaluator.kid_capacity, evaluator.seed) if evaluator.features is not None else None
        self.inception_score = (SplitScores(evaluator.classifier.shape[0], evaluator.is_splits, device)
                                if evaluator.classifier is not None else None)

    NAMES = ("per_image", "pooled", "difference", "swd", "detail", "fid", "kid", "inception_score")

    def accumulators(self) -> list:
        return [a for a in (getattr(self, name) for name in self.NAMES) if a is not None]

    def state_dict(self) -> dict:
        return {name: getattr(self, name).state_dict() for name in self.NAMES if getattr(self, name) is not None}

    def load_state_dict(self, state: dict) -> None:
        present = [name for name in self.NAMES if getattr(self, name) is not None]
        if sorted(state) != sorted(present):
            raise ValueError(f"saved accumulators {sorted(state)}, this evaluator has {sorted(present)}")
        for name in present:
            getattr(self, name).load_state_dict(state[name])


class StreamingEvaluator:
    """Metrics of named signals against the clean images, accumulated batch by batch.

    Parameters
    ----------
    calibration : natural images in [0, 1], ``[N, 3, H, W]`` or a list of ``[3, H, W]`` of the
        evaluated sizes (SWD grid and normalisation, pyramid depth); a few are enough.
    features : a :class:`CleanFeatures` giving ``[B, F]`` Inception features (FID, KID), or None.
    classifier : ``[K, F]`` weights turning features into class logits (IS: softmax of
        ``features @ classifier.T``, as clean-fid's Inception head), or None.
    lpips : per-image ``(images, clean) -> [B]`` metric, or None.
    baseline : the signal every per-image difference is taken to (``x_star`` in the study).
    kid_capacity : images kept per signal for KID (a hashed uniform subset); the paper's
        torchmetrics KID keeps all. kid_subsets, kid_subset_size : KID's subsets.
    is_splits : IS splits (image i in split i mod is_splits).
    """

    def __init__(self, calibration: ImageSet, *, device: str | torch.device = "cpu",
                 features: CleanFeatures | None = None, classifier: torch.Tensor | None = None,
                 lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 baseline: str = "x_star", kid_capacity: int = 5000, kid_subsets: int = 100,
                 kid_subset_size: int = 1000, is_splits: int = 10, seed: int = 0,
                 swd_options: dict | None = None):
        items = as_list(calibration, "calibration")
        if classifier is not None and features is None:
            raise ValueError("classifier needs features: IS is computed from the Inception features")
        self.device = torch.device(device)
        self.features, self.lpips, self.baseline, self.seed = features, lpips, baseline, int(seed)
        self.kid_capacity, self.kid_subsets, self.kid_subset_size = kid_capacity, kid_subsets, kid_subset_size
        self.is_splits = is_splits
        self.per_image_names = tuple(per_image_functions()) + (("lpips",) if lpips is not None else ())
        self.pooled_sources = tuple(dict.fromkeys(pooled.source for pooled in pooled_metrics().values()))
        self.swd = SlicedWasserstein(items, seed=seed, device=device, **(swd_options or {}))
        smallest = min(items, key=lambda image: image.shape[-2] * image.shape[-1])
        self.detail = DetailFrechet(smallest[None], levels=self.swd.levels, device=device)
        self.classifier = None if classifier is None else classifier.detach().to(self.device, torch.float64)
        self.feature_dim = 0
        if features is not None:
            self.feature_dim = int(features(items[0][None]).shape[1])
            if self.classifier is not None and self.classifier.shape[1] != self.feature_dim:
                raise ValueError(f"classifier {tuple(self.classifier.shape)} does not take "
                                 f"{self.feature_dim}-d features")
        self.reference = _SignalState(self)
        self.signals: dict[str, _SignalState] = {}
        self.images_seen = 0

    def _set_level(self, state: _SignalState, images: torch.Tensor, indices: np.ndarray) -> None:
        bands = laplacian_pyramid(images.to(self.device, torch.float32), self.swd.levels)
        state.swd.update_from_pyramid(bands, indices)
        state.detail.update_from_pyramid(bands)
        if self.features is not None:   # features, FID's Gaussian, KID's sample and IS stay on the device
            feats = self.features.tensor(images).to(self.device)
            state.fid.update(feats)
            state.kid.update(feats, indices)
            if self.classifier is not None:
                state.inception_score.update(torch.softmax(feats @ self.classifier.T, dim=1), indices)

    def update(self, clean: torch.Tensor, signals: dict[str, torch.Tensor],
               indices: Sequence[int] | torch.Tensor) -> None:
        """Add one batch: ``clean [B, 3, H, W]``, every signal's images of the same shape, global indices ``[B]``.

        Every batch must carry the same signal names (the first batch fixes them); the
        baseline must be among them when any per-image difference is wanted. Every image's
        values are checked at once (one host read per batch, whatever the number of signals).
        """
        index = self._checked(clean, signals, indices)
        clean = clean.to(self.device, torch.float32)
        with values_checked():
            self._set_level(self.reference, clean, index)
            lpips_clean = self.lpips.features(clean) if hasattr(self.lpips, "features") else None   # once per batch
            per_image = {name: self._per_image(name, images.to(self.device, torch.float32), clean, index, lpips_clean)
                         for name, images in signals.items()}
        if self.baseline in per_image:
            base = per_image[self.baseline]
            for name, values in per_image.items():
                self.signals[name].difference.update({k: values[k] - base[k] for k in values})
        self.images_seen += clean.shape[0]

    def _checked(self, clean: torch.Tensor, signals: dict[str, torch.Tensor],
                 indices: Sequence[int] | torch.Tensor) -> np.ndarray:
        """The batch's global indices as ``int64 [B]``, after checking every input (values in one read)."""
        check_layout(clean, "clean")
        index = np.asarray(torch.as_tensor(indices).cpu(), dtype=np.int64).reshape(-1)
        if index.shape[0] != clean.shape[0]:
            raise ValueError(f"got {index.shape[0]} indices for {clean.shape[0]} images")
        if not self.signals:
            if not signals:
                raise ValueError("signals is empty: pass at least one named image batch")
            self.signals = {name: _SignalState(self) for name in signals}
        elif set(signals) != set(self.signals):
            raise ValueError(f"every batch must carry the signals {sorted(self.signals)}, got {sorted(signals)}")
        for name, images in signals.items():
            check_layout(images, name)
            if images.shape != clean.shape:
                raise ValueError(f"{name} must have the shape of clean, {tuple(clean.shape)}, got {tuple(images.shape)}")
        check_values_at_once({"clean": clean, **signals})
        return index

    def _per_image(self, name: str, images: torch.Tensor, clean: torch.Tensor, index: np.ndarray,
                   lpips_clean: list[torch.Tensor] | None) -> dict[str, torch.Tensor]:
        """Update signal ``name`` with ``images`` (on the device); its per-image values, ``float64 [B]`` each.
        ``lpips_clean``: LPIPS's features of ``clean``, when the LPIPS model gives features."""
        values = {key: function(images, clean) for key, function in per_image_functions().items()}
        if lpips_clean is not None:
            values["lpips"] = self.lpips.distance(self.lpips.features(images), lpips_clean)
        elif self.lpips is not None:
            values["lpips"] = self.lpips(images, clean)
        values = {key: value.to(torch.float64) for key, value in values.items()}
        state = self.signals[name]
        state.per_image.update(values)
        pixels = float(images[0].numel())   # pooled metrics weight each image by its values
        state.pooled.update({key: values[key] * pixels for key in self.pooled_sources}, weight=pixels)
        self._set_level(state, images, index)
        return values

    def state_dict(self) -> dict:
        """Everything :meth:`update` accumulated (copies): restored by :meth:`load_state_dict` into an
        evaluator built with the same arguments, it continues as if never interrupted."""
        return {"images_seen": self.images_seen, "reference": self.reference.state_dict(),
                "signals": {name: state.state_dict() for name, state in self.signals.items()}}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output; ``ValueError`` when it does not fit this evaluator."""
        self.reference.load_state_dict(state["reference"])
        signals = {name: _SignalState(self) for name in state["signals"]}
        for name, saved in state["signals"].items():
            signals[name].load_state_dict(saved)
        self.signals, self.images_seen = signals, int(state["images_seen"])

    def reduce(self, group=None) -> None:
        """Sum every accumulator over all ``torch.distributed`` processes (each must call it)."""
        for state in [self.reference, *self.signals.values()]:
            for accumulator in state.accumulators():
                accumulator.reduce(group)

    def _differences(self, state: _SignalState, count: int) -> dict[str, float]:
        """``d_m``, ``d_m_lo``, ``d_m_hi`` of one signal to the baseline, per-image and pooled metrics."""
        out, differences = {}, state.difference.compute()
        for metric in self.per_image_names:
            out[f"d_{metric}"], sd = differences[metric], differences[f"{metric}_sd"]
            out.update(_normal_bounds(metric, out[f"d_{metric}"], sd, count))
        for metric, pooled in pooled_metrics().items():
            value, sd = _delta_method(pooled, state, self.signals[self.baseline])
            out[f"d_{metric}"] = value
            out.update(_normal_bounds(metric, value, sd, count))
        return out

    def compute(self) -> dict[str, dict[str, float]]:
        """Per signal: the study columns (``psnr``, ``psnr_sd``, ..., ``swd``, ``detail``, ``fid``,
        ``kid``, ``kid_sd``, ``is``, ``is_sd``, ``n_images``) and, for per-image metrics,
        ``d_m``, ``d_m_lo``, ``d_m_hi`` to the baseline (normal 95 % interval)."""
        out = {}
        for name, state in self.signals.items():
            row = dict(state.per_image.compute())
            count = int(state.per_image.state[0, 0].item())
            row["n_images"] = count
            pooled_means = state.pooled.weighted_means()
            for metric, pooled in pooled_metrics().items():
                row[metric], row[f"{metric}_sd"] = float(pooled.of_mean(pooled_means[pooled.source])), math.nan
            if self.baseline in self.signals:
                row.update(self._differences(state, count))
            row["swd"] = state.swd.compute(self.reference.swd)
            row["detail"] = state.detail.compute(self.reference.detail)
            if state.fid is not None:
                row["fid"] = state.fid.compute(self.reference.fid)
                row["kid"], row["kid_sd"] = state.kid.compute(self.reference.kid, self.kid_subsets,
                                                              self.kid_subset_size)
            if state.inception_score is not None:
                row["is"], row["is_sd"] = state.inception_score.compute()
            out[name] = row
        return out
