"""dotlib.plots and dotlib.tables on a synthetic study table shaped like run_task's output."""

from __future__ import annotations

import math
import re

import matplotlib
import matplotlib.collections
import matplotlib.pyplot as plt
import matplotlib.text
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dotlib import plots, tables


def study_table(tasks=("sr4", "awgn50")) -> pd.DataFrame:
    """Theory-shaped rows: MSE(α) = D* + (1 - α)² W², perception grows with |α|.

    Best PSNR among α ∉ {0, 1} is at α = 0.9; the lowest SWD at α = -0.2 (a dip below x̂0).
    FID/KID/IS/LPIPS are missing (NaN), as on a machine without their weights.
    """
    rows = []
    for k, task in enumerate(tasks):
        d_star, w2 = 0.002 * (k + 1), 0.0015

        def add(signal, alpha, mse, swd):
            rows.append({
                "task": task, "restorer": "mse_net", "encoder": "embedded", "signal": signal,
                "alpha": alpha, "n_images": 8, "mse": mse, "mse_sd": 0.2 * mse,
                "psnr": math.inf if mse == 0 else -10 * math.log10(mse), "psnr_sd": 0.0 if mse == 0 else 1.5,
                "ssim": 1.0 - 20 * mse, "ssim_sd": 0.03, "swd": swd, "swd_sd": 0.1 * swd,
                "latent_w2": 0.5 + swd, "lpips": math.nan, "fid": math.nan, "kid": math.nan,
                "kid_sd": math.nan, "is": math.nan, "is_sd": math.nan,
            })

        add("x", math.nan, 0.0, 0.004)
        add("xe", math.nan, 0.5 * d_star, 0.03)
        add("y", math.nan, 5 * d_star, 0.4)
        add("x_star", math.nan, d_star, 0.15)
        for alpha in np.round(np.arange(-1.0, 2.01, 0.1), 10):
            bump = 0.00005 if not 0.85 < alpha < 0.95 else -0.00001   # best PSNR at 0.9
            dip = -0.02 if math.isclose(alpha, -0.2) else 0.0          # best SWD at -0.2
            mse = d_star + (1 - alpha) ** 2 * w2 + bump
            add("x_alpha", float(alpha), mse, 0.02 + 0.13 * abs(alpha) + dip)
    return pd.DataFrame(rows)


def assert_pdf_png(pdf, png, width_in: float):
    """PDF with TrueType fonts, 300-dpi PNG, both exactly ``width_in`` inches wide."""
    assert pdf.stat().st_size > 2000 and png.stat().st_size > 2000
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF") and b"/Type3" not in data and b"/FontFile2" in data
    box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", data)
    assert box and float(box[1]) / 72 == pytest.approx(width_in, abs=0.01)
    with Image.open(png) as image:
        dpi = image.info["dpi"][0]
        assert dpi == pytest.approx(300, abs=1)
        assert image.width / dpi == pytest.approx(width_in, abs=0.01)


def assert_nothing_clipped(fig):
    """Everything drawn lies inside the figure (what save_figure writes is the whole figure)."""
    fig.draw_without_rendering()
    drawn = fig.get_tightbbox(fig.canvas.get_renderer())   # inches
    width, height = fig.get_size_inches()
    assert drawn.x0 >= -0.01 and drawn.y0 >= -0.01 and drawn.x1 <= width + 0.01 and drawn.y1 <= height + 0.01, \
        f"drawn extent {drawn.bounds} is cut by the {width} x {height} in figure"


def tick_labels(axis) -> list[str]:
    """The labels a reader sees on ``axis``: major ticks inside the view, with text."""
    low, high = sorted(axis.get_view_interval())
    return [tick.label1.get_text() for tick in axis.get_major_ticks()
            if tick.label1.get_visible() and tick.label1.get_text() and low <= tick.get_loc() <= high]


def assert_readable_log_axis(axis, most: int):
    """2 to ``most`` labels, none overlapping its neighbour, on a log axis (of a figure drawn since its last change)."""
    renderer = axis.figure.canvas.get_renderer()
    low, high = sorted(axis.get_view_interval())
    shown = [tick.label1 for tick in axis.get_major_ticks()
             if tick.label1.get_text() and low * 0.999 <= tick.get_loc() <= high * 1.001]
    assert 2 <= len(shown) <= most, [t.get_text() for t in shown]
    extents = sorted((t.get_window_extent(renderer) for t in shown), key=lambda b: (b.x0, b.y0))
    for a, b in zip(extents, extents[1:]):
        assert not a.overlaps(b), "tick labels overlap"


def test_perception_distortion_plane_files(tmp_path):
    table = study_table()
    fig = plots.perception_distortion(table, task="sr4")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    styles = [c.get_linestyle()[0] for c in ax.collections if hasattr(c, "get_linestyle")]
    assert any(s[1] is None for s in styles) and any(s[1] is not None for s in styles)  # solid and dashed
    labels = {t.get_text() for t in ax.texts}
    assert {"α=0", "α=0.5", "α=1", "α=-1", "α=2"} <= labels
    legend = {t.get_text() for t in fig.legends[0].get_texts()}
    assert {"extrapolation", r"$x^*$ (restorer)", r"$\hat{x}_0$ (DOT)", r"$D(E(x))$",
            r"$y$, bicubic ×4"} <= legend           # sr4's y was upsampled to be measured
    assert fig.axes[1].get_ylabel() == "α"  # the colour bar
    assert ax.get_xlabel() == "MSE ×10³ ↓"
    assert fig.get_figwidth() == pytest.approx(plots.COLUMN_WIDTH)
    fig.draw_without_rendering()
    for axis in (ax.xaxis, ax.yaxis):
        assert_readable_log_axis(axis, most=7)
    assert_nothing_clipped(fig)
    pdf, png = plots.save_figure(fig, tmp_path / "pd" / "sr4")
    assert_pdf_png(pdf, png, plots.COLUMN_WIDTH)
    plt.close(fig)

    fig = plots.perception_distortion(table, task="awgn50", distortion="psnr", perception="latent_w2")
    assert fig.axes[0].get_xlabel().startswith("PSNR") and fig.axes[0].get_xscale() == "linear"
    plt.close(fig)
    with pytest.raises(ValueError, match="'fid' has no values"):
        plots.perception_distortion(table, task="sr4", perception="fid")
    with pytest.raises(ValueError, match="exactly one task/restorer"):
        plots.perception_distortion(table)
    with pytest.raises(ValueError, match="without a suffix"):
        plots.save_figure(fig, tmp_path / "x.png")


def test_grid_over_tasks(tmp_path):
    fig = plots.perception_distortion_grid(study_table(("sr4", "jpeg10", "awgn50", "sr4_awgn50")))
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["SISR ×4 — mse_net", "JPEG q=10 — mse_net",
                                                 "AWGN σ=50 — mse_net", "SR ×4 + AWGN σ=50 — mse_net"]
    fig.draw_without_rendering()
    for ax in panels:   # narrow panels: few enough labels to stand apart
        assert_readable_log_axis(ax.xaxis, most=6)
        assert_readable_log_axis(ax.yaxis, most=7)
    legend = [t.get_text() for ax in fig.axes for t in (ax.get_legend().get_texts() if ax.get_legend() else [])]
    assert r"$y$ (SR tasks: bicubic ×4)" in legend   # one legend, in the grid's empty cell
    assert fig.get_figwidth() == pytest.approx(plots.PAGE_WIDTH)
    assert_nothing_clipped(fig)
    pdf, png = plots.save_figure(fig, tmp_path / "grid")
    assert_pdf_png(pdf, png, plots.PAGE_WIDTH)
    plt.close(fig)

    full = plots.perception_distortion_grid(study_table(("sr4", "jpeg10", "awgn50")))   # no empty cell
    assert len(full.legends) == 1
    assert_nothing_clipped(full)
    plt.close(full)


@pytest.mark.parametrize("task", ["awgn50", "jpeg10"])
def test_y_is_labelled_y_where_it_was_not_resized(task):
    fig = plots.perception_distortion(study_table((task,)), task=task)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "$y$" in legend and not any("bicubic" in text for text in legend)
    plt.close(fig)
    assert plots.y_label(task) == "$y$" and plots.y_label(["sr4", "sr4_jpeg10"]) == "$y$, bicubic ×4"
    assert plots.y_label("a_task_dotlib_does_not_know") == "$y$"


def test_x_star_is_drawn_over_y():
    table = study_table(("sr4_jpeg10",))
    star = table.signal.eq("x_star")
    table.loc[table.signal.eq("y"), ["mse", "swd"]] = table.loc[star, ["mse", "swd"]].to_numpy()  # y on x*
    fig = plots.perception_distortion(table, task="sr4_jpeg10")
    marks = [c for c in fig.axes[0].collections
             if isinstance(c, matplotlib.collections.PathCollection) and len(c.get_offsets()) == 1]
    orange = [c for c in marks if np.allclose(c.get_facecolor()[0][:3], plots.SIGNAL_STYLES["x_star"]["color"])]
    grey = [c for c in marks if np.allclose(c.get_facecolor()[0][:3], plots.SIGNAL_STYLES["y"]["color"])]
    assert len(orange) == 1 and len(grey) == 1
    assert np.allclose(orange[0].get_offsets(), grey[0].get_offsets())
    assert orange[0].get_zorder() > grey[0].get_zorder() and orange[0].get_sizes()[0] < grey[0].get_sizes()[0]
    plt.close(fig)


def test_alpha_labels_inside_the_axes_and_apart():
    for fig in (plots.perception_distortion(study_table(), task="awgn50"),
                plots.perception_distortion_grid(study_table(("sr4", "jpeg10", "awgn50", "sr4_awgn50")))):
        fig.draw_without_rendering()
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            notes = [t for t in ax.texts if t.get_text().startswith("α=")]
            extents = [t.get_window_extent(renderer) for t in notes]
            frame = ax.get_window_extent(renderer)
            for box in extents:
                assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            for i, a in enumerate(extents):
                assert not any(a.overlaps(b) for b in extents[i + 1:])
        plt.close(fig)


@pytest.mark.parametrize("low, high, most", [(2e-4, 3e-2, 6), (22.0, 61.0, 7), (0.9, 1.2, 7), (1e-12, 1e3, 7)])
def test_log_ticks_are_few_readable_numbers(low, high, most):
    fig, ax = plt.subplots(figsize=(plots.COLUMN_WIDTH / 2, plots.COLUMN_WIDTH / 2), layout="constrained")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    fig.draw_without_rendering()
    for axis in (ax.xaxis, ax.yaxis):
        values = plots.log_ticks(axis)
        fig.draw_without_rendering()
        assert all(low <= v <= high for v in values)
        assert_readable_log_axis(axis, most=most)
        assert all(len(text) <= 6 for text in tick_labels(axis))   # "0.0005", "20", never 1e-04-style noise
    plt.close(fig)


def test_training_curves_distinct_markers_and_widths(tmp_path):
    steps = np.arange(100, 1600, 100)
    logs = {task: pd.DataFrame({"step": steps, "loss": 0.01 / (1 + k + steps / 500),
                                "psnr_monitor": 20 + k + np.log(steps) / 3})
            for k, task in enumerate(["sr4", "jpeg10", "awgn50", "sr4_jpeg10", "sr4_awgn50"])}
    fig = plots.training_curves(logs)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 5
    assert len({line.get_marker() for line in lines}) == 5           # told apart without colour
    assert len({line.get_color() for line in lines}) == 5
    palette = [tuple(c) for c in plots.PALETTE]
    assert all(tuple(matplotlib.colors.to_rgb(line.get_color())) in palette for line in lines)
    assert [t.get_text() for t in fig.legends[0].get_texts()][0] == "SISR ×4"
    assert fig.get_figwidth() == pytest.approx(plots.COLUMN_WIDTH)
    assert_nothing_clipped(fig)
    pdf, png = plots.save_figure(fig, tmp_path / "training")
    assert_pdf_png(pdf, png, plots.COLUMN_WIDTH)
    plt.close(fig)

    two = plots.training_curves({"embedded VAE": logs["sr4"]},
                                metrics=[("loss", "training loss"), ("psnr_monitor", "PSNR (dB)")])
    assert two.get_figwidth() == pytest.approx(plots.PAGE_WIDTH) and two.axes[0].get_yscale() == "log"
    two.draw_without_rendering()
    assert_readable_log_axis(two.axes[0].yaxis, most=7)
    assert_nothing_clipped(two)
    plt.close(two)
    with pytest.raises(ValueError, match="no column 'psnr'"):
        plots.training_curves(logs, metrics=[("psnr", "PSNR")])


def test_set_width_refits_a_figure_built_elsewhere(tmp_path):
    fig, ax = plt.subplots(figsize=(8.0, 3.0))
    ax.plot([0, 1], [0, 1], label="a long legend entry placed outside the axes")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    plots.set_width(fig, plots.PAGE_WIDTH)
    assert fig.get_figwidth() == pytest.approx(plots.PAGE_WIDTH)
    assert_nothing_clipped(fig)
    pdf, png = plots.save_figure(fig, tmp_path / "elsewhere")
    assert_pdf_png(pdf, png, plots.PAGE_WIDTH)
    plt.close(fig)


def test_collage(tmp_path):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 48, generator=generator)
    images = {"x": x, "y": x[..., ::4, ::4], "x_star": x * 0.5, "x_hat0": x.flip(-1)}
    fig = plots.run_collage(images, indices=(0, 1), path=tmp_path / "collage", zoom=False)
    assert len(fig.axes) == 8 and fig.axes[0].get_title() == "$y$" and fig.axes[0].get_ylabel() == "#0"
    shown = fig.axes[1].images[0].get_array()
    assert np.allclose(shown, (x[0] * 0.5).permute(1, 2, 0).numpy())
    assert fig.axes[0].images[0].get_array().shape[:2] == (8, 12)   # y at its own size, not resampled
    assert_nothing_clipped(fig)
    assert_pdf_png(tmp_path / "collage.pdf", tmp_path / "collage.png", plots.PAGE_WIDTH)
    plt.close(fig)
    two_lines = plots.collage([[x[0], x[1]]], row_labels=["SR ×4 + JPEG q=10\nbest: tv"],
                              column_labels=["$y$", "$x$"], width=plots.COLUMN_WIDTH)
    assert two_lines.get_figwidth() == pytest.approx(plots.COLUMN_WIDTH)
    assert_nothing_clipped(two_lines)
    plt.close(two_lines)
    with pytest.raises(KeyError, match="xe"):
        plots.run_collage(images, columns=("xe",))


def test_a_collage_png_shows_the_images_at_one_to_one(tmp_path):
    """Five columns of noise images, 256 px (the study's collages; 1:1 gives 186 dpi): every pixel of a
    full-size cell is the image's own, within the one level of 8-bit rounding, and a 64-px image is its
    pixels enlarged 4× exactly."""
    generator = torch.Generator().manual_seed(0)
    large = torch.rand(3, 256, 256, generator=generator)
    small = torch.rand(3, 64, 64, generator=generator)
    plt.close(plots.collage([[small, large, large, large, large]], row_labels=["#0"], column_labels=list("abcde"),
                            path=tmp_path / "native"))
    with Image.open(tmp_path / "native.png") as image:
        png, dpi = np.asarray(image.convert("RGB")).astype(int), image.info["dpi"][0]
    assert 180 < dpi < 190

    def located(target: np.ndarray) -> np.ndarray:
        """The PNG's square of ``target``'s size at the offset where its first 16×16 pixels fit best."""
        side = target.shape[0]
        offsets = [(r, c) for r in range(0, 80) for c in range(0, png.shape[1] - side)]
        r, c = min(offsets, key=lambda rc: np.abs(png[rc[0]:rc[0] + 16, rc[1]:rc[1] + 16] - target[:16, :16]).max())
        return png[r:r + side, c:c + side]

    as_levels = lambda image: (image.permute(1, 2, 0).numpy() * 255).round().astype(int)   # noqa: E731
    assert np.abs(located(as_levels(large)) - as_levels(large)).max() <= 1
    enlarged = np.kron(as_levels(small), np.ones((4, 4, 1), dtype=int))
    assert np.abs(located(enlarged) - enlarged).max() <= 1


def test_collage_zoom_rows_enlarge_where_x_hat0_differs_most_from_x_star(tmp_path):
    """Under each row, the window (a quarter of the side) where x̂0 changed x* most, in every column;
    the low-resolution y gives its own pixels of that region; the window is outlined above."""
    x = torch.full((1, 3, 32, 48), 0.5)
    x_hat0 = x.clone()
    x_hat0[..., 20:28, 30:38] = 1.0                  # what "DOT" changed: an 8-px square
    images = {"x": x, "y": x[..., ::4, ::4], "x_star": x, "x_hat0": x_hat0}
    fig = plots.run_collage(images, indices=(0,), path=tmp_path / "zoomed")
    assert len(fig.axes) == 8 and fig.axes[4].get_ylabel() == "#0, ×4"
    window = fig.axes[6].images[0].get_array()       # x̂0's zoom: 8 px, all of the changed square
    assert window.shape[:2] == (8, 8) and np.all(np.asarray(window) == 1.0)
    assert fig.axes[4].images[0].get_array().shape[:2] == (2, 2)    # y: the same region at its own size
    assert len(fig.axes[1].patches) == 1 and len(fig.axes[5].patches) == 0
    assert_nothing_clipped(fig)
    plt.close(fig)


def test_poster_table_markdown_and_latex(tmp_path):
    table = study_table()
    rows = tables.poster_rows(table, alphas="auto")
    sr4 = rows[rows.task.eq("sr4")]
    assert list(sr4.signal) == ["x", "xe", "y", "x_star", "x_alpha", "x_alpha", "x_alpha"]
    assert list(sr4.alpha.iloc[4:]) == pytest.approx([0.9, -0.2, 0.0])
    fixed = tables.poster_rows(table)                  # default: α fixed in advance, not chosen on the data
    assert list(fixed[fixed.task.eq("sr4")].alpha.iloc[4:]) == pytest.approx([0.5, 0.0])

    notes = {"fid": "Inception weights inception-2015-12-05.pt not found (set DOTLIB_INCEPTION_PATH)"}
    markdown = tables.to_markdown(table, notes=notes, alphas="auto")
    lines = markdown.splitlines()
    assert lines[0].startswith(
        "| Task | Signal | PSNR ↑ | SSIM ↑ | LPIPS ↓ | FID ↓ | IS ↑ | KID ×10³ ↓ "
        "| SWD ×10³ ↓")
    assert "| SISR ×4 | x | ∞ | 1.000 ± 0.030 | — | — | — | — | 4.0 ± 0.4 |" in markdown
    assert "|  | x*: mse_net | 26.99 ± 1.50 |" in markdown
    assert "|  | x̂<sub>-0.2</sub> |" in markdown and "| AWGN σ=50 | x |" in markdown
    assert sum(line.startswith("|") for line in lines) == 2 + 14
    assert f"— FID: {notes['fid']}" in markdown
    assert "— LPIPS: not computed for these rows" in markdown and "— SWD" not in markdown

    latex = tables.to_latex(table, notes=notes, alphas="auto")
    assert latex.startswith(r"\begin{tabular}{llrrrrrrrrr}") and latex.rstrip().endswith(r"\end{tabular}")
    assert r"SISR $\times 4$ & $\mathbf{x}$ & $\infty$ & 1.000 $\pm$ 0.030 & --- &" in latex
    assert r"$\hat{\mathbf{x}}_{0.9}$" in latex and latex.count(r"\midrule") == 2
    assert r"inception-2015-12-05.pt not found (set DOTLIB\_INCEPTION\_PATH)" in latex

    md_path, tex_path = tables.write_tables(table, tmp_path / "tables", notes=notes, alphas="auto")
    assert md_path.read_text(encoding="utf-8") == markdown and tex_path.read_text(encoding="utf-8") == latex
    explicit = tables.poster_rows(table, alphas=[1.5])
    assert list(explicit[explicit.task.eq("sr4")].alpha.iloc[4:]) == [1.5]


def test_findings_say_better_only_where_the_interval_excludes_zero():
    table = study_table()
    table["fit_split"], table["decode"] = np.where(table.signal.eq("x_alpha"), "same", ""), \
        np.where(table.signal.eq("x_alpha"), "direct", "")
    table["n_photos"] = 18
    for metric in ("psnr", "ssim", "swd", "detail"):
        table[f"d_{metric}"], table[f"d_{metric}_lo"], table[f"d_{metric}_hi"] = -1.0, -2.0, -0.5
    zero = table.signal.eq("x_alpha") & np.isclose(table.alpha, 0.0)
    table.loc[zero & table.task.eq("awgn50"), ["d_detail_lo", "d_detail_hi"]] = [-0.1, 0.2]
    table["d_swd_lo_rep"], table["d_swd_hi_rep"] = -2.0, -0.4
    table.loc[zero & table.task.eq("awgn50"), ["d_swd_lo_rep", "d_swd_hi_rep"]] = [-1.0, 0.01]   # replicate crosses 0
    summary = tables.findings(table, alphas=(0.0,))
    assert list(summary.task) == ["awgn50", "sr4"] and list(summary.fit_split) == ["same", "same"]
    assert "paper_claim" not in summary and summary.n_resamples.isna().all()   # one word per index, no OR
    sr4, awgn = summary.set_index("task").loc["sr4"], summary.set_index("task").loc["awgn50"]
    assert sr4.psnr_verdict == "worse" and sr4.swd_verdict == "better" and sr4.detail_verdict == "better"
    assert awgn.detail_verdict == "no change detected" and awgn.swd_verdict == "borderline"
    assert tables.verdict(0.1, 0.3, lower_is_better=True) == "worse"
    markdown = tables.findings_markdown(summary)
    assert "| SISR ×4 · mse_net | same · direct | 0 | -1.00 [-2.00, -0.50] |" in markdown
    assert markdown.rstrip().endswith("| worse | better | better |")
    assert "| worse | borderline | no change detected |" in markdown


def test_planes_frame_the_path_show_intervals_and_point_to_a_far_y():
    table = study_table()
    table.loc[table.signal.eq("y"), ["mse", "swd"]] = [1.0, 10.0]        # far outside the path's frame
    table["mse_sd"], table["swd_sd"] = 1e-4, 5e-3
    fig = plots.perception_distortion(table, task="sr4")
    ax = fig.axes[0]
    assert ax.get_xlim()[1] < 1e3 and ax.get_ylim()[1] < 1e4               # y does not stretch the axes
    texts = [t.get_text() for t in ax.texts]
    assert "y: 1e+03, 1e+04" in texts                                       # its values, at the frame's edge
    bars = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
    assert len(bars) == 3                                                   # x*, x̂0.5 and x̂0
    assert_nothing_clipped(fig)
    renderer = fig.canvas.get_renderer()
    value = next(t for t in ax.texts if t.get_text().startswith("y:")).get_window_extent(renderer)
    labels = [t.get_window_extent(renderer) for t in ax.texts if t.get_text().startswith("α=")]
    assert labels and not any(value.overlaps(label) for label in labels)    # α labels avoid the value box
    plt.close(fig)
    top = ax.get_ylim()[1]
    table.loc[table.signal.eq("y"), ["mse", "swd"]] = [0.5 * sum(ax.get_xlim()) / 1e3, 0.995 * top / 1e3]
    fig = plots.perception_distortion(table, task="sr4")                   # y at the very top: an arrow,
    assert any(t.get_text().startswith("y:") for t in fig.axes[0].texts)   # not a marker cut by the edge
    plt.close(fig)


def test_missing_weights_read_as_one_line() -> None:
    inception = "Inception weights w.pt not found (looked at: /tmp/w.pt). Download it."
    line = tables.missing_line({"fid": inception, "kid": inception, "is": inception, "lpips": "VGG16 weights v.pth "
                                "not found. Get it."})
    assert line == ("Not computed: FID, KID, IS (Inception weights w.pt not found (looked at: /tmp/w.pt)); "
                    "LPIPS (VGG16 weights v.pth not found). How to get each: missing_metrics.json.")
    assert "\n" not in line and tables.missing_line({}) == ""
