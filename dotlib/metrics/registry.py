"""The metric registry: one entry per metric, the one place that says what each metric is.

Every table, finding, plot axis, command-line report and evaluator reads the facts about a
metric from here: its column name, how it is printed, which direction is better, whether
it is measured per image (and so has a paired interval against x*) or per set, and how
the authors' code computes it (``dmax/models/metrics.py``: torchmetrics classes with
default arguments). Adding a metric means one :class:`Metric` entry here and one function
computing it: per image ``(images, clean) -> float64 [B]`` (``function``), or, for a metric
pooled over the set, a function of the set's mean of a per-image metric (``pooled``: PSNR is
``psnr_of_mse`` of the set's MSE, as torchmetrics computes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .distortion import mse, psnr, psnr_of_mse, psnr_of_mse_slope, ssim

__all__ = ["METRICS", "Metric", "Pooled", "metric", "paired_metrics", "per_image_functions", "pooled_metrics",
           "study_columns"]

PerImage = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Pooled:
    """A set-level metric that is a function of the set's mean of a per-image metric.

    ``value = of_mean(mean over the set's images of <source>)``; ``slope`` is its derivative,
    which gives streamed runs a delta-method interval (:mod:`.streaming_evaluator`).
    """

    source: str
    of_mean: Callable
    slope: Callable


@dataclass(frozen=True)
class Metric:
    """Facts about one metric; values are stored in raw units and shown × ``scale``."""

    key: str                          # column of every table
    header: str                       # printed header (Markdown)
    latex: str                        # printed header (LaTeX)
    higher_is_better: bool | None     # None: not a quality index (a diagnostic)
    scale: float = 1.0                # display multiplier
    decimals: int = 2                 # printed decimals (after scaling)
    level: str = "image"              # "image": one value per image; "set": one value per set of images
    paired: bool = True               # has a paired difference to x* (``d_<key>``, ``_lo``, ``_hi``)
    spread: bool = True               # has a ``<key>_sd`` column
    function: PerImage | None = None  # per-image definition (None: pooled, or its own accumulator)
    pooled: Pooled | None = None      # set-level value as a function of a per-image metric's set mean
    unit: str = ""                    # unit of a difference, when not given by the scale
    definition: str = ""              # as the authors' code computes it

    @property
    def arrow(self) -> str:
        return {True: " ↑", False: " ↓", None: ""}[self.higher_is_better]

    @property
    def difference_unit(self) -> str:
        """Unit of a scaled difference in words: ``dB``, ``×10⁻³`` or ''."""
        return self.unit or ("×10⁻³" if self.scale == 1e3 else "")


METRICS: tuple[Metric, ...] = (
    Metric("psnr", "PSNR", "PSNR", True, 1.0, 2, level="set", pooled=Pooled("mse", psnr_of_mse, psnr_of_mse_slope),
           unit="dB", definition="torchmetrics PeakSignalNoiseRatio() as the authors use it: 10·log10(1 / MSE), "
                                 "the squared error pooled over every pixel of the set"),
    Metric("psnr_mean", "mean PSNR", "mean PSNR", True, 1.0, 2, function=psnr, unit="dB",
           definition="not the authors' table: per image 10·log10(1 / MSE), averaged over images"),
    Metric("ssim", "SSIM", "SSIM", True, 1.0, 3, function=ssim,
           definition="torchmetrics StructuralSimilarityIndexMeasure(): Gaussian window σ 1.5, mean over images"),
    Metric("mse", "MSE ×10³", r"MSE $\times 10^3$", False, 1e3, 3, function=mse,
           definition="mean squared error over pixels and channels, images in [0, 1]"),
    Metric("lpips", "LPIPS", "LPIPS", False, 1.0, 3,
           definition="torchmetrics LearnedPerceptualImagePatchSimilarity(net_type='vgg', normalize=True)"),
    Metric("swd", "SWD ×10³", r"SWD $\times 10^3$", False, 1e3, 1, level="set",
           definition="not in the authors' code: sliced Wasserstein distance of 7×7 Laplacian-pyramid patches "
                      "to the clean set (weight-free)"),
    Metric("detail", "detail ×10³", r"detail $\times 10^3$", False, 1e3, 1, level="set",
           definition="not in the authors' code: Fréchet distance of grey Laplacian-band 5×5 patches over the "
                      "clean set's band energy (weight-free)"),
    Metric("fid", "FID", "FID", False, 1.0, 2, level="set", spread=False, paired=False,
           definition="torchmetrics FrechetInceptionDistance(normalize=True): torch-fidelity's Inception"),
    Metric("kid", "KID ×10³", r"KID $\times 10^3$", False, 1e3, 2, level="set", paired=False,
           definition="torchmetrics KernelInceptionDistance(): 100 subsets of 1000, ×1000 in the table"),
    Metric("is", "IS", "IS", True, 1.0, 2, level="set", paired=False,
           definition="torchmetrics InceptionScore(normalize=True): 10 splits"),
    Metric("latent_w2", "latent W₂² (fitted)", r"latent $W_2^2$ (fitted)", None, 1.0, 3, level="set",
           spread=False, paired=False,
           definition="squared W2 between the fitted latent patch Gaussians (what DOT minimises)"),
)

_BY_KEY = {entry.key: entry for entry in METRICS}


def metric(key: str) -> Metric:
    """The registry entry of ``key``; ``KeyError`` names the known metrics."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"unknown metric {key!r}; known: {', '.join(_BY_KEY)}") from None


def paired_metrics() -> dict[str, bool]:
    """Metrics with a paired difference to x* (the per-image ones, and SWD and detail, whose
    per-photo sums the paired bootstrap resamples): ``key -> lower is better``."""
    return {entry.key: not entry.higher_is_better for entry in METRICS if entry.paired}


def per_image_functions() -> dict[str, PerImage]:
    """``key -> (images, clean) -> float64 [B]`` for every per-image metric defined by a function."""
    return {entry.key: entry.function for entry in METRICS if entry.function is not None}


def pooled_metrics() -> dict[str, Pooled]:
    """``key -> Pooled`` for every set-level metric computed from a per-image metric's set mean."""
    return {entry.key: entry.pooled for entry in METRICS if entry.pooled is not None}


def study_columns() -> list[str]:
    """The metric columns of every study table, in order: values and spreads, then the paired
    differences ``d_<key>`` with their 95 % bounds and the bounds of a replicate bootstrap."""
    values = [f"{entry.key}{suffix}" for entry in METRICS for suffix in (("", "_sd") if entry.spread else ("",))]
    differences = [f"d_{key}{suffix}" for key in paired_metrics()
                   for suffix in ("", "_lo", "_hi", "_lo_rep", "_hi_rep")]
    return values + ["latent_w2_fitted"] + differences
