"""Embedded photos, their disjoint splits, deterministic crops, and user image folders."""

import numpy as np
import pytest
import torch
from PIL import Image

from dotlib.data import (EMBEDDED_PHOTOS, SPLITS, ImageFolder, embedded_crops, load_photo,
                         matched_crops, photo_half, split_photos)


def test_splits_are_disjoint_by_photo_and_cover_known_photos():
    names = [name for split in SPLITS.values() for name in split]
    assert len(names) == len(set(names))
    assert set(names) <= set(EMBEDDED_PHOTOS)
    pair = {"motorcycle_left", "motorcycle_right"}
    assert any(pair <= set(split) for split in SPLITS.values())  # the stereo pair stays together


@pytest.mark.parametrize("name", sorted(EMBEDDED_PHOTOS))
def test_every_embedded_photo_loads_as_rgb_in_unit_range(name):
    photo = load_photo(name)
    assert photo.dtype == torch.float32 and photo.shape[0] == 3 and min(photo.shape[1:]) >= 128
    assert 0.0 <= photo.min() and photo.max() <= 1.0 and photo.std() > 0.02


def test_crops_are_deterministic_and_come_from_the_split():
    first, again = embedded_crops("eval", 64, 4, seed=3), embedded_crops("eval", 64, 4, seed=3)
    assert torch.equal(first, again) and first.shape == (4, 3, 64, 64)
    assert not torch.equal(first, embedded_crops("eval", 64, 4, seed=4))
    china = load_photo("china")
    windows = china.unfold(1, 64, 1).unfold(2, 64, 1)  # every 64x64 window of the photo
    assert (windows == first[0][:, None, None]).flatten(3).all(dim=(0, 3)).any()


def test_matched_halves_share_no_pixel():
    photo = load_photo("astronaut")
    left, right = photo_half(photo, 0), photo_half(photo, 1)
    assert left.shape == right.shape == (3, 512, 256)
    assert torch.equal(torch.cat([left, right], dim=2), photo)
    target, source = matched_crops(("target",), 0, 128, 4, 0), matched_crops(("target",), 1, 128, 4, 0)
    assert not any(torch.equal(t, s) for t in target for s in source)
    with pytest.raises(ValueError, match="half"):
        photo_half(photo, 2)


def test_unknown_names_are_listed():
    with pytest.raises(KeyError, match="astronaut"):
        load_photo("lena")
    with pytest.raises(KeyError, match="eval"):
        split_photos("validation")


def test_image_folder_reads_any_mode_recursively(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.fromarray(np.full((40, 60), 128, np.uint8), "L").save(tmp_path / "grey.png")
    rgba = np.zeros((50, 30, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 255, 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "sub" / "red.png")
    (tmp_path / "notes.txt").write_text("not an image")
    folder = ImageFolder(tmp_path, resize=32, crop=32)
    assert len(folder) == 2
    grey, red = folder[0], folder[1]
    assert grey.shape == red.shape == (3, 32, 32)
    assert torch.allclose(grey, torch.full_like(grey, 128 / 255), atol=1e-2)
    assert red[0].min() > 0.99 and red[1:].max() < 0.01
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "missing")
