"""The streamed folder runner: one process and two (torchrun, gloo) agree; a folder restorer is read by name."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dotlib import tables
from dotlib.data import ImageFolder
from dotlib.dryrun import write_folder_outputs
from dotlib.metrics import mse, psnr
from dotlib.paths import project_root
from dotlib.runner import launch, run_folder_task

PHOTOS = project_root() / "dotlib" / "photos"
SMALL = dict(data=str(PHOTOS), size=48, n_fit=4, max_eval=6, batch_size=2, num_workers=0,
             inception=False, lpips=False)


def _compare(one: pd.DataFrame, two: pd.DataFrame) -> None:
    assert one.signal.tolist() == two.signal.tolist()
    np.testing.assert_array_equal(one.n_images.to_numpy(), two.n_images.to_numpy())
    for column in one.columns:
        if one[column].dtype.kind != "f" or column.endswith(("_lo", "_hi")):
            continue
        np.testing.assert_allclose(two[column].to_numpy(), one[column].to_numpy(), rtol=1e-6, atol=1e-12,
                                   err_msg=column)
    for metric in ("psnr", "ssim", "mse"):   # interval bounds: to 1e-6 of the interval's half width
        half = (one[f"d_{metric}_hi"] - one[f"d_{metric}_lo"]).abs().to_numpy() / 2
        for bound in ("_lo", "_hi"):
            np.testing.assert_allclose(two[f"d_{metric}{bound}"].to_numpy(), one[f"d_{metric}{bound}"].to_numpy(),
                                       rtol=0, atol=float(np.nanmax(half)) * 1e-6 + 1e-12)


def test_two_processes_give_the_single_process_metrics() -> None:
    torch.set_num_threads(1)
    config = dict(task="sr4_awgn50", restorer="mse_net", alphas=[0.0, 0.5], decodes=["direct"], **SMALL)
    one, two = launch(1, **config), launch(2, **config)
    assert "2 processes" in two.description and "1 process " in one.description
    assert set(one.table.n_images) == {6}
    _compare(one.table, two.table)
    x_hat0 = one.table[one.table.signal.eq("x_alpha") & one.table.alpha.eq(0.0)].iloc[0]
    assert x_hat0.d_swd == pytest.approx(x_hat0.swd - one.table[one.table.signal.eq("x_star")].swd.iloc[0])
    assert math.isnan(x_hat0.d_swd_lo)   # set-level indices: no interval on streamed runs
    summary = tables.findings(one.table)
    assert set(summary.swd_verdict) == {"no interval"} and set(summary.detail_verdict) == {"no interval"}
    assert summary.psnr_verdict.iloc[0] in ("better", "worse", "no change detected")   # pooled PSNR: delta method
    assert tables.findings_markdown(summary).rstrip().endswith("| no interval | no interval |")


def test_folder_restorer_outputs_are_what_the_runner_measures(tmp_path) -> None:
    outputs = tmp_path / "outputs"
    assert write_folder_outputs(PHOTOS, outputs, "sr4", size=48) == len(ImageFolder(PHOTOS).files)
    run = run_folder_task("sr4", f"folder:{outputs}", alphas=[0.0], **SMALL)
    table = run.table.set_index("signal")
    assert table.loc["x_star", "restorer"] == "folder:outputs"   # no machine path in the table
    # x* is read from the files matched by name: its PSNR is that of those files against the clean crops
    folder = ImageFolder(PHOTOS, resize=48, crop=48)
    order = torch.randperm(len(folder), generator=torch.Generator().manual_seed(0)).tolist()[4:10]
    clean = torch.stack([folder[i] for i in order])
    restored = torch.stack([ImageFolder(outputs)[[p.stem for p in ImageFolder(outputs).files].index(
        folder.files[i].stem)] for i in order])
    assert table.loc["x_star", "psnr_mean"] == pytest.approx(float(psnr(restored, clean).mean()), rel=1e-6)
    assert table.loc["x_star", "psnr"] == pytest.approx(float(-10 * torch.log10(mse(restored, clean).mean())), rel=1e-6)
    assert run.photos == [folder.files[i].name for i in order[:4]]


def test_bad_runs_fail_before_any_work() -> None:
    with pytest.raises(ValueError, match="'same'"):
        run_folder_task("sr4", "mse_net", fit_split="matched", **SMALL)
    with pytest.raises(ValueError, match="unknown run options"):
        launch(1, task="sr4", restorer="mse_net", data=str(PHOTOS), n_eval=5)
    with pytest.raises(ValueError, match="remain to evaluate"):
        run_folder_task("sr4", "mse_net", **{**SMALL, "n_fit": 12})
    with pytest.raises(ValueError, match="fit_order must be one of shuffled, alternating"):
        run_folder_task("sr4", "mse_net", **{**SMALL, "fit_order": "sorted"})


def test_a_separate_fitting_folder_fits_there_and_evaluates_all_of_data(tmp_path) -> None:
    """The authors fit on ImageNet train and evaluate every val image: with ``fit_data`` the
    fitted images are those a one-folder run would fit on in that folder (same seed, same
    shuffle), and every image of ``data`` is evaluated."""
    import shutil

    files = sorted(ImageFolder(PHOTOS).files)
    for name, chosen in (("fit", files[:6]), ("val", files[6:])):
        (tmp_path / name).mkdir()
        for path in chosen:
            shutil.copy(path, tmp_path / name / path.name)
    options = {**SMALL, "max_eval": None, "alphas": [0.0], "decodes": ["direct"]}
    separate = run_folder_task("sr4", "mse_net", **{**options, "data": str(tmp_path / "val"),
                                                    "fit_data": str(tmp_path / "fit")})
    alone = run_folder_task("sr4", "mse_net", **{**options, "data": str(tmp_path / "fit")})
    assert set(separate.table.n_images) == {len(files) - 6} and "from " in separate.description
    fitted = [run.table.latent_w2_fitted.dropna().iloc[0] for run in (separate, alone)]
    assert fitted[0] == pytest.approx(fitted[1], rel=1e-9)          # the same 4 images fitted
    with pytest.raises(ValueError, match="holds 6 images; the designs fit on 8"):
        run_folder_task("sr4", "mse_net", **{**options, "n_fit": 8, "data": str(tmp_path / "val"),
                                             "fit_data": str(tmp_path / "fit")})


def test_the_alternating_order_fits_even_names_as_target_and_odd_ones_as_source(tmp_path) -> None:
    """``fit_order="alternating"`` (the authors' DDRM run): of the fitting folder's files in name
    order, the even ones are the target and the odd ones the source. A shuffled run on the same
    photos, named so that its seeded shuffle picks those targets and sources, measures the same."""
    import shutil

    files = sorted(ImageFolder(PHOTOS).files)
    fit, val, shuffled = tmp_path / "fit", tmp_path / "val", tmp_path / "shuffled"
    for folder in (fit, val, shuffled):
        folder.mkdir()
    for index, path in enumerate(files[:4]):            # photos 0 and 2 are targets, 1 and 3 sources
        shutil.copy(path, fit / f"{index}{path.suffix}")
    for path in files[4:7]:
        shutil.copy(path, val / path.name)
    order = torch.randperm(4, generator=torch.Generator().manual_seed(0)).tolist()
    for position, photo in zip(order, (0, 2, 1, 3)):    # the shuffle's first two: targets, next two: sources
        shutil.copy(files[photo], shuffled / f"{position}{files[photo].suffix}")
    options = {**SMALL, "max_eval": None, "alphas": [0.0, 0.5], "decodes": ["direct"], "n_fit": 2,
               "fit_split": "disjoint", "data": str(val), "seed": 0}
    alternating = run_folder_task("sr4", "mse_net", **options, fit_data=str(fit), fit_order="alternating")
    reference = run_folder_task("sr4", "mse_net", **options, fit_data=str(shuffled))
    _compare(alternating.table, reference.table)
    assert "alternating in name order" in alternating.description
    swapped = run_folder_task("sr4", "mse_net", **options, fit_data=str(fit))   # another pick: another operator
    assert swapped.table.latent_w2_fitted.dropna().iloc[0] != pytest.approx(
        alternating.table.latent_w2_fitted.dropna().iloc[0], rel=1e-6)


def test_a_run_killed_midway_resumes_to_the_uninterrupted_metrics(tmp_path, monkeypatch) -> None:
    """Checkpoints every batch; a run stopped after 2 of 3 batches and restarted gives the
    uninterrupted run's table and kept images exactly (FID, KID and IS states included)."""
    import dotlib.runner as runner
    from dotlib.standins import _write_inception

    _write_inception(tmp_path / "inception-2015-12-05.pt", seed=0)
    monkeypatch.setenv("DOTLIB_INCEPTION_PATH", str(tmp_path))
    config = dict(task="sr4", restorer="mse_net", alphas=[0.0, 0.5], decodes=["direct"],
                  **{**SMALL, "inception": True, "kid_subsets": 3, "kid_subset_size": 4, "is_splits": 2})
    whole = run_folder_task(**config)
    folder = tmp_path / "checkpoint"
    real, calls = runner._batch_signals, []

    def dies_at_the_third_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "_batch_signals", dies_at_the_third_batch)
    with pytest.raises(KeyboardInterrupt):
        run_folder_task(**config, checkpoint_dir=str(folder), checkpoint_every=1)
    assert (folder / "rank0-of-1.pt").exists()
    with pytest.raises(ValueError, match=r"other settings \(alphas\)"):
        run_folder_task(**{**config, "alphas": [0.0]}, checkpoint_dir=str(folder))
    monkeypatch.setattr(runner, "_batch_signals", real)
    resumed = run_folder_task(**config, checkpoint_dir=str(folder), checkpoint_every=1)
    assert not (folder / "rank0-of-1.pt").exists()
    log = (folder / "rank0.log").read_text().splitlines()
    assert any(line.endswith("resumed after 2 batches") for line in log) and log[-1].endswith("finished")
    assert sum(" batch 3/3 " in line for line in log) == 1
    assert {"fid", "kid", "is"} <= set(whole.table.columns) and whole.table["kid"].notna().all()
    pd.testing.assert_frame_equal(resumed.table, whole.table, check_exact=True)
    assert resumed.photos == whole.photos
    for key, images in whole.images.items():
        assert torch.equal(resumed.images[key], images), key


def test_sampled_latents_come_from_one_batched_encode_with_a_generator_per_image(tmp_path) -> None:
    """The authors sample the VAE posterior: each image's noise comes from a generator seeded by its
    file position, so the batched encode gives the per-image samples (to float rounding), and a
    different position gives a different sample."""
    from dotlib.encoders import load_encoder
    from dotlib.runner import _encoded
    from dotlib.standins import _write_vae

    _write_vae(tmp_path / "vae", seed=0)   # an AutoencoderKL (SD's layout, random weights): a posterior to sample
    vae = load_encoder(str(tmp_path / "vae"), sample=True)
    images = ImageFolder(PHOTOS, resize=32, crop=32)
    batch = torch.stack([images[i] for i in range(3)])
    positions = torch.tensor([5, 9, 2])
    batched = _encoded(vae, batch, positions, seed=4)
    alone = torch.cat([vae.encode(image[None], generator=torch.Generator().manual_seed(4 + int(p)))
                       for image, p in zip(batch, positions)])
    torch.testing.assert_close(batched, alone, rtol=0, atol=1e-5)
    moved = _encoded(vae, batch, positions + 1, seed=4)
    assert float((moved - batched).abs().max()) > 1e-2


def test_paired_degraded_inputs_are_read_instead_of_made(tmp_path) -> None:
    """With ``degraded_data`` each y is read from the file of its image's stem: files holding exactly
    what the protocol makes (float TIFFs of the authors' ×4 downsampling) give the made-y run's
    metrics; a folder that lacks one input, or whose inputs are not at 1/4 of their photo, fails
    before any work."""
    import tifffile

    from dotlib.data import load_image
    from dotlib.protocol import authors_clean, authors_degrade
    from dotlib.cli import save_png

    clean, degraded_dir = tmp_path / "clean", tmp_path / "degraded"
    clean.mkdir(), degraded_dir.mkdir()
    for path in sorted(PHOTOS.glob("*.png")):
        save_png(authors_clean(load_image(path), 48), clean / path.name)
        y = authors_degrade("sr4", load_image(clean / path.name))
        tifffile.imwrite(degraded_dir / f"{path.stem}.tif", y.permute(1, 2, 0).numpy(), photometric="rgb")
    config = dict(task="sr4", restorer="bicubic", alphas=[0.0], decodes=["direct"], protocol="authors",
                  **{**SMALL, "data": str(clean)})
    made = run_folder_task(**config)
    read = run_folder_task(**config, degraded_data=str(degraded_dir))
    _compare(made.table, read.table)
    assert "y read from" in read.description and "y read from" not in made.description
    torch.testing.assert_close(read.images["y"], made.images["y"], rtol=0, atol=0)

    (degraded_dir / "forest_path.tif").unlink()
    with pytest.raises(FileNotFoundError, match="holds no input for 1 of the"):
        run_folder_task(**config, degraded_data=str(degraded_dir))
    for path in degraded_dir.glob("*.tif"):   # at 1/3 of the photo: not task sr4's inputs
        tifffile.imwrite(path, np.zeros((16, 16, 3), np.float32), photometric="rgb")
    tifffile.imwrite(degraded_dir / "forest_path.tif", np.zeros((16, 16, 3), np.float32), photometric="rgb")
    with pytest.raises(ValueError, match="degrades by 4"):
        run_folder_task(**config, degraded_data=str(degraded_dir))


def test_unclipped_restorations_are_encoded_and_mixed_but_measured_clipped() -> None:
    """``clip_x_star=False`` (the authors): the NLM's outputs, which leave [0, 1] on noisy inputs, are
    encoded and mixed as they are, so x̂α moves, while the x* row (measured clipped, as theirs) and
    y do not."""
    from dotlib.restorers import get_restorer
    from dotlib.protocol import prepare

    x, y = prepare(PHOTOS / "kite_blue_sky.png", "awgn50", protocol="authors", size=48, seed=1)
    model = get_restorer("global_nlm", "awgn50")
    model.clip = False
    raw = model(y[None])
    assert float(raw.min()) < 0.0 or float(raw.max()) > 1.0   # there is something to clip
    config = dict(task="awgn50", restorer="global_nlm", alphas=[0.0, 0.5], decodes=["direct"], protocol="authors",
                  **SMALL)
    clipped = run_folder_task(**config).table.set_index("signal")
    unclipped = run_folder_task(**config, clip_x_star=False).table.set_index("signal")
    for signal in ("x_star", "y", "xe"):
        assert unclipped.loc[signal, "psnr"] == clipped.loc[signal, "psnr"], signal
    moved = unclipped.loc["x_alpha", "psnr"].to_numpy() - clipped.loc["x_alpha", "psnr"].to_numpy()
    assert np.all(np.isfinite(moved)) and np.abs(moved).max() > 1e-4
