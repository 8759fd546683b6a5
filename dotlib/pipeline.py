"""What every runner shares, in one place: the designs and decodings it measures, the α of
each, the study table's columns, the degraded input shown at the clean size, and the
perception models.

Both runners build on it: :mod:`dotlib.study` (the embedded photo pool, cross-fitted by
photo, paired bootstrap) and :mod:`dotlib.runner` (an image folder streamed on N processes).
Neither imports the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from .latent_ot import DECODES

from .metrics import MetricUnavailable, load_inception, load_lpips
from .metrics.inception import classifier_weights
from .metrics.registry import study_columns

__all__ = ["LABEL_COLUMNS", "TABLE_COLUMNS", "alpha_sweeps", "check_decodes", "fitted_designs", "ordered_table",
           "perception_models", "read_study_table", "upsampled"]

#: What identifies a row of a study table.
LABEL_COLUMNS = ["task", "restorer", "encoder", "fit_split", "decode", "signal", "alpha", "n_photos", "n_crops",
                 "n_resamples"]

#: Columns of every study table, in order (a metric that was not computed is NaN).
TABLE_COLUMNS = LABEL_COLUMNS + study_columns()


def upsampled(y: torch.Tensor, size: tuple[int, int], mode: str = "bicubic") -> torch.Tensor:
    """The degraded input ``[B, 3, h, w]`` shown at the clean ``size``: interpolated by ``mode``
    (``"bicubic"`` or ``"bilinear"``, :func:`dotlib.protocol.y_upsampling`) when smaller, clamped to [0, 1]."""
    if tuple(y.shape[-2:]) == tuple(size):
        return y.clamp(0.0, 1.0)
    return F.interpolate(y, size=size, mode=mode, align_corners=False).clamp(0, 1)


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


def fitted_designs(fit_split: str, ablation_splits: Sequence[str], allowed: Sequence[str]) -> list[str]:
    """The fitting designs a run fits, headline first: ``[fit_split, *other ablation_splits]``.

    ``ValueError`` unless every one is among ``allowed`` (the runner's designs).
    """
    if fit_split not in allowed or any(split not in allowed for split in ablation_splits):
        raise ValueError(f"fit_split and ablation_splits must be among {', '.join(map(repr, allowed))}; "
                         f"got {fit_split!r}, {list(ablation_splits)}")
    return [fit_split] + [split for split in ablation_splits if split != fit_split]


def check_decodes(decodes: Sequence[str]) -> list[str]:
    """``decodes`` as a list; ``ValueError`` unless it is a non-empty subset of :data:`DECODES`."""
    if not decodes or any(decode not in DECODES for decode in decodes):
        raise ValueError(f"decodes must be a non-empty subset of {', '.join(DECODES)}, got {list(decodes)}")
    return list(decodes)


def alpha_sweeps(splits: Sequence[str], decodes: Sequence[str], alphas: Sequence[float],
                 secondary: Sequence[float] | None = None) -> dict[tuple[str, str], list[float]]:
    """The α measured per ``(design, decoding)``: the headline design (``splits[0]``) sweeps
    ``alphas`` with its first decoding and ``secondary`` (default: ``alphas``) with the others;
    ablations only α = 0."""
    alphas = [float(alpha) for alpha in alphas]
    secondary = alphas if secondary is None else [float(alpha) for alpha in secondary]
    return {(split, decode): (alphas if decode == decodes[0] else secondary) if split == splits[0] else [0.0]
            for split in splits for decode in decodes}


def read_study_table(path: str | Path) -> pd.DataFrame:
    """A study table as written (``metrics.csv``, ``all_metrics.csv``): empty design and decoding
    labels (rows of x, y, x*) read back as ``""``, as the runners make them. Figures and tables
    are drawn from it, so that they show the written numbers."""
    return pd.read_csv(path).fillna({"fit_split": "", "decode": ""})


def ordered_table(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with :data:`TABLE_COLUMNS` first, in order (missing ones NaN), then its other columns."""
    return table.reindex(columns=list(dict.fromkeys(TABLE_COLUMNS + list(table.columns))))
