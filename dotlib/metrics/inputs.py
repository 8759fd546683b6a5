"""Checks of image batches and image sets given to the metrics (one place for their rules)."""

from __future__ import annotations

from typing import Sequence

import torch

from ..validate import check_values

__all__ = ["ImageSet", "as_list", "check_batch", "check_layout", "check_pair"]

ImageSet = torch.Tensor | Sequence[torch.Tensor]


def check_layout(images: torch.Tensor, name: str) -> None:
    """Raise unless ``images`` is a float tensor ``[B, C, H, W]`` (its values are not read)."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [B, C, H, W], got {type(images).__name__}")
    if images.ndim != 4:
        raise ValueError(f"{name} must have shape [B, C, H, W], got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"{name} must be a float tensor in [0, 1], got {images.dtype}")


def check_batch(images: torch.Tensor, name: str) -> None:
    """Raise unless ``images`` is a non-empty, finite float batch ``[B, C, H, W]`` in [0, 1]."""
    check_layout(images, name)
    check_values(images, name)


def check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    check_batch(a, "a")
    check_batch(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def as_list(images: ImageSet, name: str) -> list[torch.Tensor]:
    """A batch ``[B, 3, H, W]`` or a sequence of ``[3, H, W]`` images -> list of ``[3, H, W]``."""
    if isinstance(images, torch.Tensor):
        check_batch(images, name)
        items = list(images)
    else:
        items = list(images)
    if not items:
        raise ValueError(f"{name} holds no images")
    for index, image in enumerate(items):
        if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[0] != 3:
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"{name}[{index}] must be a [3, H, W] tensor, got {shape}")
        if not image.is_floating_point():
            raise TypeError(f"{name}[{index}] must be a float tensor in [0, 1], got {image.dtype}")
        check_values(image, f"{name}[{index}]")
    return items
