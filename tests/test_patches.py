"""Patch extraction and weighted folding (dotlib.patches)."""

import math

import pytest
import torch

from dotlib.patches import (
    extract_patches,
    fold_patches,
    folding_kernel,
    iter_valid_patches,
    map_patches,
)


@pytest.fixture
def latents():
    return torch.randn(2, 3, 9, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def test_shapes_valid_and_padded(latents):
    valid = extract_patches(latents, 5)
    assert valid.shape == (2, (9 - 4) * (12 - 4), 3 * 25)
    padded = extract_patches(latents, 5, pad=True)
    assert padded.shape == (2, 9 * 12, 75)
    # channel-major order, row-major positions: patch (row 2, col 3), channel 1, offset (4, 0)
    assert valid[1, 2 * 8 + 3, 1 * 25 + 4 * 5 + 0] == latents[1, 1, 2 + 4, 3 + 0]
    # padded patch l is centred on position l: its centre entry is the latent value there
    centre = 12  # offset (2, 2) in a 5x5 patch
    assert torch.equal(padded[:, :, centre], latents[:, 0].reshape(2, -1))
    # replicate padding: the top-left patch's corner repeats z[0, 0]
    assert torch.equal(padded[:, 0, 0], latents[:, 0, 0, 0])


@pytest.mark.parametrize("sigma", [None, 0.8, 3.0])
@pytest.mark.parametrize("pad", [False, True])
def test_fold_of_extract_is_identity(latents, sigma, pad):
    patches = extract_patches(latents, 5, pad=pad)
    folded = fold_patches(patches, latents.shape[-2:], 5, channels=3, pad=pad, sigma=sigma)
    assert folded.shape == latents.shape
    assert torch.allclose(folded, latents, atol=1e-6, rtol=0)


def test_fold_identity_float32():
    z = torch.rand(1, 4, 33, 20, generator=torch.Generator().manual_seed(1))
    for pad in (False, True):
        folded = fold_patches(extract_patches(z, 3, pad=pad), (33, 20), 3, 4, pad=pad, sigma=1.0)
        assert (folded - z).abs().max() < 1e-6


def test_fold_is_weighted_average_of_covering_patches():
    """Random (inconsistent) patches: compare with the definition, written as loops."""
    p, channels, height, width = 3, 2, 5, 6
    generator = torch.Generator().manual_seed(2)
    rows, cols = height - p + 1, width - p + 1
    patches = torch.randn(1, rows * cols, channels * p * p, generator=generator, dtype=torch.float64)
    sigma = 0.7
    kernel = [[math.exp(-((i - 1) ** 2 + (j - 1) ** 2) / (2 * sigma ** 2)) for j in range(p)] for i in range(p)]
    expected = torch.zeros(1, channels, height, width, dtype=torch.float64)
    for c in range(channels):
        for y in range(height):
            for x in range(width):
                num = den = 0.0
                for i in range(p):
                    for j in range(p):
                        r, s = y - i, x - j
                        if 0 <= r < rows and 0 <= s < cols:
                            num += kernel[i][j] * patches[0, r * cols + s, c * p * p + i * p + j].item()
                            den += kernel[i][j]
                expected[0, c, y, x] = num / den
    folded = fold_patches(patches, (height, width), p, channels, sigma=sigma)
    assert torch.allclose(folded, expected, atol=1e-12)
    uniform = fold_patches(patches, (height, width), p, channels)
    # the corner is covered by one patch only: its value passes through unchanged
    assert uniform[0, 0, 0, 0] == patches[0, 0, 0]


def test_folding_kernel():
    assert torch.equal(folding_kernel(3), torch.ones(3, 3))
    kernel = folding_kernel(5, sigma=1.0, dtype=torch.float64)
    assert kernel[2, 2] == 1.0
    assert kernel[2, 3] == pytest.approx(math.exp(-0.5))
    assert kernel[0, 0] == pytest.approx(math.exp(-4.0))
    with pytest.raises(ValueError, match="sigma"):
        folding_kernel(5, sigma=0.0)


def test_chunked_valid_patches_cover_all(latents):
    full = extract_patches(latents, 3).reshape(-1, 27)
    chunks = list(iter_valid_patches(latents, 3, max_patches=25))
    assert len(chunks) > 2
    together = torch.cat(chunks)
    assert together.shape == full.shape
    # the same patches in another order: equal sums and sums of outer products
    assert torch.allclose(together.sum(0), full.sum(0))
    assert torch.allclose(together.T @ together, full.T @ full)


@pytest.mark.parametrize("sigma", [None, 1.2])
def test_map_patches_chunked_equals_full(latents, sigma):
    weights = torch.randn(75, 75, generator=torch.Generator().manual_seed(3), dtype=torch.float64) / 10

    def move_rows(v):  # [B, L, D]
        return v @ weights + 0.5

    def move_columns(u):  # [B, D, N], the layout map_patches uses
        return weights.T @ u + 0.5

    for pad in (False, True):
        full = fold_patches(move_rows(extract_patches(latents, 5, pad=pad)), latents.shape[-2:], 5, 3,
                            pad=pad, sigma=sigma)
        chunked = map_patches(latents, 5, move_columns, sigma=sigma, max_patches=30, pad=pad)
        assert torch.allclose(chunked, full, atol=1e-12)
        assert torch.allclose(map_patches(latents, 5, move_columns, sigma=sigma, pad=pad), full, atol=1e-12)
        assert torch.allclose(map_patches(latents, 5, lambda u: u, sigma=sigma, pad=pad), latents, atol=1e-12)
    # valid patches only: a corner is moved by the one patch that covers it
    corner = map_patches(latents, 5, move_columns, pad=False)[:, :, 0, 0]
    first = move_rows(extract_patches(latents, 5)[:, :1])[:, 0].reshape(-1, 3, 25)[:, :, 0]
    assert torch.allclose(corner, first, atol=1e-12)


def test_errors(latents):
    with pytest.raises(ValueError, match="odd"):
        extract_patches(latents, 4)
    with pytest.raises(ValueError, match="odd"):
        map_patches(latents, 2, lambda v: v)
    with pytest.raises(ValueError, match="smaller than a 11x11 patch"):
        extract_patches(latents, 11)
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        extract_patches(latents[0], 3)
    with pytest.raises(ValueError, match="expected patches"):
        fold_patches(torch.zeros(2, 7, 75), (9, 12), 5, 3)
