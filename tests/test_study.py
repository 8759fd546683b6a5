"""The study runner end to end, on small crops with the embedded encoder."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from dotlib.degradations import TASKS
from dotlib.study import default_alphas, describe_finding, fewshot_ablation, pixel_w2_per_dim, run_task

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(size=64, n_fit=2, n_eval=2, alphas=[-0.5, 0.0, 0.5, 1.0, 1.5], operator_cache=None,
             inception=False, lpips=False)


def test_default_alphas_match_the_paper_sweep():
    alphas = default_alphas()
    assert len(alphas) == 31 and alphas[0] == -1.0 and alphas[-1] == 2.0
    assert 0.0 in alphas and 1.0 in alphas and 0.1 in alphas


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_runs_end_to_end(task):
    run = run_task(task, restorer="mse_net", encoder="embedded", **SMALL)
    table = run.table
    assert list(table.signal[:4]) == ["x", "xe", "y", "x_star"]
    assert list(table.alpha[4:]) == SMALL["alphas"]
    star = table[table.signal.eq("x_star")].iloc[0]
    one = table[table.signal.eq("x_alpha") & table.alpha.eq(1.0)].iloc[0]
    for column in ("psnr", "ssim", "mse", "swd"):
        assert one[column] == star[column], column  # α = 1 is x* exactly
    clean = table[table.signal.eq("x")].iloc[0]
    assert clean.mse == 0 and clean.swd == 0
    assert np.isfinite(table.latent_w2[table.signal.ne("x_alpha")]).all()
    assert run.images["x_hat0"].shape == run.images["x"].shape
    # fid/kid/is/lpips are recorded missing with a reason, never silently absent
    assert set(run.missing) == {"fid", "kid", "is", "lpips"}
    assert table.fid.isna().all()


def test_alpha_zero_is_the_transported_image_and_runs_repeat_exactly():
    first = run_task("sr4", restorer="bicubic", encoder="embedded", **SMALL)
    second = run_task("sr4", restorer="bicubic", encoder="embedded", **SMALL)
    pd.testing.assert_frame_equal(first.table, second.table)
    x_hat0 = first.operator.transport(first.images["x_star"], alpha=0.0)
    assert torch.equal(x_hat0, first.images["x_hat0"])
    zero = first.table[first.table.signal.eq("x_alpha") & first.table.alpha.eq(0.0)].iloc[0]
    from dotlib.metrics import psnr
    assert zero.psnr == pytest.approx(psnr(x_hat0, first.images["x"]).mean().item(), abs=1e-9)


def test_operator_cache_is_reused(tmp_path):
    first = run_task("awgn50", restorer="mse_net", **{**SMALL, "operator_cache": tmp_path})
    cached = list(tmp_path.glob("awgn50__mse_net__*.safetensors"))
    assert len(cached) == 1
    second = run_task("awgn50", restorer="mse_net", **{**SMALL, "operator_cache": tmp_path})
    pd.testing.assert_frame_equal(first.table, second.table)


def test_bad_names_are_explained():
    with pytest.raises(ValueError, match="sr4"):
        run_task("sr3", **SMALL)
    with pytest.raises(ValueError, match="mse_net"):
        run_task("sr4", restorer="magic", **SMALL)


def test_describe_finding_states_numbers():
    rows = [{"signal": "x_star", "alpha": np.nan, "psnr": 30.0, "swd": 0.2}]
    rows += [{"signal": "x_alpha", "alpha": a, "psnr": 28.0 + 2 * a, "swd": 0.1 + 0.1 * a}
             for a in (0.0, 0.5, 1.0)]
    text = describe_finding(pd.DataFrame(rows))
    assert "x* 0.2 -> x̂0 0.1 (better)" in text and "a cost of 2.00 dB" in text
    assert "a trade-off" in text and "finding holds" in text


def test_pixel_w2_per_dim_is_zero_for_a_set_and_itself_and_grows_with_noise():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 3, 32, 32, generator=generator)
    assert pixel_w2_per_dim(images, images, patch_size=3) == pytest.approx(0.0, abs=1e-9)
    noisy = (images + 0.1 * torch.randn(images.shape, generator=generator)).clamp(0, 1)
    noisier = (images + 0.3 * torch.randn(images.shape, generator=generator)).clamp(0, 1)
    assert 0 < pixel_w2_per_dim(noisy, images, 3) < pixel_w2_per_dim(noisier, images, 3)


def test_fewshot_ablation_small():
    table = fewshot_ablation("sr4", size=64, n_fits=[2], n_eval=2)
    assert list(table.split) == ["disjoint", "matched"]
    assert (table.dmse_theory > 0).all() and np.isfinite(table.psnr_cost).all()


def test_restore_task_notebook_runs_with_papermill(tmp_path):
    papermill = pytest.importorskip("papermill")
    parameters = dict(task="jpeg10", restorer="mse_net", size=64, n_fit=2, n_eval=2, alpha_start=0.0,
                      alpha_stop=1.0, alpha_step=0.5, n_collage=2, output_dir=str(tmp_path / "run"),
                      operator_cache=None)
    papermill.execute_notebook(str(ROOT / "notebooks/03_restore_task.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters=parameters, kernel_name="python3", progress_bar=False)
    table = pd.read_csv(tmp_path / "run/metrics.csv")
    assert list(table.alpha.dropna()) == [0.0, 0.5, 1.0]
    for name in ("collage.png", "perception_distortion.png", "missing_metrics.json"):
        assert (tmp_path / "run" / name).stat().st_size > 0
