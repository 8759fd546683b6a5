"""The α explorer: x̂α by eq. (2), its point on the plane from the run's table, 1:1 figures, the widget."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from dotlib.cli import save_png
from dotlib.explore import DISPLAY_DPI, AlphaExplorer
from dotlib.plots import plt


def _images(count: int = 3, size: int = 64) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(count, 3, size, size, generator=generator)
    star = torch.nn.functional.avg_pool2d(x, 5, 1, 2)
    moved = star.clone()
    moved[:, :, 40:52, 8:20] = x[:, :, 40:52, 8:20]          # DOT restores texture in one place
    return {"x": x, "x_star": star, "x_hat0_direct": moved, "x_hat0_residual": (moved + star) / 2}


def _table() -> pd.DataFrame:
    rows = [{"signal": "x_alpha", "fit_split": "same", "decode": "direct", "alpha": a, "mse": 1.0 - 0.5 * a,
             "swd": 2.0 + a} for a in (-1.0, 0.0, 0.5, 1.0, 2.0)]
    return pd.DataFrame(rows + [{"signal": "x_star", "fit_split": "", "decode": "", "alpha": math.nan,
                                 "mse": 0.5, "swd": 3.0}])


def test_x_hat_alpha_is_mixed_by_eq_2_and_clamped_for_display() -> None:
    images = _images()
    explorer = AlphaExplorer(images)
    assert explorer.decodes == ["direct", "residual"]
    torch.testing.assert_close(explorer.image(1, "direct", 1.0), images["x_star"][1])
    torch.testing.assert_close(explorer.image(1, "residual", 0.0), images["x_hat0_residual"][1])
    mixed = (0.7 * images["x_hat0_direct"][2] + 0.3 * images["x_star"][2]).clamp(0, 1)
    torch.testing.assert_close(explorer.image(2, "direct", 0.3), mixed)
    assert explorer.image(0, "direct", -5.0).min() >= 0 and explorer.image(0, "direct", -5.0).max() <= 1
    with pytest.raises(ValueError, match="decode must be one of"):
        explorer.image(0, "latent", 0.5)
    with pytest.raises(ValueError, match="finite"):
        explorer.image(0, "direct", math.nan)
    with pytest.raises(ValueError, match="x_hat0"):
        AlphaExplorer({"x_star": images["x_star"]})


def test_the_point_is_the_table_row_or_an_interpolation_and_the_zoom_finds_the_change() -> None:
    explorer = AlphaExplorer(_images(), _table())
    assert explorer.point("direct", 0.5) == (0.75, 2.5, True)
    distortion, perception, measured = explorer.point("direct", 0.25)
    assert (distortion, perception, measured) == (pytest.approx(0.875), pytest.approx(2.25), False)
    assert explorer.point("direct", 3.0) is None and explorer.point("residual", 0.0) is None   # outside / unmeasured
    top, left = explorer.zoom_corner(0, "direct")
    assert 40 - 48 < top <= 40 and 8 - 48 < left <= 8 and top + 48 >= 52 and left + 48 >= 20


def test_views_are_one_to_one_and_the_widget_redraws_on_every_control(monkeypatch) -> None:
    explorer = AlphaExplorer(_images(), _table(), names=["a", "b", "c"])
    strip = explorer.strip(0, alphas=(1.0, 0.0))
    assert strip.get_figwidth() * DISPLAY_DPI == pytest.approx(2 * 64)
    view = explorer.view(1, "direct", 0.5)
    images = [ax for ax in view.axes if ax.images]
    assert len(images) == 6                                      # x*, x̂α, x and their zoom windows
    assert images[0].get_window_extent().width == pytest.approx(64, abs=1)   # 1:1
    assert "α = 0.5" in view.axes[-1].get_title() and "interpolated" not in view.axes[-1].get_title()
    plt.close("all")
    drawn = []
    monkeypatch.setattr(explorer, "view", lambda crop, decode, alpha: drawn.append((crop, decode, alpha)) or plt.figure())
    widget = explorer.widget()
    widget.controls["alpha"].value = 0.5
    widget.controls["crop"].value = 2
    widget.controls["decode"].value = "residual"
    assert drawn == [(0, "direct", 0.0), (0, "direct", 0.5), (2, "direct", 0.5), (2, "residual", 0.5)]
    plt.close("all")


def test_two_folders_are_matched_by_file_stem(tmp_path) -> None:
    images = _images(2, 32)
    for key, folder in (("x_star", "star"), ("x_hat0_direct", "dot")):
        for index, name in enumerate(("a", "b")):
            (tmp_path / folder).mkdir(exist_ok=True)
            save_png(images[key][index], tmp_path / folder / f"{name}.png")
    save_png(images["x_star"][0], tmp_path / "star" / "only_here.png")
    explorer = AlphaExplorer.from_folders(tmp_path / "star", tmp_path / "dot")
    assert explorer.names == ["a", "b"] and explorer.clean is None
    assert np.abs(explorer.image(1, "direct", 1.0).numpy() - images["x_star"][1].numpy()).max() <= 1 / 255 + 1e-6
