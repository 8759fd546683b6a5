"""The authors' global non-local means (dotlib.global_nlm), against its definition written out pixel
by pixel, the authors' tiling rule, and a known photo.

Parity with the authors' own code (their nlm.py and tile.py, run by hand) is recorded in
benchmarks/results/global_nlm_parity.txt.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dotlib.global_nlm import global_nlm, nlm_tile, tile_origins
from dotlib.protocol import prepare
from dotlib.restorers import get_restorer

SIGMA = 50.0 / 255.0


def nlm_by_definition(tile: np.ndarray, sigma: float, patch: int) -> np.ndarray:
    """x̂_i = Σ_{j≠i} w_ij y_j, w_ij ∝ exp(−‖n_i − n_j‖ / (2 ⌊p/2⌋ σ²)), n_i the edge-padded p×p
    neighbourhood of pixel i without its centre (all channels), one pixel at a time."""
    channels, height, width = tile.shape
    half = patch // 2
    padded = np.pad(tile, ((0, 0), (half, half), (half, half)), mode="edge")
    pixels = [(r, c) for r in range(height) for c in range(width)]

    def neighbourhood(r: int, c: int) -> np.ndarray:
        block = padded[:, r:r + patch, c:c + patch].reshape(channels, -1)
        return np.delete(block, patch * patch // 2, axis=1).ravel()

    vectors = np.stack([neighbourhood(r, c) for r, c in pixels])
    out = np.zeros_like(tile, dtype=np.float64)
    for i, (r, c) in enumerate(pixels):
        distance = np.sqrt(((vectors - vectors[i]) ** 2).sum(axis=1))
        weight = np.exp(-distance / (2.0 * half * sigma ** 2))
        weight[i] = 0.0
        out[:, r, c] = (tile.reshape(channels, -1) * weight).sum(axis=1) / weight.sum()
    return out


@pytest.mark.parametrize("patch", [3, 5])
def test_one_tile_equals_the_definition(patch):
    tile = torch.rand(1, 3, 7, 9, generator=torch.Generator().manual_seed(patch))
    expected = nlm_by_definition(tile[0].double().numpy(), sigma=0.3, patch=patch)
    np.testing.assert_allclose(nlm_tile(tile, 0.3, patch)[0].double().numpy(), expected, atol=1e-6)


def test_tile_origins_follow_the_authors_grid():
    """Stride t − ⌊t/4⌋ = 24 for 32-px tiles; a last tile flush with the far edge when the grid stops short."""
    assert tile_origins(512, 32) == list(range(0, 481, 24))      # (512 − 32) % 24 == 0: no extra tile
    assert tile_origins(100, 32) == [0, 24, 48, 68]
    assert tile_origins(20, 20) == [0]


def test_tiled_output_is_the_uniform_mean_of_overlapping_tiles():
    images = torch.rand(2, 3, 40, 50, generator=torch.Generator().manual_seed(1))
    total, count = torch.zeros(2, 3, 40, 50, dtype=torch.float64), torch.zeros(1, 1, 40, 50, dtype=torch.float64)
    for top in (0, 8):             # 40 rows: origins 0, then 8 flush with the bottom
        for left in (0, 18):       # 50 columns: 0, then 18
            total[..., top:top + 32, left:left + 32] += nlm_tile(images[..., top:top + 32, left:left + 32], SIGMA, 5)
            count[..., top:top + 32, left:left + 32] += 1
    torch.testing.assert_close(global_nlm(images, SIGMA), (total / count).float(), rtol=0, atol=1e-6)


def test_a_constant_image_stays_constant():
    image = torch.full((1, 3, 45, 45), 0.4)
    torch.testing.assert_close(global_nlm(image, SIGMA), image, rtol=0, atol=1e-6)


def test_denoises_a_photo_as_the_authors_setting_does():
    """AWGN σ = 50 on a smooth 128² photo prepared the authors' way (measured 15.0 -> 29.2 dB; a textured
    one, moss_closeup, gains only 3.1 dB); the restorer clips to [0, 1]."""
    x, y = prepare("dotlib/photos/kite_blue_sky.png", "awgn50", protocol="authors", size=128, seed=3)
    restored = get_restorer("global_nlm", "awgn50")(y[None])[0]

    def psnr(image):
        return -10.0 * math.log10(float(((image.clamp(0, 1) - x) ** 2).mean()))

    assert psnr(restored) > psnr(y) + 10.0
    assert float(restored.min()) >= 0.0 and float(restored.max()) <= 1.0


def test_refuses_tasks_that_are_not_pure_denoising():
    with pytest.raises(ValueError, match="global_nlm denoises white noise"):
        get_restorer("global_nlm", "sr4_awgn50")
    with pytest.raises(ValueError, match="sigma must be positive"):
        global_nlm(torch.rand(1, 3, 8, 8), 0.0)
