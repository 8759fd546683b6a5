"""Perception–distortion planes: one task/restorer of a study table, the grid of all of them,
and the labelled plane of ``dotlib evaluate``."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..tables import COLUMNS, task_label
from .alpha_labels import _label_alphas
from .log_axes import _readable_log_axes
from .paper import COLUMN_WIDTH, PAGE_WIDTH
from .style import ALPHA_CMAP, MARKERS, PALETTE, SIGNAL_STYLES, _styled

_AXIS_LABELS = {c.key: (c.header, c.scale) for c in COLUMNS}
_AXIS_LABELS.update({"mse": ("MSE ×10³", 1e3), "psnr": ("PSNR (dB)", 1.0)})


def _task_scale(task: str) -> int:
    """Downsampling factor of a study task (1 when the task is unknown)."""
    from ..degradations import get_degradation

    try:
        return int(get_degradation(str(task)).scale)
    except Exception:  # a task name dotlib does not know (a user's table): label it plain y
        return 1


def y_label(tasks: str | Iterable[str]) -> str:
    """Legend text of the degraded input of ``tasks``: what the plotted y is.

    ``$y$`` for tasks at the clean size (noise, JPEG); ``$y$, bicubic ×4`` for tasks that
    downsample by 4, whose y is measured after bicubic upsampling to the clean size; for a
    mix of both, ``$y$ (SR tasks: bicubic ×4)``.
    """
    scales = sorted({_task_scale(t) for t in ([tasks] if isinstance(tasks, str) else tasks)})
    upsampled = [s for s in scales if s > 1]
    if not upsampled:
        return SIGNAL_STYLES["y"]["label"]
    factors = "/".join(f"×{s}" for s in upsampled)
    if len(upsampled) == len(scales):
        return rf"$y$, bicubic {factors}"
    return rf"$y$ (SR tasks: bicubic {factors})"


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
                       decode: str) -> tuple[list[Line2D], list[tuple[float, float, float]]]:
    """The α path of a second decoding as a plain line, its x̂0 as a hollow diamond.

    Returns the legend entries and the hollow diamond as ``(x, y, half size in pt)``.
    """
    if "decode" not in rows:
        return [], []
    sweep = rows[rows.signal.eq("x_alpha") & rows.decode.eq(decode)].dropna(subset=[perception, distortion])
    sweep = sweep.sort_values("alpha")
    if sweep.empty:
        return [], []
    p_scale, d_scale = _axis(perception)[1], _axis(distortion)[1]
    xs, ys = sweep[distortion].to_numpy(float) * d_scale, sweep[perception].to_numpy(float) * p_scale
    color = PALETTE[0]
    ax.plot(xs, ys, color=color, linewidth=1.0, alpha=0.85, zorder=2)
    zero = sweep[np.isclose(sweep.alpha, 0.0)]
    handles = [Line2D([], [], color=color, linewidth=1.0, label=rf"$\hat{{x}}_\alpha$, {decode} decoding")]
    markers = []
    if not zero.empty:
        x, y = float(zero[distortion].iloc[0]) * d_scale, float(zero[perception].iloc[0]) * p_scale
        ax.scatter([x], [y], marker="D", s=34, zorder=5, facecolors="white", edgecolors=color, linewidths=1.2)
        markers.append((x, y, 0.5 * math.sqrt(34) + 0.6))
        handles.append(Line2D([], [], marker="D", color=color, markerfacecolor="white", linestyle="",
                              label=rf"$\hat{{x}}_0$, {decode}"))
    return handles, markers


def _value(rows: pd.DataFrame, column: str) -> float:
    if rows.empty or column not in rows:
        return math.nan
    return float(rows[column].iloc[0])


def _sweep_points(rows: pd.DataFrame, perception: str,
                  distortion: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """The x̂α rows with both values, by α, and their α, x (distortion) and y (perception) as plotted."""
    sweep = rows[rows.signal.eq("x_alpha")].dropna(subset=[perception, distortion]).sort_values("alpha")
    alphas = sweep.alpha.to_numpy(dtype=float)
    xs = sweep[distortion].to_numpy(dtype=float) * _axis(distortion)[1]
    ys = sweep[perception].to_numpy(dtype=float) * _axis(perception)[1]
    return sweep, alphas, xs, ys


def _draw_alpha_path(ax, alphas: np.ndarray, xs: np.ndarray, ys: np.ndarray, norm: Normalize) -> list[Line2D]:
    """The α path coloured by α, solid for α ∈ [0, 1] and dashed, lighter beyond; its points as dots.

    Returns the legend entries of the path.
    """
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
    return handles


def _draw_named_points(ax, rows: pd.DataFrame, sweep: pd.DataFrame, perception: str, distortion: str,
                       y_text: str | None) -> tuple[list[Line2D], list[tuple[float, float, float]],
                                                    tuple[float, float] | None]:
    """x* (restorer), x̂0 (α = 0) and D(E(x)) marked as in :data:`SIGNAL_STYLES`, where they have values.

    Returns the legend entries (y's included), the ``(x, y, half size in pt)`` of the markers
    and y's point, drawn by :func:`_place_y` once the frame is set (None without values).
    """
    p_scale, d_scale = _axis(perception)[1], _axis(distortion)[1]
    named = {
        "x_star": rows[rows.signal.eq("x_star")],
        "x_hat0": sweep[np.isclose(sweep.alpha, 0.0)],
        "xe": rows[rows.signal.eq("xe")],
        "y": rows[rows.signal.eq("y")],
    }
    handles, markers, y_point = [], [], None
    for key, subset in named.items():
        x, y = _value(subset, distortion) * d_scale, _value(subset, perception) * p_scale
        if not (math.isfinite(x) and math.isfinite(y)):
            continue
        style = SIGNAL_STYLES[key]
        if key == "y":
            y_point = (x, y)
        else:
            markers.append((x, y, 0.5 * math.sqrt(style["size"]) + 0.5))
            ax.scatter([x], [y], marker=style["marker"], color=style["color"], s=style["size"],
                       zorder=style["zorder"], edgecolors="black", linewidths=0.5)
        label = (y_text or y_label(str(rows.iloc[0].task))) if key == "y" else style["label"]
        handles.append(Line2D([], [], marker=style["marker"], color=style["color"], linestyle="",
                              markeredgecolor="black", markeredgewidth=0.5, label=label))
    return handles, markers, y_point


#: Half-width of the plotted intervals, in bootstrap standard deviations (a normal 95 % interval).
Z_95 = 1.959963984540054
INTERVAL_LABEL = "95 % interval of a value"


def _interval(value: float, sd: float, log: bool) -> tuple[float, float]:
    """``(below, above)`` half-widths of a 95 % interval of ``value``: ±1.96 sd, or on a log axis
    ±1.96 sd of log(value) (delta method: sd / value), so that it stays positive and symmetric there."""
    if log and value > 0:
        factor = math.exp(Z_95 * sd / value)
        return value - value / factor, value * factor - value
    return Z_95 * sd, Z_95 * sd


def _draw_intervals(ax, rows: pd.DataFrame, sweep: pd.DataFrame, perception: str, distortion: str,
                    log: bool) -> list[Line2D]:
    """Error bars of 95 % intervals from the bootstrap sd (``<column>_sd``) at x*, x̂0.5 and x̂0."""
    points = [rows[rows.signal.eq("x_star")], sweep[np.isclose(sweep.alpha, 0.5)], sweep[np.isclose(sweep.alpha, 0.0)]]
    logs = (log and distortion == "mse", log)
    drawn = False
    for subset in points:
        values = [(_value(subset, column) * _axis(column)[1], _value(subset, f"{column}_sd") * _axis(column)[1])
                  for column in (distortion, perception)]
        if all(math.isfinite(v) and math.isfinite(e) for v, e in values):
            (x, x_sd), (y, y_sd) = values
            xerr, yerr = _interval(x, x_sd, logs[0]), _interval(y, y_sd, logs[1])
            ax.errorbar([x], [y], xerr=[[xerr[0]], [xerr[1]]], yerr=[[yerr[0]], [yerr[1]]],
                        fmt="none", ecolor="0.15", elinewidth=0.7, capsize=1.5, zorder=7)
            drawn = True
    return [Line2D([], [], color="0.15", linewidth=0.7, marker="|", label=INTERVAL_LABEL)] if drawn else []


#: y is drawn at its place when its centre lies this far inside the frame (axes fraction), so
#: that the whole marker shows; else at the edge with an arrow and its values.
_Y_INSIDE = 0.04


def _place_y(ax, point: tuple[float, float] | None, label: str) -> tuple[list[tuple[float, float, float]], list]:
    """y at its place when inside the frame; else just inside the frame's edge, with an arrow
    outwards and its values. Returns the marker as ``(x, y, half size in pt)`` in data units
    and the value box (empty list when y is inside), which α labels must not cover."""
    if point is None:
        return [], []
    ax.set_xlim(ax.get_xlim())
    ax.set_ylim(ax.get_ylim())
    style = SIGNAL_STYLES["y"]
    to_axes = ax.transAxes.inverted().transform(ax.transData.transform(point))
    inside = bool(((to_axes >= _Y_INSIDE) & (to_axes <= 1.0 - _Y_INSIDE)).all())
    where = to_axes if inside else np.clip(to_axes, 0.08, 0.92)
    shown = tuple(ax.transData.inverted().transform(ax.transAxes.transform(where)))
    ax.scatter([shown[0]], [shown[1]], marker=style["marker"], color=style["color"], s=style["size"],
               zorder=style["zorder"], edgecolors="black", linewidths=0.5)
    boxes = []
    if not inside:
        direction = np.sign(to_axes - 0.5) * (np.abs(to_axes - 0.5) > 0.42)
        ax.annotate("", xy=tuple(where + 0.075 * direction), xytext=tuple(where), xycoords="axes fraction",
                    arrowprops={"arrowstyle": "->", "color": "0.2", "linewidth": 0.8, "shrinkA": 5, "shrinkB": 0})
        right, top = where[0] > 0.5, where[1] > 0.5
        if direction[1] != 0:   # off the top or the bottom: the values run along that edge, beside y
            offset, ha, va = (-9 if right else 9, 0), "right" if right else "left", "center"
        else:                   # off a side only: above or below y, towards the frame's middle
            offset, ha, va = (0, -9 if top else 9), "right" if right else "left", "top" if top else "bottom"
        boxes.append(ax.annotate(f"{label} {point[0]:.3g}, {point[1]:.3g}", xy=tuple(where), xycoords="axes fraction",
                    xytext=offset, textcoords="offset points", ha=ha, va=va, fontsize=6, color="0.2", zorder=9,
                    bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}))
    return [(shown[0], shown[1], 0.5 * math.sqrt(style["size"]) + 0.5)], boxes


def _draw_clean_line(ax, rows: pd.DataFrame, perception: str, log: bool) -> list[Line2D]:
    """The clean set x as a dotted horizontal line at its perceptual index (when positive on a log axis)."""
    clean = _value(rows[rows.signal.eq("x")], perception) * _axis(perception)[1]
    if not (math.isfinite(clean) and (clean > 0 or not log)):
        return []
    ax.axhline(clean, color=SIGNAL_STYLES["x"]["color"], linestyle=":", linewidth=1.0, zorder=1)
    return [Line2D([], [], color=SIGNAL_STYLES["x"]["color"], linestyle=":", label=SIGNAL_STYLES["x"]["label"])]


def _finish_plane_axes(ax, perception: str, distortion: str, log: bool, title: str) -> None:
    """Scales, margins, axis labels (with the better direction), title and grid of a plane."""
    if log:
        ax.set_yscale("log")
        if distortion == "mse":
            ax.set_xscale("log")
    ax.margins(0.08)
    ax.autoscale_view()
    arrow = {"mse": " ↓", "psnr": " ↑"}.get(distortion, "")
    ax.set_xlabel(_axis(distortion)[0] + arrow)
    ax.set_ylabel(_axis(perception)[0] + " ↓")
    ax.set_title(title)
    ax.grid(True, which="major", linewidth=0.4, alpha=0.5)


def _draw_plane(ax, rows: pd.DataFrame, perception: str, distortion: str, log: bool,
                label_alphas: Sequence[float], norm: Normalize, y_text: str | None = None
                ) -> tuple[list[Line2D], list[tuple[float, float, float]], list[tuple[float, float, float]],
                           list[tuple[float, float]], tuple[float, float] | None]:
    """Draw one perception–distortion plane on ``ax``.

    Returns the legend entries, the ``(alpha, x, y)`` points to label once the figure is
    laid out (:func:`_label_alphas`), the ``(x, y, half size in pt)`` of the large
    markers, which labels never cover, the ``(x, y)`` of the α path, which they avoid
    where they can, and y's point, for :func:`_place_y` once everything else is drawn. ``y_text``: the legend text of y (default: :func:`y_label` of the task).
    """
    for column in (perception, distortion):
        if column not in rows or rows[column].notna().sum() == 0:
            raise ValueError(f"column {column!r} has no values in this table (missing metric?)")
    first = rows.iloc[0]
    sweep, alphas, xs, ys = _sweep_points(rows, perception, distortion)
    handles = _draw_alpha_path(ax, alphas, xs, ys, norm)
    named, markers, y_point = _draw_named_points(ax, rows, sweep, perception, distortion, y_text)
    handles += named + _draw_intervals(ax, rows, sweep, perception, distortion, log)
    handles += _draw_clean_line(ax, rows, perception, log)
    _finish_plane_axes(ax, perception, distortion, log, f"{task_label(str(first.task))} — {first.restorer}")
    wanted = [float(a) for a in label_alphas] + ([float(alphas[0]), float(alphas[-1])] if len(alphas) else [])
    to_label = [(a, x, y) for w in wanted for a, x, y in zip(alphas, xs, ys) if math.isclose(a, w, abs_tol=1e-9)]
    return handles, to_label, markers, list(zip(xs.tolist(), ys.tolist())), y_point


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
    in that order, where the label fits (inside the axes, over no marker or label).
    x* (restorer), x̂0 (α = 0), D(E(x)) and y (see :func:`y_label`) are marked, with 95 %
    intervals from the bootstrap sd over photos (where the table has ``_sd`` columns; on a log
    axis, of the log of the value) at x*, x̂0.5 and x̂0. The axes frame x*, the α path and D(E(x)); a y outside that frame is drawn
    at its edge with an arrow and its values. The clean set x, whose distortion is 0, is a
    dotted horizontal line at its perceptual index (when positive). ``log``: logarithmic perception axis, and distortion axis when
    it is MSE, with readable ticks (:func:`log_ticks`).
    Tables with ``fit_split``/``decode`` columns: the sweep of ``fit_split``, the first of
    ``decodes`` coloured by α, the second as a plain blue path with a hollow x̂0.
    """
    rows = _select(table, task, restorer, fit_split)
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 1.05 * COLUMN_WIDTH), layout="constrained")
    norm = _alpha_norm(rows)
    main = _decode_rows(rows, decodes[0] if decodes else None)
    handles, to_label, markers, path, y_point = _draw_plane(ax, main, perception, distortion, log, label_alphas, norm)
    for decode in list(decodes)[1:2]:
        extra, hollow = _draw_second_sweep(ax, rows, perception, distortion, decode)
        handles += extra
        markers += hollow
    y_marker, y_box = _place_y(ax, y_point, "y:")
    markers += y_marker
    _alpha_colorbar(fig, norm, ax)
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False, handlelength=1.6)
    _readable_log_axes(fig, [ax])
    _label_alphas(ax, to_label, markers, path, obstacles=y_box)
    return fig


@_styled
def perception_distortion_grid(table: pd.DataFrame, perception: str = "swd", distortion: str = "mse",
                               columns: int = 3, log: bool = True,
                               label_alphas: Sequence[float] = (0.0, 0.5, 1.0), fit_split: str | None = "same",
                               decodes: Sequence[str] = ("direct", "residual")) -> Figure:
    """One perception–distortion panel per (task, restorer), two paper columns wide.

    Panels share one α colour scale (the range of every α in the table) and one legend,
    drawn in the first empty cell of the grid when there is one, else below the panels.
    """
    combos = list(table[["task", "restorer"]].drop_duplicates().itertuples(index=False))
    if not combos:
        raise ValueError("the study table is empty")
    columns = max(1, min(columns, len(combos)))
    nrows = math.ceil(len(combos) / columns)
    panel = PAGE_WIDTH / columns
    spare = nrows * columns > len(combos)
    fig, axes = plt.subplots(nrows, columns, figsize=(PAGE_WIDTH, 0.9 * panel * nrows + (0.0 if spare else 0.55)),
                             squeeze=False, layout="constrained")
    norm = _alpha_norm(table)
    y_text = y_label(t for t, _ in combos)
    handles: dict[str, Line2D] = {}
    labels = []
    for ax, (task, restorer) in zip(axes.flat, combos):
        rows = _select(table, task, restorer, fit_split)
        main = _decode_rows(rows, decodes[0] if decodes else None)
        panel_handles, to_label, markers, path, y_point = _draw_plane(ax, main, perception, distortion, log,
                                                                      label_alphas, norm, y_text=y_text)
        for decode in list(decodes)[1:2]:
            extra, hollow = _draw_second_sweep(ax, rows, perception, distortion, decode)
            panel_handles += extra
            markers += hollow
        y_marker, y_box = _place_y(ax, y_point, "y:")
        labels.append((ax, to_label, markers + y_marker, path, y_box))
        for handle in panel_handles:
            handles.setdefault(handle.get_label(), handle)
    empty = list(axes.flat)[len(combos):]
    for ax in empty:
        ax.axis("off")
    _alpha_colorbar(fig, norm, axes)
    if empty:
        empty[0].legend(handles=list(handles.values()), loc="center", ncol=1, frameon=False, handlelength=1.6)
    else:
        fig.legend(handles=list(handles.values()), loc="outside lower center",
                   ncol=min(len(handles), 4), frameon=False)
    _readable_log_axes(fig, [ax for ax, *_ in labels])
    for ax, to_label, markers, path, y_box in labels:
        _label_alphas(ax, to_label, markers, path, obstacles=y_box)
    return fig


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
        colour, marker = PALETTE[index % len(PALETTE)], MARKERS[index % len(MARKERS)]
        ax.plot(xs, ys, "-", color=colour, linewidth=0.8, alpha=0.6, zorder=2)
        ax.scatter(xs, ys, s=18, color=colour, marker=marker, label=str(name), zorder=3)
        for x, y, text in zip(xs, ys, points[label]):
            texts.setdefault((float(x), float(y)), []).append(str(text))
    for (x, y), labels in texts.items():
        ax.annotate(", ".join(labels), (x, y), xytext=(3, 3), textcoords="offset points", fontsize=6, color="0.15")
    for values, axis, set_scale in ((rows[distortion], ax.xaxis, ax.set_xscale),
                                    (rows[perception], ax.yaxis, ax.set_yscale)):
        if log and (values > 0).all() and values.max() >= 10 * values.min():
            set_scale("log")
    ax.margins(0.1)
    ax.autoscale_view()
    ax.set_xlabel(d_label + {"mse": " ↓", "psnr": " ↑"}.get(distortion, ""))
    ax.set_ylabel(p_label + " ↓")
    ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
    ax.legend(frameon=False, fontsize=6)
    _readable_log_axes(fig, [ax])
    return fig

