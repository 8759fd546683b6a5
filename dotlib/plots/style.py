"""The look shared by every figure: print fonts and sizes, the colour-blind palette and markers,
the α colour map, the marker of each named signal, and the decorator that applies them."""

from __future__ import annotations

import functools
from typing import Callable

import matplotlib.pyplot as plt
import seaborn as sns
from matplotlib.figure import Figure

#: Font embedding (TrueType, never Type 3) and sizes for print; the resolution figures are shown at.
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
    "figure.dpi": 200,   # shown inline at 200 dpi: a one-column figure is 700 px wide, its legend readable
}

#: The colour-blind safe palette of every figure (seaborn's "colorblind").
PALETTE = sns.color_palette("colorblind")
ALPHA_CMAP = "viridis"

#: One marker per curve of a line plot (with the colour-blind palette, in the same order).
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")

#: Marker style of each named point of the plane (x̂0 is the x_alpha row at α = 0). ``size``
#: is the scatter area in pt²; ``zorder``: y is drawn larger and below x*, so that x* stays
#: visible when y sits on it (their outlines both show).
SIGNAL_STYLES: dict[str, dict] = {
    "x_star": {"marker": "s", "color": PALETTE[1], "label": r"$x^*$ (restorer)", "size": 34, "zorder": 6},
    "x_hat0": {"marker": "D", "color": PALETTE[2], "label": r"$\hat{x}_0$ (DOT)", "size": 34, "zorder": 5},
    "xe": {"marker": "^", "color": PALETTE[4], "label": r"$D(E(x))$", "size": 34, "zorder": 5},
    "y": {"marker": "X", "color": PALETTE[7], "label": r"$y$", "size": 64, "zorder": 4},
    "x": {"color": "0.35", "label": r"$x$ (clean)"},
}


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
