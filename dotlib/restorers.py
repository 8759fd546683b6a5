"""Restorers: a degraded batch ``y`` -> a restored batch ``x*`` at the clean size, in [0, 1].

Every restorer is built for one task (``dotlib.degradations.TASKS``) by
``get_restorer(name, task, device)`` and called on ``y [B, 3, h, w]`` (any float
values: AWGN observations are unclipped); it returns ``float32 [B, 3, h*s, w*s]`` in
[0, 1] on its device, ``s`` being the task's scale. Registered names (``RESTORERS``):

``bicubic``, ``lanczos``  upsampling only (the identity, clipped, for scale-1 tasks);
``nlm``                   non-local means (Buades et al. 2005; ``skimage``) in the degraded
                          domain, then bicubic upsampling;
``global_nlm``            the authors' non-local means (:mod:`dotlib.global_nlm`: every pixel of
                          a 32-px tile weighs in), for the AWGN task;
``tv``                    total-variation denoising/deblocking (Chambolle 2004; ``skimage``),
                          then bicubic upsampling;
``mse_net``               the small MSE-trained CNN of the task, committed under
                          ``dotlib/weights/restorers/<task>.safetensors`` (or ``checkpoint=``);
``spandrel``              any published model spandrel recognises, from ``checkpoint=`` (or the
                          name ``"spandrel:<path>"``), run on overlapping blended tiles;
``swinir``, ``swin2sr``, ``esrgan``, ``restormer``
                          the same loader, with the official file to download named in errors;
``folder:<path>``         precomputed outputs read from image files (:class:`FolderRestorer`),
                          as the authors did for DDRM; called by file names, not on tensors.

The classical denoisers work where their noise model holds: white noise (or JPEG error)
lives in the degraded domain, so for the ``sr4_*`` tasks they denoise the small image,
then upsample. Their strength comes from ``Degradation.artifact``: the known σ of AWGN,
the typical JPEG error, or, for noiseless inputs, a wavelet estimate (``estimate_noise_sigma``).
"""

from __future__ import annotations

import json
import math
import warnings
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from .degradations import Degradation, get_degradation
from .global_nlm import global_nlm
from .paths import WEIGHTS_DIR
from .validate import check_device

__all__ = [
    "CLASSICAL_RESTORERS",
    "PUBLISHED_CHECKPOINTS",
    "RESTORERS",
    "ClassicalRestorer",
    "FolderRestorer",
    "GlobalNLMRestorer",
    "MSENetRestorer",
    "ResidualShuffleCNN",
    "Restorer",
    "SpandrelRestorer",
    "bicubic_upsample",
    "blur_chroma",
    "estimate_noise_sigma",
    "gaussian_blur",
    "get_restorer",
    "lanczos_upsample",
    "load_mse_net",
    "mse_net_path",
    "save_mse_net",
    "tiled_apply",
]

#: NLM filter strength ``h`` and TV weight as multiples of the artifact σ, per artifact kind.
#: Chosen on 12 crops 128² of the ``train`` photos (never on evaluation photos): for
#: AWGN σ = 50/255, h = 0.6σ (26.4 dB against 25.8 dB at skimage's suggested 0.8σ) and
#: TV weight 1.5σ; for JPEG q = 10 (σ = 0.052), h = 0.8σ and TV weight 0.6σ (27.7 dB from 27.0).
NLM_H_FACTOR: dict[str, float] = {"noise": 0.6, "jpeg": 0.8}
TV_WEIGHT_FACTOR: dict[str, float] = {"noise": 1.5, "jpeg": 0.6}

#: Official checkpoints of the published models, per task, and where to get them.
PUBLISHED_CHECKPOINTS: dict[str, dict] = {
    "swinir": {
        "source": "https://github.com/JingyunLiang/SwinIR/releases/tag/v0.0",
        "files": {
            "sr4": "001_classicalSR_DF2K_s64w8_SwinIR-M_x4.pth",
            "jpeg10": "006_colorCAR_DFWB_s126w7_SwinIR-M_jpeg10.pth",
            "awgn50": "005_colorDN_DFWB_s128w8_SwinIR-M_noise50.pth",
        },
    },
    "swin2sr": {
        "source": "https://github.com/mv-lab/swin2sr/releases/tag/v0.0.1",
        "files": {
            "sr4": "Swin2SR_ClassicalSR_X4_64.pth",
            "sr4_jpeg10": "Swin2SR_CompressedSR_X4_48.pth",
        },
    },
    "esrgan": {
        "source": "https://github.com/xinntao/ESRGAN (README: pretrained models)",
        "files": {"sr4": "RRDB_ESRGAN_x4.pth"},
    },
    "restormer": {
        "source": "https://github.com/swz30/Restormer/releases/tag/v1.0 "
                  "(needs `pip install spandrel_extra_arches`, then "
                  "`import spandrel_extra_arches; spandrel_extra_arches.install()`)",
        "files": {"awgn50": "gaussian_color_denoising_sigma50.pth"},
    },
}


# ----------------------------------------------------------------------------- helpers


def bicubic_upsample(y: torch.Tensor, scale: int) -> torch.Tensor:
    """Bicubic upsampling ``[B, C, h, w] -> [B, C, h*scale, w*scale]`` (no clipping)."""
    if scale == 1:
        return y
    return torch.nn.functional.interpolate(y, scale_factor=scale, mode="bicubic", align_corners=False)


def gaussian_blur(y: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[B, C, h, w]`` with std ``sigma`` pixels (radius ceil(3 sigma),
    replicate padding); ``sigma = 0`` returns ``y``."""
    if sigma == 0:
        return y
    radius = math.ceil(3 * sigma)
    offsets = torch.arange(-radius, radius + 1, dtype=y.dtype, device=y.device)
    kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = y.shape[1]
    out = torch.nn.functional.pad(y, (radius, radius, radius, radius), mode="replicate")
    out = torch.nn.functional.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return torch.nn.functional.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


#: RGB -> YCbCr (JFIF / ITU-R BT.601 full range, the transform JPEG codes in), without offsets.
_YCBCR = torch.tensor([[0.299, 0.587, 0.114],
                       [-0.168736, -0.331264, 0.5],
                       [0.5, -0.418688, -0.081312]], dtype=torch.float64)


def blur_chroma(y: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur (std ``sigma`` pixels) of the Cb and Cr channels of RGB ``[B, 3, h, w]``;
    luma is kept. ``sigma = 0`` returns ``y``; grey images are unchanged."""
    if sigma == 0:
        return y
    forward = _YCBCR.to(y.device, y.dtype)
    ycc = torch.einsum("ij,bjhw->bihw", forward, y)
    ycc = torch.cat([ycc[:, :1], gaussian_blur(ycc[:, 1:], sigma)], dim=1)
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_YCBCR).to(y.device, y.dtype), ycc)


def lanczos_upsample(y: torch.Tensor, scale: int) -> torch.Tensor:
    """Lanczos-3 upsampling (Pillow, per channel in float) ``[B, C, h, w] -> [B, C, h*s, w*s]``."""
    if scale == 1:
        return y
    height, width = y.shape[-2:]
    array = y.detach().to("cpu", torch.float32).numpy()
    out = np.empty((*array.shape[:2], height * scale, width * scale), dtype=np.float32)
    for b in range(array.shape[0]):
        for c in range(array.shape[1]):
            channel = Image.fromarray(array[b, c], mode="F")
            out[b, c] = np.asarray(channel.resize((width * scale, height * scale), Image.LANCZOS))
    return torch.from_numpy(out).to(y.device)


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Noise σ of an ``[H, W, C]`` image from the finest Haar diagonal band (Donoho & Johnstone 1994).

    σ ≈ median(|HH|) / 0.6745, HH the orthonormal Haar diagonal coefficients, averaged
    over channels. Blind to JPEG error (its finest band is mostly quantised away).
    """
    height, width = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    if height == 0 or width == 0:
        return 0.0
    x = image[:height, :width]
    diagonal = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    return float(np.mean(np.median(np.abs(diagonal), axis=(0, 1)) / 0.6745))


#: Tile side (input pixels) of a whole-image restorer whose batch does not fit in device memory.
FALLBACK_TILE = 256


def tiled_apply(fn: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor, scale: int,
                tile: int, overlap: int) -> torch.Tensor:
    """Apply ``fn`` (``[1, C, t, t'] -> [1, C', t*scale, t'*scale]``) on overlapping tiles of ``y``.

    ``y`` is ``[B, C, h, w]``; tiles are ``tile`` input pixels wide, spread evenly so that
    neighbours overlap by at least ``overlap``. Outputs are blended with weights that ramp
    linearly over ``overlap`` pixels from each tile edge (normalised by their sum), so a
    tile's edge pixels, where a network sees padding, weigh little and seams do not show. Images within one tile are passed whole.
    """
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    height, width = y.shape[-2:]
    outputs = []
    for image in y:
        image = image[None]
        if height <= tile and width <= tile:
            outputs.append(fn(image))
            continue

        def starts(size: int) -> list[int]:
            """Evenly spread tile origins whose overlaps are all at least ``overlap``."""
            if size <= tile:
                return [0]
            count = math.ceil((size - overlap) / (tile - overlap))
            return [round(index * (size - tile) / (count - 1)) for index in range(count)]

        out = weight_sum = None
        for top in starts(height):
            for left in starts(width):
                piece = fn(image[..., top:top + tile, left:left + tile])
                if out is None:
                    out = piece.new_zeros(1, piece.shape[1], height * scale, width * scale)
                    weight_sum = piece.new_zeros(1, 1, height * scale, width * scale)
                ramp_h = _ramp(piece.shape[-2], overlap * scale, piece)
                ramp_w = _ramp(piece.shape[-1], overlap * scale, piece)
                weights = ramp_h[:, None] * ramp_w[None, :]
                rows = slice(top * scale, top * scale + piece.shape[-2])
                cols = slice(left * scale, left * scale + piece.shape[-1])
                out[..., rows, cols] += piece * weights
                weight_sum[..., rows, cols] += weights
        outputs.append(out / weight_sum)
    return torch.cat(outputs)


def _ramp(length: int, width: int, like: torch.Tensor) -> torch.Tensor:
    """Weights ``[length]``: rising from ~0 to 1 over ``width`` samples at both ends (all > 0)."""
    position = torch.arange(length, dtype=like.dtype, device=like.device) + 0.5
    if width == 0:
        return torch.ones_like(position)
    return torch.minimum(torch.ones_like(position),
                         torch.minimum(position, length - position) / width)


# ----------------------------------------------------------------------------- interface


class Restorer(ABC):
    """Base class: validates ``y``, moves it to ``device``, calls ``restore``, clips to [0, 1]
    (unless ``clip`` is set False: the authors keep x* unclipped where they encode and mix it)."""

    def __init__(self, name: str, task: str, device: str | torch.device = "cpu"):
        self.clip = True
        self.name = name
        self.task = task
        self.degradation: Degradation = get_degradation(task)
        self.device = torch.device(device)

    @property
    def scale(self) -> int:
        return self.degradation.scale

    @abstractmethod
    def restore(self, y: torch.Tensor) -> torch.Tensor:
        """``[B, 3, h, w]`` float32 on ``self.device`` -> ``[B, 3, h*s, w*s]`` (not yet clipped)."""

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        if not isinstance(y, torch.Tensor) or not y.is_floating_point():
            raise TypeError(f"y must be a floating-point torch.Tensor, got {type(y).__name__}")
        if y.ndim != 4 or y.shape[1] != 3 or y.shape[0] == 0 or min(y.shape[-2:]) < 1:
            raise ValueError(f"y must be a non-empty batch [B, 3, h, w], got shape {tuple(y.shape)}")
        y = y.to(self.device, torch.float32)
        with torch.no_grad():
            x = self.restore(y)
        expected = (y.shape[0], 3, y.shape[2] * self.scale, y.shape[3] * self.scale)
        if tuple(x.shape) != expected:
            raise RuntimeError(f"restorer {self.name!r} returned {tuple(x.shape)}, expected {expected}")
        x = x.to(self.device, torch.float32)
        return x.clamp(0.0, 1.0) if self.clip else x

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, task={self.task!r}, device={str(self.device)!r})"


class ClassicalRestorer(Restorer):
    """Upsampling (``bicubic``/``lanczos``) or a denoiser (``nlm``/``tv``) followed by bicubic."""

    def __init__(self, name: str, task: str, device: str | torch.device = "cpu",
                 sigma: float | None = None):
        if name not in CLASSICAL_RESTORERS:
            raise ValueError(f"unknown classical restorer {name!r}; known: {', '.join(CLASSICAL_RESTORERS)}")
        super().__init__(name, task, device)
        artifact = self.degradation.artifact
        self.kind = artifact[0] if artifact else "noise"
        #: Artifact σ in intensity units; None means estimated per image (noiseless tasks).
        self.sigma = sigma if sigma is not None else (artifact[1] if artifact else None)

    def restore(self, y: torch.Tensor) -> torch.Tensor:
        if self.name == "lanczos":
            return lanczos_upsample(y, self.scale)
        if self.name in ("nlm", "tv"):
            y = torch.stack([self._denoise(image) for image in y])
        return bicubic_upsample(y, self.scale)

    def _denoise(self, image: torch.Tensor) -> torch.Tensor:
        from skimage.restoration import denoise_nl_means, denoise_tv_chambolle

        array = image.detach().to("cpu", torch.float64).permute(1, 2, 0).numpy()
        sigma = self.sigma if self.sigma is not None else estimate_noise_sigma(array)
        if sigma <= 1e-6:
            return image  # nothing to remove
        if self.name == "nlm":
            out = denoise_nl_means(array, patch_size=5, patch_distance=6, h=NLM_H_FACTOR[self.kind] * sigma,
                                   sigma=sigma, fast_mode=True, channel_axis=-1)
        else:
            out = denoise_tv_chambolle(array, weight=TV_WEIGHT_FACTOR[self.kind] * sigma, channel_axis=-1)
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)).permute(2, 0, 1).to(image.device)


CLASSICAL_RESTORERS: tuple[str, ...] = ("bicubic", "lanczos", "nlm", "tv")


# ----------------------------------------------------------------------------- MSE networks

MSE_NET_ARCHITECTURE = "residual_shuffle_cnn"


class ResidualShuffleCNN(torch.nn.Module):
    """``x = up_s(C_c G_b * y) + (1 - G_r) PixelShuffle_f(tail(body(head(PixelUnshuffle_{f/s}(y - 1/2)))))``.

    A small residual CNN. The base ``up_s(C_c G_b * y)`` is bicubic upsampling by the
    task scale ``s`` of ``y`` blurred by a Gaussian of std ``b = base_blur`` pixels, then
    with its chroma (YCbCr) blurred by a Gaussian of std ``c = chroma_blur`` (0: no blur).
    These are fixed linear pre-filters: for noisy tasks a denoiser, so the network only
    adds back the detail it removed, which trains far faster than predicting the noise
    from ``y``; for JPEG a smoothing of the coarsely quantised 4:2:0 chroma, which the
    network barely learns from training photos that are half grey.
    The network runs at 1/``body_factor`` (= f) of the clean resolution: for SR
    (s = f = 4) on the low-resolution input itself (as ESPCN, Shi et al. 2016), for
    scale-1 tasks (f = 2) on 2x2 space-to-depth blocks (as FFDNet, Zhang et al. 2018),
    which doubles the receptive field at a quarter of the cost. ``head`` and ``tail``
    are 3x3 convolutions; the body is ``depth - 2`` residual units ``h + conv(relu(h)) / 2``
    of ``channels`` features (EDSR-style scaled residuals, Lim et al. 2017), so
    ``depth`` convolutions in all. The tail predicts the residual as ``3 f^2`` channels
    that a pixel shuffle puts back at full size; it starts at zero, so training starts
    from the base. With ``residual_lowcut = r > 0`` the residual loses its Gaussian
    low-pass of std ``r`` pixels (``R - G_r * R``): the observation fixes the coarse
    content and colours, and a network trained on a dozen photos would otherwise learn
    their colour cast (seen on the first training run: dark green turned blue).
    """

    def __init__(self, scale: int, body_factor: int, channels: int = 48, depth: int = 8,
                 base_blur: float = 0.0, chroma_blur: float = 0.0, residual_lowcut: float = 0.0):
        super().__init__()
        if scale < 1 or body_factor % scale:
            raise ValueError(f"body_factor ({body_factor}) must be a multiple of scale ({scale})")
        if depth < 2 or channels < 1 or min(base_blur, chroma_blur, residual_lowcut) < 0:
            raise ValueError(f"need depth >= 2, channels >= 1, blurs >= 0; got depth={depth}, "
                             f"channels={channels}, base_blur={base_blur}, chroma_blur={chroma_blur}, "
                             f"residual_lowcut={residual_lowcut}")
        self.config = dict(scale=scale, body_factor=body_factor, channels=channels, depth=depth,
                           base_blur=float(base_blur), chroma_blur=float(chroma_blur),
                           residual_lowcut=float(residual_lowcut))
        self.scale, self.body_factor = scale, body_factor
        self.base_blur, self.chroma_blur = float(base_blur), float(chroma_blur)
        self.residual_lowcut = float(residual_lowcut)
        self.unshuffle = body_factor // scale
        self.head = torch.nn.Conv2d(3 * self.unshuffle ** 2, channels, 3, padding=1)
        self.units = torch.nn.ModuleList(torch.nn.Conv2d(channels, channels, 3, padding=1)
                                         for _ in range(depth - 2))
        self.tail = torch.nn.Conv2d(channels, 3 * body_factor ** 2, 3, padding=1)
        torch.nn.init.zeros_(self.tail.weight)
        torch.nn.init.zeros_(self.tail.bias)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """``[B, 3, h, w] -> [B, 3, h*scale, w*scale]`` (unclipped)."""
        height, width = y.shape[-2:]
        u = self.unshuffle
        pad_h, pad_w = (-height) % u, (-width) % u
        padded = torch.nn.functional.pad(y, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else y
        features = self.head(torch.nn.functional.pixel_unshuffle(padded - 0.5, u))
        for conv in self.units:
            features = features + 0.5 * conv(torch.relu(features))
        residual = torch.nn.functional.pixel_shuffle(self.tail(torch.relu(features)), self.body_factor)
        residual = residual[..., : height * self.scale, : width * self.scale]
        if self.residual_lowcut > 0:
            residual = residual - gaussian_blur(residual, self.residual_lowcut)
        base = bicubic_upsample(blur_chroma(gaussian_blur(y, self.base_blur), self.chroma_blur), self.scale)
        return base + residual


def mse_net_path(task: str) -> Path:
    """Where the committed MSE net of ``task`` lives: ``dotlib/weights/restorers/<task>.safetensors``."""
    return WEIGHTS_DIR / "restorers" / f"{task}.safetensors"


def save_mse_net(net: ResidualShuffleCNN, path: str | Path, task: str, **metadata: str) -> Path:
    """Write ``net`` as safetensors with metadata ``task``, ``architecture``, ``config`` (+ extra strings)."""
    from safetensors.torch import save_file

    from .io import atomic_path

    path = Path(path)
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in net.state_dict().items()}
    header = {"task": task, "architecture": MSE_NET_ARCHITECTURE, "config": json.dumps(net.config),
              **{key: str(value) for key, value in metadata.items()}}
    with atomic_path(path) as temporary:  # never a half-written checkpoint
        save_file(tensors, str(temporary), metadata=header)
    return path


def load_mse_net(path: str | Path, task: str, device: str | torch.device = "cpu") -> ResidualShuffleCNN:
    """Load a net saved by :func:`save_mse_net`, checking that it was trained for ``task``."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no MSE-net weights for task {task!r} at {path}; they are committed under "
            f"dotlib/weights/restorers/ and are produced by notebooks/00_train_embedded_restorers.ipynb "
            f"(dotlib.training.train_restorer)"
        )
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        metadata = handle.metadata() or {}
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    if metadata.get("architecture") != MSE_NET_ARCHITECTURE:
        raise ValueError(f"{path} is not an MSE-net checkpoint (architecture "
                         f"{metadata.get('architecture')!r}, expected {MSE_NET_ARCHITECTURE!r})")
    if metadata.get("task") != task:
        raise ValueError(
            f"checkpoint {path} was trained for task {metadata.get('task')!r}, not {task!r}; "
            f"use {mse_net_path(task)} or train one with dotlib.training.train_restorer(task={task!r})"
        )
    net = ResidualShuffleCNN(**json.loads(metadata["config"]))
    if net.scale != get_degradation(task).scale:
        raise ValueError(f"checkpoint {path} upsamples by {net.scale}, task {task!r} needs {get_degradation(task).scale}")
    net.load_state_dict(tensors)
    return net.to(device).eval()


class MSENetRestorer(Restorer):
    """The task's :class:`ResidualShuffleCNN`, one image at a time (memory stays small)."""

    def __init__(self, task: str, device: str | torch.device = "cpu", checkpoint: str | Path | None = None,
                 name: str = "mse_net"):
        super().__init__(name, task, device)
        self.checkpoint = Path(checkpoint) if checkpoint is not None else mse_net_path(task)
        self.net = load_mse_net(self.checkpoint, task, self.device)

    def restore(self, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.net(image[None]) for image in y])


# ----------------------------------------------------------------------------- spandrel


class SpandrelRestorer(Restorer):
    """A published model loaded by spandrel from a local checkpoint, run on blended tiles.

    ``tile`` and ``overlap`` are in input pixels; ``tile=None`` runs each batch whole, as the
    authors do (tiling changes every pixel of a model whose attention spans the image, such as
    Restormer), and falls back to :data:`FALLBACK_TILE`-px tiles only when the device runs out of
    memory, with a warning; :attr:`fallbacks` counts those batches. The input is passed as is (AWGN
    observations unclipped, as in the official denoising evaluations); the output is clipped.
    """

    def __init__(self, checkpoint: str | Path | None, task: str, device: str | torch.device = "cpu",
                 name: str = "spandrel", tile: int | None = 256, overlap: int = 16):
        super().__init__(name, task, device)
        model = name if name in PUBLISHED_CHECKPOINTS else None
        if checkpoint is None:
            raise ValueError(f"restorer {name!r} loads a local checkpoint: pass checkpoint=<path>. "
                             + _download_hint(model, task))
        self.checkpoint = Path(checkpoint).expanduser()
        if not self.checkpoint.is_file():
            raise FileNotFoundError(f"no checkpoint file at {self.checkpoint}. " + _download_hint(model, task))
        self.tile, self.overlap, self.fallbacks = tile, overlap, 0
        self.descriptor = _load_spandrel(self.checkpoint, self.device)
        if self.descriptor.scale != self.scale:
            raise ValueError(
                f"checkpoint {self.checkpoint.name} is a x{self.descriptor.scale} "
                f"{self.descriptor.architecture.name} model, but task {task!r} needs x{self.scale}. "
                + _download_hint(model, task)
            )
        if self.descriptor.input_channels != 3 or self.descriptor.output_channels != 3:
            raise ValueError(
                f"checkpoint {self.checkpoint.name} maps {self.descriptor.input_channels} to "
                f"{self.descriptor.output_channels} channels; the study needs RGB to RGB"
            )

    def restore(self, y: torch.Tensor) -> torch.Tensor:
        if self.tile is not None:
            return tiled_apply(self.descriptor, y, self.scale, self.tile, self.overlap)
        try:
            return self.descriptor(y)   # the whole batch at once
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            self.fallbacks += 1
            warnings.warn(f"{self.name}: a batch of {y.shape[0]} images of {y.shape[-1]}x{y.shape[-2]} does not fit "
                          f"in device memory whole; restored on {FALLBACK_TILE}-px tiles instead (reported)")
            return tiled_apply(self.descriptor, y, self.scale, FALLBACK_TILE, self.overlap)


_EXTRA_ARCHES_INSTALLED = False


def _install_extra_arches() -> None:
    """Register ``spandrel_extra_arches`` (Restormer and other non-commercial architectures) in
    spandrel's main registry, once per process; architectures already there are kept."""
    global _EXTRA_ARCHES_INSTALLED
    if not _EXTRA_ARCHES_INSTALLED:
        import warnings

        with warnings.catch_warnings():  # its CodeFormer scripts a function at import (torch 2.14 warns)
            warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
            import spandrel_extra_arches

        spandrel_extra_arches.install(ignore_duplicates=True)
        _EXTRA_ARCHES_INSTALLED = True


def _load_spandrel(path: Path, device: torch.device):
    """``spandrel.ModelLoader(device).load_from_file(path)`` (with spandrel_extra_arches
    installed), checked to be an image-to-image model."""
    import spandrel

    _install_extra_arches()
    try:
        descriptor = spandrel.ModelLoader(device=device).load_from_file(path)
    except spandrel.UnsupportedModelError as error:
        known = ", ".join(sorted(str(support.architecture.id) for support in spandrel.MAIN_REGISTRY))
        raise ValueError(
            f"the architecture of {path} is unknown to spandrel {spandrel.__version__} and "
            f"spandrel_extra_arches (they support: {known}); use a checkpoint of one of these, or run "
            f"the model elsewhere and read its outputs with restorer=\"folder:<path>\""
        ) from error
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise TypeError(f"{path} holds a {type(descriptor).__name__}, not an image-to-image model")
    return descriptor.eval()


def _download_hint(model: str | None, task: str) -> str:
    """Which official file to download for ``model`` on ``task`` (or what any model must satisfy)."""
    scale = get_degradation(task).scale
    if model is not None:
        entry = PUBLISHED_CHECKPOINTS[model]
        if task in entry["files"]:
            return f"Download {entry['files'][task]} for task {task!r} from {entry['source']}."
        known = ", ".join(f"{t}: {f}" for t, f in entry["files"].items())
        return (f"No official {model} checkpoint is known for task {task!r} (known: {known}); "
                f"any x{scale} RGB model spandrel recognises works through name='spandrel'.")
    suggestions = "; ".join(
        f"{m}: {e['files'][task]} ({e['source']})" for m, e in PUBLISHED_CHECKPOINTS.items() if task in e["files"]
    )
    return (f"Task {task!r} needs a x{scale} RGB model that spandrel recognises"
            + (f", e.g. {suggestions}." if suggestions else "."))


# ----------------------------------------------------------------------------- folder


class FolderRestorer(Restorer):
    """Precomputed restorations: image files in ``folder``, matched to inputs by file name.

    For restorers that cannot run here (the authors read DDRM's outputs from disk the same
    way). ``restore_files(names)`` returns the outputs of the inputs named ``names`` (file
    names or paths; only the name counts): the file of the same name anywhere under
    ``folder``, else the one of the same stem (``x.jpg`` -> ``x.png``). Calling it on a
    tensor raises ``TypeError``: a tensor carries no file name, so a runner over an image
    folder must pass the names of its files instead. Outputs are ``float32 [B, 3, H, W]``
    in [0, 1] on ``device`` (grey and RGBA converted as :func:`dotlib.data.load_image`).
    """

    def __init__(self, folder: str | Path, task: str, device: str | torch.device = "cpu"):
        from .data import MatchedFolder

        super().__init__(f"folder:{folder}", task, device)
        self.outputs = MatchedFolder(folder, role="restorer folder", item="output")
        self.folder, self.files = self.outputs.folder, self.outputs.files

    def check_outputs(self, names: list[str]) -> None:
        """``FileNotFoundError`` unless every input of ``names`` has its output here (before any work)."""
        self.outputs.check(names)

    def find(self, name: str | Path) -> Path:
        """The output file of the input named ``name``: same file name, else same stem (unique)."""
        return self.outputs.find(name)

    def restore_files(self, names: list[str], size: tuple[int, int] | None = None) -> torch.Tensor:
        """Outputs of the inputs ``names``: ``float32 [B, 3, H, W]``; all of one size (``size`` if given)."""
        from .data import load_image

        if isinstance(names, (str, Path)) or not names:
            raise ValueError(f"names must be a non-empty list of file names, got {names!r}")
        images = [load_image(self.find(name)) for name in names]
        sizes = {tuple(image.shape[-2:]) for image in images} | ({tuple(size)} if size is not None else set())
        if len(sizes) > 1:
            found = ", ".join(f"{n}: {tuple(im.shape[-2:])}" for n, im in zip(names, images))
            raise ValueError(f"outputs in {self.folder} differ in size" + (f" from {tuple(size)}" if size else "")
                             + f" ({found}); ask for one size at a time")
        return torch.stack(images).to(self.device, torch.float32)

    def restore(self, y: torch.Tensor) -> torch.Tensor:
        raise TypeError(f"restorer {self.name!r} reads precomputed outputs from files matched by name, so it "
                        f"cannot restore a tensor; call restore_files([file names of the inputs]) instead")

    def __call__(self, y: torch.Tensor) -> torch.Tensor:
        return self.restore(y)


class GlobalNLMRestorer(Restorer):
    """The authors' non-local means (:func:`dotlib.global_nlm.global_nlm`) for a pure-noise task:
    σ is the task's noise level unless ``sigma`` (intensity units) is given."""

    def __init__(self, task: str, device: str | torch.device = "cpu", sigma: float | None = None):
        super().__init__("global_nlm", task, device)
        if self.scale != 1 or self.degradation.artifact is None or self.degradation.artifact[0] != "noise":
            raise ValueError(f"global_nlm denoises white noise at the clean size (the authors' color_dn task); "
                             f"task {task!r} is not one: use awgn50")
        self.sigma = float(sigma) if sigma is not None else self.degradation.noise_sigma

    def restore(self, y: torch.Tensor) -> torch.Tensor:
        return global_nlm(y, self.sigma)


# ----------------------------------------------------------------------------- registry


def _classical(name: str) -> Callable[..., Restorer]:
    def build(task: str, device: str | torch.device = "cpu", sigma: float | None = None) -> Restorer:
        return ClassicalRestorer(name, task, device, sigma=sigma)
    return build


def _published(name: str) -> Callable[..., Restorer]:
    def build(task: str, device: str | torch.device = "cpu", checkpoint: str | Path | None = None,
              tile: int | None = 256, overlap: int = 16) -> Restorer:
        return SpandrelRestorer(checkpoint, task, device, name=name, tile=tile, overlap=overlap)
    return build


#: name -> factory ``(task, device, **options) -> Restorer``.
RESTORERS: dict[str, Callable[..., Restorer]] = {
    **{name: _classical(name) for name in CLASSICAL_RESTORERS},
    "global_nlm": lambda task, device="cpu", sigma=None: GlobalNLMRestorer(task, device, sigma),
    "mse_net": lambda task, device="cpu", checkpoint=None: MSENetRestorer(task, device, checkpoint),
    "spandrel": _published("spandrel"),
    **{name: _published(name) for name in PUBLISHED_CHECKPOINTS},
}


def get_restorer(name: str, task: str, device: str | torch.device = "cpu", **options) -> Restorer:
    """The restorer ``name`` for ``task`` on ``device``.

    ``name`` is a key of ``RESTORERS``, ``"spandrel:<path to checkpoint>"`` or
    ``"folder:<path to outputs>"`` (a :class:`FolderRestorer`, called with
    ``restore_files(names)``). Options: ``sigma`` (classical denoisers), ``checkpoint``
    (``mse_net`` and the spandrel models), ``tile``/``overlap`` (spandrel models).
    """
    get_degradation(task)  # unknown task: clear error before anything loads
    device = check_device(device)
    if isinstance(name, str) and name.startswith("folder:"):
        if options:
            raise TypeError(f"a folder restorer takes no options, got {sorted(options)}")
        return FolderRestorer(name.split(":", 1)[1], task, device)
    if isinstance(name, str) and name.startswith("spandrel:"):
        if "checkpoint" in options:
            raise ValueError("give the checkpoint either in the name 'spandrel:<path>' or as checkpoint=, not both")
        return RESTORERS["spandrel"](task, device, checkpoint=name.split(":", 1)[1], **options)
    if not isinstance(name, str) or name not in RESTORERS:
        raise ValueError(f"unknown restorer {name!r}; known: {', '.join(RESTORERS)}, 'spandrel:<path>' "
                         f"or 'folder:<path>'")
    return RESTORERS[name](task, device, **options)

