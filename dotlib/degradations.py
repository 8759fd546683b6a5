"""Degradations of the published tasks: ``y = D(x)``, deterministic by seed.

Each task of the paper (Adrai et al. 2023, Table 1) is one :class:`Degradation` in
``TASKS``: a chain of steps applied in order. Adding a task is adding one entry.

``sr4``         bicubic antialiased downsampling by 4 (``torch`` ``interpolate``, ``antialias=True``:
                Keys' cubic with a = -0.5 stretched 4x, as in MATLAB's ``imresize`` and
                Pillow; near the borders the truncated weights are renormalised where
                MATLAB mirrors the image), clipped to [0, 1];
``jpeg10``      JPEG at quality 10 through Pillow (its default 4:2:0 chroma subsampling);
``awgn50``      additive white Gaussian noise of standard deviation 50/255, NOT clipped: as in
                the denoising benchmarks of Restormer and SwinIR, ``y`` is the float
                ``x + n`` and may leave [0, 1]; restorers must accept that;
``sr4_jpeg10``  downsampling then JPEG (Swin2SR's compressed-SR task);
``sr4_awgn50``  downsampling then unclipped noise (DDRM's noisy SR task).

Images are ``float32 [B, 3, H, W]`` in [0, 1]; ``y`` is ``[B, 3, H/s, W/s]`` where ``s``
is the task's ``scale`` (4 for the ``sr4`` tasks, else 1). Noise is drawn on the CPU
from ``torch.Generator().manual_seed(seed)`` in batch order, so ``y`` is the same on
every device; image ``i`` of a batch gets the ``i``-th draw.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

__all__ = ["AWGN", "Degradation", "Downsample", "JPEG", "TASKS", "degrade", "get_degradation"]


@dataclass(frozen=True)
class Downsample:
    """Bicubic antialiased downsampling by an integer ``factor``, clipped to [0, 1]."""

    factor: int

    @property
    def scale(self) -> int:
        return self.factor

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        height, width = images.shape[-2:]
        size = (height // self.factor, width // self.factor)
        small = torch.nn.functional.interpolate(
            images, size=size, mode="bicubic", align_corners=False, antialias=True
        )
        return small.clamp(0.0, 1.0)


@dataclass(frozen=True)
class JPEG:
    """JPEG compression at ``quality`` (Pillow, 4:2:0), after rounding to 8 bits.

    ``error_sigma`` is the typical RMS error of this quality on natural photos, in
    intensity units; classical restorers use it as their denoising strength, since the
    wavelet noise estimate sees almost nothing in JPEG's flattened high frequencies.
    Measured on 12 crops of the ``train`` photos at quality 10: 0.052 on 128² crops,
    0.073 on 64² images downsampled x4 from 256² crops (more detail per pixel).
    """

    quality: int
    error_sigma: float

    @property
    def scale(self) -> int:
        return 1

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        out = torch.empty_like(images)
        for index, image in enumerate(images):
            array = (image.detach().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
            buffer = io.BytesIO()
            Image.fromarray(array.permute(1, 2, 0).cpu().numpy()).save(
                buffer, format="JPEG", quality=self.quality
            )
            buffer.seek(0)
            with Image.open(buffer) as decoded:
                decoded_array = np.asarray(decoded.convert("RGB"), dtype=np.float32) / 255.0
            out[index] = torch.from_numpy(decoded_array).permute(2, 0, 1).to(images.device)
        return out


@dataclass(frozen=True)
class AWGN:
    """Additive white Gaussian noise ``n ~ N(0, sigma^2)`` per pixel and channel, unclipped.

    ``sigma`` is in units of the [0, 1] intensity range (``50 / 255`` for ``awgn50``).
    """

    sigma: float

    @property
    def scale(self) -> int:
        return 1

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(images.shape, generator=generator, dtype=torch.float32)
        return images + self.sigma * noise.to(images.device, images.dtype)


@dataclass(frozen=True)
class Degradation:
    """A named chain of degradation steps; ``scale`` is the product of the steps' factors."""

    name: str
    description: str
    steps: tuple[Downsample | JPEG | AWGN, ...]

    @property
    def scale(self) -> int:
        scale = 1
        for step in self.steps:
            scale *= step.scale
        return scale

    @property
    def noise_sigma(self) -> float | None:
        """Standard deviation of the white noise in ``y`` (intensity units), or None."""
        sigmas = [step.sigma for step in self.steps if isinstance(step, AWGN)]
        return sigmas[-1] if sigmas else None

    @property
    def artifact(self) -> tuple[str, float] | None:
        """``("noise", sigma)`` or ``("jpeg", error_sigma)`` for the last artifact step, or None.

        Classical denoisers take their strength from it (see ``dotlib.restorers``).
        """
        for step in reversed(self.steps):
            if isinstance(step, AWGN):
                return "noise", step.sigma
            if isinstance(step, JPEG):
                return "jpeg", step.error_sigma
        return None

    def check_images(self, images: torch.Tensor) -> None:
        """Raise ``TypeError``/``ValueError`` unless ``images`` is a valid clean batch for this task."""
        if not isinstance(images, torch.Tensor) or not images.is_floating_point():
            raise TypeError(f"images must be a floating-point torch.Tensor, got {type(images).__name__}"
                            + (f" of dtype {images.dtype}" if isinstance(images, torch.Tensor) else ""))
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be a batch [B, 3, H, W], got shape {tuple(images.shape)}")
        height, width = images.shape[-2:]
        if height < self.scale or width < self.scale or height % self.scale or width % self.scale:
            raise ValueError(
                f"task {self.name!r} downsamples by {self.scale}: image height and width must be "
                f"positive multiples of {self.scale}, got {height}x{width}"
            )
        if images.numel() and (float(images.min()) < 0.0 or float(images.max()) > 1.0):
            raise ValueError(
                f"clean images must lie in [0, 1], got values in "
                f"[{float(images.min()):.4g}, {float(images.max()):.4g}]"
            )

    def __call__(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        """Degrade ``[B, 3, H, W]`` -> ``[B, 3, H/scale, W/scale]`` float32, on ``images.device``."""
        self.check_images(images)
        generator = torch.Generator().manual_seed(int(seed))
        y = images.to(torch.float32)
        for step in self.steps:
            y = step(y, generator)
        return y


TASKS: dict[str, Degradation] = {
    degradation.name: degradation
    for degradation in (
        Degradation("sr4", "bicubic antialiased downsampling x4", (Downsample(4),)),
        Degradation("jpeg10", "JPEG quality 10", (JPEG(10, error_sigma=0.052),)),
        Degradation("awgn50", "additive white Gaussian noise, sigma = 50/255, unclipped",
                    (AWGN(50.0 / 255.0),)),
        Degradation("sr4_jpeg10", "bicubic downsampling x4, then JPEG quality 10",
                    (Downsample(4), JPEG(10, error_sigma=0.073))),
        Degradation("sr4_awgn50", "bicubic downsampling x4, then noise sigma = 50/255, unclipped",
                    (Downsample(4), AWGN(50.0 / 255.0))),
    )
}


def get_degradation(task: str) -> Degradation:
    """The :class:`Degradation` registered under ``task``."""
    if not isinstance(task, str) or task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[task]


def degrade(task: str, images: torch.Tensor, seed: int) -> torch.Tensor:
    """``y = D_task(images)``: ``[B, 3, H, W]`` in [0, 1] -> ``[B, 3, H/s, W/s]`` float32."""
    return get_degradation(task)(images, seed)
