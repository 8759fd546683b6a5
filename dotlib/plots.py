"""Paper figures: perception–distortion planes, their grid over tasks, image collages, training curves.

Style: seaborn "colorblind" palette for markers and curves (each curve also gets its own
marker, so that nothing relies on colour alone), the perceptually uniform, colour-blind
safe "viridis" map for α. Every figure is one paper column (:data:`COLUMN_WIDTH`,
3.5 in) or two (:data:`PAGE_WIDTH`, 7.2 in) wide, and :func:`save_figure` writes it at
exactly that width (no ``bbox_inches="tight"`` cropping or growing it): a vector PDF with
TrueType (Type 42) embedded fonts and a 300-dpi PNG.

Log axes carry as many labelled ticks as fit side by side at the axis's size — 1-2-5 per
decade, fewer when the axis is short, more "nice" values when it spans less than a decade —
never overlapping. α is written beside the α path where the label overlaps no marker,
no other label and stays inside the axes. y is labelled for what it is: ``y`` for noise
and JPEG tasks, ``y, bicubic ×4`` where the measured y was upsampled to the clean size.

The inputs are study tables (see :mod:`dotlib.tables`): one row per signal with
columns task, restorer, signal (x, xe, y, x_star, x_alpha), alpha and metric columns in
raw units (MSE, KID and SWD are scaled ×10³ on the axes).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.layout_engine import PlaceHolderLayoutEngine
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from .tables import COLUMNS, task_label
from .io import atomic_path

__all__ = [
    "COLUMN_WIDTH",
    "MARKERS",
    "PAGE_WIDTH",
    "PALETTE",
    "RC_PARAMS",
    "SIGNAL_STYLES",
    "collage",
    "labelled_plane",
    "log_ticks",
    "perception_distortion",
    "perception_distortion_grid",
    "run_collage",
    "save_figure",
    "set_style",
    "set_width",
    "training_curves",
    "y_label",
]

COLUMN_WIDTH = 3.5  # inches, one column of a two-column paper
PAGE_WIDTH = 7.2  # inches, both columns

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

#: The colour-blind safe palette of every figure (seaborn's "colorblind").
PALETTE = sns.color_palette("colorblind")
_PALETTE = PALETTE
ALPHA_CMAP = "viridis"

#: One marker per curve of a line plot (with the colour-blind palette, in the same order).
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")

#: Marker style of each named point of the plane (x̂0 is the x_alpha row at α = 0). ``size``
#: is the scatter area in pt²; ``zorder``: y is drawn larger and below x*, so that x* stays
#: visible when y sits on it (their outlines both show).
SIGNAL_STYLES: dict[str, dict] = {
    "x_star": {"marker": "s", "color": _PALETTE[1], "label": r"$x^*$ (restorer)", "size": 34, "zorder": 6},
    "x_hat0": {"marker": "D", "color": _PALETTE[2], "label": r"$\hat{x}_0$ (DOT)", "size": 34, "zorder": 5},
    "xe": {"marker": "^", "color": _PALETTE[4], "label": r"$D(E(x))$", "size": 34, "zorder": 5},
    "y": {"marker": "X", "color": _PALETTE[7], "label": r"$y$", "size": 64, "zorder": 4},
    "x": {"color": "0.35", "label": r"$x$ (clean)"},
}

_AXIS_LABELS = {c.key: (c.header, c.scale) for c in COLUMNS}
_AXIS_LABELS.update({"mse": ("MSE ×10³", 1e3), "psnr": ("PSNR (dB)", 1.0)})


def _task_scale(task: str) -> int:
    """Downsampling factor of a study task (1 when the task is unknown)."""
    from .degradations import get_degradation

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

    The files have the figure's own size (no tight bounding box), so a figure built
    :data:`COLUMN_WIDTH` or :data:`PAGE_WIDTH` wide is that wide on paper; resize others
    with :func:`set_width` first. ``path`` has no suffix; folders are created. Files are
    written atomically and carry no dates, so a rerun gives the same bytes. Returns the two paths.
    """
    path = Path(path)
    if path.suffix in (".pdf", ".png"):
        raise ValueError(f"give the path without a suffix, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf, png = path.with_name(path.name + ".pdf"), path.with_name(path.name + ".png")
    for target, metadata in ((pdf, {"CreationDate": None, "ModDate": None}), (png, {"Software": None})):
        with plt.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}), atomic_path(target) as temporary:
            fig.savefig(temporary, format=target.suffix[1:], dpi=300, metadata=metadata)
    return pdf, png


def set_width(fig: Figure, width: float = PAGE_WIDTH, height: float | None = None) -> Figure:
    """Resize ``fig`` to ``width`` inches (its height kept unless given) and lay it out again.

    For figures built elsewhere at another width: the fonts keep their size and a
    constrained layout fits titles, labels and legends (outside ones included) into
    the new size. Returns ``fig``.
    """
    fig.set_size_inches(width, fig.get_figheight() if height is None else height)
    engine = fig.get_layout_engine()
    if engine is None or isinstance(engine, PlaceHolderLayoutEngine):   # none, or tight_layout() run once
        try:
            fig.set_layout_engine("constrained")
        except RuntimeError:   # colour bars laid out for another engine: fit once with tight_layout
            fig.tight_layout()
    fig.draw_without_rendering()
    return fig


# ------------------------------------------------------------------ log axes

#: Tick mantissas per decade, tried in this order while the labels fit: the usual 1-2-5 first,
#: then denser sets for axes spanning little more than a decade, then sparser ones.
_DENSER = ((1.0, 2.0, 5.0), (1.0, 2.0, 3.0, 5.0), (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0),
           (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0))
_SPARSER = ((1.0, 2.0, 5.0), (1.0, 3.0), (1.0,))


def _format_tick(value: float, _position=None) -> str:
    return f"{value:g}"


def _decade_ticks(low: float, high: float, mantissas: Sequence[float], every: int = 1) -> list[float]:
    ticks = []
    for exponent in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1):
        if exponent % every:
            continue
        for mantissa in mantissas:
            value = float(f"{mantissa:g}e{exponent}")
            if low * (1 - 1e-9) <= value <= high * (1 + 1e-9):
                ticks.append(value)
    return ticks


def _labels_fit(ticks: Sequence[float], low: float, high: float, length: float, fontsize: float,
                horizontal: bool) -> bool:
    """Whether tick labels at ``ticks`` on a log axis ``length`` points long stand apart."""
    if len(ticks) < 2:
        return True
    span = math.log10(high) - math.log10(low)
    where = [(math.log10(t) - math.log10(low)) / span * length for t in ticks]
    for (a, ta), (b, tb) in zip(zip(where, ticks), list(zip(where, ticks))[1:]):
        if horizontal:   # half of each label's width plus a gap of 0.8 em
            needed = 0.31 * fontsize * (len(_format_tick(ta)) + len(_format_tick(tb))) + 0.8 * fontsize
        else:            # one line of text plus half an em
            needed = 1.5 * fontsize
        if b - a < needed:
            return False
    return True


def log_ticks(axis, max_labels: int | None = None) -> list[float]:
    """Readable major ticks on a log-scaled ``axis`` (``ax.xaxis`` or ``ax.yaxis``) at its present size.

    Call it once the figure is laid out. The labels are plain numbers (``0.5``, ``20``) at
    the densest set of 1-2-5 values (or 1-2-3-5, … on an axis spanning little more than
    a decade; 1-3 or decades only on a short axis) whose labels stand apart, at most
    ``max_labels`` of them (default 6 along x, 7 along y); minor ticks stay, unlabelled.
    Returns the labelled values.
    """
    ax = axis.axes
    low, high = sorted(axis.get_view_interval())
    if low <= 0:
        raise ValueError("log_ticks needs a log axis with positive limits")
    horizontal = axis is ax.xaxis
    box = ax.get_window_extent()
    length = (box.width if horizontal else box.height) * 72.0 / ax.figure.dpi
    ticks_now = axis.get_major_ticks()
    fontsize = ticks_now[0].label1.get_fontsize() if ticks_now else plt.rcParams["xtick.labelsize"]
    fontsize = float(fontsize) if isinstance(fontsize, (int, float)) else 7.0
    cap = max_labels if max_labels is not None else (6 if horizontal else 7)

    def good(ticks: list[float], least: int) -> bool:
        return least <= len(ticks) <= cap and _labels_fit(ticks, low, high, length, fontsize, horizontal)

    chosen = None
    for mantissas in _DENSER:          # enough labels (3 or more), the usual set preferred
        ticks = _decade_ticks(low, high, mantissas)
        if good(ticks, 3):
            chosen = ticks
            break
    decades = max(1, math.ceil(math.log10(high) - math.log10(low)))
    if chosen is None:                 # crowded or short: fewer labels, down to every k-th decade
        for mantissas, every in [(m, 1) for m in _SPARSER] + [((1.0,), k) for k in range(2, decades + 1)]:
            ticks = _decade_ticks(low, high, mantissas, every)
            if good(ticks, 2):
                chosen = ticks
                break
    if chosen is None:
        ends = _decade_ticks(low, high, (1.0,))
        if len(ends) >= 2:             # a very short axis over many decades: its first and last decade
            chosen = [ends[0], ends[-1]]
        else:                          # under a factor of ~1.5: nice linear values
            values = MaxNLocator(nbins=3, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)
            chosen = [float(v) for v in values if low <= v <= high and v > 0]
    axis.set_major_locator(FixedLocator(chosen))
    axis.set_major_formatter(FuncFormatter(_format_tick))
    axis.set_minor_locator(LogLocator(subs="auto"))
    axis.set_minor_formatter(NullFormatter())
    return chosen


def _readable_log_axes(fig: Figure, axes: Iterable) -> None:
    """Lay ``fig`` out, then give every log axis of ``axes`` readable ticks, and lay it out again."""
    fig.draw_without_rendering()
    for ax in axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log":
                log_ticks(axis)
    fig.draw_without_rendering()


# ------------------------------------------------------------------ perception–distortion planes


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
    color = _PALETTE[0]
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


def _draw_plane(ax, rows: pd.DataFrame, perception: str, distortion: str, log: bool,
                label_alphas: Sequence[float], norm: Normalize, y_text: str | None = None
                ) -> tuple[list[Line2D], list[tuple[float, float, float]], list[tuple[float, float, float]],
                           list[tuple[float, float]]]:
    """Draw one perception–distortion plane on ``ax``.

    Returns the legend entries, the ``(alpha, x, y)`` points to label once the figure is
    laid out (:func:`_label_alphas`), the ``(x, y, half size in pt)`` of the large
    markers, which labels never cover, and the ``(x, y)`` of the α path, which they avoid
    where they can. ``y_text``: the legend text of y (default: :func:`y_label` of the task).
    """
    for column in (perception, distortion):
        if column not in rows or rows[column].notna().sum() == 0:
            raise ValueError(f"column {column!r} has no values in this table (missing metric?)")
    p_label, p_scale = _axis(perception)
    d_label, d_scale = _axis(distortion)
    first = rows.iloc[0]
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
            style = SIGNAL_STYLES[key]
            markers.append((x, y, 0.5 * math.sqrt(style["size"]) + 0.5))
            ax.scatter([x], [y], marker=style["marker"], color=style["color"], s=style["size"],
                       zorder=style["zorder"], edgecolors="black", linewidths=0.5)
            label = (y_text or y_label(str(first.task))) if key == "y" else style["label"]
            handles.append(Line2D([], [], marker=style["marker"], color=style["color"], linestyle="",
                                  markeredgecolor="black", markeredgewidth=0.5, label=label))
    clean = _value(rows[rows.signal.eq("x")], perception) * p_scale
    if math.isfinite(clean) and (clean > 0 or not log):
        ax.axhline(clean, color=SIGNAL_STYLES["x"]["color"], linestyle=":", linewidth=1.0, zorder=1)
        handles.append(Line2D([], [], color=SIGNAL_STYLES["x"]["color"], linestyle=":",
                              label=SIGNAL_STYLES["x"]["label"]))
    if log:
        ax.set_yscale("log")
        if distortion == "mse":
            ax.set_xscale("log")
    ax.margins(0.08)
    ax.autoscale_view()
    wanted = [float(a) for a in label_alphas] + ([float(alphas[0]), float(alphas[-1])] if len(alphas) else [])
    to_label = [(a, x, y) for w in wanted for a, x, y in zip(alphas, xs, ys) if math.isclose(a, w, abs_tol=1e-9)]
    arrow = {"mse": " ↓", "psnr": " ↑"}.get(distortion, "")
    ax.set_xlabel(d_label + arrow)
    ax.set_ylabel(p_label + " ↓")
    ax.set_title(f"{task_label(str(first.task))} — {first.restorer}")
    ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
    return handles, to_label, markers, list(zip(xs.tolist(), ys.tolist()))


#: Where an α label may go, tried in order: offset (points) from its point and alignment.
_LABEL_PLACES = (((4, 3), "left", "bottom"), ((4, -3), "left", "top"), ((-4, 3), "right", "bottom"),
                 ((-4, -3), "right", "top"), ((0, 6), "center", "bottom"), ((0, -6), "center", "top"),
                 ((7, 0), "left", "center"), ((-7, 0), "right", "center"))


def _overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label_alphas(ax, points: list[tuple[float, float, float]], markers: Sequence[tuple[float, float, float]] = (),
                  path: Sequence[tuple[float, float]] = (), fontsize: float = 6.0) -> list:
    """Write ``α=…`` beside ``(alpha, x, y)`` points, in order, where it fits.

    Each label tries the places of :data:`_LABEL_PLACES` in turn and takes the first that
    lies inside the axes and overlaps no marker of ``markers`` (``(x, y, half size in pt)``),
    no label already written and no point of the α ``path``; failing the last condition
    everywhere, the first place clear of markers and labels; failing that, the label is
    left out. Call it on a laid-out figure: overlap is judged on the rendered text extents.
    Returns the annotations written.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    pixels = fig.dpi / 72.0
    frame = ax.get_window_extent(renderer)
    frame = (frame.x0 + 0.5, frame.y0 + 0.5, frame.x1 - 0.5, frame.y1 - 0.5)

    def boxes(items, half_of):
        out = []
        for item in items:
            cx, cy = ax.transData.transform(item[:2])
            half = half_of(item) * pixels
            out.append((cx - half, cy - half, cx + half, cy + half))
        return out

    hard = boxes(markers, lambda item: item[2])
    soft = boxes(path, lambda item: 1.8)
    written, seen = [], set()
    for alpha, x, y in points:
        if round(alpha, 9) in seen:
            continue
        seen.add(round(alpha, 9))
        text, chosen, fallback = f"α={alpha + 0.0:g}", None, None
        for offset, ha, va in _LABEL_PLACES:
            note = ax.annotate(text, (x, y), xytext=offset, textcoords="offset points", ha=ha, va=va,
                               fontsize=fontsize, color="0.15", zorder=7, annotation_clip=False)
            extent = note.get_window_extent(renderer)
            box = (extent.x0, extent.y0, extent.x1, extent.y1)
            inside = box[0] >= frame[0] and box[1] >= frame[1] and box[2] <= frame[2] and box[3] <= frame[3]
            if inside and not any(_overlaps(box, other) for other in hard):
                if not any(_overlaps(box, other) for other in soft):
                    chosen = (note, box)
                    break
                if fallback is None:
                    fallback = (note, box)
                    continue
            note.remove()
        if chosen is None:
            chosen = fallback
        elif fallback is not None:
            fallback[0].remove()
        if chosen is not None:
            chosen[0].set_in_layout(False)
            hard.append(chosen[1])
            written.append(chosen[0])
    return written


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
    x* (restorer), x̂0 (α = 0), D(E(x)) and y (see :func:`y_label`) are marked; the
    clean set x, whose distortion is 0, is a dotted horizontal line at its perceptual
    index (when positive). ``log``: logarithmic perception axis, and distortion axis when
    it is MSE, with readable ticks (:func:`log_ticks`).
    Tables with ``fit_split``/``decode`` columns: the sweep of ``fit_split``, the first of
    ``decodes`` coloured by α, the second as a plain blue path with a hollow x̂0.
    """
    rows = _select(table, task, restorer, fit_split)
    fig, ax = plt.subplots(figsize=(COLUMN_WIDTH, 1.05 * COLUMN_WIDTH), layout="constrained")
    norm = _alpha_norm(rows)
    main = _decode_rows(rows, decodes[0] if decodes else None)
    handles, to_label, markers, path = _draw_plane(ax, main, perception, distortion, log, label_alphas, norm)
    for decode in list(decodes)[1:2]:
        extra, hollow = _draw_second_sweep(ax, rows, perception, distortion, decode)
        handles += extra
        markers += hollow
    _alpha_colorbar(fig, norm, ax)
    fig.legend(handles=handles, loc="outside lower center", ncol=2, frameon=False, handlelength=1.6)
    _readable_log_axes(fig, [ax])
    _label_alphas(ax, to_label, markers, path)
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
        panel_handles, to_label, markers, path = _draw_plane(ax, main, perception, distortion, log, label_alphas,
                                                             norm, y_text=y_text)
        for decode in list(decodes)[1:2]:
            extra, hollow = _draw_second_sweep(ax, rows, perception, distortion, decode)
            panel_handles += extra
            markers += hollow
        labels.append((ax, to_label, markers, path))
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
    for ax, to_label, markers, path in labels:
        _label_alphas(ax, to_label, markers, path)
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

    The figure is exactly ``width`` inches wide. Every cell is drawn at the same size
    whatever the image's resolution (a low-resolution ``y`` is shown with its pixels
    enlarged, nearest neighbour, not interpolated). Images are ``[3, H, W]`` tensors or
    ``[H, W, 3]`` arrays in [0, 1]. Row labels may span two lines.
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
    _shrink_to_cells(fig, axes)
    if path is not None:
        save_figure(fig, path)
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
        colour, marker = _PALETTE[index % len(_PALETTE)], MARKERS[index % len(MARKERS)]
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


@_styled
def training_curves(logs: Mapping[str, pd.DataFrame] | pd.DataFrame,
                    metrics: Sequence[tuple[str, str]] = (("psnr_monitor", "monitor PSNR (dB)"),),
                    log_metrics: Sequence[str] = ("loss",), step: str = "step", xlabel: str = "training step",
                    width: float | None = None, title: str | None = None) -> Figure:
    """Training curves: one panel per ``(column, axis label)`` of ``metrics``, one curve per run.

    ``logs`` maps a run's name (a task name is shown as its display name) to its log, a
    frame with a ``step`` column and the ``metrics`` columns (``dotlib.training``'s logs);
    a single frame is one unnamed run. Runs are told apart by colour (the colour-blind
    palette) *and* by marker and line style, so the figure survives grey-scale printing
    and colour-vision deficiencies. Columns of ``log_metrics`` get a log axis with readable
    ticks. ``width``: one column (:data:`COLUMN_WIDTH`) for one panel, both (:data:`PAGE_WIDTH`)
    for more, unless given.
    """
    runs = {"": logs} if isinstance(logs, pd.DataFrame) else dict(logs)
    if not runs or not metrics:
        raise ValueError("need at least one log and one metric")
    for name, log in runs.items():
        missing = [column for column in [step, *(m for m, _ in metrics)] if column not in log]
        if missing:
            raise ValueError(f"log {name!r} has no column {missing[0]!r}; it has {list(log.columns)}")
    width = width or (COLUMN_WIDTH if len(metrics) == 1 else PAGE_WIDTH)
    ncol = 2 if width < 0.75 * PAGE_WIDTH else 3
    height = 0.72 * COLUMN_WIDTH + (0.13 * math.ceil(len(runs) / ncol) if len(runs) > 1 else 0.0)
    fig, axes = plt.subplots(1, len(metrics), figsize=(width, height), squeeze=False, layout="constrained")
    styles = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
    handles = []
    for ax, (column, label) in zip(axes[0], metrics):
        for index, (name, log) in enumerate(runs.items()):
            points = log[[step, column]].dropna()
            every = max(1, math.ceil(len(points) / 25))
            line, = ax.plot(points[step], points[column], color=_PALETTE[index % len(_PALETTE)],
                            marker=MARKERS[index % len(MARKERS)], markevery=every, markersize=3.5,
                            linestyle=styles[index % len(styles)], linewidth=1.0,
                            label=task_label(name) if name else column)
            if ax is axes[0][0]:
                handles.append(line)
        if column in log_metrics:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        ax.grid(True, which="major", linewidth=0.4, alpha=0.5)
    if title:
        fig.suptitle(title)
    if len(runs) > 1:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(ncol, len(runs)), frameon=False,
                   handlelength=2.6)
    _readable_log_axes(fig, axes[0])
    return fig
