"""Latent DOT (dotlib.latent_ot): fitting, transport, eq. (2), persistence, distributed fitting."""

import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from dotlib.data import PHOTO_POOL, embedded_crops, load_photo, photo_pool
from dotlib.encoders import load_encoder
from dotlib.gaussian import GaussianStats, w2
from dotlib.latent_ot import LatentOT
from dotlib.patches import iter_valid_patches


def uniform_images(n, size=48, seed=0):
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def blurry(images, factor=4):
    """Bicubic x``factor`` down- then upsampling: the stand-in restorer of issue 3."""
    size = images.shape[-2:]
    small = F.interpolate(images, scale_factor=1 / factor, mode="bicubic", antialias=True)
    return F.interpolate(small, size=size, mode="bicubic").clamp(0, 1)


def smooth_fields(n, blur, size=64, seed=0, white=0.0):
    """Stationary Gaussian fields ``[n, 3, size, size]``: white noise, separable Gaussian blur,
    plus independent white noise of std ``white`` (keeps patch covariances well conditioned)."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 3, size, size, generator=generator, dtype=torch.float64)
    taps = torch.exp(-torch.arange(-3, 4, dtype=torch.float64) ** 2 / (2 * blur ** 2))
    taps = (taps / taps.sum()).repeat(3, 1, 1, 1)
    rows = F.conv2d(F.pad(noise, (3, 3, 0, 0), mode="circular"), taps, groups=3)
    fields = F.conv2d(F.pad(rows, (0, 0, 3, 3), mode="circular"), taps.transpose(2, 3), groups=3)
    return (fields + white * torch.randn(fields.shape, generator=generator, dtype=torch.float64)).float()


def patch_stats(latents, patch_size):
    stats = GaussianStats(latents.shape[1] * patch_size ** 2)
    for block in iter_valid_patches(latents, patch_size):
        stats.update(block)
    return stats


def moved_latents(model, latents, alpha=0.0, zero_shot=False):
    """The latent step of LatentOT.apply: every patch of ``latents`` moved by T_α, folded back."""
    own = model._own_operators(latents) if zero_shot else None
    return model._move(latents, alpha, model._generator(), own)


def relative(a, b):
    return float((a - b).norm() / b.norm())


def fitted_on_latents(source, target, patch_size, **options):
    """A pixel-encoder LatentOT fitted directly on latent tensors (values need not lie in [0, 1])."""
    model = LatentOT("pixel", patch_size=patch_size, **options)
    for latents, stats in ((source, model.source), (target, model.target)):
        for block in iter_valid_patches(latents, patch_size):
            stats.update(block)
    model.fit()
    return model


# ------------------------------------------------------------------ the method


def test_self_transport_returns_the_input():
    """Source = target: T is the identity, so x̂0 = x (pixel encoder)."""
    x = uniform_images(6)
    model = LatentOT("pixel", patch_size=5).update(x, "source").update(x, "target")
    assert model.fit() == pytest.approx(0.0, abs=1e-12)
    assert (model.transport(x) - x).abs().max() <= 1e-5


def test_self_transport_of_photos_with_exact_map():
    """Photo patches are nearly singular in pixel space (λmin ≈ 2e-5): only eps = 0 gives back x."""
    x = embedded_crops("target", 64, n=8, seed=0)
    model = LatentOT("pixel", patch_size=5, eps=0.0).update(x, "source").update(x, "target")
    model.fit()
    assert (model.transport(x) - x).abs().max() <= 1e-5
    # the published ridge (1e-7) is not negligible against λ(ΣsΣt) ≈ λ² ≈ 3e-10 here
    ridged = LatentOT("pixel", patch_size=5, eps=1e-7).update(x, "source").update(x, "target")
    ridged.fit()
    assert (ridged.transport(x) - x).abs().max() > 1e-3


def test_transported_statistics_match_target_for_single_pixels():
    """p = 1 (no folding): transported samples have exactly the target mean and covariance."""
    source = smooth_fields(16, blur=1.5, seed=1)
    target = smooth_fields(16, blur=0.5, seed=2) * 0.5 + 0.2
    model = fitted_on_latents(source, target, 1)
    moved = patch_stats(moved_latents(model, source), 1)
    assert relative(moved.mean, model.target.mean) < 1e-4
    assert relative(moved.cov, model.target.cov) < 1e-4
    assert relative(model.source.cov, model.target.cov) > 0.5
    # a fresh source sample, not the one fitted on: up to sampling error
    fresh = patch_stats(moved_latents(model, smooth_fields(16, blur=1.5, seed=3)), 1)
    assert relative(fresh.cov, model.target.cov) < 0.1


def test_transported_patches_match_target_and_folding_reduces_w2():
    """p = 5: moved patches match the target exactly; after folding (averaging the overlaps)
    the latent keeps the target mean and is much closer to the target law than the source was."""
    source = smooth_fields(16, blur=1.5, seed=1, white=0.05)
    target = smooth_fields(16, blur=0.5, seed=2) * 0.5 + 0.2
    model = fitted_on_latents(source, target, 5, eps=0.0)  # the exact map (no ridge)
    assert model.operator.noise_root is None  # Σs is positive definite: the plain map
    patches = torch.cat(list(iter_valid_patches(source, 5))).double()
    move = model.operator.patch_function(0.0, torch.float64, None)
    moved = GaussianStats(75).update(move(patches.T[None])[0].T)
    assert relative(moved.mean, model.target.mean) < 1e-6
    assert relative(moved.cov, model.target.cov) < 1e-4
    folded = patch_stats(moved_latents(model, source), 5)
    assert (folded.mean - model.target.mean).abs().max() < 5e-3
    before = w2(model.source.mean, model.source.cov, model.target.mean, model.target.cov)
    after = w2(folded.mean, folded.cov, model.target.mean, model.target.cov)
    assert after < 0.3 * before


def test_zero_shot_uses_each_images_own_statistics():
    """Zero-shot, p = 1: every transported image has exactly the target's pixel mean and covariance."""
    target = smooth_fields(8, blur=0.5, seed=2) * 0.5 + 0.2
    model = LatentOT("pixel", patch_size=1)
    model.target.update(target.permute(0, 2, 3, 1).reshape(-1, 3))
    with pytest.raises(RuntimeError, match="not fitted"):
        model.transport(uniform_images(1, 24))
    images = smooth_fields(3, blur=1.5, seed=5)
    moved = moved_latents(model, images, zero_shot=True)
    for image in moved:
        stats = GaussianStats(3).update(image.permute(1, 2, 0).reshape(-1, 3))
        assert relative(stats.cov, model.target.cov) < 1e-4
        assert relative(stats.mean, model.target.mean) < 1e-4
    x = uniform_images(2, 24, seed=6)
    assert model.transport(x, zero_shot=True).shape == x.shape


def test_alpha_one_returns_x_star_exactly():
    source, target = blurry(uniform_images(4, 32, seed=1)), uniform_images(4, 32, seed=2)
    model = LatentOT("pixel", patch_size=3).update(source, "source").update(target, "target")
    model.fit()
    x_star = blurry(uniform_images(2, 32, seed=3))
    out = model.transport(x_star, alpha=1.0)
    assert torch.equal(out, x_star) and out.data_ptr() != x_star.data_ptr()


def test_eq2_mixing_and_latent_mode():
    source, target = blurry(uniform_images(4, 32, seed=1)), uniform_images(4, 32, seed=2)
    # bicubic x4 patches are nearly singular (λmin(Σs) ≈ 1e-7 with pixel latents in [-1, 1]):
    # an absolute ridge of 1e-6 sends them to the degenerate map (the relative default does not)
    model = LatentOT("pixel", patch_size=3, ridge="absolute", eps=1e-6)
    model.update(source, "source").update(target, "target")
    model.fit()
    assert model.operator.noise_root is not None  # degenerate map
    x_star = blurry(uniform_images(2, 32, seed=3))
    x_hat0 = model.transport(x_star)
    assert torch.equal(model.transport(x_star, mode="latent"), x_hat0)
    half = model.transport(x_star, alpha=0.5)
    assert torch.allclose(half, 0.5 * x_hat0 + 0.5 * x_star, atol=1e-6)
    sweep = model.sweep(x_star, [0.0, 0.5, 1.0, 2.0])
    assert torch.equal(sweep[0], x_hat0) and torch.equal(sweep[2], x_star)
    assert torch.allclose(sweep[3], (2 * x_star - x_hat0).clamp(0, 1), atol=1e-6)
    # latent mode: T_α = (1-α) T + α id on latents (no clamping: compare latents)
    z = x_star
    for alpha in (0.3, 1.0, -0.5):
        moved = moved_latents(model, z, alpha)
        expected = (1 - alpha) * moved_latents(model, z) + alpha * z
        assert torch.allclose(moved, expected, atol=1e-5)


def test_unclipped_x_star_is_encoded_and_mixed_as_it_is():
    """``bounded=False`` (the authors' unclipped restorations): x̂0 = D(T(E(x*))) of x* itself and eq. (2)
    mixes x* itself, then clamps; α = 1 gives x* clamped. The default refuses such an x*."""
    source, target = blurry(uniform_images(4, 32, seed=1)), uniform_images(4, 32, seed=2)
    model = LatentOT("pixel", patch_size=3, clip_x_hat0=False).update(source, "source").update(target, "target")
    model.fit()
    x_raw = blurry(uniform_images(2, 32, seed=3)) * 4.0 - 1.5     # about [-0.7, 1.3]
    with pytest.raises(ValueError, match="x_star must lie in"):
        model.apply(x_raw, {"direct": [0.5]})
    out = model.apply(x_raw, {"direct": [0.0, 0.5, 1.0]}, bounded=False)["direct"]
    x_hat0 = model.encoder.decode(moved_latents(model, model.encoder.encode(x_raw, bounded=False)), clamp=False)
    assert torch.allclose(out[0], x_hat0.clamp(0, 1), atol=1e-5)
    assert torch.allclose(out[1], (0.5 * x_hat0 + 0.5 * x_raw).clamp(0, 1), atol=1e-5)
    assert torch.equal(out[2], x_raw.clamp(0, 1))
    with pytest.raises(ValueError, match="must be finite"):
        model.apply(x_raw * float("nan"), {"direct": [0.5]}, bounded=False)


def test_noise_is_seeded():
    source, target = blurry(uniform_images(4, 32, seed=1)), uniform_images(4, 32, seed=2)
    x_star = blurry(uniform_images(2, 32, seed=3))
    outputs = []
    for seed in (0, 0, 1):
        model = LatentOT("pixel", patch_size=3, ridge="absolute", eps=1e-6, seed=seed)  # degenerate map (noise)
        model.update(source, "source").update(target, "target")
        model.fit()
        outputs.append(model.transport(x_star))
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.allclose(outputs[0], outputs[2])


def test_apply_serves_every_decoding_from_one_transport_and_takes_latents():
    """apply: several decodings in one call equal one sweep each (the same noise); given latents and
    the residual reference (what latent mode gives at α = 1) change nothing; batches of 2 of 3."""
    source, target = blurry(uniform_images(4, 32, seed=1)), uniform_images(4, 32, seed=2)
    model = LatentOT("pixel", patch_size=3, ridge="absolute", eps=1e-6, batch_size=2)
    model.update(source, "source").update(target, "target")
    model.fit()
    assert model.operator.noise_root is not None  # degenerate map: noise
    x_star = blurry(uniform_images(3, 32, seed=3))
    sweeps = {"direct": [0.0, 0.5, 1.0], "residual": [1.0, -0.5]}
    both = model.apply(x_star, sweeps)
    assert both["direct"].shape == (3, *x_star.shape) and both["residual"].shape == (2, *x_star.shape)
    for decode, alphas in sweeps.items():
        assert torch.equal(both[decode], model.sweep(x_star, alphas, decode=decode))
    latents = model.encoder.encode(x_star)
    reference = model.apply(x_star, {"direct": [1.0]}, mode="latent")["direct"][0]
    given = model.apply(x_star, sweeps, latents=latents, reference=reference)
    assert all(torch.equal(given[decode], both[decode]) for decode in sweeps)
    for mode in ("pixel", "latent"):
        residual = model.apply(x_star, {"residual": [0.0, 0.3]}, latents=latents, mode=mode)["residual"]
        assert torch.equal(residual, model.sweep(x_star, [0.0, 0.3], mode=mode, decode="residual"))


def test_patch_features_are_the_fitted_samples():
    x = uniform_images(3, 20, seed=4) ** 3
    model = LatentOT("pixel", patch_size=3, max_patches=50).update(x, "source")
    features = model.patch_features(x)
    assert features.shape == (3 * 18 * 18, 27)
    stats = GaussianStats(27).update(features)
    assert torch.allclose(stats.cov, model.source.cov, atol=1e-12)
    assert torch.allclose(stats.mean, model.source.mean, atol=1e-12)


def test_chunked_transport_and_gaussian_folding():
    source, target = uniform_images(4, 40, seed=1), uniform_images(4, 40, seed=2) ** 2
    x_star = uniform_images(3, 40, seed=3)
    full = LatentOT("pixel", patch_size=5).update(source, "source").update(target, "target")
    full.fit()
    chunked = LatentOT("pixel", patch_size=5, max_patches=300, batch_size=2)
    chunked.update(source, "source").update(target, "target")
    chunked.fit()
    assert torch.allclose(chunked.source.cov, full.source.cov, atol=1e-12)
    assert torch.allclose(chunked.transport(x_star), full.transport(x_star), atol=1e-6)
    weighted = LatentOT("pixel", patch_size=5, fold_sigma=1.0).update(source, "source").update(target, "target")
    weighted.fit()
    assert not torch.allclose(weighted.transport(x_star), full.transport(x_star), atol=1e-3)


# ----------------------------------------------------------------- persistence


def test_save_load_is_bit_identical(tmp_path):
    source, target = blurry(uniform_images(4, 32, seed=1)), uniform_images(4, 32, seed=2)
    model = LatentOT("pixel", patch_size=3, eps=1e-6, seed=7).update(source, "source").update(target, "target")
    latent_w2 = model.fit()
    path = model.save(tmp_path / "op.safetensors")
    loaded = LatentOT.load(path)
    assert (loaded.patch_size, loaded.eps, loaded.seed, loaded.latent_w2) == (3, 1e-6, 7, latent_w2)
    assert loaded.source.count == model.source.count == 4 * 30 * 30
    x_star = blurry(uniform_images(2, 32, seed=3))
    for alpha in (0.0, 0.4):
        assert torch.equal(loaded.transport(x_star, alpha=alpha), model.transport(x_star, alpha=alpha))
    # statistics travel too: refitting the loaded model gives the same operator
    loaded.fit()
    assert torch.equal(loaded.operator.matrix, model.operator.matrix)


def test_load_refuses_a_mismatched_encoder(tmp_path):
    from diffusers import AutoencoderKL

    x = uniform_images(2, 32)
    model = LatentOT("pixel", patch_size=3).update(x, "source").update(x, "target")
    model.fit()
    path = model.save(tmp_path / "op.safetensors")
    torch.manual_seed(0)
    AutoencoderKL(block_out_channels=(8,), down_block_types=("DownEncoderBlock2D",),
                  up_block_types=("UpDecoderBlock2D",), latent_channels=3, layers_per_block=1,
                  norm_num_groups=4).save_pretrained(tmp_path / "vae")
    with pytest.raises(ValueError, match="fitted with encoder 'pixel'"):
        LatentOT.load(path, encoder=tmp_path / "vae")
    assert LatentOT.load(path, encoder=load_encoder("pixel")).fitted


def test_load_refuses_retrained_weights(tmp_path):
    from diffusers import AutoencoderKL

    def save_vae(seed):
        torch.manual_seed(seed)
        AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                      up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, layers_per_block=1,
                      norm_num_groups=4).save_pretrained(tmp_path / "vae")

    save_vae(0)
    x = uniform_images(2, 16)
    model = LatentOT(tmp_path / "vae", patch_size=3).update(x, "source").update(x ** 2, "target")
    model.fit()
    path = model.save(tmp_path / "op.safetensors")
    assert torch.equal(LatentOT.load(path).transport(x), model.transport(x))
    save_vae(1)  # same folder and architecture, new weights: another latent space
    with pytest.raises(ValueError, match="other weights"):
        LatentOT.load(path)


# ------------------------------------------------------------ distributed fit


def _distributed_fit(rank, world_size, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        source, target = uniform_images(6, 32, seed=1) ** 2, uniform_images(6, 32, seed=2)
        model = LatentOT("pixel", patch_size=3)
        model.update(source[rank::world_size], "source").update(target[rank::world_size], "target")
        model.all_reduce()
        model.fit()
        model.save(os.path.join(out_dir, f"rank{rank}.safetensors"))
    finally:
        dist.destroy_process_group()


def test_two_process_fit_equals_one_process_fit(tmp_path):
    mp.spawn(_distributed_fit, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    source, target = uniform_images(6, 32, seed=1) ** 2, uniform_images(6, 32, seed=2)
    single = LatentOT("pixel", patch_size=3).update(source, "source").update(target, "target")
    single_w2 = single.fit()
    for rank in range(2):
        model = LatentOT.load(tmp_path / f"rank{rank}.safetensors")
        assert model.source.count == single.source.count
        assert model.latent_w2 == pytest.approx(single_w2, abs=1e-10)
        for mine, theirs in ((model.source, single.source), (model.target, single.target)):
            assert (mine.mean - theirs.mean).abs().max() <= 1e-10
            assert (mine.cov - theirs.cov).abs().max() <= 1e-10
        assert (model.operator.matrix - single.operator.matrix).abs().max() <= 1e-10


# -------------------------------------------------------------------- errors


def test_errors():
    x = uniform_images(2, 32)
    model = LatentOT("pixel", patch_size=3)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.transport(x)
    with pytest.raises(ValueError, match="source statistics hold 0"):
        model.update(x, "target").fit()
    with pytest.raises(ValueError, match="odd"):
        LatentOT("pixel", patch_size=4)
    with pytest.raises(ValueError, match="which"):
        model.update(x, "restored")
    with pytest.raises(ValueError, match="smaller than a 5x5 patch"):
        LatentOT("pixel", patch_size=5).update(uniform_images(1, 4), "source")
    model.update(x, "source").fit()
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        model.transport(torch.rand(1, 4, 32, 32))
    with pytest.raises(ValueError, match="NaN"):
        model.transport(torch.full((1, 3, 32, 32), math.nan))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.transport(x * 255)
    with pytest.raises(ValueError, match="mode"):
        model.transport(x, mode="pixels")
    with pytest.raises(ValueError, match="decode must be one of"):
        model.apply(x, {"indirect": [0.0]})
    with pytest.raises(ValueError, match="sweeps must map"):
        model.apply(x, [0.0])
    with pytest.raises(ValueError, match="non-empty"):
        model.sweep(x, [])
    with pytest.raises(ValueError, match="latents must be"):
        model.apply(x, {"direct": [0.0]}, latents=torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match="reference must be"):
        model.apply(x, {"residual": [0.0]}, reference=x[:1])


# ------------------------------------------------------- the embedded encoder


def _embedded_fit_and_transport(size, n_fit, n_transport):
    # the study's photo pool at this size: its wallpapers are 512², photos are never upscaled
    images, _ = photo_pool(size, crops_per_photo=4,
                           names=[name for name in PHOTO_POOL if min(load_photo(name).shape[-2:]) >= size])
    n_fit = min(n_fit, (images.shape[0] - n_transport) // 2)   # 512²: 13 photos, one crop each
    target = images[0:2 * n_fit:2]
    source = blurry(images[1:2 * n_fit:2])
    x_star = blurry(images[2 * n_fit:2 * n_fit + n_transport])
    model = LatentOT("embedded", patch_size=5)
    model.update(source, "source").update(target, "target")
    latent_w2 = model.fit()
    assert math.isfinite(latent_w2) and latent_w2 > 0
    out = model.transport(x_star)
    assert out.shape == x_star.shape and torch.isfinite(out).all() and 0 <= out.min() and out.max() <= 1
    assert (out - x_star).abs().mean() > 1e-3
    # on the fitted restorations, the folded transported latents are much closer to the target law
    latents = model.encoder.encode(source)     # all of them: their Gaussian is the fitted source law
    before, after = patch_stats(latents, 5), patch_stats(moved_latents(model, latents), 5)
    target_stats = model.target
    assert w2(after.mean, after.cov, target_stats.mean, target_stats.cov) < \
        0.5 * w2(before.mean, before.cov, target_stats.mean, target_stats.cov)


def test_embedded_fit_and_transport_small():
    _embedded_fit_and_transport(256, n_fit=2, n_transport=1)


@pytest.mark.slow
@pytest.mark.parametrize("size", [256, 512])
def test_embedded_fit_up_to_16_plus_16_and_transport(size):
    _embedded_fit_and_transport(size, n_fit=16, n_transport=2)


# ------------------------------------------------------------------ notebook


def test_notebook_02_runs_and_saves_a_loadable_operator(tmp_path):
    import pandas as pd
    import papermill

    from dotlib.paths import project_root

    root = project_root(os.path.dirname(__file__))
    papermill.execute_notebook(
        str(root / "notebooks" / "02_fit_latent_ot.ipynb"), str(tmp_path / "02.ipynb"),
        parameters=dict(encoder="pixel", patch_size=3, task="sr4", restorer="bicubic", n_fit=2,
                        resolution=32, crops_per_photo=1, batch_size=2, output_dir=str(tmp_path)),
        kernel_name="python3", cwd=str(root), progress_bar=False,
    )
    model = LatentOT.load(tmp_path / "operators" / "sr4__bicubic__pixel__p3.safetensors")
    # the authors' design: 2 crops of the pool for the target, their restorations for the source
    assert model.fitted and model.target.count == model.source.count == 2 * 30 * 30
    assert model.latent_w2 > 0
    for suffix in ("png", "pdf"):
        assert (tmp_path / "figures" / f"02_spectra_sr4__bicubic__pixel__p3.{suffix}").stat().st_size > 1000
    row = pd.read_csv(tmp_path / "tables" / "02_reconstruction_pixel.csv")
    assert row.loc[0, "n_photos"] >= 12                  # D(E(x)) on every crop of the photo pool
    assert row.loc[0, "ssim"] == pytest.approx(1.0)  # the identity reconstructs exactly
    # pixel latents are 2x - 1 in float32: the round trip rounds below x = 0.25 (<= 1.5e-8)
    assert row.loc[0, "psnr"] > 140
