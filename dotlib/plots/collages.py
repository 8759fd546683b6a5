"""Image collages: a labelled grid of images drawn at equal cell sizes, and the
``y | x* | x̂0 | x`` rows of a study run."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .paper import PAGE_WIDTH, save_figure
from .style import _styled
from .zoom import change_window


def _to_image(image) -> np.ndarray:
    """``[3, H, W]`` tensor or ``[H, W(, 3)]`` array in [0, 1] -> ``[H, W, 3]`` float array."""
    if isinstance(image, torch.Tensor):
        array = image.detach().float().cpu().numpy()
        if array.ndim == 3 and array.shape[0] in (1, 3):
            array = array.transpose(1, 2, 0)
    else:
        array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ValueError(f"expected an image [3, H, W] or [H, W, 3], got shape {array.shape}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.clip(array, 0.0, 1.0)


#: The least dpi at which a collage's PNG is saved at 1:1 (below it, at 300 dpi, enlarged).
LEAST_DPI = 150.0


@_styled
def collage(images: Sequence[Sequence], row_labels: Sequence[str] | None = None,
            column_labels: Sequence[str] | None = None, width: float = PAGE_WIDTH,
            path: str | Path | None = None, boxes: Mapping[int, tuple[float, float, float]] | None = None) -> Figure:
    """A grid of images (rows × columns) with labels; saved as PDF + PNG when ``path`` is given.

    The figure is exactly ``width`` inches wide. Every cell is drawn at the same size
    whatever the image's resolution (a low-resolution ``y`` is shown with its pixels
    enlarged, nearest neighbour, not interpolated). The saved PNG shows the largest images at
    1:1, one image pixel per PNG pixel (its dpi is their width over the cell's), when that
    gives at least :data:`LEAST_DPI`; smaller images are then enlarged by whole factors.
    Images are ``[3, H, W]`` tensors or ``[H, W, 3]`` arrays in [0, 1]. Row labels may span two lines. ``boxes`` outlines, in every
    image of row ``r``, the square ``(top, left, side)`` given as fractions of the image's height,
    width and width.
    """
    grid = [list(row) for row in images]
    if not grid or not grid[0] or any(len(row) != len(grid[0]) for row in grid):
        raise ValueError("images must be a non-empty list of rows of equal length")
    nrows, ncols = len(grid), len(grid[0])
    if row_labels is not None and len(row_labels) != nrows:
        raise ValueError(f"{len(row_labels)} row labels for {nrows} rows")
    if column_labels is not None and len(column_labels) != ncols:
        raise ValueError(f"{len(column_labels)} column labels for {ncols} columns")
    arrays = [[_to_image(image) for image in row] for row in grid]
    aspect = arrays[0][0].shape[0] / arrays[0][0].shape[1]
    lines = max((str(label).count("\n") + 1 for label in row_labels), default=1) if row_labels is not None else 0
    left = (0.06 + 0.13 * lines) if row_labels is not None else 0.0     # inches for the row labels
    top = 0.2 if column_labels is not None else 0.0                      # inches for the column labels
    gap = 0.03                                                           # inches between cells
    cell = (width - left - gap * (ncols - 1)) / ncols
    height = top + nrows * cell * aspect + gap * (nrows - 1)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False,
                             gridspec_kw={"wspace": gap / cell, "hspace": gap / (cell * aspect)})
    fig.subplots_adjust(left=left / width, right=1.0, bottom=0.0, top=1.0 - top / height)
    for r, row in enumerate(arrays):
        for c, array in enumerate(row):
            ax = axes[r, c]
            ax.imshow(array, interpolation="nearest", extent=(0, 1, 0, aspect), aspect="equal")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if column_labels is not None and r == 0:
                ax.set_title(column_labels[c], fontsize=8, pad=3)
            if row_labels is not None and c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8, labelpad=3)
            if boxes is not None and r in boxes:
                top_f, left_f, side_f = boxes[r]
                ax.add_patch(plt.Rectangle((left_f, aspect * (1 - top_f) - side_f), side_f, side_f, fill=False,
                                           edgecolor="white", linewidth=0.8))
    _shrink_to_cells(fig, axes)
    if path is not None:
        native = max(array.shape[1] for row in arrays for array in row) / cell   # dpi of a 1:1 PNG
        save_figure(fig, path, dpi=native if native >= LEAST_DPI else 300.0)
    return fig


def _shrink_to_cells(fig: Figure, axes: np.ndarray) -> None:
    """Make a row label no taller than its row, a column label no wider than its column (smaller font)."""
    renderer = fig.canvas.get_renderer()
    for ax in axes.flat:
        cell = ax.get_window_extent(renderer)
        for text, room, along in ((ax.yaxis.label, cell.height, "height"), (ax.title, cell.width, "width")):
            if not text.get_text():
                continue
            size = getattr(text.get_window_extent(renderer), along)
            if size > 0.98 * room:
                text.set_fontsize(max(4.0, text.get_fontsize() * 0.98 * room / size))


#: Column labels of the named images of a study run (``dotlib.study.TaskRun.images``).
RUN_LABELS = {"y": r"$y$", "x_star": r"$x^*$", "x_hat0": r"$\hat{x}_0$", "xe": r"$D(E(x))$", "x": r"$x$",
              "x_hat0_direct": r"$\hat{x}_0$ direct", "x_hat0_residual": r"$\hat{x}_0$ residual"}


#: The zoom rows of :func:`run_collage` enlarge a window of this fraction of the image's side.
ZOOM_FRACTION = 0.25


def run_collage(images: Mapping[str, torch.Tensor], indices: Sequence[int] = (0, 1, 2),
                columns: Sequence[str] = ("y", "x_star", "x_hat0", "x"), width: float = PAGE_WIDTH,
                path: str | Path | None = None, zoom: bool = True) -> Figure:
    """Rows of ``y | x* | x̂0 | x`` (any ``columns`` of ``images``) for the images at ``indices``.

    With ``zoom``, each row is followed by the same columns enlarged on the window (a quarter of
    the side, outlined above) where the first x̂0 column differs most from x*: the texture DOT
    changes, at 4× in every cell, pixels shown as squares.
    """
    missing = [name for name in columns if name not in images]
    if missing:
        raise KeyError(f"no images for {missing}; have {sorted(images)}")
    changed = next((name for name in columns if name.startswith("x_hat0")), None)
    rows, labels, boxes = [], [], {}
    for index in indices:
        rows.append([images[name][index] for name in columns])
        labels.append(f"#{index}")
        if zoom and changed is not None and "x_star" in images:
            height, width_px = images["x_star"].shape[-2:]
            side = max(1, round(ZOOM_FRACTION * min(height, width_px)))
            top, left = change_window(images[changed][index], images["x_star"][index], side)
            boxes[len(rows) - 1] = (top / height, left / width_px, side / width_px)
            rows.append([_window(images[name][index], top / height, left / width_px, side / width_px)
                         for name in columns])
            labels.append(f"#{index}, ×{1 / ZOOM_FRACTION:g}")
    titles = [RUN_LABELS.get(name, name) for name in columns]
    return collage(rows, row_labels=labels, column_labels=titles, width=width, path=path, boxes=boxes)


def _window(image: torch.Tensor, top: float, left: float, side: float) -> torch.Tensor:
    """The square of ``image [3, H, W]`` at fractions ``top``, ``left`` of its height and width and
    ``side`` of its width (a low-resolution y gives its own pixels of the same region)."""
    height, width = image.shape[-2:]
    row, col, size = round(top * height), round(left * width), max(1, round(side * width))
    return image[:, row:row + size, col:col + size]
