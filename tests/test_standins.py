"""Stand-in assets: each loads through the study's own loader, in the published format, deterministically."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dotlib.degradations import degrade, get_degradation
from dotlib.restorers import PUBLISHED_CHECKPOINTS, get_restorer
from dotlib.standins import CHECKPOINT_FILES, MANIFEST_FILE, _esrgan_official_layout, build_standins, main

N_IMAGES, IMAGE_SIZE = 6, 64
BUILD = dict(n_images=N_IMAGES, image_size=IMAGE_SIZE, seed=0)
VARIABLES = {"DOTLIB_SD_VAE", "DOTLIB_IMAGENET_VAL", "DOTLIB_IMAGENET_TRAIN", "DOTLIB_CHECKPOINTS", "DOTLIB_INCEPTION_PATH", "TORCH_HOME",
             "DOTLIB_LPIPS_VGG"}


def _build(tmp_path_factory, name: str):
    root = tmp_path_factory.mktemp(name)
    env = build_standins(root, **BUILD)
    yield root, env
    shutil.rmtree(root, ignore_errors=True)  # the VGG16 stand-in alone is 528 MiB


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    yield from _build(tmp_path_factory, "standins")


@pytest.fixture(scope="module")
def built_again(tmp_path_factory):
    yield from _build(tmp_path_factory, "standins_again")


@pytest.fixture(scope="module")
def clean() -> torch.Tensor:
    from dotlib.data import embedded_crops

    return embedded_crops("eval", 64, 2, seed=3)


def _files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_the_variables_point_at_the_assets(built, monkeypatch):
    root, env = built
    assert set(env) == VARIABLES
    assert all(Path(value).is_relative_to(root.resolve()) for value in env.values())
    monkeypatch.setenv("TORCH_HOME", env["TORCH_HOME"])
    assert Path(torch.hub.get_dir()) / "checkpoints" / "vgg16-397923af.pth" == Path(env["DOTLIB_LPIPS_VGG"])
    assert Path(env["DOTLIB_LPIPS_VGG"]).is_file()
    names = {name for entry in PUBLISHED_CHECKPOINTS.values() for name in entry["files"].values()}
    assert set(CHECKPOINT_FILES) <= names
    assert sorted(p.name for p in Path(env["DOTLIB_CHECKPOINTS"]).iterdir()) == sorted(CHECKPOINT_FILES)


@pytest.mark.parametrize(("name", "task", "architecture", "tag"), [
    ("swinir", "sr4", "SwinIR", "s64w8"),
    ("swinir", "jpeg10", "SwinIR", "s126w7"),
    ("restormer", "awgn50", "Restormer", "8dim"),
    ("swin2sr", "sr4_jpeg10", "Swin2SR", "s48w8"),
    ("esrgan", "sr4", "ESRGAN", "2nb"),
])
def test_each_published_restorer_loads_and_restores(built, clean, name, task, architecture, tag):
    checkpoint = Path(built[1]["DOTLIB_CHECKPOINTS"]) / PUBLISHED_CHECKPOINTS[name]["files"][task]
    restorer = get_restorer(name, task, device="cpu", checkpoint=checkpoint)
    descriptor = restorer.descriptor
    assert descriptor.architecture.name == architecture and tag in descriptor.tags
    assert descriptor.scale == get_degradation(task).scale
    assert descriptor.input_channels == descriptor.output_channels == 3
    y = degrade(task, clean, seed=0)
    assert y.shape[-1] == 64 // descriptor.scale
    x = restorer(y)
    assert x.shape == clean.shape and x.dtype == torch.float32
    assert bool(torch.isfinite(x).all()) and float(x.std()) > 0


def test_checkpoints_are_stored_as_the_official_files(built):
    folder = Path(built[1]["DOTLIB_CHECKPOINTS"])
    marks = {"SwinIR": "layers.1.residual_group.blocks.1.attn_mask", "Swin2SR": "conv_bicubic.weight",
             "Restormer": "encoder_level1.0.attn.temperature"}
    for name, (architecture, _, storage) in CHECKPOINT_FILES.items():
        payload = torch.load(folder / name, map_location="cpu", weights_only=True)
        if storage == "params":  # {"params": state dict}, as the SwinIR, Swin2SR and Restormer releases
            assert list(payload) == ["params"] and marks[architecture] in payload["params"]
    esrgan = torch.load(folder / "RRDB_ESRGAN_x4.pth", map_location="cpu", weights_only=True)
    assert not any(key.startswith("model.") for key in esrgan)
    assert {"conv_first.weight", "RRDB_trunk.1.RDB3.conv5.bias", "trunk_conv.weight", "upconv1.weight",
            "upconv2.weight", "HRconv.weight", "conv_last.weight"} <= set(esrgan)
    assert esrgan["RRDB_trunk.0.RDB1.conv1.weight"].shape == (32, 16, 3, 3)  # 32 growth channels, 16 filters
    # spandrel turns the layout into its own and back without losing a tensor
    loaded = get_restorer("esrgan", "sr4", checkpoint=folder / "RRDB_ESRGAN_x4.pth").descriptor.model.state_dict()
    back = _esrgan_official_layout(loaded, num_blocks=2)
    assert list(back) == list(esrgan) and all(torch.equal(back[k], esrgan[k]) for k in esrgan)


def test_vae_loads_like_stable_diffusion_and_round_trips(built, clean):
    from dotlib.encoders import load_encoder, weights_fingerprint

    folder = Path(built[1]["DOTLIB_SD_VAE"])
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "diffusion_pytorch_model.safetensors"]
    encoder = load_encoder(str(folder), device="cpu")
    assert (encoder.factor, encoder.latent_channels) == (8, 4)
    assert type(encoder.vae).__name__ == "AutoencoderKL"
    assert encoder.fingerprint == weights_fingerprint(folder) is not None
    latents = encoder.encode(clean)
    assert latents.shape == (2, 4, 8, 8) and bool(torch.isfinite(latents).all())
    images = encoder.decode(latents)
    assert images.shape == clean.shape and float(images.min()) >= 0 and float(images.max()) <= 1


def test_inception_loads_through_dotlib_and_clean_fid(built, clean):
    from cleanfid.inception_torchscript import InceptionV3W

    from dotlib.metrics import load_inception

    folder = built[1]["DOTLIB_INCEPTION_PATH"]
    images = torch.cat([clean, clean.flip(-1), 1 - clean])
    features = load_inception("cpu", path=folder, output="features")(images)
    assert features.shape == (6, 2048) and np.isfinite(features).all() and (features >= 0).all()
    assert np.linalg.matrix_rank(features - features.mean(0)) == 5  # 6 images, centred: not degenerate
    probabilities = load_inception("cpu", path=folder, output="probabilities")(images)
    assert probabilities.shape == (6, 1008) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)

    inside = InceptionV3W(folder, download=False, resize_inside=True)
    outside = InceptionV3W(folder, download=False, resize_inside=False)
    assert tuple(inside.base.output.weight.shape) == (1008, 2048) and not hasattr(inside.base.output, "bias")
    with torch.no_grad():
        small = inside(images * 255)  # any size: resized inside the module
        assert small.shape == (6, 2048) and bool(torch.isfinite(small).all())
        at_299 = torch.nn.functional.interpolate(images * 255, size=(299, 299), mode="bilinear", align_corners=False)
        assert torch.allclose(outside(at_299), small, atol=1e-5)  # the `layers` path clean-fid takes at 299²
        assert torch.allclose(inside.base(images * 255), small @ inside.base.output.weight.T, atol=1e-4)


def test_image_folder_holds_imagenet_style_jpegs(built):
    from dotlib.data import ImageFolder

    folder = Path(built[1]["DOTLIB_IMAGENET_VAL"])
    assert _files(folder) == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, N_IMAGES + 1)]
    sizes = []
    for path in sorted(folder.iterdir()):
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            sizes.append(image.size)
    assert min(min(size) for size in sizes) >= IMAGE_SIZE
    assert len({round(w / h, 2) for w, h in sizes}) >= 2  # varied aspect ratios
    dataset = ImageFolder(folder, resize=IMAGE_SIZE, crop=IMAGE_SIZE)
    assert len(dataset) == N_IMAGES and dataset[0].shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    train = Path(built[1]["DOTLIB_IMAGENET_TRAIN"])                 # the fitting folder: other crops
    assert _files(train) == [f"n00000000_{i:08d}.JPEG" for i in range(1, N_IMAGES + 1)]
    assert not filecmp.cmp(train / "n00000000_00000001.JPEG", folder / "ILSVRC2012_val_00000001.JPEG", shallow=False)


def test_vgg16_has_torchvision_keys_and_shapes(built):
    from torchvision.models import vgg16

    with torch.device("meta"):
        expected = {key: tuple(value.shape) for key, value in vgg16().state_dict().items()}
    state = torch.load(built[1]["DOTLIB_LPIPS_VGG"], map_location="cpu", weights_only=True, mmap=True)
    assert {key: tuple(value.shape) for key, value in state.items()} == expected
    assert all(value.dtype == torch.float32 and value.is_contiguous() for value in state.values())
    assert float(state["features.0.weight"].std()) > 0 and float(state["classifier.6.weight"].std()) > 0


def test_building_twice_gives_identical_bytes(built, built_again):
    (first, _), (second, _) = built, built_again
    assert _files(first) == _files(second) and MANIFEST_FILE in _files(first)
    different = [name for name in _files(first) if not filecmp.cmp(first / name, second / name, shallow=False)]
    assert different == []


def test_a_rerun_keeps_what_is_built_and_rebuilds_what_changed(built, built_again):
    root = built_again[0]
    stamps = {name: (root / name).stat().st_mtime_ns for name in _files(root) if name != MANIFEST_FILE}
    assert build_standins(root, **BUILD) == built_again[1]
    assert {name: (root / name).stat().st_mtime_ns for name in stamps} == stamps
    build_standins(root, **{**BUILD, "n_images": 3})
    assert len(list((root / "imagenet" / "val").iterdir())) == len(list((root / "imagenet" / "train").iterdir())) == 3
    kept = [name for name in stamps if not name.startswith("imagenet/")]
    assert {name: (root / name).stat().st_mtime_ns for name in kept} == {name: stamps[name] for name in kept}
    build_standins(root, **BUILD)  # back as it was, byte for byte
    assert _files(root) == _files(built[0])
    assert all(filecmp.cmp(root / name, built[0] / name, shallow=False)
               for name in _files(root) if name.startswith("imagenet/") or name == MANIFEST_FILE)


def test_files_it_did_not_write_are_left_alone(tmp_path):
    mine = tmp_path / "sd-vae" / "config.json"
    mine.parent.mkdir()
    mine.write_text("a real VAE")
    with pytest.raises(FileExistsError, match="not written by build_standins"):
        build_standins(tmp_path, **BUILD)
    assert mine.read_text() == "a real VAE"


def test_command_line_prints_exports(built, capsys):
    root, env = built
    assert main([str(root), "--n-images", str(N_IMAGES), "--image-size", str(IMAGE_SIZE)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("export ")]
    assert lines == [f"export {name}={value}" for name, value in env.items()]


def test_an_unknown_architecture_names_the_supported_ones(tmp_path):
    path = tmp_path / "mystery.pth"
    torch.save({"params": {"encoder.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(ValueError, match=r"unknown to spandrel .* Restormer, .*SwinIR.*folder:<path>"):
        get_restorer("spandrel", "awgn50", checkpoint=path)
