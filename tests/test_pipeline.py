"""One measurement, whichever path takes it: the embedded study's paired bootstrap, the folder
runner's streaming evaluator and ``dotlib evaluate`` agree on the same images."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dotlib.cli import measure_set
from dotlib.data import photo_pool
from dotlib.metrics import StreamingEvaluator
from dotlib.metrics.paired import PairedBootstrap
from dotlib.metrics.registry import METRICS, paired_metrics, per_image_functions, pooled_metrics, study_columns
from dotlib.pipeline import TABLE_COLUMNS, alpha_sweeps, fitted_designs


def test_the_three_measurement_paths_agree_on_the_same_images() -> None:
    clean, photos = photo_pool(64, 1)
    clean, photos = clean[:8], photos[:8]
    blurred = F.avg_pool2d(clean, 3, 1, 1)
    measured = []
    for evaluator in (PairedBootstrap(clean, photos, n_resamples=2, seed=0), StreamingEvaluator(clean, seed=0)):
        evaluator.update(clean, {"blurred": blurred}, range(8))     # one interface, two reductions
        measured.append(evaluator.compute()["blurred"])
    paired, streamed = measured
    command_line = measure_set(list(blurred), list(clean), (None, None, None), torch.device("cpu"))
    for key in ("psnr", "psnr_mean", "ssim", "mse", "swd", "detail"):
        assert streamed[key] == pytest.approx(paired[key], rel=1e-9), key
        assert command_line[key] == pytest.approx(paired[key], rel=1e-9), key
    assert 20 < paired["psnr"] < 40 and 0 < paired["detail"]   # a blur: finite, measurably worse than clean
    pooled = -10 * torch.log10(((blurred.double() - clean.double()) ** 2).mean())   # torchmetrics' PSNR of the set
    assert paired["psnr"] == pytest.approx(float(pooled), rel=1e-12)
    assert paired["psnr_mean"] == pytest.approx(float((-10 * torch.log10(((blurred.double() - clean.double()) ** 2)
                                                                          .mean(dim=(1, 2, 3)))).mean()), rel=1e-12)


def test_the_registry_defines_every_metric_column_once() -> None:
    keys = [entry.key for entry in METRICS]
    assert len(keys) == len(set(keys))
    assert set(per_image_functions()) == {"psnr_mean", "ssim", "mse"}
    assert set(pooled_metrics()) == {"psnr"} and pooled_metrics()["psnr"].source == "mse"
    assert paired_metrics() == {"psnr": False, "psnr_mean": False, "ssim": False, "mse": True, "lpips": True,
                                "swd": True, "detail": True}
    columns = study_columns()
    assert len(columns) == len(set(columns)) and set(columns) <= set(TABLE_COLUMNS)
    assert {f"d_{key}_lo" for key in paired_metrics()} <= set(columns) and "fid_sd" not in columns


def test_designs_and_sweeps() -> None:
    assert fitted_designs("same", ("matched", "same"), ("same", "matched")) == ["same", "matched"]
    with pytest.raises(ValueError, match="'same'"):
        fitted_designs("matched", (), ("same", "disjoint"))
    sweeps = alpha_sweeps(["same", "disjoint"], ["direct", "residual"], [0, 0.5], [1])
    assert sweeps == {("same", "direct"): [0.0, 0.5], ("same", "residual"): [1.0],
                      ("disjoint", "direct"): [0.0], ("disjoint", "residual"): [0.0]}
    assert alpha_sweeps(["same"], ["direct", "residual"], [0.5])[("same", "residual")] == [0.5]
