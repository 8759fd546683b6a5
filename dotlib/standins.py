"""Stand-in assets: random weights in the exact file formats of the published assets.

The paper study (``studies/paper.yaml``) reads assets nobody can download here:
Stable Diffusion's VAE, ImageNet validation images, five published restorer
checkpoints, clean-fid's Inception and torchvision's VGG16 (for LPIPS). This module
writes a stand-in for each, with random weights (seeded) but in the file format, file
name and folder layout of the real one, so that every loader of the study (diffusers'
``from_pretrained``, spandrel's architecture detection, ``torch.jit.load`` in clean-fid,
``torch.hub``'s cache lookup, :class:`dotlib.data.ImageFolder`) runs offline exactly as it
would on the real assets: a paper-scale dry run on a CPU. The numbers such a run gives
mean nothing; that its code paths run does. It is written here by hand because nothing
available offline ships such stand-ins (the test suites of spandrel, diffusers and
clean-fid download real weights or build ad-hoc models in memory).

``build_standins(root)`` writes, under ``root``:

``sd-vae/``
    a diffusers ``AutoencoderKL`` ``save_pretrained`` folder (``config.json`` +
    ``diffusion_pytorch_model.safetensors``) shaped like Stable Diffusion's VAE (4 latent
    channels, 4 blocks, so a downsampling factor of 8) with tiny widths (8, 8, 16, 16),
    one layer per block and 4 normalisation groups.
``checkpoints/``
    the official files, in the official storage formats, of tiny models built from
    spandrel's own architecture classes (same geometry as the published models: window
    sizes, training image sizes, upsamplers, residual connections; small widths and depths):

    - ``001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth``: SwinIR x4, pixelshuffle upsampler,
      image size 64, window 8, ``{"params": state_dict}``;
    - ``006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg10.pth``: SwinIR x1, image size 126,
      window 7 (spandrel then uses an image range of 255, as the official JPEG models),
      ``{"params": state_dict}``;
    - ``gaussian_color_denoising_sigma50.pth``: Restormer with bias-free LayerNorms and
      no biases (the official denoising configuration), ``{"params": state_dict}``;
      spandrel reads it through ``spandrel_extra_arches``;
    - ``Swin2SR_CompressedSR_X4_48.pth``: Swin2SR x4, ``pixelshuffle_aux`` upsampler,
      image size 48, window 8, ``{"params": state_dict}``;
    - ``RRDB_ESRGAN_x4.pth``: ESRGAN x4 as a raw state dict in the key layout of the file
      the ESRGAN README links (xinntao/ESRGAN's ``RRDBNet_arch.py``: ``conv_first``,
      ``RRDB_trunk.N.RDBk.convj``, ``trunk_conv``, ``upconv1``, ``upconv2``, ``HRconv``,
      ``conv_last``; 32 growth channels). spandrel detects this layout and converts it to
      its own; the older ``model.N`` layout (``RRDB_ESRGAN_x4_old_arch.pth``, which is
      spandrel's native one) is not what that file name holds.
``inception/inception-2015-12-05.pt``
    a TorchScript module under clean-fid's file name with the interface clean-fid and
    :mod:`dotlib.metrics.inception` use: ``forward(x, return_features=False)`` on
    ``[B, 3, H, W]`` in [0, 255] of any size (bilinear resize to 299², then
    ``(x - 128) / 128``) giving ``[B, 2048]`` features or ``[B, 1008]`` logits; a
    submodule ``layers`` (normalised ``[B, 3, 299, 299]`` -> ``[B, 2048, 1, 1]``) and a
    submodule ``output`` (``Linear(2048, 1008, bias=False)``). Inside: three strided
    convolutions, spatial mean and standard deviation pooling, a fixed random 1×1 map to
    2048 channels and ``abs`` (non-negative, non-degenerate features, as pool features are).
``torch/hub/checkpoints/vgg16-397923af.pth``
    a torchvision ``vgg16()`` state dict (all 32 keys, float32, exact shapes, torchvision's
    initialisation: He-normal convolutions, N(0, 0.01) linear layers, zero biases; the two
    largest classifier matrices repeat one block of 2^22 draws, a second faster) under
    torch hub's cache name, so that with ``TORCH_HOME=<root>/torch`` torchvision and the
    ``lpips`` package find it without downloading. It is full size (528 MiB): LPIPS uses
    only the 14.7 M convolution weights, but ``torchvision.models.vgg16(weights=...)``
    loads the whole state dict strictly, classifier included, so a smaller file would not
    be the published format. It is written once and kept (see below).
``imagenet/val/``
    ``ILSVRC2012_val_00000001.JPEG`` ... : crops of the package's own photos
    (:data:`dotlib.data.PHOTO_POOL`) of varied sizes (short side at least ``image_size``)
    and aspect ratios (1 to 3:2, both orientations), saved by PIL at quality 95.
``imagenet/train/``
    ``n00000000_00000001.JPEG`` ... : other crops drawn the same way (the fitting folder; the
    authors fit on 16 ImageNet train images).

Every asset is deterministic given ``seed`` (each asset draws from its own generator
seeded from ``seed`` and its name; the caller's global random state is left as it was):
building twice gives byte-identical files, the safetensors of the VAE included (diffusers
writes only ``{"format": "pt"}`` as metadata). ``root/standins.json`` records what was
written with which parameters; a rerun skips every asset whose record, files and sizes
match, and refuses to overwrite a file or folder it did not write.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shlex
import shutil
import tempfile
import time
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["CHECKPOINT_FILES", "MANIFEST_FILE", "STANDIN_VERSION", "build_standins", "main"]

#: Bumped whenever a builder changes what it writes (recorded assets are then rebuilt).
STANDIN_VERSION = 1
MANIFEST_FILE = "standins.json"

VAE_DIR = "sd-vae"
CHECKPOINT_DIR = "checkpoints"
INCEPTION_DIR = "inception"
INCEPTION_FILE = "inception-2015-12-05.pt"
TORCH_HOME_DIR = "torch"
VGG16_FILE = "vgg16-397923af.pth"
IMAGENET_DIR = "imagenet/val"
IMAGENET_TRAIN_DIR = "imagenet/train"

#: Tiny Stable-Diffusion-shaped VAE (SD: block_out_channels 128, 256, 512, 512; 2 layers; 32 groups).
VAE_CONFIG: dict = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [8, 8, 16, 16],
    "layers_per_block": 1,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 4,
    "sample_size": 256,
    "scaling_factor": 0.18215,
}

#: Official file -> (spandrel architecture, constructor arguments, storage).
#: Storage "params": ``{"params": state_dict}``; "esrgan": raw state dict in xinntao/ESRGAN's layout.
#: Geometry as in the official test scripts (SwinIR/Swin2SR ``main_test_*.py``, Restormer's
#: ``test_gaussian_color_denoising.py``); widths and depths tiny (official: 180 dims, 6×6 blocks).
_SWIN = dict(embed_dim=12, depths=[2, 2], num_heads=[2, 2], mlp_ratio=2.0, in_chans=3, resi_connection="1conv")
CHECKPOINT_FILES: dict[str, tuple[str, dict, str]] = {
    "001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth": (
        "SwinIR", dict(_SWIN, img_size=64, window_size=8, upscale=4, img_range=1.0, upsampler="pixelshuffle"),
        "params"),
    "006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg10.pth": (
        "SwinIR", dict(_SWIN, img_size=126, window_size=7, upscale=1, img_range=255.0, upsampler=""),
        "params"),
    "gaussian_color_denoising_sigma50.pth": (
        "Restormer", dict(inp_channels=3, out_channels=3, dim=8, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1,
                          heads=[1, 2, 4, 8], ffn_expansion_factor=2.66, bias=False, LayerNorm_type="BiasFree",
                          dual_pixel_task=False),
        "params"),
    "Swin2SR_CompressedSR_X4_48.pth": (
        "Swin2SR", dict(_SWIN, img_size=48, window_size=8, upscale=4, img_range=1.0, upsampler="pixelshuffle_aux"),
        "params"),
    "RRDB_ESRGAN_x4.pth": (
        "ESRGAN", dict(in_nc=3, out_nc=3, num_filters=16, num_blocks=2, scale=4),
        "esrgan"),
}

#: VGG16 tensors larger than this many numbers repeat one block of this many draws.
_VGG_BLOCK = 1 << 22
_JPEG_QUALITY = 95
#: width / height of the crops (ImageNet photos are mostly 4:3 or 3:4, some square or 3:2).
_ASPECTS = (1.0, 4 / 3, 3 / 4, 3 / 2, 2 / 3, 5 / 4, 4 / 5)


# ----------------------------------------------------------------------------- helpers


def _subseed(seed: int, name: str) -> int:
    """A 63-bit seed for asset ``name`` derived from ``seed`` (independent streams per asset)."""
    digest = hashlib.sha256(f"dotlib-standins:{int(seed)}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """torch's global CPU generator seeded with ``seed`` inside, the caller's state restored after.

    Architecture classes initialise their weights from the global generator; this makes
    that deterministic without changing the caller's random state.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _spandrel_class(architecture: str):
    if architecture == "SwinIR":
        from spandrel.architectures.SwinIR import SwinIR
        return SwinIR
    if architecture == "Swin2SR":
        from spandrel.architectures.Swin2SR import Swin2SR
        return Swin2SR
    if architecture == "ESRGAN":
        from spandrel.architectures.ESRGAN import ESRGAN
        return ESRGAN
    if architecture == "Restormer":
        with warnings.catch_warnings():  # its CodeFormer scripts a function at import (torch 2.14 warns)
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
            from spandrel_extra_arches.architectures.Restormer import Restormer
        return Restormer
    raise ValueError(f"no stand-in builder for architecture {architecture!r}")


def _plain_state(module: torch.nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """The state dict as detached, contiguous CPU tensors (no autograd, no shared views)."""
    return OrderedDict((key, value.detach().to("cpu").contiguous().clone())
                       for key, value in module.state_dict().items())


def _esrgan_official_layout(state: dict[str, torch.Tensor], num_blocks: int) -> "OrderedDict[str, torch.Tensor]":
    """spandrel's ESRGAN keys (``model.N``, the old arch) -> xinntao/ESRGAN's ``RRDBNet_arch.py`` keys.

    spandrel's sequence: ``model.0`` first conv, ``model.1.sub.{i}`` RRDB blocks then
    ``model.1.sub.{num_blocks}`` the trunk conv, one (upsample, conv, act) triple per
    factor 2, then HR conv (+ act) and the last conv.
    """
    convs = sorted({int(key.split(".")[1]) for key in state if not key.startswith(("model.0.", "model.1."))})
    *upsampling, hr, last = convs
    names = {0: "conv_first", hr: "HRconv", last: "conv_last",
             **{index: f"upconv{k}" for k, index in enumerate(upsampling, start=1)}}
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for key, value in state.items():
        parts = key.split(".")
        if parts[1] == "1":  # model.1.sub.{i}...
            block = int(parts[3])
            if block == num_blocks:  # model.1.sub.{nb}.{weight,bias}
                out[f"trunk_conv.{parts[-1]}"] = value
            else:  # model.1.sub.{i}.RDB{k}.conv{j}.0.{weight,bias}
                rdb, conv = parts[4], parts[5]
                out[f"RRDB_trunk.{block}.{rdb}.{conv}.{parts[-1]}"] = value
        else:
            out[f"{names[int(parts[1])]}.{parts[-1]}"] = value
    if len(out) != len(state):
        raise RuntimeError("ESRGAN key conversion lost tensors")
    return out


# ----------------------------------------------------------------------------- writers


def _write_vae(folder: Path, seed: int) -> None:
    from diffusers import AutoencoderKL

    with _seeded(seed):
        vae = AutoencoderKL(**VAE_CONFIG)
    vae.save_pretrained(folder, safe_serialization=True)


def _write_checkpoint(path: Path, seed: int) -> None:
    architecture, kwargs, storage = CHECKPOINT_FILES[path.name]
    with _seeded(seed), warnings.catch_warnings():  # spandrel's Swin code calls meshgrid without indexing
        warnings.filterwarnings("ignore", message=r"torch\.meshgrid: in an upcoming release", category=UserWarning)
        model = _spandrel_class(architecture)(**kwargs)
    state = _plain_state(model)
    if storage == "params":
        payload: dict = {"params": state}
    else:
        payload = _esrgan_official_layout(state, kwargs["num_blocks"])
    torch.save(payload, path)


class _Conv(torch.nn.Module):
    """A square convolution with bias. Not ``nn.Conv2d``: TorchScript writes a module's
    ``__constants__`` in set order, which changes with Python's string hashing, so the file
    would differ between runs; plain attributes are written in a fixed order."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(out_channels, in_channels, kernel, kernel))
        self.bias = torch.nn.Parameter(torch.empty(out_channels))
        self.stride = stride
        self.padding = kernel // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)


class _Linear(torch.nn.Module):
    """``x @ weight.T`` without bias (the logits layer; not ``nn.Linear``, see :class:`_Conv`)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(out_features, in_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


class _InceptionTrunk(torch.nn.Module):
    """Normalised ``[B, 3, 299, 299]`` -> ``[B, 2048, 1, 1]``: strided convs, mean+std pooling, 1×1 map, abs."""

    def __init__(self):
        super().__init__()
        self.conv1 = _Conv(3, 16, 3, 2)
        self.conv2 = _Conv(16, 32, 3, 2)
        self.conv3 = _Conv(32, 64, 3, 2)
        self.project = _Conv(128, 2048, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.conv3(x))
        pooled = torch.cat([x.mean(dim=(2, 3), keepdim=True), x.std(dim=(2, 3), keepdim=True)], dim=1)
        return self.project(pooled).abs()


class _InceptionStandIn(torch.nn.Module):
    """The interface of StyleGAN's TorchScript Inception (``inception-2015-12-05.pt``) on a tiny trunk."""

    def __init__(self):
        super().__init__()
        self.layers = _InceptionTrunk()
        self.output = _Linear(2048, 1008)

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        x = x.to(torch.float32)
        if x.shape[2] != 299 or x.shape[3] != 299:
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = (x - 128.0) / 128.0
        features = self.layers(x).reshape(-1, 2048)
        if return_features:
            return features
        return self.output(features)


def _write_inception(path: Path, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    model = _InceptionStandIn()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
            else:
                fan_in = math.prod(parameter.shape[1:])
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * math.sqrt(2.0 / fan_in))
    with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.14, but it is the published format
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.(script|save)` is deprecated", category=FutureWarning)
        scripted = torch.jit.script(model.eval())
        torch.jit.save(scripted, str(path))


def _write_vgg16(path: Path, seed: int) -> None:
    from torchvision.models import vgg16

    with torch.device("meta"):  # keys and shapes only: nothing initialised, no global RNG drawn
        shapes = [(key, value.shape) for key, value in vgg16().state_dict().items()]
    generator = torch.Generator().manual_seed(seed)
    state: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for key, shape in shapes:  # torchvision's VGG initialisation
        numel = math.prod(shape)
        if key.endswith("bias"):
            state[key] = torch.zeros(shape, dtype=torch.float32)
            continue
        if key.startswith("features."):  # kaiming_normal_(mode="fan_out", nonlinearity="relu")
            std = math.sqrt(2.0 / (shape[0] * shape[2] * shape[3]))
        else:  # normal_(0, 0.01)
            std = 0.01
        # Tensors over _VGG_BLOCK numbers (the classifier matrices of 103 M and 17 M numbers, which
        # LPIPS never uses) repeat one block of draws: drawing all 138 M takes a second longer.
        block = torch.empty(min(numel, _VGG_BLOCK), dtype=torch.float32).normal_(0.0, std, generator=generator)
        flat = torch.empty(numel, dtype=torch.float32)
        whole = numel // block.numel() * block.numel()
        flat[:whole].view(-1, block.numel()).copy_(block.expand(numel // block.numel(), -1))
        flat[whole:] = block[:numel - whole]
        state[key] = flat.view(shape)
    torch.save(state, path)


def _photo_crops(n_images: int, image_size: int, seed: int) -> list[np.ndarray]:
    """``n_images`` uint8 ``[h, w, 3]`` crops of the package photos, short side >= ``image_size``."""
    from .data import PHOTO_POOL, load_photo

    photos = {}
    for name in PHOTO_POOL:
        image = load_photo(name)
        if min(image.shape[-2:]) >= image_size:
            photos[name] = np.rint(image.permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)
    if not photos:
        raise ValueError(f"no package photo has a short side of at least {image_size} pixels; "
                         f"use a smaller image_size")
    rng = np.random.default_rng(seed)
    names = sorted(photos)
    order = [names[i] for i in rng.permutation(len(names))]
    crops = []
    for index in range(n_images):
        photo = photos[order[index % len(order)]]
        height, width = photo.shape[:2]
        aspect = float(rng.choice(_ASPECTS))  # width / height
        # the largest short side at which a crop of this aspect fits; else square
        short_max = min(height, math.floor(width / aspect)) if aspect >= 1 else min(width, math.floor(height * aspect))
        if short_max < image_size:
            aspect, short_max = 1.0, min(height, width)
        short = int(rng.integers(image_size, short_max + 1))
        long_side = round(short * aspect) if aspect >= 1 else round(short / aspect)
        crop_h, crop_w = (short, long_side) if aspect >= 1 else (long_side, short)
        crop_h, crop_w = min(crop_h, height), min(crop_w, width)
        top = int(rng.integers(0, height - crop_h + 1))
        left = int(rng.integers(0, width - crop_w + 1))
        crops.append(np.ascontiguousarray(photo[top:top + crop_h, left:left + crop_w]))
    return crops


def _write_imagenet(folder: Path, seed: int, n_images: int, image_size: int, prefix: str) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    for index, crop in enumerate(_photo_crops(n_images, image_size, seed), start=1):
        Image.fromarray(crop).save(folder / f"{prefix}{index:08d}.JPEG", "JPEG", quality=_JPEG_QUALITY)


# ----------------------------------------------------------------------------- building


@dataclass(frozen=True)
class _Asset:
    key: str  # the manifest key
    target: str  # the file or folder it owns, relative to root
    params: dict  # what it is built from (JSON values)
    write: Callable[[Path], None]  # writes the file or folder at the given path (same base name)


def _assets(n_images: int, image_size: int, seed: int) -> list[_Asset]:
    from .data import PHOTO_POOL

    def entry(key: str, target: str, write: Callable[[Path, int], None], **params) -> _Asset:
        sub = _subseed(seed, key)
        recorded = json.loads(json.dumps({"version": STANDIN_VERSION, "seed": seed, **params}))
        return _Asset(key, target, recorded, lambda path: write(path, sub))

    assets = [entry("sd-vae", VAE_DIR, _write_vae, config=VAE_CONFIG)]
    for name, (architecture, kwargs, storage) in CHECKPOINT_FILES.items():
        assets.append(entry(f"{CHECKPOINT_DIR}/{name}", f"{CHECKPOINT_DIR}/{name}", _write_checkpoint,
                            architecture=architecture, kwargs=kwargs, storage=storage))
    assets.append(entry("inception", f"{INCEPTION_DIR}/{INCEPTION_FILE}", _write_inception))
    assets.append(entry("vgg16", f"{TORCH_HOME_DIR}/hub/checkpoints/{VGG16_FILE}", _write_vgg16))
    for key, folder, prefix in (("imagenet-val", IMAGENET_DIR, "ILSVRC2012_val_"),
                                ("imagenet-train", IMAGENET_TRAIN_DIR, "n00000000_")):
        assets.append(entry(key, folder, lambda path, sub, prefix=prefix: _write_imagenet(path, sub, n_images,
                                                                                          image_size, prefix),
                            n_images=n_images, image_size=image_size, jpeg_quality=_JPEG_QUALITY,
                            photos=list(PHOTO_POOL)))
    return assets


def _listing(root: Path, target: Path) -> dict[str, int]:
    """``{path relative to root: size in bytes}`` of the file ``target`` or the files under it."""
    files = sorted(p for p in target.rglob("*") if p.is_file()) if target.is_dir() else [target]
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in files}


def _intact(root: Path, record: dict) -> bool:
    files = record.get("files") or {}
    return bool(files) and all((root / name).is_file() and (root / name).stat().st_size == size
                               for name, size in files.items())


def _read_manifest(root: Path) -> dict:
    path = root / MANIFEST_FILE
    if not path.is_file():
        return {"assets": {}}
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(manifest, dict) or not isinstance(manifest.get("assets"), dict):
        raise ValueError(f"{path} is not a stand-in manifest (no 'assets' mapping)")
    return manifest


def _write_manifest(root: Path, manifest: dict) -> None:
    from .io import write_text

    write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", root / MANIFEST_FILE)


def _ensure(root: Path, manifest: dict, asset: _Asset) -> bool:
    """Write ``asset`` unless the manifest records it, with these parameters, intact; True if written."""
    target = root / asset.target
    record = manifest["assets"].get(asset.key)
    if record is not None and record.get("params") == asset.params and _intact(root, record):
        return False
    if record is None and (target.exists() or target.is_symlink()):
        raise FileExistsError(f"{target} exists and was not written by build_standins (no record in "
                              f"{root / MANIFEST_FILE}); it may be a real asset, so it is left alone: "
                              f"choose another root")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".standin-", dir=target.parent))
    try:
        staged = staging / target.name  # the final base name: torch.save names its archive after it
        asset.write(staged)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(staged, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    manifest["assets"][asset.key] = {"params": asset.params, "files": _listing(root, target)}
    _write_manifest(root, manifest)
    return True


def build_standins(root: str | Path, n_images: int = 24, image_size: int = 96, seed: int = 0) -> dict[str, str]:
    """Write every stand-in asset under root and return the environment variables that point the study at them.

    Returns ``DOTLIB_SD_VAE``, ``DOTLIB_IMAGENET_VAL``, ``DOTLIB_IMAGENET_TRAIN``, ``DOTLIB_CHECKPOINTS``,
    ``DOTLIB_INCEPTION_PATH``, ``TORCH_HOME`` and ``DOTLIB_LPIPS_VGG`` (absolute paths).
    Assets already written with the same parameters are kept (the VGG16 file alone is
    528 MiB); anything under ``root`` that this function did not write is never replaced.
    """
    for name, value, least in (("n_images", n_images, 1), ("image_size", image_size, 8)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    root = Path(root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(root)
    for asset in _assets(int(n_images), int(image_size), int(seed)):
        _ensure(root, manifest, asset)
    return {
        "DOTLIB_SD_VAE": str(root / VAE_DIR),
        "DOTLIB_IMAGENET_VAL": str(root / IMAGENET_DIR),
        "DOTLIB_IMAGENET_TRAIN": str(root / IMAGENET_TRAIN_DIR),
        "DOTLIB_CHECKPOINTS": str(root / CHECKPOINT_DIR),
        "DOTLIB_INCEPTION_PATH": str(root / INCEPTION_DIR),
        "TORCH_HOME": str(root / TORCH_HOME_DIR),
        "DOTLIB_LPIPS_VGG": str(root / TORCH_HOME_DIR / "hub" / "checkpoints" / VGG16_FILE),
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m dotlib.standins ROOT [--n-images N] [--image-size S] [--seed K]``: build, print exports."""
    parser = argparse.ArgumentParser(
        prog="python -m dotlib.standins",
        description="Write stand-in assets (random weights, published file formats) for an offline dry run "
                    "of the paper study, and print the environment variables that point at them.")
    parser.add_argument("root", help="folder to write the stand-ins into")
    parser.add_argument("--n-images", type=int, default=24, help="ImageNet-style JPEGs to write (default 24)")
    parser.add_argument("--image-size", type=int, default=96,
                        help="the smallest short side of those images, in pixels (default 96)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random weight and crop (default 0)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    variables = build_standins(args.root, n_images=args.n_images, image_size=args.image_size, seed=args.seed)
    for name, value in variables.items():
        print(f"export {name}={shlex.quote(value)}")
    print(f"# stand-ins ready under {shlex.quote(str(Path(args.root).expanduser().resolve()))} "
          f"in {time.perf_counter() - start:.1f} s (random weights: the numbers of a run on them mean nothing)")
    return 0


if __name__ == "__main__":
    # Run the imported module's main, not this __main__ copy: TorchScript names the Inception
    # stand-in's classes after their module, and the file must not depend on how it was built.
    from dotlib.standins import main as _main

    raise SystemExit(_main())
