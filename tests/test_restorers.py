"""Restorers: interface, classical methods against theory, committed MSE nets, spandrel loading."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dotlib.data import embedded_crops
from dotlib.degradations import TASKS, degrade
from dotlib.restorers import (
    CLASSICAL_RESTORERS,
    RESTORERS,
    ResidualShuffleCNN,
    bicubic_upsample,
    estimate_noise_sigma,
    get_restorer,
    lanczos_upsample,
    load_mse_net,
    mse_net_path,
    save_mse_net,
    tiled_apply,
)

SIGMA = 50.0 / 255.0


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 10 * torch.log10(1 / ((a.double() - b.double()) ** 2).flatten(1).mean(1))


@pytest.fixture(scope="module")
def small() -> torch.Tensor:
    return embedded_crops("eval", 32, 2, seed=1)


@pytest.mark.parametrize("task", list(TASKS))
@pytest.mark.parametrize("name", [*CLASSICAL_RESTORERS, "mse_net"])
def test_outputs_have_the_clean_size_and_lie_in_0_1(task, name, small):
    y = degrade(task, small, seed=0)
    x = get_restorer(name, task)(y)
    assert x.shape == small.shape and x.dtype == torch.float32 and x.device.type == "cpu"
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


def test_bicubic_is_torch_bicubic_and_identity_at_scale_1(small):
    y = degrade("sr4", small, seed=0)
    expected = torch.nn.functional.interpolate(y, scale_factor=4, mode="bicubic", align_corners=False)
    assert torch.equal(get_restorer("bicubic", "sr4")(y), expected.clamp(0, 1))
    noisy = degrade("awgn50", small, seed=0)
    assert torch.equal(get_restorer("bicubic", "awgn50")(noisy), noisy.clamp(0, 1))


def test_lanczos_interpolates_a_smooth_signal():
    """Sampled smooth sinusoids: Lanczos-3 is close to the true signal at the high-res pixel
    centres, more so than bicubic, and it keeps constants."""
    def sample(size: int, pixel: float) -> torch.Tensor:
        centres = (torch.arange(size, dtype=torch.float64) + 0.5) * pixel
        u, v = torch.meshgrid(centres, centres, indexing="ij")
        return (0.5 + 0.3 * torch.sin(2 * math.pi * u / 24) * torch.cos(2 * math.pi * v / 32)).float()

    low = sample(24, 4.0)[None, None].expand(1, 3, 24, 24)
    high = sample(96, 1.0)[None, None].expand(1, 3, 96, 96)
    inner = (..., slice(16, 80), slice(16, 80))
    lanczos_error = (lanczos_upsample(low, 4) - high)[inner].abs().max()
    bicubic_error = (bicubic_upsample(low, 4) - high)[inner].abs().max()
    assert lanczos_error < 0.01 and lanczos_error < bicubic_error
    constant = torch.full((1, 3, 5, 7), 0.25)
    assert torch.allclose(lanczos_upsample(constant, 4), torch.full((1, 3, 20, 28), 0.25), atol=1e-6)


def test_noise_estimate_matches_the_true_sigma():
    generator = torch.Generator().manual_seed(0)
    noise = (0.5 + SIGMA * torch.randn(256, 256, 3, generator=generator, dtype=torch.float64)).numpy()
    assert estimate_noise_sigma(noise) == pytest.approx(SIGMA, rel=0.03)
    assert estimate_noise_sigma(np.full((64, 64, 3), 0.3)) == 0.0


@pytest.mark.parametrize("name", ["nlm", "tv"])
def test_classical_denoisers_remove_most_of_the_noise(name):
    x = embedded_crops("eval", 64, 2, seed=2)
    y = degrade("awgn50", x, seed=0)
    gain = psnr(get_restorer(name, "awgn50")(y), x) - psnr(y.clamp(0, 1), x)
    assert float(gain.min()) > 6.0  # noisy input is at ~15 dB


def test_tiling_blends_tiles_into_the_untiled_result():
    generator = torch.Generator().manual_seed(0)
    y = torch.rand(2, 3, 37, 50, generator=generator)
    calls = []

    def nearest(tile: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(tile.shape[-2:]))
        return tile.repeat_interleave(2, -2).repeat_interleave(2, -1)

    tiled = tiled_apply(nearest, y, scale=2, tile=16, overlap=4)
    assert len(calls) == 2 * 3 * 4 and set(calls) == {(16, 16)}  # really tiled: 3 x 4 tiles per image
    assert torch.allclose(tiled, nearest(y), atol=1e-6)
    blur = torch.nn.Conv2d(3, 3, 3, padding=1, bias=False)
    torch.nn.init.constant_(blur.weight, 1 / 27)
    with torch.no_grad():  # a local filter: seams only where tiles see zero padding, small after blending
        assert (tiled_apply(blur, y, 1, 16, 6) - blur(y)).abs().max() < 0.05


def test_fresh_network_is_bicubic_and_handles_odd_sizes():
    y = torch.rand(1, 3, 9, 11)
    assert torch.allclose(ResidualShuffleCNN(4, 4)(y), bicubic_upsample(y, 4))
    assert ResidualShuffleCNN(1, 2)(y).shape == (1, 3, 9, 11)


def test_save_load_round_trip_and_wrong_task(tmp_path):
    torch.manual_seed(0)
    net = ResidualShuffleCNN(1, 2, channels=8, depth=3)
    torch.nn.init.normal_(net.tail.weight, std=0.01)
    path = save_mse_net(net, tmp_path / "net.safetensors", "jpeg10", steps="5")
    y = torch.rand(1, 3, 16, 16)
    assert torch.equal(load_mse_net(path, "jpeg10")(y), net.eval()(y))
    with pytest.raises(ValueError, match="trained for task 'jpeg10', not 'awgn50'"):
        load_mse_net(path, "awgn50")
    with pytest.raises(ValueError, match="trained for task 'sr4', not 'jpeg10'"):
        get_restorer("mse_net", "jpeg10", checkpoint=mse_net_path("sr4"))
    with pytest.raises(FileNotFoundError, match="00_train_embedded_restorers"):
        get_restorer("mse_net", "sr4", checkpoint=tmp_path / "missing.safetensors")


@pytest.fixture(scope="module")
def eval_crops() -> torch.Tensor:
    """The evaluation crops of notebooks/00_train_embedded_restorers.ipynb (results/train/restorers.csv)."""
    return embedded_crops("eval", 256, 8, seed=0)


@pytest.mark.parametrize("task", TASKS)
def test_mse_net_beats_every_classical_restorer(task, eval_crops):
    """Committed weights: the MSE nets are closer to the MMSE estimator than any classical method.

    Margins over the best classical restorer (results/train/restorers.csv): sr4 +0.77 dB,
    jpeg10 +0.08, awgn50 +1.15, sr4_jpeg10 +0.06, sr4_awgn50 +0.35.
    """
    y = degrade(task, eval_crops, seed=0)
    ours = float(psnr(get_restorer("mse_net", task)(y), eval_crops).mean())
    for name in CLASSICAL_RESTORERS:
        classical = float(psnr(get_restorer(name, task)(y), eval_crops).mean())
        assert ours > classical, (task, name, ours, classical)


# ----------------------------------------------------------------------------- spandrel


def _random_swinir(path, scale: int):
    from spandrel.architectures.SwinIR import SwinIR

    torch.manual_seed(0)
    model = SwinIR(img_size=16, embed_dim=12, depths=[1], num_heads=[2], window_size=4, mlp_ratio=2.0,
                   upscale=scale, upsampler="pixelshuffle" if scale > 1 else "")
    torch.save({"params": model.state_dict()}, path)
    return path


@pytest.fixture(scope="module")
def swinir_x4(tmp_path_factory):
    return _random_swinir(tmp_path_factory.mktemp("spandrel") / "swinir_x4.pth", 4)


def test_spandrel_swinir_restores_through_the_real_loader(swinir_x4):
    restorer = get_restorer(f"spandrel:{swinir_x4}", "sr4", tile=16, overlap=4)
    assert restorer.descriptor.architecture.name == "SwinIR" and restorer.descriptor.scale == 4
    y = torch.rand(2, 3, 20, 28)
    x = restorer(y)
    assert x.shape == (2, 3, 80, 112) and float(x.min()) >= 0 and float(x.max()) <= 1
    whole = get_restorer("swinir", "sr4", checkpoint=swinir_x4, tile=64)(y[:1])
    # one tile: exactly the model; tiles: the same model blended (a random net is not local, so close only)
    assert torch.allclose(whole, restorer.descriptor(y[:1]))
    assert float((x[:1] - whole).abs().mean()) < 0.05


def test_whole_image_restoration_runs_the_batch_at_once_and_tiles_only_when_memory_runs_out(swinir_x4, monkeypatch):
    """tile=None (the authors' protocol): the model on the whole batch; a CUDA out-of-memory error
    makes that batch go through 256-px tiles instead, with a warning and a count."""
    import dotlib.restorers as restorers

    restorer = get_restorer("swinir", "sr4", checkpoint=swinir_x4, tile=None, overlap=4)
    y = torch.rand(2, 3, 20, 28)
    assert torch.equal(restorer(y), restorer.descriptor(y).clamp(0, 1)) and restorer.fallbacks == 0
    whole = restorer.descriptor

    def out_of_memory(batch):
        if batch.shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return whole(batch)

    monkeypatch.setattr(restorer, "descriptor", out_of_memory)
    monkeypatch.setattr(restorers, "FALLBACK_TILE", 16)
    with pytest.warns(UserWarning, match="does not fit in device memory whole; restored on 16-px tiles"):
        fallen = restorer(y)
    assert restorer.fallbacks == 1
    assert torch.equal(fallen, restorers.tiled_apply(whole, y, 4, 16, 4).clamp(0, 1))


def test_spandrel_checkpoint_for_the_wrong_scale_is_refused(swinir_x4, tmp_path):
    with pytest.raises(ValueError, match=r"x4 SwinIR model, but task 'jpeg10' needs x1"):
        get_restorer("swinir", "jpeg10", checkpoint=swinir_x4)
    x1 = _random_swinir(tmp_path / "swinir_x1.pth", 1)
    with pytest.raises(ValueError, match="needs x4"):
        get_restorer("spandrel", "sr4_awgn50", checkpoint=x1)
    assert get_restorer("spandrel", "awgn50", checkpoint=x1)(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_missing_checkpoint_names_what_to_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth"):
        get_restorer("swinir", "sr4", checkpoint=tmp_path / "nowhere.pth")
    with pytest.raises(ValueError, match="Swin2SR_CompressedSR_X4_48.pth"):
        get_restorer("swin2sr", "sr4_jpeg10")
    with pytest.raises(FileNotFoundError, match="gaussian_color_denoising_sigma50.pth"):
        get_restorer(f"spandrel:{tmp_path / 'nowhere.pth'}", "awgn50")


# ----------------------------------------------------------------------------- errors


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match="known: " + ", ".join(RESTORERS)):
        get_restorer("bilinear", "sr4")
    with pytest.raises(ValueError, match="known tasks: sr4, jpeg10"):
        get_restorer("bicubic", "sr3")


def test_bad_observations_are_refused():
    restorer = get_restorer("bicubic", "sr4")
    with pytest.raises(ValueError, match=r"\[B, 3, h, w\]"):
        restorer(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match=r"\[B, 3, h, w\]"):
        restorer(torch.rand(1, 1, 8, 8))
    with pytest.raises(TypeError, match="floating-point"):
        restorer(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["bicubic", "nlm", "mse_net"])
def test_restorers_run_on_cuda(name, small):
    y = degrade("sr4_awgn50", small, seed=0)
    on_gpu = get_restorer(name, "sr4_awgn50", device="cuda")(y)
    assert on_gpu.device.type == "cuda"
    assert torch.allclose(on_gpu.cpu(), get_restorer(name, "sr4_awgn50")(y), atol=1e-4)


def test_training_resumes_exactly_where_it_stopped(tmp_path):
    from safetensors.torch import load_file

    from dotlib.training import train_restorer

    settings = dict(steps=4, batch_size=2, crop=16, monitor_every=100, checkpoint_every=2)
    train_restorer("awgn50", tmp_path / "whole.safetensors", tmp_path / "whole.pt", **settings)
    half = {**settings, "steps": 2}
    train_restorer("awgn50", tmp_path / "parts.safetensors", tmp_path / "parts.pt", **half)
    log = train_restorer("awgn50", tmp_path / "parts.safetensors", tmp_path / "parts.pt", **settings)
    whole, parts = load_file(tmp_path / "whole.safetensors"), load_file(tmp_path / "parts.safetensors")
    assert all(torch.equal(whole[key], parts[key]) for key in whole)
    assert list(log["step"]) == [2, 4] and not torch.equal(whole["tail.weight"], torch.zeros_like(whole["tail.weight"]))
    net = load_mse_net(tmp_path / "parts.safetensors", "awgn50")
    assert net.config == {"scale": 1, "body_factor": 2, "channels": 48, "depth": 8, "base_blur": 1.5,
                          "chroma_blur": 0.0, "residual_lowcut": 8.0}
    with pytest.raises(ValueError, match="belongs to task 'awgn50'"):
        train_restorer("jpeg10", tmp_path / "x.safetensors", tmp_path / "parts.pt", **settings)
