"""What every runner does to a batch, in one place: the study table's columns, the degraded
input shown at the clean size, and the perception models.

Both runners build on it: :mod:`dotlib.study` (the embedded photo pool, cross-fitted by
photo, paired bootstrap) and :mod:`dotlib.runner` (an image folder streamed on N processes).
Neither imports the other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .metrics import MetricUnavailable, load_inception, load_lpips
from .metrics.inception import classifier_weights
from .metrics.registry import study_columns

__all__ = ["LABEL_COLUMNS", "TABLE_COLUMNS", "perception_models", "upsampled"]

#: What identifies a row of a study table.
LABEL_COLUMNS = ["task", "restorer", "encoder", "fit_split", "decode", "signal", "alpha", "n_photos", "n_crops"]

#: Columns of every study table, in order (a metric that was not computed is NaN).
TABLE_COLUMNS = LABEL_COLUMNS + study_columns()


def upsampled(y: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The degraded input ``[B, 3, h, w]`` shown at the clean ``size``: bicubic when smaller, clamped to [0, 1]."""
    if tuple(y.shape[-2:]) == tuple(size):
        return y.clamp(0.0, 1.0)
    return F.interpolate(y, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def perception_models(device: torch.device, inception: bool = True, lpips: bool = True, fid_mode: str = "clean"):
    """``(features, classifier, lpips, missing)``: clean-fid's Inception features (``fid_mode``)
    and its class head ``[1008, 2048]`` (IS), and LPIPS, each where its weights are on disk;
    ``missing`` maps every metric left out to the reason."""
    missing, features, classifier, lpips_model = {}, None, None, None
    if inception:
        try:
            features = load_inception(device, output="features", mode=fid_mode)
            classifier = classifier_weights(features)
        except MetricUnavailable as error:
            missing.update({name: error.reason for name in ("fid", "kid", "is")})
    else:
        missing.update({name: "disabled by the caller" for name in ("fid", "kid", "is")})
    if lpips:
        try:
            lpips_model = load_lpips(device)
        except MetricUnavailable as error:
            missing["lpips"] = error.reason
    else:
        missing["lpips"] = "disabled by the caller"
    return features, classifier, lpips_model, missing
