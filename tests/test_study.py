"""The study runner: fitting designs, cross-fitting, residual decoding, intervals, end to end (small crops)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dotlib import tables
from dotlib.data import PHOTO_POOL
from dotlib.degradations import TASKS
from dotlib.encoders import load_encoder
from dotlib.gaussian import GaussianStats
from dotlib.latent_ot import LatentOT, Operator
from dotlib.study import (describe_finding, design_for_pool, fitting_sets, per_crop_psnr, pixel_w2_per_dim,
                          run_task, theory_check)

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(size=64, n_fit=4, crops_per_photo=2, n_folds=3, alphas=[-0.5, 0.0, 0.5, 1.0, 1.5],
             n_resamples=20, inception=False, lpips=False)


def test_folds_cover_every_photo_once_and_never_fit_on_what_they_evaluate():
    design = design_for_pool(size=64, crops_per_photo=2, n_folds=3, n_fit=8)
    assert design.evaluated == list(range(design.images.shape[0]))
    assert len(set(design.photos)) == len(PHOTO_POOL) >= 12
    for evaluated, sets in design.folds:
        held_out = {design.photos[i] for i in evaluated}
        target, source = sets["same"]
        assert target == source and len(target) == 8               # the authors' design: the same images
        for split, (target, source) in sets.items():
            fitted = {design.photos[i] for i in target + source}
            assert not fitted & held_out, split                     # cross-fitting
        target, source = sets["matched"]
        assert [design.photos[i] for i in target] == [design.photos[i] for i in source]
        assert not set(target) & set(source)                        # other crops of the same photos
        target, source = sets["disjoint"]
        assert not {design.photos[i] for i in target} & {design.photos[i] for i in source}


def test_fitting_sets_same_uses_the_same_images_for_both_sides():
    photos = ["a", "a", "b", "b", "c"]
    target, source = fitting_sets(photos, 4, "same")
    assert target == source == [0, 2, 4, 1]                        # round robin over photos
    target, source = fitting_sets(photos, 4, "matched")
    assert (target, source) == ([0, 2], [1, 3])
    with pytest.raises(ValueError, match="unknown fit_split"):
        fitting_sets(photos, 4, "paired")


def test_residual_decoding_with_the_identity_map_returns_x_star_exactly():
    vae = load_encoder("embedded")
    images = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(0))
    model = LatentOT(vae, patch_size=3)
    dim = model.dim
    mean = torch.randn(dim, dtype=torch.float64)
    model.operator = Operator(torch.eye(dim, dtype=torch.float64), mean, mean.clone(), None)
    x_hat0 = model.transport(images, alpha=0.0, decode="residual")
    assert torch.equal(x_hat0, images)
    direct = model.transport(images, alpha=0.0, decode="direct")
    assert not torch.equal(direct, images)                         # direct decoding adds the VAE's error
    assert torch.allclose(direct, vae.round_trip(images), atol=1e-5)   # D(E(x*)) up to folding rounding


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_runs_end_to_end(task):
    run = run_task(task, restorer="mse_net", ablation_splits=(), **{**SMALL, "crops_per_photo": 1})
    table = run.table
    assert list(table.signal[:4]) == ["x", "xe", "y", "x_star"]
    assert (table.n_photos == len(PHOTO_POOL)).all()
    star = table[table.signal.eq("x_star")].iloc[0]
    for decode in ("direct", "residual"):
        one = table[table.signal.eq("x_alpha") & table.decode.eq(decode) & table.alpha.eq(1.0)].iloc[0]
        for column in ("psnr", "mse", "swd", "detail"):
            assert one[column] == star[column], column               # α = 1 is x* exactly
            assert one[f"d_{column}"] == 0.0 and np.isnan(one[f"d_{column}_lo"])   # intervals: α 0 and 0.5 only
    clean = table[table.signal.eq("x")].iloc[0]
    assert clean.mse == clean.swd == clean.detail == clean.swd_sd == clean.detail_sd == 0.0
    rows = table[table.signal.eq("x_alpha")]
    assert set(rows[rows.d_psnr_lo.notna()].alpha) == {0.0, 0.5}
    rows = rows[rows.d_psnr_lo.notna()]
    for metric in ("psnr", "psnr_mean", "swd", "detail"):
        for low, high in (("_lo", "_hi"), ("_lo_rep", "_hi_rep")):
            assert (rows[f"d_{metric}{low}"] <= rows[f"d_{metric}"] + 1e-12).all()
            assert (rows[f"d_{metric}"] <= rows[f"d_{metric}{high}"] + 1e-12).all()
    assert (table.n_resamples == 20).all()
    gaps = run.decodings.set_index("alpha")
    assert list(gaps.decode) == ["residual", "residual"] and set(gaps.index) == {0.0, 0.5}
    for alpha in (0.0, 0.5):
        pair = rows[rows.alpha.eq(alpha)].set_index("decode")
        assert gaps.d_psnr[alpha] == pytest.approx(pair.psnr["residual"] - pair.psnr["direct"], rel=1e-12)
        assert gaps.d_psnr_lo[alpha] <= gaps.d_psnr[alpha] <= gaps.d_psnr_hi[alpha]
    assert set(run.missing) == {"fid", "kid", "is", "lpips"} and table.fid.isna().all()
    assert set(run.theory) == {"direct", "residual"} and len(run.ridge) == 3
    crops = per_crop_psnr(run)                                     # the table's mean PSNR, crop by crop
    assert list(crops.photo) == run.photos
    for column, signal in (("psnr_x_star", "x_star"), ("psnr_xe", "xe")):
        assert crops[column].mean() == pytest.approx(table[table.signal.eq(signal)].psnr_mean.iloc[0], rel=1e-9)
    for decode in ("direct", "residual"):
        zero = table[table.signal.eq("x_alpha") & table.decode.eq(decode) & table.alpha.eq(0.0)].iloc[0]
        assert crops[f"psnr_x_hat0_{decode}"].mean() == pytest.approx(zero.psnr_mean, rel=1e-9)


def test_vae_floor_splits_the_mean_cost_by_crop():
    crops = pd.DataFrame({"task": "t", "restorer": "r", "psnr_x_star": [40.0, 30.0, 20.0], "psnr_xe": [30.0, 31.0, 25.0],
                          "psnr_x_hat0_direct": [29.0, 29.0, 19.0]})
    row = tables.vae_floor(crops).iloc[0]
    assert (row.decode, row.crops, row.above_floor) == ("direct", 3, 1)
    assert row.mean_cost == pytest.approx(13 / 3) and row.mean_cost_above == pytest.approx(11.0)
    assert row.mean_cost_others == pytest.approx(1.0) and row.share_above == pytest.approx(11 / 13)
    assert row.x_hat0_minus_floor_above == pytest.approx(-1.0)


def test_runs_repeat_exactly_and_the_ablation_is_measured_at_alpha_zero():
    options = {**SMALL, "alphas": [0.0, 1.0], "decodes": ("direct",)}
    first = run_task("sr4", restorer="bicubic", **options)
    second = run_task("sr4", restorer="bicubic", **options)
    pd.testing.assert_frame_equal(first.table, second.table)
    sweep = first.table[first.table.signal.eq("x_alpha")]
    assert sorted(sweep.fit_split.unique()) == ["disjoint", "matched", "same"]
    assert list(sweep[sweep.fit_split.ne("same")].alpha) == [0.0, 0.0]


def test_bad_names_are_explained():
    with pytest.raises(ValueError, match="sr4"):
        run_task("sr3", **SMALL)
    with pytest.raises(ValueError, match="mse_net"):
        run_task("sr4", restorer="magic", **SMALL)
    with pytest.raises(ValueError, match="fit_split"):
        run_task("sr4", fit_split="paired", **SMALL)
    with pytest.raises(ValueError, match="decodes"):
        run_task("sr4", decodes=("indirect",), **SMALL)


def test_describe_finding_reads_the_intervals():
    row = {"signal": "x_alpha", "fit_split": "same", "decode": "direct", "alpha": 0.0, "n_photos": 18,
           "n_crops": 35, "d_psnr": -2.0, "d_psnr_lo": -2.5, "d_psnr_hi": -1.5, "d_swd": -0.004, "d_swd_lo": -0.006,
           "d_swd_hi": -0.001, "d_detail": 0.001, "d_detail_lo": -0.002, "d_detail_hi": 0.004}
    text = describe_finding(pd.DataFrame([row]))
    assert "psnr: -2 dB [-2.5, -1.5] -> worse" in text
    assert "swd: -4 ×10⁻³ [-6, -1] -> better" in text
    assert "detail: +1 ×10⁻³ [-2, +4] -> no change detected" in text
    assert "18 photos" in text
    streamed = {**row, "n_photos": 500, "n_crops": 500, "d_swd_lo": float("nan"), "d_swd_hi": float("nan")}
    text = describe_finding(pd.DataFrame([streamed]))
    assert "500 images" in text and "swd: -4 ×10⁻³ (set-level index: no interval) -> no interval" in text


def test_folder_restorer_on_the_pool_is_refused_with_the_way_out():
    with pytest.raises(ValueError, match="matched to its inputs by file name"):
        run_task("sr4", restorer="folder:/nowhere")


def test_theory_check_attributes_a_colour_shift_and_the_vae_error():
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 48, 48, generator=generator)
    x_star = (x + 0.05 * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    shifted = (x_star + 0.2).clamp(0, 1)                           # a colour shift: >> 3 dB, low-pass
    result = theory_check(x, x_star, shifted, round_trip_star=x_star)
    assert result["exceeds_bound"] and result["lowpass_share"] > 0.9 and "colour" in result["reason"]
    noisy = (x_star + 0.15 * torch.randn(x.shape, generator=generator)).clamp(0, 1)
    result = theory_check(x, x_star, noisy, round_trip_star=noisy)  # all of it is the "VAE's" error
    assert result["exceeds_bound"] and result["vae_share"] == pytest.approx(1.0, rel=0.2)
    assert "VAE" in result["reason"]
    same = theory_check(x, x_star, x_star, round_trip_star=x_star)
    assert same["psnr_cost_db"] == 0.0 and not same["exceeds_bound"]


def test_pixel_w2_per_dim_is_zero_for_a_set_and_itself_and_grows_with_noise():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 32, 32, generator=generator)
    assert pixel_w2_per_dim(images, images, patch_size=3) == pytest.approx(0.0, abs=1e-9)
    noisy = (images + 0.1 * torch.randn(images.shape, generator=generator)).clamp(0, 1)
    noisier = (images + 0.3 * torch.randn(images.shape, generator=generator)).clamp(0, 1)
    assert 0 < pixel_w2_per_dim(noisy, images, 3) < pixel_w2_per_dim(noisier, images, 3)


def test_from_stats_equals_update_and_fit():
    vae = load_encoder("embedded")
    generator = torch.Generator().manual_seed(2)
    target, source = torch.rand(2, 3, 40, 40, generator=generator), torch.rand(2, 3, 40, 40, generator=generator)
    fitted = LatentOT(vae, patch_size=3).update(target, "target").update(source, "source")
    fitted.fit()
    stats = {which: GaussianStats(fitted.dim).merge(getattr(fitted, which)) for which in ("source", "target")}
    rebuilt = LatentOT.from_stats(vae, stats["source"], stats["target"], patch_size=3)
    assert torch.equal(rebuilt.operator.matrix, fitted.operator.matrix)
    with pytest.raises(ValueError, match="dimension"):
        LatentOT.from_stats(vae, GaussianStats(3), stats["target"], patch_size=3)


def test_restore_task_notebook_runs_with_papermill(tmp_path):
    papermill = pytest.importorskip("papermill")
    parameters = dict(task="jpeg10", restorer="mse_net", size=64, n_fit=4, n_folds=3, alpha_start=0.0,
                      alpha_stop=1.0, alpha_step=0.5, secondary_alpha_step=0.5, n_collage=2, n_resamples=10,
                      output_dir=str(tmp_path / "run"), ablation_splits=[])
    papermill.execute_notebook(str(ROOT / "notebooks/03_restore_task.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters=parameters, kernel_name="python3", progress_bar=False)
    table = pd.read_csv(tmp_path / "run/metrics.csv")
    assert sorted(table.alpha.dropna().unique()) == [0.0, 0.5, 1.0]
    for name in ("collage.png", "perception_distortion.png", "perception_distortion_detail.png",
                 "missing_metrics.json", "theory.csv", "ridge.csv", "per_crop.csv"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    assert np.isfinite(pd.read_csv(tmp_path / "run/theory.csv").psnr_cost_db).all()
    executed = (tmp_path / "out.ipynb").read_text()
    assert "application/vnd.jupyter.widget-view+json" in executed      # the α explorer, live in a kernel
    assert "Not computed: FID, " in executed and executed.count("Not computed:") == 1
