"""Figures on paper: the one- and two-column widths, resizing a figure to one of them,
and writing it as a vector PDF and a 300-dpi PNG."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.layout_engine import PlaceHolderLayoutEngine

from ..io import atomic_path
from ..precision import images_agree

COLUMN_WIDTH = 3.5  # inches, one column of a two-column paper
PAGE_WIDTH = 7.2  # inches, both columns


def save_figure(fig: Figure, path: str | Path, dpi: float = 300.0) -> tuple[Path, Path]:
    """Write ``<path>.pdf`` (vector, TrueType fonts embedded) and ``<path>.png`` (``dpi``, 300 by default).

    The files have the figure's own size (no tight bounding box), so a figure built
    :data:`COLUMN_WIDTH` or :data:`PAGE_WIDTH` wide is that wide on paper; resize others
    with :func:`set_width` first. ``path`` has no suffix; folders are created. Files are
    written atomically and carry no dates, so a rerun gives the same bytes. When both files
    exist and the new PNG is within one 8-bit level of the old one everywhere
    (:func:`dotlib.precision.images_agree`: the same drawing up to float noise), both old
    files are kept. Returns the two paths.
    """
    path = Path(path)
    if path.suffix in (".pdf", ".png"):
        raise ValueError(f"give the path without a suffix, got {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf, png = path.with_name(path.name + ".pdf"), path.with_name(path.name + ".png")
    with plt.rc_context({"pdf.fonttype": 42, "ps.fonttype": 42}):
        writer = atomic_path(png)
        with writer as temporary:
            fig.savefig(temporary, format="png", dpi=dpi, metadata={"Software": None})
            if pdf.is_file() and png.is_file() and images_agree(png, temporary):
                writer.discard()
                return pdf, png
        with atomic_path(pdf) as temporary:
            fig.savefig(temporary, format="pdf", dpi=300, metadata={"CreationDate": None, "ModDate": None})
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
