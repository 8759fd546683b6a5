"""Training curves: one panel per logged metric, one curve per run, told apart by colour,
marker and line style."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from ..tables import task_label
from .log_axes import _readable_log_axes
from .paper import COLUMN_WIDTH, PAGE_WIDTH
from .style import MARKERS, PALETTE, _styled


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
            line, = ax.plot(points[step], points[column], color=PALETTE[index % len(PALETTE)],
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
