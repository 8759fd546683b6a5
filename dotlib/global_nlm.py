r"""The authors' non-local means: each pixel a weighted mean of every pixel of its 32-px tile.

The restorer of the poster's AWGN σ = 50 non-local-means row (``dmax/models/nlm.py`` and
``dmax/utils/tile.py`` of ``theoad/dot-dmax`` at ``2ea7ce7``), computed as their code does:

- **Tiles.** Side ``t = 32`` (the image side when smaller), overlap 1/4: origins every
  ``s = t − ⌊t/4⌋ = 24`` pixels, plus one tile flush with the far edge when the grid falls
  short. Tile outputs are averaged with equal weights where tiles overlap.
- **Neighbourhoods.** For pixel ``i`` of a tile, ``n_i`` is its ``p × p`` patch (``p = 5``,
  replicate padding at the tile's edge) without the centre pixel, all channels:
  ``3 (p² − 1) = 72`` values.
- **Weights.** Over every other pixel ``j`` of the tile,

  .. math:: w_{ij} \propto \exp\!\Big(-\frac{\lVert n_i - n_j \rVert_2}{2 h^2 \sigma^2}\Big),
            \quad j \neq i, \qquad h^2 = \lfloor p/2 \rfloor = 2,

  with σ the noise level in intensity units (50/255). The distance is the Euclidean norm,
  not its square, as in their code.
- **Estimate.** ``x̂_i = Σ_j w_ij y_j`` (all channels), in float64.

One deviation, of rounding only: the smallest distance of each row is subtracted before the
exponential (the normalised weights are the same), so a row whose weights would all
underflow gives a finite estimate instead of NaN.

Why written here: the authors' code is not a package on a registry, and it differs from the
usual NLM (``skimage``'s, dotlib's restorer ``nlm``: a search window around each pixel,
squared distances, a filter strength chosen on training photos).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["TILE", "TILE_OVERLAP", "PATCH", "global_nlm", "nlm_tile", "tile_origins"]

TILE = 32            # tile side in pixels (the authors' ``patch_distance``)
TILE_OVERLAP = 0.25  # fraction of a tile shared with its neighbour
PATCH = 5            # neighbourhood side p
TILES_PER_CHUNK = 64  # tiles denoised at once: 64 · 1024² float64 distances = 0.5 GiB


def tile_origins(size: int, tile: int, overlap: float = TILE_OVERLAP) -> list[int]:
    """Tile origins along one axis of ``size`` pixels: every ``tile − ⌊tile · overlap⌋`` pixels
    while a tile fits, then one flush with the far edge if the grid stops short of it."""
    stride = tile - int(tile * overlap)
    origins = list(range(0, size - tile + 1, stride))
    if origins[-1] != size - tile:
        origins.append(size - tile)
    return origins


def nlm_tile(tiles: torch.Tensor, sigma: float, patch: int = PATCH) -> torch.Tensor:
    """Global NLM of each tile of ``tiles [N, C, t, t']`` with noise level ``sigma`` (intensity
    units): ``float32 [N, C, t, t']``, every pixel a weighted mean of all other pixels of its tile."""
    count, channels, height, width = tiles.shape
    padded = F.pad(tiles.double(), (patch // 2,) * 4, mode="replicate")
    patches = F.unfold(padded, patch).unflatten(1, (channels, patch * patch))          # [N, C, p², L]
    centre = patch * patch // 2
    neighbours = torch.cat([patches[:, :, :centre], patches[:, :, centre + 1:]], dim=2)
    neighbours = neighbours.flatten(1, 2).transpose(1, 2)                               # [N, L, C(p² − 1)]
    distance = torch.cdist(neighbours, neighbours)                                      # [N, L, L]
    distance.diagonal(dim1=1, dim2=2).fill_(float("inf"))
    distance = distance - distance.amin(dim=-1, keepdim=True)
    weights = torch.exp(-distance / (2.0 * (patch // 2) * sigma ** 2))
    weights = weights / weights.sum(dim=-1, keepdim=True)
    values = tiles.double().flatten(2).transpose(1, 2)                                  # [N, L, C]
    return (weights @ values).transpose(1, 2).unflatten(-1, (height, width)).float()


def global_nlm(images: torch.Tensor, sigma: float, tile: int = TILE, patch: int = PATCH) -> torch.Tensor:
    """The authors' tiled global NLM of ``images [B, C, H, W]`` (noise level ``sigma`` in
    intensity units): ``float32 [B, C, H, W]``, unclipped."""
    if images.ndim != 4 or min(images.shape[-2:]) < 2:
        raise ValueError(f"images must be a batch [B, C, H, W] with sides >= 2, got {tuple(images.shape)}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive (intensity units, e.g. 50/255), got {sigma!r}")
    height, width = images.shape[-2:]
    tile_h, tile_w = min(tile, height), min(tile, width)
    windows = [(top, left) for top in tile_origins(height, tile_h) for left in tile_origins(width, tile_w)]
    total = torch.zeros(images.shape, dtype=torch.float64, device=images.device)
    covered = torch.zeros((1, 1, height, width), dtype=torch.float64, device=images.device)
    for start in range(0, len(windows), TILES_PER_CHUNK):
        chunk = windows[start:start + TILES_PER_CHUNK]
        pieces = torch.cat([images[..., top:top + tile_h, left:left + tile_w] for top, left in chunk])
        denoised = nlm_tile(pieces, sigma, patch).unflatten(0, (len(chunk), images.shape[0]))
        for (top, left), piece in zip(chunk, denoised):
            total[..., top:top + tile_h, left:left + tile_w] += piece
            covered[..., top:top + tile_h, left:left + tile_w] += 1.0
    return (total / covered).float()
