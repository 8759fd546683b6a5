r"""Every study metric of many signals, streamed over batches of an image folder of any size.

:class:`StreamingEvaluator` is the bounded-memory counterpart of
:class:`~dotlib.metrics.Evaluator` and :class:`~dotlib.metrics.PairedBootstrap`: it is
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
uses a bootstrap over photos instead). Set-level indices get no interval here.

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
from .inputs import check_batch, check_pair
from .sliced_wasserstein import SlicedWasserstein, laplacian_pyramid
from .registry import per_image_functions
from .streaming import BandSums, FeatureGaussian, FeatureSample, PerImageMeans, SetCDF, SplitScores

__all__ = ["StreamingEvaluator"]

Z_95 = 1.959963984540054


class _SignalState:
    """The accumulators of one signal (or of the clean reference)."""

    def __init__(self, evaluator: "StreamingEvaluator"):
        device = evaluator.device
        self.per_image = PerImageMeans(evaluator.per_image_names, device)
        self.difference = PerImageMeans(evaluator.per_image_names, device)
        self.swd = SetCDF(evaluator.swd)
        self.detail = BandSums(evaluator.detail)
        self.fid = FeatureGaussian(evaluator.feature_dim, device) if evaluator.features is not None else None
        self.kid = FeatureSample(evaluator.kid_capacity, evaluator.seed) if evaluator.features is not None else None
        self.inception_score = (SplitScores(evaluator.classifier.shape[0], evaluator.is_splits, device)
                                if evaluator.classifier is not None else None)

    def accumulators(self) -> list:
        return [a for a in (self.per_image, self.difference, self.swd, self.detail, self.fid, self.kid,
                            self.inception_score) if a is not None]


class StreamingEvaluator:
    """Metrics of named signals against the clean images, accumulated batch by batch.

    Parameters
    ----------
    calibration : natural images ``[N, 3, H, W]`` in [0, 1] of the evaluated size (SWD grid
        and normalisation, pyramid depth); a few are enough.
    features : a :class:`CleanFeatures` giving ``[B, F]`` Inception features (FID, KID), or None.
    classifier : ``[K, F]`` weights turning features into class logits (IS: softmax of
        ``features @ classifier.T``, as clean-fid's Inception head), or None.
    lpips : per-image ``(images, clean) -> [B]`` metric, or None.
    baseline : the signal every per-image difference is taken to (``x_star`` in the study).
    kid_capacity : images kept per signal for KID (a hashed uniform subset); the paper's
        torchmetrics KID keeps all. kid_subsets, kid_subset_size : KID's subsets.
    is_splits : IS splits (image i in split i mod is_splits).
    """

    def __init__(self, calibration: torch.Tensor, *, device: str | torch.device = "cpu",
                 features: CleanFeatures | None = None, classifier: torch.Tensor | None = None,
                 lpips: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                 baseline: str = "x_star", kid_capacity: int = 5000, kid_subsets: int = 100,
                 kid_subset_size: int = 1000, is_splits: int = 10, seed: int = 0,
                 swd_options: dict | None = None):
        check_batch(calibration, "calibration")
        if classifier is not None and features is None:
            raise ValueError("classifier needs features: IS is computed from the Inception features")
        self.device = torch.device(device)
        self.features, self.lpips, self.baseline, self.seed = features, lpips, baseline, int(seed)
        self.kid_capacity, self.kid_subsets, self.kid_subset_size = kid_capacity, kid_subsets, kid_subset_size
        self.is_splits = is_splits
        self.per_image_names = tuple(per_image_functions()) + (("lpips",) if lpips is not None else ())
        self.swd = SlicedWasserstein(calibration, seed=seed, device=device, **(swd_options or {}))
        self.detail = DetailFrechet(calibration, levels=self.swd.levels, device=device)
        self.classifier = None if classifier is None else classifier.detach().to(torch.float64).cpu()
        self.feature_dim = 0
        if features is not None:
            self.feature_dim = int(features(calibration[:1]).shape[1])
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
        if self.features is not None:
            feats = self.features(images)
            state.fid.update(feats)
            state.kid.update(feats, indices)
            if self.classifier is not None:
                logits = torch.from_numpy(feats) @ self.classifier.T
                state.inception_score.update(torch.softmax(logits, dim=1), indices)

    def update(self, clean: torch.Tensor, signals: dict[str, torch.Tensor],
               indices: Sequence[int] | torch.Tensor) -> None:
        """Add one batch: ``clean [B, 3, H, W]``, every signal's images of the same shape, global indices ``[B]``.

        Every batch must carry the same signal names (the first batch fixes them); the
        baseline must be among them when any per-image difference is wanted.
        """
        check_batch(clean, "clean")
        index = np.asarray(torch.as_tensor(indices).cpu(), dtype=np.int64).reshape(-1)
        if index.shape[0] != clean.shape[0]:
            raise ValueError(f"got {index.shape[0]} indices for {clean.shape[0]} images")
        if not self.signals:
            if not signals:
                raise ValueError("signals is empty: pass at least one named image batch")
            self.signals = {name: _SignalState(self) for name in signals}
        elif set(signals) != set(self.signals):
            raise ValueError(f"every batch must carry the signals {sorted(self.signals)}, got {sorted(signals)}")
        clean = clean.to(self.device, torch.float32)
        self._set_level(self.reference, clean, index)
        per_image = {}
        for name, images in signals.items():
            check_pair(images, clean)
            images = images.to(self.device, torch.float32)
            values = {name: function(images, clean) for name, function in per_image_functions().items()}
            if self.lpips is not None:
                values["lpips"] = self.lpips(images, clean)
            per_image[name] = {k: v.to(torch.float64) for k, v in values.items()}
            self.signals[name].per_image.update(per_image[name])
            self._set_level(self.signals[name], images, index)
        if self.baseline in per_image:
            base = per_image[self.baseline]
            for name, values in per_image.items():
                self.signals[name].difference.update({k: values[k] - base[k] for k in values})
        self.images_seen += clean.shape[0]

    def reduce(self, group=None) -> None:
        """Sum every accumulator over all ``torch.distributed`` processes (each must call it)."""
        for state in [self.reference, *self.signals.values()]:
            for accumulator in state.accumulators():
                accumulator.reduce(group)

    def compute(self) -> dict[str, dict[str, float]]:
        """Per signal: the study columns (``psnr``, ``psnr_sd``, ..., ``swd``, ``detail``, ``fid``,
        ``kid``, ``kid_sd``, ``is``, ``is_sd``, ``n_images``) and, for per-image metrics,
        ``d_m``, ``d_m_lo``, ``d_m_hi`` to the baseline (normal 95 % interval)."""
        out = {}
        for name, state in self.signals.items():
            row = dict(state.per_image.compute())
            count = int(state.per_image.state[0, 0].item())
            row["n_images"] = count
            row["psnr_pooled"] = -10.0 * math.log10(row["mse"]) if row["mse"] > 0 else math.inf
            if self.baseline in self.signals:
                differences = state.difference.compute()
                for metric in self.per_image_names:
                    value, sd = differences[metric], differences[f"{metric}_sd"]
                    half = Z_95 * sd / math.sqrt(count) if count > 1 and math.isfinite(sd) else math.nan
                    row[f"d_{metric}"] = value
                    row[f"d_{metric}_lo"], row[f"d_{metric}_hi"] = value - half, value + half
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
