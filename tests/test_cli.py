"""The ``dotlib`` command (fit, enhance, evaluate) end to end on small folders, and the folder restorer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dotlib.cli import format_alpha, main
from dotlib.data import PHOTO_POOL, load_image, load_photo, photo_pool
from dotlib.latent_ot import LatentOT
from dotlib.restorers import FolderRestorer, gaussian_blur, get_restorer

ALPHAS = ("0", "0.5", "1")


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """``[3, H, W]`` in [0, 1] -> ``uint8 [H, W, 3]`` (rounded)."""
    return (image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


def blur(image: torch.Tensor) -> torch.Tensor:
    return gaussian_blur(image[None], 1.5)[0].clamp(0, 1)


def write_set(folder: Path, images: dict[str, np.ndarray]) -> Path:
    """Write ``name -> uint8 array`` (grey ``[H, W]``, RGB or RGBA ``[H, W, C]``) as PNGs in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in images.items():
        Image.fromarray(array).save(folder / f"{name}.png")
    return folder


def evaluation_images(degrade: bool) -> dict[str, np.ndarray]:
    """Two 64² RGB crops, an odd-sized RGB image (67 wide, 45 high), a grey and an RGBA image (odd sizes)."""
    china, coffee = load_photo("china"), load_photo("coffee")
    transform = blur if degrade else (lambda image: image)
    images = {"a": china[:, 100:164, 200:264], "b": coffee[:, 150:214, 300:364], "odd": china[:, 200:245, 33:100]}
    images = {name: to_uint8(transform(image)) for name, image in images.items()}
    grey = to_uint8(transform(coffee[:, 40:92, 60:101]))[..., 0]                      # 41 wide, 52 high
    rgba = to_uint8(transform(china[:, 300:349, 400:451]))                           # 51 wide, 49 high
    alpha = np.tile(np.linspace(60, 255, rgba.shape[1]).astype(np.uint8), (rgba.shape[0], 1))
    return {**images, "grey": grey, "rgba": np.dstack([rgba, alpha])}


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """natural/ and restored/ (blurred crops of OTHER photos) to fit on; clean/ and degraded/ to enhance."""
    root = tmp_path_factory.mktemp("cli")
    crops, owners = photo_pool(64, 1, PHOTO_POOL[:12])
    natural = {f"{owner}": to_uint8(crop) for owner, crop in zip(owners[:6], crops[:6])}
    restored = {f"{owner}": to_uint8(blur(crop)) for owner, crop in zip(owners[6:], crops[6:])}
    return {"root": root, "natural": write_set(root / "natural", natural),
            "restored": write_set(root / "restored", restored),
            "clean": write_set(root / "clean", evaluation_images(degrade=False)),
            "degraded": write_set(root / "degraded", evaluation_images(degrade=True))}


@pytest.fixture(scope="module")
def fitted(folders) -> tuple[Path, str]:
    """``dotlib fit`` with the embedded VAE (factor 2, so odd sizes are padded) and 3x3 patches."""
    operator = folders["root"] / "operator.safetensors"
    capture = folders["root"] / "fit.txt"
    with open(capture, "w") as stream, pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdout", stream)
        code = main(["fit", "--natural", str(folders["natural"]), "--restored", str(folders["restored"]),
                     "--encoder", "embedded", "--patch-size", "3", "-o", str(operator)])
    assert code == 0
    return operator, capture.read_text()


@pytest.fixture(scope="module")
def enhanced(folders, fitted) -> dict[str, Path]:
    """``dotlib enhance`` of degraded/ with three α (out_sweep/) and with α = 0 alone (out_x0/)."""
    operator, _ = fitted
    sweep, single = folders["root"] / "out_sweep", folders["root"] / "out_x0"
    assert main(["enhance", str(operator), str(folders["degraded"]), str(sweep), "--alpha", *ALPHAS]) == 0
    assert main(["enhance", str(operator), str(folders["degraded"]), str(single)]) == 0
    return {"sweep": sweep, "single": single}


def test_the_installed_command_and_every_subcommand_have_help(capsys):
    command = Path(sys.executable).with_name("dotlib")
    assert command.is_file(), "run `.venv/bin/pip install --no-deps --no-build-isolation -e .` to install it"
    done = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert all(name in done.stdout for name in ("fit", "enhance", "evaluate"))
    for name in ("fit", "enhance", "evaluate"):
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: dotlib {name}" in capsys.readouterr().out


def test_fit_saves_an_operator_and_prints_its_w2_and_counts(fitted):
    operator, printed = fitted
    ot = LatentOT.load(operator)
    assert ot.fitted and ot.encoder.name == "embedded" and ot.patch_size == 3
    # 64² images, factor 2: 32² latents, 30² valid 3x3 patches each
    assert ot.target.count == ot.source.count == 6 * 30 * 30
    assert "6 natural images" in printed and f"{6 * 30 * 30} latent patches" in printed
    assert f"latent W2² (source -> target) = {ot.latent_w2:.6g}" in printed


def test_format_alpha_writes_short_names():
    assert [format_alpha(a) for a in (0.0, -0.0, 0.5, -0.2, 1.5, 1.0, 0.25)] == \
        ["0", "0", "0.5", "-0.2", "1.5", "1", "0.25"]


def test_enhance_keeps_every_size_and_alpha_one_returns_the_input(folders, enhanced):
    inputs = sorted(folders["degraded"].glob("*.png"))
    written = sorted(p.name for p in enhanced["sweep"].iterdir() if not p.name.startswith("."))
    assert written == sorted(f"{p.stem}_a{a}.png" for p in inputs for a in ALPHAS)
    assert sorted(p.name for p in enhanced["single"].iterdir() if not p.name.startswith(".")) == \
        sorted(p.name for p in inputs)
    assert sorted(p.name for p in enhanced["sweep"].iterdir() if p.name.startswith(".")) == [".dotlib-enhance.json"]
    for path in inputs:
        with Image.open(path) as original:
            size = original.size
        for name in [f"{path.stem}_a{a}.png" for a in ALPHAS]:
            with Image.open(enhanced["sweep"] / name) as output:
                assert output.size == size and output.mode == "RGB", name
        with Image.open(enhanced["single"] / path.name) as output:
            assert output.size == size
        # α = 1 writes the input back (grey as RGB, RGBA composited on white), exact in 8 bits
        back = np.asarray(Image.open(enhanced["sweep"] / f"{path.stem}_a1.png"))
        np.testing.assert_array_equal(back, to_uint8(load_image(path)), err_msg=path.name)
        if path.stem in ("a", "b", "odd"):
            np.testing.assert_array_equal(back, np.asarray(Image.open(path)))
        x_hat0 = np.asarray(Image.open(enhanced["sweep"] / f"{path.stem}_a0.png"))
        assert not np.array_equal(x_hat0, back)
    np.testing.assert_array_equal(np.asarray(Image.open(enhanced["single"] / "odd.png")),
                                  np.asarray(Image.open(enhanced["sweep"] / "odd_a0.png")))


def test_evaluate_writes_the_table_and_the_plot(folders, enhanced, capsys):
    report = folders["root"] / "report"
    code = main(["evaluate", "--clean", str(folders["clean"]), str(folders["degraded"]), str(enhanced["sweep"]),
                 str(enhanced["single"]), "-o", str(report)])
    printed = capsys.readouterr().out
    assert code == 0
    for name in ("metrics.csv", "metrics.md", "perception_distortion.png", "perception_distortion.pdf"):
        assert (report / name).stat().st_size > 0, name
    table = pd.read_csv(report / "metrics.csv")
    assert list(table.folder) == ["degraded", "out_sweep", "out_sweep", "out_sweep", "out_x0"]
    assert table.alpha.fillna(-1).tolist() == [-1, 0, 0.5, 1, -1]
    assert (table.images == 5).all()
    assert table[["psnr", "ssim", "mse", "swd", "detail"]].notna().all().all()
    by = table.set_index(table.folder + table.alpha.fillna(-1).astype(str))
    # α = 1 outputs are the degraded images themselves; the single-α folder is α = 0
    for column in ("psnr", "ssim", "mse", "swd", "detail"):
        assert by.loc["out_sweep1.0", column] == pytest.approx(by.loc["degraded-1.0", column], rel=1e-6)
        assert by.loc["out_x0-1.0", column] == pytest.approx(by.loc["out_sweep0.0", column], rel=1e-6)
    markdown = (report / "metrics.md").read_text()
    assert markdown in printed and "| folder | α | images | PSNR ↑" in markdown
    assert "SWD ×10³" in markdown and "detail ×10³" in markdown
    for column, header in (("lpips", "LPIPS"), ("fid", "FID/KID"), ("is", "IS")):
        if table[column].isna().all():
            assert f"{header} not computed:" in markdown or f"{header}/" in markdown


def _error(capsys, code: int, command: str) -> str:
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dotlib {command}: error: "), captured.err
    return lines[0]


def test_user_errors_exit_2_with_one_line(folders, fitted, enhanced, tmp_path, capsys):
    operator, _ = fitted
    natural, degraded = str(folders["natural"]), str(folders["degraded"])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    fit = ["fit", "--encoder", "pixel", "--patch-size", "3"]
    assert "does not exist" in _error(capsys, main([*fit, "--natural", str(tmp_path / "nope"), "--restored",
                                                    natural, "-o", str(tmp_path / "o.safetensors")]), "fit")
    assert "no images" in _error(capsys, main([*fit, "--natural", natural, "--restored", str(empty),
                                               "-o", str(tmp_path / "o.safetensors")]), "fit")
    assert "--force" in _error(capsys, main([*fit, "--natural", natural, "--restored", natural,
                                             "-o", str(operator)]), "fit")
    assert "degraded is IN_DIR" in _error(capsys, main(["enhance", str(operator), degraded, degraded]), "enhance")
    assert "already exist" in _error(capsys, main(["enhance", str(operator), degraded,
                                                   str(enhanced["single"])]), "enhance")
    assert "same α twice" in _error(capsys, main(["enhance", str(operator), degraded, str(tmp_path / "o"),
                                                  "--alpha", "0", "0.0"]), "enhance")
    nested = write_set(tmp_path / "nested", {"x": np.zeros((16, 16, 3), np.uint8)})
    write_set(nested / "sub", {"x": np.zeros((16, 16, 3), np.uint8)})
    assert "lies inside IN_DIR" in _error(capsys, main(["enhance", str(operator), str(nested),
                                                        str(nested / "sub")]), "enhance")
    assert "not a readable safetensors" in _error(
        capsys, main(["enhance", str(folders["clean"] / "a.png"), degraded, str(tmp_path / "o")]), "enhance")
    assert "named like a clean image" in _error(capsys, main(["evaluate", "--clean", degraded, natural,
                                                              "-o", str(tmp_path / "r")]), "evaluate")
    if not torch.cuda.is_available():
        assert "CUDA is not available" in _error(capsys, main(["enhance", str(operator), degraded,
                                                               str(tmp_path / "o"), "--device", "cuda"]), "enhance")
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()
    for bad in ("nan", "abc", "inf"):
        with pytest.raises(SystemExit) as exit_info:
            main(["enhance", str(operator), degraded, str(tmp_path / "o"), "--alpha", bad])
        assert exit_info.value.code == 2 and "α must be a finite number" in capsys.readouterr().err


def test_folder_restorer_reads_outputs_by_file_name(folders, tmp_path):
    restorer = get_restorer(f"folder:{folders['degraded']}", "sr4")
    assert isinstance(restorer, FolderRestorer)
    out = restorer.restore_files(["a.jpg", "/elsewhere/b.png"])   # by stem, then by name; folders ignored
    assert out.shape == (2, 3, 64, 64) and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.stack([load_image(folders["degraded"] / n) for n in ("a.png", "b.png")]))
    assert restorer.restore_files(["a.png"], size=(64, 64)).shape == (1, 3, 64, 64)
    with pytest.raises(TypeError, match="restore_files"):
        restorer(torch.rand(1, 3, 16, 16))
    with pytest.raises(FileNotFoundError, match="no output for input 'missing.png'"):
        restorer.restore_files(["missing.png"])
    with pytest.raises(ValueError, match="differ in size"):
        restorer.restore_files(["a.png", "odd.png"])
    with pytest.raises(ValueError, match="differ in size"):
        restorer.restore_files(["odd.png"], size=(64, 64))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        get_restorer(f"folder:{tmp_path / 'nope'}", "sr4")
    twice = write_set(tmp_path / "twice", {"x": np.zeros((8, 8, 3), np.uint8)})
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(twice / "x.jpg")
    with pytest.raises(ValueError, match="holds 2 files"):
        get_restorer(f"folder:{twice}", "awgn50").restore_files(["x.bmp"])
    assert get_restorer(f"folder:{twice}", "awgn50").restore_files(["x.png"]).shape == (1, 3, 8, 8)
    restorer.check_outputs(["a.jpg", "b.png"])                     # every input covered: no error
    names = ["a.png"] + [f"gap{i}.png" for i in range(7)]
    with pytest.raises(FileNotFoundError, match=r"no output for 7 of the 8 inputs of this run \(gap0.png, .*, \.\.\.\)"):
        restorer.check_outputs(names)


class RandomFeatures(torch.nn.Module):
    """A fixed random conv net ``[B, 3, 299, 299]`` in [0, 255] -> ``[B, 16]``."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Conv2d(3, 8, 5, stride=4).requires_grad_(False)
        torch.nn.init.normal_(self.net.weight, generator=torch.Generator().manual_seed(0))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.net(images / 255.0))
        return torch.cat([h.mean(dim=(2, 3)), h.std(dim=(2, 3))], dim=1)


def test_evaluate_reports_fid_kid_is_lpips_when_their_weights_exist(folders, enhanced, monkeypatch, capsys):
    import dotlib.metrics as metrics
    import dotlib.pipeline as pipeline

    def models(device, inception=True, lpips=True, fid_mode="clean"):
        features = metrics.CleanFeatures(RandomFeatures(), name="random", device=device)
        classifier = torch.randn(5, 16, generator=torch.Generator().manual_seed(1))
        return features, classifier, lambda a, b: metrics.mse(a, b), {}

    monkeypatch.setattr(pipeline, "perception_models", models)
    report = folders["root"] / "report_weights"
    assert main(["evaluate", "--clean", str(folders["clean"]), str(enhanced["single"]), "-o", str(report)]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(report / "metrics.csv")
    assert table[["lpips", "fid", "kid", "is"]].notna().all().all()
    assert table.lpips[0] == pytest.approx(table.mse[0])
    assert "not computed" not in printed and "| FID ↓ | KID ×10³ ↓ | IS ↑ |" in printed
