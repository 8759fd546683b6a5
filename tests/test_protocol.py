"""The two data protocols (issue #21): the authors' conventions, each against torchvision or
torch directly, and dotlib's against its own folder and degradations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dotlib.data import ImageFolder, load_image
from dotlib.degradations import degrade
from dotlib.protocol import PreparedFolder, authors_degrade, paired, prepare


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """A 500×375 JPEG, ImageNet's most common size, of a package photo cut off-centre."""
    from dotlib.data import load_photo

    array = (load_photo("coffee")[:, :375, 40:540].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    path = tmp_path_factory.mktemp("val") / "ILSVRC2012_val_00000001.JPEG"
    Image.fromarray(array).save(path, quality=90)
    return path


def test_the_authors_clean_image_is_a_centre_square_resized_bilinearly_without_antialias(photo) -> None:
    x, _ = prepare(photo, "sr4", "authors", size=128)
    image = torch.from_numpy(np.asarray(Image.open(photo).convert("RGB"))).permute(2, 0, 1).float() / 255
    square = image[:, :, (500 - 375) // 2:(500 - 375) // 2 + 375]
    expected = F.interpolate(square[None], size=(128, 128), mode="bilinear", align_corners=False, antialias=False)[0]
    assert x.shape == (3, 128, 128) and torch.allclose(x, expected, atol=1e-6)


def test_the_authors_degradations(photo) -> None:
    x, y = prepare(photo, "sr4", "authors", size=128)
    expected = F.interpolate(x[None], size=(32, 32), mode="bilinear", align_corners=False, antialias=True)[0]
    assert y.shape == (3, 32, 32) and torch.allclose(y, expected, atol=1e-6)
    grey = torch.full((3, 16, 16), 0.999)                                  # 254.745: truncated to 254, not rounded
    flat = authors_degrade("jpeg10", grey)
    assert float(flat.mean()) == pytest.approx(254 / 255, abs=1.5 / 255)
    _, noisy = prepare(photo, "awgn50", "authors", size=64, seed=5)
    again = prepare(photo, "awgn50", "authors", size=64, seed=5)[1]
    assert torch.equal(noisy, again) and (noisy > 1).any() and (noisy < 0).any()   # seeded, unclipped
    x, y = prepare(photo, "sr4_awgn50", "authors", size=64, seed=5)
    assert y.shape == (3, 16, 16) and float((y - F.interpolate(x[None], size=(16, 16), mode="bilinear",
                                                              antialias=True)[0]).std()) == pytest.approx(50 / 255, rel=0.15)


def test_a_paired_input_is_prepared_as_the_authors_restoration_dataset_does(photo, tmp_path) -> None:
    """A degraded file of another size (the Swin2SR release's pairs): both centre-squared, the scale read
    as ⌊375 / 93⌋ = 4 from their short sides, y resized bilinearly without antialias to (128 / 4)²."""
    array = np.asarray(Image.open(photo).convert("RGB").resize((125, 93), Image.BICUBIC))
    path = tmp_path / "pair.png"
    Image.fromarray(array).save(path)
    x, y = prepare(photo, "sr4_jpeg10", "authors", size=128, degraded_path=path)
    image = torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255
    square = image[:, :, (125 - 93) // 2:(125 - 93) // 2 + 93]
    expected = F.interpolate(square[None], size=(32, 32), mode="bilinear", align_corners=False, antialias=False)[0]
    assert x.shape == (3, 128, 128) and y.shape == (3, 32, 32) and torch.allclose(y, expected, atol=1e-6)
    with pytest.raises(ValueError, match="1/1 of its clean photo's 375 px, but task 'sr4_jpeg10' degrades by 4"):
        prepare(photo, "sr4_jpeg10", "authors", size=128, degraded_path=photo)
    same = paired(load_image(photo), 375, "sr4_awgn50", "authors", 128, clean_size_allowed=True)
    assert torch.equal(same, x)   # DDRM's inputs saved at the clean size, for precomputed restorations


def test_the_y_row_is_upsampled_as_the_authors_main_does(photo) -> None:
    """dmax/main.py measures y as ``resize(y, x.shape[-2:]).clip(0, 1)`` (torchvision's default:
    bilinear); the authors' protocol does the same, dotlib's upsamples bicubically."""
    import torchvision.transforms.functional as TF

    from dotlib.pipeline import upsampled
    from dotlib.protocol import restorer_tile, y_upsampling

    x, y = prepare(photo, "sr4_awgn50", "authors", size=128, seed=3)
    theirs = TF.resize(y[None], list(x.shape[-2:])).clip(0, 1)
    assert torch.allclose(upsampled(y[None], (128, 128), y_upsampling("authors")), theirs, atol=1e-6)
    ours = upsampled(y[None], (128, 128), y_upsampling("dotlib"))
    assert float((ours - theirs).abs().max()) > 1e-2
    assert restorer_tile("authors") is None and restorer_tile("dotlib") == 256


def test_dotlib_protocol_is_the_folder_and_the_degradations(photo) -> None:
    x, y = prepare(photo, "jpeg10", "dotlib", size=128, seed=2)
    folder = ImageFolder(photo.parent, resize=128, crop=128)
    assert torch.equal(x, folder[0]) and torch.equal(y, degrade("jpeg10", x[None], 2)[0])
    authors, _ = prepare(photo, "jpeg10", "authors", size=128)
    assert not torch.allclose(x, authors, atol=1e-3)                       # the two protocols differ
    assert torch.equal(PreparedFolder(photo.parent, "authors", 128)[0], authors)


def test_bad_protocol_and_task_are_named(photo) -> None:
    with pytest.raises(ValueError, match="authors, dotlib"):
        prepare(photo, "sr4", "paper")
    with pytest.raises(ValueError, match="known tasks"):
        prepare(photo, "sr8", "authors")


def test_the_readme_convention_table_is_the_code_s() -> None:
    from dotlib.conventions import CONVENTIONS, conventions_markdown
    from dotlib.paths import project_root

    readme = (project_root() / "README.md").read_text(encoding="utf-8")
    indented = "\n".join("  " + line for line in conventions_markdown().splitlines())
    assert indented in readme
    for row in CONVENTIONS:
        assert row.paper_study == "same" or row.paper_study.startswith(("option: ", "different, because "))
    paper = (project_root() / "studies" / "paper.yaml").read_text()
    for row in CONVENTIONS:   # every option the paper study is said to set, it sets
        if row.paper_study.startswith("option: "):
            for setting in row.paper_study.removeprefix("option: ").split(" (")[0].split(", "):
                key = setting.split(":")[0].split(" ")[0]
                assert f"{key}:" in paper, key
