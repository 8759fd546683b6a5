"""The study's evaluation: every metric of a signal against one reference set."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .assets import MetricUnavailable
from .bootstrap import bootstrap
from .distortion import LPIPS, load_lpips, mse, psnr, ssim
from .inception import CleanFeatures, fid, inception_score, kid, load_inception
from .inputs import ImageSet, check_batch, check_pair
from .sliced_wasserstein import SlicedWasserstein

__all__ = ["Evaluator", "MetricReport", "PERCEPTUAL_INDICES", "STUDY_COLUMNS", "perceptual_index"]

STUDY_COLUMNS = (
    "psnr", "psnr_sd", "ssim", "ssim_sd", "mse", "mse_sd", "lpips", "lpips_sd",
    "swd", "swd_sd", "fid", "kid", "kid_sd", "is", "is_sd",
)


PERCEPTUAL_INDICES = ("swd", "fid", "kid", "is")


def perceptual_index(name: str, images: ImageSet, reference: ImageSet, *, seed: int = 0,
                     device: str | torch.device = "cpu", n_bootstrap: int | None = None,
                     features: CleanFeatures | None = None, **options) -> tuple[float, float]:
    """``(value, spread)`` of one set-level perceptual metric of ``images`` against ``reference``.

    ``swd``: :class:`SlicedWasserstein` mean over bands (``options`` go to it) and its
    bootstrap std over images (``n_bootstrap`` default 30). ``fid``: Fréchet distance of
    clean-fid features; spread = bootstrap std over images when ``n_bootstrap`` > 0,
    else NaN (default: each resample costs a 2048-d eigendecomposition). ``kid``: mean
    and std over subsets. ``is``: mean and std over splits (``reference`` unused).
    ``features``: an injected :class:`CleanFeatures` (class probabilities for ``is``);
    by default clean-fid's Inception, which raises :class:`MetricUnavailable` when its
    weights are missing.
    """
    if name not in PERCEPTUAL_INDICES:
        raise ValueError(f"unknown perceptual index {name!r}; known: {', '.join(PERCEPTUAL_INDICES)}")
    if name == "swd":
        result = SlicedWasserstein(reference, seed=seed, device=device, **options)(
            images, n_bootstrap=30 if n_bootstrap is None else n_bootstrap, seed=seed)
        return result.mean, result.sd
    if options:
        raise TypeError(f"unexpected options for {name}: {sorted(options)}")
    output = "probabilities" if name == "is" else "features"
    extractor = features if features is not None else load_inception(device, output=output)
    feats = extractor(images)
    if name == "is":
        items = feats.shape[0]
        return inception_score(feats, splits=min(10, items))
    reference_feats = extractor(reference)
    if name == "kid":
        return kid(feats, reference_feats, seed=seed)
    value = fid(feats, reference_feats)
    resamples = 0 if n_bootstrap is None else n_bootstrap
    if resamples == 0:
        return value, float("nan")
    spread = bootstrap(lambda idx: fid(feats[idx], reference_feats), feats.shape[0], resamples, seed)
    return value, float(spread.std(ddof=1))


@dataclass
class MetricReport:
    """Metric values of one evaluated set (study-table columns) and the reasons for the missing ones."""

    values: dict[str, float] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def row(self) -> dict[str, float]:
        """Every study column: its value, or NaN when missing / not applicable."""
        return {name: self.values.get(name, float("nan")) for name in STUDY_COLUMNS}


class Evaluator:
    """All study metrics of evaluated image sets against one reference set of natural images.

    ``features`` / ``probabilities``: ``"inception"`` (load clean-fid's Inception; if its
    weights are missing, FID/KID resp. IS are recorded in ``missing`` with the reason),
    a :class:`CleanFeatures` (injected extractor, same code path), or ``None`` (skipped,
    recorded as disabled). ``lpips``: ``"vgg"`` (load from disk or record missing), an
    :class:`LPIPS`, or ``None``. SWD is always computed (``swd_options`` go to
    :class:`SlicedWasserstein`). Spreads: std over images for paired metrics, bootstrap
    std (``n_bootstrap`` resamples, ``seed``) for SWD, std over subsets for KID and over
    ``is_splits`` splits for IS.
    """

    def __init__(self, reference: ImageSet, *, device: str | torch.device = "cpu",
                 features: str | CleanFeatures | None = "inception",
                 probabilities: str | CleanFeatures | None = "inception",
                 lpips: str | LPIPS | None = "vgg", swd_options: dict | None = None,
                 n_bootstrap: int = 30, kid_subsets: int = 100, kid_subset_size: int = 1000,
                 is_splits: int = 10, seed: int = 0):
        self.device = torch.device(device)
        self.n_bootstrap, self.seed = n_bootstrap, seed
        self.kid_subsets, self.kid_subset_size, self.is_splits = kid_subsets, kid_subset_size, is_splits
        self.missing: dict[str, str] = {}
        options = {"seed": seed, "device": device, **(swd_options or {})}
        self.swd = SlicedWasserstein(reference, **options)
        self.features = self._load(features, "features", ("fid", "kid"))
        self.probabilities = self._load(probabilities, "probabilities", ("is",))
        self.reference_features = None if self.features is None else self.features(reference)
        if lpips == "vgg":
            try:
                self.lpips = load_lpips(self.device)
            except MetricUnavailable as error:
                self.lpips, self.missing["lpips"] = None, error.reason
        elif lpips is None:
            self.lpips, self.missing["lpips"] = None, "disabled by the caller"
        elif isinstance(lpips, LPIPS):
            self.lpips = lpips.to(self.device)
        else:
            raise TypeError(f"lpips must be 'vgg', an LPIPS or None, got {lpips!r}")

    def _load(self, spec: str | CleanFeatures | None, output: str,
              metrics: tuple[str, ...]) -> CleanFeatures | None:
        if isinstance(spec, CleanFeatures):
            return spec
        if spec is None:
            self.missing.update({m: "disabled by the caller" for m in metrics})
            return None
        if spec != "inception":
            raise TypeError(f"{output} must be 'inception', a CleanFeatures or None, got {spec!r}")
        try:
            return load_inception(self.device, output=output)
        except MetricUnavailable as error:
            self.missing.update({m: error.reason for m in metrics})
            return None

    def __call__(self, images: torch.Tensor, clean: torch.Tensor | None = None) -> MetricReport:
        """Metrics of ``images`` ``[B, 3, H, W]``; paired ones (PSNR, SSIM, MSE, LPIPS) need ``clean``."""
        check_batch(images, "images")
        report = MetricReport(missing=dict(self.missing))
        values = report.values
        if clean is not None:
            check_pair(images, clean)
            paired = {"psnr": psnr(images, clean), "ssim": ssim(images, clean), "mse": mse(images, clean)}
            if self.lpips is not None:
                paired["lpips"] = self.lpips(images, clean)
            for name, per_image in paired.items():
                per_image = per_image.cpu()
                values[name] = float(per_image.mean())
                values[f"{name}_sd"] = float(per_image.std()) if len(per_image) > 1 else float("nan")
        result = self.swd(images, n_bootstrap=self.n_bootstrap, seed=self.seed)
        values["swd"], values["swd_sd"] = result.mean, result.sd
        if self.features is not None:
            feats = self.features(images)
            values["fid"] = fid(feats, self.reference_features)
            values["kid"], values["kid_sd"] = kid(feats, self.reference_features, self.kid_subsets,
                                                  self.kid_subset_size, self.seed)
        if self.probabilities is not None:
            splits = min(self.is_splits, images.shape[0])
            values["is"], values["is_sd"] = inception_score(self.probabilities(images), splits)
        return report
