"""Readable log axes: as many plain-number tick labels as fit side by side at the axis's
present size, 1-2-5 per decade by preference, never overlapping."""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter

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
