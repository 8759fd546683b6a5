"""Paper figures: perception–distortion planes, their grid over tasks, image collages.

Style: seaborn "colorblind" palette for markers, the perceptually uniform, colour-blind
safe "viridis" map for α; figure widths of one paper column (3.4 in) or two (7 in).
:func:`save_figure` writes a vector PDF with TrueType (Type 42) embedded fonts and a
300-dpi PNG.

The inputs are study tables (see :mod:`dotlib.tables`): one row per signal with
columns task, restorer, signal (x, xe, y, x_star, x_alpha), alpha and metric columns in
raw units (KID and SWD are scaled ×10³ on the axes).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .tables import COLUMNS, task_label
from .io import atomic_path

__all__ = [
    "COLUMN_WIDTH",
    "PAGE_WIDTH",
    "RC_PARAMS",
    "SIGNAL_STYLES",
    "collage",
    "labelled_plane",
    "perception_distortion",
    "perception_distortion_grid",
    "run_collage",
    "save_figure",
    "set_style",
]

COLUMN_WIDTH = 3.4  # inches, one column of a two-column paper
PAGE_WIDTH = 7.0  # inches, both columns

#: Font embedding (TrueType, never Type 3) and sizes for print.
RC_PARAMS = {
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 6.5,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "savefig.dpi": 300,
}

_PALETTE = sns.color_palette("colorblind")
ALPHA_CMAP = "viridis"

#: Marker style of each named point of the plane (x̂0 is the x_alpha row at α = 0).
SIGNAL_STYLES: dict[str, dict] = {
    "x_star": {"marker": "s", "color": _PALETTE[1], "label": r"$x^*$ (restorer)"},
    "x_hat0": {"marker": "D", "color": _PALETTE[2], "label": r"$\hat{x}_0$ (DOT)"},
    "xe": {"marker": "^", "color": _PALETTE[4], "label": r"$D(E(x))$"},
    "y": {"marker": "X", "color": _PALETTE[7], "label": r"$y$ (degraded)"},
    "x": {"color": "0.35", "label": r"$x$ (clean)"},
}

_AXIS_LABELS = {c.key: (c.header, c.scale) for c in COLUMNS}
_AXIS_LABELS.update({"mse": ("MSE", 1.0), "psnr": ("PSNR (dB)", 1.0)})


def _styled(make: Callable[..., Figure]) -> Callable[..., Figure]:
    """Build the figure under :data:`RC_PARAMS`, whatever the global style is."""
    @functools.wraps(make)
    def wrapper(*args, **kwargs) -> Figure:
        with plt.rc_context(RC_PARAMS):
            return make(*args, **kwargs)
    return wrapper


def set_style() -> None:
    """seaborn "ticks" theme with the colour-blind palette and :data:`RC_PARAMS`."""
    sns.set_theme(style="ticks", palette="colorblind", rc=RC_PARAMS)


def save_figure(fig: Figure, path: str | Path) -> tuple[Path, Path]:
    """Write ``<path>.pdf`` (vector, TrueType fonts embedded) and ``<path>.png`` (300 dpi).

    ``path`` has no suffix; folders are created. Files are written atomically and carry
    no dates, so a rerun gives the same bytes. Returns the two paths.
    """
    path = Path(path)
    if path.suffix in (".pdf", ".png"):
        raise ValueError(f"give the path without a suffix, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf, png = path.with_name(path.name + ".pdf"), path.with_name(path.name + ".png")
    for target, metadata in ((pdf, {"CreationDate": None, "ModDate": None}), (png, {"Software": None})):
        with plt.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}), atomic_path(target) as temporary:
            fig.savefig(temporary, format=target.suffix[1:], dpi=300, metadata=metadata, bbox_inches="tight")
    return pdf, png


def _axis(column: str) -> tuple[str, float]:
    label, scale = _AXIS_LABELS.get(column, (column, 1.0))
    return label, scale


def _select(table: pd.DataFrame, task: str | None, restorer: str | None,
            fit_split: str | None = "same") -> pd.DataFrame:
    """Rows of one task/restorer; with ``fit_split`` (when the table has that column), only its x̂α rows."""
    rows = table
    if task is not None:
        rows = rows[rows.task.eq(task)]
    if restorer is not None:
        rows = rows[rows.restorer.eq(restorer)]
    combos = rows[["task", "restorer"]].drop_duplicates()
    if len(combos) != 1:
        found = ", ".join(f"{t}/{r}" for t, r in combos.itertuples(index=False)) or "none"
        raise ValueError(f"need exactly one task/restorer pair, found: {found}; pass task= and restorer=")
    if fit_split is not None and "fit_split" in rows:
        rows = rows[rows.signal.ne("x_alpha") | rows.fit_split.eq(fit_split)]
    return rows


def _decode_rows(rows: pd.DataFrame, decode: str | None) -> pd.DataFrame:
    """The non-sweep rows and the x̂α rows of one decoding (all x̂α rows when the table has none)."""
    if decode is None or "decode" not in rows:
        return rows
    return rows[rows.signal.ne("x_alpha") | rows.decode.eq(decode)]


def _draw_second_sweep(ax, rows: pd.DataFrame, perception: str, distortion: str,
                       decode: str) -> list[Line2D]:
    """The α path of a second decoding as a plain line, its x̂0 as a hollow diamond."""
    if "decode" not in rows:
        return []
    sweep = rows[rows.signal.eq("x_alpha") & rows.decode.eq(decode)].dropna(subset=[perception, distortion])
    sweep = sweep.sort_values("alpha")
    if sweep.empty:
        return []
    p_scale, d_scale = _axis(perception)[1], _axis(distortion)[1]
    xs, ys = sweep[distortion].to_numpy(float) * d_scale, sweep[perception].to_numpy(float) * p_scale
    color = _PALETTE[0]
    ax.plot(xs, ys, color=color, linewidth=1.0, alpha=0.85, zorder=2)
    zero = sweep[np.isclose(sweep.alpha, 0.0)]
    handles = [Line2D([], [], color=color, linewidth=1.0, label=rf"$\hat{{x}}_\alpha$, {decode} decoding")]
    if not zero.empty:
        ax.scatter(zero[distortion] * d_scale, zero[perception] * p_scale, marker="D", s=34, zorder=5,
                   facecolors="white", edgecolors=color, linewidths=1.2)
        handles.append(Line2D([], [], marker="D", color=color, markerfacecolor="white", linestyle="",
                              label=rf"$\hat{{x}}_0$, {decode}"))
    return handles


def _value(rows: pd.DataFrame, column: str) -> float:
    if rows.empty or column not in rows:
        return math.nan
    return float(rows[column].iloc[0])


def _draw_plane(ax, rows: pd.DataFrame, perception: str, distortion: str, log: bool,
                label_alphas: Sequence[float], norm: Normalize
                ) -> tuple[list[Line2D], list[tuple[float, float, float]], list[tuple[float, float]]]:
    """Draw one perception–distortion plane on ``ax``.

    Returns the legend entries, the ``(alpha, x, y)`` points to label once the figure is
    laid out (:func:`_label_alphas`) and the ``(x, y)`` of the large markers, which labels avoid.
    """
    for column in (perception, distortion):
        if column not in rows or rows[column].notna().sum() == 0:
            raise ValueError(f"column {column!r} has no values in this table (missing metric?)")
    p_label, p_scale = _axis(perception)
    d_label, d_scale = _axis(distortion)
    sweep = rows[rows.signal.eq("x_alpha")].dropna(subset=[perception, distortion]).sort_values("alpha")
    alphas = sweep.alpha.to_numpy(dtype=float)
    xs = sweep[distortion].to_numpy(dtype=float) * d_scale
    ys = sweep[perception].to_numpy(dtype=float) * p_scale
    inside = (alphas >= -1e-9) & (alphas <= 1 + 1e-9)
    cmap = plt.get_cmap(ALPHA_CMAP)
    handles: list[Line2D] = []
    if len(alphas) >= 2:
        points = np.stack([xs, ys], axis=1)
        segments = np.stack([points[:-1], points[1:]], axis=1)
        middle = (alphas[:-1] + alphas[1:]) / 2
        theory = (middle >= -1e-9) & (middle <= 1 + 1e-9)
        for mask, style, opacity in ((theory, "solid", 1.0), (~theory, (0, (3, 2)), 0.55)):
            if mask.any():
                lines = LineCollection(segments[mask], cmap=cmap, norm=norm, linestyles=style,
                                       linewidths=1.6, alpha=opacity, zorder=2)
                lines.set_array(middle[mask])
                ax.add_collection(lines)
        handles.append(Line2D([], [], color=cmap(0.5), linestyle="solid",
                              label=r"$\hat{x}_\alpha$, α∈[0,1]"))
        if (~theory).any():
            handles.append(Line2D([], [], color=cmap(0.5), linestyle=(0, (3, 2)), alpha=0.55,
                                  label="extrapolation"))
    for mask, opacity in ((inside, 1.0), (~inside, 0.55)):
        if mask.any():
            ax.scatter(xs[mask], ys[mask], c=alphas[mask], cmap=cmap, norm=norm, s=7, zorder=3,
                       linewidths=0, alpha=opacity)
    named = {
        "x_star": rows[rows.signal.eq("x_star")],
        "x_hat0": sweep[np.isclose(sweep.alpha, 0.0)],
        "xe": rows[rows.signal.eq("xe")],
        "y": rows[rows.signal.eq("y")],
    }
    markers = []
    for key, subset in named.items():
        x, y = _value(subset, distortion) * d_scale, _value(subset, perception) * p_scale
        if math.isfinite(x) and math.isfinite(y):
            markers.append((x, y))
            style = SIGNAL_STYLES[key]
            ax.scatter([x], [y], marker=style["marker"], color=style["color"], s=34, zorder=5,
                       edgecolors="black", linewidths=0.5)
            handles.append(Line2D([], [], marker=style["marker"], color=style["color"], linestyle="",
                                  markeredgecolor="black", markeredgewidth=0.5, label=style["label"]))
    clean = _value(rows[rows.signal.eq("x")], perception) * p_scale
    if math.isfinite(clean) and (clean > 0 or not log):
        ax.axhline(clean, color=SIGNAL_STYLES["x"]["color"], linestyle=":", linewidth=1.0, zorder=1)
        handles.append(Line2D([], [], color=SIGNAL_STYLES["x"]["color"], linestyle=":",
                              label=SIGNAL_STYLES["x"]["label"]))
    ax.margins(0.08)
    ax.autoscale_view()
    if log:
        ax.set_yscale("log")
        if distortion == "mse":
            ax.set_xscale("log")
        for axis in [ax.yaxis] + ([ax.xaxis] if distortion == "mse" else []):
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            axis.set_minor_formatter(NullFormatter())
    wanted = [float(a) for a in label_alphas] + ([float(alphas[0]), float(alphas[-1])] if len(alphas) else [])
    to_label = [(a, x, y) for w in wanted for a, x, y in zip(alphas, xs, ys) if math.isclose(a, w, abs_tol=1e-9)]
    arrow = {"mse": " ↓", "psnr": " ↑"}.get(distortion, "")
    ax.set_xlabel(d_label + arrow)
    ax.set_ylabel(p_label + " ↓")
    first = rows.iloc[0]
    ax.set_title(f"{task_label(str(first.task))} — {first.restorer}")
    ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
    return handles, to_label, markers


def _label_alphas(ax, points: list[tuple[float, float, float]], markers: list[tuple[float, float]] = (),
                  fontsize: float = 6.0) -> None:
    """Write ``α=…`` beside ``(alpha, x, y)`` points in order, skipping a label that would overlap a marker or a label.

    Call it on a laid-out figure (``draw_without_rendering``): overlap is judged in display units.
    """
    pixels_per_point = ax.figure.dpi / 72.0
    half = 3.5 * pixels_per_point  # half the side of a marker of area 34 pt²
    placed: list[tuple[float, float, float, float]] = [
        (cx - half, cy - half, cx + half, cy + half) for cx, cy in ax.transData.transform(markers)
    ] if len(markers) else []
    seen: set[float] = set()
    for alpha, x, y in points:
        if round(alpha, 9) in seen:
            continue
        seen.add(round(alpha, 9))
        text = f"α={alpha + 0.0:g}"
        left, bottom = ax.transData.transform((x, y)) + np.array([4.0, 3.0]) * pixels_per_point
        box = (left, bottom, left + 0.6 * fontsize * len(text) * pixels_per_point,
               bottom + fontsize * pixels_per_point)
        if any(box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]
               for other in placed):
            continue
        placed.append(box)
        ax.annotate(text, (x, y), xytext=(4, 3), textcoords="offset points", fontsize=fontsize,
                    color="0.15", zorder=6)


def _alpha_norm(rows: pd.DataFrame) -> Normalize:
    alphas = rows.loc[rows.signal.eq("x_alpha"), "alpha"].dropna()
    if alphas.empty:
        return Normalize(vmin=0.0, vmax=1.0)
    return Normalize(vmin=float(alphas.min()), vmax=float(alphas.max()))


def _alpha_colorbar(fig: Figure, norm: Normalize, ax) -> None:
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=ALPHA_CMAP), ax=ax, pad=0.02,
                       fraction=0.05, aspect=30)
    bar.set_label("α")


@_styled
def perception_distortion(table: pd.DataFrame, task: str | None = None, restorer: str | None = None,
                          perception: str = "swd", distortion: str = "mse", log: bool = True,
                          label_alphas: Sequence[float] = (0.0, 0.5, 1.0), fit_split: str | None = "same",
                          decodes: Sequence[str] = ("direct", "residual")) -> Figure:
    """Perception–distortion plane of one task/restorer, one paper column wide.

    ``perception`` (any metric column; SWD by default) against ``distortion`` (MSE or
    PSNR). The α sweep (x_alpha rows) is a path coloured by α (colour bar): solid for
    α ∈ [0, 1], the theory's tradeoff (Freirich et al. 2021), dashed and lighter for
    extrapolation (α < 0 or α > 1). α is written at ``label_alphas`` and at both ends,
    in that order, unless the label would overlap one already written.
    x* (restorer), x̂0 (α = 0), D(E(x)) and y are marked; the clean set x, whose
    distortion is 0, is a dotted horizontal line at its perceptual index (when
    positive). ``log``: logarithmic perception axis, and distortion axis when it is MSE.
    Tables with ``fit_split``/``decode`` columns: the sweep of ``fit_split``, the first of
    ``decodes`` coloured by α, the second as a plain blue path with a hollow x̂0.
    """
    rows = _select(table, task, restorer, fit_split)
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 1.05 * COLUMN_WIDTH), constrained_layout=True)
    norm = _alpha_norm(rows)
    main = _decode_rows(rows, decodes[0] if decodes else None)
    handles, to_label, markers = _draw_plane(ax, main, perception, distortion, log, label_alphas, norm)
    for decode in list(decodes)[1:2]:
        handles += _draw_second_sweep(ax, rows, perception, distortion, decode)
    _alpha_colorbar(fig, norm, ax)
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False, handlelength=1.6)
    fig.draw_without_rendering()
    _label_alphas(ax, to_label, markers)
    return fig


@_styled
def perception_distortion_grid(table: pd.DataFrame, perception: str = "swd", distortion: str = "mse",
                               columns: int = 3, log: bool = True,
                               label_alphas: Sequence[float] = (0.0, 0.5, 1.0), fit_split: str | None = "same",
                               decodes: Sequence[str] = ("direct", "residual")) -> Figure:
    """One perception–distortion panel per (task, restorer), two paper columns wide.

    Panels share one α colour scale (the range of every α in the table) and one legend.
    """
    combos = list(table[["task", "restorer"]].drop_duplicates().itertuples(index=False))
    if not combos:
        raise ValueError("the study table is empty")
    columns = max(1, min(columns, len(combos)))
    nrows = math.ceil(len(combos) / columns)
    panel = PAGE_WIDTH / columns
    fig, axes = plt.subplots(nrows, columns, figsize=(PAGE_WIDTH, 0.85 * panel * nrows + 0.5),
                             squeeze=False, constrained_layout=True)
    norm = _alpha_norm(table)
    handles: dict[str, Line2D] = {}
    labels = []
    for ax, (task, restorer) in zip(axes.flat, combos):
        rows = _select(table, task, restorer, fit_split)
        main = _decode_rows(rows, decodes[0] if decodes else None)
        panel_handles, to_label, markers = _draw_plane(ax, main, perception, distortion, log, label_alphas, norm)
        for decode in list(decodes)[1:2]:
            panel_handles += _draw_second_sweep(ax, rows, perception, distortion, decode)
        labels.append((ax, to_label, markers))
        for handle in panel_handles:
            handles.setdefault(handle.get_label(), handle)
    for ax in list(axes.flat)[len(combos):]:
        ax.set_visible(False)
    _alpha_colorbar(fig, norm, axes)
    fig.legend(handles=list(handles.values()), loc="outside lower center",
               ncol=min(len(handles), 4), frameon=False)
    fig.draw_without_rendering()
    for ax, to_label, markers in labels:
        _label_alphas(ax, to_label, markers)
    return fig


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


@_styled
def collage(images: Sequence[Sequence], row_labels: Sequence[str] | None = None,
            column_labels: Sequence[str] | None = None, width: float = PAGE_WIDTH,
            path: str | Path | None = None) -> Figure:
    """A grid of images (rows × columns) with labels; saved as PDF + PNG when ``path`` is given.

    Every cell is drawn at the same size whatever the image's resolution (a low-resolution
    ``y`` is shown with its pixels enlarged, nearest neighbour). Images are ``[3, H, W]``
    tensors or ``[H, W, 3]`` arrays in [0, 1].
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
    cell = width / ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, cell * aspect * nrows + 0.25),
                             squeeze=False, gridspec_kw={"wspace": 0.02, "hspace": 0.02})
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
                ax.set_ylabel(row_labels[r], fontsize=8)
    fig.subplots_adjust(left=0.03 if row_labels is not None else 0.0, right=1.0, bottom=0.0,
                        top=1.0 - 0.25 / fig.get_figheight() if column_labels is not None else 1.0)
    if path is not None:
        save_figure(fig, path)
    return fig


#: Column labels of the named images of a study run (``dotlib.study.TaskRun.images``).
RUN_LABELS = {"y": r"$y$", "x_star": r"$x^*$", "x_hat0": r"$\hat{x}_0$", "xe": r"$D(E(x))$", "x": r"$x$",
              "x_hat0_direct": r"$\hat{x}_0$ direct", "x_hat0_residual": r"$\hat{x}_0$ residual"}


def run_collage(images: Mapping[str, torch.Tensor], indices: Sequence[int] = (0, 1, 2),
                columns: Sequence[str] = ("y", "x_star", "x_hat0", "x"), width: float = PAGE_WIDTH,
                path: str | Path | None = None) -> Figure:
    """Rows of ``y | x* | x̂0 | x`` (any ``columns`` of ``images``) for the images at ``indices``."""
    missing = [name for name in columns if name not in images]
    if missing:
        raise KeyError(f"no images for {missing}; have {sorted(images)}")
    rows = [[images[name][index] for name in columns] for index in indices]
    labels = [RUN_LABELS.get(name, name) for name in columns]
    return collage(rows, row_labels=[f"#{i}" for i in indices], column_labels=labels, width=width, path=path)


@_styled
def labelled_plane(table: pd.DataFrame, perception: str = "swd", distortion: str = "mse",
                   group: str = "folder", label: str = "label", log: bool = True) -> Figure:
    """Perception–distortion plane with one labelled point per row of ``table``, one column wide.

    Rows of the same ``group`` (e.g. one folder's α sweep) share a colour and are joined
    in table order; each point is written with its ``label`` column. ``log``: logarithmic
    axes where every value is positive and they span a factor of 10 or more. Used by
    ``dotlib evaluate``.
    """
    rows = table.dropna(subset=[perception, distortion])
    if rows.empty:
        raise ValueError(f"no row has both {perception} and {distortion}")
    p_label, p_scale = _axis(perception)
    d_label, d_scale = _axis(distortion)
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 0.9 * COLUMN_WIDTH), constrained_layout=True)
    texts: dict[tuple[float, float], list[str]] = {}   # points at the same place share one label
    for index, (name, points) in enumerate(rows.groupby(group, sort=False)):
        xs, ys = points[distortion].to_numpy() * d_scale, points[perception].to_numpy() * p_scale
        colour = _PALETTE[index % len(_PALETTE)]
        ax.plot(xs, ys, "-", color=colour, linewidth=0.8, alpha=0.6, zorder=2)
        ax.scatter(xs, ys, s=18, color=colour, label=str(name), zorder=3)
        for x, y, text in zip(xs, ys, points[label]):
            texts.setdefault((float(x), float(y)), []).append(str(text))
    for (x, y), labels in texts.items():
        ax.annotate(", ".join(labels), (x, y), xytext=(3, 3), textcoords="offset points", fontsize=6, color="0.15")
    for values, axis, set_scale in ((rows[distortion], ax.xaxis, ax.set_xscale),
                                    (rows[perception], ax.yaxis, ax.set_yscale)):
        if log and (values > 0).all() and values.max() >= 10 * values.min():
            set_scale("log")
            axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            axis.set_minor_formatter(NullFormatter())
    ax.margins(0.1)
    ax.set_xlabel(d_label + {"mse": " ↓", "psnr": " ↑"}.get(distortion, ""))
    ax.set_ylabel(p_label + " ↓")
    ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
    ax.legend(frameon=False, fontsize=6)
    return fig
