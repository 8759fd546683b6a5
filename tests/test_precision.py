"""Declared precisions: a rerun that agrees within them leaves result files byte for byte alone."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import torch

from dotlib import plots
from dotlib.encoders import load_encoder
from dotlib.io import write_csv
from dotlib.latent_ot import LatentOT
from dotlib.precision import floored, moved_values, precision_of


def _frame(swd: float, d_swd: float, w2: float = 9.88e-8) -> pd.DataFrame:
    return pd.DataFrame({"signal": ["x_star", "x_hat0"], "swd": [0.0474, swd], "d_swd": [0.0, d_swd],
                         "w2": [w2, 0.25], "n_photos": [18, 18], "ssim": [math.nan, 0.8]})


def _stamp(path) -> tuple[bytes, int]:
    return path.read_bytes(), os.stat(path).st_mtime_ns


def test_columns_declare_their_precision_and_floors_write_zero() -> None:
    assert precision_of("d_swd").rel == 1e-3 and precision_of("psnr").rel == 1e-4
    assert precision_of("w2").floor == 1e-6 and precision_of("swd_sd").rel == 1e-3
    assert precision_of("d_swd_lo_rep").floor == precision_of("swd").floor == 1e-5   # measured noise 1.7e-6
    frame = floored(_frame(0.0426, -0.0048))
    assert frame.w2.tolist() == [0.0, 0.25] and frame.n_photos.tolist() == [18, 18]


def test_a_rerun_within_precision_keeps_the_file_and_one_beyond_rewrites_it(tmp_path, capsys) -> None:
    path = write_csv(_frame(0.0426, -0.00445554), tmp_path / "metrics.csv")
    assert "0.25" in path.read_text() and ",0," in path.read_text()      # the W2 at its noise floor is 0
    before = _stamp(path)
    write_csv(_frame(0.0426000001, -0.00445586, w2=7.88e-8), path)     # another CPU: last digits and noise
    assert _stamp(path) == before and capsys.readouterr().out == ""
    write_csv(_frame(0.0436, -0.00445586), path)                        # SWD moved by 2 %
    assert _stamp(path)[0] != before[0]
    printed = capsys.readouterr().out
    assert "values moved beyond their declared precision" in printed and "swd, row 1: 0.0426 -> 0.0436" in printed
    (tmp_path / "empty.csv").write_text("")
    write_csv(_frame(0.0426, -0.0048), tmp_path / "empty.csv")          # an unreadable old file is replaced
    assert "not a readable table" in capsys.readouterr().out


def test_moved_values_reads_strings_nans_and_shapes() -> None:
    old = _frame(0.0426, -0.0048)
    assert moved_values(old, old.copy()) == []
    labels = pd.DataFrame({"decode": ["", "direct"]}).replace("", None)    # empty labels read back as missing
    assert moved_values(labels, labels.copy()) == []
    assert moved_values(labels, labels.fillna("residual"))[0].endswith("-> 'residual'")
    other = old.assign(signal=["x_star", "y"])
    assert moved_values(old, other) == ["signal, row 1: 'x_hat0' -> 'y'"]
    assert moved_values(old, old.assign(ssim=[0.5, 0.8]))[0].startswith("ssim, row 0: nan -> 0.5")
    assert moved_values(old, old.iloc[:1])[0].startswith("columns or shape changed")
    many = old.assign(swd=[1.0, 2.0], w2=[3.0, 4.0])
    assert moved_values(old, many, limit=3)[-1] == "... 1 more"


def test_a_redrawn_figure_within_one_level_keeps_both_files(tmp_path) -> None:
    def draw(offset: float):
        fig, ax = plots.plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [0, 1 + offset])
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 2)
        return fig

    pdf, png = plots.save_figure(draw(0.0), tmp_path / "fig")
    before = (_stamp(pdf), _stamp(png))
    plots.save_figure(draw(1e-9), tmp_path / "fig")                    # float noise: same pixels
    assert (_stamp(pdf), _stamp(png)) == before
    plots.save_figure(draw(0.5), tmp_path / "fig")                     # a different drawing
    assert _stamp(png)[0] != before[1][0] and _stamp(pdf)[0] != before[0][0]
    plots.plt.close("all")


def test_an_operator_refitted_within_precision_keeps_its_file(tmp_path) -> None:
    vae = load_encoder("pixel")
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 16, 16, generator=generator)
    source = (images + 0.1 * torch.rand(6, 3, 16, 16, generator=generator)).clamp(0, 1)
    def fitted(restored: torch.Tensor) -> LatentOT:
        model = LatentOT(vae, patch_size=3).update(restored, "source").update(images, "target")
        model.fit()
        return model

    path = fitted(source).save(tmp_path / "op.safetensors")
    before = _stamp(path)
    fitted(source * (1 - 1e-7)).save(path)                              # float noise in the inputs
    assert _stamp(path) == before
    changed = fitted(source.flip(-1) ** 2)
    changed.save(path)
    assert _stamp(path)[0] != before[0]
    assert np.isclose(LatentOT.load(path).latent_w2, changed.latent_w2)
