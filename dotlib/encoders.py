"""Latent spaces for DOT: pixel space, the embedded VAE, and any diffusers VAE.

Every encoder maps images ``[B, 3, H, W]`` (float in [0, 1]) to latents
``[B, C, ceil(H/f), ceil(W/f)]`` and back, ``f`` being its downsampling factor.
Images are padded (replicate) to a multiple of ``f`` before encoding and the decoded
images are cropped back, so any size and aspect ratio works. VAEs see images scaled
to [-1, 1] (the diffusers convention) and their latents are used raw (no
``scaling_factor``); the pixel encoder uses the same scale (latents ``2x - 1``), as the
authors' code does without a VAE, so that an absolute ridge weighs as in their code. An
``AutoencoderKL`` gives the posterior mean by default (deterministic); ``sample=True``
draws from the posterior instead, as the authors' code does (Adrai et al. 2023, Sec. 4).

Specs accepted by :func:`load_encoder`:

``"pixel"``      the images themselves, scaled to [-1, 1] (factor 1, 3 channels);
``"embedded"``   the small ``AutoencoderKL`` shipped in ``dotlib/weights/embedded_vae``;
a folder         a diffusers ``save_pretrained`` folder of an ``AutoencoderKL`` or
                 ``AutoencoderTiny`` (or a full pipeline folder with a ``vae/`` subfolder);
a Hugging Face id such as ``stabilityai/sd-vae-ft-ema``, read from the local cache only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from abc import ABC, abstractmethod
from pathlib import Path

import torch
import torch.nn.functional as F

from .paths import WEIGHTS_DIR

__all__ = [
    "EMBEDDED_VAE_DIR",
    "DiffusersEncoder",
    "Encoder",
    "PixelEncoder",
    "check_images",
    "load_encoder",
    "weights_fingerprint",
]

#: A sampling encoder's noise source: one generator, one per image of the batch, or the encoder's own.
Generators = torch.Generator | list[torch.Generator] | None

#: Folder of the embedded VAE (diffusers ``save_pretrained`` format).
EMBEDDED_VAE_DIR = WEIGHTS_DIR / "embedded_vae"

_VAE_CLASSES = ("AutoencoderKL", "AutoencoderTiny")
_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


from .validate import check_device, check_images, check_values  # noqa: E402  (check_images re-exported)


class Encoder(ABC):
    """An image <-> latent map with a fixed downsampling ``factor``.

    Subclasses implement ``_encode`` (images in [0, 1], sizes multiple of ``factor``)
    and ``_decode`` (returning images, about [0, 1]); this class validates, pads, clamps
    (unless ``decode(..., clamp=False)``) and crops.
    """

    def __init__(self, name: str, factor: int, latent_channels: int, device: torch.device,
                 fingerprint: str | None = None):
        self.name = name
        self.factor = factor
        self.latent_channels = latent_channels
        self.device = torch.device(device)
        #: digest of the weights (None when unknown); saved operators record it
        self.fingerprint = fingerprint

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, factor={self.factor}, "
                f"latent_channels={self.latent_channels}, device={self.device})")

    def latent_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """Latent ``(h, w)`` of an image of ``size = (H, W)``: ``ceil(H/f), ceil(W/f)``."""
        return math.ceil(size[0] / self.factor), math.ceil(size[1] / self.factor)

    @torch.no_grad()
    def encode(self, images: torch.Tensor, generator: Generators = None,
               bounded: bool = True) -> torch.Tensor:
        """``[B, 3, H, W]`` in [0, 1] -> ``float32 [B, C, ceil(H/f), ceil(W/f)]`` on ``self.device``.

        ``generator``: a sampling encoder's noise; a list gives each image its own (diffusers').
        ``bounded=False``: any finite values (unclipped restorations, as the authors encode them)."""
        check_images(images, bounded=bounded)
        height, width = images.shape[-2:]
        images = images.to(self.device, torch.float32)
        pad_h, pad_w = -height % self.factor, -width % self.factor
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")
        return self._encode(images, generator).float()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, size: tuple[int, int] | None = None,
               clamp: bool = True) -> torch.Tensor:
        """``[B, C, h, w]`` -> ``float32 [B, 3, H, W]`` in [0, 1]; ``size=(H, W)`` crops (default ``h·f, w·f``).

        ``clamp=False`` returns the decoder's output as it is (it may leave [0, 1]), as
        the authors' code does for x̂0.
        """
        if not isinstance(latents, torch.Tensor) or latents.ndim != 4 or latents.shape[1] != self.latent_channels:
            raise ValueError(
                f"latents for encoder {self.name!r} must have shape [B, {self.latent_channels}, h, w], "
                f"got {tuple(getattr(latents, 'shape', ()))}"
            )
        check_values(latents, "latents", -math.inf, math.inf)   # finite (skipped where already checked)
        full = (latents.shape[-2] * self.factor, latents.shape[-1] * self.factor)
        height, width = full if size is None else (int(size[0]), int(size[1]))
        if self.latent_size((height, width)) != tuple(latents.shape[-2:]):
            raise ValueError(
                f"size {height}x{width} does not match latents of size {tuple(latents.shape[-2:])} "
                f"at factor {self.factor}"
            )
        images = self._decode(latents.to(self.device)).float()
        if clamp:
            images = images.clamp(0.0, 1.0)
        return images[:, :, :height, :width]

    def round_trip(self, images: torch.Tensor, generator: Generators = None) -> torch.Tensor:
        """``D(E(x))`` at the size of ``images`` (the reconstruction row of the study), float32 in [0, 1]."""
        return self.decode(self.encode(images, generator), size=tuple(images.shape[-2:]))

    @abstractmethod
    def _encode(self, images: torch.Tensor, generator: Generators) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` in [0, 1], ``H, W`` multiples of ``factor`` -> latents."""

    @abstractmethod
    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> images ``[B, 3, h·f, w·f]``, about [0, 1] (clamped by ``decode``)."""


class PixelEncoder(Encoder):
    """Pixel space: the latents are the images scaled to [-1, 1] (factor 1, 3 channels).

    ``encode`` gives ``2x - 1`` and ``decode`` ``(z + 1) / 2``, the scale the VAEs see and the
    one the authors' code uses without a VAE (``vae=None``: ``(x - 0.5) / 0.5``, the same
    float32 numbers). The scale matters for an absolute ridge ``eps``: patch covariances
    are 4× those of [0, 1] images. The float32 round trip is exact for ``x >= 0.25`` and
    within 2^-26 ≈ 1.5e-8 below (``2x - 1`` is rounded near -1). Its fingerprint names the
    scale, so operators saved when pixel latents were [0, 1] (fingerprint ``"identity"``)
    are refused by :meth:`dotlib.latent_ot.LatentOT.load` instead of being misapplied.
    """

    def __init__(self, device: str | torch.device = "cpu"):
        super().__init__("pixel", 1, 3, torch.device(device), fingerprint="pixel-[-1,1]")

    def _encode(self, images: torch.Tensor, generator: Generators) -> torch.Tensor:
        return images * 2.0 - 1.0

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        return (latents + 1.0) / 2.0


class DiffusersEncoder(Encoder):
    """A diffusers ``AutoencoderKL`` or ``AutoencoderTiny`` in inference mode.

    ``sample=True`` draws latents from an ``AutoencoderKL`` posterior with the
    encoder's own generator (seeded by ``seed``; a generator passed to ``encode``
    takes precedence). ``tile_size`` (pixels, a multiple of the factor) turns on
    diffusers' blended tiling for images larger than a tile. ``fingerprint`` identifies
    the weights (see :func:`weights_fingerprint`).
    """

    def __init__(self, vae, name: str, device: str | torch.device = "cpu", sample: bool = False,
                 dtype: torch.dtype = torch.float32, tile_size: int | None = None, seed: int = 0,
                 fingerprint: str | None = None):
        class_name = type(vae).__name__
        if class_name not in _VAE_CLASSES:
            raise TypeError(f"unsupported VAE class {class_name}; supported: {', '.join(_VAE_CLASSES)}")
        config = vae.config
        blocks = config.block_out_channels if class_name == "AutoencoderKL" else config.encoder_block_out_channels
        factor = 2 ** (len(blocks) - 1)
        super().__init__(name, factor, int(config.latent_channels), torch.device(device), fingerprint)
        if sample and class_name == "AutoencoderTiny":
            raise ValueError("AutoencoderTiny has a deterministic encoder: sample=True is not available")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype}")
        if dtype == torch.float16 and self.device.type != "cuda":
            raise ValueError("float16 needs a CUDA device; use float32 or bfloat16 on CPU")
        self.vae = vae.to(self.device).eval().requires_grad_(False)
        if dtype != torch.float32:
            self.vae.to(dtype)
        self.dtype = dtype
        self.sample = sample
        self.generator = torch.Generator(self.device).manual_seed(seed) if sample else None
        self.tile_size = tile_size
        if tile_size is not None:
            if tile_size < factor or tile_size % factor:
                raise ValueError(f"tile_size must be a positive multiple of the factor {factor}, got {tile_size}")
            self.vae.enable_tiling()
            self.vae.tile_sample_min_size = tile_size
            self.vae.tile_latent_min_size = tile_size // factor
            if class_name == "AutoencoderTiny":
                # diffusers derives this from out_channels; the true factor comes from the encoder blocks
                self.vae.spatial_scale_factor = factor

    def _encode(self, images: torch.Tensor, generator: Generators) -> torch.Tensor:
        output = self.vae.encode((images * 2.0 - 1.0).to(self.dtype))
        if not hasattr(output, "latent_dist"):
            return output.latents
        posterior = output.latent_dist
        if self.sample:
            return posterior.sample(generator=generator if generator is not None else self.generator)
        return posterior.mean

    def _decode(self, latents: torch.Tensor) -> torch.Tensor:
        return (self.vae.decode(latents.to(self.dtype)).sample.float() + 1.0) / 2.0


def _vae_config_in(folder: Path) -> tuple[str, str | None] | None:
    """``(class name, subfolder)`` of the VAE stored in ``folder`` (itself or ``vae/``), else None."""
    for subfolder in (None, "vae"):
        config = folder / subfolder / "config.json" if subfolder else folder / "config.json"
        if config.is_file():
            class_name = json.loads(config.read_text()).get("_class_name")
            if class_name in _VAE_CLASSES:
                return class_name, subfolder
    return None


def weights_fingerprint(folder: Path) -> str | None:
    """First 16 hex digits of the SHA-256 of the weight files diffusers loads from ``folder``.

    Hashes ``diffusion_pytorch_model*.safetensors`` (else ``*.bin``) in name order; None if
    there are none. Two folders holding the same weights get the same fingerprint.
    """
    files = sorted(folder.glob("diffusion_pytorch_model*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        return None
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def _vae_class(class_name: str):
    import diffusers

    return getattr(diffusers, class_name)


class _TinyConfigNotice(logging.Filter):
    """Drops one false alarm: ``AutoencoderTiny`` records ``block_out_channels`` in its own
    config, then warns on every load that the key is unexpected (diffusers 0.42)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "'block_out_channels'" not in record.getMessage()


def _from_pretrained(class_name: str, *args, **kwargs):
    """``from_pretrained`` of a diffusers VAE class, without the AutoencoderTiny false alarm."""
    logger = logging.getLogger("diffusers.configuration_utils")
    notice = _TinyConfigNotice()
    if class_name == "AutoencoderTiny":
        logger.addFilter(notice)
    try:
        return _vae_class(class_name).from_pretrained(*args, **kwargs)
    finally:
        logger.removeFilter(notice)


def _load_folder(folder: Path):
    found = _vae_config_in(folder)
    if found is None:
        raise ValueError(
            f"{folder} holds no diffusers {' or '.join(_VAE_CLASSES)}: expected a config.json with "
            f"_class_name in {_VAE_CLASSES} in the folder or in its vae/ subfolder"
        )
    class_name, subfolder = found
    vae = _from_pretrained(class_name, folder, subfolder=subfolder, low_cpu_mem_usage=False)
    return vae, weights_fingerprint(folder / subfolder if subfolder else folder)


def _missing_hub_message(repo_id: str, cache: str) -> str:
    return (
        f"VAE {repo_id!r} is neither a local folder nor in the Hugging Face cache at {cache} "
        f"(dotlib never downloads). On a machine with internet access run "
        f"`hf download {repo_id}` (huggingface_hub's command; or set HF_HUB_CACHE / HF_HOME to a cache that "
        f"holds it), or pass a local save_pretrained folder; the VAE shipped with dotlib is "
        f"encoder='embedded'."
    )


def _load_hub(repo_id: str):
    from huggingface_hub import constants, try_to_load_from_cache

    cache = constants.HF_HUB_CACHE
    for subfolder in (None, "vae"):
        filename = f"{subfolder}/config.json" if subfolder else "config.json"
        config = try_to_load_from_cache(repo_id, filename, cache_dir=cache)
        if not isinstance(config, str):
            continue
        class_name = json.loads(Path(config).read_text()).get("_class_name")
        if class_name not in _VAE_CLASSES:
            continue
        try:
            vae = _from_pretrained(class_name, repo_id, subfolder=subfolder, cache_dir=cache,
                                   local_files_only=True, low_cpu_mem_usage=False)
        except (OSError, ValueError) as error:
            raise FileNotFoundError(_missing_hub_message(repo_id, cache)) from error
        return vae, weights_fingerprint(Path(config).parent)
    raise FileNotFoundError(_missing_hub_message(repo_id, cache))


def load_encoder(spec: str | Path = "embedded", device: str | torch.device = "cpu", sample: bool = False,
                 dtype: torch.dtype = torch.float32, tile_size: int | None = None,
                 seed: int = 0) -> Encoder:
    """The encoder named by ``spec``: ``"pixel"``, ``"embedded"``, a local folder or a HF id.

    The encoder's ``name`` is ``spec`` itself, except for folders (their resolved path).
    ``sample``, ``dtype``, ``tile_size`` and ``seed`` configure VAEs (see
    :class:`DiffusersEncoder`); the pixel encoder accepts ``tile_size`` (a no-op) but not ``sample``.
    """
    if isinstance(spec, Encoder):
        raise TypeError("load_encoder takes a spec (str or path); pass an Encoder object directly "
                        "where one is accepted")
    device = check_device(device)
    options = dict(device=device, sample=sample, dtype=dtype, tile_size=tile_size, seed=seed)
    if spec == "pixel":
        if sample:
            raise ValueError("the pixel encoder is deterministic (the identity up to the [-1, 1] "
                             "scaling): sample=True is not available")
        return PixelEncoder(device)
    if spec == "embedded":
        if not (EMBEDDED_VAE_DIR / "config.json").is_file():
            raise FileNotFoundError(
                f"the embedded VAE is missing at {EMBEDDED_VAE_DIR} (config.json and "
                "diffusion_pytorch_model.safetensors); it ships with dotlib, so reinstall the package, "
                "or retrain it with notebooks/00_train_embedded_vae.ipynb (make train-embedded)"
            )
        vae, fingerprint = _load_folder(EMBEDDED_VAE_DIR)
        return DiffusersEncoder(vae, "embedded", fingerprint=fingerprint, **options)
    folder = Path(spec).expanduser()
    if folder.is_dir():
        vae, fingerprint = _load_folder(folder)
        return DiffusersEncoder(vae, str(folder.resolve()), fingerprint=fingerprint, **options)
    spec = str(spec)
    if spec.count("/") > 1 or spec.startswith((".", "/", "~")):
        raise FileNotFoundError(f"no VAE folder at {folder} (and {spec!r} is not a Hugging Face id)")
    vae, fingerprint = _load_hub(spec)
    return DiffusersEncoder(vae, spec, fingerprint=fingerprint, **options)
