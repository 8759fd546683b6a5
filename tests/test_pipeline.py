"""One measurement, whichever path takes it: the embedded study's paired bootstrap, the folder
runner's streaming evaluator and ``dotlib evaluate`` agree on the same images."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dotlib.cli import _SetMetrics
from dotlib.data import photo_pool
from dotlib.metrics import StreamingEvaluator
from dotlib.metrics.paired import PairedBootstrap
from dotlib.metrics.registry import METRICS, paired_metrics, per_image_functions, study_columns
from dotlib.pipeline import TABLE_COLUMNS, alpha_sweeps, fitted_designs


def test_the_three_measurement_paths_agree_on_the_same_images() -> None:
    clean, photos = photo_pool(64, 1)
    clean, photos = clean[:8], photos[:8]
    blurred = F.avg_pool2d(clean, 3, 1, 1)
    bootstrap = PairedBootstrap(clean, photos, n_resamples=2, seed=0)
    bootstrap.add("blurred", blurred)
    paired = bootstrap.summary("blurred")
    streaming = StreamingEvaluator(clean, seed=0)
    streaming.update(clean, {"blurred": blurred}, range(8))
    streamed = streaming.compute()["blurred"]
    command_line = _SetMetrics(list(clean), torch.device("cpu"))(list(blurred), list(clean))
    # SWD is left out: the streaming evaluator seeds each image's patch positions by its index
    # (independent of batching and process count), the other two draw them in one sequence
    for key in ("psnr", "ssim", "mse", "detail"):
        assert streamed[key] == pytest.approx(paired[key], rel=1e-9), key
        assert command_line[key] == pytest.approx(paired[key], rel=1e-9), key
    assert 20 < paired["psnr"] < 40 and 0 < paired["detail"]   # a blur: finite, measurably worse than clean


def test_the_registry_defines_every_metric_column_once() -> None:
    keys = [entry.key for entry in METRICS]
    assert len(keys) == len(set(keys))
    assert set(per_image_functions()) == {"psnr", "ssim", "mse"}
    assert paired_metrics() == {"psnr": False, "ssim": False, "mse": True, "lpips": True, "swd": True,
                                "detail": True}
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
