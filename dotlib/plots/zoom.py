"""Where two images of one scene differ most: the window a figure enlarges to show what DOT changed."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["change_window"]


def change_window(changed: torch.Tensor, reference: torch.Tensor, side: int) -> tuple[int, int]:
    """Top-left ``(row, col)`` of the ``side``-pixel square where ``changed [3, H, W]`` differs most
    from ``reference`` (largest mean squared difference; windows every ``side // 4`` pixels)."""
    energy = (changed.float() - reference.float()).square().sum(dim=0)[None, None]
    side = max(1, min(side, *energy.shape[-2:]))
    stride = max(1, side // 4)
    pooled = F.avg_pool2d(energy, side, stride=stride)[0, 0]
    row, col = divmod(int(pooled.argmax()), pooled.shape[1])
    return row * stride, col * stride
