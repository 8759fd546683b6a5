"""Bad inputs at every public entry point: each is refused in one line before any output is
written (exit code 2 on the command line), or gives the right result.

The cases, and what each now does (issue #18, item 4; the earlier ones are in test_cli.py,
test_validation.py and test_reproduce.py):

| # | entry point | input | outcome |
| --: | --- | --- | --- |
| 1 | evaluate | the same OUT_DIR twice | refused: "the same folder" |
| 2 | evaluate | a.png and a.jpg in one OUT_DIR | refused: "have the same name" |
| 3 | evaluate | a.png and a.jpg in --clean | refused: "have the same name" |
| 4 | evaluate | -o inside --clean (its plot would be read as a clean image) | refused: "lies inside --clean" |
| 5 | evaluate | -o inside an OUT_DIR | refused: "lies inside OUT_DIR" |
| 6 | evaluate | OUT_DIR is --clean | refused: "the same folder" |
| 7 | evaluate | one perfect image in a set | PSNR pooled over the set: finite, the set's |
| 8 | evaluate | a report folder locked by another process | refused: "another dotlib process" |
| 9 | enhance | --alpha 1e39 | refused by the parser: "in [-10, 10]" |
| 10 | enhance | --alpha 0 -1e-1 (negative in exponent form) | two α written |
| 11 | enhance | --alpha -.5 | written as _a-0.5 |
| 12 | enhance | OUT_DIR inside IN_DIR | refused: "lies inside IN_DIR" |
| 13 | enhance | IN_DIR inside OUT_DIR | refused: "holds IN_DIR" |
| 14 | enhance | --force after a run with other α | the earlier α's files removed, others kept |
| 15 | enhance | OUT_DIR locked by another process | refused, nothing written |
| 16 | enhance | an unreadable image in the middle of IN_DIR | refused before any output |
| 17 | enhance | an image too small for the patches, last in IN_DIR | refused before any output |
| 18 | enhance | a.png and a.jpg in IN_DIR | refused: "have the same name" |
| 19 | fit | -o names a folder | refused before the fit, no temporary file |
| 20 | fit | -o name of 250 bytes | refused before the fit |
| 21 | fit | --natural and --restored the same folder | refused: "the same folder" |
| 22 | fit | --eps nan | refused: "eps must be a finite number" |
| 23 | fit | --batch-size 0 | refused: "batch_size" |
| 24 | operator file | a tensor stored as int32 | refused: "is torch.int32, expected torch.float64" |
| 25 | operator file | clip_x_hat0 "no" in the metadata | refused: "is not bool" |
| 26 | operator file | fold_sigma 0.01 | refused: names fold_sigma and the least width |
| 27 | LatentOT | fold_sigma at its least width | transports to finite images |
| 28 | LatentOT.apply | α = 1e3 | refused: "in [-10, 10]" |
| 29 | LatentOT | clip_x_hat0="no" | refused: "True or False" |
| 30 | ImageFolder.keys | sub/a.png and sub/a.jpg | refused, both named |
| 31 | run configuration (launch, python -m dotlib.runner) | "alphas": "05" | refused: "must be Sequence[float]" |
| 32 | run configuration | "max_eval": true, "clip_x_hat0": "no" | refused, both named |
| 33 | evaluate | a wrong-size image in the second OUT_DIR (found while measuring) | refused; no report folder left |
| 34 | run configuration | degraded_data lacking one input, or at the wrong scale (test_runner.py) | refused before any work |

Study files and notebook parameters (typed as each notebook declares them, outputs confined,
papermill's unknown -p) are tried in test_reproduce.py.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from dotlib.cli import _Lock, main
from dotlib.data import ImageFolder, load_photo
from dotlib.latent_ot import LatentOT


def _png(folder: Path, name: str, image: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(folder / name)
    return folder / name


def _crop(top: int, left: int, size: int = 32) -> np.ndarray:
    return (load_photo("coffee")[:, top:top + size, left:left + size] * 255).round().byte().permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """clean/ and out/ (2 images each, 32²), and a pixel-space operator (3×3 patches)."""
    root = tmp_path_factory.mktemp("bad")
    for index, (top, left) in enumerate(((40, 60), (150, 300))):
        clean = _crop(top, left)
        _png(root / "clean", f"p{index}.png", clean)
        _png(root / "out", f"p{index}.png", np.clip(clean.astype(int) + 9, 0, 255).astype(np.uint8))
    operator = LatentOT("pixel", patch_size=3)
    images = ImageFolder(root / "clean")
    batch = torch.stack(list(images))
    operator.update(batch, "target").update((batch * 0.9 + 0.05), "source").fit()
    operator.save(root / "op.safetensors")
    return root


def _refused(capsys, argv: list[str], command: str, words: str) -> None:
    """Exit code 2 and one error line (the last on stderr; progress lines may precede it), naming ``words``."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("dotlib")]
    assert errors == err[-1:] and errors[0].startswith(f"dotlib {command}: error:") and words in errors[0], err


# ------------------------------------------------------------------------------ evaluate


def test_evaluate_refuses_folders_that_would_be_counted_twice_or_read_back(root, tmp_path, capsys) -> None:
    clean, out = str(root / "clean"), str(root / "out")
    _refused(capsys, ["evaluate", "--clean", clean, out, out, "-o", str(tmp_path / "r")], "evaluate", "the same folder")
    twins = tmp_path / "twins"
    for suffix in ("png", "jpg"):
        _png(twins, f"p0.{suffix}", _crop(40, 60))
    _refused(capsys, ["evaluate", "--clean", clean, str(twins), "-o", str(tmp_path / "r")], "evaluate", "same name")
    _refused(capsys, ["evaluate", "--clean", str(twins), out, "-o", str(tmp_path / "r")], "evaluate", "same name")
    _refused(capsys, ["evaluate", "--clean", clean, out, "-o", str(root / "clean" / "report")], "evaluate",
             "lies inside --clean")
    _refused(capsys, ["evaluate", "--clean", clean, out, "-o", str(root / "out" / "r")], "evaluate",
             f"lies inside OUT_DIR {root / 'out'}")
    _refused(capsys, ["evaluate", "--clean", clean, clean, "-o", str(tmp_path / "r")], "evaluate", "the same folder")
    assert not (tmp_path / "r").exists() and not (root / "clean" / "report").exists()


def test_evaluate_pools_psnr_so_one_perfect_image_does_not_hide_the_others(root, tmp_path, capsys) -> None:
    mixed = tmp_path / "mixed"
    _png(mixed, "p0.png", np.asarray(Image.open(root / "clean" / "p0.png")))        # perfect
    _png(mixed, "p1.png", np.asarray(Image.open(root / "out" / "p1.png")))          # 9 levels too bright
    assert main(["evaluate", "--clean", str(root / "clean"), str(mixed), "-o", str(tmp_path / "r")]) == 0
    row = pd.read_csv(tmp_path / "r" / "metrics.csv").iloc[0]
    clean = np.asarray(Image.open(root / "clean" / "p1.png")).astype(float)
    error = (np.clip(clean + 9, 0, 255) - clean) / 255
    expected = -10 * math.log10(float((error ** 2).mean()) / 2)                      # MSE over both images
    assert math.isfinite(row.psnr) and row.psnr == pytest.approx(expected, abs=1e-3)


def test_a_locked_report_folder_is_refused(root, tmp_path, capsys) -> None:
    with _Lock(tmp_path / "r"):
        _refused(capsys, ["evaluate", "--clean", str(root / "clean"), str(root / "out"), "-o", str(tmp_path / "r")],
                 "evaluate", "another dotlib process")
    assert not (tmp_path / "r" / "metrics.csv").exists()


def test_an_input_error_found_while_measuring_leaves_no_report_folder(root, tmp_path, capsys) -> None:
    """The report folder is locked (so created) before measuring; an error part-way removes it again."""
    odd = tmp_path / "odd"
    _png(odd, "p0.png", np.asarray(Image.open(root / "out" / "p0.png")))
    _png(odd, "p1.png", _crop(0, 0, size=16))
    _refused(capsys, ["evaluate", "--clean", str(root / "clean"), str(root / "out"), str(odd), "-o",
                      str(tmp_path / "r")], "evaluate", "but its clean image")
    assert not (tmp_path / "r").exists()


# ------------------------------------------------------------------------------ enhance


def test_alpha_is_finite_within_its_range_and_negative_numbers_parse(root, tmp_path, capsys) -> None:
    op, out = str(root / "op.safetensors"), str(root / "out")
    with pytest.raises(SystemExit) as exit_info:
        main(["enhance", op, out, str(tmp_path / "o"), "--alpha", "1e39"])
    assert exit_info.value.code == 2 and "in [-10, 10]" in capsys.readouterr().err
    assert main(["enhance", op, out, str(tmp_path / "o"), "--alpha", "0", "-1e-1"]) == 0
    assert main(["enhance", op, out, str(tmp_path / "p"), "--alpha", "-.5"]) == 0
    assert sorted(p.name for p in (tmp_path / "o").glob("*.png")) == ["p0_a-0.1.png", "p0_a0.png", "p1_a-0.1.png",
                                                                     "p1_a0.png"]
    assert sorted(p.name for p in (tmp_path / "p").glob("*.png")) == ["p0.png", "p1.png"]


def test_enhance_refuses_an_output_folder_tangled_with_its_input(root, tmp_path, capsys) -> None:
    op, out = str(root / "op.safetensors"), root / "out"
    _refused(capsys, ["enhance", op, str(out), str(out / "x0")], "enhance", "lies inside IN_DIR")
    _refused(capsys, ["enhance", op, str(out), str(root)], "enhance", "holds IN_DIR")
    assert not (out / "x0").exists()


def test_force_removes_what_an_earlier_run_wrote_and_nothing_else(root, tmp_path) -> None:
    op, out, target = str(root / "op.safetensors"), str(root / "out"), tmp_path / "o"
    assert main(["enhance", op, out, str(target), "--alpha", "0", "0.3"]) == 0
    (target / "notes.txt").write_text("mine")
    assert main(["enhance", op, out, str(target), "--alpha", "0", "0.5", "--force"]) == 0
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith(".")) == \
        ["notes.txt", "p0_a0.5.png", "p0_a0.png", "p1_a0.5.png", "p1_a0.png"]
    assert json.loads((target / ".dotlib-enhance.json").read_text())[0] == "p0_a0.5.png"


def test_a_locked_output_folder_is_refused_and_left_alone(root, tmp_path, capsys) -> None:
    with _Lock(tmp_path / "o"):
        _refused(capsys, ["enhance", str(root / "op.safetensors"), str(root / "out"), str(tmp_path / "o")],
                 "enhance", "another dotlib process is writing")
    assert not list((tmp_path / "o").glob("*.png"))


def test_every_input_is_read_and_checked_before_the_first_output(root, tmp_path, capsys) -> None:
    folder = tmp_path / "in"
    _png(folder, "a.png", _crop(40, 60))
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"broken")
    _png(folder, "c.png", _crop(150, 300))
    _refused(capsys, ["enhance", str(root / "op.safetensors"), str(folder), str(tmp_path / "o")], "enhance", "b.png")
    (folder / "b.png").unlink()
    _png(folder, "z.png", _crop(40, 60, size=2))
    _refused(capsys, ["enhance", str(root / "op.safetensors"), str(folder), str(tmp_path / "o")], "enhance",
             "too small")
    _png(folder, "c.jpg", _crop(40, 60))
    (folder / "z.png").unlink()
    _refused(capsys, ["enhance", str(root / "op.safetensors"), str(folder), str(tmp_path / "o")], "enhance",
             "same name")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------ fit


def test_fit_checks_its_output_and_options_before_fitting(root, tmp_path, capsys) -> None:
    fit = ["fit", "--encoder", "pixel", "--patch-size", "3", "--natural", str(root / "clean"), "--restored",
           str(root / "out")]
    (tmp_path / "dir").mkdir()
    _refused(capsys, [*fit, "-o", str(tmp_path / "dir")], "fit", "is a folder")
    _refused(capsys, [*fit, "-o", str(tmp_path / ("x" * 250))], "fit", "250 bytes")
    _refused(capsys, ["fit", "--natural", str(root / "clean"), "--restored", str(root / "clean"), "-o",
                      str(tmp_path / "o.safetensors")], "fit", "the same folder")
    _refused(capsys, [*fit, "--eps", "nan", "-o", str(tmp_path / "o.safetensors")], "fit", "eps must be a finite")
    _refused(capsys, [*fit, "--batch-size", "0", "-o", str(tmp_path / "o.safetensors")], "fit", "batch_size")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir"] and not list((tmp_path / "dir").iterdir())


# ------------------------------------------------------------------------------ operator files


def _altered(source: Path, target: Path, tensors=None, metadata=None) -> Path:
    from safetensors.torch import load_file, save_file

    from dotlib.io import read_safetensors

    raw, _ = read_safetensors(source)
    meta = json.loads(raw["dotlib"])
    state = load_file(str(source))
    state.update(tensors or {})
    meta.update(metadata or {})
    save_file(state, str(target), metadata={"dotlib": json.dumps(meta)})
    return target


def test_operator_files_have_the_recorded_dtypes_and_metadata_types(root, tmp_path) -> None:
    from safetensors.torch import load_file

    source = root / "op.safetensors"
    a = load_file(str(source))["operator.A"]
    with pytest.raises(ValueError, match=r"operator\.A is torch\.int32, expected torch\.float64"):
        LatentOT.load(_altered(source, tmp_path / "int.safetensors", tensors={"operator.A": a.to(torch.int32)}))
    with pytest.raises(ValueError, match=r"clip_x_hat0='no' is not bool"):
        LatentOT.load(_altered(source, tmp_path / "flag.safetensors", metadata={"clip_x_hat0": "no"}))
    with pytest.raises(ValueError, match=r"fold_sigma must be None .* at least 0\.118 latent pixels"):
        LatentOT.load(_altered(source, tmp_path / "fold.safetensors", metadata={"fold_sigma": 0.01}))


def test_the_least_fold_sigma_still_transports_to_finite_images() -> None:
    images = torch.rand(3, 3, 20, 20, generator=torch.Generator().manual_seed(0))
    least = 2 * math.sqrt(2.0) / 12.0                       # 5x5 patches
    operator = LatentOT("pixel", patch_size=5, fold_sigma=least)
    operator.update(images, "target").update(images.clamp(0.2, 0.8), "source").fit()
    assert bool(torch.isfinite(operator.transport(images[:1])).all())
    with pytest.raises(ValueError, match="fold_sigma must be None"):
        LatentOT("pixel", patch_size=5, fold_sigma=least * 0.9)
    with pytest.raises(ValueError, match=r"α must be a finite number in \[-10, 10\]"):
        operator.sweep(images[:1], [0.0, 1e3])
    with pytest.raises(TypeError, match="clip_x_hat0 must be True or False"):
        LatentOT("pixel", patch_size=5, clip_x_hat0="no")


def test_image_folder_keys_name_both_files_that_share_a_name(tmp_path) -> None:
    _png(tmp_path / "sub", "a.png", _crop(40, 60))
    _png(tmp_path / "sub", "a.jpg", _crop(40, 60))
    _png(tmp_path, "b.png", _crop(40, 60))
    with pytest.raises(ValueError, match=r"sub/a\.jpg and .*sub/a\.png have the same name"):
        ImageFolder(tmp_path).keys()


def test_run_configurations_are_typed_as_run_folder_task_annotates_them() -> None:
    from dotlib.runner import launch

    with pytest.raises(ValueError, match=r"'alphas' must be Sequence\[float\], got str '05'"):
        launch(1, task="sr4", restorer="mse_net", data="photos", alphas="05")
    with pytest.raises(ValueError, match=r"'max_eval' must be int \| None, got bool True; 'clip_x_hat0' must be bool"):
        launch(1, task="sr4", restorer="mse_net", data="photos", max_eval=True, clip_x_hat0="no")
