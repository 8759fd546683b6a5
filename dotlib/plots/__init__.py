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

Modules: :mod:`.style` (fonts, palette, markers), :mod:`.paper` (widths, resizing, files),
:mod:`.log_axes`, :mod:`.alpha_labels`, :mod:`.planes`, :mod:`.collages`, :mod:`.curves`;
every public name is importable from ``dotlib.plots`` (``plt`` too, for notebooks).
"""

from __future__ import annotations

import matplotlib.pyplot as plt

from .collages import RUN_LABELS, collage, run_collage
from .curves import training_curves
from .log_axes import log_ticks
from .paper import COLUMN_WIDTH, PAGE_WIDTH, save_figure, set_width
from .planes import labelled_plane, perception_distortion, perception_distortion_grid, y_label
from .style import ALPHA_CMAP, MARKERS, PALETTE, RC_PARAMS, SIGNAL_STYLES, set_style

#: The public names; ``ALPHA_CMAP``, ``RUN_LABELS`` and ``plt`` were module attributes of the
#: single-file ``dotlib.plots`` that callers (notebooks: ``plots.plt``) rely on.
__all__ = [
    "ALPHA_CMAP",
    "COLUMN_WIDTH",
    "MARKERS",
    "PAGE_WIDTH",
    "PALETTE",
    "RC_PARAMS",
    "RUN_LABELS",
    "SIGNAL_STYLES",
    "collage",
    "labelled_plane",
    "log_ticks",
    "perception_distortion",
    "perception_distortion_grid",
    "plt",
    "run_collage",
    "save_figure",
    "set_style",
    "set_width",
    "training_curves",
    "y_label",
]
