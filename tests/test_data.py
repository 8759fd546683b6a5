"""Embedded photos, their disjoint splits, deterministic crops, and user image folders."""

import numpy as np
import pytest
import torch
from PIL import Image

from dotlib.data import (EMBEDDED_PHOTOS, PHOTO_POOL, SPLITS, ImageFolder, crop_batch, embedded_crops,
                         load_photo, photo_crops, photo_folds, photo_pool, split_photos)


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


def test_photo_pool_crops_do_not_overlap_and_are_never_upscaled():
    images, owners = photo_pool(256, crops_per_photo=2)
    assert len(set(owners)) == len(PHOTO_POOL) >= 12 and images.shape[1:] == (3, 256, 256)
    assert owners.count("chelsea") == 1                    # 300x451: one 256 crop fits, no upscaling
    photo = load_photo("astronaut")                        # 512x512: a 2x2 grid, diagonal picked
    crops = photo_crops(photo, 256, max_crops=2)
    assert torch.equal(crops[0], photo[:, :256, :256]) and torch.equal(crops[1], photo[:, 256:, 256:])
    with pytest.raises(ValueError, match="never upscaled"):
        photo_crops(load_photo("present"), 256)
    with pytest.raises(ValueError, match="never upscaled"):
        crop_batch([load_photo("present")], 256, 1, seed=0)
    folds = photo_folds(owners, 6, seed=0)
    assert sorted(name for fold in folds for name in fold) == sorted(set(owners))
    for name in PHOTO_POOL:                                # evaluation photos are never training photos
        assert name not in SPLITS["train"]


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


# ------------------------------------------------------- image files at their true scale


def _png16(path, array):
    """Write ``array`` (``[H, W]`` grey or ``[H, W, 3]`` RGB, 0..65535) as a 16-bit PNG by hand
    (PIL cannot write 16-bit RGB)."""
    import struct
    import zlib

    array = np.asarray(array, dtype=">u2")
    height, width = array.shape[:2]
    colour = 0 if array.ndim == 2 else 2
    raw = b"".join(b"\x00" + row.tobytes() for row in array.reshape(height, -1))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("shape", [(6, 7), (6, 7, 3)], ids=["grey", "rgb"])
def test_16_bit_png_loads_at_its_true_scale(tmp_path, shape):
    from dotlib.data import load_image

    values = np.full(shape, 32768, np.uint16)
    values[0, 0] = 65535  # a white corner
    _png16(tmp_path / "x.png", values)
    image = load_image(tmp_path / "x.png")
    assert image.shape == (3, 6, 7) and image.dtype == torch.float32
    assert abs(float(image[:, 3, 3].mean()) - 0.5) < 1e-4  # 32768 / 65535, not 128/255 (0.502) or 0.998
    assert float(image[:, 0, 0].min()) == 1.0


def test_float_and_16_bit_tiffs_load_at_their_true_scale(tmp_path):
    import tifffile

    from dotlib.data import load_image

    Image.fromarray(np.full((5, 4), 0.25, np.float32), "F").save(tmp_path / "grey_float.tif")
    tifffile.imwrite(tmp_path / "rgb_float.tif", np.full((5, 4, 3), 0.75, np.float32), photometric="rgb")
    tifffile.imwrite(tmp_path / "rgb16.tif", np.full((5, 4, 3), 16384, np.uint16), photometric="rgb")
    assert torch.allclose(load_image(tmp_path / "grey_float.tif"), torch.full((3, 5, 4), 0.25))
    assert torch.allclose(load_image(tmp_path / "rgb_float.tif"), torch.full((3, 5, 4), 0.75))
    assert torch.allclose(load_image(tmp_path / "rgb16.tif"), torch.full((3, 5, 4), 16384 / 65535))
    Image.fromarray(np.full((5, 4), 2.5, np.float32), "F").save(tmp_path / "bright.tif")
    with pytest.raises(ValueError, match=r"bright.tif.*\[0, 1\].*2.5"):  # a float image is never clipped
        load_image(tmp_path / "bright.tif")


def test_exif_orientation_is_applied(tmp_path):
    from dotlib.data import load_image

    pixels = np.zeros((20, 40, 3), np.uint8)  # wide, with a white left half
    pixels[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    Image.fromarray(pixels).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    image = load_image(tmp_path / "phone.jpg")
    assert image.shape == (3, 40, 20)  # shown upright: tall
    assert image[:, :15].mean() > 0.9 and image[:, 25:].mean() < 0.1  # the white half is now on top


def test_truncated_or_corrupt_files_are_named(tmp_path):
    from dotlib.data import load_image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.jpg").write_text("not an image")
    for name in ("cut.png", "text.jpg"):
        with pytest.raises(ValueError, match=f"cannot read the image file .*{name}"):
            load_image(tmp_path / name)
    folder = ImageFolder(tmp_path)
    with pytest.raises(ValueError, match="cut.png"):
        list(folder)


def test_image_folder_skips_hidden_folders_and_checks_its_arguments(tmp_path):
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "a.png")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / ".ipynb_checkpoints" / "a-checkpoint.png")
    (tmp_path / "._b.png").write_bytes(b"AppleDouble resource fork")
    folder = ImageFolder(tmp_path)
    assert [p.name for p in folder.files] == ["a.png"]
    for option in ("resize", "crop", "limit"):
        for bad in (0, -3):
            with pytest.raises(ValueError, match=f"{option} must be a positive integer"):
                ImageFolder(tmp_path, **{option: bad})


def test_arrays_are_scaled_by_their_type_and_never_clipped():
    from dotlib.data import to_tensor

    assert torch.allclose(to_tensor(np.full((2, 2), 65535, np.uint16)), torch.ones(3, 2, 2))
    assert torch.allclose(to_tensor(np.full((2, 2, 3), 51, np.uint8)), torch.full((3, 2, 2), 0.2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_tensor(np.full((2, 2, 3), 128.0, np.float32))  # a [0, 255] float array: not silently all white
    with pytest.raises(TypeError, match="int64"):
        to_tensor(np.full((2, 2, 3), 128, np.int64))
