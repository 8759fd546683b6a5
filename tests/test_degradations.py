"""Degradations: determinism, sizes, statistics against theory and explicit kernels, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dotlib.data import embedded_crops
from dotlib.degradations import TASKS, degrade, get_degradation

SIGMA = 50.0 / 255.0


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return embedded_crops("eval", 128, 4, seed=0)


@pytest.mark.parametrize("task", list(TASKS))
def test_sizes_dtype_and_determinism(task, photos):
    y = degrade(task, photos, seed=3)
    scale = 4 if task.startswith("sr4") else 1
    assert get_degradation(task).scale == scale
    assert y.shape == (4, 3, 128 // scale, 128 // scale) and y.dtype == torch.float32
    assert torch.equal(y, degrade(task, photos, seed=3))
    other = degrade(task, photos, seed=4)
    assert torch.equal(y, other) == ("awgn" not in task)  # only noise depends on the seed


def test_registry_lists_the_published_tasks():
    assert list(TASKS) == ["sr4", "jpeg10", "awgn50", "sr4_jpeg10", "sr4_awgn50"]
    assert get_degradation("awgn50").noise_sigma == pytest.approx(SIGMA)
    assert get_degradation("sr4_jpeg10").noise_sigma is None


def test_awgn_is_unclipped_white_gaussian_noise_of_sigma_50():
    x = torch.full((2, 3, 64, 64), 0.5)
    noise = (degrade("awgn50", x, seed=0) - x).double().flatten()
    n = noise.numel()
    # sample std within 4 standard errors (sigma / sqrt(2n)) of 50/255, mean within 4 sigma/sqrt(n)
    assert abs(noise.std().item() - SIGMA) < 4 * SIGMA / math.sqrt(2 * n)
    assert abs(noise.mean().item()) < 4 * SIGMA / math.sqrt(n)
    # Gaussian: P(|n| < sigma) = erf(1/sqrt 2) = 0.6827
    inside = (noise.abs() < SIGMA).double().mean().item()
    assert abs(inside - math.erf(1 / math.sqrt(2))) < 0.015
    # white: neighbouring pixels uncorrelated
    field = noise.view(2, 3, 64, 64)
    lag1 = (field[..., 1:] * field[..., :-1]).mean().item() / SIGMA ** 2
    assert abs(lag1) < 0.03
    # unclipped: about 1.1 % of the samples leave [0, 1] for a mid-grey image (P(|n| > 0.5))
    outside = (noise.abs() > 0.5).double().mean().item()
    assert abs(outside - math.erfc(0.5 / SIGMA / math.sqrt(2))) < 0.004


def test_sr4_keeps_a_constant_image():
    x = torch.full((1, 3, 32, 48), 0.3)
    y = degrade("sr4", x, seed=0)
    assert y.shape == (1, 3, 8, 12)
    assert torch.allclose(y, torch.full_like(y, 0.3), atol=1e-6)


def _keys_cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys (1981) cubic convolution kernel; a = -0.5 is MATLAB's and Pillow's choice."""
    t = np.abs(t)
    return np.where(t <= 1, (a + 2) * t ** 3 - (a + 3) * t ** 2 + 1,
                    np.where(t < 2, a * t ** 3 - 5 * a * t ** 2 + 8 * a * t - 4 * a, 0.0))


def _downsampling_matrix(a: float, size: int = 64, factor: int = 4) -> np.ndarray:
    """Rows: Keys cubic stretched by ``factor`` around each output centre, normalised over
    the input pixels it covers (so truncated at the borders)."""
    matrix = np.zeros((size // factor, size))
    for j in range(size // factor):
        centre = (j + 0.5) * factor - 0.5  # output pixel centre in input coordinates
        weights = _keys_cubic((np.arange(size) - centre) / factor, a)
        matrix[j] = weights / weights.sum()
    return matrix


def test_sr4_is_the_antialiased_bicubic_kernel():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 64, 64, generator=generator) * 0.5 + 0.25  # no clipping in play
    y = degrade("sr4", x, seed=0)[0].double().numpy()
    image = x[0].double().numpy()
    for a, matches in ((-0.5, True), (-0.75, False)):  # the test tells the two kernels apart
        matrix = _downsampling_matrix(a)
        error = np.abs(y - np.einsum("ij,cjk,lk->cil", matrix, image, matrix)).max()
        assert (error < 1e-6) == matches, (a, error)


def test_jpeg10_quantises_and_makes_8x8_blocks(photos):
    y = degrade("jpeg10", photos, seed=0)
    assert torch.allclose(y * 255, (y * 255).round(), atol=1e-4)  # decoded 8-bit values

    def blockiness(images: torch.Tensor) -> float:
        """Mean |horizontal step| across 8x8 block borders over the mean step inside blocks."""
        steps = (images[..., 1:] - images[..., :-1]).abs()
        border = (torch.arange(steps.shape[-1]) % 8) == 7
        return float(steps[..., border].mean() / steps[..., ~border].mean())

    assert blockiness(photos) < 1.1
    assert blockiness(y) > 1.4
    psnr = 10 * torch.log10(1 / ((y - photos) ** 2).flatten(1).mean(1))
    # quality 10 on colour photos: ~25-28 dB in the literature (e.g. 25.7 dB on LIVE1)
    assert 24.0 < float(psnr.mean()) < 31.0


def test_chained_tasks_are_their_steps_in_order(photos):
    small = degrade("sr4", photos, seed=7)
    assert torch.equal(degrade("sr4_jpeg10", photos, seed=7), degrade("jpeg10", small, seed=7))
    assert torch.equal(degrade("sr4_awgn50", photos, seed=7), degrade("awgn50", small, seed=7))


def test_unknown_task_lists_the_known_ones(photos):
    with pytest.raises(ValueError, match="known tasks: sr4, jpeg10, awgn50, sr4_jpeg10, sr4_awgn50"):
        degrade("sr8", photos, seed=0)


@pytest.mark.parametrize("shape", [(1, 3, 2, 2), (1, 3, 66, 64), (1, 3, 64, 3)])
def test_sizes_that_do_not_divide_by_the_scale_are_refused(shape):
    with pytest.raises(ValueError, match="multiples of 4"):
        degrade("sr4_awgn50", torch.rand(shape), seed=0)
    assert degrade("jpeg10", torch.rand(shape), seed=0).shape == shape  # scale 1: any size


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        degrade("jpeg10", torch.rand(3, 16, 16), seed=0)
    with pytest.raises(TypeError, match="floating-point"):
        degrade("jpeg10", torch.zeros(1, 3, 16, 16, dtype=torch.uint8), seed=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        degrade("awgn50", torch.full((1, 3, 16, 16), 1.5), seed=0)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_same_result_on_cuda(photos):
    for task in TASKS:
        on_gpu = degrade(task, photos.cuda(), seed=1)
        assert on_gpu.device.type == "cuda"
        difference = (on_gpu.cpu() - degrade(task, photos, seed=1)).abs()
        if "jpeg" in task:  # a rounding flip before JPEG may move a few 8-bit levels
            assert float(difference.mean()) < 1e-3
        else:
            assert float(difference.max()) < 1e-5
