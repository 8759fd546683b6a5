r"""The α explorer: move α, see x̂α change beside x* and x, and its point move on the
perception–distortion curve.

x̂α is mixed from the images a run kept, by eq. (2) of Adrai et al. (2023),
:math:`\hat x_\alpha = (1 - \alpha)\,\hat x_0 + \alpha\, x^*`, so moving the slider refits and
re-decodes nothing; every decoding a run measured (``x_hat0_<decode>``) can be chosen. Images
are drawn at 1:1 (one image pixel per screen pixel at :data:`DISPLAY_DPI`), with a zoom window,
3× enlarged, where x̂0 differs most from x*. The point on the plane is read from the run's
table: at a measured α it is that row's value; between two measured α it is interpolated
linearly, and the figure says so.

:meth:`AlphaExplorer.widget` is the interactive form (ipywidgets: an α slider, a crop picker, a
decoding picker). :meth:`AlphaExplorer.strip` draws the same images for a few α as one static
figure: what an executed notebook shows to a reader without a live kernel.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .plots import SIGNAL_STYLES, plt
from .plots.zoom import change_window

__all__ = ["DISPLAY_DPI", "AlphaExplorer"]

#: Resolution of the explorer's figures: at this dpi an image pixel is a figure pixel (1:1).
DISPLAY_DPI = 100
#: Side of the zoom window in image pixels, and how much it is enlarged.
ZOOM_SIDE, ZOOM_FACTOR = 48, 3


class AlphaExplorer:
    """x̂α of a run's kept images for any α, decoding and crop.

    Parameters
    ----------
    images : ``{"x": clean, "x_star": restored, "x_hat0_<decode>": transported, ...}``, each
        ``[N, 3, H, W]`` in [0, 1] (``run.images`` of :func:`dotlib.study.run_task` or of a
        folder run); ``x`` may be missing (then only x* and x̂α are shown).
    table : the run's table (``run.table``) for the perception–distortion curve, or None.
    perception, distortion : the plane's columns. fit_split : the design whose sweep is drawn.
    names : a label per crop (e.g. ``run.photos``).
    """

    def __init__(self, images: Mapping[str, torch.Tensor], table: pd.DataFrame | None = None,
                 perception: str = "swd", distortion: str = "mse", fit_split: str = "same",
                 names: Sequence[str] | None = None):
        self.decodes = sorted(key.removeprefix("x_hat0_") for key in images if key.startswith("x_hat0_"))
        if "x_star" not in images or not self.decodes:
            raise ValueError(f"images need 'x_star' and at least one 'x_hat0_<decode>'; got {sorted(images)}")
        self.x_star = images["x_star"].detach().float().cpu()
        self.x_hat0 = {decode: images[f"x_hat0_{decode}"].detach().float().cpu() for decode in self.decodes}
        self.clean = images["x"].detach().float().cpu() if "x" in images else None
        for name, batch in [("x", self.clean), *self.x_hat0.items()]:
            if batch is not None and batch.shape != self.x_star.shape:
                raise ValueError(f"images {name!r} {tuple(batch.shape)} do not match x_star {tuple(self.x_star.shape)}")
        self.names = list(names) if names is not None else [f"#{i}" for i in range(self.x_star.shape[0])]
        self.table, self.perception, self.distortion, self.fit_split = table, perception, distortion, fit_split

    @classmethod
    def from_folders(cls, restored: str | Path, transported: str | Path, clean: str | Path | None = None,
                     decode: str = "direct") -> "AlphaExplorer":
        """An explorer of two image folders (x* and x̂0, matched by file stem), and optionally the
        clean images; images of one size, in [0, 1]."""
        from .data import image_files, load_image

        folders = {"x_star": restored, f"x_hat0_{decode}": transported} | ({"x": clean} if clean else {})
        files = {key: {path.stem: path for path in image_files(folder)} for key, folder in folders.items()}
        stems = sorted(set.intersection(*(set(found) for found in files.values())))
        if not stems:
            raise FileNotFoundError(f"no file stem is in every folder of {', '.join(map(str, folders.values()))}")
        images = {key: torch.stack([load_image(found[stem]) for stem in stems]) for key, found in files.items()}
        return cls(images, names=stems)

    # ------------------------------------------------------------------ the numbers

    def image(self, crop: int, decode: str, alpha: float) -> torch.Tensor:
        """x̂α of one crop, ``[3, H, W]`` clamped to [0, 1] for display: ``(1 − α)·x̂0 + α·x*``."""
        if decode not in self.x_hat0:
            raise ValueError(f"decode must be one of {self.decodes}, got {decode!r}")
        if not math.isfinite(alpha):
            raise ValueError(f"alpha must be finite, got {alpha!r}")
        return ((1.0 - alpha) * self.x_hat0[decode][crop] + alpha * self.x_star[crop]).clamp(0.0, 1.0)

    def zoom_corner(self, crop: int, decode: str) -> tuple[int, int]:
        """Top-left ``(row, col)`` of the zoom window (:data:`ZOOM_SIDE` pixels, less on small crops)
        where x̂0 differs most from x*."""
        side = min(ZOOM_SIDE * ZOOM_FACTOR, *self.x_star.shape[-2:]) // ZOOM_FACTOR
        return change_window(self.x_hat0[decode][crop], self.x_star[crop], side)

    def sweep(self, decode: str) -> pd.DataFrame:
        """The measured α of one decoding with their distortion and perception (sorted by α)."""
        if self.table is None:
            return pd.DataFrame(columns=["alpha", self.distortion, self.perception])
        rows = self.table[self.table.signal.eq("x_alpha") & self.table.decode.eq(decode)
                          & self.table.fit_split.eq(self.fit_split)]
        return rows[["alpha", self.distortion, self.perception]].dropna().sort_values("alpha")

    def point(self, decode: str, alpha: float) -> tuple[float, float, bool] | None:
        """``(distortion, perception, measured)`` of x̂α on the run's plane: the row at a measured α,
        else linear interpolation between the two measured α around it; None outside the sweep."""
        sweep = self.sweep(decode)
        if sweep.empty or not sweep.alpha.min() <= alpha <= sweep.alpha.max():
            return None
        measured = bool(np.isclose(sweep.alpha, alpha).any())
        values = [float(np.interp(alpha, sweep.alpha, sweep[column])) for column in (self.distortion, self.perception)]
        return values[0], values[1], measured

    # ------------------------------------------------------------------ the figures

    def _panels(self, crop: int, decode: str, alpha: float) -> list[tuple[str, torch.Tensor]]:
        panels = [("x* (restorer)", self.x_star[crop]), (f"x̂α, α = {alpha:g} ({decode})", self.image(crop, decode, alpha))]
        return panels + ([("x (clean)", self.clean[crop])] if self.clean is not None else [])

    def view(self, crop: int = 0, decode: str | None = None, alpha: float = 0.0) -> Figure:
        """x*, x̂α and x at 1:1 over their 3× zoom windows, and the plane with x̂α's point."""
        decode = decode or self.decodes[0]
        panels = self._panels(crop, decode, alpha)
        height, width = self.x_star.shape[-2:]
        zoom = min(ZOOM_SIDE * ZOOM_FACTOR, height, width)   # the enlarged window fits under its image
        plane = 3.0 if self.table is not None else 0.0
        fig = plt.figure(figsize=(len(panels) * width / DISPLAY_DPI + plane, (height + zoom + 40) / DISPLAY_DPI),
                         dpi=DISPLAY_DPI)
        top, left = self.zoom_corner(crop, decode)
        side = zoom // ZOOM_FACTOR
        total = fig.get_figwidth() * DISPLAY_DPI
        for index, (label, image) in enumerate(panels):
            x0 = index * width / total
            ax = fig.add_axes((x0, (zoom + 20) / (height + zoom + 40), width / total, height / (height + zoom + 40)))
            ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), side, side, fill=False, edgecolor="white", linewidth=1))
            ax.set_title(label, fontsize=8)
            ax.axis("off")
            zoomed = fig.add_axes((x0, 0.0, zoom / total, zoom / (height + zoom + 40)))
            zoomed.imshow(image[:, top:top + side, left:left + side].permute(1, 2, 0).numpy(), interpolation="nearest")
            zoomed.axis("off")
        if self.table is not None:   # right of the images, with room for its axis labels
            left_px = len(panels) * width + 70
            self._draw_plane(fig.add_axes((left_px / total, 0.2, (total - left_px - 15) / total, 0.68)), decode, alpha)
        return fig

    def _draw_plane(self, ax, decode: str, alpha: float) -> None:
        """The sweep of ``decode`` on (distortion, perception) and x̂α's point."""
        sweep = self.sweep(decode)
        ax.plot(sweep[self.distortion], sweep[self.perception], "-", color="0.6", linewidth=1)
        ax.scatter(sweep[self.distortion], sweep[self.perception], s=6, color="0.4", zorder=3)
        found = self.point(decode, alpha)
        if found is not None:
            style = SIGNAL_STYLES["x_hat0"]
            ax.scatter([found[0]], [found[1]], marker=style["marker"], s=40, color=style["color"], edgecolors="black",
                       zorder=5)
            ax.set_title(f"α = {alpha:g}" + ("" if found[2] else " (interpolated)"), fontsize=8)
        ax.set_xlabel(self.distortion.upper() + " ↓", fontsize=7)
        ax.set_ylabel(self.perception.upper() + " ↓", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=3))   # short MSE labels do not run into each other

    def strip(self, crop: int = 0, decode: str | None = None, alphas: Sequence[float] = (1.0, 0.5, 0.0, -0.5)) -> Figure:
        """x̂α of one crop for each of ``alphas`` side by side at 1:1 (α = 1 is x*): a static view."""
        decode = decode or self.decodes[0]
        height, width = self.x_star.shape[-2:]
        fig = plt.figure(figsize=(len(alphas) * width / DISPLAY_DPI, (height + 20) / DISPLAY_DPI), dpi=DISPLAY_DPI)
        for index, alpha in enumerate(alphas):
            ax = fig.add_axes((index / len(alphas), 0.0, 1 / len(alphas), height / (height + 20)))
            ax.imshow(self.image(crop, decode, alpha).permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_title(f"α = {alpha:g}", fontsize=8)
            ax.axis("off")
        return fig

    def widget(self, alpha_range: tuple[float, float] = (-1.0, 2.0), step: float = 0.05):
        """The interactive explorer: an α slider, a crop and a decoding picker over :meth:`view`."""
        import ipywidgets as widgets
        from IPython.display import display

        slider = widgets.FloatSlider(value=0.0, min=alpha_range[0], max=alpha_range[1], step=step, description="α",
                                     continuous_update=False, readout_format=".2f")
        crop = widgets.Dropdown(options=[(name, i) for i, name in enumerate(self.names)], value=0, description="crop")
        decode = widgets.ToggleButtons(options=self.decodes, value=self.decodes[0], description="decoding")
        output = widgets.Output()

        def redraw(_change=None) -> None:
            with output:
                output.clear_output(wait=True)
                figure = self.view(crop.value, decode.value, slider.value)
                display(figure)
                plt.close(figure)

        for control in (slider, crop, decode):
            control.observe(redraw, names="value")
        redraw()
        box = widgets.VBox([widgets.HBox([slider, crop]), decode, output])
        box.controls = {"alpha": slider, "crop": crop, "decode": decode, "output": output}
        return box
